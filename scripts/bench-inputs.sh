#!/usr/bin/env bash
# Time and peak memory of `svodka summarize --engine extractive` on inputs far larger
# than an article, for two builds side by side (interleaved, one run each per round):
#
#   BEFORE=/path/to/old/svodka AFTER=target/debug/svodka scripts/bench-inputs.sh
#
# Inputs (generated into $WORK, default a temporary folder): sentences drawn from the
# 80 English WMT22 articles in a fixed pseudo-random order, 1 MiB and 2 MiB; and 250 KiB
# of short six-word sentences over a 40-word vocabulary (nearly every pair similar).
# A run over TIMEOUT seconds (default 300) is stopped and shown as such.
set -euo pipefail
cd "$(dirname "$0")/.."

: "${BEFORE:?set BEFORE to the old svodka binary}"
AFTER=${AFTER:-target/debug/svodka}
TIMEOUT=${TIMEOUT:-300}
ROUNDS=${ROUNDS:-1}
WORK=${WORK:-$(mktemp -d)}
mkdir -p "$WORK"

python3 - "$WORK" <<'EOF'
import glob, re, sys
work = sys.argv[1]
pool = []
for f in sorted(glob.glob("tests/fixtures/news-wmt22/en/*.txt")):
    body = open(f, encoding="utf-8").read().split("\n\n", 1)[-1]
    pool += [s for s in re.split(r"(?<=[.!?])\s+", body) if len(s.split()) >= 5]
def article(size):
    out, state, k = ["Generated digest of many stories\n\n"], 0x9E3779B97F4A7C15, 0
    n = len(out[0])
    while n < size:
        state = (state * 6364136223846793005 + 1442695040888963407) % 2**64
        s = pool[(state >> 33) % len(pool)]
        k += 1
        sep = "\n\n" if k % 5 == 0 else " "
        out.append(s + sep)
        n += len(s) + len(sep)
    return "".join(out)
for mib in (1, 2):
    open(f"{work}/article-{mib}mib.txt", "w", encoding="utf-8").write(article(mib << 20))
nouns = "oil gas grain steel coal wheat copper gold silver sugar coffee cotton rice tin zinc nickel wool corn salt iron".split()
verbs = "rose fell climbed dropped jumped slid soared sank gained lost recovered stalled surged slumped rallied eased dipped firmed weakened steadied".split()
text, i = ["Market news\n\n"], 0
n = len(text[0])
while n < 250 << 10:
    a, b, c = i % 20, (i // 20) % 20, (i // 400) % 20
    s = f"Prices of {nouns[a]} {verbs[b]} while {nouns[(a + c + 1) % 20]} {verbs[(b + c + 3) % 20]}. "
    i += 1
    if i % 40 == 0:
        s += "\n\n"
    text.append(s)
    n += len(s)
open(f"{work}/short-250kib.txt", "w", encoding="utf-8").write("".join(text))
EOF

measure() { # binary input -> "wall_s peak_MiB status"
    local log=$WORK/time.log status
    if /usr/bin/time -f '%e %M' -o "$log" timeout "$TIMEOUT" "$1" summarize --engine extractive "$2" \
        >/dev/null 2>"$WORK/err"; then
        status=ok
    else
        status="failed($?)"
    fi
    local wall kib
    read -r wall kib < <(tail -1 "$log")
    echo "$wall s, $((kib / 1024)) MiB, $status"
}

echo "| input | sentences | before | after |"
echo "|---|---|---|---|"
for round in $(seq "$ROUNDS"); do
    for f in "$WORK"/article-1mib.txt "$WORK"/article-2mib.txt "$WORK"/short-250kib.txt; do
        sentences=$(grep -o '[.!?] ' "$f" | wc -l)
        before=$(measure "$BEFORE" "$f")
        after=$(measure "$AFTER" "$f")
        echo "| $(basename "$f") | ~$sentences | $before | $after |"
    done
done
