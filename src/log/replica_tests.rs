//! Tests of the replication primitives: the leader epoch cache, replica appends,
//! truncation, and the manager's durable end / high watermark split. Real batches on
//! real files.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::manager::{Durable, LogManager, Partition, TopicPartition};
use super::partition_tests::{read_all, tiny_config};
use super::test_util::{self, Spec};
use super::{Error, PartitionLog};
use crate::protocol::control::{ControlType, marker_batch};
use crate::protocol::records::BatchHeader;

fn open(dir: &Path) -> PartitionLog {
    PartitionLog::open(dir, tiny_config()).unwrap()
}

/// A batch of `records` records whose timestamps start at `ts`, with values big enough
/// that tiny_config's 1 KiB segments roll every few batches.
fn batch(records: usize, ts: i64) -> Vec<u8> {
    test_util::build(&Spec { records, value_bytes: 60, first_timestamp: ts, timestamp_step: 3, ..Spec::default() })
}

/// Appends 30 batches of 1-3 records as a leader at epochs 0 (batches 0-9), 2 (10-19) and
/// 5 (20-29); returns the base offset of every batch.
fn fill_leader(log: &mut PartitionLog) -> Vec<i64> {
    (0..30)
        .map(|i| {
            let epoch = [0, 2, 5][i / 10];
            log.append(&mut batch(1 + i % 3, 1_000 + i as i64 * 100), epoch).unwrap().base_offset
        })
        .collect()
}

/// The log's stored bytes from its start, batch by batch (what a follower would fetch).
fn stored_bytes(log: &PartitionLog) -> Vec<u8> {
    read_all(log).into_iter().flat_map(|(_, b)| b).collect()
}

/// Every offset from the log start to the log end can be read and lands in the batch
/// holding it; every record's timestamp is found by offset_for_timestamp.
fn assert_readable(log: &PartitionLog) {
    let all = read_all(log);
    for offset in log.log_start_offset()..log.log_end_offset() {
        let r = log.read(offset, 1, i64::MAX, true).unwrap();
        let h = BatchHeader::parse(&r.records).unwrap();
        assert!(h.base_offset <= offset && offset <= h.last_offset(), "read at {offset} gave {h:?}");
    }
    for (h, _) in &all {
        // Some record at or before this batch has a timestamp this large.
        let (offset, ts) = log.offset_for_timestamp(h.base_timestamp).unwrap().unwrap();
        assert!(offset <= h.base_offset && ts >= h.base_timestamp, "{h:?}: ({offset}, {ts})");
    }
    let past = all.iter().map(|(h, _)| h.max_timestamp + 1).max().unwrap_or(0);
    assert_eq!(log.offset_for_timestamp(past).unwrap(), None);
}

#[test]
fn epoch_cache_follows_appends_and_answers_like_kafka() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path());
    assert_eq!((log.latest_epoch(), log.end_offset_for_epoch(0)), (None, None));
    let bases = fill_leader(&mut log);
    let (e2, e5, leo) = (bases[10], bases[20], log.log_end_offset());
    assert_eq!(log.epoch_entries(), vec![(0, 0), (2, e2), (5, e5)]);
    assert_eq!(log.latest_epoch(), Some(5));
    assert_eq!(log.end_offset_for_epoch(1), Some((0, e2)));
    assert_eq!(log.end_offset_for_epoch(2), Some((2, e5)));
    assert_eq!(log.end_offset_for_epoch(5), Some((5, leo)));
    assert_eq!(log.end_offset_for_epoch(9), Some((5, leo)));
    assert_eq!(log.end_offset_for_epoch(-1), None);
    // A stale (smaller) epoch stamped on a batch does not go back.
    log.append(&mut batch(1, 9_000), 3).unwrap();
    assert_eq!(log.latest_epoch(), Some(5));
    // A new leader's epoch, assigned at the log end before any batch of its own.
    let leo = log.log_end_offset();
    log.assign_epoch(7, leo).unwrap();
    log.assign_epoch(6, leo).unwrap(); // older: ignored
    assert_eq!(log.end_offset_for_epoch(5), Some((5, leo)));
    assert_eq!(log.end_offset_for_epoch(7), Some((7, leo)));
    assert!(matches!(log.assign_epoch(8, leo + 1), Err(Error::OffsetOutOfRange { .. })));
    log.append(&mut batch(2, 9_100), 7).unwrap();
    assert_eq!(log.epoch_entries().last(), Some(&(7, leo)));
    let kept = log.epoch_entries();
    let text = std::fs::read_to_string(dir.path().join("leader-epoch-checkpoint")).unwrap();
    assert!(text.starts_with(&format!("0\n{}\n0 0\n2 {e2}\n", kept.len())), "{text}");

    // Persisted across a clean close and across a crash (no close).
    log.close().unwrap();
    let log = open(dir.path());
    assert_eq!(log.epoch_entries(), kept);
    drop(log);
    let log = open(dir.path());
    assert_eq!(log.epoch_entries(), kept);
    drop(log);
    // Rebuilt from the batch headers when the checkpoint is missing or torn.
    std::fs::remove_file(dir.path().join("leader-epoch-checkpoint")).unwrap();
    let log = open(dir.path());
    assert_eq!(log.epoch_entries(), kept);
    drop(log);
    std::fs::write(dir.path().join("leader-epoch-checkpoint"), "0\n4\n0 0\n").unwrap();
    let log = open(dir.path());
    assert_eq!(log.epoch_entries(), kept);
    drop(log);
    // A checkpoint that lost its last entries is filled in.
    std::fs::write(dir.path().join("leader-epoch-checkpoint"), "0\n1\n0 0\n").unwrap();
    assert_eq!(open(dir.path()).epoch_entries(), kept);
}

#[test]
fn an_assigned_epoch_without_batches_is_dropped_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path());
    log.append(&mut batch(2, 1_000), 1).unwrap();
    log.assign_epoch(4, 2).unwrap();
    assert_eq!(log.epoch_entries(), vec![(1, 0), (4, 2)]);
    drop(log);
    assert_eq!(open(dir.path()).epoch_entries(), vec![(1, 0)], "Kafka drops entries at the log end on load");
}

/// A deposed leader that wrote nothing in its epoch: the new leader says the
/// follower's log diverges at its log end; truncating there must forget the epoch,
/// or the follower would ask with it, and be told to truncate, forever.
#[test]
fn truncating_at_the_log_end_drops_an_epoch_assigned_there() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path());
    log.append(&mut batch(2, 1_000), 0).unwrap();
    log.assign_epoch(1, 2).unwrap();
    assert_eq!(log.latest_epoch(), Some(1));
    log.truncate_to(2).unwrap();
    assert_eq!((log.latest_epoch(), log.log_end_offset()), (Some(0), 2));
    assert_eq!(open_again(log, dir.path()).epoch_entries(), vec![(0, 0)]);
}

fn open_again(log: PartitionLog, dir: &Path) -> PartitionLog {
    drop(log);
    open(dir)
}

#[test]
fn log_start_moves_keep_the_covering_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path());
    let bases = fill_leader(&mut log);
    let start = bases[12] + 1;
    let hw = log.log_end_offset();
    log.delete_records_before(start, hw).unwrap();
    assert_eq!(log.epoch_entries(), vec![(2, start), (5, bases[20])]);
    assert_eq!(log.end_offset_for_epoch(0), None, "epoch 0 is gone with its records");
    drop(log);
    assert_eq!(open(dir.path()).epoch_entries(), vec![(2, start), (5, bases[20])]);
}

#[test]
fn replica_append_reproduces_the_leader_log_byte_for_byte() {
    let (ldir, fdir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut leader = open(ldir.path());
    for i in 0..10 {
        leader.append(&mut test_util::idempotent(7, 0, i * 2, 2), i / 4).unwrap();
    }
    fill_leader(&mut leader); // epochs 0, 2, 5 after 0..2: smaller ones are not recorded
    let mut txn = test_util::build(&Spec { records: 2, producer_id: 9, producer_epoch: 0, base_sequence: 0, transactional: true, ..Spec::default() });
    leader.append(&mut txn, 5).unwrap();
    let leo = leader.log_end_offset();

    let mut follower = open(fdir.path());
    // Fetch in pieces, as a follower does, each of up to ~700 bytes of whole batches.
    while follower.log_end_offset() < leo {
        let r = leader.read(follower.log_end_offset(), 700, i64::MAX, true).unwrap();
        let info = follower.append_replica(&r.records).unwrap();
        assert_eq!(info.base_offset, BatchHeader::parse(&r.records).unwrap().base_offset);
        assert!(!info.duplicate);
    }
    assert_eq!(follower.log_end_offset(), leo);
    assert_eq!(stored_bytes(&follower), stored_bytes(&leader));
    assert_eq!(follower.epoch_entries(), leader.epoch_entries());
    assert_eq!(follower.producer_state(7), leader.producer_state(7));
    assert_eq!(follower.txn_index().ongoing(), leader.txn_index().ongoing());
    assert!(follower.segment_count() > 3, "the follower rolls segments too");
    assert_readable(&follower);
    // A retry of the producer's last batch is a duplicate on the follower too, should it
    // become the leader.
    let dup = follower.append(&mut test_util::idempotent(7, 0, 18, 2), 6).unwrap();
    assert!(dup.duplicate);
    drop(follower);
    let follower = open(fdir.path());
    assert_eq!(stored_bytes(&follower), stored_bytes(&leader));
    assert_eq!(follower.epoch_entries(), leader.epoch_entries());
}

#[test]
fn replica_append_accepts_gaps_and_refuses_going_back() {
    let (dir, src_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut src = open(src_dir.path());
    let mut b = batch(3, 1_000);
    src.append(&mut b, 4).unwrap(); // `b` now carries offsets 0..3 and epoch 4
    let at = |base: i64| {
        let mut x = b.clone();
        crate::protocol::records::set_base_offset(&mut x, base);
        x
    };
    let mut log = open(dir.path());
    log.append_replica(&at(0)).unwrap();
    // A gap (the leader compacted 3..100 away) is fine; the log end follows the batch.
    let info = log.append_replica(&at(100)).unwrap();
    assert_eq!((info.base_offset, info.last_offset, log.log_end_offset()), (100, 102, 103));
    let r = log.read(3, 1 << 20, i64::MAX, false).unwrap();
    assert_eq!(BatchHeader::parse(&r.records).unwrap().base_offset, 100, "a read in the gap gets the next batch");
    // Below the log end, or going back inside one request: refused, nothing written.
    let err = log.append_replica(&at(101)).unwrap_err();
    assert!(matches!(err, Error::NonMonotonicOffset { base_offset: 101, expected_at_least: 103 }), "{err}");
    let mut two = at(200);
    two.extend(at(201));
    assert!(matches!(log.append_replica(&two), Err(Error::NonMonotonicOffset { base_offset: 201, .. })));
    let mut corrupt = at(300);
    let last = corrupt.len() - 1;
    corrupt[last] ^= 1;
    assert!(matches!(log.append_replica(&corrupt), Err(Error::Records(_))));
    assert_eq!(log.log_end_offset(), 103);
    assert_eq!(log.append_replica(&[]).unwrap().batches, 0);
    // A gap wider than a segment's relative offsets starts a new segment at the batch.
    let far = 103 + i64::from(i32::MAX) + 10;
    log.append_replica(&at(far)).unwrap();
    assert_eq!(log.segment_base_offsets().last(), Some(&far));
    assert_eq!(log.log_end_offset(), far + 3);
    drop(log);
    let log = open(dir.path());
    assert_eq!(log.log_end_offset(), far + 3);
    assert_eq!(log.epoch_entries(), vec![(4, 0)]);
}

#[test]
fn truncate_mid_log_then_reopen() {
    for crash in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open(dir.path());
        let bases = fill_leader(&mut log);
        let segments_before = log.segment_count();
        // Mid-batch: batch 23 (epoch 5) holds the target, so it goes whole.
        let cut = bases[23];
        assert_eq!(bases[24] - cut, 3, "batch 23 holds three records");
        log.truncate_to(cut + 1).unwrap();
        assert_eq!(log.log_end_offset(), cut);
        assert_eq!(log.recovery_point(), cut);
        assert!(log.segment_count() < segments_before);
        assert_eq!(log.epoch_entries(), vec![(0, 0), (2, bases[10]), (5, bases[20])]);
        assert_readable(&log);
        let kept = stored_bytes(&log);
        // Appends continue at the new end, with dense offsets.
        log.append(&mut batch(2, 50_000), 6).unwrap();
        assert_eq!(log.epoch_entries().last(), Some(&(6, cut)));
        if crash {
            drop(log);
        } else {
            log.close().unwrap();
        }
        let log = open(dir.path());
        assert_eq!(log.log_end_offset(), cut + 2);
        assert_eq!(&stored_bytes(&log)[..kept.len()], &kept[..]);
        assert_eq!(log.epoch_entries().last(), Some(&(6, cut)));
        assert_readable(&log);

        // Across segment boundaries, down to the start of epoch 2.
        let mut log = log;
        log.truncate_to(bases[10]).unwrap();
        assert_eq!(log.log_end_offset(), bases[10]);
        assert_eq!(log.epoch_entries(), vec![(0, 0)]);
        assert_eq!(log.end_offset_for_epoch(2), Some((0, bases[10])));
        assert_readable(&log);
        log.truncate_to(log.log_end_offset() + 5).unwrap(); // past the end: nothing
        assert_eq!(log.log_end_offset(), bases[10]);
        drop(log);
        let log = open(dir.path());
        assert_eq!(log.log_end_offset(), bases[10]);
        assert_readable(&log);
    }
}

#[test]
fn truncation_rewinds_the_producer_state() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path());
    // Enough batches to roll (and snapshot) a few times before the cut.
    for seq in 0..20 {
        log.append(&mut test_util::build(&Spec { records: 1, value_bytes: 100, producer_id: 7, producer_epoch: 0, base_sequence: seq, ..Spec::default() }), 0).unwrap();
    }
    let retry = || test_util::build(&Spec { records: 1, value_bytes: 100, producer_id: 7, producer_epoch: 0, base_sequence: 19, ..Spec::default() });
    assert!(log.append(&mut retry(), 0).unwrap().duplicate);
    log.truncate_to(19).unwrap();
    assert_eq!(log.producer_state(7).unwrap().batches.back().unwrap().last_seq, 18);
    // The retried batch is new again (not a duplicate) and goes in at the new end.
    let info = log.append(&mut retry(), 1).unwrap();
    assert_eq!((info.duplicate, info.base_offset), (false, 19));
    log.truncate_to(10).unwrap();
    drop(log);
    let mut log = open(dir.path());
    assert_eq!(log.producer_state(7).unwrap().batches.back().unwrap().last_seq, 9);
    let seq10 = test_util::build(&Spec { records: 1, producer_id: 7, producer_epoch: 0, base_sequence: 10, ..Spec::default() });
    assert!(!log.append(&mut seq10.clone(), 1).unwrap().duplicate);
}

fn txn_batch(pid: i64, seq: i32) -> Vec<u8> {
    test_util::build(&Spec { records: 1, producer_id: pid, producer_epoch: 0, base_sequence: seq, transactional: true, ..Spec::default() })
}

#[test]
fn truncation_rewinds_the_txn_index() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path());
    log.append(&mut txn_batch(8, 0), 0).unwrap(); // 0: pid 8 opens
    log.append(&mut txn_batch(9, 0), 0).unwrap(); // 1: pid 9 opens
    log.append(&mut marker_batch(8, 0, 0, ControlType::Abort, 0), 0).unwrap(); // 2
    log.append(&mut txn_batch(9, 1), 0).unwrap(); // 3
    log.append(&mut marker_batch(9, 0, 0, ControlType::Commit, 0), 0).unwrap(); // 4
    log.append(&mut txn_batch(8, 1), 0).unwrap(); // 5: pid 8 opens again
    assert_eq!(log.txn_index().aborted_between(0, 6).len(), 1);
    assert_eq!(log.txn_index().ongoing().get(&8), Some(&5));

    // Below the commit marker: pid 9's transaction is open again, pid 8's second gone.
    log.truncate_to(4).unwrap();
    assert_eq!(log.txn_index().ongoing().get(&9), Some(&1));
    assert_eq!(log.txn_index().ongoing().get(&8), None);
    assert_eq!(log.txn_index().aborted_between(0, 4).len(), 1);
    // Below the abort marker: both open again, no aborted transaction left.
    log.truncate_to(2).unwrap();
    assert_eq!(log.txn_index().ongoing().get(&8), Some(&0));
    assert_eq!(log.txn_index().ongoing().get(&9), Some(&1));
    assert!(log.txn_index().aborted_between(0, 10).is_empty());
    drop(log);
    let log = open(dir.path());
    assert_eq!(log.txn_index().ongoing().len(), 2);
}

#[test]
fn truncation_below_a_settled_marker_rebuilds_the_txn_index() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path());
    log.append(&mut txn_batch(8, 0), 0).unwrap();
    log.append(&mut marker_batch(8, 0, 0, ControlType::Commit, 0), 0).unwrap();
    log.append(&mut batch(1, 5), 0).unwrap();
    // The marker passes the high watermark: the index forgets it as "completing".
    assert_eq!(log.txn.last_stable_offset(3), 3);
    log.truncate_to(1).unwrap();
    assert_eq!(log.txn_index().ongoing().get(&8), Some(&0));
    assert_eq!(log.txn.last_stable_offset(1), 0);
}

#[test]
fn truncate_fully_and_start_at() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path());
    fill_leader(&mut log);
    log.append(&mut test_util::idempotent(7, 0, 0, 1), 5).unwrap();
    log.truncate_fully_and_start_at(1_000).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset(), log.segment_count()), (1_000, 1_000, 1));
    assert_eq!((log.latest_epoch(), log.producer_count()), (None, 0));
    assert!(matches!(log.read(999, 100, i64::MAX, true), Err(Error::OffsetOutOfRange { .. })));
    // A follower then fetches from the leader's log start.
    let mut b = batch(2, 1_000);
    crate::protocol::records::set_base_offset(&mut b, 1_000);
    crate::protocol::records::set_partition_leader_epoch(&mut b, 9);
    // set_* change no CRC-covered bytes: the batch is still valid.
    log.append_replica(&b).unwrap();
    assert_eq!((log.log_end_offset(), log.epoch_entries()), (1_002, vec![(9, 1_000)]));
    drop(log);
    let log = open(dir.path());
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (1_000, 1_002));
    assert_readable(&log);
    // truncate_to below the log start is a full truncation (Kafka).
    let mut log = log;
    log.truncate_to(500).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (500, 500));
}

/// A manager with one partition; appends `n` one-record batches and waits until durable.
async fn manager_with(dir: &Path, n: usize) -> (Arc<LogManager>, Arc<Partition>) {
    let mgr = LogManager::new(dir).unwrap();
    let p = mgr.open(&TopicPartition::new("t", 0), tiny_config()).unwrap();
    for i in 0..n {
        mgr.append(&p, &mut batch(1, 1_000 + i as i64), 0).unwrap();
    }
    assert_eq!(p.wait_durable(n as i64).await, Durable::UpTo(n as i64));
    (mgr, p)
}

async fn within<T>(f: impl std::future::Future<Output = T>) -> Option<T> {
    tokio::time::timeout(Duration::from_millis(300), f).await.ok()
}

#[tokio::test]
async fn hw_cap_holds_the_high_watermark_and_releases_waiters() {
    let dir = tempfile::tempdir().unwrap();
    let (mgr, p) = manager_with(dir.path(), 0).await;
    let mut progress = mgr.subscribe_progress();
    progress.borrow_and_update();
    p.set_hw_cap(2);
    for i in 0..5 {
        mgr.append(&p, &mut batch(1, 1_000 + i), 0).unwrap();
    }
    p.wait_durable(5).await;
    assert_eq!((p.durable_end(), p.high_watermark()), (5, 2));
    // Publishing the durable end moved the HW, which bumps progress.
    assert!(within(progress.changed()).await.is_some(), "the HW moved to 2");
    // Consumers read up to the HW; followers to the log end.
    let records = |r: super::ReadResult| read_offsets(&r.records);
    assert_eq!(records(p.read(0, 1 << 20, false).unwrap()), vec![0, 1]);
    assert_eq!(records(p.read_to_log_end(0, 1 << 20, false).unwrap()), vec![0, 1, 2, 3, 4]);
    assert!(p.read(2, 1 << 20, false).unwrap().records.is_empty());
    assert!(p.last_stable_offset() <= p.high_watermark());

    let waiter = {
        let p = p.clone();
        tokio::spawn(async move { p.wait_high_watermark(4).await })
    };
    assert!(within(p.wait_high_watermark(3)).await.is_none(), "held below the cap");
    progress.borrow_and_update();
    p.set_hw_cap(4);
    assert_eq!(within(waiter).await.unwrap().unwrap(), Durable::UpTo(4));
    assert!(within(progress.changed()).await.is_some());
    // A lower cap never moves the HW back; no cap again: the durable end.
    p.set_hw_cap(1);
    assert_eq!(p.high_watermark(), 4);
    p.set_hw_cap(i64::MAX);
    assert_eq!(p.high_watermark(), 5);
    assert_eq!(within(p.wait_high_watermark(5)).await, Some(Durable::UpTo(5)));
    mgr.close().unwrap();
}

#[tokio::test]
async fn the_hw_follows_the_cap_then_the_flush() {
    let dir = tempfile::tempdir().unwrap();
    let (mgr, p) = manager_with(dir.path(), 3).await;
    assert_eq!(p.high_watermark(), 3);
    // A cap above the durable end: the HW waits for the flush.
    p.set_hw_cap(10);
    let waiter = {
        let p = p.clone();
        tokio::spawn(async move { p.wait_high_watermark(6).await })
    };
    for i in 0..3 {
        mgr.append(&p, &mut batch(1, 2_000 + i), 0).unwrap();
    }
    assert_eq!(within(waiter).await.unwrap().unwrap(), Durable::UpTo(6));
    assert_eq!(p.high_watermark(), 6);
    mgr.close().unwrap();
}

#[tokio::test]
async fn partition_truncation_clamps_the_watermarks() {
    let dir = tempfile::tempdir().unwrap();
    let (mgr, p) = manager_with(dir.path(), 0).await;
    p.set_hw_cap(6);
    for i in 0..8 {
        mgr.append(&p, &mut batch(1, 1_000 + i), 0).unwrap();
    }
    assert_eq!(p.wait_durable(8).await, Durable::UpTo(8));
    assert_eq!(p.high_watermark(), 6);
    p.truncate_to(4).unwrap();
    assert_eq!((p.log_end_offset(), p.durable_end(), p.high_watermark()), (4, 4, 4));
    assert_eq!(within(p.wait_durable(4)).await, Some(Durable::UpTo(4)));
    // A follower's appends from its leader, through the manager so the flusher syncs them.
    let src_dir = tempfile::tempdir().unwrap();
    let mut src = open(src_dir.path());
    let mut b = batch(3, 9_000);
    src.append(&mut b, 3).unwrap();
    crate::protocol::records::set_base_offset(&mut b, 4);
    let info = mgr.append_replica(&p, &b).unwrap();
    assert_eq!((info.base_offset, info.last_offset), (4, 6));
    assert_eq!(p.wait_durable(7).await, Durable::UpTo(7));
    assert_eq!(p.high_watermark(), 6, "still capped");
    assert_eq!((p.latest_epoch(), p.end_offset_for_epoch(0)), (Some(3), Some((0, 4))));
    p.assign_epoch(4, 7).unwrap();
    assert_eq!(p.end_offset_for_epoch(3), Some((3, 7)));
    p.truncate_fully_and_start_at(100).unwrap();
    assert_eq!((p.log_start_offset(), p.log_end_offset(), p.durable_end(), p.high_watermark()), (100, 100, 100, 100));
    assert_eq!(p.latest_epoch(), None);
    mgr.close().unwrap();
}

/// Base offsets of the batches in `records`.
fn read_offsets(records: &[u8]) -> Vec<i64> {
    crate::protocol::records::BatchIter::new(records).map(|(h, _)| h.base_offset).collect()
}

/// Open derives producer state, the transaction index and the leader epoch cache from
/// its one walk of each segment (recovery's, or a header walk of a trusted segment):
/// after a crash with part of the log below the recovery point, after a clean close, and
/// after a torn tail, they are what the appends left (less the cut batch).
#[test]
fn open_replays_producers_transactions_and_epochs_from_its_one_walk() {
    type State = (
        std::collections::HashMap<i64, i64>,
        Vec<super::AbortedTxn>,
        Vec<(i32, i64)>,
        Vec<Option<super::ProducerEntry>>,
        i64,
    );
    fn state(log: &PartitionLog) -> State {
        let txn = log.txn_index();
        (
            txn.ongoing().clone(),
            txn.aborted_between(0, i64::MAX),
            log.epoch_entries(),
            [5, 8, 9].iter().map(|&pid| log.producer_state(pid).cloned()).collect(),
            log.log_end_offset(),
        )
    }
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path());
    log.append(&mut txn_batch(8, 0), 0).unwrap();
    log.append(&mut txn_batch(9, 0), 0).unwrap();
    for seq in 0..8 {
        log.append(&mut test_util::idempotent(5, 0, seq * 10, 10), 0).unwrap();
    }
    log.append(&mut marker_batch(8, 0, 0, ControlType::Abort, 0), 0).unwrap();
    // The recovery point: what is below it is walked as trusted, the rest recovered.
    super::partition_tests::sync_and_checkpoint(&mut log);
    for seq in 8..16 {
        log.append(&mut test_util::idempotent(5, 0, seq * 10, 10), 3).unwrap();
    }
    log.append(&mut txn_batch(9, 1), 3).unwrap();
    log.append(&mut marker_batch(9, 0, 0, ControlType::Commit, 0), 3).unwrap();
    let before_last = state(&log);
    log.append(&mut txn_batch(8, 1), 3).unwrap(); // pid 8 opens a second transaction
    let expected = state(&log);
    assert!(log.segment_count() > 3, "{} segments", log.segment_count());
    assert_eq!(expected.0.keys().collect::<Vec<_>>(), [&8]);
    assert_eq!(expected.1.len(), 1);
    assert_eq!(expected.2.iter().map(|e| e.0).collect::<Vec<_>>(), [0, 3]);
    assert_ne!(before_last, expected);

    drop(log); // a crash: no close
    let mut log = open(dir.path());
    assert_eq!(state(&log), expected, "after a crash");
    log.close().unwrap();
    drop(log);
    let log = open(dir.path());
    assert_eq!(state(&log), expected, "after a clean close");

    drop(log);
    let last = super::partition_tests::segment_files(dir.path()).pop().unwrap();
    let len = std::fs::metadata(&last).unwrap().len();
    std::fs::OpenOptions::new().write(true).open(&last).unwrap().set_len(len - 10).unwrap();
    let log = open(dir.path());
    assert_eq!(state(&log), before_last, "after the last batch was torn");
}

/// Startup opens every local log on several threads: each comes back with what was
/// written, partitions already open are left alone, and a new one is created.
#[test]
fn open_all_opens_many_logs_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let tps: Vec<_> = (0..9).map(|i| TopicPartition::new("t", i)).collect();
    let mgr = LogManager::new(dir.path()).unwrap();
    for (i, tp) in tps.iter().enumerate() {
        let p = mgr.open(tp, tiny_config()).unwrap();
        for n in 0..i {
            mgr.append(&p, &mut batch(1, 1_000 + n as i64), 0).unwrap();
        }
    }
    mgr.close().unwrap();
    drop(mgr);

    let mgr = LogManager::new(dir.path()).unwrap();
    let kept = mgr.open(&tps[3], tiny_config()).unwrap();
    let mut all: Vec<_> = tps.iter().map(|tp| (tp.clone(), tiny_config())).collect();
    all.push((TopicPartition::new("new", 0), tiny_config()));
    all.push(all[0].clone()); // listed twice: opened once
    mgr.open_all(&all, 4).unwrap();
    for (i, tp) in tps.iter().enumerate() {
        assert_eq!(mgr.get(tp).unwrap().log_end_offset(), i as i64, "{tp:?}");
        // The clean checkpoints of the close are gone before anything can be appended
        // (made durable by open_all's one syncfs): a crash from here on recovers.
        let saved = super::checkpoint::Checkpoint::read(&mgr.dir().join(tp.dir_name())).unwrap();
        assert!(!saved.unwrap().clean_shutdown, "{tp:?}");
    }
    assert!(Arc::ptr_eq(&kept, &mgr.get(&tps[3]).unwrap()), "an open partition is not opened again");
    assert_eq!(mgr.get_by_name("new", 0).unwrap().log_end_offset(), 0);
    mgr.close().unwrap();
}
