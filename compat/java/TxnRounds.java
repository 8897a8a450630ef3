// Transactions over every partition of a topic, run by compat/tests/test_txn_cluster.py
// with Java's source launcher (java -cp 'compat/.cache/kafka-lib/*' compat/java/TxnRounds.java ...):
//
//   produce BOOTSTRAP TOPIC PARTITIONS TXN_ID FIRST LAST
//     One transactional producer (Kafka 4.x client, acks=all). Round r = FIRST..LAST
//     sends 3 records "t<r>-p<p>-<i>" to every partition p, then commits the
//     transaction, or aborts it when r % 3 == 1. Prints "ROUND r commit|abort" per
//     round and "RESULT ok"; on any failure "RESULT failed: ..." and exit 1.
//
//   read BOOTSTRAP TOPIC PARTITIONS ISOLATION
//     assign + seekToBeginning, endOffsets at ISOLATION (read_committed: the last
//     stable offsets, ListOffsets isolation level 1), then poll until every position
//     reaches its end offset. Prints "END p offset" per partition, "VALUE v" per
//     record and "RESULT ok", or "RESULT stalled ..." (exit 1) when a partition does
//     not reach its end within 60 s.

import java.time.Duration;
import java.util.*;
import org.apache.kafka.clients.consumer.*;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

public class TxnRounds {
    public static void main(String[] args) {
        try {
            if (args.length >= 1 && args[0].equals("produce") && args.length == 7) {
                produce(args[1], args[2], Integer.parseInt(args[3]), args[4], Integer.parseInt(args[5]), Integer.parseInt(args[6]));
            } else if (args.length >= 1 && args[0].equals("read") && args.length == 5) {
                read(args[1], args[2], Integer.parseInt(args[3]), args[4]);
            } else {
                System.err.println("usage: TxnRounds produce BOOTSTRAP TOPIC PARTITIONS TXN_ID FIRST LAST | read BOOTSTRAP TOPIC PARTITIONS ISOLATION");
                System.exit(2);
            }
        } catch (Throwable t) {
            // Kafka's ApiExceptions carry no stack trace: print the chain ourselves.
            System.out.println("RESULT failed: " + t);
            for (Throwable c = t.getCause(); c != null; c = c.getCause()) System.out.println("  caused by " + c);
            t.printStackTrace(System.out);
            System.exit(1);
        }
    }

    static void produce(String bootstrap, String topic, int partitions, String txnId, int first, int last) {
        Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, txnId);
        p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        // A leader may die between rounds: leave room for the election and the retries.
        p.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, "120000");
        p.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, "120000");
        try (KafkaProducer<String, String> producer = new KafkaProducer<>(p)) {
            producer.initTransactions();
            for (int r = first; r <= last; r++) {
                producer.beginTransaction();
                for (int part = 0; part < partitions; part++) {
                    for (int i = 0; i < 3; i++) {
                        String v = "t" + r + "-p" + part + "-" + i;
                        producer.send(new ProducerRecord<>(topic, part, v, v));
                    }
                }
                producer.flush();
                boolean abort = r % 3 == 1;
                if (abort) producer.abortTransaction();
                else producer.commitTransaction();
                System.out.println("ROUND " + r + (abort ? " abort" : " commit"));
            }
        }
        System.out.println("RESULT ok");
    }

    static void read(String bootstrap, String topic, int partitions, String isolation) {
        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        p.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, isolation);
        p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        try (KafkaConsumer<String, String> c = new KafkaConsumer<>(p)) {
            List<TopicPartition> tps = new ArrayList<>();
            for (int i = 0; i < partitions; i++) tps.add(new TopicPartition(topic, i));
            c.assign(tps);
            c.seekToBeginning(tps);
            Map<TopicPartition, Long> end = c.endOffsets(tps, Duration.ofSeconds(30));
            for (TopicPartition tp : tps) System.out.println("END " + tp.partition() + " " + end.get(tp));
            long deadline = System.currentTimeMillis() + 60_000;
            while (true) {
                List<String> behind = new ArrayList<>();
                for (TopicPartition tp : tps) {
                    long pos = c.position(tp);
                    if (pos < end.get(tp)) behind.add(tp.partition() + "@" + pos + "<" + end.get(tp));
                }
                if (behind.isEmpty()) break;
                if (System.currentTimeMillis() > deadline) {
                    System.out.println("RESULT stalled " + behind);
                    System.exit(1);
                }
                for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(500))) System.out.println("VALUE " + r.value());
            }
        }
        System.out.println("RESULT ok");
    }
}
