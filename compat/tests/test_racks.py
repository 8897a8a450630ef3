"""Rack-aware replica placement on a 4-node cluster whose brokers have ``broker.rack``
(nodes 1-2 in rack "east", 3-4 in "west"; nodes 1-3 vote, node 4 is a broker only).

  * DescribeCluster (confluent-kafka AdminClient) reports each broker's rack.
  * A topic created with Kafka's own ``kafka-topics --create --replication-factor 2``
    (TopicCommand, no manual assignment) has every partition on both racks, leaders
    in both racks; one created through the AdminClient at RF 3 spans
    both racks on three distinct brokers; partitions added later with
    ``kafka-topics --alter --partitions`` do too.
  * Records produced with acks=all come back from every partition.

Kind from COMPAT_BROKER (cluster.Cluster): sluice by default, or real Kafka KRaft
(whose placer also spreads replicas over racks, so the assertions hold for both).
"""

from __future__ import annotations

import json
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
    # Leaders in both racks (sluice goes round-robin over all four; Kafka's striped
    # placer is random, so only this much holds for both).
    leaders = {RACKS[info["leader"]] for info in d.values()}
    assert leaders == {"east", "west"}, f"leaders in one rack only: {d}"
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


SELECTOR = {"replica.selector.class": "org.apache.kafka.common.replica.RackAwareReplicaSelector"}


@pytest.fixture
def selector_cluster(tmp_path):
    c = Cluster(KIND, tmp_path / "cluster", size=4, roles={4: "broker"},
                overrides={**brokers.overrides_from_env(), **SELECTOR})
    for i, rack in RACKS.items():
        c.nodes[i].overrides["broker.rack"] = rack
    c.start()
    yield c
    c.stop()


def read_with_stats(bootstrap: str, topic: str, partitions: int, expect: int, rack: str,
                    timeout_s: float = 60) -> tuple[list[str], dict[int, tuple[int, int]]]:
    """Values read from the start of every partition by a librdkafka consumer with
    ``client.rack``, and per partition (leader, broker it fetches from) as librdkafka's
    statistics last reported them."""
    fetching: dict[int, tuple[int, int]] = {}

    def on_stats(raw: str) -> None:
        for p, s in json.loads(raw).get("topics", {}).get(topic, {}).get("partitions", {}).items():
            if int(p) >= 0:
                fetching[int(p)] = (s["leader"], s["broker"])

    # One more statistics interval after the reads, so the last report is from after them.
    got = read_values(bootstrap, topic, partitions, expect, timeout_s,
                      conf={"client.rack": rack, "statistics.interval.ms": 200, "stats_cb": on_stats},
                      linger_s=0.6)
    return got, fetching


def test_consumers_read_from_a_follower_in_their_rack(selector_cluster: Cluster):
    """KIP-392: leaders all in rack west, a follower of each in rack east. A consumer
    with client.rack=east is pointed at the east follower and reads everything from it,
    including records produced while it reads; one in rack west stays on the leaders;
    Kafka's console consumer (Java client) with client.rack=east reads everything too."""
    c = selector_cluster
    topic = unique_topic("ffetch")
    assignment = [[3, 1], [4, 2], [3, 2], [4, 1]]
    admin = AdminClient(rdkafka_conf(c.live_bootstrap()))
    admin.create_topics([NewTopic(topic, num_partitions=4, replication_factor=-1,
                                  replica_assignment=assignment)],
                        operation_timeout=30, request_timeout=30)[topic].result(timeout=60)
    c.wait_for(f"{topic} in sync", lambda: (
        (d := c.describe(topic)) and all(sorted(i["isr"]) == sorted(assignment[p])
                                          and i["leader"] == assignment[p][0]
                                          for p, i in d.items()), d), timeout_s=60)
    first = [f"a{i}" for i in range(200)]
    produce_acked(c.live_bootstrap(), topic, first)

    got, fetching = read_with_stats(c.live_bootstrap(), topic, 4, len(first), "east")
    assert sorted(got) == sorted(first)
    for p, replicas in enumerate(assignment):
        leader, source = fetching.get(p, (None, None))
        assert leader == replicas[0], f"partition {p}: leader {leader} ({fetching})"
        assert source == replicas[1], f"partition {p} read from {source}, not its east follower {replicas[1]} ({fetching})"

    # Records produced later reach the follower-reading consumer too (the follower's
    # high watermark advances), and a west consumer keeps reading from the leaders.
    more = [f"b{i}" for i in range(100)]
    produce_acked(c.live_bootstrap(), topic, more)
    got, fetching = read_with_stats(c.live_bootstrap(), topic, 4, len(first) + len(more), "east")
    assert sorted(got) == sorted(first + more)
    assert all(fetching[p][1] == r[1] for p, r in enumerate(assignment)), fetching
    got, fetching = read_with_stats(c.live_bootstrap(), topic, 4, len(first) + len(more), "west")
    assert sorted(got) == sorted(first + more)
    assert all(fetching[p][1] == r[0] for p, r in enumerate(assignment)), fetching

    # The Java client, through Kafka's console consumer.
    cmd = brokers.java_command("org.apache.kafka.tools.consumer.ConsoleConsumer", "--bootstrap-server",
                               c.live_bootstrap(), "--topic", topic, "--from-beginning",
                               "--max-messages", str(len(first) + len(more)),
                               "--command-property", "client.rack=east",
                               "--timeout-ms", "60000")
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert sorted(res.stdout.split()) == sorted(first + more), res.stderr[-3000:]
