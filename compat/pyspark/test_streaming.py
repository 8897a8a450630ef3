"""Structured Streaming with the Kafka source and sink.

- a windowed count by key (stateful, watermark, outputMode append) from one topic to
  another, with a checkpoint, while a producer keeps writing; the query is stopped and
  restarted from its checkpoint; the output windows are exactly the produced counts,
  each window once (no loss, no duplicates);
- Trigger.AvailableNow with maxOffsetsPerTrigger: the query stops by itself, batch
  sizes are as the limit says, a second run from the checkpoint takes only new data;
- maxOffsetsPerTrigger with a processing-time trigger (batch sizes from query progress);
- minPartitions: a micro-batch over 2 Kafka partitions runs as 4 Spark partitions.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter

from pyspark.sql import functions as F

import kafka_helpers as kh


def wait_until(cond, timeout_s: float, what: str, interval_s: float = 0.5):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")


def stop_between_batches(query, timeout_s: float = 30.0) -> None:
    """Stop when no trigger is running, so no batch is cut off half-written (the Kafka
    sink is at-least-once: a batch written but not committed is written again)."""
    deadline = time.monotonic() + timeout_s
    while query.status["isTriggerActive"] and time.monotonic() < deadline:
        time.sleep(0.05)
    query.stop()


def data_batch_sizes(query) -> list[int]:
    return [p["numInputRows"] for p in query.recentProgress if p["numInputRows"] > 0]


# -- windowed count, stop + restart from the checkpoint --------------------------------------

WINDOW_MS = 5_000
STEP_MS = 100            # event time between consecutive records
N_RECORDS = 600          # 60 s of event time: 12 windows x 3 keys
CHUNK = 20               # produced and flushed together, then a short pause
KEYS = ("alpha", "beta", "gamma")


def windowed_count_query(spark, bootstrap, src, dst, checkpoint):
    events = (kh.kafka_stream(spark, bootstrap, subscribe=src, startingOffsets="earliest")
              .select(F.col("key").cast("string").alias("k"), "timestamp"))
    counts = (events.withWatermark("timestamp", "20 seconds")
              .groupBy(F.window("timestamp", f"{WINDOW_MS // 1000} seconds"), "k")
              .count())
    out = counts.select(
        F.col("k").alias("key"),
        F.to_json(F.struct(F.unix_millis(F.col("window.start")).alias("start"),
                           F.col("k"), F.col("count"))).alias("value"))
    return (out.writeStream.format("kafka")
            .option("kafka.bootstrap.servers", bootstrap)
            .option("topic", dst)
            .option("checkpointLocation", str(checkpoint))
            .outputMode("append")
            .trigger(processingTime="1 second")
            .start())


def test_windowed_count_stop_restart_exactly_once_output(spark, broker, create_topic,
                                                         tmp_path):
    bootstrap = broker.bootstrap
    src, dst = kh.unique_topic("win-in"), kh.unique_topic("win-out")
    create_topic(src, 2)
    create_topic(dst, 1)
    # Event times on whole windows, an hour back (inside any retention).
    t0 = (int(time.time()) - 3600) // 5 * 5 * 1000
    rng = random.Random(4)
    items = [{"partition": i % 2, "key": rng.choice(KEYS), "value": f"e{i}",
              "ts": t0 + i * STEP_MS} for i in range(N_RECORDS)]
    expected = Counter(((it["ts"] - t0) // WINDOW_MS * WINDOW_MS + t0, it["key"])
                       for it in items)

    produced: list = []
    errors: list = []
    # The producer runs all along, but waits at gates so that the phases do not depend
    # on how fast Spark starts or stops: records 0-299 while run 1 starts (30 s of event
    # time, enough to close the first windows); 300-379 while run 1 goes on; 380-439
    # while no query runs (run 1 stopped, run 2 not started); 440-599 while run 2 runs.
    run1_emitted, run1_stopped, run2_started = (threading.Event() for _ in range(3))
    gates = {300: run1_emitted, 380: run1_stopped, 440: run2_started}
    assert all(g % CHUNK == 0 for g in gates)

    def producer_loop():
        try:
            p = kh.make_producer(bootstrap)
            for c in range(0, N_RECORDS, CHUNK):
                if c in gates and not gates[c].wait(180):
                    raise TimeoutError(f"producer gate at record {c} never opened")
                produced.extend(kh.produce(bootstrap, src, items[c:c + CHUNK], producer=p))
                time.sleep(0.2)
        except Exception as e:  # noqa: BLE001 - reported by the main thread
            errors.append(e)

    def outputs():
        return [json.loads(r.value) for r in kh.read_all(bootstrap, dst, 1)]

    checkpoint = tmp_path / "checkpoint"
    writer = threading.Thread(target=producer_loop, daemon=True)
    writer.start()
    q1 = windowed_count_query(spark, bootstrap, src, dst, checkpoint)
    try:
        # Run until the first windows are closed by the watermark and written.
        wait_until(lambda: len(outputs()) >= 3, 120, "first closed windows from run 1")
        run1_emitted.set()
        time.sleep(1.0)  # run 1 goes on while the producer writes
    finally:
        run1_emitted.set()
        stop_between_batches(q1)
    assert q1.exception() is None
    first_run = outputs()
    q2 = None
    try:
        wait_until(lambda: len(produced) >= 380, 60, "records 300-379")
        run1_stopped.set()  # the producer writes 380-439 while no query runs
        wait_until(lambda: len(produced) >= 440 or errors, 60, "records 380-439")
        assert not errors, f"producer failed: {errors}"
        q2 = windowed_count_query(spark, bootstrap, src, dst, checkpoint)
    finally:
        run1_stopped.set()
        run2_started.set()  # ... and the rest while run 2 runs
    assert q2 is not None
    try:
        writer.join(60)
        assert not writer.is_alive() and not errors, f"producer failed: {errors}"
        assert len(produced) == N_RECORDS
        # One late record far ahead moves the watermark past every real window.
        kh.produce(bootstrap, src, [{"partition": 0, "key": "flush", "value": "flush",
                                     "ts": t0 + N_RECORDS * STEP_MS + 120_000}])
        wait_until(lambda: len(outputs()) >= len(expected), 120,
                   f"{len(expected)} window counts in {dst}")
        time.sleep(2.5)  # a couple more triggers: nothing else may appear
    finally:
        if q2 is not None:
            stop_between_batches(q2)
    assert q2.exception() is None

    final = outputs()
    seen = Counter((o["start"], o["k"]) for o in final)
    dups = {w: n for w, n in seen.items() if n > 1}
    assert not dups, f"windows emitted more than once: {dups}"
    assert {(o["start"], o["k"]): o["count"] for o in final} == dict(expected)
    assert sum(o["count"] for o in final) == N_RECORDS
    # run 1 emitted a prefix, run 2 (from the checkpoint) the rest, without re-emitting
    assert 3 <= len(first_run) < len(expected)
    assert final[:len(first_run)] == first_run


# -- Trigger.AvailableNow + maxOffsetsPerTrigger -----------------------------------------------

def copy_query(spark, bootstrap, src, dst, checkpoint, **source_options):
    """Copies key, value and partition from src to dst with Trigger.AvailableNow."""
    stream = kh.kafka_stream(spark, bootstrap, subscribe=src, startingOffsets="earliest",
                             **source_options)
    return (stream.select("key", "value", "partition").writeStream.format("kafka")
            .option("kafka.bootstrap.servers", bootstrap)
            .option("topic", dst)
            .option("checkpointLocation", str(checkpoint))
            .trigger(availableNow=True)
            .start())


def test_available_now_with_max_offsets_per_trigger(spark, broker, create_topic, tmp_path):
    bootstrap = broker.bootstrap
    src, dst = kh.unique_topic("avail-in"), kh.unique_topic("avail-out")
    create_topic(src, 3)
    create_topic(dst, 3)
    now = int(time.time() * 1000)

    def produce_round(tag: str, per_partition: int):
        kh.produce(bootstrap, src, [
            {"partition": p, "key": f"{tag}-k{p}-{i}", "value": f"{tag}-v{p}-{i}", "ts": now}
            for i in range(per_partition) for p in range(3)])

    def same_content():
        a = [(r.partition, r.offset, r.key, r.value) for r in kh.read_all(bootstrap, src, 3)]
        b = [(r.partition, r.offset, r.key, r.value) for r in kh.read_all(bootstrap, dst, 3)]
        assert b == a

    checkpoint = tmp_path / "checkpoint"
    produce_round("r1", 30)
    q = copy_query(spark, bootstrap, src, dst, checkpoint, maxOffsetsPerTrigger="30")
    assert q.awaitTermination(180), "AvailableNow query did not stop by itself"
    assert q.exception() is None
    # 90 records, at most 30 per trigger, prorated 10 per partition: 3 batches of 30.
    assert data_batch_sizes(q) == [30, 30, 30]
    same_content()  # every record copied once, same partition, same order

    produce_round("r2", 5)
    q = copy_query(spark, bootstrap, src, dst, checkpoint, maxOffsetsPerTrigger="30")
    assert q.awaitTermination(180), "AvailableNow query did not stop by itself"
    assert q.exception() is None
    assert data_batch_sizes(q) == [15]  # only what came after the checkpoint
    same_content()


def test_max_offsets_per_trigger_processing_time(spark, broker, create_topic, tmp_path):
    bootstrap = broker.bootstrap
    src = kh.unique_topic("maxoff")
    create_topic(src, 2)
    produced = kh.produce(bootstrap, src, [
        {"partition": i % 2, "key": f"k{i}", "value": f"v{i}"} for i in range(50)])
    name = "maxoff_" + src.rsplit("-", 1)[1]
    q = (kh.kafka_stream(spark, bootstrap, subscribe=src, startingOffsets="earliest",
                         maxOffsetsPerTrigger="20")
         .select("partition", "offset", "key", "value")
         .writeStream.format("memory").queryName(name)
         .option("checkpointLocation", str(tmp_path / "checkpoint"))
         .trigger(processingTime="200 milliseconds").start())
    try:
        wait_until(lambda: sum(data_batch_sizes(q)) >= 50, 120, "50 rows through the query")
    finally:
        stop_between_batches(q)
    # 25 per partition, limit 20 prorated as 10 + 10: batches of 20, 20, 10.
    assert data_batch_sizes(q) == [20, 20, 10]
    rows = spark.table(name).collect()
    assert sorted((r["partition"], r["offset"], bytes(r["key"]), bytes(r["value"]))
                  for r in rows) == [(r.partition, r.offset, r.key, r.value) for r in
                                     sorted(produced)]


def test_min_partitions_streaming(spark, broker, create_topic, tmp_path):
    """minPartitions=4 over 2 Kafka partitions: the micro-batch has 4 input partitions
    (offset ranges split), and still every record exactly once."""
    bootstrap = broker.bootstrap
    src = kh.unique_topic("minparts")
    create_topic(src, 2)
    produced = sorted(kh.produce(bootstrap, src, [
        {"partition": i % 2, "key": f"k{i}", "value": f"v{i}"} for i in range(40)]))
    seen: dict = {"parts": [], "rows": []}

    def on_batch(batch_df, batch_id):
        n = batch_df.rdd.getNumPartitions()
        rows = batch_df.collect()
        if rows:
            seen["parts"].append(n)
            seen["rows"].extend((r["partition"], r["offset"], bytes(r["key"]),
                                 bytes(r["value"])) for r in rows)

    q = (kh.kafka_stream(spark, bootstrap, subscribe=src, startingOffsets="earliest",
                         minPartitions="4")
         .select("partition", "offset", "key", "value")
         .writeStream.foreachBatch(on_batch)
         .option("checkpointLocation", str(tmp_path / "checkpoint"))
         .trigger(availableNow=True).start())
    assert q.awaitTermination(180)
    assert q.exception() is None
    assert seen["parts"] == [4]
    assert sorted(seen["rows"]) == [(r.partition, r.offset, r.key, r.value) for r in produced]


# -- startingOffsets=latest, new topics and partitions found while running ------------------

def test_latest_then_new_topic_and_partitions_discovered(spark, broker, create_topic,
                                                         tmp_path):
    """A pattern subscription starting at latest: records already there are not read;
    a topic created later that matches the pattern, and a partition added later
    (CreatePartitions), are discovered and read from their start; each record once."""
    from confluent_kafka.admin import AdminClient, NewPartitions

    bootstrap = broker.bootstrap
    prefix = kh.unique_topic("discover")
    a, b = f"{prefix}-a", f"{prefix}-b"
    create_topic(a, 2)
    kh.produce(bootstrap, a, [{"partition": i % 2, "value": f"old{i}"} for i in range(6)])
    name = "discover_" + prefix.rsplit("-", 1)[1]
    q = (kh.kafka_stream(spark, bootstrap, subscribePattern=f"{prefix}-.*",
                         startingOffsets="latest")
         .select("topic", "partition", "offset", "value")
         .writeStream.format("memory").queryName(name)
         .option("checkpointLocation", str(tmp_path / "checkpoint"))
         .trigger(processingTime="500 milliseconds").start())
    try:
        # The start offsets (latest) are fixed by the first trigger.
        wait_until(lambda: q.recentProgress, 120, "the first trigger")
        new = kh.produce(bootstrap, a, [{"partition": i % 2, "value": f"a{i}"}
                                        for i in range(6)])
        create_topic(b, 1)
        new += kh.produce(bootstrap, b, [{"partition": 0, "value": f"b{i}"} for i in range(4)])
        admin = AdminClient(kh.rdkafka_conf(bootstrap))
        admin.create_partitions([NewPartitions(a, 3)])[a].result(timeout=30)
        wait_until(lambda: len(admin.list_topics(topic=a, timeout=10)
                               .topics[a].partitions) == 3, 30, f"{a} with 3 partitions")
        new += kh.produce(bootstrap, a, [{"partition": 2, "value": f"a2-{i}"}
                                         for i in range(3)])
        expected = sorted((r.topic, r.partition, r.offset, r.value) for r in new)

        def got():
            return sorted((r["topic"], r["partition"], r["offset"], bytes(r["value"]))
                          for r in spark.table(name).collect())
        wait_until(lambda: len(got()) >= len(expected), 120, f"{len(expected)} new records")
        time.sleep(1.5)  # a few more triggers: nothing else may appear
    finally:
        stop_between_batches(q)
    assert q.exception() is None
    assert got() == expected
