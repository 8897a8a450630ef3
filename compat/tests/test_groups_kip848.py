"""KIP-848 consumer groups with the Java client (kafka-clients 4.x,
group.protocol=consumer): three members over a 6-partition topic with each
server-side assignor, one joining and one leaving mid-stream. Every record is
consumed exactly once (a partition moves only after its owner revoked it and
committed), and a second run of fresh consumers resumes exactly from the committed
offsets; kafka-consumer-groups then describes the group (ConsumerGroupDescribe and
OffsetFetch) with no lag left. Runs compat/java/GroupConsume.java in its
consumer-protocol mode."""

import re

import pytest

from util import describe_proc, unique_topic

COUNT = 1800
GROUP_CMD = "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand"


def result(res) -> dict[str, int]:
    line = next((l for l in res.stdout.splitlines() if l.startswith("RESULT ")), None)
    assert line, describe_proc(res)
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", line)}


@pytest.mark.parametrize("assignor", ["uniform", "range"])
def test_three_members_join_leave_and_resume(broker, create_topic, run_java, assignor):
    topic = unique_topic(f"java-kip848-{assignor}")
    group = f"{topic}-g"
    create_topic(topic, partitions=6)
    mode = f"consumer-{assignor}"

    res = run_java("GroupConsume.java", broker.bootstrap, topic, group, mode, "1", str(COUNT), timeout=180)
    assert res.returncode == 0, describe_proc(res)
    r = result(res)
    assert r["distinct"] == COUNT, describe_proc(res)
    assert r["dups"] == 0, describe_proc(res)
    assert r["max_members"] == 3
    # Member epochs seen in assignments: A alone, then as B and C joined.
    assert r["generations"] >= 2, describe_proc(res)

    # New consumers in the same group: only the new records, none of the old ones.
    res = run_java("GroupConsume.java", broker.bootstrap, topic, group, mode, "2", str(COUNT), timeout=180)
    assert res.returncode == 0, describe_proc(res)
    r = result(res)
    assert r["distinct"] == COUNT, describe_proc(res)
    assert r["reread"] == 0, describe_proc(res)
    assert r["dups"] == 0, describe_proc(res)

    # The group tool sees a consumer-type group with every offset committed at the end.
    res = run_java(GROUP_CMD, "--bootstrap-server", broker.bootstrap, "--describe", "--group", group, timeout=90)
    assert res.returncode == 0, describe_proc(res)
    rows = [l.split() for l in res.stdout.splitlines() if l.split()[:1] == [group]]
    assert sorted(int(r[2]) for r in rows) == list(range(6)), describe_proc(res)
    assert sum(int(r[3]) for r in rows) == 2 * COUNT, describe_proc(res)
    assert all(r[5] == "0" for r in rows), describe_proc(res)
    res = run_java(GROUP_CMD, "--bootstrap-server", broker.bootstrap, "--list", "--type", "consumer", timeout=90)
    assert res.returncode == 0 and group in res.stdout.split(), describe_proc(res)
