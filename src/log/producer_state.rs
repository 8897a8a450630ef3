//! Idempotent-producer state of one partition: for each producer id, its epoch and the
//! sequence ranges and offsets of its last five batches. This is what lets a retried
//! Produce be answered as a duplicate instead of written twice, and what rejects gaps
//! and stale (fenced) epochs. The state is a pure function of the log's batch headers,
//! so it is rebuilt on open by replaying headers, starting from a snapshot when one
//! exists (snapshots live in [`super::checkpoint`]). Only sequences are used, never
//! wall-clock time.
//!
//! Rules (Kafka's `ProducerAppendInfo`): an older epoch is fenced; a newer epoch must
//! start at sequence 0; within an epoch a batch equal to one of the last five is a
//! duplicate and the next batch must start right after the last one (wrapping past
//! `i32::MAX` to 0). A producer with no state at all is accepted at any sequence, as
//! Kafka does once a producer's state has expired or been evicted. Control batches
//! (transaction markers) only move the epoch forward.

use std::collections::{HashMap, VecDeque};

use serde::{Deserialize, Serialize};

use super::{Error, Result};
use crate::protocol::records::{BatchHeader, increment_sequence};

/// Batches remembered per producer for duplicate detection (Kafka's
/// `NUM_BATCHES_TO_RETAIN`, which matches `max.in.flight.requests.per.connection` = 5).
pub const BATCHES_PER_PRODUCER: usize = 5;
/// Producer states kept per partition; beyond it the producers that wrote least
/// recently are forgotten (they are then treated like expired producers).
pub const MAX_PRODUCERS_PER_PARTITION: usize = 65_536;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchMeta {
    pub first_seq: i32,
    pub last_seq: i32,
    pub base_offset: i64,
    pub last_offset: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducerEntry {
    pub producer_id: i64,
    pub epoch: i16,
    /// Oldest first; at most [`BATCHES_PER_PRODUCER`].
    pub batches: VecDeque<BatchMeta>,
    /// Last offset this producer wrote (batch or marker): the eviction order.
    pub last_offset: i64,
    /// Coordinator epoch of the last marker for this producer (-1: none seen), so a
    /// marker from an older coordinator is refused (Kafka's `coordinatorEpoch`). Taken
    /// from markers appended or replicated here and kept in snapshots; a header-only
    /// replay on recovery does not read marker values, so after a crash it may lag (it
    /// then fences less, never more).
    #[serde(default = "no_coordinator_epoch")]
    pub coordinator_epoch: i32,
}

fn no_coordinator_epoch() -> i32 {
    -1
}

impl ProducerEntry {
    fn new(producer_id: i64, epoch: i16) -> Self {
        ProducerEntry {
            producer_id,
            epoch,
            batches: VecDeque::new(),
            last_offset: -1,
            coordinator_epoch: -1,
        }
    }

    /// Records a batch (already checked, or replayed from the log); `coordinator_epoch`
    /// is a marker's, when known.
    fn apply(&mut self, h: &BatchHeader, base_offset: i64, coordinator_epoch: Option<i32>) {
        let last_offset = base_offset + i64::from(h.last_offset_delta);
        if h.producer_epoch != self.epoch {
            self.epoch = h.producer_epoch;
            self.batches.clear();
        }
        self.last_offset = last_offset;
        if h.is_control() {
            if let Some(e) = coordinator_epoch {
                self.coordinator_epoch = self.coordinator_epoch.max(e);
            }
            return;
        }
        if self.batches.len() == BATCHES_PER_PRODUCER {
            self.batches.pop_front();
        }
        self.batches.push_back(BatchMeta {
            first_seq: h.base_sequence,
            last_seq: h.last_sequence(),
            base_offset,
            last_offset,
        });
    }
}

/// Outcome of checking one batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    Append,
    Duplicate(BatchMeta),
}

#[derive(Debug, Default)]
pub struct ProducerStateManager {
    producers: HashMap<i64, ProducerEntry>,
}

/// The changes one append would make, checked batch by batch before anything is
/// written; [`ProducerStateManager::commit`] applies them once the write succeeded.
pub struct PendingProducers<'a> {
    base: &'a ProducerStateManager,
    updated: HashMap<i64, ProducerEntry>,
}

fn in_sequence(last_seq: i32, next_seq: i32) -> bool {
    i64::from(next_seq) == i64::from(last_seq) + 1 || (next_seq == 0 && last_seq == i32::MAX)
}

impl PendingProducers<'_> {
    /// Checks `h` (to be stored at `base_offset`) against the state so far, including
    /// earlier batches of the same request, and records it if it is to be appended.
    #[cfg(test)]
    pub fn check(&mut self, h: &BatchHeader, base_offset: i64) -> Result<Check> {
        self.check_marker(h, base_offset, None)
    }

    /// [`Self::check`], for a batch that may be a marker written by coordinator epoch
    /// `coordinator_epoch`: one older than the producer's last is refused.
    pub fn check_marker(&mut self, h: &BatchHeader, base_offset: i64, coordinator_epoch: Option<i32>) -> Result<Check> {
        if !h.has_producer_id() {
            return Ok(Check::Append);
        }
        let pid = h.producer_id;
        let current = self
            .updated
            .get(&pid)
            .or_else(|| self.base.producers.get(&pid));
        if let Some(entry) = current {
            if h.producer_epoch < entry.epoch {
                return Err(Error::InvalidProducerEpoch {
                    producer_id: pid,
                    current: entry.epoch,
                    got: h.producer_epoch,
                });
            }
            if h.is_control()
                && let Some(got) = coordinator_epoch
                && got < entry.coordinator_epoch
            {
                return Err(Error::CoordinatorFenced { producer_id: pid, current: entry.coordinator_epoch, got });
            }
            if !h.is_control() {
                check_sequence(entry, h)?;
                if h.producer_epoch == entry.epoch {
                    let dup = entry.batches.iter().find(|b| {
                        b.first_seq == h.base_sequence && b.last_seq == h.last_sequence()
                    });
                    if let Some(dup) = dup {
                        return Ok(Check::Duplicate(*dup));
                    }
                }
            }
        }
        let mut entry = match current {
            Some(e) => e.clone(),
            None => ProducerEntry::new(pid, h.producer_epoch),
        };
        entry.apply(h, base_offset, coordinator_epoch);
        self.updated.insert(pid, entry);
        Ok(Check::Append)
    }
}

/// Sequence rule for a data batch of a producer with state; duplicates pass here and
/// are recognised by the caller.
fn check_sequence(entry: &ProducerEntry, h: &BatchHeader) -> Result<()> {
    let pid = entry.producer_id;
    if h.producer_epoch > entry.epoch {
        if h.base_sequence != 0 {
            return Err(Error::OutOfOrderSequence {
                producer_id: pid,
                expected: 0,
                got: h.base_sequence,
            });
        }
        return Ok(());
    }
    let is_dup = entry
        .batches
        .iter()
        .any(|b| b.first_seq == h.base_sequence && b.last_seq == h.last_sequence());
    if is_dup {
        return Ok(());
    }
    // No batch in this epoch yet (a marker bumped it): the first must be sequence 0.
    let last_seq = entry.batches.back().map_or(-1, |b| b.last_seq);
    if in_sequence(last_seq, h.base_sequence) {
        Ok(())
    } else {
        Err(Error::OutOfOrderSequence {
            producer_id: pid,
            expected: increment_sequence(last_seq, 1).max(0),
            got: h.base_sequence,
        })
    }
}

impl ProducerStateManager {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn pending(&self) -> PendingProducers<'_> {
        PendingProducers {
            base: self,
            updated: HashMap::new(),
        }
    }

    /// Applies checked changes after the batches were written.
    pub fn commit(&mut self, updated: HashMap<i64, ProducerEntry>) {
        self.producers.extend(updated);
        self.evict_if_needed();
    }

    /// Replays a batch read back from the log (no checks: it was checked on append).
    pub fn replay(&mut self, h: &BatchHeader) {
        self.replay_marker(h, None);
    }

    /// [`Self::replay`] with a marker's coordinator epoch, when its value was read.
    pub fn replay_marker(&mut self, h: &BatchHeader, coordinator_epoch: Option<i32>) {
        if !h.has_producer_id() {
            return;
        }
        self.producers
            .entry(h.producer_id)
            .or_insert_with(|| ProducerEntry::new(h.producer_id, h.producer_epoch))
            .apply(h, h.base_offset, coordinator_epoch);
        self.evict_if_needed();
    }

    pub fn get(&self, producer_id: i64) -> Option<&ProducerEntry> {
        self.producers.get(&producer_id)
    }

    pub fn len(&self) -> usize {
        self.producers.len()
    }

    /// All entries, sorted by producer id (a stable snapshot order).
    pub fn entries(&self) -> Vec<ProducerEntry> {
        let mut v: Vec<_> = self.producers.values().cloned().collect();
        v.sort_by_key(|e| e.producer_id);
        v
    }

    pub fn from_entries(entries: Vec<ProducerEntry>) -> Self {
        let mut this = ProducerStateManager {
            producers: entries.into_iter().map(|e| (e.producer_id, e)).collect(),
        };
        this.evict_if_needed();
        this
    }

    /// Forgets the least recently written eighth of producers once over the limit, so
    /// the cost of eviction is amortised over many appends.
    fn evict_if_needed(&mut self) {
        if self.producers.len() <= MAX_PRODUCERS_PER_PARTITION {
            return;
        }
        let mut by_age: Vec<(i64, i64)> = self
            .producers
            .values()
            .map(|e| (e.last_offset, e.producer_id))
            .collect();
        by_age.sort_unstable();
        let excess =
            self.producers.len() - MAX_PRODUCERS_PER_PARTITION + MAX_PRODUCERS_PER_PARTITION / 8;
        for (_, pid) in by_age.into_iter().take(excess) {
            self.producers.remove(&pid);
        }
    }
}

impl PendingProducers<'_> {
    pub fn into_updates(self) -> HashMap<i64, ProducerEntry> {
        self.updated
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(pid: i64, epoch: i16, seq: i32, records: i32) -> BatchHeader {
        BatchHeader {
            base_offset: 0,
            batch_length: 49,
            partition_leader_epoch: 0,
            magic: 2,
            crc: 0,
            attributes: 0,
            last_offset_delta: records - 1,
            base_timestamp: 0,
            max_timestamp: 0,
            producer_id: pid,
            producer_epoch: epoch,
            base_sequence: seq,
            record_count: records,
        }
    }

    fn append(m: &mut ProducerStateManager, h: BatchHeader, offset: i64) -> Result<Check> {
        let mut p = m.pending();
        let c = p.check(&h, offset)?;
        let u = p.into_updates();
        m.commit(u);
        Ok(c)
    }

    #[test]
    fn sequences_duplicates_and_epochs() {
        let mut m = ProducerStateManager::new();
        // Unknown producer: any sequence is accepted.
        assert_eq!(
            append(&mut m, header(1, 0, 7, 3), 0).unwrap(),
            Check::Append
        );
        assert_eq!(
            append(&mut m, header(1, 0, 10, 2), 3).unwrap(),
            Check::Append
        );
        // Retry of either batch is a duplicate with the original offsets.
        let dup = BatchMeta {
            first_seq: 7,
            last_seq: 9,
            base_offset: 0,
            last_offset: 2,
        };
        assert_eq!(
            append(&mut m, header(1, 0, 7, 3), 5).unwrap(),
            Check::Duplicate(dup)
        );
        // Gap and overlap are out of order.
        assert!(matches!(
            append(&mut m, header(1, 0, 13, 1), 5),
            Err(Error::OutOfOrderSequence {
                expected: 12,
                got: 13,
                ..
            })
        ));
        assert!(matches!(
            append(&mut m, header(1, 0, 8, 3), 5),
            Err(Error::OutOfOrderSequence { .. })
        ));
        // A newer epoch must start at 0; then the older epoch is fenced.
        assert!(matches!(
            append(&mut m, header(1, 1, 12, 1), 5),
            Err(Error::OutOfOrderSequence { expected: 0, .. })
        ));
        assert_eq!(
            append(&mut m, header(1, 1, 0, 1), 5).unwrap(),
            Check::Append
        );
        assert!(matches!(
            append(&mut m, header(1, 0, 12, 1), 6),
            Err(Error::InvalidProducerEpoch {
                current: 1,
                got: 0,
                ..
            })
        ));
    }

    #[test]
    fn only_last_five_batches_are_remembered_and_sequences_wrap() {
        let mut m = ProducerStateManager::new();
        for i in 0..7 {
            append(&mut m, header(9, 0, i, 1), i64::from(i)).unwrap();
        }
        assert_eq!(m.get(9).unwrap().batches.len(), BATCHES_PER_PRODUCER);
        assert!(matches!(
            append(&mut m, header(9, 0, 1, 1), 7),
            Err(Error::OutOfOrderSequence { .. })
        ));
        assert!(matches!(
            append(&mut m, header(9, 0, 2, 1), 7).unwrap(),
            Check::Duplicate(_)
        ));
        let mut w = ProducerStateManager::new();
        append(&mut w, header(4, 0, i32::MAX - 1, 2), 0).unwrap();
        assert_eq!(
            append(&mut w, header(4, 0, 0, 1), 2).unwrap(),
            Check::Append
        );
    }

    #[test]
    fn pending_sees_earlier_batches_of_the_same_request() {
        let m = ProducerStateManager::new();
        let mut p = m.pending();
        p.check(&header(3, 0, 0, 2), 0).unwrap();
        p.check(&header(3, 0, 2, 2), 2).unwrap();
        assert!(p.check(&header(3, 0, 5, 1), 4).is_err());
        assert_eq!(m.len(), 0, "nothing committed");
    }

    #[test]
    fn replay_matches_append() {
        let mut a = ProducerStateManager::new();
        let mut r = ProducerStateManager::new();
        for (i, h) in [
            header(1, 0, 0, 2),
            header(2, 3, 0, 1),
            header(1, 0, 2, 4),
            header(1, 1, 0, 1),
        ]
        .into_iter()
        .enumerate()
        {
            let mut h = h;
            h.base_offset = i as i64 * 10;
            append(&mut a, h, h.base_offset).unwrap();
            r.replay(&h);
        }
        assert_eq!(a.entries(), r.entries());
    }
    #[test]
    fn markers_from_an_older_coordinator_are_fenced() {
        let mut m = ProducerStateManager::new();
        let mut marker = header(7, 0, -1, 1);
        marker.attributes = 0b11_0000; // transactional + control
        let mark = |m: &mut ProducerStateManager, h: BatchHeader, at: i64, ce: i32| {
            let mut p = m.pending();
            let r = p.check_marker(&h, at, Some(ce));
            let u = p.into_updates();
            m.commit(u);
            r
        };
        append(&mut m, header(7, 0, 0, 2), 0).unwrap();
        assert_eq!(m.get(7).unwrap().coordinator_epoch, -1);
        assert_eq!(mark(&mut m, marker, 2, 3).unwrap(), Check::Append);
        assert_eq!(m.get(7).unwrap().coordinator_epoch, 3);
        // A retry from the same coordinator is fine; an older one is fenced.
        assert_eq!(mark(&mut m, marker, 3, 3).unwrap(), Check::Append);
        assert!(matches!(
            mark(&mut m, marker, 4, 2),
            Err(Error::CoordinatorFenced { producer_id: 7, current: 3, got: 2 })
        ));
        // Replicas learn it too; snapshots without the field load as "none seen".
        let mut r = ProducerStateManager::new();
        r.replay_marker(&marker, Some(5));
        assert_eq!(r.get(7).unwrap().coordinator_epoch, 5);
        let old: ProducerEntry = serde_json::from_str(r#"{"producer_id":1,"epoch":0,"batches":[],"last_offset":4}"#).unwrap();
        assert_eq!(old.coordinator_epoch, -1);
    }
}
