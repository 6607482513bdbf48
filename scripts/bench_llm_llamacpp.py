"""llama.cpp (llama-cpp-python) side of scripts/bench-llm.sh.

Same measurement as benches/llm.rs: the prompt evaluated in one batch (prompt tokens/s),
then GEN tokens chosen greedily from the raw logits and fed back one at a time (generated
tokens/s), EOS ignored. One JSON line per repetition.

usage: python bench_llm_llamacpp.py MODEL.gguf PROMPT_FILE GEN REPEATS THREADS
"""
import json
import sys
import time

import numpy as np
from llama_cpp import Llama


def main() -> None:
    model, prompt_file, gen, repeats, threads = sys.argv[1:6]
    gen, repeats, threads = int(gen), int(repeats), int(threads)
    prompt = open(prompt_file, encoding="utf-8").read()
    t = time.perf_counter()
    llm = Llama(model_path=model, n_ctx=2048, n_batch=2048, n_ubatch=512,
                n_threads=threads, n_threads_batch=threads, verbose=False)
    load_s = time.perf_counter() - t
    ids = llm.tokenize(prompt.encode("utf-8"), add_bos=True, special=True)
    for r in range(repeats):
        wall = time.perf_counter()
        llm.reset()
        t0 = time.perf_counter()
        llm.eval(ids)
        prompt_s = time.perf_counter() - t0
        t1 = time.perf_counter()
        for _ in range(gen):
            nxt = int(np.argmax(llm.scores[llm.n_tokens - 1]))
            llm.eval([nxt])
        gen_s = time.perf_counter() - t1
        print(json.dumps({
            "engine": "llama.cpp", "repeat": r, "prompt_tokens": len(ids),
            "prompt_tok_s": round(len(ids) / prompt_s, 1), "gen_tokens": gen,
            "gen_tok_s": round(gen / gen_s, 1), "load_s": round(load_s, 2),
            "wall_s": round(time.perf_counter() - wall, 2),
        }), flush=True)


if __name__ == "__main__":
    main()
