"""The Java client (kafka-clients 4.x, the reference implementation): default-config
(idempotent, acks=all) producer + group-less consumer round trip in every codec, checked
inside the Java program and again here; AdminClient operations."""

import re
import time

from confluent_kafka import Consumer, TopicPartition

from util import describe_proc, rdkafka_conf, unique_topic

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
COUNT = 500


def results(stdout: str) -> dict[str, str]:
    return dict(line[len("RESULT "):].split("=", 1)
                for line in stdout.splitlines() if line.startswith("RESULT "))


def test_produce_consume_round_trip(broker, run_java):
    prefix = unique_topic("java-pc")
    res = run_java("ProduceConsume.java", broker.bootstrap, prefix, str(COUNT), ",".join(CODECS),
                   timeout=240)
    assert res.returncode == 0, describe_proc(res)
    lines = [l for l in res.stdout.splitlines() if l.startswith("RESULT ")]
    assert len(lines) == len(CODECS), describe_proc(res)
    for codec, line in zip(CODECS, lines):
        m = re.fullmatch(r"RESULT codec=(\S+) topic=(\S+) produced=(\d+) consumed=(\d+) "
                         r"partitions=(\d+):(\d+),(\d+):(\d+),(\d+):(\d+) mismatches=(\d+)", line)
        assert m, line
        assert m[1] == codec and m[2] == f"{prefix}-{codec}"
        assert int(m[3]) == COUNT and int(m[4]) == COUNT
        counts = [int(m[i]) for i in (6, 8, 10)]
        assert [int(m[i]) for i in (5, 7, 9)] == [0, 1, 2]
        assert sum(counts) == COUNT and min(counts) > 0, line
        assert m[11] == "0"

    # Cross-client: librdkafka reads what the Java producer wrote (e.g. Java's snappy
    # framing), so the broker must have kept the batches intact.
    for codec in CODECS:
        topic = f"{prefix}-{codec}"
        c = Consumer(rdkafka_conf(broker.bootstrap, **{"group.id": "compat-unused",
                                                       "enable.auto.commit": False,
                                                       "auto.offset.reset": "error"}))
        c.assign([TopicPartition(topic, p, 0) for p in range(3)])
        seen = {}
        deadline = time.monotonic() + 30
        while len(seen) < COUNT and time.monotonic() < deadline:
            msg = c.poll(0.5)
            if msg is None:
                continue
            assert msg.error() is None, msg.error()
            headers = msg.headers()
            seq = int(headers[0][1])
            assert headers[0][0] == "seq"
            assert headers[1:3] == [("dup", b"one"), ("dup", b"two")]
            assert msg.key() == f"key-{seq % 41}".encode()
            assert msg.value().startswith(f"java {codec} value {seq} ".encode())
            seen[seq] = (msg.partition(), msg.offset())
        c.close()
        assert sorted(seen) == list(range(COUNT)), f"{codec}: read {len(seen)} of {COUNT}"


def test_admin_operations(broker, run_java):
    topic = unique_topic("java-admin")
    res = run_java("AdminOps.java", broker.bootstrap, topic)
    assert res.returncode == 0, describe_proc(res)
    r = results(res.stdout)
    node = broker.node_id
    assert r["cluster.nodes"] == f"[{node}@{broker.bootstrap}]"
    assert r["cluster.controller"] == str(node)
    assert r["cluster.id.present"] == "true"
    assert r["created"] == topic
    assert r["listed"] == "true"
    assert r["describe.partitions"] == "3"
    assert r["describe.leaders"] == f"[0:{node}, 1:{node}, 2:{node}]"
    assert r["describe.replicas"] == f"[[{node}], [{node}], [{node}]]"
    assert r["describe.isr"] == f"[[{node}], [{node}], [{node}]]"
    assert r["describe.internal"] == "false"
    assert r["describe.topicId.present"] == "true"
    assert int(r["config.count"]) >= 2
    assert r["config.retention.ms"] == "3600000"
    assert r["config.retention.ms.source"] == "DYNAMIC_TOPIC_CONFIG"
    assert r["config.cleanup.policy"] == "delete"
    assert r["config.cleanup.policy.source"] == "DEFAULT_CONFIG"
    assert r["config.max.message.bytes.present"] == "true"
    assert r["after.createPartitions.partitions"] == "5"
    assert r["after.createPartitions.ids"] == "[0, 1, 2, 3, 4]"
    assert r["after.delete.listed"] == "false"
    assert r["missing.describe"] == "UnknownTopicOrPartitionException"
