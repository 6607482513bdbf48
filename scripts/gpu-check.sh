#!/usr/bin/env bash
# The one prepared check of svodka's CUDA build on the GPU machine (3–5 minutes expected).
#
# Runs in the repository root of the device tool's copy of the working tree, with the
# carry folder of scripts/build-cuda.sh (.gpu: bins.tar.xz, BUILD-INFO; no libcuda stub).
# That machine has no Rust and no network, but has the driver (libcuda.so.1), the CUDA
# 13.0 libraries in /usr/local/cuda/lib64 (found through the binaries' run path), and a
# python3 with torch and transformers.
#
# Steps (each under a timeout; a failed step is reported and the next one runs):
#   1. the GPU, the driver and the libraries the binary needs (nvidia-smi, ldd)
#   2. svodka --device cuda summarize with the tiny mT5 fixture (no model to carry),
#      beside --device cpu
#   3. svodka --device cuda -v summarize --engine llm with the Gemma 3 270M GGUF, beside
#      --device cpu, when the GGUF was carried (.gpu/gguf: whole, or parts joined here)
#   4. the parity test binaries (marian_parity, llm_parity, t5_parity), with
#      SVODKA_TEST_DEVICE=cuda for tests that honour it
#   5. the Marian benchmark on CUDA (batch 64 and 256, greedy and beam 4, f32 and bf16),
#      when build-cuda.sh carried one (benches/marian in .gpu/bins.tar.xz)
#   6. transformers on the same Marian workload (scripts/bench_marian_transformers.py)
#
# usage (device tool): run(command="bash scripts/gpu-check.sh", carry=[".gpu"], timeout_s=600)
# env:   OUT                  where logs go (the device tool sets it; default /tmp/gpu-check)
#        GPU_CHECK_SKIP       steps to skip, e.g. "5 6"
# Output in $OUT: gpu-check.log (everything), summaries.txt, tests.log, bench.jsonl.
# Exit status: the number of failed steps (0: all passed or skipped with a reason).
set -uo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root" || exit 99
out="${OUT:-/tmp/gpu-check}"
gpu_dir="${repo_root}/.gpu"
work="/tmp/svodka-gpu"
skip=" ${GPU_CHECK_SKIP:-} "
mkdir -p "$out" "${work}/tests"
exec > >(tee -a "${out}/gpu-check.log") 2>&1

failed=()
step() {
  echo
  echo "=== step $* ($(date -u +%H:%M:%S))"
}
ok() { echo "--- ok: $*"; }
fail() {
  echo "--- FAILED: $*"
  failed+=("$*")
}
skipped() { [[ "$skip" == *" $1 "* ]] && echo "--- skipped (GPU_CHECK_SKIP)"; }
# Runs a command with a time limit, printing its wall time.
timed() {
  local limit="$1" start=$SECONDS rc
  shift
  timeout "$limit" "$@"
  rc=$?
  echo "    (${rc}, $((SECONDS - start)) s: $*)" >&2
  return "$rc"
}
# Unpacks a .tar.xz into a folder, with python3 where tar cannot call xz.
untar_xz() {
  if command -v xz >/dev/null; then
    tar -C "$2" -xJf "$1"
  else
    python3 -c 'import sys, tarfile; tarfile.open(sys.argv[1], "r:xz").extractall(sys.argv[2])' "$1" "$2"
  fi
}
info() { sed -n "s/^$1=//p" "${gpu_dir}/BUILD-INFO" 2>/dev/null; }

# --- 1. the machine and the binary -----------------------------------------------------
step "1: GPU, driver, libraries"
nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv || fail "nvidia-smi"
ldconfig -p | grep -E 'libcuda\.so\.1' || echo "libcuda.so.1 not in the loader cache"
for lib in cublas cublasLt curand cudart nvrtc; do
  found_lib=""
  for f in /usr/local/cuda/lib64/lib"${lib}".so.[0-9]*; do
    [[ -e "$f" ]] && found_lib="$f"
  done
  echo "lib${lib}: ${found_lib:-not in /usr/local/cuda/lib64}"
done
[[ -f "${gpu_dir}/bins.tar.xz" ]] || {
  fail "no ${gpu_dir}/bins.tar.xz: run scripts/build-cuda.sh first and carry .gpu"
  exit 1
}
if find "$gpu_dir" -name 'libcuda*' | grep -q .; then
  fail "the libcuda link stub was carried; it would shadow the driver"
  exit 1
fi
cat "${gpu_dir}/BUILD-INFO"
svodka="${work}/svodka"
if ! { untar_xz "${gpu_dir}/bins.tar.xz" "$work" && [[ -x "$svodka" ]]; }; then
  fail "unpacking ${gpu_dir}/bins.tar.xz"
  exit 1
fi
ls -l "$work" "${work}/tests"
if ldd "$svodka" | grep 'not found'; then fail "ldd: libraries not found"; else ok "ldd resolves every library"; fi
ldd "$svodka" | grep -E 'cuda|cublas|curand|nvrtc'
# Tests find their fixtures through the manifest dir compiled into them.
manifest_dir="$(info manifest_dir)"
if [[ -n "$manifest_dir" && "$manifest_dir" != "$repo_root" && ! -e "$manifest_dir" ]]; then
  mkdir -p "$(dirname "$manifest_dir")" && ln -s "$repo_root" "$manifest_dir" &&
    echo "linked ${manifest_dir} -> ${repo_root} for the tests' fixtures"
fi
timed 30 "$svodka" --version || fail "svodka --version"

# --- 2. the CLI on CUDA with the tiny mT5 fixture --------------------------------------
step "2: summarize --engine t5 with the tiny random mT5 fixture, cuda then cpu"
if ! skipped 2; then
  t5="${work}/mt5-tiny"
  mkdir -p "$t5"
  cp tests/fixtures/t5/mt5/config.json tests/fixtures/t5/mt5/model.safetensors tests/fixtures/t5/spiece.model "$t5/"
  article=tests/fixtures/articles/seed-article.txt
  for dev in cuda cpu; do
    if {
      echo "## t5 ${dev}"
      timed 120 "$svodka" --device "$dev" -v summarize --engine t5 --model "$t5" "$article"
    } >>"${out}/summaries.txt" 2>&1; then ok "t5 on ${dev}"; else fail "t5 on ${dev}"; fi
  done
  tail -n 30 "${out}/summaries.txt"
fi

# --- 3. the LLM engine with Gemma 3 270M -----------------------------------------------
step "3: summarize --engine llm with Gemma 3 270M Q4_K_M, cuda then cpu"
gguf="${SVODKA_GEMMA_GGUF:-}"
if [[ -z "$gguf" ]]; then
  for f in "${gpu_dir}"/gguf/*.gguf; do
    [[ -e "$f" ]] && gguf="$f"
  done
fi
if [[ -z "$gguf" && -e "${gpu_dir}/gguf/part-00" ]]; then
  # The GGUF (242 MiB) exceeds one call's carry, so it may come as parts over several.
  gguf="${work}/model.gguf"
  cat "${gpu_dir}"/gguf/part-* >"$gguf"
  want="$(cat "${gpu_dir}/gguf/SHA256" 2>/dev/null)"
  have="$(sha256sum "$gguf" | cut -d' ' -f1)"
  if [[ "$want" != "$have" ]]; then
    fail "GGUF parts joined to sha256 ${have}, expected ${want:-?} (a part missing?)"
    gguf=""
  fi
fi
if skipped 3; then
  :
elif [[ -z "$gguf" ]]; then
  echo "--- skipped: no GGUF carried (scripts/build-cuda.sh --with-gguf; see docs/gpu.md)"
else
  for dev in cuda cpu; do
    if {
      echo "## llm ${dev}"
      timed 240 "$svodka" --device "$dev" -v summarize --engine llm --model "$gguf" \
        tests/fixtures/articles/seed-article.txt
    } >>"${out}/summaries.txt" 2>&1; then ok "llm on ${dev}"; else fail "llm on ${dev}"; fi
  done
  grep -A12 '^## llm' "${out}/summaries.txt"
fi

# --- 4. the parity tests ---------------------------------------------------------------
step "4: parity test binaries"
if ! skipped 4; then
  found=0
  for t in "${work}"/tests/*; do
    [[ -x "$t" ]] || continue
    found=1
    if {
      echo "## $(basename "$t")"
      SVODKA_TEST_DEVICE=cuda SVODKA_GEMMA_GGUF="${gguf:-/nonexistent}" timed 240 "$t" --nocapture
    } >>"${out}/tests.log" 2>&1; then ok "$(basename "$t")"; else fail "$(basename "$t")"; fi
  done
  ((found)) || echo "--- skipped: no test binaries carried (build-cuda.sh without --no-tests)"
  grep -E '^(## |test result|test .*FAILED|skipping|skipped)' "${out}/tests.log"
fi

# --- 5. the Marian benchmark on CUDA ---------------------------------------------------
step "5: Marian benchmark, cuda: batch 64/256, greedy/beam 4, f32/bf16"
if ! skipped 5; then
  if [[ -x "${work}/benches/marian" ]]; then
    for dtype in f32 bf16; do
      for batch in 64 256; do
        echo "## svodka marian ${dtype} batch ${batch}"
        MARIAN_BENCH_DEVICE=cuda MARIAN_BENCH_DTYPE="$dtype" MARIAN_BENCH_BATCH="$batch" \
          timed 150 "${work}/benches/marian" > >(tee -a "${out}/bench.jsonl") 2>&1 ||
          fail "marian bench ${dtype} batch ${batch}"
      done
    done
  else
    echo "--- skipped: no Marian benchmark carried (benches/marian.rs is CPU-only; docs/gpu.md)"
  fi
fi

# --- 6. transformers on the same workload ----------------------------------------------
step "6: transformers Marian, cuda fp32: batch 64/256 greedy, batch 64 beam 4"
if ! skipped 6; then
  PYTHONUNBUFFERED=1 timed 300 python3 scripts/bench_marian_transformers.py --device cuda \
    --dtype float32 --config 64:1 --config 256:1 --config 64:4 2>&1 | tee -a "${out}/bench.jsonl"
  if [[ "${PIPESTATUS[0]}" == 0 ]]; then ok "transformers bench"; else fail "transformers bench"; fi
fi

echo
echo "=== done ($(date -u +%H:%M:%S)): ${#failed[@]} failed step(s)"
for f in "${failed[@]}"; do echo "  - $f"; done
exit "${#failed[@]}"
