// Consumer-group round trip with the Java client (classic protocol), run by
// compat/tests/test_groups_java.py with Java's source launcher:
//   java -cp 'compat/.cache/kafka-lib/*' compat/java/GroupConsume.java \
//        BOOTSTRAP TOPIC GROUP ASSIGNOR PHASE(1|2) COUNT
// ASSIGNOR: range|cooperative-sticky (classic protocol, client-side assignors) or
// consumer-uniform|consumer-range (KIP-848, group.protocol=consumer with that
// server-side assignor; run by compat/tests/test_groups_kip848.py).
// Produces COUNT records with values "p<PHASE>-<i>" to TOPIC (6 partitions, made by
// the test), then consumes them in GROUP:
//   phase 1: member A starts; B joins once A has read a sixth, C once a third is
//            read; B leaves (close → LeaveGroup) at half; A and C finish.
//   phase 2: three fresh members start together; they must resume from the offsets
//            committed in phase 1, so they see only phase-2 records.
// Each member commits synchronously after every batch it processed (and retries a
// commit refused during a rebalance before the next batch), so nothing may be read
// twice. Prints
//   RESULT produced=N distinct=N dups=0 reread=0 max_members=3 generations=G
// (reread counts records of an earlier phase seen in this phase).

import java.time.Duration;
import java.util.*;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicInteger;
import org.apache.kafka.clients.consumer.*;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.RebalanceInProgressException;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

public class GroupConsume {
    static String bootstrap, topic, group, assignor;
    static int phase;
    static final ConcurrentHashMap<String, Integer> seen = new ConcurrentHashMap<>();
    static final AtomicInteger dups = new AtomicInteger();
    static final AtomicInteger reread = new AtomicInteger();
    static final AtomicInteger active = new AtomicInteger();
    static final AtomicInteger maxActive = new AtomicInteger();
    static final Set<Integer> generations = ConcurrentHashMap.newKeySet();
    static final List<Throwable> errors = Collections.synchronizedList(new ArrayList<>());

    static class Member implements Runnable {
        final String name;
        volatile boolean stop;
        final Thread thread;
        final Map<TopicPartition, OffsetAndMetadata> uncommitted = new HashMap<>();
        KafkaConsumer<String, String> c;

        Member(String name) {
            this.name = name;
            this.thread = new Thread(this, name);
            thread.start();
        }

        void commitPending() {
            if (uncommitted.isEmpty()) return;
            try {
                c.commitSync(uncommitted);
                uncommitted.clear();
            } catch (RebalanceInProgressException e) {
                // Retried after the next poll completes the rebalance (or on revoke).
            }
        }

        public void run() {
            Properties p = new Properties();
            p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
            p.put(ConsumerConfig.GROUP_ID_CONFIG, group);
            p.put(ConsumerConfig.CLIENT_ID_CONFIG, name);
            p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
            p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
            p.put(ConsumerConfig.MAX_POLL_RECORDS_CONFIG, "40");
            if (assignor.startsWith("consumer-")) {
                // KIP-848: the broker assigns and owns session and heartbeat timing.
                p.put(ConsumerConfig.GROUP_PROTOCOL_CONFIG, "consumer");
                p.put(ConsumerConfig.GROUP_REMOTE_ASSIGNOR_CONFIG, assignor.substring("consumer-".length()));
            } else {
                p.put(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG, "6000");
                p.put(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG, "1000");
                p.put(ConsumerConfig.PARTITION_ASSIGNMENT_STRATEGY_CONFIG, assignor.equals("range")
                        ? RangeAssignor.class.getName() : CooperativeStickyAssignor.class.getName());
            }
            c = new KafkaConsumer<>(p, new StringDeserializer(), new StringDeserializer());
            try {
                c.subscribe(List.of(topic), new ConsumerRebalanceListener() {
                    public void onPartitionsRevoked(Collection<TopicPartition> parts) { commitPending(); }
                    public void onPartitionsAssigned(Collection<TopicPartition> parts) {
                        generations.add(c.groupMetadata().generationId());
                    }
                });
                int n = active.incrementAndGet();
                maxActive.accumulateAndGet(n, Math::max);
                while (!stop) {
                    commitPending();
                    ConsumerRecords<String, String> recs = c.poll(Duration.ofMillis(200));
                    for (ConsumerRecord<String, String> r : recs) {
                        if (seen.merge(r.value(), 1, Integer::sum) > 1) dups.incrementAndGet();
                        if (!r.value().startsWith("p" + phase + "-")) reread.incrementAndGet();
                        uncommitted.put(new TopicPartition(r.topic(), r.partition()), new OffsetAndMetadata(r.offset() + 1));
                    }
                    commitPending();
                    if (!recs.isEmpty()) Thread.sleep(100); // a stream, not a burst: members come and go mid-way
                }
                commitPending();
            } catch (Throwable t) {
                errors.add(t);
                t.printStackTrace();
            } finally {
                active.decrementAndGet();
                c.close(Duration.ofSeconds(10));
            }
        }

        void leave() throws InterruptedException {
            stop = true;
            thread.join(30_000);
        }
    }

    static void waitFor(int n, int deadlineSec) throws InterruptedException {
        long end = System.currentTimeMillis() + deadlineSec * 1000L;
        while (seen.size() < n && System.currentTimeMillis() < end && errors.isEmpty()) Thread.sleep(20);
    }

    public static void main(String[] args) throws Exception {
        bootstrap = args[0]; topic = args[1]; group = args[2]; assignor = args[3];
        phase = Integer.parseInt(args[4]);
        int count = Integer.parseInt(args[5]);
        Properties pp = new Properties();
        pp.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        try (KafkaProducer<String, String> prod = new KafkaProducer<>(pp, new StringSerializer(), new StringSerializer())) {
            for (int i = 0; i < count; i++) prod.send(new ProducerRecord<>(topic, "k" + i, "p" + phase + "-" + i));
            prod.flush();
        }
        List<Member> members = new ArrayList<>();
        if (phase == 1) {
            Member a = new Member("A");
            waitFor(count / 6, 60);
            Member b = new Member("B");
            waitFor(count / 3, 60);
            Member c = new Member("C");
            waitFor(count / 2, 60);
            b.leave();
            members.addAll(List.of(a, c));
        } else {
            for (String n : List.of("D", "E", "F")) members.add(new Member(n));
        }
        waitFor(count, 90);
        Thread.sleep(1500); // anything read twice shows up now
        for (Member m : members) m.leave();
        System.out.printf("RESULT produced=%d distinct=%d dups=%d reread=%d max_members=%d generations=%d errors=%d%n",
                count, seen.size(), dups.get(), reread.get(), maxActive.get(), generations.size(), errors.size());
        System.exit(errors.isEmpty() ? 0 : 1);
    }
}
