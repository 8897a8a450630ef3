"""examples/pyspark runs as documented: batch_load writes orders and reads them back,
streaming_job (Trigger.AvailableNow) totals them per customer and minute into Kafka.
Uses the examples' functions with this run's SparkSession and broker."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import kafka_helpers as kh

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples" / "pyspark"))

import batch_load  # noqa: E402
import streaming_job  # noqa: E402


def test_examples_batch_load_then_streaming_job(spark, broker, tmp_path):
    bootstrap = broker.bootstrap
    orders, totals = kh.unique_topic("orders"), kh.unique_topic("order-totals")
    # Neither topic exists: the first write auto-creates it, as in the README.
    back = batch_load.load(spark, bootstrap, rows=100, topic=orders)
    rows = back.selectExpr("CAST(key AS STRING) k", "CAST(value AS STRING) v").collect()
    assert len(rows) == 100
    produced = [json.loads(r["v"]) for r in rows]
    assert sorted(o["order_id"] for o in produced) == list(range(100))
    assert all(r["k"] == json.loads(r["v"])["customer"] for r in rows)

    queries = streaming_job.start(spark, bootstrap, str(tmp_path / "ck"), once=True,
                                  source=orders, sink=totals, console=False)
    for q in queries:
        assert q.awaitTermination(180) and q.exception() is None
    # update mode: the last update per (minute, customer) is the total
    latest = {}
    for r in kh.read_all(bootstrap, totals, 1):
        t = json.loads(r.value)
        latest[(t["minute"], t["customer"])] = t
    expected: dict = {}
    for o in produced:
        expected.setdefault(o["customer"], [0, 0.0])
        expected[o["customer"]][0] += 1
        expected[o["customer"]][1] += o["amount"]
    got: dict = {}
    for t in latest.values():
        got.setdefault(t["customer"], [0, 0.0])
        got[t["customer"]][0] += t["orders"]
        got[t["customer"]][1] += t["total"]
    assert {c: n for c, (n, _) in got.items()} == {c: n for c, (n, _) in expected.items()}
    for c, (_, amount) in expected.items():
        assert abs(got[c][1] - amount) < 0.05 * 3, (c, got[c][1], amount)
