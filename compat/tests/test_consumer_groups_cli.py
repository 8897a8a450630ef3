"""Kafka's group CLI tools against the broker: ConsoleConsumer with --group, then
kafka-consumer-groups (ConsumerGroupCommand) --list, --describe (offsets and lag),
--reset-offsets --to-earliest --execute, and --delete."""

import re

from confluent_kafka import Producer

from util import describe_proc, rdkafka_conf

TOOLS = "org.apache.kafka.tools"
GROUP_CMD = f"{TOOLS}.consumer.group.ConsumerGroupCommand"
PARTITIONS = 3


def produce(bootstrap, topic, values):
    p = Producer(rdkafka_conf(bootstrap))
    for i, v in enumerate(values):
        p.produce(topic, key=f"k{i}", value=v)
    assert p.flush(30) == 0


def run_ok(run_java, main, *args, timeout=90):
    res = run_java(main, *args, timeout=timeout)
    assert res.returncode == 0, describe_proc(res)
    return res


def console_consume(run_java, broker, topic, group, n, *extra):
    res = run_ok(run_java, f"{TOOLS}.consumer.ConsoleConsumer", "--bootstrap-server", broker.bootstrap,
                 "--topic", topic, "--group", group, "--max-messages", str(n), "--timeout-ms", "20000",
                 "--consumer-property", "session.timeout.ms=6000",
                 "--consumer-property", "heartbeat.interval.ms=1000", *extra)
    # Only the record lines (the tool may print deprecation notes on stdout too).
    return [l for l in res.stdout.splitlines() if re.fullmatch(r"[ab]\d+", l)]


def describe(run_java, broker, group):
    """{partition: (current, end, lag)} from --describe."""
    res = run_ok(run_java, GROUP_CMD, "--bootstrap-server", broker.bootstrap, "--describe", "--group", group)
    rows = {}
    for line in res.stdout.splitlines():
        cols = line.split()
        if len(cols) >= 6 and cols[0] == group:
            rows[int(cols[2])] = tuple(-1 if c == "-" else int(c) for c in cols[3:6])
    return rows, res


def test_console_consumer_and_consumer_groups_command(broker, create_topic, topic, run_java):
    create_topic(topic, PARTITIONS)
    group = f"{topic}-cli"
    first = [f"a{i}" for i in range(30)]
    produce(broker.bootstrap, topic, first)

    got = console_consume(run_java, broker, topic, group, 30, "--from-beginning")
    assert sorted(got) == sorted(first)

    res = run_ok(run_java, GROUP_CMD, "--bootstrap-server", broker.bootstrap, "--list")
    assert group in res.stdout.split()

    rows, res = describe(run_java, broker, group)
    assert sorted(rows) == list(range(PARTITIONS)), describe_proc(res)
    assert sum(r[0] for r in rows.values()) == 30 and all(r[2] == 0 for r in rows.values()), res.stdout

    produce(broker.bootstrap, topic, [f"b{i}" for i in range(12)])
    rows, res = describe(run_java, broker, group)
    assert sum(r[2] for r in rows.values()) == 12, res.stdout  # lag = records not yet consumed
    assert sum(r[1] for r in rows.values()) == 42, res.stdout

    res = run_ok(run_java, GROUP_CMD, "--bootstrap-server", broker.bootstrap, "--reset-offsets",
                 "--group", group, "--topic", topic, "--to-earliest", "--execute")
    new_offsets = [int(m) for m in re.findall(rf"{re.escape(topic)}\s+\d+\s+(\d+)", res.stdout)]
    assert new_offsets == [0] * PARTITIONS, res.stdout
    rows, res = describe(run_java, broker, group)
    assert all(r[0] == 0 for r in rows.values()) and sum(r[2] for r in rows.values()) == 42, res.stdout

    # The group resumes from the reset offsets: everything again, without --from-beginning.
    got = console_consume(run_java, broker, topic, group, 42)
    assert sorted(got) == sorted(first + [f"b{i}" for i in range(12)])

    res = run_ok(run_java, GROUP_CMD, "--bootstrap-server", broker.bootstrap, "--delete", "--group", group)
    assert "successful" in res.stdout, res.stdout
    res = run_ok(run_java, GROUP_CMD, "--bootstrap-server", broker.bootstrap, "--list")
    assert group not in res.stdout.split()
