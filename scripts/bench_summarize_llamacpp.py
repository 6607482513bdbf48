"""llama.cpp (llama-cpp-python) side of scripts/bench-summarize.sh.

Loads MODEL (timed), evaluates the prompt svodka rendered (its special tokens parsed as
llama.cpp parses them), then generates exactly N tokens greedily from the logits
llama.cpp computed (EOS ignored), as `svodka summarize` generated N tokens. Prints one
JSON line: load, prompt and generation seconds, the prompt token count, and the wall
time inside the process (load to last token).

usage: python bench_summarize_llamacpp.py MODEL.gguf PROMPT_JSON_FILE N THREADS CTX
"""
import json
import sys
import time

t_start = time.perf_counter()
import numpy as np  # noqa: E402
import llama_cpp  # noqa: E402


def main() -> None:
    model, prompt_file, n, threads, ctx = sys.argv[1:6]
    n, threads, ctx = int(n), int(threads), int(ctx)
    prompt = json.load(open(prompt_file, encoding="utf-8"))
    t0 = time.perf_counter()
    llm = llama_cpp.Llama(model_path=model, n_ctx=ctx, n_batch=ctx, n_ubatch=512,
                          n_threads=threads, n_threads_batch=threads, verbose=False)
    load_s = time.perf_counter() - t0
    add_bos = bool(llm._model.add_bos_token())
    ids = llm.tokenize(prompt.encode("utf-8"), add_bos=add_bos, special=True)
    t1 = time.perf_counter()
    llm.eval(ids)
    prompt_s = time.perf_counter() - t1
    t2 = time.perf_counter()
    for _ in range(n):
        logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm._ctx.ctx, -1),
                                       shape=(llm.n_vocab(),))
        llm.eval([int(np.argmax(logits))])
    gen_s = time.perf_counter() - t2
    print(json.dumps({
        "engine": "llama.cpp", "load_s": round(load_s, 3), "prompt_tokens": len(ids),
        "prompt_s": round(prompt_s, 3), "gen_tokens": n, "gen_s": round(gen_s, 3),
        "in_process_s": round(time.perf_counter() - t0, 3),
        "import_s": round(t0 - t_start, 3),
    }), flush=True)


if __name__ == "__main__":
    main()
