"""Consumer groups with the Python clients: confluent-kafka (librdkafka) and kafka-python.
Committed offsets resume a group exactly; two members split the partitions; commit
metadata comes back from OffsetFetch; a static member (group.instance.id) restarting
within its session timeout gets its partitions back without a rebalance; committed
offsets and membership survive kill -9 of the broker."""

import threading
import time

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from util import rdkafka_conf, unique_topic

PARTITIONS = 6
GROUP_CONF = {"auto.offset.reset": "earliest", "enable.auto.commit": False,
              "session.timeout.ms": 6000, "heartbeat.interval.ms": 1000}


def produce(bootstrap, topic, values):
    p = Producer(rdkafka_conf(bootstrap, **{"linger.ms": 5}))
    for i, v in enumerate(values):
        p.produce(topic, key=f"k{i}", value=v)
    assert p.flush(30) == 0


def consumer(bootstrap, group, **conf):
    return Consumer(rdkafka_conf(bootstrap, **{"group.id": group, **GROUP_CONF, **conf}))


def poll_values(consumers, want, timeout_s=40.0, all_assigned=False):
    """Poll each consumer in its own thread (librdkafka members polled in turn from one
    thread stall each other's rebalances, with Kafka too) until `want` distinct values
    are read (and, with `all_assigned`, every consumer has partitions). Each thread asks
    only its own consumer for its assignment: calling another thread's consumer from
    the loop held one member in its revoke for over 30 s now and then, against Apache
    Kafka as well."""
    got, errors = [], []
    assigned = {}
    deadline = time.monotonic() + timeout_s

    def done():
        return len(set(got)) >= want and (not all_assigned or all(assigned.get(i) for i in range(len(consumers))))

    def run(i, c):
        while not done() and time.monotonic() < deadline:
            m = c.poll(0.2)
            if all_assigned:
                assigned[i] = bool(c.assignment())
            if m is None:
                continue
            if m.error() is not None:
                errors.append(m.error())
            else:
                got.append(m.value().decode())

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(consumers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    return got


def committed(bootstrap, group, topic, timeout_s=30.0):
    """Committed offsets by partition, retrying while the coordinator is not ready yet
    (Kafka answers NOT_COORDINATOR while it loads its offsets topic after a restart)."""
    c = consumer(bootstrap, group)
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            try:
                tps = c.committed([TopicPartition(topic, p) for p in range(PARTITIONS)], timeout=10)
                return {tp.partition: tp.offset for tp in tps}
            except KafkaException as e:
                code = e.args[0].code()
                coordinator_moving = code in (KafkaError.NOT_COORDINATOR, KafkaError.COORDINATOR_NOT_AVAILABLE,
                                              KafkaError.COORDINATOR_LOAD_IN_PROGRESS)
                if not (coordinator_moving or e.args[0].retriable()) or time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
    finally:
        c.close()


def test_confluent_commit_resume_and_split(broker, create_topic, topic):
    create_topic(topic, PARTITIONS)
    values = [f"v{i}" for i in range(600)]
    produce(broker.bootstrap, topic, values)
    group = f"{topic}-g"

    c1 = consumer(broker.bootstrap, group)
    c1.subscribe([topic])
    first = poll_values([c1], 300)
    assert len(first) == 300
    c1.commit(asynchronous=False)
    c1.close()
    offsets = committed(broker.bootstrap, group, topic)
    assert sum(o for o in offsets.values() if o >= 0) == 300, offsets

    # Two members: disjoint assignments covering every partition, the rest read once.
    c2, c3 = consumer(broker.bootstrap, group), consumer(broker.bootstrap, group)
    c2.subscribe([topic])
    c3.subscribe([topic])
    rest = poll_values([c2, c3], 300, all_assigned=True)
    a2 = {tp.partition for tp in c2.assignment()}
    a3 = {tp.partition for tp in c3.assignment()}
    assert a2 and a3 and not (a2 & a3) and (a2 | a3) == set(range(PARTITIONS)), (a2, a3)
    # Nothing committed before c3 joined is read again; what c2 read but did not commit
    # before the rebalance may be (no commit on revoke here: that is the client's part).
    assert set(rest) == set(values) - set(first)
    assert len(first) == len(set(first)) == 300
    c2.close()
    c3.close()


def test_kafka_python_group_commit_metadata(broker, create_topic, topic):
    from kafka import KafkaAdminClient, KafkaConsumer
    from kafka import TopicPartition as KTP
    from kafka.structs import OffsetAndMetadata

    create_topic(topic, PARTITIONS)
    produce(broker.bootstrap, topic, [f"v{i}" for i in range(120)])
    group = f"{topic}-kpy"
    c = KafkaConsumer(topic, bootstrap_servers=broker.bootstrap, group_id=group,
                      auto_offset_reset="earliest", enable_auto_commit=False,
                      session_timeout_ms=6000, heartbeat_interval_ms=1000,
                      consumer_timeout_ms=3000)
    seen = [m.value.decode() for m in c]
    assert sorted(seen) == sorted(f"v{i}" for i in range(120))
    assert {tp.partition for tp in c.assignment()} == set(range(PARTITIONS))
    ends = c.end_offsets([KTP(topic, p) for p in range(PARTITIONS)])
    c.commit({tp: OffsetAndMetadata(off, f"meta-{tp.partition}", -1) for tp, off in ends.items()})
    for tp, off in ends.items():
        got = c.committed(tp, metadata=True)
        assert (got.offset, got.metadata) == (off, f"meta-{tp.partition}"), got

    # A second group with a simple (generation -1) commit, for a two-group OffsetFetch.
    other = f"{group}-simple"
    simple = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=other, enable_auto_commit=False)
    simple.commit({KTP(topic, 1): OffsetAndMetadata(4, "x", -1)})
    simple.close()

    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        listed = {g["group_id"]: g for g in admin.list_groups()}
        assert listed[group]["group_state"] == "Stable", listed
        assert listed[other]["group_state"] == "Empty", listed
        stable = [g["group_id"] for g in admin.list_groups(states_filter=["Stable"])]
        assert group in stable and other not in stable
        desc = admin.describe_groups([group])[group]
        assert (desc["group_state"], desc["protocol_type"], desc["protocol_data"]) == \
            ("Stable", "consumer", "range"), desc
        [member] = desc["members"]
        assert member["member_metadata"]["topics"] == [topic]
        assigned = member["member_assignment"]["assigned_partitions"]
        assert [(a["topic"], sorted(a["partitions"])) for a in assigned] == [(topic, list(range(PARTITIONS)))]
        offs = admin.list_group_offsets({group: None, other: None})  # OffsetFetch v8: both at once
        assert {tp.partition: (o.offset, o.metadata) for tp, o in offs[group].items()} == \
            {tp.partition: (off, f"meta-{tp.partition}") for tp, off in ends.items()}
        assert {(tp.partition, o.offset, o.metadata) for tp, o in offs[other].items()} == {(1, 4, "x")}
        # Offsets of a subscribed topic cannot be deleted; a group with members cannot be.
        res = admin.delete_group_offsets(group, [KTP(topic, 0)])
        assert res[KTP(topic, 0)].__name__ == "GroupSubscribedToTopicError", res
        res = admin.delete_group_offsets(other, [KTP(topic, 1)])
        assert res[KTP(topic, 1)].__name__ == "NoError", res
        assert admin.list_group_offsets({other: None})[other] == {}
        assert dict(admin.delete_groups([group, other])) == \
            {group: "NonEmptyGroupError", other: "OK"}
        c.close()
        assert dict(admin.delete_groups([group])) == {group: "OK"}
        assert group not in [g["group_id"] for g in admin.list_groups()]
    finally:
        c.close()
        admin.close()


def test_static_member_restart_without_rebalance(broker, create_topic, topic):
    create_topic(topic, PARTITIONS)
    group = f"{topic}-static"
    events = []  # (member, "assign"/"revoke", partitions)

    def static(name):
        c = consumer(broker.bootstrap, group, **{"group.instance.id": f"inst-{name}",
                                                 "session.timeout.ms": 10000})
        c.subscribe([topic],
                    on_assign=lambda _c, ps: events.append((name, "assign", sorted(p.partition for p in ps))),
                    on_revoke=lambda _c, ps: events.append((name, "revoke", sorted(p.partition for p in ps))))
        return c

    def settle(consumers, until, timeout_s=30):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not until():
            for c in consumers:
                c.poll(0.1)
        assert until(), events

    a, b = static("a"), static("b")
    settle([a, b], lambda: len(a.assignment()) + len(b.assignment()) == PARTITIONS
           and a.assignment() and b.assignment())
    before_a = sorted(tp.partition for tp in a.assignment())
    b_events = [e for e in events if e[0] == "b"]
    a.close()  # a static member does not send LeaveGroup: its place is kept
    a2 = static("a")
    settle([a2, b], lambda: bool(a2.assignment()))
    for _ in range(20):  # give a rebalance, if any, the chance to reach b
        b.poll(0.1)
        a2.poll(0.1)
    assert sorted(tp.partition for tp in a2.assignment()) == before_a
    assert [e for e in events if e[0] == "b"] == b_events, events
    a2.close()
    b.close()


def test_group_survives_kill9(broker, create_topic, topic):
    create_topic(topic, PARTITIONS)
    values = [f"v{i}" for i in range(300)]
    produce(broker.bootstrap, topic, values)
    group = f"{topic}-crash"
    c = consumer(broker.bootstrap, group)
    c.subscribe([topic])
    got = poll_values([c], 300)
    assert sorted(got) == sorted(values)
    c.commit(asynchronous=False)
    before = committed(broker.bootstrap, group, topic)
    assert sum(before.values()) == 300

    broker.kill9()
    broker.start()
    assert committed(broker.bootstrap, group, topic) == before
    # The member that lived through the crash carries on: new records reach it.
    more = [f"w{i}" for i in range(60)]
    produce(broker.bootstrap, topic, more)
    after = poll_values([c], 60, timeout_s=60)
    assert sorted(after) == sorted(more)
    c.commit(asynchronous=False)
    c.close()
    assert sum(committed(broker.bootstrap, group, topic).values()) == 360
