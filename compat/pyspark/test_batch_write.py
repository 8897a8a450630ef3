"""Batch writes with Spark's Kafka sink (``df.write.format("kafka")``): the sink is a
default (idempotent, acks=all) Java producer. What Spark wrote is read back with
confluent-kafka (independent of Spark) and with Spark, and must match exactly."""

from __future__ import annotations

import time

from pyspark.sql import types as T

import kafka_helpers as kh

PARTITIONS = 3
SINK_SCHEMA = T.StructType([
    T.StructField("key", T.StringType()),
    T.StructField("value", T.BinaryType()),
    T.StructField("headers", T.ArrayType(T.StructType([
        T.StructField("key", T.StringType()),
        T.StructField("value", T.BinaryType())]))),
    T.StructField("partition", T.IntegerType()),
])


def rows_to_write(n: int = 15):
    rows = []
    for i in range(n):
        headers = [("src", b"spark"), ("i", str(i).encode()), ("src", b"again")]
        if i == 3:
            headers = []
        if i == 4:
            headers = [("nullable", None)]
        rows.append((None if i == 5 else f"wk{i}",
                     None if i == 7 else f"written value {i}".encode(),
                     headers, i % PARTITIONS))
    return rows


def test_write_key_value_headers_partition(spark, broker, create_topic, topic_name):
    create_topic(topic_name, PARTITIONS)
    rows = rows_to_write()
    df = spark.createDataFrame(rows, SINK_SCHEMA).coalesce(1)  # one task: order kept
    t0 = int(time.time() * 1000) - 1000
    (df.write.format("kafka")
       .option("kafka.bootstrap.servers", broker.bootstrap)
       .option("topic", topic_name)
       .save())
    t1 = int(time.time() * 1000) + 1000

    got = kh.read_all(broker.bootstrap, topic_name, PARTITIONS)
    # Expected per partition, in write order, at offsets 0..n-1.
    expected = []
    for p in range(PARTITIONS):
        mine = [r for r in rows if r[3] == p]
        for off, (k, v, hs, _) in enumerate(mine):
            expected.append((p, off, None if k is None else k.encode(), v,
                             tuple((hk, hv) for hk, hv in hs)))
    assert [(r.partition, r.offset, r.key, r.value, r.headers) for r in got] == expected
    assert all(t0 <= r.timestamp_ms <= t1 for r in got), [r.timestamp_ms for r in got]

    # Spark reads back exactly what librdkafka read.
    back = kh.kafka_reader(spark, broker.bootstrap, subscribe=topic_name,
                           includeHeaders="true")
    assert kh.spark_recs(back) == got


def test_write_topic_column_string_value(spark, broker, create_topic):
    """Topic taken from a ``topic`` column (two topics in one write), string values, no
    key, no partition column (the producer's partitioner picks)."""
    a, b = kh.unique_topic("write-col-a"), kh.unique_topic("write-col-b")
    create_topic(a, 2)
    create_topic(b, 1)
    rows = [(a if i % 3 else b, f"v{i}") for i in range(30)]
    (spark.createDataFrame(rows, "topic string, value string")
        .write.format("kafka").option("kafka.bootstrap.servers", broker.bootstrap).save())
    for name, parts in ((a, 2), (b, 1)):
        got = kh.read_all(broker.bootstrap, name, parts)
        assert sorted(r.value.decode() for r in got) == sorted(v for t, v in rows if t == name)
        assert all(r.key is None for r in got)
        # offsets are dense per partition
        for p in range(parts):
            offs = [r.offset for r in got if r.partition == p]
            assert offs == list(range(len(offs)))
