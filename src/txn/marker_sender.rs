//! Sending a transaction's markers to the leaders of its partitions (Kafka's
//! `TransactionMarkerChannelManager`): the partitions are grouped by their current
//! leader in the metadata image; those this node leads are written through
//! [`super::marker`] directly, every other leader gets WriteTxnMarkers requests (at
//! most [`MAX_PARTITIONS_PER_REQUEST`] partitions each), all concurrently. A partition
//! whose leader is unknown, moved, unreachable or slow is retried from a fresh image,
//! with backoff, until every partition has its marker or the attempt's time is up (the
//! coordinator's ticker then runs the completion again; markers are idempotent in
//! effect: a second one for a transaction already ended changes nothing).
//!
//! Limits: [`MAX_INFLIGHT_REQUESTS`] WriteTxnMarkers requests in flight from this node,
//! at most one idle connection kept per broker.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::write_txn_markers_request::{WritableTxnMarker, WritableTxnMarkerTopic};
use kafka_protocol::messages::{ApiKey, TopicName, WriteTxnMarkersRequest, WriteTxnMarkersResponse};
use parking_lot::Mutex;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::marker::{self, Marker, MarkerError};
use crate::broker::Broker;
use crate::replication::client::Client;

/// Partitions named in one WriteTxnMarkers request; a larger transaction is split.
pub const MAX_PARTITIONS_PER_REQUEST: usize = 1_000;
/// WriteTxnMarkers requests this node has in flight at once (all transactions).
pub const MAX_INFLIGHT_REQUESTS: usize = 32;
/// How long one completion attempt keeps retrying before it gives up (and the ticker
/// tries again later). Below a client's 30 s request timeout, so an EndTxn waiting on
/// it is answered (retriably) rather than timed out.
const ATTEMPT_BUDGET: Duration = Duration::from_secs(25);
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(1);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// A leader answers within its replication timeout; allow for the network on top.
const CALL_TIMEOUT: Duration = Duration::from_secs(35);
/// WriteTxnMarkers responses are small: an error code per partition.
const MAX_RESPONSE_BYTES: usize = 1 << 20;
/// The only version Kafka 4.x brokers accept.
const WRITE_TXN_MARKERS_VERSION: i16 = 1;

type Tp = (String, i32);

/// Connections to other brokers for markers, shared by every completion.
pub struct Channels {
    /// Broker id → (address, idle connection). A request takes the connection out (or
    /// connects) and puts it back after a clean exchange, so concurrent requests to
    /// one broker use separate connections and only one is kept.
    idle: Mutex<HashMap<i32, (String, Client)>>,
    inflight: Semaphore,
}

impl Default for Channels {
    fn default() -> Self {
        Channels { idle: Mutex::new(HashMap::new()), inflight: Semaphore::new(MAX_INFLIGHT_REQUESTS) }
    }
}

impl Channels {
    async fn connection(&self, leader: i32, addr: &str, node_id: i32) -> Result<Client, MarkerError> {
        if let Some((a, c)) = self.idle.lock().remove(&leader)
            && a == addr
        {
            return Ok(c);
        }
        Client::connect(addr, &format!("sluice-txn-markers-{node_id}"), MAX_RESPONSE_BYTES, CONNECT_TIMEOUT).await.map_err(|e| {
            tracing::debug!(leader, addr, error = %e, "cannot reach a partition leader for markers");
            MarkerError::Unreachable
        })
    }

    fn put_back(&self, leader: i32, addr: String, c: Client) {
        self.idle.lock().insert(leader, (addr, c));
    }
}

/// Writes `m` to every partition in `tps` (a transaction's partitions). Ok once each
/// has it, or has moved past this producer epoch (INVALID_PRODUCER_EPOCH: Kafka too
/// considers the marker no longer needed there), or its topic is gone. Err with the
/// last failure when the attempt's time ran out, or CoordinatorFenced at once when a
/// partition has seen a newer coordinator or `deposed()` says this node no longer
/// coordinates the transaction (its completion must not go on).
pub async fn write_all(broker: &Arc<Broker>, tps: &[Tp], m: Marker, deposed: &(dyn Fn() -> bool + Send + Sync)) -> Result<(), MarkerError> {
    let deadline = Instant::now() + ATTEMPT_BUDGET;
    let mut pending: Vec<Tp> = tps.to_vec();
    let mut backoff = FIRST_BACKOFF;
    loop {
        if deposed() {
            return Err(MarkerError::CoordinatorFenced);
        }
        let image = broker.image();
        // A topic deleted (or shrunk, never in Kafka) since it was added has no log to
        // mark. (`__consumer_offsets` is an image topic too: its partition's leader
        // is the group coordinator that settles the staged offsets.)
        pending.retain(|(t, p)| image.topic(t).is_some_and(|ti| usize::try_from(*p).is_ok_and(|i| i < ti.partitions.len())));
        if pending.is_empty() {
            return Ok(());
        }
        let me = broker.config.node_id;
        let mut local = Vec::new();
        let mut remote: BTreeMap<i32, Vec<Tp>> = BTreeMap::new();
        let mut last_err = MarkerError::NotLeaderOrFollower;
        let mut retry = Vec::new();
        for tp in pending.drain(..) {
            let leader = image.topic(&tp.0).map(|t| t.partitions[tp.1 as usize].leader);
            match leader {
                Some(l) if l == me => local.push(tp),
                Some(l) if l >= 0 && image.is_live(l) && image.brokers.contains_key(&l) => remote.entry(l).or_default().push(tp),
                // No leader now (election under way): wait for the image to name one.
                _ => retry.push(tp),
            }
        }
        let mut tasks = Vec::new();
        if !local.is_empty() {
            let b = broker.clone();
            let parts = local.clone();
            tasks.push((local, tokio::spawn(async move { write_local(&b, &parts, m, deadline).await })));
        }
        for (leader, tps) in remote {
            let Some(addr) = image.brokers.get(&leader).map(|b| format!("{}:{}", b.host, b.port)) else { continue };
            for chunk in tps.chunks(MAX_PARTITIONS_PER_REQUEST) {
                let (b, parts, addr) = (broker.clone(), chunk.to_vec(), addr.clone());
                tasks.push((chunk.to_vec(), tokio::spawn(async move { write_remote(&b, leader, addr, &parts, m).await })));
            }
        }
        for (parts, task) in tasks {
            let results = task.await.unwrap_or_else(|_| vec![Err(MarkerError::Storage); parts.len()]);
            for (tp, r) in parts.into_iter().zip(results) {
                match r {
                    Ok(()) => {}
                    Err(MarkerError::InvalidProducerEpoch) => {
                        tracing::info!(topic = %tp.0, partition = tp.1, producer_id = m.producer_id, "partition has a newer producer epoch; marker not needed there");
                    }
                    Err(MarkerError::CoordinatorFenced) => return Err(MarkerError::CoordinatorFenced),
                    Err(e) => {
                        tracing::debug!(topic = %tp.0, partition = tp.1, producer_id = m.producer_id, error = %e, "marker not written yet; will retry");
                        last_err = e;
                        retry.push(tp);
                    }
                }
            }
        }
        if retry.is_empty() {
            return Ok(());
        }
        if Instant::now() + backoff >= deadline {
            return Err(last_err);
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
        pending = retry;
    }
}

/// The partitions this node leads: appended now, then each waited for.
async fn write_local(broker: &Arc<Broker>, tps: &[Tp], m: Marker, deadline: Instant) -> Vec<Result<(), MarkerError>> {
    let steps: Vec<_> = tps.iter().map(|(t, p)| marker::append(broker, t, *p, &m)).collect();
    let mut out = Vec::with_capacity(steps.len());
    for s in steps {
        out.push(s.finish(broker, &m, deadline).await);
    }
    out
}

/// One WriteTxnMarkers request to `leader` for `tps`; a result per partition, in order.
async fn write_remote(broker: &Arc<Broker>, leader: i32, addr: String, tps: &[Tp], m: Marker) -> Vec<Result<(), MarkerError>> {
    let channels = &broker.txns.channels;
    let Ok(_permit) = channels.inflight.acquire().await else { return vec![Err(MarkerError::Unreachable); tps.len()] };
    let mut topics: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (t, p) in tps {
        topics.entry(t).or_default().push(*p);
    }
    let marker = WritableTxnMarker::default()
        .with_producer_id(m.producer_id.into())
        .with_producer_epoch(m.producer_epoch)
        .with_transaction_result(m.commit)
        .with_coordinator_epoch(m.coordinator_epoch)
        .with_topics(
            topics
                .into_iter()
                .map(|(t, ps)| WritableTxnMarkerTopic::default().with_name(TopicName(crate::api::str_bytes(t))).with_partition_indexes(ps))
                .collect(),
        );
    let req = WriteTxnMarkersRequest::default().with_markers(vec![marker]);
    let mut client = match channels.connection(leader, &addr, broker.config.node_id).await {
        Ok(c) => c,
        Err(e) => return vec![Err(e); tps.len()],
    };
    let resp: WriteTxnMarkersResponse = match client.call(ApiKey::WriteTxnMarkers, WRITE_TXN_MARKERS_VERSION, &req, CALL_TIMEOUT).await {
        Ok(r) => r,
        Err(e) => {
            // The connection is in an unknown state: dropped, a new one next time.
            tracing::debug!(leader, addr, error = %e, "WriteTxnMarkers failed");
            return vec![Err(MarkerError::Unreachable); tps.len()];
        }
    };
    channels.put_back(leader, addr, client);
    let mut codes: HashMap<(&str, i32), i16> = HashMap::new();
    for r in resp.markers.iter().filter(|r| r.producer_id.0 == m.producer_id) {
        for t in &r.topics {
            for p in &t.partitions {
                codes.insert((t.name.0.as_str(), p.partition_index), p.error_code);
            }
        }
    }
    tps.iter()
        .map(|(t, p)| match codes.get(&(t.as_str(), *p)) {
            Some(0) => Ok(()),
            Some(&code) => Err(MarkerError::from_code(code)),
            // A leader that left a partition out of its answer: ask again.
            None => Err(MarkerError::Unreachable),
        })
        .collect()
}
