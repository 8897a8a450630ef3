"""A group's assignment is handed out only once it is replicated, on a 3-node cluster.

As in Kafka (``GroupMetadataManager.storeGroup``: the group record is appended with
acks=-1 and SyncGroup is answered from its callback), the leader's SyncGroup stores
the group's assignment in the group's ``__consumer_offsets`` partition, and no member
gets its assignment before every in-sync replica of that partition has the record. A
failed or timed-out store answers COORDINATOR_NOT_AVAILABLE / NOT_COORDINATOR and the
client joins again. So:

  * with both followers of the group's partition SIGSTOPped (the metadata quorum is
    lost too, so the ISR cannot shrink), a new consumer of the group gets no
    assignment however long it polls;
  * once they are resumed, it gets its assignment.

Kind from COMPAT_BROKER (cluster.Cluster): the same test runs against sluice and real
Kafka KRaft.
"""

from __future__ import annotations

import time
import uuid

import pytest
from confluent_kafka import Consumer
from confluent_kafka.admin import AdminClient, NewTopic

import brokers
from cluster import Cluster, cluster_kind
from util import coordinator_partition, rdkafka_conf

KIND = cluster_kind()
OFFSETS_PARTITIONS = 3  # the cluster fixture's offsets.topic.num.partitions


@pytest.fixture
def cluster(tmp_path):
    c = Cluster(KIND, tmp_path / "cluster", overrides=brokers.overrides_from_env())
    c.start()
    yield c
    for i in list(c.stopped):
        c.sigcont(i)
    c.stop()


def test_assignment_is_answered_only_once_replicated(cluster: Cluster):
    c = cluster
    topic = f"store-{uuid.uuid4().hex[:8]}"
    group = f"g-{uuid.uuid4().hex[:8]}"
    admin = AdminClient(rdkafka_conf(c.live_bootstrap()))
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=3)],
                        operation_timeout=30, request_timeout=30)[topic].result(timeout=60)

    # FindCoordinator creates __consumer_offsets; wait until every replica has it.
    def offsets_ready():
        try:
            admin.describe_consumer_groups([group], request_timeout=5)[group].result(timeout=10)
        except Exception as e:  # noqa: BLE001 - COORDINATOR_NOT_AVAILABLE until it exists
            return False, repr(e)
        d = c.describe("__consumer_offsets")
        return len(d) == OFFSETS_PARTITIONS and all(p["isr"] == [1, 2, 3] for p in d.values()), d
    d = c.wait_for("__consumer_offsets created and fully replicated", offsets_ready, timeout_s=60)
    gp = coordinator_partition(group, OFFSETS_PARTITIONS)
    leader = d[gp]["leader"]
    followers = [i for i in d[gp]["replicas"] if i != leader]
    print(f"\n[group-store] group {group} -> __consumer_offsets-{gp}, leader {leader}, followers {followers}")

    for f in followers:
        c.sigstop(f)
    assigned: list[list] = []
    cons = Consumer(rdkafka_conf(c.nodes[leader].bootstrap, **{
        "group.id": group,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": 10000,
        "heartbeat.interval.ms": 1000,
    }))
    cons.subscribe([topic], on_assign=lambda _c, parts: assigned.append([(p.topic, p.partition) for p in parts]))
    try:
        deadline = time.monotonic() + 12
        while time.monotonic() < deadline:
            cons.poll(0.5)
        assert not any(assigned), f"assignment handed out before its record was replicated: {assigned}"

        resumed = time.monotonic()
        for f in followers:
            c.sigcont(f)
        deadline = time.monotonic() + 90
        while not any(assigned) and time.monotonic() < deadline:
            cons.poll(0.5)
        assert [a for a in assigned if a] == [[(topic, 0)]], assigned
        print(f"[group-store] assigned {time.monotonic() - resumed:.1f}s after the followers resumed")
    finally:
        cons.close()
