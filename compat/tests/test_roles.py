"""Separate roles (``process.roles``): a controller-only node, two combined nodes and
two broker-only nodes in one cluster (sluice or Kafka KRaft, cluster.Cluster).

The voters are nodes 1-3 (1 serves no clients); 4 and 5 are brokers that only
observe the metadata quorum. Checked with real clients: the cluster lists brokers
2-5 and never places a replica on the controller-only node; Kafka's
``kafka-metadata-quorum describe --replication`` shows voters 1-3 and observers 4
and 5; a topic created through one broker-only node is served through the other;
after the quorum leader is killed, the broker-only nodes follow the new leader (a
topic created after the failover reaches them, data flows); a broker-only node
killed with SIGKILL is fenced, its leaderships move, and after a restart it is back
in the ISRs.
"""

from __future__ import annotations


import pytest
from confluent_kafka.admin import AdminClient

import brokers
from cluster import Cluster, cluster_kind, quorum_replication
from util import create_topic, produce_acked, rdkafka_conf, read_values, unique_topic

ROLES = {1: "controller", 2: "broker,controller", 3: "broker,controller", 4: "broker", 5: "broker"}
VOTERS, OBSERVERS, BROKERS = {1, 2, 3}, {4, 5}, {2, 3, 4, 5}


@pytest.fixture
def cluster(tmp_path):
    c = Cluster(cluster_kind(), tmp_path / "cluster", size=5, roles=ROLES,
                overrides=brokers.overrides_from_env())
    c.start()
    yield c
    c.stop()


def live_broker_ids(bootstrap: str) -> set[int]:
    md = AdminClient(rdkafka_conf(bootstrap)).list_topics(timeout=10)
    return set(md.brokers)


def test_controller_only_and_broker_only_nodes(cluster):
    c = cluster
    b4, b5 = c.node(4).bootstrap, c.node(5).bootstrap
    c.wait_for("brokers 2-5 listed (never the controller-only node)",
               lambda: ((ids := live_broker_ids(b4)) == BROKERS, ids))

    roles = c.wait_for("voters 1-3 and observers 4, 5 in DescribeQuorum",
                       lambda: ((r := {i: s for i, (_, s) in quorum_replication(b5).items()}) and
                                {i for i, s in r.items() if s != "Observer"} == VOTERS and
                                OBSERVERS <= {i for i, s in r.items() if s == "Observer"}, r),
                       timeout_s=60)
    print(f"quorum: {roles}")

    # Created through one broker-only node, served through the other.
    t = unique_topic("roles")
    create_topic(b4, t, 4, 3)
    d = c.wait_for("a leader for every partition", lambda: (
        (d := c.describe(t)) and all(p["leader"] in BROKERS for p in d.values()), d))
    assert all(set(p["replicas"]) <= BROKERS and len(p["replicas"]) == 3 for p in d.values()), d
    produce_acked(b5, t, [f"a-{i}" for i in range(400)])
    assert sorted(read_values(b4, t, 4, 400)) == sorted(f"a-{i}" for i in range(400))

    # Kill the quorum leader: the broker-only nodes follow whoever leads next.
    leader, _, t2 = c.kill_quorum_leader(b4, "roles-after")
    c.wait_for("the other observer sees it", lambda: (
        len((d := c.describe(t2))) == 2 and all(p["leader"] in BROKERS for p in d.values()), d))
    produce_acked(b5, t2, [f"b-{i}" for i in range(100)])
    assert sorted(read_values(b4, t2, 2, 100)) == sorted(f"b-{i}" for i in range(100))
    c.restart(leader)

    # A broker-only node dies: fenced, its leaderships move; restarted, back in every ISR.
    c.kill9(4)
    def node4_gone():
        d = c.describe(t)
        ok = 4 not in live_broker_ids(b5) and all(p["leader"] != 4 and 4 not in p["isr"] for p in d.values())
        return ok, d
    c.wait_for("node 4 fenced and led nowhere", node4_gone, timeout_s=60)
    produce_acked(b5, t, [f"c-{i}" for i in range(100)])
    c.restart(4)
    def node4_back():
        d = c.describe(t)
        return all(4 in p["isr"] for p in d.values() if 4 in p["replicas"]), d
    c.wait_for("node 4 back in every ISR it is a replica of", node4_back, timeout_s=60)
    got = read_values(b4, t, 4, 500)
    assert sorted(got) == sorted([f"a-{i}" for i in range(400)] + [f"c-{i}" for i in range(100)])
