#!/usr/bin/env python3
"""Build a full-size random-weight MarianMT model directory for speed measurements.

The model has the shape of Helsinki-NLP/opus-mt-en-ru (transformer-base: 6+6 layers,
d_model 512, 8 heads, FFN 2048, vocabulary 62,518) or, with --big, of the tc-big models
(6+6 layers, d_model 1024, 16 heads, FFN 4096, vocabulary 57,680). Its tokenizer files are
the small SentencePiece fixture pair (tests/fixtures/spm/marian), whose 1,934 ids all lie
inside the model's vocabulary. Outputs are gibberish; the point is timing `svodka
translate` (greedy against beam search, batch sizes) with the real matrix sizes when the
real checkpoints cannot be downloaded. Nothing it writes is committed (~300 MB / ~900 MB).

Setup: the venv of scripts/requirements-marian.txt.
  .venv-marian/bin/python scripts/make_marian_fullsize.py /tmp/marian-full [--big]
  target/debug/svodka translate ARTICLE --to ru --model /tmp/marian-full --beam 1 -v
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import torch
from transformers import MarianConfig, MarianMTModel

ROOT = Path(__file__).resolve().parent.parent
SPM = ROOT / "tests" / "fixtures" / "spm" / "marian"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--big", action="store_true", help="tc-big shape instead of base")
    args = ap.parse_args()
    vocab = json.loads((SPM / "vocab.json").read_text())
    vocab_size = 57680 if args.big else 62518
    d, heads, ffn = (1024, 16, 4096) if args.big else (512, 8, 2048)
    pad = vocab_size - 1
    cfg = MarianConfig(
        vocab_size=vocab_size,
        decoder_vocab_size=vocab_size,
        d_model=d,
        encoder_layers=6,
        decoder_layers=6,
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
    torch.manual_seed(0)
    model = MarianMTModel(cfg).eval()
    args.out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(args.out, safe_serialization=True)
    # The fixture vocabulary's <pad> must be the model's pad id for padding to be masked.
    vocab = {k: v for k, v in vocab.items() if k != "<pad>"}
    vocab["<pad>"] = pad
    (args.out / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False))
    for name in ("source.spm", "target.spm"):
        shutil.copyfile(SPM / name, args.out / name)
    print(f"wrote {args.out} (vocab {vocab_size}, d_model {d})")


if __name__ == "__main__":
    main()
