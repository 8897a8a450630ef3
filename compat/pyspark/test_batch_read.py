"""Batch reads with Spark's Kafka source (``spark.read.format("kafka")``).

One 3-partition topic is produced once with confluent-kafka: explicit partitions,
explicit CreateTime timestamps, keys (one null), values (one null), headers (repeated
keys, a null header value, none at all). Every test compares what Spark returns with
exactly what was produced: topic, partition, offset, key, value, timestamp, headers.

Timestamps: record i of partition p has ``BASE + i*1000 + p*10`` ms, so timestamp
look-ups (ListOffsets by timestamp) have a known answer per partition.
"""

from __future__ import annotations

import time
from dataclasses import replace

import pytest

import kafka_helpers as kh

PARTITIONS = 3
PER_PARTITION = 10


def ts_of(base: int, p: int, i: int) -> int:
    return base + i * 1000 + p * 10


@pytest.fixture(scope="module")
def dataset(broker):
    """(topic, base_ts, produced Recs sorted by (partition, offset))."""
    topic = kh.unique_topic("batch-read")
    kh.create_topic(broker.bootstrap, topic, PARTITIONS)
    # An hour ago, on a whole second: old enough to be "past", well inside retention.
    base = (int(time.time()) - 3600) * 1000
    items = []
    for i in range(PER_PARTITION):          # interleave partitions, as a real producer would
        for p in range(PARTITIONS):
            headers = [
                [("h1", b"x"), ("h1", b"y"), ("h2", None)],      # repeated key, null value
                [("only", f"{p}-{i}".encode())],
                [],                                              # no headers at all
            ][i % 3]
            items.append({
                "partition": p,
                "key": None if i == 4 else f"k{p}-{i}".encode(),
                "value": None if (p, i) == (1, 7) else f"value {p}/{i} \u00e9".encode(),
                "ts": ts_of(base, p, i),
                "headers": headers,
            })
    recs = sorted(kh.produce(broker.bootstrap, topic, items))
    assert [(r.partition, r.offset) for r in recs] == \
        [(p, o) for p in range(PARTITIONS) for o in range(PER_PARTITION)]
    return topic, base, recs


def select(recs, ranges):
    """The records of ``recs`` whose offset is in ranges[partition] (a range)."""
    return [r for r in recs if r.partition in ranges and r.offset in ranges[r.partition]]


def test_subscribe_earliest_latest_exact(spark, broker, dataset):
    topic, _, recs = dataset
    # librdkafka sees exactly what was produced (the broker side, without Spark) ...
    assert kh.read_all(broker.bootstrap, topic, PARTITIONS) == recs
    df = kh.kafka_reader(spark, broker.bootstrap, subscribe=topic, startingOffsets="earliest",
                         endingOffsets="latest", includeHeaders="true")
    assert df.columns == ["key", "value", "topic", "partition", "offset", "timestamp",
                          "timestampType", "headers"]
    # ... and so does Spark: every field of every record.
    assert kh.spark_recs(df) == recs
    assert {r["timestampType"] for r in df.select("timestampType").collect()} == {0}  # CreateTime


def test_defaults_without_headers(spark, broker, dataset):
    """No offsets given: a batch read is earliest..latest; no includeHeaders: no column."""
    topic, _, recs = dataset
    df = kh.kafka_reader(spark, broker.bootstrap, subscribe=topic)
    assert "headers" not in df.columns
    assert kh.spark_recs(df, with_headers=False) == [replace(r, headers=()) for r in recs]
    from pyspark.sql import functions as F
    spans = {r["partition"]: (r["lo"], r["hi"], r["n"]) for r in
             df.groupBy("partition").agg(F.min("offset").alias("lo"),
                                         F.max("offset").alias("hi"),
                                         F.count("*").alias("n")).collect()}
    assert spans == {p: (0, PER_PARTITION - 1, PER_PARTITION) for p in range(PARTITIONS)}


def test_subscribe_pattern(spark, broker, create_topic):
    prefix = kh.unique_topic("pattern")
    a, b, other = f"{prefix}-a", f"{prefix}-b", f"{prefix}x-c"
    for name, parts in ((a, 2), (b, 1), (other, 1)):
        create_topic(name, parts)
    now = int(time.time() * 1000)
    expected = []
    for name, parts in ((a, 2), (b, 1), (other, 1)):
        got = kh.produce(broker.bootstrap, name, [
            {"partition": i % parts, "key": f"{name}:{i}", "value": f"v{i}", "ts": now + i}
            for i in range(4)])
        if name != other:
            expected += got
    df = kh.kafka_reader(spark, broker.bootstrap, subscribePattern=f"{prefix}-(a|b)",
                         startingOffsets="earliest", endingOffsets="latest")
    assert kh.spark_recs(df, with_headers=False) == sorted(expected)


def test_assign_some_partitions(spark, broker, dataset):
    topic, _, recs = dataset
    df = kh.kafka_reader(spark, broker.bootstrap, assign={topic: [0, 2]},
                         startingOffsets="earliest", endingOffsets="latest",
                         includeHeaders="true")
    assert kh.spark_recs(df) == [r for r in recs if r.partition in (0, 2)]


def test_per_partition_json_offsets(spark, broker, dataset):
    """startingOffsets/endingOffsets as JSON: explicit offsets, -2 (earliest), -1 (latest);
    the ending offset is exclusive."""
    topic, _, recs = dataset
    df = kh.kafka_reader(
        spark, broker.bootstrap, subscribe=topic, includeHeaders="true",
        startingOffsets={topic: {"0": 2, "1": -2, "2": 5}},
        endingOffsets={topic: {"0": 5, "1": 3, "2": -1}})
    assert kh.spark_recs(df) == select(recs, {0: range(2, 5), 1: range(0, 3),
                                              2: range(5, PER_PARTITION)})
    # assign + JSON offsets for one partition only
    df = kh.kafka_reader(spark, broker.bootstrap, assign={topic: [1]}, includeHeaders="true",
                         startingOffsets={topic: {"1": 6}}, endingOffsets={topic: {"1": 8}})
    assert kh.spark_recs(df) == select(recs, {1: range(6, 8)})


def test_starting_timestamp_and_ending_offsets_by_timestamp(spark, broker, dataset):
    """startingTimestamp: first offset whose timestamp >= T in every partition;
    endingOffsetsByTimestamp: per partition, the first offset with timestamp >= T
    (exclusive end), or latest when no record is that late."""
    topic, base, recs = dataset
    df = kh.kafka_reader(
        spark, broker.bootstrap, subscribe=topic, includeHeaders="true",
        startingTimestamp=str(base + 3000),
        endingOffsetsByTimestamp={topic: {"0": base + 6000, "1": base + 7005,
                                          "2": base + 10_000_000}})
    # p0: ts(0,3)=base+3000 (equal counts), ends before ts(0,6)=base+6000
    # p1: starts at ts(1,3)=base+3010, ends before ts(1,7)=base+7010 (first >= base+7005)
    # p2: starts at ts(2,3), nothing is that late: latest
    assert kh.spark_recs(df) == select(recs, {0: range(3, 6), 1: range(3, 7),
                                              2: range(3, PER_PARTITION)})


def test_starting_offsets_by_timestamp_per_partition(spark, broker, dataset):
    topic, base, recs = dataset
    df = kh.kafka_reader(
        spark, broker.bootstrap, subscribe=topic, includeHeaders="true",
        startingOffsetsByTimestamp={topic: {"0": base - 5000,     # before all: offset 0
                                            "1": ts_of(base, 1, 8),  # exactly record 8
                                            "2": base + 1500}},    # between 1 and 2
        endingOffsets="latest")
    assert kh.spark_recs(df) == select(recs, {0: range(0, PER_PARTITION),
                                              1: range(8, PER_PARTITION),
                                              2: range(2, PER_PARTITION)})


def test_min_partitions_splits_offset_ranges(spark, broker, dataset):
    """minPartitions=6 over 3 Kafka partitions of 10 records: 6 Spark partitions, each a
    contiguous half of one Kafka partition; together exactly the data, once."""
    topic, _, recs = dataset
    df = kh.kafka_reader(spark, broker.bootstrap, subscribe=topic, includeHeaders="true",
                         minPartitions="6", startingOffsets="earliest", endingOffsets="latest")
    assert df.rdd.getNumPartitions() == 6
    assert kh.spark_recs(df) == recs
    from pyspark.sql import functions as F
    spans = sorted(
        (r["partition"], r["lo"], r["hi"], r["n"]) for r in
        df.groupBy(F.spark_partition_id().alias("sp"), "partition")
          .agg(F.min("offset").alias("lo"), F.max("offset").alias("hi"),
               F.count("*").alias("n")).collect())
    assert spans == [(p, lo, lo + 4, 5) for p in range(PARTITIONS) for lo in (0, 5)]
