#!/usr/bin/env python3
"""Tiny random-weight mT5 and T5 models with transformers' outputs, for tests/t5_parity.rs.

Writes tests/fixtures/t5/:
  spiece.model        SentencePiece unigram, vocab 800, T5's id layout (<pad>=0, </s>=1,
                      <unk>=2, no <s>), identity normalization (the precompiled charsmap
                      alone would be ~240 KB; its conversion is covered by tests/fixtures/spm)
  mt5/, t5/           config.json + model.safetensors (f16 storage of f16-exact values, so
                      loading as f32 gives the very weights the reference ran with)
                      mt5: MT5ForConditionalGeneration, gated-gelu, untied lm_head
                      t5:  T5ForConditionalGeneration v1.0, relu, tied embeddings with the
                           d_model**-0.5 rescale before the tied lm_head
  expected.json       per model: tokenizer ids (transformers' T5Tokenizer built from
                      spiece.model), the padded batch, greedy and beam-4 generation ids
  {mt5,t5}-reference.safetensors  f32 encoder last_hidden_state and teacher-forced logits
                      for that batch at LOGIT_POSITIONS (decoder inputs: the greedy output)

Run: .venv-marian/bin/pip install -r scripts/requirements-t5.txt
     .venv-marian/bin/python scripts/make_t5_fixtures.py
"""

import json
import shutil
import tempfile
from pathlib import Path

import sentencepiece as spm
import torch
from safetensors.torch import save_file
from transformers import (
    MT5Config,
    MT5ForConditionalGeneration,
    T5Config,
    T5ForConditionalGeneration,
    T5Tokenizer,
)

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fixtures" / "t5"
SPM_TEXTS = ROOT / "tests" / "fixtures" / "spm" / "texts.json"
SEED = 20261127
SPM_VOCAB = 500
# Teacher forcing runs over this many decoder positions (past 16, where the decoder's
# relative position buckets turn logarithmic); logits are kept at LOGIT_POSITIONS only.
TEACHER_LEN = 24
LOGIT_POSITIONS = [0, 3, 16, 23]
# Scale of the end-of-sequence output row, so that random models end some outputs early.
EOS_SCALE = {"mt5": 1.6, "t5": 0.6}

INPUTS = [
    "Президент России провёл совещание с членами правительства в Москве.",
    "The central bank raised its key interest rate to 16 percent on Friday.",
    "Новости",
]
TOKENIZER_ONLY = [
    "Ёжик в тумане, «ЁЛКА» — 100 000 ₽, 25 °C.",
    "  leading and   repeated spaces  ",
    "Mixed: Москва and London, 2026-11-27.",
]
GEN = dict(max_new_tokens=24)
BEAM = dict(num_beams=4, no_repeat_ngram_size=3, length_penalty=1.0, max_new_tokens=24)


def train_spiece(path: Path) -> None:
    texts = json.loads(SPM_TEXTS.read_text(encoding="utf-8"))
    sentences = [s for lang in ("ru", "en") for s in texts[lang] if s.strip()]
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus.txt"
        corpus.write_text("\n".join(sentences) + "\n", encoding="utf-8")
        spm.SentencePieceTrainer.train(
            input=str(corpus),
            model_prefix=str(Path(tmp) / "spiece"),
            model_type="unigram",
            vocab_size=SPM_VOCAB,
            character_coverage=1.0,
            normalization_rule_name="identity",
            pad_id=0,
            eos_id=1,
            unk_id=2,
            bos_id=-1,
            hard_vocab_limit=False,
            num_threads=1,
            seed_sentencepiece_size=100000,
        )
        shutil.copyfile(Path(tmp) / "spiece.model", path)


def f16_exact(model: torch.nn.Module) -> None:
    """Rounds every weight to f16 (stored that way) and perturbs layer norms off 1."""
    g = torch.Generator().manual_seed(SEED + 1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "layer_norm" in name:
                p.add_(0.2 * torch.randn(p.shape, generator=g))
            p.copy_(p.half().float())


def build(kind: str, vocab: int) -> torch.nn.Module:
    common = dict(
        vocab_size=vocab,
        d_model=32,
        d_kv=8,
        d_ff=64,
        num_layers=2,
        num_decoder_layers=2,
        num_heads=4,
        relative_attention_num_buckets=32,
        relative_attention_max_distance=128,
        dropout_rate=0.0,
        pad_token_id=0,
        eos_token_id=1,
        decoder_start_token_id=0,
    )
    torch.manual_seed(SEED if kind == "mt5" else SEED + 2)
    if kind == "mt5":
        cfg = MT5Config(feed_forward_proj="gated-gelu", tie_word_embeddings=False, **common)
        model = MT5ForConditionalGeneration(cfg)
        # transformers 5 forces tie_word_embeddings=True in MT5Config; real mT5 checkpoints
        # carry their own lm_head, so untie it explicitly with weights of its own.
        model.lm_head.weight = torch.nn.Parameter(torch.randn(vocab, 32) * 0.5)
    else:
        cfg = T5Config(feed_forward_proj="relu", **common)
        model = T5ForConditionalGeneration(cfg)
    with torch.no_grad():
        model.lm_head.weight[1] *= EOS_SCALE[kind]
    f16_exact(model)
    return model.eval()


def save_model(model: torch.nn.Module, kind: str, vocab: int, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    state = {}
    seen = {}
    for name, t in model.state_dict().items():
        if name in ("encoder.embed_tokens.weight", "decoder.embed_tokens.weight"):
            continue
        if kind == "t5" and name == "lm_head.weight":
            continue
        ptr = t.data_ptr()
        if ptr in seen and kind == "mt5":
            raise SystemExit(f"{name} shares storage with {seen[ptr]}: lm_head not untied")
        seen[ptr] = name
        state[name] = t.detach().half().contiguous().clone()
    save_file(state, str(dest / "model.safetensors"), metadata={"format": "pt"})
    config = {
        "architectures": [
            "MT5ForConditionalGeneration" if kind == "mt5" else "T5ForConditionalGeneration"
        ],
        "model_type": kind,
        "vocab_size": vocab,
        "d_model": 32,
        "d_kv": 8,
        "d_ff": 64,
        "num_layers": 2,
        "num_decoder_layers": 2,
        "num_heads": 4,
        "relative_attention_num_buckets": 32,
        "relative_attention_max_distance": 128,
        "dropout_rate": 0.0,
        "layer_norm_epsilon": 1e-6,
        "initializer_factor": 1.0,
        "feed_forward_proj": "gated-gelu" if kind == "mt5" else "relu",
        "tie_word_embeddings": kind != "mt5",
        "is_encoder_decoder": True,
        "use_cache": True,
        "pad_token_id": 0,
        "eos_token_id": 1,
        "decoder_start_token_id": 0,
    }
    (dest / "config.json").write_text(json.dumps(config, indent=2) + "\n")


def reference(model, tokenizer) -> dict:
    batch = tokenizer(INPUTS, padding=True, return_tensors="pt")
    ids, mask = batch["input_ids"], batch["attention_mask"]
    with torch.no_grad():
        enc = model.get_encoder()(input_ids=ids, attention_mask=mask).last_hidden_state
        greedy = model.generate(input_ids=ids, attention_mask=mask, do_sample=False, **GEN)
        beam = model.generate(input_ids=ids, attention_mask=mask, do_sample=False, **BEAM)
        # Teacher forcing on the greedy outputs (start token included, eos/pad kept).
        dec = greedy[:, :TEACHER_LEN]
        logits = model(input_ids=ids, attention_mask=mask, decoder_input_ids=dec).logits

    def strip(rows):
        """Drops the start token, and the end-of-sequence with the padding after it."""
        out = []
        for r in rows.tolist():
            r = r[1:]
            out.append(r[: r.index(1)] if 1 in r else r)
        return out

    tensors = {"encoder": enc.contiguous(), "logits": logits[:, LOGIT_POSITIONS].contiguous()}
    return tensors, {
        "input_ids": ids.tolist(),
        "attention_mask": mask.tolist(),
        "decoder_input_ids": dec.tolist(),
        "logit_positions": LOGIT_POSITIONS,
        "greedy": strip(greedy),
        "beam": strip(beam),
    }


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    train_spiece(OUT / "spiece.model")
    sp = spm.SentencePieceProcessor(model_file=str(OUT / "spiece.model"))
    n = sp.get_piece_size()
    expected = {
        "versions": {"torch": torch.__version__, "transformers": __import__("transformers").__version__},
        "inputs": INPUTS,
        "beam": BEAM,
        "greedy": GEN,
    }
    tok_dir = Path(tempfile.mkdtemp())
    shutil.copyfile(OUT / "spiece.model", tok_dir / "spiece.model")
    for kind, extra_ids in (("mt5", 0), ("t5", 100)):
        tokenizer = T5Tokenizer.from_pretrained(str(tok_dir), extra_ids=extra_ids)
        vocab = n + extra_ids
        texts = INPUTS + TOKENIZER_ONLY
        tok_ids = [tokenizer(t)["input_ids"] for t in texts]
        spm_ids = [sp.encode(t) + [1] for t in texts]
        for t, a, b in zip(texts, tok_ids, spm_ids):
            if a != b:
                print(f"[{kind}] transformers and sentencepiece(+</s>) differ on {t!r}:\n  {a}\n  {b}")
        model = build(kind, vocab)
        save_model(model, kind, vocab, OUT / kind)
        tensors, ref = reference(model, tokenizer)
        save_file(tensors, str(OUT / f"{kind}-reference.safetensors"))
        ref["tokenizer"] = [{"text": t, "ids": i} for t, i in zip(texts, tok_ids)]
        ref["vocab_size"] = vocab
        expected[kind] = ref
        print(kind, "greedy", ref["greedy"], "beam", ref["beam"])
    (OUT / "expected.json").write_text(json.dumps(expected, ensure_ascii=False) + "\n")
    total = sum(p.stat().st_size for p in OUT.rglob("*") if p.is_file())
    print(f"wrote {OUT} ({total / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
