"""kafka-python (pure Python client, its own protocol code): admin create/list/describe,
idempotent acks=all produce in every codec, exact read-back with assign() and no group."""

import time

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition

from util import unique_topic

CODECS = [None, "gzip", "snappy", "lz4", "zstd"]
PARTITIONS = 3


@pytest.fixture
def admin(broker):
    a = KafkaAdminClient(bootstrap_servers=broker.bootstrap, client_id="compat-kpy-admin",
                         request_timeout_ms=30000)
    yield a
    a.close()


def create(admin, name: str, partitions: int):
    res = admin.create_topics({name: {"num_partitions": partitions, "replication_factor": 1}},
                              timeout_ms=30000, wait_for_metadata=True)
    [t] = res["topics"]
    assert t["name"] == name and t["error_code"] == 0, t
    return t


def test_admin_create_list_describe(broker, admin):
    name = unique_topic("kpy-admin")
    t = create(admin, name, 4)
    # CreateTopics v5+ echoes the partition count and replication factor.
    assert t.get("num_partitions", 4) == 4
    assert t.get("replication_factor", 1) == 1
    assert name in admin.list_topics()

    [desc] = admin.describe_topics([name])
    assert desc["name"] == name and desc["error_code"] == 0, desc
    parts = sorted(desc["partitions"], key=lambda p: p["partition_index"])
    assert [p["partition_index"] for p in parts] == [0, 1, 2, 3]
    for p in parts:
        assert p["error_code"] == 0, p
        assert p["leader_id"] == broker.node_id, p
        assert list(p["replica_nodes"]) == [broker.node_id], p
        assert list(p["isr_nodes"]) == [broker.node_id], p

    # describe of an unknown topic reports UNKNOWN_TOPIC_OR_PARTITION (3), no partitions.
    missing = unique_topic("kpy-missing")
    described = admin.describe_topics([missing])
    [m] = [d for d in described if d["name"] == missing]
    assert m["error_code"] == 3 and not m["partitions"], m


def make_records(n: int):
    out = []
    for i in range(n):
        key = f"k{i % 29}".encode()
        value = f"kafka-python {i} ".encode() + bytes(range(256))[: i % 256]
        headers = [("i", str(i).encode()), ("rep", b"a"), ("rep", b"b")]
        out.append((key, value, headers))
    return out


@pytest.mark.parametrize("codec", CODECS, ids=lambda c: c or "none")
def test_produce_and_read_back(broker, admin, codec):
    topic = unique_topic(f"kpy-{codec or 'none'}")
    create(admin, topic, PARTITIONS)
    records = make_records(300)

    # kafka-python >= 2.1 has an idempotent producer (InitProducerId + sequences).
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all",
                             enable_idempotence=True, compression_type=codec, linger_ms=5)
    futures = [producer.send(topic, key=k, value=v, headers=h) for k, v, h in records]
    producer.flush(timeout=60)
    metas = [f.get(timeout=60) for f in futures]
    producer.close(timeout=10)

    by_part: dict[int, list[int]] = {}
    for m in metas:
        assert m.topic == topic
        by_part.setdefault(m.partition, []).append(m.offset)
    assert sorted(by_part) == list(range(PARTITIONS))
    for part, offs in by_part.items():
        assert sorted(offs) == list(range(len(offs))), f"partition {part} offsets not dense"

    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None,
                             enable_auto_commit=False, auto_offset_reset="none",
                             consumer_timeout_ms=1000)
    tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    got = {}
    deadline = time.monotonic() + 60
    while len(got) < len(records) and time.monotonic() < deadline:
        for tp, msgs in consumer.poll(timeout_ms=500).items():
            for msg in msgs:
                pos = (msg.partition, msg.offset)
                assert pos not in got, f"delivered twice: {pos}"
                got[pos] = msg
    # Nothing beyond what was produced.
    extra = consumer.poll(timeout_ms=1000)
    assert not any(extra.values()), extra
    end = consumer.end_offsets(tps)
    consumer.close()

    assert len(got) == len(records)
    assert {tp.partition: off for tp, off in end.items()} == {
        p: len(o) for p, o in by_part.items()}
    for (key, value, headers), meta in zip(records, metas):
        msg = got[(meta.partition, meta.offset)]
        assert msg.topic == topic
        assert msg.key == key
        assert msg.value == value
        assert [(k, v) for k, v in msg.headers] == headers
        assert msg.timestamp_type == 0 and msg.timestamp > 0  # CreateTime
