"""Kafka transactions end to end (transaction version 1: AddPartitionsToTxn,
AddOffsetsToTxn, TxnOffsetCommit, EndTxn, markers, LSO, aborted-transaction lists).

(a) Java kafka-clients: consume-transform-produce with sendOffsetsToTransaction,
    committing some transactions and aborting others (compat/java/TxnCopy.java);
(b) confluent-kafka transactions read back by confluent-kafka and kafka-python with
    read_committed (committed records only, exactly once) and read_uncommitted
    (aborted records too, never a marker);
(c) fencing: a second producer with the same transactional.id fences the first;
(d) kill -9 of the broker mid-transaction: after the restart the open transaction
    holds back read_committed readers until it is aborted, by the transaction
    timeout or by a new producer's InitProducerId, and is never shown to them.
Run against real Kafka too: COMPAT_BROKER=kafka compat/run.sh compat/tests/test_transactions.py
"""

from __future__ import annotations

import time

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

from util import describe_proc, rdkafka_conf, wait_for


def txn_producer(bootstrap: str, tid: str, **conf) -> Producer:
    p = Producer(rdkafka_conf(bootstrap, **{"transactional.id": tid, **conf}))
    p.init_transactions(60)
    return p


def run_txn(p: Producer, topic: str, values: list[str], commit: bool, partitions: int) -> None:
    p.begin_transaction()
    for i, v in enumerate(values):
        p.produce(topic, value=v.encode(), key=v.encode(), partition=i % partitions)
    p.flush(30)
    (p.commit_transaction if commit else p.abort_transaction)(60)


def read_rdkafka(bootstrap: str, topic: str, partitions: int, isolation: str,
                 timeout_s: float = 30.0) -> list[str]:
    """Every value from the start up to the end offsets this isolation level sees."""
    c = Consumer(rdkafka_conf(bootstrap, **{
        "group.id": f"reader-{topic}-{isolation}", "enable.auto.commit": False,
        "isolation.level": isolation, "enable.partition.eof": True,
        "auto.offset.reset": "earliest"}))
    try:
        tps = [TopicPartition(topic, p, 0) for p in range(partitions)]
        c.assign(tps)
        eof: set[int] = set()
        out: list[str] = []
        deadline = time.monotonic() + timeout_s
        while len(eof) < partitions and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error():
                if m.error().code() == -191:  # _PARTITION_EOF
                    eof.add(m.partition())
                    continue
                raise KafkaException(m.error())
            out.append(m.value().decode())
        assert len(eof) == partitions, f"no EOF on every partition within {timeout_s}s (got {eof})"
        return out
    finally:
        c.close()


def read_kafka_python(bootstrap: str, topic: str, partitions: int, isolation: str) -> list[str]:
    from kafka import KafkaConsumer
    from kafka import TopicPartition as KTP

    c = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                      isolation_level=isolation, auto_offset_reset="earliest",
                      consumer_timeout_ms=3000)
    try:
        tps = [KTP(topic, p) for p in range(partitions)]
        c.assign(tps)
        c.seek_to_beginning(*tps)
        end = c.end_offsets(tps)
        out: list[str] = []
        deadline = time.monotonic() + 30
        while any(c.position(tp) < end[tp] for tp in tps) and time.monotonic() < deadline:
            for recs in c.poll(timeout_ms=500).values():
                out.extend(r.value.decode() for r in recs)
            # read_committed end offsets are the LSO; positions may pass aborted data.
            if all(c.position(tp) >= end[tp] for tp in tps):
                break
        return out
    finally:
        c.close()


def lso_and_hw(bootstrap: str, topic: str, partition: int = 0) -> tuple[int, int]:
    committed = Consumer(rdkafka_conf(bootstrap, **{"group.id": "lso", "isolation.level": "read_committed"}))
    uncommitted = Consumer(rdkafka_conf(bootstrap, **{"group.id": "hw", "isolation.level": "read_uncommitted"}))
    try:
        tp = TopicPartition(topic, partition)
        return (committed.get_watermark_offsets(tp, timeout=10)[1],
                uncommitted.get_watermark_offsets(tp, timeout=10)[1])
    finally:
        committed.close()
        uncommitted.close()


def test_confluent_kafka_commit_and_abort(broker, topic, create_topic):
    create_topic(topic, 3)
    p = txn_producer(broker.bootstrap, f"{topic}-tx")
    committed, aborted = [], []
    for n in range(6):
        values = [f"t{n}-{i}" for i in range(7)]
        commit = n % 3 != 1
        run_txn(p, topic, values, commit, 3)
        (committed if commit else aborted).extend(values)
    # A non-transactional record after them is visible to both levels.
    plain = Producer(rdkafka_conf(broker.bootstrap))
    plain.produce(topic, value=b"plain", partition=0)
    plain.flush(30)
    committed.append("plain")

    assert sorted(read_rdkafka(broker.bootstrap, topic, 3, "read_committed")) == sorted(committed)
    assert sorted(read_rdkafka(broker.bootstrap, topic, 3, "read_uncommitted")) == sorted(committed + aborted)
    assert sorted(read_kafka_python(broker.bootstrap, topic, 3, "read_committed")) == sorted(committed)
    assert sorted(read_kafka_python(broker.bootstrap, topic, 3, "read_uncommitted")) == sorted(committed + aborted)
    lso, hw = lso_and_hw(broker.bootstrap, topic)
    assert lso == hw, "no transaction is open"


def test_open_transaction_holds_back_read_committed(broker, topic, create_topic):
    create_topic(topic, 1)
    p = txn_producer(broker.bootstrap, f"{topic}-tx")
    run_txn(p, topic, ["before"], True, 1)
    p.begin_transaction()
    p.produce(topic, value=b"open", partition=0)
    p.flush(30)
    lso, hw = lso_and_hw(broker.bootstrap, topic)
    assert lso < hw, f"an open transaction must hold the LSO back (lso {lso}, hw {hw})"
    assert read_rdkafka(broker.bootstrap, topic, 1, "read_committed") == ["before"]
    p.commit_transaction(60)
    assert read_rdkafka(broker.bootstrap, topic, 1, "read_committed") == ["before", "open"]


def test_second_producer_fences_the_first(broker, topic, create_topic):
    create_topic(topic, 1)
    tid = f"{topic}-tx"
    p1 = txn_producer(broker.bootstrap, tid)
    p1.begin_transaction()
    p1.produce(topic, value=b"zombie", partition=0)
    p1.flush(30)
    p2 = txn_producer(broker.bootstrap, tid)  # aborts p1's transaction, bumps the epoch
    run_txn(p2, topic, ["p2-a", "p2-b"], True, 1)
    with pytest.raises(KafkaException) as e:
        p1.commit_transaction(30)
    err = e.value.args[0]
    assert err.fatal() or "fenc" in err.str().lower(), f"expected fencing, got {err}"
    assert read_rdkafka(broker.bootstrap, topic, 1, "read_committed") == ["p2-a", "p2-b"]


@pytest.mark.parametrize("resolve", ["new_producer", "timeout"])
def test_kill9_mid_transaction(broker, topic, create_topic, resolve):
    create_topic(topic, 2)
    tid = f"{topic}-tx"
    p1 = txn_producer(broker.bootstrap, tid, **{"transaction.timeout.ms": 6000})
    run_txn(p1, topic, ["c0", "c1"], True, 2)
    p1.begin_transaction()
    for i in range(4):
        p1.produce(topic, value=f"lost{i}".encode(), partition=i % 2)
    p1.flush(30)
    broker.kill9()
    broker.start()
    if resolve == "new_producer":
        p2 = txn_producer(broker.bootstrap, tid)
        run_txn(p2, topic, ["c2"], True, 2)
        expected = ["c0", "c1", "c2"]
    else:
        # The coordinator aborts the transaction once transaction.timeout.ms passed
        # (checked every 10 s by default, Kafka's cleanup interval).
        wait_for(lambda: (lambda l_h: (l_h[0] == l_h[1], l_h))(lso_and_hw(broker.bootstrap, topic)),
                 60, "LSO to reach the high watermark after the timeout abort")
        expected = ["c0", "c1"]
    assert sorted(read_rdkafka(broker.bootstrap, topic, 2, "read_committed")) == expected
    assert sorted(read_kafka_python(broker.bootstrap, topic, 2, "read_committed")) == expected
    uncommitted = read_rdkafka(broker.bootstrap, topic, 2, "read_uncommitted")
    assert sorted(v for v in uncommitted if v.startswith("lost")) == [f"lost{i}" for i in range(4)]


def test_java_consume_transform_produce(broker, topic, create_topic, run_java):
    res = run_java("TxnCopy.java", broker.bootstrap, topic, "60", timeout=240)
    assert res.returncode == 0, describe_proc(res)
    assert "RESULT ok" in res.stdout, describe_proc(res)
