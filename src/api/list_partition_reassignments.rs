//! ListPartitionReassignments (46, KIP-455): the reassignments in progress, from
//! the image (`adding_replicas` / `removing_replicas` of each partition), for the
//! partitions named or for all. Partitions that are not moving, or do not exist,
//! are left out, as Kafka's controller does.

use kafka_protocol::messages::list_partition_reassignments_response::{OngoingPartitionReassignment, OngoingTopicReassignment};
use kafka_protocol::messages::{BrokerId, ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse, TopicName};

use super::{RequestContext, str_bytes};
use crate::metadata::{PartitionImage, TopicImage};

pub async fn handle(ctx: &RequestContext, req: ListPartitionReassignmentsRequest) -> ListPartitionReassignmentsResponse {
    let image = ctx.broker.image();
    let topics: Vec<OngoingTopicReassignment> = match &req.topics {
        None => image.topics.values().filter_map(|t| ongoing(t, 0..t.partitions.len() as i32)).collect(),
        Some(asked) => asked.iter().filter_map(|a| image.topic(&a.name.0).and_then(|t| ongoing(t, a.partition_indexes.iter().copied()))).collect(),
    };
    ListPartitionReassignmentsResponse::default().with_topics(topics)
}

/// The reassignments in progress among `partitions` of `t`, None when there are none.
fn ongoing(t: &TopicImage, partitions: impl Iterator<Item = i32>) -> Option<OngoingTopicReassignment> {
    let ids = |v: &[i32]| v.iter().map(|&b| BrokerId(b)).collect::<Vec<_>>();
    let moving: Vec<OngoingPartitionReassignment> = partitions
        .filter_map(|i| usize::try_from(i).ok().and_then(|u| t.partitions.get(u)).filter(|p| p.is_reassigning()).map(|p: &PartitionImage| (i, p)))
        .map(|(i, p)| {
            OngoingPartitionReassignment::default()
                .with_partition_index(i)
                .with_replicas(ids(&p.replicas))
                .with_adding_replicas(ids(&p.adding_replicas))
                .with_removing_replicas(ids(&p.removing_replicas))
        })
        .collect();
    (!moving.is_empty()).then(|| OngoingTopicReassignment::default().with_name(TopicName(str_bytes(&t.name))).with_partitions(moving))
}
