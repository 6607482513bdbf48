#!/usr/bin/env python3
"""Marian translation throughput: svodka (f32, int8) vs CTranslate2 (float32, int8) vs transformers.

All engines run the same random-weight model of opus-mt-en-ru's exact shape (vocab 62518,
6+6 layers, d_model 512, 8 heads, FFN 2048, swish, scale_embedding, static sinusoidal
positions, pad 62517, eos 0, decoder start 62517) on the same batches of WMT22 en-ru
sources, generate exactly the same number of target tokens, each in its own process with
2 threads, in interleaved order; the driver reports median target tokens per second and
peak RSS (from /usr/bin/time) per engine and search, and for each int8 engine the share
of sentences whose output equals that engine's float32 output.

Workload (prepare):
  * sources: generaltest2022.en-ru.src.en ($WMT22_SRC), tokenized with a SentencePiece
    unigram model (up to 16k pieces) trained on all English WMT22 text here (that file
    and the ru-en reference, generaltest2022.ru-en.ref.A.en); the real opus-mt spm model
    is not available, and 1.3-1.4 pieces per word is about what a 32k news model gives.
    Piece ids sit directly in the 62518 vocab (0 = </s>, 1 = <unk>), plus a final </s>.
  * forced target length of a sentence = min(ceil(1.2 x source ids incl. </s>), 256);
    sentences are sorted by source length (longest first), cut into batches of 16, and
    every sentence of a batch generates exactly the batch's largest forced length
    (min = max new tokens), identical for every engine.
  * weights: MarianMTModel with the exact config, seed 0, weights ~ N(0, 1/fan_in),
    embeddings ~ N(0, 0.05^2), pad row of
    the embedding zeroed (CTranslate2 starts decoding from a zero embedding, the others
    from the pad embedding: zero makes them the same), forced_eos_token_id off; saved as
    safetensors (svodka and transformers load it) and converted with CTranslate2's
    TransformersConverter to float32 and int8 (vocabulary supplied: "</s>", "<unk>",
    "t2".., "<pad>").

usage:
  bench_marian.py prepare --dir .bench [--sentences N]
  bench_marian.py worker --engine ENGINE --beam B --dir .bench [--out ids.json]
  bench_marian.py run --dir .bench --svodka-bin PATH [--reps 3] [--beams 1,4]
"""

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

VOCAB, PAD, EOS, UNK = 62518, 62517, 0, 1
# Threads per engine; the driver's --threads reaches its workers through the environment.
THREADS = int(os.environ.get("BENCH_THREADS", "2"))
BATCH = 16
RATIO, CAP = 1.2, 256
SPM_VOCAB = 16000
ENGINES = ["svodka", "svodka-int8", "ct2-float32", "ct2-int8", "transformers"]
# Each quantized engine beside the float32 run of the same engine, for agreement.
FLOAT_OF = {"svodka-int8": "svodka", "ct2-int8": "ct2-float32"}
REPO = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("WMT22_DIR", REPO.parent / "shared" / "data" / "wmt22"))


def vocabulary() -> list[str]:
    return ["</s>", "<unk>"] + [f"t{i}" for i in range(2, VOCAB - 1)] + ["<pad>"]


# ---------------------------------------------------------------- prepare


def tokenize(src: Path, train: list[Path], work: Path, sentences: int) -> dict:
    import sentencepiece as spm

    prefix = work / "spm-en"
    if not prefix.with_suffix(".model").exists():
        spm.SentencePieceTrainer.train(
            input=",".join(map(str, train)),
            model_prefix=str(prefix),
            vocab_size=SPM_VOCAB,
            model_type="unigram",
            eos_id=EOS,
            unk_id=UNK,
            bos_id=-1,
            pad_id=-1,
            hard_vocab_limit=False,
            num_threads=THREADS,
        )
    sp = spm.SentencePieceProcessor(model_file=str(prefix.with_suffix(".model")))
    lines = src.read_text(encoding="utf-8").splitlines()
    total = len(lines)
    # Evenly spaced over the file, so a subset still covers every domain of the test set.
    pick = sorted({i * total // sentences for i in range(sentences)})
    ids = [sp.encode(lines[i]) + [EOS] for i in pick]
    order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
    batches = []
    for b in range(0, len(order), BATCH):
        rows = order[b : b + BATCH]
        forced = max(min(math.ceil(RATIO * len(ids[i])), CAP) for i in rows)
        batches.append({"new_tokens": forced, "index": [pick[i] for i in rows], "ids": [ids[i] for i in rows]})
    lens = [len(x) for x in ids]
    words = sum(len(lines[i].split()) for i in pick)
    return {
        "source": str(src),
        "sentences": len(ids),
        "of": total,
        "source_tokens": sum(lens),
        "mean_source_len": sum(lens) / len(lens),
        "pieces_per_word": (sum(lens) - len(lens)) / max(words, 1),
        "target_tokens": sum(b["new_tokens"] * len(b["ids"]) for b in batches),
        "batches": batches,
    }


def make_model(model_dir: Path) -> None:
    import torch
    from transformers import MarianConfig, MarianMTModel

    cfg = MarianConfig(
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
        static_position_embeddings=True,
        max_position_embeddings=512,
        pad_token_id=PAD,
        eos_token_id=EOS,
        decoder_start_token_id=PAD,
        forced_eos_token_id=None,
        share_encoder_decoder_embeddings=True,
        tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    model = MarianMTModel(cfg).eval()
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        # Scales that keep activations O(1). A random model still tends to repeat one token
        # per sentence (beam search does branch), which changes nothing in the work per step.
        for name, p in model.named_parameters():
            if "embed_positions" in name:
                continue  # static sinusoids
            if "layer_norm" in name and name.endswith("weight"):
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=gen))
            elif name.endswith("bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=gen))
            elif "embed_tokens" in name or "shared" in name:
                p.copy_(0.05 * torch.randn(p.shape, generator=gen))
            else:
                p.copy_(torch.randn(p.shape, generator=gen) / p.shape[-1] ** 0.5)
        model.get_input_embeddings().weight[PAD].zero_()
    model.save_pretrained(model_dir, safe_serialization=True)


def convert_ct2(model_dir: Path, out: Path, quantization: str) -> None:
    import ctranslate2
    from types import SimpleNamespace

    tokens = vocabulary()
    fake = SimpleNamespace(
        get_vocab=lambda: {t: i for i, t in enumerate(tokens)}, eos_token="</s>", unk_token="<unk>"
    )

    class Converter(ctranslate2.converters.TransformersConverter):
        # The random model has no tokenizer files; the loader only needs the vocabulary.
        def load_tokenizer(self, tokenizer_class, model_name_or_path, **kwargs):
            return fake

    Converter(str(model_dir)).convert(str(out), quantization=quantization, force=True)


def prepare(args) -> None:
    work = Path(args.dir)
    work.mkdir(parents=True, exist_ok=True)
    src = Path(os.environ.get("WMT22_SRC", DATA / "generaltest2022.en-ru.src.en"))
    train = [src, DATA / "generaltest2022.ru-en.ref.A.en"]
    workload = tokenize(src, train, work, args.sentences)
    (work / "workload.json").write_text(json.dumps(workload))
    model_dir = work / "marian-en-ru-random"
    if not (model_dir / "model.safetensors").exists():
        make_model(model_dir)
    for q in ("float32", "int8"):
        if not (work / f"ct2-{q}" / "model.bin").exists():
            convert_ct2(model_dir, work / f"ct2-{q}", q)
    print(
        f"prepared {workload['sentences']} of {workload['of']} sentences, "
        f"{workload['source_tokens']} source ids (mean {workload['mean_source_len']:.1f}, "
        f"{workload['pieces_per_word']:.2f} pieces/word), {len(workload['batches'])} batches, "
        f"{workload['target_tokens']} forced target tokens per engine and search"
    )


# ---------------------------------------------------------------- workers


def run_transformers(model_dir: Path, batches: list, beam: int) -> tuple[float, list, float]:
    """(load seconds, generated ids per batch, decode seconds)."""
    import torch
    from transformers import GenerationConfig, MarianMTModel

    torch.set_num_threads(THREADS)
    torch.set_num_interop_threads(1)
    t0 = time.perf_counter()
    model = MarianMTModel.from_pretrained(model_dir).eval()
    load = time.perf_counter() - t0
    outs = []
    t0 = time.perf_counter()
    with torch.inference_mode():
        for b in batches:
            n = b["new_tokens"]
            width = max(len(x) for x in b["ids"])
            ids = torch.tensor([x + [PAD] * (width - len(x)) for x in b["ids"]])
            mask = torch.tensor([[1] * len(x) + [0] * (width - len(x)) for x in b["ids"]])
            gen = GenerationConfig(
                num_beams=beam,
                do_sample=False,
                min_new_tokens=n,
                max_new_tokens=n,
                decoder_start_token_id=PAD,
                eos_token_id=EOS,
                pad_token_id=PAD,
                forced_eos_token_id=None,
                suppress_tokens=[PAD],
                length_penalty=1.0,
            )
            seq = model.generate(input_ids=ids, attention_mask=mask, generation_config=gen)
            outs.append([row[1:].tolist() for row in seq])
    return load, outs, time.perf_counter() - t0


def run_ct2(ct2_dir: Path, batches: list, beam: int) -> tuple[float, list, float]:
    """(load seconds, generated ids per batch, decode seconds)."""
    import ctranslate2

    tokens = vocabulary()
    t0 = time.perf_counter()
    tr = ctranslate2.Translator(str(ct2_dir), device="cpu", intra_threads=THREADS, inter_threads=1)
    load = time.perf_counter() - t0
    index = {t: i for i, t in enumerate(tokens)}
    outs = []
    t0 = time.perf_counter()
    for b in batches:
        n = b["new_tokens"]
        src = [[tokens[i] for i in x] for x in b["ids"]]
        res = tr.translate_batch(
            src, beam_size=beam, min_decoding_length=n, max_decoding_length=n, max_batch_size=0
        )
        outs.append([[index[t] for t in r.hypotheses[0]] for r in res])
    return load, outs, time.perf_counter() - t0


def worker(args) -> None:
    work = Path(args.dir)
    batches = json.loads((work / "workload.json").read_text())["batches"]
    if args.engine == "transformers":
        load, outs, decode = run_transformers(work / "marian-en-ru-random", batches, args.beam)
    else:
        q = args.engine.removeprefix("ct2-")
        load, outs, decode = run_ct2(work / f"ct2-{q}", batches, args.beam)
    got = sum(len(r) for o in outs for r in o)
    for b, o in zip(batches, outs):
        bad = [len(r) for r in o if len(r) != b["new_tokens"]]
        if bad:
            sys.exit(f"{args.engine}: forced length failed: {bad[:3]} tokens, wanted {b['new_tokens']}")
    if args.out:
        Path(args.out).write_text(json.dumps(outs))
    print(
        json.dumps(
            {
                "engine": args.engine,
                "beam": args.beam,
                "sentences": sum(len(b["ids"]) for b in batches),
                "tokens": got,
                "load_s": load,
                "decode_s": decode,
                "tok_per_s": got / decode,
            }
        )
    )


# ---------------------------------------------------------------- driver


def one(engine: str, beam: int, args, out: Path) -> dict:
    t = str(args.threads)
    env = dict(os.environ, BENCH_THREADS=t, RAYON_NUM_THREADS=t, OMP_NUM_THREADS=t)
    env.pop("CT2_USE_MKL", None)  # on AMD it makes CTranslate2 several times slower
    if engine.startswith("svodka"):
        dtype = "int8" if engine == "svodka-int8" else "f32"
        cmd = [args.svodka_bin, "--dtype", dtype, str(Path(args.dir) / "marian-en-ru-random"), str(Path(args.dir) / "workload.json"), str(beam), str(out)]
    else:
        cmd = [sys.executable, __file__, "worker", "--engine", engine, "--beam", str(beam), "--dir", args.dir, "--out", str(out)]
    with tempfile.NamedTemporaryFile("r") as rss:
        p = subprocess.run(["/usr/bin/time", "-f", "%M %e %U %S", "-o", rss.name, *cmd], env=env, capture_output=True, text=True)
        if p.returncode != 0:
            raise SystemExit(f"{engine} beam {beam} failed:\n{p.stderr[-3000:]}")
        kib, wall, user, system = rss.read().split()[-4:]
    res = json.loads(p.stdout.strip().splitlines()[-1])
    res["rss_mib"] = int(kib) / 1024
    res["wall_s"] = float(wall)
    res["cpu_s"] = float(user) + float(system)  # whole process, loading included
    res["loadavg"] = os.getloadavg()[0]
    return res


def agreement(a: list, b: list) -> float:
    rows = [(x, y) for ba, bb in zip(a, b) for x, y in zip(ba, bb)]
    return sum(x == y for x, y in rows) / len(rows)


def run(args) -> None:
    work = Path(args.dir)
    meta = json.loads((work / "workload.json").read_text())
    beams = [int(b) for b in args.beams.split(",")]
    engines = args.engines.split(",")
    results: dict = {}
    outs = {}
    load0 = os.getloadavg()
    t_start = time.time()
    for rep in range(args.reps):
        # Rotate the order every repetition so no engine always runs first or last.
        order = engines[rep % len(engines) :] + engines[: rep % len(engines)]
        for beam in beams:
            for engine in order:
                out = work / f"out-{engine}-b{beam}.json"
                r = one(engine, beam, args, out)
                print(json.dumps(r), flush=True)
                results.setdefault((engine, beam), []).append(r)
                outs[(engine, beam)] = json.loads(out.read_text())
    load1 = os.getloadavg()

    med = lambda xs: statistics.median(xs)
    lines = [
        f"Workload: {meta['sentences']} of {meta['of']} sentences of {Path(meta['source']).name} "
        f"(mean {meta['mean_source_len']:.1f} source ids with </s>), batches of {BATCH} sorted by length, "
        f"{meta['target_tokens']} forced target tokens per run; {args.threads} threads; "
        f"median of {args.reps} interleaved repetitions. Load average before/after: "
        f"{load0[0]:.1f} / {load1[0]:.1f}; {time.time() - t_start:.0f} s in all.",
        "",
        "| engine | greedy tok/s | beam 4 tok/s | peak RSS greedy / beam 4 | load |",
        "|---|---|---|---|---|",
    ]
    for e in engines:
        cells = []
        for beam in (1, 4):
            rs = results.get((e, beam))
            cells.append(f"{med([r['tok_per_s'] for r in rs]):.0f}" if rs else "—")
        rss = " / ".join(
            f"{med([r['rss_mib'] for r in results[(e, b)]]):.0f} MiB" if (e, b) in results else "—" for b in (1, 4)
        )
        loads = [r["load_s"] for b in beams for r in results.get((e, b), [])]
        lines.append(f"| {e} | {cells[0]} | {cells[1]} | {rss} | {med(loads):.2f} s |")
    lines.append("")
    for beam in beams:
        for sv in ("svodka", "svodka-int8"):
            if (sv, beam) not in results:
                continue
            s = med([r["tok_per_s"] for r in results[(sv, beam)]])
            ratios = [
                f"{s / med([r['tok_per_s'] for r in results[(e, beam)]]):.2f}x {e}"
                for e in engines
                if e != sv and (e, beam) in results
            ]
            lines.append(f"{sv} beam {beam}: " + ", ".join(ratios))
            prof = results[(sv, beam)]
            parts = {k: med([r[k] for r in prof]) for k in ("decode_s", "encode_s", "step_s", "reorder_s", "host_s")}
            lines.append(
                f"  {sv} time split (median): encoder {parts['encode_s']:.1f} s, decoder steps "
                f"{parts['step_s']:.1f} s, cache reorders {parts['reorder_s']:.1f} s, host-side search "
                f"{parts['host_s']:.1f} s of {parts['decode_s']:.1f} s"
            )
    for beam in beams:
        agree = [
            f"{q} {agreement(outs[(q, beam)], outs[(f, beam)]):.0%} of {f}'s"
            for q, f in FLOAT_OF.items()
            if (q, beam) in outs and (f, beam) in outs
        ]
        if agree:
            search = "greedy" if beam == 1 else f"beam {beam}"
            lines.append(f"{search} outputs identical to the same engine's float32 (sentences): " + ", ".join(agree))
    if (("transformers", 1) in outs) and (("svodka", 1) in outs):
        ref = outs[("transformers", 1)]
        agree = [f"{e} {agreement(outs[(e, 1)], ref):.0%}" for e in engines if e != "transformers" and (e, 1) in outs]
        lines.append("greedy outputs identical to transformers' (sentences): " + ", ".join(agree))
    text = "\n".join(lines)
    print("\n" + text)
    suffix = "" if args.threads == 2 else f"-{args.threads}t"
    (work / f"marian-results{suffix}.md").write_text(text + "\n")
    with open(work / f"marian-results{suffix}.jsonl", "w") as f:
        for rs in results.values():
            for r in rs:
                f.write(json.dumps(r) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("--dir", default=".bench")
    p.add_argument("--sentences", type=int, default=2037, help="evenly spaced subset size")
    p.set_defaults(fn=prepare)
    w = sub.add_parser("worker")
    w.add_argument("--engine", choices=ENGINES[1:], required=True)
    w.add_argument("--beam", type=int, required=True)
    w.add_argument("--dir", default=".bench")
    w.add_argument("--out")
    w.set_defaults(fn=worker)
    r = sub.add_parser("run")
    r.add_argument("--dir", default=".bench")
    r.add_argument("--svodka-bin", required=True)
    r.add_argument("--reps", type=int, default=3)
    r.add_argument("--beams", default="1,4")
    r.add_argument("--engines", default=",".join(ENGINES))
    r.add_argument("--threads", type=int, default=THREADS)
    r.set_defaults(fn=run)
    args = ap.parse_args()
    args.fn(args)


if __name__ == "__main__":
    main()
