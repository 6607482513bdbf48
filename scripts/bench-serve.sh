#!/usr/bin/env bash
# Load benchmark of `svodka serve` (not a test): for each client count, the same load
# (one WMT22 sentence per `POST /translate`, scripts/bench_serve.py) against a server with
# default request batching and against one started with --batch-requests 1 (one request
# per model round, i.e. one-request-at-a-time decoding), interleaved, each run on a freshly
# started release server. Prints a markdown table; results also go to
# $BENCH_DIR/serve-results.jsonl (default .bench/).
#
# usage: scripts/bench-serve.sh [MODEL_DIR] [SENTENCES]
#   MODEL_DIR: a full-size Marian model folder (default .models/marian-fullsize-en-ru,
#              built with scripts/make_marian_fullsize.py when missing)
#   SENTENCES: one English sentence a line (default $SVODKA_SHARED_DATA/wmt22/
#              generaltest2022.en-ru.src.en, 2,037 lines; SVODKA_SHARED_DATA defaults to
#              ../shared/data)
# env: CLIENTS (default "1 8 32"), LIMIT (an evenly spaced subset of that many sentences;
#      default all), THREADS (--threads for both servers), SVODKA_BIN (default: cargo
#      build --release, then target/release/svodka), BENCH_DIR, SERVE_VENV.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/serve-lib.sh

model="${1:-.models/marian-fullsize-en-ru}"
data="${SVODKA_SHARED_DATA:-../shared/data}"
sentences="${2:-$data/wmt22/generaltest2022.en-ru.src.en}"
clients="${CLIENTS:-1 8 32}"
dir="${BENCH_DIR:-.bench}"

[ -f "$sentences" ] || { echo "bench-serve: no sentences file $sentences" >&2; exit 1; }
serve_init
serve_venv
if [ ! -d "$model" ]; then
    # numpy and safetensors are all the model builder needs.
    "$SERVE_PY" -m pip install --quiet numpy==2.4.6 safetensors==0.8.0
    "$SERVE_PY" scripts/make_marian_fullsize.py "$model"
fi
if [ -z "${SVODKA_BIN:-}" ]; then
    cargo build --release --quiet --bin svodka
    SVODKA_BIN="${CARGO_TARGET_DIR:-target}/release/svodka"
fi
threads=()
[ -n "${THREADS:-}" ] && threads=(--threads "$THREADS")

mkdir -p "$dir"
results="$dir/serve-results.jsonl"
: >"$results"
echo "bench-serve: model $model, sentences $sentences${LIMIT:+ (subset of $LIMIT)}, clients $clients${THREADS:+, $THREADS threads}" >&2

for n in $clients; do
    for mode in batched one; do
        if [ "$mode" = batched ]; then
            extra=(); label="default batching"
        else
            extra=(--batch-requests 1); label="--batch-requests 1"
        fi
        # --no-retry: random weights fail every check, and beam-search retries of
        # gibberish would be most of what is measured.
        serve_start "$SVODKA_BIN" -m "$model" --no-retry "${threads[@]}" "${extra[@]}"
        "$SERVE_PY" scripts/bench_serve.py "$SERVE_URL" --clients "$n" --sentences "$sentences" \
            ${LIMIT:+--limit "$LIMIT"} --label "$label" --append "$results" >&2 \
            || { serve_log; exit 1; }
        serve_stop
    done
done

echo
"$SERVE_PY" scripts/bench_serve.py --table "$results"
