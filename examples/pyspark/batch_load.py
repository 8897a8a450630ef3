"""Batch: write a small table of orders into the Kafka topic "orders" on sluice, then
read the topic back as a DataFrame.

    python batch_load.py [--rows 1000] [--bootstrap 127.0.0.1:9092]

The topic is created on first use (sluice auto-creates topics, like Kafka's default).
Run it again while streaming_job.py runs to feed the stream."""

from __future__ import annotations

import argparse

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from sluice_spark import BOOTSTRAP, spark_session

TOPIC = "orders"


def make_orders(spark: SparkSession, rows: int) -> DataFrame:
    """Fake orders: id, customer, amount and an event time within the last minute."""
    return (spark.range(rows)
            .withColumn("customer", F.concat(F.lit("customer-"), (F.col("id") % 5).cast("string")))
            .withColumn("amount", F.round(F.rand(seed=7) * 100, 2))
            .withColumn("ts", F.current_timestamp() - F.make_interval(
                secs=(F.col("id") % 60).cast("decimal(8,6)")))
            .withColumnRenamed("id", "order_id"))


def load(spark: SparkSession, bootstrap: str, rows: int, topic: str = TOPIC) -> DataFrame:
    orders = make_orders(spark, rows)
    # Kafka records: key = customer (same customer, same partition), value = JSON.
    (orders.select(F.col("customer").alias("key"),
                   F.to_json(F.struct("order_id", "customer", "amount", "ts")).alias("value"))
     .write.format("kafka")
     .option("kafka.bootstrap.servers", bootstrap)
     .option("topic", topic)
     .save())

    # Read the whole topic back (earliest..latest is the batch default).
    return (spark.read.format("kafka")
            .option("kafka.bootstrap.servers", bootstrap)
            .option("subscribe", topic)
            .load())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1000)
    ap.add_argument("--bootstrap", default=BOOTSTRAP)
    args = ap.parse_args()
    spark = spark_session("sluice-batch-load")
    back = load(spark, args.bootstrap, args.rows)
    print(f"topic {TOPIC!r} now holds {back.count()} records")
    back.groupBy("partition").agg(F.min("offset").alias("first_offset"),
                                  F.max("offset").alias("last_offset"),
                                  F.count("*").alias("records")).orderBy("partition").show()
    (back.select(F.col("key").cast("string").alias("customer"),
                 F.get_json_object(F.col("value").cast("string"), "$.amount")
                 .cast("double").alias("amount"))
     .groupBy("customer").agg(F.count("*").alias("orders"), F.round(F.sum("amount"), 2)
                              .alias("total")).orderBy("customer").show())
    spark.stop()


if __name__ == "__main__":
    main()
