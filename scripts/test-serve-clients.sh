#!/usr/bin/env bash
# Drives `svodka serve` with the real LibreTranslate client libraries (libretranslatepy,
# deep-translator; tests/serve/clients.py): a tiny random Marian model
# (examples/tiny_marian.rs), the server on a free port, the checks once without an API
# key and once with --api-key (then requests without the key must get 403).
# Needs python3 with venv; installs scripts/requirements-serve.txt into .venv-serve.
#
# usage: scripts/test-serve-clients.sh
# env: SVODKA_BIN (default: cargo build, then target/debug/svodka), SERVE_MODEL (a Marian
#      model folder instead of the tiny one), SERVE_VENV, SERVE_TIMEOUT (seconds, 60).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/serve-lib.sh

serve_init
serve_venv
if [ -z "${SVODKA_BIN:-}" ]; then
    cargo build --quiet --bin svodka
    SVODKA_BIN="${CARGO_TARGET_DIR:-target}/debug/svodka"
fi
serve_tiny_model

serve_start "$SVODKA_BIN" -m "$SERVE_MODEL"
"$SERVE_PY" tests/serve/clients.py "$SERVE_URL" || { serve_log; exit 1; }
serve_stop

key=secret123
serve_start "$SVODKA_BIN" -m "$SERVE_MODEL" --api-key "$key"
"$SERVE_PY" tests/serve/clients.py --api-key "$key" "$SERVE_URL" || { serve_log; exit 1; }
serve_stop
echo "test-serve-clients: ok"
