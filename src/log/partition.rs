//! [`PartitionLog`]: the segments of one partition and the rules that span them: dense
//! offset assignment, rolling, producer checks, reads of whole batches, timestamp
//! lookups, the sync bookkeeping the manager uses to fsync outside its lock, and clean
//! shutdown. Opening and crash recovery live in [`super::recovery`].
//!
//! Invariants: segments are keyed by base offset, ordered (each starts at or after the
//! previous one's `next_offset`), and only the last (active) one is written;
//! `log_start_offset <= log_end_offset == active.next_offset()`. Appends assign dense
//! offsets, but the cleaner ([`super::cleaner`]) drops whole batches from sealed
//! segments, so offsets below the active segment may have gaps: a read at an offset in
//! a gap returns the next batch, as Kafka does. The log end offset never moves back.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use bytes::Bytes;

use super::checkpoint::{self, Checkpoint};
use super::producer_state::{Check, ProducerStateManager};
use super::segment::{FileSlice, Segment};
use super::{AppendInfo, Error, LogConfig, ReadResult, Result, SliceRead};
use crate::protocol::record_codec::DecodedBatch;
use crate::protocol::records::{self, BatchHeader};

/// `mark_synced` calls between two lazy checkpoint writes...
const MARKS_PER_CHECKPOINT: u32 = 64;
/// ...or at most this long between them while data is synced. Recovery after a crash
/// CRC-checks what lies above the checkpointed recovery point, so this bounds it to
/// about a second of each partition's writes (a partition taking few, large group
/// commits would otherwise go long without a checkpoint). Kafka checkpoints every 60 s.
const CHECKPOINT_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);
/// Segment files hold positions as u32 in their index.
pub(super) const MAX_SEGMENT_BYTES: u64 = u32::MAX as u64;
/// Kafka keeps offsets relative to a segment's base within i32.
pub(super) const MAX_RELATIVE_OFFSET: i64 = i32::MAX as i64;

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
    /// Which leader epoch began at which offset: see [`super::epochs`].
    pub(super) epochs: super::epochs::EpochCache,
    /// Bumped by every truncation. Sync handles taken before one promise nothing about
    /// the offsets written since, so the manager drops their result (see
    /// [`Self::generation`]).
    pub(super) generation: u64,
    /// Segments written since they were last synced: base offset → log end offset
    /// right after the last write to that segment.
    pub(super) unsynced: BTreeMap<i64, i64>,
    /// Base offset of the newest segment whose directory entry may not be durable.
    pub(super) dir_unsynced_from: Option<i64>,
    /// Set to the log end when open created the partition directory without fsyncing
    /// its parent (creating 1,000 partitions must not cost thousands of fsyncs): the
    /// parent is synced with the first data past that offset, before it is acknowledged.
    pub(super) parent_unsynced_from: Option<i64>,
    pub(super) marks_since_checkpoint: u32,
    pub(super) last_checkpoint: std::time::Instant,
    /// Set by `close`: the active indexes are trimmed and appends are refused.
    pub(super) closed: bool,
    /// Offsets below this were compacted by the cleaner (persisted in the checkpoint).
    pub(super) clean_offset: i64,
    /// Earliest pending delete horizon of a cleaned batch of tombstones, if any.
    pub(super) delete_horizon_ms: Option<i64>,
}

impl PartitionLog {
    /// Opens (creating if missing) the partition directory `dir`, recovering it if it was
    /// not closed cleanly.
    pub fn open(dir: &Path, config: LogConfig) -> Result<PartitionLog> {
        super::recovery::open(dir, config, super::recovery::CheckpointSync::Now)
    }

    /// [`Self::open`] that leaves its checkpoint unsynced: the caller must make the log
    /// directory durable (`syncfs`) before the log takes an append.
    pub fn open_deferring_sync(dir: &Path, config: LogConfig) -> Result<PartitionLog> {
        super::recovery::open(dir, config, super::recovery::CheckpointSync::Deferred)
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
    /// The leader epoch cache as (epoch, start offset), ascending (tests, diagnostics).
    pub fn epoch_entries(&self) -> Vec<(i32, i64)> {
        self.epochs.entries().iter().map(|e| (e.epoch, e.start_offset)).collect()
    }
    /// Number of truncations so far. The manager compares it before and after an fsync
    /// made outside the lock: a truncation in between voids what the handles covered.
    pub fn generation(&self) -> u64 {
        self.generation
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
        if self.config.cleanup_compact {
            self.check_keys(records, &headers)?;
        }
        let mut pending = self.producers.pending();
        let mut next_offset = self.log_end_offset;
        let mut at_bytes = 0usize;
        for h in &headers {
            let batch = &records[at_bytes..at_bytes + h.total_bytes()];
            at_bytes += h.total_bytes();
            let coordinator_epoch = crate::protocol::control::coordinator_epoch(h, batch);
            if let Check::Duplicate(original) = pending.check_marker(h, next_offset, coordinator_epoch)? {
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

        self.write_batches(records, &stored)?;
        self.producers.commit(updates);
        debug_assert_eq!(self.log_end_offset, next_offset, "offsets must stay dense");
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

    /// Writes batches whose offsets are final (`stored`: their headers, in order, the
    /// first at or past the log end) at the log end, rolling first when needed, and
    /// updates what derives from them: indexes, log end, transaction index, epoch cache.
    /// The producer state is the caller's: checked for a leader, replayed for a replica.
    pub(super) fn write_batches(&mut self, records: &[u8], stored: &[BatchHeader]) -> Result<()> {
        let (Some(first), Some(last)) = (stored.first(), stored.last()) else {
            return Ok(());
        };
        debug_assert!(first.base_offset >= self.log_end_offset, "appends never go back");
        let incoming_max_timestamp = stored.iter().map(|h| h.max_timestamp).max();
        self.maybe_roll(records.len() as u64, first.base_offset, last.last_offset(), incoming_max_timestamp)?;
        self.active_mut().append(records, stored)?;
        let active_base = self.active().base_offset();
        self.log_end_offset = last.next_offset();
        self.unsynced.insert(active_base, self.log_end_offset);
        self.txn.apply_all(records);
        let mut epochs_changed = false;
        for h in stored {
            epochs_changed |= self.epochs.assign(h.partition_leader_epoch, h.base_offset);
        }
        if epochs_changed && let Err(e) = self.epochs.write(&self.dir, false) {
            // The batches are in the log: failing the append now would not undo them.
            // Open fills in the epochs the file lacks from the batch headers.
            tracing::warn!(dir = %self.dir.display(), error = %e, "leader epoch checkpoint failed");
        }
        debug_assert_eq!(self.log_end_offset, self.active().next_offset(), "the active segment ends the log");
        Ok(())
    }

    /// Kafka's rule for compacted logs: every record needs a key (the cleaner would
    /// drop a keyless one). Decompresses each data batch once; control batches pass.
    fn check_keys(&self, records: &[u8], headers: &[BatchHeader]) -> Result<()> {
        let limit_bytes = super::cleaner::decompressed_limit_bytes(&self.config);
        let mut position_bytes = 0;
        for h in headers {
            let batch = &records[position_bytes..position_bytes + h.total_bytes()];
            position_bytes += h.total_bytes();
            if h.is_control() {
                continue;
            }
            if DecodedBatch::decode(batch, limit_bytes)?.records().any(|r| r.key.is_none()) {
                return Err(records::RecordsError::InvalidRecord {
                    reason: format!(
                        "Compacted topic cannot accept message without key in {}",
                        self.dir.display()
                    ),
                }
                .into());
            }
        }
        Ok(())
    }

    /// Rolls before an append of `request_bytes` from `first_offset` to `last_offset` if
    /// the active segment would outgrow `segment_bytes`, its relative offsets would
    /// overflow, its indexes are full, or (Kafka's time roll) the incoming batches'
    /// largest timestamp is more than `segment_ms` past the segment's first batch. An
    /// empty active segment is rolled only for offsets (a replica's gap can be wide):
    /// an oversized request goes into a fresh segment on its own.
    fn maybe_roll(
        &mut self,
        request_bytes: u64,
        first_offset: i64,
        last_offset: i64,
        incoming_max_timestamp: Option<i64>,
    ) -> Result<()> {
        let active = self.active();
        if last_offset - active.base_offset() > MAX_RELATIVE_OFFSET {
            // Only a replica's gap makes `first_offset` differ from the log end.
            return self.roll_at(first_offset);
        }
        if active.is_empty() {
            return Ok(());
        }
        let limit_bytes = self.config.segment_bytes.min(MAX_SEGMENT_BYTES);
        let too_big = active.size_bytes().saturating_add(request_bytes) > limit_bytes;
        let first_timestamp = active.first_batch_timestamp();
        let too_old = first_timestamp > records::NO_TIMESTAMP
            && incoming_max_timestamp
                .is_some_and(|ts| ts.saturating_sub(first_timestamp) > self.config.segment_ms);
        if too_big || too_old || active.indexes_full() {
            self.roll()?;
        }
        Ok(())
    }

    /// Seals the active segment and starts a new one at the log end. Also snapshots the
    /// producer state at that offset, so recovery replays at most about one segment.
    pub fn roll(&mut self) -> Result<()> {
        self.roll_at(self.log_end_offset)
    }

    /// [`Self::roll`] with the new segment at `new_base` (>= the log end): past the log
    /// end only for a replica append that starts after a gap too wide for the active
    /// segment's relative offsets. The log end moves to `new_base`; the gap below it is
    /// then part of the log, as a compaction gap is.
    pub(super) fn roll_at(&mut self, new_base: i64) -> Result<()> {
        assert!(new_base >= self.log_end_offset, "a segment never starts below the log end");
        if self.active().base_offset() == new_base {
            return Ok(()); // already empty at the log end
        }
        self.active_mut().seal()?;
        let segment = Segment::create(&self.dir, new_base, &self.config)?;
        self.segments.insert(new_base, segment);
        self.dir_unsynced_from = Some(new_base);
        self.log_end_offset = new_base;
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
        let read = self.read_slice(offset, max_bytes, max_offset, min_one_batch)?;
        let records = match &read.records {
            Some(slice) => slice.read()?,
            None => Bytes::new(),
        };
        Ok(ReadResult {
            records,
            log_start_offset: read.log_start_offset,
            log_end_offset: read.log_end_offset,
        })
    }

    /// What [`Self::read`] would read, as a range of the segment file rather than bytes
    /// (for a consumer fetch, which sends it from the file). Only headers are read.
    pub fn read_slice(
        &self,
        offset: i64,
        max_bytes: usize,
        max_offset: i64,
        min_one_batch: bool,
    ) -> Result<SliceRead> {
        if offset < self.log_start_offset || offset > self.log_end_offset {
            return Err(self.out_of_range(offset));
        }
        let found = self.slice_records(offset, max_bytes, max_offset, min_one_batch)?;
        Ok(SliceRead {
            records: found.as_ref().map(|(s, _)| s.clone()),
            next_offset: found.map(|(_, next)| next),
            log_start_offset: self.log_start_offset,
            log_end_offset: self.log_end_offset,
        })
    }

    fn slice_records(
        &self,
        offset: i64,
        max_bytes: usize,
        max_offset: i64,
        min_one_batch: bool,
    ) -> Result<Option<(FileSlice, i64)>> {
        if offset == self.log_end_offset {
            return Ok(None);
        }
        let Some((segment, first, position_bytes)) = self.locate_from(offset)? else {
            // Only a compaction gap up to the log end lies ahead.
            return Ok(None);
        };
        if first.base_offset >= max_offset {
            return Ok(None);
        }
        if first.total_bytes() > max_bytes {
            return Ok(min_one_batch.then(|| (segment.slice(position_bytes, first.total_bytes()), first.next_offset())));
        }
        let available_bytes = segment.size_bytes() - position_bytes;
        let limit_bytes = position_bytes + (max_bytes as u64).min(available_bytes);
        let Some((end_bytes, next_offset)) = segment.batches_end(position_bytes, limit_bytes, max_offset)? else {
            return Err(segment.corrupt(format!("batch at position {position_bytes} not readable")));
        };
        debug_assert!(end_bytes >= position_bytes + first.total_bytes() as u64);
        Ok(Some((segment.slice(position_bytes, (end_bytes - position_bytes) as usize), next_offset)))
    }

    /// The first batch whose last offset is >= `offset` (which must be >= the first
    /// segment's base): the batch holding it, or, when it fell into a compaction gap,
    /// the next batch, possibly in a later segment. `None` if no batch lies ahead.
    pub(super) fn locate_from(&self, offset: i64) -> Result<Option<(&Segment, BatchHeader, u64)>> {
        let first_base = self
            .segments
            .range(..=offset)
            .next_back()
            .map_or(i64::MIN, |(b, _)| *b);
        for segment in self.segments.range(first_base..).map(|(_, s)| s) {
            let from = offset.max(segment.base_offset());
            if let Some((h, at)) = segment.locate(from)? {
                return Ok(Some((segment, h, at)));
            }
        }
        Ok(None)
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
        let bytes = segment.read_bytes(position_bytes, h.total_bytes())?;
        let limit_bytes = super::cleaner::decompressed_limit_bytes(&self.config);
        let batch = DecodedBatch::decode(&bytes, limit_bytes).map_err(|e| Error::Corrupt {
            path: segment.log_path().to_path_buf(),
            reason: format!("batch at offset {} does not decode: {e}", h.base_offset),
        })?;
        Ok(batch
            .records()
            .map(|r| (r.offset(h.base_offset), batch.timestamp_of(&r)))
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
        // A directory entry matters once a record in its segment is to be acknowledged;
        // an empty segment lost in a crash is simply created again.
        let has_data_past = |from: Option<i64>| from.is_some_and(|o| self.log_end_offset > o);
        let mut dirs = Vec::new();
        if has_data_past(self.dir_unsynced_from) {
            dirs.push(self.dir.as_path());
        }
        if has_data_past(self.parent_unsynced_from) {
            dirs.extend(self.dir.parent());
        }
        for dir in dirs {
            match File::open(dir) {
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
        if self.parent_unsynced_from.is_some_and(|from| upto > from) {
            self.parent_unsynced_from = None;
        }
        self.marks_since_checkpoint += 1;
        if self.marks_since_checkpoint >= MARKS_PER_CHECKPOINT
            || self.last_checkpoint.elapsed() >= CHECKPOINT_INTERVAL
        {
            self.marks_since_checkpoint = 0;
            self.last_checkpoint = std::time::Instant::now();
            // Unsynced is enough: it only claims data already durable, and a lost one
            // leaves the previous (older, never clean: open replaced that durably).
            if let Err(e) = self.checkpoint_state(false).write_unsynced(&self.dir) {
                tracing::warn!(dir = %self.dir.display(), error = %e, "log checkpoint failed");
            }
        }
    }

    /// Writes the checkpoint (recovery point, log start; not clean) now.
    pub fn checkpoint(&mut self) -> Result<()> {
        self.marks_since_checkpoint = 0;
        self.last_checkpoint = std::time::Instant::now();
        self.checkpoint_state(false).write(&self.dir)?;
        Ok(())
    }

    /// What a checkpoint written now records; `clean` only once everything is durable
    /// and appends are refused (the recovery point is then the log end).
    pub(super) fn checkpoint_state(&self, clean: bool) -> Checkpoint {
        let recovery_point = if clean { self.log_end_offset } else { self.recovery_point };
        Checkpoint::new(clean, recovery_point, self.log_start_offset)
            .with_cleaner(self.clean_offset, self.delete_horizon_ms)
    }

    /// Clean shutdown of this log alone: fsyncs everything, seals the active segment's
    /// indexes, snapshots the producer state and writes a clean checkpoint so the next
    /// open skips recovery. Appends are refused afterwards; reads still work. The
    /// manager closes many logs with [`Self::prepare_close`], one `syncfs`, then
    /// [`Self::finish_close`] instead.
    pub fn close(&mut self) -> Result<()> {
        if self.closed {
            return Ok(());
        }
        self.prepare_close()?;
        for base in self.unsynced.keys() {
            if let Some(segment) = self.segments.get(base) {
                segment.log_file().sync_all()?;
            }
        }
        self.active().sync_all()?;
        checkpoint::sync_producer_snapshot(&self.dir, self.log_end_offset)?;
        checkpoint::sync_dir(&self.dir)?;
        if self.parent_unsynced_from.is_some()
            && let Some(parent) = self.dir.parent()
        {
            checkpoint::sync_dir(parent)?;
        }
        self.finish_close()?;
        checkpoint::sync_checkpoint(&self.dir)?;
        Ok(())
    }

    /// First half of a clean shutdown: refuses appends from now on, seals the active
    /// segment's indexes and writes the producer snapshot, all without fsync. The
    /// caller makes the whole directory durable before [`Self::finish_close`].
    pub fn prepare_close(&mut self) -> Result<()> {
        if self.closed {
            return Ok(()); // sealed and snapshotted already
        }
        self.closed = true;
        self.active_mut().seal()?;
        checkpoint::write_producer_snapshot(
            &self.dir,
            self.log_end_offset,
            self.producers.entries(),
            false,
        )?;
        Ok(())
    }

    /// Second half: everything `prepare_close` left is durable now, so the checkpoint
    /// may say clean. Written without fsync: the caller syncs it (a lost or torn
    /// checkpoint only means a recovery scan at the next open).
    pub fn finish_close(&mut self) -> Result<()> {
        debug_assert!(self.closed, "finish_close without prepare_close");
        self.unsynced.clear();
        self.dir_unsynced_from = None;
        self.parent_unsynced_from = None;
        self.recovery_point = self.log_end_offset;
        self.checkpoint_state(true).write_unsynced(&self.dir)?;
        Ok(())
    }

    /// Removes the partition's directory and everything in it.
    pub fn delete(self) -> Result<()> {
        let dir = self.dir.clone();
        drop(self); // unmap indexes and close files first
        // A cleaner pass may still be writing its staging files; it stops within a
        // batch once it sees the log gone, so retry briefly.
        let mut attempts = 0;
        loop {
            match std::fs::remove_dir_all(&dir) {
                Ok(()) => return Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
                Err(_) if attempts < 5 => {
                    attempts += 1;
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
}
