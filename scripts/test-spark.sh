#!/usr/bin/env bash
# Runs the Spark example job for real in local mode (tests/spark/check_spark_job.py):
# installs OpenJDK 17 from Debian when no Java 17+ is there, PySpark into $SPARK_VENV
# (default .venv-spark), builds svodka, then checks the job against `svodka batch`.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${SPARK_VENV:-.venv-spark}

if ! java -version 2>&1 | grep -qE 'version "(1[7-9]|[2-9][0-9])'; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jre-headless >/dev/null
fi
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/pip" install -q -r scripts/requirements-spark.txt
cargo build --quiet
"$VENV/bin/python" tests/spark/check_spark_job.py "${CARGO_TARGET_DIR:-target}/debug/svodka"
