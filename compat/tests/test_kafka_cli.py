"""Kafka's own CLI tools (kafka-tools jar, called by class name): TopicCommand,
ConsoleProducer, ConsoleConsumer, GetOffsetShell.

Notes: in Kafka 4.x the tools live in org.apache.kafka.tools (ConsoleConsumer in
.tools.consumer); `--property` still works but is deprecated in favour of
`--reader-property` (producer) / `--formatter-property` (consumer), used here.
ConsoleConsumer with --partition uses assign() (it sets a random group.id but does
not commit)."""

import re

from util import describe_proc

TOOLS = "org.apache.kafka.tools"


def tool(run_java, cls, *args, input=None, timeout=120):
    res = run_java(f"{TOOLS}.{cls}", *args, input=input, timeout=timeout)
    assert res.returncode == 0, describe_proc(res)
    return res


def test_topic_command_create_list_describe(broker, topic, run_java):
    b = ["--bootstrap-server", broker.bootstrap]
    res = tool(run_java, "TopicCommand", *b, "--create", "--topic", topic,
               "--partitions", "3", "--replication-factor", "1")
    assert res.stdout.strip() == f"Created topic {topic}."

    res = tool(run_java, "TopicCommand", *b, "--list")
    assert topic in res.stdout.split()

    res = tool(run_java, "TopicCommand", *b, "--describe", "--topic", topic)
    lines = [l.strip() for l in res.stdout.strip().splitlines()]
    head = dict(re.findall(r"(\w+): (\S*)", lines[0]))
    assert head["Topic"] == topic
    assert head["PartitionCount"] == "3"
    assert head["ReplicationFactor"] == "1"
    assert len(head["TopicId"]) == 22  # base64 of a 16-byte UUID
    parts = [dict(re.findall(r"(\w+): (\S*)", l)) for l in lines[1:]]
    assert [p["Partition"] for p in parts] == ["0", "1", "2"]
    node = str(broker.node_id)
    for p in parts:
        assert (p["Topic"], p["Leader"], p["Replicas"], p["Isr"]) == (topic, node, node, node), p


def test_topic_command_describe_pages_partitions(broker, topic, create_topic, run_java):
    """`--describe` goes through DescribeTopicPartitions (KIP-966) and follows its
    cursor: two partitions a response still lists all seven of two topics once each."""
    other = f"{topic}-b"
    create_topic(topic, partitions=5)
    create_topic(other, partitions=2)
    res = tool(run_java, "TopicCommand", "--bootstrap-server", broker.bootstrap, "--describe",
               "--topic", f"{topic}.*", "--partition-size-limit-per-response", "2")
    rows = [dict(re.findall(r"(\w+): (\S*)", l)) for l in res.stdout.splitlines() if "Partition:" in l]
    assert sorted((r["Topic"], int(r["Partition"])) for r in rows) == \
        [(topic, i) for i in range(5)] + [(other, i) for i in range(2)], res.stdout
    assert all(r["Leader"] == str(broker.node_id) for r in rows), res.stdout


def test_console_producer_consumer_and_offsets(broker, topic, create_topic, run_java):
    create_topic(topic, partitions=1)
    b = ["--bootstrap-server", broker.bootstrap]
    n = 25
    # "headers<TAB>key:value" per line (parse.headers: header list, then a tab).
    lines = [f"src:cli,n:{i}\tkey{i}:value {i} {'z' * i}" for i in range(n)]
    tool(run_java, "ConsoleProducer", *b, "--topic", topic,
         "--reader-property", "parse.key=true", "--reader-property", "key.separator=:",
         "--reader-property", "parse.headers=true",
         input="\n".join(lines) + "\n")

    res = tool(run_java, "consumer.ConsoleConsumer", *b, "--topic", topic,
               "--partition", "0", "--offset", "0", "--max-messages", str(n),
               "--timeout-ms", "30000",
               "--formatter-property", "print.key=true",
               "--formatter-property", "key.separator=:",
               "--formatter-property", "print.offset=true",
               "--formatter-property", "print.headers=true")
    assert res.stdout.splitlines() == [
        f"Offset:{i}:src:cli,n:{i}:key{i}:value {i} {'z' * i}" for i in range(n)]
    assert f"Processed a total of {n} messages" in res.stderr

    # Plain key/value view, from an offset in the middle.
    res = tool(run_java, "consumer.ConsoleConsumer", *b, "--topic", topic,
               "--partition", "0", "--offset", "20", "--max-messages", "5",
               "--timeout-ms", "30000", "--formatter-property", "print.key=true",
               "--formatter-property", "key.separator=:")
    assert res.stdout.splitlines() == [f"key{i}:value {i} {'z' * i}" for i in range(20, n)]

    res = tool(run_java, "GetOffsetShell", *b, "--topic", topic)  # latest
    assert res.stdout.split() == [f"{topic}:0:{n}"]
    res = tool(run_java, "GetOffsetShell", *b, "--topic", topic, "--time", "-2")  # earliest
    assert res.stdout.split() == [f"{topic}:0:0"]
