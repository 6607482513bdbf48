#!/usr/bin/env python3
"""Write the seed inputs of the model-file fuzz targets (fuzz/seeds/): a few KB each, valid
all the way through, so that libFuzzer's mutations start from files that reach model
construction instead of dying in the header parser.

- gguf/qwen2-q8_0.gguf: a one-layer qwen2 (n_embd 32, 4 heads, 2 KV
  heads, FFN 64) with a byte-level BPE vocabulary (the 256 byte symbols and a few merges),
  weight matrices in Q8_0 (the engine's ggml kernels), written with the `gguf` package
  (llama.cpp's own writer).
- safetensors/marian-t5.safetensors: the tensors of the Marian and of the T5 model that
  fuzz/fuzz_targets/safetensors.rs builds (its configs: d_model 4, FFN 8, vocabulary 8,
  one layer each), random values.
- sentencepiece/bpe.model and registry/registry.toml: copies of tests/fixtures/spm/bpe.model
  and models/registry.toml.

usage: .venv-llama/bin/python scripts/make_fuzz_seeds.py   (numpy and gguf, as in
       scripts/requirements-llama.txt; the safetensors file is written by hand)
"""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path

import numpy as np
import gguf

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "fuzz" / "seeds"


def byte_symbols() -> list[str]:
    """GPT-2's printable stand-ins for the 256 bytes (bytes_to_unicode)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(
        range(ord("®"), ord("ÿ") + 1)
    )
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for _, c in sorted(zip(bs, cs))]


def write_gguf(path: Path, qtype: gguf.GGMLQuantizationType) -> None:
    rng = np.random.default_rng(1)
    n_embd, n_ff, heads, kv_heads = 32, 64, 4, 2
    head = n_embd // heads
    merges = ["Ġ w", "o r", "l d", "Ġw or", "Ġwor ld"]
    tokens = byte_symbols() + ["Ġw", "or", "ld", "Ġwor", "Ġworld", "<|endoftext|>"]
    types = [1] * (len(tokens) - 1) + [3]
    w = gguf.GGUFWriter(str(path), "qwen2")
    w.add_context_length(64)
    w.add_embedding_length(n_embd)
    w.add_block_count(1)
    w.add_feed_forward_length(n_ff)
    w.add_head_count(heads)
    w.add_head_count_kv(kv_heads)
    w.add_rope_freq_base(1e6)
    w.add_layer_norm_rms_eps(1e-6)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("qwen2")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_eos_token_id(len(tokens) - 1)
    w.add_bos_token_id(len(tokens) - 1)

    def tensor(name: str, shape: tuple[int, ...], quantize: bool = True) -> None:
        data = (rng.standard_normal(shape) * 0.1).astype(np.float32)
        if quantize and qtype != gguf.GGMLQuantizationType.F32 and len(shape) == 2:
            w.add_tensor(name, gguf.quants.quantize(data, qtype), raw_dtype=qtype)
        else:
            w.add_tensor(name, data)

    tensor("token_embd.weight", (len(tokens), n_embd))
    tensor("output_norm.weight", (n_embd,))
    tensor("blk.0.attn_norm.weight", (n_embd,))
    tensor("blk.0.attn_q.weight", (n_embd, n_embd))
    tensor("blk.0.attn_q.bias", (n_embd,))
    tensor("blk.0.attn_k.weight", (kv_heads * head, n_embd))
    tensor("blk.0.attn_k.bias", (kv_heads * head,))
    tensor("blk.0.attn_v.weight", (kv_heads * head, n_embd))
    tensor("blk.0.attn_v.bias", (kv_heads * head,))
    tensor("blk.0.attn_output.weight", (n_embd, n_embd))
    tensor("blk.0.ffn_norm.weight", (n_embd,))
    tensor("blk.0.ffn_gate.weight", (n_ff, n_embd))
    tensor("blk.0.ffn_up.weight", (n_ff, n_embd))
    tensor("blk.0.ffn_down.weight", (n_embd, n_ff))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def write_safetensors(path: Path, tensors: dict[str, np.ndarray]) -> None:
    header, offset, blobs = {}, 0, []
    for name, a in tensors.items():
        raw = a.astype("<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
        blobs.append(raw)
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)
    path.write_bytes(struct.pack("<Q", len(head)) + head + b"".join(blobs))


def marian_and_t5() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(2)
    d, ff, vocab = 4, 8, 8
    t: dict[str, tuple[int, ...]] = {"final_logits_bias": (1, vocab), "model.shared.weight": (vocab, d)}
    attn = lambda p: {f"{p}.{x}_proj.{k}": ((d, d) if k == "weight" else (d,))
                      for x in "qkvo" for k in ("weight", "bias")}
    norm = lambda p: {f"{p}.weight": (d,), f"{p}.bias": (d,)}
    ffn = lambda p: {f"{p}.fc1.weight": (ff, d), f"{p}.fc1.bias": (ff,),
                     f"{p}.fc2.weight": (d, ff), f"{p}.fc2.bias": (d,)}
    for side in ("encoder", "decoder"):
        p = f"model.{side}.layers.0"
        t.update({k.replace("o_proj", "out_proj"): v for k, v in attn(f"{p}.self_attn").items()})
        t.update(norm(f"{p}.self_attn_layer_norm"))
        t.update(ffn(p))
        t.update(norm(f"{p}.final_layer_norm"))
    p = "model.decoder.layers.0"
    t.update({k.replace("o_proj", "out_proj"): v for k, v in attn(f"{p}.encoder_attn").items()})
    t.update(norm(f"{p}.encoder_attn_layer_norm"))
    # T5 (gated-gelu, untied): d_model 4, 2 heads of 2, FFN 8, 4 buckets.
    t5 = {"shared.weight": (vocab, d), "lm_head.weight": (vocab, d),
          "encoder.final_layer_norm.weight": (d,), "decoder.final_layer_norm.weight": (d,)}
    for side, blocks in (("encoder", ("SelfAttention",)), ("decoder", ("SelfAttention", "EncDecAttention"))):
        p = f"{side}.block.0.layer"
        for i, name in enumerate(blocks):
            for x in "qkvo":
                t5[f"{p}.{i}.{name}.{x}.weight"] = (d, d)
            t5[f"{p}.{i}.layer_norm.weight"] = (d,)
        t5[f"{p}.0.SelfAttention.relative_attention_bias.weight"] = (4, 2)
        f = len(blocks)
        t5[f"{p}.{f}.DenseReluDense.wi_0.weight"] = (ff, d)
        t5[f"{p}.{f}.DenseReluDense.wi_1.weight"] = (ff, d)
        t5[f"{p}.{f}.DenseReluDense.wo.weight"] = (d, ff)
        t5[f"{p}.{f}.layer_norm.weight"] = (d,)
    t.update(t5)
    return {k: rng.standard_normal(v) * 0.1 for k, v in sorted(t.items())}


def main() -> None:
    for sub in ("gguf", "safetensors", "sentencepiece", "registry"):
        (SEEDS / sub).mkdir(parents=True, exist_ok=True)
    write_gguf(SEEDS / "gguf" / "qwen2-q8_0.gguf", gguf.GGMLQuantizationType.Q8_0)
    write_safetensors(SEEDS / "safetensors" / "marian-t5.safetensors", marian_and_t5())
    shutil.copy(ROOT / "tests/fixtures/spm/bpe.model", SEEDS / "sentencepiece" / "bpe.model")
    shutil.copy(ROOT / "models/registry.toml", SEEDS / "registry" / "registry.toml")
    for f in sorted(SEEDS.glob("*/*")):
        if f.parent.name in ("gguf", "safetensors", "sentencepiece", "registry"):
            print(f"{f.relative_to(ROOT)}: {f.stat().st_size} bytes")


if __name__ == "__main__":
    main()
