"""Fixtures for the compat suite.

Environment:
  COMPAT_BROKER      sluice (default) or kafka (real Apache Kafka from compat/.cache/kafka-lib)
  SLUICE_BIN         sluice binary, relative to the repo root (default target/release/sluice)
  COMPAT_OVERRIDES   extra broker configs, "k=v k2=v2" (sluice: --override k=v; kafka:
                     appended to server.properties)
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import brokers  # noqa: E402
from util import rdkafka_conf, unique_topic, wait_for_topic  # noqa: E402

_SESSION_BROKER: list[brokers.Broker] = []


@pytest.fixture(scope="session")
def broker(tmp_path_factory):
    """The broker under test: ``.bootstrap``, ``.data_dir``, ``.kill9()``, ``.start()``,
    ``.restart()`` (same port, same data dir), ``.log_tail()``."""
    kind = os.environ.get("COMPAT_BROKER", "sluice")
    work_dir = tmp_path_factory.mktemp(f"{kind}-broker")
    b = brokers.make_broker(kind, work_dir, overrides=brokers.overrides_from_env())
    _SESSION_BROKER.append(b)
    t0 = time.monotonic()
    b.start()
    print(f"\n[compat] {kind} broker at {b.bootstrap} (data {b.data_dir}), "
          f"ready in {time.monotonic() - t0:.1f}s", file=sys.stderr)
    yield b
    b.stop()


@pytest.fixture(autouse=True)
def _broker_running(request):
    """If an earlier (crash) test left the broker dead, start it again, so one failure
    does not cascade into every later test."""
    if "broker" in request.fixturenames:
        b = request.getfixturevalue("broker")
        if not b.is_running():
            b.start()
    yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed and _SESSION_BROKER:
        rep.sections.append(("broker log tail", _SESSION_BROKER[0].log_tail(80)))
    if rep.failed:
        import cluster
        for c in cluster.ACTIVE:
            rep.sections.append((f"{c.kind} cluster log tails", c.log_tails(40)))


# -- topics ------------------------------------------------------------------------------

@pytest.fixture
def topic(request) -> str:
    """A fresh topic name for this test (not created)."""
    return unique_topic(request.node.name.removeprefix("test_"))


@pytest.fixture
def create_topic(broker):
    """``create_topic(name, partitions=1, config=None)``: CreateTopics through the admin
    API (confluent-kafka AdminClient), replication factor 1, then wait for leaders."""
    from confluent_kafka.admin import AdminClient, NewTopic

    def _create(name: str, partitions: int = 1, config: dict[str, str] | None = None):
        admin = AdminClient(rdkafka_conf(broker.bootstrap))
        futures = admin.create_topics(
            [NewTopic(name, num_partitions=partitions, replication_factor=1,
                      config=config or {})], operation_timeout=30, request_timeout=30)
        futures[name].result(timeout=60)  # raises KafkaException on a topic error
        return wait_for_topic(broker.bootstrap, name, partitions)

    return _create


# -- Java ------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def run_java():
    """``run_java(main, *args, timeout=120)``: run a Kafka tool class or a compat/java/*.java
    source program with the Kafka jars; returns CompletedProcess (text), never raises on a
    non-zero exit (callers assert on it, with ``util.describe_proc`` for the message)."""

    def _run(main: str, *args: str, timeout: float = 120, input: str | None = None):
        if main.endswith(".java"):
            main = str(brokers.COMPAT_DIR / "java" / main)
        cmd = brokers.java_command(main, *args)
        return subprocess.run(cmd, input=input, capture_output=True, text=True,
                              timeout=timeout, cwd=brokers.REPO_ROOT)

    return _run

