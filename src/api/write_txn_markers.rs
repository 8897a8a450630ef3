//! WriteTxnMarkers (27): a transaction coordinator asks this broker, as leader of some
//! partitions, to end a producer's transaction in them with COMMIT or ABORT markers
//! (Kafka's `KafkaApis.handleWriteTxnMarkersRequest`; broker to broker only, v1 — the
//! only version Kafka 4.x and the codec crate know).
//!
//! Per partition: UNKNOWN_TOPIC_OR_PARTITION when it does not exist,
//! NOT_LEADER_OR_FOLLOWER when this node does not lead it, INVALID_PRODUCER_EPOCH /
//! TRANSACTION_COORDINATOR_FENCED when the partition has seen a newer producer epoch /
//! coordinator epoch, REQUEST_TIMED_OUT when the marker is not replicated to the ISR
//! in time. The marker writing itself is `txn::marker`, which the coordinator also
//! uses for the partitions it leads.
//!
//! Like Produce, `handle` appends synchronously (markers of pipelined requests reach
//! the logs in arrival order); only the replication wait is deferred.

use std::future::Future;
use std::time::Duration;

use kafka_protocol::messages::write_txn_markers_response::{WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult};
use kafka_protocol::messages::{TopicName, WriteTxnMarkersRequest, WriteTxnMarkersResponse};

use super::RequestContext;
use crate::txn::marker::{self, Marker, Step};

/// How long a marker may wait for the ISR (Kafka: the broker's `request.timeout.ms`,
/// default 30 s). The coordinator's client waits a little longer than this.
pub const REPLICATION_TIMEOUT: Duration = Duration::from_secs(30);

/// One marker's topics, each with its partitions' appended markers still to finish
/// (the replication wait).
type TopicSteps = Vec<(TopicName, Vec<(i32, Step)>)>;

pub fn handle(ctx: &RequestContext, req: WriteTxnMarkersRequest) -> impl Future<Output = WriteTxnMarkersResponse> + Send + 'static {
    let broker = ctx.broker.clone();
    let deadline = tokio::time::Instant::now() + REPLICATION_TIMEOUT;
    // Every marker appended now, in request order; answers gathered below.
    let markers: Vec<(Marker, TopicSteps)> = req
        .markers
        .into_iter()
        .map(|wm| {
            let m = Marker {
                producer_id: wm.producer_id.0,
                producer_epoch: wm.producer_epoch,
                coordinator_epoch: wm.coordinator_epoch,
                commit: wm.transaction_result,
            };
            let topics = wm
                .topics
                .into_iter()
                .map(|t| {
                    let steps = t.partition_indexes.iter().map(|&p| (p, marker::append(&broker, &t.name, p, &m))).collect();
                    (t.name, steps)
                })
                .collect();
            (m, topics)
        })
        .collect();
    async move {
        let mut results = Vec::with_capacity(markers.len());
        for (m, topics) in markers {
            let mut topic_results = Vec::with_capacity(topics.len());
            for (name, steps) in topics {
                let mut partitions = Vec::with_capacity(steps.len());
                for (p, step) in steps {
                    let code = step.finish(&broker, &m, deadline).await.err().map_or(0, |e| e.code());
                    partitions.push(WritableTxnMarkerPartitionResult::default().with_partition_index(p).with_error_code(code));
                }
                topic_results.push(WritableTxnMarkerTopicResult::default().with_name(name).with_partitions(partitions));
            }
            results.push(WritableTxnMarkerResult::default().with_producer_id(m.producer_id.into()).with_topics(topic_results));
        }
        WriteTxnMarkersResponse::default().with_markers(results)
    }
}
