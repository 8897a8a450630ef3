"""The one piece of set-up both examples share: a local SparkSession with Spark's Kafka
connector. Nothing here is specific to sluice: sluice speaks Kafka's protocol, so the
connector is the stock org.apache.spark:spark-sql-kafka-0-10 and only
kafka.bootstrap.servers points at sluice."""

from __future__ import annotations

import glob
import os
from pathlib import Path

import pyspark
from pyspark.sql import SparkSession

BOOTSTRAP = os.environ.get("KAFKA_BOOTSTRAP", "127.0.0.1:9092")  # `sluice`'s default address
REPO_JARS = Path(__file__).resolve().parents[2] / "compat" / ".cache" / "spark-jars"


def spark_session(app: str) -> SparkSession:
    builder = (SparkSession.builder.appName(app).master("local[2]")
               .config("spark.sql.shuffle.partitions", "2")
               .config("spark.ui.showConsoleProgress", "false"))
    # The connector: jars already on disk (SPARK_KAFKA_JARS, or what
    # compat/pyspark/install.sh resolved), else let Spark fetch it from Maven Central.
    jars_dir = os.environ.get("SPARK_KAFKA_JARS") or (str(REPO_JARS) if REPO_JARS.is_dir() else "")
    jars = sorted(glob.glob(os.path.join(jars_dir, "*.jar"))) if jars_dir else []
    if jars:
        builder = builder.config("spark.jars", ",".join(jars))
    else:
        builder = builder.config(
            "spark.jars.packages",
            f"org.apache.spark:spark-sql-kafka-0-10_2.13:{pyspark.__version__}")
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark
