#!/usr/bin/env python3
"""Length ratios of human translations in the WMT22 general test set.

For each direction, the ratio (len(reference) + C) / (len(source) + C) in characters,
with C = 10 so that a one-word segment ("Да." / "Yes.") does not swing it, and its
percentiles. svodka's length check (src/pipeline/checks.rs) takes its bounds beyond the
0.1 / 99.9 percentiles printed here.

    python3 scripts/length_ratio.py [/work/shared/data/wmt22]
"""

import sys
import os

SLACK = 10
PAIRS = [
    ("ru-en", "generaltest2022.ru-en.src.ru", "generaltest2022.ru-en.ref.A.en"),
    ("en-ru", "generaltest2022.en-ru.src.en", "generaltest2022.en-ru.ref.A.ru"),
]


def percentile(sorted_values, p):
    """Linear interpolation between closest ranks, as numpy's default."""
    k = (len(sorted_values) - 1) * p / 100
    lo = int(k)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (k - lo)


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.environ.get("SVODKA_SHARED_DATA", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data")), "wmt22")
    for name, src, ref in PAIRS:
        with open(f"{root}/{src}", encoding="utf-8") as f:
            sources = f.read().split("\n")
        with open(f"{root}/{ref}", encoding="utf-8") as f:
            refs = f.read().split("\n")
        pairs = [(s.strip(), r.strip()) for s, r in zip(sources, refs) if s.strip()]
        ratios = sorted(
            ((len(r) + SLACK) / (len(s) + SLACK), s, r) for s, r in pairs
        )
        values = [x[0] for x in ratios]
        cuts = [0, 0.1, 0.5, 1, 50, 99, 99.5, 99.9, 100]
        shown = "  ".join(f"p{p}={percentile(values, p):.2f}" for p in cuts)
        print(f"{name}: {len(values)} segments  {shown}")
        for ratio, s, r in ratios[:3] + ratios[-3:]:
            print(f"   {ratio:.2f}  {s[:70]!r} -> {r[:70]!r}")


if __name__ == "__main__":
    main()
