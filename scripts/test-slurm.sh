#!/usr/bin/env bash
# Runs examples/slurm-batch.sbatch for real on a one-node Slurm cluster made here: Debian's
# slurmctld, slurmd and munge (installed when missing; root needed), a node with this
# machine's CPUs. The recipe runs over-sharded (8 array tasks, 2 at a time, one CPU each)
# on the 80 Russian WMT22 articles; then the manifests are merged and every article must
# be summarized exactly once, identical to a plain `svodka batch` run. The daemons this
# script starts are stopped at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BIN_DIR=${CARGO_TARGET_DIR:-target}/debug
[ -x "$BIN_DIR/svodka" ] || cargo build --quiet
BIN_DIR=$(cd "$BIN_DIR" && pwd)

if ! command -v sbatch >/dev/null || ! command -v slurmd >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        slurmd slurmctld slurm-client munge >/dev/null
fi

WORK=$(mktemp -d)
STARTED=()
cleanup() {
    for pid in "${STARTED[@]}"; do kill "$pid" 2>/dev/null || true; done
    # slurmctld saves its state as it goes down.
    for pid in "${STARTED[@]}"; do
        for _ in $(seq 50); do [ -d "/proc/$pid" ] && [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != Z ] || break; sleep 0.1; done
    done
    rm -rf "$WORK" 2>/dev/null || true
}
trap cleanup EXIT

host=$(hostname -s)
CONF=$WORK/slurm.conf
mkdir -p "$WORK/spool/ctld" "$WORK/spool/d" /run/munge
chown munge:munge /run/munge
cat >"$CONF" <<CONF
ClusterName=svodka-ci
SlurmctldHost=$host
SlurmctldPort=16817
SlurmdPort=16818
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
StateSaveLocation=$WORK/spool/ctld
SlurmdSpoolDir=$WORK/spool/d
SlurmctldPidFile=$WORK/slurmctld.pid
SlurmdPidFile=$WORK/slurmd.pid
SlurmctldLogFile=$WORK/slurmctld.log
SlurmdLogFile=$WORK/slurmd.log
ReturnToService=2
NodeName=$host NodeAddr=127.0.0.1 CPUs=$(nproc) State=UNKNOWN
PartitionName=ci Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF=$CONF
if ! pgrep -x munged >/dev/null; then
    runuser -u munge -- /usr/sbin/munged --force --pid-file=/run/munge/svodka-ci.pid
    STARTED+=("$(cat /run/munge/svodka-ci.pid)")
fi
slurmctld -f "$CONF"
slurmd -f "$CONF"
for _ in $(seq 50); do
    [ -s "$WORK/slurmctld.pid" ] && [ -s "$WORK/slurmd.pid" ] && break
    sleep 0.2
done
STARTED+=("$(cat "$WORK/slurmctld.pid")" "$(cat "$WORK/slurmd.pid")")
for _ in $(seq 60); do sinfo -h -o %T 2>/dev/null | grep -q idle && break; sleep 1; done

DATA=tests/fixtures/news-wmt22/ru
mkdir -p "$WORK/news"
cp -r "$DATA" "$WORK/news/ru"
"$BIN_DIR/svodka" --quiet batch "$WORK/news" --out "$WORK/plain" -j 2
(cd "$WORK/news" && find . -type f -printf '%P\n') >"$WORK/news.list"

start=$(date +%s)
# Command-line options override the recipe's #SBATCH lines to fit this small node.
PATH=$BIN_DIR:$PATH INPUT=$WORK/news OUT=$WORK/briefs FILES_FROM=$WORK/news.list \
    sbatch --wait --array=0-7%2 --cpus-per-task=1 --mem=0 --time=00:10:00 \
    --output="$WORK/job-%a.log" examples/slurm-batch.sbatch
"$BIN_DIR/svodka" --quiet batch --merge-manifests "$WORK/briefs" --digest
echo "slurm: 8 array tasks in $(( $(date +%s) - start )) s"

python3 - "$WORK" <<'PY'
import json, os, sys
work = sys.argv[1]
shards = [f for f in os.listdir(f"{work}/briefs") if f.startswith("manifest-shard-")]
assert sorted(shards) == sorted(f"manifest-shard-{i}-of-8.jsonl" for i in range(8)), shards
seen = {}
for f in shards:
    for line in open(f"{work}/briefs/{f}", encoding="utf-8"):
        e = json.loads(line)
        assert e["status"] == "done", e
        seen[e["input"]] = seen.get(e["input"], 0) + 1
names = sorted(f"ru/{n}" for n in os.listdir(f"{work}/news/ru"))
assert sorted(seen) == names and set(seen.values()) == {1}, seen
merged = [json.loads(l) for l in open(f"{work}/briefs/manifest.jsonl", encoding="utf-8")]
assert len(merged) == 80
for n in names:
    out = n[: -len(".txt")] + ".summary.txt"
    a = open(f"{work}/briefs/{out}", encoding="utf-8").read()
    b = open(f"{work}/plain/{out}", encoding="utf-8").read()
    assert a == b, n
print("ok: the Slurm recipe (8 shards, 2 at a time) summarized the 80 articles once each, as svodka batch does")
PY
