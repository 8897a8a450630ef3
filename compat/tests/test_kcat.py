"""kcat (librdkafka, Debian's build): metadata listing, keyed produce with headers to
one partition, and consuming exactly those records back."""

import json
import subprocess

from util import describe_proc


def kcat(*args: str, input: str | None = None, timeout: float = 60) -> str:
    res = subprocess.run(["kcat", *args], input=input, capture_output=True, text=True,
                         timeout=timeout)
    assert res.returncode == 0, describe_proc(res)
    return res.stdout


def test_metadata_lists_broker_and_topic(broker, topic, create_topic):
    create_topic(topic, partitions=3)
    md = json.loads(kcat("-L", "-J", "-b", broker.bootstrap, "-t", topic))
    assert md["brokers"] == [{"id": broker.node_id, "name": broker.bootstrap}]
    assert md.get("controllerid") == broker.node_id
    [t] = md["topics"]
    assert t["topic"] == topic
    assert "error" not in t, t
    parts = sorted(t["partitions"], key=lambda p: p["partition"])
    assert [p["partition"] for p in parts] == [0, 1, 2]
    for p in parts:
        assert p["leader"] == broker.node_id, p
        assert [r["id"] for r in p["replicas"]] == [broker.node_id], p
        assert [r["id"] for r in p["isrs"]] == [broker.node_id], p

    # Listing all topics includes it too.
    all_md = json.loads(kcat("-L", "-J", "-b", broker.bootstrap))
    assert topic in {x["topic"] for x in all_md["topics"]}


def test_produce_keyed_with_headers_and_consume_back(broker, topic, create_topic):
    create_topic(topic, partitions=3)
    n = 50
    records = [(f"key-{i}", f"value {i} " + "x" * (i % 7)) for i in range(n)]
    kcat("-P", "-b", broker.bootstrap, "-t", topic, "-p", "1", "-K:",
         "-H", "origin=kcat", "-H", "trace=abc-123",
         input="".join(f"{k}:{v}\n" for k, v in records))

    # Whole topic, all partitions: everything must be in partition 1, offsets 0..n-1.
    out = kcat("-C", "-b", broker.bootstrap, "-t", topic, "-o", "beginning", "-e",
               "-f", "%p\t%o\t%k\t%s\t%h\n")
    got = sorted((line.split("\t") for line in out.splitlines()),
                 key=lambda f: int(f[1]))
    expected = [["1", str(i), k, v, "origin=kcat,trace=abc-123"]
                for i, (k, v) in enumerate(records)]
    assert got == expected

    # And reading just partition 1 from an offset in the middle.
    out = kcat("-C", "-b", broker.bootstrap, "-t", topic, "-p", "1", "-o", "40", "-e",
               "-f", "%o %k\n")
    assert out.splitlines() == [f"{i} key-{i}" for i in range(40, n)]
