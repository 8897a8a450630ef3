//! Coordinator tests over a real broker (logs, transaction log, groups) in a
//! temporary directory: markers, LSO and aborted lists, fencing, timeout, and
//! restarts in the middle of a transaction.

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::{CreateTopicsRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType};

use super::*;
use crate::api::RequestContext;
use crate::config::Config;
use crate::log::manager::Partition;

const TOPIC: &str = "t";

async fn open(dir: &std::path::Path) -> Arc<Broker> {
    let mut c = Config::default();
    c.set_listen("127.0.0.1:0").unwrap();
    c.data_dir = dir.to_path_buf();
    let broker = Broker::open(c).unwrap();
    if broker.image().topic(TOPIC).is_none() {
        let ctx = RequestContext { broker: broker.clone(), api_version: 7, client_id: None, client_host: String::new() };
        let t = CreatableTopic::default().with_name(TopicName(StrBytes::from_static_str(TOPIC))).with_num_partitions(2).with_replication_factor(1);
        let r = crate::api::create_topics::handle(&ctx, CreateTopicsRequest::default().with_topics(vec![t])).await;
        assert_eq!(r.topics[0].error_code, 0);
    }
    // The group coordinator serves groups once it leads (and has loaded) their shard.
    assert!(crate::coordinator::topic::ensure_group_topic(&broker).await);
    broker.replicas.ensure_current(&broker);
    for _ in 0..500 {
        if broker.groups.check("g").is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(broker.groups.check("g"), Ok(()));
    // Likewise the transaction coordinator, once its shards are loaded.
    assert!(crate::coordinator::topic::ensure_txn_topic(&broker).await);
    broker.replicas.ensure_current(&broker);
    for _ in 0..500 {
        if ["tx", "open", "prepared"].iter().all(|id| broker.txns.check(id).is_ok()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(broker.txns.check("tx"), Ok(()));
    broker
}

fn partition(b: &Broker, p: i32) -> Arc<Partition> {
    let image = b.image();
    b.partition(image.topic(TOPIC).unwrap(), p).unwrap().unwrap()
}

async fn init(b: &Arc<Broker>, tid: &str) -> Result<(i64, i16)> {
    // Distinct ids across every test of the process; the broker's own block is private.
    static NEXT_ID: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(1000);
    let alloc = || async { Ok(NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed)) };
    TxnCoordinator::init_producer_id(b, tid, 60_000, None, alloc).await
}

/// Appends `n` transactional records at sequence `seq` through the produce check.
async fn produce(b: &Arc<Broker>, tid: &str, (pid, epoch): (i64, i16), p: i32, seq: i32, n: i32) -> std::result::Result<i64, i16> {
    let records: Vec<Record> = (0..n)
        .map(|i| Record {
            transactional: true,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id: pid,
            producer_epoch: epoch,
            timestamp_type: TimestampType::Creation,
            offset: i64::from(i),
            sequence: seq + i,
            timestamp: 0,
            key: None,
            value: Some(bytes::Bytes::from_static(b"v")),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(&mut buf, &records, &RecordEncodeOptions { version: 2, compression: Compression::None }).unwrap();
    let part = partition(b, p);
    let info = b.txns.with_open_txn(tid, pid, epoch, TOPIC, p, || b.logs.append(&part, &mut buf, 0).map_err(|_| -1))?;
    part.wait_durable(info.last_offset + 1).await;
    Ok(info.base_offset)
}

async fn settle<F: Fn() -> bool>(what: &str, cond: F) {
    for _ in 0..200 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for {what}");
}

fn tp(p: i32) -> (String, i32) {
    (TOPIC.to_string(), p)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_and_abort_write_markers_and_move_the_lso() {
    let dir = tempfile::tempdir().unwrap();
    let b = open(dir.path()).await;
    let id = init(&b, "tx").await.unwrap();
    assert_eq!(produce(&b, "tx", id, 0, 0, 2).await, Err(crate::protocol::ResponseError::InvalidTxnState.code()), "partition not added");
    b.txns.add("tx", id.0, id.1, &[tp(0), tp(1)], None).await.unwrap();
    let first = produce(&b, "tx", id, 0, 0, 3).await.unwrap();
    let p0 = partition(&b, 0);
    assert_eq!((p0.last_stable_offset(), p0.high_watermark()), (first, 3));
    TxnCoordinator::end_txn(&b, "tx", id.0, id.1, false).await.unwrap();
    assert_eq!(b.txns.describe("tx").unwrap().state, TxnState::CompleteAbort);
    // Data 0..3, ABORT marker at 3; partition 1 got a marker for nothing.
    assert_eq!((p0.last_stable_offset(), p0.high_watermark()), (4, 4));
    let read = p0.read_committed(0, 1 << 20, true).unwrap();
    assert_eq!(read.aborted, vec![crate::log::AbortedTxn { producer_id: id.0, first_offset: 0, last_offset: 3 }]);
    assert_eq!(partition(&b, 1).high_watermark(), 1);

    // AddOffsetsToTxn's partitions: the group's __consumer_offsets partition.
    let gt = crate::coordinator::GROUP_TOPIC;
    let gp = (gt.to_string(), crate::coordinator::partition_for("g", b.image().topic(gt).unwrap().partitions.len() as i32));
    b.txns.add("tx", id.0, id.1, &[tp(0), gp], Some("g")).await.unwrap();
    produce(&b, "tx", id, 0, 3, 1).await.unwrap();
    b.txns.check_offset_commit("tx", id.0, id.1, "g").unwrap();
    let c = crate::group::Committed { offset: 42, leader_epoch: -1, metadata: String::new(), commit_timestamp_ms: 1 };
    b.groups.stage_txn_offsets("g", id.0, vec![((TOPIC.into(), 1), c)]).unwrap().await.unwrap();
    assert_eq!(b.groups.fetch_offsets("g", None, false).len(), 0, "staged offsets are invisible");
    let stable = b.groups.fetch_offsets("g", Some(vec![(TOPIC.into(), 1)]), true);
    assert_eq!(stable[0].1, Err(()), "UNSTABLE_OFFSET_COMMIT while the transaction is open");
    TxnCoordinator::end_txn(&b, "tx", id.0, id.1, true).await.unwrap();
    assert_eq!(p0.last_stable_offset(), 6);
    assert_eq!(p0.read_committed(4, 1 << 20, true).unwrap().aborted, vec![]);
    let offsets = b.groups.fetch_offsets("g", None, false);
    assert_eq!(offsets[0].1.as_ref().unwrap().as_ref().unwrap().offset, 42);
    // A retried commit is answered as done; an abort now is a state error.
    TxnCoordinator::end_txn(&b, "tx", id.0, id.1, true).await.unwrap();
    assert_eq!(TxnCoordinator::end_txn(&b, "tx", id.0, id.1, false).await, Err(Error::InvalidTxnState));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_incarnation_and_timeout_fence_and_abort() {
    let dir = tempfile::tempdir().unwrap();
    let b = open(dir.path()).await;
    let old = init(&b, "tx").await.unwrap();
    b.txns.add("tx", old.0, old.1, &[tp(0)], None).await.unwrap();
    produce(&b, "tx", old, 0, 0, 2).await.unwrap();
    assert_eq!(init(&b, "tx").await, Err(Error::ConcurrentTransactions), "the open transaction is being aborted");
    settle("fence abort", || b.txns.describe("tx").unwrap().state == TxnState::CompleteAbort).await;
    let new = init(&b, "tx").await.unwrap();
    assert_eq!(new, (old.0, old.1 + 2));
    let p0 = partition(&b, 0);
    assert_eq!(p0.last_stable_offset(), p0.high_watermark());
    assert_eq!(produce(&b, "tx", old, 0, 2, 1).await, Err(crate::protocol::ResponseError::InvalidProducerEpoch.code()));
    assert_eq!(b.txns.add("tx", old.0, old.1, &[tp(0)], None).await, Err(Error::ProducerFenced));

    // Timeout: the coordinator bumps the epoch and aborts.
    b.txns.add("tx", new.0, new.1, &[tp(1)], None).await.unwrap();
    produce(&b, "tx", new, 1, 0, 1).await.unwrap();
    TxnCoordinator::expire(&b, crate::log::system_time_ms() + 60_001);
    settle("timeout abort", || b.txns.describe("tx").unwrap().state == TxnState::CompleteAbort).await;
    assert_eq!(b.txns.describe("tx").unwrap().producer_epoch, new.1 + 1);
    let p1 = partition(&b, 1);
    assert_eq!(p1.last_stable_offset(), p1.high_watermark());
    assert_eq!(TxnCoordinator::end_txn(&b, "tx", new.0, new.1, true).await, Err(Error::ProducerFenced));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_keeps_open_transactions_open_and_finishes_prepared_ones() {
    let dir = tempfile::tempdir().unwrap();
    let b = open(dir.path()).await;
    let a = init(&b, "open").await.unwrap();
    b.txns.add("open", a.0, a.1, &[tp(0)], None).await.unwrap();
    produce(&b, "open", a, 0, 0, 2).await.unwrap();
    let c = init(&b, "prepared").await.unwrap();
    b.txns.add("prepared", c.0, c.1, &[tp(1)], None).await.unwrap();
    produce(&b, "prepared", c, 1, 0, 2).await.unwrap();
    // Crash right after PrepareCommit was logged, before any marker.
    let pending = {
        let (store, entry) = b.txns.entry("prepared").unwrap();
        let mut m = entry.lock();
        assert_eq!(m.end(c.0, c.1, true), Ok(EndOutcome::Prepared));
        TxnCoordinator::persist(&store, &m).unwrap()
    };
    TxnCoordinator::wait(Some(pending)).await.unwrap();
    drop(b);

    let b = open(dir.path()).await;
    assert_eq!(b.txns.describe("open").unwrap().state, TxnState::Ongoing);
    let p0 = partition(&b, 0);
    assert_eq!((p0.last_stable_offset(), p0.high_watermark()), (0, 2), "rebuilt from the log");
    settle("prepared commit resumed", || b.txns.describe("prepared").unwrap().state == TxnState::CompleteCommit).await;
    let p1 = partition(&b, 1);
    assert_eq!((p1.last_stable_offset(), p1.high_watermark()), (3, 3));
    assert!(p1.read_committed(0, 1 << 20, true).unwrap().aborted.is_empty());
    // The new incarnation aborts the open one; the abort survives another restart.
    assert_eq!(init(&b, "open").await, Err(Error::ConcurrentTransactions));
    settle("abort", || b.txns.describe("open").unwrap().state == TxnState::CompleteAbort).await;
    drop((p0, p1, b));
    let b = open(dir.path()).await;
    let p0 = partition(&b, 0);
    assert_eq!(p0.last_stable_offset(), 3);
    assert_eq!(p0.read_committed(0, 1 << 20, true).unwrap().aborted.len(), 1);
}

/// A partition the image says another broker leads: markers for it are refused with
/// NOT_LEADER_OR_FOLLOWER, as Kafka's ReplicaManager does; an unknown partition with
/// UNKNOWN_TOPIC_OR_PARTITION.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn markers_need_the_leader_here() {
    use crate::metadata::MetadataRecord;
    use marker::{Marker, MarkerError, Step};
    let dir = tempfile::tempdir().unwrap();
    let b = open(dir.path()).await;
    let m = Marker { producer_id: 4242, producer_epoch: 0, coordinator_epoch: 0, commit: true };
    let failed = |s: Step| match s {
        Step::Failed(e) => Some(e),
        _ => None,
    };
    assert_eq!(failed(marker::append(&b, TOPIC, 2, &m)), Some(MarkerError::UnknownTopicOrPartition));
    assert_eq!(failed(marker::append(&b, "nope", 0, &m)), Some(MarkerError::UnknownTopicOrPartition));
    // Partition 1 moves to a broker 2 that exists only in the image.
    let t = b.image().topic(TOPIC).unwrap().clone();
    let p1 = t.partitions[1].clone();
    let store = b.metadata.clone();
    tokio::task::spawn_blocking(move || {
        store.propose(|_| {
            Ok(vec![
                MetadataRecord::RegisterBroker { id: 2, incarnation: uuid::Uuid::new_v4(), host: "127.0.0.1".into(), port: 1, rack: None },
                MetadataRecord::UnfenceBroker { id: 2 },
                MetadataRecord::Partition { topic_id: t.id, partition: 1, leader: 2, leader_epoch: p1.leader_epoch + 1, replicas: vec![1, 2], isr: vec![1, 2], adding_replicas: vec![], removing_replicas: vec![] },
            ])
        })
    })
    .await
    .unwrap()
    .unwrap();
    let e = failed(marker::append(&b, TOPIC, 1, &m));
    assert_eq!(e, Some(MarkerError::NotLeaderOrFollower));
    assert_eq!(e.unwrap().code(), 6);
    // Partition 0 is still led here: the marker is written and replicated (one node).
    let step = marker::append(&b, TOPIC, 0, &m);
    assert!(matches!(step, Step::Appended { .. }));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    assert_eq!(step.finish(&b, &m, deadline).await, Ok(()));
}

/// Pure sharding: an id is served only by the loaded shard it hashes to; a loading
/// shard answers COORDINATOR_LOAD_IN_PROGRESS; unloading forgets just its ids.
#[test]
fn ids_are_served_by_the_loaded_shard_they_hash_to() {
    let dir = tempfile::tempdir().unwrap();
    let logs = crate::log::manager::LogManager::new(dir.path()).unwrap();
    let tc = TxnCoordinator::sharded(Settings { max_timeout_ms: 1000, abort_interval: Duration::from_secs(1) });
    let n = 4;
    let ids: Vec<String> = (0..40).map(|i| format!("id-{i}")).collect();
    let mine = ids.iter().find(|i| crate::coordinator::partition_for(i, n) == 1).unwrap().clone();
    let other = ids.iter().find(|i| crate::coordinator::partition_for(i, n) == 2).unwrap().clone();
    assert_eq!(tc.check(&mine), Err(Error::NotCoordinator), "no shard at all");
    tc.shards.set_loading(n, 1, 3);
    assert_eq!(tc.check(&mine), Err(Error::CoordinatorLoadInProgress));
    assert_eq!(tc.check(&other), Err(Error::NotCoordinator));
    tc.shards.set_loaded(1, Arc::new(store::Store::standalone(&logs, 1).unwrap()));
    assert_eq!(tc.check(&mine), Ok(()));
    assert_eq!(tc.check(&other), Err(Error::NotCoordinator));
    for id in [&mine, &other] {
        tc.txns.write().insert(id.clone(), Arc::new(Mutex::new(TxnMeta::new(id, 1, 1000))));
    }
    // Known here but not coordinated here: not served.
    assert_eq!(tc.entry(&other).err(), Some(Error::NotCoordinator));
    assert!(tc.entry(&mine).is_ok());
    tc.shards.remove(1);
    tc.unload(1);
    assert_eq!(tc.ids(), vec![other.clone()]);
    assert_eq!(tc.check(&mine), Err(Error::NotCoordinator));
    logs.close().unwrap();
}

/// A new leader epoch of the id's `__transaction_state` partition (same node) unloads
/// the shard and loads it again from the log: the open transaction survives, the old
/// shard can no longer write, and the markers carry the new epoch as coordinator
/// epoch, so a marker from the old one is refused (TRANSACTION_COORDINATOR_FENCED).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_leader_epoch_reloads_the_shard_and_fences_the_old_coordinator() {
    use crate::metadata::MetadataRecord;
    use marker::{Marker, MarkerError, Step};
    let dir = tempfile::tempdir().unwrap();
    let b = open(dir.path()).await;
    let id = init(&b, "tx").await.unwrap();
    b.txns.add("tx", id.0, id.1, &[tp(0)], None).await.unwrap();
    produce(&b, "tx", id, 0, 0, 2).await.unwrap();
    let old = b.txns.access("tx").unwrap();
    let old_epoch = old.leader_epoch();

    let t = b.image().topic(crate::coordinator::TXN_TOPIC).unwrap().clone();
    let index = crate::coordinator::partition_for("tx", t.partitions.len() as i32);
    let pi = t.partitions[index as usize].clone();
    let store = b.metadata.clone();
    tokio::task::spawn_blocking(move || {
        store.propose(|_| {
            Ok(vec![MetadataRecord::Partition {
                topic_id: t.id,
                partition: index,
                leader: pi.leader,
                leader_epoch: pi.leader_epoch + 1,
                replicas: pi.replicas.clone(),
                isr: pi.isr.clone(),
                adding_replicas: vec![],
                removing_replicas: vec![],
            }])
        })
    })
    .await
    .unwrap()
    .unwrap();
    b.replicas.ensure_current(&b);
    settle("shard reloaded at the new epoch", || b.txns.access("tx").is_ok_and(|s| s.leader_epoch() == old_epoch + 1)).await;
    assert!(old.resigned());
    assert_eq!(old.append(&b.txns.describe("tx").unwrap()), Err(Error::NotCoordinator));
    assert_eq!(b.txns.describe("tx").unwrap().state, TxnState::Ongoing, "replayed from the log");

    TxnCoordinator::end_txn(&b, "tx", id.0, id.1, true).await.unwrap();
    let p0 = partition(&b, 0);
    assert_eq!((p0.last_stable_offset(), p0.high_watermark()), (3, 3));
    let stale = Marker { producer_id: id.0, producer_epoch: id.1, coordinator_epoch: old_epoch, commit: false };
    match marker::append(&b, TOPIC, 0, &stale) {
        Step::Failed(e) => assert_eq!(e, MarkerError::CoordinatorFenced),
        _ => panic!("a marker of the old coordinator epoch was appended"),
    }
    let current = Marker { coordinator_epoch: old_epoch + 1, ..stale };
    assert!(matches!(marker::append(&b, TOPIC, 0, &current), Step::Appended { .. }), "the same epoch is accepted (a retried marker)");
}
