//! Log compaction (`cleanup.policy=compact`), Kafka's log cleaner. A pass over one log:
//!
//! 1. **Plan** (log locked, cheap): the cleanable range is the sealed segments below
//!    the first uncleanable offset: min(active segment base, high watermark, recovery
//!    point, first segment newer than `min.compaction.lag.ms`). The dirty part starts
//!    at the clean offset (the cleaner's checkpoint). The pass runs when dirty bytes /
//!    cleanable bytes >= `min.cleanable.dirty.ratio`, when the first dirty segment is
//!    older than `max.compaction.lag.ms`, or when a delete horizon it stamped earlier
//!    has passed (tombstones are due to go).
//! 2. **Execute** (no lock; sealed segments are immutable, opened one at a time by
//!    name; only this pass may create a file under an existing base offset): build the key → latest offset map over the dirty range, bounded by the
//!    dedupe buffer (when it fills, clean only up to where it reached); then rewrite
//!    every cleanable segment, grouped as Kafka groups them, into a staging directory,
//!    dropping records superseded by a later offset of their key (see [`filter`]).
//! 3. **Commit** (log locked): check the sources are unchanged (retention may have run)
//!    and swap each group in crash-safely, then checkpoint the new clean offset.
//!
//! Crash safety: the staging directory holds only incomplete work and is removed on
//! open. A group is committed by renaming its fsynced log file to
//! `<base>.<end>.swap` in the partition directory (then the directory is fsynced); from
//! there, [`finish_interrupted`] completes the swap on open: it removes every segment
//! with a base in [base, end) and renames the swap file to `<base>.log` (indexes are
//! rebuilt). The recovery point is checkpointed past `end` before the swap, so open
//! trusts the gaps that compaction leaves instead of taking them for a lost tail.

use std::collections::HashMap;
use std::fs::{self, File};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::checkpoint;
use super::filter::{self, Decision, FilterContext};
use super::offset_map::{OffsetMap, Throttler};
use super::partition::PartitionLog;
use super::segment::{self, ChunkReader, HeaderAt, Segment};
use super::{Error, LogConfig, Result};
use crate::protocol::record_codec::{self, DecodedBatch};
use crate::protocol::records::{self, BatchHeader};

/// Staging directory for segments being written by a cleaning pass.
pub const STAGING_DIR: &str = "cleaner-staging";
const SWAP_SUFFIX: &str = ".swap";
const READ_CHUNK_BYTES: usize = 1 << 20;
/// Batches are written to the staging segment this many bytes at a time.
const WRITE_CHUNK_BYTES: usize = 1 << 20;
/// A batch may decompress to at most `max.message.bytes` times this (capped below).
const DECOMPRESSION_FACTOR: usize = 64;
const DECOMPRESSED_CAP_BYTES: usize = 512 << 20;

/// The largest size the records of one stored batch may decompress to.
pub fn decompressed_limit_bytes(config: &LogConfig) -> usize {
    config
        .max_message_bytes
        .max(1 << 20)
        .saturating_mul(DECOMPRESSION_FACTOR)
        .min(DECOMPRESSED_CAP_BYTES)
}

/// Broker-wide cleaner settings (`log.cleaner.*`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CleanerOptions {
    /// `log.cleaner.dedupe.buffer.size` divided among the cleaner threads.
    pub dedupe_buffer_bytes: usize,
    /// `log.cleaner.io.buffer.load.factor`.
    pub load_factor: f64,
    /// `log.cleaner.io.max.bytes.per.second` (infinite: unthrottled).
    pub io_max_bytes_per_second: f64,
}

impl Default for CleanerOptions {
    fn default() -> Self {
        CleanerOptions {
            dedupe_buffer_bytes: 128 << 20,
            load_factor: 0.9,
            io_max_bytes_per_second: f64::INFINITY,
        }
    }
}

/// What one cleaning pass did.
#[derive(Debug, Default, Clone)]
pub struct CleanStats {
    pub segments_in: usize,
    pub segments_out: usize,
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub batches_dropped: u64,
    pub records_dropped: u64,
    /// The clean offset afterwards.
    pub clean_offset: i64,
}

/// A sealed segment to clean; its file is opened only while it is read, so a pass
/// over thousands of segments holds one extra descriptor, not thousands.
struct Source {
    base: i64,
    /// Base offset of the next segment: the end of this one's offset range.
    bound: i64,
    size_bytes: u64,
}

/// Everything a pass needs, taken under the log's lock.
pub struct CleanPlan {
    dir: PathBuf,
    /// The log's truncation generation when planned: a truncation since voids the pass.
    generation: u64,
    config: LogConfig,
    sources: Vec<Source>,
    first_dirty: i64,
    /// Producer id → last offset of its last data batch (that batch must survive).
    producer_last_offsets: HashMap<i64, i64>,
}

struct CleanedGroup {
    base: i64,
    end: i64,
    /// (base offset, size) of each replaced segment, to check nothing changed.
    sources: Vec<(i64, u64)>,
}

/// The staged result of a pass, to commit under the log's lock.
pub struct CleanOutput {
    dir: PathBuf,
    generation: u64,
    groups: Vec<CleanedGroup>,
    clean_offset: i64,
    delete_horizon_ms: Option<i64>,
    stats: CleanStats,
}

/// What a committed pass did; remove `renamed_files` once the lock is released.
#[derive(Debug, Default)]
pub struct CleanOutcome {
    pub stats: CleanStats,
    pub renamed_files: Vec<PathBuf>,
}

/// Test seam: where a simulated crash stops [`PartitionLog::commit_clean`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashPoint {
    AfterSwapRenamed,
    AfterSourcesRenamed,
    AfterIndexesMoved,
    AfterLogRenamed,
    BeforeCheckpoint,
}

fn swap_path(dir: &Path, base: i64, end: i64) -> PathBuf {
    dir.join(format!("{}.{}{SWAP_SUFFIX}", segment::file_stem(base), segment::file_stem(end)))
}

fn staged_files(staging: &Path, base: i64) -> [PathBuf; 3] {
    let stem = segment::file_stem(base);
    [".log", ".index", ".timeindex"].map(|ext| staging.join(format!("{stem}{ext}")))
}

/// On open, before segments are scanned: removes the staging directory of an
/// interrupted pass and completes every committed swap (see the module docs).
pub fn finish_interrupted(dir: &Path) -> Result<()> {
    let staging = dir.join(STAGING_DIR);
    if staging.exists() {
        fs::remove_dir_all(&staging)?;
    }
    let mut swaps = Vec::new();
    let mut segment_bases = Vec::new();
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some((b, e)) = name.strip_suffix(SWAP_SUFFIX).and_then(|s| s.split_once('.')) {
            match (b.parse::<i64>(), e.parse::<i64>()) {
                (Ok(b), Ok(e)) => swaps.push((b, e)),
                _ => checkpoint::remove_if_present(&dir.join(name))?,
            }
        } else if let Some(stem) = name.strip_suffix(".log")
            && let Ok(base) = stem.parse::<i64>()
        {
            segment_bases.push(base);
        }
    }
    for &(base, end) in &swaps {
        tracing::info!(dir = %dir.display(), base, end, "completing an interrupted log cleaner swap");
        for &old in segment_bases.iter().filter(|&&b| b >= base && b < end) {
            segment::remove_files(dir, old)?;
        }
        // Indexes of `base` may be the new ones or the old ones: rebuild them either way.
        segment::remove_files(dir, base)?;
        fs::rename(swap_path(dir, base, end), segment::log_path(dir, base))?;
    }
    if !swaps.is_empty() {
        checkpoint::sync_dir(dir)?;
    }
    Ok(())
}

impl PartitionLog {
    /// Plans a pass at `now_ms`, or `None` when the log is not compacted or not dirty
    /// enough (see the module docs). Never covers offsets at or past `high_watermark`
    /// or the recovery point, nor the active segment.
    pub fn plan_clean(&self, now_ms: i64, high_watermark: i64) -> Result<Option<CleanPlan>> {
        if !self.config.cleanup_compact || self.closed {
            return Ok(None);
        }
        let Some(active_base) = self.segments.keys().next_back().copied() else {
            return Ok(None);
        };
        let mut first_uncleanable = high_watermark.min(self.recovery_point).min(active_base);
        // A clean offset past the log end (a tail lost after it was written) is stale:
        // start over from the log start, as Kafka does.
        let first_dirty = if self.clean_offset > self.log_end_offset {
            self.log_start_offset
        } else {
            self.clean_offset.max(self.log_start_offset)
        };
        let lag_ms = self.config.min_compaction_lag_ms;
        if lag_ms > 0 {
            for s in self.segments.range(..active_base).map(|(_, s)| s) {
                if s.next_offset() > first_dirty && s.largest_timestamp_ms()? > now_ms.saturating_sub(lag_ms) {
                    first_uncleanable = first_uncleanable.min(s.base_offset());
                    break;
                }
            }
        }
        let mut sources = Vec::new();
        let bases: Vec<i64> = self.segments.keys().copied().collect();
        for w in bases.windows(2) {
            let (base, bound) = (w[0], w[1]);
            if bound > first_uncleanable {
                break;
            }
            if bound <= self.log_start_offset {
                continue; // wholly below the log start: retention deletes it
            }
            sources.push(Source { base, bound, size_bytes: self.segments[&base].size_bytes() });
        }
        let Some(last) = sources.last() else { return Ok(None) };
        let end = last.bound;
        let dirty_bytes: u64 = sources.iter().filter(|s| s.bound > first_dirty).map(|s| s.size_bytes).sum();
        let total_bytes: u64 = sources.iter().map(|s| s.size_bytes).sum();
        let ratio = if total_bytes == 0 { 0.0 } else { dirty_bytes as f64 / total_bytes as f64 };
        let overdue = self.dirty_overdue(first_dirty, end, now_ms);
        let horizon_due = self.delete_horizon_ms.is_some_and(|h| now_ms >= h);
        let dirty = first_dirty < end && dirty_bytes > 0;
        // Kafka's rule: strictly above the ratio, or overdue with something to clean.
        if !(dirty && (ratio > self.config.min_cleanable_dirty_ratio || overdue) || horizon_due) {
            return Ok(None);
        }
        let producer_last_offsets = self
            .producers
            .entries()
            .into_iter()
            .filter_map(|e| e.batches.back().map(|b| (e.producer_id, b.last_offset)))
            .collect();
        Ok(Some(CleanPlan {
            dir: self.dir.clone(),
            generation: self.generation,
            config: self.config,
            sources,
            first_dirty,
            producer_last_offsets,
        }))
    }

    /// `max.compaction.lag.ms`: the earliest first-batch timestamp of the dirty sealed
    /// segments is older than the lag.
    fn dirty_overdue(&self, first_dirty: i64, end: i64, now_ms: i64) -> bool {
        let max_lag_ms = self.config.max_compaction_lag_ms.max(0);
        self.segments
            .values()
            .filter(|s| s.next_offset() > first_dirty && s.base_offset() < end)
            .map(|s| s.first_batch_timestamp())
            .filter(|&ts| ts > 0)
            .min()
            .is_some_and(|ts| ts < now_ms.saturating_sub(max_lag_ms))
    }

    /// Swaps the staged groups in and checkpoints the clean offset. A group whose
    /// sources changed meanwhile (retention, DeleteRecords) is dropped, and the clean
    /// offset then stays where it was.
    pub fn commit_clean(&mut self, out: CleanOutput, crash: Option<CrashPoint>) -> Result<CleanOutcome> {
        let staging = out.dir.join(STAGING_DIR);
        let mut outcome = CleanOutcome { stats: out.stats, renamed_files: Vec::new() };
        // A truncation during the rewrite may have replaced the sources by other batches
        // of the same sizes; the pass is then dropped like one whose sources changed.
        let mut complete = out.dir == self.dir && out.generation == self.generation;
        if complete {
            // Every rewritten offset is below the in-memory recovery point (the plan
            // ensured it); make that durable before any gap appears on disk.
            self.checkpoint()?;
        }
        for g in &out.groups {
            if !complete || !self.sources_unchanged(g) {
                complete = false;
                continue;
            }
            if let Err(e) = self.swap_in(g, &staging, crash, &mut outcome.renamed_files) {
                if crash.is_none() {
                    // The segment map may now disagree with the files: rebuild the log
                    // from disk, which finishes or discards the swap as recovery does.
                    tracing::error!(dir = %self.dir.display(), error = %e, "cleaner swap failed; reloading the log");
                    self.reload()?;
                }
                return Err(e);
            }
        }
        if crash == Some(CrashPoint::BeforeCheckpoint) {
            return Err(Error::CleanerAborted);
        }
        let _ = fs::remove_dir_all(&staging);
        if complete {
            self.clean_offset = self.clean_offset.max(out.clean_offset);
            self.delete_horizon_ms = out.delete_horizon_ms;
            outcome.stats.clean_offset = self.clean_offset;
            self.checkpoint()?;
        }
        Ok(outcome)
    }

    /// Replaces this log by a fresh open of its directory (recovery included), then
    /// makes sure everything it had written is durable, since open trusts the files.
    pub(super) fn reload(&mut self) -> Result<()> {
        for s in self.segments.values() {
            s.log_file().sync_all()?;
        }
        let config = self.config;
        let closed = self.closed;
        let generation = self.generation;
        let fresh = super::recovery::open(&self.dir, config, super::recovery::CheckpointSync::Now)?;
        *self = fresh;
        self.closed = closed;
        // Sync handles taken before describe the old state: void them, as truncation does.
        self.generation = generation + 1;
        Ok(())
    }

    fn sources_unchanged(&self, g: &CleanedGroup) -> bool {
        let now: Vec<(i64, u64)> = self.segments.range(g.base..g.end).map(|(b, s)| (*b, s.size_bytes())).collect();
        let active_after = self.segments.keys().next_back().is_some_and(|&a| a >= g.end);
        now == g.sources && active_after
    }

    fn swap_in(&mut self, g: &CleanedGroup, staging: &Path, crash: Option<CrashPoint>, renamed: &mut Vec<PathBuf>) -> Result<()> {
        let crashed = |p| crash == Some(p);
        let [log, index, time_index] = staged_files(staging, g.base);
        let swap = swap_path(&self.dir, g.base, g.end);
        fs::rename(&log, &swap)?;
        checkpoint::sync_dir(&self.dir)?;
        checkpoint::sync_dir(staging)?;
        if crashed(CrashPoint::AfterSwapRenamed) {
            return Err(Error::CleanerAborted);
        }
        for (base, _) in &g.sources {
            if let Some(old) = self.segments.remove(base) {
                self.unsynced.remove(base);
                renamed.extend(old.rename_to_deleted()?);
            }
        }
        if crashed(CrashPoint::AfterSourcesRenamed) {
            return Err(Error::CleanerAborted);
        }
        fs::rename(&index, self.dir.join(file_name(&index)))?;
        fs::rename(&time_index, self.dir.join(file_name(&time_index)))?;
        if crashed(CrashPoint::AfterIndexesMoved) {
            return Err(Error::CleanerAborted);
        }
        fs::rename(&swap, segment::log_path(&self.dir, g.base))?;
        checkpoint::sync_dir(&self.dir)?;
        if crashed(CrashPoint::AfterLogRenamed) {
            return Err(Error::CleanerAborted);
        }
        let mut cleaned = Segment::open(&self.dir, g.base, &self.config, false)?;
        if !cleaned.load_trusted(g.end)? {
            cleaned.recover(false, i64::MIN)?;
        }
        self.segments.insert(g.base, cleaned);
        Ok(())
    }

    /// One whole pass in the caller's thread (tests, the coordinator log): plan,
    /// execute, commit, and removal of the replaced files.
    pub fn clean_at(&mut self, now_ms: i64, high_watermark: i64, options: &CleanerOptions) -> Result<Option<CleanStats>> {
        let Some(plan) = self.plan_clean(now_ms, high_watermark)? else { return Ok(None) };
        let out = plan.execute(options, now_ms, &|| false)?;
        let outcome = self.commit_clean(out, None)?;
        segment::remove_deleted_files(&outcome.renamed_files)?;
        Ok(Some(outcome.stats))
    }
}

fn file_name(p: &Path) -> &std::ffi::OsStr {
    // Staged paths are built by `staged_files` and always have a file name.
    p.file_name().expect("staged files have names")
}

impl CleanPlan {
    /// Builds the offset map and writes the cleaned segments into the staging
    /// directory. `stop` is polled between batches; when it says so, the pass ends
    /// with [`Error::CleanerAborted`] and leaves nothing behind.
    pub fn execute(self, options: &CleanerOptions, now_ms: i64, stop: &dyn Fn() -> bool) -> Result<CleanOutput> {
        let staging = self.dir.join(STAGING_DIR);
        if staging.exists() {
            fs::remove_dir_all(&staging)?;
        }
        fs::create_dir_all(&staging)?;
        let result = self.execute_in(&staging, options, now_ms, stop);
        if result.is_err() {
            let _ = fs::remove_dir_all(&staging);
        }
        result
    }

    fn execute_in(&self, staging: &Path, options: &CleanerOptions, now_ms: i64, stop: &dyn Fn() -> bool) -> Result<CleanOutput> {
        let mut io = Io { throttler: Throttler::new(options.io_max_bytes_per_second), stop, stats: CleanStats::default() };
        let mut map = OffsetMap::new(options.dedupe_buffer_bytes, options.load_factor);
        let map_end = self.build_map(&mut map, &mut io)?;
        let ctx = FilterContext {
            map: &map,
            map_end,
            round_end: self.sources.last().map_or(map_end, |s| s.bound),
            now_ms,
            delete_retention_ms: self.config.delete_retention_ms,
            producer_last_offsets: &self.producer_last_offsets,
            limit_bytes: decompressed_limit_bytes(&self.config),
        };
        let mut groups = Vec::new();
        let mut horizon: Option<i64> = None;
        for group in self.groups(map_end) {
            let g = self.write_group(staging, group, &ctx, &mut io, &mut horizon)?;
            groups.push(g);
        }
        Ok(CleanOutput { dir: self.dir.clone(), generation: self.generation, groups, clean_offset: map_end, delete_horizon_ms: horizon, stats: io.stats })
    }

    /// Maps the latest offset of every key in [first dirty, end of the cleanable
    /// range), stopping at the first batch that no longer fits. Returns where the map
    /// ends: records at or past it are kept as they are.
    fn build_map(&self, map: &mut OffsetMap, io: &mut Io<'_>) -> Result<i64> {
        let end = self.sources.last().map_or(self.first_dirty, |s| s.bound);
        let limit_bytes = decompressed_limit_bytes(&self.config);
        let mut map_end = end;
        for src in self.sources.iter().filter(|s| s.bound > self.first_dirty) {
            let full = for_each_batch(src, &self.dir, |h, bytes| {
                io.account_read(bytes.len())?;
                if h.last_offset() < self.first_dirty || h.is_control() || h.is_transactional() {
                    // Transactions may still abort: their keys must not hide older values.
                    return Ok(true);
                }
                let batch = match DecodedBatch::decode(bytes, limit_bytes) {
                    Ok(b) => b,
                    Err(e) => {
                        tracing::warn!(dir = %self.dir.display(), offset = h.base_offset, error = %e, "batch not decodable; kept as is");
                        return Ok(true);
                    }
                };
                // A batch goes in whole; the first one always does, so a pass makes
                // progress even when one batch has more keys than the map should hold.
                if !map.is_empty() && !map.has_room_for(batch.records().count()) {
                    map_end = h.base_offset.max(self.first_dirty);
                    return Ok(false);
                }
                for r in batch.records() {
                    let offset = r.offset(h.base_offset);
                    if let Some(key) = r.key.filter(|_| offset >= self.first_dirty) {
                        map.put(key, offset);
                    }
                }
                Ok(true)
            })?;
            if !full {
                break;
            }
        }
        Ok(map_end)
    }

    /// The sources below `map_end`, grouped as Kafka groups them: adjacent segments
    /// while their total size fits `segment.bytes` (and u32 positions) and their offsets
    /// fit i32 relative to the group's base.
    fn groups(&self, map_end: i64) -> Vec<&[Source]> {
        let limit_bytes = self.config.segment_bytes.min(u64::from(u32::MAX));
        // A prefix of the sources: those with offsets below the map's end.
        let candidates: Vec<&Source> = self.sources.iter().take_while(|s| s.base < map_end).collect();
        let n = candidates.len();
        let mut out = Vec::new();
        let mut i = 0;
        while i < n {
            let mut j = i + 1;
            let mut size = candidates[i].size_bytes;
            while j < n
                && size + candidates[j].size_bytes <= limit_bytes
                && candidates[j].bound - 1 - candidates[i].base <= i64::from(i32::MAX)
            {
                size += candidates[j].size_bytes;
                j += 1;
            }
            out.push(&self.sources[i..j]);
            i = j;
        }
        out
    }

    fn write_group(&self, staging: &Path, group: &[Source], ctx: &FilterContext<'_>, io: &mut Io<'_>, horizon: &mut Option<i64>) -> Result<CleanedGroup> {
        let (base, end) = (group[0].base, group[group.len() - 1].bound);
        let mut out = Segment::create(staging, base, &self.config)?;
        let mut pending = Vec::with_capacity(WRITE_CHUNK_BYTES);
        let mut headers = Vec::new();
        for src in group {
            for_each_batch(src, &self.dir, |h, bytes| {
                io.account_read(bytes.len())?;
                let kept: Option<std::borrow::Cow<'_, [u8]>> = match filter::decide(h, bytes, ctx) {
                    Decision::Keep => Some(bytes.into()),
                    Decision::Drop { records } => {
                        io.stats.batches_dropped += 1;
                        io.stats.records_dropped += records;
                        None
                    }
                    Decision::Rewrite { batch, dropped } => {
                        io.stats.records_dropped += dropped;
                        Some(batch.into())
                    }
                };
                if let Some(b) = kept {
                    let stored = BatchHeader::parse(&b)?;
                    if let Some(hz) = record_codec::delete_horizon_ms(&stored).filter(|&hz| hz > ctx.now_ms) {
                        *horizon = Some(horizon.map_or(hz, |m| m.min(hz)));
                    }
                    pending.extend_from_slice(&b);
                    headers.push(stored);
                }
                if pending.len() >= WRITE_CHUNK_BYTES {
                    flush(&mut out, &mut pending, &mut headers, io)?;
                }
                Ok(true)
            })?;
        }
        flush(&mut out, &mut pending, &mut headers, io)?;
        out.seal()?;
        out.sync_all()?;
        // Keep the newest source's modification time, as Kafka does: time retention
        // judges a segment without timestamps (one compacted empty) by it.
        let mtime = |s: &Source| fs::metadata(segment::log_path(&self.dir, s.base)).and_then(|m| m.modified()).ok();
        if let Some(modified) = group.iter().filter_map(mtime).max() {
            out.log_file().set_modified(modified)?;
        }
        io.stats.segments_in += group.len();
        io.stats.segments_out += 1;
        Ok(CleanedGroup { base, end, sources: group.iter().map(|s| (s.base, s.size_bytes)).collect() })
    }
}

fn flush(out: &mut Segment, pending: &mut Vec<u8>, headers: &mut Vec<BatchHeader>, io: &mut Io<'_>) -> Result<()> {
    if pending.is_empty() {
        return Ok(());
    }
    out.append(pending, headers)?;
    io.stats.bytes_written += pending.len() as u64;
    io.pause(pending.len() as u64)?;
    pending.clear();
    headers.clear();
    Ok(())
}

/// Throttling, the stop signal and the statistics of one pass.
struct Io<'a> {
    throttler: Throttler,
    stop: &'a dyn Fn() -> bool,
    stats: CleanStats,
}

impl Io<'_> {
    fn account_read(&mut self, bytes: usize) -> Result<()> {
        self.stats.bytes_read += bytes as u64;
        self.pause(bytes as u64)
    }

    /// Accounts `bytes` of I/O, sleeps as the throttle asks (in slices, so a stop is
    /// seen promptly) and fails with `CleanerAborted` when told to stop.
    fn pause(&mut self, bytes: u64) -> Result<()> {
        let mut wait = self.throttler.account(bytes);
        loop {
            if (self.stop)() {
                return Err(Error::CleanerAborted);
            }
            if wait.is_zero() {
                return Ok(());
            }
            let step = wait.min(std::time::Duration::from_millis(50));
            std::thread::sleep(step);
            wait -= step;
        }
    }
}

/// Calls `f` with every batch of `src` (header, whole verified bytes) until it returns
/// false. Returns false if `f` stopped the walk.
fn for_each_batch(src: &Source, dir: &Path, mut f: impl FnMut(&BatchHeader, &[u8]) -> Result<bool>) -> Result<bool> {
    let path = segment::log_path(dir, src.base);
    let file = match File::open(&path) {
        Ok(f) => f,
        // Retention removed it meanwhile: the commit would find the sources changed.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Error::CleanerAborted),
        Err(e) => return Err(e.into()),
    };
    let corrupt = |reason: String| Error::Corrupt { path: path.clone(), reason };
    let mut reader = ChunkReader::new(&file, src.size_bytes, READ_CHUNK_BYTES);
    let mut big = Vec::new();
    let mut position_bytes = 0u64;
    loop {
        let h = match reader.header_at(position_bytes)? {
            HeaderAt::Batch(h) => h,
            HeaderAt::End => return Ok(true),
            HeaderAt::Torn => return Err(corrupt(format!("torn batch at {position_bytes}"))),
            HeaderAt::Corrupt(reason) => return Err(corrupt(reason)),
        };
        let total_bytes = h.total_bytes();
        let bytes: &[u8] = if total_bytes <= READ_CHUNK_BYTES {
            reader.read_at(position_bytes, total_bytes)?
        } else {
            // `header_at` checked the batch fits in the file, so this is bounded by it.
            big.resize(total_bytes, 0);
            file.read_exact_at(&mut big, position_bytes)?;
            &big
        };
        // Never copy or rewrite a batch that is not what was written.
        if records::compute_crc(bytes) != h.crc {
            return Err(corrupt(format!("crc mismatch in batch at {position_bytes}")));
        }
        if !f(&h, bytes)? {
            return Ok(false);
        }
        position_bytes += total_bytes as u64;
    }
}
