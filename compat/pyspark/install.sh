#!/usr/bin/env bash
# Installs what the PySpark compat tests (compat/pyspark) and examples/pyspark need;
# idempotent, and fast when already done. Meant for a fresh Debian machine as root (CI).
#   - Java 17+, Maven, python3-venv (apt, only if missing)
#   - a Python venv at compat/.cache/spark-venv with compat/pyspark/requirements.txt
#     (pinned pyspark, pytest, confluent-kafka)
#   - Spark's Kafka connector and its runtime dependencies, resolved with Maven from
#     compat/pyspark/pom.xml into compat/.cache/spark-jars, minus every jar whose
#     artifact pyspark already ships; the tests pass these to Spark with spark.jars,
#     so Spark never downloads anything itself.
# Each step leaves a marker holding the sha256 of its inputs; a step whose marker
# matches is skipped.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE="$(dirname "$HERE")/.cache"
VENV="$CACHE/spark-venv"
JARS="$CACHE/spark-jars"
mkdir -p "$CACHE"

LOG_TAG=compat/pyspark/install
# shellcheck source=compat/lib.sh
. "$(dirname "$HERE")/lib.sh"

# --- system tools ---------------------------------------------------------------------
command -v java >/dev/null 2>&1 || apt_install openjdk-17-jdk-headless
java_major="$(java -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = //p')"
[ "${java_major:-0}" -ge 17 ] 2>/dev/null || die "Spark 4 needs Java 17+, found '${java_major}'"
command -v mvn >/dev/null 2>&1 || apt_install maven
command -v python3 >/dev/null 2>&1 || apt_install python3 python3-venv

# --- versions must agree --------------------------------------------------------------
REQ="$HERE/requirements.txt"
POM="$HERE/pom.xml"
py_ver="$(sed -n 's/^pyspark==\([^ ]*\).*/\1/p' "$REQ")"
pom_ver="$(sed -n 's:.*<spark.version>\(.*\)</spark.version>.*:\1:p' "$POM")"
[ -n "$py_ver" ] && [ "$py_ver" = "$pom_ver" ] \
  || die "pyspark==$py_ver in requirements.txt but spark.version $pom_ver in pom.xml"

# --- Python venv ------------------------------------------------------------------------
ensure_venv "$VENV" "$REQ" "(pyspark is ~450 MB)"
SPARK_HOME_PY="$("$VENV/bin/python" -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))')"
SPARK_SHIPPED="$SPARK_HOME_PY/jars"
[ -d "$SPARK_SHIPPED" ] || die "pyspark has no jars dir at $SPARK_SHIPPED"

# --- Kafka connector jars ---------------------------------------------------------------
# The marker covers the pom and the pyspark version (which decides what is skipped).
JARS_HASH="$( (cat "$POM"; echo "$py_ver") | sha256sum | cut -d' ' -f1)"
if [ -f "$JARS/.inputs.sha256" ] && [ "$(cat "$JARS/.inputs.sha256")" = "$JARS_HASH" ] \
    && ls "$JARS"/spark-sql-kafka-0-10_2.13-"$pom_ver".jar >/dev/null 2>&1; then
  log "connector jars up to date: $JARS"
else
  log "resolving spark-sql-kafka-0-10_2.13:$pom_ver with Maven into $JARS"
  rm -rf "$JARS"
  mvn -q -B -Dstyle.color=never -f "$POM" dependency:copy-dependencies -DincludeScope=runtime \
      -DoutputDirectory="$JARS"
  # Artifact name of a jar file: everything before "-<digit>" (the version).
  artifact() { basename "$1" .jar | sed -E 's/-[0-9][^-]*(-.*)?$//'; }
  declare -A shipped=()
  for j in "$SPARK_SHIPPED"/*.jar; do shipped["$(artifact "$j")"]=1; done
  for j in "$JARS"/*.jar; do
    a="$(artifact "$j")"
    if [ -n "${shipped[$a]:-}" ]; then
      rm -f "$j"        # Spark already ships this artifact: keep Spark's copy only
    fi
  done
  ls "$JARS"/spark-sql-kafka-0-10_2.13-"$pom_ver".jar >/dev/null 2>&1 \
    || die "spark-sql-kafka jar missing after mvn"
  ls "$JARS"/kafka-clients-*.jar >/dev/null 2>&1 || die "kafka-clients jar missing after mvn"
  echo "$JARS_HASH" > "$JARS/.inputs.sha256"
fi

# --- sanity checks -----------------------------------------------------------------------
"$VENV/bin/python" - <<'PY'
import confluent_kafka, pyspark, pytest  # noqa: F401
print(f"[compat/pyspark/install] python: pyspark {pyspark.__version__}, "
      f"confluent-kafka {confluent_kafka.__version__}, pytest {pytest.__version__}")
PY
log "java: $(java -version 2>&1 | head -1)"
log "connector jars ($JARS): $(cd "$JARS" && ls *.jar | tr '\n' ' ')"
log "done"
