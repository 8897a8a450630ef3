#!/usr/bin/env bash
# Installs what the compat suite needs; idempotent, and fast when already done.
#   - kcat (Debian package) if it is not on PATH; iproute2 (`ip`) likewise
#   - a Python venv at compat/.cache/venv with compat/requirements.txt (pinned)
#   - Apache Kafka jars (broker, tools, clients, log4j2) from compat/kafka-deps/pom.xml
#     into compat/.cache/kafka-lib
# Each step leaves a marker holding the sha256 of its input; a step whose marker
# matches is skipped. Meant to run as root on a fresh Debian machine (CI); uses sudo
# for apt when not root.
set -euo pipefail

COMPAT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE="$COMPAT_DIR/.cache"
VENV="$CACHE/venv"
LIB="$CACHE/kafka-lib"
mkdir -p "$CACHE"

LOG_TAG=compat/install
# shellcheck source=compat/lib.sh
. "$COMPAT_DIR/lib.sh"

# --- system tools -----------------------------------------------------------------
if command -v kcat >/dev/null 2>&1; then
  log "kcat present: $(command -v kcat)"
else
  apt_install kcat
fi
command -v java >/dev/null 2>&1 || apt_install openjdk-17-jdk-headless
command -v mvn >/dev/null 2>&1 || apt_install maven
command -v python3 >/dev/null 2>&1 || apt_install python3 python3-venv
# `ip` (network namespaces, veth, bridges) for test_partition.py
command -v ip >/dev/null 2>&1 || apt_install iproute2

# --- Python venv -------------------------------------------------------------------
REQ="$COMPAT_DIR/requirements.txt"
ensure_venv "$VENV" "$REQ"

# --- Apache Kafka jars -----------------------------------------------------------
POM="$COMPAT_DIR/kafka-deps/pom.xml"
POM_HASH="$(sha256sum "$POM" | cut -d' ' -f1)"
if [ -f "$LIB/.pom.sha256" ] && [ "$(cat "$LIB/.pom.sha256")" = "$POM_HASH" ] \
    && ls "$LIB"/kafka_2.13-*.jar >/dev/null 2>&1; then
  log "kafka jars up to date: $LIB"
else
  log "resolving Kafka jars with Maven into $LIB"
  rm -rf "$LIB"
  mvn -q -B -f "$POM" dependency:copy-dependencies -DoutputDirectory="$LIB"
  ls "$LIB"/kafka_2.13-*.jar >/dev/null 2>&1 || die "kafka_2.13 jar missing after mvn"
  echo "$POM_HASH" > "$LIB/.pom.sha256"
fi

# --- franz-go client (Go module proxy; go's own module cache makes re-runs fast) ------
command -v go >/dev/null 2>&1 || apt_install golang-go
log "building the franz-go client (compat/go) into $CACHE/franzgo"
(cd "$COMPAT_DIR/go" && go build -mod=readonly -o "$CACHE/franzgo" .)

# --- sanity checks -------------------------------------------------------------------
"$VENV/bin/python" - <<'PY'
import confluent_kafka, kafka, pytest, snappy, lz4.frame, zstandard  # noqa: F401
from kafka.codec import has_gzip, has_snappy, has_lz4, has_zstd
missing = [n for n, ok in [("gzip", has_gzip()), ("snappy", has_snappy()),
                           ("lz4", has_lz4()), ("zstd", has_zstd())] if not ok]
if missing:
    raise SystemExit(f"kafka-python codecs missing: {missing}")
print(f"[compat/install] python: confluent-kafka {confluent_kafka.__version__} "
      f"(librdkafka {confluent_kafka.libversion()[0]}), kafka-python {kafka.__version__}, "
      f"pytest {pytest.__version__}")
PY
log "kcat: $(kcat -V 2>&1 | head -1)"
log "java: $(java -version 2>&1 | head -1)"
log "kafka jars: $(cd "$LIB" && ls kafka_2.13-*.jar kafka-tools-*.jar kafka-clients-*.jar | tr '\n' ' ')"
log "done"
