//! Requested leader elections (ElectLeaders, KIP-183 / KIP-460) and the automatic
//! preferred-leader rebalance (`auto.leader.rebalance.enable`): pure functions over
//! the image, like `election`, which handles the elections liveness forces.
//!
//! - PREFERRED: the first replica (the preferred leader) takes over if it is live
//!   and in the ISR. During a reassignment the first replica is the target's first.
//! - UNCLEAN: a partition without a leader gets one: a live ISR member if there is
//!   one, else any live replica (its ISR is then just itself), as Kafka's
//!   PartitionChangeBuilder does for an unclean election.
//!
//! The rebalance follows Kafka's controller: for each broker, the share of the
//! partitions it is preferred leader of that it does not lead; above
//! `leader.imbalance.per.broker.percentage`, those partitions get a preferred
//! election (where it can succeed).

use std::collections::BTreeMap;

use super::election::{NO_LEADER, unclean_candidate};
use crate::metadata::{Image, MetadataRecord, PartitionImage};

/// ElectLeaders' `election_type` (absent before v1: preferred).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElectionType {
    Preferred,
    Unclean,
}

impl ElectionType {
    pub fn from_wire(t: i8) -> Option<ElectionType> {
        match t {
            0 => Some(ElectionType::Preferred),
            1 => Some(ElectionType::Unclean),
            _ => None,
        }
    }
}

/// Why an election made no change (each maps to one Kafka error code).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ElectError {
    /// ELECTION_NOT_NEEDED: the preferred replica leads already / a leader exists.
    #[error("Leader election not needed for topic partition.")]
    NotNeeded,
    /// PREFERRED_LEADER_NOT_AVAILABLE: the preferred replica is fenced or out of sync.
    #[error("The preferred leader was not available.")]
    PreferredNotAvailable,
    /// ELIGIBLE_LEADERS_NOT_AVAILABLE: no live replica may lead.
    #[error("Eligible topic partition leaders are not available.")]
    EligibleNotAvailable,
}

/// The first replica: the leader a partition should have.
pub fn preferred_leader(p: &PartitionImage) -> i32 {
    p.replicas.first().copied().unwrap_or(NO_LEADER)
}

/// `p` after an election of type `kind`, leader epoch + 1.
pub fn elect(p: &PartitionImage, kind: ElectionType, is_live: impl Fn(i32) -> bool) -> Result<PartitionImage, ElectError> {
    let leader = match kind {
        ElectionType::Preferred => {
            let preferred = preferred_leader(p);
            if p.leader == preferred {
                return Err(ElectError::NotNeeded);
            }
            if preferred == NO_LEADER || !p.isr.contains(&preferred) || !is_live(preferred) {
                return Err(ElectError::PreferredNotAvailable);
            }
            preferred
        }
        ElectionType::Unclean => {
            if p.leader != NO_LEADER {
                return Err(ElectError::NotNeeded);
            }
            let clean = p.replicas.iter().copied().find(|&r| p.isr.contains(&r) && is_live(r));
            match clean {
                Some(r) => r,
                None => {
                    let r = p.replicas.iter().copied().find(|&r| is_live(r) && unclean_candidate(p, r)).ok_or(ElectError::EligibleNotAvailable)?;
                    return Ok(PartitionImage { leader: r, leader_epoch: p.leader_epoch + 1, isr: vec![r], ..p.clone() });
                }
            }
        }
    };
    Ok(PartitionImage { leader, leader_epoch: p.leader_epoch + 1, ..p.clone() })
}

/// The preferred elections the automatic rebalance makes on `img`: for every broker
/// whose share of not-led preferred partitions exceeds `threshold_percent`, those
/// of its partitions where the election can succeed.
pub fn rebalance_records(img: &Image, threshold_percent: u32) -> Vec<MetadataRecord> {
    // Preferred broker → (partitions it is preferred for, those it does not lead).
    let mut share: BTreeMap<i32, (usize, usize)> = BTreeMap::new();
    for topic in img.topics.values() {
        for p in &topic.partitions {
            let e = share.entry(preferred_leader(p)).or_default();
            e.0 += 1;
            e.1 += usize::from(p.leader != preferred_leader(p));
        }
    }
    let imbalanced = |b: i32| share.get(&b).is_some_and(|&(total, off)| off * 100 > total * threshold_percent as usize);
    let mut out = Vec::new();
    for topic in img.topics.values() {
        for (i, p) in topic.partitions.iter().enumerate() {
            if !imbalanced(preferred_leader(p)) {
                continue;
            }
            if let Ok(next) = elect(p, ElectionType::Preferred, |b| img.is_live(b)) {
                out.push(MetadataRecord::partition(topic.id, i as i32, next));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::tests::part;

    #[test]
    fn preferred_election_moves_leadership_to_the_first_replica() {
        let p = part(2, 3, &[1, 2, 3], &[1, 2, 3]);
        assert_eq!(elect(&p, ElectionType::Preferred, |_| true), Ok(part(1, 4, &[1, 2, 3], &[1, 2, 3])));
        assert_eq!(elect(&part(1, 3, &[1, 2], &[1, 2]), ElectionType::Preferred, |_| true), Err(ElectError::NotNeeded));
        // Out of sync, or fenced: not available.
        assert_eq!(elect(&part(2, 3, &[1, 2], &[2]), ElectionType::Preferred, |_| true), Err(ElectError::PreferredNotAvailable));
        assert_eq!(elect(&p, ElectionType::Preferred, |b| b != 1), Err(ElectError::PreferredNotAvailable));
        // An offline partition whose preferred replica is in sync and live gets it back.
        assert_eq!(elect(&part(NO_LEADER, 3, &[1, 2], &[1]), ElectionType::Preferred, |_| true).unwrap().leader, 1);
    }

    #[test]
    fn unclean_election_only_fills_a_missing_leader() {
        assert_eq!(elect(&part(2, 3, &[1, 2], &[2]), ElectionType::Unclean, |_| true), Err(ElectError::NotNeeded));
        // A live ISR member is preferred over an out-of-sync one.
        let offline = part(NO_LEADER, 3, &[1, 2, 3], &[3]);
        assert_eq!(elect(&offline, ElectionType::Unclean, |_| true), Ok(part(3, 4, &[1, 2, 3], &[3])));
        // ISR member dead: any live replica, alone in the ISR.
        assert_eq!(elect(&offline, ElectionType::Unclean, |b| b == 2), Ok(part(2, 4, &[1, 2, 3], &[2])));
        assert_eq!(elect(&offline, ElectionType::Unclean, |_| false), Err(ElectError::EligibleNotAvailable));
        // A replica still being added never leads uncleanly.
        let moving = PartitionImage { adding_replicas: vec![2], ..offline };
        assert_eq!(elect(&moving, ElectionType::Unclean, |b| b == 2), Err(ElectError::EligibleNotAvailable));
    }

    #[test]
    fn rebalance_acts_on_brokers_over_the_imbalance_threshold() {
        use uuid::Uuid;
        let mut img = Image::empty();
        let id = Uuid::new_v4();
        let mut rs = vec![MetadataRecord::Topic { name: "t".into(), id }];
        for b in 1..=3 {
            rs.push(MetadataRecord::RegisterBroker { id: b, incarnation: Uuid::new_v4(), host: "h".into(), port: 1, rack: None });
            rs.push(MetadataRecord::UnfenceBroker { id: b });
        }
        // Broker 1 is preferred for 10 partitions and leads 9 (10% off: not above 10%);
        // broker 2 for one it does not lead (100%).
        for i in 0..10 {
            let leader = if i == 0 { 3 } else { 1 };
            rs.push(MetadataRecord::partition(id, i, part(leader, 0, &[1, 3], &[1, 3])));
        }
        rs.push(MetadataRecord::partition(id, 10, part(3, 0, &[2, 3], &[2, 3])));
        for (o, r) in rs.iter().enumerate() {
            img.apply(o as i64, r).unwrap();
        }
        let out = rebalance_records(&img, 10);
        assert_eq!(out, vec![MetadataRecord::partition(id, 10, part(2, 1, &[2, 3], &[2, 3]))]);
        // A stricter threshold moves broker 1's partition too.
        assert_eq!(rebalance_records(&img, 5).len(), 2);
        // A fenced preferred broker is not elected.
        img.apply(99, &MetadataRecord::FenceBroker { id: 2 }).unwrap();
        assert!(rebalance_records(&img, 10).is_empty());
    }
}
