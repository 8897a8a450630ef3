//! OffsetCommit (8): checks the member and generation (a simple commit, generation
//! -1, is allowed while the group is Empty), appends to the coordinator log and
//! answers only once the commit is durable. Topics that do not exist get
//! UNKNOWN_TOPIC_OR_PARTITION; metadata over `offset.metadata.max.bytes`,
//! OFFSET_METADATA_TOO_LARGE.

use std::future::Future;

use kafka_protocol::messages::offset_commit_response::{OffsetCommitResponsePartition, OffsetCommitResponseTopic};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse};

use super::RequestContext;
use crate::group::{Committed, Error, MemberRef, Tp};
use crate::protocol::ResponseError;

/// (partition index, Ok(index into the commits sent) or Err(error code)).
type PartitionOutcome = (i32, Result<usize, i16>);

pub fn handle(ctx: &RequestContext, req: OffsetCommitRequest) -> impl Future<Output = OffsetCommitResponse> + Send + 'static {
    let v = ctx.api_version;
    let image = ctx.broker.image();
    let max_meta = ctx.broker.groups.offset_metadata_max_bytes;
    let now_ms = crate::log::system_time_ms();
    let mut layout: Vec<(OffsetCommitResponseTopic, Vec<PartitionOutcome>)> = Vec::new();
    let mut commits: Vec<(Tp, Committed)> = Vec::new();
    for t in &req.topics {
        let topic = image.topic(&t.name);
        let mut parts = Vec::with_capacity(t.partitions.len());
        for p in &t.partitions {
            let meta = p.committed_metadata.as_ref().map(|m| m.to_string()).unwrap_or_default();
            let r = if req.group_id.is_empty() {
                Err(ResponseError::InvalidGroupId.code())
            } else if topic.is_none_or(|t| p.partition_index < 0 || p.partition_index as usize >= t.partitions.len()) {
                Err(ResponseError::UnknownTopicOrPartition.code())
            } else if meta.len() > max_meta {
                Err(ResponseError::OffsetMetadataTooLarge.code())
            } else {
                let epoch = if v >= 6 { p.committed_leader_epoch } else { -1 };
                let c = Committed { offset: p.committed_offset, leader_epoch: epoch, metadata: meta, commit_timestamp_ms: now_ms };
                commits.push(((t.name.to_string(), p.partition_index), c));
                Ok(commits.len() - 1)
            };
            parts.push((p.partition_index, r));
        }
        layout.push((OffsetCommitResponseTopic::default().with_name(t.name.clone()), parts));
    }
    let instance_id = if v >= 7 { req.group_instance_id.as_ref().map(|s| s.to_string()) } else { None };
    let who = MemberRef { member_id: &req.member_id, instance_id: instance_id.as_deref(), generation: req.generation_id_or_member_epoch };
    let pending = if commits.is_empty() { Ok(None) } else { ctx.broker.groups.commit_offsets(&req.group_id, who, commits).map(Some) };
    async move {
        let outcome: Result<(), Error> = match pending {
            Ok(Some(fut)) => fut.await,
            Ok(None) => Ok(()),
            Err(e) => Err(e),
        };
        let code = crate::group::code_of(outcome.err());
        let topics = layout
            .into_iter()
            .map(|(mut t, parts)| {
                t.partitions = parts
                    .into_iter()
                    .map(|(index, r)| {
                        OffsetCommitResponsePartition::default().with_partition_index(index).with_error_code(r.map_or_else(|c| c, |_| code))
                    })
                    .collect();
                t
            })
            .collect();
        OffsetCommitResponse::default().with_topics(topics)
    }
}
