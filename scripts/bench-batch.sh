#!/usr/bin/env bash
# Documents per minute of `svodka batch` with the extractive summarizer on the 80 Russian
# WMT22 news articles (release build). Each configuration runs REPS times into a fresh
# output folder (nothing skipped); medians of wall time and of CPU time (user + sys) are
# reported. "resume" times a second run where everything is skipped (hashing and
# manifest only). The anchor, measured in the same run: a shell loop calling
# `svodka summarize --engine extractive` once per article of one copy.
#
#   scripts/bench-batch.sh            # REPS=5 JOBS="1 2" COPIES=1 by default
#   REPS=3 JOBS="1 2 4" COPIES=5 DATA=/path/to/news-wmt22/ru scripts/bench-batch.sh
#
# Translation (TRANSLATE=1): documents per minute of `svodka batch --task translate --to en`
# on the same articles with a random-weight FULL-SIZE Marian (opus-mt-ru-en's shape, made
# by scripts/make_marian_fullsize.py into MARIAN unless MARIAN already holds one; needs
# .venv-marian), sentences batched across BATCH_DOCS documents versus one document at a
# time (--batch-docs 1), both in this run, with --no-retry: a random model fails nearly
# every check, and the beam-search retries (per document) would swamp the comparison. TDOCS takes only the first N articles (the
# full 80 take long on a small CPU); TREPS runs each (default 1).
#
#   TRANSLATE=1 scripts/bench-batch.sh
#   TRANSLATE=1 TDOCS=10 MARIAN=/tmp/marian-full scripts/bench-batch.sh
#
# COPIES copies of the folder (copy0/, copy1/, ...) make a run long enough for process
# start-up and timer noise to fade. Every output and manifest line is fsynced, so wall
# time on a busy or slow disk is mostly fsync latency: compare CPU times across machines.
set -euo pipefail

cd "$(dirname "$0")/.."
REPS=${REPS:-5}
JOBS=${JOBS:-"1 2"}
COPIES=${COPIES:-1}
DATA=${DATA:-tests/fixtures/news-wmt22/ru}
[ -d "$DATA" ] || DATA="$(pwd)/../shared/data/news-wmt22/ru"
[ -d "$DATA" ] || { echo "no input folder: set DATA" >&2; exit 2; }

cargo build --release --quiet
BIN=${CARGO_TARGET_DIR:-target}/release/svodka
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/in"
for c in $(seq 0 $((COPIES - 1))); do cp -r "$DATA" "$WORK/in/copy$c"; done
ONE=$(find "$DATA" -type f -name '*.txt' | wc -l)
DOCS=$(find "$WORK/in" -type f -name '*.txt' | wc -l)

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

# Prints "wall cpu" seconds of one command; exit status 1 (some documents failed) still
# counts as a run, anything else stops the benchmark.
measure() {
    local out rc=0
    TIMEFORMAT='%R %U %S'
    out=$({ time "$@" >/dev/null 2>&1; } 2>&1) || rc=$?
    [ "$rc" -le 1 ] || { echo "failed ($rc): $*" >&2; exit "$rc"; }
    awk '{printf "%.3f %.3f\n", $1, $2 + $3}' <<<"${out##*$'\n'}"
}

# Runs a command REPS times (the command gets the repetition number as $REP) and
# prints one table row.
row() {
    local jobs=$1 mode=$2 docs=$3 walls=() cpus=() w c
    shift 3
    for REP in $(seq "$REPS"); do
        read -r w c < <(measure "$@")
        walls+=("$w")
        cpus+=("$c")
    done
    w=$(printf '%s\n' "${walls[@]}" | median)
    c=$(printf '%s\n' "${cpus[@]}" | median)
    awk -v j="$jobs" -v m="$mode" -v d="$docs" -v w="$w" -v c="$c" \
        'BEGIN {printf "%-5s %-8s %6d %10.3f %10.3f %12.0f %12.0f\n", j, m, d, w, c, d*60/w, d*60/c}'
}

loop() { for f in "$DATA"/*.txt; do "$BIN" summarize --engine extractive "$f" || return; done; }
fresh() { "$BIN" batch "$WORK/in" --out "$WORK/out-$1-$REP" --jobs "$1" --quiet; }
resume() { "$BIN" batch "$WORK/in" --out "$WORK/out-$1-1" --jobs "$1" --quiet; }

echo "svodka batch, extractive: $DOCS documents ($COPIES x $DATA), $REPS runs each, $(nproc) CPUs"
printf '%-5s %-8s %6s %10s %10s %12s %12s\n' jobs mode docs "wall s" "cpu s" "docs/min" "docs/cpu-min"
row 1 anchor "$ONE" loop
for j in $JOBS; do
    row "$j" fresh "$DOCS" fresh "$j"
    row "$j" resume "$DOCS" resume "$j"
done

[ "${TRANSLATE:-0}" = 1 ] || exit 0
MARIAN=${MARIAN:-$WORK/marian-full}
if [ ! -f "$MARIAN/model.safetensors" ]; then
    .venv-marian/bin/python scripts/make_marian_fullsize.py "$MARIAN" >/dev/null
fi
TDOCS=${TDOCS:-$ONE}
BATCH_DOCS=${BATCH_DOCS:-8}
mkdir -p "$WORK/tin"
find "$DATA" -maxdepth 1 -type f -name '*.txt' | sort | head -n "$TDOCS" | xargs -I{} cp {} "$WORK/tin/"
TDOCS=$(find "$WORK/tin" -type f -name '*.txt' | wc -l)
translate() {
    "$BIN" --offline batch "$WORK/tin" --out "$WORK/tout-$1-$REP" --task translate --to en \
        --model "$MARIAN" --batch-docs "$1" --no-retry --quiet
}
REPS=${TREPS:-1}
echo
echo "svodka batch --task translate --to en, full-size random Marian ($MARIAN): $TDOCS documents, $REPS run(s) each"
printf '%-5s %-8s %6s %10s %10s %12s %12s\n' docs mode docs "wall s" "cpu s" "docs/min" "docs/cpu-min"
row "$BATCH_DOCS" batched "$TDOCS" translate "$BATCH_DOCS"
row 1 one-doc "$TDOCS" translate 1
