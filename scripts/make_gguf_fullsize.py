#!/usr/bin/env python3
"""Build a random-weight GGUF with Qwen2.5 1.5B Instruct's exact shape, for benchmarks.

svodka's default summarizer is Qwen2.5 1.5B Instruct in Q4_K_M; its cost on the CPU is
set by its shape and quantization types, not by its weights. This script writes the
shape with the `gguf` package (llama.cpp's own writer) as an F16 GGUF of seeded random
weights and has llama.cpp's own quantizer (`llama_model_quantize` through
llama-cpp-python) turn it into Q4_K_M, so every tensor gets the type llama.cpp gives
the real model's tensors (Q4_K, Q6_K for half the attn_v/ffn_down and the tied
embeddings, f32 norms and biases).

Shape (Qwen2.5-1.5B-Instruct config.json): hidden 1536, 28 layers, 12 heads, 2 KV
heads (head size 128), FFN 8960, vocabulary 151,936, biases on q/k/v, tied
embeddings, rope base 1e6, RMS eps 1e-6, context 32,768.

The tokenizer is a GPT-2-style byte-level BPE trained with the `tokenizers` package on
the shared WMT22 news under Qwen2's pre-tokenizer regex, padded with unused tokens to
the real vocabulary size, with ChatML special tokens and a ChatML chat template: text
tokenizes to a realistic number of tokens, and the output projection has the real
width.

The result (~1 GB) is not committed. Default output: .models/qwen2.5-1.5b-shape/
qwen2.5-1.5b-shape-Q4_K_M.gguf; the F16 intermediate (~3.5 GB) is written to a
temporary folder and removed.

usage: .venv-llama/bin/python scripts/make_gguf_fullsize.py [--out PATH] [--data DIR]
"""

from __future__ import annotations

import argparse
import os
import ctypes
import json
import sys
import tempfile
from pathlib import Path

import gguf
import llama_cpp
import numpy as np
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / ".models" / "qwen2.5-1.5b-shape" / "qwen2.5-1.5b-shape-Q4_K_M.gguf"

N_VOCAB = 151_936
N_EMBD = 1536
N_LAYER = 28
N_HEAD = 12
N_KV = 2
HEAD_DIM = 128
N_FF = 8960
BPE_VOCAB = 16_000
Q4_K_M = 15  # llama_ftype

QWEN2_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CHATML = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + "
    "message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def training_texts(data: Path) -> list[str]:
    texts = [p.read_text(encoding="utf-8") for p in sorted((data / "news-wmt22").glob("*/*.txt"))]
    for path in sorted((data / "wmt22").glob("generaltest2022.*")):
        texts.extend(l for l in path.read_text(encoding="utf-8").split("\n") if l.strip())
    if not texts:
        sys.exit(f"{data}: no news-wmt22/*/*.txt or wmt22/generaltest2022.* to train on")
    return texts


def add_tokenizer(w: gguf.GGUFWriter, texts: list[str]) -> None:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_REGEX), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(texts, trainers.BpeTrainer(
        vocab_size=BPE_VOCAB, special_tokens=SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False))
    data = json.loads(tok.to_str())
    vocab = data["model"]["vocab"]
    tokens = [t for t, _ in sorted(vocab.items(), key=lambda kv: kv[1])]
    merges = [m if isinstance(m, str) else " ".join(m) for m in data["model"]["merges"]]
    types = [3 if t in SPECIALS else 1 for t in tokens]
    # Unused ids up to the real vocabulary size (type 5: never produced by tokenizing).
    pad = N_VOCAB - len(tokens)
    tokens += [f"<|unused_{i}|>" for i in range(pad)]
    types += [5] * pad
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("qwen2")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_bos_token_id(vocab["<|endoftext|>"])
    w.add_eos_token_id(vocab["<|im_end|>"])
    w.add_pad_token_id(vocab["<|endoftext|>"])
    w.add_add_bos_token(False)
    w.add_chat_template(CHATML)


def write_f16(path: Path, texts: list[str]) -> None:
    rng = np.random.default_rng(1536)
    w = gguf.GGUFWriter(str(path), "qwen2")
    w.add_name("Qwen2.5 1.5B shape, random weights")
    w.add_file_type(1)
    add_tokenizer(w, texts)
    w.add_context_length(32_768)
    w.add_embedding_length(N_EMBD)
    w.add_block_count(N_LAYER)
    w.add_feed_forward_length(N_FF)
    w.add_head_count(N_HEAD)
    w.add_head_count_kv(N_KV)
    w.add_rope_freq_base(1_000_000.0)
    w.add_layer_norm_rms_eps(1e-6)

    def t(name: str, shape: tuple[int, ...], scale: float, mean: float = 0.0, f32: bool = False) -> None:
        data = rng.standard_normal(shape, dtype=np.float32)
        data *= scale
        data += mean
        w.add_tensor(name, data if f32 else data.astype(np.float16))

    d, q, kv = N_EMBD, N_HEAD * HEAD_DIM, N_KV * HEAD_DIM
    t("token_embd.weight", (N_VOCAB, d), 1.0)
    t("output_norm.weight", (d,), 0.1, 1.0, f32=True)
    for il in range(N_LAYER):
        p = f"blk.{il}"
        t(f"{p}.attn_norm.weight", (d,), 0.1, 1.0, f32=True)
        t(f"{p}.attn_q.weight", (q, d), 1.0 / np.sqrt(d))
        t(f"{p}.attn_q.bias", (q,), 0.5, f32=True)
        t(f"{p}.attn_k.weight", (kv, d), 1.0 / np.sqrt(d))
        t(f"{p}.attn_k.bias", (kv,), 0.5, f32=True)
        t(f"{p}.attn_v.weight", (kv, d), 1.0 / np.sqrt(d))
        t(f"{p}.attn_v.bias", (kv,), 0.2, f32=True)
        t(f"{p}.attn_output.weight", (d, q), 1.0 / np.sqrt(q))
        t(f"{p}.ffn_norm.weight", (d,), 0.1, 1.0, f32=True)
        t(f"{p}.ffn_gate.weight", (N_FF, d), 1.0 / np.sqrt(d))
        t(f"{p}.ffn_up.weight", (N_FF, d), 1.0 / np.sqrt(d))
        t(f"{p}.ffn_down.weight", (d, N_FF), 1.0 / np.sqrt(N_FF))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--data", type=Path, default=Path(os.environ.get("SVODKA_SHARED_DATA", REPO.parent / "shared" / "data")))
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    texts = training_texts(args.data)
    with tempfile.TemporaryDirectory(dir=args.out.parent) as tmp:
        f16 = Path(tmp) / "f16.gguf"
        write_f16(f16, texts)
        params = llama_cpp.llama_model_quantize_default_params()
        params.nthread = args.threads
        params.ftype = Q4_K_M
        rc = llama_cpp.llama_model_quantize(str(f16).encode(), str(args.out).encode(), ctypes.byref(params))
        if rc != 0:
            sys.exit(f"llama_model_quantize failed: {rc}")
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e9:.2f} GB)")


if __name__ == "__main__":
    main()
