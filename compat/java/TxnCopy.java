// Java transactions, run by compat/tests/test_transactions.py with Java's source launcher:
//   java -cp 'compat/.cache/kafka-lib/*' compat/java/TxnCopy.java BOOTSTRAP PREFIX COUNT
// A consume-transform-produce loop with exactly-once semantics (Kafka 4.x client,
// transaction version 1 against a broker without the transaction.version feature):
//  1. AdminClient creates PREFIX-in and PREFIX-out (3 partitions each); a plain
//     producer writes COUNT records "r<i>" to PREFIX-in.
//  2. A read_committed consumer in group PREFIX-g (no auto commit) and a transactional
//     producer copy each polled batch to PREFIX-out as "copy-r<i>" inside a
//     transaction, with sendOffsetsToTransaction. Every batch is first copied and
//     ABORTED (the consumer then seeks back to the group's committed offsets, which
//     must not have moved), then copied again and COMMITTED.
//  3. Checks: a read_committed consumer of PREFIX-out sees every "copy-r<i>" exactly
//     once; a read_uncommitted one sees the aborted copies too; the group's committed
//     offsets equal PREFIX-in's end offsets.
// Prints "RESULT ok ..." or the failures, and exits 1 on any failure.

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.*;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.*;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

public class TxnCopy {
    static final int PARTITIONS = 3;
    static final List<String> failures = new ArrayList<>();

    static void check(boolean ok, String what) {
        if (!ok && failures.size() < 50) failures.add(what);
    }

    static Properties consumerProps(String bootstrap, String group, String isolation) {
        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        if (group != null) p.put(ConsumerConfig.GROUP_ID_CONFIG, group);
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        p.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, isolation);
        p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        return p;
    }

    static List<TopicPartition> partitions(String topic) {
        List<TopicPartition> tps = new ArrayList<>();
        for (int p = 0; p < PARTITIONS; p++) tps.add(new TopicPartition(topic, p));
        return tps;
    }

    /** Every value of `topic` from the beginning up to the end offsets `isolation` sees. */
    static List<String> readAll(String bootstrap, String topic, String isolation) {
        try (KafkaConsumer<String, String> c = new KafkaConsumer<>(consumerProps(bootstrap, null, isolation))) {
            List<TopicPartition> tps = partitions(topic);
            c.assign(tps);
            c.seekToBeginning(tps);
            Map<TopicPartition, Long> end = c.endOffsets(tps);
            List<String> out = new ArrayList<>();
            long deadline = System.currentTimeMillis() + 60_000;
            while (System.currentTimeMillis() < deadline) {
                boolean done = true;
                for (TopicPartition tp : tps) done &= c.position(tp) >= end.get(tp);
                if (done) break;
                for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(500))) out.add(r.value());
            }
            return out;
        }
    }

    public static void main(String[] args) {
        try {
            run(args);
        } catch (Throwable t) {
            // Kafka's ApiExceptions carry no stack trace, which trips the source
            // launcher's own trace trimming; print the exception ourselves.
            System.out.println("RESULT failed: " + t);
            for (Throwable c = t.getCause(); c != null; c = c.getCause()) System.out.println("  caused by " + c);
            t.printStackTrace(System.out);
            System.exit(1);
        }
    }

    static void run(String[] args) throws Exception {
        if (args.length != 3) {
            System.err.println("usage: TxnCopy BOOTSTRAP PREFIX COUNT");
            System.exit(2);
        }
        String bootstrap = args[0], in = args[1] + "-in", out = args[1] + "-out", group = args[1] + "-g";
        int count = Integer.parseInt(args[2]);

        Properties ap = new Properties();
        ap.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        try (Admin admin = Admin.create(ap)) {
            admin.createTopics(List.of(new NewTopic(in, PARTITIONS, (short) 1), new NewTopic(out, PARTITIONS, (short) 1))).all().get();
        }
        Properties pp = new Properties();
        pp.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        pp.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        pp.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        try (KafkaProducer<String, String> seed = new KafkaProducer<>(pp)) {
            for (int i = 0; i < count; i++) seed.send(new ProducerRecord<>(in, i % PARTITIONS, "k" + i, "r" + i));
            seed.flush();
        }

        Properties tp = new Properties();
        tp.putAll(pp);
        tp.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, args[1] + "-tx");
        int commits = 0, aborts = 0;
        Properties cp = consumerProps(bootstrap, group, "read_committed");
        cp.put(ConsumerConfig.MAX_POLL_RECORDS_CONFIG, "7");
        try (KafkaProducer<String, String> producer = new KafkaProducer<>(tp);
             KafkaConsumer<String, String> consumer = new KafkaConsumer<>(cp)) {
            producer.initTransactions();
            consumer.subscribe(List.of(in));
            int copied = 0;
            long deadline = System.currentTimeMillis() + 120_000;
            boolean abortNext = true;
            // What the group has committed so far: an abort must leave it unchanged.
            Map<TopicPartition, OffsetAndMetadata> lastCommitted = new HashMap<>();
            while (copied < count && System.currentTimeMillis() < deadline) {
                ConsumerRecords<String, String> recs = consumer.poll(Duration.ofMillis(500));
                if (recs.isEmpty()) continue;
                Map<TopicPartition, OffsetAndMetadata> next = new HashMap<>();
                producer.beginTransaction();
                for (ConsumerRecord<String, String> r : recs) {
                    producer.send(new ProducerRecord<>(out, r.partition(), r.key(), "copy-" + r.value()));
                    next.put(new TopicPartition(r.topic(), r.partition()), new OffsetAndMetadata(r.offset() + 1));
                }
                producer.sendOffsetsToTransaction(next, consumer.groupMetadata());
                if (abortNext) {
                    producer.abortTransaction();
                    aborts++;
                    Map<TopicPartition, OffsetAndMetadata> after = consumer.committed(next.keySet());
                    for (TopicPartition p : next.keySet()) {
                        OffsetAndMetadata c = after.get(p);
                        check(Objects.equals(c == null ? null : c.offset(), lastCommitted.get(p) == null ? null : lastCommitted.get(p).offset()), "aborted offset of " + p + " became visible: " + c + ", committed before: " + lastCommitted.get(p));
                        consumer.seek(p, c == null ? 0L : c.offset());
                    }
                } else {
                    producer.commitTransaction();
                    commits++;
                    lastCommitted.putAll(next);
                    copied += recs.count();
                    Map<TopicPartition, OffsetAndMetadata> after = consumer.committed(next.keySet());
                    for (Map.Entry<TopicPartition, OffsetAndMetadata> e : next.entrySet()) {
                        OffsetAndMetadata c = after.get(e.getKey());
                        check(c != null && c.offset() == e.getValue().offset(), "committed offset of " + e.getKey() + " is " + c + ", want " + e.getValue());
                    }
                }
                abortNext = !abortNext;
            }
            check(copied == count, "copied " + copied + " of " + count + " before the deadline");
        }

        List<String> committed = readAll(bootstrap, out, "read_committed");
        List<String> all = readAll(bootstrap, out, "read_uncommitted");
        Map<String, Integer> seen = new HashMap<>();
        for (String v : committed) seen.merge(v, 1, Integer::sum);
        for (int i = 0; i < count; i++) check(seen.getOrDefault("copy-r" + i, 0) == 1, "copy-r" + i + " seen " + seen.getOrDefault("copy-r" + i, 0) + " times by read_committed");
        check(committed.size() == count, "read_committed saw " + committed.size() + " records, want " + count);
        check(all.size() > count, "read_uncommitted saw " + all.size() + " records; the aborted copies are missing");

        try (Admin admin = Admin.create(ap);
             KafkaConsumer<String, String> c = new KafkaConsumer<>(consumerProps(bootstrap, null, "read_committed"))) {
            Map<TopicPartition, OffsetAndMetadata> offsets = admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata().get();
            Map<TopicPartition, Long> end = c.endOffsets(partitions(in));
            for (TopicPartition p : partitions(in)) {
                OffsetAndMetadata o = offsets.get(p);
                check(o != null && o.offset() == end.get(p), "group offset of " + p + " is " + o + ", end offset " + end.get(p));
            }
        }
        if (failures.isEmpty()) {
            System.out.println("RESULT ok commits=" + commits + " aborts=" + aborts + " committed=" + committed.size() + " uncommitted=" + all.size());
        } else {
            System.out.println("RESULT failed");
            for (String f : failures) System.out.println("FAIL " + f);
            System.exit(1);
        }
    }
}
