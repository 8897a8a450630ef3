//! [`PartitionLog`]: the segments of one partition and the rules that span them: dense
//! offset assignment, rolling, producer checks, reads of whole batches, timestamp
//! lookups, the sync bookkeeping the manager uses to fsync outside its lock, and clean
//! shutdown. Opening and crash recovery live in [`super::recovery`].
//!
//! Invariants: segments are keyed by base offset, contiguous (each starts at the
//! previous one's `next_offset`), and only the last (active) one is written;
//! `log_start_offset <= log_end_offset == active.next_offset()`; offsets are dense.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use kafka_protocol::records::RecordBatchDecoder;

use super::checkpoint::{self, Checkpoint};
use super::producer_state::{Check, ProducerStateManager};
use super::segment::Segment;
use super::{AppendInfo, Error, LogConfig, ReadResult, Result};
use crate::protocol::records::{self, BatchHeader, BatchIter};

/// `mark_synced` calls between two lazy checkpoint writes.
const MARKS_PER_CHECKPOINT: u32 = 64;
/// Segment files hold positions as u32 in their index.
const MAX_SEGMENT_BYTES: u64 = u32::MAX as u64;
/// Kafka keeps offsets relative to a segment's base within i32.
const MAX_RELATIVE_OFFSET: i64 = i32::MAX as i64;

pub struct PartitionLog {
    pub(super) dir: PathBuf,
    pub(super) config: LogConfig,
    /// By base offset; the last entry is the active segment. Never empty.
    pub(super) segments: BTreeMap<i64, Segment>,
    pub(super) log_start_offset: i64,
    pub(super) log_end_offset: i64,
    /// Offsets below this are durable (last `mark_synced`, or recovery/open).
    pub(super) recovery_point: i64,
    pub(super) producers: ProducerStateManager,
    /// Open and aborted transactions (LSO, read_committed): see [`super::txn`].
    pub(super) txn: super::txn::TxnIndex,
    /// Segments written since they were last synced: base offset → log end offset
    /// right after the last write to that segment.
    pub(super) unsynced: BTreeMap<i64, i64>,
    /// Base offset of the newest segment whose directory entry may not be durable.
    pub(super) dir_unsynced_from: Option<i64>,
    pub(super) marks_since_checkpoint: u32,
    /// Set by `close`: the active indexes are trimmed and appends are refused.
    pub(super) closed: bool,
}

impl PartitionLog {
    /// Opens (creating if missing) the partition directory `dir`, recovering it if it was
    /// not closed cleanly.
    pub fn open(dir: &Path, config: LogConfig) -> Result<PartitionLog> {
        super::recovery::open(dir, config)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
    pub fn config(&self) -> &LogConfig {
        &self.config
    }
    /// Applies changed topic configs live. Size and time limits take effect at the next
    /// append or retention pass; index sizes apply to segments created from now on.
    pub fn set_config(&mut self, config: LogConfig) {
        self.config = config;
    }
    pub fn log_start_offset(&self) -> i64 {
        self.log_start_offset
    }
    pub fn log_end_offset(&self) -> i64 {
        self.log_end_offset
    }
    pub fn recovery_point(&self) -> i64 {
        self.recovery_point
    }
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }
    /// Base offsets of the segments, ascending.
    pub fn segment_base_offsets(&self) -> Vec<i64> {
        self.segments.keys().copied().collect()
    }
    /// Producer ids with state in this partition.
    pub fn producer_count(&self) -> usize {
        self.producers.len()
    }
    /// Epoch and last five batches of a producer (tests, diagnostics, DescribeProducers).
    pub fn producer_state(&self, producer_id: i64) -> Option<&super::ProducerEntry> {
        self.producers.get(producer_id)
    }

    fn active(&self) -> &Segment {
        // `segments` is never empty: open creates a segment when there is none.
        self.segments
            .values()
            .next_back()
            .expect("a log always has an active segment")
    }

    fn active_mut(&mut self) -> &mut Segment {
        self.segments
            .values_mut()
            .next_back()
            .expect("a log always has an active segment")
    }

    fn out_of_range(&self, requested: i64) -> Error {
        Error::OffsetOutOfRange {
            requested,
            log_start: self.log_start_offset,
            log_end: self.log_end_offset,
        }
    }

    /// [`Self::append_at`] at the system clock's time.
    pub fn append(&mut self, records: &mut [u8], leader_epoch: i32) -> Result<AppendInfo> {
        self.append_at(records, leader_epoch, super::system_time_ms())
    }

    /// Appends the batches of one Produce request: validates them all and checks their
    /// producers before writing any, assigns dense offsets from the log end, stamps the
    /// leader epoch (and, with LogAppendTime, `now_ms`), writes them with one `pwrite`
    /// and indexes them. A retried batch of an idempotent producer is not written again
    /// (`duplicate: true`, original offsets).
    pub fn append_at(
        &mut self,
        records: &mut [u8],
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<AppendInfo> {
        if self.closed {
            return Err(Error::Io(std::io::Error::other("partition log is closed")));
        }
        let headers = records::validate_batches(records, self.config.max_message_bytes)?;
        let mut pending = self.producers.pending();
        let mut next_offset = self.log_end_offset;
        for h in &headers {
            if let Check::Duplicate(original) = pending.check(h, next_offset)? {
                return Ok(AppendInfo {
                    base_offset: original.base_offset,
                    last_offset: original.last_offset,
                    log_start_offset: self.log_start_offset,
                    duplicate: true,
                    batches: headers.len(),
                    log_append_time_ms: records::NO_TIMESTAMP,
                });
            }
            next_offset += i64::from(h.last_offset_delta) + 1;
        }
        let updates = pending.into_updates();

        let base_offset = self.log_end_offset;
        let mut stored = Vec::with_capacity(headers.len());
        let (mut position_bytes, mut offset) = (0usize, base_offset);
        for h in &headers {
            let batch = &mut records[position_bytes..position_bytes + h.total_bytes()];
            records::set_base_offset(batch, offset);
            records::set_partition_leader_epoch(batch, leader_epoch);
            if self.config.log_append_time {
                records::set_log_append_time(batch, now_ms);
            }
            // Re-read what is now in the buffer: offsets, epoch, and any stamped time.
            stored.push(BatchHeader::parse(batch)?);
            position_bytes += h.total_bytes();
            offset += i64::from(h.last_offset_delta) + 1;
        }
        debug_assert_eq!(offset, next_offset);
        let last_offset = next_offset - 1;

        let incoming_max_timestamp = stored.iter().map(|h| h.max_timestamp).max();
        self.maybe_roll(records.len() as u64, last_offset, incoming_max_timestamp)?;
        self.active_mut().append(records, &stored)?;
        let active_base = self.active().base_offset();
        self.log_end_offset = next_offset;
        self.unsynced.insert(active_base, next_offset);
        self.producers.commit(updates);
        self.txn.apply_all(records);
        debug_assert_eq!(
            self.log_end_offset,
            self.active().next_offset(),
            "offsets must stay dense"
        );
        Ok(AppendInfo {
            base_offset,
            last_offset,
            log_start_offset: self.log_start_offset,
            duplicate: false,
            batches: headers.len(),
            log_append_time_ms: if self.config.log_append_time {
                now_ms
            } else {
                records::NO_TIMESTAMP
            },
        })
    }

    /// Rolls before an append of `request_bytes` ending at `last_offset` if the active
    /// segment would outgrow `segment_bytes`, its relative offsets would overflow, its
    /// indexes are full, or (Kafka's time roll) the incoming batches' largest timestamp
    /// is more than `segment_ms` past the segment's first batch. An empty active segment
    /// is never rolled: an oversized request goes into a fresh segment on its own.
    fn maybe_roll(
        &mut self,
        request_bytes: u64,
        last_offset: i64,
        incoming_max_timestamp: Option<i64>,
    ) -> Result<()> {
        let active = self.active();
        if active.is_empty() {
            return Ok(());
        }
        let limit_bytes = self.config.segment_bytes.min(MAX_SEGMENT_BYTES);
        let too_big = active.size_bytes().saturating_add(request_bytes) > limit_bytes;
        let offsets_overflow = last_offset - active.base_offset() > MAX_RELATIVE_OFFSET;
        let first_timestamp = active.first_batch_timestamp();
        let too_old = first_timestamp > records::NO_TIMESTAMP
            && incoming_max_timestamp
                .is_some_and(|ts| ts.saturating_sub(first_timestamp) > self.config.segment_ms);
        if too_big || offsets_overflow || too_old || active.indexes_full() {
            self.roll()?;
        }
        Ok(())
    }

    /// Seals the active segment and starts a new one at the log end. Also snapshots the
    /// producer state at that offset, so recovery replays at most about one segment.
    pub fn roll(&mut self) -> Result<()> {
        let new_base = self.log_end_offset;
        if self.active().base_offset() == new_base {
            return Ok(()); // already empty at the log end
        }
        self.active_mut().seal()?;
        let segment = Segment::create(&self.dir, new_base, &self.config)?;
        self.segments.insert(new_base, segment);
        self.dir_unsynced_from = Some(new_base);
        if let Err(e) = checkpoint::write_producer_snapshot(
            &self.dir,
            new_base,
            self.producers.entries(),
            false,
        ) {
            tracing::warn!(dir = %self.dir.display(), error = %e, "producer snapshot failed; recovery will replay more");
        }
        Ok(())
    }

    /// Reads whole batches starting with the one that contains `offset`, all from one
    /// segment, stopping before a batch whose base offset is >= `max_offset` and before
    /// exceeding `max_bytes`, except that with `min_one_batch` the first batch is
    /// returned whole even if larger (KIP-74). `offset == log end` gives no records.
    pub fn read(
        &self,
        offset: i64,
        max_bytes: usize,
        max_offset: i64,
        min_one_batch: bool,
    ) -> Result<ReadResult> {
        if offset < self.log_start_offset || offset > self.log_end_offset {
            return Err(self.out_of_range(offset));
        }
        let records = self.read_records(offset, max_bytes, max_offset, min_one_batch)?;
        Ok(ReadResult {
            records,
            log_start_offset: self.log_start_offset,
            log_end_offset: self.log_end_offset,
        })
    }

    fn read_records(
        &self,
        offset: i64,
        max_bytes: usize,
        max_offset: i64,
        min_one_batch: bool,
    ) -> Result<Bytes> {
        if offset == self.log_end_offset {
            return Ok(Bytes::new());
        }
        let segment = self.segment_for(offset)?;
        let (first, position_bytes) = self.locate_in(segment, offset)?;
        if first.base_offset >= max_offset {
            return Ok(Bytes::new());
        }
        if first.total_bytes() > max_bytes {
            return if min_one_batch {
                segment.read_bytes(position_bytes, first.total_bytes())
            } else {
                Ok(Bytes::new())
            };
        }
        let available_bytes = segment.size_bytes() - position_bytes;
        let want_bytes = (max_bytes as u64).min(available_bytes) as usize;
        let chunk = segment.read_bytes(position_bytes, want_bytes)?;
        let mut end_bytes = 0;
        for (h, range) in BatchIter::new(&chunk) {
            if h.base_offset >= max_offset {
                break;
            }
            end_bytes = range.end;
        }
        debug_assert!(end_bytes >= first.total_bytes());
        Ok(chunk.slice(..end_bytes))
    }

    /// The segment whose offsets include `offset` (which must be in [start, end)).
    fn segment_for(&self, offset: i64) -> Result<&Segment> {
        self.segments
            .range(..=offset)
            .next_back()
            .map(|(_, s)| s)
            .ok_or_else(|| self.out_of_range(offset))
    }

    fn locate_in(&self, segment: &Segment, offset: i64) -> Result<(BatchHeader, u64)> {
        segment.locate(offset)?.ok_or_else(|| Error::Corrupt {
            path: segment.log_path().to_path_buf(),
            reason: format!(
                "offset {offset} below the log end {} is not in its segment",
                self.log_end_offset
            ),
        })
    }

    /// ListOffsets by timestamp: the earliest offset (>= log start) whose record
    /// timestamp is >= `timestamp`, with that record's timestamp; `None` if none.
    pub fn offset_for_timestamp(&self, timestamp: i64) -> Result<Option<(i64, i64)>> {
        for segment in self.segments.values() {
            if segment.max_timestamp() < timestamp || segment.next_offset() <= self.log_start_offset
            {
                continue;
            }
            let from_offset = segment
                .time_index()
                .lookup(timestamp)
                .max(self.log_start_offset);
            let Some((_, start_bytes)) = segment.locate(from_offset)? else {
                continue;
            };
            // Batches before `from_offset` hold only earlier timestamps (time index
            // invariant); from there, decode each batch whose header could match.
            let (mut found, mut failure) = (None, None);
            segment.walk_headers(start_bytes, |h, at| {
                if h.max_timestamp < timestamp || h.last_offset() < self.log_start_offset {
                    return true;
                }
                match self.decode_timestamps(segment, h, at) {
                    Ok(records) => {
                        found = records
                            .into_iter()
                            .find(|&(o, ts)| ts >= timestamp && o >= self.log_start_offset);
                        found.is_none()
                    }
                    Err(e) => {
                        failure = Some(e);
                        false
                    }
                }
            })?;
            if let Some(e) = failure {
                return Err(e);
            }
            if found.is_some() {
                return Ok(found);
            }
        }
        Ok(None)
    }

    /// ListOffsets MAX_TIMESTAMP: the first offset holding the largest timestamp.
    pub fn max_timestamp(&self) -> Option<(i64, i64)> {
        let mut best: Option<&Segment> = None;
        for s in self.segments.values() {
            if s.max_timestamp() > best.map_or(records::NO_TIMESTAMP, |b| b.max_timestamp()) {
                best = Some(s);
            }
        }
        let segment = best?;
        let (ts, batch_offset) = (segment.max_timestamp(), segment.offset_of_max_timestamp());
        let located = match segment.locate(batch_offset) {
            Ok(Some(found)) => found,
            Ok(None) => return Some((batch_offset, ts)),
            Err(e) => {
                tracing::warn!(error = %e, "max timestamp batch not readable");
                return Some((batch_offset, ts));
            }
        };
        match self.decode_timestamps(segment, &located.0, located.1) {
            Ok(records) => records
                .into_iter()
                .find(|&(_, t)| t == ts)
                .or(Some((batch_offset, ts))),
            Err(e) => {
                tracing::warn!(error = %e, "max timestamp batch not decodable");
                Some((batch_offset, ts))
            }
        }
    }

    /// (offset, timestamp) of every record of the batch at `position_bytes`.
    fn decode_timestamps(
        &self,
        segment: &Segment,
        h: &BatchHeader,
        position_bytes: u64,
    ) -> Result<Vec<(i64, i64)>> {
        let mut bytes = segment.read_bytes(position_bytes, h.total_bytes())?;
        let set = RecordBatchDecoder::decode(&mut bytes).map_err(|e| Error::Corrupt {
            path: segment.log_path().to_path_buf(),
            reason: format!("batch at offset {} does not decode: {e}", h.base_offset),
        })?;
        let log_append_time = h.is_log_append_time();
        Ok(set
            .records
            .iter()
            .map(|r| {
                (
                    r.offset,
                    if log_append_time {
                        h.max_timestamp
                    } else {
                        r.timestamp
                    },
                )
            })
            .collect())
    }

    /// Duplicated handles of every file written since the last [`Self::mark_synced`]
    /// (and of the directory if a segment was created), plus the log end offset they
    /// cover. The caller fsyncs them without holding the log, then calls `mark_synced`.
    pub fn sync_handles(&self) -> (Vec<File>, i64) {
        let mut files = Vec::with_capacity(self.unsynced.len() + 1);
        for base in self.unsynced.keys() {
            let Some(segment) = self.segments.get(base) else {
                continue;
            };
            match segment.log_file().try_clone() {
                Ok(f) => files.push(f),
                Err(e) => return self.no_sync_progress(e),
            }
        }
        if self.dir_unsynced_from.is_some() {
            match File::open(&self.dir) {
                Ok(f) => files.push(f),
                Err(e) => return self.no_sync_progress(e),
            }
        }
        (files, self.log_end_offset)
    }

    /// When handles cannot be duplicated (fd exhaustion), promise nothing new: the
    /// caller will retry and acks wait rather than run ahead of durability.
    fn no_sync_progress(&self, e: std::io::Error) -> (Vec<File>, i64) {
        tracing::warn!(dir = %self.dir.display(), error = %e, "cannot duplicate file handles for fsync");
        (Vec::new(), self.recovery_point)
    }

    /// Records that everything below `upto` (a value from `sync_handles`) is durable.
    /// The checkpoint file is rewritten lazily, every [`MARKS_PER_CHECKPOINT`] calls.
    pub fn mark_synced(&mut self, upto: i64) {
        let upto = upto.min(self.log_end_offset);
        self.recovery_point = self.recovery_point.max(upto);
        // A write that ended at or below `upto` happened before the handles were taken.
        self.unsynced.retain(|_, written_end| *written_end > upto);
        if self.dir_unsynced_from.is_some_and(|base| upto > base) {
            self.dir_unsynced_from = None;
        }
        self.marks_since_checkpoint += 1;
        if self.marks_since_checkpoint >= MARKS_PER_CHECKPOINT
            && let Err(e) = self.checkpoint()
        {
            tracing::warn!(dir = %self.dir.display(), error = %e, "log checkpoint failed");
        }
    }

    /// Writes the checkpoint (recovery point, log start; not clean) now.
    pub fn checkpoint(&mut self) -> Result<()> {
        self.marks_since_checkpoint = 0;
        Checkpoint::new(false, self.recovery_point, self.log_start_offset).write(&self.dir)?;
        Ok(())
    }

    /// Clean shutdown: fsyncs everything, seals the active segment's indexes, snapshots
    /// the producer state and writes a clean checkpoint so the next open skips recovery.
    /// Appends are refused afterwards; reads still work.
    pub fn close(&mut self) -> Result<()> {
        if self.closed {
            return Ok(());
        }
        for base in self.unsynced.keys() {
            if let Some(segment) = self.segments.get(base) {
                segment.log_file().sync_all()?;
            }
        }
        self.active_mut().seal()?;
        self.active().sync_all()?;
        checkpoint::sync_dir(&self.dir)?;
        checkpoint::write_producer_snapshot(
            &self.dir,
            self.log_end_offset,
            self.producers.entries(),
            true,
        )?;
        self.unsynced.clear();
        self.dir_unsynced_from = None;
        self.recovery_point = self.log_end_offset;
        Checkpoint::new(true, self.log_end_offset, self.log_start_offset).write(&self.dir)?;
        self.closed = true;
        Ok(())
    }

    /// Removes the partition's directory and everything in it.
    pub fn delete(self) -> Result<()> {
        let dir = self.dir.clone();
        drop(self); // unmap indexes and close files first
        std::fs::remove_dir_all(&dir)?;
        Ok(())
    }
}
