#!/usr/bin/env bash
# End to end: `svodka summarize --model GGUF` on one article against llama.cpp
# (llama-cpp-python) given the identical prompt (svodka renders it; `--verbose` prints
# it) and asked for the same number of generated tokens, interleaved, same threads.
# Prints the wall time of each process, and the load, prompt and generation times
# each engine reports.
#
# usage: scripts/bench-summarize.sh [ROUNDS] [THREADS]
#   MODEL=path.gguf   (default: Gemma 3 270M Q4_K_M)
#   ARTICLE=file.txt  (default: tests/fixtures/news-wmt22/en/gazeta.ru.24450.txt)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${1:-3}"; threads="${2:-2}"
model="${MODEL:-.models/gemma-3-270m/gemma-3-270m-Q4_K_M.gguf}"
article="${ARTICLE:-tests/fixtures/news-wmt22/en/gazeta.ru.24450.txt}"
py="${PYTHON_LLAMA:-.venv-llama/bin/python}"
ctx=4096
for f in "$model" "$article"; do
  [[ -f "$f" ]] || { echo "bench-summarize: $f missing" >&2; exit 1; }
done
cargo build --release --bin svodka >/dev/null 2>&1 || cargo build --release --bin svodka
svodka=target/release/svodka
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
now() { date +%s.%N; }
echo "model $model, article $article ($(wc -w < "$article") words), $threads threads, $(date -u +%FT%TZ)"
for r in $(seq "$rounds"); do
  t0=$(now)
  # A random-weight model (scripts/make_gguf_fullsize.py) may end its turn at once; the
  # times are still the times, so only that refusal is let through.
  "$svodka" --threads "$threads" --verbose summarize --engine llm --model "$model" \
    --context "$ctx" "$article" > "$tmp/summary.txt" 2> "$tmp/err.txt" \
    || grep -q 'the model wrote an empty summary' "$tmp/err.txt" \
    || { cat "$tmp/err.txt" >&2; exit 1; }
  t1=$(now)
  # The rendered prompt (a JSON string) and the generated token count (a loop cut
  # keeps fewer, but the time covers all of them).
  sed -n 's/^svodka: rendered prompt: //p' "$tmp/err.txt" > "$tmp/prompt.json"
  [[ $(wc -l < "$tmp/prompt.json") == 1 ]] \
    || { echo "bench-summarize: expected one prompt (map-reduce?)" >&2; cat "$tmp/err.txt" >&2; exit 1; }
  load=$(sed -n 's/.*loaded in \([0-9.]*\) s.*/\1/p' "$tmp/err.txt")
  read -r ptok psec ntok gsec < <(sed -n \
    's/^svodka: prompt \([0-9]*\) tokens in \([0-9.]*\) s, \([0-9]*\) tokens generated in \([0-9.]*\) s.*/\1 \2 \3 \4/p' \
    "$tmp/err.txt")
  t2=$(now)
  "$py" scripts/bench_summarize_llamacpp.py "$model" "$tmp/prompt.json" "$ntok" "$threads" "$ctx" \
    > "$tmp/llama.json"
  t3=$(now)
  "$py" - "$tmp/llama.json" "$r" "$(echo "$t1 - $t0" | bc)" "$(echo "$t3 - $t2" | bc)" \
    "$load" "$ptok" "$psec" "$ntok" "$gsec" <<'PY'
import json, sys
l = json.load(open(sys.argv[1]))
r, sw, lw, load, ptok, psec, ntok, gsec = sys.argv[2:10]
print(f"round {r}: svodka wall {float(sw):.2f} s (load {float(load):.2f}, prompt {ptok} tokens "
      f"{float(psec):.2f}, {ntok} tokens {float(gsec):.2f}) | llama.cpp wall {float(lw):.2f} s "
      f"(python import {l['import_s']:.2f}, load {l['load_s']:.2f}, prompt {l['prompt_tokens']} "
      f"tokens {l['prompt_s']:.2f}, {l['gen_tokens']} tokens {l['gen_s']:.2f}) | "
      f"svodka/llama.cpp wall {float(sw) / float(lw):.2f}, without python import "
      f"{float(sw) / (float(lw) - l['import_s']):.2f}")
PY
done
