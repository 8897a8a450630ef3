"""Disk full: the broker's data dir on a small tmpfs. Produce until the disk is
full: the overflow gets KAFKA_STORAGE_ERROR, the broker keeps running, and every
acknowledged record stays readable at its offset. Freeing space (DeleteRecords)
lets produce resume, and a restart on the still nearly full disk loses nothing.

Needs root (mount); skipped elsewhere. Sluice only: Kafka takes a full log dir
offline and would have to be restarted, a different contract."""

from __future__ import annotations

import os
import subprocess

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

import brokers

pytestmark = [
    pytest.mark.skipif(os.environ.get("COMPAT_BROKER", "sluice") != "sluice", reason="sluice's disk-full contract"),
    pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root"),
]

TOPIC = "disk-full"
TMPFS_BYTES = 8 * 1024 * 1024


@pytest.fixture
def small_disk_broker(tmp_path):
    # One offsets partition: the consumer's FindCoordinator creates __consumer_offsets,
    # and 50 partitions' files would not fit an 8 MiB disk (nor would they on Kafka).
    b = brokers.SluiceBroker(tmp_path, overrides={"log.segment.bytes": str(1 << 20),
                                                  "offsets.topic.num.partitions": "1"})
    b.data_dir.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={TMPFS_BYTES}", "tmpfs", str(b.data_dir)], check=True)
    try:
        b.start()
        # The consumer's group lookups create __consumer_offsets: do it while there is
        # room, as any broker in use has it long before its disk fills.
        ready_group_coordinator(b.bootstrap)
        yield b
    finally:
        b.stop()
        subprocess.run(["umount", str(b.data_dir)], check=False)


def ready_group_coordinator(bootstrap: str, timeout_s: float = 30.0) -> None:
    import time
    from confluent_kafka import KafkaException
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "unused", "enable.auto.commit": False})
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            try:
                c.committed([TopicPartition("none", 0)], timeout=5)
                return
            except KafkaException:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
    finally:
        c.close()


def produce(bootstrap: str, count: int, fill: bytes) -> tuple[list[int], dict[str, int]]:
    acked: list[int] = []
    errors: dict[str, int] = {}

    def on_delivery(err, msg):
        if err is None:
            acked.append(msg.offset())
        else:
            errors[err.name()] = errors.get(err.name(), 0) + 1

    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": False,
                  "retries": 0, "message.timeout.ms": 10000, "linger.ms": 5})
    for _ in range(count):
        p.produce(TOPIC, value=fill, partition=0, on_delivery=on_delivery)
        p.poll(0)
    assert p.flush(30) == 0
    return acked, errors


def read_all(bootstrap: str) -> list[tuple[int, bytes]]:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "unused", "enable.auto.commit": False})
    lo, hi = c.get_watermark_offsets(TopicPartition(TOPIC, 0), timeout=10)
    c.assign([TopicPartition(TOPIC, 0, lo)])
    out = []
    while len(out) < hi - lo:
        m = c.poll(5)
        assert m is not None, f"stalled after {len(out)} of {hi - lo} records"
        assert m.error() is None, m.error()
        out.append((m.offset(), m.value()))
    c.close()
    return out


def test_disk_full_rejects_then_recovers_without_losing_acknowledged_records(small_disk_broker):
    b = small_disk_broker
    # 12 MB into an 8 MiB disk.
    acked, errors = produce(b.bootstrap, 12000, b"x" * 1000)
    assert errors.keys() == {"KAFKA_STORAGE_ERROR"}, errors
    assert len(acked) > 1000 and sorted(acked) == list(range(len(acked)))
    assert b.is_running()
    assert read_all(b.bootstrap) == [(o, b"x" * 1000) for o in range(len(acked))]

    # Free space by deleting the first half; produce succeeds again, densely after.
    half = len(acked) // 2
    admin = AdminClient({"bootstrap.servers": b.bootstrap})
    for f in admin.delete_records([TopicPartition(TOPIC, 0, half)]).values():
        f.result(timeout=30)
    more, errors = produce(b.bootstrap, 500, b"y" * 1000)
    assert errors == {}
    assert sorted(more) == list(range(len(acked), len(acked) + 500))

    # A restart on the nearly full disk keeps everything acknowledged.
    b.restart()
    expected = [(o, b"x" * 1000) for o in range(half, len(acked))] + [(o, b"y" * 1000) for o in more]
    assert read_all(b.bootstrap) == expected
