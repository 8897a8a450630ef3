//! The transaction coordinator (Kafka's `TransactionCoordinator`, transaction
//! version 1, one node): transactional ids → producer id/epoch and the state of
//! their current transaction ([`state`]), made durable in the transaction log
//! ([`store`]) before any answer depends on it, and the writing of markers and
//! transactional offsets that ends a transaction ([`complete`]).
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

pub struct TxnCoordinator {
    /// transactional id → its state. Held only to find or insert an id.
    txns: RwLock<HashMap<String, Arc<Mutex<TxnMeta>>>>,
    /// Ids whose completion (markers, offsets) is running, so it runs once.
    completing: Mutex<HashSet<String>>,
    pub settings: Settings,
    /// None in unit tests that need no durability.
    store: Option<store::Store>,
    /// Connections to the other brokers that markers are sent to.
    channels: marker_sender::Channels,
}

impl TxnCoordinator {
    /// A coordinator over the transaction log in `logs` (replayed now), or with none.
    pub fn open(logs: Option<&Arc<crate::log::manager::LogManager>>, settings: Settings) -> std::result::Result<Arc<TxnCoordinator>, crate::log::Error> {
        let store = logs.map(store::Store::open).transpose()?;
        let mut txns = HashMap::new();
        if let Some(s) = &store {
            s.replay(|meta| {
                txns.insert(meta.transactional_id.clone(), meta);
            })?;
        }
        let txns = txns.into_iter().map(|(k, v)| (k, Arc::new(Mutex::new(v)))).collect();
        let this = TxnCoordinator { txns: RwLock::new(txns), completing: Mutex::new(HashSet::new()), settings, store, channels: Default::default() };
        Ok(Arc::new(this))
    }

    /// After the broker is up: finish transactions a crash left prepared, and start
    /// the timeout ticker (which also retries completions that failed).
    pub fn start(broker: &Arc<Broker>) {
        let Ok(rt) = tokio::runtime::Handle::try_current() else { return };
        complete::resume_prepared(broker);
        rt.spawn(ticker(Arc::downgrade(broker), broker.txns.settings.abort_interval));
    }

    pub fn get(&self, id: &str) -> Option<Arc<Mutex<TxnMeta>>> {
        self.txns.read().get(id).cloned()
    }

    /// Snapshot of one id's state (DescribeTransactions, tests).
    pub fn describe(&self, id: &str) -> Option<TxnMeta> {
        self.get(id).map(|m| m.lock().clone())
    }

    pub fn ids(&self) -> Vec<String> {
        self.txns.read().keys().cloned().collect()
    }

    /// Appends `meta` to the transaction log (page cache). Returns the end offset to
    /// wait for, None without a log.
    fn persist(&self, meta: &TxnMeta) -> Result<Option<i64>> {
        let Some(store) = &self.store else { return Ok(None) };
        store.append(meta).map(Some).map_err(|e| {
            tracing::error!(transactional_id = %meta.transactional_id, error = %e, "writing transaction state failed");
            Error::Storage
        })
    }

    async fn wait_durable(&self, end: Option<i64>) -> Result<()> {
        match (&self.store, end) {
            (Some(store), Some(end)) if !store.wait_durable(end).await => Err(Error::Storage),
            _ => Ok(()),
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
        let entry = match this.get(id) {
            Some(e) => e,
            None => {
                let pid = alloc().await?;
                let mut txns = this.txns.write();
                if txns.len() >= MAX_TRANSACTIONAL_IDS && !txns.contains_key(id) {
                    return Err(Error::LimitExceeded);
                }
                txns.entry(id.to_string()).or_insert_with(|| Arc::new(Mutex::new(TxnMeta::new(id, pid, timeout_ms)))).clone()
            }
        };
        let needs_new_id = entry.lock().needs_new_id();
        let fresh = if needs_new_id { Some(alloc().await?) } else { None };
        let (outcome, end) = {
            let mut m = entry.lock();
            let before = m.clone();
            let outcome = m.init(timeout_ms, expected, fresh);
            let end = match &outcome {
                Ok(_) if *m != before => this.persist(&m).inspect_err(|_| *m = before)?,
                _ => None,
            };
            (outcome?, end)
        };
        this.wait_durable(end).await?;
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
        let entry = self.get(id).ok_or(Error::InvalidProducerIdMapping)?;
        let end = {
            let mut m = entry.lock();
            let before = m.clone();
            if m.add(producer_id, producer_epoch, partitions, group, crate::log::system_time_ms())? {
                self.persist(&m).inspect_err(|_| *m = before)?
            } else {
                None
            }
        };
        self.wait_durable(end).await
    }

    /// TxnOffsetCommit, when this node also coordinates the transaction: the producer
    /// must be current and its open transaction must have added the group. (The
    /// offsets themselves go to the group's log: `group::txn_marker`.)
    pub fn check_offset_commit(&self, id: &str, producer_id: i64, producer_epoch: i16, group: &str) -> Result<()> {
        let entry = self.get(id).ok_or(Error::InvalidProducerIdMapping)?;
        let mut m = entry.lock();
        m.stage_offsets(producer_id, producer_epoch, group, Vec::new())
    }

    /// EndTxn: prepare durably, then write markers (and offsets) and complete.
    pub async fn end_txn(broker: &Arc<Broker>, id: &str, producer_id: i64, producer_epoch: i16, commit: bool) -> Result<()> {
        let this = &broker.txns;
        let entry = this.get(id).ok_or(Error::InvalidProducerIdMapping)?;
        let end = {
            let mut m = entry.lock();
            let before = m.clone();
            match m.end(producer_id, producer_epoch, commit)? {
                EndOutcome::AlreadyDone => return Ok(()),
                EndOutcome::Prepared => this.persist(&m).inspect_err(|_| *m = before)?,
            }
        };
        this.wait_durable(end).await?;
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
    pub fn with_open_txn<T>(&self, id: &str, producer_id: i64, producer_epoch: i16, topic: &str, partition: i32, append: impl FnOnce() -> std::result::Result<T, i16>) -> std::result::Result<T, i16> {
        use crate::protocol::ResponseError as R;
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

    /// Ongoing transactions past their timeout are fenced (epoch bump) and aborted.
    fn expire(broker: &Arc<Broker>, now_ms: i64) {
        let this = &broker.txns;
        let entries: Vec<_> = this.txns.read().values().cloned().collect();
        for entry in entries {
            let (id, end) = {
                let mut m = entry.lock();
                if !m.timed_out(now_ms) {
                    continue;
                }
                let before = m.clone();
                m.fence_and_abort();
                tracing::info!(transactional_id = %m.transactional_id, epoch = m.producer_epoch, "aborting timed-out transaction");
                match this.persist(&m) {
                    Ok(end) => (m.transactional_id.clone(), end),
                    Err(_) => {
                        *m = before;
                        continue;
                    }
                }
            };
            let broker = broker.clone();
            tokio::spawn(async move {
                if broker.txns.wait_durable(end).await.is_ok() {
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
