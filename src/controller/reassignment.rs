//! Partition reassignment (KIP-455), as KRaft's controller runs it: pure functions
//! over a `PartitionImage`, so every transition is testable without raft. The
//! AlterPartitionReassignments handler (`api/alter_partition_reassignments.rs`)
//! starts and cancels; the leader's ISR proposals (`replication::propose_isr`) call
//! [`complete_if_done`], since a reassignment can only finish when an ISR grows.
//!
//! A reassignment in progress is visible in the image alone:
//! - `replicas` = target, then the current replicas not in the target;
//! - `adding_replicas` = target − current, `removing_replicas` = current − target.
//!
//! New replicas are ordinary followers meanwhile (`ReplicaManager::reconcile` opens
//! their logs and starts fetching). Once every adding replica is in the ISR the
//! partition becomes the target: ISR ∩ target, a new leader (epoch + 1) when the
//! old one is removed, and the removed replicas delete their logs on reconcile.

use super::election::NO_LEADER;
use crate::metadata::PartitionImage;

/// Why a reassignment request is refused (each maps to one Kafka error code).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ReassignError {
    /// INVALID_REPLICA_ASSIGNMENT.
    #[error("{0}")]
    InvalidAssignment(String),
    /// NO_REASSIGNMENT_IN_PROGRESS: a cancel with nothing to cancel.
    #[error("no partition reassignment is in progress")]
    NoneInProgress,
}

/// Check a requested target: non-empty, no duplicates, only registered brokers.
/// `allow_rf_change` false (AlterPartitionReassignments v1) forbids a target whose
/// size differs from the partition's original replica count (KIP-860).
pub fn validate(p: &PartitionImage, target: &[i32], is_registered: impl Fn(i32) -> bool, allow_rf_change: bool) -> Result<(), ReassignError> {
    let invalid = |m: String| Err(ReassignError::InvalidAssignment(m));
    if target.is_empty() {
        return invalid("The manual partition assignment includes an empty replica list.".into());
    }
    for (i, r) in target.iter().enumerate() {
        if target[..i].contains(r) {
            return invalid(format!("The manual partition assignment includes the broker {r} more than once."));
        }
        if !is_registered(*r) {
            return invalid(format!("The manual partition assignment includes broker {r}, but no such broker is registered."));
        }
    }
    let original = original_replicas(p);
    if !allow_rf_change && original.len() != target.len() {
        return invalid(format!(
            "The replication factor is changed from {} to {} but allowReplicationFactorChange is false.",
            original.len(),
            target.len()
        ));
    }
    Ok(())
}

/// The replicas before the reassignment in progress (all of them when none is), in
/// the merged order (Kafka's revert keeps it too).
pub fn original_replicas(p: &PartitionImage) -> Vec<i32> {
    p.replicas.iter().copied().filter(|r| !p.adding_replicas.contains(r)).collect()
}

/// The target of the reassignment in progress (the replicas when none is).
pub fn target_replicas(p: &PartitionImage) -> Vec<i32> {
    p.replicas.iter().copied().filter(|r| !p.removing_replicas.contains(r)).collect()
}

/// `p` with a reassignment to `target` started (or, when nothing needs adding,
/// already finished); None when `p` already is `target`. A new target replaces
/// one in progress: the replicas merged so far count as current.
/// `target` must have passed [`validate`].
pub fn start(p: &PartitionImage, target: &[i32], is_live: impl Fn(i32) -> bool) -> Option<PartitionImage> {
    let current = &p.replicas;
    let mut replicas = target.to_vec();
    replicas.extend(current.iter().copied().filter(|r| !target.contains(r)));
    let next = PartitionImage {
        replicas,
        adding_replicas: target.iter().copied().filter(|r| !current.contains(r)).collect(),
        removing_replicas: current.iter().copied().filter(|r| !target.contains(r)).collect(),
        ..p.clone()
    };
    let next = complete_if_done(&next, is_live).unwrap_or(next);
    (next != *p).then_some(next)
}

/// `p` with its reassignment cancelled: back to the original replicas, the adding
/// ones dropped from the ISR; a leader that was being added hands over (epoch + 1).
pub fn cancel(p: &PartitionImage, is_live: impl Fn(i32) -> bool) -> Result<PartitionImage, ReassignError> {
    if !p.is_reassigning() {
        return Err(ReassignError::NoneInProgress);
    }
    let replicas = original_replicas(p);
    let mut isr: Vec<i32> = p.isr.iter().copied().filter(|r| replicas.contains(r)).collect();
    if isr.is_empty() {
        // Only adding replicas were in sync: the originals' data is all there is to
        // go back to, so the first original replica stands as the ISR (offline until
        // it is live), as an offline partition keeps its last ISR member.
        isr = replicas[..1].to_vec();
    }
    let mut next = PartitionImage { replicas, isr, adding_replicas: vec![], removing_replicas: vec![], ..p.clone() };
    if !next.isr.contains(&p.leader) || p.leader == NO_LEADER {
        next.leader = next.replicas.iter().copied().find(|r| next.isr.contains(r) && is_live(*r)).unwrap_or(NO_LEADER);
        if next.leader != p.leader {
            next.leader_epoch += 1;
        }
    }
    Ok(next)
}

/// `p` with its reassignment completed, or None while an adding replica is still
/// out of the ISR (or none is in progress). Kafka's rule: the ISR ∩ target must
/// be non-empty and hold every adding replica; the leader stays if it is in the
/// target, else the first live target replica in that ISR leads (epoch + 1).
pub fn complete_if_done(p: &PartitionImage, is_live: impl Fn(i32) -> bool) -> Option<PartitionImage> {
    if !p.is_reassigning() {
        return None;
    }
    let replicas = target_replicas(p);
    let isr: Vec<i32> = p.isr.iter().copied().filter(|r| replicas.contains(r)).collect();
    if isr.is_empty() || !p.adding_replicas.iter().all(|r| isr.contains(r)) {
        return None;
    }
    let (leader, leader_epoch) = if isr.contains(&p.leader) {
        (p.leader, p.leader_epoch)
    } else {
        let leader = replicas.iter().copied().find(|r| isr.contains(r) && is_live(*r))?;
        (leader, p.leader_epoch + 1)
    };
    Some(PartitionImage { leader, leader_epoch, replicas, isr, adding_replicas: vec![], removing_replicas: vec![] })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::tests::part;

    fn moving(p: PartitionImage, adding: &[i32], removing: &[i32]) -> PartitionImage {
        PartitionImage { adding_replicas: adding.to_vec(), removing_replicas: removing.to_vec(), ..p }
    }

    #[test]
    fn validation_follows_kafka() {
        let p = part(1, 0, &[1, 2], &[1, 2]);
        let known = |b: i32| (1..=3).contains(&b);
        assert!(validate(&p, &[2, 3], known, true).is_ok());
        for bad in [&[][..], &[2, 2], &[2, 9]] {
            assert!(matches!(validate(&p, bad, known, true), Err(ReassignError::InvalidAssignment(_))), "{bad:?}");
        }
        assert!(validate(&p, &[1, 2, 3], known, false).is_err(), "RF change refused when not allowed");
        assert!(validate(&p, &[1, 2, 3], known, true).is_ok());
        // The RF compared is the original one, not the merged set in progress.
        let p = moving(part(1, 0, &[2, 3, 1], &[1, 2]), &[3], &[1]);
        assert!(validate(&p, &[1, 3], known, false).is_ok());
    }

    #[test]
    fn start_merges_target_first_and_marks_adding_and_removing() {
        let p = part(1, 4, &[1, 2], &[1, 2]);
        let s = start(&p, &[2, 3], |_| true).unwrap();
        assert_eq!(s, moving(part(1, 4, &[2, 3, 1], &[1, 2]), &[3], &[1]), "leader and epoch unchanged while moving");
        assert!(s.is_reassigning());
        // As in Kafka, the merged order is kept: the originals in target-first order.
        assert_eq!(original_replicas(&s), vec![2, 1]);
        assert_eq!(target_replicas(&s), vec![2, 3]);
        // Already there: nothing to do.
        assert_eq!(start(&p, &[1, 2], |_| true), None);
    }

    #[test]
    fn a_pure_reorder_or_shrink_completes_at_once() {
        let p = part(1, 4, &[1, 2, 3], &[1, 2, 3]);
        assert_eq!(start(&p, &[2, 1, 3], |_| true), Some(part(1, 4, &[2, 1, 3], &[1, 2, 3])));
        // Removing the leader: the first live target replica in the ISR takes over.
        assert_eq!(start(&p, &[3, 2], |_| true), Some(part(3, 5, &[3, 2], &[2, 3])));
        assert_eq!(start(&p, &[3, 2], |b| b != 3), Some(part(2, 5, &[3, 2], &[2, 3])));
    }

    #[test]
    fn completes_only_when_every_adding_replica_is_in_sync() {
        let s = moving(part(1, 4, &[2, 3, 1], &[1, 2]), &[3], &[1]);
        assert_eq!(complete_if_done(&s, |_| true), None, "3 not caught up yet");
        let caught_up = PartitionImage { isr: vec![1, 2, 3], ..s.clone() };
        // Leader 1 is removed: 2 (first of the target in the ISR) leads at epoch + 1.
        assert_eq!(complete_if_done(&caught_up, |_| true), Some(part(2, 5, &[2, 3], &[2, 3])));
        // A leader that stays keeps its epoch.
        let s = moving(part(2, 4, &[2, 3, 1], &[1, 2, 3]), &[3], &[1]);
        assert_eq!(complete_if_done(&s, |_| true), Some(part(2, 4, &[2, 3], &[2, 3])));
        // Not reassigning: nothing to complete.
        assert_eq!(complete_if_done(&part(1, 0, &[1], &[1]), |_| true), None);
        // No live leader candidate in target ∩ ISR: wait.
        assert_eq!(complete_if_done(&caught_up, |b| b == 1), None);
    }

    #[test]
    fn cancel_reverts_to_the_original_replicas() {
        let s = moving(part(1, 4, &[2, 3, 1], &[1, 2, 3]), &[3], &[1]);
        assert_eq!(cancel(&s, |_| true), Ok(part(1, 4, &[2, 1], &[1, 2])));
        // A leader that was being added hands back to an original ISR member.
        let s = moving(part(3, 5, &[3, 1], &[1, 3]), &[3], &[]);
        assert_eq!(cancel(&s, |_| true), Ok(part(1, 6, &[1], &[1])));
        assert_eq!(cancel(&part(1, 0, &[1], &[1]), |_| true), Err(ReassignError::NoneInProgress));
    }

    #[test]
    fn a_new_target_replaces_the_one_in_progress() {
        let s = moving(part(1, 4, &[2, 3, 1], &[1, 2]), &[3], &[1]);
        let again = start(&s, &[1, 2], |_| true).unwrap();
        // 3 came from the merged set: it is what gets removed now, 1 stays.
        assert_eq!(again, part(1, 4, &[1, 2], &[1, 2]));
    }

    #[test]
    fn election_on_fencing_never_picks_an_adding_replica_uncleanly() {
        use super::super::election::{on_fenced, on_unfenced};
        let s = moving(part(1, 4, &[2, 3, 1], &[1]), &[2, 3], &[1]);
        // 1 dies: nobody else is in sync, and the new replicas may hold nothing.
        let down = on_fenced(&s, 1, |_| true, true).unwrap();
        assert_eq!((down.leader, &down.adding_replicas), (NO_LEADER, &vec![2, 3]));
        assert_eq!(on_unfenced(&down, 2, true), None);
        assert_eq!(on_unfenced(&down, 1, false).unwrap().leader, 1, "the in-sync original returns as leader");
    }
}
