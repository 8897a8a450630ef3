"""Transactions across brokers, on a 3-node cluster: the transaction coordinator must
get its COMMIT/ABORT markers to the leaders of every partition (WriteTxnMarkers),
wherever they are.

A topic with 6 partitions, replication factor 3, leaders on all three nodes
(describe). A Java transactional producer (compat/java/TxnRounds.java) runs rounds of
transactions over every partition, committing two in three and aborting the rest.
Then a partition leader that is not the transaction coordinator (FindCoordinator,
key type 1) is killed with kill -9, and more rounds run at once, while the partitions
it led move and the markers for them must be retried at the new leaders. Checks:
  * read_committed sees exactly the committed records (each once, no aborted one) and
    reaches the end of every partition: no stall at a last stable offset;
  * every partition's LSO (ListOffsets, isolation level 1, via the Java consumer's
    endOffsets) equals its high watermark (isolation level 0) once all is done;
  * read_uncommitted sees the aborted records too.
A second case kills the transaction coordinator itself (the leader of the id's
`__transaction_state` partition) while the producer is in the middle of its rounds:
the producer must find the new coordinator (which replays the partition and finishes
what the old one left prepared) and carry on, with the same checks at the end.
Kind from COMPAT_BROKER (cluster.Cluster): passes against a 3-node Apache Kafka too.
"""

from __future__ import annotations

import socket
import struct
import re
import subprocess
import threading
import time

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

import brokers
from cluster import Cluster, cluster_kind
from util import rdkafka_conf, unique_topic

KIND = cluster_kind()
PARTITIONS = 6
FIRST_ROUNDS = (0, 5)
SECOND_ROUNDS = (6, 11)


@pytest.fixture
def cluster(tmp_path):
    c = Cluster(KIND, tmp_path / "cluster", overrides=brokers.overrides_from_env())
    c.start()
    yield c
    c.stop()


def find_txn_coordinator(c: Cluster, txn_id: str, timeout_s: float = 30.0) -> int:
    """FindCoordinator v1 (raw socket) with key type 1 (transaction): the node id."""
    def ask(host: str, port: int) -> tuple[int, int]:
        client_id, key = b"compat-txn", txn_id.encode()
        header = struct.pack(">hhih", 10, 1, 11, len(client_id)) + client_id
        body = struct.pack(">h", len(key)) + key + b"\x01"
        frame = header + body
        with socket.create_connection((host, port), timeout=5) as s:
            s.settimeout(5)
            s.sendall(struct.pack(">i", len(frame)) + frame)
            (size,) = struct.unpack(">i", brokers._recv_exact(s, 4))
            data = brokers._recv_exact(s, size)
        # corr i32, throttle i32, error i16, error_message nullable string, node_id i32
        err, msg_len = struct.unpack_from(">hh", data, 8)
        pos = 12 + max(msg_len, 0)
        (node,) = struct.unpack_from(">i", data, pos)
        return err, node

    def cond():
        n = c.node(c.live()[0])
        err, node = ask(n.host, n.port)
        return err == 0 and node in c.live(), (err, node)
    return c.wait_for(f"transaction coordinator of {txn_id}", cond, timeout_s)[1]


def java(*args: str) -> list[str]:
    return brokers.java_command(str(brokers.COMPAT_DIR / "java" / "TxnRounds.java"), *args)


def produce_rounds(c: Cluster, topic: str, txn_id: str, rounds: tuple[int, int]) -> str:
    res = subprocess.run(java("produce", c.live_bootstrap(), topic, str(PARTITIONS), txn_id,
                              str(rounds[0]), str(rounds[1])),
                         capture_output=True, text=True, timeout=400)
    assert res.returncode == 0 and "RESULT ok" in res.stdout, \
        f"producer failed:\n{res.stdout[-4000:]}\n{res.stderr[-3000:]}\n{c.log_tails(30)}"
    return res.stdout


def read(c: Cluster, topic: str, isolation: str) -> tuple[dict[int, int], list[str]]:
    res = subprocess.run(java("read", c.live_bootstrap(), topic, str(PARTITIONS), isolation),
                         capture_output=True, text=True, timeout=200)
    assert res.returncode == 0 and "RESULT ok" in res.stdout, \
        f"{isolation} reader failed:\n{res.stdout[-4000:]}\n{res.stderr[-3000:]}\n{c.log_tails(30)}"
    ends, values = {}, []
    for line in res.stdout.splitlines():
        if line.startswith("END "):
            _, p, off = line.split(" ")
            ends[int(p)] = int(off)
        elif line.startswith("VALUE "):
            values.append(line[len("VALUE "):])
    return ends, values


def round_values(first: int, last: int, committed: bool) -> list[str]:
    return [f"t{r}-p{p}-{i}" for r in range(first, last + 1) if (r % 3 != 1) == committed
            for p in range(PARTITIONS) for i in range(3)]


def test_transactions_span_every_leader(cluster, tmp_path):
    c = cluster
    topic = unique_topic("txn-cluster")
    txn_id = f"{topic}-tx"
    d = create_spread_topic(c, topic)
    leaders = {i["leader"] for i in d.values()}
    assert leaders == {1, 2, 3}, f"leaders not spread over all brokers: {d}"

    out1 = produce_rounds(c, topic, txn_id, FIRST_ROUNDS)
    assert out1.count("ROUND") == FIRST_ROUNDS[1] - FIRST_ROUNDS[0] + 1, out1

    coordinator = find_txn_coordinator(c, txn_id)
    quorum_leader = c.quorum_leader()
    d = c.describe(topic)
    # A partition leader that is not the coordinator (nor, when there is a choice, the
    # metadata quorum leader: the point is the markers, not a controller failover).
    candidates = sorted({i["leader"] for i in d.values()} - {coordinator})
    assert candidates, f"no partition leader other than the coordinator {coordinator}: {d}"
    victim = next((n for n in candidates if n != quorum_leader), candidates[0])
    led = sorted(p for p, i in d.items() if i["leader"] == victim)
    print(f"\n[txn-cluster] {KIND}: coordinator {coordinator}, quorum leader {quorum_leader}, "
          f"kill -9 node {victim} (leads {led})")
    c.kill9(victim)

    t0 = time.monotonic()
    out2 = produce_rounds(c, topic, txn_id, SECOND_ROUNDS)
    assert out2.count("ROUND") == SECOND_ROUNDS[1] - SECOND_ROUNDS[0] + 1, out2
    print(f"[txn-cluster] rounds after the kill took {time.monotonic() - t0:.1f}s")

    check_rounds(c, topic, FIRST_ROUNDS[0], SECOND_ROUNDS[1])


def check_rounds(c: Cluster, topic: str, first: int, last: int) -> None:
    """Rounds first..last ran: read_committed sees exactly the committed records, every
    partition's LSO reached its high watermark, read_uncommitted sees everything."""
    committed = round_values(first, last, True)
    aborted = round_values(first, last, False)

    lso, seen_committed = read(c, topic, "read_committed")
    hw, seen_all = read(c, topic, "read_uncommitted")
    assert lso == hw, f"last stable offsets {lso} != high watermarks {hw}: a transaction left open"
    assert sorted(seen_committed) == sorted(committed), (
        f"read_committed: {len(seen_committed)} records, want {len(committed)}; "
        f"aborted seen: {sorted(set(seen_committed) & set(aborted))[:10]}; "
        f"missing: {sorted(set(committed) - set(seen_committed))[:10]}")
    assert set(aborted) <= set(seen_all), \
        f"read_uncommitted misses aborted records: {sorted(set(aborted) - set(seen_all))[:10]}"
    assert set(committed) <= set(seen_all)


def create_spread_topic(c: Cluster, topic: str) -> dict[int, dict]:
    admin = AdminClient(rdkafka_conf(c.bootstrap))
    admin.create_topics([NewTopic(topic, num_partitions=PARTITIONS, replication_factor=3)],
                        operation_timeout=30, request_timeout=30)[topic].result(timeout=60)
    def full_isr():
        d = c.describe(topic)
        return all(i["isr"] == [1, 2, 3] and i["leader"] > 0 for i in d.values()), d
    return c.wait_for("full ISR on every partition", full_isr, 60)


KILL_ROUNDS = (0, 14)
KILL_AFTER_ROUND = 3


def test_transaction_coordinator_killed_mid_rounds(cluster):
    c = cluster
    topic = unique_topic("txn-coord-kill")
    txn_id = f"{topic}-tx"
    create_spread_topic(c, topic)

    proc = subprocess.Popen(java("produce", c.live_bootstrap(), topic, str(PARTITIONS), txn_id,
                                 str(KILL_ROUNDS[0]), str(KILL_ROUNDS[1])),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    started = threading.Event()
    def pump():
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            if line.startswith(f"ROUND {KILL_AFTER_ROUND} "):
                started.set()
    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        assert started.wait(200), f"producer did not reach round {KILL_AFTER_ROUND}:\n" \
            + "\n".join(lines[-40:]) + f"\n{c.log_tails(30)}"
        coordinator = find_txn_coordinator(c, txn_id)
        print(f"\n[txn-cluster] {KIND}: kill -9 transaction coordinator {coordinator} of {txn_id} "
              f"(quorum leader {c.quorum_leader()}) after round {KILL_AFTER_ROUND}")
        t0 = time.monotonic()
        c.kill9(coordinator)
        proc.wait(timeout=400)
        reader.join(10)
        print(f"[txn-cluster] rounds after the kill took {time.monotonic() - t0:.1f}s")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    out = "\n".join(lines)
    assert proc.returncode == 0 and "RESULT ok" in out, \
        f"producer failed:\n{out[-4000:]}\n{proc.stderr.read()[-3000:]}\n{c.log_tails(30)}"
    assert out.count("ROUND") == KILL_ROUNDS[1] - KILL_ROUNDS[0] + 1, out
    new_coordinator = find_txn_coordinator(c, txn_id)
    assert new_coordinator != coordinator and new_coordinator in c.live()
    check_rounds(c, topic, KILL_ROUNDS[0], KILL_ROUNDS[1])

    # kafka-transactions sees the id at its new coordinator, its last round committed
    # (DescribeTransactions there; ListTransactions asks every live broker).
    last_state = "CompleteAbort" if KILL_ROUNDS[1] % 3 == 1 else "CompleteCommit"
    rows = transactions_cli(c, "describe", "--transactional-id", txn_id)
    assert rows and rows[0]["CoordinatorId"] == str(new_coordinator) \
        and rows[0]["TransactionState"] == last_state, rows
    listed = [r for r in transactions_cli(c, "list") if r["TransactionalId"] == txn_id]
    assert [(r["Coordinator"], r["TransactionState"]) for r in listed] == \
        [(str(new_coordinator), last_state)], listed
    # ListTransactions v2: a pattern matches whole ids only.
    assert [r["TransactionalId"] for r in transactions_cli(
        c, "list", "--transactional-id-pattern", re.escape(txn_id))] == [txn_id]
    assert [r["TransactionalId"] for r in transactions_cli(
        c, "list", "--transactional-id-pattern", re.escape(txn_id[:-1]))] == []


def transactions_cli(c: Cluster, *args: str) -> list[dict[str, str]]:
    """kafka-transactions (TransactionsCommand): its table as one dict per row."""
    cmd = brokers.java_command("org.apache.kafka.tools.TransactionsCommand",
                               "--bootstrap-server", c.live_bootstrap(), *args)
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, f"kafka-transactions {' '.join(args)}:\n{res.stdout}\n{res.stderr[-3000:]}"
    lines = [l.split() for l in res.stdout.splitlines() if l.strip()]
    return [dict(zip(lines[0], row)) for row in lines[1:]] if lines else []
