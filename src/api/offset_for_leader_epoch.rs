//! OffsetForLeaderEpoch (23): the end offset of a leader epoch, used by consumers
//! to detect log truncation after a leader change. On one node every partition
//! has had a single epoch since creation, so its end is the log end.

use kafka_protocol::messages::offset_for_leader_epoch_response::{EpochEndOffset, OffsetForLeaderTopicResult};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};

use super::{RequestContext, leader_partition};

pub async fn handle(ctx: &RequestContext, req: OffsetForLeaderEpochRequest) -> OffsetForLeaderEpochResponse {
    let image = ctx.broker.image();
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let topic = image.topic(&t.topic);
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| {
                    let mut r = EpochEndOffset::default().with_partition(p.partition).with_leader_epoch(-1).with_end_offset(-1);
                    let (log, epoch) = match leader_partition(&ctx.broker, topic, p.partition, p.current_leader_epoch) {
                        Ok(found) => found,
                        Err(code) => {
                            r.error_code = code;
                            return r;
                        }
                    };
                    if p.leader_epoch <= epoch && p.leader_epoch >= 0 {
                        // The requested epoch is the current one (or older, which on
                        // one node never held data past our start): its end is the LEO.
                        r.leader_epoch = epoch;
                        r.end_offset = if p.leader_epoch == epoch { log.log_end_offset() } else { log.log_start_offset() };
                    }
                    r
                })
                .collect();
            OffsetForLeaderTopicResult::default().with_topic(t.topic).with_partitions(partitions)
        })
        .collect();
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}
