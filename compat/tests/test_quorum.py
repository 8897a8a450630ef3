"""Three sluice processes as one metadata quorum (sluice only).

Each runs ``process.roles=broker,controller`` with the same
``controller.quorum.voters`` and its own ``CONTROLLER://`` listener, as a Kafka
KRaft cluster is configured. Topics created through any node (the leader or a
follower, which forwards) show up on all three; after the quorum leader is killed
with SIGKILL the other two elect a new one and keep committing; the old leader,
restarted, catches up. The leader is found with DescribeQuorum (API 55).
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


def test_three_node_quorum(tmp_path):
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
