//! Transactional offsets in the group log, Kafka style. TxnOffsetCommit (sent to
//! the group coordinator) appends the offsets to the group's `__consumer_offsets`
//! partition as staged entries of the producer's open transaction and holds them
//! pending per producer id (OffsetFetch with `require_stable` answers
//! UNSTABLE_OFFSET_COMMIT for them). AddOffsetsToTxn put that partition in the
//! transaction, so ending it writes a COMMIT or ABORT marker there
//! ([`GroupCoordinator::complete_txn_offsets`]): the staged offsets then take effect
//! or are dropped. Replay does the same from the log (markers included), so a new
//! leader of the partition has the same committed and pending offsets.

use std::future::Future;
use std::sync::Arc;

use super::store::Entry;
use super::{Committed, GroupCoordinator, Result, Tp};
use crate::protocol::control::{ControlType, marker_batch};

impl GroupCoordinator {
    /// TxnOffsetCommit: stage `commits` for `producer_id`'s open transaction in the
    /// group's shard. The future resolves once they are replicated.
    pub fn stage_txn_offsets(
        self: &Arc<Self>,
        group_id: &str,
        producer_id: i64,
        commits: Vec<(Tp, Committed)>,
    ) -> Result<impl Future<Output = Result<()>> + Send + 'static + use<>> {
        let store = self.access(group_id)?;
        let g = self.get_or_create(group_id);
        let end = {
            let mut gl = g.lock();
            let base = match (&store, commits.is_empty()) {
                (Some(store), false) => {
                    let entries: Vec<Entry> = commits
                        .iter()
                        .map(|((t, p), c)| Entry::TxnOffset { producer_id, group: gl.id.clone(), topic: t.clone(), partition: *p, value: Some(c.clone()) })
                        .collect();
                    Some(store.append(&entries)?.start)
                }
                _ => None,
            };
            let n = commits.len() as i64;
            for (i, (tp, c)) in commits.into_iter().enumerate() {
                gl.offsets.stage_txn(producer_id, tp, c, base.map_or(i64::MAX, |b| b + i as i64));
            }
            base.map(|b| b + n)
        };
        Ok(async move {
            match (store, end) {
                (Some(store), Some(end)) => Ok(store.wait_replicated(end).await?),
                _ => Ok(()),
            }
        })
    }

    /// A transaction of `producer_id` ended: write its COMMIT (or ABORT) marker to
    /// `__consumer_offsets-partition` (with the transaction coordinator's epoch, as
    /// Kafka does), and make the offsets it staged in that shard take effect (or
    /// drop them). Resolves once replicated. NOT_COORDINATOR if this
    /// node does not lead that partition (COORDINATOR_LOAD_IN_PROGRESS while loading).
    pub async fn complete_txn_offsets(&self, partition: i32, producer_id: i64, producer_epoch: i16, coordinator_epoch: i32, commit: bool) -> Result<()> {
        let store = match &self.shards {
            Some(_) => Some(self.shard(partition)?),
            None => None, // unsharded (tests): every group is here
        };
        let kind = if commit { ControlType::Commit } else { ControlType::Abort };
        let now_ms = crate::log::system_time_ms();
        let mut end = match &store {
            Some(s) => Some(s.append_batch(marker_batch(producer_id, producer_epoch, coordinator_epoch, kind, now_ms))?.end),
            None => None,
        };
        let n = self.shards.as_ref().map_or(1, |s| s.partitions());
        let groups: Vec<_> = self
            .groups
            .read()
            .iter()
            .filter(|(id, _)| store.is_none() || crate::coordinator::partition_for(id, n) == partition)
            .map(|(_, g)| g.clone())
            .collect();
        for g in groups {
            let mut gl = g.lock();
            let staged = gl.offsets.txn_staged(producer_id);
            if staged.is_empty() {
                continue;
            }
            // The marker settles them; these records keep the result explicit and let
            // compaction retire the staged entries (latest value per key: a tombstone).
            let mut entries: Vec<Entry> = Vec::with_capacity(staged.len() * 2);
            for ((t, p), c) in &staged {
                if commit {
                    entries.push(Entry::Offset { group: gl.id.clone(), topic: t.clone(), partition: *p, value: Some(c.clone()) });
                }
                entries.push(Entry::TxnOffset { producer_id, group: gl.id.clone(), topic: t.clone(), partition: *p, value: None });
            }
            gl.offsets.complete_txn(producer_id, commit);
            if let Some(s) = &store {
                end = Some(s.append(&entries)?.end);
            }
        }
        match (store, end) {
            (Some(s), Some(end)) => Ok(s.wait_replicated(end).await?),
            _ => Ok(()),
        }
    }
}

/// Replay of the staged entries and markers of one shard (see `super::replay`).
pub(super) fn replay_entry(groups: &mut super::Groups, limits: super::Limits, at: i64, e: Entry) {
    match e {
        Entry::TxnOffset { producer_id, group, topic, partition, value: Some(c) } => {
            let g = groups.entry(group.clone()).or_insert_with(|| Arc::new(parking_lot::Mutex::new(super::Group::new(&group, limits))));
            g.lock().offsets.stage_txn(producer_id, (topic, partition), c, at);
        }
        // Retired after its marker, which already settled it.
        Entry::TxnOffset { value: None, .. } => {}
        Entry::Marker { producer_id, commit } => {
            for g in groups.values() {
                g.lock().offsets.complete_txn(producer_id, commit);
            }
        }
        _ => {}
    }
}
