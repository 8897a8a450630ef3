"""Three sluice processes as one metadata quorum (sluice only).

Each runs ``process.roles=broker,controller`` with the same
``controller.quorum.voters`` and its own ``CONTROLLER://`` listener, as a Kafka
KRaft cluster is configured. Topics created through any node (the leader or a
follower, which forwards) show up on all three; after the quorum leader is killed
with SIGKILL the other two elect a new one and keep committing; the old leader,
restarted, catches up. The leader is found with DescribeQuorum (API 55).

Membership: every node lists all three brokers; a replication-factor-3 topic is
placed on all three with a full ISR; a node killed with SIGKILL is fenced after
the session timeout, leaves the broker list and every ISR, and its partitions get
a new leader (data replication is tested elsewhere).
"""

from __future__ import annotations

import os
import socket
import struct
import time

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

import brokers
from util import unique_topic

pytestmark = pytest.mark.skipif(os.environ.get("COMPAT_BROKER", "sluice") != "sluice",
                                reason="a multi-process sluice quorum")


def _uvarint(n: int) -> bytes:
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def quorum_leader(host: str, port: int) -> tuple[int, int, int]:
    """DescribeQuorum v0 for __cluster_metadata-0: (error_code, leader_id, leader_epoch)."""
    topic = b"__cluster_metadata"
    client_id = b"compat-quorum"
    header = struct.pack(">hhih", 55, 0, 7, len(client_id)) + client_id + b"\x00"
    body = _uvarint(2) + _uvarint(len(topic) + 1) + topic + _uvarint(2) + struct.pack(">i", 0) + b"\x00\x00\x00"
    frame = header + body
    with socket.create_connection((host, port), timeout=5) as s:
        s.sendall(struct.pack(">i", len(frame)) + frame)
        (size,) = struct.unpack(">i", brokers._recv_exact(s, 4))
        data = brokers._recv_exact(s, size)
    # corr i32, header tags, error_code i16, topics (n+1), name (len+1) bytes, partitions (n+1),
    # partition_index i32, error_code i16, leader_id i32, leader_epoch i32 (all single-byte varints here)
    pos = 4 + 1 + 2 + 1
    name_len = data[pos] - 1
    pos += 1 + name_len + 1 + 4
    err, leader, epoch = struct.unpack_from(">hii", data, pos)
    return err, leader, epoch


def topics_on(b: brokers.Broker) -> set[str]:
    return set(AdminClient({"bootstrap.servers": b.bootstrap}).list_topics(timeout=10).topics)


def wait_until(what: str, f, timeout_s: float = 30.0):
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if f():
                return
        except Exception:  # noqa: BLE001 - a node may be restarting
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def create(b: brokers.Broker, name: str):
    admin = AdminClient({"bootstrap.servers": b.bootstrap})  # must outlive the future
    fut = admin.create_topics([NewTopic(name, 1, 1)], operation_timeout=20)
    fut[name].result(timeout=30)


def find_leader(nodes: dict[int, brokers.Broker]) -> int:
    found = {}

    def agreed():
        found.clear()
        for nid, b in nodes.items():
            err, leader, _ = quorum_leader(b.host, b.port)
            found[nid] = leader
        return len(set(found.values())) == 1 and next(iter(found.values())) in nodes
    wait_until(f"an agreed quorum leader among {sorted(nodes)}", agreed)
    return next(iter(found.values()))


def three_nodes(tmp_path) -> dict[int, "brokers.SluiceBroker"]:
    cports = {i: brokers.free_port() for i in (1, 2, 3)}
    voters = ",".join(f"{i}@{brokers.HOST}:{p}" for i, p in cports.items())
    nodes: dict[int, brokers.SluiceBroker] = {}
    for i in (1, 2, 3):
        b = brokers.SluiceBroker(tmp_path / f"node{i}", overrides={
            "process.roles": "broker,controller",
            "controller.quorum.voters": voters,
            "controller.listener.names": "CONTROLLER",
        })
        b.node_id = i
        b.overrides["listeners"] = f"PLAINTEXT://{b.bootstrap},CONTROLLER://{brokers.HOST}:{cports[i]}"
        nodes[i] = b
    return nodes


def test_three_node_quorum(tmp_path):
    nodes = three_nodes(tmp_path)
    try:
        for b in nodes.values():
            b.start()
        leader = find_leader(nodes)
        err, _, epoch = quorum_leader(nodes[leader].host, nodes[leader].port)
        assert err == 0 and epoch >= 1
        follower = next(i for i in nodes if i != leader)

        t_leader, t_follower = unique_topic("via-leader"), unique_topic("via-follower")
        create(nodes[leader], t_leader)
        create(nodes[follower], t_follower)
        for b in nodes.values():
            wait_until(f"both topics on {b}", lambda b=b: {t_leader, t_follower} <= topics_on(b))

        # SIGKILL the leader: the other two elect a new one and keep committing.
        nodes[leader].kill9()
        survivors = {i: b for i, b in nodes.items() if i != leader}
        new_leader = find_leader(survivors)
        assert new_leader != leader
        t_after = unique_topic("after-kill")
        create(survivors[follower] if follower in survivors else nodes[new_leader], t_after)
        for b in survivors.values():
            wait_until(f"{t_after} on {b}", lambda b=b: {t_leader, t_follower, t_after} <= topics_on(b))

        # The old leader comes back and catches up.
        nodes[leader].start()
        wait_until("the restarted node catches up", lambda: {t_leader, t_follower, t_after} <= topics_on(nodes[leader]))
        assert find_leader(nodes) in nodes
    finally:
        for b in nodes.values():
            b.stop()


def cluster_view(b: brokers.Broker):
    return AdminClient({"bootstrap.servers": b.bootstrap}).list_topics(timeout=10)


def test_membership_placement_and_failover(tmp_path):
    nodes = three_nodes(tmp_path)
    try:
        for b in nodes.values():
            b.start()
        leader = find_leader(nodes)
        for b in nodes.values():
            wait_until(f"three brokers listed by {b}", lambda b=b: sorted(cluster_view(b).brokers) == [1, 2, 3])
        ids = {cluster_view(b).cluster_id for b in nodes.values()}
        assert len(ids) == 1, f"nodes disagree on the cluster id: {ids}"

        topic = unique_topic("rf3")
        admin = AdminClient({"bootstrap.servers": nodes[leader].bootstrap})
        admin.create_topics([NewTopic(topic, 3, 3)], operation_timeout=20)[topic].result(timeout=30)
        for b in nodes.values():
            wait_until(f"{topic} on {b}", lambda b=b: topic in cluster_view(b).topics)
        parts = cluster_view(nodes[leader]).topics[topic].partitions
        assert len(parts) == 3
        for p in parts.values():
            assert sorted(p.replicas) == [1, 2, 3] and sorted(p.isrs) == [1, 2, 3], (p.replicas, p.isrs)
            assert p.leader == p.replicas[0]
        assert sorted(p.leader for p in parts.values()) == [1, 2, 3], "leaders spread round-robin"
        # Too many replicas: Kafka's INVALID_REPLICATION_FACTOR.
        bad = unique_topic("rf4")
        with pytest.raises(Exception, match="INVALID_REPLICATION_FACTOR|replication factor"):
            admin.create_topics([NewTopic(bad, 1, 4)], operation_timeout=20)[bad].result(timeout=30)

        # SIGKILL a follower of the quorum: fenced after the session timeout (9 s).
        victim = next(i for i in nodes if i != leader)
        led_by_victim = [n for n, p in parts.items() if p.leader == victim]
        nodes[victim].kill9()
        killed_at = time.monotonic()
        survivor = nodes[leader]

        def failed_over():
            md = cluster_view(survivor)
            if victim in md.brokers:
                return False
            ps = md.topics[topic].partitions
            return all(p.leader not in (victim, -1) and victim not in p.isrs for p in ps.values())
        wait_until(f"node {victim} fenced and its partitions {led_by_victim} re-led", failed_over, timeout_s=20)
        assert time.monotonic() - killed_at < 17, "failover took longer than the session timeout allows"
        md = cluster_view(survivor)
        assert sorted(md.brokers) == sorted(i for i in nodes if i != victim)
        for n in led_by_victim:
            assert md.topics[topic].partitions[n].leader != victim
        # Every survivor agrees.
        other = next(i for i in nodes if i not in (leader, victim))
        assert sorted(cluster_view(nodes[other]).brokers) == sorted(md.brokers)
    finally:
        for b in nodes.values():
            b.stop()
