"""Summarize (or translate) a folder of news articles with Apache Spark and svodka.

Spark reads every article as a record {"id": path relative to INPUT, "text": ...},
hash-partitions the records by id, and sends each partition through ONE long-lived
`svodka batch --jsonl -` process (the model is loaded once per partition, and records are
batched inside svodka as `svodka batch` batches documents). The results, one JSON line
per record and task, are written with Spark's output committer as text part files under
OUTPUT; read them back with `spark.read.json(OUTPUT)`.

    python examples/spark/svodka_spark.py news/ briefs/ --master 'local[2]' \
        --svodka target/release/svodka -- --task summarize -n 3 -j 1

Everything after `--` goes to `svodka batch` (task, engine, model and length flags). Give
each svodka process the cores of one Spark task (`-j 1 --threads 1` with one core per
task), or the two will oversubscribe the CPUs.

Retries: a task that fails (an executor lost, svodka exiting with status 2, or
--fail-once below) is run again by Spark on the same records, which get the same
idempotency keys (`key`); Spark's committer keeps the output of one attempt only.
--fail-once DIR makes the first attempt of partition 0 fail after half of its results,
saving what it had received to DIR/partition-0-attempt-0.jsonl (to test exactly that).
"""

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
import threading
import urllib.parse

from pyspark import TaskContext
from pyspark.sql import SparkSession
from pyspark.sql import functions as F


def parse_args(argv):
    if "--" in argv:
        cut = argv.index("--")
        ours, theirs = argv[:cut], argv[cut + 1 :]
    else:
        ours, theirs = argv, []
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("input", help="folder of articles (.txt, .md, .html; searched recursively)")
    p.add_argument("output", help="folder for the result part files (must not exist)")
    p.add_argument(
        "--master",
        default="local[2]",
        help="Spark master (default local[2]; local[N] runs as local[N,--max-failures])",
    )
    p.add_argument("--partitions", type=int, default=0, help="partitions (default: Spark's parallelism)")
    p.add_argument("--svodka", default="svodka", help="svodka binary on every executor")
    p.add_argument("--glob", default="*.{txt,md,html,htm}", help="file names to read")
    p.add_argument("--max-failures", type=int, default=4, help="attempts per task (spark.task.maxFailures)")
    p.add_argument("--fail-once", metavar="DIR", help="fail partition 0's first attempt halfway (testing)")
    args = p.parse_args(ours)
    return args, theirs


def results_per_record(cmd):
    """svodka answers each record once per task: twice for --task both."""
    task = "summarize"
    for i, arg in enumerate(cmd):
        if arg == "--task" and i + 1 < len(cmd):
            task = cmd[i + 1]
        elif arg.startswith("--task="):
            task = arg.split("=", 1)[1]
    return 2 if task == "both" else 1


def svodka_partition(records, svodka_cmd, fail_once_dir):
    """Pipes one partition's records through one svodka process, yielding its result
    lines. Raises (so that Spark retries the task) when svodka fails as a whole or
    answers fewer records than it was sent."""
    ctx = TaskContext.get()
    proc = subprocess.Popen(
        svodka_cmd,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    sent = [0]
    stderr_tail = []

    def feed():
        try:
            for rec in records:
                line = json.dumps({"id": rec["id"], "text": rec["text"]}, ensure_ascii=False)
                proc.stdin.write(line.encode("utf-8") + b"\n")
                sent[0] += 1
            proc.stdin.close()
        except BrokenPipeError:
            pass  # svodka went away; its exit status says why

    def drain_stderr():
        for line in proc.stderr:
            stderr_tail.append(line.decode("utf-8", "replace"))
            del stderr_tail[:-20]

    writer = threading.Thread(target=feed, daemon=True)
    reader = threading.Thread(target=drain_stderr, daemon=True)
    writer.start()
    reader.start()
    fail_now = (
        fail_once_dir is not None and ctx.partitionId() == 0 and ctx.attemptNumber() == 0
    )
    got = []
    completed = False
    try:
        for line in proc.stdout:
            text = line.decode("utf-8").rstrip("\n")
            got.append(text)
            if fail_now and len(got) >= 5:
                path = os.path.join(fail_once_dir, "partition-0-attempt-0.jsonl")
                with open(path, "w", encoding="utf-8") as f:
                    f.write("\n".join(got) + "\n")
                raise RuntimeError("forced failure of partition 0, attempt 0 (--fail-once)")
            yield text
        completed = True
    finally:
        if not completed and proc.poll() is None:
            proc.kill()
        writer.join()
        rc = proc.wait()
        reader.join()
    # Status 1 means some records got error records, which are results like any other.
    if rc not in (0, 1):
        raise RuntimeError(f"svodka exited with {rc}: {''.join(stderr_tail).strip()}")
    if len(got) != sent[0] * results_per_record(svodka_cmd):
        raise RuntimeError(f"svodka answered {len(got)} results for {sent[0]} records")


def main(argv):
    args, svodka_args = parse_args(argv)
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    master = args.master
    local = re.fullmatch(r"local\[(\d+|\*)\]", master)
    if local:
        # Local mode ignores spark.task.maxFailures: it retries only as local[N,F].
        master = f"local[{local.group(1)},{args.max_failures}]"
    spark = (
        SparkSession.builder.master(master)
        .appName("svodka")
        .config("spark.task.maxFailures", str(args.max_failures))
        .config("spark.ui.enabled", "false")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    root = os.path.abspath(args.input)
    articles = (
        spark.read.text(root, wholetext=True, recursiveFileLookup=True, pathGlobFilter=args.glob)
        .select(F.col("_metadata.file_path").alias("path"), F.col("value").alias("text"))
    )

    def to_record(row):
        path = urllib.parse.unquote(urllib.parse.urlparse(row["path"]).path)
        return {"id": os.path.relpath(path, root), "text": row["text"]}

    def shard_of(key):
        # Stable across processes and runs, unlike Python's salted str hash.
        return int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big")

    partitions = args.partitions or spark.sparkContext.defaultParallelism
    records = (
        articles.rdd.map(to_record)
        .keyBy(lambda r: r["id"])
        .partitionBy(partitions, shard_of)
        .values()
    )
    svodka_cmd = [args.svodka, "--quiet", "batch", "--jsonl", "-", *svodka_args]
    fail_once = os.path.abspath(args.fail_once) if args.fail_once else None
    results = records.mapPartitions(lambda rs: svodka_partition(rs, svodka_cmd, fail_once))
    results.saveAsTextFile(args.output)
    spark.stop()


if __name__ == "__main__":
    main(sys.argv[1:])
