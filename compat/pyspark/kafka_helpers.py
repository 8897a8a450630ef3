"""Helpers for the PySpark compat tests: produce exact test data with confluent-kafka,
read it back without Spark, and turn Spark rows into the same record tuples."""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from dataclasses import dataclass, field

import pytest

_RDKAFKA_LOG = logging.getLogger("rdkafka")


def rdkafka_conf(bootstrap: str, **conf) -> dict:
    return {"bootstrap.servers": bootstrap, "logger": _RDKAFKA_LOG, **conf}


def unique_topic(label: str) -> str:
    """A topic name no other test uses; only [a-zA-Z0-9-]."""
    clean = re.sub(r"[^a-zA-Z0-9-]+", "-", label).strip("-")[:60]
    return f"{clean}-{uuid.uuid4().hex[:8]}"


def requires_api(broker, key: int, name: str, why: str) -> None:
    """Skip, naming the API, when the broker does not advertise ``key`` in ApiVersions."""
    if key not in broker.api_versions:
        pytest.skip(f"{broker.kind} does not advertise {name} (ApiVersions key {key}); {why}")


@dataclass(frozen=True, order=True)
class Rec:
    """One Kafka record as both confluent-kafka and Spark see it."""
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int
    headers: tuple = field(default=())  # ((key: str, value: bytes | None), ...)


def create_topic(bootstrap: str, name: str, partitions: int = 1,
                 config: dict[str, str] | None = None, timeout_s: float = 30.0) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient(rdkafka_conf(bootstrap))
    fs = admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1,
                                       config=config or {})],
                             operation_timeout=30, request_timeout=30)
    fs[name].result(timeout=60)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        t = admin.list_topics(topic=name, timeout=10).topics.get(name)
        if (t is not None and t.error is None and len(t.partitions) == partitions
                and all(p.leader >= 0 for p in t.partitions.values())):
            return
        time.sleep(0.1)
    raise AssertionError(f"topic {name} not ready with {partitions} partitions")


def make_producer(bootstrap: str, **conf):
    from confluent_kafka import Producer
    return Producer(rdkafka_conf(bootstrap, **{"linger.ms": 5, "acks": "all", **conf}))


def produce(bootstrap: str, topic: str, items: list[dict], producer=None) -> list[Rec]:
    """Produce ``items`` (dicts with partition, key, value, ts, headers) in order, wait for
    every delivery report; returns the records with the offsets the broker assigned."""
    p = producer or make_producer(bootstrap)
    reports: list = [None] * len(items)

    def on_delivery(i):
        def cb(err, msg):
            reports[i] = (err, msg)
        return cb

    for i, it in enumerate(items):
        kw = {"partition": it["partition"], "key": it.get("key"), "value": it.get("value"),
              "on_delivery": on_delivery(i)}
        if it.get("ts") is not None:
            kw["timestamp"] = it["ts"]
        if it.get("headers"):
            kw["headers"] = list(it["headers"])
        while True:
            try:
                p.produce(topic, **kw)
                break
            except BufferError:
                p.poll(0.1)
        p.poll(0)
    remaining = p.flush(30)
    assert remaining == 0, f"{remaining} messages not delivered to {topic}"
    out = []
    for i, (it, rep) in enumerate(zip(items, reports)):
        assert rep is not None, f"no delivery report for item {i}"
        err, msg = rep
        assert err is None, f"delivery of item {i} to {topic} failed: {err}"
        assert msg.partition() == it["partition"]
        ts_type, ts = msg.timestamp()
        if it.get("ts") is not None:
            assert ts == it["ts"], f"item {i}: broker timestamp {ts} != {it['ts']}"
        out.append(Rec(topic, msg.partition(), msg.offset(), _b(it.get("key")),
                       _b(it.get("value")), ts,
                       tuple((k, _b(v)) for k, v in (it.get("headers") or ()))))
    return out


def _b(v) -> bytes | None:
    if v is None:
        return None
    return v.encode() if isinstance(v, str) else bytes(v)


def end_offsets(bootstrap: str, topic: str, partitions: int) -> dict[int, tuple[int, int]]:
    """{partition: (log start offset, high watermark)} as librdkafka sees them."""
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer(rdkafka_conf(bootstrap, **{"group.id": "compat-pyspark-unused",
                                            "enable.auto.commit": False}))
    try:
        return {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
                for p in range(partitions)}
    finally:
        c.close()


def read_all(bootstrap: str, topic: str, partitions: int, timeout_s: float = 30.0,
             isolation: str = "read_uncommitted") -> list[Rec]:
    """Every record of ``topic`` (assign() from the log start, no group), sorted by
    (partition, offset); stops at each partition's high watermark."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    ends = end_offsets(bootstrap, topic, partitions)
    c = Consumer(rdkafka_conf(bootstrap, **{
        "group.id": "compat-pyspark-unused", "enable.auto.commit": False,
        "enable.auto.offset.store": False, "enable.partition.eof": True,
        "isolation.level": isolation}))
    out: list[Rec] = []
    try:
        todo = {p for p in range(partitions) if ends[p][1] > ends[p][0]}
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in todo])
        deadline = time.monotonic() + timeout_s
        while todo and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error():
                if m.error().code() == -191:  # _PARTITION_EOF
                    todo.discard(m.partition())
                    continue
                raise AssertionError(f"consume error on {topic}: {m.error()}")
            hs = tuple((k, _b(v)) for k, v in (m.headers() or ()))
            out.append(Rec(topic, m.partition(), m.offset(), m.key(), m.value(),
                           m.timestamp()[1], hs))
            if m.offset() + 1 >= ends[m.partition()][1]:
                todo.discard(m.partition())
        assert not todo, f"partitions {sorted(todo)} of {topic} not read to the end"
    finally:
        c.close()
    return sorted(out)


# -- Spark side ------------------------------------------------------------------------------

def spark_recs(df, with_headers: bool = True) -> list[Rec]:
    """Collect a Kafka source DataFrame as sorted Recs (timestamps in epoch ms)."""
    from pyspark.sql import functions as F

    cols = [F.col("topic"), F.col("partition"), F.col("offset"), F.col("key"),
            F.col("value"), F.unix_millis(F.col("timestamp")).alias("ts")]
    if with_headers:
        cols.append(F.col("headers"))
    out = []
    for r in df.select(*cols).collect():
        hs = ()
        if with_headers and r["headers"] is not None:
            hs = tuple((h["key"], None if h["value"] is None else bytes(h["value"]))
                       for h in r["headers"])
        out.append(Rec(r["topic"], r["partition"], r["offset"],
                       None if r["key"] is None else bytes(r["key"]),
                       None if r["value"] is None else bytes(r["value"]), r["ts"], hs))
    return sorted(out)


def kafka_reader(spark, bootstrap: str, **options):
    """``spark.read.format("kafka")`` with the bootstrap set and ``options`` (values that
    are dicts are passed as JSON, as the Kafka source expects)."""
    r = spark.read.format("kafka").option("kafka.bootstrap.servers", bootstrap)
    for k, v in options.items():
        r = r.option(k, json.dumps(v) if isinstance(v, dict) else str(v))
    return r.load()


def kafka_stream(spark, bootstrap: str, **options):
    r = spark.readStream.format("kafka").option("kafka.bootstrap.servers", bootstrap)
    for k, v in options.items():
        r = r.option(k, json.dumps(v) if isinstance(v, dict) else str(v))
    return r.load()
