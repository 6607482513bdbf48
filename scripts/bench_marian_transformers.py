#!/usr/bin/env python3
"""Marian throughput of transformers on the workload of benches/marian.rs.

A random-weight MarianMTModel of opus-mt-en-ru's shape (d_model 512, 6+6 layers, 8 heads,
FFN 2048, vocab 62518), sources of 30 random ids + </s>, exactly 40 target tokens per
sentence (min_new_tokens = max_new_tokens = 40, forced_eos_token_id None, so no early
stop and no forced </s>). Prints one JSON line per configuration with the median target
tokens per second over the repetitions, after one warm-up.

Meant for the GPU machine, whose python3 already has torch and transformers (no venv,
nothing to install there; KINDS.md lists torch 2.11 and transformers 5.17). It runs on
the CPU too, with the .venv-marian of make_marian_fixtures.py (requirements-marian.txt).

usage: bench_marian_transformers.py [--device cuda] [--dtype float32|bfloat16]
           [--config 64:1 --config 256:1 --config 64:4] [--reps 3]
"""

import argparse
import json
import statistics
import sys
import time

import torch
import transformers
from transformers import GenerationConfig, MarianConfig, MarianMTModel

SRC_LEN = 30
NEW_TOKENS = 40
EOS, PAD, VOCAB = 0, 62517, 62518


def opus_mt_en_ru_config() -> MarianConfig:
    return MarianConfig(
        vocab_size=VOCAB,
        d_model=512,
        encoder_layers=6,
        decoder_layers=6,
        encoder_attention_heads=8,
        decoder_attention_heads=8,
        encoder_ffn_dim=2048,
        decoder_ffn_dim=2048,
        activation_function="swish",
        scale_embedding=True,
        max_position_embeddings=512,
        pad_token_id=PAD,
        eos_token_id=EOS,
        decoder_start_token_id=PAD,
        forced_eos_token_id=None,
    )


def sources(batch: int, device: str) -> torch.Tensor:
    # The same LCG as benches/marian.rs: ids in [1, 62000), then </s>.
    seed = 42
    rows = []
    for _ in range(batch):
        row = []
        for _ in range(SRC_LEN):
            seed = (seed * 6364136223846793005 + 1) % (1 << 64)
            row.append(1 + (seed >> 33) % 61999)
        rows.append(row + [EOS])
    return torch.tensor(rows, dtype=torch.long, device=device)


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def run(model, ids, beams: int, device: str) -> int:
    gen = GenerationConfig(
        do_sample=False,
        num_beams=beams,
        min_new_tokens=NEW_TOKENS,
        max_new_tokens=NEW_TOKENS,
        forced_eos_token_id=None,
        eos_token_id=EOS,
        pad_token_id=PAD,
        decoder_start_token_id=PAD,
    )
    with torch.inference_mode():
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), generation_config=gen)
    sync(device)
    # out starts with the decoder start token; the rest are the generated target tokens.
    return int(out.shape[0]) * (int(out.shape[1]) - 1)


def parse_config(text: str) -> tuple[int, int]:
    batch, _, beams = text.partition(":")
    return int(batch), int(beams or 1)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    ap.add_argument("--config", action="append", type=parse_config, help="BATCH:BEAMS (repeatable)")
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    configs = args.config or [(64, 1), (256, 1), (64, 4)]

    torch.manual_seed(0)
    dtype = getattr(torch, args.dtype)
    model = MarianMTModel(opus_mt_en_ru_config()).to(device=args.device, dtype=dtype).eval()
    device_name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu"
    for batch, beams in configs:
        ids = sources(batch, args.device)
        run(model, ids, beams, args.device)  # warm-up: kernels, allocator, cuBLAS handles
        rates = []
        for _ in range(args.reps):
            t0 = time.perf_counter()
            tokens = run(model, ids, beams, args.device)
            rates.append(tokens / (time.perf_counter() - t0))
        if tokens != batch * NEW_TOKENS:
            print(f"error: {tokens} target tokens, expected {batch * NEW_TOKENS}", file=sys.stderr)
            return 1
        print(
            json.dumps(
                {
                    "engine": f"transformers {transformers.__version__} / torch {torch.__version__}",
                    "device": device_name,
                    "dtype": args.dtype,
                    "batch": batch,
                    "beams": beams,
                    "target_tokens_per_s": round(statistics.median(rates)),
                    "reps": args.reps,
                }
            ),
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
