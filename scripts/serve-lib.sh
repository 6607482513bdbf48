# Shared helpers for the `svodka serve` scripts (test-serve-clients.sh,
# test-serve-browser.sh, bench-serve.sh). Source it from the repository root:
#
#   . scripts/serve-lib.sh
#   serve_init                      # temp dir, HF_HOME, EXIT trap
#   serve_venv                      # .venv-serve with scripts/requirements-serve.txt
#   serve_tiny_model                # builds the tiny random Marian model, sets SERVE_MODEL
#   serve_start BIN -m "$SERVE_MODEL" --api-key K   # sets SERVE_URL, SERVE_PID, SERVE_LOG
#   serve_stop
#
# serve_start runs `BIN --offline serve --port PORT ARGS...` on a free port and waits
# until GET /health answers 200 (SERVE_TIMEOUT seconds, default 60); when the server
# exits first, its log is printed and serve_start fails.

SERVE_VENV="${SERVE_VENV:-.venv-serve}"
SERVE_PY="$SERVE_VENV/bin/python"
SERVE_TIMEOUT="${SERVE_TIMEOUT:-60}"
SERVE_PID=""
SERVE_URL=""
SERVE_LOG=""
SERVE_TMP=""
SERVE_MODEL="${SERVE_MODEL:-}"
_serve_count=0

# Temp dir (removed on exit), HF_HOME inside it, and the EXIT trap that stops the server.
serve_init() {
    SERVE_TMP="$(mktemp -d "${TMPDIR:-/tmp}/svodka-serve.XXXXXX")"
    export HF_HOME="$SERVE_TMP/hf-home"
    mkdir -p "$HF_HOME"
    trap _serve_exit EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}

_serve_exit() {
    local rc=$?
    serve_stop
    [ -n "$SERVE_TMP" ] && rm -rf "$SERVE_TMP"
    return "$rc"
}

serve_venv() {
    [ -x "$SERVE_PY" ] || python3 -m venv "$SERVE_VENV"
    "$SERVE_VENV/bin/pip" install -q --disable-pip-version-check -r scripts/requirements-serve.txt
}

# A complete random-weight Marian model folder (examples/tiny_marian.rs) in the temp dir,
# unless SERVE_MODEL is already set.
serve_tiny_model() {
    if [ -z "$SERVE_MODEL" ]; then
        SERVE_MODEL="$SERVE_TMP/tiny-marian"
        cargo run --quiet --example tiny_marian -- "$SERVE_MODEL"
    fi
}

_serve_free_port() {
    python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()'
}

_serve_healthy() {
    python3 - "$1" <<'EOF'
import sys, urllib.request
try:
    with urllib.request.urlopen(sys.argv[1] + "/health", timeout=2) as r:
        sys.exit(0 if r.status == 200 else 1)
except Exception:
    sys.exit(1)
EOF
}

# serve_start BIN [SERVE ARGS...]
serve_start() {
    local bin="$1"; shift
    local try port deadline rc
    serve_stop
    for try in 1 2 3; do
        _serve_count=$((_serve_count + 1))
        SERVE_LOG="$SERVE_TMP/server-$_serve_count.log"
        port="$(_serve_free_port)"
        SERVE_URL="http://127.0.0.1:$port"
        echo "serve: $bin --offline serve --port $port $*" >&2
        "$bin" --offline serve --port "$port" "$@" >"$SERVE_LOG" 2>&1 &
        SERVE_PID=$!
        deadline=$((SECONDS + SERVE_TIMEOUT))
        while :; do
            if ! kill -0 "$SERVE_PID" 2>/dev/null; then
                wait "$SERVE_PID" 2>/dev/null && rc=0 || rc=$?
                SERVE_PID=""
                # Another process took the port between the pick and the bind: pick again.
                if [ "$try" -lt 3 ] && grep -qi "address.*in use" "$SERVE_LOG"; then
                    echo "serve: port $port taken, retrying" >&2
                    continue 2
                fi
                echo "serve: the server exited (status $rc) before answering /health; its log:" >&2
                cat "$SERVE_LOG" >&2
                return 1
            fi
            if _serve_healthy "$SERVE_URL"; then
                echo "serve: up at $SERVE_URL (pid $SERVE_PID)" >&2
                return 0
            fi
            if [ "$SECONDS" -ge "$deadline" ]; then
                echo "serve: no 200 from $SERVE_URL/health within ${SERVE_TIMEOUT}s; server log:" >&2
                cat "$SERVE_LOG" >&2
                serve_stop
                return 1
            fi
            sleep 0.2
        done
    done
    return 1
}

# Stops the server serve_start started (TERM, then KILL after 10 s).
serve_stop() {
    [ -n "$SERVE_PID" ] || return 0
    local pid="$SERVE_PID" i
    SERVE_PID=""
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.2
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

# Prints the current server's log (for failures after startup).
serve_log() {
    [ -n "$SERVE_LOG" ] && [ -f "$SERVE_LOG" ] && cat "$SERVE_LOG" >&2 || true
}
