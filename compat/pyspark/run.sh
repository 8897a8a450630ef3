#!/usr/bin/env bash
# Runs the PySpark compat tests: compat/.cache/spark-venv/bin/pytest -q compat/pyspark [args]
#   COMPAT_BROKER=sluice (default)  the binary at ${SLUICE_BIN:-target/release/sluice}
#   COMPAT_BROKER=kafka             real Apache Kafka from compat/.cache/kafka-lib
#                                   (needs compat/install.sh; validates the tests)
# Run compat/pyspark/install.sh first. Extra args go to pytest (-k, -x, a test file...).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
COMPAT_DIR="$(dirname "$HERE")"
REPO_ROOT="$(dirname "$COMPAT_DIR")"
PYTEST="$COMPAT_DIR/.cache/spark-venv/bin/pytest"
export COMPAT_BROKER="${COMPAT_BROKER:-sluice}"

[ -x "$PYTEST" ] || { echo "[compat/pyspark/run] $PYTEST missing: run compat/pyspark/install.sh" >&2; exit 2; }
ls "$COMPAT_DIR"/.cache/spark-jars/spark-sql-kafka-*.jar >/dev/null 2>&1 \
  || { echo "[compat/pyspark/run] connector jars missing: run compat/pyspark/install.sh" >&2; exit 2; }
case "$COMPAT_BROKER" in
  sluice)
    bin="${SLUICE_BIN:-target/release/sluice}"
    case "$bin" in /*) ;; *) bin="$REPO_ROOT/$bin" ;; esac
    [ -x "$bin" ] || { echo "[compat/pyspark/run] sluice binary $bin missing: cargo build --release, or set SLUICE_BIN" >&2; exit 2; }
    export SLUICE_BIN="$bin"
    echo "[compat/pyspark/run] broker: sluice ($bin)" ;;
  kafka)
    ls "$COMPAT_DIR"/.cache/kafka-lib/kafka_2.13-*.jar >/dev/null 2>&1 \
      || { echo "[compat/pyspark/run] Kafka jars missing: run compat/install.sh" >&2; exit 2; }
    echo "[compat/pyspark/run] broker: Apache Kafka ($(cd "$COMPAT_DIR/.cache/kafka-lib" && ls kafka_2.13-*.jar))" ;;
  *) echo "[compat/pyspark/run] COMPAT_BROKER must be sluice or kafka, not '$COMPAT_BROKER'" >&2; exit 2 ;;
esac

cd "$REPO_ROOT"
# Default to the whole directory unless a test path (file, dir, or file::test) was given.
targets=(compat/pyspark)
for arg in "$@"; do
  if [ -e "${arg%%::*}" ]; then targets=(); break; fi
done
exec "$PYTEST" -q -ra --durations=10 -p no:cacheprovider -W ignore::DeprecationWarning \
  "${targets[@]}" "$@"
