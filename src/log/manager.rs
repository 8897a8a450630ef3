//! The set of partition logs on this broker, and group commit.
//!
//! Appends go to the page cache under a partition's lock; durability comes from
//! a small pool of flusher threads. A written partition is queued once until a
//! flusher takes it; every append made meanwhile shares that one fsync, so the
//! fsync count grows with time, not with request count (group commit). Several
//! flushers let fsyncs of different partitions overlap, which the disk rewards.
//!
//! Two watermarks per partition: the durable end (what the flushers fsynced) and the
//! high watermark, min(durable end, a cap the replication layer sets: the in-sync
//! followers' log ends on a leader, the leader's high watermark on a follower). With no
//! cap (one node) the high watermark is the durable end: a consumer never sees a record
//! that a crash could take back. Both move only forward, except when the log is
//! truncated. Consumers' reads, retention, the cleaner and the LSO stay below the high
//! watermark; followers' fetches read to the log end.
//!
//! Cleaner threads (`log.cleaner.threads`) compact the logs whose `cleanup.policy`
//! includes `compact` ([`super::cleaner`]), reading the config on every pass so a
//! policy change applies live; a log is cleaned by one thread at a time, and the
//! rewriting runs without the log's lock (only planning and the swap take it).
//!
//! A second thread runs retention every `log.retention.check.interval.ms`
//! ([`super::retention`]); it and DeleteRecords are the only writers of the cached log
//! start offset besides open. Files of deleted segments are removed after the log's
//! lock is released: reads copy bytes out under the lock, so none can still need them.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Weak, mpsc};
use std::time::Duration;

use parking_lot::{Condvar, Mutex, RwLock};
use tokio::sync::watch;

use super::cleaner::{CleanStats, CleanerOptions};
use super::retention::RetentionOutcome;
use super::checkpoint::sync_filesystem;
use super::segment::remove_deleted_files;
use super::space::DiskSpace;
use super::{AppendInfo, Error, LogConfig, PartitionLog, ReadResult, Result};

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: i32,
}

impl TopicPartition {
    pub fn new(topic: &str, partition: i32) -> Self {
        TopicPartition { topic: topic.to_string(), partition }
    }
    /// Kafka's directory name: `<topic>-<partition>`.
    pub fn dir_name(&self) -> String {
        format!("{}-{}", self.topic, self.partition)
    }
}

/// What a durability waiter learns: the durable end offset, or that the disk failed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Durable {
    UpTo(i64),
    Failed,
}

/// The inputs and value of a partition's high watermark, changed together under one lock
/// so that a flush, a cap change and a truncation cannot interleave half-way.
#[derive(Debug, Clone, Copy)]
struct Watermarks {
    durable_end: i64,
    hw_cap: i64,
    high_watermark: i64,
}

impl Watermarks {
    /// Raises the high watermark to what the durable end and the cap now allow; it never
    /// goes down here (a lowered cap holds it, as Kafka's leader HW never decreases).
    fn raise(&mut self) {
        self.high_watermark = self.high_watermark.max(self.durable_end.min(self.hw_cap));
    }
}

pub struct Partition {
    pub tp: TopicPartition,
    /// None once the partition is deleted; in-flight requests holding an Arc then
    /// get an error instead of touching removed files.
    log: Mutex<Option<PartitionLog>>,
    /// Written only under its lock, after the log's lock when both are held (flushes and
    /// truncations); mirrored in the two atomics below for lock-free reads.
    watermarks: Mutex<Watermarks>,
    /// Everything below this offset is fsynced (what `wait_durable` waits for).
    durable_end: AtomicI64,
    /// min(durable end, cap): what consumers may read.
    high_watermark: AtomicI64,
    /// Cached so ListOffsets (called by Spark after every poll) takes no lock.
    log_start_offset: AtomicI64,
    log_end_offset: AtomicI64,
    /// True while this partition sits in the flusher's queue; avoids duplicate sends.
    flush_queued: AtomicBool,
    durable: watch::Sender<Durable>,
    /// The high watermark, or Failed with the disk: `wait_high_watermark` waits on it.
    hw_watch: watch::Sender<Durable>,
    /// The manager's progress counter, bumped on every high watermark change.
    progress: watch::Sender<u64>,
}

impl Partition {
    /// What the flushers made durable: every offset below it is fsynced.
    pub fn durable_end(&self) -> i64 {
        self.durable_end.load(Ordering::Acquire)
    }
    /// min(durable end, cap): what consumers, retention and the cleaner are bounded by.
    /// Never decreases except by truncation.
    pub fn high_watermark(&self) -> i64 {
        self.high_watermark.load(Ordering::Acquire)
    }

    /// Caps the high watermark (the replication layer: a leader's cap is the smallest
    /// log end of its in-sync followers, a follower's the leader's high watermark;
    /// `i64::MAX`, the default, means no cap: the single-replica behaviour). Recomputes
    /// the high watermark now and on every flush; a lower cap never moves it back.
    pub fn set_hw_cap(&self, cap: i64) {
        self.update_watermarks(|w| w.hw_cap = cap);
    }

    /// Applies `f`, raises the high watermark accordingly, and publishes what changed:
    /// the atomics, the durable and HW watches, and the manager's progress counter.
    fn update_watermarks(&self, f: impl FnOnce(&mut Watermarks)) {
        let mut w = self.watermarks.lock();
        let before = *w;
        f(&mut w);
        w.raise();
        debug_assert!(w.high_watermark <= w.durable_end.max(before.high_watermark));
        self.durable_end.store(w.durable_end, Ordering::Release);
        self.high_watermark.store(w.high_watermark, Ordering::Release);
        let set = |tx: &watch::Sender<Durable>, to: i64| {
            tx.send_if_modified(|d| match d {
                // A failed disk stays failed (fsyncgate): nothing is promised again.
                Durable::Failed => false,
                Durable::UpTo(o) if *o == to => false,
                Durable::UpTo(o) => {
                    *o = to;
                    true
                }
            });
        };
        set(&self.durable, w.durable_end);
        set(&self.hw_watch, w.high_watermark);
        if w.high_watermark != before.high_watermark {
            self.progress.send_modify(|g| *g = g.wrapping_add(1));
        }
    }

    /// A flush made everything below `upto` durable.
    fn advance_durable(&self, upto: i64) {
        self.update_watermarks(|w| w.durable_end = w.durable_end.max(upto));
    }

    /// The log was truncated (or restarted) at `log_end_offset` and everything below it
    /// fsynced: both watermarks come down to it if above. `restarted` (a full truncation)
    /// sets the high watermark to the new log start even if that raises it.
    fn rewind_watermarks(&self, log_end_offset: i64, restarted: bool) {
        self.update_watermarks(|w| {
            w.durable_end = log_end_offset;
            w.high_watermark = if restarted { log_end_offset } else { w.high_watermark.min(log_end_offset) };
        });
    }
    pub fn log_start_offset(&self) -> i64 {
        self.log_start_offset.load(Ordering::Acquire)
    }
    pub fn log_end_offset(&self) -> i64 {
        self.log_end_offset.load(Ordering::Acquire)
    }

    /// Bytes of the partition's segments (DescribeLogDirs).
    pub fn size_bytes(&self) -> Result<u64> {
        self.with_log(|log| Ok(log.size_bytes()))
    }

    /// Applies changed topic configs to the open log.
    pub fn set_config(&self, config: LogConfig) -> Result<()> {
        self.with_log(|log| {
            log.set_config(config);
            Ok(())
        })
    }

    /// Runs a log-start-moving operation under the lock, publishes the new log start
    /// offset, then removes the renamed files without holding the lock.
    fn trim_start(&self, f: impl FnOnce(&mut PartitionLog) -> Result<RetentionOutcome>) -> Result<RetentionOutcome> {
        let outcome = self.with_log(|log| {
            let outcome = f(log);
            // Publish whatever the log now says, even after an error part-way.
            self.log_start_offset.store(log.log_start_offset(), Ordering::Release);
            outcome
        })?;
        if let Err(e) = remove_deleted_files(&outcome.renamed_files) {
            // Left for the next open to remove; the log itself is consistent.
            tracing::warn!(partition = %self.tp.dir_name(), error = %e, "removing deleted segment files failed");
        }
        Ok(outcome)
    }

    /// DeleteRecords: moves the log start offset to `offset` (at most the high
    /// watermark) and deletes the segments wholly below it. Returns the log start.
    pub fn delete_records_before(&self, offset: i64) -> Result<i64> {
        let hw = self.high_watermark();
        self.trim_start(|log| log.delete_records_before(offset, hw)).map(|o| o.log_start_offset)
    }

    /// One retention pass at `now_ms` (see [`PartitionLog::delete_old_segments`]).
    pub fn delete_old_segments(&self, now_ms: i64) -> Result<RetentionOutcome> {
        let hw = self.high_watermark();
        self.trim_start(|log| log.delete_old_segments(now_ms, hw))
    }

    /// One compaction pass at `now_ms` if the log is compacted and dirty enough: plans
    /// and swaps under the lock, rewrites without it. `stop` aborts the rewrite.
    pub fn clean(&self, now_ms: i64, options: &CleanerOptions, stop: &dyn Fn() -> bool) -> Result<Option<CleanStats>> {
        let hw = self.high_watermark();
        let Some(plan) = self.with_log(|log| log.plan_clean(now_ms, hw))? else {
            return Ok(None);
        };
        // Also stop once the partition is deleted (checked without waiting for the lock:
        // appends hold it, and a missed check only means one more batch).
        let deleted = || self.log.try_lock().is_some_and(|log| log.is_none());
        let out = plan.execute(options, now_ms, &|| stop() || deleted())?;
        let outcome = self.with_log(|log| log.commit_clean(out, None))?;
        if let Err(e) = remove_deleted_files(&outcome.renamed_files) {
            tracing::warn!(partition = %self.tp.dir_name(), error = %e, "removing cleaned segment files failed");
        }
        Ok(Some(outcome.stats))
    }

    /// Run `f` with the log locked. For rare, cheap queries (timestamps, epochs).
    pub fn with_log<T>(&self, f: impl FnOnce(&mut PartitionLog) -> Result<T>) -> Result<T> {
        match self.log.lock().as_mut() {
            Some(log) => f(log),
            None => Err(deleted()),
        }
    }

    /// Read whole batches from `offset`, never past the high watermark.
    pub fn read(&self, offset: i64, max_bytes: usize, min_one_batch: bool) -> Result<ReadResult> {
        let hw = self.high_watermark();
        self.with_log(|log| log.read(offset, max_bytes, hw, min_one_batch))
    }

    /// [`Self::read`] as a range of the segment file (consumer fetches send it from there).
    pub fn read_slice(&self, offset: i64, max_bytes: usize, min_one_batch: bool) -> Result<super::SliceRead> {
        let hw = self.high_watermark();
        self.with_log(|log| log.read_slice(offset, max_bytes, hw, min_one_batch))
    }

    /// Read whole batches from `offset` up to the log end, past the high watermark: for
    /// followers' fetches, which must get data before it counts as replicated.
    pub fn read_to_log_end(&self, offset: i64, max_bytes: usize, min_one_batch: bool) -> Result<ReadResult> {
        self.with_log(|log| log.read(offset, max_bytes, i64::MAX, min_one_batch))
    }

    /// See [`PartitionLog::truncate_to`]. Also publishes the new log end and log start
    /// and brings the durable end and high watermark down to the new log end.
    pub fn truncate_to(&self, offset: i64) -> Result<()> {
        self.truncate_with(false, |log| log.truncate_to(offset))
    }

    /// See [`PartitionLog::truncate_fully_and_start_at`]; the watermarks become `offset`.
    pub fn truncate_fully_and_start_at(&self, offset: i64) -> Result<()> {
        self.truncate_with(true, |log| log.truncate_fully_and_start_at(offset))
    }

    /// Runs a truncation under the log's lock and publishes its outcome before the lock
    /// is released, so no flush that started before it can publish after it (flushes
    /// check the log's generation under the same lock).
    fn truncate_with(&self, restarted: bool, f: impl FnOnce(&mut PartitionLog) -> Result<()>) -> Result<()> {
        self.with_log(|log| {
            let result = f(log);
            // Publish whatever the log now says, even after an error (it was reloaded).
            self.log_end_offset.store(log.log_end_offset(), Ordering::Release);
            self.log_start_offset.store(log.log_start_offset(), Ordering::Release);
            let restarted = restarted || log.log_start_offset() > self.high_watermark();
            self.rewind_watermarks(log.log_end_offset(), restarted);
            result
        })
    }

    pub fn latest_epoch(&self) -> Option<i32> {
        self.with_log(|log| Ok(log.latest_epoch())).ok().flatten()
    }

    /// See [`PartitionLog::end_offset_for_epoch`]; `None` also once the partition is deleted.
    pub fn end_offset_for_epoch(&self, epoch: i32) -> Option<(i32, i64)> {
        self.with_log(|log| Ok(log.end_offset_for_epoch(epoch))).ok().flatten()
    }

    pub fn assign_epoch(&self, epoch: i32, start_offset: i64) -> Result<()> {
        self.with_log(|log| log.assign_epoch(epoch, start_offset))
    }

    /// Wait until the high watermark reaches `end_offset` (Failed if the disk failed or
    /// the partition was deleted).
    pub async fn wait_high_watermark(&self, end_offset: i64) -> Durable {
        wait_for(&self.hw_watch, end_offset).await
    }

    /// Wait until everything below `end_offset` is durable.
    pub async fn wait_durable(&self, end_offset: i64) -> Durable {
        wait_for(&self.durable, end_offset).await
    }

    /// The disk failed (or the partition is gone): no waiter is ever told "durable" again.
    fn fail(&self) {
        self.durable.send_replace(Durable::Failed);
        self.hw_watch.send_replace(Durable::Failed);
    }
}

/// Waits until `tx` reports at least `end_offset`, or Failed.
async fn wait_for(tx: &watch::Sender<Durable>, end_offset: i64) -> Durable {
    let mut rx = tx.subscribe();
    let seen = rx
        .wait_for(|d| match d {
            Durable::UpTo(o) => *o >= end_offset,
            Durable::Failed => true,
        })
        .await;
    match seen {
        Ok(d) => *d,
        // The sender lives as long as the partition; closing means shutdown.
        Err(_) => Durable::Failed,
    }
}

pub struct LogManager {
    dir: PathBuf,
    /// The log dir, open for `syncfs` (batched flushes and shutdown).
    dir_handle: Arc<File>,
    partitions: RwLock<HashMap<TopicPartition, Arc<Partition>>>,
    /// Serialises opens: two openers of one new partition (a CreateTopics handler and
    /// the replica manager reacting to the same image) would both create its files.
    opening: Mutex<()>,
    flush_queue: Arc<FlushQueue>,
    flushers: Mutex<Vec<std::thread::JoinHandle<()>>>,
    /// Dropping the sender stops the retention thread.
    retention_stop: Mutex<Option<mpsc::Sender<()>>>,
    retention: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Stop signal, in-progress set and wakeup of the cleaner threads.
    cleaner: Arc<CleanerShared>,
    cleaners: Mutex<Vec<std::thread::JoinHandle<()>>>,
    /// Bumped whenever a high watermark moves: wakes fetch long-polls.
    progress: watch::Sender<u64>,
    /// Appends stop short of a full disk (see [`super::space`]).
    space: DiskSpace,
}

impl LogManager {
    pub fn new(dir: &Path) -> Result<Arc<LogManager>> {
        std::fs::create_dir_all(dir)?;
        let queue = Arc::new(FlushQueue::default());
        let (progress, _) = watch::channel(0u64);
        let dir_handle = Arc::new(File::open(dir)?);
        let space = DiskSpace::for_dir(dir_handle.try_clone()?)?;
        tracing::debug!(dir = %dir.display(), reserve_bytes = space.reserve_bytes(), "appends stop short of this much free space");
        let mgr = Arc::new(LogManager {
            dir: dir.to_path_buf(),
            dir_handle: dir_handle.clone(),
            partitions: RwLock::new(HashMap::new()),
            opening: Mutex::new(()),
            flush_queue: queue.clone(),
            flushers: Mutex::new(Vec::new()),
            retention_stop: Mutex::new(None),
            retention: Mutex::new(None),
            cleaner: Arc::new(CleanerShared::default()),
            cleaners: Mutex::new(Vec::new()),
            progress,
            space,
        });
        for i in 0..FLUSHER_THREADS {
            let (queue, fs) = (queue.clone(), dir_handle.clone());
            let handle = std::thread::Builder::new()
                .name(format!("sluice-flusher-{i}"))
                .spawn(move || flusher_loop(&queue, &fs))?;
            mgr.flushers.lock().push(handle);
        }
        Ok(mgr)
    }

    /// The directory holding every partition directory (Kafka's log dir).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn get(&self, tp: &TopicPartition) -> Option<Arc<Partition>> {
        self.partitions.read().get(tp).cloned()
    }

    pub fn get_by_name(&self, topic: &str, partition: i32) -> Option<Arc<Partition>> {
        self.get(&TopicPartition::new(topic, partition))
    }

    /// Open (recovering) or create the log of `tp`. Idempotent.
    pub fn open(&self, tp: &TopicPartition, config: LogConfig) -> Result<Arc<Partition>> {
        if let Some(p) = self.get(tp) {
            return Ok(p);
        }
        let _opening = self.opening.lock();
        if let Some(p) = self.get(tp) {
            return Ok(p);
        }
        self.load(tp, config)
    }

    /// [`Self::open`] of many logs at once (startup), on `threads` threads (Kafka's
    /// `num.recovery.threads.per.data.dir`; more than cores pays off): an
    /// open is mostly waiting, on reads and one fdatasync after a crash, so a thousand
    /// partitions opened one by one took seconds. Each open leaves its (not clean)
    /// checkpoint unsynced and one `syncfs` makes them all durable before any log is
    /// registered, i.e. before any can take an append: after a clean shutdown that is
    /// one journal commit where each open paid two fsyncs. Stops at the first error.
    pub fn open_all(&self, logs: &[(TopicPartition, LogConfig)], threads: usize) -> Result<()> {
        let _opening = self.opening.lock();
        // Two threads must never open (recover) the same directory.
        let mut seen = HashSet::with_capacity(logs.len());
        let logs: Vec<_> = logs.iter().filter(|(tp, _)| seen.insert(tp)).collect();
        let next = std::sync::atomic::AtomicUsize::new(0);
        let failed = Mutex::new(None);
        let opened = Mutex::new(Vec::with_capacity(logs.len()));
        std::thread::scope(|s| {
            for _ in 0..threads.clamp(1, logs.len().max(1)) {
                s.spawn(|| {
                    while failed.lock().is_none() {
                        let Some(&(tp, config)) = logs.get(next.fetch_add(1, Ordering::Relaxed)) else {
                            return;
                        };
                        if self.get(tp).is_some() {
                            continue;
                        }
                        match PartitionLog::open_deferring_sync(&self.dir.join(tp.dir_name()), *config) {
                            Ok(log) => opened.lock().push((tp, log)),
                            Err(e) => {
                                failed.lock().get_or_insert(e);
                            }
                        }
                    }
                });
            }
        });
        if let Some(e) = failed.into_inner() {
            return Err(e);
        }
        let opened = opened.into_inner();
        if !opened.is_empty() {
            sync_filesystem(&self.dir_handle)?;
        }
        for (tp, log) in opened {
            self.register(tp, log)?;
        }
        Ok(())
    }

    /// Opens `tp`'s log and registers it; the caller holds `opening`.
    fn load(&self, tp: &TopicPartition, config: LogConfig) -> Result<Arc<Partition>> {
        let log = PartitionLog::open(&self.dir.join(tp.dir_name()), config)?;
        self.register(tp, log)
    }

    /// Makes an opened log servable: syncs what recovery left unsynced, then publishes
    /// it. The caller holds `opening`, and no two callers register the same partition.
    fn register(&self, tp: &TopicPartition, log: PartitionLog) -> Result<Arc<Partition>> {
        let end = log.log_end_offset();
        let start = log.log_start_offset();
        // Whatever recovery kept is on disk: after a crash the recovered tail was
        // re-validated, and we fsync it once below before calling it durable.
        let (files, upto) = log.sync_handles();
        for f in files {
            f.sync_data()?;
        }
        let mut log = log;
        log.mark_synced(upto);
        let (durable, _) = watch::channel(Durable::UpTo(end));
        let (hw_watch, _) = watch::channel(Durable::UpTo(end));
        let p = Arc::new(Partition {
            tp: tp.clone(),
            log: Mutex::new(Some(log)),
            watermarks: Mutex::new(Watermarks { durable_end: end, hw_cap: i64::MAX, high_watermark: end }),
            durable_end: AtomicI64::new(end),
            high_watermark: AtomicI64::new(end),
            log_start_offset: AtomicI64::new(start),
            log_end_offset: AtomicI64::new(end),
            flush_queued: AtomicBool::new(false),
            durable,
            hw_watch,
            progress: self.progress.clone(),
        });
        let mut map = self.partitions.write();
        Ok(map.entry(tp.clone()).or_insert(p).clone())
    }

    /// Append validated batches; durability is `wait_durable`'s business.
    pub fn append(&self, p: &Arc<Partition>, records: &mut [u8], leader_epoch: i32) -> Result<AppendInfo> {
        self.space.admit(records.len())?;
        let info = p.with_log(|log| {
            let info = log.append(records, leader_epoch)?;
            p.log_end_offset.store(log.log_end_offset(), Ordering::Release);
            Ok(info)
        })?;
        self.queue_flush(p, &info);
        Ok(info)
    }

    /// A follower's append of batches fetched from its leader (see
    /// [`PartitionLog::append_replica`]), queued for the flusher like any append.
    pub fn append_replica(&self, p: &Arc<Partition>, records: &[u8]) -> Result<AppendInfo> {
        self.space.admit(records.len())?;
        let info = p.with_log(|log| {
            let info = log.append_replica(records)?;
            p.log_end_offset.store(log.log_end_offset(), Ordering::Release);
            Ok(info)
        })?;
        self.queue_flush(p, &info);
        Ok(info)
    }

    fn queue_flush(&self, p: &Arc<Partition>, info: &AppendInfo) {
        if !info.duplicate
            && info.batches > 0
            && !p.flush_queued.swap(true, Ordering::AcqRel)
        {
            // Refused only after shutdown closed the queue; close() syncs then.
            self.flush_queue.push(p.clone());
        }
    }

    /// Starts the background retention pass, every `interval` (Kafka's
    /// `log.retention.check.interval.ms`), until [`Self::close`].
    pub fn start_retention(self: &Arc<Self>, interval: Duration) -> Result<()> {
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        let mgr = Arc::downgrade(self);
        let handle = std::thread::Builder::new()
            .name("sluice-retention".into())
            .spawn(move || retention_loop(mgr, stop_rx, interval))?;
        *self.retention_stop.lock() = Some(stop_tx);
        *self.retention.lock() = Some(handle);
        Ok(())
    }

    /// One retention pass over every open partition at `now_ms`. Errors are logged per
    /// partition; one bad log does not stop the others.
    pub fn run_retention(&self, now_ms: i64) {
        let parts: Vec<_> = self.partitions.read().values().cloned().collect();
        for p in parts {
            match p.delete_old_segments(now_ms) {
                // Deleted (topic deletion) since the list was taken: nothing to do.
                Err(Error::Io(e)) if e.kind() == std::io::ErrorKind::NotFound && p.log.lock().is_none() => {}
                Err(e) => tracing::warn!(partition = %p.tp.dir_name(), error = %e, "retention pass failed"),
                Ok(_) => {}
            }
        }
    }

    /// Starts `threads` cleaner threads sharing `options.dedupe_buffer_bytes`; each
    /// sleeps `backoff` when no log needed cleaning. They stop at [`Self::close`].
    pub fn start_cleaner(self: &Arc<Self>, threads: usize, options: CleanerOptions, backoff: Duration) -> Result<()> {
        let threads = threads.max(1);
        let options = CleanerOptions { dedupe_buffer_bytes: options.dedupe_buffer_bytes / threads, ..options };
        for i in 0..threads {
            let (mgr, shared) = (Arc::downgrade(self), self.cleaner.clone());
            let handle = std::thread::Builder::new()
                .name(format!("sluice-cleaner-{i}"))
                .spawn(move || cleaner_loop(mgr, shared, options, backoff))?;
            self.cleaners.lock().push(handle);
        }
        Ok(())
    }

    /// One cleaner round over every open partition at `now_ms`, skipping logs another
    /// thread is cleaning. Returns how many logs were compacted.
    pub fn run_cleaner(&self, now_ms: i64, options: &CleanerOptions) -> usize {
        let shared = self.cleaner.clone();
        let parts: Vec<_> = self.partitions.read().values().cloned().collect();
        let mut cleaned = 0;
        for p in parts {
            if shared.stopped() {
                break;
            }
            if !shared.in_progress.lock().insert(p.tp.clone()) {
                continue;
            }
            let result = p.clean(now_ms, options, &|| shared.stopped());
            shared.in_progress.lock().remove(&p.tp);
            match result {
                Ok(Some(stats)) => {
                    cleaned += 1;
                    tracing::info!(partition = %p.tp.dir_name(), segments_in = stats.segments_in, segments_out = stats.segments_out,
                        bytes_read = stats.bytes_read, bytes_written = stats.bytes_written, records_dropped = stats.records_dropped,
                        clean_offset = stats.clean_offset, "compacted log");
                }
                Ok(None) | Err(Error::CleanerAborted) => {}
                Err(Error::Io(e)) if e.kind() == std::io::ErrorKind::NotFound && p.log.lock().is_none() => {}
                Err(e) => tracing::warn!(partition = %p.tp.dir_name(), error = %e, "log cleaning failed"),
            }
        }
        cleaned
    }

    pub fn subscribe_progress(&self) -> watch::Receiver<u64> {
        self.progress.subscribe()
    }

    /// Remove the partition and delete its files.
    pub fn delete(&self, tp: &TopicPartition) -> Result<()> {
        let removed = self.partitions.write().remove(tp);
        if let Some(p) = removed {
            p.fail();
            let log = p.log.lock().take();
            if let Some(log) = log {
                log.delete()?;
            }
        } else {
            let dir = self.dir.join(tp.dir_name());
            if dir.exists() {
                std::fs::remove_dir_all(dir)?;
            }
        }
        Ok(())
    }

    /// Delete partition directories that no longer belong to any known partition
    /// (a crash between a metadata delete and the file removal leaves them).
    pub fn remove_orphans(&self, keep: &HashSet<String>) -> Result<()> {
        for entry in std::fs::read_dir(&self.dir)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().to_string();
            let is_partition_dir = entry.file_type()?.is_dir()
                && name.rsplit_once('-').is_some_and(|(t, p)| !t.is_empty() && p.parse::<i32>().is_ok());
            if is_partition_dir && !keep.contains(&name) {
                tracing::info!(dir = %name, "removing orphaned partition directory");
                std::fs::remove_dir_all(entry.path())?;
            }
        }
        Ok(())
    }

    /// Stop retention and the flusher, then fsync and close every log.
    pub fn close(&self) -> Result<()> {
        self.cleaner.stop();
        for h in self.cleaners.lock().drain(..) {
            let _ = h.join();
        }
        self.retention_stop.lock().take();
        if let Some(h) = self.retention.lock().take() {
            let _ = h.join();
        }
        self.flush_queue.close();
        for h in self.flushers.lock().drain(..) {
            let _ = h.join();
        }
        // Two syncfs calls for all logs instead of several fsyncs per log: seal and
        // snapshot everything, make it durable, and only then write the clean
        // checkpoints (and make those durable).
        let parts: Vec<_> = self.partitions.read().values().cloned().collect();
        let mut first_err = None;
        let mut note = |p: &Partition, e: Error| {
            tracing::error!(partition = %p.tp.dir_name(), error = %e, "closing log");
            first_err.get_or_insert(e);
        };
        let mut prepared = Vec::with_capacity(parts.len());
        for p in parts {
            match p.with_log(|log| log.prepare_close()) {
                Ok(()) => prepared.push(p),
                Err(e) => note(&p, e),
            }
        }
        sync_filesystem(&self.dir_handle)?;
        for p in &prepared {
            if let Err(e) = p.with_log(|log| log.finish_close()) {
                note(p, e);
            }
        }
        sync_filesystem(&self.dir_handle)?;
        first_err.map_or(Ok(()), Err)
    }
}

/// Sleeps `interval` between passes; stops when the manager is gone or `stop` closes.
fn retention_loop(mgr: Weak<LogManager>, stop: mpsc::Receiver<()>, interval: Duration) {
    loop {
        match stop.recv_timeout(interval) {
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            _ => return,
        }
        let Some(mgr) = mgr.upgrade() else { return };
        mgr.run_retention(super::system_time_ms());
    }
}

/// What the cleaner threads share: the stop flag (with a condvar so a backoff sleep
/// ends at once) and the logs being cleaned right now.
#[derive(Default)]
struct CleanerShared {
    stopped: Mutex<bool>,
    wake: Condvar,
    in_progress: Mutex<HashSet<TopicPartition>>,
}

impl CleanerShared {
    fn stopped(&self) -> bool {
        *self.stopped.lock()
    }
    fn stop(&self) {
        *self.stopped.lock() = true;
        self.wake.notify_all();
    }
    /// Sleeps up to `d`; returns false if stopped.
    fn sleep(&self, d: Duration) -> bool {
        let mut stopped = self.stopped.lock();
        if !*stopped {
            self.wake.wait_for(&mut stopped, d);
        }
        !*stopped
    }
}

fn cleaner_loop(mgr: Weak<LogManager>, shared: Arc<CleanerShared>, options: CleanerOptions, backoff: Duration) {
    loop {
        if shared.stopped() {
            return;
        }
        let Some(m) = mgr.upgrade() else { return };
        let cleaned = m.run_cleaner(super::system_time_ms(), &options);
        drop(m); // do not keep the manager alive while sleeping
        if cleaned == 0 && !shared.sleep(backoff) {
            return;
        }
    }
}

/// Flusher threads: fsyncs of different partitions overlap, and a disk with a queue
/// completes them faster together than one after another.
const FLUSHER_THREADS: usize = 4;

/// With this many partitions waiting, one `syncfs` replaces their fsyncs: with many
/// partitions (1,000 in the benchmark) a journal commit per file is what limits. Below
/// it the flushers' parallel fsyncs win: a syncfs also writes back every other dirty
/// page of the filesystem, and with 8 it tripled the p99 produce latency at 16
/// partitions (benches/RESULTS.md, workload 2).
const SYNCFS_MIN_PARTITIONS: usize = 64;
/// At most this many partitions taken from the queue for one flush.
const FLUSH_BATCH_MAX: usize = 4096;

/// Partitions written since their last flush, for the flusher threads.
#[derive(Default)]
struct FlushQueue {
    /// The queue, and whether it is closed (shutdown: drained, then the flushers exit).
    state: std::sync::Mutex<(std::collections::VecDeque<Arc<Partition>>, bool)>,
    ready: std::sync::Condvar,
}

impl FlushQueue {
    fn push(&self, p: Arc<Partition>) {
        let Ok(mut g) = self.state.lock() else { return };
        if !g.1 {
            g.0.push_back(p);
            self.ready.notify_one();
        }
    }

    fn close(&self) {
        if let Ok(mut g) = self.state.lock() {
            g.1 = true;
        }
        self.ready.notify_all();
    }

    /// Blocks for work: one partition while the queue is short, so that the flushers'
    /// fsyncs of one request's partitions run side by side (taking them all, one thread
    /// would sync them one after another); every queued one (up to FLUSH_BATCH_MAX) for
    /// one `syncfs` when it is long. None once closed and drained.
    fn take(&self) -> Option<Vec<Arc<Partition>>> {
        let mut g = self.state.lock().ok()?;
        loop {
            let queued = g.0.len();
            if queued >= SYNCFS_MIN_PARTITIONS {
                return Some(g.0.drain(..queued.min(FLUSH_BATCH_MAX)).collect());
            }
            if let Some(p) = g.0.pop_front() {
                return Some(vec![p]);
            }
            if g.1 {
                return None;
            }
            g = self.ready.wait(g).ok()?;
        }
    }
}

/// Take what is queued and make everything written to it durable: one partition by
/// fsyncs while the queue is short, many at once by `syncfs` when it is long.
///
/// Readers are woken by the watermark updates of each publish (`update_watermarks`
/// bumps the progress counter when a high watermark moves; followers wake on appends),
/// not by the flusher: a bump per flush would wake every long-polling fetch again.
fn flusher_loop(queue: &FlushQueue, fs: &File) {
    while let Some(batch) = queue.take() {
        if batch.len() >= SYNCFS_MIN_PARTITIONS {
            flush_many(&batch, fs);
        } else {
            batch.iter().for_each(|p| flush_one(p));
        }
    }
}

fn flush_one(p: &Partition) {
    // Clear before reading the handles: an append after this point queues again.
    p.flush_queued.store(false, Ordering::Release);
    let Ok((files, upto, generation)) = p.with_log(|log| {
        let (files, upto) = log.sync_handles();
        Ok((files, upto, log.generation()))
    }) else {
        return; // deleted meanwhile
    };
    let started = std::time::Instant::now();
    let synced = files.iter().try_for_each(|f| f.sync_data());
    SLOW_FSYNCS.observe(started.elapsed(), || p.tp.dir_name());
    match synced {
        Ok(()) => publish_durable(p, upto, generation),
        Err(e) => fail_durability(p, &e),
    }
}

fn flush_many(batch: &[Arc<Partition>], fs: &File) {
    let mut marks = Vec::with_capacity(batch.len());
    for p in batch {
        p.flush_queued.store(false, Ordering::Release);
        // The log end before the syncfs: everything below it is covered.
        if let Ok(mark) = p.with_log(|log| Ok((log.log_end_offset(), log.generation()))) {
            marks.push((p, mark));
        }
    }
    let started = std::time::Instant::now();
    let synced = sync_filesystem(fs);
    SLOW_FSYNCS.observe(started.elapsed(), || format!("syncfs of {} partitions", marks.len()));
    match synced {
        Ok(()) => marks.into_iter().for_each(|(p, (upto, generation))| publish_durable(p, upto, generation)),
        Err(e) => marks.into_iter().for_each(|(p, _)| fail_durability(p, &e)),
    }
}

/// An fsync slower than this is reported: every acknowledgement waiting on it is late
/// by as much, so a produce latency spike that matches one is the disk's.
const SLOW_FSYNC: Duration = Duration::from_millis(20);

/// Slow fsyncs, reported at most once a second with how many there were since the
/// last report, so a struggling disk is visible without a log line per flush. Only
/// fsyncs that already took [`SLOW_FSYNC`] touch the lock.
struct SlowFsyncs {
    /// When the last report was made (None: never), and slow fsyncs since then.
    state: Mutex<(Option<std::time::Instant>, u64)>,
}

static SLOW_FSYNCS: SlowFsyncs = SlowFsyncs { state: Mutex::new((None, 0)) };

impl SlowFsyncs {
    /// Counts a slow `took`; returns the count it reported, if it reported now.
    fn observe<D: std::fmt::Display>(&self, took: Duration, what: impl FnOnce() -> D) -> Option<u64> {
        if took < SLOW_FSYNC {
            return None;
        }
        let mut state = self.state.lock();
        state.1 += 1;
        if state.0.is_some_and(|last| last.elapsed() < Duration::from_secs(1)) {
            return None;
        }
        let count = state.1;
        *state = (Some(std::time::Instant::now()), 0);
        drop(state);
        tracing::warn!(took_ms = took.as_millis() as u64, slow_since_last_report = count, flush = %what(), "slow fsync");
        Some(count)
    }
}

#[cfg(test)]
#[test]
fn slow_fsyncs_are_counted_and_reported_at_most_once_a_second() {
    let r = SlowFsyncs { state: Mutex::new((None, 0)) };
    assert_eq!(r.observe(Duration::from_millis(5), || "fast"), None, "fast ones are not counted");
    assert_eq!(r.observe(SLOW_FSYNC, || "p-0"), Some(1), "the first slow one is reported");
    assert_eq!(r.observe(SLOW_FSYNC * 3, || "p-1"), None, "within the second: counted only");
    assert_eq!(r.observe(SLOW_FSYNC, || "p-2"), None);
    r.state.lock().0 = Some(std::time::Instant::now() - Duration::from_secs(2));
    assert_eq!(r.observe(SLOW_FSYNC, || "p-3"), Some(3), "the next report carries the ones between");
}

/// Publishes a flush of everything below `upto`, taken at the log's `generation`. Under
/// the log's lock: a truncation since then voids it (the offsets below `upto` may hold
/// other, unsynced bytes now; truncation synced what it kept itself).
fn publish_durable(p: &Partition, upto: i64, generation: u64) {
    let _ = p.with_log(|log| {
        if log.generation() != generation {
            return Ok(());
        }
        log.mark_synced(upto);
        // Two flushers may sync one partition at once (it was re-queued during the
        // first sync); whichever finishes last must not move anything back: the durable
        // end only grows here.
        p.advance_durable(upto);
        Ok(())
    });
}

fn fail_durability(p: &Partition, e: &std::io::Error) {
    // An fsync error leaves the page cache state unknown (fsyncgate): never report
    // those bytes as durable.
    tracing::error!(partition = %p.tp.dir_name(), error = %e, "fsync failed; partition stops acknowledging");
    p.fail();
}

fn deleted() -> Error {
    Error::Io(std::io::Error::new(std::io::ErrorKind::NotFound, "partition deleted"))
}
