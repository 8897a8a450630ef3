// Writer and reader for the replication fault tests (compat/tests/test_replication.py),
// run with Java's source launcher:
//   java -cp 'compat/.cache/kafka-lib/*' compat/java/ReplicatedLog.java produce \
//        BOOTSTRAP TOPIC PARTITIONS RATE MAX_SECONDS STOP_FILE ACKED_FILE FAILED_FILE RUN_ID \
//        [only=P,Q,...] [sent=SENT_FILE] [delivery.timeout.ms=N] [request.timeout.ms=N]
//   java -cp 'compat/.cache/kafka-lib/*' compat/java/ReplicatedLog.java consume \
//        BOOTSTRAP TOPIC OUT_FILE [TIMEOUT_SECONDS [only=P,Q,...]]
//
// produce: an idempotent producer (acks=all, retries unbounded, delivery.timeout.ms
// 120000, max.in.flight 5, request.timeout.ms 10000) sends record seq=0,1,2,... to
// partition seq % PARTITIONS, key "p<partition>", value "<RUN_ID>-<seq>", at RATE
// records/s, until MAX_SECONDS have passed or STOP_FILE exists; then flushes and closes.
// Every acknowledged record is appended to ACKED_FILE as "partition offset value ack_ms"
// (ack_ms = wall clock of the callback, flushed per line, so a killed run keeps what
// was acknowledged); every failed send to FAILED_FILE as "partition -1 value error".
// Options (used by test_partition.py): only= sends just the records whose partition
// (seq % PARTITIONS) is listed (the other seqs are skipped, values keep their meaning);
// sent= appends "partition value send_ms" to SENT_FILE before each send; the timeouts
// replace the defaults above.
// Prints the failover figures: the longest gap between consecutive acks, overall and
// per partition, then
//   RESULT sent=N acked=A failed=F max_gap_ms=G max_gap_end_ms=T partition_max_gap_ms=p0:g0,...
//
// consume: assign() every partition (no group), read_uncommitted, from the beginning to
// the end offsets taken at the start; writes "partition offset value" per record and
//   RESULT records=N end_offsets=p0:e0,...
// Exits 1 if the end offsets are not reached within TIMEOUT_SECONDS (default 60).
// only= reads just the listed partitions (test_partition.py reads the isolated
// leader's partitions from inside its namespace).

import java.io.BufferedWriter;
import java.io.FileWriter;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.*;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

public class ReplicatedLog {
    public static void main(String[] args) throws Exception {
        if (args.length >= 1 && args[0].equals("produce") && args.length >= 10) {
            Map<String, String> opts = new HashMap<>();
            for (int i = 10; i < args.length; i++) {
                String[] kv = args[i].split("=", 2);
                if (kv.length != 2 || !Set.of("only", "sent", "delivery.timeout.ms",
                                              "request.timeout.ms").contains(kv[0])) {
                    System.err.println("unknown option " + args[i]);
                    System.exit(2);
                }
                opts.put(kv[0], kv[1]);
            }
            produce(args[1], args[2], Integer.parseInt(args[3]), Double.parseDouble(args[4]),
                    Double.parseDouble(args[5]), Path.of(args[6]), args[7], args[8], args[9], opts);
        } else if (args.length >= 1 && args[0].equals("consume") && args.length >= 4 && args.length <= 6
                   && (args.length < 6 || args[5].startsWith("only="))) {
            Set<Integer> only = new HashSet<>();
            if (args.length == 6)
                for (String s : args[5].substring(5).split(",")) only.add(Integer.parseInt(s));
            System.exit(consume(args[1], args[2], args[3],
                                args.length >= 5 ? Integer.parseInt(args[4]) : 60, only));
        } else {
            System.err.println("usage: ReplicatedLog produce BOOTSTRAP TOPIC PARTITIONS RATE MAX_SECONDS "
                               + "STOP_FILE ACKED_FILE FAILED_FILE RUN_ID [only=P,..] [sent=FILE] "
                               + "[delivery.timeout.ms=N] [request.timeout.ms=N]\n"
                               + "       ReplicatedLog consume BOOTSTRAP TOPIC OUT_FILE [TIMEOUT_SECONDS [only=P,..]]");
            System.exit(2);
        }
    }

    // -- produce ------------------------------------------------------------------------
    static final Object lock = new Object();
    static long acked = 0, failed = 0;
    static long lastAckMs = -1, maxGapMs = 0, maxGapEndMs = 0;
    static long[] partLastAckMs, partMaxGapMs;

    static void produce(String bootstrap, String topic, int partitions, double rate,
                        double maxSeconds, Path stopFile, String ackedPath, String failedPath,
                        String runId, Map<String, String> opts) throws Exception {
        Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, "true");
        p.put(ProducerConfig.ACKS_CONFIG, "all");
        p.put(ProducerConfig.RETRIES_CONFIG, Integer.toString(Integer.MAX_VALUE));
        p.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, opts.getOrDefault("delivery.timeout.ms", "120000"));
        p.put(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, opts.getOrDefault("request.timeout.ms", "10000"));
        p.put(ProducerConfig.MAX_IN_FLIGHT_REQUESTS_PER_CONNECTION, "5");
        p.put(ProducerConfig.LINGER_MS_CONFIG, "5");
        p.put(ProducerConfig.CLIENT_ID_CONFIG, "replicated-log-" + runId);
        p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        partLastAckMs = new long[partitions];
        partMaxGapMs = new long[partitions];
        Arrays.fill(partLastAckMs, -1);
        Set<Integer> only = new HashSet<>();
        if (opts.containsKey("only"))
            for (String s : opts.get("only").split(",")) only.add(Integer.parseInt(s));
        String sentPath = opts.get("sent");

        long sent = 0;
        try (BufferedWriter ackOut = new BufferedWriter(new FileWriter(ackedPath, true));
             BufferedWriter failOut = new BufferedWriter(new FileWriter(failedPath, true));
             BufferedWriter sentOut = sentPath == null ? null : new BufferedWriter(new FileWriter(sentPath, true));
             KafkaProducer<String, String> producer = new KafkaProducer<>(p)) {
            long start = System.nanoTime();
            for (long seq = 0; ; seq++) {
                double elapsed = (System.nanoTime() - start) / 1e9;
                if (elapsed >= maxSeconds || (seq % 50 == 0 && Files.exists(stopFile))) break;
                double due = seq / rate;
                if (due > elapsed) Thread.sleep((long) ((due - elapsed) * 1000));
                int part = (int) (seq % partitions);
                if (!only.isEmpty() && !only.contains(part)) continue;
                String value = runId + "-" + seq;
                if (sentOut != null) {
                    sentOut.write(part + " " + value + " " + System.currentTimeMillis() + "\n");
                    sentOut.flush();
                }
                producer.send(new ProducerRecord<>(topic, part, "p" + part, value), (md, e) -> {
                    long now = System.currentTimeMillis();
                    synchronized (lock) {
                        try {
                            if (e == null) {
                                acked++;
                                if (lastAckMs >= 0 && now - lastAckMs > maxGapMs) {
                                    maxGapMs = now - lastAckMs;
                                    maxGapEndMs = now;
                                }
                                lastAckMs = now;
                                if (partLastAckMs[part] >= 0)
                                    partMaxGapMs[part] = Math.max(partMaxGapMs[part], now - partLastAckMs[part]);
                                partLastAckMs[part] = now;
                                ackOut.write(md.partition() + " " + md.offset() + " " + value + " " + now + "\n");
                                ackOut.flush();
                            } else {
                                failed++;
                                failOut.write(part + " -1 " + value + " " + e.getClass().getSimpleName()
                                              + ": " + String.valueOf(e.getMessage()).replace('\n', ' ') + "\n");
                                failOut.flush();
                            }
                        } catch (IOException io) {
                            throw new RuntimeException(io);
                        }
                    }
                });
                sent++;
            }
            producer.flush();
        }
        synchronized (lock) {
            StringBuilder parts = new StringBuilder();
            for (int i = 0; i < partitions; i++) parts.append(i == 0 ? "" : ",").append("p").append(i).append(':').append(partMaxGapMs[i]);
            System.out.println("RESULT sent=" + sent + " acked=" + acked + " failed=" + failed
                               + " max_gap_ms=" + maxGapMs + " max_gap_end_ms=" + maxGapEndMs
                               + " partition_max_gap_ms=" + parts);
        }
    }

    // -- consume ------------------------------------------------------------------------
    static int consume(String bootstrap, String topic, String outPath, int timeoutS,
                       Set<Integer> only) throws Exception {
        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        p.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_uncommitted");
        p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        long records = 0;
        try (KafkaConsumer<String, String> c = new KafkaConsumer<>(p);
             BufferedWriter out = new BufferedWriter(new FileWriter(outPath))) {
            List<TopicPartition> tps = new ArrayList<>();
            for (PartitionInfo pi : c.partitionsFor(topic, Duration.ofSeconds(timeoutS))) {
                if (only.isEmpty() || only.contains(pi.partition()))
                    tps.add(new TopicPartition(topic, pi.partition()));
            }
            tps.sort(Comparator.comparingInt(TopicPartition::partition));
            c.assign(tps);
            c.seekToBeginning(tps);
            Map<TopicPartition, Long> end = c.endOffsets(tps, Duration.ofSeconds(timeoutS));
            StringBuilder ends = new StringBuilder();
            for (TopicPartition tp : tps) ends.append(ends.length() == 0 ? "" : ",").append("p").append(tp.partition()).append(':').append(end.get(tp));
            long deadline = System.nanoTime() + timeoutS * 1_000_000_000L;
            while (true) {
                boolean done = true;
                for (TopicPartition tp : tps) if (c.position(tp, Duration.ofSeconds(timeoutS)) < end.get(tp)) done = false;
                if (done) break;
                if (System.nanoTime() > deadline) {
                    StringBuilder pos = new StringBuilder();
                    for (TopicPartition tp : tps) pos.append(" p").append(tp.partition()).append(':').append(c.position(tp));
                    System.out.println("TIMEOUT records=" + records + " end_offsets=" + ends + " positions=" + pos);
                    return 1;
                }
                for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(500))) {
                    out.write(r.partition() + " " + r.offset() + " " + r.value() + "\n");
                    records++;
                }
            }
            System.out.println("RESULT records=" + records + " end_offsets=" + ends);
        }
        return 0;
    }
}
