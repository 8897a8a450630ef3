"""Log compaction with real clients: a Java consumer reading a compacted topic, and a
Kafka Streams KTable that restores its state from its compacted changelog.

These tests run their own broker (module fixture ``cleaner_broker``) whose cleaner wakes
every 200 ms (``log.cleaner.backoff.ms``; Kafka's default is 15 s). Topics roll segments
by time (``segment.ms=100``: the active segment is never cleaned) and are cleanable at
any dirty ratio. Records carry explicit timestamps 150 ms apart per round, so each round
lands in its own segment whatever the wall clock does. With COMPAT_BROKER=kafka the same
tests run against Apache Kafka.
"""

from __future__ import annotations

import re
import time

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

import brokers
from util import create_single_partition_topic as create, describe_proc, rdkafka_conf, unique_topic, wait_for


@pytest.fixture(scope="module")
def cleaner_broker(tmp_path_factory):
    yield from brokers.private_broker(tmp_path_factory, "cleaner",
                                      {"log.cleaner.backoff.ms": "200"})


COMPACT = {"cleanup.policy": "compact", "segment.ms": "100",
           "min.cleanable.dirty.ratio": "0.01", "min.compaction.lag.ms": "0"}


def produce_rounds(bootstrap: str, topic: str, rounds: list[list[tuple[str, str | None]]],
                   partition: int | None = 0, t0_ms: int | None = None) -> dict[int, tuple]:
    """Produces each round with timestamps 150 ms after the previous round's (so a topic
    with segment.ms=100 rolls between rounds); returns {offset: (key, value)} from the
    delivery reports (partition 0 only, when ``partition`` is 0)."""
    p = Producer(rdkafka_conf(bootstrap, **{"linger.ms": 5, "acks": "all"}))
    acked: dict[int, tuple] = {}

    def on_delivery(err, msg):
        assert err is None, err
        value = msg.value().decode() if msg.value() is not None else None
        acked[msg.offset()] = (msg.key().decode(), value)

    t = t0_ms if t0_ms is not None else int(time.time() * 1000)
    for records in rounds:
        for key, value in records:
            kw = {"partition": partition} if partition is not None else {}
            p.produce(topic, key=key.encode(), value=None if value is None else value.encode(),
                      timestamp=t, on_delivery=on_delivery, **kw)
            t += 1
        assert p.flush(60) == 0
        t += 150
    return acked


def count_records(bootstrap: str, topic: str, partition: int = 0) -> int:
    """Records readable from the beginning to the high watermark (librdkafka)."""
    c = Consumer(rdkafka_conf(bootstrap, **{"group.id": "compat-count",
                                            "enable.auto.commit": False}))
    try:
        lo, hi = c.get_watermark_offsets(TopicPartition(topic, partition), timeout=10,
                                         cached=False)
        c.assign([TopicPartition(topic, partition, lo)])
        n, pos = 0, lo
        deadline = time.monotonic() + 30
        while pos < hi and time.monotonic() < deadline:
            for msg in c.consume(500, 0.5):
                assert msg.error() is None, msg.error()
                n += 1
                pos = msg.offset() + 1
        assert pos >= hi, f"read to {pos} of {hi}"
        return n
    finally:
        c.close()


def test_java_consumer_reads_compacted_topic(cleaner_broker, run_java):
    """50 keys written over 5 rounds (keys 0-4 deleted in round 4): once the cleaner has
    run, a Java consumer from offset 0 sees each key's latest value at the offset it was
    acknowledged at, no superseded value below the active segment, offsets increasing,
    and for a deleted key nothing older than its tombstone."""
    bs = cleaner_broker.bootstrap
    topic = unique_topic("compacted-java")
    create(bs, topic, {**COMPACT, "delete.retention.ms": "86400000"})
    keys = [f"k{i:02d}" for i in range(50)]
    rounds = [[(k, f"{k}-r{r}") for k in keys] for r in range(3)]
    rounds.append([(k, None) for k in keys[:5]])  # tombstones
    rounds.append([(k, f"{k}-r4") for k in keys[40:]])  # the active segment's round
    acked = produce_rounds(bs, topic, rounds)
    produced = len(acked)
    assert produced == 3 * 50 + 5 + 10

    # Rounds 0-3 are in closed segments; compacted, they hold one record per key.
    n = wait_for(lambda: ((m := count_records(bs, topic)) <= 50 + 10, m), 90,
                 "the cleaner to compact the topic")

    res = run_java("ReadAll.java", bs, topic, "0", timeout=120)
    assert res.returncode == 0, describe_proc(res)
    recs = []
    for line in res.stdout.splitlines():
        if line.startswith("REC "):
            _, off, key, value = line.split(" ", 3)
            recs.append((int(off), key, None if value == "<null>" else value))
    end = re.search(r"^END first=(\d+) end=(\d+) records=(\d+)$", res.stdout, re.M)
    assert end, describe_proc(res)
    assert int(end[1]) == 0 and int(end[2]) == produced and int(end[3]) == len(recs)
    assert len(recs) <= n, "the Java client saw more records than librdkafka after compaction"

    offsets = [o for o, _, _ in recs]
    assert offsets == sorted(set(offsets))
    for off, key, value in recs:  # every record is the one acknowledged at that offset
        assert acked[off] == (key, value), (off, key, value)

    latest = {}
    for off in sorted(acked):
        latest[acked[off][0]] = off
    seen = {}
    for off, key, value in recs:
        seen.setdefault(key, []).append(off)
    for key in keys:
        offs = seen.get(key, [])
        if key in keys[:5]:
            # Deleted: the tombstone is kept (delete.retention.ms is a day) and nothing older.
            assert offs == [latest[key]], (key, offs)
        elif key in keys[40:]:
            # Round 2's value (cleaned part) and round 4's (active segment) survive.
            assert offs[-1] == latest[key] and len(offs) <= 2, (key, offs)
        else:
            assert offs == [latest[key]], (key, offs)


def test_kafka_streams_ktable_restores_from_compacted_changelog(cleaner_broker, run_java,
                                                               tmp_path):
    """A Kafka Streams count() KTable over 2 partitions: run once, let the cleaner compact
    its changelog, then run again with an empty state dir: the store restored from the
    compacted changelog alone plus the new input must give exact counts per key."""
    bs = cleaner_broker.bootstrap
    topic = unique_topic("streams-input")
    app = unique_topic("streams-app")
    create_input = {"segment.ms": "100"}
    from confluent_kafka.admin import AdminClient, NewTopic
    admin = AdminClient(rdkafka_conf(bs))
    admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1,
                                  config=create_input)])[topic].result(timeout=60)

    keys = [f"user{i:02d}" for i in range(20)]
    first = [[(keys[(r * 7 + i) % 20], f"e{r}-{i}") for i in range(100)] for r in range(10)]
    t0 = int(time.time() * 1000)
    produce_rounds(bs, topic, first, partition=None, t0_ms=t0)
    expected: dict[str, int] = {}
    for rnd in first:
        for k, _ in rnd:
            expected[k] = expected.get(k, 0) + 1

    def run_app(state_dir, total):
        res = run_java("StreamsCount.java", bs, topic, app, str(state_dir), str(total),
                       timeout=180)
        assert res.returncode == 0, describe_proc(res)
        counts = {m[1]: int(m[2]) for m in re.finditer(r"^COUNT (\S+) (\d+)$", res.stdout, re.M)}
        restored = int(re.search(r"^RESTORED (\d+)$", res.stdout, re.M)[1])
        return counts, restored

    counts, restored = run_app(tmp_path / "state-1", 1000)
    assert counts == expected
    assert restored == 0

    changelog = f"{app}-counts-changelog"
    total_changelog = lambda: sum(count_records(bs, changelog, p) for p in range(2))
    wait_for(lambda: ((m := total_changelog()) <= 500, m), 90,
             "the cleaner to compact the changelog (1,000 records over 20 keys)")

    second = [[(keys[(r * 3 + i) % 20], f"f{r}-{i}") for i in range(50)] for r in range(4)]
    produce_rounds(bs, topic, second, partition=None, t0_ms=t0 + 3000)
    for rnd in second:
        for k, _ in rnd:
            expected[k] = expected.get(k, 0) + 1

    counts, restored = run_app(tmp_path / "state-2", 1200)
    assert counts == expected
    assert 0 < restored <= 500, f"restored {restored} changelog records"
