//! TxnOffsetCommit (28): offsets committed inside a transaction, sent to the
//! group coordinator. They are staged in the group's log for the producer
//! (`group::txn_marker`) and take effect when the transaction's COMMIT marker
//! reaches that partition (dropped at ABORT). Partitions of unknown topics get UNKNOWN_TOPIC_OR_PARTITION; metadata
//! over `offset.metadata.max.bytes`, OFFSET_METADATA_TOO_LARGE. Versions 0–4 (v5
//! belongs to transaction version 2).

use kafka_protocol::messages::txn_offset_commit_response::{TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic};
use kafka_protocol::messages::{TopicName, TxnOffsetCommitRequest, TxnOffsetCommitResponse};

use super::RequestContext;
use crate::protocol::ResponseError;
use crate::group::Committed;

/// The first version that knows PRODUCER_FENCED (KIP-588).
const FENCED_FROM: i16 = 3;

/// (partition index, Some(error) decided for the partition alone, or None: the
/// outcome of staging the request's offsets applies).
type PartitionOutcome = (i32, Option<i16>);

pub async fn handle(ctx: &RequestContext, req: TxnOffsetCommitRequest) -> TxnOffsetCommitResponse {
    let v = ctx.api_version;
    let image = ctx.broker.image();
    let max_meta = ctx.broker.groups.offset_metadata_max_bytes;
    let mut staged = Vec::new();
    let mut layout: Vec<(TopicName, Vec<PartitionOutcome>)> = Vec::new();
    for t in &req.topics {
        let topic = image.topic(&t.name);
        let mut parts = Vec::with_capacity(t.partitions.len());
        for p in &t.partitions {
            let meta = p.committed_metadata.as_ref().map(|m| m.to_string()).unwrap_or_default();
            let err = if req.group_id.is_empty() {
                Some(ResponseError::InvalidGroupId.code())
            } else if topic.is_none_or(|t| p.partition_index < 0 || p.partition_index as usize >= t.partitions.len()) {
                Some(ResponseError::UnknownTopicOrPartition.code())
            } else if meta.len() > max_meta {
                Some(ResponseError::OffsetMetadataTooLarge.code())
            } else {
                let leader_epoch = if v >= 2 { p.committed_leader_epoch } else { -1 };
                let c = Committed { offset: p.committed_offset, leader_epoch, metadata: meta, commit_timestamp_ms: crate::log::system_time_ms() };
                staged.push(((t.name.to_string(), p.partition_index), c));
                None
            };
            parts.push((p.partition_index, err));
        }
        layout.push((t.name.clone(), parts));
    }
    let code = if staged.is_empty() {
        0
    } else {
        // When the transaction is coordinated here too (its shard loaded here), its
        // state is checked first (fenced producer, group not added); elsewhere the
        // producer is trusted, as Kafka's group coordinator does.
        let checked = if ctx.broker.txns.get(&req.transactional_id).is_some() {
            match ctx.broker.txns.check_offset_commit(&req.transactional_id, req.producer_id.0, req.producer_epoch, &req.group_id) {
                // Its shard is moving away: not ours to check (nor a group error).
                Err(crate::txn::Error::NotCoordinator | crate::txn::Error::CoordinatorLoadInProgress) => Ok(()),
                r => r.map_err(|e| e.code_for(v, FENCED_FROM)),
            }
        } else {
            Ok(())
        };
        match checked {
            Err(code) => code,
            Ok(()) => match ctx.broker.groups.stage_txn_offsets(&req.group_id, req.producer_id.0, staged) {
                Err(e) => e.code(),
                Ok(done) => done.await.map_or_else(|e| e.code(), |_| 0),
            },
        }
    };
    let topics = layout
        .into_iter()
        .map(|(name, parts)| {
            let partitions = parts
                .into_iter()
                .map(|(index, err)| TxnOffsetCommitResponsePartition::default().with_partition_index(index).with_error_code(err.unwrap_or(code)))
                .collect();
            TxnOffsetCommitResponseTopic::default().with_name(name).with_partitions(partitions)
        })
        .collect();
    TxnOffsetCommitResponse::default().with_topics(topics)
}
