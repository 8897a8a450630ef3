//! One file per Kafka API. Each exposes the versions it serves through
//! `protocol::versions` and a `handle(ctx, request) -> response` that builds the
//! response for `ctx.api_version`. Handlers never touch sockets and never mutate
//! metadata directly: they read the image and propose records.

pub mod add_offsets_to_txn;
pub mod add_partitions_to_txn;
pub mod add_raft_voter;
pub mod alter_configs;
pub mod alter_partition_reassignments;
pub mod api_versions;
pub mod cluster;
pub mod config_change;
pub mod consumer_group_describe;
pub mod consumer_group_heartbeat;
pub mod create_partitions;
pub mod create_topics;
pub mod delete_records;
pub mod delete_topics;
pub mod describe_cluster;
pub mod describe_quorum;
pub mod describe_topic_partitions;
pub mod describe_transactions;
pub mod describe_configs;
pub mod describe_log_dirs;
pub mod elect_leaders;
pub mod end_txn;
pub mod fetch;
pub mod incremental_alter_configs;
pub mod init_producer_id;
pub mod list_offsets;
pub mod list_partition_reassignments;
pub mod metadata;
pub mod offset_for_leader_epoch;
pub mod produce;
pub mod topic_configs;
pub mod topics;
pub mod delete_groups;
pub mod describe_groups;
pub mod find_coordinator;
pub mod heartbeat;
pub mod join_group;
pub mod leave_group;
pub mod list_groups;
pub mod list_transactions;
pub mod offset_commit;
pub mod offset_delete;
pub mod offset_fetch;
pub mod remove_raft_voter;
pub mod sync_group;
pub mod txn_offset_commit;
pub mod write_txn_markers;

use std::sync::Arc;

use kafka_protocol::protocol::StrBytes;

use crate::broker::Broker;
use crate::protocol::ResponseError;

pub struct RequestContext {
    pub broker: Arc<Broker>,
    pub api_version: i16,
    pub client_id: Option<String>,
    /// The peer's address as Kafka shows it (`/127.0.0.1`), for group member listings.
    pub client_host: String,
}

impl RequestContext {
    pub fn node_id(&self) -> i32 {
        self.broker.config.node_id
    }
}

/// The Kafka error for a metadata proposal that failed for a reason other than
/// its records being rejected: retriable NOT_CONTROLLER while the quorum has no
/// leader (the client retries, possibly elsewhere), else KAFKA_STORAGE_ERROR.
pub fn metadata_error(e: &crate::metadata::store::Error) -> crate::protocol::ResponseError {
    if e.is_retriable() { crate::protocol::ResponseError::NotController } else { crate::protocol::ResponseError::KafkaStorageError }
}

pub fn str_bytes(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// The log of a partition a request names, checked the way every partition-level
/// API checks it: the topic and partition exist, and the client's idea of the
/// leader epoch (-1 = none) is current. Returns the log and the leader epoch, or
/// the Kafka error code for the partition's `error_code`.
pub fn leader_partition(
    broker: &Arc<Broker>,
    topic: Option<&Arc<crate::metadata::TopicImage>>,
    partition: i32,
    current_leader_epoch: i32,
) -> Result<(Arc<crate::log::manager::Partition>, i32), i16> {
    leader_partition_state(broker, topic, partition, current_leader_epoch).map(|(log, epoch, _)| (log, epoch))
}

/// [`leader_partition`], also returning the partition's leader state (followers, ISR).
/// A partition this node does not lead (or has not taken the lead of yet) answers
/// NOT_LEADER_OR_FOLLOWER: the client refreshes its metadata and goes to the leader.
pub fn leader_partition_state(
    broker: &Arc<Broker>,
    topic: Option<&Arc<crate::metadata::TopicImage>>,
    partition: i32,
    current_leader_epoch: i32,
) -> Result<(Arc<crate::log::manager::Partition>, i32, Arc<crate::replication::LeaderState>), i16> {
    let topic = topic.ok_or(ResponseError::UnknownTopicOrPartition.code())?;
    let Some(p) = usize::try_from(partition).ok().and_then(|i| topic.partitions.get(i)) else {
        return Err(ResponseError::UnknownTopicOrPartition.code());
    };
    let epoch = p.leader_epoch;
    if current_leader_epoch >= 0 && current_leader_epoch != epoch {
        let e = if current_leader_epoch > epoch { ResponseError::UnknownLeaderEpoch } else { ResponseError::FencedLeaderEpoch };
        return Err(e.code());
    }
    if p.leader != broker.config.node_id {
        return Err(ResponseError::NotLeaderOrFollower.code());
    }
    // The image says we lead: make sure the replica manager has caught up with it.
    broker.replicas.ensure_current(broker);
    let state = broker.replicas.leader_state(topic.id, partition).filter(|s| s.epoch == epoch).ok_or(ResponseError::NotLeaderOrFollower.code())?;
    let log = match broker.partition(topic, partition) {
        Ok(Some(log)) => log,
        Ok(None) => return Err(ResponseError::UnknownTopicOrPartition.code()),
        Err(e) => return Err(log_error_code(&e)),
    };
    Ok((log, epoch, state))
}

/// Kafka error code of a log error, for a partition-level `error_code`.
pub fn log_error_code(e: &crate::log::Error) -> i16 {
    use crate::log::Error as E;
    use crate::protocol::records::RecordsError as R;
    let err = match e {
        E::OffsetOutOfRange { .. } => ResponseError::OffsetOutOfRange,
        E::OutOfOrderSequence { .. } => ResponseError::OutOfOrderSequenceNumber,
        E::InvalidProducerEpoch { .. } => ResponseError::InvalidProducerEpoch,
        E::UnknownProducerId { .. } => ResponseError::UnknownProducerId,
        E::CoordinatorFenced { .. } => ResponseError::TransactionCoordinatorFenced,
        E::Records(R::MessageTooLarge { .. }) => ResponseError::MessageTooLarge,
        E::Records(R::CorruptMessage { .. }) => ResponseError::CorruptMessage,
        E::Records(R::InvalidRecord { .. }) => ResponseError::InvalidRecord,
        E::Records(R::UnsupportedMagic(_)) => ResponseError::UnsupportedForMessageFormat,
        E::Io(_) | E::DiskFull { .. } | E::Corrupt { .. } | E::CleanerAborted => ResponseError::KafkaStorageError,
        // A follower append below its log end: a replication bug, not a client error.
        E::NonMonotonicOffset { .. } => ResponseError::UnknownServerError,
    };
    err.code()
}
