"""kill -9 in the middle of an idempotent acks=all produce stream, restart on the same
data dir: every acknowledged record must be at its acknowledged offset with its value,
offsets dense from 0, no duplicates, and the producer carries on after the restart."""

import threading
import time

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from util import rdkafka_conf, unique_topic

PARTITIONS = 3


class ProduceLoop(threading.Thread):
    """Produces "v<i>" continuously (paced to about 1k records/s) and records every delivery
    report; delivery callbacks run in this thread (poll/flush)."""

    def __init__(self, bootstrap: str, topic: str):
        super().__init__(daemon=True)
        self.topic = topic
        self.producer = Producer(rdkafka_conf(bootstrap, **{
            "enable.idempotence": True, "acks": "all", "linger.ms": 2,
            # Long enough that nothing expires while the broker is down.
            "message.timeout.ms": 120000,
            "reconnect.backoff.ms": 50, "reconnect.backoff.max.ms": 500,
            "retry.backoff.ms": 50, "retry.backoff.max.ms": 500,
        }))
        self.stop_event = threading.Event()
        self.produced = 0
        self.acked: dict[str, tuple[int, int]] = {}  # value -> (partition, offset)
        self.errors: list[str] = []
        self.exc: BaseException | None = None
        self.unflushed = -1

    def _on_delivery(self, err, msg):
        if err is not None:
            self.errors.append(f"{msg.value()!r}: {err}")
        else:
            self.acked[msg.value().decode()] = (msg.partition(), msg.offset())

    def run(self):
        try:
            i = 0
            while not self.stop_event.is_set():
                try:
                    self.producer.produce(self.topic, key=f"k{i % 16}", value=f"v{i}",
                                          on_delivery=self._on_delivery)
                except BufferError:  # local queue full while the broker is down
                    self.producer.poll(0.05)
                    continue
                i += 1
                self.produced = i
                self.producer.poll(0)
                if i % 10 == 0:
                    time.sleep(0.01)
            self.unflushed = self.producer.flush(90)
        except BaseException as e:  # surfaced by the test
            self.exc = e


def read_all(bootstrap: str, topic: str) -> dict[int, list[tuple[int, str]]]:
    """Every record of every partition, from the low to the high watermark."""
    c = Consumer(rdkafka_conf(bootstrap, **{"group.id": "compat-unused",
                                            "enable.auto.commit": False,
                                            "auto.offset.reset": "error"}))
    try:
        marks = {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
                 for p in range(PARTITIONS)}
        for p, (low, _high) in marks.items():
            assert low == 0, f"partition {p} log start offset {low}, expected 0"
        c.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
        out = {p: [] for p in range(PARTITIONS)}
        want = sum(high for _low, high in marks.values())
        deadline = time.monotonic() + 60
        n = 0
        while n < want:
            assert time.monotonic() < deadline, f"read {n} of {want} records"
            msg = c.poll(0.5)
            if msg is None:
                continue
            assert msg.error() is None, msg.error()
            out[msg.partition()].append((msg.offset(), msg.value().decode()))
            n += 1
        for p, (_low, high) in marks.items():
            assert [o for o, _ in out[p]] == list(range(high)), f"partition {p} offsets not dense"
        return out
    finally:
        c.close()


@pytest.mark.parametrize("kill_after_s,down_s", [(2.0, 0.0), (2.6, 1.5)],
                         ids=["kill-at-2.0s-restart-now", "kill-at-2.6s-down-1.5s"])
def test_kill9_keeps_every_acknowledged_record(broker, create_topic, kill_after_s, down_s):
    topic = unique_topic("crash")
    create_topic(topic, partitions=PARTITIONS)
    loop = ProduceLoop(broker.bootstrap, topic)
    loop.start()

    time.sleep(kill_after_s)
    broker.kill9()
    acked_at_kill, produced_at_kill = len(loop.acked), loop.produced
    time.sleep(down_s)
    broker.start()
    # Keep producing until records sent after the restart are acknowledged too.
    deadline = time.monotonic() + 60
    while (time.monotonic() < deadline and loop.is_alive()
           and len(loop.acked) < produced_at_kill + 500):
        time.sleep(0.1)
    loop.stop_event.set()
    loop.join(120)
    assert not loop.is_alive(), "producer thread did not finish"

    # What the log holds; checked first so that a producer failure still reports which
    # acknowledged records the broker lost.
    log = read_all(broker.bootstrap, topic)
    at = {(p, o): v for p, recs in log.items() for o, v in recs}
    values = [v for recs in log.values() for _, v in recs]
    lost = {v: pos for v, pos in loop.acked.items() if at.get(pos) != v}
    assert not lost, (f"{len(lost)} of {len(loop.acked)} acknowledged records not at their "
                      f"offset, e.g. (value, acked at, found): "
                      f"{[(v, pos, at.get(pos)) for v, pos in list(lost.items())[:5]]}; "
                      f"producer error: {loop.exc!r}")
    assert len(values) == len(set(values)), "duplicate records in the log"
    assert set(values) <= {f"v{i}" for i in range(loop.produced)}

    # The idempotent producer carried on across the restart without losing anything.
    assert loop.exc is None, f"producer failed: {loop.exc!r}; errors: {loop.errors[:5]}"
    assert acked_at_kill > 0, "nothing was acknowledged before the kill"
    assert loop.unflushed == 0, f"{loop.unflushed} records never delivered"
    assert loop.errors == [], loop.errors[:10]
    assert len(loop.acked) == loop.produced
    assert len(loop.acked) >= produced_at_kill + 500, "producer did not recover after restart"
    print(f"produced={loop.produced} acked_before_kill={acked_at_kill} "
          f"acked={len(loop.acked)} log={len(values)}")
