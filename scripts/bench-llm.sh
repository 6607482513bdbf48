#!/usr/bin/env bash
# Prompt and generation throughput: svodka's GGUF engine beside llama.cpp
# (llama-cpp-python) on the same GGUF, prompt, token counts and threads, interleaved in
# one run. Needs scripts/fetch-gemma.sh's model and the .venv-llama of
# scripts/make_gguf_fixtures.py (requirements-llama.txt).
#
# usage: scripts/bench-llm.sh [ROUNDS] [GEN_TOKENS] [THREADS]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${1:-3}"; gen="${2:-128}"; threads="${3:-2}"
model="${SVODKA_GEMMA_GGUF:-.models/gemma-3-270m/gemma-3-270m-Q4_K_M.gguf}"
[[ -f "$model" ]] || { echo "bench-llm: $model missing; run scripts/fetch-gemma.sh" >&2; exit 1; }
py="${PYTHON_LLAMA:-.venv-llama/bin/python}"
prompt="$(mktemp)"; trap 'rm -f "$prompt"' EXIT
# The seed article and a TL;DR cue: about 780 prompt tokens for Gemma 3.
{ cat tests/fixtures/articles/seed-article.txt; printf '\n\nTL;DR:'; } > "$prompt"

cargo build --release --bench llm >/dev/null 2>&1 || cargo bench --bench llm --no-run
bin="$(ls -t target/release/deps/llm-* | grep -v '\.d$' | head -1)"
for r in $(seq "$rounds"); do
  RAYON_NUM_THREADS="$threads" "$bin" "$model" "$prompt" "$gen" 1
  "$py" scripts/bench_llm_llamacpp.py "$model" "$prompt" "$gen" 1 "$threads"
done
