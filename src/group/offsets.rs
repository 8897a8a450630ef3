//! A group's committed offsets, and the commits still on their way to disk.
//!
//! A commit is appended to the coordinator log under the group's lock, then
//! applied here only once durable, tagged with its log offset: two commits of one
//! partition that become durable out of order still leave the later one in place,
//! as replaying the log would. While a commit is in flight its partition counts as
//! pending, which OffsetFetch with `require_stable` reports as UNSTABLE_OFFSET_COMMIT.

use std::collections::{BTreeMap, HashMap};

/// (topic, partition)
pub type Tp = (String, i32);

#[derive(Debug, Clone, PartialEq)]
pub struct Committed {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp_ms: i64,
}

#[derive(Debug, Default)]
pub struct Offsets {
    /// Latest durable commit per partition, with the log offset of its record.
    committed: BTreeMap<Tp, (Committed, i64)>,
    /// Commits appended but not yet durable, per partition.
    pending: HashMap<Tp, u32>,
    /// Transactional offsets staged per producer id (TxnOffsetCommit), with the log
    /// offset of their record, until that producer's COMMIT or ABORT marker.
    txn: HashMap<i64, BTreeMap<Tp, (Committed, i64)>>,
}

impl Offsets {
    pub fn get(&self, tp: &Tp) -> Option<&Committed> {
        self.committed.get(tp).map(|(c, _)| c)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&Tp, &Committed)> {
        self.committed.iter().map(|(k, (c, _))| (k, c))
    }

    pub fn is_empty(&self) -> bool {
        self.committed.is_empty()
    }

    pub fn topics(&self) -> impl Iterator<Item = &str> {
        let mut last: Option<&str> = None;
        self.committed.keys().filter_map(move |(t, _)| {
            if last == Some(t.as_str()) {
                return None;
            }
            last = Some(t.as_str());
            last
        })
    }

    pub fn begin(&mut self, tp: &Tp) {
        *self.pending.entry(tp.clone()).or_default() += 1;
    }

    /// A commit became durable (`Some`) or failed (`None`): it is no longer pending.
    pub fn finish(&mut self, tp: Tp, commit: Option<(Committed, i64)>) {
        if let Some(n) = self.pending.get_mut(&tp) {
            *n -= 1;
            if *n == 0 {
                self.pending.remove(&tp);
            }
        }
        if let Some((c, log_offset)) = commit {
            self.apply(tp, c, log_offset);
        }
    }

    /// Keep the commit with the highest log offset (also used by replay).
    pub fn apply(&mut self, tp: Tp, c: Committed, log_offset: i64) {
        match self.committed.get(&tp) {
            Some((_, at)) if *at > log_offset => {}
            _ => {
                self.committed.insert(tp, (c, log_offset));
            }
        }
    }

    pub fn remove(&mut self, tp: &Tp) -> bool {
        self.committed.remove(tp).is_some()
    }

    /// A commit in flight, or an open transaction's offset, for this partition.
    pub fn has_pending(&self, tp: &Tp) -> bool {
        self.pending.contains_key(tp) || self.txn.values().any(|m| m.contains_key(tp))
    }

    /// Stage a transactional offset of `producer_id` (latest per partition wins).
    pub fn stage_txn(&mut self, producer_id: i64, tp: Tp, c: Committed, log_offset: i64) {
        self.txn.entry(producer_id).or_default().insert(tp, (c, log_offset));
    }

    /// The transactional offsets `producer_id` has staged here.
    pub fn txn_staged(&self, producer_id: i64) -> Vec<(Tp, Committed)> {
        self.txn.get(&producer_id).map(|m| m.iter().map(|(tp, (c, _))| (tp.clone(), c.clone())).collect()).unwrap_or_default()
    }

    /// Settle `producer_id`'s staged offsets: applied on commit, dropped on abort.
    pub fn complete_txn(&mut self, producer_id: i64, commit: bool) {
        let Some(staged) = self.txn.remove(&producer_id) else { return };
        if commit {
            for (tp, (c, at)) in staged {
                self.apply(tp, c, at);
            }
        }
    }

    pub fn has_txn(&self) -> bool {
        !self.txn.is_empty()
    }

    pub fn clear(&mut self) {
        self.committed.clear();
    }
}
