"""Fixtures for the PySpark compat tests (compat/pyspark).

One broker and ONE SparkSession (local[2], small memory, UI off) for the whole run.
The broker is sluice by default, or the real Apache Kafka with COMPAT_BROKER=kafka
(how the tests themselves are validated); both come from compat/tests/brokers.py.

Environment:
  COMPAT_BROKER      sluice (default) or kafka
  SLUICE_BIN         sluice binary, relative to the repo root (default target/release/sluice)
  COMPAT_OVERRIDES   extra broker configs, "k=v k2=v2"
  SPARK_JARS_DIR     connector jars (default compat/.cache/spark-jars, from install.sh)
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
COMPAT_DIR = HERE.parent
sys.path.insert(0, str(COMPAT_DIR / "tests"))  # brokers.py, util.py (shared, not ours)
sys.path.insert(0, str(HERE))

import brokers  # noqa: E402
import kafka_helpers as kh  # noqa: E402

_SESSION_BROKER: list[brokers.Broker] = []


@pytest.fixture(scope="session")
def broker(tmp_path_factory):
    """The broker under test (``.bootstrap``, ``.kind``, ``.api_versions``)."""
    kind = os.environ.get("COMPAT_BROKER", "sluice")
    b = brokers.make_broker(kind, tmp_path_factory.mktemp(f"{kind}-broker"),
                            overrides=brokers.overrides_from_env())
    _SESSION_BROKER.append(b)
    t0 = time.monotonic()
    b.start()
    b.api_versions = brokers.api_versions(b.host, b.port)
    print(f"\n[compat/pyspark] {kind} broker at {b.bootstrap}, ready in "
          f"{time.monotonic() - t0:.1f}s", file=sys.stderr)
    yield b
    b.stop()


def _connector_jars() -> list[str]:
    jars_dir = Path(os.environ.get("SPARK_JARS_DIR", COMPAT_DIR / ".cache" / "spark-jars"))
    jars = sorted(str(p) for p in jars_dir.glob("*.jar"))
    if not any("spark-sql-kafka" in j for j in jars):
        pytest.exit(f"no spark-sql-kafka jar in {jars_dir}: run compat/pyspark/install.sh",
                    returncode=2)
    return jars


@pytest.fixture(scope="session")
def spark(tmp_path_factory):
    """The one SparkSession of the run: local[2], the Kafka connector from spark.jars
    (never spark.jars.packages: nothing is downloaded), small memory, UI off."""
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    from pyspark.sql import SparkSession

    work = tmp_path_factory.mktemp("spark")
    t0 = time.monotonic()
    session = (
        SparkSession.builder.master("local[2]")
        .appName("sluice-compat-pyspark")
        .config("spark.jars", ",".join(_connector_jars()))
        .config("spark.driver.memory", "1g")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.default.parallelism", "2")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.adaptive.enabled", "false")
        .config("spark.local.dir", str(work / "local"))
        .config("spark.sql.warehouse.dir", str(work / "warehouse"))
        .config("spark.sql.streaming.metricsEnabled", "false")
        # one less thread pool to spin up for short runs
        .config("spark.sql.streaming.stateStore.maintenanceInterval", "600s")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    print(f"[compat/pyspark] SparkSession {session.version} up in "
          f"{time.monotonic() - t0:.1f}s", file=sys.stderr)
    yield session
    for q in session.streams.active:
        q.stop()
    session.stop()


@pytest.fixture(autouse=True)
def _no_leftover_queries(request):
    """A failing streaming test must not leave its query running into the next test."""
    yield
    if "spark" in request.fixturenames:
        s = request.getfixturevalue("spark")
        for q in s.streams.active:
            try:
                q.stop()
            except Exception:  # noqa: BLE001 - best effort cleanup
                pass


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed and _SESSION_BROKER:
        rep.sections.append(("broker log tail", _SESSION_BROKER[0].log_tail(60)))


@pytest.fixture
def topic_name(request) -> str:
    """A fresh topic name for this test (not created)."""
    return kh.unique_topic(request.node.name.removeprefix("test_"))


@pytest.fixture
def create_topic(broker):
    """``create_topic(name, partitions=1)``: CreateTopics, then wait for leaders."""
    def _create(name: str, partitions: int = 1, config: dict[str, str] | None = None):
        kh.create_topic(broker.bootstrap, name, partitions, config)
        return name
    return _create

