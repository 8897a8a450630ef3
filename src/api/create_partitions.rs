//! CreatePartitions (37): grow a topic's partition count (never shrink).

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};

use super::{RequestContext, str_bytes, topics};
use crate::metadata::MetadataRecord;
use crate::metadata::image::ApplyError;
use crate::protocol::ResponseError;

pub async fn handle(ctx: &RequestContext, req: CreatePartitionsRequest) -> CreatePartitionsResponse {
    let mut results = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let name = t.name.0.to_string();
        let mut r = CreatePartitionsTopicResult::default().with_name(t.name.clone());
        let assignments: Option<Vec<Vec<i32>>> = t.assignments.as_ref().map(|a| a.iter().map(|a| a.broker_ids.iter().map(|b| b.0).collect()).collect());
        if let Err((e, msg)) = grow(ctx, &name, t.count, assignments, req.validate_only).await {
            r.error_code = e.code();
            r.error_message = Some(str_bytes(&msg));
        }
        results.push(r);
    }
    CreatePartitionsResponse::default().with_results(results)
}

/// New partitions take the replication factor of partition 0 (or the manual
/// `assignments`, one list per new partition), placed like CreateTopics places them.
async fn grow(ctx: &RequestContext, name: &str, count: i32, assignments: Option<Vec<Vec<i32>>>, validate_only: bool) -> Result<(), (ResponseError, String)> {
    let image = ctx.broker.image();
    let Some(topic) = image.topic(name) else {
        return Err((ResponseError::UnknownTopicOrPartition, format!("The topic '{name}' does not exist.")));
    };
    if crate::coordinator::is_internal(name) {
        // Keys hash over the partition count: growing it would move every coordinator key.
        return Err((ResponseError::InvalidRequest, format!("Cannot change the partition count of internal topic '{name}'.")));
    }
    let current = topic.partitions.len() as i32;
    if count <= current {
        let msg = if count == current {
            format!("Topic already has {current} partitions.")
        } else {
            format!("The topic {name} currently has {current} partition(s); {count} would not be an increase.")
        };
        return Err((ResponseError::InvalidPartitions, msg));
    }
    if count > topics::PARTITIONS_PER_TOPIC_MAX {
        return Err((ResponseError::InvalidPartitions, format!("At most {} partitions per topic.", topics::PARTITIONS_PER_TOPIC_MAX)));
    }
    if let Some(a) = &assignments
        && a.len() as i32 != count - current
    {
        return Err((ResponseError::InvalidReplicaAssignment, format!("Increasing the number of partitions by {} but {} assignments provided.", count - current, a.len())));
    }
    let placed = move |img: &crate::metadata::Image, t: &crate::metadata::TopicImage| {
        let from = t.partitions.len() as i32;
        let rf = t.partitions.first().map_or(1, |p| p.replicas.len());
        topics::place(img, from, count - from, rf as i16, assignments.as_deref(), Some(rf)).map_err(|e| (e.error, e.message))
    };
    placed(&image, topic)?;
    if validate_only {
        return Ok(());
    }
    let broker = ctx.broker.clone();
    let name = name.to_string();
    tokio::task::spawn_blocking(move || {
        let node = broker.config.node_id;
        let mut rejected = None;
        let image = broker
            .metadata
            .propose(|img| {
                let t = img.topic(&name).ok_or_else(|| ApplyError::UnknownTopic(name.clone()))?;
                let from = t.partitions.len() as i32;
                match placed(img, t) {
                    Ok(parts) => Ok(parts
                        .into_iter()
                        .zip(from..)
                        .map(|(p, i)| MetadataRecord::partition(t.id, i, p))
                        .collect()),
                    Err(e) => {
                        rejected = Some(e);
                        Ok(vec![])
                    }
                }
            })
            .map_err(|e| (super::metadata_error(&e), e.to_string()))?;
        if let Some(e) = rejected {
            return Err(e);
        }
        let t = image.topic(&name).expect("exists: just grown").clone();
        // Open the logs this node holds a replica of; others open theirs on first use.
        for p in (current..count).filter(|&p| t.partitions[p as usize].replicas.contains(&node)) {
            broker.partition(&t, p).map_err(|e| (ResponseError::KafkaStorageError, e.to_string()))?;
        }
        Ok(())
    })
    .await
    .expect("create partitions task does not panic")
}
