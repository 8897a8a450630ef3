"""Topic configs at run time: Kafka's ConfigCommand (kafka-configs) --alter / --describe,
validation errors, and message.timestamp.type=LogAppendTime read by librdkafka and by
the Java ConsoleConsumer. Topic-level configs only, so other tests are unaffected."""

from __future__ import annotations

import re
import time

from confluent_kafka import (OFFSET_BEGINNING, TIMESTAMP_CREATE_TIME, TIMESTAMP_LOG_APPEND_TIME,
                             Consumer, Producer, TopicPartition)

from util import describe_proc, rdkafka_conf

CONFIG_COMMAND = "org.apache.kafka.tools.ConfigCommand"


def configs(run_java, bootstrap, topic, *action):
    return run_java(CONFIG_COMMAND, "--bootstrap-server", bootstrap, "--entity-type", "topics",
                    "--entity-name", topic, *action)


def dynamic_configs(run_java, bootstrap, topic) -> dict[str, str]:
    """key -> value of the topic's dynamic configs, from ``kafka-configs --describe``."""
    res = configs(run_java, bootstrap, topic, "--describe")
    assert res.returncode == 0, describe_proc(res)
    assert f"Dynamic configs for topic {topic} are:" in res.stdout, describe_proc(res)
    return dict(re.findall(r"^\s+([a-z.]+)=(\S*) sensitive=false", res.stdout, re.M))


def test_config_command_alter_and_describe(broker, topic, create_topic, run_java):
    create_topic(topic, config={"retention.ms": "3600000"})
    bs = broker.bootstrap

    res = configs(run_java, bs, topic, "--alter", "--add-config",
                  "retention.bytes=10485760,cleanup.policy=[delete,compact],segment.ms=600000")
    assert res.returncode == 0, describe_proc(res)
    assert f"Completed updating config for topic {topic}." in res.stdout

    # --describe --all shows every config with its sources and synonyms.
    res = configs(run_java, bs, topic, "--describe", "--all")
    assert res.returncode == 0, describe_proc(res)
    dynamic = dict(re.findall(r"^\s+([a-z.]+)=(\S*) sensitive=false synonyms=\{DYNAMIC_TOPIC_CONFIG:",
                              res.stdout, re.M))
    assert dynamic == {"retention.ms": "3600000", "retention.bytes": "10485760",
                       "cleanup.policy": "delete,compact", "segment.ms": "600000"}, res.stdout
    assert re.search(r"retention\.bytes=10485760 sensitive=false synonyms=\{"
                     r"DYNAMIC_TOPIC_CONFIG:retention\.bytes=10485760, "
                     r"DEFAULT_CONFIG:log\.retention\.bytes=-1\}", res.stdout), res.stdout
    assert re.search(r"max\.message\.bytes=1048588 sensitive=false synonyms=\{"
                     r"DEFAULT_CONFIG:message\.max\.bytes=1048588\}", res.stdout), res.stdout

    res = configs(run_java, bs, topic, "--alter", "--delete-config", "retention.ms,segment.ms")
    assert res.returncode == 0, describe_proc(res)

    # A bad value is refused with Kafka's message, and nothing changes.
    res = configs(run_java, bs, topic, "--alter", "--add-config", "retention.ms=soon")
    assert res.returncode != 0
    assert "Invalid value soon for configuration retention.ms" in res.stdout + res.stderr, \
        describe_proc(res)
    # (segment.bytes below 1 MiB and other bad values: protocol-tests/log_admin.rs.)
    assert dynamic_configs(run_java, bs, topic) == {
        "retention.bytes": "10485760", "cleanup.policy": "delete,compact"}


def test_log_append_time_read_by_clients(broker, topic, create_topic, run_java):
    create_topic(topic, config={"message.timestamp.type": "LogAppendTime"})
    bs = broker.bootstrap
    before_ms = int(time.time() * 1000)
    p = Producer(rdkafka_conf(bs))
    for i in range(5):
        p.produce(topic, value=f"v{i}".encode(), partition=0, timestamp=1_000 + i)
    assert p.flush(30) == 0
    after_ms = int(time.time() * 1000)

    c = Consumer(rdkafka_conf(bs, **{"group.id": "compat-lat", "enable.auto.commit": False}))
    try:
        c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        got = []
        deadline = time.monotonic() + 30
        while len(got) < 5 and time.monotonic() < deadline:
            m = c.poll(1)
            if m is not None and m.error() is None:
                got.append(m.timestamp())
    finally:
        c.close()
    assert len(got) == 5
    for kind, ts in got:
        assert kind == TIMESTAMP_LOG_APPEND_TIME
        assert before_ms - 1000 <= ts <= after_ms + 1000, (ts, before_ms, after_ms)

    res = run_java("org.apache.kafka.tools.consumer.ConsoleConsumer", "--bootstrap-server", bs,
                   "--topic", topic, "--partition", "0", "--offset", "0", "--max-messages", "5",
                   "--timeout-ms", "30000", "--formatter-property", "print.timestamp=true")
    assert res.returncode == 0, describe_proc(res)
    stamps = re.findall(r"^LogAppendTime:(\d+)\s+v\d$", res.stdout, re.M)
    assert len(stamps) == 5, describe_proc(res)
    assert all(before_ms - 1000 <= int(s) <= after_ms + 1000 for s in stamps), stamps

    # Switching back to CreateTime applies to new batches at once.
    res = configs(run_java, bs, topic, "--alter", "--delete-config", "message.timestamp.type")
    assert res.returncode == 0, describe_proc(res)
    p.produce(topic, value=b"late", partition=0, timestamp=1_234)
    assert p.flush(30) == 0
    c = Consumer(rdkafka_conf(bs, **{"group.id": "compat-lat", "enable.auto.commit": False}))
    try:
        c.assign([TopicPartition(topic, 0, 5)])
        m = None
        deadline = time.monotonic() + 30
        while m is None and time.monotonic() < deadline:
            m = c.poll(1)
            if m is not None and m.error() is not None:
                m = None
        assert m is not None and m.value() == b"late"
        assert m.timestamp() == (TIMESTAMP_CREATE_TIME, 1_234)
    finally:
        c.close()
