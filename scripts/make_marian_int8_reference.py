#!/usr/bin/env python3
"""Teacher-forced logits of the tiny Marian fixtures with svodka's int8 arithmetic
simulated in PyTorch, for tests/marian_int8.rs.

Every nn.Linear (the tied output projection included, and so the embedding table it
shares) gets its weight rounded per output row to int8 with scale amax/127, and its input
rounded per row the same way at run time: what `--dtype int8` computes, up to float
rounding. Writes tests/fixtures/marian/{base,tcbig}/int8_reference.json.

Setup: the venv of scripts/requirements-marian.txt.
  .venv-marian/bin/python scripts/make_marian_int8_reference.py
"""

import json
from pathlib import Path

import torch
from transformers import MarianMTModel

ROOT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "marian"


def quantize(t: torch.Tensor) -> torch.Tensor:
    """Symmetric int8 per row (last dimension), returned dequantized."""
    # As svodka rounds: q = round_half_even(t · (127 / amax)) in f32, scale amax / 127.
    amax = t.abs().amax(-1, keepdim=True)
    inv = torch.where(amax > 0, 127 / torch.where(amax > 0, amax, torch.ones_like(amax)), torch.zeros_like(amax))
    return torch.round(t * inv).clamp(-127, 127) * (amax / 127)


def main() -> None:
    for name in ("base", "tcbig"):
        d = ROOT / name
        ref = json.loads((d / "reference.json").read_text())
        model = MarianMTModel.from_pretrained(d).eval()
        src = torch.tensor(ref["src_ids"])
        mask = torch.tensor(ref["src_mask"])
        tgt = torch.tensor(ref["tgt_ids"])
        with torch.no_grad():
            for mod in model.modules():
                if isinstance(mod, torch.nn.Linear):
                    mod.weight.copy_(quantize(mod.weight))
                    forward = mod.forward
                    mod.forward = (lambda f: lambda x: f(quantize(x)))(forward)
            logits = model(input_ids=src, attention_mask=mask, decoder_input_ids=tgt).logits
        out = {
            "logits_shape": list(logits.shape),
            "logits": [float(f"{v:.8g}") for v in logits.flatten().tolist()],
        }
        (d / "int8_reference.json").write_text(json.dumps(out) + "\n")
        print(f"{name}: {logits.shape}")


if __name__ == "__main__":
    main()
