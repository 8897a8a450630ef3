//! A follower's fetcher: one task per leader broker, fetching every partition this
//! node follows from that leader in one Fetch request (v12: topic names, the
//! follower's replica id, and `last_fetched_epoch` so the leader can tell us where
//! our log diverges from its own — KIP-320's truncation by leader epoch).
//!
//! Per partition, an answer is one of: records to append as they are (offsets and
//! epochs kept), a diverging epoch to truncate to, an out-of-range offset (our log
//! is below the leader's start, or past its end), or a retriable leadership error
//! that waits for the metadata image to move.

use std::sync::{Arc, Weak};
use std::time::Duration;

use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::{ApiKey, BrokerId, FetchRequest, FetchResponse, TopicName};

use super::client::Client;
use super::Following;
use crate::broker::Broker;
use crate::log::manager::{Partition, TopicPartition};
use crate::protocol::ResponseError;

/// The Fetch version followers send: names topics (no id lookups) and has
/// `last_fetched_epoch` / `diverging_epoch`.
const FETCH_VERSION: i16 = 12;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

pub async fn run(broker: Weak<Broker>, leader: i32) {
    let mut client: Option<(String, Client)> = None;
    loop {
        let Some(b) = broker.upgrade() else { return };
        if b.replicas.is_stopping() {
            b.replicas.retire_fetcher(leader);
            return;
        }
        let parts = b.replicas.followed_from(leader);
        if parts.is_empty() {
            if b.replicas.retire_fetcher(leader) {
                return;
            }
            continue;
        }
        let Some(addr) = b.image().brokers.get(&leader).map(|e| format!("{}:{}", e.host, e.port)) else {
            drop(b);
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        let settings = b.replicas.settings().clone();
        let (req, logs) = build_request(&b, &parts, &settings);
        let node_id = b.config.node_id;
        drop(b); // never keep the broker alive across a network wait
        if client.as_ref().is_none_or(|(a, _)| *a != addr) {
            let max_frame = settings.fetch_response_max_bytes as usize + (1 << 20);
            match Client::connect(&addr, &format!("sluice-replica-fetcher-{node_id}"), max_frame, CONNECT_TIMEOUT).await {
                Ok(c) => client = Some((addr.clone(), c)),
                Err(e) => {
                    tracing::debug!(leader, addr, error = %e, "cannot reach the leader");
                    tokio::time::sleep(settings.fetch_backoff).await;
                    continue;
                }
            }
        }
        let (_, c) = client.as_mut().expect("connected above");
        let timeout = settings.fetch_max_wait + Duration::from_secs(10);
        let resp: FetchResponse = match c.call(ApiKey::Fetch, FETCH_VERSION, &req, timeout).await {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(leader, error = %e, "fetch from the leader failed");
                client = None;
                tokio::time::sleep(settings.fetch_backoff).await;
                continue;
            }
        };
        if resp.error_code != 0 {
            tracing::debug!(leader, code = resp.error_code, "fetch refused");
            tokio::time::sleep(settings.fetch_backoff).await;
            continue;
        }
        let Some(b) = broker.upgrade() else { return };
        let b2 = b.clone();
        // Appends and truncations touch the disk: off the async workers.
        let backoff = tokio::task::spawn_blocking(move || apply_response(&b2, leader, resp, &logs)).await.unwrap_or(true);
        drop(b);
        if backoff {
            tokio::time::sleep(settings.fetch_backoff).await;
        }
    }
}

fn build_request(b: &Arc<Broker>, parts: &[(TopicPartition, Following)], s: &super::Settings) -> (FetchRequest, Vec<(TopicPartition, Arc<Partition>)>) {
    let mut topics: Vec<FetchTopic> = Vec::new();
    let mut logs = Vec::with_capacity(parts.len());
    for (tp, f) in parts {
        let Some(log) = b.logs.get(tp) else { continue };
        let fp = FetchPartition::default()
            .with_partition(tp.partition)
            .with_current_leader_epoch(f.leader_epoch)
            .with_fetch_offset(log.log_end_offset())
            .with_last_fetched_epoch(log.latest_epoch().unwrap_or(-1))
            .with_log_start_offset(log.log_start_offset())
            .with_partition_max_bytes(s.partition_fetch_max_bytes);
        match topics.iter_mut().find(|t| t.topic.0.as_str() == tp.topic) {
            Some(t) => t.partitions.push(fp),
            None => topics.push(FetchTopic::default().with_topic(TopicName(crate::api::str_bytes(&tp.topic))).with_partitions(vec![fp])),
        }
        logs.push((tp.clone(), log));
    }
    let req = FetchRequest::default()
        .with_replica_id(BrokerId(b.config.node_id))
        .with_max_wait_ms(s.fetch_max_wait.as_millis() as i32)
        .with_min_bytes(1)
        .with_max_bytes(s.fetch_response_max_bytes)
        .with_isolation_level(0)
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(topics);
    (req, logs)
}

/// What one partition's answer did.
#[derive(PartialEq)]
enum Outcome {
    /// Appended or truncated.
    Moved,
    /// Nothing new (the leader's long-poll expired).
    Idle,
    /// An error: retry after a pause.
    Retry,
}

/// Apply one fetch response; true when it only brought errors and the fetcher
/// should back off before asking again.
fn apply_response(b: &Arc<Broker>, leader: i32, resp: FetchResponse, logs: &[(TopicPartition, Arc<Partition>)]) -> bool {
    let (mut progressed, mut failed) = (false, false);
    for t in resp.responses {
        for pd in t.partitions {
            let tp = TopicPartition::new(t.topic.0.as_str(), pd.partition_index);
            let Some((_, log)) = logs.iter().find(|(x, _)| *x == tp) else { continue };
            // The image may have moved while the request was out: only act for the same leader.
            if !b.replicas.followed_from(leader).iter().any(|(x, _)| *x == tp) {
                continue;
            }
            match apply_partition(b, log, &pd) {
                Ok(Outcome::Moved) => progressed = true,
                Ok(Outcome::Idle) => {}
                Ok(Outcome::Retry) => failed = true,
                Err(e) => {
                    failed = true;
                    tracing::warn!(partition = %tp.dir_name(), leader, error = %e, "replicating from the leader failed");
                }
            }
        }
    }
    failed && !progressed
}

fn apply_partition(b: &Broker, log: &Arc<Partition>, pd: &PartitionData) -> crate::log::Result<Outcome> {
    match ResponseError::try_from_code(pd.error_code) {
        None => {}
        Some(ResponseError::OffsetOutOfRange) => {
            let ours = log.log_end_offset();
            if ours < pd.log_start_offset {
                // Everything we have is gone from the leader: start over at its log start.
                tracing::info!(partition = %log.tp.dir_name(), ours, leader_start = pd.log_start_offset, "below the leader's log start: restarting the replica there");
                log.truncate_fully_and_start_at(pd.log_start_offset)?;
            } else if pd.high_watermark >= 0 && ours > pd.high_watermark {
                tracing::info!(partition = %log.tp.dir_name(), ours, to = pd.high_watermark, "past the leader's log end: truncating to its high watermark");
                log.truncate_to(pd.high_watermark)?;
            } else {
                return Ok(Outcome::Retry);
            }
            return Ok(Outcome::Moved);
        }
        Some(_) => return Ok(Outcome::Retry), // leadership moved or not yet known there: wait for metadata
    }
    let div = &pd.diverging_epoch;
    if div.epoch >= 0 || div.end_offset >= 0 {
        // Our log holds batches of an epoch the leader's log ended earlier (or never
        // had): cut ours at the earliest point both agree on.
        let ours = log.end_offset_for_epoch(div.epoch).map(|(_, end)| end).unwrap_or(log.log_start_offset());
        let to = ours.min(div.end_offset.max(log.log_start_offset()));
        tracing::info!(partition = %log.tp.dir_name(), from = log.log_end_offset(), to, epoch = div.epoch, "log diverged from the leader's: truncating");
        log.truncate_to(to)?;
        return Ok(Outcome::Moved);
    }
    let mut moved = Outcome::Idle;
    if let Some(records) = pd.records.as_ref().filter(|r| !r.is_empty())
        && b.logs.append_replica(log, records)?.batches > 0
    {
        moved = Outcome::Moved;
    }
    // A follower's high watermark: the leader's, within what it holds durably.
    log.set_hw_cap(pd.high_watermark);
    // DeleteRecords and retention on the leader move its log start: follow it
    // (bounded by our own high watermark, as on the leader).
    if pd.log_start_offset > log.log_start_offset() {
        log.delete_records_before(pd.log_start_offset)?;
    }
    Ok(moved)
}
