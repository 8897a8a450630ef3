//! ConsumerGroupHeartbeat (68), KIP-848: join (member epoch 0), heartbeat, leave
//! (-1; a static member's temporary leave, -2). The broker runs the assignor and
//! answers each member with its assignment as it may consume it now; see
//! `group/consumer.rs`. Topic ids on the wire become names here, so the group
//! state never names a protocol type.
//!
//! v0 members may come without an id (the broker makes one); from v1 the client
//! generates its id, so an empty one is INVALID_REQUEST.

use std::time::Duration;

use kafka_protocol::messages::consumer_group_heartbeat_response::{Assignment as WireAssignment, TopicPartitions};
use kafka_protocol::messages::{ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse};

use super::{RequestContext, str_bytes};
use crate::group::assignor::Assignment;
use crate::group::consumer::{Heartbeat, regex_supported};
use crate::group::{Error, consumer_io::TopicView};
use crate::metadata::Image;

pub async fn handle(ctx: &RequestContext, req: ConsumerGroupHeartbeatRequest) -> ConsumerGroupHeartbeatResponse {
    let image = ctx.broker.image();
    match answer(ctx, &image, req) {
        Ok(r) => r,
        Err(e) => ConsumerGroupHeartbeatResponse::default()
            .with_error_code(e.code())
            .with_error_message(Some(str_bytes(&e.to_string())))
            .with_member_epoch(-1),
    }
}

fn answer(ctx: &RequestContext, image: &Image, req: ConsumerGroupHeartbeatRequest) -> Result<ConsumerGroupHeartbeatResponse, Error> {
    let hb = to_heartbeat(ctx, image, &req)?;
    let all_topics: Vec<String> = image.topics.keys().cloned().collect();
    let partitions_of = |t: &str| image.topic(t).map(|t| t.partitions.len() as i32);
    let topics = TopicView { partitions_of: &partitions_of, all_topics: &all_topics };
    let a = ctx.broker.groups.consumer_heartbeat(&req.group_id, hb, topics)?;
    Ok(ConsumerGroupHeartbeatResponse::default()
        .with_member_id(Some(str_bytes(&a.member_id)))
        .with_member_epoch(a.member_epoch)
        .with_heartbeat_interval_ms(a.heartbeat_interval.as_millis() as i32)
        .with_assignment(a.assignment.map(|x| to_wire(image, &x))))
}

fn to_heartbeat(ctx: &RequestContext, image: &Image, req: &ConsumerGroupHeartbeatRequest) -> Result<Heartbeat, Error> {
    let mut member_id = req.member_id.to_string();
    if member_id.is_empty() {
        if ctx.api_version >= 1 || req.member_epoch != 0 {
            return Err(if req.member_epoch == 0 { Error::InvalidRequest } else { Error::UnknownMemberId });
        }
        member_id = uuid::Uuid::new_v4().simple().to_string();
    }
    let regex = req.subscribed_topic_regex.as_ref().map(|r| r.to_string());
    if regex.as_deref().is_some_and(|r| !r.is_empty() && !regex_supported(r)) {
        return Err(Error::InvalidRequest);
    }
    let owned = req.topic_partitions.as_ref().map(|tps| {
        let mut a = Assignment::new();
        for tp in tps {
            // Partitions of topics deleted since are owned no more.
            if let Some(name) = image.topic_names_by_id.get(&tp.topic_id) {
                a.entry(name.clone()).or_default().extend(tp.partitions.iter().copied());
            }
        }
        a.retain(|_, ps| !ps.is_empty());
        a
    });
    Ok(Heartbeat {
        member_id,
        member_epoch: req.member_epoch,
        instance_id: req.instance_id.as_ref().map(|s| s.to_string()),
        rack_id: req.rack_id.as_ref().map(|s| s.to_string()),
        rebalance_timeout: (req.rebalance_timeout_ms > 0).then(|| Duration::from_millis(req.rebalance_timeout_ms as u64)),
        topics: req.subscribed_topic_names.as_ref().map(|ts| ts.iter().map(|t| t.to_string()).collect()),
        regex,
        server_assignor: req.server_assignor.as_ref().map(|s| s.to_string()),
        owned,
        client_id: ctx.client_id.clone().unwrap_or_default(),
        client_host: ctx.client_host.clone(),
    })
}

fn to_wire(image: &Image, a: &Assignment) -> WireAssignment {
    let topic_partitions = a
        .iter()
        .filter_map(|(t, ps)| {
            let id = image.topic(t)?.id;
            Some(TopicPartitions::default().with_topic_id(id).with_partitions(ps.iter().copied().collect()))
        })
        .collect();
    WireAssignment::default().with_topic_partitions(topic_partitions)
}
