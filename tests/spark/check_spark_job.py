"""The Spark example job (examples/spark/svodka_spark.py), run for real in local mode.

Summarizes the 80 Russian WMT22 articles twice: with `svodka batch` into a folder, and
with the Spark job on local[2] in 4 partitions, each piped through one
`svodka batch --jsonl -` process, the first attempt of partition 0 made to fail halfway.
Checks that:
- every article comes out of Spark exactly once, done, with the very summary JSON that
  `svodka batch --format json` wrote (all but the timing), and the same content hash and
  options fingerprint as batch's manifest;
- each idempotency key is the documented SHA-256 over id, content hash, reading, task,
  engine, model, revision and fingerprint;
- partition 0 did fail once, and every result its failed attempt had received comes out
  of the retry with the same key and the same summary.

    python tests/spark/check_spark_job.py target/debug/svodka
(scripts/test-spark.sh installs what it needs and runs it; .ci/run calls that.)
"""

import glob
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def news_dir():
    for d in (os.path.join(REPO, "tests/fixtures/news-wmt22/ru"), os.path.join(REPO, "..", "shared", "data", "news-wmt22", "ru")):
        if os.path.isdir(d):
            return d
    sys.exit("tests/fixtures/news-wmt22/ru is missing")


def without_timing(cli_json):
    return {k: v for k, v in cli_json.items() if k != "elapsed_ms"}


def expected_key(rec):
    parts = [
        ("svodka-record-key", "1"),
        ("id", json.dumps(rec["id"], ensure_ascii=False, separators=(",", ":"))),
        ("sha256", rec["sha256"]),
        ("reading", "text"),
        ("task", rec["task"]),
        ("engine", rec["engine"]),
        ("model", rec["model"] or ""),
        ("revision", rec["revision"] or ""),
        ("fingerprint", rec["fingerprint"]),
    ]
    text = "".join(f"{k}={v}\n" for k, v in parts)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def read_lines(paths):
    out = []
    for p in paths:
        with open(p, encoding="utf-8") as f:
            out.extend(json.loads(line) for line in f if line.strip())
    return out


def main():
    svodka = os.path.abspath(sys.argv[1])
    tmp = tempfile.mkdtemp(prefix="svodka-spark-")
    try:
        corpus = os.path.join(tmp, "news")
        shutil.copytree(news_dir(), os.path.join(corpus, "ru"))
        names = sorted(f"ru/{n}" for n in os.listdir(os.path.join(corpus, "ru")) if n.endswith(".txt"))
        assert len(names) == 80, len(names)

        start = time.time()
        batch_out = os.path.join(tmp, "batch")
        subprocess.run(
            [svodka, "--quiet", "--format", "json", "batch", corpus, "--out", batch_out, "-j", "2"],
            check=True,
        )
        batch_s = time.time() - start
        manifest = {e["input"]: e for e in read_lines([os.path.join(batch_out, "manifest.jsonl")])}

        start = time.time()
        spark_out = os.path.join(tmp, "spark")
        attempts = os.path.join(tmp, "attempts")
        os.makedirs(attempts)
        job = os.path.join(REPO, "examples/spark/svodka_spark.py")
        run = subprocess.run(
            [sys.executable, job, corpus, spark_out, "--master", "local[2]", "--partitions", "4",
             "--svodka", svodka, "--glob", "*.txt", "--fail-once", attempts, "--", "-j", "1"],
            capture_output=True, text=True,
        )
        spark_s = time.time() - start
        if run.returncode != 0:
            sys.exit(f"the Spark job failed ({run.returncode}):\n{run.stderr[-4000:]}")
        assert os.path.exists(os.path.join(spark_out, "_SUCCESS"))
        results = read_lines(sorted(glob.glob(os.path.join(spark_out, "part-*"))))

        ids = [r["id"] for r in results]
        assert sorted(ids) == names, f"{len(ids)} results, {len(set(ids))} ids; want the 80 articles once each"
        by_id = {r["id"]: r for r in results}
        for name in names:
            r = by_id[name]
            assert r["status"] == "done", (name, r.get("error"))
            assert (r["task"], r["engine"]) == ("summarize", "extractive"), r
            with open(os.path.join(batch_out, name[: -len(".txt")] + ".summary.json"), encoding="utf-8") as f:
                from_batch = json.load(f)
            assert without_timing(r["result"]) == without_timing(from_batch), name
            m = manifest[name]
            assert (r["sha256"], r["fingerprint"], r["revision"]) == (m["sha256"], m["fingerprint"], m["revision"]), name
            assert r["key"] == expected_key(r), name
        assert len({r["key"] for r in results}) == 80

        failed = read_lines([os.path.join(attempts, "partition-0-attempt-0.jsonl")])
        assert len(failed) >= 5, "partition 0 did not fail after 5 results as asked"
        for r in failed:
            again = by_id[r["id"]]
            assert r["key"] == again["key"], r["id"]
            assert without_timing(r["result"]) == without_timing(again["result"]), r["id"]
        print(
            f"ok: Spark local[2] (4 partitions, partition 0 retried after {len(failed)} results) "
            f"gave batch's 80 summaries with the documented keys; batch {batch_s:.1f} s, Spark job {spark_s:.1f} s"
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
