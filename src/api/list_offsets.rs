//! ListOffsets (2): earliest, latest, max-timestamp and by-timestamp offsets.
//! Spark calls this around every poll, so earliest/latest read cached atomics and
//! take no log lock (read_uncommitted; read_committed takes it briefly for the LSO).

use kafka_protocol::messages::list_offsets_response::{ListOffsetsPartitionResponse, ListOffsetsTopicResponse};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};

use super::{RequestContext, leader_partition, log_error_code};
use crate::protocol::ResponseError;

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
const EARLIEST_LOCAL: i64 = -4;
const EARLIEST_PENDING_UPLOAD: i64 = -5;
/// `isolation_level` 1: only committed transactional data.
const READ_COMMITTED: i8 = 1;

pub async fn handle(ctx: &RequestContext, req: ListOffsetsRequest) -> ListOffsetsResponse {
    let v = ctx.api_version;
    let image = ctx.broker.image();
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let topic = image.topic(&t.name);
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| {
                    let mut r = ListOffsetsPartitionResponse::default().with_partition_index(p.partition_index).with_timestamp(-1).with_offset(-1);
                    // v4+ carries the client's leader epoch; before that there is none to check.
                    let current_epoch = if v >= 4 { p.current_leader_epoch } else { -1 };
                    let (log, epoch) = match leader_partition(&ctx.broker, topic, p.partition_index, current_epoch) {
                        Ok(found) => found,
                        Err(code) => {
                            r.error_code = code;
                            return r;
                        }
                    };
                    // read_committed (v2+) sees up to the last stable offset, not the high watermark.
                    let visible_end = if v >= 2 && req.isolation_level == READ_COMMITTED { log.last_stable_offset() } else { log.high_watermark() };
                    let found = match p.timestamp {
                        LATEST => Ok(Some((visible_end, -1))),
                        EARLIEST | EARLIEST_LOCAL => Ok(Some((log.log_start_offset(), -1))),
                        // No tiered storage: nothing is pending upload.
                        EARLIEST_PENDING_UPLOAD => Ok(None),
                        // Never point past the high watermark: those records are not readable yet.
                        MAX_TIMESTAMP => log.with_log(|l| Ok(l.max_timestamp())).map(|o| below(o, visible_end)),
                        ts if ts >= 0 => log.with_log(|l| l.offset_for_timestamp(ts)).map(|o| below(o, visible_end)),
                        _ => {
                            r.error_code = ResponseError::InvalidRequest.code();
                            return r;
                        }
                    };
                    match found {
                        Ok(Some((offset, ts))) => {
                            r.offset = offset;
                            r.timestamp = ts;
                            if v >= 4 {
                                r.leader_epoch = epoch;
                            }
                        }
                        Ok(_) => {}
                        Err(e) => r.error_code = log_error_code(&e),
                    }
                    r
                })
                .collect();
            ListOffsetsTopicResponse::default().with_name(t.name).with_partitions(partitions)
        })
        .collect();
    ListOffsetsResponse::default().with_topics(topics)
}

fn below(found: Option<(i64, i64)>, high_watermark: i64) -> Option<(i64, i64)> {
    found.filter(|(offset, _)| *offset < high_watermark)
}
