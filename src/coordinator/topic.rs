//! Creating a coordinator's internal topic on demand, as Kafka does: at the first
//! FindCoordinator that needs it, through the same proposal path as CreateTopics.
//! Until it exists and the key's partition has a live leader, FindCoordinator
//! answers COORDINATOR_NOT_AVAILABLE and clients retry.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::api::topics::{self, NewTopic};
use crate::broker::Broker;
use crate::log::LogConfig;
use crate::protocol::ResponseError;

/// How long a FindCoordinator waits for a creation it started before answering
/// COORDINATOR_NOT_AVAILABLE: long enough that a one-node cluster answers the first
/// request, short enough not to stall a client.
const CREATE_WAIT: Duration = Duration::from_secs(2);

/// Kafka's `offsets.topic.segment.bytes` (and the transaction log's): small enough
/// that sealed segments, which the cleaner compacts, appear long before a 1 GiB
/// segment would fill.
const SEGMENT_BYTES: u64 = 100 * 1024 * 1024;
/// Room for large group metadata and transaction state records.
const MAX_MESSAGE_BYTES: usize = 64 << 20;

/// An internal topic as Kafka creates its coordinators' topics: compacted, 100 MiB
/// segments, kept forever, room for large records, plus `extra` configs.
fn internal_topic(name: &str, partitions: i32, replication_factor: i16, extra: &[(&str, String)]) -> NewTopic {
    let base = [
        ("cleanup.policy", "compact".to_string()),
        ("segment.bytes", SEGMENT_BYTES.to_string()),
        ("retention.ms", "-1".to_string()),
        ("retention.bytes", "-1".to_string()),
        ("max.message.bytes", MAX_MESSAGE_BYTES.to_string()),
    ];
    let configs: BTreeMap<String, String> = base.iter().chain(extra).map(|(k, v)| (k.to_string(), v.clone())).collect();
    NewTopic { name: name.to_string(), partitions, replication_factor, assignments: None, configs }
}

/// The settings of a standalone coordinator log (unit tests): what the internal
/// topics' configs give a led partition.
pub fn log_config() -> LogConfig {
    let mut config = LogConfig { max_message_bytes: MAX_MESSAGE_BYTES, segment_bytes: SEGMENT_BYTES, ..LogConfig::default() };
    // Coordinator state must outlive any time or size retention.
    config.retention_ms = crate::log::UNLIMITED;
    config.retention_bytes = crate::log::UNLIMITED;
    config.cleanup_delete = false;
    config.cleanup_compact = true;
    config
}

/// `__consumer_offsets` as Kafka creates it, with the `offsets.topic.*` settings.
fn group_topic(broker: &Broker) -> NewTopic {
    let c = &broker.config;
    internal_topic(super::GROUP_TOPIC, c.offsets_topic_num_partitions, c.offsets_topic_rf(), &[])
}

/// `__transaction_state` as Kafka creates it, with the `transaction.state.log.*`
/// settings (its `min.isr` as the topic's `min.insync.replicas`, which the
/// transaction log's appends honour).
fn txn_topic(broker: &Broker) -> NewTopic {
    let c = &broker.config;
    internal_topic(super::TXN_TOPIC, c.txn_topic_num_partitions, c.txn_topic_rf(), &[("min.insync.replicas", c.txn_topic_min_isr().to_string())])
}

/// Make sure `__consumer_offsets` exists or is being created (see [`ensure`]).
pub async fn ensure_group_topic(broker: &Arc<Broker>) -> bool {
    ensure(broker, group_topic(broker)).await
}

/// Make sure `__transaction_state` exists or is being created (see [`ensure`]).
pub async fn ensure_txn_topic(broker: &Arc<Broker>) -> bool {
    ensure(broker, txn_topic(broker)).await
}

/// Make sure internal topic `t` exists or is being created. Returns once it exists,
/// or after a short wait (false). Not created while fewer brokers than its
/// replication factor are live (Kafka's rule: it would be under-replicated forever).
async fn ensure(broker: &Arc<Broker>, t: NewTopic) -> bool {
    let name: &'static str = if t.name == super::GROUP_TOPIC { super::GROUP_TOPIC } else { super::TXN_TOPIC };
    if broker.image().topic(name).is_some() {
        return true;
    }
    let live = broker.image().live_brokers().len();
    if live < t.replication_factor.max(1) as usize {
        tracing::info!(topic = name, live, replication_factor = t.replication_factor, "not creating an internal topic until enough brokers are live");
        return false;
    }
    if broker.creating_internal.lock().insert(name) {
        let b = broker.clone();
        tokio::spawn(async move {
            match topics::create_internal(&b, t).await {
                Ok(_) => tracing::info!(topic = name, "created internal topic"),
                Err(e) if e.error == ResponseError::TopicAlreadyExists => {}
                Err(e) => tracing::warn!(topic = name, error = %e.message, "creating internal topic failed"),
            }
            b.creating_internal.lock().remove(name);
        });
    }
    let deadline = tokio::time::Instant::now() + CREATE_WAIT;
    let mut images = broker.metadata.subscribe();
    loop {
        if broker.image().topic(name).is_some() {
            return true;
        }
        if !matches!(tokio::time::timeout_at(deadline, images.changed()).await, Ok(Ok(()))) {
            return broker.image().topic(name).is_some();
        }
    }
}
