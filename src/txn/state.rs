//! The state machine of one transactional id, pure (no I/O, time passed in), after
//! Kafka's `TransactionMetadata` and `TransactionCoordinator` with transaction
//! version 1: partitions and groups are added explicitly (AddPartitionsToTxn /
//! AddOffsetsToTxn), EndTxn prepares, the coordinator writes markers, then completes.
//!
//! ```text
//! Empty ──add──▶ Ongoing ──EndTxn──▶ PrepareCommit ──markers──▶ CompleteCommit
//!   ▲                │   ──EndTxn/timeout/fence──▶ PrepareAbort ──▶ CompleteAbort
//!   └── InitProducerId (epoch bump) from Empty / Complete* ◀────────────┘
//! ```
//! A fence (InitProducerId of a new incarnation, or the timeout) bumps the epoch
//! before aborting, so the markers carry the new epoch and the old producer's
//! batches are rejected by every partition.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::error::{Error, Result};

/// Limits that keep one transactional id small (Kafka has none; a broker must).
pub const MAX_PARTITIONS_PER_TXN: usize = 10_000;
pub const MAX_GROUPS_PER_TXN: usize = 100;
pub const MAX_PENDING_OFFSETS_PER_TXN: usize = 100_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxnState {
    Empty,
    Ongoing,
    PrepareCommit,
    PrepareAbort,
    CompleteCommit,
    CompleteAbort,
}

impl TxnState {
    /// Kafka's names (DescribeTransactions, logs).
    pub fn name(self) -> &'static str {
        match self {
            TxnState::Empty => "Empty",
            TxnState::Ongoing => "Ongoing",
            TxnState::PrepareCommit => "PrepareCommit",
            TxnState::PrepareAbort => "PrepareAbort",
            TxnState::CompleteCommit => "CompleteCommit",
            TxnState::CompleteAbort => "CompleteAbort",
        }
    }
    pub fn is_preparing(self) -> bool {
        matches!(self, TxnState::PrepareCommit | TxnState::PrepareAbort)
    }
}

/// An offset commit sent in a transaction, applied to its group only on commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingOffset {
    pub group: String,
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
}

/// What the coordinator remembers (and logs) about one transactional id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnMeta {
    pub transactional_id: String,
    pub producer_id: i64,
    pub producer_epoch: i16,
    /// Id and epoch returned before the last bump, so a retried InitProducerId
    /// (KIP-360: the client sends what it had) is recognised, not fenced.
    pub last_producer_id: i64,
    pub last_producer_epoch: i16,
    pub timeout_ms: i64,
    pub state: TxnState,
    /// (topic, partition) that get a marker when the transaction ends.
    pub partitions: BTreeSet<(String, i32)>,
    /// Groups added with AddOffsetsToTxn.
    pub groups: BTreeSet<String>,
    /// Offsets from TxnOffsetCommit, for `groups`; latest per group/partition.
    pub pending_offsets: Vec<PendingOffset>,
    /// When the transaction became Ongoing (wall clock; survives restarts).
    pub txn_start_ms: i64,
}

/// What InitProducerId asks the caller to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitOutcome {
    /// Answer with this id and epoch (state changed: log it first).
    Ready { producer_id: i64, producer_epoch: i16 },
    /// A transaction was open: it is now PrepareAbort with a bumped epoch; log it,
    /// complete the abort, and answer CONCURRENT_TRANSACTIONS (the client retries).
    FencedOngoing,
}

/// What EndTxn asks the caller to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndOutcome {
    /// Now PrepareCommit/PrepareAbort: log it, write markers, complete.
    Prepared,
    /// A retry of an EndTxn that already completed: answer success.
    AlreadyDone,
}

impl TxnMeta {
    /// A new id with no epoch yet; `init` gives it epoch 0.
    pub fn new(transactional_id: &str, producer_id: i64, timeout_ms: i64) -> TxnMeta {
        TxnMeta {
            transactional_id: transactional_id.to_string(),
            producer_id,
            producer_epoch: -1,
            last_producer_id: -1,
            last_producer_epoch: -1,
            timeout_ms,
            state: TxnState::Empty,
            partitions: BTreeSet::new(),
            groups: BTreeSet::new(),
            pending_offsets: Vec::new(),
            txn_start_ms: -1,
        }
    }

    /// Epoch exhausted: Kafka then moves to a fresh producer id.
    pub fn needs_new_id(&self) -> bool {
        self.producer_epoch >= i16::MAX - 1
    }

    /// InitProducerId. `expected` is the (id, epoch) the client already has (KIP-360),
    /// `fresh_id` a newly allocated id for when the epoch is exhausted.
    pub fn init(&mut self, timeout_ms: i64, expected: Option<(i64, i16)>, fresh_id: Option<i64>) -> Result<InitOutcome> {
        if self.state.is_preparing() {
            return Err(Error::ConcurrentTransactions);
        }
        if let Some((pid, epoch)) = expected {
            let is_current = pid == self.producer_id && epoch == self.producer_epoch;
            let is_retry = pid == self.last_producer_id && epoch == self.last_producer_epoch && self.state == TxnState::Empty;
            if is_retry {
                return Ok(InitOutcome::Ready { producer_id: self.producer_id, producer_epoch: self.producer_epoch });
            }
            if !is_current && self.producer_epoch >= 0 {
                return Err(Error::ProducerFenced);
            }
        }
        if self.state == TxnState::Ongoing {
            self.fence_and_abort();
            return Ok(InitOutcome::FencedOngoing);
        }
        self.last_producer_id = self.producer_id;
        self.last_producer_epoch = self.producer_epoch;
        match fresh_id.filter(|_| self.needs_new_id()) {
            Some(id) => {
                self.producer_id = id;
                self.producer_epoch = 0;
            }
            None => self.producer_epoch += 1,
        }
        self.timeout_ms = timeout_ms;
        self.state = TxnState::Empty;
        self.clear_txn();
        Ok(InitOutcome::Ready { producer_id: self.producer_id, producer_epoch: self.producer_epoch })
    }

    /// Bumps the epoch (fencing the current producer) and moves to PrepareAbort.
    /// An exhausted epoch is not bumped: the abort still ends the transaction and the
    /// next InitProducerId moves to a new id.
    pub fn fence_and_abort(&mut self) {
        debug_assert_eq!(self.state, TxnState::Ongoing);
        if !self.needs_new_id() {
            self.producer_epoch += 1;
        }
        self.state = TxnState::PrepareAbort;
    }

    /// The id/epoch check every transactional request makes.
    pub fn check_producer(&self, producer_id: i64, producer_epoch: i16) -> Result<()> {
        if producer_id != self.producer_id {
            return Err(Error::InvalidProducerIdMapping);
        }
        if producer_epoch != self.producer_epoch {
            return Err(Error::ProducerFenced);
        }
        if self.state.is_preparing() {
            return Err(Error::ConcurrentTransactions);
        }
        Ok(())
    }

    /// AddPartitionsToTxn / AddOffsetsToTxn. Returns whether anything changed.
    pub fn add(&mut self, producer_id: i64, producer_epoch: i16, partitions: &[(String, i32)], group: Option<&str>, now_ms: i64) -> Result<bool> {
        self.check_producer(producer_id, producer_epoch)?;
        let new_parts = partitions.iter().filter(|tp| !self.partitions.contains(*tp)).count();
        let new_group = group.is_some_and(|g| !self.groups.contains(g));
        if self.state == TxnState::Ongoing && new_parts == 0 && !new_group {
            return Ok(false);
        }
        if self.state != TxnState::Ongoing {
            self.clear_txn();
        }
        if self.partitions.len() + new_parts > MAX_PARTITIONS_PER_TXN || self.groups.len() + usize::from(new_group) > MAX_GROUPS_PER_TXN {
            return Err(Error::LimitExceeded);
        }
        if self.state != TxnState::Ongoing {
            self.state = TxnState::Ongoing;
            self.txn_start_ms = now_ms;
        }
        self.partitions.extend(partitions.iter().cloned());
        if let Some(g) = group {
            self.groups.insert(g.to_string());
        }
        Ok(true)
    }

    /// TxnOffsetCommit: remember offsets until the transaction ends.
    pub fn stage_offsets(&mut self, producer_id: i64, producer_epoch: i16, group: &str, offsets: Vec<PendingOffset>) -> Result<()> {
        self.check_producer(producer_id, producer_epoch)?;
        if self.state != TxnState::Ongoing || !self.groups.contains(group) {
            return Err(Error::InvalidTxnState);
        }
        for o in offsets {
            let at = self.pending_offsets.iter().position(|p| p.group == o.group && p.topic == o.topic && p.partition == o.partition);
            match at {
                Some(i) => self.pending_offsets[i] = o,
                None if self.pending_offsets.len() >= MAX_PENDING_OFFSETS_PER_TXN => return Err(Error::LimitExceeded),
                None => self.pending_offsets.push(o),
            }
        }
        Ok(())
    }

    /// EndTxn (commit or abort), with Kafka's answers for retries and wrong states.
    pub fn end(&mut self, producer_id: i64, producer_epoch: i16, commit: bool) -> Result<EndOutcome> {
        if producer_id != self.producer_id {
            return Err(Error::InvalidProducerIdMapping);
        }
        if producer_epoch != self.producer_epoch {
            return Err(Error::ProducerFenced);
        }
        match (self.state, commit) {
            (TxnState::Ongoing, true) => self.state = TxnState::PrepareCommit,
            (TxnState::Ongoing, false) => self.state = TxnState::PrepareAbort,
            (TxnState::CompleteCommit, true) | (TxnState::CompleteAbort, false) => return Ok(EndOutcome::AlreadyDone),
            (TxnState::PrepareCommit, true) | (TxnState::PrepareAbort, false) => return Err(Error::ConcurrentTransactions),
            _ => return Err(Error::InvalidTxnState),
        }
        Ok(EndOutcome::Prepared)
    }

    /// After markers (and, on commit, offsets) are written: the transaction is over.
    pub fn complete(&mut self) {
        self.state = match self.state {
            TxnState::PrepareCommit => TxnState::CompleteCommit,
            TxnState::PrepareAbort => TxnState::CompleteAbort,
            other => other,
        };
        self.clear_txn();
    }

    /// An Ongoing transaction past its timeout at `now_ms`.
    pub fn timed_out(&self, now_ms: i64) -> bool {
        self.state == TxnState::Ongoing && now_ms.saturating_sub(self.txn_start_ms) > self.timeout_ms
    }

    fn clear_txn(&mut self) {
        self.partitions.clear();
        self.groups.clear();
        self.pending_offsets.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(t: &str, p: i32) -> (String, i32) {
        (t.to_string(), p)
    }

    fn ready(m: &mut TxnMeta, expected: Option<(i64, i16)>) -> (i64, i16) {
        match m.init(60_000, expected, None).unwrap() {
            InitOutcome::Ready { producer_id, producer_epoch } => (producer_id, producer_epoch),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn commit_cycle_and_retries() {
        let mut m = TxnMeta::new("t", 5, 60_000);
        assert_eq!(ready(&mut m, None), (5, 0));
        assert_eq!(m.end(5, 0, true), Err(Error::InvalidTxnState), "nothing to end");
        assert!(m.add(5, 0, &[tp("a", 0)], None, 100).unwrap());
        assert!(!m.add(5, 0, &[tp("a", 0)], None, 200).unwrap(), "already added");
        assert_eq!(m.txn_start_ms, 100);
        assert_eq!(m.add(5, 0, &[tp("a", 1)], Some("g"), 200), Ok(true));
        m.stage_offsets(5, 0, "g", vec![PendingOffset { group: "g".into(), topic: "a".into(), partition: 0, offset: 3, leader_epoch: -1, metadata: String::new() }]).unwrap();
        assert_eq!(m.end(5, 0, true), Ok(EndOutcome::Prepared));
        assert_eq!(m.state, TxnState::PrepareCommit);
        assert_eq!(m.add(5, 0, &[tp("a", 0)], None, 300), Err(Error::ConcurrentTransactions));
        assert_eq!(m.end(5, 0, true), Err(Error::ConcurrentTransactions));
        assert_eq!(m.end(5, 0, false), Err(Error::InvalidTxnState));
        assert_eq!(m.init(60_000, None, None), Err(Error::ConcurrentTransactions));
        m.complete();
        assert_eq!(m.state, TxnState::CompleteCommit);
        assert!(m.partitions.is_empty() && m.pending_offsets.is_empty());
        assert_eq!(m.end(5, 0, true), Ok(EndOutcome::AlreadyDone));
        assert_eq!(m.end(5, 0, false), Err(Error::InvalidTxnState));
        // The next transaction starts afresh.
        assert!(m.add(5, 0, &[tp("b", 0)], None, 400).unwrap());
        assert_eq!(m.partitions.len(), 1);
    }

    #[test]
    fn fencing_by_a_new_incarnation_and_by_timeout() {
        let mut m = TxnMeta::new("t", 9, 1_000);
        assert_eq!(ready(&mut m, None), (9, 0));
        m.add(9, 0, &[tp("a", 0)], None, 0).unwrap();
        // A second producer with the same id: the open transaction is aborted with a bumped epoch.
        assert_eq!(m.init(1_000, None, None), Ok(InitOutcome::FencedOngoing));
        assert_eq!((m.state, m.producer_epoch), (TxnState::PrepareAbort, 1));
        m.complete();
        assert_eq!(ready(&mut m, None), (9, 2));
        // The old producer is fenced everywhere.
        assert_eq!(m.add(9, 0, &[tp("a", 0)], None, 0), Err(Error::ProducerFenced));
        assert_eq!(m.end(9, 0, false), Err(Error::ProducerFenced));
        assert_eq!(m.init(1_000, Some((9, 0)), None), Err(Error::ProducerFenced));
        assert_eq!(m.add(8, 2, &[tp("a", 0)], None, 0), Err(Error::InvalidProducerIdMapping));
        // KIP-360: the current producer may bump its own epoch; a retry gets the same answer.
        assert_eq!(ready(&mut m, Some((9, 2))), (9, 3));
        assert_eq!(ready(&mut m, Some((9, 2))), (9, 3));
        // Timeout.
        m.add(9, 3, &[tp("a", 0)], None, 10_000).unwrap();
        assert!(!m.timed_out(10_000 + m.timeout_ms));
        assert!(m.timed_out(10_000 + m.timeout_ms + 1));
        m.fence_and_abort();
        assert_eq!((m.state, m.producer_epoch), (TxnState::PrepareAbort, 4));
        m.complete();
        assert_eq!(m.state, TxnState::CompleteAbort);
        assert_eq!(m.end(9, 3, true), Err(Error::ProducerFenced));
    }

    #[test]
    fn offsets_need_the_group_and_an_open_transaction() {
        let mut m = TxnMeta::new("t", 1, 1_000);
        ready(&mut m, None);
        let o = PendingOffset { group: "g".into(), topic: "a".into(), partition: 0, offset: 1, leader_epoch: -1, metadata: String::new() };
        assert_eq!(m.stage_offsets(1, 0, "g", vec![o.clone()]), Err(Error::InvalidTxnState));
        m.add(1, 0, &[], Some("g"), 0).unwrap();
        m.stage_offsets(1, 0, "g", vec![o.clone()]).unwrap();
        m.stage_offsets(1, 0, "g", vec![PendingOffset { offset: 7, ..o }]).unwrap();
        assert_eq!(m.pending_offsets.len(), 1);
        assert_eq!(m.pending_offsets[0].offset, 7);
    }

    #[test]
    fn exhausted_epoch_moves_to_a_new_id() {
        let mut m = TxnMeta::new("t", 1, 1_000);
        m.producer_epoch = i16::MAX - 1;
        assert_eq!(m.init(1_000, None, Some(77)).unwrap(), InitOutcome::Ready { producer_id: 77, producer_epoch: 0 });
        assert_eq!((m.last_producer_id, m.last_producer_epoch), (1, i16::MAX - 1));
    }
}
