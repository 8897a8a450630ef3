"""A network partition isolating a partition leader, in Linux network namespaces.

Three nodes (broker+controller each), every node in its own namespace with its own
address on a bridge (``netns.Netns``; clients run in the root namespace). Topic: 3
partitions, replication factor 3, min.insync.replicas=2.

  1. ``java/ReplicatedLog.java`` produces (idempotent, acks=all) to every partition from
     the root namespace; a second one, started *inside the namespace of a partition
     leader* with only that leader as bootstrap, produces to the partitions that node
     leads (so it stays on the isolated side). Two cases: that leader is not the
     metadata quorum leader, or it is (then the controller fails over too).
  2. The leader's veth goes down: it reaches no node and no client, nor they it. On the
     isolated side no acks=all write sent after that is acknowledged: the followers are
     gone and the ISR cannot shrink without the metadata quorum, so those sends time out
     (they must all end in the producer's failure log). On the majority side the old
     leader is fenced after the session timeout, a new leader is elected and the
     root-namespace producer's acks on those partitions resume. The failover time (from
     the isolation to the first ack after the gap, per partition) is printed, not
     asserted.
  3. Heal: the old leader rejoins every ISR (it truncates the divergent tail the
     isolated producer left in its log).
  4. The log is read back and checked with test_replication's checker for both
     producers: every acknowledged record exactly once, in order, at its acked offset,
     dense offsets, no duplicates; nothing the isolated producer sent after the
     isolation began is visible (what it sent before may be, acked or not: written
     and replicated before the cut). A reader inside the isolated namespace, during
     the partition, got only records that are in the final log at the same offsets
     (the isolated leader's high watermark does not move). Then the node that led
     during the partition stops gracefully, so the old leader (first in assignment
     order) leads again, and a second read served by it must be identical.

Skipped only when network namespaces cannot be created here (not root, no iproute2).
Kind from COMPAT_BROKER: sluice, or a 3-node Apache Kafka KRaft cluster (same test).
"""

from __future__ import annotations

import subprocess
import threading
import time
import uuid

import pytest

import brokers
import netns
from cluster import Cluster, cluster_kind
from test_replication import (check_log, consume, create_topic, java, read_acked,
                              wait_full_isr, wait_out_of_isr)
from util import unique_topic

KIND = cluster_kind()

PARTITIONS = 3
SESSION_S = 6.0          # cluster.FAST_FAILURE broker.session.timeout.ms
# The isolated producer: sends fail after ISO_DELIVERY_MS; it stops sending
# ISO_SEND_S after the cut, so every send it made has failed or been acknowledged
# by ISO_SEND_S + ISO_DELIVERY_MS (well past the session timeout), when we heal.
ISO_DELIVERY_MS = 8000
ISO_REQUEST_MS = 3000
ISO_SEND_S = 7.0


@pytest.fixture
def net():
    reason = netns.available()
    if reason is not None:
        pytest.skip(f"network namespaces unavailable: {reason}")
    n = netns.Netns(3)
    yield n
    n.close()


@pytest.fixture
def cluster(net, tmp_path):
    c = Cluster(KIND, tmp_path / "cluster", netns=net, overrides=brokers.overrides_from_env())
    t0 = time.monotonic()
    try:
        c.start()
        print(f"\n[partition] {KIND} cluster {c.bootstrap} (namespaces {net.tag}-n1..3, "
              f"bridge {net.bridge}) ready in {time.monotonic() - t0:.1f}s")
        yield c
    finally:
        c.stop()


def read_sent(path) -> dict[str, int]:
    """value -> send_ms from a producer's sent= log (a cut last line is skipped)."""
    out = {}
    if path.exists():
        for line in path.read_text().splitlines():
            parts = line.split(" ")
            if len(parts) == 3:
                out[parts[1]] = int(parts[2])
    return out


def read_failed(path) -> dict[str, str]:
    out = {}
    if path.exists():
        for line in path.read_text().splitlines():
            parts = line.split(" ", 3)
            if len(parts) == 4:
                out[parts[2]] = parts[3]
    return out


def stop_producer(proc: subprocess.Popen, stop_file, out_path, timeout_s: float) -> str:
    stop_file.touch()
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    text = out_path.read_text()
    assert proc.returncode == 0 and "RESULT" in text, \
        f"producer failed ({proc.returncode}):\n{text[-4000:]}"
    return next(line for line in text.splitlines() if line.startswith("RESULT"))


def failover_ms(acked, partition: int, t_cut_ms: float) -> int | None:
    """From the cut to the end of the longest gap between acks on ``partition`` that
    ends after the cut (the first ack from the new leader)."""
    ts = sorted(ms for p, _, _, ms in acked if p == partition)
    best = None
    for a, b in zip(ts, ts[1:]):
        if b > t_cut_ms and (best is None or b - a > best[1] - best[0]):
            best = (a, b)
    return None if best is None else int(best[1] - t_cut_ms)


@pytest.mark.parametrize("target", ["partition-leader", "quorum-leader"])
def test_partitioned_leader_acks_nothing_and_loses_nothing(cluster, net, tmp_path, target):
    """``target``: cut off a partition leader that is not the metadata quorum leader,
    or the quorum leader itself (it leads a partition too: leaders are spread), whose
    controller role then fails over as well."""
    c = cluster
    topic = unique_topic("partition")
    create_topic(c, topic, PARTITIONS, {"min.insync.replicas": "2"})
    d0 = c.describe(topic)
    quorum, quorum_epoch = quorum0 = c.quorum_state()
    leaders = {i["leader"] for i in d0.values()}
    if target == "quorum-leader":
        assert quorum in leaders, f"quorum leader {quorum} leads no partition: {d0}"
        victim = quorum
    else:
        victim = min(leaders - {quorum})
    led = sorted(p for p, i in d0.items() if i["leader"] == victim)
    t_start = time.monotonic()
    report = [f"kind={KIND} topic={topic} target={target}: isolated node {victim} (leads "
              f"partitions {led}; metadata quorum leader {quorum})"]

    def say(line: str) -> None:
        report.append(line)
        print(f"[partition] {time.monotonic() - t_start:6.1f}s {line}", flush=True)

    run_id, iso_id = uuid.uuid4().hex[:8], uuid.uuid4().hex[:8]
    f = {k: tmp_path / f"{k}.txt" for k in
         ("acked", "failed", "stop", "out", "iso_acked", "iso_failed", "iso_sent", "iso_stop",
          "iso_out")}
    with open(f["out"], "w") as out:
        producer = subprocess.Popen(
            java("produce", c.bootstrap, topic, str(PARTITIONS), "300", "300", str(f["stop"]),
                 str(f["acked"]), str(f["failed"]), run_id),
            stdout=out, stderr=subprocess.STDOUT)
    with open(f["iso_out"], "w") as out:
        iso = subprocess.Popen(
            net.exec_prefix(victim) + java(
                "produce", c.node(victim).bootstrap, topic, str(PARTITIONS), "300", "300",
                str(f["iso_stop"]), str(f["iso_acked"]), str(f["iso_failed"]), iso_id,
                "only=" + ",".join(map(str, led)), f"sent={f['iso_sent']}",
                f"delivery.timeout.ms={ISO_DELIVERY_MS}", f"request.timeout.ms={ISO_REQUEST_MS}"),
            stdout=out, stderr=subprocess.STDOUT)
    try:
        def warmed_up():
            n = [len(read_acked(f[k])) if f[k].exists() else 0 for k in ("acked", "iso_acked")]
            return n[0] >= 200 and n[1] >= 50, n
        c.wait_for("both producers' first acks", warmed_up, 90)
        say("both producers acknowledged records; cutting node "
            f"{victim} ({c.node(victim).bootstrap}) off")

        # -- the partition ------------------------------------------------------------
        t_cut = time.monotonic()
        c.isolate(victim)
        t_cut_ms = time.time() * 1000  # every send stamped later began after the cut
        # The isolated producer stops sending ISO_SEND_S after the cut, while the
        # majority side is watched.
        stop_iso = threading.Timer(ISO_SEND_S, f["iso_stop"].touch)
        stop_iso.start()

        def moved():
            d = c.describe(topic)
            return all(d[p]["leader"] not in (victim, -1) for p in led), d
        d = c.wait_for(f"new leaders for partitions {led} on the majority side", moved,
                       SESSION_S + 20)
        t_elected = time.monotonic()
        say(f"majority side: new leaders {[d[p]['leader'] for p in led]} for partitions {led} "
            f"{t_elected - t_cut:.1f}s after the cut")
        wait_out_of_isr(c, topic, victim, SESSION_S + 15)
        say(f"node {victim} out of every ISR {time.monotonic() - t_cut:.1f}s after the cut")

        # The root-namespace producer's acks resume on the moved partitions.
        def resumed():
            acks = [(p, ms) for p, _, _, ms in read_acked(f["acked"])]
            got = {p: any(pp == p and ms > t_cut_ms + 1000 * (t_elected - t_cut)
                          for pp, ms in acks) for p in led}
            return all(got.values()), got
        c.wait_for("the root producer's acks on the moved partitions", resumed, 30)
        say(f"root producer acknowledged again on {led} {time.monotonic() - t_cut:.1f}s "
            "after the cut")

        # The isolated side: every pending send runs out. Meanwhile a reader inside the
        # namespace reads the isolated leader's partitions up to what it offers
        # (its high watermark, which cannot advance without the followers).
        stop_iso.join()
        iso_read_path = tmp_path / "iso_read.txt"
        iso_reader = subprocess.Popen(
            net.exec_prefix(victim) + java("consume", c.node(victim).bootstrap, topic,
                                           str(iso_read_path), "40",
                                           "only=" + ",".join(map(str, led))),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        iso_result = stop_producer(iso, f["iso_stop"], f["iso_out"],
                                   ISO_DELIVERY_MS / 1000 + 30)
        say(f"isolated producer done {time.monotonic() - t_cut:.1f}s after the cut: {iso_result}")

        sent = read_sent(f["iso_sent"])
        iso_acked = read_acked(f["iso_acked"])
        iso_failed = read_failed(f["iso_failed"])
        after_cut = {v for v, ms in sent.items() if ms >= t_cut_ms}
        assert after_cut, "the isolated producer sent nothing after the cut"
        acked_after = [(p, off, v) for p, off, v, _ in iso_acked if v in after_cut]
        assert not acked_after, \
            f"the isolated leader acknowledged {len(acked_after)} acks=all writes sent after " \
            f"the cut: {acked_after[:10]}"
        unresolved = sorted(after_cut - set(iso_failed))
        assert not unresolved, f"{len(unresolved)} sends after the cut neither acked nor failed: " \
                               f"{unresolved[:10]}"
        iso_read_out, _ = iso_reader.communicate(timeout=90)
        assert iso_reader.returncode == 0 and "RESULT" in iso_read_out, \
            f"the read on the isolated side failed:\n{iso_read_out[-3000:]}"
        iso_read = [(int(p), int(off), v) for p, off, v in
                    (line.split(" ") for line in iso_read_path.read_text().splitlines())]
        seen_late = [v for _, _, v in iso_read if sent.get(v, 0) >= t_cut_ms]
        assert not seen_late, f"the isolated leader serves {len(seen_late)} records sent " \
                              f"after the cut to readers: {seen_late[:10]}"
        errors = sorted({e.split(":")[0] for v, e in iso_failed.items() if v in after_cut})
        say(f"isolated side: {len(after_cut)} sends after the cut, none acknowledged, all "
            f"failed ({', '.join(errors)})")

        # -- heal ----------------------------------------------------------------------
        t_heal = time.monotonic()
        c.heal(victim)
        say(f"healed after {t_heal - t_cut:.1f}s isolated")
        wait_full_isr(c, topic, 60)
        t_isr = time.monotonic()
        time.sleep(2)
        quorum_after = c.quorum_state()
        say(f"node {victim} back in every ISR {t_isr - t_heal:.1f}s after healing; metadata "
            f"quorum (leader, epoch) {quorum0} before the cut, {quorum_after} after healing")
        # Pre-vote (KIP-996): the cut-off node cannot win a pre-vote, so it does not
        # raise its epoch (one more per election timeout otherwise: dozens by now) and
        # does not depose the majority's leader when it comes back. (Read before the
        # cut and after healing: during the cut Kafka's brokers may forward
        # DescribeQuorum to the cut-off controller.)
        if target == "partition-leader":
            assert quorum_after == quorum0, \
                f"healing node {victim} changed the metadata quorum: {quorum0} -> {quorum_after}"
        else:
            assert quorum_after[0] != victim and quorum_after[1] - quorum_epoch <= 3, \
                f"the majority's elections, then healing node {victim}: {quorum0} -> {quorum_after}"
    except BaseException:
        for proc in (iso, producer):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        raise
    result = stop_producer(producer, f["stop"], f["out"], 150)
    say(f"root producer: {result}")
    acked = read_acked(f["acked"])
    failed = read_failed(f["failed"])
    assert not failed, f"{len(failed)} sends of the majority-side producer failed: " \
                       f"{list(failed.items())[:10]}"
    for p in led:
        say(f"failover of partition {p}: first ack from the new leader "
            f"{failover_ms(acked, p, t_cut_ms)} ms after the cut")

    # -- read back ------------------------------------------------------------------------
    all_acked = acked + iso_acked
    read1 = consume(c, topic, tmp_path / "read1.txt")
    counts = check_log(all_acked, read1, {run_id, iso_id}, PARTITIONS)
    iso_acked_values = {v for _, _, v, _ in iso_acked}
    visible_iso = [v for _, _, v in read1 if v.startswith(iso_id + "-")]
    late = [v for v in visible_iso if v not in iso_acked_values and sent.get(v, 0) >= t_cut_ms]
    assert not late, f"{len(late)} unacknowledged records the isolated producer sent after " \
                     f"the cut are in the log: {late[:10]}"
    # What the isolated leader served during the partition was committed: the same
    # records at the same offsets in the final log.
    final_at = {(p, off): v for p, off, v in read1}
    differ = [(p, off, v, final_at.get((p, off))) for p, off, v in iso_read
              if final_at.get((p, off)) != v]
    assert not differ, f"{len(differ)} records read on the isolated side are not in the " \
                       f"final log at their offsets (offset, isolated, final): {differ[:10]}"
    say(f"isolated-side read during the partition: {len(iso_read)} records, all in the "
        "final log at their offsets")
    say(f"read 1: {counts}; isolated producer: {len(iso_acked)} acked (all sent before the "
        f"cut), {len(visible_iso)} visible, {len(visible_iso) - len(iso_acked)} of them "
        "unacknowledged (sent before the cut)")

    # Second read served by the old leader: stop the leader of the partition era
    # gracefully; the old leader comes first in assignment order and takes over.
    p0 = led[0]
    during = c.leader_of(topic, p0)
    assert during != victim
    c.sigterm(during)
    c.wait_for(f"node {victim} leading partition {p0} again",
               lambda: ((l := c.leader_of(topic, p0)) == victim, l), SESSION_S + 20)
    read2 = consume(c, topic, tmp_path / "read2.txt")
    check_log(all_acked, read2, {run_id, iso_id}, PARTITIONS)
    assert sorted(read2) == sorted(read1), \
        "the read served by the formerly isolated leader differs from the first"
    say(f"read 2 (partition {p0} led by node {victim} again, node {during} stopped): "
        "identical")

    (tmp_path / "failover.txt").write_text("\n".join(report) + "\n")
    print("\n[partition] " + "\n[partition] ".join(report), flush=True)
