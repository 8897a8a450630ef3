//! OffsetFetch (9): committed offsets of one group (v1-7) or several (v8+). No
//! commit is offset -1 with empty metadata; with no topic list, every committed
//! partition of topics that still exist. `require_stable` (v7+) reports a commit
//! still on its way to disk, or staged by an unfinished transaction, as
//! UNSTABLE_OFFSET_COMMIT.

use std::collections::BTreeMap;

use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions, OffsetFetchResponseTopic,
    OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{OffsetFetchRequest, OffsetFetchResponse, TopicName};

use super::{RequestContext, str_bytes};
use crate::group::{Committed, Tp};
use crate::metadata::Image;
use crate::protocol::ResponseError;

/// One partition's answer: (offset, leader epoch, metadata, error).
type Answer = (i64, i32, String, i16);

fn answers(ctx: &RequestContext, image: &Image, group: &str, asked: Option<Vec<Tp>>, stable: bool) -> BTreeMap<String, Vec<(i32, Answer)>> {
    let all = asked.is_none();
    let mut out: BTreeMap<String, Vec<(i32, Answer)>> = BTreeMap::new();
    for ((topic, p), r) in ctx.broker.groups.fetch_offsets(group, asked, stable) {
        let exists = image.topic(&topic).is_some();
        if all && !exists {
            continue; // offsets of deleted topics are not listed
        }
        let a = match r {
            Err(()) => (-1, -1, String::new(), ResponseError::UnstableOffsetCommit.code()),
            Ok(Some(Committed { offset, leader_epoch, metadata, .. })) if exists => (offset, leader_epoch, metadata, 0),
            Ok(_) => (-1, -1, String::new(), 0),
        };
        // Offsets staged by a transaction still open or completing are not stable yet.
        out.entry(topic).or_default().push((p, a));
    }
    out
}

pub async fn handle(ctx: &RequestContext, req: OffsetFetchRequest) -> OffsetFetchResponse {
    let v = ctx.api_version;
    let image = ctx.broker.image();
    let stable = v >= 7 && req.require_stable;
    if v >= 8 {
        return fetch_v8_plus(ctx, &image, &req, stable);
    }
    let flat = |topics: &[(String, Vec<i32>)]| -> Vec<Tp> {
        topics.iter().flat_map(|(t, ps)| ps.iter().map(move |p| (t.clone(), *p))).collect()
    };
    if let Err(e) = ctx.broker.groups.check(&req.group_id) {
        return v1_error(v, &req, e.code());
    }
    let asked = req.topics.as_ref().map(|ts| flat(&ts.iter().map(|t| (t.name.to_string(), t.partition_indexes.clone())).collect::<Vec<_>>()));
    let topics = answers(ctx, &image, &req.group_id, asked, stable)
        .into_iter()
        .map(|(name, parts)| {
            let partitions = parts
                .into_iter()
                .map(|(p, (o, e, m, err))| {
                    OffsetFetchResponsePartition::default()
                        .with_partition_index(p)
                        .with_committed_offset(o)
                        .with_committed_leader_epoch(if v >= 5 { e } else { -1 })
                        .with_metadata(Some(str_bytes(&m)))
                        .with_error_code(err)
                })
                .collect();
            OffsetFetchResponseTopic::default().with_name(TopicName(str_bytes(&name))).with_partitions(partitions)
        })
        .collect();
    OffsetFetchResponse::default().with_topics(topics)
}

/// v9 (KIP-848): a member of a consumer group fetches with its id and epoch, which
/// must be current (UNKNOWN_MEMBER_ID / STALE_MEMBER_EPOCH for the whole group).
/// A group-level error (NOT_COORDINATOR, ...): top-level from v2; v0-1 have no such
/// field, so every asked partition carries it.
fn v1_error(v: i16, req: &OffsetFetchRequest, code: i16) -> OffsetFetchResponse {
    if v >= 2 {
        return OffsetFetchResponse::default().with_error_code(code);
    }
    let topics = req
        .topics
        .iter()
        .flatten()
        .map(|t| {
            let partitions = t
                .partition_indexes
                .iter()
                .map(|p| {
                    OffsetFetchResponsePartition::default()
                        .with_partition_index(*p)
                        .with_committed_offset(-1)
                        .with_metadata(Some(str_bytes("")))
                        .with_error_code(code)
                })
                .collect();
            OffsetFetchResponseTopic::default().with_name(t.name.clone()).with_partitions(partitions)
        })
        .collect();
    OffsetFetchResponse::default().with_topics(topics)
}

fn member_check(ctx: &RequestContext, v: i16, g: &kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestGroup) -> i16 {
    if v < 9 {
        return crate::group::code_of(ctx.broker.groups.check(&g.group_id).err());
    }
    let member = g.member_id.as_ref().map(|m| m.to_string());
    crate::group::code_of(ctx.broker.groups.check_fetch_member(&g.group_id, member.as_deref(), g.member_epoch).err())
}

fn fetch_v8_plus(ctx: &RequestContext, image: &Image, req: &OffsetFetchRequest, stable: bool) -> OffsetFetchResponse {
    let v = ctx.api_version;
    let groups = req
        .groups
        .iter()
        .map(|g| {
            let code = member_check(ctx, v, g);
            if code != 0 {
                return OffsetFetchResponseGroup::default().with_group_id(g.group_id.clone()).with_error_code(code);
            }
            let asked = g.topics.as_ref().map(|ts| ts.iter().flat_map(|t| t.partition_indexes.iter().map(move |p| (t.name.to_string(), *p))).collect());
            let topics = answers(ctx, image, &g.group_id, asked, stable)
                .into_iter()
                .map(|(name, parts)| {
                    let partitions = parts
                        .into_iter()
                        .map(|(p, (o, e, m, err))| {
                            OffsetFetchResponsePartitions::default()
                                .with_partition_index(p)
                                .with_committed_offset(o)
                                .with_committed_leader_epoch(e)
                                .with_metadata(Some(str_bytes(&m)))
                                .with_error_code(err)
                        })
                        .collect();
                    OffsetFetchResponseTopics::default().with_name(TopicName(str_bytes(&name))).with_partitions(partitions)
                })
                .collect();
            OffsetFetchResponseGroup::default().with_group_id(g.group_id.clone()).with_topics(topics)
        })
        .collect();
    OffsetFetchResponse::default().with_groups(groups)
}

