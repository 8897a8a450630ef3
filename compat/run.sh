#!/usr/bin/env bash
# Runs the compat suite: compat/.cache/venv/bin/pytest -q compat/tests [extra pytest args]
#   COMPAT_BROKER=sluice (default)  the binary at ${SLUICE_BIN:-target/release/sluice}
#   COMPAT_BROKER=kafka             real Apache Kafka from compat/.cache/kafka-lib
# Run compat/install.sh first.
set -euo pipefail
COMPAT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(dirname "$COMPAT_DIR")"
PYTEST="$COMPAT_DIR/.cache/venv/bin/pytest"
export COMPAT_BROKER="${COMPAT_BROKER:-sluice}"

[ -x "$PYTEST" ] || { echo "[compat/run] $PYTEST missing: run compat/install.sh" >&2; exit 2; }
case "$COMPAT_BROKER" in
  sluice)
    bin="${SLUICE_BIN:-target/release/sluice}"
    case "$bin" in /*) ;; *) bin="$REPO_ROOT/$bin" ;; esac
    [ -x "$bin" ] || { echo "[compat/run] sluice binary $bin missing: cargo build --release, or set SLUICE_BIN" >&2; exit 2; }
    echo "[compat/run] broker: sluice ($bin)" ;;
  kafka)
    ls "$COMPAT_DIR"/.cache/kafka-lib/kafka_2.13-*.jar >/dev/null 2>&1 \
      || { echo "[compat/run] Kafka jars missing: run compat/install.sh" >&2; exit 2; }
    echo "[compat/run] broker: Apache Kafka ($(cd "$COMPAT_DIR/.cache/kafka-lib" && ls kafka_2.13-*.jar))" ;;
  *) echo "[compat/run] COMPAT_BROKER must be sluice or kafka, not '$COMPAT_BROKER'" >&2; exit 2 ;;
esac

cd "$REPO_ROOT"
# Default to the whole suite unless a test path (file, dir, or file::test) was given.
targets=(compat/tests)
for arg in "$@"; do
  if [ -e "${arg%%::*}" ]; then targets=(); break; fi
done
exec "$PYTEST" -q -ra --durations=8 -p no:cacheprovider -W ignore::DeprecationWarning \
  "${targets[@]}" "$@"
