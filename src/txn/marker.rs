//! Writing transaction markers into partitions this node leads: what a WriteTxnMarkers
//! request asks of a partition leader (Kafka's `ReplicaManager.appendRecords` with
//! `acks=-1` and coordinator origin), shared by the WriteTxnMarkers handler and by the
//! coordinator's own marker sender for the partitions it leads itself.
//!
//! Two steps, so a caller can keep arrival order: [`append`] checks leadership and
//! appends the COMMIT/ABORT control batch at once (synchronously: the producer-state,
//! transaction-index and LSO bookkeeping of `log/` sees it like any append); then
//! [`Step::finish`] waits until the marker is replicated — the high watermark passes
//! it, as for acks=all — within a deadline. A marker is only "written" once every
//! in-sync replica has it: a leader change cannot then take it back, so the
//! coordinator may move the transaction to Complete.
//!
//! Partitions of `__consumer_offsets` carry no marker here: the group coordinator ends
//! the producer's staged offsets itself (`GroupCoordinator::complete_txn_offsets`).

use std::sync::Arc;

use tokio::time::Instant;

use crate::broker::Broker;
use crate::log::manager::{Durable, Partition};
use crate::protocol::ResponseError;
use crate::protocol::control::{ControlType, marker_batch};
use crate::replication::LeaderState;

/// One marker: which transaction of which producer ends, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Marker {
    pub producer_id: i64,
    pub producer_epoch: i16,
    /// The coordinator's epoch (Kafka: the transaction-log partition's leader epoch);
    /// a partition refuses markers from a coordinator older than the last it saw.
    pub coordinator_epoch: i32,
    pub commit: bool,
}

/// Why a marker was not written to one partition; each maps to the Kafka error code
/// a WriteTxnMarkers response carries for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MarkerError {
    #[error("unknown topic or partition")]
    UnknownTopicOrPartition,
    #[error("this broker does not lead the partition")]
    NotLeaderOrFollower,
    #[error("the marker was not replicated in time")]
    RequestTimedOut,
    #[error("the partition has seen a newer epoch of this producer")]
    InvalidProducerEpoch,
    #[error("the partition has seen a newer transaction coordinator")]
    CoordinatorFenced,
    #[error("the partition's log failed")]
    Storage,
    /// The leader could not be reached, or did not answer for the partition (sender side).
    #[error("the partition leader could not be reached")]
    Unreachable,
    #[error("the group coordinator refused: {0}")]
    Offsets(crate::group::Error),
    /// Any other error code (from a remote leader, or a log error).
    #[error("error code {0}")]
    Other(i16),
}

impl MarkerError {
    pub fn code(self) -> i16 {
        let e = match self {
            MarkerError::UnknownTopicOrPartition => ResponseError::UnknownTopicOrPartition,
            MarkerError::NotLeaderOrFollower => ResponseError::NotLeaderOrFollower,
            MarkerError::RequestTimedOut => ResponseError::RequestTimedOut,
            MarkerError::InvalidProducerEpoch => ResponseError::InvalidProducerEpoch,
            MarkerError::CoordinatorFenced => ResponseError::TransactionCoordinatorFenced,
            MarkerError::Storage => ResponseError::KafkaStorageError,
            MarkerError::Unreachable => ResponseError::NetworkException,
            MarkerError::Offsets(e) => return e.code(),
            MarkerError::Other(code) => return code,
        };
        e.code()
    }

    /// The error a partition-level code stands for (a remote leader's answer).
    pub fn from_code(code: i16) -> MarkerError {
        use ResponseError as R;
        match code {
            c if c == R::UnknownTopicOrPartition.code() => MarkerError::UnknownTopicOrPartition,
            c if c == R::NotLeaderOrFollower.code() => MarkerError::NotLeaderOrFollower,
            c if c == R::RequestTimedOut.code() => MarkerError::RequestTimedOut,
            c if c == R::InvalidProducerEpoch.code() => MarkerError::InvalidProducerEpoch,
            c if c == R::TransactionCoordinatorFenced.code() => MarkerError::CoordinatorFenced,
            c if c == R::KafkaStorageError.code() => MarkerError::Storage,
            c => MarkerError::Other(c),
        }
    }
}

fn from_log(e: &crate::log::Error) -> MarkerError {
    match e {
        crate::log::Error::InvalidProducerEpoch { .. } => MarkerError::InvalidProducerEpoch,
        crate::log::Error::CoordinatorFenced { .. } => MarkerError::CoordinatorFenced,
        e => MarkerError::from_code(crate::api::log_error_code(e)),
    }
}

/// A marker appended (or to be handed to the group coordinator), not yet answered.
pub enum Step {
    Appended { partition: Arc<Partition>, end_offset: i64, leader: Arc<LeaderState> },
    Offsets { partition: i32 },
    Failed(MarkerError),
}

/// Checks that this node leads `topic`/`partition` and appends the marker to it with
/// the partition's leader epoch. `__consumer_offsets` partitions are left to
/// [`Step::finish`] (the group coordinator).
pub fn append(broker: &Arc<Broker>, topic: &str, partition: i32, m: &Marker) -> Step {
    if topic == crate::group::store::TOPIC {
        return Step::Offsets { partition };
    }
    let image = broker.image();
    // The same checks as Produce: the topic and partition exist, the image names this
    // node leader, and the replica manager holds the leadership at that epoch.
    let (p, leader_epoch, leader) = match crate::api::leader_partition_state(broker, image.topic(topic), partition, -1) {
        Ok(v) => v,
        Err(code) => return Step::Failed(MarkerError::from_code(code)),
    };
    let kind = if m.commit { ControlType::Commit } else { ControlType::Abort };
    let mut batch = marker_batch(m.producer_id, m.producer_epoch, m.coordinator_epoch, kind, crate::log::system_time_ms());
    match broker.logs.append(&p, &mut batch, leader_epoch) {
        Ok(info) => {
            broker.replicas.notify_appended();
            Step::Appended { partition: p, end_offset: info.last_offset + 1, leader }
        }
        Err(e) => {
            tracing::debug!(topic, partition, producer_id = m.producer_id, error = %e, "transaction marker refused");
            Step::Failed(from_log(&e))
        }
    }
}

impl Step {
    /// Waits until the marker is replicated (high watermark past it) or `deadline`;
    /// for `__consumer_offsets`, ends the producer's offsets in the group coordinator.
    pub async fn finish(self, broker: &Arc<Broker>, m: &Marker, deadline: Instant) -> Result<(), MarkerError> {
        match self {
            Step::Failed(e) => Err(e),
            Step::Offsets { partition } => {
                broker.groups.complete_txn_offsets(partition, m.producer_id, m.producer_epoch, m.coordinator_epoch, m.commit).await.map_err(MarkerError::Offsets)
            }
            Step::Appended { partition, end_offset, leader } => wait_replicated(&partition, end_offset, &leader, deadline).await,
        }
    }
}

/// acks=all for a marker: the high watermark reaches `end_offset` while this node
/// still leads at the epoch it appended with.
async fn wait_replicated(p: &Partition, end_offset: i64, leader: &LeaderState, deadline: Instant) -> Result<(), MarkerError> {
    let watched = async {
        tokio::select! {
            d = p.wait_high_watermark(end_offset) => Some(d),
            // Deposed meanwhile: answer now, the coordinator retries at the new leader.
            _ = leader.wait_resigned() => None,
        }
    };
    match tokio::time::timeout_at(deadline, watched).await {
        Err(_) => Err(MarkerError::RequestTimedOut),
        Ok(None) => Err(MarkerError::NotLeaderOrFollower),
        Ok(Some(Durable::Failed)) => Err(MarkerError::Storage),
        // What reached the offset may be a new leader's records, not our marker.
        Ok(Some(Durable::UpTo(_))) if leader.has_resigned() => Err(MarkerError::NotLeaderOrFollower),
        Ok(Some(Durable::UpTo(_))) => Ok(()),
    }
}
