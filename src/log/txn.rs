//! Transactions as one partition sees them: which producers have an open
//! transaction here (and from which offset), and which transactions were aborted.
//! From these come the last stable offset (LSO) and the aborted-transaction list
//! that read_committed fetches need.
//!
//! The index is a pure function of the log's batches: a transactional data batch
//! opens its producer's transaction at its base offset (if none is open), a marker
//! (control batch) closes it, and an ABORT marker records (producer id, first
//! offset, marker offset). It is rebuilt on open from every batch header (open's one
//! walk of each segment, see [`super::recovery`], plus a read of each marker's key), so
//! it can never disagree with the log after a crash; the walk reads headers, not records.
//!
//! A transaction closed by a marker stays "unstable" until the marker is below the
//! high watermark (durable): otherwise a read_committed consumer could see data
//! whose commit a crash might take back (Kafka keeps the same rule for markers not
//! yet replicated).

use std::collections::{BTreeMap, HashMap};

use super::manager::Partition;
use super::segment::Segment;
use super::{PartitionLog, ReadResult, Result, SliceRead};
use crate::protocol::control::{ControlType, control_type};
use crate::protocol::records::{BatchHeader, BatchIter};

/// An aborted transaction's span in this partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTxn {
    pub producer_id: i64,
    pub first_offset: i64,
    /// Offset of the ABORT marker.
    pub last_offset: i64,
}

#[derive(Debug, Default)]
pub struct TxnIndex {
    /// producer id → first offset of its open transaction here.
    ongoing: HashMap<i64, i64>,
    /// (producer id, first offset, marker offset) of transactions whose marker may not
    /// be durable (not below the high watermark last seen). Kept with the producer id so
    /// a truncation below the marker can reopen the transaction.
    completing: Vec<(i64, i64, i64)>,
    /// Markers below this were forgotten from `completing` (the largest high watermark
    /// seen): a truncation below it cannot be undone here and rebuilds from the log.
    settled_below: i64,
    /// Ascending by `last_offset` (markers are appended in offset order).
    aborted: Vec<AbortedTxn>,
}

impl TxnIndex {
    /// Applies one batch as stored (`batch` holds its bytes, offsets assigned).
    pub fn apply(&mut self, h: &BatchHeader, batch: &[u8]) {
        if !h.is_transactional() || !h.has_producer_id() {
            return;
        }
        if !h.is_control() {
            self.ongoing.entry(h.producer_id).or_insert(h.base_offset);
            return;
        }
        let Some(first_offset) = self.ongoing.remove(&h.producer_id) else {
            return; // a marker for a partition the producer never wrote to
        };
        self.completing.push((h.producer_id, first_offset, h.base_offset));
        if control_type(h, batch) == Some(ControlType::Abort) {
            debug_assert!(self.aborted.last().is_none_or(|a| a.last_offset < h.base_offset));
            self.aborted.push(AbortedTxn { producer_id: h.producer_id, first_offset, last_offset: h.base_offset });
        }
    }

    /// Applies every batch of one append (`records` after offsets were assigned).
    pub fn apply_all(&mut self, records: &[u8]) {
        for (h, range) in BatchIter::new(records) {
            self.apply(&h, &records[range]);
        }
    }

    /// min(first offset of any transaction not yet durably ended, high watermark).
    pub fn last_stable_offset(&mut self, high_watermark: i64) -> i64 {
        // Durable markers end their transactions for good.
        self.completing.retain(|&(_, _, marker)| marker >= high_watermark);
        self.settled_below = self.settled_below.max(high_watermark);
        let ongoing = self.ongoing.values().copied();
        let completing = self.completing.iter().map(|&(_, first, _)| first);
        ongoing.chain(completing).fold(high_watermark, i64::min)
    }

    /// Aborted transactions overlapping [from, to): ended at or after `from`, begun before `to`.
    pub fn aborted_between(&self, from: i64, to: i64) -> Vec<AbortedTxn> {
        let start = self.aborted.partition_point(|a| a.last_offset < from);
        self.aborted[start..].iter().filter(|a| a.first_offset < to).copied().collect()
    }

    /// Forgets aborted transactions wholly below the log start (retention removed them).
    pub fn forget_below(&mut self, log_start_offset: i64) {
        let n = self.aborted.partition_point(|a| a.last_offset < log_start_offset);
        self.aborted.drain(..n);
    }

    /// Producers with an open transaction here, and where it began (tests, diagnostics).
    pub fn ongoing(&self) -> &HashMap<i64, i64> {
        &self.ongoing
    }

    /// Forgets every batch at or above `log_end_offset` (the log was truncated there):
    /// transactions begun there are no longer open, and those whose marker was cut are
    /// open again. Returns false, changing nothing, when a cut marker may already have
    /// been forgotten (truncation below a high watermark seen): then rebuild instead.
    pub fn truncate_to(&mut self, log_end_offset: i64) -> bool {
        if log_end_offset < self.settled_below {
            return false;
        }
        self.ongoing.retain(|_, first| *first < log_end_offset);
        // A cut marker whose transaction began below the cut reopens it (at most one per
        // producer: its next transaction began after that marker, so was cut too).
        while let Some(&(pid, first, marker)) = self.completing.last()
            && marker >= log_end_offset
        {
            self.completing.pop();
            if first < log_end_offset {
                self.ongoing.insert(pid, first);
            }
        }
        let kept = self.aborted.partition_point(|a| a.last_offset < log_end_offset);
        self.aborted.truncate(kept);
        true
    }

    /// Rebuilds the index from every batch of `segments`, oldest first (a follower's
    /// truncation below what it can undo; open feeds the index from its own walk).
    pub fn rebuild(segments: &BTreeMap<i64, Segment>) -> Result<TxnIndex> {
        let mut index = TxnIndex::default();
        for segment in segments.values() {
            segment.walk_headers_with_markers(0, |h, marker| index.apply(h, marker.unwrap_or_default()))?;
        }
        index.settle_all(segments.values().next_back().map_or(0, Segment::next_offset));
        Ok(index)
    }

    /// After a rebuild from a log whose end is `log_end_offset`: everything recovered is
    /// durable, so nothing is merely "completing". (A caller that truncates below the
    /// high watermark rebuilds again, so this is safe.)
    pub(super) fn settle_all(&mut self, log_end_offset: i64) {
        self.completing.clear();
        self.settled_below = log_end_offset;
    }
}

/// A read_committed read: records below the LSO, the LSO, and the aborted
/// transactions overlapping the records returned.
#[derive(Debug, Clone)]
pub struct CommittedRead<R = ReadResult> {
    pub read: R,
    pub last_stable_offset: i64,
    pub aborted: Vec<AbortedTxn>,
}

impl PartitionLog {
    pub fn txn_index(&self) -> &TxnIndex {
        &self.txn
    }
}

impl Partition {
    /// The last stable offset: what read_committed consumers may read up to.
    pub fn last_stable_offset(&self) -> i64 {
        let hw = self.high_watermark();
        self.with_log(|log| Ok(log.txn.last_stable_offset(hw))).unwrap_or(hw)
    }

    /// Fetch with isolation level read_committed: never past the LSO, with the
    /// aborted transactions the consumer must skip in what it gets.
    pub fn read_committed(&self, offset: i64, max_bytes: usize, min_one_batch: bool) -> Result<CommittedRead> {
        let hw = self.high_watermark();
        self.with_log(|log| {
            let lso = log.txn.last_stable_offset(hw);
            log.txn.forget_below(log.log_start_offset());
            let read = log.read(offset, max_bytes, lso, min_one_batch)?;
            let end = BatchIter::new(&read.records).last().map(|(h, _)| h.next_offset());
            let aborted = end.map_or_else(Vec::new, |end| log.txn.aborted_between(offset, end));
            Ok(CommittedRead { read, last_stable_offset: lso, aborted })
        })
    }

    /// [`Self::read_committed`] as a range of the segment file (consumer fetches).
    pub fn read_committed_slice(&self, offset: i64, max_bytes: usize, min_one_batch: bool) -> Result<CommittedRead<SliceRead>> {
        let hw = self.high_watermark();
        self.with_log(|log| {
            let lso = log.txn.last_stable_offset(hw);
            log.txn.forget_below(log.log_start_offset());
            let read = log.read_slice(offset, max_bytes, lso, min_one_batch)?;
            let aborted = read.next_offset.map_or_else(Vec::new, |end| log.txn.aborted_between(offset, end));
            Ok(CommittedRead { read, last_stable_offset: lso, aborted })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::control::marker_batch;

    fn data(pid: i64, offset: i64, n: i32, txn: bool) -> BatchHeader {
        BatchHeader {
            base_offset: offset,
            batch_length: 49,
            partition_leader_epoch: 0,
            magic: 2,
            crc: 0,
            attributes: if txn { 1 << 4 } else { 0 },
            last_offset_delta: n - 1,
            base_timestamp: 0,
            max_timestamp: 0,
            producer_id: pid,
            producer_epoch: 0,
            base_sequence: 0,
            record_count: n,
        }
    }

    fn marker(index: &mut TxnIndex, pid: i64, offset: i64, kind: ControlType) {
        let mut b = marker_batch(pid, 0, 0, kind, 0);
        crate::protocol::records::set_base_offset(&mut b, offset);
        let h = BatchHeader::parse(&b).unwrap();
        index.apply(&h, &b);
    }

    #[test]
    fn lso_follows_open_and_durably_ended_transactions() {
        let mut ix = TxnIndex::default();
        ix.apply(&data(-1, 0, 2, false), &[]);
        ix.apply(&data(7, 2, 3, true), &[]);
        ix.apply(&data(8, 5, 1, true), &[]);
        ix.apply(&data(7, 6, 1, true), &[]);
        assert_eq!(ix.last_stable_offset(7), 2);
        marker(&mut ix, 7, 7, ControlType::Commit);
        // Marker not yet durable (hw 8 means offsets < 8 durable: it is).
        assert_eq!(ix.last_stable_offset(7), 2, "marker at 7 not below hw 7");
        assert_eq!(ix.last_stable_offset(8), 5, "pid 8 still open");
        marker(&mut ix, 8, 8, ControlType::Abort);
        assert_eq!(ix.last_stable_offset(9), 9);
        assert_eq!(ix.aborted_between(0, 9), vec![AbortedTxn { producer_id: 8, first_offset: 5, last_offset: 8 }]);
        assert!(ix.aborted_between(9, 20).is_empty());
        assert!(ix.aborted_between(0, 5).is_empty(), "begins at 5: not in [0, 5)");
        ix.forget_below(9);
        assert!(ix.aborted_between(0, 20).is_empty());
    }
}
