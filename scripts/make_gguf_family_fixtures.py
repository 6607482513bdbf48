#!/usr/bin/env python3
"""Build tiny random-weight GGUFs of every family svodka runs and record llama.cpp on them.

For each family (qwen2: q/k/v biases; qwen3: q/k norms and a head size other than
n_embd / n_head; llama: llama-3 rope factors in `rope_freqs.weight`; gemma3: sliding
window 512, q/k and post norms, GELU) the script

1. writes an F32 GGUF with the `gguf` package (llama.cpp's own writer): seeded random
   weights, scaled so the logits spread over a few units and greedy decoding does not
   loop on one token, and a working tokenizer in the metadata: for qwen2/qwen3/llama a
   GPT-2-style byte-level BPE trained with the `tokenizers` package on the shared WMT22
   news under the family's pre-tokenizer regex; for gemma3 the SentencePiece vocabulary
   of the real Gemma 3 270M GGUF, cut to its first ids (control, byte and the most
   frequent pieces) so the file stays small;
2. quantizes it with llama.cpp's own quantizer (`llama_model_quantize`) to Q4_K_M,
   Q5_K_M, Q6_K, Q8_0, Q4_0 and F16;
3. runs each file in llama-cpp-python as tests/gguf_families.rs runs svodka (2 threads,
   n_batch = n_ubatch = 512, logits of every position) on the first sentences of a
   WMT22 article that reach 1,500 tokens (more than two ubatches, past the sliding
   window) and records the two highest logits of every position and 64 greedy tokens.

The real Gemma 3 270M gets the same recording on a 1,600-token prompt (the Russian
article, then its English side).

Output (format: tests/fixtures/gguf-families/README.md):
  tests/fixtures/gguf-families/<family>-<type>.gguf   the quantized models
  tests/fixtures/gguf-families/<family>-<type>.json   llama.cpp's logits and greedy tokens
  tests/fixtures/gguf-families/gemma-3-270m.json      the same for the real Gemma

Setup: .venv-llama as in scripts/make_gguf_fixtures.py, plus `pip install gguf tokenizers`
(versions in scripts/requirements-llama.txt), then
  .venv-llama/bin/python scripts/make_gguf_family_fixtures.py
"""

from __future__ import annotations

import argparse
import os
import ctypes
import hashlib
import json
import math
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import gguf
import llama_cpp
import numpy as np
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

REPO = Path(__file__).resolve().parent.parent
OUT_DIR = REPO / "tests" / "fixtures" / "gguf-families"
DEFAULT_DATA = Path(os.environ.get("SVODKA_SHARED_DATA", REPO.parent / "shared" / "data"))
GEMMA = REPO / ".models" / "gemma-3-270m" / "gemma-3-270m-Q4_K_M.gguf"
# The article every tiny model reads (English side); the real Gemma reads both sides.
ARTICLE = "gazeta.ru.24450.txt"
ARTICLE_EN = REPO / "tests" / "fixtures" / "news-wmt22" / "en" / ARTICLE
ARTICLE_RU = REPO / "tests" / "fixtures" / "news-wmt22" / "ru" / ARTICLE

N_THREADS = 2
N_BATCH = 512
MIN_PROMPT = 1500
# The real Gemma reads the Russian article, then its English side, cut after 1,600 tokens.
REAL_GEMMA_PROMPT = 1600
GREEDY = 64
TOP_K = 2
BPE_VOCAB = 512
GEMMA_VOCAB = 640
# Weight scales (see write_f32_model).
EMB_SCALE = 3.0
QK_GAIN = 4.0
OUT_GAIN = 3.0
POST_NORM = 2.0

# llama_ftype values (llama.h) of the types users meet.
TYPES = {
    "Q4_K_M": 15,
    "Q5_K_M": 17,
    "Q6_K": 18,
    "Q8_0": 7,
    "Q4_0": 2,
    "F16": 1,
}

# llama.cpp's pre-tokenizer regexes (src/llama-vocab.cpp) for the BPE families.
QWEN2_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
LLAMA3_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)


@dataclass
class Dims:
    n_layer: int
    n_embd: int
    n_ff: int
    n_head: int
    n_kv: int
    head_dim: int


@dataclass
class Family:
    name: str
    arch: str
    # K-quant rows are 256-value blocks, so the K-quant files need n_embd, n_ff and
    # n_head × head_dim multiples of 256; F16, Q8_0 and Q4_0 (32-value blocks) run the
    # same code on smaller shapes, which keeps the committed files small.
    kquant: Dims
    small: Dims
    rope_base: float
    tied: bool
    seed: int
    extra: dict = field(default_factory=dict)

    def dims(self, type_name: str) -> Dims:
        return self.kquant if "_K" in type_name else self.small


FAMILIES = [
    # Qwen2.5: biases on q/k/v, NEOX rope, tied embeddings (as the 0.5B-3B models).
    Family("qwen2", "qwen2", Dims(1, 256, 256, 4, 2, 64), Dims(2, 64, 128, 4, 2, 16), 1_000_000.0, True, 1),
    # Qwen3: per-head RMS norms on q and k, a head size other than n_embd / n_head.
    Family("qwen3", "qwen3", Dims(1, 256, 256, 2, 1, 128), Dims(2, 64, 128, 4, 2, 32), 1_000_000.0, False, 2),
    # Llama 3: interleaved (NORM) rope with the llama-3 frequency factors.
    Family("llama", "llama", Dims(1, 256, 256, 4, 1, 64), Dims(2, 64, 128, 4, 1, 16), 500_000.0, False, 3),
    # Gemma 3: a 512 window on every layer but each `pattern`-th, its own rope base.
    Family(
        "gemma3",
        "gemma3",
        Dims(1, 256, 256, 2, 1, 128),
        Dims(2, 64, 128, 2, 1, 32),
        1_000_000.0,
        # Untied (llama.cpp reads `output.weight` when present): a tied random Gemma
        # just repeats one token; the real Gemma test covers the tied path.
        False,
        5,
        {"window": 512, "pattern": 2, "rope_base_swa": 20_000.0},
    ),
]


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ---------------------------------------------------------------- tokenizers


def training_texts(data: Path) -> list[str]:
    texts = []
    for path in sorted((data / "news-wmt22").glob("*/*.txt")):
        texts.append(path.read_text(encoding="utf-8"))
    for path in sorted((data / "wmt22").glob("generaltest2022.*")):
        texts.extend(line for line in path.read_text(encoding="utf-8").split("\n")[:400] if line.strip())
    return texts


def train_bpe(texts: list[str], regex: str, specials: list[str]) -> Tokenizer:
    """A byte-level BPE with all 256 byte tokens, split first by the family's regex."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(regex), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=BPE_VOCAB,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer)
    return tok


def add_bpe_tokenizer(w: gguf.GGUFWriter, fam: Family, texts: list[str]) -> None:
    if fam.arch == "llama":
        regex, pre = LLAMA3_REGEX, "llama-bpe"
        specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>"]
        bos, eos, add_bos = 0, 1, True
    else:
        regex, pre = QWEN2_REGEX, "qwen2"
        specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
        bos, eos, add_bos = 0, 0, False
    tok = train_bpe(texts, regex, specials)
    data = json.loads(tok.to_str())
    vocab = data["model"]["vocab"]
    tokens = [t for t, _ in sorted(vocab.items(), key=lambda kv: kv[1])]
    assert [vocab[t] for t in tokens] == list(range(len(tokens)))
    merges = [m if isinstance(m, str) else " ".join(m) for m in data["model"]["merges"]]
    types = [3 if t in specials else 1 for t in tokens]
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre(pre)
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_bos_token_id(bos)
    w.add_eos_token_id(eos)
    w.add_add_bos_token(add_bos)


def add_gemma_tokenizer(w: gguf.GGUFWriter, gemma: Path) -> int:
    """The real Gemma 3 vocabulary cut to its first GEMMA_VOCAB ids."""
    r = gguf.GGUFReader(gemma)
    tokens = r.fields["tokenizer.ggml.tokens"].contents()[:GEMMA_VOCAB]
    scores = r.fields["tokenizer.ggml.scores"].contents()[:GEMMA_VOCAB]
    types = r.fields["tokenizer.ggml.token_type"].contents()[:GEMMA_VOCAB]
    w.add_tokenizer_model("llama")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    for key in ("bos_token_id", "eos_token_id", "unknown_token_id", "padding_token_id"):
        value = int(r.fields[f"tokenizer.ggml.{key}"].contents())
        assert value < GEMMA_VOCAB
        w.add_uint32(f"tokenizer.ggml.{key}", value)
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)
    w.add_add_space_prefix(False)
    return len(tokens)


# ---------------------------------------------------------------- weights


def llama3_rope_factors(base: float, dim: int) -> np.ndarray:
    """convert_hf_to_gguf.py's `rope_freqs` for Llama 3.1's rope scaling (factor 8)."""
    factor, low, high, old_ctx = 8.0, 1.0, 4.0, 8192
    low_wavelen, high_wavelen = old_ctx / low, old_ctx / high
    out = []
    for i in range(0, dim, 2):
        freq = 1.0 / (base ** (i / dim))
        wavelen = 2 * math.pi / freq
        if wavelen < high_wavelen:
            out.append(1.0)
        elif wavelen > low_wavelen:
            out.append(factor)
        else:
            smooth = (old_ctx / wavelen - low) / (high - low)
            out.append(1.0 / ((1 - smooth) / factor + smooth))
    return np.array(out, dtype=np.float32)


def write_f32_model(fam: Family, dims: Dims, path: Path, texts: list[str], gemma: Path) -> None:
    rng = np.random.default_rng(fam.seed)
    w = gguf.GGUFWriter(str(path), fam.arch)
    w.add_name(f"svodka tiny {fam.name}")
    w.add_file_type(0)
    if fam.arch == "gemma3":
        n_vocab = add_gemma_tokenizer(w, gemma)
    else:
        add_bpe_tokenizer(w, fam, texts)
        n_vocab = BPE_VOCAB
    a = fam.arch
    w.add_context_length(8192)
    w.add_embedding_length(dims.n_embd)
    w.add_block_count(dims.n_layer)
    w.add_feed_forward_length(dims.n_ff)
    w.add_head_count(dims.n_head)
    w.add_head_count_kv(dims.n_kv)
    w.add_key_length(dims.head_dim)
    w.add_value_length(dims.head_dim)
    w.add_rope_dimension_count(dims.head_dim)
    w.add_rope_freq_base(fam.rope_base)
    w.add_layer_norm_rms_eps(1e-6)
    if "window" in fam.extra:
        w.add_uint32(f"{a}.attention.sliding_window", fam.extra["window"])
        w.add_uint32(f"{a}.attention.sliding_window_pattern", fam.extra["pattern"])
        w.add_float32(f"{a}.rope.freq_base_swa", fam.extra["rope_base_swa"])

    def t(name: str, shape: tuple[int, ...], scale: float, mean: float = 0.0) -> None:
        data = (mean + scale * rng.standard_normal(shape)).astype(np.float32)
        w.add_tensor(name, data)

    d, hd, ff = dims.n_embd, dims.head_dim, dims.n_ff
    # Scales chosen so the model behaves like a trained one where the test needs it:
    # logits spread by a few units (a clear top-1 at most positions, near-ties at some),
    # and a residual stream dominated by attention and the FFN rather than by the input
    # embedding, so the next token depends on the context (with tied embeddings and a
    # dominant embedding, a random model just repeats its input token).
    emb = EMB_SCALE / math.sqrt(d)
    t("token_embd.weight", (n_vocab, d), emb)
    if not fam.tied:
        t("output.weight", (n_vocab, d), emb)
    t("output_norm.weight", (d,), 0.1, 1.0)
    if fam.arch == "llama":
        w.add_tensor("rope_freqs.weight", llama3_rope_factors(fam.rope_base, hd))
    post = POST_NORM if fam.arch == "gemma3" else 1.0
    for il in range(dims.n_layer):
        p = f"blk.{il}"
        t(f"{p}.attn_norm.weight", (d,), 0.1, 1.0)
        # Queries and keys larger than 1/sqrt(d) so attention is peaked, not uniform.
        t(f"{p}.attn_q.weight", (dims.n_head * hd, d), QK_GAIN / math.sqrt(d))
        t(f"{p}.attn_k.weight", (dims.n_kv * hd, d), QK_GAIN / math.sqrt(d))
        t(f"{p}.attn_v.weight", (dims.n_kv * hd, d), 1.0 / math.sqrt(d))
        t(f"{p}.attn_output.weight", (d, dims.n_head * hd), OUT_GAIN / math.sqrt(dims.n_head * hd))
        if fam.arch == "qwen2":
            t(f"{p}.attn_q.bias", (dims.n_head * hd,), 0.5)
            t(f"{p}.attn_k.bias", (dims.n_kv * hd,), 0.5)
            t(f"{p}.attn_v.bias", (dims.n_kv * hd,), 0.2)
        if fam.arch in ("qwen3", "gemma3"):
            t(f"{p}.attn_q_norm.weight", (hd,), 0.2, 1.0)
            t(f"{p}.attn_k_norm.weight", (hd,), 0.2, 1.0)
        if fam.arch == "gemma3":
            t(f"{p}.post_attention_norm.weight", (d,), 0.1 * post, post)
            t(f"{p}.post_ffw_norm.weight", (d,), 0.1 * post, post)
        t(f"{p}.ffn_norm.weight", (d,), 0.1, 1.0)
        t(f"{p}.ffn_gate.weight", (ff, d), 1.0 / math.sqrt(d))
        t(f"{p}.ffn_up.weight", (ff, d), 1.0 / math.sqrt(d))
        t(f"{p}.ffn_down.weight", (d, ff), OUT_GAIN / math.sqrt(ff))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def quantize(src: Path, dst: Path, ftype: int) -> None:
    params = llama_cpp.llama_model_quantize_default_params()
    params.nthread = 1
    params.ftype = ftype
    rc = llama_cpp.llama_model_quantize(str(src).encode(), str(dst).encode(), ctypes.byref(params))
    if rc != 0:
        sys.exit(f"llama_model_quantize({dst.name}) failed: {rc}")


# ---------------------------------------------------------------- recording


def open_llama(path: Path, n_ctx: int) -> llama_cpp.Llama:
    return llama_cpp.Llama(
        model_path=str(path),
        n_ctx=n_ctx,
        n_batch=N_BATCH,
        n_ubatch=N_BATCH,
        n_threads=N_THREADS,
        n_threads_batch=N_THREADS,
        logits_all=True,
        seed=0,
        verbose=False,
    )


def prompt_text(llm: llama_cpp.Llama, articles: list[Path], min_tokens: int) -> str:
    """The articles' first sentences, as many as reach `min_tokens`."""
    text = "\n\n".join(a.read_text(encoding="utf-8").strip() for a in articles)
    # Cut after a sentence end (". " or a line break) once the tokens suffice.
    ends = [i + 1 for i, c in enumerate(text) if c in ".\n" and (i + 1 == len(text) or text[i + 1] in " \n")]
    lo, hi = 0, len(ends) - 1
    if len(llm.tokenize(text.encode(), add_bos=True, special=False)) < min_tokens:
        sys.exit(f"{articles}: fewer than {min_tokens} tokens")
    while lo < hi:
        mid = (lo + hi) // 2
        if len(llm.tokenize(text[: ends[mid]].encode(), add_bos=True, special=False)) >= min_tokens:
            hi = mid
        else:
            lo = mid + 1
    return text[: ends[lo]]


def top_rows(scores: np.ndarray) -> tuple[list[list[int]], list[list[float]]]:
    ids, logits = [], []
    for row in scores:
        top = np.argsort(-row, kind="stable")[:TOP_K]
        ids.append([int(i) for i in top])
        logits.append([round(float(row[i]), 4) for i in top])
    return ids, logits


def record(path: Path, articles: list[Path], min_tokens: int) -> dict:
    probe = open_llama(path, 512)
    text = prompt_text(probe, articles, min_tokens)
    ids = [int(i) for i in probe.tokenize(text.encode(), add_bos=True, special=False)]
    add_bos = bool(probe._model.add_bos_token())
    if not add_bos:
        ids = [int(i) for i in probe.tokenize(text.encode(), add_bos=False, special=False)]
    del probe
    n_ctx = (len(ids) + GREEDY + 255) // 256 * 256
    llm = open_llama(path, n_ctx)
    llm.reset()
    llm.eval(ids)
    scores = np.array(llm.scores[: llm.n_tokens], copy=True)
    top_ids, top_logits = top_rows(scores)
    margins = [row[0] - row[1] for row in top_logits]
    generated = []
    next_id = int(np.argmax(scores[-1]))
    for _ in range(GREEDY):
        generated.append(next_id)
        llm.eval([next_id])
        next_id = int(np.argmax(llm.scores[llm.n_tokens - 1]))
    distinct_top1 = len({row[0] for row in top_ids})
    # A constant top-1 or a one-token greedy loop would let a broken engine pass.
    if distinct_top1 < 20 or len(set(generated)) < 8:
        sys.exit(f"{path.name}: degenerate outputs; change the family's seed or weight scales")
    print(
        f"  {path.name}: {len(ids)} prompt tokens, {distinct_top1} distinct top-1, "
        f"min margin {min(margins):.4f}, greedy {len(set(generated))} distinct: {generated[:16]}..."
    )
    return {
        "meta": {
            "llama_cpp_python": llama_cpp.__version__,
            "model": path.name,
            "model_sha256": sha256_file(path),
            "n_ctx": n_ctx,
            "n_batch": N_BATCH,
            "n_ubatch": N_BATCH,
            "n_threads": N_THREADS,
            "top_k": TOP_K,
        },
        "articles": [str(a.relative_to(REPO)) for a in articles],
        "text": text,
        "ids": ids,
        "top_ids": top_ids,
        "top_logits": top_logits,
        "greedy": generated,
    }


def write_json(path: Path, value: dict) -> None:
    path.write_text(json.dumps(value, ensure_ascii=False, separators=(",", ":")) + "\n", encoding="utf-8")
    print(f"wrote {path.relative_to(REPO)} ({path.stat().st_size} bytes)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="shared data folder")
    parser.add_argument("--gemma", type=Path, default=GEMMA, help="the real Gemma 3 270M GGUF")
    parser.add_argument("--only", nargs="*", help="families to build (default: all)")
    parser.add_argument("--no-real-gemma", action="store_true", help="skip the real Gemma recording")
    args = parser.parse_args()
    if not args.gemma.is_file():
        sys.exit(f"{args.gemma} not found; run scripts/fetch-gemma.sh")
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    texts = training_texts(args.data)
    with tempfile.TemporaryDirectory() as tmp:
        for fam in FAMILIES:
            if args.only and fam.name not in args.only:
                continue
            print(f"{fam.name}:")
            bases = {}
            for tname, ftype in TYPES.items():
                dims = fam.dims(tname)
                key = (dims.n_embd, dims.n_layer)
                if key not in bases:
                    bases[key] = Path(tmp) / f"{fam.name}-{dims.n_embd}-F32.gguf"
                    write_f32_model(fam, dims, bases[key], texts, args.gemma)
                base = bases[key]
                out = OUT_DIR / f"{fam.name}-{tname}.gguf"
                quantize(base, out, ftype)
                write_json(OUT_DIR / f"{fam.name}-{tname}.json", record(out, [ARTICLE_EN], MIN_PROMPT))
    if not args.no_real_gemma:
        print("gemma-3-270m:")
        write_json(OUT_DIR / "gemma-3-270m.json", record(args.gemma, [ARTICLE_RU, ARTICLE_EN], REAL_GEMMA_PROMPT))


if __name__ == "__main__":
    main()
