#!/usr/bin/env python3
"""Load benchmark for `svodka serve`: N concurrent clients, one sentence per request.

usage:
  bench_serve.py URL --clients N --sentences FILE [--limit K] [--source en --target ru]
                 [--label L] [--append RESULTS.jsonl] [--api-key KEY]
  bench_serve.py --table RESULTS.jsonl

N threads, each with its own requests.Session (keep-alive), take the next sentence from
a shared queue and send it as `POST /translate` JSON {"q": s, "source": .., "target": ..}
until all are sent. One warm-up request goes first (not timed). Before and after the
timed load it reads the server's /metrics (Prometheus text) for the batching counters:
  mean rows per model batch    = d svodka_batch_rows_total / d svodka_batches_total
  mean requests per round      = d svodka_round_requests_total / d svodka_rounds_total
Prints one JSON object and one table line; --append adds the JSON to a JSONL file, and
--table prints a JSONL file's results as a markdown table. scripts/bench-serve.sh runs
the whole comparison (default batching against --batch-requests 1).
"""

from __future__ import annotations

import argparse
import json
import math
import queue
import re
import sys
import threading
import time
from pathlib import Path

import requests

COUNTERS = ("svodka_batches_total", "svodka_batch_rows_total", "svodka_round_requests_total",
            "svodka_rounds_total")
METRIC_LINE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)")


def read_sentences(path: Path, limit: int | None) -> list[str]:
    lines = [l.strip() for l in path.read_text(encoding="utf-8").splitlines()]
    lines = [l for l in lines if l]
    if limit is not None and limit < len(lines):
        # An evenly spaced subset, so a short run sees the whole file's mix of lengths.
        lines = [lines[i * len(lines) // limit] for i in range(limit)]
    return lines


def metrics(base: str) -> dict[str, float]:
    """The batching counters, summed over label sets; absent ones are left out."""
    r = requests.get(base + "/metrics", timeout=30)
    r.raise_for_status()
    out: dict[str, float] = {}
    for line in r.text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = METRIC_LINE.match(line)
        if m and m.group(1) in COUNTERS:
            try:
                out[m.group(1)] = out.get(m.group(1), 0.0) + float(m.group(3))
            except ValueError:
                pass
    return out


def ratio(before: dict, after: dict, num: str, den: str) -> float | None:
    if num not in after or den not in after:
        return None
    d_den = after[den] - before.get(den, 0.0)
    d_num = after[num] - before.get(num, 0.0)
    return d_num / d_den if d_den > 0 else None


def percentile(sorted_ms: list[float], p: float) -> float | None:
    if not sorted_ms:
        return None
    k = max(0, math.ceil(p / 100 * len(sorted_ms)) - 1)  # nearest rank
    return sorted_ms[k]


def run(args) -> dict:
    base = args.url.rstrip("/")
    sentences = read_sentences(args.sentences, args.limit)
    auth = {"api_key": args.api_key} if args.api_key else {}
    url = base + "/translate"

    with requests.Session() as s:
        r = s.post(url, json={"q": sentences[0], "source": args.source, "target": args.target, **auth},
                   timeout=args.timeout)
        if r.status_code != 200:
            sys.exit(f"bench_serve: warm-up request got HTTP {r.status_code}: {r.text[:300]}")

    work: queue.SimpleQueue[str] = queue.SimpleQueue()
    for s in sentences:
        work.put(s)
    lat_ms: list[float] = []
    errors: dict[str, int] = {}
    lock = threading.Lock()

    def client() -> None:
        with requests.Session() as sess:
            while True:
                try:
                    q = work.get_nowait()
                except queue.Empty:
                    return
                t0 = time.perf_counter()
                try:
                    resp = sess.post(url, json={"q": q, "source": args.source, "target": args.target, **auth},
                                     timeout=args.timeout)
                    code = str(resp.status_code)
                    ok = resp.status_code == 200 and isinstance(resp.json().get("translatedText"), str)
                except (requests.RequestException, ValueError) as e:
                    code, ok = type(e).__name__, False
                dt = (time.perf_counter() - t0) * 1000
                with lock:
                    if ok:
                        lat_ms.append(dt)
                    else:
                        errors[code] = errors.get(code, 0) + 1

    before = metrics(base)
    threads = [threading.Thread(target=client, daemon=True) for _ in range(args.clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    after = metrics(base)

    lat_ms.sort()
    n_err = sum(errors.values())
    res = {
        "label": args.label,
        "clients": args.clients,
        "requests": len(sentences),
        "errors": n_err,
        "error_kinds": errors,
        "wall_s": round(wall, 3),
        "requests_per_s": round(len(sentences) / wall, 2) if wall > 0 else None,
        "p50_ms": round(percentile(lat_ms, 50), 1) if lat_ms else None,
        "p99_ms": round(percentile(lat_ms, 99), 1) if lat_ms else None,
        "mean_batch_rows": _round(ratio(before, after, "svodka_batch_rows_total", "svodka_batches_total")),
        "mean_round_requests": _round(ratio(before, after, "svodka_round_requests_total", "svodka_rounds_total")),
        "source": args.source,
        "target": args.target,
        "sentences_file": str(args.sentences),
    }
    missing = [c for c in COUNTERS if c not in after]
    if missing:
        print(f"bench_serve: /metrics lacks {', '.join(missing)}", file=sys.stderr)
    return res


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 2)


HEADER = ("| server | clients | requests | errors | wall s | requests/s | p50 ms | p99 ms "
          "| rows/batch | requests/round |")
RULE = "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|"


def row(r: dict) -> str:
    def f(x):
        return "–" if x is None else str(x)

    return (f"| {r.get('label') or '-'} | {r['clients']} | {r['requests']} | {r['errors']} | {f(r['wall_s'])} "
            f"| {f(r['requests_per_s'])} | {f(r['p50_ms'])} | {f(r['p99_ms'])} | {f(r['mean_batch_rows'])} "
            f"| {f(r['mean_round_requests'])} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("url", nargs="?")
    ap.add_argument("--clients", type=int, default=1)
    ap.add_argument("--sentences", type=Path)
    ap.add_argument("--limit", type=int, help="an evenly spaced subset of K sentences")
    ap.add_argument("--source", default="en")
    ap.add_argument("--target", default="ru")
    ap.add_argument("--api-key")
    ap.add_argument("--timeout", type=float, default=600, help="per-request timeout, seconds")
    ap.add_argument("--label", default="", help="names the run in the table (e.g. the server's flags)")
    ap.add_argument("--append", type=Path, help="add the result to this JSONL file")
    ap.add_argument("--table", type=Path, help="print this JSONL file as a markdown table and exit")
    args = ap.parse_args()

    if args.table:
        results = [json.loads(l) for l in args.table.read_text().splitlines() if l.strip()]
        print(HEADER)
        print(RULE)
        for r in results:
            print(row(r))
        return
    if not args.url or not args.sentences:
        ap.error("URL and --sentences are required (or --table FILE)")
    if args.clients < 1:
        ap.error("--clients must be at least 1")

    res = run(args)
    print(json.dumps(res, ensure_ascii=False))
    print(row(res))
    if args.append:
        with args.append.open("a") as f:
            f.write(json.dumps(res, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
