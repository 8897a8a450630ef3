//! ConsumerGroupDescribe (69), KIP-848: each consumer group with its epochs, its
//! assignor, and per member its subscription, current assignment and target. A
//! classic group or an unknown id is GROUP_ID_NOT_FOUND, as Kafka answers.

use kafka_protocol::messages::consumer_group_describe_response::{Assignment as WireAssignment, DescribedGroup, Member, TopicPartitions};
use kafka_protocol::messages::{ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse, TopicName};

use super::{RequestContext, str_bytes};
use crate::group::assignor::Assignment;
use crate::group::consumer::ConsumerMember;
use crate::metadata::Image;

/// Kafka's "operations not requested" marker.
const NO_AUTHORIZED_OPERATIONS: i32 = i32::MIN;

pub async fn handle(ctx: &RequestContext, req: ConsumerGroupDescribeRequest) -> ConsumerGroupDescribeResponse {
    let image = ctx.broker.image();
    let groups = req
        .group_ids
        .iter()
        .map(|id| {
            let base = DescribedGroup::default().with_group_id(id.clone()).with_authorized_operations(NO_AUTHORIZED_OPERATIONS);
            match ctx.broker.groups.describe_consumer_group(id) {
                Err(e) => base.with_error_code(e.code()).with_error_message(Some(str_bytes(&e.to_string()))),
                Ok(d) => base
                    .with_group_state(str_bytes(d.state))
                    .with_group_epoch(d.group_epoch)
                    .with_assignment_epoch(d.assignment_epoch)
                    .with_assignor_name(str_bytes(&d.assignor))
                    .with_members(d.members.iter().map(|(m, target)| member(&image, m, target)).collect()),
            }
        })
        .collect();
    ConsumerGroupDescribeResponse::default().with_groups(groups)
}

fn member(image: &Image, m: &ConsumerMember, target: &Assignment) -> Member {
    Member::default()
        .with_member_id(str_bytes(&m.id))
        .with_instance_id(m.instance_id.as_deref().map(str_bytes))
        .with_rack_id(m.rack_id.as_deref().map(str_bytes))
        .with_member_epoch(m.progress.epoch)
        .with_client_id(str_bytes(&m.client_id))
        .with_client_host(str_bytes(&m.client_host))
        .with_subscribed_topic_names(m.topics.iter().map(|t| TopicName(str_bytes(t))).collect())
        .with_subscribed_topic_regex(m.regex.as_deref().map(str_bytes))
        .with_assignment(wire(image, &m.progress.assigned))
        .with_target_assignment(wire(image, target))
        // 1: a member speaking the consumer protocol (0 would be a classic member).
        .with_member_type(1)
}

fn wire(image: &Image, a: &Assignment) -> WireAssignment {
    let tps = a
        .iter()
        .filter_map(|(t, ps)| {
            let id = image.topic(t)?.id;
            Some(TopicPartitions::default().with_topic_id(id).with_topic_name(TopicName(str_bytes(t))).with_partitions(ps.iter().copied().collect()))
        })
        .collect();
    WireAssignment::default().with_topic_partitions(tps)
}
