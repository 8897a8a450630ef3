//! DeleteRecords (21): move partitions' log start offsets forward (kafka-delete-records,
//! `Admin.deleteRecords`). Offset -1 means the high watermark; an offset past it is
//! OFFSET_OUT_OF_RANGE. The new log start is checkpointed durably before the answer,
//! and segments wholly below it are deleted at once; the rest of the segment holding
//! it stays readable to nobody (fetches below the start get OFFSET_OUT_OF_RANGE).
//! Kafka refuses logs without the `delete` cleanup policy (POLICY_VIOLATION).

use std::sync::Arc;

use kafka_protocol::messages::delete_records_response::{DeleteRecordsPartitionResult, DeleteRecordsTopicResult};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};

use super::{RequestContext, log_error_code};
use crate::broker::Broker;
use crate::protocol::ResponseError;

/// Kafka's "delete up to the high watermark".
const HIGH_WATERMARK: i64 = -1;

pub async fn handle(ctx: &RequestContext, req: DeleteRecordsRequest) -> DeleteRecordsResponse {
    let broker = ctx.broker.clone();
    // Checkpoint writes fsync: keep them off the async workers.
    let topics = tokio::task::spawn_blocking(move || delete_all(&broker, req))
        .await
        .expect("delete records task does not panic");
    DeleteRecordsResponse::default().with_topics(topics)
}

fn delete_all(broker: &Arc<Broker>, req: DeleteRecordsRequest) -> Vec<DeleteRecordsTopicResult> {
    let image = broker.image();
    req.topics
        .into_iter()
        .map(|t| {
            let topic = image.topic(&t.name);
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| {
                    let mut r = DeleteRecordsPartitionResult::default().with_partition_index(p.partition_index).with_low_watermark(-1);
                    match topic.map(|topic| delete_one(broker, topic, p.partition_index, p.offset)) {
                        Some(Ok(low_watermark)) => r.low_watermark = low_watermark,
                        Some(Err(code)) => r.error_code = code,
                        None => r.error_code = ResponseError::UnknownTopicOrPartition.code(),
                    }
                    r
                })
                .collect();
            DeleteRecordsTopicResult::default().with_name(t.name).with_partitions(partitions)
        })
        .collect()
}

/// The new low watermark (log start offset), or a Kafka error code.
fn delete_one(broker: &Broker, topic: &crate::metadata::TopicImage, partition: i32, offset: i64) -> Result<i64, i16> {
    let p = match broker.partition(topic, partition) {
        Ok(Some(p)) => p,
        Ok(None) => return Err(ResponseError::UnknownTopicOrPartition.code()),
        Err(e) => return Err(log_error_code(&e)),
    };
    let deletable = p.with_log(|log| Ok(log.config().cleanup_delete)).map_err(|e| log_error_code(&e))?;
    if !deletable {
        return Err(ResponseError::PolicyViolation.code());
    }
    let target = if offset == HIGH_WATERMARK { p.high_watermark() } else { offset };
    match p.delete_records_before(target) {
        Ok(low_watermark) => Ok(low_watermark),
        Err(e) => {
            tracing::debug!(topic = %topic.name, partition, offset, error = %e, "delete records refused");
            Err(log_error_code(&e))
        }
    }
}
