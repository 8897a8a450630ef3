//! DescribeTopicPartitions (75, KIP-966): topics with their partitions, paged. The Java
//! Admin client's `describeTopics` by name (and so `kafka-topics --describe`) asks this
//! first when the broker offers it, and falls back to Metadata otherwise.
//!
//! Topics go out in name order, each with its partitions from the cursor on, until
//! `ResponsePartitionLimit` partitions are in the response; `NextCursor` then names
//! where the next request starts (the middle of a topic, or the start of the next one).
//! With no topics asked for, every topic is described.

use std::collections::BTreeSet;

use kafka_protocol::messages::describe_topic_partitions_response::{
    Cursor, DescribeTopicPartitionsResponsePartition, DescribeTopicPartitionsResponseTopic,
};
use kafka_protocol::messages::{BrokerId, DescribeTopicPartitionsRequest, DescribeTopicPartitionsResponse, TopicName};

use super::{RequestContext, str_bytes};
use crate::metadata::{Image, TopicImage};
use crate::protocol::ResponseError;

/// Kafka's `max.request.partition.size.limit` default: the most partitions one
/// response holds, whatever the request asks for.
pub const MAX_PARTITIONS_PER_RESPONSE: usize = 2000;

pub async fn handle(ctx: &RequestContext, req: DescribeTopicPartitionsRequest) -> DescribeTopicPartitionsResponse {
    let image = ctx.broker.image();
    describe(&image, req)
}

fn describe(image: &Image, req: DescribeTopicPartitionsRequest) -> DescribeTopicPartitionsResponse {
    // A limit of zero or less would page forever without progress: at least one.
    let limit = usize::try_from(req.response_partition_limit).unwrap_or(0).clamp(1, MAX_PARTITIONS_PER_RESPONSE);
    let (cursor_topic, cursor_partition) = match &req.cursor {
        Some(c) => (c.topic_name.0.to_string(), usize::try_from(c.partition_index).unwrap_or(0)),
        None => (String::new(), 0),
    };
    let names: BTreeSet<String> = if req.topics.is_empty() {
        image.topics.keys().cloned().collect()
    } else {
        req.topics.iter().map(|t| t.name.0.to_string()).collect()
    };
    let mut resp = DescribeTopicPartitionsResponse::default();
    if !req.topics.is_empty() && req.cursor.is_some() && !names.contains(&cursor_topic) {
        // Kafka refuses a cursor outside the topics asked for.
        resp.topics = names.iter().map(|n| unknown(n, ResponseError::InvalidRequest)).collect();
        return resp;
    }
    let mut remaining = limit;
    for name in names.range(cursor_topic.clone()..) {
        if remaining == 0 {
            // Everything before this topic is complete: the next page starts here.
            resp.next_cursor = Some(Cursor::default().with_topic_name(TopicName(str_bytes(name))).with_partition_index(0));
            break;
        }
        let Some(t) = image.topic(name) else {
            resp.topics.push(unknown(name, ResponseError::UnknownTopicOrPartition));
            continue;
        };
        let from = if *name == cursor_topic { cursor_partition.min(t.partitions.len()) } else { 0 };
        let upto = t.partitions.len().min(from + remaining);
        resp.topics.push(topic_entry(image, t, from, upto));
        remaining -= upto - from;
        if upto < t.partitions.len() {
            resp.next_cursor = Some(Cursor::default().with_topic_name(TopicName(str_bytes(name))).with_partition_index(upto as i32));
            break;
        }
    }
    resp
}

fn unknown(name: &str, e: ResponseError) -> DescribeTopicPartitionsResponseTopic {
    DescribeTopicPartitionsResponseTopic::default().with_name(Some(TopicName(str_bytes(name)))).with_error_code(e.code())
}

/// Partitions `from..upto` of `t`, as Metadata describes them: a partition without a
/// leader answers LEADER_NOT_AVAILABLE; replicas on fenced (or unknown) brokers are
/// offline. No eligible leader replicas (KIP-966's ELR is not kept): empty lists.
fn topic_entry(image: &Image, t: &TopicImage, from: usize, upto: usize) -> DescribeTopicPartitionsResponseTopic {
    let partitions = t.partitions[from..upto]
        .iter()
        .zip(from..)
        .map(|(p, i)| {
            let ids = |v: &[i32]| v.iter().map(|&r| BrokerId(r)).collect::<Vec<_>>();
            let mut e = DescribeTopicPartitionsResponsePartition::default()
                .with_partition_index(i as i32)
                .with_leader_id(BrokerId(p.leader))
                .with_leader_epoch(p.leader_epoch)
                .with_replica_nodes(ids(&p.replicas))
                .with_isr_nodes(ids(&p.isr))
                .with_eligible_leader_replicas(Some(Vec::new()))
                .with_last_known_elr(Some(Vec::new()))
                .with_offline_replicas(p.replicas.iter().filter(|&&r| !image.is_live(r)).map(|&r| BrokerId(r)).collect());
            if p.leader < 0 {
                e.error_code = ResponseError::LeaderNotAvailable.code();
            }
            e
        })
        .collect();
    DescribeTopicPartitionsResponseTopic::default()
        .with_name(Some(TopicName(str_bytes(&t.name))))
        .with_topic_id(t.id)
        .with_is_internal(crate::coordinator::is_internal(&t.name))
        .with_partitions(partitions)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::describe_topic_partitions_request::{Cursor as ReqCursor, TopicRequest};

    fn image(topics: &[(&str, usize)]) -> Image {
        let mut img = Image::default();
        for (name, n) in topics {
            let p = crate::metadata::PartitionImage { leader: 1, replicas: vec![1], isr: vec![1], ..Default::default() };
            let t = TopicImage { name: name.to_string(), id: uuid::Uuid::new_v4(), partitions: vec![p; *n], configs: Default::default() };
            img.topics.insert(name.to_string(), std::sync::Arc::new(t));
        }
        img
    }

    fn req(topics: &[&str], limit: i32, cursor: Option<(&str, i32)>) -> DescribeTopicPartitionsRequest {
        DescribeTopicPartitionsRequest::default()
            .with_topics(topics.iter().map(|t| TopicRequest::default().with_name(TopicName(str_bytes(t)))).collect())
            .with_response_partition_limit(limit)
            .with_cursor(cursor.map(|(t, p)| ReqCursor::default().with_topic_name(TopicName(str_bytes(t))).with_partition_index(p)))
    }

    /// (topic, partition indexes, error) per topic, and the next cursor.
    fn summary(r: &DescribeTopicPartitionsResponse) -> (Vec<(String, Vec<i32>, i16)>, Option<(String, i32)>) {
        let topics = r
            .topics
            .iter()
            .map(|t| (t.name.as_ref().unwrap().0.to_string(), t.partitions.iter().map(|p| p.partition_index).collect(), t.error_code))
            .collect();
        (topics, r.next_cursor.as_ref().map(|c| (c.topic_name.0.to_string(), c.partition_index)))
    }

    #[test]
    fn pages_through_every_topic_in_name_order() {
        let img = image(&[("b", 3), ("a", 2), ("c", 1)]);
        let (t, next) = summary(&describe(&img, req(&[], 4, None)));
        assert_eq!(t, vec![("a".into(), vec![0, 1], 0), ("b".into(), vec![0, 1], 0)]);
        assert_eq!(next, Some(("b".into(), 2)));
        let (t, next) = summary(&describe(&img, req(&[], 4, Some(("b", 2)))));
        assert_eq!(t, vec![("b".into(), vec![2], 0), ("c".into(), vec![0], 0)]);
        assert_eq!(next, None);
        // A page that ends exactly at a topic's end points at the next topic.
        let (t, next) = summary(&describe(&img, req(&[], 2, None)));
        assert_eq!(t, vec![("a".into(), vec![0, 1], 0)]);
        assert_eq!(next, Some(("b".into(), 0)));
    }

    #[test]
    fn named_topics_unknown_ones_and_bad_cursors() {
        let img = image(&[("a", 2), ("b", 1)]);
        let (t, next) = summary(&describe(&img, req(&["b", "zz", "a", "b"], 2000, None)));
        let unknown = ResponseError::UnknownTopicOrPartition.code();
        assert_eq!(t, vec![("a".into(), vec![0, 1], 0), ("b".into(), vec![0], 0), ("zz".into(), vec![], unknown)]);
        assert_eq!(next, None);
        let (t, _) = summary(&describe(&img, req(&["a"], 2000, Some(("b", 0)))));
        assert_eq!(t, vec![("a".into(), vec![], ResponseError::InvalidRequest.code())]);
        // Zero or negative limits still make progress; huge ones are capped.
        let (t, next) = summary(&describe(&img, req(&["a"], 0, None)));
        assert_eq!((t, next), (vec![("a".into(), vec![0], 0)], Some(("a".into(), 1))));
        let big = image(&[("x", 2500)]);
        let r = describe(&big, req(&[], i32::MAX, None));
        assert_eq!(r.topics[0].partitions.len(), MAX_PARTITIONS_PER_RESPONSE);
        assert_eq!(summary(&r).1, Some(("x".into(), 2000)));
        // A cursor past a topic's end yields none of its partitions, and no loop.
        let (t, next) = summary(&describe(&img, req(&[], 10, Some(("a", 7)))));
        assert_eq!((t, next), (vec![("a".into(), vec![], 0), ("b".into(), vec![0], 0)], None));
    }
}
