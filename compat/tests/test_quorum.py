"""Three processes as one metadata quorum (cluster.Cluster; sluice or Kafka KRaft).

Each runs ``process.roles=broker,controller`` with the same
``controller.quorum.voters`` and its own ``CONTROLLER://`` listener, as a Kafka
KRaft cluster is configured. Topics created through any node (the leader or a
follower, which forwards) show up on all three; after the quorum leader is killed
with SIGKILL the other two elect a new one and keep committing; the old leader,
restarted, catches up. The leader is found with DescribeQuorum (API 55), which Kafka
also answers on its broker listener.

Membership: every node lists all three brokers and one cluster id; a
replication-factor-3 topic is placed on all three with a full ISR and leaders spread;
a node killed with SIGKILL is fenced after the session timeout, leaves the broker list
and every ISR, and its partitions get a new leader (data: test_replication.py).
"""

from __future__ import annotations

import concurrent.futures
import time

import pytest
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

import brokers
from cluster import Cluster, cluster_kind, quorum_leader
from util import rdkafka_conf, unique_topic


def topics_on(b: brokers.Broker) -> set[str]:
    return set(AdminClient(rdkafka_conf(b.bootstrap)).list_topics(timeout=10).topics)


def create(b: brokers.Broker, name: str, timeout_s: float = 60.0):
    """CreateTopics through node ``b``; tried again with a fresh client on a timeout.

    librdkafka sends CreateTopics to Metadata's controller_id, which Kafka picks among
    the unfenced brokers: just after a SIGKILL that can be the dead node (it is fenced
    only after broker.session.timeout.ms), and librdkafka keeps retrying the
    connection rather than asking again."""
    deadline = time.monotonic() + timeout_s
    attempt = 0
    while True:
        attempt += 1
        admin = AdminClient(rdkafka_conf(b.bootstrap))  # must outlive the future
        fut = admin.create_topics([NewTopic(name, 1, 1)], operation_timeout=10,
                                  request_timeout=10)
        try:
            fut[name].result(timeout=15)
            return
        except KafkaException as e:
            err = e.args[0]
            if attempt > 1 and err.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                return
            if not err.retriable() and err.code() != KafkaError._TIMED_OUT:
                raise
        except concurrent.futures.TimeoutError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"could not create {name} through {b} in {timeout_s}s")


@pytest.fixture
def cluster(tmp_path):
    c = Cluster(cluster_kind(), tmp_path / "cluster", overrides=brokers.overrides_from_env())
    c.start()
    yield c
    c.stop()


def test_three_node_quorum(cluster):
    c = cluster
    leader = c.quorum_leader()
    err, _, epoch = quorum_leader(c.node(leader).host, c.node(leader).port)
    assert err == 0 and epoch >= 1
    follower = next(i for i in c.nodes if i != leader)

    t_leader, t_follower = unique_topic("via-leader"), unique_topic("via-follower")
    create(c.node(leader), t_leader)
    create(c.node(follower), t_follower)
    for i, b in c.nodes.items():
        c.wait_for(f"both topics on node {i}",
                   lambda b=b: ({t_leader, t_follower} <= (s := topics_on(b)), s))

    # SIGKILL the leader: the other two elect a new one and keep committing.
    c.kill9(leader)
    new_leader = c.quorum_leader()
    assert new_leader != leader
    t_after = unique_topic("after-kill")
    create(c.node(follower), t_after)
    for i in c.live():
        c.wait_for(f"{t_after} on node {i}",
                   lambda b=c.node(i): ({t_leader, t_follower, t_after} <= (s := topics_on(b)), s))

    # The old leader comes back and catches up.
    c.restart(leader)
    c.wait_for("the restarted node catches up",
               lambda: ({t_leader, t_follower, t_after} <= (s := topics_on(c.node(leader))), s))
    assert c.quorum_leader() in c.nodes


def cluster_view(b: brokers.Broker):
    return AdminClient(rdkafka_conf(b.bootstrap)).list_topics(timeout=10)


def test_membership_placement_and_failover(cluster):
    c = cluster
    leader = c.quorum_leader()
    for i, b in c.nodes.items():
        c.wait_for(f"three brokers listed by node {i}", lambda b=b: (sorted((md := cluster_view(b)).brokers) == [1, 2, 3], md.brokers))
    ids = {cluster_view(b).cluster_id for b in c.nodes.values()}
    assert len(ids) == 1, f"nodes disagree on the cluster id: {ids}"

    topic = unique_topic("rf3")
    admin = AdminClient(rdkafka_conf(c.node(leader).bootstrap))
    admin.create_topics([NewTopic(topic, 3, 3)], operation_timeout=20)[topic].result(timeout=30)
    for i, b in c.nodes.items():
        c.wait_for(f"{topic} on node {i}", lambda b=b: (topic in cluster_view(b).topics, None))
    parts = cluster_view(c.node(leader)).topics[topic].partitions
    assert len(parts) == 3
    for p in parts.values():
        assert sorted(p.replicas) == [1, 2, 3] and sorted(p.isrs) == [1, 2, 3], (p.replicas, p.isrs)
        assert p.leader == p.replicas[0]
    assert sorted(p.leader for p in parts.values()) == [1, 2, 3], "leaders spread round-robin"
    # Too many replicas: Kafka's INVALID_REPLICATION_FACTOR.
    bad = unique_topic("rf4")
    with pytest.raises(Exception, match="INVALID_REPLICATION_FACTOR|replication factor"):
        admin.create_topics([NewTopic(bad, 1, 4)], operation_timeout=20)[bad].result(timeout=30)

    # SIGKILL a follower of the quorum: fenced after the session timeout.
    victim = next(i for i in c.nodes if i != leader)
    led_by_victim = [n for n, p in parts.items() if p.leader == victim]
    c.kill9(victim)
    survivor = c.node(leader)

    def failed_over():
        md = cluster_view(survivor)
        if victim in md.brokers:
            return False, sorted(md.brokers)
        ps = md.topics[topic].partitions
        return all(p.leader not in (victim, -1) and victim not in p.isrs for p in ps.values()), ps
    c.wait_for(f"node {victim} fenced and its partitions {led_by_victim} re-led", failed_over, timeout_s=25)
    md = cluster_view(survivor)
    assert sorted(md.brokers) == sorted(i for i in c.nodes if i != victim)
    for n in led_by_victim:
        assert md.topics[topic].partitions[n].leader != victim
    other = next(i for i in c.nodes if i not in (leader, victim))
    assert sorted(cluster_view(c.node(other)).brokers) == sorted(md.brokers)
