// Reads one partition from its beginning to its end offset with the Java client, run by
// compat/tests/test_compaction.py with Java's source launcher:
//   java -cp 'compat/.cache/kafka-lib/*' compat/java/ReadAll.java BOOTSTRAP TOPIC PARTITION
// No group: assign + seekToBeginning, read_uncommitted, poll until the position reaches
// the end offset taken at the start. Prints one line per record,
//   REC <offset> <key> <value | <null>>
// (key and value as UTF-8, never containing spaces in the tests that use this), then
//   END first=<beginning offset> end=<end offset> records=<n>
// Exits 1 if the end is not reached within 60 s or offsets do not strictly increase.

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.*;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;

public class ReadAll {
    static String text(byte[] b) {
        return b == null ? "<null>" : new String(b, StandardCharsets.UTF_8);
    }

    public static void main(String[] args) throws Exception {
        if (args.length != 3) {
            System.err.println("usage: ReadAll BOOTSTRAP TOPIC PARTITION");
            System.exit(2);
        }
        Properties props = new Properties();
        props.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, args[0]);
        props.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        props.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        props.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        props.put(ConsumerConfig.MAX_POLL_RECORDS_CONFIG, "500");
        TopicPartition tp = new TopicPartition(args[1], Integer.parseInt(args[2]));
        try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(props)) {
            consumer.assign(List.of(tp));
            long first = consumer.beginningOffsets(List.of(tp)).get(tp);
            long end = consumer.endOffsets(List.of(tp)).get(tp);
            consumer.seekToBeginning(List.of(tp));
            long last = -1;
            int n = 0;
            long deadline = System.nanoTime() + Duration.ofSeconds(60).toNanos();
            while (consumer.position(tp) < end) {
                if (System.nanoTime() > deadline) {
                    System.err.println("timed out at position " + consumer.position(tp) + " of " + end);
                    System.exit(1);
                }
                for (ConsumerRecord<byte[], byte[]> r : consumer.poll(Duration.ofMillis(500))) {
                    if (r.offset() <= last) {
                        System.err.println("offset " + r.offset() + " after " + last);
                        System.exit(1);
                    }
                    last = r.offset();
                    n++;
                    System.out.println("REC " + r.offset() + " " + text(r.key()) + " " + text(r.value()));
                }
            }
            System.out.println("END first=" + first + " end=" + end + " records=" + n);
        }
    }
}
