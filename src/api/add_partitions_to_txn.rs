//! AddPartitionsToTxn (24): the client names the partitions it is about to write in
//! its transaction, so the coordinator knows where to send markers. Versions 0–3
//! (the client form: one transaction); v4+ is the broker-to-broker batch form, not
//! served. A partition that does not exist fails the whole request: it gets
//! UNKNOWN_TOPIC_OR_PARTITION and the others OPERATION_NOT_ATTEMPTED, as in Kafka.

use kafka_protocol::messages::add_partitions_to_txn_response::{AddPartitionsToTxnPartitionResult, AddPartitionsToTxnTopicResult};
use kafka_protocol::messages::{AddPartitionsToTxnRequest, AddPartitionsToTxnResponse};

use super::RequestContext;
use crate::protocol::ResponseError;

/// The first version that knows PRODUCER_FENCED (KIP-588).
const FENCED_FROM: i16 = 2;

pub async fn handle(ctx: &RequestContext, req: AddPartitionsToTxnRequest) -> AddPartitionsToTxnResponse {
    let image = ctx.broker.image();
    let mut wanted = Vec::new();
    let mut unknown = false;
    for t in &req.v3_and_below_topics {
        let topic = image.topic(&t.name);
        for &p in &t.partitions {
            let exists = topic.is_some_and(|t| p >= 0 && (p as usize) < t.partitions.len());
            unknown |= !exists;
            wanted.push((t.name.to_string(), p, exists));
        }
    }
    let code_of_all = if unknown {
        None
    } else {
        let tps: Vec<(String, i32)> = wanted.iter().map(|(t, p, _)| (t.clone(), *p)).collect();
        let r = ctx.broker.txns.add(&req.v3_and_below_transactional_id, req.v3_and_below_producer_id.0, req.v3_and_below_producer_epoch, &tps, None).await;
        Some(r.map_or_else(|e| e.code_for(ctx.api_version, FENCED_FROM), |_| 0))
    };
    let mut results: Vec<AddPartitionsToTxnTopicResult> = Vec::new();
    for t in &req.v3_and_below_topics {
        let mut tr = AddPartitionsToTxnTopicResult::default().with_name(t.name.clone());
        for &p in &t.partitions {
            let code = match code_of_all {
                Some(c) => c,
                None if wanted.iter().any(|(n, q, exists)| n.as_str() == &**t.name && *q == p && !exists) => ResponseError::UnknownTopicOrPartition.code(),
                None => ResponseError::OperationNotAttempted.code(),
            };
            tr.results_by_partition.push(AddPartitionsToTxnPartitionResult::default().with_partition_index(p).with_partition_error_code(code));
        }
        results.push(tr);
    }
    AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(results)
}
