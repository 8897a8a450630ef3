//! What the group coordinator (and, later, the transaction coordinator) share, as
//! in Kafka: coordinator state lives in the partitions of an internal topic in the
//! metadata image (`__consumer_offsets`, `__transaction_state`), a key (group id,
//! transactional id) maps to one partition by hash, and the node that leads that
//! partition coordinates the key. When leadership moves, the new leader replays the
//! partition (replicated like any other) and takes over.
//!
//! - [`partition_for`]: Kafka's key → partition hash.
//! - `shard`: a shard's log (append, wait until replicated, replay) and the map of
//!   shards with its load/unload state machine, generic over what a shard holds.
//! - `topic`: creating an internal topic on demand (FindCoordinator).
//! - [`reconciled`]: the hook `ReplicaManager::reconcile` calls; it tells each
//!   coordinator which partitions of its topic this node now leads.

pub mod shard;
pub mod topic;

use std::collections::HashMap;
use std::sync::Arc;

use crate::broker::Broker;
use crate::log::manager::{Partition, TopicPartition};
use crate::metadata::{BrokerImage, Image};
use crate::replication::LeaderState;

/// The group coordinator's internal topic.
pub const GROUP_TOPIC: &str = "__consumer_offsets";
/// The transaction coordinator's internal topic.
pub const TXN_TOPIC: &str = "__transaction_state";

/// Kafka's `Topic.isInternal`: names the cluster reserves for its coordinators.
pub fn is_internal(topic: &str) -> bool {
    topic == GROUP_TOPIC || topic == TXN_TOPIC
}

/// Java's `String.hashCode` (over UTF-16 code units, wrapping), which Kafka hashes
/// coordinator keys with.
pub fn java_string_hash(s: &str) -> i32 {
    s.encode_utf16().fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(c as i32))
}

/// Kafka's `Utils.abs(key.hashCode()) % partitions` (`Utils.abs` is `n & 0x7fffffff`):
/// the internal-topic partition that coordinates `key`.
pub fn partition_for(key: &str, partitions: i32) -> i32 {
    if partitions <= 0 {
        return 0;
    }
    (java_string_hash(key) & 0x7fff_ffff) % partitions
}

/// One partition of an internal topic this node leads: its log and leadership.
#[derive(Clone)]
pub struct Led {
    pub epoch: i32,
    pub log: Arc<Partition>,
    pub leader: Arc<LeaderState>,
}

/// What this node leads of one internal topic, after a reconcile.
#[derive(Clone, Default)]
pub struct Leadership {
    /// The topic's partition count (0: the topic does not exist yet).
    pub partitions: i32,
    pub led: HashMap<i32, Led>,
}

/// The partitions of `topic` this node leads (as the replica manager now has them).
pub fn leadership(broker: &Broker, image: &Image, topic: &str) -> Leadership {
    let Some(t) = image.topic(topic) else { return Leadership::default() };
    let me = broker.config.node_id;
    let mut led = HashMap::new();
    for (i, p) in t.partitions.iter().enumerate() {
        if p.leader != me {
            continue;
        }
        let index = i as i32;
        let Some(leader) = broker.replicas.leader_state(t.id, index).filter(|s| s.epoch == p.leader_epoch) else { continue };
        let Some(log) = broker.logs.get(&TopicPartition::new(topic, index)) else { continue };
        led.insert(index, Led { epoch: p.leader_epoch, log, leader });
    }
    Leadership { partitions: t.partitions.len() as i32, led }
}

/// Called at the end of every `ReplicaManager::reconcile`: each coordinator learns
/// which of its partitions this node leads now, and loads or unloads shards (in the
/// background: this must not block the reconcile). A second coordinator is one more
/// line here.
pub fn reconciled(broker: &Arc<Broker>, image: &Image) {
    broker.groups.set_leadership(broker, leadership(broker, image, GROUP_TOPIC));
    broker.txns.set_leadership(broker, image, leadership(broker, image, TXN_TOPIC));
}

/// FindCoordinator for a group: the live leader of its `__consumer_offsets`
/// partition. None (COORDINATOR_NOT_AVAILABLE) while the topic does not exist or
/// that partition has no live leader.
pub fn group_coordinator(image: &Image, group: &str) -> Option<BrokerImage> {
    key_coordinator(image, GROUP_TOPIC, group)
}

/// FindCoordinator for a transactional id: the live leader of its
/// `__transaction_state` partition (None as for [`group_coordinator`]).
pub fn txn_coordinator(image: &Image, transactional_id: &str) -> Option<BrokerImage> {
    key_coordinator(image, TXN_TOPIC, transactional_id)
}

fn key_coordinator(image: &Image, topic: &str, key: &str) -> Option<BrokerImage> {
    let t = image.topic(topic)?;
    let p = t.partitions.get(partition_for(key, t.partitions.len() as i32) as usize)?;
    if p.leader < 0 || !image.is_live(p.leader) {
        return None;
    }
    image.brokers.get(&p.leader).cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_like_java() {
        // Values of Java's "...".hashCode().
        assert_eq!(java_string_hash(""), 0);
        assert_eq!(java_string_hash("a"), 97);
        assert_eq!(java_string_hash("hello"), 99_162_322);
        assert_eq!(java_string_hash("my-group"), -1_906_497_762);
        assert_eq!(java_string_hash("polygenelubricants"), i32::MIN);
        // A character outside the BMP counts as two UTF-16 units: "😀" is \ud83d\ude00.
        assert_eq!(java_string_hash("😀"), 0xd83d * 31 + 0xde00);
    }

    #[test]
    fn partition_is_abs_hash_mod_partitions() {
        assert_eq!(partition_for("hello", 50), 99_162_322 % 50);
        // Utils.abs(Integer.MIN_VALUE) is 0, not an overflow.
        assert_eq!(partition_for("polygenelubricants", 50), 0);
        for k in ["", "g", "console-consumer-12345", "ünïcode"] {
            let p = partition_for(k, 50);
            assert!((0..50).contains(&p));
        }
        assert_eq!(partition_for("x", 0), 0);
    }
}
