// Java client round trip, run by compat/tests/test_java_client.py with Java's source
// launcher:  java -cp 'compat/.cache/kafka-lib/*' compat/java/ProduceConsume.java \
//                 BOOTSTRAP TOPIC_PREFIX COUNT CODEC[,CODEC...]
// Per codec: AdminClient creates TOPIC_PREFIX-CODEC with 3 partitions; a default-config
// producer (Kafka 4.x defaults: idempotent, acks=all; only compression.type set) sends
// COUNT keyed records with headers and records each RecordMetadata; a consumer without a
// group (assign + seekToBeginning) reads them back. Every record is checked at its
// acknowledged partition/offset (key, value, headers in order incl. duplicates), offsets
// must be dense per partition and end offsets must match. Prints one line per codec:
//   RESULT codec=C topic=T produced=N consumed=N partitions=p0:n0,p1:n1,p2:n2 mismatches=0
// and exits 1 if anything did not match.

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.*;
import java.util.concurrent.Future;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.header.internals.RecordHeaders;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;

public class ProduceConsume {
    static final int PARTITIONS = 3;
    static final List<String> failures = new ArrayList<>();

    static void check(boolean ok, String what) {
        if (!ok && failures.size() < 50) failures.add(what);
    }

    static byte[] utf8(String s) { return s.getBytes(StandardCharsets.UTF_8); }

    static String headersToString(Iterable<Header> hs) {
        StringBuilder sb = new StringBuilder();
        for (Header h : hs) {
            sb.append(h.key()).append('=')
              .append(h.value() == null ? "<null>" : new String(h.value(), StandardCharsets.UTF_8))
              .append(';');
        }
        return sb.toString();
    }

    public static void main(String[] args) throws Exception {
        if (args.length != 4) {
            System.err.println("usage: ProduceConsume BOOTSTRAP TOPIC_PREFIX COUNT CODEC[,CODEC...]");
            System.exit(2);
        }
        String bootstrap = args[0];
        int count = Integer.parseInt(args[2]);
        boolean allOk = true;
        for (String codec : args[3].split(",")) {
            failures.clear();
            String topic = args[1] + "-" + codec;
            runOne(bootstrap, topic, count, codec);
            if (!failures.isEmpty()) {
                allOk = false;
                for (String f : failures) System.out.println("FAIL codec=" + codec + " " + f);
            }
        }
        System.exit(allOk ? 0 : 1);
    }

    static void runOne(String bootstrap, String topic, int count, String codec) throws Exception {
        Properties ap = new Properties();
        ap.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        try (Admin admin = Admin.create(ap)) {
            admin.createTopics(List.of(new NewTopic(topic, PARTITIONS, (short) 1))).all().get();
        }

        // Records: key, value, headers (a repeated key and a null-valued header on some).
        List<byte[]> keys = new ArrayList<>(), values = new ArrayList<>();
        List<RecordHeaders> headers = new ArrayList<>();
        for (int i = 0; i < count; i++) {
            keys.add(utf8("key-" + (i % 41)));
            values.add(utf8("java " + codec + " value " + i + " " + "0123456789".repeat(i % 20)));
            RecordHeaders h = new RecordHeaders();
            h.add("seq", utf8(Integer.toString(i)));
            h.add("dup", utf8("one"));
            h.add("dup", utf8("two"));
            if (i % 10 == 0) h.add("nullable", null);
            headers.add(h);
        }

        Properties pp = new Properties();
        pp.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        pp.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        pp.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        pp.put(ProducerConfig.COMPRESSION_TYPE_CONFIG, codec);
        List<RecordMetadata> metas = new ArrayList<>();
        try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(pp)) {
            List<Future<RecordMetadata>> futures = new ArrayList<>();
            for (int i = 0; i < count; i++) {
                futures.add(producer.send(new ProducerRecord<>(topic, null, keys.get(i),
                        values.get(i), headers.get(i))));
            }
            producer.flush();
            for (Future<RecordMetadata> f : futures) metas.add(f.get());
        }

        Map<Integer, List<Long>> offsetsByPartition = new TreeMap<>();
        Map<String, Integer> partitionOfKey = new HashMap<>();
        for (int i = 0; i < count; i++) {
            RecordMetadata m = metas.get(i);
            check(m.topic().equals(topic), "record " + i + " acked for topic " + m.topic());
            offsetsByPartition.computeIfAbsent(m.partition(), p -> new ArrayList<>()).add(m.offset());
            String k = new String(keys.get(i), StandardCharsets.UTF_8);
            Integer prev = partitionOfKey.putIfAbsent(k, m.partition());
            check(prev == null || prev == m.partition(), "key " + k + " in two partitions");
        }
        check(offsetsByPartition.keySet().equals(Set.of(0, 1, 2)),
              "partitions used: " + offsetsByPartition.keySet());
        for (var e : offsetsByPartition.entrySet()) {
            List<Long> sorted = new ArrayList<>(e.getValue());
            Collections.sort(sorted);
            for (int j = 0; j < sorted.size(); j++) {
                check(sorted.get(j) == j, "partition " + e.getKey() + " offsets not dense: " + sorted);
            }
        }

        Properties cp = new Properties();
        cp.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        cp.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        cp.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        cp.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        cp.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "none");
        Map<String, ConsumerRecord<byte[], byte[]>> got = new HashMap<>();
        Map<TopicPartition, Long> endOffsets;
        try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(cp)) {
            List<TopicPartition> tps = new ArrayList<>();
            for (int p = 0; p < PARTITIONS; p++) tps.add(new TopicPartition(topic, p));
            consumer.assign(tps);
            consumer.seekToBeginning(tps);
            long deadline = System.nanoTime() + Duration.ofSeconds(60).toNanos();
            while (got.size() < count && System.nanoTime() < deadline) {
                for (ConsumerRecord<byte[], byte[]> r : consumer.poll(Duration.ofMillis(500))) {
                    String pos = r.partition() + "/" + r.offset();
                    check(got.put(pos, r) == null, "offset delivered twice: " + pos);
                }
            }
            for (ConsumerRecord<byte[], byte[]> r : consumer.poll(Duration.ofMillis(500))) {
                check(false, "unexpected extra record " + r.partition() + "/" + r.offset());
            }
            endOffsets = consumer.endOffsets(tps);
        }

        check(got.size() == count, "consumed " + got.size() + " of " + count);
        for (int i = 0; i < count; i++) {
            RecordMetadata m = metas.get(i);
            ConsumerRecord<byte[], byte[]> r = got.get(m.partition() + "/" + m.offset());
            if (r == null) { check(false, "record " + i + " missing at " + m); continue; }
            check(Arrays.equals(r.key(), keys.get(i)), "record " + i + " key differs");
            check(Arrays.equals(r.value(), values.get(i)), "record " + i + " value differs");
            String want = headersToString(headers.get(i)), have = headersToString(r.headers());
            check(want.equals(have), "record " + i + " headers " + have + " != " + want);
            check(r.timestamp() == m.timestamp(), "record " + i + " timestamp differs from ack");
        }
        StringBuilder parts = new StringBuilder();
        for (int p = 0; p < PARTITIONS; p++) {
            int n = offsetsByPartition.getOrDefault(p, List.of()).size();
            long end = endOffsets.get(new TopicPartition(topic, p));
            check(end == n, "partition " + p + " end offset " + end + " != " + n);
            parts.append(p == 0 ? "" : ",").append(p).append(':').append(n);
        }
        System.out.println("RESULT codec=" + codec + " topic=" + topic + " produced=" + metas.size()
                + " consumed=" + got.size() + " partitions=" + parts + " mismatches=" + failures.size());
    }
}
