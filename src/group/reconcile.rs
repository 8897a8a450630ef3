//! Moving one member of a KIP-848 consumer group toward its target assignment
//! (Kafka's `CurrentAssignmentBuilder`), one heartbeat at a time.
//!
//! The rule that keeps a partition from having two consumers at once: a member
//! first gives up what it must revoke (state UnrevokedPartitions, epoch unchanged)
//! and only after its heartbeat shows it no longer owns those partitions does it
//! move to the target epoch; a partition in its target that another member still
//! owns (or is still revoking) is withheld (state UnreleasedPartitions) until that
//! owner has let go, left or expired.

use std::collections::BTreeSet;
use std::time::Duration;

use tokio::time::Instant;

use super::assignor::Assignment;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberState {
    Stable,
    UnrevokedPartitions,
    UnreleasedPartitions,
}

impl MemberState {
    pub fn is_reconciling(self) -> bool {
        self != MemberState::Stable
    }
}

/// The part of a member the reconciliation reads and writes.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    pub epoch: i32,
    pub previous_epoch: i32,
    pub state: MemberState,
    /// Partitions the member may consume now (what the heartbeat answers).
    pub assigned: Assignment,
    /// Partitions it must give up before it moves to the next epoch.
    pub revoking: Assignment,
    /// Revocation not confirmed by then: the member is fenced (rebalance timeout).
    pub revoke_deadline: Option<Instant>,
}

impl Default for Progress {
    fn default() -> Progress {
        Progress::new()
    }
}

impl Progress {
    pub fn new() -> Progress {
        Progress {
            epoch: 0,
            previous_epoch: -1,
            state: MemberState::Stable,
            assigned: Assignment::new(),
            revoking: Assignment::new(),
            revoke_deadline: None,
        }
    }
}

pub fn intersects(a: &Assignment, b: &Assignment) -> bool {
    a.iter().any(|(t, ps)| b.get(t).is_some_and(|qs| !ps.is_disjoint(qs)))
}

fn minus(a: &Assignment, b: &Assignment) -> Assignment {
    let mut out = Assignment::new();
    for (t, ps) in a {
        let left: BTreeSet<i32> = match b.get(t) {
            Some(qs) => ps.difference(qs).copied().collect(),
            None => ps.clone(),
        };
        if !left.is_empty() {
            out.insert(t.clone(), left);
        }
    }
    out
}

fn intersect(a: &Assignment, b: &Assignment) -> Assignment {
    minus(a, &minus(a, b))
}

/// One reconciliation step. `owned`: what the member reported owning (None: not
/// sent this time); `held_by_others(topic, partition)`: still owned or being revoked
/// by another member.
pub fn step(
    p: &mut Progress,
    target_epoch: i32,
    target: &Assignment,
    owned: Option<&Assignment>,
    held_by_others: &dyn Fn(&str, i32) -> bool,
    rebalance_timeout: Duration,
    now: Instant,
) {
    match p.state {
        MemberState::UnrevokedPartitions => {
            let revoked = owned.is_some_and(|o| !intersects(o, &p.revoking));
            if revoked {
                p.revoking.clear();
                p.revoke_deadline = None;
                next(p, target_epoch, target, held_by_others, rebalance_timeout, now);
            }
        }
        MemberState::UnreleasedPartitions => next(p, target_epoch, target, held_by_others, rebalance_timeout, now),
        MemberState::Stable if p.epoch != target_epoch => next(p, target_epoch, target, held_by_others, rebalance_timeout, now),
        MemberState::Stable => {}
    }
}

fn next(p: &mut Progress, target_epoch: i32, target: &Assignment, held_by_others: &dyn Fn(&str, i32) -> bool, timeout: Duration, now: Instant) {
    let keep = intersect(&p.assigned, target);
    let revoke = minus(&p.assigned, target);
    if !revoke.is_empty() {
        p.assigned = keep;
        p.revoking = revoke;
        p.state = MemberState::UnrevokedPartitions;
        p.revoke_deadline = Some(now + timeout);
        return;
    }
    let mut assigned = keep;
    for (t, ps) in minus(target, &p.assigned) {
        let free: BTreeSet<i32> = ps.into_iter().filter(|q| !held_by_others(&t, *q)).collect();
        if !free.is_empty() {
            assigned.entry(t).or_default().extend(free);
        }
    }
    if p.epoch != target_epoch {
        p.previous_epoch = p.epoch;
        p.epoch = target_epoch;
    }
    p.state = if &assigned == target { MemberState::Stable } else { MemberState::UnreleasedPartitions };
    p.assigned = assigned;
}
