//! What both coordinators' shards are made of, written once.
//!
//! - [`ShardStore`]: one partition of an internal topic that this node leads: its
//!   log, the leadership it was loaded under, appends at that leader epoch, and
//!   [`ShardStore::wait_replicated`], the acks=all of a coordinator write (the high
//!   watermark passes it while the leadership still holds).
//! - [`Shards`]: the map of the partitions a coordinator leads, each Loading (being
//!   replayed, its keys answered COORDINATOR_LOAD_IN_PROGRESS) or Loaded, and the
//!   state machine a reconcile drives: load on gaining leadership, unload on losing
//!   it or on a new leader epoch. Keys of partitions not here get NOT_COORDINATOR.
//!
//! Generic over what a shard holds: `F` names a coordinator's record format, whose
//! coordinator adds its own `append` and `replay` to `ShardStore<F>` (the group
//! log's entries, the transaction log's states); what loading and unloading do to
//! its state it passes in as closures.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use parking_lot::RwLock;

use super::{Leadership, Led};
use crate::broker::Broker;
use crate::log::manager::{Durable, LogManager, Partition, TopicPartition};
use crate::protocol::record_codec::DecodedBatch;
use crate::protocol::records::BatchIter;
use crate::replication::LeaderState;

/// How much of the log one replay read takes.
const REPLAY_CHUNK_BYTES: usize = 1 << 20;
/// Largest decompressed batch replay accepts (coordinators write uncompressed batches).
const REPLAY_BATCH_LIMIT_BYTES: usize = 256 << 20;

/// Why a shard could not serve, write or confirm a write. Each coordinator maps
/// these to its own Kafka error codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("this node does not lead the key's partition (any more)")]
    NotCoordinator,
    #[error("the key's partition is still being loaded")]
    LoadInProgress,
    #[error("the partition's in-sync replicas are fewer than its min.insync.replicas")]
    NotEnoughReplicas,
    #[error("the write was not replicated in time")]
    TimedOut,
    #[error("the coordinator log failed")]
    Storage,
}

/// One shard's log: a partition of an internal topic this node leads (or, in unit
/// tests, a standalone log with no leadership), holding records of format `F`.
pub struct ShardStore<F = ()> {
    pub partition_index: i32,
    logs: Arc<LogManager>,
    partition: Arc<Partition>,
    /// The leader epoch appends are stamped with (for transactions, also the
    /// coordinator epoch of the markers the shard writes).
    leader_epoch: i32,
    /// The leadership this shard was loaded under; None: a standalone log.
    leader: Option<Arc<LeaderState>>,
    /// Appends are refused while the ISR is smaller (the topic's min.insync.replicas).
    min_isr: usize,
    /// How long [`ShardStore::wait_replicated`] waits before TimedOut.
    write_timeout: Duration,
    /// Wakes followers' long-polling fetches after an append.
    notify: Option<Box<dyn Fn() + Send + Sync>>,
    /// `fn() -> F`: the format is only a name, so any `F` is Send and Sync.
    format: PhantomData<fn() -> F>,
}

impl<F> ShardStore<F> {
    /// The shard of partition `index`, which this node leads as `led` says.
    pub fn new_led(broker: &Arc<Broker>, index: i32, led: &Led, min_isr: usize, write_timeout: Duration) -> ShardStore<F> {
        let weak = Arc::downgrade(broker);
        let notify: Box<dyn Fn() + Send + Sync> = Box::new(move || {
            if let Some(b) = weak.upgrade() {
                b.replicas.notify_appended();
            }
        });
        let mut s = ShardStore::new(&broker.logs, index, led.log.clone(), led.epoch, Some(led.leader.clone()), write_timeout);
        s.min_isr = min_isr;
        s.notify = Some(notify);
        s
    }

    /// A standalone log `tp` (opened with the internal topics' settings) with no
    /// replication: one replica, on disk is replicated.
    pub fn new_standalone(logs: &Arc<LogManager>, tp: &TopicPartition, write_timeout: Duration) -> Result<ShardStore<F>, crate::log::Error> {
        let partition = logs.open(tp, super::topic::log_config())?;
        Ok(ShardStore::new(logs, tp.partition, partition, 0, None, write_timeout))
    }

    fn new(logs: &Arc<LogManager>, index: i32, partition: Arc<Partition>, leader_epoch: i32, leader: Option<Arc<LeaderState>>, write_timeout: Duration) -> ShardStore<F> {
        ShardStore { partition_index: index, logs: logs.clone(), partition, leader_epoch, leader, min_isr: 1, write_timeout, notify: None, format: PhantomData }
    }

    pub fn leader_epoch(&self) -> i32 {
        self.leader_epoch
    }

    /// Leadership moved on since this shard was loaded: it must not write any more.
    pub fn resigned(&self) -> bool {
        self.leader.as_ref().is_some_and(|l| l.has_resigned())
    }

    pub fn partition(&self) -> &Arc<Partition> {
        &self.partition
    }

    /// The log end offset: everything appended so far lies below it.
    pub fn end_offset(&self) -> i64 {
        self.partition.log_end_offset()
    }

    /// Appends one encoded batch (the leader append path, page cache, at this shard's
    /// leader epoch); returns the offsets it took. Wait for them with
    /// [`ShardStore::wait_replicated`]`(range.end)`.
    pub fn append_batch(&self, mut batch: BytesMut) -> Result<Range<i64>, Error> {
        if self.resigned() {
            return Err(Error::NotCoordinator);
        }
        // Coordinators append with acks=all: refused while the ISR is below the
        // topic's min.insync.replicas.
        if self.leader.as_ref().is_some_and(|l| l.isr().len() < self.min_isr) {
            return Err(Error::NotEnoughReplicas);
        }
        let info = self.logs.append(&self.partition, &mut batch, self.leader_epoch).map_err(|e| {
            tracing::error!(partition = %self.partition.tp.dir_name(), error = %e, "coordinator log append failed");
            Error::Storage
        })?;
        if let Some(n) = &self.notify {
            n();
        }
        Ok(info.base_offset..info.last_offset + 1)
    }

    /// Waits until everything below `end_offset` is replicated to the in-sync replicas
    /// (the high watermark; one replica: on disk). NotCoordinator if leadership moved
    /// meanwhile (what reached the offset may not be ours); TimedOut after the shard's
    /// write timeout (the record may still commit later).
    pub async fn wait_replicated(&self, end_offset: i64) -> Result<(), Error> {
        let reached = self.partition.wait_high_watermark(end_offset);
        let d = match &self.leader {
            None => reached.await,
            Some(l) => {
                let watched = async {
                    tokio::select! {
                        d = reached => Some(d),
                        _ = l.wait_resigned() => None,
                    }
                };
                match tokio::time::timeout(self.write_timeout, watched).await {
                    Err(_) => return Err(Error::TimedOut),
                    Ok(None) => return Err(Error::NotCoordinator),
                    Ok(Some(d)) => d,
                }
            }
        };
        if d == Durable::Failed {
            return Err(Error::Storage);
        }
        if self.resigned() {
            return Err(Error::NotCoordinator);
        }
        Ok(())
    }

    /// Every batch of the shard, in order, decoded: to the log end, as Kafka loads a
    /// shard (a new leader's tail beyond the high watermark is what it replicates
    /// next). Compaction leaves offset gaps and emptied batches; both are passed over.
    pub fn replay_batches(&self, mut apply: impl FnMut(&DecodedBatch)) -> Result<(), crate::log::Error> {
        let mut offset = self.partition.log_start_offset();
        let end = self.partition.log_end_offset();
        while offset < end {
            let r = self.partition.read_to_log_end(offset, REPLAY_CHUNK_BYTES, true)?;
            if r.records.is_empty() {
                break;
            }
            let before = offset;
            for (h, range) in BatchIter::new(&r.records) {
                // Past the whole batch, even one compaction emptied: offsets have gaps.
                offset = offset.max(h.next_offset());
                let batch = DecodedBatch::decode(&r.records[range], REPLAY_BATCH_LIMIT_BYTES).map_err(|e| {
                    crate::log::Error::Io(std::io::Error::other(format!("{}: {e}", self.partition.tp.dir_name())))
                })?;
                apply(&batch);
            }
            if offset == before {
                break; // no progress: nothing decodable here
            }
        }
        Ok(())
    }
}

/// One partition a coordinator leads.
enum Slot<F> {
    /// Being replayed (at this leader epoch): its keys are not served yet.
    Loading { epoch: i32 },
    Loaded(Arc<ShardStore<F>>),
}

struct Map<F> {
    /// The internal topic's partition count (0: it does not exist yet).
    partitions: i32,
    led: HashMap<i32, Slot<F>>,
}

/// The shards of one coordinator. Lock order: this before the coordinator's own
/// registry (groups, transactional ids), which loads fill while holding it.
pub struct Shards<F> {
    map: RwLock<Map<F>>,
}

impl<F> Default for Shards<F> {
    fn default() -> Self {
        Shards { map: RwLock::new(Map { partitions: 0, led: HashMap::new() }) }
    }
}

impl<F> Shards<F> {
    /// One loaded shard as partition 0 of a one-partition topic (a standalone log).
    pub fn single(shard: ShardStore<F>) -> Shards<F> {
        Shards { map: RwLock::new(Map { partitions: 1, led: HashMap::from([(0, Slot::Loaded(Arc::new(shard)))]) }) }
    }

    /// The internal topic's partition count as last reconciled (0: none yet).
    pub fn partitions(&self) -> i32 {
        self.map.read().partitions
    }

    /// The shard of `key` if this node serves it now: NotCoordinator if it does not
    /// lead the key's partition (any more), LoadInProgress while that is loading.
    pub fn access(&self, key: &str) -> Result<Arc<ShardStore<F>>, Error> {
        let map = self.map.read();
        Self::slot(&map, super::partition_for(key, map.partitions))
    }

    /// The shard of `partition` (see [`Shards::access`]).
    pub fn get(&self, partition: i32) -> Result<Arc<ShardStore<F>>, Error> {
        Self::slot(&self.map.read(), partition)
    }

    fn slot(map: &Map<F>, partition: i32) -> Result<Arc<ShardStore<F>>, Error> {
        match map.led.get(&partition) {
            None => Err(Error::NotCoordinator),
            Some(Slot::Loading { .. }) => Err(Error::LoadInProgress),
            Some(Slot::Loaded(s)) if s.resigned() => Err(Error::NotCoordinator),
            Some(Slot::Loaded(s)) => Ok(s.clone()),
        }
    }

    /// Whether any shard is still loading (a listing of every key would miss its keys).
    pub fn any_loading(&self) -> bool {
        self.map.read().led.values().any(|s| matches!(s, Slot::Loading { .. }))
    }

    /// The reconcile step: shards this node no longer leads, or leads at another
    /// epoch, are dropped and `unload(partition)` runs for each (after the map's lock
    /// is released); partitions it now leads without a shard become Loading and
    /// `load(partition, led)` runs for each, which should replay them in the
    /// background ([`in_background`]) and finish with [`Shards::finish_load`].
    pub fn set_leadership(&self, l: &Leadership, mut unload: impl FnMut(i32), mut load: impl FnMut(i32, &Led)) {
        let mut unloaded = Vec::new();
        let mut loading = Vec::new();
        {
            let mut map = self.map.write();
            if l.partitions > 0 {
                map.partitions = l.partitions;
            }
            let epoch = |s: &Slot<F>| match s {
                Slot::Loading { epoch } => *epoch,
                Slot::Loaded(s) => s.leader_epoch(),
            };
            let stale: Vec<i32> = map.led.iter().filter(|(p, s)| l.led.get(p).is_none_or(|n| n.epoch != epoch(s))).map(|(p, _)| *p).collect();
            for p in stale {
                map.led.remove(&p);
                unloaded.push(p);
            }
            for (p, led) in &l.led {
                if !map.led.contains_key(p) {
                    map.led.insert(*p, Slot::Loading { epoch: led.epoch });
                    loading.push((*p, led));
                }
            }
        }
        for p in unloaded {
            unload(p);
        }
        for (p, led) in loading {
            load(p, led);
        }
    }

    /// Ends the load of `shard`: `replay` rebuilds its state from the log, and if the
    /// partition is still Loading at the shard's epoch, `publish` hands that state to
    /// the coordinator under the map's write lock (so no key of the shard is served
    /// before its state is in) and the shard becomes Loaded. None if the replay
    /// failed (left Loading: clients retry; a new leadership retries the load) or
    /// leadership moved meanwhile.
    pub fn finish_load<R, T>(
        &self,
        shard: ShardStore<F>,
        replay: impl FnOnce(&ShardStore<F>) -> Result<R, crate::log::Error>,
        publish: impl FnOnce(&Arc<ShardStore<F>>, R) -> T,
    ) -> Option<(Arc<ShardStore<F>>, T)> {
        let started = std::time::Instant::now();
        let (p, epoch) = (shard.partition_index, shard.leader_epoch());
        let topic = shard.partition.tp.topic.clone();
        let state = match replay(&shard) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(topic, partition = p, error = %e, "loading a coordinator shard failed");
                return None;
            }
        };
        let mut map = self.map.write();
        if !matches!(map.led.get(&p), Some(Slot::Loading { epoch: e }) if *e == epoch) {
            return None; // unloaded or superseded while replaying
        }
        let shard = Arc::new(shard);
        let out = publish(&shard, state);
        map.led.insert(p, Slot::Loaded(shard.clone()));
        tracing::info!(topic, partition = p, epoch, elapsed = ?started.elapsed(), "coordinator shard loaded");
        Some((shard, out))
    }

    /// Marks `partition` Loading at `epoch` of a `partitions`-partition topic (tests
    /// that drive the states by hand).
    #[cfg(test)]
    pub fn set_loading(&self, partitions: i32, partition: i32, epoch: i32) {
        let mut map = self.map.write();
        map.partitions = partitions;
        map.led.insert(partition, Slot::Loading { epoch });
    }

    /// Puts a loaded shard in place (tests).
    #[cfg(test)]
    pub fn set_loaded(&self, partition: i32, shard: Arc<ShardStore<F>>) {
        self.map.write().led.insert(partition, Slot::Loaded(shard));
    }

    /// Drops a partition's shard (tests).
    #[cfg(test)]
    pub fn remove(&self, partition: i32) {
        self.map.write().led.remove(&partition);
    }
}

/// Runs a shard load off the async workers (replay reads the whole partition), or
/// inline where there is no runtime.
pub fn in_background(load: impl FnOnce() + Send + 'static) {
    match tokio::runtime::Handle::try_current() {
        Ok(rt) => drop(rt.spawn_blocking(load)),
        Err(_) => load(),
    }
}

#[cfg(test)]
#[path = "shard_tests.rs"]
mod tests;
