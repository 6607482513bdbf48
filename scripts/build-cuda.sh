#!/usr/bin/env bash
# Build svodka with `--features cuda` on a machine without a GPU (toolkit from
# scripts/setup-cuda.sh) and gather what the GPU machine needs into one carry folder.
#
# The GPU machine has no Rust and no network: it gets the binaries, not the source.
# The build uses its own target dir (target-cuda) so it never invalidates the CPU build
# in target/. A clean build takes about 16 minutes on 2 idle cores (30 with other builds
# beside it), most of it nvcc compiling candle-kernels; run it under `nice -n 19` on a
# shared machine.
#
# usage: scripts/build-cuda.sh [--no-tests] [--with-gguf]
#   --no-tests   build only the svodka binary, not the parity test binaries
#   --with-gguf  also put the Gemma 3 270M GGUF (scripts/fetch-gemma.sh) in the carry
#                folder, split in parts that fit one call each (.gpu/gguf/part-NN)
# env:   SVODKA_CUDA_VENV   the venv of setup-cuda.sh (default <repo>/.venv-cuda)
#        SVODKA_GPU_DIR     the carry folder (default <repo>/.gpu, git-ignored)
#        CUDA_COMPUTE_CAP   the GPU's compute capability (default 90: H100, H200)
#        SVODKA_GEMMA_GGUF  the GGUF for --with-gguf (default .models/gemma-3-270m/...)
#        SVODKA_GGUF_PART_MIB  size of one GGUF part (default 56)
# Output (in SVODKA_GPU_DIR):
#   bins.tar.xz  svodka, tests/<name> (marian_parity, llm_parity, t5_parity) and
#                benches/marian (only once benches/marian.rs can run on CUDA: docs/gpu.md),
#                stripped of debug info and compressed together (the four share most of
#                their bytes, the kernels above all): ~12 MiB for ~240 MiB of binaries,
#                which fits the device tool's 64 MiB carry
#   BUILD-INFO   revision, sizes, NEEDED libraries, run path, newest glibc symbol
#   gguf/part-NN + gguf/SHA256 (--with-gguf)
#   scripts/gpu-check.sh unpacks and runs them on the GPU machine.
set -euo pipefail

readonly TEST_BINS=(marian_parity llm_parity t5_parity)

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${SVODKA_CUDA_VENV:-${repo_root}/.venv-cuda}"
gpu_dir="${SVODKA_GPU_DIR:-${repo_root}/.gpu}"
target_dir="${repo_root}/target-cuda"
with_tests=1
with_gguf=0
gguf="${SVODKA_GEMMA_GGUF:-${repo_root}/.models/gemma-3-270m/gemma-3-270m-Q4_K_M.gguf}"
part_mib="${SVODKA_GGUF_PART_MIB:-56}"

die() {
  echo "build-cuda: error: $*" >&2
  exit 1
}
log() { echo "build-cuda: $*" >&2; }

for arg in "$@"; do
  case "$arg" in
    --no-tests) with_tests=0 ;;
    --with-gguf) with_gguf=1 ;;
    -h | --help)
      sed -n '2,30p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    *) die "unknown argument '$arg' (see --help)" ;;
  esac
done
if ((with_gguf)); then
  [[ -f "$gguf" ]] || die "$gguf missing; run scripts/fetch-gemma.sh or set SVODKA_GEMMA_GGUF"
fi
for tool in xz strip readelf objdump; do
  command -v "$tool" >/dev/null || die "$tool not found"
done
command -v python3 >/dev/null || die "python3 not found (used to read cargo's JSON messages)"

env_sh="${venv}/cuda/env.sh"
if [[ ! -f "$env_sh" ]]; then
  log "no CUDA toolkit at ${venv}; running setup-cuda.sh"
  SVODKA_CUDA_VENV="$venv" "${repo_root}/scripts/setup-cuda.sh" >/dev/null
fi
# shellcheck source=/dev/null
source "$env_sh"
log "CUDA_HOME=${CUDA_HOME}, nvcc $(nvcc --version | sed -n 's/.*release \([0-9.]*\),.*/\1/p'), compute cap ${CUDA_COMPUTE_CAP}"

cd "$repo_root"
cargo_args=(--release --features cuda --target-dir "$target_dir")

# Prints the executables cargo reports on stdin (JSON messages), one per line.
executables() {
  python3 -c '
import json, sys
for line in sys.stdin:
    try:
        msg = json.loads(line)
    except ValueError:
        continue
    if msg.get("reason") == "compiler-artifact" and msg.get("executable"):
        print(msg["target"]["name"], msg["executable"])
'
}

log "cargo build ${cargo_args[*]} --bin svodka"
start=$SECONDS
cargo build "${cargo_args[@]}" --bin svodka
log "svodka built in $((SECONDS - start)) s"

declare -A test_exe=()
if ((with_tests)); then
  test_flags=()
  for t in "${TEST_BINS[@]}"; do test_flags+=(--test "$t"); done
  log "cargo test --no-run ${cargo_args[*]} ${test_flags[*]}"
  built="$(cargo test "${cargo_args[@]}" --no-run "${test_flags[@]}" \
    --message-format=json-render-diagnostics | executables)"
  # Building tests also builds the svodka binary they run; keep only the tests.
  while read -r name exe; do
    [[ " ${TEST_BINS[*]} " == *" ${name} "* ]] && test_exe["$name"]="$exe"
  done <<<"$built"
  for t in "${TEST_BINS[@]}"; do
    [[ -n "${test_exe[$t]:-}" ]] || die "cargo reported no executable for test $t"
  done
fi

# The Marian benchmark is worth carrying only once it can select the device, dtype and
# batch (the contract gpu-check.sh uses) and runs without the libtest harness.
bench_exe=""
if grep -q MARIAN_BENCH_DEVICE benches/marian.rs 2>/dev/null &&
  grep -A2 '^name = "marian"' Cargo.toml | grep -q 'harness = false'; then
  log "cargo build ${cargo_args[*]} --bench marian"
  bench_exe="$(cargo build "${cargo_args[@]}" --bench marian \
    --message-format=json-render-diagnostics | executables | awk '$1 == "marian" { print $2 }')"
  [[ -n "$bench_exe" ]] || die "cargo reported no executable for bench marian"
else
  log "benches/marian.rs is CPU-only (no MARIAN_BENCH_DEVICE or no harness = false): not carried"
fi

# --- the carry folder ------------------------------------------------------------------
bin="${target_dir}/release/svodka"
[[ -x "$bin" ]] || die "$bin missing after the build"
rm -rf "$gpu_dir"
mkdir -p "$gpu_dir"
stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
mkdir -p "${stage}/tests" "${stage}/benches"
# Debug info is two thirds of a binary; symbols stay for backtraces.
strip --strip-debug -o "${stage}/svodka" "$bin"
for t in "${!test_exe[@]}"; do
  strip --strip-debug -o "${stage}/tests/${t}" "${test_exe[$t]}"
done
if [[ -n "$bench_exe" ]]; then
  strip --strip-debug -o "${stage}/benches/marian" "$bench_exe"
fi
log "compressing $(du -sm "$stage" | cut -f1) MiB of binaries (a few minutes)"
# One stream with a dictionary larger than a binary, so each binary after the first
# costs little; -T1 because threads would cut the stream into independent blocks.
tar -C "$stage" -cf - . | xz -T1 --lzma2=preset=6,dict=256MiB >"${gpu_dir}/bins.tar.xz"
if ((with_gguf)); then
  # One call carries at most 64 MiB, so the 242 MiB GGUF travels as parts over several
  # calls; gpu-check.sh joins them and checks the sha256.
  mkdir -p "${gpu_dir}/gguf"
  split -b "${part_mib}M" -d -a 2 "$gguf" "${gpu_dir}/gguf/part-"
  sha256sum "$gguf" | cut -d' ' -f1 >"${gpu_dir}/gguf/SHA256"
fi

needed="$(readelf -d "$bin" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | tr '\n' ' ')"
runpath="$(readelf -d "$bin" | sed -n 's/.*(R\(UN\)\{0,1\}PATH).*\[\(.*\)\]/\2/p')"
glibc="$(objdump -T "$bin" | grep -oE 'GLIBC_[0-9.]+' | sort -uV | tail -1)"
{
  echo "git_rev=$(git -C "$repo_root" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$repo_root" diff --quiet HEAD 2>/dev/null || echo -dirty)"
  echo "built_at=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "manifest_dir=${repo_root}"
  echo "cuda_compute_cap=${CUDA_COMPUTE_CAP}"
  echo "cudarc_cuda_version=${CUDARC_CUDA_VERSION}"
  echo "svodka_bytes=$(stat -c %s "$bin") (stripped: $(stat -c %s "${stage}/svodka"))"
  echo "needed=${needed}"
  echo "runpath=${runpath}"
  echo "max_glibc=${glibc}"
  echo "tests=${!test_exe[*]}"
  echo "benches=${bench_exe:+marian}"
} >"${gpu_dir}/BUILD-INFO"
case " $needed " in
  *" libcuda.so.1 "*) ;;
  *) die "the binary does not link libcuda.so.1; the cuda feature did not take" ;;
esac
cat "${gpu_dir}/BUILD-INFO" >&2
total="$(du -sb "$gpu_dir" | cut -f1)"
log "carry folder ${gpu_dir}: $((total / 1024 / 1024)) MiB (device tool limit: 64 MiB with the working tree)"
