"""A dynamic controller quorum (Kafka 4's KIP-853), driven by Kafka's own
``kafka-metadata-quorum`` (org.apache.kafka.tools.MetadataQuorumCommand), on sluice or
real Kafka (``COMPAT_BROKER=kafka``; cluster.Cluster with ``dynamic=True``).

Nodes 1-3 are controllers, 4 and 5 brokers; every node lists the controllers in
``controller.quorum.bootstrap.servers``. Controller 1 starts as the only voter
(``--standalone``), 2 and 3 as observers (``--no-initial-controllers``). Checked:
``describe --replication`` shows 1 leading and 2, 3 observing; ``add-controller``
(its ``--command-config`` is the controller's properties; the tool reads the
directory id from its meta.properties) makes 2 and then 3 voters, a second
``add-controller`` of 2 fails with DUPLICATE_VOTER and one of a node that is not an
observer with REQUEST_TIMED_OUT, both at once; ``describe --status`` lists the three
voters with their directory ids; data flows; the quorum leader is killed and the other
two elect and commit metadata (a topic is created); ``remove-controller`` with a wrong
directory id fails with VOTER_NOT_FOUND, with the right one leaves two voters, and the
quorum still commits.
"""

from __future__ import annotations

import re
import subprocess
import time

import pytest

import brokers
from cluster import Cluster, cluster_kind, quorum_replication, quorum_tool
from util import create_topic, produce_acked, read_values, unique_topic

ROLES = {1: "controller", 2: "controller", 3: "controller", 4: "broker", 5: "broker"}
BROKERS = {4, 5}


@pytest.fixture
def cluster(tmp_path):
    c = Cluster(cluster_kind(), tmp_path / "cluster", size=5, roles=ROLES,
                overrides=brokers.overrides_from_env(), dynamic=True)
    c.start()
    yield c
    c.stop()


def voters(rows: dict[int, tuple[str, str]]) -> set[int]:
    return {i for i, (_, role) in rows.items() if role != "Observer"}


def directory_id(node) -> str:
    """directory.id from the node's meta.properties (what add-controller reads)."""
    text = (node.data_dir / "meta.properties").read_text()
    m = re.search(r"^directory\.id=(\S+)$", text, re.M)
    assert m, text
    return m.group(1)


def add_controller(c: Cluster, bootstrap: str, i: int) -> subprocess.CompletedProcess:
    return quorum_tool(bootstrap, "add-controller", config=c.node(i).controller_properties())


def test_controllers_added_and_removed_with_kafka_metadata_quorum(cluster):
    c = cluster
    b4, b5 = c.node(4).bootstrap, c.node(5).bootstrap
    dirs = {i: directory_id(c.node(i)) for i in (1, 2, 3)}
    assert len(set(dirs.values())) == 3, dirs

    rows = c.wait_for("1 the only voter, 2 and 3 observing", lambda: (
        (r := quorum_replication(b4)) and voters(r) == {1} and {2, 3} <= set(r), r), timeout_s=60)
    print(f"before: {rows}")
    assert rows[1] == (dirs[1], "Leader") and rows[2] == (dirs[2], "Observer"), rows

    # add-controller 2 (through a broker, which carries it to the quorum leader).
    res = c.wait_for("add-controller 2", lambda: ((r := add_controller(c, b4, 2)).returncode == 0,
                                                 r.stdout + r.stderr), timeout_s=60)
    assert f"Added controller 2 with directory id {dirs[2]}" in res, res
    c.wait_for("2 votes", lambda: (voters(r := quorum_replication(b5)) == {1, 2}, r), timeout_s=30)

    # Refusals, each at once: 2 again is a duplicate; a node that does not observe the
    # quorum (a broker's id, its properties made a controller's) cannot be added.
    t0 = time.monotonic()
    dup = add_controller(c, b4, 2)
    assert dup.returncode != 0 and "DuplicateVoterException" in dup.stdout + dup.stderr, dup.stdout + dup.stderr
    props = c.node(3).controller_properties().read_text()
    ghost = c.work_dir / "ghost.properties"
    ghost.write_text(re.sub(r"(?m)^node\.id=.*$", "node.id=42", props))
    res = quorum_tool(b4, "add-controller", config=ghost)
    assert res.returncode != 0 and "TimeoutException" in res.stdout + res.stderr, res.stdout + res.stderr
    assert time.monotonic() - t0 < 60, "refused without waiting for a client timeout"

    res = c.wait_for("add-controller 3", lambda: ((r := add_controller(c, b5, 3)).returncode == 0,
                                                 r.stdout + r.stderr), timeout_s=60)
    rows = c.wait_for("three voters", lambda: (voters(r := quorum_replication(b4)) == {1, 2, 3}, r), timeout_s=30)
    print(f"after adding: {rows}")
    assert {i: rows[i][0] for i in (1, 2, 3)} == dirs, rows
    status = quorum_tool(b5, "describe", "--status")
    assert status.returncode == 0, status.stdout + status.stderr
    current = re.search(r"CurrentVoters:\s*(\[.*\])", status.stdout).group(1)
    for i in (1, 2, 3):
        assert f'"id": {i}, "directoryId": "{dirs[i]}"' in current, status.stdout

    # Data flows through the brokers.
    t = unique_topic("dyn")
    create_topic(b4, t, 2, 2)
    produce_acked(b5, t, [f"a-{i}" for i in range(200)])
    assert sorted(read_values(b4, t, 2, 200)) == sorted(f"a-{i}" for i in range(200))

    # The quorum leader dies: the other two voters elect and commit.
    leader, new_leader, t2 = c.kill_quorum_leader(b4, "dyn-after")
    produce_acked(b5, t2, [f"b-{i}" for i in range(50)])
    assert sorted(read_values(b4, t2, 2, 50)) == sorted(f"b-{i}" for i in range(50))
    c.restart(leader)

    # remove-controller: the wrong directory id is refused; the right one leaves two voters.
    gone = next(i for i in (1, 2, 3) if i not in (new_leader,))
    wrong = dirs[next(i for i in (1, 2, 3) if i != gone)]
    res = quorum_tool(b4, "remove-controller", "--controller-id", str(gone), "--controller-directory-id", wrong)
    assert res.returncode != 0 and "VoterNotFoundException" in res.stdout + res.stderr, res.stdout + res.stderr
    res = c.wait_for(f"remove-controller {gone}", lambda: (
        (r := quorum_tool(b4, "remove-controller", "--controller-id", str(gone),
                          "--controller-directory-id", dirs[gone])).returncode == 0, r.stdout + r.stderr),
        timeout_s=60)
    assert f"Removed KRaft controller {gone} with directory id {dirs[gone]}" in res, res
    rows = c.wait_for("two voters left", lambda: (voters(r := quorum_replication(b5)) == {1, 2, 3} - {gone}, r),
                      timeout_s=30)
    print(f"after removing {gone}: {rows}")
    t3 = unique_topic("dyn-removed")
    c.wait_for("the smaller quorum commits", lambda: (create_topic(b5, t3, 1, 2) is None, None), timeout_s=60)
