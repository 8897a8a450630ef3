//! Metadata records: the entries of the metadata log. Each is one fact about the
//! cluster (a topic exists, a partition has this leader, a config changed). They
//! are the unit the controller quorum replicates, so they must stay small and
//! self-describing; JSON keeps them readable in a hex dump and evolvable.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ConfigResource {
    /// This broker's own dynamic configs (Kafka: resource name = the node id).
    Broker,
    Topic(String),
    /// Cluster-wide dynamic broker defaults (Kafka: resource name "", `--entity-default`).
    BrokerDefault,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum MetadataRecord {
    Topic { name: String, id: Uuid },
    /// The whole state of one partition. `adding_replicas` / `removing_replicas`
    /// describe a reassignment in progress (KIP-455); absent (empty) otherwise, and in
    /// logs written before reassignments existed.
    Partition {
        topic_id: Uuid,
        partition: i32,
        leader: i32,
        leader_epoch: i32,
        replicas: Vec<i32>,
        isr: Vec<i32>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        adding_replicas: Vec<i32>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        removing_replicas: Vec<i32>,
    },
    RemoveTopic { topic_id: Uuid },
    /// `value: None` deletes the override.
    Config { resource: ConfigResource, key: String, value: Option<String> },
    /// Producer ids below `next_producer_id` are allocated.
    ProducerIds { next_producer_id: i64 },
    /// A broker (re)joined with a fresh `incarnation` (one per process start) and
    /// the endpoint clients should use. It starts fenced, as in Kafka: it leads
    /// nothing and is not listed until its first heartbeat unfences it. A
    /// registration of a known id replaces the old incarnation (a restart).
    RegisterBroker { id: i32, incarnation: Uuid, host: String, port: i32, rack: Option<String> },
    /// The broker missed its session timeout or shut down: not listed, leads nothing.
    FenceBroker { id: i32 },
    UnfenceBroker { id: i32 },
    /// The cluster id every node answers with; logged once, by the first broker to register.
    ClusterId(String),
}

impl MetadataRecord {
    /// The record that sets partition `partition` of topic `topic_id` to `p`.
    pub fn partition(topic_id: Uuid, partition: i32, p: super::PartitionImage) -> MetadataRecord {
        MetadataRecord::Partition {
            topic_id,
            partition,
            leader: p.leader,
            leader_epoch: p.leader_epoch,
            replicas: p.replicas,
            isr: p.isr,
            adding_replicas: p.adding_replicas,
            removing_replicas: p.removing_replicas,
        }
    }
}
