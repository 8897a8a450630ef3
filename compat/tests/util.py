"""Small helpers shared by the compat tests (importable as ``util``)."""

from __future__ import annotations

import logging
import re
import subprocess
import time
import uuid


def unique_topic(label: str) -> str:
    """A topic name no other test (or earlier run on the same data dir) uses.

    Only [a-zA-Z0-9-]: Kafka's tools warn about '.' and '_' (metric-name collisions)."""
    clean = re.sub(r"[^a-zA-Z0-9-]+", "-", label).strip("-")[:80]
    return f"{clean}-{uuid.uuid4().hex[:8]}"


_RDKAFKA_LOG = logging.getLogger("rdkafka")


def rdkafka_conf(bootstrap: str, **conf) -> dict:
    """confluent-kafka config with librdkafka's log routed to Python logging, so pytest
    shows it only for failing tests (connection-refused noise during crash tests)."""
    return {"bootstrap.servers": bootstrap, "logger": _RDKAFKA_LOG, **conf}


def wait_for_topic(bootstrap: str, name: str, partitions: int, timeout_s: float = 30.0):
    """Wait until Metadata shows ``name`` with ``partitions`` partitions, each with a
    leader; returns the confluent_kafka TopicMetadata."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient(rdkafka_conf(bootstrap))
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        md = admin.list_topics(topic=name, timeout=10)
        last = md.topics.get(name)
        if (last is not None and last.error is None and len(last.partitions) == partitions
                and all(p.leader >= 0 and p.error is None for p in last.partitions.values())):
            return last
        time.sleep(0.1)
    raise AssertionError(f"topic {name} not ready with {partitions} partitions: {last!r}")


def describe_proc(res: subprocess.CompletedProcess) -> str:
    """Everything needed to understand a failed subprocess, for assertion messages."""
    return (f"command: {' '.join(map(str, res.args))}\nexit: {res.returncode}\n"
            f"--- stdout ---\n{res.stdout[-4000:]}\n--- stderr ---\n{res.stderr[-4000:]}")


def create_single_partition_topic(bootstrap: str, name: str, config: dict[str, str]) -> None:
    """Creates a one-partition topic with ``config`` and waits until it has a leader."""
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient(rdkafka_conf(bootstrap))
    fs = admin.create_topics([NewTopic(name, num_partitions=1, replication_factor=1,
                                       config=config)], operation_timeout=30)
    fs[name].result(timeout=60)
    wait_for_topic(bootstrap, name, 1)


def wait_for(cond, timeout_s: float, what: str):
    """Polls ``cond() -> (ok, last)`` every 0.2 s until ok; returns ``last``, or fails
    naming ``what`` and the last value seen."""
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        ok, last = cond()
        if ok:
            return last
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


def produce_acked(bootstrap: str, topic: str, values: list[str], partition: int | None = None) -> None:
    """Send ``values`` with an idempotent acks=all producer (to ``partition``, or by
    librdkafka's partitioner) and assert every one was acknowledged."""
    from confluent_kafka import Producer
    p = Producer(rdkafka_conf(bootstrap, acks="all", **{"enable.idempotence": True}))
    failed = []
    extra = {} if partition is None else {"partition": partition}
    for v in values:
        p.produce(topic, v.encode(), on_delivery=lambda e, m: failed.append(e) if e else None, **extra)
        p.poll(0)
    assert p.flush(60) == 0, "records left unacknowledged"
    assert not failed, failed[:3]


def read_values(bootstrap: str, topic: str, partitions: int, expect: int, timeout_s: float = 60,
                conf: dict | None = None, linger_s: float = 0.0) -> list[str]:
    """Values read from the start of partitions 0..partitions-1 (assign(), no group
    commits), until ``expect`` arrived or ``timeout_s`` passed. ``conf`` adds to the
    consumer's config (e.g. ``client.rack``, a ``stats_cb``); ``linger_s`` keeps the
    consumer polling that long after the reads, before it closes, so that callbacks
    such as librdkafka's statistics report once more on what the reads did."""
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer(rdkafka_conf(bootstrap, **{"group.id": unique_topic("g"), "enable.auto.commit": False,
                                            **(conf or {})}))
    c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    got: list[str] = []
    deadline = time.monotonic() + timeout_s
    while len(got) < expect and time.monotonic() < deadline:
        m = c.poll(1.0)
        if m is not None and m.error() is None:
            got.append(m.value().decode())
    end = time.monotonic() + linger_s
    while time.monotonic() < end:
        c.poll(0.1)
    c.close()
    return got


def create_topic(bootstrap: str, name: str, partitions: int, rf: int) -> None:
    """CreateTopics through ``bootstrap``; an earlier attempt that timed out may have
    created it (so TOPIC_ALREADY_EXISTS counts as done: safe to call again in a retry)."""
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient(rdkafka_conf(bootstrap))
    try:
        admin.create_topics([NewTopic(name, partitions, rf)], operation_timeout=30)[name].result(timeout=60)
    except KafkaException as e:
        if e.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
            raise


def coordinator_partition(key: str, partitions: int) -> int:
    """Kafka's internal-topic partition for a group or transactional id:
    ``Utils.abs(key.hashCode()) % partitions`` with Java's String.hashCode (UTF-16
    code units, 32-bit wrapping)."""
    h = 0
    data = key.encode("utf-16-be")
    for i in range(0, len(data), 2):
        h = (31 * h + int.from_bytes(data[i:i + 2], "big")) & 0xFFFFFFFF
    return (h & 0x7FFFFFFF) % partitions
