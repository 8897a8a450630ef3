//! Ending a prepared transaction: a COMMIT or ABORT marker to every partition in
//! it, durable (for a `__consumer_offsets` partition the group coordinator writes
//! it and settles the offsets staged there); then the
//! Complete state to the transaction log. Each step is idempotent, so a completion
//! that fails or is cut short by a crash is simply run again (the ticker retries;
//! a shard's load resumes every transaction its log shows prepared). A second marker
//! for a transaction already ended in a partition changes nothing there. A
//! completion belongs to the shard's leadership it started under: once that ends it
//! stops writing, and the new leader's load resumes the transaction.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::task::JoinHandle;

use super::error::{Error, Result};
use super::marker::{Marker, MarkerError};
use super::marker_sender;
use super::state::{TxnMeta, TxnState};
use super::store::Store;
use super::TxnCoordinator;
use crate::broker::Broker;

/// Starts the completion of `id` unless one is running; the handle resolves when
/// the transaction is complete (or the attempt failed and is left for a retry).
pub fn spawn(broker: &Arc<Broker>, id: &str) -> Option<JoinHandle<Result<()>>> {
    if !broker.txns.completing.lock().insert(id.to_string()) {
        return None;
    }
    let (broker, id) = (broker.clone(), id.to_string());
    Some(tokio::spawn(async move {
        let r = run(&broker, &id).await;
        match &r {
            Err(e @ (Error::NotCoordinator | Error::CoordinatorLoadInProgress)) => {
                tracing::info!(transactional_id = %id, error = %e, "completing transaction stopped: no longer its coordinator");
            }
            Err(e) => tracing::warn!(transactional_id = %id, error = %e, "completing transaction failed; will retry"),
            Ok(()) => {}
        }
        broker.txns.completing.lock().remove(&id);
        r
    }))
}

/// Completes every prepared transaction of the loaded shards with no completion
/// running (the ticker's retry).
pub fn resume_prepared(broker: &Arc<Broker>) {
    let this = &broker.txns;
    let prepared: Vec<String> = {
        let completing = this.completing.lock();
        this.txns
            .read()
            .iter()
            .filter(|(id, m)| !completing.contains(*id) && m.lock().state.is_preparing())
            .map(|(id, _)| id.clone())
            .collect()
    };
    let mut by_shard: HashMap<i32, (Arc<Store>, Vec<String>)> = HashMap::new();
    for id in prepared {
        if let Ok(store) = this.access(&id) {
            by_shard.entry(store.partition_index).or_insert_with(|| (store, Vec::new())).1.push(id);
        }
    }
    for (store, ids) in by_shard.into_values() {
        resume(broker, store, ids);
    }
}

/// Completes the prepared transactions `ids` of shard `store` once its log is
/// replicated up to now, so no marker precedes a Prepare record a new leader could
/// still lose (after a load, the tail past the high watermark is such a record).
pub fn resume(broker: &Arc<Broker>, store: Arc<Store>, ids: Vec<String>) {
    let end = store.end_offset();
    let broker = broker.clone();
    tokio::spawn(async move {
        if let Err(e) = store.wait_replicated(end).await {
            tracing::info!(partition = store.partition_index, error = %e, "transaction log not replicated yet; prepared transactions wait for the next try");
            return;
        }
        for id in ids {
            spawn(&broker, &id);
        }
    });
}

async fn run(broker: &Arc<Broker>, id: &str) -> Result<()> {
    let store = broker.txns.access(id)?;
    let Some(entry) = broker.txns.get(id) else { return Ok(()) };
    let snapshot = entry.lock().clone();
    let commit = match snapshot.state {
        TxnState::PrepareCommit => true,
        TxnState::PrepareAbort => false,
        _ => return Ok(()),
    };
    write_markers(broker, &store, &snapshot, commit).await?;
    let pending = {
        let mut m = entry.lock();
        // Only this task moves a prepared transaction on (see `completing`).
        debug_assert_eq!(m.state, snapshot.state);
        let before = m.clone();
        m.complete();
        TxnCoordinator::persist(&store, &m).inspect_err(|_| *m = before)?
    };
    pending.store.wait_replicated(pending.end).await?;
    tracing::debug!(transactional_id = %id, commit, "transaction complete");
    Ok(())
}

/// Markers to every partition of the transaction, each at its current leader (this
/// node's own partitions directly, the others by WriteTxnMarkers), each replicated to
/// its ISR before this returns Ok. They carry the shard's leader epoch as the
/// coordinator epoch; the attempt stops as soon as this node no longer leads the shard.
async fn write_markers(broker: &Arc<Broker>, store: &Arc<Store>, m: &TxnMeta, commit: bool) -> Result<()> {
    let marker = Marker { producer_id: m.producer_id, producer_epoch: m.producer_epoch, coordinator_epoch: store.leader_epoch(), commit };
    let tps: Vec<_> = m.partitions.iter().cloned().collect();
    let deposed = || store.resigned();
    marker_sender::write_all(broker, &tps, marker, &deposed).await.map_err(|e| {
        tracing::warn!(transactional_id = %m.transactional_id, commit, coordinator_epoch = store.leader_epoch(), error = %e, "transaction markers not all written");
        if store.resigned() || e == MarkerError::CoordinatorFenced { Error::NotCoordinator } else { Error::Storage }
    })
}
