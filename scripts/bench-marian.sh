#!/usr/bin/env bash
# Marian translation throughput and peak RSS: svodka beside CTranslate2 (float32, int8)
# and transformers, same random-weight opus-mt-en-ru-shaped model, same WMT22 batches,
# same forced output lengths, 2 threads, each engine in its own process, interleaved.
# Details in scripts/bench_marian.py. Needs .venv-marian with
# scripts/requirements-bench.txt installed; writes everything under .bench/ (or $BENCH_DIR).
#
# usage: scripts/bench-marian.sh [SENTENCES] [REPS] [BEAMS]
#   SENTENCES: evenly spaced subset of the 2,037 WMT22 en-ru sources (default all)
#   REPS: repetitions per engine and search, median reported (default 3)
#   BEAMS: comma-separated beam sizes (default 1,4)
# env: WMT22_DIR (default ../shared/data/wmt22), WMT22_SRC (default
#      $WMT22_DIR/generaltest2022.en-ru.src.en),
#      BENCH_DIR, PYTHON_BENCH, ENGINES (comma-separated subset of
#      svodka,svodka-int8,ct2-float32,ct2-int8,transformers; default all).
set -euo pipefail
cd "$(dirname "$0")/.."
sentences="${1:-2037}"; reps="${2:-3}"; beams="${3:-1,4}"
dir="${BENCH_DIR:-.bench}"
py="${PYTHON_BENCH:-.venv-marian/bin/python}"

# The bench binary's path, from cargo's JSON messages.
bin="$(cargo build --release --bench marian_wmt --message-format=json | "$py" -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "marian_wmt" and m.get("executable"):
        print(m["executable"])')"

"$py" scripts/bench_marian.py prepare --dir "$dir" --sentences "$sentences"
"$py" scripts/bench_marian.py run --dir "$dir" --svodka-bin "$bin" --reps "$reps" --beams "$beams" \
    ${ENGINES:+--engines "$ENGINES"}
