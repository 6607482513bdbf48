"""llama.cpp (llama-cpp-python) side of scripts/bench-llm.sh.

Same measurement as benches/llm.rs: the prompt evaluated in one batch (prompt tokens/s),
then GEN tokens chosen greedily and fed back one at a time (generated tokens/s), EOS
ignored. The greedy choice reads the logits llama.cpp computed for the last token
(`llama_get_logits_ith(ctx, -1)`): without `logits_all`, llama-cpp-python leaves
`Llama.scores` at zero. One JSON line per repetition, with the generated token ids.

usage: python bench_llm_llamacpp.py MODEL.gguf PROMPT_FILE GEN REPEATS THREADS [CTX]
"""
import json
import sys
import time

import numpy as np
import llama_cpp
from llama_cpp import Llama


def last_logits(llm: Llama) -> np.ndarray:
    ptr = llama_cpp.llama_get_logits_ith(llm._ctx.ctx, -1)
    return np.ctypeslib.as_array(ptr, shape=(llm.n_vocab(),))


def main() -> None:
    model, prompt_file, gen, repeats, threads = sys.argv[1:6]
    ctx = int(sys.argv[6]) if len(sys.argv) > 6 else 4096
    gen, repeats, threads = int(gen), int(repeats), int(threads)
    prompt = open(prompt_file, encoding="utf-8").read()
    t = time.perf_counter()
    llm = Llama(model_path=model, n_ctx=ctx, n_batch=ctx, n_ubatch=512,
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
        tokens = []
        for _ in range(gen):
            nxt = int(np.argmax(last_logits(llm)))
            tokens.append(nxt)
            llm.eval([nxt])
        gen_s = time.perf_counter() - t1
        print(json.dumps({
            "engine": "llama.cpp", "repeat": r, "prompt_tokens": len(ids),
            "prompt_tok_s": round(len(ids) / prompt_s, 1), "gen_tokens": gen,
            "gen_tok_s": round(gen / gen_s, 1), "load_s": round(load_s, 2),
            "wall_s": round(time.perf_counter() - wall, 2), "tokens": tokens,
        }), flush=True)


if __name__ == "__main__":
    main()
