"""Rack-aware replica placement on a 4-node cluster whose brokers have ``broker.rack``
(nodes 1-2 in rack "east", 3-4 in "west"; nodes 1-3 vote, node 4 is a broker only).

  * DescribeCluster (confluent-kafka AdminClient) reports each broker's rack.
  * A topic created with Kafka's own ``kafka-topics --create --replication-factor 2``
    (TopicCommand, no manual assignment) has every partition on both racks, leaders
    spread over all four brokers; one created through the AdminClient at RF 3 spans
    both racks on three distinct brokers; partitions added later with
    ``kafka-topics --alter --partitions`` do too.
  * Records produced with acks=all come back from every partition.

Kind from COMPAT_BROKER (cluster.Cluster): sluice by default, or real Kafka KRaft
(whose placer also spreads replicas over racks, so the assertions hold for both).
"""

from __future__ import annotations

import subprocess

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

import brokers
from cluster import Cluster, cluster_kind
from util import produce_acked, rdkafka_conf, read_values, unique_topic

KIND = cluster_kind()
RACKS = {1: "east", 2: "east", 3: "west", 4: "west"}


@pytest.fixture
def racked_cluster(tmp_path):
    c = Cluster(KIND, tmp_path / "cluster", size=4, roles={4: "broker"},
                overrides=brokers.overrides_from_env())
    for i, rack in RACKS.items():
        c.nodes[i].overrides["broker.rack"] = rack
    c.start()
    yield c
    c.stop()


def topic_tool(c: Cluster, *args: str) -> str:
    cmd = brokers.java_command("org.apache.kafka.tools.TopicCommand", "--bootstrap-server",
                               c.live_bootstrap(), *args)
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, f"TopicCommand {' '.join(args)} failed:\n{res.stdout}\n{res.stderr}"
    return res.stdout


def assert_spread(c: Cluster, topic: str, partitions: int, rf: int) -> dict[int, dict]:
    d = c.wait_for(f"{topic}: {partitions} partitions, each with a leader", lambda: (
        (d := c.describe(topic)) and len(d) == partitions
        and all(p["leader"] != -1 for p in d.values()), d), timeout_s=60)
    for p, info in d.items():
        assert len(set(info["replicas"])) == rf, f"{topic}-{p}: {info}"
        racks = {RACKS[b] for b in info["replicas"]}
        assert racks == {"east", "west"}, f"{topic}-{p} on racks {racks} only: {info} ({d})"
    return d


def test_racks_are_reported_and_replicas_span_them(racked_cluster: Cluster):
    c = racked_cluster
    admin = AdminClient(rdkafka_conf(c.live_bootstrap()))
    nodes = admin.describe_cluster(request_timeout=10).result(timeout=20).nodes
    assert {n.id: n.rack for n in nodes} == RACKS

    # Kafka's CLI, no assignment given: the broker places the replicas.
    topic = unique_topic("racks-cli")
    topic_tool(c, "--create", "--topic", topic, "--partitions", "8", "--replication-factor", "2")
    d = assert_spread(c, topic, 8, 2)
    leaders = [info["leader"] for info in d.values()]
    assert set(leaders) == {1, 2, 3, 4}, f"leaders not spread over all brokers: {d}"
    # The CLI's own view agrees.
    assert {p: info["replicas"] for p, info in c.describe_cli(topic).items()} == \
        {p: info["replicas"] for p, info in d.items()}

    # More partitions later: placed the same way.
    topic_tool(c, "--alter", "--topic", topic, "--partitions", "12")
    assert_spread(c, topic, 12, 2)

    # Through the AdminClient at RF 3: three brokers, both racks.
    rf3 = unique_topic("racks-rf3")
    admin.create_topics([NewTopic(rf3, num_partitions=6, replication_factor=3)],
                        operation_timeout=30, request_timeout=30)[rf3].result(timeout=60)
    assert_spread(c, rf3, 6, 3)

    # And the data path works on the placed partitions.
    sent = [f"v{i}" for i in range(60)]
    produce_acked(c.live_bootstrap(), rf3, sent)
    assert sorted(read_values(c.live_bootstrap(), rf3, 6, len(sent))) == sorted(sent)
