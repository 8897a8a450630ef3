// A Kafka Streams application with a KTable backed by a compacted changelog, run by
// compat/tests/test_compaction.py with Java's source launcher:
//   java -cp 'compat/.cache/kafka-lib/*' compat/java/StreamsCount.java \
//        BOOTSTRAP INPUT_TOPIC APPLICATION_ID STATE_DIR EXPECTED_TOTAL
// Topology: INPUT_TOPIC (String keys) -> groupByKey -> count() into the store "counts",
// caching off so every input record writes one changelog record
// (APPLICATION_ID-counts-changelog, created by Streams with cleanup.policy=compact; the
// extra topic configs below make it roll segments and become cleanable quickly).
// Runs until the counts in the store add up to EXPECTED_TOTAL (60 s at most), then prints
//   RESTORED <records restored into the store from the changelog at startup>
//   COUNT <key> <count>        (one line per key)
// and closes (committing offsets). Run again with an empty STATE_DIR, it must restore the
// counts from the changelog alone and go on counting from the committed input offsets.

import java.time.Duration;
import java.util.*;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.utils.Bytes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.KeyValue;
import org.apache.kafka.streams.StoreQueryParameters;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.processor.StateRestoreListener;
import org.apache.kafka.streams.state.KeyValueIterator;
import org.apache.kafka.streams.state.KeyValueStore;
import org.apache.kafka.streams.state.QueryableStoreTypes;
import org.apache.kafka.streams.state.ReadOnlyKeyValueStore;

public class StreamsCount {
    public static void main(String[] args) throws Exception {
        if (args.length != 5) {
            System.err.println("usage: StreamsCount BOOTSTRAP INPUT_TOPIC APPLICATION_ID STATE_DIR EXPECTED_TOTAL");
            System.exit(2);
        }
        long expectedTotal = Long.parseLong(args[4]);

        Map<String, String> changelogConfig = Map.of(
            "segment.ms", "100",
            "min.cleanable.dirty.ratio", "0.01",
            "min.compaction.lag.ms", "0");
        StreamsBuilder builder = new StreamsBuilder();
        builder.stream(args[1], org.apache.kafka.streams.kstream.Consumed.with(Serdes.String(), Serdes.String()))
            .groupByKey()
            .count(Materialized.<String, Long, KeyValueStore<Bytes, byte[]>>as("counts")
                .withCachingDisabled()
                .withLoggingEnabled(changelogConfig));

        Properties props = new Properties();
        props.put(StreamsConfig.APPLICATION_ID_CONFIG, args[2]);
        props.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, args[0]);
        props.put(StreamsConfig.STATE_DIR_CONFIG, args[3]);
        props.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, "100");
        props.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, "1");
        props.put(StreamsConfig.consumerPrefix("auto.offset.reset"), "earliest");
        // Small changelog batches: a batch spans a few input records, so the changelog
        // rolls (segment.ms) between input rounds and has sealed segments to compact,
        // whatever way the broker's fetches happen to group the input.
        props.put(StreamsConfig.producerPrefix("batch.size"), "512");
        props.put(StreamsConfig.producerPrefix("linger.ms"), "0");

        AtomicLong restored = new AtomicLong();
        KafkaStreams streams = new KafkaStreams(builder.build(), props);
        streams.setGlobalStateRestoreListener(new StateRestoreListener() {
            public void onRestoreStart(TopicPartition tp, String store, long start, long end) {}
            public void onBatchRestored(TopicPartition tp, String store, long batchEnd, long n) {
                restored.addAndGet(n);
            }
            public void onRestoreEnd(TopicPartition tp, String store, long total) {}
        });
        streams.start();
        try {
            long deadline = System.nanoTime() + Duration.ofSeconds(60).toNanos();
            Map<String, Long> counts = new TreeMap<>();
            long total = -1;
            while (total != expectedTotal) {
                if (System.nanoTime() > deadline) {
                    System.err.println("timed out: counts add up to " + total + ", expected " + expectedTotal
                        + " (state " + streams.state() + ")");
                    System.exit(1);
                }
                Thread.sleep(200);
                if (streams.state() != KafkaStreams.State.RUNNING) continue;
                try {
                    ReadOnlyKeyValueStore<String, Long> store = streams.store(
                        StoreQueryParameters.fromNameAndType("counts", QueryableStoreTypes.keyValueStore()));
                    counts.clear();
                    total = 0;
                    try (KeyValueIterator<String, Long> it = store.all()) {
                        while (it.hasNext()) {
                            KeyValue<String, Long> kv = it.next();
                            counts.put(kv.key, kv.value);
                            total += kv.value;
                        }
                    }
                } catch (org.apache.kafka.streams.errors.InvalidStateStoreException e) {
                    total = -1; // rebalancing or restoring: ask again
                }
            }
            System.out.println("RESTORED " + restored.get());
            for (Map.Entry<String, Long> e : counts.entrySet()) {
                System.out.println("COUNT " + e.getKey() + " " + e.getValue());
            }
        } finally {
            streams.close(Duration.ofSeconds(30));
        }
    }
}
