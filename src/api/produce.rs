//! Produce (0): validate and append each partition's batches in request order,
//! then answer once they are durable: acks=1 when the leader has fsynced them,
//! acks=-1 when the high watermark passes them (every in-sync replica has them and
//! the leader has fsynced them; on one node the same thing). acks=-1 is refused with
//! NOT_ENOUGH_REPLICAS while the ISR is smaller than `min.insync.replicas`.
//!
//! `handle` is deliberately synchronous up to the append: the connection reader
//! runs it in arrival order, so pipelined batches of one producer reach the log in
//! the order they were sent. Only the durability wait is deferred.

use std::future::Future;
use std::sync::Arc;

use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};

use super::{RequestContext, leader_partition_state, log_error_code};
use crate::log::manager::{Durable, Partition};
use crate::protocol::ResponseError;
use crate::replication::LeaderState;

/// A partition's answer, and what it must wait for before it can be sent.
struct Pending {
    resp: PartitionProduceResponse,
    wait: Option<Wait>,
}

struct Wait {
    partition: Arc<Partition>,
    end_offset: i64,
    leader: Arc<LeaderState>,
    min_insync: usize,
}

/// Returns `None` for acks=0 (no response is sent).
pub fn handle(ctx: &RequestContext, req: ProduceRequest) -> Option<impl Future<Output = ProduceResponse> + Send + 'static> {
    let v = ctx.api_version;
    let acks = req.acks;
    let timeout = std::time::Duration::from_millis(req.timeout_ms.max(0) as u64);
    let image = ctx.broker.image();
    let mut topics: Vec<(TopicProduceResponse, Vec<Pending>)> = Vec::with_capacity(req.topic_data.len());
    for td in req.topic_data {
        let topic = image.topic(&td.name);
        let min_insync = topic.map_or(1, |t| min_insync_replicas(ctx, &image, t));
        let mut parts = Vec::with_capacity(td.partition_data.len());
        for pd in td.partition_data {
            let mut resp = PartitionProduceResponse::default().with_index(pd.index);
            let mut wait = None;
            // acks: 0 = none, 1 = leader, -1 = all in-sync replicas.
            let result = if !matches!(acks, -1..=1) {
                Err(ResponseError::InvalidRequiredAcks.code())
            } else if crate::coordinator::is_internal(&td.name) {
                // Kafka's ReplicaManager: clients may not append to internal topics.
                Err(ResponseError::InvalidTopicException.code())
            } else if let Some(tid) = req.transactional_id.as_ref() {
                append_transactional(ctx, tid, topic, pd.index, pd.records, acks, min_insync)
            } else {
                append(ctx, None, topic, pd.index, pd.records, acks, min_insync)
            };
            match result {
                Ok((p, info, leader)) => {
                    resp.base_offset = info.base_offset;
                    // -1 unless the topic uses LogAppendTime (Kafka: the broker's append time).
                    resp.log_append_time_ms = info.log_append_time_ms;
                    if v >= 5 {
                        resp.log_start_offset = info.log_start_offset;
                    }
                    wait = Some(Wait { partition: p, end_offset: info.last_offset + 1, leader, min_insync });
                }
                Err(code) => {
                    resp.error_code = code;
                    resp.base_offset = -1;
                }
            }
            parts.push(Pending { resp, wait });
        }
        topics.push((TopicProduceResponse::default().with_name(td.name.clone()), parts));
    }
    if acks == 0 {
        return None;
    }
    Some(async move {
        let mut responses = Vec::with_capacity(topics.len());
        for (mut t, parts) in topics {
            for mut p in parts {
                if let Some(w) = p.wait
                    && let Err(e) = wait(w, acks, timeout).await
                {
                    p.resp.error_code = e.code();
                }
                t.partition_responses.push(p.resp);
            }
            responses.push(t);
        }
        ProduceResponse::default().with_responses(responses)
    })
}

/// A Produce with a transactional id: its transactional batches are appended only if
/// the partition is in the producer's open transaction (checked with the coordinator,
/// which holds the transaction open across the append). Kafka answers the same way
/// when its partition-level verification fails: INVALID_TXN_STATE.
fn append_transactional(
    ctx: &RequestContext,
    tid: &str,
    topic: Option<&Arc<crate::metadata::TopicImage>>,
    partition: i32,
    records: Option<bytes::Bytes>,
    acks: i16,
    min_insync: usize,
) -> Result<(Arc<Partition>, crate::log::AppendInfo, Arc<LeaderState>), i16> {
    let first = records.as_deref().and_then(|r| crate::protocol::records::BatchHeader::parse(r).ok());
    let (Some(h), Some(t)) = (first, topic) else {
        return append(ctx, Some(tid), topic, partition, records, acks, min_insync);
    };
    if !h.is_transactional() {
        return append(ctx, Some(tid), topic, partition, records, acks, min_insync);
    }
    // A transaction coordinated by another node (or a shard still loading) is not
    // checked here: `with_open_txn` appends it unverified, as Kafka does without
    // KIP-890's verification.
    let name = t.name.clone();
    ctx.broker.txns.with_open_txn(tid, h.producer_id, h.producer_epoch, &name, partition, || append(ctx, Some(tid), topic, partition, records, acks, min_insync))
}

fn append(
    ctx: &RequestContext,
    transactional_id: Option<&str>,
    topic: Option<&Arc<crate::metadata::TopicImage>>,
    partition: i32,
    records: Option<bytes::Bytes>,
    acks: i16,
    min_insync: usize,
) -> Result<(Arc<Partition>, crate::log::AppendInfo, Arc<LeaderState>), i16> {
    // Produce carries no leader epoch to check (-1).
    let (p, leader_epoch, leader) = leader_partition_state(&ctx.broker, topic, partition, -1)?;
    if acks == -1 && leader.isr().len() < min_insync {
        return Err(ResponseError::NotEnoughReplicas.code());
    }
    let records = records.ok_or(ResponseError::CorruptMessage.code())?;
    // Control batches (transaction markers) are written by the broker, never by clients;
    // transactional batches need the transactional id the coordinator checks them with.
    let transactional_ok = transactional_id.is_some();
    if crate::protocol::records::BatchIter::new(&records).any(|(h, _)| h.is_control() || (h.is_transactional() && !transactional_ok)) {
        return Err(ResponseError::InvalidRecord.code());
    }
    match with_own_copy(&records, |buf| ctx.broker.logs.append(&p, buf, leader_epoch)) {
        Ok(info) => {
            ctx.broker.replicas.notify_appended();
            Ok((p, info, leader))
        }
        Err(e) => {
            tracing::debug!(topic = %p.tp.topic, partition, client = ?ctx.client_id, error = %e, "produce rejected");
            Err(log_error_code(&e))
        }
    }
}

/// Largest copy buffer a thread keeps between appends; a bigger one (a request near
/// `socket.request.max.bytes`) is freed after its append.
const SCRATCH_KEEP_BYTES: usize = 16 << 20;

thread_local! {
    static APPEND_SCRATCH: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
}

/// Runs `f` on a private, mutable copy of `records`: the log rewrites base offsets and
/// leader epochs in place, and the request frame the records arrived in is shared. The
/// copy goes to a buffer each thread reuses, because a fresh allocation per append was
/// served from newly mapped pages, and faulting those in cost a quarter of the broker's
/// CPU under a librdkafka producer's 1 MB batches, four times the copy itself.
fn with_own_copy<T>(records: &[u8], f: impl FnOnce(&mut [u8]) -> T) -> T {
    // Taken out of the cell for the call, so a nested use would find it empty, not
    // borrowed.
    let mut buf = APPEND_SCRATCH.take();
    buf.clear();
    buf.extend_from_slice(records);
    let out = f(&mut buf);
    if buf.capacity() <= SCRATCH_KEEP_BYTES {
        APPEND_SCRATCH.set(buf);
    }
    out
}

/// What an acknowledged append waits for: acks=1 the leader's fsync; acks=-1 the
/// high watermark (all in-sync replicas), bounded by the request's timeout when
/// there are followers to wait for, and rechecked against `min.insync.replicas`
/// after (Kafka's NOT_ENOUGH_REPLICAS_AFTER_APPEND: the ISR shrank meanwhile).
async fn wait(w: Wait, acks: i16, timeout: std::time::Duration) -> Result<(), ResponseError> {
    let reached = async {
        if acks == 1 { w.partition.wait_durable(w.end_offset).await } else { w.partition.wait_high_watermark(w.end_offset).await }
    };
    // Leadership lost meanwhile: answer now (the client goes to the new leader)
    // rather than when the request times out.
    let watched = async {
        tokio::select! {
            d = reached => Some(d),
            _ = w.leader.wait_resigned() => None,
        }
    };
    let durable = if acks == -1 && w.leader.has_followers() {
        match tokio::time::timeout(timeout, watched).await {
            Ok(d) => d,
            Err(_) => return Err(ResponseError::RequestTimedOut),
        }
    } else {
        watched.await
    };
    let Some(durable) = durable else { return Err(ResponseError::NotLeaderOrFollower) };
    if durable == Durable::Failed {
        return Err(ResponseError::KafkaStorageError);
    }
    if w.leader.has_resigned() {
        // What reached the offset may be the new leader's records, not ours.
        return Err(ResponseError::NotLeaderOrFollower);
    }
    if acks == -1 && w.leader.isr().len() < w.min_insync {
        return Err(ResponseError::NotEnoughReplicasAfterAppend);
    }
    Ok(())
}

/// The topic's `min.insync.replicas` (topic override, dynamic broker, static, default).
fn min_insync_replicas(ctx: &RequestContext, image: &crate::metadata::Image, topic: &crate::metadata::TopicImage) -> usize {
    use crate::api::topic_configs as tc;
    let t = tc::find("min.insync.replicas").expect("a known topic config");
    tc::resolve(&ctx.broker.config, &tc::dynamic_broker_configs(image), &topic.configs, t).value.trim().parse::<usize>().unwrap_or(1).max(1)
}
