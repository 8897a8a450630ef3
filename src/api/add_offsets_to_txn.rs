//! AddOffsetsToTxn (25): the producer will commit offsets of `group_id` in its
//! transaction (`sendOffsetsToTransaction`). The group joins the transaction; its
//! offsets, sent next with TxnOffsetCommit, are applied only if it commits.

use kafka_protocol::messages::{AddOffsetsToTxnRequest, AddOffsetsToTxnResponse};

use super::RequestContext;
use crate::protocol::ResponseError;

/// The first version that knows PRODUCER_FENCED (KIP-588).
const FENCED_FROM: i16 = 2;

pub async fn handle(ctx: &RequestContext, req: AddOffsetsToTxnRequest) -> AddOffsetsToTxnResponse {
    if req.group_id.is_empty() {
        return AddOffsetsToTxnResponse::default().with_error_code(ResponseError::InvalidGroupId.code());
    }
    let group: &str = &req.group_id;
    // As Kafka: the group's `__consumer_offsets` partition joins the transaction, so
    // ending it writes a marker there, which settles the offsets staged for it.
    let gt = crate::coordinator::GROUP_TOPIC;
    if !crate::coordinator::topic::ensure_group_topic(&ctx.broker).await {
        return AddOffsetsToTxnResponse::default().with_error_code(ResponseError::CoordinatorNotAvailable.code());
    }
    let n = ctx.broker.image().topic(gt).map_or(0, |t| t.partitions.len() as i32);
    let partitions = [(gt.to_string(), crate::coordinator::partition_for(group, n))];
    let r = ctx.broker.txns.add(&req.transactional_id, req.producer_id.0, req.producer_epoch, &partitions, Some(group)).await;
    AddOffsetsToTxnResponse::default().with_error_code(r.map_or_else(|e| e.code_for(ctx.api_version, FENCED_FROM), |_| 0))
}
