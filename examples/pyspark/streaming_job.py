"""Streaming: read the "orders" topic from sluice, total the amounts per customer per
minute of event time, and write the totals to the topic "order-totals" (and print them).

    python streaming_job.py [--once] [--bootstrap 127.0.0.1:9092] [--checkpoint DIR]

DIR defaults to $TMPDIR/sluice-streaming-job.

Runs until Ctrl-C; --once processes what is in the topic now and stops
(Trigger.AvailableNow). The checkpoint makes a restart continue where it stopped.
Feed it with batch_load.py from another terminal."""

from __future__ import annotations

import argparse
import os
import tempfile

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from sluice_spark import BOOTSTRAP, spark_session

SOURCE, SINK = "orders", "order-totals"
ORDER = "order_id LONG, customer STRING, amount DOUBLE, ts TIMESTAMP"


def totals(spark: SparkSession, bootstrap: str, source: str = SOURCE) -> DataFrame:
    orders = (spark.readStream.format("kafka")
              .option("kafka.bootstrap.servers", bootstrap)
              .option("subscribe", source)
              .option("startingOffsets", "earliest")
              .load()
              .select(F.from_json(F.col("value").cast("string"), ORDER).alias("o"))
              .select("o.*"))
    return (orders.withWatermark("ts", "1 minute")
            .groupBy(F.window("ts", "1 minute"), "customer")
            .agg(F.count("*").alias("orders"), F.round(F.sum("amount"), 2).alias("total")))


def start(spark: SparkSession, bootstrap: str, checkpoint: str, once: bool,
          source: str = SOURCE, sink: str = SINK, console: bool = True):
    """Starts the job's queries; returns them (the Kafka one first)."""
    agg = totals(spark, bootstrap, source)
    trigger = {"availableNow": True} if once else {"processingTime": "5 seconds"}
    to_kafka = (agg.select(
                    F.col("customer").alias("key"),
                    F.to_json(F.struct(F.col("window.start").alias("minute"), "customer",
                                       "orders", "total")).alias("value"))
                .writeStream.format("kafka")
                .option("kafka.bootstrap.servers", bootstrap)
                .option("topic", sink)
                .option("checkpointLocation", f"{checkpoint}/to-kafka")
                .outputMode("update")          # every changed total, as it changes
                .trigger(**trigger)
                .start())
    queries = [to_kafka]
    if console:
        queries.append(agg.orderBy("window", "customer").writeStream.format("console")
                       .option("truncate", "false")
                       .option("checkpointLocation", f"{checkpoint}/console")
                       .outputMode("complete").trigger(**trigger).start())
    return queries


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--once", action="store_true", help="process what is there, then stop")
    ap.add_argument("--bootstrap", default=BOOTSTRAP)
    ap.add_argument("--checkpoint",
                    default=os.path.join(tempfile.gettempdir(), "sluice-streaming-job"))
    args = ap.parse_args()
    spark = spark_session("sluice-streaming-job")
    queries = start(spark, args.bootstrap, args.checkpoint, args.once)
    try:
        for q in queries:
            q.awaitTermination()
    except KeyboardInterrupt:
        for q in queries:
            q.stop()
    if args.once:
        written = (spark.read.format("kafka").option("kafka.bootstrap.servers", args.bootstrap)
                   .option("subscribe", SINK).load())
        print(f"topic {SINK!r} holds {written.count()} total updates; the latest ones:")
        written.orderBy(F.col("offset").desc()).select(
            F.col("value").cast("string")).show(10, truncate=False)
    spark.stop()


if __name__ == "__main__":
    main()
