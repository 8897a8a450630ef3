"""kafka.isolation.level=read_committed: Spark sees only committed transactional
records (aborted ones and the transaction markers are skipped); read_uncommitted sees
the aborted records too."""

from __future__ import annotations

import kafka_helpers as kh


def test_read_committed_skips_aborted(spark, broker, create_topic):
    from confluent_kafka import Producer

    bootstrap = broker.bootstrap
    topic = kh.unique_topic("txn")
    create_topic(topic, 1)
    p = Producer(kh.rdkafka_conf(bootstrap, **{"transactional.id": f"{topic}-tx"}))
    p.init_transactions(30)
    batches = [("c", range(0, 5), True), ("a", range(5, 10), False), ("c", range(10, 13), True)]
    for tag, rng, commit in batches:
        p.begin_transaction()
        for i in rng:
            p.produce(topic, value=f"{tag}{i}".encode(), partition=0)
        p.flush(30)
        (p.commit_transaction if commit else p.abort_transaction)(30)

    committed = [f"c{i}" for i in list(range(0, 5)) + list(range(10, 13))]
    everything = committed + [f"a{i}" for i in range(5, 10)]

    def values(isolation: str) -> list[str]:
        df = kh.kafka_reader(spark, bootstrap, subscribe=topic, startingOffsets="earliest",
                             endingOffsets="latest", **{"kafka.isolation.level": isolation})
        return [bytes(r["value"]).decode() for r in df.orderBy("offset").collect()]

    assert values("read_committed") == committed
    assert sorted(values("read_uncommitted")) == sorted(everything)
    # librdkafka agrees (independent of Spark)
    assert [r.value.decode() for r in kh.read_all(bootstrap, topic, 1,
                                                  isolation="read_committed")] == committed
