//! What replication needs from a [`PartitionLog`] beyond a leader's append: the leader
//! epoch API (OffsetForLeaderEpoch, a new leader's epoch), appending batches fetched
//! from the leader as they are, and truncating a diverged log.
//!
//! Truncation is crash safe by ordering: first the checkpoint's recovery point is lowered
//! (durably) to the segment being cut, so an interrupted truncation is recovered by a
//! full scan of that segment and those after it; then the epoch checkpoint is trimmed
//! (durably, before the batches it names go); then segments are deleted newest first, so
//! a crash leaves a contiguous prefix; then the segment is cut and everything is fsynced.
//! A crash at any point leaves a log that opens, holding at least everything below the
//! target offset; a caller that finds the truncation undone simply truncates again.

use super::epochs::EpochCache;
use super::partition::{MAX_RELATIVE_OFFSET, MAX_SEGMENT_BYTES, PartitionLog};
use super::producer_state::ProducerStateManager;
use super::segment::Segment;
use super::txn::TxnIndex;
use super::{AppendInfo, Error, Result, checkpoint};
use crate::protocol::records::{self, BatchHeader, RecordsError};

impl PartitionLog {
    pub fn latest_epoch(&self) -> Option<i32> {
        self.epochs.latest_epoch()
    }

    /// Kafka's OffsetForLeaderEpoch answer: the largest epoch <= `epoch` this log knows
    /// and its end offset (the start offset of the next larger epoch, or the log end
    /// offset if it is the latest). `None` (Kafka: UNDEFINED_EPOCH -1,
    /// UNDEFINED_EPOCH_OFFSET -1) when `epoch` is below every known epoch.
    pub fn end_offset_for_epoch(&self, epoch: i32) -> Option<(i32, i64)> {
        self.epochs.end_offset_for(epoch, self.log_end_offset)
    }

    /// Records that `epoch` starts at `start_offset` (a new leader does this at its log
    /// end when it takes over, Kafka's becomeLeader), if greater than the latest epoch.
    /// `start_offset` must be within [0, log end].
    pub fn assign_epoch(&mut self, epoch: i32, start_offset: i64) -> Result<()> {
        if !(0..=self.log_end_offset).contains(&start_offset) {
            return Err(Error::OffsetOutOfRange {
                requested: start_offset,
                log_start: self.log_start_offset,
                log_end: self.log_end_offset,
            });
        }
        if self.epochs.assign(epoch, start_offset) {
            // Unsynced: an epoch with no batch yet is dropped by the next open anyway.
            self.epochs.write(&self.dir, false)?;
        }
        Ok(())
    }

    fn refuse_if_closed(&self) -> Result<()> {
        if self.closed {
            return Err(Error::Io(std::io::Error::other("partition log is closed")));
        }
        Ok(())
    }

    /// Appends batches fetched from the leader as they are: offsets, leader epochs and
    /// timestamps kept. The first batch's base offset must be >= the log end (a gap is
    /// fine: the leader's log may be compacted) and batches must be in offset order;
    /// CRCs are checked. No producer sequence/epoch checks (the leader did them), but the
    /// producer state, txn index, epoch cache, offset/time indexes and segment rolling are
    /// all updated as for a leader append. Empty `records` append nothing.
    pub fn append_replica(&mut self, records: &[u8]) -> Result<AppendInfo> {
        self.refuse_if_closed()?;
        let headers = validate_replica_batches(records, self.log_end_offset)?;
        let mut info = AppendInfo {
            base_offset: headers.first().map_or(self.log_end_offset, |h| h.base_offset),
            last_offset: headers.last().map_or(self.log_end_offset - 1, BatchHeader::last_offset),
            log_start_offset: self.log_start_offset,
            duplicate: false,
            batches: headers.len(),
            log_append_time_ms: records::NO_TIMESTAMP,
        };
        // One fetch may carry more than a segment holds: write it in runs that each fit a
        // segment (and its relative offsets), so the follower's segments respect
        // `segment.bytes` as the leader's do.
        let limit_bytes = self.config.segment_bytes.min(MAX_SEGMENT_BYTES);
        let (mut run_start, mut run_bytes, mut position_bytes) = (0usize, 0u64, 0usize);
        for (i, h) in headers.iter().enumerate() {
            let run_first = &headers[run_start];
            let fits = run_bytes + h.total_bytes() as u64 <= limit_bytes
                && h.last_offset() - run_first.base_offset <= MAX_RELATIVE_OFFSET;
            if i > run_start && !fits {
                let from = position_bytes - run_bytes as usize;
                self.append_replica_run(&records[from..position_bytes], &headers[run_start..i])?;
                (run_start, run_bytes) = (i, 0);
            }
            run_bytes += h.total_bytes() as u64;
            position_bytes += h.total_bytes();
        }
        if run_start < headers.len() {
            let from = position_bytes - run_bytes as usize;
            self.append_replica_run(&records[from..position_bytes], &headers[run_start..])?;
        }
        info.log_start_offset = self.log_start_offset;
        Ok(info)
    }

    fn append_replica_run(&mut self, records: &[u8], headers: &[BatchHeader]) -> Result<()> {
        self.write_batches(records, headers)?;
        let mut at_bytes = 0usize;
        for h in headers {
            let batch = records.get(at_bytes..at_bytes + h.total_bytes()).unwrap_or_default();
            at_bytes += h.total_bytes();
            self.producers.replay_marker(h, crate::protocol::control::coordinator_epoch(h, batch));
        }
        Ok(())
    }

    /// Both truncations: the log must be open and the offset a valid one.
    fn check_truncation_offset(&self, offset: i64) -> Result<()> {
        self.refuse_if_closed()?;
        if offset < 0 {
            return Err(Error::OffsetOutOfRange {
                requested: offset,
                log_start: self.log_start_offset,
                log_end: self.log_end_offset,
            });
        }
        Ok(())
    }

    /// Removes every batch at or above `offset` (no-op when offset >= log end). Truncates
    /// at a batch boundary: a batch containing `offset` is removed whole, so the log end
    /// afterwards is the end of the last batch kept (<= `offset`). Segments above are
    /// deleted, the containing segment and its indexes cut, and the producer state, txn
    /// index, epoch cache, recovery point and log end rewound; everything kept is fsynced.
    /// Below the log start it is [`Self::truncate_fully_and_start_at`] (as in Kafka).
    /// Crash safe: see the module docs. On an error the log is reopened from disk.
    pub fn truncate_to(&mut self, offset: i64) -> Result<()> {
        self.check_truncation_offset(offset)?;
        if offset >= self.log_end_offset {
            // No batch to remove, but an epoch assigned at the log end (a leader that
            // took over and wrote nothing) may have to go: left, it would be our
            // latest epoch, and the leader would report the divergence again forever.
            if self.epochs.truncate_from_end(offset) {
                self.epochs.write(&self.dir, true)?;
            }
            return Ok(());
        }
        if offset < self.log_start_offset {
            return self.truncate_fully_and_start_at(offset);
        }
        let result = self.truncate_inner(offset);
        self.reload_if_failed(result)
    }

    fn truncate_inner(&mut self, offset: i64) -> Result<()> {
        // The log start is at or above the first segment's base (open clamps it there).
        let (&base, segment) = self
            .segments
            .range(..=offset)
            .next_back()
            .expect("offset >= log start >= first segment base");
        // None: `offset` lies in a gap past this segment's last batch; it stays whole.
        let cut = segment.locate(offset)?;
        let cut_offset = cut.map_or(segment.next_offset(), |(h, _)| h.base_offset);

        // Before anything is removed: open must rescan from this segment, and must not
        // find epochs for offsets that are about to go.
        self.recovery_point = self.recovery_point.min(base);
        self.checkpoint()?;
        if self.epochs.truncate_from_end(cut_offset) {
            self.epochs.write(&self.dir, true)?;
        }
        let doomed: Vec<i64> = self.segments.range(base + 1..).map(|(b, _)| *b).collect();
        for b in doomed.into_iter().rev() {
            let s = self.segments.remove(&b).expect("base offsets were just read from the map");
            self.unsynced.remove(&b);
            s.delete_files()?;
        }
        let segment = self.segments.get_mut(&base).expect("the cut segment stays");
        match cut {
            Some((_, position_bytes)) => segment.truncate_at(position_bytes)?,
            None => segment.unseal()?,
        }
        segment.sync_all()?;
        checkpoint::sync_dir(&self.dir)?;
        let new_end = segment.next_offset();
        debug_assert!(new_end <= offset, "truncation keeps nothing at or above {offset}");
        if new_end < self.log_start_offset {
            // The batch holding the log start was cut: nothing visible is left.
            return self.truncate_fully_inner(self.log_start_offset);
        }

        self.log_end_offset = new_end;
        if self.epochs.truncate_from_end(new_end) {
            self.epochs.write(&self.dir, false)?;
        }
        self.producers = super::recovery::rebuild_producers(&self.dir, &self.segments, new_end)?;
        if !self.txn.truncate_to(new_end) {
            self.txn = TxnIndex::rebuild(&self.segments)?;
        }
        self.clean_offset = self.clean_offset.min(new_end);
        self.finish_truncation()?;
        tracing::info!(dir = %self.dir.display(), offset, log_end_offset = new_end, "truncated log");
        Ok(())
    }

    /// Deletes everything and restarts the empty log at `offset` (Kafka's
    /// truncateFullyAndStartAt, used when a follower is below the leader's log start).
    /// Crash safe: segments go newest first; a crash before the new segment exists
    /// leaves a shorter log or an empty one at the old log start.
    pub fn truncate_fully_and_start_at(&mut self, offset: i64) -> Result<()> {
        self.check_truncation_offset(offset)?;
        let result = self.truncate_fully_inner(offset);
        self.reload_if_failed(result)
    }

    fn truncate_fully_inner(&mut self, offset: i64) -> Result<()> {
        self.epochs.clear();
        self.epochs.write(&self.dir, true)?;
        while let Some((base, segment)) = self.segments.pop_last() {
            self.unsynced.remove(&base);
            segment.delete_files()?;
        }
        for snapshot in checkpoint::list_producer_snapshots(&self.dir)? {
            checkpoint::remove_producer_snapshot(&self.dir, snapshot)?;
        }
        let segment = Segment::create(&self.dir, offset, &self.config)?;
        segment.sync_all()?;
        self.segments.insert(offset, segment);
        checkpoint::sync_dir(&self.dir)?;

        self.log_start_offset = offset;
        self.log_end_offset = offset;
        self.unsynced.clear();
        self.dir_unsynced_from = None;
        self.producers = ProducerStateManager::new();
        self.txn = TxnIndex::default();
        self.epochs = EpochCache::default();
        self.clean_offset = offset;
        self.delete_horizon_ms = None;
        self.finish_truncation()?;
        tracing::info!(dir = %self.dir.display(), offset, "truncated log fully");
        Ok(())
    }

    /// Last step of both truncations: makes every remaining write durable (the manager
    /// then reports the new log end as the durable end), voids sync handles taken before,
    /// and checkpoints the recovery point at the new log end.
    fn finish_truncation(&mut self) -> Result<()> {
        for base in self.unsynced.keys() {
            if let Some(segment) = self.segments.get(base) {
                segment.log_file().sync_all()?;
            }
        }
        checkpoint::sync_dir(&self.dir)?;
        if self.parent_unsynced_from.is_some()
            && let Some(parent) = self.dir.parent()
        {
            checkpoint::sync_dir(parent)?;
        }
        self.unsynced.clear();
        self.dir_unsynced_from = None;
        self.parent_unsynced_from = None;
        self.recovery_point = self.log_end_offset;
        self.generation += 1;
        self.checkpoint()
    }

    /// After a failed truncation the in-memory state may disagree with the files: reopen
    /// from disk (recovery makes them consistent), and report the original error.
    fn reload_if_failed(&mut self, result: Result<()>) -> Result<()> {
        if let Err(e) = &result {
            tracing::error!(dir = %self.dir.display(), error = %e, "truncation failed; reloading the log");
            // Reload bumps the generation: flushes taken before are void either way.
            if let Err(reload) = self.reload() {
                self.generation += 1;
                tracing::error!(dir = %self.dir.display(), error = %reload, "reloading the log failed");
            }
        }
        result
    }
}

/// Checks batches from the leader: framing and CRC of each, sane offset deltas, offsets
/// increasing from `log_end_offset` on. Unlike a produce request, a record count below
/// the offset span is fine (the leader's cleaner compacted the batch), and the size limit
/// is not applied: a batch the leader holds must be replicable even if `max.message.bytes`
/// was lowered since, or the follower would stall on it forever.
fn validate_replica_batches(records: &[u8], log_end_offset: i64) -> Result<Vec<BatchHeader>> {
    let mut headers = Vec::new();
    let (mut position_bytes, mut expected) = (0usize, log_end_offset);
    while position_bytes < records.len() {
        let h = records::check_batch(&records[position_bytes..])?;
        let invalid = |reason: String| RecordsError::InvalidRecord { reason };
        if h.last_offset_delta < 0 || h.record_count < 0 {
            return Err(invalid(format!("negative offset delta or record count at {}", h.base_offset)).into());
        }
        if h.base_offset > i64::MAX - i64::from(i32::MAX) {
            return Err(invalid(format!("base offset {} out of range", h.base_offset)).into());
        }
        if h.base_offset < expected {
            return Err(Error::NonMonotonicOffset { base_offset: h.base_offset, expected_at_least: expected });
        }
        expected = h.next_offset();
        position_bytes += h.total_bytes();
        headers.push(h);
    }
    Ok(headers)
}
