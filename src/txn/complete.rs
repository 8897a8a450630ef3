//! Ending a prepared transaction: a COMMIT or ABORT marker to every partition in
//! it, durable (for a `__consumer_offsets` partition the group coordinator writes
//! it and settles the offsets staged there); then the
//! Complete state to the transaction log. Each step is idempotent, so a completion
//! that fails or is cut short by a crash is simply run again (the ticker retries;
//! start-up resumes every transaction the log shows prepared). A second marker for
//! a transaction already ended in a partition changes nothing there.

use std::sync::Arc;

use tokio::task::JoinHandle;

use super::error::{Error, Result};
use super::state::{TxnMeta, TxnState};
use crate::broker::Broker;
use super::marker::Marker;
use super::marker_sender;

/// The coordinator epoch written in markers. One coordinator node that keeps its
/// transaction log to itself: constant for now. Once the transaction log is a
/// replicated partition this becomes its leader epoch (as in Kafka), passed in
/// [`Marker::coordinator_epoch`].
pub const COORDINATOR_EPOCH: i32 = 0;

/// Starts the completion of `id` unless one is running; the handle resolves when
/// the transaction is complete (or the attempt failed and is left for a retry).
pub fn spawn(broker: &Arc<Broker>, id: &str) -> Option<JoinHandle<Result<()>>> {
    if !broker.txns.completing.lock().insert(id.to_string()) {
        return None;
    }
    let (broker, id) = (broker.clone(), id.to_string());
    Some(tokio::spawn(async move {
        let r = run(&broker, &id).await;
        if let Err(e) = &r {
            tracing::warn!(transactional_id = %id, error = %e, "completing transaction failed; will retry");
        }
        broker.txns.completing.lock().remove(&id);
        r
    }))
}

/// Completes every prepared transaction with no completion running, once the
/// transaction log is durable up to now (so no marker precedes its durable Prepare).
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
    if prepared.is_empty() {
        return;
    }
    let end = this.store.as_ref().map(|s| s.end_offset());
    let broker = broker.clone();
    tokio::spawn(async move {
        if broker.txns.wait_durable(end).await.is_err() {
            return;
        }
        for id in prepared {
            spawn(&broker, &id);
        }
    });
}

async fn run(broker: &Arc<Broker>, id: &str) -> Result<()> {
    let Some(entry) = broker.txns.get(id) else { return Ok(()) };
    let snapshot = entry.lock().clone();
    let commit = match snapshot.state {
        TxnState::PrepareCommit => true,
        TxnState::PrepareAbort => false,
        _ => return Ok(()),
    };
    write_markers(broker, &snapshot, commit).await?;
    let end = {
        let mut m = entry.lock();
        // Only this task moves a prepared transaction on (see `completing`).
        debug_assert_eq!(m.state, snapshot.state);
        let before = m.clone();
        m.complete();
        broker.txns.persist(&m).inspect_err(|_| *m = before)?
    };
    broker.txns.wait_durable(end).await?;
    tracing::debug!(transactional_id = %id, commit, "transaction complete");
    Ok(())
}

/// Markers to every partition of the transaction, each at its current leader (this
/// node's own partitions directly, the others by WriteTxnMarkers), each replicated to
/// its ISR before this returns Ok.
async fn write_markers(broker: &Arc<Broker>, m: &TxnMeta, commit: bool) -> Result<()> {
    let marker = Marker { producer_id: m.producer_id, producer_epoch: m.producer_epoch, coordinator_epoch: COORDINATOR_EPOCH, commit };
    marker_sender::write_all(broker, &m.partitions.iter().cloned().collect::<Vec<_>>(), marker).await.map_err(|e| {
        tracing::warn!(transactional_id = %m.transactional_id, commit, error = %e, "transaction markers not all written");
        Error::Storage
    })
}
