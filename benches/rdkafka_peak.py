"""Peak produce with a librdkafka-based client (confluent-kafka), for benches/run.py.

    compat/.cache/venv/bin/python benches/rdkafka_peak.py BOOTSTRAP TOPIC RECORDS MAX_S [BATCH_BYTES]

1 KiB records, acks=all, enable.idempotence=true, linger.ms=5, librdkafka's other
defaults (notably batch.size 1,000,000 bytes, where the Java client has 16,384; BATCH_BYTES
sets it, as the kill -9 restart workload does to store Java-sized batches). Produces
until RECORDS were handed over or MAX_S passed, then flushes (at most 60 s more), and
prints one JSON line: records acknowledged, seconds from the first produce() to the end of
the flush, records/s, MiB/s, delivery errors. Delivery reports are requested for errors
only, so the Python side costs one produce() call per record.

The Java producer of ProducerPerformance runs out of its one core at some rate; this one
is cheaper per record, so it shows whether a broker can go faster than that.
"""

from __future__ import annotations

import json
import sys
import time

from confluent_kafka import KafkaException, Producer

MIB = 1 << 20


def main() -> int:
    if len(sys.argv) not in (5, 6):
        print(__doc__, file=sys.stderr)
        return 2
    bootstrap, topic, records, max_s = sys.argv[1], sys.argv[2], int(sys.argv[3]), \
        float(sys.argv[4])
    extra = {"batch.size": int(sys.argv[5])} if len(sys.argv) == 6 else {}
    errors = 0
    first_error = None

    def on_delivery(err, _msg):
        nonlocal errors, first_error
        if err is not None:
            errors += 1
            first_error = first_error or str(err)

    p = Producer({"bootstrap.servers": bootstrap, "acks": "all",
                  "enable.idempotence": True, "linger.ms": 5,
                  "delivery.report.only.error": True, "on_delivery": on_delivery, **extra})
    p.list_topics(topic, timeout=30)  # metadata before the clock starts
    value = bytes(1024)
    sent = 0
    t0 = time.perf_counter()
    deadline = t0 + max_s
    try:
        while sent < records:
            try:
                p.produce(topic, value)
                sent += 1
            except BufferError:
                p.poll(0.001)  # local queue full: let librdkafka drain it
                continue
            if sent % 2000 == 0:
                p.poll(0)
                if time.perf_counter() > deadline:
                    break
        left = p.flush(60)
    except KafkaException as e:
        print(json.dumps({"error": str(e)}))
        return 1
    secs = time.perf_counter() - t0
    acked = sent - left - errors
    print(json.dumps({"records": acked, "handed_over": sent, "unflushed": left,
                      "errors": errors, "first_error": first_error, "seconds": secs,
                      "records_per_s": acked / secs, "mib_per_s": acked * 1024 / secs / MIB}))
    return 0 if errors == 0 and left == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
