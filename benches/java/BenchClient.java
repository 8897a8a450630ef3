// Load generator pieces that Kafka's own perf tools do not provide, run by benches/run.py
// against Apache Kafka and sluice alike (same client library, same settings):
//
//   create     BOOTSTRAP TOPIC PARTITIONS
//       Admin.createTopics (replication factor 1), then waits until every partition
//       has a leader. Prints one JSON line {"created": ..., "seconds": ...}.
//   fixed-rate BOOTSTRAP TOPIC RATE_PER_S WARMUP_S MEASURE_S RECORD_BYTES
//       Open-loop producer (acks=all, idempotent, linger.ms=5): record i is *due* at
//       t0 + i/RATE and is sent as soon as possible after that. Latency is recorded
//       twice into HdrHistograms: from the due time ("co": coordinated omission
//       accounted for, a stalled broker charges every record that should have been sent
//       meanwhile) and from the moment send() was called ("raw": what
//       ProducerPerformance reports). Records due during the warmup are not recorded.
//       Prints one JSON line with percentiles and a percentile curve for each.
//   consume    BOOTSTRAP TOPIC TIMEOUT_S [MAX_RECORDS]
//       Catch-up read without a consumer group: assign() every partition, seek to the
//       beginning, poll until the end offsets taken at the start are reached (or
//       MAX_RECORDS were read, so two brokers can be made to serve the same count).
//       Prints one JSON line with records, payload bytes, seconds and MiB/s.
//
// Every loop is bounded in time. Exit code 0 on success, 1 on failure (after printing
// what it has), 2 on bad usage.

import java.time.Duration;
import java.util.*;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.LockSupport;
import org.HdrHistogram.Histogram;
import org.apache.kafka.clients.admin.*;
import org.apache.kafka.clients.consumer.*;
import org.apache.kafka.clients.producer.*;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.TopicPartitionInfo;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;

public class BenchClient {
    /** Highest latency the histograms track: 10 minutes, in microseconds. */
    static final long MAX_LATENCY_US = 600_000_000L;

    public static void main(String[] args) throws Exception {
        if (args.length < 1) usage();
        switch (args[0]) {
            case "create" -> {
                if (args.length != 4) usage();
                create(args[1], args[2], Integer.parseInt(args[3]));
            }
            case "fixed-rate" -> {
                if (args.length != 7) usage();
                fixedRate(args[1], args[2], Double.parseDouble(args[3]), Double.parseDouble(args[4]),
                          Double.parseDouble(args[5]), Integer.parseInt(args[6]));
            }
            case "consume" -> {
                if (args.length != 4 && args.length != 5) usage();
                consume(args[1], args[2], Double.parseDouble(args[3]),
                        args.length == 5 ? Long.parseLong(args[4]) : Long.MAX_VALUE);
            }
            default -> usage();
        }
    }

    static void usage() {
        System.err.println("usage: BenchClient create BOOTSTRAP TOPIC PARTITIONS\n"
            + "       BenchClient fixed-rate BOOTSTRAP TOPIC RATE_PER_S WARMUP_S MEASURE_S RECORD_BYTES\n"
            + "       BenchClient consume BOOTSTRAP TOPIC TIMEOUT_S [MAX_RECORDS]");
        System.exit(2);
    }

    // ---------------------------------------------------------------- create
    static void create(String bootstrap, String topic, int partitions) throws Exception {
        Properties props = new Properties();
        props.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "120000");
        props.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, "120000");
        long tConnect = System.nanoTime();
        try (Admin admin = Admin.create(props)) {
            // Connected and warmed up before the clock starts: the figure is the broker's
            // (creation and leader election), not the Admin client's class loading.
            admin.describeCluster().nodes().get(120, TimeUnit.SECONDS);
            admin.listTopics().names().get(120, TimeUnit.SECONDS);
            long t0 = System.nanoTime();
            double connectS = (t0 - tConnect) / 1e9;
            admin.createTopics(List.of(new NewTopic(topic, partitions, (short) 1)))
                 .all().get(120, TimeUnit.SECONDS);
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(120);
            int ready = 0;
            while (System.nanoTime() < deadline) {
                try {
                    TopicDescription d = admin.describeTopics(List.of(topic)).allTopicNames()
                                              .get(30, TimeUnit.SECONDS).get(topic);
                    ready = 0;
                    for (TopicPartitionInfo p : d.partitions()) if (p.leader() != null) ready++;
                    if (ready == partitions) break;
                } catch (Exception e) {
                    // Metadata propagates asynchronously in Kafka; ask again.
                }
                Thread.sleep(10);
            }
            double s = (System.nanoTime() - t0) / 1e9;
            System.out.printf(Locale.ROOT, "{\"created\": \"%s\", \"partitions\": %d, \"ready\": %d, \"seconds\": %.3f, \"connect_s\": %.3f}%n",
                              topic, partitions, ready, s, connectS);
            if (ready != partitions) System.exit(1);
        }
    }

    // ---------------------------------------------------------------- fixed-rate
    static void fixedRate(String bootstrap, String topic, double rate, double warmupS, double measureS,
                          int recordBytes) throws Exception {
        Properties props = new Properties();
        props.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(ProducerConfig.ACKS_CONFIG, "all");
        props.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, "true");
        props.put(ProducerConfig.LINGER_MS_CONFIG, "5");
        props.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, "30000");
        props.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        props.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        byte[] payload = new byte[recordBytes];
        new Random(42).nextBytes(payload);

        final long periodNs = (long) (1e9 / rate);
        final long total = (long) (rate * (warmupS + measureS));
        final Histogram co = new Histogram(MAX_LATENCY_US, 3);
        final Histogram raw = new Histogram(MAX_LATENCY_US, 3);
        final AtomicLong errors = new AtomicLong();
        final AtomicLong acked = new AtomicLong();
        // Hard stop: a broker that falls far behind must not hold the run hostage.
        final long hardStopNs = TimeUnit.MILLISECONDS.toNanos((long) ((warmupS + measureS) * 3000 + 30000));
        long sent = 0;
        boolean incomplete = false;
        long t0;
        try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(props)) {
            producer.partitionsFor(topic); // metadata before the clock starts
            t0 = System.nanoTime();
            final long measureFrom = t0 + (long) (warmupS * 1e9);
            while (sent < total) {
                long now = System.nanoTime();
                if (now - t0 > hardStopNs) { incomplete = true; break; }
                long due = t0 + sent * periodNs;
                if (due > now) {
                    LockSupport.parkNanos(Math.min(due - now, 1_000_000L));
                    continue;
                }
                // Send everything that is due (a burst after any stall: open loop).
                while (sent < total) {
                    final long dueNs = t0 + sent * periodNs;
                    if (dueNs > now) break;
                    final long sendNs = System.nanoTime();
                    final boolean record = dueNs >= measureFrom;
                    producer.send(new ProducerRecord<>(topic, payload), (md, ex) -> {
                        long end = System.nanoTime();
                        if (ex != null) { errors.incrementAndGet(); return; }
                        acked.incrementAndGet();
                        if (record) {
                            // Callbacks run on the producer's single I/O thread.
                            co.recordValue(Math.min((end - dueNs) / 1000, MAX_LATENCY_US));
                            raw.recordValue(Math.min((end - sendNs) / 1000, MAX_LATENCY_US));
                        }
                    });
                    sent++;
                    now = System.nanoTime();
                }
            }
            producer.flush();
        }
        double elapsedS = (System.nanoTime() - t0) / 1e9;
        StringBuilder out = new StringBuilder();
        out.append(String.format(Locale.ROOT,
            "{\"target_rate\": %.1f, \"sent\": %d, \"acked\": %d, \"errors\": %d, \"incomplete\": %b, "
            + "\"elapsed_s\": %.3f, \"achieved_rate\": %.1f, ",
            rate, sent, acked.get(), errors.get(), incomplete, elapsedS, sent / elapsedS));
        out.append("\"co\": ").append(summary(co)).append(", \"raw\": ").append(summary(raw)).append("}");
        System.out.println(out);
        if (incomplete || errors.get() > 0) System.exit(1);
    }

    /** Percentiles in ms and a curve at levels 1 - 10^(-k/8) (k = 0..40), plus the max. */
    static String summary(Histogram h) {
        StringBuilder s = new StringBuilder();
        s.append(String.format(Locale.ROOT,
            "{\"count\": %d, \"p50_ms\": %.3f, \"p90_ms\": %.3f, \"p99_ms\": %.3f, \"p999_ms\": %.3f, "
            + "\"p9999_ms\": %.3f, \"max_ms\": %.3f, \"mean_ms\": %.3f, \"curve\": [",
            h.getTotalCount(), ms(h, 50), ms(h, 90), ms(h, 99), ms(h, 99.9), ms(h, 99.99),
            h.getMaxValue() / 1000.0, h.getMean() / 1000.0));
        for (int k = 0; k <= 40; k++) {
            double level = 100.0 * (1.0 - Math.pow(10, -k / 8.0));
            s.append(String.format(Locale.ROOT, "[%.6f, %.3f], ", level, ms(h, level)));
        }
        s.append(String.format(Locale.ROOT, "[100.0, %.3f]]}", h.getMaxValue() / 1000.0));
        return s.toString();
    }

    static double ms(Histogram h, double percentile) {
        return h.getTotalCount() == 0 ? 0.0 : h.getValueAtPercentile(percentile) / 1000.0;
    }

    // ---------------------------------------------------------------- consume
    static void consume(String bootstrap, String topic, double timeoutS, long maxRecords) throws Exception {
        Properties props = new Properties();
        props.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        props.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        props.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        props.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(props)) {
            List<TopicPartition> tps = new ArrayList<>();
            for (PartitionInfo p : consumer.partitionsFor(topic, Duration.ofSeconds(30)))
                tps.add(new TopicPartition(topic, p.partition()));
            consumer.assign(tps);
            consumer.seekToBeginning(tps);
            Map<TopicPartition, Long> end = consumer.endOffsets(tps, Duration.ofSeconds(30));
            long expected = 0;
            Map<TopicPartition, Long> start = consumer.beginningOffsets(tps, Duration.ofSeconds(30));
            for (TopicPartition tp : tps) expected += end.get(tp) - start.get(tp);
            Set<TopicPartition> pending = new HashSet<>();
            for (TopicPartition tp : tps) if (end.get(tp) > start.get(tp)) pending.add(tp);
            long records = 0, bytes = 0;
            long t0 = System.nanoTime();
            long deadline = t0 + (long) (timeoutS * 1e9);
            while (!pending.isEmpty() && records < maxRecords && System.nanoTime() < deadline) {
                ConsumerRecords<byte[], byte[]> batch = consumer.poll(Duration.ofMillis(500));
                for (ConsumerRecord<byte[], byte[]> r : batch) {
                    records++;
                    bytes += (r.value() == null ? 0 : r.value().length) + (r.key() == null ? 0 : r.key().length);
                }
                for (TopicPartition tp : batch.partitions()) {
                    if (consumer.position(tp) >= end.get(tp)) pending.remove(tp);
                }
            }
            double s = (System.nanoTime() - t0) / 1e9;
            System.out.printf(Locale.ROOT,
                "{\"records\": %d, \"expected\": %d, \"bytes\": %d, \"seconds\": %.3f, \"mib_per_s\": %.2f, "
                + "\"records_per_s\": %.1f, \"complete\": %b}%n",
                records, expected, bytes, s, bytes / s / (1 << 20), records / s,
                pending.isEmpty() || records >= maxRecords);
            if (!pending.isEmpty() && records < maxRecords) System.exit(1);
        }
    }
}
