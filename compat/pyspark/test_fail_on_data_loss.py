"""failOnDataLoss: a streaming query whose checkpoint points at offsets that the broker
has since deleted (DeleteRecords moves the log start offset, as retention does).
With failOnDataLoss=true the query must fail with Spark's data-loss error; with false it
must skip to the log start offset and read exactly what is left. This relies on the
broker's log start offset (ListOffsets earliest) and OFFSET_OUT_OF_RANGE on Fetch."""

from __future__ import annotations

import pytest

import kafka_helpers as kh

DELETE_BEFORE = 15


def run_available_now(spark, bootstrap, topic, checkpoint, fail_on_data_loss: bool):
    """One Trigger.AvailableNow run from ``checkpoint``; returns (query, rows seen)."""
    rows: list = []

    def on_batch(df, _batch_id):
        rows.extend((r["offset"], bytes(r["value"])) for r in df.collect())

    q = (kh.kafka_stream(spark, bootstrap, subscribe=topic, startingOffsets="earliest",
                         failOnDataLoss=str(fail_on_data_loss).lower())
         .select("offset", "value").writeStream.foreachBatch(on_batch)
         .option("checkpointLocation", str(checkpoint))
         .trigger(availableNow=True).start())
    return q, rows


def test_fail_on_data_loss_after_delete_records(spark, broker, create_topic, tmp_path):
    kh.requires_api(broker, 21, "DeleteRecords",
                    "needs the broker to delete old records (DeleteRecords/retention); "
                    "enable once sluice implements DeleteRecords")
    from confluent_kafka import TopicPartition
    from confluent_kafka.admin import AdminClient
    from pyspark.errors import StreamingQueryException

    bootstrap = broker.bootstrap
    topic = kh.unique_topic("dataloss")
    create_topic(topic, 1)
    first = kh.produce(bootstrap, topic, [{"partition": 0, "value": f"v{i}"}
                                          for i in range(10)])
    assert [r.offset for r in first] == list(range(10))

    # Two checkpoints that have both consumed offsets 0..9.
    ck = {flag: tmp_path / f"checkpoint-{flag}" for flag in (True, False)}
    for flag in (True, False):
        q, rows = run_available_now(spark, bootstrap, topic, ck[flag], flag)
        assert q.awaitTermination(120) and q.exception() is None
        assert rows == [(i, f"v{i}".encode()) for i in range(10)]

    kh.produce(bootstrap, topic, [{"partition": 0, "value": f"v{i}"} for i in range(10, 20)])
    admin = AdminClient(kh.rdkafka_conf(bootstrap))
    fut = admin.delete_records([TopicPartition(topic, 0, DELETE_BEFORE)])
    res = list(fut.values())[0].result(timeout=30)
    assert res.low_watermark == DELETE_BEFORE
    assert kh.end_offsets(bootstrap, topic, 1)[0] == (DELETE_BEFORE, 20)

    # failOnDataLoss=true: offsets 10..14 are gone, the query fails saying so.
    q, rows = run_available_now(spark, bootstrap, topic, ck[True], True)
    with pytest.raises(StreamingQueryException) as err:
        q.awaitTermination(120)
    assert "failOnDataLoss" in str(err.value), str(err.value)[:2000]
    assert all(off >= DELETE_BEFORE for off, _ in rows)

    # failOnDataLoss=false: skips to the log start offset, reads 15..19 exactly once.
    q, rows = run_available_now(spark, bootstrap, topic, ck[False], False)
    assert q.awaitTermination(120) and q.exception() is None
    assert sorted(rows) == [(i, f"v{i}".encode()) for i in range(DELETE_BEFORE, 20)]
