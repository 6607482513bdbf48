#!/usr/bin/env bash
# Make a CUDA 13.0 toolkit for building svodka with `--features cuda` on a machine with
# no GPU and no system CUDA, from PyPI wheels alone.
#
# - The toolkit wheels are pinned to 13.0.x: the GPU machine's driver (580) speaks
#   CUDA 13.0, cannot JIT the PTX of newer nvcc releases, and cudarc 0.19.10 (candle
#   0.11.1) only knows nvcc 13.0–13.4.
# - The wheels unpack under site-packages/nvidia/cu13/{bin,include,lib,nvvm}; a folder of
#   symlinks (bin, include, nvvm, lib64 with unversioned .so links) serves as CUDA_HOME.
# - libcuda.so belongs to the driver and is in no wheel, yet candle links cudarc with
#   `dynamic-linking`. We compile a link-time stub with soname libcuda.so.1 that defines
#   every cu* function cudarc's driver bindings declare (each returns 100,
#   CUDA_ERROR_NO_DEVICE) and put it in lib64/stubs. It is only for the linker: never
#   carry it to the GPU machine, whose driver supplies the real libcuda.so.1.
#
# usage: scripts/setup-cuda.sh            (idempotent; prints the env to export)
# env:   SVODKA_CUDA_VENV  venv folder (default <repo>/.venv-cuda, git-ignored)
#        PYTHON            python for the venv (default python3)
# Output: <venv>/cuda (CUDA_HOME) and <venv>/cuda/env.sh (the exports, for `source`).
set -euo pipefail

readonly WHEELS=(
  "nvidia-cuda-nvcc==13.0.88"
  "nvidia-cuda-crt==13.0.88"
  "nvidia-cuda-runtime==13.0.96"
  "nvidia-cuda-cccl==13.0.85"
  "nvidia-nvvm==13.0.88"
  "nvidia-cuda-nvrtc==13.0.88"
  "nvidia-curand==10.4.0.35"
  "nvidia-cublas==13.0.0.19"
)
# candle-kernels targets this compute capability when no GPU is visible (H100/H200: 90).
readonly COMPUTE_CAP="${CUDA_COMPUTE_CAP:-90}"

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${SVODKA_CUDA_VENV:-${repo_root}/.venv-cuda}"
cuda_home="${venv}/cuda"
python="${PYTHON:-python3}"

die() {
  echo "setup-cuda: error: $*" >&2
  exit 1
}
log() { echo "setup-cuda: $*" >&2; }

[[ "$(uname -m)" == "x86_64" ]] || die "the CUDA wheels and the GPU machine are x86_64; this is $(uname -m)"
command -v "$python" >/dev/null || die "$python not found"
command -v cc >/dev/null || die "a C compiler (cc) is needed for the libcuda stub and as nvcc's host compiler"

# --- 1. the wheels ---------------------------------------------------------------------
if [[ ! -x "${venv}/bin/python" ]]; then
  log "creating venv ${venv}"
  "$python" -m venv "$venv"
fi
vpy="${venv}/bin/python"
missing=0
for spec in "${WHEELS[@]}"; do
  name="${spec%%==*}"
  want="${spec##*==}"
  have="$("$vpy" -m pip show "$name" 2>/dev/null | sed -n 's/^Version: //p' || true)"
  [[ "$have" == "$want" ]] || missing=1
done
if ((missing)); then
  log "installing ${#WHEELS[@]} pinned CUDA 13.0 wheels (about 1.2 GB)"
  "$vpy" -m pip install --disable-pip-version-check --no-cache-dir -q "${WHEELS[@]}"
else
  log "pinned wheels already installed"
fi

site="$("$vpy" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
cu13="${site}/nvidia/cu13"
for sub in bin include lib nvvm; do
  [[ -d "${cu13}/${sub}" ]] || die "${cu13}/${sub} missing after install; the wheel layout changed?"
done
[[ -x "${cu13}/bin/nvcc" ]] || die "nvcc missing in ${cu13}/bin"

# --- 2. the CUDA_HOME folder of symlinks -----------------------------------------------
mkdir -p "${cuda_home}/lib64/stubs"
for sub in bin include nvvm; do
  ln -sfn "${cu13}/${sub}" "${cuda_home}/${sub}"
done
# lib64: every library under its own name, plus the unversioned name the linker asks for
# (-lcublas finds libcublas.so), pointing at the newest versioned file of that library.
find "${cuda_home}/lib64" -maxdepth 1 -type l -delete
for f in "${cu13}"/lib/lib*.so*; do
  [[ -e "$f" ]] || continue
  base="$(basename "$f")"
  ln -sfn "$f" "${cuda_home}/lib64/${base}"
  unversioned="${base%%.so*}.so"
  if [[ "$base" != "$unversioned" ]]; then
    ln -sfn "$f" "${cuda_home}/lib64/${unversioned}"
  fi
done
for lib in cublas cublasLt curand cudart nvrtc; do
  [[ -e "${cuda_home}/lib64/lib${lib}.so" ]] || die "lib${lib}.so missing from ${cu13}/lib"
done

# --- 3. the libcuda.so.1 link stub -----------------------------------------------------
cudarc_version="$(awk '/^name = "cudarc"$/ { getline; gsub(/[^0-9.]/, "", $0); print; exit }' "${repo_root}/Cargo.lock")"
[[ -n "$cudarc_version" ]] || die "cudarc not found in Cargo.lock"
cargo_home="${CARGO_HOME:-${HOME}/.cargo}"
# The driver bindings of the cudarc in Cargo.lock, in cargo's registry sources.
find_sys_rs() {
  local f
  for f in "${cargo_home}"/registry/src/*/"cudarc-${cudarc_version}"/src/driver/sys/mod.rs; do
    [[ -f "$f" ]] && echo "$f" && return
  done
  return 0
}
sys_rs="$(find_sys_rs)"
if [[ -z "$sys_rs" ]]; then
  log "fetching crate sources (cudarc ${cudarc_version} is not unpacked yet)"
  (cd "$repo_root" && cargo fetch --quiet)
  sys_rs="$(find_sys_rs)"
fi
[[ -n "$sys_rs" ]] || die "cudarc-${cudarc_version}/src/driver/sys/mod.rs not found under ${cargo_home}/registry/src"

stub_dir="${repo_root}/scripts/cuda-stub"
stub_src="${cuda_home}/lib64/stubs/libcuda-stub.c"
stub_so="${cuda_home}/lib64/stubs/libcuda.so.1"
# The generated C file is rebuilt whenever the bindings (cudarc version) change.
{
  cat "${stub_dir}/libcuda-stub.h"
  printf '/* generated from %s */\n' "cudarc-${cudarc_version}/src/driver/sys/mod.rs"
  grep -oE '^pub unsafe fn cu[A-Za-z0-9_]+' "$sys_rs" | sed 's/^pub unsafe fn //' | sort -u |
    sed 's/.*/STUB(&)/'
} >"${stub_src}.new"
symbols="$(grep -c '^STUB(' "${stub_src}.new")"
((symbols > 100)) || die "only ${symbols} cu* functions found in ${sys_rs}; the bindings' layout changed?"
if [[ ! -f "$stub_so" ]] || ! cmp -s "${stub_src}.new" "$stub_src"; then
  mv "${stub_src}.new" "$stub_src"
  log "compiling libcuda.so.1 stub with ${symbols} symbols (cudarc ${cudarc_version})"
  cc -shared -fPIC -O1 -Wl,-soname,libcuda.so.1 -o "$stub_so" "$stub_src"
else
  rm -f "${stub_src}.new"
  log "libcuda.so.1 stub up to date (${symbols} symbols)"
fi
ln -sfn libcuda.so.1 "${cuda_home}/lib64/stubs/libcuda.so"

# --- 4. check and print the environment ------------------------------------------------
nvcc_release="$("${cuda_home}/bin/nvcc" --version | sed -n 's/.*release \([0-9.]*\),.*/\1/p')"
[[ "$nvcc_release" == "13.0" ]] || die "nvcc reports release '${nvcc_release}', expected 13.0"

cat >"${cuda_home}/env.sh" <<EOF
# Source this to build svodka with --features cuda (written by scripts/setup-cuda.sh).
export CUDA_HOME="${cuda_home}"
export CUDA_ROOT="${cuda_home}"
export PATH="${cuda_home}/bin:\${PATH}"
export CUDARC_CUDA_VERSION=13000
export CUDA_COMPUTE_CAP=${COMPUTE_CAP}
EOF
log "ready: nvcc ${nvcc_release}, CUDA_HOME=${cuda_home}"
cat "${cuda_home}/env.sh"
