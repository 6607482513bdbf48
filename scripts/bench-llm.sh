#!/usr/bin/env bash
# Prompt and generation throughput: svodka's GGUF engine beside llama.cpp
# (llama-cpp-python) on the same GGUF, prompt, token counts and threads, interleaved in
# one run; then whether the two engines generated the same greedy tokens. Needs a GGUF
# (default: scripts/fetch-gemma.sh's model) and the .venv-llama of
# scripts/make_gguf_fixtures.py (requirements-llama.txt).
#
# usage: scripts/bench-llm.sh [ROUNDS] [GEN_TOKENS] [THREADS]
#   MODEL=path.gguf    the model (default: Gemma 3 270M Q4_K_M)
#   PROMPT=file.txt    the prompt (default: the seed article + "\n\nTL;DR:")
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${1:-3}"; gen="${2:-128}"; threads="${3:-2}"
model="${MODEL:-${SVODKA_GEMMA_GGUF:-.models/gemma-3-270m/gemma-3-270m-Q4_K_M.gguf}}"
[[ -f "$model" ]] || { echo "bench-llm: $model missing; run scripts/fetch-gemma.sh" >&2; exit 1; }
py="${PYTHON_LLAMA:-.venv-llama/bin/python}"
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
prompt="${PROMPT:-}"
if [[ -z "$prompt" ]]; then
  # The seed article and a TL;DR cue: about 780 prompt tokens for Gemma 3.
  prompt="$tmp/prompt.txt"
  { cat tests/fixtures/articles/seed-article.txt; printf '\n\nTL;DR:'; } > "$prompt"
fi

cargo build --release --bench llm >/dev/null 2>&1 || cargo bench --bench llm --no-run
bin="$(ls -t target/release/deps/llm-* | grep -v '\.d$' | head -1)"
echo "model $model, prompt $prompt, $gen generated tokens, $threads threads, $(date -u +%FT%TZ)"
for r in $(seq "$rounds"); do
  RAYON_NUM_THREADS="$threads" "$bin" "$model" "$prompt" "$gen" 1 | tee -a "$tmp/out.jsonl"
  "$py" scripts/bench_llm_llamacpp.py "$model" "$prompt" "$gen" 1 "$threads" \
    | tee -a "$tmp/out.jsonl"
done
# Greedy tokens of the two engines, compared run by run (they see the same prompt ids
# only if the tokenizers agree: the prompt token counts are printed too).
"$py" - "$tmp/out.jsonl" <<'PY'
import json, sys
runs = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
by = {}
for r in runs:
    by.setdefault(r["engine"], []).append(r)
s, l = by["svodka"], by["llama.cpp"]
med = lambda xs: sorted(xs)[len(xs) // 2]
for key in ("prompt_tok_s", "gen_tok_s", "load_s"):
    a, b = med([r[key] for r in s]), med([r[key] for r in l])
    print(f"{key}: svodka {a} / llama.cpp {b} = {a / b:.2f}x (medians)")
print(f"prompt tokens: svodka {s[0]['prompt_tokens']}, llama.cpp {l[0]['prompt_tokens']}")
for i, (x, y) in enumerate(zip(s, l)):
    tx, ty = x["tokens"], y["tokens"]
    same = next((j for j, (p, q) in enumerate(zip(tx, ty)) if p != q), None)
    if same is None and len(tx) == len(ty):
        print(f"round {i + 1}: generated tokens identical ({len(tx)} of {len(ty)})")
    else:
        j = same if same is not None else min(len(tx), len(ty))
        print(f"round {i + 1}: generated tokens differ from position {j}: "
              f"svodka {tx[j:j + 5]} vs llama.cpp {ty[j:j + 5]}")
PY
