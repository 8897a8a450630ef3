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
        if let Err((e, msg)) = grow(ctx, &name, t.count, t.assignments.as_ref().map(|a| a.len()), req.validate_only).await {
            r.error_code = e.code();
            r.error_message = Some(str_bytes(&msg));
        }
        results.push(r);
    }
    CreatePartitionsResponse::default().with_results(results)
}

async fn grow(ctx: &RequestContext, name: &str, count: i32, assignments: Option<usize>, validate_only: bool) -> Result<(), (ResponseError, String)> {
    let image = ctx.broker.image();
    let Some(topic) = image.topic(name) else {
        return Err((ResponseError::UnknownTopicOrPartition, format!("The topic '{name}' does not exist.")));
    };
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
    if let Some(n) = assignments
        && n as i32 != count - current
    {
        return Err((ResponseError::InvalidReplicaAssignment, format!("Increasing the number of partitions by {} but {n} assignments provided.", count - current)));
    }
    if validate_only {
        return Ok(());
    }
    let broker = ctx.broker.clone();
    let name = name.to_string();
    tokio::task::spawn_blocking(move || {
        let node = broker.config.node_id;
        let image = broker
            .metadata
            .propose(|img| {
                let t = img.topic(&name).ok_or_else(|| ApplyError::UnknownTopic(name.clone()))?;
                let from = t.partitions.len() as i32;
                Ok((from..count)
                    .map(|p| MetadataRecord::Partition { topic_id: t.id, partition: p, leader: node, leader_epoch: 0, replicas: vec![node], isr: vec![node] })
                    .collect())
            })
            .map_err(|e| (super::metadata_error(&e), e.to_string()))?;
        let t = image.topic(&name).expect("exists: just grown").clone();
        for p in current..count {
            broker.partition(&t, p).map_err(|e| (ResponseError::KafkaStorageError, e.to_string()))?;
        }
        Ok(())
    })
    .await
    .expect("create partitions task does not panic")
}
