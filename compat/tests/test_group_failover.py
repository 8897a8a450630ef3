"""Group coordinator failover on a 3-node cluster (every node broker+controller).

As in Kafka, a group is coordinated by the leader of its ``__consumer_offsets``
partition (``abs(groupId.hashCode()) % offsets.topic.num.partitions``), the topic is
created at the first FindCoordinator with 50 partitions at replication factor 3, and
offset commits are acknowledged only once every in-sync replica has them. So:

  * ``__consumer_offsets`` describes as 50 partitions, replicas [1, 2, 3], leaders
    spread over the three brokers, and the group's coordinator (AdminClient
    describe_consumer_groups) is the leader of the group's partition;
  * a confluent-kafka consumer of an RF 3 topic commits synchronously; its
    coordinator is killed with SIGKILL; the consumer carries on (it rejoins at the new
    coordinator, the new leader of that partition) and keeps committing;
  * the offsets committed and acknowledged before the kill are still there
    (``committed()`` from the new coordinator is at least as far);
  * a second consumer of the group, started after the first closed, starts exactly at
    the first one's last acknowledged commits: no committed record is read again;
  * ``kafka-consumer-groups --describe`` shows the group's offsets.

Kind from COMPAT_BROKER (cluster.Cluster): the same test runs against sluice and real
Kafka KRaft.
"""

from __future__ import annotations

import subprocess
import time
import uuid

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

import brokers
from cluster import Cluster, cluster_kind
from util import coordinator_partition, rdkafka_conf

KIND = cluster_kind()
OFFSETS_PARTITIONS = 50
PARTITIONS = 3
RECORDS = 3000
GROUP_CMD = "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand"


@pytest.fixture
def cluster(tmp_path):
    c = Cluster(KIND, tmp_path / "cluster",
                overrides={**brokers.overrides_from_env(),
                           "offsets.topic.num.partitions": str(OFFSETS_PARTITIONS)})
    c.start()
    yield c
    c.stop()


def coordinator_of(c: Cluster, group: str) -> int:
    admin = AdminClient(rdkafka_conf(c.live_bootstrap()))
    d = admin.describe_consumer_groups([group], request_timeout=10)[group].result(timeout=20)
    return d.coordinator.id


def consumer(c: Cluster, group: str) -> Consumer:
    return Consumer(rdkafka_conf(c.live_bootstrap(), **{
        "group.id": group,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": 10000,
        "heartbeat.interval.ms": 1000,
    }))


def commit_sync(cons: Consumer, offsets: list[TopicPartition], deadline_s: float = 60) -> None:
    """Commit until acknowledged (retriable errors while the coordinator moves)."""
    deadline = time.monotonic() + deadline_s
    while True:
        try:
            res = cons.commit(offsets=offsets, asynchronous=False)
            bad = [tp for tp in res if tp.error is not None]
            if not bad:
                return
            err = bad
        except KafkaException as e:
            err = e
        if time.monotonic() > deadline:
            raise AssertionError(f"commit never acknowledged: {err}")
        time.sleep(0.3)


def consume_some(cons: Consumer, n: int, seen: list, acked: dict[int, int], timeout_s: float = 90) -> None:
    """Poll ``n`` records, committing (synchronously) after every 100; ``acked`` holds
    the last acknowledged commit per partition."""
    got = 0
    pending: dict[int, int] = {}
    deadline = time.monotonic() + timeout_s
    while got < n:
        assert time.monotonic() < deadline, f"consumed only {got} of {n} records"
        m = cons.poll(1.0)
        if m is None or m.error():
            continue
        # Never below an acknowledged commit, whatever the rebalances in between.
        assert m.offset() >= acked.get(m.partition(), 0), (m.partition(), m.offset(), acked)
        seen.append((m.partition(), m.offset()))
        pending[m.partition()] = m.offset() + 1
        got += 1
        if got % 100 == 0 or got == n:
            commit_sync(cons, [TopicPartition(TOPIC_NAME[0], p, o) for p, o in pending.items()])
            acked.update(pending)
            pending = {}


TOPIC_NAME: list[str] = []


def test_group_coordinator_failover(cluster: Cluster, tmp_path):
    c = cluster
    topic = f"failover-{uuid.uuid4().hex[:8]}"
    TOPIC_NAME[:] = [topic]
    group = f"g-{uuid.uuid4().hex[:8]}"
    admin = AdminClient(rdkafka_conf(c.live_bootstrap()))
    admin.create_topics([NewTopic(topic, num_partitions=PARTITIONS, replication_factor=3,
                                  config={"min.insync.replicas": "2"})],
                        operation_timeout=30, request_timeout=30)[topic].result(timeout=60)
    p = Producer(rdkafka_conf(c.live_bootstrap(), acks="all", **{"enable.idempotence": True}))
    for i in range(RECORDS):
        p.produce(topic, key=str(i).encode(), value=str(i).encode(), partition=i % PARTITIONS)
        if i % 500 == 0:
            p.poll(0)
    assert p.flush(60) == 0

    # The first consumer: FindCoordinator creates __consumer_offsets.
    a = consumer(c, group)
    a.subscribe([topic])
    seen_a: list[tuple[int, int]] = []
    acked: dict[int, int] = {}
    consume_some(a, 1000, seen_a, acked)
    before_kill = dict(acked)

    def full_isr():
        x = c.describe("__consumer_offsets")
        return all(i["isr"] == [1, 2, 3] for i in x.values()), x
    d = c.wait_for("__consumer_offsets fully replicated", full_isr)
    assert sorted(d) == list(range(OFFSETS_PARTITIONS)), d
    assert all(i["replicas"] == [1, 2, 3] for i in d.values()), d
    leaders = {i["leader"] for i in d.values()}
    assert leaders == {1, 2, 3}, f"leaders not spread over the brokers: {leaders}"
    gp = coordinator_partition(group, OFFSETS_PARTITIONS)
    coord = coordinator_of(c, group)
    assert coord == d[gp]["leader"], (coord, gp, d[gp])
    print(f"\n[group-failover] group {group} -> __consumer_offsets-{gp}, coordinator {coord}")

    c.kill9(coord)
    t0 = time.monotonic()
    # The consumer carries on at the new coordinator (records keep coming, commits land).
    consume_some(a, 1000, seen_a, acked)
    print(f"[group-failover] 1000 more records consumed and committed {time.monotonic() - t0:.1f}s after the kill")
    new = c.wait_for("a live coordinator other than the killed node",
                     lambda: ((n := coordinator_of(c, group)) in c.live(), n))
    assert new != coord
    leader_now = c.wait_for("the group's partition led by a live node",
                            lambda: ((ld := c.describe("__consumer_offsets")[gp]["leader"]) in c.live(), ld))
    assert new == leader_now, (new, leader_now)

    # Committed offsets (from the new coordinator) are at least the acknowledged ones.
    committed = a.committed([TopicPartition(topic, q) for q in range(PARTITIONS)], timeout=30)
    got = {tp.partition: tp.offset for tp in committed}
    for q, off in before_kill.items():
        assert got[q] >= off, f"partition {q}: committed {got[q]} < acknowledged before the kill {off}"
    for q, off in acked.items():
        assert got[q] == off, f"partition {q}: committed {got[q]} != last acknowledged {off}"
    a.close()

    # A new member resumes exactly at the acknowledged commits: nothing committed is re-read.
    b = consumer(c, group)
    b.subscribe([topic])
    first: dict[int, int] = {}
    seen_b: list[tuple[int, int]] = []
    deadline = time.monotonic() + 90
    while len(seen_b) < RECORDS - sum(acked.values()) and time.monotonic() < deadline:
        m = b.poll(1.0)
        if m is None or m.error():
            continue
        first.setdefault(m.partition(), m.offset())
        seen_b.append((m.partition(), m.offset()))
    last = {}
    for q, off in seen_b:
        last[q] = max(last.get(q, 0), off + 1)
    commit_sync(b, [TopicPartition(topic, q, o) for q, o in last.items()])
    b.close()
    for q, off in first.items():
        assert off == acked.get(q, 0), f"partition {q}: resumed at {off}, last acknowledged commit {acked.get(q)}"
    assert len(set(seen_a + seen_b)) == RECORDS, "every record consumed once the group moved"

    # kafka-consumer-groups --describe works against the moved coordinator.
    cmd = brokers.java_command(GROUP_CMD, "--bootstrap-server", c.live_bootstrap(), "--describe", "--group", group)
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, f"{res.stdout}\n{res.stderr}"
    rows = [ln.split() for ln in res.stdout.splitlines() if ln.startswith(group)]
    assert {int(r[2]) for r in rows} == set(range(PARTITIONS)), res.stdout
    for r in rows:
        assert int(r[3]) == RECORDS // PARTITIONS, f"CURRENT-OFFSET: {res.stdout}"
