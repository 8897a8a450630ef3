//! The transaction coordinator (Kafka's `TransactionCoordinator`, transaction
//! version 1): transactional ids → producer id/epoch and the state of their current
//! transaction ([`state`]), made durable in the transaction log ([`store`]) before
//! any answer depends on it, and the writing of markers and transactional offsets
//! that ends a transaction ([`complete`]).
//!
//! Sharded as in Kafka, like the group coordinator: an id lives in the
//! `__transaction_state` partition it hashes to (`coordinator::partition_for`), and
//! this node coordinates the ids of the partitions it leads. Becoming leader of one
//! loads its shard (replays the partition in the background, meanwhile its ids get
//! COORDINATOR_LOAD_IN_PROGRESS, then finishes the transactions it left prepared);
//! losing it unloads the shard; ids of shards led elsewhere get NOT_COORDINATOR.
//! The partition's leader epoch is the coordinator epoch in the markers a shard
//! writes, so a deposed coordinator's late markers are refused
//! (TRANSACTION_COORDINATOR_FENCED) by partitions that saw a newer one.
//!
//! Neighbours: `api/{init_producer_id, add_partitions_to_txn, add_offsets_to_txn,
//! end_txn, txn_offset_commit, produce}` call in; markers go to `log/` through the
//! broker's partitions; committed offsets go to `group/`.
//!
//! Locking: the registry lock only finds or inserts an id; each id has its own mutex,
//! held for a state transition and the page-cache append of its record, never across
//! an await. A transaction being completed is in a Prepare state, which every
//! other request on that id answers with CONCURRENT_TRANSACTIONS.

pub mod complete;
pub mod error;
pub mod marker;
pub mod marker_sender;
pub mod state;
pub mod store;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::{Mutex, RwLock};

pub use error::{Error, Result};
pub use state::{EndOutcome, InitOutcome, PendingOffset, TxnMeta, TxnState};

use crate::broker::Broker;
use crate::coordinator::shard::{self, Shards};

/// Kafka's `transaction.max.timeout.ms` default: the longest timeout a producer may ask.
pub const DEFAULT_MAX_TIMEOUT_MS: i64 = 900_000;
/// Kafka's `transaction.abort.timed.out.transaction.cleanup.interval.ms` default.
pub const DEFAULT_ABORT_INTERVAL_MS: u64 = 10_000;
/// Transactional ids kept at most (Kafka expires idle ids after
/// `transactional.id.expiration.ms`; we refuse new ones past this instead).
pub const MAX_TRANSACTIONAL_IDS: usize = 100_000;

pub struct Settings {
    /// `transaction.max.timeout.ms`
    pub max_timeout_ms: i64,
    /// `transaction.abort.timed.out.transaction.cleanup.interval.ms`
    pub abort_interval: Duration,
}

impl Settings {
    /// From the raw broker config (Kafka's keys), with Kafka's defaults.
    pub fn from_config(c: &crate::config::Config) -> Settings {
        let num = |k: &str| c.raw.get(k).and_then(|v| v.trim().parse::<i64>().ok()).filter(|v| *v > 0);
        Settings {
            max_timeout_ms: num("transaction.max.timeout.ms").unwrap_or(DEFAULT_MAX_TIMEOUT_MS),
            abort_interval: Duration::from_millis(
                num("transaction.abort.timed.out.transaction.cleanup.interval.ms").map_or(DEFAULT_ABORT_INTERVAL_MS, |v| v as u64),
            ),
        }
    }
}

/// A state change appended to a shard's log: answered once it is replicated.
pub struct Pending {
    store: Arc<store::Store>,
    end: i64,
}

pub struct TxnCoordinator {
    /// transactional id → its state, for the ids of loaded shards. Held only to find
    /// or insert an id.
    txns: RwLock<HashMap<String, Arc<Mutex<TxnMeta>>>>,
    /// Ids whose completion (markers, offsets) is running, so it runs once.
    completing: Mutex<HashSet<String>>,
    pub settings: Settings,
    /// The `__transaction_state` partitions this node leads. Lock order: this before `txns`.
    shards: Shards<store::TxnLog>,
    /// Connections to the other brokers that markers are sent to.
    channels: marker_sender::Channels,
}

impl TxnCoordinator {
    /// A coordinator for a broker: it serves no id until `set_leadership` gives it shards.
    pub fn sharded(settings: Settings) -> Arc<TxnCoordinator> {
        Arc::new(TxnCoordinator {
            txns: RwLock::new(HashMap::new()),
            completing: Mutex::new(HashSet::new()),
            settings,
            shards: Shards::default(),
            channels: Default::default(),
        })
    }

    /// After the broker is up: start the timeout ticker (which also retries
    /// completions that failed). Shards resume their prepared transactions as they load.
    pub fn start(broker: &Arc<Broker>) {
        let Ok(rt) = tokio::runtime::Handle::try_current() else { return };
        rt.spawn(ticker(Arc::downgrade(broker), broker.txns.settings.abort_interval));
    }

    /// The shard of `id`, if this node coordinates it now: NOT_COORDINATOR if it does
    /// not lead the id's partition (any more), COORDINATOR_LOAD_IN_PROGRESS while that
    /// partition is loading.
    pub fn access(&self, id: &str) -> Result<Arc<store::Store>> {
        Ok(self.shards.access(id)?)
    }

    /// Whether this node coordinates `id` now (see [`TxnCoordinator::access`]).
    pub fn check(&self, id: &str) -> Result<()> {
        self.access(id).map(|_| ())
    }

    /// The shard and state of an id this node coordinates. An id it does not know is
    /// INVALID_PRODUCER_ID_MAPPING, as in Kafka.
    fn entry(&self, id: &str) -> Result<(Arc<store::Store>, Arc<Mutex<TxnMeta>>)> {
        let store = self.access(id)?;
        let entry = self.get(id).ok_or(Error::InvalidProducerIdMapping)?;
        Ok((store, entry))
    }

    /// The reconcile hook (`coordinator::reconciled`): load the shards this node now
    /// leads (in the background), unload those it lost or leads at a new epoch.
    pub fn set_leadership(self: &Arc<Self>, broker: &Arc<Broker>, image: &crate::metadata::Image, l: crate::coordinator::Leadership) {
        let min_isr = image
            .topic(store::TOPIC)
            .and_then(|t| t.configs.get("min.insync.replicas"))
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(1);
        self.shards.set_leadership(&l, |p| self.unload(p), |p, led| {
            let store = store::Store::led(broker, p, led, min_isr);
            let (tc, weak) = (self.clone(), Arc::downgrade(broker));
            shard::in_background(move || tc.load(&weak, store));
        });
    }

    /// Replay a shard and start serving its ids, unless leadership moved meanwhile;
    /// then finish the transactions it left prepared (Kafka's coordinator does the
    /// same when it becomes a partition's leader).
    fn load(&self, broker: &Weak<Broker>, store: store::Store) {
        let replay = |s: &store::Store| {
            let mut metas: HashMap<String, TxnMeta> = HashMap::new();
            s.replay(|m| {
                metas.insert(m.transactional_id.clone(), m);
            })
            .map(|()| metas)
        };
        let publish = |s: &Arc<store::Store>, metas: HashMap<String, TxnMeta>| {
            let prepared: Vec<String> = metas.values().filter(|m| m.state.is_preparing()).map(|m| m.transactional_id.clone()).collect();
            tracing::info!(partition = s.partition_index, transactional_ids = metas.len(), prepared = prepared.len(), "transaction coordinator shard loaded");
            self.txns.write().extend(metas.into_iter().map(|(k, v)| (k, Arc::new(Mutex::new(v)))));
            prepared
        };
        if let Some((store, prepared)) = self.shards.finish_load(store, replay, publish)
            && let (Some(broker), false) = (broker.upgrade(), prepared.is_empty())
        {
            complete::resume(&broker, store, prepared);
        }
    }

    /// Forget the ids of a shard this node no longer leads. Requests and completions
    /// still holding them fail at their next write (the shard's leadership resigned).
    fn unload(&self, partition: i32) {
        let n = self.shards.partitions();
        let mut txns = self.txns.write();
        let before = txns.len();
        txns.retain(|id, _| crate::coordinator::partition_for(id, n) != partition);
        tracing::info!(partition, transactional_ids = before - txns.len(), "transaction coordinator shard unloaded");
    }

    pub fn get(&self, id: &str) -> Option<Arc<Mutex<TxnMeta>>> {
        self.txns.read().get(id).cloned()
    }

    /// Snapshot of one id's state (tests, logs).
    pub fn describe(&self, id: &str) -> Option<TxnMeta> {
        self.get(id).map(|m| m.lock().clone())
    }

    /// COORDINATOR_LOAD_IN_PROGRESS while any shard this node leads is loading
    /// (ListTransactions would miss its ids).
    pub fn loaded(&self) -> Result<()> {
        if self.shards.any_loading() {
            return Err(Error::CoordinatorLoadInProgress);
        }
        Ok(())
    }

    /// The ids of every shard this node has loaded.
    pub fn ids(&self) -> Vec<String> {
        self.txns.read().keys().cloned().collect()
    }

    /// Appends `meta` to its shard's log (page cache). Returns what to wait for.
    fn persist(store: &Arc<store::Store>, meta: &TxnMeta) -> Result<Pending> {
        let end = store.append(meta)?;
        Ok(Pending { store: store.clone(), end })
    }

    /// Waits until an appended state change is replicated.
    async fn wait(p: Option<Pending>) -> Result<()> {
        match p {
            Some(p) => Ok(p.store.wait_replicated(p.end).await?),
            None => Ok(()),
        }
    }

    /// InitProducerId with a transactional id. `alloc` hands out a fresh producer id
    /// (async: it may commit a new id block through the metadata quorum).
    pub async fn init_producer_id<A, F>(
        broker: &Arc<Broker>,
        id: &str,
        timeout_ms: i64,
        expected: Option<(i64, i16)>,
        alloc: A,
    ) -> Result<(i64, i16)>
    where
        A: Fn() -> F,
        F: std::future::Future<Output = Result<i64>>,
    {
        let this = &broker.txns;
        if id.is_empty() {
            return Err(Error::InvalidRequest);
        }
        if timeout_ms <= 0 || timeout_ms > this.settings.max_timeout_ms {
            return Err(Error::InvalidTransactionTimeout);
        }
        let store = this.access(id)?;
        let entry = match this.get(id) {
            Some(e) => e,
            None => {
                let pid = alloc().await?;
                let mut txns = this.txns.write();
                // Unloaded while the id was allocated: its ids are no longer ours to add.
                if store.resigned() {
                    return Err(Error::NotCoordinator);
                }
                if txns.len() >= MAX_TRANSACTIONAL_IDS && !txns.contains_key(id) {
                    return Err(Error::LimitExceeded);
                }
                txns.entry(id.to_string()).or_insert_with(|| Arc::new(Mutex::new(TxnMeta::new(id, pid, timeout_ms)))).clone()
            }
        };
        let needs_new_id = entry.lock().needs_new_id();
        let fresh = if needs_new_id { Some(alloc().await?) } else { None };
        let (outcome, pending) = {
            let mut m = entry.lock();
            let before = m.clone();
            let outcome = m.init(timeout_ms, expected, fresh);
            let pending = match &outcome {
                Ok(_) if *m != before => Some(Self::persist(&store, &m).inspect_err(|_| *m = before)?),
                _ => None,
            };
            (outcome?, pending)
        };
        Self::wait(pending).await?;
        match outcome {
            InitOutcome::Ready { producer_id, producer_epoch } => Ok((producer_id, producer_epoch)),
            InitOutcome::FencedOngoing => {
                complete::spawn(broker, id);
                Err(Error::ConcurrentTransactions)
            }
        }
    }

    /// AddPartitionsToTxn (`group` None) or AddOffsetsToTxn (`partitions` empty).
    pub async fn add(&self, id: &str, producer_id: i64, producer_epoch: i16, partitions: &[(String, i32)], group: Option<&str>) -> Result<()> {
        let (store, entry) = self.entry(id)?;
        let pending = {
            let mut m = entry.lock();
            let before = m.clone();
            if m.add(producer_id, producer_epoch, partitions, group, crate::log::system_time_ms())? {
                Some(Self::persist(&store, &m).inspect_err(|_| *m = before)?)
            } else {
                None
            }
        };
        Self::wait(pending).await
    }

    /// TxnOffsetCommit, when this node also coordinates the transaction: the producer
    /// must be current and its open transaction must have added the group. (The
    /// offsets themselves go to the group's log: `group::txn_marker`.)
    pub fn check_offset_commit(&self, id: &str, producer_id: i64, producer_epoch: i16, group: &str) -> Result<()> {
        let (_, entry) = self.entry(id)?;
        let mut m = entry.lock();
        m.stage_offsets(producer_id, producer_epoch, group, Vec::new())
    }

    /// EndTxn: prepare durably, then write markers (and offsets) and complete.
    pub async fn end_txn(broker: &Arc<Broker>, id: &str, producer_id: i64, producer_epoch: i16, commit: bool) -> Result<()> {
        let this = &broker.txns;
        let (store, entry) = this.entry(id)?;
        let pending = {
            let mut m = entry.lock();
            let before = m.clone();
            match m.end(producer_id, producer_epoch, commit)? {
                EndOutcome::AlreadyDone => return Ok(()),
                EndOutcome::Prepared => Self::persist(&store, &m).inspect_err(|_| *m = before)?,
            }
        };
        Self::wait(Some(pending)).await?;
        // Run apart from the request: a client that disconnects must not leave the
        // transaction half-completed.
        match complete::spawn(broker, id) {
            Some(task) => task.await.unwrap_or(Err(Error::Storage)),
            None => Ok(()),
        }
    }

    /// Produce of a transactional batch: runs `append` only if the partition was added
    /// to the producer's open transaction, with the id's lock held so the transaction
    /// cannot end (and its markers be written) between the check and the append.
    /// When this node does not coordinate `id` (or its shard is still loading), the
    /// state is not here to check against: `append` runs unverified, as Kafka's does
    /// without KIP-890's verification (`transaction.partition.verification.enable=false`).
    /// Gap: a late retry can then land after the transaction's marker (a "hanging"
    /// transaction).
    pub fn with_open_txn<T>(&self, id: &str, producer_id: i64, producer_epoch: i16, topic: &str, partition: i32, append: impl FnOnce() -> std::result::Result<T, i16>) -> std::result::Result<T, i16> {
        use crate::protocol::ResponseError as R;
        if self.check(id).is_err() {
            return append();
        }
        let entry = self.get(id).ok_or(R::InvalidProducerIdMapping.code())?;
        let m = entry.lock();
        if producer_id != m.producer_id {
            return Err(R::InvalidProducerIdMapping.code());
        }
        if producer_epoch < m.producer_epoch {
            return Err(R::InvalidProducerEpoch.code());
        }
        let added = m.partitions.iter().any(|(t, p)| t == topic && *p == partition);
        if producer_epoch != m.producer_epoch || m.state != TxnState::Ongoing || !added {
            return Err(R::InvalidTxnState.code());
        }
        append()
    }

    /// Ongoing transactions past their timeout are fenced (epoch bump) and aborted;
    /// only those of shards this node leads now (they are the only ones it holds).
    fn expire(broker: &Arc<Broker>, now_ms: i64) {
        let this = &broker.txns;
        let entries: Vec<_> = this.txns.read().iter().map(|(id, e)| (id.clone(), e.clone())).collect();
        for (id, entry) in entries {
            let Ok(store) = this.access(&id) else { continue };
            let pending = {
                let mut m = entry.lock();
                if !m.timed_out(now_ms) {
                    continue;
                }
                let before = m.clone();
                m.fence_and_abort();
                tracing::info!(transactional_id = %m.transactional_id, epoch = m.producer_epoch, "aborting timed-out transaction");
                match Self::persist(&store, &m) {
                    Ok(p) => p,
                    Err(_) => {
                        *m = before;
                        continue;
                    }
                }
            };
            let broker = broker.clone();
            tokio::spawn(async move {
                if Self::wait(Some(pending)).await.is_ok() {
                    complete::spawn(&broker, &id);
                }
            });
        }
    }
}

/// Every `interval`: abort timed-out transactions, retry stuck completions.
async fn ticker(broker: Weak<Broker>, interval: Duration) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(broker) = broker.upgrade() else { return };
        TxnCoordinator::expire(&broker, crate::log::system_time_ms());
        complete::resume_prepared(&broker);
    }
}
