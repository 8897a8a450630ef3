"""Preferred leader election and partition reassignment on a 3-node cluster, driven by
Kafka's own tools (kafka-leader-election = LeaderElectionCommand, kafka-reassign-partitions
= ReassignPartitionsCommand) and confluent-kafka's AdminClient.

  * test_preferred_election: a topic of 3 partitions, RF 3, leaders spread (partition i
    prefers node i+1). kill -9 node 1: its leadership moves away. Restart it; once it is
    back in every ISR, ``--election-type PREFERRED --all-topic-partitions`` puts every
    leader back on its first replica, and a second run finds nothing to do. Also the
    per-partition errors: an unclean election where a leader exists (ELECTION_NOT_NEEDED)
    and an unknown partition (UNKNOWN_TOPIC_OR_PARTITION), through the AdminClient.
  * test_auto_rebalance: the same fault with ``auto.leader.rebalance.enable`` and a 2 s
    ``leader.imbalance.check.interval.seconds``: the leadership returns on its own.
  * test_reassignment: RF 2 on [1, 2] with acked data; reassign to [2, 3] (--execute),
    produce during the move, --list / --verify until complete; then replicas [2, 3],
    ISR within them, every record readable, node 1's partition directory gone. And the
    refusals: unknown broker, duplicate broker (INVALID_REPLICA_ASSIGNMENT), cancelling
    when nothing moves (NO_REASSIGNMENT_IN_PROGRESS).

Kind from COMPAT_BROKER (cluster.Cluster): sluice by default, or real Kafka KRaft.
"""

from __future__ import annotations

import json
import re
import subprocess
import time

import pytest
from confluent_kafka import TopicCollection, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

import brokers
from cluster import Cluster, cluster_kind
from util import produce_acked, rdkafka_conf, read_values, unique_topic

KIND = cluster_kind()
NO_AUTO = {"auto.leader.rebalance.enable": "false"}


def start_cluster(tmp_path, overrides: dict[str, str]) -> Cluster:
    c = Cluster(KIND, tmp_path / "cluster", overrides={**brokers.overrides_from_env(), **overrides})
    c.start()
    return c


@pytest.fixture
def manual_cluster(tmp_path):
    c = start_cluster(tmp_path, NO_AUTO)
    yield c
    c.stop()


@pytest.fixture
def auto_cluster(tmp_path):
    c = start_cluster(tmp_path, {"auto.leader.rebalance.enable": "true",
                                 "leader.imbalance.check.interval.seconds": "2"})
    yield c
    c.stop()


def admin(c: Cluster) -> AdminClient:
    return AdminClient(rdkafka_conf(c.live_bootstrap()))


def describe(c: Cluster, topic: str) -> dict[int, dict]:
    """Like Cluster.describe, but replicas in assignment order (the first is preferred)."""
    a = admin(c)  # the handle must outlive the future
    d = a.describe_topics(TopicCollection([topic]), request_timeout=5)[topic].result(timeout=10)
    return {p.id: {"leader": p.leader.id if p.leader is not None else -1,
                   "replicas": [r.id for r in p.replicas],
                   "isr": sorted(r.id for r in p.isr)} for p in d.partitions}


def create(c: Cluster, topic: str, assignment: list[list[int]]) -> None:
    a = admin(c)
    a.create_topics([NewTopic(topic, num_partitions=len(assignment), replication_factor=-1,
                                     replica_assignment=assignment)],
                           operation_timeout=30, request_timeout=30)[topic].result(timeout=60)
    c.wait_for(f"{topic} fully in sync", lambda: (
        (d := describe(c, topic)) and all(sorted(i["isr"]) == sorted(i["replicas"])
                                          and i["leader"] == i["replicas"][0]
                                          for i in d.values()), d), timeout_s=60)


def tool(main: str, *args: str, check: bool = True) -> str:
    cmd = brokers.java_command(main, *args)
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    out = res.stdout + res.stderr
    if check and res.returncode != 0:
        raise AssertionError(f"{main} {' '.join(args)} failed ({res.returncode}):\n{out}")
    return out


def leader_election(c: Cluster, *args: str) -> str:
    return tool("org.apache.kafka.tools.LeaderElectionCommand", "--bootstrap-server",
                c.live_bootstrap(), *args)


def kill_and_return(c: Cluster, topic: str, victim: int = 1) -> None:
    """kill -9 ``victim``; wait until it leads nothing; restart; wait until it is back
    in every ISR."""
    c.kill9(victim)
    c.wait_for(f"leadership away from {victim}", lambda: (
        (d := describe(c, topic)) and all(i["leader"] not in (victim, -1) for i in d.values()), d),
        timeout_s=40)
    c.restart(victim)
    c.wait_for(f"{victim} back in every ISR", lambda: (
        (d := describe(c, topic)) and all(victim in i["isr"] for i in d.values()), d),
        timeout_s=60)


SPREAD = [[1, 2, 3], [2, 3, 1], [3, 1, 2]]


def test_preferred_election(manual_cluster: Cluster):
    c = manual_cluster
    topic = unique_topic("elect")
    create(c, topic, SPREAD)
    kill_and_return(c, topic)
    d = describe(c, topic)
    assert d[0]["leader"] != 1, f"nothing moved leadership back yet (auto rebalance is off): {d}"

    out = leader_election(c, "--election-type", "PREFERRED", "--all-topic-partitions")
    assert "Successfully completed leader election (PREFERRED)" in out, out
    assert f"{topic}-0" in out, out
    d = describe(c, topic)
    assert all(i["leader"] == i["replicas"][0] for i in d.values()), d

    out = leader_election(c, "--election-type", "PREFERRED", "--all-topic-partitions")
    assert "Successfully completed" not in out, out
    # Named explicitly, a partition whose preferred replica leads is reported as such.
    out = leader_election(c, "--election-type", "PREFERRED", "--topic", topic, "--partition", "1")
    assert "Valid replica already elected for partitions" in out and f"{topic}-1" in out, out

    # Per-partition errors through the AdminClient (KIP-460).
    from confluent_kafka import ElectionType
    assert elect_error(c, ElectionType.UNCLEAN, topic, 0) == 84  # ELECTION_NOT_NEEDED
    assert elect_error(c, ElectionType.PREFERRED, topic, 7) == 3  # UNKNOWN_TOPIC_OR_PARTITION


def elect_error(c: Cluster, kind, topic: str, partition: int) -> int:
    """The Kafka error code AdminClient.elect_leaders reports for one partition (0: none)."""
    a = admin(c)
    res = a.elect_leaders(kind, [TopicPartition(topic, partition)]).result(timeout=30)
    [(tp, err)] = list(res.items())
    assert (tp.topic, tp.partition) == (topic, partition), res
    if err is None:
        return 0
    return (err.args[0] if isinstance(err, Exception) else err).code()


def test_auto_rebalance(auto_cluster: Cluster):
    c = auto_cluster
    topic = unique_topic("rebalance")
    create(c, topic, SPREAD)
    kill_and_return(c, topic)
    d = c.wait_for("leaders back on their preferred replicas", lambda: (
        (d := describe(c, topic)) and all(i["leader"] == i["replicas"][0] for i in d.values()), d),
        timeout_s=30)
    assert d[0]["leader"] == 1, d


def reassign(c: Cluster, plan: dict, action: str) -> str:
    path = c.work_dir / f"reassign-{time.monotonic_ns()}.json"
    path.write_text(json.dumps(plan))
    return tool("org.apache.kafka.tools.reassign.ReassignPartitionsCommand", "--bootstrap-server",
                c.live_bootstrap(), "--reassignment-json-file", str(path), action, check=False)


def list_reassignments(c: Cluster) -> str:
    return tool("org.apache.kafka.tools.reassign.ReassignPartitionsCommand", "--bootstrap-server",
                c.live_bootstrap(), "--list")


def test_reassignment(manual_cluster: Cluster):
    c = manual_cluster
    topic = unique_topic("reassign")
    create(c, topic, [[1, 2]])
    before = [f"before-{i}" for i in range(2000)]
    produce_acked(c.live_bootstrap(), topic, before, partition=0)

    plan = {"version": 1, "partitions": [{"topic": topic, "partition": 0, "replicas": [2, 3]}]}
    out = reassign(c, plan, "--execute")
    assert "Successfully started partition reassignment" in out, out
    listing = list_reassignments(c)
    during = [f"during-{i}" for i in range(500)]
    produce_acked(c.live_bootstrap(), topic, during, partition=0)
    # While it runs the listing shows the merged set; once done, nothing.
    m = re.search(rf"{re.escape(topic)}-0: replicas: ([\d,]+)\. adding: ([\d,]*)\. removing: ([\d,]*)",
                  listing)
    if m:
        assert [int(x) for x in m.group(1).split(",")] == [2, 3, 1], listing
        assert m.group(2) == "3" and m.group(3) == "1", listing
    else:
        assert "No partition reassignments found" in listing, listing

    c.wait_for("reassignment complete (--verify)", lambda: (
        f"Reassignment of partition {topic}-0 is completed" in (o := reassign(c, plan, "--verify")), o),
        timeout_s=60)
    assert "No partition reassignments found" in list_reassignments(c)
    d = c.wait_for("replicas [2, 3]", lambda: (
        (d := describe(c, topic)) and d[0]["replicas"] == [2, 3], d), timeout_s=30)
    assert set(d[0]["isr"]) <= {2, 3} and d[0]["isr"], d
    assert d[0]["leader"] in (2, 3), d

    got = read_values(c.live_bootstrap(), topic, 1, len(before) + len(during))
    assert got == before + during, (len(got), got[:3], got[-3:])

    # sluice keeps partitions under <data>/logs, Kafka directly in log.dirs; Kafka first
    # renames a deleted one to <name>.<id>-delete, which no longer matches.
    def partition_dirs(node: int) -> list:
        return [p for p in c.node(node).data_dir.rglob(f"{topic}-0") if p.is_dir()]
    assert partition_dirs(3), "node 3 holds the partition"
    c.wait_for("node 1's partition directory removed", lambda: (
        not (d := partition_dirs(1)), d), timeout_s=30)

    # Refusals, with Kafka's error codes (the Java AdminClient: the tool filters some).
    assert java_reassign(c, topic, "2,2") == "InvalidReplicaAssignmentException"
    assert java_reassign(c, topic, "2,9") == "InvalidReplicaAssignmentException"
    assert java_reassign(c, topic, "cancel") == "NoReassignmentInProgressException"
    assert java_reassign(c, unique_topic("nope"), "1,2") == "UnknownTopicOrPartitionException"
    assert java_reassign(c, topic, "list") == "none"
    # --verify (which also clears replication throttles) succeeds once done.
    out = reassign(c, plan, "--verify")
    assert f"Reassignment of partition {topic}-0 is completed" in out and "Error" not in out, out


def java_reassign(c: Cluster, topic: str, what: str) -> str:
    cmd = brokers.java_command(str(brokers.COMPAT_DIR / "java" / "Reassign.java"),
                               c.live_bootstrap(), topic, "0", what)
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    return res.stdout.strip()
