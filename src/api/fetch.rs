//! Fetch (1): whole batches straight from the log, up to the high watermark
//! (read_uncommitted) or the last stable offset (read_committed, with the aborted
//! transactions that overlap what is returned, for the consumer to skip).
//!
//! Sessionless: we answer `session_id` 0, so clients keep sending full requests,
//! and a full response lists every partition asked for (the Java client drops
//! responses that omit one). When fewer than `min_bytes` are available the
//! request waits, up to `max_wait_ms`, for any high watermark to move.
//!
//! Consumers (v11+) may also read from a follower (KIP-392): it serves up to its own
//! high watermark. A leader configured with Kafka's `RackAwareReplicaSelector` points
//! a consumer from another rack at an in-sync follower in the consumer's rack
//! (`preferred_read_replica`, no records; see `replication::selector`).
//!
//! A fetch with a replica id is a follower's (`replication/`): it reads up to the
//! log end rather than the high watermark, is checked for a diverging leader epoch
//! first (KIP-320: the follower then truncates), and reports the follower's log
//! end to the leader, which may move the high watermark or grow the ISR.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::fetch_response::{AbortedTransaction, EpochEndOffset, FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse, ProducerId};

use bytes::Bytes;

use super::{RequestContext, leader_partition_state, log_error_code};
use crate::broker::Broker;
use crate::log::FileSlice;
use crate::protocol::ResponseError;
use crate::server::frame::{SPLICE_MIN_BYTES, placeholder};

/// A long-poll never waits longer than this, whatever the client asks.
const MAX_WAIT_CAP: Duration = Duration::from_secs(30);
/// `isolation_level` 1: only committed transactional data (Fetch v4+).
const READ_COMMITTED: i8 = 1;

/// The response, with the file ranges its record-set placeholders stand for (in
/// partition order; see [`crate::server::frame`]).
pub type FetchReply = (FetchResponse, Vec<FileSlice>);

pub fn handle(ctx: &RequestContext, req: FetchRequest) -> impl Future<Output = FetchReply> + Send + 'static {
    let broker = ctx.broker.clone();
    let v = ctx.api_version;
    async move {
        let max_wait = Duration::from_millis(req.max_wait_ms.max(0) as u64).min(MAX_WAIT_CAP);
        let deadline = tokio::time::Instant::now() + max_wait;
        let mut progress = broker.logs.subscribe_progress();
        let mut appended = broker.replicas.subscribe_appended();
        let replica = replica_id(&req, v);
        loop {
            progress.borrow_and_update();
            appended.borrow_and_update();
            let (resp, files, bytes) = read_all(&broker, &req, v, replica);
            // An error or a redirect to another replica is answered at once.
            let at_once = resp.responses.iter().flat_map(|t| &t.partitions).any(|p| p.error_code != 0 || p.preferred_read_replica.0 >= 0);
            if bytes >= req.min_bytes.max(1) as usize || at_once || tokio::time::Instant::now() >= deadline {
                return (resp, files);
            }
            // Woken by any partition's progress (a follower also by any append);
            // re-read and re-check min_bytes.
            let woken = async {
                if replica >= 0 {
                    tokio::select! {
                        r = progress.changed() => r,
                        r = appended.changed() => r,
                    }
                } else {
                    progress.changed().await
                }
            };
            if tokio::time::timeout_at(deadline, woken).await.is_err() {
                let (resp, files, _) = read_all(&broker, &req, v, replica);
                return (resp, files);
            }
        }
    }
}

/// The follower's broker id (v15+ moved it into `replica_state`); -1 for consumers.
fn replica_id(req: &FetchRequest, v: i16) -> i32 {
    if v >= 15 { req.replica_state.replica_id.0 } else { req.replica_id.0 }
}

/// Consumers' record sets are left in the segment files (sent from there when the
/// response is written) unless small or too large for a placeholder; followers' are read.
fn read_all(broker: &Arc<Broker>, req: &FetchRequest, v: i16, replica: i32) -> (FetchResponse, Vec<FileSlice>, usize) {
    let mut files = Vec::new();
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
                topic if replica >= 0 => leader_partition_state(broker, topic, fp.partition, fp.current_leader_epoch).map(|(p, _, leader)| (p, Some(leader))),
                topic => consumer_partition_state(broker, topic, fp.partition, fp.current_leader_epoch, v >= 11),
            };
            let (p, leader) = match found {
                Ok(found) => found,
                Err(code) => {
                    pd.error_code = code;
                    out.partitions.push(pd);
                    continue;
                }
            };
            if replica >= 0 {
                let leader = leader.expect("a replica's fetch is served by the leader only");
                let part_max = (fp.partition_max_bytes.max(0) as usize).min(budget);
                let n = read_for_follower(broker, &p, &leader, fp, replica, part_max, total == 0, &mut pd);
                total += n;
                budget = budget.saturating_sub(n);
                out.partitions.push(pd);
                continue;
            }
            let hw = p.high_watermark();
            pd.high_watermark = hw;
            pd.last_stable_offset = p.last_stable_offset();
            pd.log_start_offset = p.log_start_offset();
            if let Some(leader) = leader.as_ref().filter(|_| v >= 11)
                && let Some(closer) = preferred_read_replica(broker, &image, leader, &req.rack_id, fp.fetch_offset, p.log_end_offset())
            {
                // As Kafka: no records, the offsets, and where to read instead.
                pd.preferred_read_replica = BrokerId(closer);
                pd.records = Some(Bytes::new());
                out.partitions.push(pd);
                continue;
            }
            let part_max = (fp.partition_max_bytes.max(0) as usize).min(budget);
            // KIP-74: the first non-empty batch of a response is returned whole even
            // past the limits, so a large record can never stall a consumer.
            let min_one = total == 0;
            let read = if req.isolation_level == READ_COMMITTED {
                p.read_committed_slice(fp.fetch_offset, part_max, min_one).map(|c| {
                    pd.last_stable_offset = c.last_stable_offset;
                    let aborted = c.aborted.iter().map(|a| AbortedTransaction::default().with_producer_id(ProducerId(a.producer_id)).with_first_offset(a.first_offset));
                    pd.aborted_transactions = Some(aborted.collect());
                    c.read
                })
            } else {
                p.read_slice(fp.fetch_offset, part_max, min_one)
            };
            let records = read.and_then(|r| {
                pd.log_start_offset = r.log_start_offset;
                match r.records {
                    None => Ok(Bytes::new()),
                    Some(slice) => match placeholder(slice.len()).filter(|_| slice.len() >= SPLICE_MIN_BYTES) {
                        Some(stand_in) => {
                            files.push(slice);
                            Ok(stand_in)
                        }
                        None => slice.read().map_err(crate::log::Error::from),
                    },
                }
            });
            match records {
                Ok(records) => {
                    let n = records.len();
                    total += n;
                    budget = budget.saturating_sub(n);
                    pd.records = Some(records);
                }
                Err(e) => pd.error_code = log_error_code(&e),
            }
            out.partitions.push(pd);
        }
        topics.push(out);
    }
    (FetchResponse::default().with_responses(topics), files, total)
}

/// The partition a consumer's fetch reads here, with the leadership when this node
/// leads it. `follower_ok` (Fetch v11+, KIP-392): a follower of the partition with its
/// log here serves it too (up to its own high watermark), with the same leader-epoch
/// checks as the leader.
fn consumer_partition_state(
    broker: &Arc<Broker>,
    topic: Option<&Arc<crate::metadata::TopicImage>>,
    partition: i32,
    current_leader_epoch: i32,
    follower_ok: bool,
) -> Result<(Arc<crate::log::manager::Partition>, Option<Arc<crate::replication::LeaderState>>), i16> {
    let not_here = ResponseError::NotLeaderOrFollower.code();
    match leader_partition_state(broker, topic, partition, current_leader_epoch) {
        Ok((p, _, leader)) => Ok((p, Some(leader))),
        Err(code) if follower_ok && code == not_here => {
            let topic = topic.ok_or(not_here)?;
            let image = usize::try_from(partition).ok().and_then(|i| topic.partitions.get(i)).ok_or(not_here)?;
            let node = broker.config.node_id;
            // Leading per the image but not yet in the replica manager: not served yet.
            if image.leader == node || !image.replicas.contains(&node) {
                return Err(not_here);
            }
            let log = broker.logs.get(&crate::log::manager::TopicPartition::new(&topic.name, partition)).ok_or(not_here)?;
            Ok((log, None))
        }
        Err(code) => Err(code),
    }
}

/// Where a consumer in `client_rack` should read a partition this node leads instead,
/// if anywhere: per `replica.selector.class`, among the live in-sync followers that
/// hold `fetch_offset`.
fn preferred_read_replica(
    broker: &Arc<Broker>,
    image: &crate::metadata::Image,
    leader: &crate::replication::LeaderState,
    client_rack: &str,
    fetch_offset: i64,
    log_end: i64,
) -> Option<i32> {
    use crate::replication::selector::{self, ReadCandidate, ReplicaSelector};
    let selector = broker.config.replica_selector;
    if selector == ReplicaSelector::Leader || client_rack.is_empty() {
        return None;
    }
    let rack = |b: i32| image.brokers.get(&b).and_then(|b| b.rack.as_deref());
    let me = ReadCandidate { broker: broker.config.node_id, rack: rack(broker.config.node_id), log_end, ms_since_caught_up: 0 };
    let followers: Vec<ReadCandidate> = leader
        .read_candidates(fetch_offset, std::time::Instant::now())
        .into_iter()
        .filter(|(b, _, _)| image.is_live(*b))
        .map(|(b, log_end, lag)| ReadCandidate { broker: b, rack: rack(b), log_end, ms_since_caught_up: lag.as_millis() as u64 })
        .collect();
    selector::preferred_read_replica(selector, client_rack, &me, &followers)
}

/// A follower's fetch of one partition this node leads: the divergence check, the
/// read up to the log end, and the follower's progress. Returns the bytes read.
#[allow(clippy::too_many_arguments)]
fn read_for_follower(
    broker: &Arc<Broker>,
    p: &Arc<crate::log::manager::Partition>,
    leader: &Arc<crate::replication::LeaderState>,
    fp: &kafka_protocol::messages::fetch_request::FetchPartition,
    replica: i32,
    max_bytes: usize,
    min_one: bool,
    pd: &mut PartitionData,
) -> usize {
    if !leader.is_replica(replica) {
        pd.error_code = ResponseError::NotLeaderOrFollower.code();
        return 0;
    }
    pd.log_start_offset = p.log_start_offset();
    pd.last_stable_offset = p.last_stable_offset();
    if fp.last_fetched_epoch >= 0 {
        // KIP-320: does the follower's last epoch end where ours does? If not, it must
        // truncate to where they agree before fetching on.
        let ours = p.end_offset_for_epoch(fp.last_fetched_epoch);
        let diverged = match ours {
            Some((epoch, end)) => epoch != fp.last_fetched_epoch || end < fp.fetch_offset,
            None => true,
        };
        if diverged {
            let (epoch, end) = ours.unwrap_or((-1, p.log_start_offset()));
            pd.diverging_epoch = EpochEndOffset::default().with_epoch(epoch).with_end_offset(end);
            pd.high_watermark = p.high_watermark();
            return 0;
        }
    }
    let read = p.read_to_log_end(fp.fetch_offset, max_bytes, min_one);
    // The fetch offset is the follower's log end: record it, whatever the read gives.
    broker.replicas.on_follower_fetch(leader, p, replica, fp.fetch_offset);
    pd.high_watermark = p.high_watermark();
    match read {
        Ok(r) => {
            let n = r.records.len();
            pd.records = Some(r.records);
            n
        }
        Err(e) => {
            pd.error_code = log_error_code(&e);
            0
        }
    }
}
