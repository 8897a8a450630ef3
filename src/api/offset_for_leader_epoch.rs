//! OffsetForLeaderEpoch (23): the end offset of a leader epoch, used by consumers
//! to detect log truncation after a leader change: the largest epoch at or below
//! the one asked for that this leader's log knows, and where it ends (the start of
//! the next epoch, or the log end for the latest). An epoch older than all we know
//! answers UNDEFINED (-1, -1), as Kafka does.

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
                    if p.leader_epoch == epoch {
                        // The current epoch always ends at the log end (even before any
                        // batch of it was written).
                        r.leader_epoch = epoch;
                        r.end_offset = log.log_end_offset();
                    } else if let Some((e, end)) = log.end_offset_for_epoch(p.leader_epoch) {
                        r.leader_epoch = e;
                        r.end_offset = end;
                    }
                    r
                })
                .collect();
            OffsetForLeaderTopicResult::default().with_topic(t.topic).with_partitions(partitions)
        })
        .collect();
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}
