// AlterPartitionReassignments / ListPartitionReassignments through Kafka's AdminClient,
// for what kafka-reassign-partitions does not send: a cancel of a partition that is not
// moving (the tool skips those client-side) and an invalid target it would send as is.
//
// Usage: Reassign BOOTSTRAP TOPIC PARTITION (cancel | list | BROKER,BROKER,...)
// Prints one line: "ok", the exception's simple class name, or for list the
// reassignments as "topic-partition replicas=[..] adding=[..] removing=[..]" lines
// (or "none").

import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Properties;
import java.util.concurrent.ExecutionException;
import java.util.stream.Collectors;
import java.util.stream.Stream;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewPartitionReassignment;
import org.apache.kafka.clients.admin.PartitionReassignment;
import org.apache.kafka.common.TopicPartition;

public class Reassign {
    public static void main(String[] args) throws Exception {
        Properties props = new Properties();
        props.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, args[0]);
        TopicPartition tp = new TopicPartition(args[1], Integer.parseInt(args[2]));
        try (Admin admin = Admin.create(props)) {
            if (args[3].equals("list")) {
                Map<TopicPartition, PartitionReassignment> all = admin.listPartitionReassignments().reassignments().get();
                if (all.isEmpty()) System.out.println("none");
                all.forEach((p, r) -> System.out.println(p + " replicas=" + r.replicas() + " adding=" + r.addingReplicas()
                        + " removing=" + r.removingReplicas()));
                return;
            }
            Optional<NewPartitionReassignment> target = args[3].equals("cancel") ? Optional.empty()
                    : Optional.of(new NewPartitionReassignment(args[3].isEmpty() ? List.of()
                            : Stream.of(args[3].split(",")).map(Integer::valueOf).collect(Collectors.toList())));
            try {
                admin.alterPartitionReassignments(Map.of(tp, target)).all().get();
                System.out.println("ok");
            } catch (ExecutionException e) {
                System.out.println(e.getCause().getClass().getSimpleName());
            }
        }
    }
}
