#!/usr/bin/env python3
"""Record llama.cpp reference outputs for Gemma 3 270M (Q4_K_M GGUF) into tests/fixtures/gguf/.

llama.cpp (through llama-cpp-python) is the reference implementation for the GGUF
tokenizer rebuilt in src/tokenizer/gguf.rs and for the GGUF LLM engine. Files written
(format: tests/fixtures/gguf/README.md):

  tokens.json  token ids for the seed article, 50 English + 50 Russian WMT22 sentences and
               a few strings that exercise control tokens, whitespace runs and byte fallback
  logits.json  per-position top-1 and top-20 (id, logit) for three ~60-token prompts
  greedy.json  48-token greedy continuations of the same prompts

Setup (builds llama.cpp from source, ~11 minutes on 2 cores):
  python3 -m venv .venv-llama
  CMAKE_ARGS="-DGGML_NATIVE=ON" .venv-llama/bin/pip install -r scripts/requirements-llama.txt
  scripts/fetch-gemma.sh
  .venv-llama/bin/python scripts/make_gguf_fixtures.py
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path

import llama_cpp
import numpy as np

REPO = Path(__file__).resolve().parent.parent
DEFAULT_MODEL = REPO / ".models" / "gemma-3-270m" / "gemma-3-270m-Q4_K_M.gguf"
DEFAULT_DATA = Path(os.environ.get("SVODKA_SHARED_DATA", REPO.parent / "shared" / "data"))
OUT_DIR = REPO / "tests" / "fixtures" / "gguf"

N_CTX = 512
N_THREADS = 2
TOP_K = 20
GREEDY_TOKENS = 48
SENTENCES_PER_LANGUAGE = 50

# Strings that are not news but hit the tokenizer's corners: control tokens (parsed as
# special), user-defined tokens (newline/space/tab runs, HTML tags), leading/trailing
# spaces, characters missing from the vocabulary (byte fallback), and the empty string.
EXTRA_TEXTS = {
    "chat_turns": "<start_of_turn>user\nTranslate into Russian: The talks went well.<end_of_turn>\n"
    "<start_of_turn>model\n",
    "control_literals": "<bos>text between<eos> controls <unk><pad><mask>",
    "html_and_runs": "Table:<table><tr><td>1</td></tr></table>\n\n\n\n  two  spaces,    four,\ttab\t\ttabs",
    "edge_spaces": " leading space and trailing space ",
    "mixed_scripts": "Москва, 4 сентября 2020 г. — «Привет», сказал он. Ünïcödé ẞ ǅ ﬁ №5 ½",
    "byte_fallback": "rare: \U0001f999\U0001fab8 \U00020000\U0002a6d6 \u0b95\u0bcd\u0bb7 \U0010fffd end",
    "empty": "",
}

PROMPTS = {
    "en_news": "Russia and Belarus are preparing to reopen borders that were closed because of the "
    "coronavirus pandemic and are discussing rerouting Belarusian oil exports through Russia, "
    "news outlets reported after high-level talks in Minsk on Thursday. The sides have made strides "
    "in agreeing to lift travel restrictions imposed since late March. Russian Prime Minister",
    "ru_news": "Премьер-министр России Михаил Мишустин встретился в Минске с президентом Белоруссии "
    "Александром Лукашенко. Стороны обсудили открытие границ, закрытых из-за пандемии "
    "коронавируса, а также перенаправление экспорта белорусской нефти через российские порты. "
    "По словам",
    "tldr_summary": "Russia and Belarus are preparing to reopen borders closed because of the pandemic "
    "and are discussing rerouting Belarusian oil exports through Russian ports, news outlets "
    "reported after talks in Minsk on Thursday. A final decision is expected when Lukashenko "
    "meets Putin in Moscow within two weeks.\n\nTL;DR:",
}


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def first_non_empty_lines(path: Path, n: int) -> list[str]:
    lines = [line.rstrip("\n") for line in path.read_text(encoding="utf-8").split("\n")]
    picked = [line for line in lines if line.strip()][:n]
    if len(picked) != n:
        sys.exit(f"{path}: only {len(picked)} non-empty lines, need {n}")
    return picked


def tokenize(llm: llama_cpp.Llama, text: str, add_bos: bool) -> list[int]:
    ids = llm.tokenize(text.encode("utf-8"), add_bos=add_bos, special=True)
    return [int(i) for i in ids]


def token_cases(llm: llama_cpp.Llama, data: Path, add_bos: bool) -> list[dict]:
    texts: list[tuple[str, str]] = [
        ("seed_article", (data / "seed-article.txt").read_bytes().decode("utf-8")),
    ]
    for lang, name in (("en", "generaltest2022.en-ru.src.en"), ("ru", "generaltest2022.ru-en.src.ru")):
        for i, line in enumerate(first_non_empty_lines(data / "wmt22" / name, SENTENCES_PER_LANGUAGE)):
            texts.append((f"wmt22_{lang}_{i:02d}", line))
    texts.extend(EXTRA_TEXTS.items())

    cases = []
    for name, text in texts:
        ids = tokenize(llm, text, add_bos)
        # News text holds no control-token literals, so parse_special must not matter there;
        # a difference would mean the fixture mixes two behaviours.
        plain = [int(i) for i in llm.tokenize(text.encode("utf-8"), add_bos=add_bos, special=False)]
        if name not in ("chat_turns", "control_literals") and plain != ids:
            sys.exit(f"{name}: special=True and special=False tokenizations differ")
        body = ids[1:] if add_bos and ids[:1] == [llm.token_bos()] else ids
        detok = llm.detokenize(body).decode("utf-8", errors="replace")
        cases.append({"name": name, "text": text, "ids": ids, "llama_roundtrip": detok == text})
    return cases


def dump_all(llm: llama_cpp.Llama, data: Path, add_bos: bool, out: Path) -> None:
    """Ids for every WMT22 line and news document: a large uncommitted parity set."""
    texts = []
    for path in sorted((data / "wmt22").glob("generaltest2022.*")):
        lines = path.read_text(encoding="utf-8").split("\n")
        texts += [(f"{path.name}:{i + 1}", line) for i, line in enumerate(lines) if line.strip()]
    for path in sorted((data / "news-wmt22").glob("*/*.txt")):
        texts.append((f"news-wmt22/{path.parent.name}/{path.name}", path.read_text(encoding="utf-8")))
    cases = [{"name": name, "text": text, "ids": tokenize(llm, text, add_bos)} for name, text in texts]
    out.write_text(json.dumps({"cases": cases}, ensure_ascii=False), encoding="utf-8")
    print(f"wrote {out} ({len(cases)} texts, {sum(len(c['ids']) for c in cases)} tokens)")


def logits_rows(scores: np.ndarray) -> list[dict]:
    rows = []
    for row in scores:
        row = row.astype(np.float64)
        top = np.argsort(-row, kind="stable")[:TOP_K]
        lse = float(np.log(np.exp(row - row.max()).sum()) + row.max())
        rows.append(
            {
                "top1": int(top[0]),
                "logsumexp": round(lse, 4),
                "top": [[int(i), round(float(row[i]), 4)] for i in top],
            }
        )
    return rows


def prompt_runs(llm: llama_cpp.Llama, add_bos: bool) -> tuple[list[dict], list[dict]]:
    logit_records, greedy_records = [], []
    for name, prompt in PROMPTS.items():
        ids = tokenize(llm, prompt, add_bos)
        llm.reset()
        llm.eval(ids)
        scores = np.array(llm.scores[: llm.n_tokens], copy=True)
        logit_records.append({"name": name, "prompt": prompt, "ids": ids, "positions": logits_rows(scores)})

        # Greedy = argmax of the raw logits; no sampler, so no penalty or temperature path.
        generated = []
        next_id = int(np.argmax(scores[-1]))
        for _ in range(GREEDY_TOKENS):
            generated.append(next_id)
            llm.eval([next_id])
            next_id = int(np.argmax(llm.scores[llm.n_tokens - 1]))
        # Cross-check against llama.cpp's own sampler chain at temperature 0 / top_k 1.
        llm.reset()
        sampled = []
        for tok in llm.generate(ids, top_k=1, top_p=1.0, min_p=0.0, temp=0.0, repeat_penalty=1.0, reset=True):
            sampled.append(int(tok))
            if len(sampled) == GREEDY_TOKENS:
                break
        greedy_records.append(
            {
                "name": name,
                "prompt": prompt,
                "prompt_ids": ids,
                "ids": generated,
                "text": llm.detokenize(generated).decode("utf-8", errors="replace"),
                "sampler_agrees": sampled == generated,
            }
        )
    return logit_records, greedy_records


def write_json(path: Path, value: dict) -> None:
    path.write_text(json.dumps(value, ensure_ascii=False, separators=(",", ":")) + "\n", encoding="utf-8")
    print(f"wrote {path.relative_to(REPO)} ({path.stat().st_size} bytes)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=Path(os.environ.get("SVODKA_GEMMA_GGUF", DEFAULT_MODEL)))
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="shared data folder")
    parser.add_argument(
        "--dump-all",
        type=Path,
        metavar="JSON",
        help="instead of the fixtures, write ids for all WMT22 lines and news documents to JSON "
        "(for SVODKA_GGUF_PARITY_DUMP in tests/gguf_parity.rs)",
    )
    args = parser.parse_args()
    if not args.model.is_file():
        sys.exit(f"{args.model} not found; run scripts/fetch-gemma.sh")

    llm = llama_cpp.Llama(
        model_path=str(args.model),
        n_ctx=N_CTX,
        n_batch=N_CTX,
        n_threads=N_THREADS,
        logits_all=True,
        seed=0,
        verbose=False,
    )
    add_bos = bool(llm._model.add_bos_token()) if hasattr(llm._model, "add_bos_token") else True
    meta = {
        "llama_cpp_python": llama_cpp.__version__,
        "model": args.model.name,
        "model_sha256": sha256_file(args.model),
        "add_bos": add_bos,
        "parse_special": True,
        "bos_id": int(llm.token_bos()),
        "eos_id": int(llm.token_eos()),
        "n_vocab": int(llm.n_vocab()),
    }
    if args.dump_all:
        dump_all(llm, args.data, add_bos, args.dump_all)
        return
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    write_json(OUT_DIR / "tokens.json", {"meta": meta, "cases": token_cases(llm, args.data, add_bos)})
    logit_records, greedy_records = prompt_runs(llm, add_bos)
    gen_meta = {**meta, "n_ctx": N_CTX, "n_threads": N_THREADS}
    write_json(OUT_DIR / "logits.json", {"meta": {**gen_meta, "top_k": TOP_K}, "prompts": logit_records})
    write_json(
        OUT_DIR / "greedy.json",
        {"meta": {**gen_meta, "max_new_tokens": GREEDY_TOKENS, "repeat_penalty": 1.0}, "prompts": greedy_records},
    )


if __name__ == "__main__":
    main()
