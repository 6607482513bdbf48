#!/usr/bin/env python3
"""Train small SentencePiece models on WMT22 text and record reference ids.

Writes tests/fixtures/spm/:
  unigram.model   unigram, vocab 2000, nmt_nfkc (precompiled charsmap), byte_fallback
  bpe.model       BPE, vocab 2000, identity normalization (no charsmap), byte_fallback
  marian/         OPUS-MT style pair: source.spm (English), target.spm (Russian),
                  unigram, vocab 1000, identity normalization, no byte fallback
                  (as OPUS-MT), and a joint vocab.json laid out as
                  Marian's: "</s>"=0, "<unk>"=1, language tags, pieces by corpus
                  frequency, "<pad>" last
  texts.json      the sentences: 150 Russian + 150 English from WMT22 plus edge cases
  expected.json   ids (and decodes where they differ from the text) from the Python
                  sentencepiece package; for the Marian pair, from transformers'
                  MarianTokenizer itself

Run: python3 -m venv .venv-spm && .venv-spm/bin/pip install -r scripts/requirements-spm.txt
     .venv-spm/bin/python scripts/make_spm_fixtures.py [--data /work/shared/data]
"""

import argparse
import os
import collections
import io
import json
from pathlib import Path

import sentencepiece as spm

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fixtures" / "spm"
SENTENCES_PER_LANGUAGE = 150
LANGUAGE_TAGS = [">>rus<<", ">>eng<<", ">>ukr<<"]

EDGE_CASES = [
    "",
    "   ",
    "Привет, мир! 👋🏽 Hello 🌍",
    "👨‍👩‍👧‍👦 семья 🇷🇺🇬🇧",
    "  leading and trailing spaces  ",
    "multiple     spaces\tand\ttabs\nand a newline",
    "１２３４５ full-width digits ＡＢＣ ｶﾀｶﾅ",
    "ﬁnancial ﬂow ﬀ ligatures, № 5, ™, ½, ²",
    "«Ёлочки» и „лапки“ — тире… многоточие",
    "Ёжик в тумане, ЁЛКА, ёлка",
    "3,14159 1 000 000 2026-11-27 12:30 +7 (495) 123-45-67",
    "Цена: 100 000 ₽, $1.5 млн, 25 °C, 90%",
    "ǅ Ω ß ẞ ŉ Ǆ",
    "日本語のテキスト 中文 한국어",
    "עברית العربية ﷺ",
    "Zalgo: Z̤͔ͧ̑̓ä͖̭̈̇lͮ̒ͫǧ̗͚̚o̙̔ͮ̇͐̇",
    "e\u0301 composed vs é",
    "zero\u200bwidth and soft\u00adhyphen and nbsp\u00a0here",
    "Превысокомногорассмотрительствующий",
    "https://example.com/path?q=1&x=2 test@mail.ru",
    "iPhone 15 Pro Max — за 100 000 ₽",
    "Line one.\r\nLine two.",
    "x",
    "▁ already has a metaspace ▁▁",
]

# Marian source side: language tags are split off before SentencePiece, special
# tokens written in the text are matched as specials.
MARIAN_SOURCE_EXTRA = [
    ">>rus<< Hello world",
    ">>rus<<Hello",
    ">>ukr<< Good morning, Kyiv.",
    ">>xyz<< unknown tag",
    "Hello >>rus<< in the middle",
    ">>rus no closing",
    "Text with </s> inside",
    "an <unk> written out and a <pad>",
    "😀 emoji is unknown here",
    "<s> is plain text to SentencePiece, </s> is not to Marian",
]


def read_lines(path):
    with open(path, encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f if line.strip()]


def corpus(data):
    wmt = data / "wmt22"
    ru = read_lines(wmt / "generaltest2022.ru-en.src.ru") + read_lines(
        wmt / "generaltest2022.en-ru.ref.A.ru"
    )
    en = read_lines(wmt / "generaltest2022.en-ru.src.en") + read_lines(
        wmt / "generaltest2022.ru-en.ref.A.en"
    )
    for lang, lines in (("ru", ru), ("en", en)):
        for doc in sorted((data / "news-wmt22" / "segmented" / lang).glob("*.txt")):
            lines.extend(read_lines(doc))
    return ru, en


def pick(lines, count):
    step = max(1, len(lines) // count)
    return lines[::step][:count]


def train(lines, path, **options):
    # model_writer keeps the (temporary) model_prefix out of the model, so the same
    # data gives byte-identical models.
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines),
        model_writer=model,
        num_threads=2,
        minloglevel=2,
        **options,
    )
    Path(path).write_bytes(model.getvalue())
    return spm.SentencePieceProcessor(model_file=str(path))


def record(sp, texts):
    """Ids per text; the decode only where it is not the text itself."""
    ids, decoded = [], {}
    for i, text in enumerate(texts):
        row = sp.encode(text)
        ids.append(row)
        back = sp.decode(row)
        if back != text:
            decoded[str(i)] = back
    return {"ids": ids, "decoded": decoded}


def marian_vocab(src, tgt, en, ru):
    """Joint vocabulary as marian-vocab builds it: pieces by corpus frequency.

    Pieces seen only once are left out, so some SentencePiece pieces map to <unk>
    the way they do in real OPUS-MT models.
    """
    counts = collections.Counter()
    for sp, lines in ((src, en), (tgt, ru)):
        for line in lines:
            counts.update(sp.encode(line, out_type=str))
    vocab = {"</s>": 0, "<unk>": 1}
    for tag in LANGUAGE_TAGS:
        vocab[tag] = len(vocab)
    for piece, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        if n >= 2 and piece not in vocab:
            vocab[piece] = len(vocab)
    vocab["<pad>"] = len(vocab)
    return vocab


def record_marian(marian_dir, en_texts, ru_texts):
    from transformers import MarianTokenizer

    tok = MarianTokenizer(
        source_spm=str(marian_dir / "source.spm"),
        target_spm=str(marian_dir / "target.spm"),
        vocab=str(marian_dir / "vocab.json"),
    )
    source = [tok(t)["input_ids"] for t in en_texts]
    target = [tok(text_target=t)["input_ids"] for t in ru_texts]
    # Decoding exercises specials in the middle: <unk> and a language tag inside,
    # <pad> after </s>.
    decode_inputs = [list(ids) for ids in target]
    for i, ids in enumerate(decode_inputs[:20]):
        ids.insert(len(ids) // 2, tok.unk_token_id if i % 2 else tok.convert_tokens_to_ids(">>rus<<"))
        ids.append(tok.pad_token_id)
    decode = []
    for i, ids in enumerate(decode_inputs):
        case = {"text": tok.decode(ids, skip_special_tokens=False)}
        skipped = tok.decode(ids, skip_special_tokens=True)
        if skipped != case["text"]:
            case["text_skip"] = skipped
        # Unchanged inputs are target_ids[i]; only the edited ones are spelled out.
        if ids != target[i]:
            case["ids"] = ids
        decode.append(case)
    return {
        "source_ids": source,
        "target_ids": target,
        "decode": decode,
        "vocab_size": tok.vocab_size,
        "pad_id": tok.pad_token_id,
        "eos_id": tok.eos_token_id,
        "unk_id": tok.unk_token_id,
    }


def write_rows(path, obj):
    """JSON with one sentence per line, so a diff shows which sentence changed."""

    def dump(value, indent):
        pad = "  " * indent
        if isinstance(value, dict):
            items = [f'{pad}  {json.dumps(k)}: {dump(v, indent + 1)}' for k, v in value.items()]
            return "{\n" + ",\n".join(items) + f"\n{pad}}}" if items else "{}"
        if isinstance(value, list) and value and isinstance(value[0], (list, dict, str)):
            items = [pad + "  " + json.dumps(v, ensure_ascii=False, separators=(",", ":")) for v in value]
            return "[\n" + ",\n".join(items) + f"\n{pad}]"
        return json.dumps(value, ensure_ascii=False)

    Path(path).write_text(dump(obj, 0) + "\n", encoding="utf-8")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("SVODKA_SHARED_DATA", ROOT.parent / "shared" / "data")))
    args = parser.parse_args()

    ru, en = corpus(args.data)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "marian").mkdir(exist_ok=True)

    groups = {
        "ru": pick(ru, SENTENCES_PER_LANGUAGE),
        "en": pick(en, SENTENCES_PER_LANGUAGE),
        "edge": EDGE_CASES,
        "marian_source_extra": MARIAN_SOURCE_EXTRA,
    }
    write_rows(OUT / "texts.json", groups)
    # The order the Rust test rebuilds: unigram/bpe read ru + en + edge, the Marian
    # source side en + edge + marian_source_extra, the target side ru + edge.
    texts = groups["ru"] + groups["en"] + groups["edge"]

    common = dict(vocab_size=2000, character_coverage=0.9995, byte_fallback=True)
    unigram = train(ru + en, OUT / "unigram.model", model_type="unigram", **common)
    bpe = train(
        ru + en, OUT / "bpe.model", model_type="bpe", normalization_rule_name="identity", **common
    )

    marian_dir = OUT / "marian"
    pair = dict(vocab_size=1000, model_type="unigram", normalization_rule_name="identity")
    src = train(en, marian_dir / "source.spm", **pair)
    tgt = train(ru, marian_dir / "target.spm", **pair)
    vocab = marian_vocab(src, tgt, en, ru)
    (marian_dir / "vocab.json").write_text(
        json.dumps(vocab, ensure_ascii=False, indent=0) + "\n", encoding="utf-8"
    )
    spm_pieces = {src.id_to_piece(i) for i in range(src.get_piece_size())} | {
        tgt.id_to_piece(i) for i in range(tgt.get_piece_size())
    }
    missing = len(spm_pieces - vocab.keys())

    en_texts = groups["en"] + groups["edge"] + groups["marian_source_extra"]
    ru_texts = groups["ru"] + groups["edge"]
    expected = {
        "unigram": record(unigram, texts),
        "bpe": record(bpe, texts),
        "marian": record_marian(marian_dir, en_texts, ru_texts),
    }
    write_rows(OUT / "expected.json", expected)

    total = sum(f.stat().st_size for f in OUT.rglob("*") if f.is_file())
    print(f"{len(texts)} texts; vocab.json {len(vocab)} entries, {missing} spm pieces not in it")
    print(f"fixtures: {total / 1024:.0f} KiB in {OUT}")


if __name__ == "__main__":
    main()
