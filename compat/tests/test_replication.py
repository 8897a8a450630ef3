"""Replication under faults, on a 3-node cluster (every node broker+controller).

Topic: 3 partitions, replication factor 3, min.insync.replicas=2. While
``java/ReplicatedLog.java`` produces (idempotent, acks=all) in the background:
  (a) kill -9 the leader of partition 0, ~8 s down, restart;
  (b) kill -9 the metadata quorum leader (DescribeQuorum), restart;
  (c) SIGSTOP a partition leader for longer than the session timeout, SIGCONT;
  (d) SIGTERM (controlled shutdown) a partition leader, restart.
After each fault: every partition has a live leader, ISR ⊆ replicas, the dead node
drops out of every ISR once the session timeout has passed; after each restart all
three are back in every ISR within 30 s. Then the log is read (assign, no group) and
checked against what was acknowledged: each acked record at its offset with its value,
dense offsets, no duplicates, sequence order per partition; then everything restarts,
the node that led partition 0 is killed, and a second read (other leaders) must be
identical. Failover figures (longest gap between acks, per fault) go to
``<tmp>/failover.txt`` and stdout; they are reported, not asserted.

Also: with 2 of 3 nodes down an acks=all produce is never acknowledged (the quorum is
gone too, so it times out); with one node down and min.insync.replicas=3 it fails with
NOT_ENOUGH_REPLICAS; after the restarts produce works and every acked record is read.

Kind from COMPAT_BROKER (cluster.Cluster): the same test runs against sluice and against
a 3-node Apache Kafka KRaft cluster.
"""

from __future__ import annotations

import subprocess
import time
import uuid

import pytest
from confluent_kafka import KafkaError, Producer
from confluent_kafka.admin import AdminClient, NewTopic

import brokers
from cluster import Cluster, cluster_kind
from util import rdkafka_conf, unique_topic

KIND = cluster_kind()

PARTITIONS = 3
SESSION_S = 6.0  # cluster.FAST_FAILURE broker.session.timeout.ms
DOWN_S = 8.0     # how long a killed / stopped node stays down (> SESSION_S)


@pytest.fixture
def cluster(tmp_path):
    c = Cluster(KIND, tmp_path / "cluster", overrides=brokers.overrides_from_env())
    t0 = time.monotonic()
    c.start()
    print(f"\n[replication] {KIND} cluster {c.bootstrap} ready in {time.monotonic() - t0:.1f}s")
    yield c
    c.stop()


def create_topic(c: Cluster, name: str, partitions: int, config: dict[str, str]) -> None:
    admin = AdminClient(rdkafka_conf(c.live_bootstrap()))
    admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=3,
                                  config=config)],
                        operation_timeout=30, request_timeout=30)[name].result(timeout=60)
    wait_full_isr(c, name)


# -- what describe() must show ------------------------------------------------------------

def check_invariants(c: Cluster, topic: str, d: dict[int, dict]) -> None:
    live = set(c.live())
    assert sorted(d) == list(range(len(d))), d
    for p, info in d.items():
        assert info["replicas"] == [1, 2, 3], (p, info)
        assert set(info["isr"]) <= set(info["replicas"]), (p, info)
        assert info["leader"] in live, f"partition {p}: leader {info['leader']} not live {live}: {d}"
        assert info["leader"] in info["isr"], (p, info)


def wait_full_isr(c: Cluster, topic: str, timeout_s: float = 30.0) -> dict:
    def cond():
        d = c.describe(topic)
        return all(i["isr"] == [1, 2, 3] and i["leader"] in c.live() for i in d.values()), d
    d = c.wait_for(f"{topic}: all three nodes in every ISR", cond, timeout_s)
    check_invariants(c, topic, d)
    return d


def wait_out_of_isr(c: Cluster, topic: str, node: int, timeout_s: float) -> dict:
    """Until ``node`` leads nothing and is in no ISR (the others still lead)."""
    def cond():
        d = c.describe(topic)
        return all(node not in i["isr"] and i["leader"] != node and i["leader"] >= 0
                   for i in d.values()), d
    d = c.wait_for(f"{topic}: node {node} out of every ISR", cond, timeout_s)
    check_invariants(c, topic, d)
    return d


def cross_check_cli(c: Cluster, topic: str) -> None:
    """Kafka's TopicCommand sees what the AdminClient sees (at a stable point)."""
    c.wait_for("TopicCommand --describe == AdminClient describe",
               lambda: ((a := c.describe(topic)) == (b := c.describe_cli(topic)), (a, b)), 30)


# -- the writer / reader ------------------------------------------------------------------

def java(*args: str) -> list[str]:
    return brokers.java_command(str(brokers.COMPAT_DIR / "java" / "ReplicatedLog.java"), *args)


def consume(c: Cluster, topic: str, out) -> list[tuple[int, int, str]]:
    res = subprocess.run(java("consume", c.live_bootstrap(), topic, str(out), "90"),
                         capture_output=True, text=True, timeout=150)
    assert res.returncode == 0 and "RESULT" in res.stdout, \
        f"consumer failed:\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
    rows = []
    for line in out.read_text().splitlines():
        p, off, v = line.split(" ")
        rows.append((int(p), int(off), v))
    return rows


def read_acked(path) -> list[tuple[int, int, str, int]]:
    rows = []
    for line in path.read_text().splitlines():
        parts = line.split(" ")
        if len(parts) == 4:  # a line cut by a kill is not an ack
            rows.append((int(parts[0]), int(parts[1]), parts[2], int(parts[3])))
    return rows


def check_log(acked, consumed, run_id: str | set[str], partitions: int) -> dict:
    """The checker: returns counts, raises AssertionError listing the first problems.

    ``run_id``: the producer's, or a set of them when several producers wrote (each
    one's sequence order is checked on its own)."""
    run_ids = {run_id} if isinstance(run_id, str) else set(run_id)
    problems: list[str] = []
    at: dict[tuple[int, int], str] = {}
    for p, off, v in consumed:
        if (p, off) in at:
            problems.append(f"offset {p}/{off} read twice: {at[(p, off)]!r} and {v!r}")
        at[(p, off)] = v
    seen_values: dict[str, tuple[int, int]] = {}
    for p in range(partitions):
        rows = [(off, v) for pp, off, v in consumed if pp == p]
        offs = [off for off, _ in rows]
        if offs != sorted(set(offs)):
            problems.append(f"partition {p}: offsets not strictly increasing")
        if offs and offs != list(range(offs[0], offs[0] + len(offs))):
            problems.append(f"partition {p}: offsets not dense ({offs[0]}..{offs[-1]}, {len(offs)} records)")
        last_seq = dict.fromkeys(run_ids, -1)
        for off, v in rows:
            rid, _, seq_s = v.rpartition("-")
            if rid not in run_ids:
                problems.append(f"{p}/{off}: foreign value {v!r}")
                continue
            seq = int(seq_s)
            if seq % partitions != p:
                problems.append(f"{p}/{off}: value {v!r} belongs to partition {seq % partitions}")
            if seq <= last_seq[rid]:
                problems.append(f"{p}/{off}: {v!r} after seq {last_seq[rid]} (order)")
            last_seq[rid] = max(last_seq[rid], seq)
            if v in seen_values:
                problems.append(f"{v!r} twice: at {seen_values[v]} and {(p, off)} (duplicate)")
            seen_values[v] = (p, off)
    acked_values = set()
    for p, off, v, _ in acked:
        got = at.get((p, off))
        if got != v:
            problems.append(f"acked {v!r} at {p}/{off}, read {got!r}")
        if v in acked_values:
            problems.append(f"{v!r} acknowledged twice")
        acked_values.add(v)
    unacked = sum(1 for _, _, v in consumed if v not in acked_values)
    if problems:
        raise AssertionError(f"{len(problems)} problems, first ones:\n" + "\n".join(problems[:30]))
    return {"acked": len(acked), "consumed": len(consumed), "consumed_not_acked": unacked}


def ack_gaps(acked, faults: list[tuple[str, float]], partitions: int) -> list[str]:
    """Per fault window [its start, the next fault's start): the longest gap between
    consecutive acks of one partition that ended in the window, and across partitions."""
    lines = []
    bounds = [t for _, t in faults] + [float("inf")]
    times = {p: sorted(ms for pp, _, _, ms in acked if pp == p) for p in range(partitions)}
    all_times = sorted(ms for *_, ms in acked)
    for k, (label, start) in enumerate(faults):
        end = bounds[k + 1]
        best = (0, -1)
        for p, ts in times.items():
            for a, b in zip(ts, ts[1:]):
                if start <= b < end and b - a > best[0]:
                    best = (b - a, p)
        any_gap = max((b - a for a, b in zip(all_times, all_times[1:]) if start <= b < end),
                      default=0)
        lines.append(f"{label}: max ack gap {best[0]} ms (partition {best[1]}), "
                     f"any partition {any_gap} ms")
    return lines


# -- the tests ------------------------------------------------------------------------------

def test_faults_keep_acked_records(cluster, tmp_path):
    c = cluster
    topic = unique_topic("replicated")
    create_topic(c, topic, PARTITIONS, {"min.insync.replicas": "2"})
    cross_check_cli(c, topic)

    run_id = uuid.uuid4().hex[:8]
    acked_path, failed_path = tmp_path / "acked.txt", tmp_path / "failed.txt"
    stop_file, prod_out = tmp_path / "stop", tmp_path / "producer.out"
    with open(prod_out, "w") as out:
        producer = subprocess.Popen(
            java("produce", c.bootstrap, topic, str(PARTITIONS), "500", "300", str(stop_file),
                 str(acked_path), str(failed_path), run_id),
            stdout=out, stderr=subprocess.STDOUT)
    faults: list[tuple[str, float]] = []
    timings: list[str] = []

    t_start = time.monotonic()

    def mark(label: str) -> None:
        faults.append((label, time.time() * 1000))
        print(f"[replication] {time.monotonic() - t_start:6.1f}s {label}", flush=True)

    def note(line: str) -> None:
        timings.append(line)
        print(f"[replication] {time.monotonic() - t_start:6.1f}s {line}", flush=True)

    def down_until(t0: float) -> None:
        time.sleep(max(0.0, t0 + DOWN_S - time.monotonic()))

    try:
        c.wait_for("the producer's first acks",
                   lambda: (acked_path.exists() and len(read_acked(acked_path)) > 200, None), 60)
        mark("warm-up")

        # (a) kill -9 the leader of partition 0
        victim = c.leader_of(topic, 0)
        mark(f"(a) kill -9 node {victim} (leader of partition 0)")
        t0 = time.monotonic()
        c.kill9(victim)
        c.wait_for("a new leader of partition 0",
                   lambda: ((l := c.leader_of(topic, 0)) not in (victim, -1), l), 20)
        note(f"(a) new leader of partition 0 in metadata after {time.monotonic() - t0:.1f}s")
        wait_out_of_isr(c, topic, victim, SESSION_S + 15)
        note(f"(a) node {victim} out of every ISR after {time.monotonic() - t0:.1f}s")
        down_until(t0)
        c.restart(victim)
        wait_full_isr(c, topic)
        note(f"(a) restarted, full ISR {time.monotonic() - t0:.1f}s after the kill")

        # (b) kill -9 the metadata quorum leader
        q = c.quorum_leader()
        mark(f"(b) kill -9 node {q} (metadata quorum leader)")
        t0 = time.monotonic()
        c.kill9(q)
        new_q = c.quorum_leader()
        assert new_q != q
        note(f"(b) new quorum leader {new_q} after {time.monotonic() - t0:.1f}s")
        wait_out_of_isr(c, topic, q, SESSION_S + 15)
        note(f"(b) node {q} out of every ISR after {time.monotonic() - t0:.1f}s")
        down_until(t0)
        c.restart(q)
        wait_full_isr(c, topic)
        note(f"(b) restarted, full ISR {time.monotonic() - t0:.1f}s after the kill")

        # (c) SIGSTOP a partition leader for longer than the session timeout
        s = c.leader_of(topic, 2)
        mark(f"(c) SIGSTOP node {s} (leader of partition 2)")
        t0 = time.monotonic()
        c.sigstop(s)
        wait_out_of_isr(c, topic, s, SESSION_S + 15)
        note(f"(c) node {s} out of every ISR after {time.monotonic() - t0:.1f}s")
        down_until(t0)
        c.sigcont(s)
        wait_full_isr(c, topic)
        note(f"(c) SIGCONT, full ISR {time.monotonic() - t0:.1f}s after the stop")

        # (d) graceful SIGTERM of a partition leader (controlled shutdown)
        g = c.leader_of(topic, 1)
        mark(f"(d) SIGTERM node {g} (leader of partition 1)")
        t0 = time.monotonic()
        took = c.sigterm(g)
        note(f"(d) node {g} exited {took:.1f}s after SIGTERM")
        wait_out_of_isr(c, topic, g, SESSION_S + 15)
        note(f"(d) node {g} out of every ISR after {time.monotonic() - t0:.1f}s")
        c.restart(g)
        wait_full_isr(c, topic)
        note(f"(d) restarted, full ISR {time.monotonic() - t0:.1f}s after SIGTERM")
        time.sleep(2)
        mark("end")
    finally:
        stop_file.touch()
        try:
            producer.wait(timeout=150)
        except subprocess.TimeoutExpired:
            producer.kill()
            producer.wait()
    prod_text = prod_out.read_text()
    assert producer.returncode == 0 and "RESULT" in prod_text, f"producer failed:\n{prod_text[-4000:]}"
    cross_check_cli(c, topic)

    acked = read_acked(acked_path)
    failed = failed_path.read_text().splitlines() if failed_path.exists() else []
    report = [f"kind={KIND} topic={topic} run={run_id}",
              "producer: " + next(l for l in prod_text.splitlines() if l.startswith("RESULT")),
              *timings, *ack_gaps(acked, faults, PARTITIONS)]

    def say(line: str) -> None:
        report.append(line)
        print(f"[replication] {time.monotonic() - t_start:6.1f}s {line}", flush=True)
    say("producer stopped")

    # First read, right after the faults.
    leaders1 = {p: i["leader"] for p, i in c.describe(topic).items()}
    read1 = consume(c, topic, tmp_path / "read1.txt")
    counts = check_log(acked, read1, run_id, PARTITIONS)
    say(f"read 1 (leaders {leaders1}): {counts}, failed sends {len(failed)}")

    # Second read in another leadership era: restart everything, kill the node that led
    # partition 0 for the first read, read again: the same records at the same offsets.
    t0 = time.monotonic()
    c.stop()
    c.start()
    wait_full_isr(c, topic, 60)
    say(f"full restart, full ISR after {time.monotonic() - t0:.1f}s")
    old = leaders1[0]
    c.kill9(old)

    def moved():
        d = c.describe(topic)
        return all(i["leader"] not in (old, -1) for i in d.values()), d
    d = c.wait_for(f"every partition led by another node than {old}", moved, 30)
    leaders2 = {p: i["leader"] for p, i in d.items()}
    read2 = consume(c, topic, tmp_path / "read2.txt")
    check_log(acked, read2, run_id, PARTITIONS)
    # (the order across partitions depends on the fetches; per partition it is the log's)
    assert sorted(read2) == sorted(read1), "the second read (other leaders) differs from the first"
    say(f"read 2 (leaders {leaders2}, node {old} down): identical to read 1")
    c.restart(old)

    text = "\n".join(report)
    (tmp_path / "failover.txt").write_text(text + "\n")
    print("\n[replication] " + text.replace("\n", "\n[replication] "), flush=True)
    assert not failed, f"{len(failed)} sends failed with 2 of 3 nodes up all along:\n" + \
        "\n".join(failed[:10])


def _produce(bootstrap: str, topic: str, values: list[str], timeout_s: float, **conf):
    """confluent-kafka, acks=all, not idempotent: {value: (partition, offset) or error}."""
    results = {}

    def dr(err, msg):
        v = msg.value().decode()
        results[v] = err if err is not None else (msg.partition(), msg.offset())

    p = Producer(rdkafka_conf(bootstrap, **{"acks": "all", "enable.idempotence": False,
                                            "message.timeout.ms": int(timeout_s * 1000),
                                            "request.timeout.ms": 5000, **conf}))
    for v in values:
        p.produce(topic, value=v.encode(), partition=0, on_delivery=dr)
    p.flush(timeout_s + 20)
    assert len(results) == len(values), f"{len(values) - len(results)} delivery reports missing"
    return results


def test_min_insync_replicas(cluster, tmp_path):
    c = cluster
    topic = unique_topic("min-isr")
    create_topic(c, topic, 1, {"min.insync.replicas": "2"})
    ok1 = _produce(c.bootstrap, topic, [f"before-{i}" for i in range(20)], 30)
    assert all(isinstance(r, tuple) for r in ok1.values()), ok1

    # 2 of 3 down: the metadata quorum is gone as well, so the ISR cannot shrink; the
    # leader can never collect the acks of the dead followers: nothing is acknowledged.
    leader = c.leader_of(topic, 0)
    others = [i for i in (1, 2, 3) if i != leader]
    for i in others:
        c.kill9(i)
    # (retries=0: a timed-out request is not sent again, so no extra copies later on)
    down = _produce(c.node(leader).bootstrap, topic, [f"down-{i}" for i in range(20)], 12,
                    retries=0)
    delivered = {v: r for v, r in down.items() if isinstance(r, tuple)}
    assert not delivered, f"acknowledged with 2 of 3 nodes down: {delivered}"
    codes = {r.name() for r in down.values()}
    allowed = {"NOT_ENOUGH_REPLICAS", "NOT_ENOUGH_REPLICAS_AFTER_APPEND", "_MSG_TIMED_OUT",
               "REQUEST_TIMED_OUT", "_TIMED_OUT", "_TRANSPORT"}
    assert codes <= allowed, codes
    print(f"\n[replication] 2 of 3 nodes down: every acks=all produce failed with {sorted(codes)}")

    c.start_nodes(others)
    # The ISR never shrank (no quorum): also wait until the restarted brokers have
    # registered again and are live, or placing the next topic on 3 of them races it.
    c.wait_for("three live brokers", lambda: (len(b := AdminClient(rdkafka_conf(c.bootstrap)).list_topics(timeout=5).brokers) == 3, sorted(b)), 60)
    wait_full_isr(c, topic, 60)
    ok2 = _produce(c.bootstrap, topic, [f"after-{i}" for i in range(20)], 30)
    assert all(isinstance(r, tuple) for r in ok2.values()), ok2

    # One node down, min.insync.replicas=3: the quorum is alive and the ISR shrinks to 2,
    # so the leader refuses at once with NOT_ENOUGH_REPLICAS (no retries here).
    t3 = unique_topic("min-isr3")
    create_topic(c, t3, 1, {"min.insync.replicas": "3"})
    victim = next(i for i in (1, 2, 3) if i != c.leader_of(t3, 0))
    c.kill9(victim)
    wait_out_of_isr(c, t3, victim, SESSION_S + 15)
    r3 = _produce(c.live_bootstrap(), t3, ["isr3-0"], 12, retries=0)
    err = r3["isr3-0"]
    assert isinstance(err, KafkaError) and err.code() == KafkaError.NOT_ENOUGH_REPLICAS, err
    print(f"[replication] 1 of 3 down, min.insync.replicas=3: {err.name()}")
    c.restart(victim)
    wait_full_isr(c, t3, 60)

    # Every acknowledged record of the first topic is there, at its offset.
    read = consume(c, topic, tmp_path / "read.txt")
    at = {(p, off): v for p, off, v in read}
    for v, (p, off) in {**ok1, **ok2}.items():
        assert at.get((p, off)) == v, (v, p, off, at.get((p, off)))
    values = [v for _, _, v in read]
    dups = {v for v in {**ok1, **ok2} if values.count(v) != 1}
    assert not dups, f"acknowledged records not exactly once in the log: {sorted(dups)}"
    print(f"[replication] after the restarts: {len(ok1) + len(ok2)} acked records all read back "
          f"({len(read)} in the log; {len(read) - len(ok1) - len(ok2)} unacknowledged ones "
          f"made it in after all)")
