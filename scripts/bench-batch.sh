#!/usr/bin/env bash
# Documents per minute of `svodka batch` with the extractive summarizer on the 80 Russian
# WMT22 news articles (release build). Each configuration runs REPS times into a fresh
# output folder (nothing skipped); the median is reported. A second table times a resume
# where everything is skipped (hashing and manifest only).
#
#   scripts/bench-batch.sh            # REPS=5 JOBS="1 2" by default
#   REPS=3 JOBS="1 2 4" DATA=/path/to/news-wmt22/ru scripts/bench-batch.sh
set -euo pipefail

cd "$(dirname "$0")/.."
REPS=${REPS:-5}
JOBS=${JOBS:-"1 2"}
DATA=${DATA:-tests/fixtures/news-wmt22/ru}
[ -d "$DATA" ] || DATA=/work/shared/data/news-wmt22/ru
[ -d "$DATA" ] || { echo "no input folder: set DATA" >&2; exit 2; }

cargo build --release --quiet
BIN=${CARGO_TARGET_DIR:-target}/release/svodka
DOCS=$(find "$DATA" -type f -name '*.txt' | wc -l)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
# Exit status 1 (some documents failed) still counts as a run; anything else stops.
seconds() {
    local t0 t1 rc=0
    t0=$(date +%s.%N)
    "$@" >/dev/null 2>&1 || rc=$?
    t1=$(date +%s.%N)
    [ "$rc" -le 1 ] || { echo "failed ($rc): $*" >&2; exit "$rc"; }
    awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f\n", b - a}'
}
per_min() { awk -v d="$DOCS" -v s="$1" 'BEGIN {printf "%.0f", d * 60 / s}'; }

echo "svodka batch, extractive, $DOCS documents from $DATA, $REPS runs each, $(nproc) CPUs"
printf '%-8s %-10s %12s %12s\n' jobs mode "median s" "docs/min"
for j in $JOBS; do
    times=()
    for r in $(seq "$REPS"); do
        out="$WORK/out-$j-$r"
        times+=("$(seconds "$BIN" batch "$DATA" --out "$out" --jobs "$j" --quiet)")
    done
    m=$(printf '%s\n' "${times[@]}" | median)
    printf '%-8s %-10s %12.3f %12.0f\n' "$j" fresh "$m" "$(per_min "$m")"
    times=()
    for r in $(seq "$REPS"); do
        times+=("$(seconds "$BIN" batch "$DATA" --out "$WORK/out-$j-1" --jobs "$j" --quiet)")
    done
    m=$(printf '%s\n' "${times[@]}" | median)
    printf '%-8s %-10s %12.3f %12.0f\n' "$j" resume "$m" "$(per_min "$m")"
done
