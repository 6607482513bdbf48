#!/usr/bin/env bash
# Drives the `svodka serve` web page in headless Chromium (tests/serve/browser.py): a
# tiny random Marian model (examples/tiny_marian.rs), the server on a free port, then a
# summary and a side-by-side translation through the page's form, with JavaScript and
# without. Installs Debian's chromium and chromium-driver when they are missing (as
# root, like CI) and scripts/requirements-serve.txt into .venv-serve. Screenshots go to
# target/serve-browser/ (not committed).
#
# usage: scripts/test-serve-browser.sh
# env: SVODKA_BIN (default: cargo build, then target/debug/svodka), SERVE_MODEL (a Marian
#      model folder instead of the tiny one), SERVE_VENV, SERVE_TIMEOUT (seconds, 60).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/serve-lib.sh

if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        chromium chromium-driver >/dev/null
fi

serve_init
serve_venv
if [ -z "${SVODKA_BIN:-}" ]; then
    cargo build --quiet --bin svodka
    SVODKA_BIN="${CARGO_TARGET_DIR:-target}/debug/svodka"
fi
serve_tiny_model

serve_start "$SVODKA_BIN" -m "$SERVE_MODEL"
"$SERVE_PY" tests/serve/browser.py --shots "${CARGO_TARGET_DIR:-target}/serve-browser" "$SERVE_URL" \
    || { serve_log; exit 1; }
serve_stop
echo "test-serve-browser: ok"
