//! Leader election for one partition when a broker is fenced or comes back. Pure
//! functions over a `PartitionImage`, so every rule is testable without raft; the
//! controller loop (`super`) and controlled shutdown turn their answers into
//! `MetadataRecord::Partition` records.
//!
//! Kafka's rules, as the replication layer relies on them:
//! - a new leader comes from the ISR, in replica-assignment order, and must be live;
//! - every leader change bumps `leader_epoch`; an ISR shrink alone does not;
//! - with no live ISR member the partition goes offline (leader -1) and its ISR
//!   keeps the last member, so the replica holding every acknowledged write is
//!   known when it returns; unless unclean election is allowed, when any live
//!   replica may lead (its ISR is then just itself).

use crate::metadata::PartitionImage;

/// No leader: the partition is offline (clients get LEADER_NOT_AVAILABLE).
pub const NO_LEADER: i32 = -1;

/// The partition after `fenced` lost its liveness (fencing or controlled shutdown),
/// or None when it does not change. `is_live` answers for brokers other than
/// `fenced`, which is never considered live here.
pub fn on_fenced(p: &PartitionImage, fenced: i32, is_live: impl Fn(i32) -> bool, unclean: bool) -> Option<PartitionImage> {
    if !p.replicas.contains(&fenced) && p.leader != fenced {
        return None;
    }
    let live = |id: i32| id != fenced && is_live(id);
    let shrunk: Vec<i32> = p.isr.iter().copied().filter(|&r| r != fenced).collect();
    if p.leader != fenced {
        // A follower (or a replica of an offline partition) left: shrink the ISR,
        // but never to nothing, which would forget who holds the data.
        if shrunk.len() == p.isr.len() || shrunk.is_empty() {
            return None;
        }
        return Some(PartitionImage { isr: shrunk, ..p.clone() });
    }
    let epoch = p.leader_epoch + 1;
    if let Some(&leader) = p.replicas.iter().find(|&&r| shrunk.contains(&r) && live(r)) {
        return Some(PartitionImage { leader, leader_epoch: epoch, isr: shrunk, ..p.clone() });
    }
    if unclean && let Some(&leader) = p.replicas.iter().find(|&&r| live(r) && unclean_candidate(p, r)) {
        return Some(PartitionImage { leader, leader_epoch: epoch, isr: vec![leader], ..p.clone() });
    }
    let isr = if shrunk.is_empty() { vec![fenced] } else { shrunk };
    Some(PartitionImage { leader: NO_LEADER, leader_epoch: epoch, isr, ..p.clone() })
}

/// The partition after `back` was unfenced, or None when it does not change: an
/// offline partition whose ISR names it gets it as leader again; with unclean
/// election allowed, any offline partition it is a replica of does.
pub fn on_unfenced(p: &PartitionImage, back: i32, unclean: bool) -> Option<PartitionImage> {
    if p.leader != NO_LEADER || !p.replicas.contains(&back) {
        return None;
    }
    let epoch = p.leader_epoch + 1;
    if p.isr.contains(&back) {
        return Some(PartitionImage { leader: back, leader_epoch: epoch, ..p.clone() });
    }
    (unclean && unclean_candidate(p, back)).then(|| PartitionImage { leader: back, leader_epoch: epoch, isr: vec![back], ..p.clone() })
}

/// Whether replica `r` may lead `p` out of sync: not a replica a reassignment is
/// still adding, which may hold nothing of the partition yet.
pub fn unclean_candidate(p: &PartitionImage, r: i32) -> bool {
    !p.adding_replicas.contains(&r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::tests::part;

    #[test]
    fn dead_leader_hands_over_to_the_next_live_isr_member() {
        let p = part(1, 4, &[1, 2, 3], &[1, 2, 3]);
        assert_eq!(on_fenced(&p, 1, |_| true, false), Some(part(2, 5, &[1, 2, 3], &[2, 3])));
        // 2 is not live: 3 leads.
        assert_eq!(on_fenced(&p, 1, |id| id != 2, false), Some(part(3, 5, &[1, 2, 3], &[2, 3])));
        // Replica order, not ISR order, decides.
        let p = part(1, 0, &[1, 3, 2], &[2, 1, 3]);
        assert_eq!(on_fenced(&p, 1, |_| true, false).unwrap().leader, 3);
    }

    #[test]
    fn a_dead_follower_only_leaves_the_isr() {
        let p = part(1, 4, &[1, 2, 3], &[1, 2, 3]);
        assert_eq!(on_fenced(&p, 2, |_| true, false), Some(part(1, 4, &[1, 2, 3], &[1, 3])));
        // Already out of the ISR, or not a replica: nothing to do.
        assert_eq!(on_fenced(&part(1, 4, &[1, 2, 3], &[1, 3]), 2, |_| true, false), None);
        assert_eq!(on_fenced(&p, 7, |_| true, false), None);
    }

    #[test]
    fn no_live_isr_member_leaves_the_partition_offline_with_its_last_isr() {
        let p = part(1, 2, &[1, 2], &[1]);
        assert_eq!(on_fenced(&p, 1, |_| true, false), Some(part(NO_LEADER, 3, &[1, 2], &[1])));
        let p = part(1, 2, &[1, 2, 3], &[1, 2]);
        assert_eq!(on_fenced(&p, 1, |id| id == 3, false), Some(part(NO_LEADER, 3, &[1, 2, 3], &[2])));
        // Single replica: offline, the ISR remembers it.
        assert_eq!(on_fenced(&part(1, 0, &[1], &[1]), 1, |_| true, false), Some(part(NO_LEADER, 1, &[1], &[1])));
        // Offline partitions keep their last ISR member when it is fenced again.
        assert_eq!(on_fenced(&part(NO_LEADER, 3, &[1, 2], &[1]), 1, |_| true, false), None);
    }

    #[test]
    fn unclean_election_takes_any_live_replica() {
        let p = part(1, 2, &[1, 2, 3], &[1]);
        assert_eq!(on_fenced(&p, 1, |id| id == 3, true), Some(part(3, 3, &[1, 2, 3], &[3])));
        // Clean candidates still win when they exist.
        let p = part(1, 2, &[1, 2, 3], &[1, 2]);
        assert_eq!(on_fenced(&p, 1, |_| true, true).unwrap().isr, vec![2]);
        // Nobody live at all: offline either way.
        assert_eq!(on_fenced(&part(1, 0, &[1, 2], &[1]), 1, |_| false, true).unwrap().leader, NO_LEADER);
    }

    #[test]
    fn unfencing_restores_leadership_of_offline_partitions() {
        let offline = part(NO_LEADER, 3, &[1, 2], &[1]);
        assert_eq!(on_unfenced(&offline, 1, false), Some(part(1, 4, &[1, 2], &[1])));
        assert_eq!(on_unfenced(&offline, 2, false), None, "2 may miss acknowledged writes");
        assert_eq!(on_unfenced(&offline, 2, true), Some(part(2, 4, &[1, 2], &[2])));
        assert_eq!(on_unfenced(&part(2, 3, &[1, 2], &[2]), 1, false), None, "led already");
        // The full cycle: fence then unfence returns to the same leader, two epochs on.
        let p = part(1, 0, &[1], &[1]);
        let down = on_fenced(&p, 1, |_| true, false).unwrap();
        assert_eq!(on_unfenced(&down, 1, false), Some(part(1, 2, &[1], &[1])));
    }
}
