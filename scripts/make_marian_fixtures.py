#!/usr/bin/env python3
"""Build tiny random-weight MarianMT models and record transformers' outputs for them.

transformers' MarianMTModel is the reference for the Marian engine in src/engine/marian.rs
and for the shared decoding in src/decode/. Written under tests/fixtures/marian/<name>/:

  model.safetensors, config.json, generation_config.json   the model, as transformers saves it
  reference.json   a padded source batch of three rows, the encoder output for it, a
                   teacher-forced pass (decoder ids and logits at every position), and
                   generate() outputs (greedy, beam 4 with each early_stopping mode, and
                   no_repeat_ngram_size 3 + repetition_penalty 1.2 + min_new_tokens)

Models:
  base    opus-mt-en-ru shape: swish, scale_embedding, static sinusoidal positions,
          shared encoder/decoder embeddings tied to lm_head, eos 0
  tcbig   opus-mt-tc-big shape: relu, eos not 0, renormalize_logits; unlike the real
          tc-big checkpoints (which share embeddings) it uses separate decoder embeddings
          and an untied lm_head, so that the loader's other path is exercised too

Both switch forced_eos_token_id off (the real configs set it; with it transformers writes
</s> at the last allowed step, which the engine does not do) and set a random, non-zero
final_logits_bias.

Setup (the PyPI torch wheel pulls the CUDA libraries, several GB):
  python3 -m venv .venv-marian
  .venv-marian/bin/pip install -r scripts/requirements-marian.txt
  .venv-marian/bin/python scripts/make_marian_fixtures.py
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from transformers import GenerationConfig, MarianConfig, MarianMTModel

OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "marian"
VOCAB = 96
PAD = VOCAB - 1
MAX_NEW = 20
SRC_LENS = [13, 8, 4]  # including the final </s>
TGT_LEN = 7  # decoder start + 6 tokens
EMBED_STD = 0.25
OTHER_STD = 1.0
# name -> (seed, </s> bias lift)
MODELS = {"base": (1234, 3.0), "tcbig": (5678, 3.0)}


def config_for(name: str) -> tuple[MarianConfig, dict]:
    common = dict(
        vocab_size=VOCAB,
        decoder_vocab_size=VOCAB,
        d_model=32,
        encoder_layers=2,
        decoder_layers=2,
        encoder_attention_heads=4,
        decoder_attention_heads=4,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        max_position_embeddings=64,
        scale_embedding=True,
        static_position_embeddings=True,
        normalize_before=False,
        normalize_embedding=False,
        pad_token_id=PAD,
        decoder_start_token_id=PAD,
        bos_token_id=0,
        forced_eos_token_id=None,
        dropout=0.0,
        attention_dropout=0.0,
        activation_dropout=0.0,
        is_encoder_decoder=True,
    )
    if name == "base":
        eos = 0
        cfg = MarianConfig(
            **common,
            eos_token_id=eos,
            activation_function="swish",
            share_encoder_decoder_embeddings=True,
            tie_word_embeddings=True,
        )
        gen = dict(renormalize_logits=False)
    else:
        eos = 7
        cfg = MarianConfig(
            **common,
            eos_token_id=eos,
            activation_function="relu",
            share_encoder_decoder_embeddings=False,
            tie_word_embeddings=False,
        )
        gen = dict(renormalize_logits=True)
    gen.update(
        bad_words_ids=[[PAD]],
        bos_token_id=0,
        decoder_start_token_id=PAD,
        eos_token_id=eos,
        forced_eos_token_id=None,
        pad_token_id=PAD,
        max_length=512,
        num_beams=4,
    )
    return cfg, gen


def randomize(model: MarianMTModel, gen: torch.Generator) -> None:
    """Weights far from the tiny init_std, so that argmax and beam choices are not near ties."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "embed_positions" in name:
                continue  # static sinusoids, recomputed on load
            if "layer_norm" in name and name.endswith("weight"):
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=gen))
            elif name.endswith("bias"):
                p.copy_(0.2 * torch.randn(p.shape, generator=gen))
            elif "embed_tokens" in name or "shared" in name or "lm_head" in name:
                # Small token embeddings: with tied embeddings a strong residual makes every
                # row repeat its last token forever.
                p.copy_(EMBED_STD * torch.randn(p.shape, generator=gen))
            else:
                p.copy_(OTHER_STD * torch.randn(p.shape, generator=gen))
        model.final_logits_bias.copy_(0.5 * torch.randn(model.final_logits_bias.shape, generator=gen))


def lift_eos(model: MarianMTModel, eos: int, lift: float) -> None:
    """Raise the </s> bias so that rows end at different lengths.

    Random models either never stop or stop at once; the lifts in MODELS were found by
    sweeping them and keeping one where greedy and beam rows end at different steps.
    """
    with torch.no_grad():
        model.final_logits_bias[0, eos] += lift


def rounded(t: torch.Tensor) -> list:
    return [float(f"{x:.8g}") for x in t.reshape(-1).tolist()]


def strip(seq: list[int]) -> list[int]:
    """Drop the decoder start token and the pad filling after the end."""
    out = seq[1:]
    while out and out[-1] == PAD:
        out.pop()
    return out


def cases(eos: int) -> list[dict]:
    beam = dict(num_beams=4, length_penalty=1.0)
    return [
        dict(name="greedy", num_beams=1),
        dict(name="beam4", early_stopping=False, **beam),
        dict(name="beam4_early", early_stopping=True, **beam),
        dict(name="beam4_never_lp06", num_beams=4, early_stopping="never", length_penalty=0.6),
        dict(
            name="greedy_penalties",
            num_beams=1,
            no_repeat_ngram_size=3,
            repetition_penalty=1.2,
            min_new_tokens=3,
        ),
        dict(
            name="beam4_penalties",
            early_stopping=False,
            no_repeat_ngram_size=3,
            repetition_penalty=1.2,
            min_new_tokens=3,
            **beam,
        ),
    ]


def build(name: str) -> None:
    seed, lift = MODELS[name]
    cfg, gen_kwargs = config_for(name)
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    model = MarianMTModel(cfg).eval()
    randomize(model, g)
    model.generation_config = GenerationConfig(**gen_kwargs)

    eos = cfg.eos_token_id
    batch = len(SRC_LENS)
    s_max = max(SRC_LENS)
    src = torch.full((batch, s_max), PAD, dtype=torch.long)
    mask = torch.zeros((batch, s_max), dtype=torch.long)
    for i, n in enumerate(SRC_LENS):
        body = torch.randint(1, PAD, (n - 1,), generator=g)
        body[body == eos] = eos + 1
        src[i, : n - 1] = body
        src[i, n - 1] = eos
        mask[i, :n] = 1
    tgt = torch.randint(1, PAD, (batch, TGT_LEN), generator=g)
    tgt[:, 0] = PAD

    lift_eos(model, eos, lift)
    out_dir = OUT / name
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    # Reload from disk so the reference is computed from exactly what the Rust side reads.
    model = MarianMTModel.from_pretrained(out_dir, attn_implementation="eager").eval()

    with torch.no_grad():
        enc = model.get_encoder()(input_ids=src, attention_mask=mask).last_hidden_state
        logits = model(input_ids=src, attention_mask=mask, decoder_input_ids=tgt).logits

    ref = dict(
        model=name,
        transformers_version=__import__("transformers").__version__,
        torch_version=torch.__version__,
        pad_token_id=PAD,
        eos_token_id=eos,
        src_ids=src.tolist(),
        src_mask=mask.tolist(),
        tgt_ids=tgt.tolist(),
        encoder_shape=list(enc.shape),
        encoder_out=rounded(enc),
        logits_shape=list(logits.shape),
        logits=rounded(logits),
        generate=[],
    )
    for case in cases(eos):
        kwargs = {k: v for k, v in case.items() if k != "name"}
        with torch.no_grad():
            out = model.generate(
                input_ids=src,
                attention_mask=mask,
                do_sample=False,
                max_new_tokens=MAX_NEW,
                return_dict_in_generate=True,
                output_scores=True,
                **kwargs,
            )
        seqs = [strip(s) for s in out.sequences.tolist()]
        scores = out.sequences_scores.tolist() if kwargs.get("num_beams", 1) > 1 else None
        ref["generate"].append(
            dict(
                name=case["name"],
                options=dict(
                    num_beams=kwargs.get("num_beams", 1),
                    length_penalty=kwargs.get("length_penalty", 1.0),
                    early_stopping=kwargs.get("early_stopping", False),
                    no_repeat_ngram_size=kwargs.get("no_repeat_ngram_size", 0),
                    repetition_penalty=kwargs.get("repetition_penalty", 1.0),
                    min_new_tokens=kwargs.get("min_new_tokens", 0),
                    max_new_tokens=MAX_NEW,
                    renormalize_logits=gen_kwargs["renormalize_logits"],
                ),
                sequences=seqs,
                scores=scores,
            )
        )
        print(name, case["name"], [len(s) for s in seqs], seqs)
    (out_dir / "reference.json").write_text(json.dumps(ref, separators=(",", ":")) + "\n")


def main() -> None:
    torch.set_num_threads(2)
    for name in MODELS:
        build(name)
    total = sum(p.stat().st_size for p in OUT.rglob("*") if p.is_file())
    print(f"fixtures: {total / 1024:.0f} KiB under {OUT}")


if __name__ == "__main__":
    main()
