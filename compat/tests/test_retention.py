"""Retention and DeleteRecords with real clients.

These tests run their own broker (module fixture ``fast_broker``) with a short
``log.retention.check.interval.ms`` so that retention runs within seconds; topic-level
``segment.bytes`` / ``retention.*`` keep the rest of the suite unaffected. With
COMPAT_BROKER=kafka the same tests run against Apache Kafka (which also needs
``log.initial.task.delay.ms=0``, else its first retention pass waits 30 s).
"""

from __future__ import annotations

import json
import time

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

import brokers
from util import create_single_partition_topic as create, describe_proc, rdkafka_conf, wait_for

MIB = 1 << 20


@pytest.fixture(scope="module")
def fast_broker(tmp_path_factory):
    yield from brokers.private_broker(tmp_path_factory, "retention",
                                      {"log.retention.check.interval.ms": "300"})


def produce(bootstrap: str, topic: str, start: int, count: int, value_bytes: int = 0) -> None:
    p = Producer(rdkafka_conf(bootstrap, **{"linger.ms": 5, "acks": "all"}))
    pad = b"x" * value_bytes
    for i in range(start, start + count):
        p.produce(topic, key=str(i).encode(), value=f"{i:08d}".encode() + pad, partition=0)
        if i % 1000 == 0:
            p.poll(0)
    assert p.flush(60) == 0


def watermarks(bootstrap: str, topic: str) -> tuple[int, int]:
    c = Consumer(rdkafka_conf(bootstrap, **{"group.id": "compat-wm"}))
    try:
        return c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10, cached=False)
    finally:
        c.close()


def test_size_retention_while_a_consumer_keeps_reading(fast_broker, topic):
    """retention.bytes shrinks the topic from the front while an assign()-mode consumer
    with auto.offset.reset=earliest is paused behind the new log start: after resuming
    it gets OFFSET_OUT_OF_RANGE, resets to the earliest offset and reads to the end."""
    bs = fast_broker.bootstrap
    create(bs, topic, {"segment.bytes": str(MIB), "retention.bytes": str(2 * MIB)})
    c = Consumer(rdkafka_conf(bs, **{
        "group.id": "compat-retention", "enable.auto.commit": False,
        "auto.offset.reset": "earliest", "max.partition.fetch.bytes": 16 * 1024,
        "queued.max.messages.kbytes": 64}))
    try:
        tp = TopicPartition(topic, 0, 0)
        n = 6000  # 1 KiB values: about 6 MiB, six segments
        produce(bs, topic, 0, 200, value_bytes=1024)
        c.assign([tp])
        first = []
        while len(first) < 50:
            m = c.poll(10)
            assert m is not None, "no records from the start"
            assert m.error() is None, m.error()
            first.append(m.offset())
        assert first == list(range(50))
        c.pause([tp])
        produce(bs, topic, 200, n - 200, value_bytes=1024)
        low, high = wait_for(
            lambda: ((w := watermarks(bs, topic))[0] > 1000, w), 30, "retention to move the log start")
        assert high == n
        c.resume([TopicPartition(topic, 0)])
        seen = []
        deadline = time.monotonic() + 60
        while (not seen or seen[-1] < n - 1) and time.monotonic() < deadline:
            m = c.poll(1)
            if m is None or m.error() is not None:
                continue
            seen.append(m.offset())
            assert int(m.value()[:8]) == m.offset()
        assert seen and seen[-1] == n - 1, f"consumer stopped at {seen[-1:]}"
        assert seen == sorted(seen)
        # After the reset it continued from the (then) log start, not from offset 50.
        after_gap = [o for o in seen if o >= 50]
        assert after_gap[0] >= low, (after_gap[:3], low)
        assert after_gap == list(range(after_gap[0], n))
    finally:
        c.close()
    low, high = watermarks(bs, topic)
    assert high == n and 2 * MIB <= (n - low) * 1100 < 4 * MIB, (low, high)


def test_time_retention_rolls_and_empties_the_log(fast_broker, topic):
    """retention.ms with segment.ms: the old segment goes first; once everything has
    expired even the active segment is rolled away and the log start reaches the end."""
    bs = fast_broker.bootstrap
    create(bs, topic, {"retention.ms": "3000", "segment.ms": "1000"})
    produce(bs, topic, 0, 10)
    time.sleep(1.5)
    produce(bs, topic, 10, 10)  # timestamps > segment.ms after the first: a new segment
    assert watermarks(bs, topic) == (0, 20)
    wait_for(lambda: ((w := watermarks(bs, topic)) == (10, 20), w), 20, "first segment deleted")
    wait_for(lambda: ((w := watermarks(bs, topic)) == (20, 20), w), 20, "all segments deleted")
    # A consumer from the earliest offset sees only what comes next.
    produce(bs, topic, 20, 3)
    c = Consumer(rdkafka_conf(bs, **{"group.id": "compat-time", "auto.offset.reset": "earliest",
                                      "enable.auto.commit": False}))
    try:
        c.assign([TopicPartition(topic, 0, 0)])  # below the log start: reset to earliest
        got = []
        deadline = time.monotonic() + 30
        while len(got) < 3 and time.monotonic() < deadline:
            m = c.poll(1)
            if m is not None and m.error() is None:
                got.append((m.offset(), m.value()))
        assert got == [(20 + i, f"{20 + i:08d}".encode()) for i in range(3)]
    finally:
        c.close()


def test_delete_records_command_then_consume_from_earliest(fast_broker, topic, run_java,
                                                           tmp_path):
    """kafka-delete-records with its JSON file moves the log start; ListOffsets(earliest)
    reports it and a consumer from earliest starts there."""
    bs = fast_broker.bootstrap
    create(bs, topic, {})
    produce(bs, topic, 0, 100)
    spec = tmp_path / "delete.json"
    spec.write_text(json.dumps({"version": 1, "partitions": [
        {"topic": topic, "partition": 0, "offset": 42}]}))
    res = run_java("org.apache.kafka.tools.DeleteRecordsCommand", "--bootstrap-server", bs,
                   "--offset-json-file", str(spec))
    assert res.returncode == 0, describe_proc(res)
    assert f"partition: {topic}-0\tlow_watermark: 42" in res.stdout, describe_proc(res)
    assert watermarks(bs, topic) == (42, 100)

    res = run_java("org.apache.kafka.tools.GetOffsetShell", "--bootstrap-server", bs,
                   "--topic", topic, "--time", "-2")
    assert res.stdout.split() == [f"{topic}:0:42"], describe_proc(res)

    c = Consumer(rdkafka_conf(bs, **{"group.id": f"g-{topic}", "enable.auto.commit": False}))
    try:
        c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        m = None
        deadline = time.monotonic() + 30
        while m is None and time.monotonic() < deadline:
            m = c.poll(1)
            if m is not None and m.error() is not None:
                m = None
        assert m is not None and m.offset() == 42 and m.value() == b"00000042"
    finally:
        c.close()

    # Offset -1 means "the high watermark"; beyond it is OFFSET_OUT_OF_RANGE.
    spec.write_text(json.dumps({"version": 1, "partitions": [
        {"topic": topic, "partition": 0, "offset": -1}]}))
    res = run_java("org.apache.kafka.tools.DeleteRecordsCommand", "--bootstrap-server", bs,
                   "--offset-json-file", str(spec))
    assert f"low_watermark: 100" in res.stdout, describe_proc(res)
    spec.write_text(json.dumps({"version": 1, "partitions": [
        {"topic": topic, "partition": 0, "offset": 500}]}))
    res = run_java("org.apache.kafka.tools.DeleteRecordsCommand", "--bootstrap-server", bs,
                   "--offset-json-file", str(spec))
    assert "OffsetOutOfRangeException" in res.stdout + res.stderr, describe_proc(res)
    assert watermarks(bs, topic) == (100, 100)


def test_kill9_during_retention_keeps_the_log_valid(fast_broker, topic):
    """SIGKILL at arbitrary moments while retention deletes segments: after each restart
    the log start never moved back, nothing acknowledged above it is lost, and a read
    from the log start returns every offset to the end, densely, with its own value."""
    import random

    bs = fast_broker.bootstrap
    create(bs, topic, {"segment.bytes": str(MIB), "retention.bytes": str(2 * MIB)})
    rng = random.Random(5)
    produced, last_low = 0, 0
    for _ in range(4):
        produce(bs, topic, produced, 2500, value_bytes=1024)  # about 2.5 segments
        produced += 2500
        time.sleep(rng.uniform(0.0, 0.6))  # retention runs every 300 ms
        fast_broker.kill9()
        fast_broker.start()
        low, high = watermarks(bs, topic)
        assert high == produced and last_low <= low <= high, (last_low, low, high, produced)
        last_low = low
        c = Consumer(rdkafka_conf(bs, **{"group.id": "compat-kill9", "enable.auto.commit": False,
                                          "auto.offset.reset": "earliest"}))
        try:
            c.assign([TopicPartition(topic, 0, low)])
            expect = low
            deadline = time.monotonic() + 30
            while expect < high and time.monotonic() < deadline:
                m = c.poll(1)
                if m is None or m.error() is not None:
                    continue
                if m.offset() != expect:
                    # Only a retention pass since the restart may skip records: the
                    # consumer was reset to the new log start, which is now >= it.
                    now_low = watermarks(bs, topic)[0]
                    assert m.offset() > expect and now_low >= m.offset(), (m.offset(), expect, now_low)
                    expect = m.offset()
                assert int(m.value()[:8]) == expect
                expect += 1
            assert expect == high, f"read up to {expect} of {high}"
        finally:
            c.close()


def test_broker_default_retention_applies_to_topics(fast_broker, topic, run_java):
    """kafka-configs on the cluster-default broker entity: log.retention.ms becomes the
    retention of every topic without its own retention.ms, at once; read-only broker
    keys are refused."""
    bs = fast_broker.bootstrap
    tool = "org.apache.kafka.tools.ConfigCommand"
    brokers_ = ["--bootstrap-server", bs, "--entity-type", "brokers"]
    create(bs, topic, {"segment.ms": "500"})
    produce(bs, topic, 0, 10)
    time.sleep(0.7)
    produce(bs, topic, 10, 10)  # timestamps more than segment.ms apart: a second segment
    assert watermarks(bs, topic) == (0, 20)
    res = run_java(tool, *brokers_, "--entity-default", "--alter",
                   "--add-config", "log.retention.ms=1500")
    assert res.returncode == 0, describe_proc(res)
    try:
        wait_for(lambda: ((w := watermarks(bs, topic)) == (20, 20), w), 20,
                 "the broker default retention to empty the topic")
        res = run_java(tool, *brokers_, "--entity-default", "--describe")
        assert res.returncode == 0, describe_proc(res)
        assert "log.retention.ms=1500 sensitive=false synonyms={DYNAMIC_DEFAULT_BROKER_CONFIG:" \
               "log.retention.ms=1500}" in res.stdout, describe_proc(res)
        res = run_java(tool, *brokers_, "--entity-name", "1", "--alter",
                       "--add-config", "log.dirs=/tmp/elsewhere")
        assert res.returncode != 0
        assert "InvalidRequestException" in res.stdout + res.stderr, describe_proc(res)
    finally:
        res = run_java(tool, *brokers_, "--entity-default", "--alter",
                       "--delete-config", "log.retention.ms")
        assert res.returncode == 0, describe_proc(res)
