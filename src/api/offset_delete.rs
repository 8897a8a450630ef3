//! OffsetDelete (47): drop committed offsets of topics the group no longer
//! subscribes to (GROUP_SUBSCRIBED_TO_TOPIC otherwise).

use kafka_protocol::messages::offset_delete_response::{OffsetDeleteResponsePartition, OffsetDeleteResponseTopic};
use kafka_protocol::messages::{OffsetDeleteRequest, OffsetDeleteResponse};

use super::RequestContext;
use crate::protocol::ResponseError;

pub async fn handle(ctx: &RequestContext, req: OffsetDeleteRequest) -> OffsetDeleteResponse {
    let image = ctx.broker.image();
    let mut known = Vec::new();
    let mut unknown = Vec::new();
    for t in &req.topics {
        let topic = image.topic(&t.name);
        for p in &t.partitions {
            let tp = (t.name.to_string(), p.partition_index);
            if topic.is_some_and(|t| p.partition_index >= 0 && (p.partition_index as usize) < t.partitions.len()) {
                known.push(tp);
            } else {
                unknown.push(tp);
            }
        }
    }
    let results = match ctx.broker.groups.delete_offsets(&req.group_id, known) {
        Ok(r) => r,
        Err(e) => return OffsetDeleteResponse::default().with_error_code(e.code()),
    };
    let mut topics: Vec<OffsetDeleteResponseTopic> = Vec::new();
    let all = results
        .into_iter()
        .map(|(tp, r)| (tp, crate::group::code_of(r.err())))
        .chain(unknown.into_iter().map(|tp| (tp, ResponseError::UnknownTopicOrPartition.code())));
    for ((topic, p), code) in all {
        let part = OffsetDeleteResponsePartition::default().with_partition_index(p).with_error_code(code);
        match topics.iter_mut().find(|t| *t.name == *topic) {
            Some(t) => t.partitions.push(part),
            None => topics.push(
                OffsetDeleteResponseTopic::default().with_name(kafka_protocol::messages::TopicName(super::str_bytes(&topic))).with_partitions(vec![part]),
            ),
        }
    }
    OffsetDeleteResponse::default().with_topics(topics)
}
