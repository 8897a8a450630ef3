//! Opening a partition directory, and crash recovery. After a clean shutdown every
//! segment is loaded as trusted (indexes sanity-checked, a short header walk for the
//! end offset). Otherwise every segment from the one holding the recovery point on is
//! scanned batch by batch (framing, magic, increasing offsets, and the CRC of every batch
//! from the recovery point on), truncated at the first torn or corrupt batch, and its
//! indexes are rebuilt; segments after a cut are deleted. Segments below the recovery
//! point are trusted but sanity-checked, and rebuilt the same way when a check fails.
//! Producer state (from the newest usable snapshot on), the transaction index and the
//! leader epoch cache are replayed from the same walk of each segment.
//!
//! A compaction interrupted by a crash is finished or discarded first
//! ([`super::cleaner::finish_interrupted`]).
//!
//! Open always ends by fsyncing what recovery changed and writing a checkpoint that is
//! *not* clean, so a crash of this incarnation is recovered even if the previous one
//! shut down cleanly. That checkpoint must be durable before the first append; startup
//! opens many logs with [`CheckpointSync::Deferred`] and makes them all durable at once.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::path::Path;

use super::checkpoint::{self, Checkpoint};
use super::epochs::EpochCache;
use super::partition::PartitionLog;
use super::producer_state::ProducerStateManager;
use super::segment::{self, Segment};
use super::txn::TxnIndex;
use super::{Error, LogConfig, Result};
use crate::protocol::control::coordinator_epoch;
use crate::protocol::records::BatchHeader;

/// Base offsets of the `.log` files in `dir`, ascending. Removes leftovers that cannot be
/// used: temporary files, files of a segment deletion (`*.deleted`, see
/// [`super::retention`]) and indexes without a log file.
fn scan_dir(dir: &Path) -> Result<Vec<i64>> {
    let mut bases = Vec::new();
    let mut index_files = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if checkpoint::is_temporary(name) || name.ends_with(segment::DELETED_SUFFIX) {
            checkpoint::remove_if_present(&entry.path())?;
        } else if let Some(stem) = name.strip_suffix(".log") {
            if let Ok(base) = stem.parse::<i64>() {
                bases.push(base);
            }
        } else if let Some(stem) = name
            .strip_suffix(".index")
            .or_else(|| name.strip_suffix(".timeindex"))
            && let Ok(base) = stem.parse::<i64>()
        {
            index_files.push((base, entry.path()));
        }
    }
    bases.sort_unstable();
    for (base, path) in index_files {
        if bases.binary_search(&base).is_err() {
            checkpoint::remove_if_present(&path)?;
        }
    }
    Ok(bases)
}

/// Whether [`open`] makes its closing checkpoint durable itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckpointSync {
    /// fsync of the checkpoint and its directory before `open` returns.
    Now,
    /// Written by rename only: the caller makes it durable (one `syncfs` for many
    /// logs) before the log takes its first append.
    Deferred,
}

pub fn open(dir: &Path, config: LogConfig, sync: CheckpointSync) -> Result<PartitionLog> {
    // A new directory is not fsynced here, nor is its parent: nothing in it needs to
    // survive a crash until data is acknowledged, and the first flush syncs both
    // (`parent_unsynced_from`, `dir_unsynced_from`). Lost, it is created again.
    let created = !dir.exists();
    if created {
        fs::create_dir_all(dir)?;
    }
    let saved = Checkpoint::read(dir)?;
    let clean = saved.is_some_and(|c| c.clean_shutdown);
    let recovery_point = saved.map_or(i64::MIN, |c| c.recovery_point);
    super::cleaner::finish_interrupted(dir)?;
    let bases = without_deleted_prefix(dir, scan_dir(dir)?, saved)?;
    let mut replay = Replay::from_newest_snapshot(dir)?;

    let mut segments: BTreeMap<i64, Segment> = BTreeMap::new();
    let mut recovered = Vec::new();
    let mut cut = false;
    let mut truncated_any = false;
    for (i, &base) in bases.iter().enumerate() {
        if cut {
            tracing::warn!(dir = %dir.display(), base, "deleting segment after a truncated one");
            Segment::open(dir, base, &config, false)?.delete_files()?;
            continue;
        }
        // Compaction may leave a gap between segments, never an overlap.
        if let Some(prev) = segments.values().next_back()
            && prev.next_offset() > base
        {
            return Err(Error::Corrupt {
                path: dir.to_path_buf(),
                reason: format!(
                    "segment {base} overlaps the previous one ending at {}",
                    prev.next_offset()
                ),
            });
        }
        let last = i + 1 == bases.len();
        let bound = bases.get(i + 1).copied().unwrap_or(i64::MAX);
        let mut segment = Segment::open(dir, base, &config, last)?;
        let below_recovery_point = bound <= recovery_point;
        let trusted = (clean || below_recovery_point) && segment.load_trusted(bound)?;
        if !trusted {
            // The segment holding the recovery point is checked from there on. One wholly
            // below it failed its load checks: something is off, so check all of it.
            let durable_below = if below_recovery_point { i64::MIN } else { recovery_point };
            // A second handle: recovery borrows the segment mutably.
            let file = segment.log_file().try_clone()?;
            let truncated = segment.recover_visiting(last, durable_below, &mut |h, at| {
                replay.on_batch(h, read_marker(h, at, &file)?.as_deref());
                Ok(())
            })?;
            truncated_any |= truncated;
            // Bytes at or above the recovery point may be in the page cache only (a
            // crash of this process, not of the machine): make them durable before the
            // checkpoint below calls them so. A sealed segment's rebuilt indexes are
            // synced too: they are trusted at the next open. The active segment's
            // indexes are never trusted after a crash, and a clean close syncs them.
            if truncated || segment.next_offset() > durable_below {
                recovered.push((base, last));
            } else if !last {
                recovered.push((base, false));
            }
            // A segment whose tail was cut (torn or corrupt) invalidates everything
            // after it. A segment that merely ends before the next one starts is not
            // cut: compaction leaves such gaps, and telling them from a tail lost at a
            // batch boundary would need the checkpoint, which a crash may have torn
            // (it is written lazily). Such a lost tail held nothing acknowledged: an
            // ack waits for the fsync of every earlier segment. Kafka keeps gaps too.
            cut = !last && truncated;
        } else {
            segment.walk_headers_with_markers(0, |h, marker| replay.on_batch(h, marker))?;
        }
        segments.insert(base, segment);
    }
    if cut {
        // The last remaining segment was opened as sealed; it is the active one now.
        segments
            .values_mut()
            .next_back()
            .map(Segment::unseal)
            .transpose()?;
    }
    let mut dir_unsynced_from = None;
    if segments.is_empty() {
        let base = saved.map_or(0, |c| c.log_start_offset.max(0));
        segments.insert(base, Segment::create(dir, base, &config)?);
        dir_unsynced_from = Some(base);
    }

    // `segments` is not empty here: a segment was created above if there was none.
    let first_base = *segments.keys().next().expect("at least one segment");
    let log_end_offset = segments
        .values()
        .next_back()
        .expect("at least one segment")
        .next_offset();
    let log_start_offset = saved
        .map_or(first_base, |c| c.log_start_offset)
        .clamp(first_base, log_end_offset);
    let (producers, txn, epochs) = replay.finish(dir, &segments, log_start_offset, log_end_offset)?;

    for &(base, last) in &recovered {
        if last {
            segments[&base].log_file().sync_data()?;
        } else {
            segments[&base].sync_all()?;
        }
    }
    if cut {
        checkpoint::sync_dir(dir)?; // segments after the cut were deleted
    }
    let mut log = PartitionLog {
        dir: dir.to_path_buf(),
        config,
        segments,
        log_start_offset,
        log_end_offset,
        recovery_point: log_end_offset,
        producers,
        txn,
        epochs,
        generation: 0,
        unsynced: BTreeMap::new(),
        dir_unsynced_from,
        parent_unsynced_from: created.then_some(log_end_offset),
        marks_since_checkpoint: 0,
        last_checkpoint: std::time::Instant::now(),
        closed: false,
        clean_offset: saved.map_or(0, |c| c.clean_offset),
        delete_horizon_ms: saved.and_then(|c| c.delete_horizon_ms),
    };
    if created {
        // No earlier checkpoint can claim a clean shutdown here, so an unsynced one is
        // safe: lost, the next open just scans the (then empty) log.
        log.checkpoint_state(false).write_unsynced(dir)?;
    } else if clean || truncated_any {
        // Durable before any append: it replaces a clean checkpoint, which must not
        // outlive the first write after this open; or recovery cut the log, and a
        // recovery point above the cut must not come back with the old checkpoint.
        match sync {
            CheckpointSync::Now => log.checkpoint()?,
            CheckpointSync::Deferred => log.checkpoint_state(false).write_unsynced(dir)?,
        }
    } else {
        // The saved checkpoint was not clean and its recovery point is at or below the
        // log end (recovery only cut above it), so losing this newer one costs at most
        // a longer scan next time.
        log.checkpoint_state(false).write_unsynced(dir)?;
    }
    tracing::debug!(
        dir = %dir.display(), clean, recovered_segments = recovered.len(),
        log_start_offset, log_end_offset, "opened partition log"
    );
    Ok(log)
}

/// Removes the segments that lie wholly below the checkpointed log start offset (a
/// retention pass that crashed after writing the checkpoint, before renaming them) and
/// returns the remaining base offsets. A segment lies wholly below when the next one
/// starts at or before the log start offset; the last segment always stays.
fn without_deleted_prefix(
    dir: &Path,
    bases: Vec<i64>,
    saved: Option<Checkpoint>,
) -> Result<Vec<i64>> {
    let log_start_offset = saved.map_or(i64::MIN, |c| c.log_start_offset);
    let doomed = bases
        .windows(2)
        .take_while(|w| w[1] <= log_start_offset)
        .count();
    for &base in &bases[..doomed] {
        tracing::info!(dir = %dir.display(), base, log_start_offset, "removing segment below the log start offset");
        segment::remove_files(dir, base)?;
    }
    if doomed > 0 {
        checkpoint::sync_dir(dir)?;
    }
    Ok(bases[doomed..].to_vec())
}

/// What open derives from the batch headers — producer state, the transaction index and
/// the leader epoch cache — fed by the one walk of each segment that open makes anyway:
/// recovery's for a segment it checks, a header walk for one it trusts. (Each used to
/// walk the log on its own: three page touches per batch of the active segment.)
/// Only batches that stay in the log are shown to it: recovery stops at the first bad
/// batch, and segments after a cut are deleted unwalked.
struct Replay {
    /// Producer state from the newest snapshot, then every batch from its offset on.
    producers: ProducerStateManager,
    producers_from: i64,
    /// A batch straddled the snapshot's offset: the snapshot is not one of ours.
    misaligned_snapshot: bool,
    txn: TxnIndex,
    /// Where each larger leader epoch first appears, applied once the log end is known
    /// (the saved epochs above it must go first).
    epoch_starts: Vec<(i32, i64)>,
}

impl Replay {
    fn from_newest_snapshot(dir: &Path) -> Result<Replay> {
        // The log end is not known before recovery; a snapshot found to lie above it is
        // given up in `finish`.
        let (producers_from, entries) =
            checkpoint::load_producer_snapshot(dir, i64::MAX)?.unwrap_or((i64::MIN, Vec::new()));
        Ok(Replay {
            producers: ProducerStateManager::from_entries(entries),
            producers_from,
            misaligned_snapshot: false,
            txn: TxnIndex::default(),
            epoch_starts: Vec::new(),
        })
    }

    /// One batch that stays in the log, in log order (`marker`: a control batch's bytes).
    fn on_batch(&mut self, h: &BatchHeader, marker: Option<&[u8]>) {
        if h.base_offset >= self.producers_from {
            replay_producer(&mut self.producers, h, marker);
        } else if h.next_offset() > self.producers_from {
            self.misaligned_snapshot = true;
        }
        self.txn.apply(h, marker.unwrap_or_default());
        if self.epoch_starts.last().is_none_or(|&(e, _)| h.partition_leader_epoch > e) {
            self.epoch_starts.push((h.partition_leader_epoch, h.base_offset));
        }
    }

    fn finish(
        mut self,
        dir: &Path,
        segments: &BTreeMap<i64, Segment>,
        log_start_offset: i64,
        log_end_offset: i64,
    ) -> Result<(ProducerStateManager, TxnIndex, EpochCache)> {
        let producers = if self.misaligned_snapshot {
            tracing::warn!(dir = %dir.display(), from_offset = self.producers_from, "misaligned producer snapshot; full replay");
            replay_all(segments)?
        } else if self.producers_from > log_end_offset {
            // Recovery cut the log below the snapshot: an older one and a second walk.
            rebuild_producers(dir, segments, log_end_offset)?
        } else {
            self.producers
        };
        // Everything recovered is durable: nothing is merely "completing".
        self.txn.settle_all(log_end_offset);

        let saved = EpochCache::load(dir)?;
        let mut epochs = saved.clone();
        // An epoch with no batch yet (assigned by a new leader) is forgotten, as in Kafka:
        // the leader assigns it again when it takes over after the restart. Epochs the
        // checkpoint lacks (its last write lost in a crash) come from the batches.
        epochs.truncate_from_end(log_end_offset);
        for (epoch, start_offset) in self.epoch_starts {
            epochs.assign(epoch, start_offset);
        }
        epochs.truncate_from_start(log_start_offset);
        if epochs != saved {
            epochs.write(dir, false)?;
        }
        Ok((producers, self.txn, epochs))
    }
}

/// Producer state as of `log_end_offset`: the newest snapshot at or below it, then a
/// replay of the batch headers after it.
pub(super) fn rebuild_producers(
    dir: &Path,
    segments: &BTreeMap<i64, Segment>,
    log_end_offset: i64,
) -> Result<ProducerStateManager> {
    let (from_offset, entries) =
        checkpoint::load_producer_snapshot(dir, log_end_offset)?.unwrap_or((i64::MIN, Vec::new()));
    let mut producers = ProducerStateManager::from_entries(entries);
    for segment in segments.values() {
        if segment.next_offset() <= from_offset {
            continue;
        }
        let start_bytes = if from_offset > segment.base_offset() {
            match segment.locate(from_offset)? {
                // The snapshot's offset may have fallen into a compaction gap: the batches
                // from the next one on came after it.
                Some((h, at)) if h.base_offset >= from_offset => at,
                // A snapshot not on a batch boundary cannot be ours: replay everything.
                _ => {
                    tracing::warn!(dir = %dir.display(), from_offset, "misaligned producer snapshot; full replay");
                    return replay_all(segments);
                }
            }
        } else {
            0
        };
        segment.walk_headers_with_markers(start_bytes, |h, marker| replay_producer(&mut producers, h, marker))?;
    }
    Ok(producers)
}

fn replay_all(segments: &BTreeMap<i64, Segment>) -> Result<ProducerStateManager> {
    let mut producers = ProducerStateManager::new();
    for segment in segments.values() {
        segment.walk_headers_with_markers(0, |h, marker| replay_producer(&mut producers, h, marker))?;
    }
    Ok(producers)
}

/// A marker is replayed with its coordinator epoch, so the fencing of stale
/// coordinators survives a restart.
fn replay_producer(producers: &mut ProducerStateManager, h: &BatchHeader, marker: Option<&[u8]>) {
    match marker {
        Some(batch) => producers.replay_marker(h, coordinator_epoch(h, batch)),
        None => producers.replay(h),
    }
}

/// A control batch's bytes, read through a second handle (recovery borrows the segment
/// mutably; [`Segment::walk_headers_with_markers`] is the same for a shared one).
fn read_marker(h: &BatchHeader, at: u64, file: &File) -> Result<Option<bytes::BytesMut>> {
    Ok(match h.is_control() {
        true => Some(segment::pread_exact(file, at, h.total_bytes())?),
        false => None,
    })
}

