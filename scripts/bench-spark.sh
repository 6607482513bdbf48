#!/usr/bin/env bash
# Documents per minute of the Spark example job (examples/spark/svodka_spark.py) on
# local[2] beside `svodka batch -j 2`, on the same Russian WMT22 articles, in one run,
# interleaved (REPS rounds): the engine's overhead. Release build.
#
# Rows: extractive summaries of the 80 articles by `svodka batch -j 2`; by the Spark job
# (2 partitions, one `svodka batch --jsonl - -j 1` each); by the Spark job with a
# stand-in that only echoes its records (`cat`), which is Spark's own cost (JVM start,
# reading, partitioning, Python workers, the committer). Then translation ru->en with a
# random-weight FULL-SIZE Marian (scripts/make_marian_fullsize.py into MARIAN; needs
# .venv-marian) of the first TDOCS articles: `svodka batch -j 2` (one model, all cores)
# vs the Spark job (2 partitions, each svodka with one thread), both with --no-retry as
# in scripts/bench-batch.sh.
#
#   flock /work/bench.lock scripts/bench-spark.sh
#   REPS=2 TDOCS=20 MARIAN=/tmp/marian-full SPARK_PY=.venv-spark/bin/python scripts/bench-spark.sh
#   PROFILE=dev TDOCS=16 scripts/bench-spark.sh
set -euo pipefail
cd "$(dirname "$0")/.."
REPS=${REPS:-1}
TDOCS=${TDOCS:-80}
SPARK_PY=${SPARK_PY:-.venv-spark/bin/python}
DATA=${DATA:-tests/fixtures/news-wmt22/ru}
[ -d "$DATA" ] || DATA="$(pwd)/../shared/data/news-wmt22/ru"

# PROFILE=dev uses the dev build (opt-level 3 for every crate, see Cargo.toml) when a
# release build is out of reach; both rows of a comparison always use the same binary.
if [ "${PROFILE:-release}" = dev ]; then
    cargo build --quiet
    BIN=$(pwd)/${CARGO_TARGET_DIR:-target}/debug/svodka
else
    cargo build --release --quiet
    BIN=$(pwd)/${CARGO_TARGET_DIR:-target}/release/svodka
fi
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
MARIAN=${MARIAN:-$WORK/marian-full}
if [ "$TDOCS" -gt 0 ] && [ ! -f "$MARIAN/model.safetensors" ]; then
    .venv-marian/bin/python scripts/make_marian_fullsize.py "$MARIAN" >/dev/null
fi
mkdir -p "$WORK/in/ru" "$WORK/tin/ru"
cp "$DATA"/*.txt "$WORK/in/ru/"
DOCS=$(find "$WORK/in" -name '*.txt' | wc -l)
find "$DATA" -maxdepth 1 -name '*.txt' | sort | head -n "$TDOCS" | xargs -r -I{} cp {} "$WORK/tin/ru/"
printf '#!/bin/sh\nexec cat\n' >"$WORK/echo-records"
chmod +x "$WORK/echo-records"

# Wall seconds of one command; status 1 (some documents failed) still counts.
wall() {
    local start end rc=0
    start=$(date +%s.%N)
    "$@" >"$WORK/last.log" 2>&1 || rc=$?
    end=$(date +%s.%N)
    [ "$rc" -le 1 ] || { echo "failed ($rc): $*" >&2; tail -20 "$WORK/last.log" >&2; exit "$rc"; }
    awk -v s="$start" -v e="$end" 'BEGIN {printf "%.2f", e - s}'
}
row() {
    awk -v n="$1" -v d="$2" -v w="$3" 'BEGIN {printf "%-44s %5d %9.2f %10.1f\n", n, d, w, d * 60 / w}'
}
spark() {
    local out=$1 input=$2 svodka=$3
    shift 3
    "$SPARK_PY" examples/spark/svodka_spark.py "$input" "$out" --master 'local[2]' \
        --partitions 2 --svodka "$svodka" --glob '*.txt' -- "$@"
}

echo "Spark local[2] vs svodka batch -j 2 ($BIN): $DOCS articles, $REPS round(s), $(nproc) CPUs"
printf '%-44s %5s %9s %10s\n' run docs "wall s" "docs/min"
for r in $(seq "$REPS"); do
    row "extractive: svodka batch -j 2" "$DOCS" "$(wall "$BIN" --quiet batch "$WORK/in" --out "$WORK/b$r" -j 2)"
    row "extractive: Spark job, svodka -j 1 each" "$DOCS" "$(wall spark "$WORK/s$r" "$WORK/in" "$BIN" -j 1)"
    row "Spark job, records echoed (cat)" "$DOCS" "$(wall spark "$WORK/c$r" "$WORK/in" "$WORK/echo-records")"
done
[ "$TDOCS" -gt 0 ] || exit 0
T=$(find "$WORK/tin" -name '*.txt' | wc -l)
echo
echo "translate ru->en, full-size random Marian ($MARIAN), --no-retry: $T articles"
for r in $(seq "$REPS"); do
    row "translate: svodka batch -j 2" "$T" "$(wall "$BIN" --offline --quiet batch "$WORK/tin" \
        --out "$WORK/tb$r" --task translate --to en --model "$MARIAN" --no-retry -j 2)"
    row "translate: Spark job, svodka --threads 1 each" "$T" "$(wall spark "$WORK/ts$r" "$WORK/tin" \
        "$BIN" --task translate --to en --model "$MARIAN" --no-retry -j 1 --threads 1)"
done
