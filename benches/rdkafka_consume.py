"""Catch-up read with a librdkafka-based consumer (confluent-kafka), for benches/run.py.

    compat/.cache/venv/bin/python benches/rdkafka_consume.py BOOTSTRAP TOPIC TIMEOUT_S [MAX_RECORDS]

The same read as `BenchClient consume` (workload 3): assign() of every partition of TOPIC
from its log start, up to the end offsets taken at the start (or MAX_RECORDS, so that two
brokers serve the same count), no consumer group membership (librdkafka insists on a
group.id, but assign() never joins it and nothing is committed). Prints one JSON line:
records, payload bytes (key + value), seconds from the first consume() call to the last
record, MiB/s.

Settings chosen so that the client, not librdkafka's defaults, is what we would run out of
last: fetch.max.bytes 64 MiB, max.partition.fetch.bytes 8 MiB, queued.max.messages.kbytes
1 GiB, queued.min.messages 1,000,000 (librdkafka prefetches up to these per partition),
consume() in batches of 10,000, and per record only its length is summed (in C, through
map/len). check.crcs stays at its default (false), as the Java client's check.crcs=true
would cost CPU in the client only. The Java consumer of workload 3 runs out of its one
core near ~110 MiB/s; this one shows what a broker can serve beyond that.
"""

from __future__ import annotations

import json
import sys
import time

from confluent_kafka import Consumer, KafkaException, TopicPartition

MIB = 1 << 20
BATCH = 10_000

SETTINGS = {
    "group.id": "bench-catch-up-rdkafka",   # required by librdkafka; never joined (assign)
    "enable.auto.commit": False,
    "enable.auto.offset.store": False,
    "enable.partition.eof": False,
    "fetch.max.bytes": 64 * MIB,
    "max.partition.fetch.bytes": 8 * MIB,
    "receive.message.max.bytes": 64 * MIB + 1024 * 1024,
    "queued.max.messages.kbytes": 1024 * 1024,
    "queued.min.messages": 1_000_000,
    "fetch.wait.max.ms": 100,
}


def main() -> int:
    if len(sys.argv) not in (4, 5):
        print(__doc__, file=sys.stderr)
        return 2
    bootstrap, topic, timeout_s = sys.argv[1], sys.argv[2], float(sys.argv[3])
    max_records = int(sys.argv[4]) if len(sys.argv) == 5 else None
    c = Consumer({"bootstrap.servers": bootstrap, **SETTINGS})
    try:
        md = c.list_topics(topic, timeout=30).topics[topic]
        if md.error is not None:
            raise KafkaException(md.error)
        tps, expected = [], 0
        for p in sorted(md.partitions):
            low, high = c.get_watermark_offsets(TopicPartition(topic, p), timeout=30)
            expected += high - low
            if high > low:
                tps.append(TopicPartition(topic, p, low))
        target = expected if max_records is None else min(expected, max_records)
        c.assign(tps)
        records = nbytes = errors = 0
        first_error = None
        msgs: list = []
        t0 = time.perf_counter()
        deadline = t0 + timeout_s
        t_last = t0
        t_first = None
        while records < target and time.perf_counter() < deadline:
            msgs = c.consume(BATCH, 0.5)
            if not msgs:
                continue
            bad = [m for m in msgs if m.error() is not None]
            if bad:
                errors += len(bad)
                first_error = first_error or str(bad[0].error())
                msgs = [m for m in msgs if m.error() is None]
            # len(Message) is the value's length; keys are absent in this benchmark's data
            # (the producers send none), which the check below makes sure of.
            if t_first is None and msgs:
                t_first = time.perf_counter()
            nbytes += sum(map(len, msgs))
            records += len(msgs)
            t_last = time.perf_counter()
        if msgs and msgs[-1].key() is not None:
            raise RuntimeError("records carry keys: MiB/s would leave them out")
    except KafkaException as e:
        print(json.dumps({"error": str(e)}))
        return 1
    finally:
        c.close()
    secs = t_last - t0
    complete = records >= target
    print(json.dumps({"records": records, "expected": expected, "target": target,
                      "bytes": nbytes, "seconds": secs, "errors": errors,
                      # From the first consume() to the first records: metadata, offset
                      # validation and the first fetch.
                      "first_records_s": (t_first - t0) if t_first else None,
                      "first_error": first_error, "complete": complete,
                      "records_per_s": records / secs if secs else None,
                      "mib_per_s": nbytes / secs / MIB if secs else None}))
    return 0 if complete and errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
