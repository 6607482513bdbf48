#!/usr/bin/env bash
# Runs every fuzz target under fuzz/fuzz_targets/ (or the ones named) for SECONDS each
# with libFuzzer, then reports what each found. Needs only stable Rust and a C++
# compiler: the targets are built the way cargo-fuzz builds them (SanitizerCoverage
# passes, `--cfg fuzzing`, debug assertions and overflow checks in a release build),
# without AddressSanitizer, which safe Rust has little use for.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]     default: 60 seconds, every target
#
# Per target: the corpus grows in fuzz/corpus/TARGET (seeded from fuzz/seeds/TARGET),
# findings land in fuzz/artifacts/TARGET/ (crash-*, timeout-*, oom-*, slow-unit-*), the
# log in fuzz/artifacts/TARGET/log. fuzz/dicts/TARGET.dict is used when present.
# Environment: FUZZ_TARGET_DIR (build folder, default fuzz/target), FUZZ_TIMEOUT (seconds
# one input may take before it counts as a hang, default 10), FUZZ_RSS_MB (memory limit,
# default 2048), FUZZ_ARGS (more libFuzzer flags), FUZZ_NICE (default 19).
# Exit status: 0 when no target found anything, 1 when one did, 2 on a build failure.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-60}
shift || true
fuzz=fuzz
target_dir=${FUZZ_TARGET_DIR:-$fuzz/target}
nice_level=${FUZZ_NICE:-19}

if [ $# -gt 0 ]; then
    targets=("$@")
else
    targets=()
    for f in "$fuzz"/fuzz_targets/*.rs; do
        targets+=("$(basename "$f" .rs)")
    done
fi

export RUSTFLAGS="-Cpasses=sancov-module \
-Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
-Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares \
--cfg fuzzing -Cdebug-assertions -Coverflow-checks"
# An explicit --target keeps these flags off build scripts and proc macros.
triple=$(rustc -vV | sed -n 's/^host: //p')
bins=()
for t in "${targets[@]}"; do bins+=(--bin "$t"); done
if ! nice -n "$nice_level" cargo build --release --manifest-path "$fuzz/Cargo.toml" \
    --target "$triple" --target-dir "$target_dir" "${bins[@]}"; then
    echo "fuzz: build failed" >&2
    exit 2
fi

found=0
for t in "${targets[@]}"; do
    corpus=$fuzz/corpus/$t
    artifacts=$fuzz/artifacts/$t
    mkdir -p "$corpus" "$artifacts"
    dirs=("$corpus")
    [ -d "$fuzz/seeds/$t" ] && dirs+=("$fuzz/seeds/$t")
    extra=()
    [ -f "$fuzz/dicts/$t.dict" ] && extra+=("-dict=$fuzz/dicts/$t.dict")
    stamp=$(mktemp)
    start=$(date +%s)
    echo "fuzz: $t for ${seconds}s"
    # libFuzzer exits non-zero on its first finding; the report below says what it was.
    # shellcheck disable=SC2086
    nice -n "$nice_level" "$target_dir/$triple/release/$t" \
        -max_total_time="$seconds" -timeout="${FUZZ_TIMEOUT:-10}" \
        -rss_limit_mb="${FUZZ_RSS_MB:-2048}" -print_final_stats=1 \
        -artifact_prefix="$artifacts/" "${extra[@]}" ${FUZZ_ARGS:-} "${dirs[@]}" \
        >"$artifacts/log" 2>&1 || true
    took=$(($(date +%s) - start))
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$artifacts/log" \
        | grep -o '[0-9]*$' | tail -1)
    new=$(find "$artifacts" -maxdepth 1 -type f ! -name log -newer "$stamp")
    rm -f "$stamp"
    units=$(find "$corpus" -type f | wc -l)
    if [ -n "$new" ]; then
        found=1
        echo "fuzz: $t FOUND after ${execs:-?} executions in ${took}s (corpus $units):"
        echo "$new" | sed 's/^/  /'
        grep -m 3 -E 'panicked at|ERROR: libFuzzer|SUMMARY' "$artifacts/log" | sed 's/^/  /' || true
    else
        echo "fuzz: $t ok: ${execs:-?} executions in ${took}s, corpus $units, nothing found"
    fi
done
exit "$found"
