"""Consumer groups with the Java client (kafka-clients 4.x, classic protocol): three
members over a 6-partition topic, joining and leaving mid-stream, with the eager range
assignor and with cooperative-sticky. Every record is consumed exactly once, and a
second run of fresh consumers resumes exactly from the committed offsets."""

import re

import pytest

from util import describe_proc, unique_topic

COUNT = 1800


def result(res) -> dict[str, int]:
    line = next((l for l in res.stdout.splitlines() if l.startswith("RESULT ")), None)
    assert line, describe_proc(res)
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", line)}


@pytest.mark.parametrize("assignor", ["range", "cooperative-sticky"])
def test_three_members_join_leave_and_resume(broker, create_topic, run_java, assignor):
    topic = unique_topic(f"java-group-{assignor}")
    group = f"{topic}-g"
    create_topic(topic, partitions=6)

    res = run_java("GroupConsume.java", broker.bootstrap, topic, group, assignor, "1", str(COUNT),
                   timeout=150)
    assert res.returncode == 0, describe_proc(res)
    r = result(res)
    assert r["distinct"] == COUNT, describe_proc(res)
    assert r["dups"] == 0, describe_proc(res)
    assert r["max_members"] == 3
    # A alone, A+B, A+B+C (A+C may finish before its generation is assigned).
    assert r["generations"] >= 3, describe_proc(res)

    # New consumers in the same group: only the new records, none of the old ones.
    res = run_java("GroupConsume.java", broker.bootstrap, topic, group, assignor, "2", str(COUNT),
                   timeout=150)
    assert res.returncode == 0, describe_proc(res)
    r = result(res)
    assert r["distinct"] == COUNT, describe_proc(res)
    assert r["reread"] == 0, describe_proc(res)
    assert r["dups"] == 0, describe_proc(res)
