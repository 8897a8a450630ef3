"""confluent-kafka (librdkafka): idempotent acks=all produce in every codec and an exact
read-back with assign()+seek (no consumer group); metadata for an unknown topic; topic
auto-creation on produce."""

import time

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from util import rdkafka_conf, unique_topic, wait_for_topic

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
PARTITIONS = 3


def make_records(n: int):
    """(key, value, headers). Header keys repeat on purpose: their order and every
    duplicate must survive; one record has a null value (tombstone) and one a null
    header value."""
    recs = []
    for i in range(n):
        key = f"key-{i % 37}".encode()
        value = None if i == 7 else (f"value-{i}-" + "abcdefgh" * (i % 50)).encode()
        headers = [("seq", str(i).encode()), ("dup", b"first"), ("dup", b"second")]
        if i % 10 == 0:
            headers.append(("nullable", None))
        recs.append((key, value, headers))
    return recs


def produce_all(bootstrap: str, topic: str, records, **conf):
    """Produce and return {index: (partition, offset)} from delivery reports; fails on
    any delivery error."""
    p = Producer(rdkafka_conf(bootstrap, **{"enable.idempotence": True, "acks": "all",
                                            "linger.ms": 5, **conf}))
    acked, errors = {}, []

    def on_delivery(i):
        def cb(err, msg):
            if err is not None:
                errors.append((i, err))
            else:
                acked[i] = (msg.partition(), msg.offset())
        return cb

    for i, (k, v, h) in enumerate(records):
        p.produce(topic, key=k, value=v, headers=h, on_delivery=on_delivery(i))
        p.poll(0)
    remaining = p.flush(60)
    assert remaining == 0, f"{remaining} records not delivered in 60s"
    assert errors == []
    assert len(acked) == len(records)
    return acked


def consume_exact(bootstrap: str, topic: str, partitions: int, expected_counts: dict[int, int],
                  timeout_s: float = 60):
    """Read every partition from offset 0 with assign() (no group, no commits) until the
    expected number per partition has arrived; returns {(partition, offset): Message}."""
    c = Consumer(rdkafka_conf(bootstrap, **{
        "group.id": "compat-unused", "enable.auto.commit": False,
        "enable.auto.offset.store": False, "auto.offset.reset": "error",
        "enable.partition.eof": False}))
    try:
        c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        got, per_part = {}, {p: 0 for p in range(partitions)}
        deadline = time.monotonic() + timeout_s
        while any(per_part[p] < expected_counts.get(p, 0) for p in per_part):
            assert time.monotonic() < deadline, f"timed out; got {per_part}, want {expected_counts}"
            msg = c.poll(0.5)
            if msg is None:
                continue
            assert msg.error() is None, msg.error()
            pos = (msg.partition(), msg.offset())
            assert pos not in got, f"offset delivered twice: {pos}"
            got[pos] = msg
            per_part[msg.partition()] += 1
        # Nothing beyond what was produced.
        extra = c.poll(1.0)
        assert extra is None, f"unexpected extra record {extra.partition()}/{extra.offset()}"
        return got
    finally:
        c.close()


@pytest.mark.parametrize("codec", CODECS)
def test_idempotent_produce_and_read_back(broker, create_topic, codec):
    topic = unique_topic(f"ck-{codec}")
    create_topic(topic, partitions=PARTITIONS)
    records = make_records(400)
    acked = produce_all(broker.bootstrap, topic, records, **{"compression.type": codec})

    # Delivery reports: every partition used, offsets dense from 0 in each partition,
    # and one key always maps to one partition.
    by_part: dict[int, list[int]] = {}
    key_part: dict[bytes, int] = {}
    for i, (part, off) in acked.items():
        by_part.setdefault(part, []).append(off)
        assert key_part.setdefault(records[i][0], part) == part
    assert sorted(by_part) == list(range(PARTITIONS))
    for part, offs in by_part.items():
        assert sorted(offs) == list(range(len(offs))), f"partition {part} offsets not dense"

    got = consume_exact(broker.bootstrap, topic, PARTITIONS,
                        {p: len(o) for p, o in by_part.items()})
    assert len(got) == len(records)
    for i, (key, value, headers) in enumerate(records):
        msg = got[acked[i]]
        assert msg.topic() == topic
        assert msg.key() == key, i
        assert msg.value() == value, i
        assert msg.headers() == headers, i
        ts_type, ts = msg.timestamp()
        assert ts_type == 1 and ts > 0  # CreateTime, set by the producer


def test_metadata_unknown_topic(broker):
    name = unique_topic("never-created")
    # A consumer handle's metadata request does not ask for auto-creation
    # (allow.auto.create.topics=false).
    c = Consumer(rdkafka_conf(broker.bootstrap, **{"group.id": "compat-unused",
                                                   "allow.auto.create.topics": False}))
    try:
        md = c.list_topics(topic=name, timeout=10)
        t = md.topics[name]
        assert t.error is not None and t.error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART
        assert len(t.partitions) == 0
        assert [b.id for b in md.brokers.values()] == [broker.node_id]
    finally:
        c.close()
    # ... and it was not created as a side effect.
    admin = AdminClient(rdkafka_conf(broker.bootstrap))
    assert name not in admin.list_topics(timeout=10).topics


def test_auto_create_topic_on_produce(broker):
    name = unique_topic("auto-created")
    records = [(f"k{i}".encode(), f"v{i}".encode(), [("h", str(i).encode())])
               for i in range(20)]
    acked = produce_all(broker.bootstrap, name, records)
    # Kafka's default num.partitions is 1.
    assert sorted(acked.values()) == [(0, i) for i in range(20)]
    t = wait_for_topic(broker.bootstrap, name, 1)
    assert t.partitions[0].leader == broker.node_id
    got = consume_exact(broker.bootstrap, name, 1, {0: 20})
    for i, (k, v, h) in enumerate(records):
        msg = got[acked[i]]
        assert (msg.key(), msg.value(), msg.headers()) == (k, v, h)
