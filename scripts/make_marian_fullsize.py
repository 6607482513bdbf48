#!/usr/bin/env python3
"""Build a full-size random-weight MarianMT model directory for speed measurements.

The model has the shape of Helsinki-NLP/opus-mt-en-ru (transformer-base: 6+6 layers,
d_model 512, 8 heads, FFN 2048, vocabulary 62,518) or, with --big, of the tc-big models
(6+6 layers, d_model 1024, 16 heads, FFN 4096, vocabulary 57,680). Its tokenizer files are
the small SentencePiece fixture pair (tests/fixtures/spm/marian), whose 1,934 ids all lie
inside the model's vocabulary. Outputs are gibberish; the point is timing svodka
(greedy against beam search, batch sizes, `svodka serve` under load) with the real matrix
sizes when the real checkpoints cannot be downloaded. Nothing it writes is committed
(~300 MB / ~900 MB).

The weights are written with numpy and safetensors in the tensor names and layout of
transformers' MarianMTModel (the config is the tiny fixture's, resized), so no torch
download is needed: normal(0, 0.02) matrices, unit layer norms, zero biases.

Setup: pip install numpy safetensors (both in scripts/requirements-marian.txt).
  python scripts/make_marian_fullsize.py /tmp/marian-full [--big]
  target/release/svodka translate ARTICLE --to ru --model /tmp/marian-full --beam 1 -v
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

ROOT = Path(__file__).resolve().parent.parent
SPM = ROOT / "tests" / "fixtures" / "spm" / "marian"
BASE = ROOT / "tests" / "fixtures" / "marian" / "base"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--big", action="store_true", help="tc-big shape instead of base")
    args = ap.parse_args()
    vocab = json.loads((SPM / "vocab.json").read_text())
    vocab_size = 57680 if args.big else 62518
    d, heads, ffn = (1024, 16, 4096) if args.big else (512, 8, 2048)
    layers = 6
    pad = vocab_size - 1
    cfg = json.loads((BASE / "config.json").read_text())
    cfg.update(
        vocab_size=vocab_size,
        decoder_vocab_size=vocab_size,
        d_model=d,
        encoder_layers=layers,
        decoder_layers=layers,
        encoder_attention_heads=heads,
        decoder_attention_heads=heads,
        encoder_ffn_dim=ffn,
        decoder_ffn_dim=ffn,
        activation_function="relu" if args.big else "swish",
        max_position_embeddings=1024 if args.big else 512,
        pad_token_id=pad,
        decoder_start_token_id=pad,
        eos_token_id=vocab["</s>"],
        forced_eos_token_id=None,
        scale_embedding=True,
        share_encoder_decoder_embeddings=True,
        tie_word_embeddings=True,
    )
    rng = np.random.default_rng(0)
    tensors: dict[str, np.ndarray] = {}

    def dense(name: str, rows: int, cols: int) -> None:
        tensors[f"{name}.weight"] = (rng.standard_normal((rows, cols), dtype=np.float32) * 0.02)
        tensors[f"{name}.bias"] = np.zeros(rows, dtype=np.float32)

    def norm(name: str) -> None:
        tensors[f"{name}.weight"] = np.ones(d, dtype=np.float32)
        tensors[f"{name}.bias"] = np.zeros(d, dtype=np.float32)

    for side in ("encoder", "decoder"):
        for i in range(layers):
            p = f"model.{side}.layers.{i}"
            attns = ["self_attn"] + (["encoder_attn"] if side == "decoder" else [])
            for a in attns:
                for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
                    dense(f"{p}.{a}.{proj}", d, d)
                norm(f"{p}.{a}_layer_norm")
            dense(f"{p}.fc1", ffn, d)
            dense(f"{p}.fc2", d, ffn)
            norm(f"{p}.final_layer_norm")
    tensors["model.shared.weight"] = rng.standard_normal((vocab_size, d), dtype=np.float32) * 0.02
    tensors["final_logits_bias"] = np.zeros((1, vocab_size), dtype=np.float32)
    args.out.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(args.out / "model.safetensors"), metadata={"format": "pt"})
    (args.out / "config.json").write_text(json.dumps(cfg, indent=2))
    # The fixture vocabulary's <pad> must be the model's pad id for padding to be masked.
    vocab = {k: v for k, v in vocab.items() if k != "<pad>"}
    vocab["<pad>"] = pad
    (args.out / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False))
    for name in ("source.spm", "target.spm"):
        shutil.copyfile(SPM / name, args.out / name)
    print(f"wrote {args.out} (vocab {vocab_size}, d_model {d})")


if __name__ == "__main__":
    main()
