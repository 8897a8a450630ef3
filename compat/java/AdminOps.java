// Java AdminClient operations, run by compat/tests/test_java_client.py:
//   java -cp 'compat/.cache/kafka-lib/*' compat/java/AdminOps.java BOOTSTRAP TOPIC
// describeCluster, createTopics (3 partitions, retention.ms set), listTopics,
// describeTopics, describeConfigs, createPartitions (3 -> 5), deleteTopics, and
// describeTopics of a missing topic. Prints "RESULT key=value" lines that the Python
// test asserts, "FAIL ..." lines for failed checks, and exits 1 if any check failed.

import java.util.*;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.*;
import org.apache.kafka.common.Node;
import org.apache.kafka.common.TopicPartitionInfo;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.errors.UnknownTopicOrPartitionException;

public class AdminOps {
    static final List<String> failures = new ArrayList<>();

    static void check(boolean ok, String what) { if (!ok) failures.add(what); }

    static void result(String key, Object value) { System.out.println("RESULT " + key + "=" + value); }

    static TopicDescription describe(Admin admin, String topic) throws Exception {
        return admin.describeTopics(List.of(topic)).allTopicNames().get(30, TimeUnit.SECONDS).get(topic);
    }

    /** Metadata propagates asynchronously in Kafka: poll until cond holds or 15 s pass. */
    interface Cond { boolean test() throws Exception; }
    static boolean eventually(Cond c) throws Exception {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(15);
        while (true) {
            if (c.test()) return true;
            if (System.nanoTime() > deadline) return false;
            Thread.sleep(100);
        }
    }

    public static void main(String[] args) throws Exception {
        if (args.length != 2) {
            System.err.println("usage: AdminOps BOOTSTRAP TOPIC");
            System.exit(2);
        }
        String topic = args[1];
        Properties props = new Properties();
        props.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, args[0]);
        props.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "30000");
        try (Admin admin = Admin.create(props)) {
            run(admin, topic);
        }
        for (String f : failures) System.out.println("FAIL " + f);
        System.exit(failures.isEmpty() ? 0 : 1);
    }

    static void run(Admin admin, String topic) throws Exception {
        // describeCluster
        DescribeClusterResult cluster = admin.describeCluster();
        Collection<Node> nodes = cluster.nodes().get(30, TimeUnit.SECONDS);
        Node controller = cluster.controller().get(30, TimeUnit.SECONDS);
        String clusterId = cluster.clusterId().get(30, TimeUnit.SECONDS);
        result("cluster.nodes", nodes.stream().map(n -> n.id() + "@" + n.host() + ":" + n.port()).sorted().toList());
        result("cluster.controller", controller == null || controller.isEmpty() ? "none" : controller.id());
        result("cluster.id.present", clusterId != null && !clusterId.isEmpty());

        // createTopics with one topic config set
        NewTopic nt = new NewTopic(topic, 3, (short) 1).configs(Map.of("retention.ms", "3600000"));
        admin.createTopics(List.of(nt)).all().get(30, TimeUnit.SECONDS);
        result("created", topic);

        // listTopics
        check(eventually(() -> admin.listTopics().names().get().contains(topic)), "listTopics lacks " + topic);
        result("listed", admin.listTopics().names().get(30, TimeUnit.SECONDS).contains(topic));

        // describeTopics
        check(eventually(() -> describe(admin, topic).partitions().stream().allMatch(p -> p.leader() != null)),
              "partitions without leader");
        TopicDescription d = describe(admin, topic);
        result("describe.partitions", d.partitions().size());
        result("describe.leaders", d.partitions().stream().map(p -> p.partition() + ":" + p.leader().id()).toList());
        result("describe.replicas", d.partitions().stream()
                .map(p -> p.replicas().stream().map(Node::id).toList()).toList());
        result("describe.isr", d.partitions().stream().map(p -> p.isr().stream().map(Node::id).toList()).toList());
        result("describe.internal", d.isInternal());
        result("describe.topicId.present", d.topicId() != null && !d.topicId().toString().equals("AAAAAAAAAAAAAAAAAAAAAA"));

        // describeConfigs
        ConfigResource res = new ConfigResource(ConfigResource.Type.TOPIC, topic);
        Config cfg = admin.describeConfigs(List.of(res)).all().get(30, TimeUnit.SECONDS).get(res);
        ConfigEntry retention = cfg.get("retention.ms"), cleanup = cfg.get("cleanup.policy");
        ConfigEntry maxMsg = cfg.get("max.message.bytes");
        result("config.count", cfg.entries().size());
        result("config.retention.ms", retention == null ? "missing" : retention.value());
        result("config.retention.ms.source", retention == null ? "missing" : retention.source());
        result("config.cleanup.policy", cleanup == null ? "missing" : cleanup.value());
        result("config.cleanup.policy.source", cleanup == null ? "missing" : cleanup.source());
        result("config.max.message.bytes.present", maxMsg != null && maxMsg.value() != null);

        // createPartitions 3 -> 5
        admin.createPartitions(Map.of(topic, NewPartitions.increaseTo(5))).all().get(30, TimeUnit.SECONDS);
        check(eventually(() -> describe(admin, topic).partitions().size() == 5
                && describe(admin, topic).partitions().stream().allMatch(p -> p.leader() != null)),
              "createPartitions not visible");
        TopicDescription d5 = describe(admin, topic);
        result("after.createPartitions.partitions", d5.partitions().size());
        result("after.createPartitions.ids", d5.partitions().stream().map(TopicPartitionInfo::partition).toList());

        // deleteTopics
        admin.deleteTopics(List.of(topic)).all().get(30, TimeUnit.SECONDS);
        check(eventually(() -> !admin.listTopics().names().get().contains(topic)), "topic still listed after delete");
        result("after.delete.listed", admin.listTopics().names().get(30, TimeUnit.SECONDS).contains(topic));

        // describeTopics of a topic that does not exist
        String missing = topic + "-missing";
        try {
            describe(admin, missing);
            result("missing.describe", "no-error");
        } catch (ExecutionException e) {
            result("missing.describe", e.getCause() instanceof UnknownTopicOrPartitionException
                    ? "UnknownTopicOrPartitionException" : e.getCause().toString());
        }
    }
}
