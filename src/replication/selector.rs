//! Which replica a consumer should read a partition from (KIP-392, "fetch from the
//! closest replica"): Kafka's `replica.selector.class`. With no selector (the default)
//! consumers always read from the leader. With Kafka's `RackAwareReplicaSelector` a
//! leader answers a consumer's fetch (v11+, with its `client.rack`) from another rack
//! with `preferred_read_replica` — an in-sync follower in the consumer's rack that
//! has the fetch offset — and no records; the consumer then fetches from that
//! follower (which serves up to its own high watermark) until its metadata ages out.

/// `replica.selector.class`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReplicaSelector {
    /// Unset, or Kafka's `LeaderSelector`: consumers read from leaders.
    #[default]
    Leader,
    /// Kafka's `RackAwareReplicaSelector`.
    RackAware,
}

pub const RACK_AWARE_CLASS: &str = "org.apache.kafka.common.replica.RackAwareReplicaSelector";
const LEADER_CLASS: &str = "org.apache.kafka.common.replica.LeaderSelector";

impl ReplicaSelector {
    /// The selector a `replica.selector.class` value names; Err for a class sluice
    /// does not have (a custom Java class cannot be loaded here).
    pub fn from_class(class: &str) -> Result<ReplicaSelector, String> {
        match class.trim() {
            "" | LEADER_CLASS => Ok(ReplicaSelector::Leader),
            RACK_AWARE_CLASS => Ok(ReplicaSelector::RackAware),
            other => Err(format!("unknown replica selector {other:?}: sluice has {RACK_AWARE_CLASS} and {LEADER_CLASS}")),
        }
    }
}

/// A replica that could serve a consumer's read, as the leader sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadCandidate<'a> {
    pub broker: i32,
    pub rack: Option<&'a str>,
    /// Its log end offset (the leader's own, or a follower's last fetch offset).
    pub log_end: i64,
    /// Milliseconds since it last had everything the leader had (0 for the leader).
    pub ms_since_caught_up: u64,
}

/// The replica `selector` prefers for a consumer in `client_rack`, when it is not the
/// leader. `followers` are the ones eligible to serve (in sync, holding the fetch
/// offset). As Kafka's RackAwareReplicaSelector: the replicas in the client's rack,
/// the leader if it is one of them, else the one with the highest log end (then the
/// most recently caught up); None (read from the leader) when none is in the rack.
pub fn preferred_read_replica(selector: ReplicaSelector, client_rack: &str, leader: &ReadCandidate, followers: &[ReadCandidate]) -> Option<i32> {
    if selector != ReplicaSelector::RackAware || client_rack.is_empty() || leader.rack == Some(client_rack) {
        return None;
    }
    followers
        .iter()
        .filter(|f| f.rack == Some(client_rack) && f.broker != leader.broker)
        .max_by(|a, b| a.log_end.cmp(&b.log_end).then(b.ms_since_caught_up.cmp(&a.ms_since_caught_up)).then(b.broker.cmp(&a.broker)))
        .map(|f| f.broker)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(broker: i32, rack: Option<&str>, log_end: i64, lag: u64) -> ReadCandidate<'_> {
        ReadCandidate { broker, rack, log_end, ms_since_caught_up: lag }
    }

    #[test]
    fn classes_parse() {
        assert_eq!(ReplicaSelector::from_class(""), Ok(ReplicaSelector::Leader));
        assert_eq!(ReplicaSelector::from_class(LEADER_CLASS), Ok(ReplicaSelector::Leader));
        assert_eq!(ReplicaSelector::from_class(RACK_AWARE_CLASS), Ok(ReplicaSelector::RackAware));
        assert!(ReplicaSelector::from_class("com.example.Mine").is_err());
    }

    #[test]
    fn the_closest_caught_up_follower_is_preferred() {
        let leader = c(1, Some("west"), 100, 0);
        let followers = [c(2, Some("east"), 90, 5), c(3, Some("east"), 100, 50), c(4, Some("east"), 100, 10), c(5, Some("north"), 100, 0)];
        let rack_aware = ReplicaSelector::RackAware;
        // Highest log end, then the most recently caught up.
        assert_eq!(preferred_read_replica(rack_aware, "east", &leader, &followers), Some(4));
        assert_eq!(preferred_read_replica(rack_aware, "north", &leader, &followers), Some(5));
        // The leader is in the client's rack, the client has no rack, or no replica is in it: the leader.
        assert_eq!(preferred_read_replica(rack_aware, "west", &leader, &followers), None);
        assert_eq!(preferred_read_replica(rack_aware, "", &leader, &followers), None);
        assert_eq!(preferred_read_replica(rack_aware, "south", &leader, &followers), None);
        // No selector configured: always the leader.
        assert_eq!(preferred_read_replica(ReplicaSelector::Leader, "east", &leader, &followers), None);
    }
}
