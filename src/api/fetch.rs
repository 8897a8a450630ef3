//! Fetch (1): whole batches straight from the log, up to the high watermark
//! (read_uncommitted) or the last stable offset (read_committed, with the aborted
//! transactions that overlap what is returned, for the consumer to skip).
//!
//! Sessionless: we answer `session_id` 0, so clients keep sending full requests,
//! and a full response lists every partition asked for (the Java client drops
//! responses that omit one). When fewer than `min_bytes` are available the
//! request waits, up to `max_wait_ms`, for any high watermark to move.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::fetch_response::{AbortedTransaction, FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{FetchRequest, FetchResponse, ProducerId};

use super::{RequestContext, leader_partition, log_error_code};
use crate::broker::Broker;
use crate::protocol::ResponseError;

/// A long-poll never waits longer than this, whatever the client asks.
const MAX_WAIT_CAP: Duration = Duration::from_secs(30);
/// `isolation_level` 1: only committed transactional data (Fetch v4+).
const READ_COMMITTED: i8 = 1;

pub fn handle(ctx: &RequestContext, req: FetchRequest) -> impl Future<Output = FetchResponse> + Send + 'static {
    let broker = ctx.broker.clone();
    let v = ctx.api_version;
    async move {
        let max_wait = Duration::from_millis(req.max_wait_ms.max(0) as u64).min(MAX_WAIT_CAP);
        let deadline = tokio::time::Instant::now() + max_wait;
        let mut progress = broker.logs.subscribe_progress();
        loop {
            progress.borrow_and_update();
            let (resp, bytes) = read_all(&broker, &req, v);
            let has_error = resp.responses.iter().flat_map(|t| &t.partitions).any(|p| p.error_code != 0);
            if bytes >= req.min_bytes.max(1) as usize || has_error || tokio::time::Instant::now() >= deadline {
                return resp;
            }
            // Woken by any partition's progress; re-read and re-check min_bytes.
            if tokio::time::timeout_at(deadline, progress.changed()).await.is_err() {
                return read_all(&broker, &req, v).0;
            }
        }
    }
}

fn read_all(broker: &Arc<Broker>, req: &FetchRequest, v: i16) -> (FetchResponse, usize) {
    let image = broker.image();
    let mut budget = if req.max_bytes <= 0 { 0 } else { req.max_bytes as usize };
    let mut total = 0usize;
    let mut topics = Vec::with_capacity(req.topics.len());
    for ft in &req.topics {
        let topic = if v >= 13 { image.topic_by_id(&ft.topic_id) } else { image.topic(&ft.topic) };
        let mut out = FetchableTopicResponse::default();
        if v >= 13 {
            out.topic_id = ft.topic_id;
        } else {
            out.topic = ft.topic.clone();
        }
        for fp in &ft.partitions {
            let mut pd = PartitionData::default().with_partition_index(fp.partition).with_high_watermark(-1).with_last_stable_offset(-1);
            let found = match topic {
                None if v >= 13 => Err(ResponseError::UnknownTopicId.code()),
                topic => leader_partition(broker, topic, fp.partition, fp.current_leader_epoch),
            };
            let p = match found {
                Ok((p, _)) => p,
                Err(code) => {
                    pd.error_code = code;
                    out.partitions.push(pd);
                    continue;
                }
            };
            let hw = p.high_watermark();
            pd.high_watermark = hw;
            pd.last_stable_offset = p.last_stable_offset();
            pd.log_start_offset = p.log_start_offset();
            let part_max = (fp.partition_max_bytes.max(0) as usize).min(budget);
            // KIP-74: the first non-empty batch of a response is returned whole even
            // past the limits, so a large record can never stall a consumer.
            let min_one = total == 0;
            let read = if req.isolation_level == READ_COMMITTED {
                p.read_committed(fp.fetch_offset, part_max, min_one).map(|c| {
                    pd.last_stable_offset = c.last_stable_offset;
                    let aborted = c.aborted.iter().map(|a| AbortedTransaction::default().with_producer_id(ProducerId(a.producer_id)).with_first_offset(a.first_offset));
                    pd.aborted_transactions = Some(aborted.collect());
                    c.read
                })
            } else {
                p.read(fp.fetch_offset, part_max, min_one)
            };
            match read {
                Ok(r) => {
                    let n = r.records.len();
                    total += n;
                    budget = budget.saturating_sub(n);
                    pd.log_start_offset = r.log_start_offset;
                    pd.records = Some(r.records);
                }
                Err(e) => pd.error_code = log_error_code(&e),
            }
            out.partitions.push(pd);
        }
        topics.push(out);
    }
    (FetchResponse::default().with_responses(topics), total)
}
