//! Creating a coordinator's internal topic on demand, as Kafka does: at the first
//! FindCoordinator that needs it, through the same proposal path as CreateTopics.
//! Until it exists and the key's partition has a live leader, FindCoordinator
//! answers COORDINATOR_NOT_AVAILABLE and clients retry.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::api::topics::{self, NewTopic};
use crate::broker::Broker;
use crate::protocol::ResponseError;

/// How long a FindCoordinator waits for a creation it started before answering
/// COORDINATOR_NOT_AVAILABLE: long enough that a one-node cluster answers the first
/// request, short enough not to stall a client.
const CREATE_WAIT: Duration = Duration::from_secs(2);

/// `__consumer_offsets` as Kafka creates it: `offsets.topic.*` settings, compacted,
/// 100 MiB segments, kept forever, room for large group metadata records.
fn group_topic(broker: &Broker) -> NewTopic {
    let c = &broker.config;
    let configs: BTreeMap<String, String> = [
        ("cleanup.policy", "compact".to_string()),
        ("segment.bytes", "104857600".to_string()),
        ("retention.ms", "-1".to_string()),
        ("retention.bytes", "-1".to_string()),
        ("max.message.bytes", (64u32 << 20).to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    NewTopic {
        name: super::GROUP_TOPIC.to_string(),
        partitions: c.offsets_topic_num_partitions,
        replication_factor: c.offsets_topic_rf(),
        assignments: None,
        configs,
    }
}

/// `__transaction_state` as Kafka creates it: `transaction.state.log.*` settings
/// (its `min.isr` as the topic's `min.insync.replicas`, which the transaction log's
/// appends honour), compacted, kept forever.
fn txn_topic(broker: &Broker) -> NewTopic {
    let c = &broker.config;
    let configs: BTreeMap<String, String> = [
        ("cleanup.policy", "compact".to_string()),
        ("segment.bytes", "104857600".to_string()),
        ("retention.ms", "-1".to_string()),
        ("retention.bytes", "-1".to_string()),
        ("min.insync.replicas", c.txn_topic_min_isr().to_string()),
        ("max.message.bytes", (64u32 << 20).to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    NewTopic {
        name: super::TXN_TOPIC.to_string(),
        partitions: c.txn_topic_num_partitions,
        replication_factor: c.txn_topic_rf(),
        assignments: None,
        configs,
    }
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
