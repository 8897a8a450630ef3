"""Three processes as one metadata quorum (cluster.Cluster; sluice or Kafka KRaft).

Each runs ``process.roles=broker,controller`` with the same
``controller.quorum.voters`` and its own ``CONTROLLER://`` listener, as a Kafka
KRaft cluster is configured. Topics created through any node (the leader or a
follower, which forwards) show up on all three; after the quorum leader is killed
with SIGKILL the other two elect a new one and keep committing; the old leader,
restarted, catches up. The leader is found with DescribeQuorum (API 55), which Kafka
also answers on its broker listener.
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
