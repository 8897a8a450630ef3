//! Tests of log compaction: what survives a pass, tombstones and their delete horizon,
//! producer state, offset gaps seen by reads, ListOffsets, retention and recovery,
//! crashes at every step of the swap, the dirty ratio and lag rules, a small dedupe
//! buffer, a property test over random keyed logs, and the background thread.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType};
use proptest::prelude::*;

use super::cleaner::{CleanerOptions, CrashPoint};
use super::manager::{LogManager, TopicPartition};
use super::{LogConfig, PartitionLog};
use crate::protocol::record_codec::DecodedBatch;
use crate::protocol::records::{self, BatchIter};

const HOUR_MS: i64 = 3_600_000;

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 1024,
        index_interval_bytes: 100,
        segment_index_bytes: 4096,
        max_message_bytes: 1 << 20,
        cleanup_compact: true,
        cleanup_delete: false,
        min_cleanable_dirty_ratio: 0.0,
        delete_retention_ms: HOUR_MS,
        ..LogConfig::default()
    }
}

type Kv = (Option<String>, Option<String>);

fn kv(key: &str, value: Option<&str>) -> Kv {
    (Some(key.to_string()), value.map(str::to_string))
}

/// One batch of `records` (key, value), as a client would send it.
fn batch_of(records: &[Kv], compression: Compression, ts: i64, producer: Option<(i64, i32)>) -> Vec<u8> {
    let (pid, base_seq) = producer.unwrap_or((-1, -1));
    let recs: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, (k, v))| Record {
            transactional: false,
            control: false,
            partition_leader_epoch: 0,
            producer_id: pid,
            producer_epoch: if pid >= 0 { 0 } else { -1 },
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: base_seq.wrapping_add(i as i32),
            timestamp: ts + i as i64,
            key: k.as_ref().map(|k| Bytes::from(k.clone())),
            value: v.as_ref().map(|v| Bytes::from(v.clone())),
            headers: Default::default(),
            delete_horizon: false,
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(&mut buf, &recs, &RecordEncodeOptions { version: 2, compression }).unwrap();
    buf.to_vec()
}

fn append(log: &mut PartitionLog, records: &[Kv], compression: Compression, ts: i64) -> i64 {
    let mut b = batch_of(records, compression, ts, None);
    log.append_at(&mut b, 0, ts).unwrap().base_offset
}

/// A record as a consumer sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    offset: i64,
    timestamp: i64,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
}

/// Every record from the log start, read the way Fetch reads, checking each batch's
/// CRC and that offsets strictly increase.
fn consume(log: &PartitionLog) -> Vec<Seen> {
    let mut out: Vec<Seen> = Vec::new();
    let mut offset = log.log_start_offset();
    let mut last_batch_end = i64::MIN;
    while offset < log.log_end_offset() {
        let r = log.read(offset, 500, i64::MAX, true).unwrap();
        if r.records.is_empty() {
            break; // only a gap up to the log end is left
        }
        let mut it = BatchIter::verified(&r.records);
        for (h, range) in it.by_ref() {
            assert!(h.base_offset >= last_batch_end, "batches overlap at {}", h.base_offset);
            assert!(h.last_offset() >= offset, "read at {offset} returned an earlier batch");
            last_batch_end = h.next_offset();
            let d = DecodedBatch::decode(&r.records[range], 1 << 24).unwrap();
            for rec in d.records() {
                let o = rec.offset(h.base_offset);
                assert!(out.last().is_none_or(|p| p.offset < o), "offsets must strictly increase");
                out.push(Seen { offset: o, timestamp: d.timestamp_of(&rec), key: rec.key.map(<[u8]>::to_vec), value: rec.value.map(<[u8]>::to_vec) });
            }
            offset = h.next_offset();
        }
        assert!(it.error().is_none(), "{:?}", it.error());
    }
    out
}

/// Makes everything durable (the cleaner stays below the recovery point) and seals the
/// active segment so all of it is cleanable.
fn seal(log: &mut PartitionLog) {
    log.mark_synced(log.log_end_offset());
    log.roll().unwrap();
}

fn clean(log: &mut PartitionLog, now_ms: i64) -> bool {
    let hw = log.log_end_offset();
    log.clean_at(now_ms, hw, &CleanerOptions::default()).unwrap().is_some()
}

fn latest_per_key(records: &[Seen]) -> BTreeMap<Vec<u8>, Seen> {
    let mut m = BTreeMap::new();
    for r in records {
        if let Some(k) = &r.key {
            m.insert(k.clone(), r.clone());
        }
    }
    m
}

#[test]
fn keeps_the_latest_value_per_key_at_its_original_offset() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), config()).unwrap();
    let t = 1_000_000;
    append(&mut log, &[kv("a", Some("1")), kv("b", Some("1"))], Compression::None, t);
    append(&mut log, &[kv("a", Some("2"))], Compression::Gzip, t);
    append(&mut log, &[kv("c", Some("1")), kv("b", Some("2")), kv("a", Some("3"))], Compression::Snappy, t);
    append(&mut log, &[kv("c", Some("2"))], Compression::Lz4, t);
    // A compacted log refuses keyless records (Kafka's INVALID_RECORD)...
    let mut keyless = batch_of(&[(None, Some("keyless".into()))], Compression::Zstd, t, None);
    assert!(matches!(log.append_at(&mut keyless.clone(), 0, t), Err(super::Error::Records(records::RecordsError::InvalidRecord { .. }))));
    // ...but one written before the policy changed is dropped by the cleaner.
    log.set_config(LogConfig { cleanup_compact: false, ..config() });
    log.append_at(&mut keyless, 0, t).unwrap();
    log.set_config(config());
    let before = consume(&log);
    seal(&mut log);
    assert!(clean(&mut log, t));
    let after = consume(&log);
    let got: Vec<(i64, &str)> = after.iter().map(|r| (r.offset, std::str::from_utf8(r.value.as_deref().unwrap()).unwrap())).collect();
    assert_eq!(got, vec![(4, "2"), (5, "3"), (6, "2")]);
    assert_eq!(latest_per_key(&after), latest_per_key(&before));
    // Timestamps are kept.
    assert!(after.iter().all(|r| before.contains(r)));
    assert_eq!(log.log_end_offset(), 8, "the log end never moves back");
    // Reads in a gap return the next batch; the batch holding offset 5 keeps its range;
    // the emptied keyless batch stays as the last batch of the cleaned range.
    for (at, first_base) in [(0, 3), (1, 3), (2, 3), (3, 3), (5, 3), (6, 6), (7, 7)] {
        let r = log.read(at, 1 << 20, i64::MAX, true).unwrap();
        let first = BatchIter::new(&r.records).next().map(|(h, _)| h.base_offset);
        assert_eq!(first.unwrap_or(8), first_base, "read at {at}");
    }
    // A second pass finds nothing dirty.
    assert!(!clean(&mut log, t));
    // Both a crash and a clean shutdown reopen to the same content.
    drop(log);
    let mut log = PartitionLog::open(dir.path(), config()).unwrap();
    assert_eq!(consume(&log), after);
    log.close().unwrap();
    drop(log);
    let log = PartitionLog::open(dir.path(), config()).unwrap();
    assert_eq!(consume(&log), after);
}

#[test]
fn tombstones_survive_until_the_delete_horizon_then_vanish() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), config()).unwrap();
    let t = 10 * HOUR_MS;
    append(&mut log, &[kv("a", Some("1")), kv("b", Some("1"))], Compression::None, t);
    append(&mut log, &[kv("a", None)], Compression::Gzip, t);
    seal(&mut log);
    assert!(clean(&mut log, t));
    let first = consume(&log);
    assert_eq!(first.iter().map(|r| (r.offset, r.value.is_none())).collect::<Vec<_>>(), vec![(1, false), (2, true)]);
    assert_eq!(first[1].timestamp, t, "a rebased tombstone keeps its timestamp");
    // Not yet past the horizon: nothing to do, the tombstone stays.
    assert!(!clean(&mut log, t + HOUR_MS - 1));
    assert_eq!(consume(&log), first);
    // New dirty data before the horizon: the tombstone still stays.
    append(&mut log, &[kv("c", Some("1"))], Compression::None, t);
    seal(&mut log);
    assert!(clean(&mut log, t + HOUR_MS / 2));
    assert!(consume(&log).iter().any(|r| r.key.as_deref() == Some(b"a")));
    // Past the horizon, the pass runs without new dirty data and drops it.
    drop(log); // the pending horizon is checkpointed
    let mut log = PartitionLog::open(dir.path(), config()).unwrap();
    assert!(clean(&mut log, t + HOUR_MS));
    let keys: Vec<_> = consume(&log).into_iter().map(|r| r.key.unwrap()).collect();
    assert_eq!(keys, vec![b"b".to_vec(), b"c".to_vec()]);
    assert!(!clean(&mut log, t + 2 * HOUR_MS), "no horizon left pending");
}

#[test]
fn a_producers_last_batch_survives_empty_and_its_state_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), config()).unwrap();
    let t = 1_000_000;
    let mut b = batch_of(&[kv("a", Some("1")), kv("b", Some("1"))], Compression::Lz4, t, Some((7, 0)));
    log.append_at(&mut b, 0, t).unwrap();
    let mut b = batch_of(&[kv("a", Some("2"))], Compression::None, t, Some((7, 2)));
    log.append_at(&mut b, 0, t).unwrap();
    append(&mut log, &[kv("a", Some("3")), kv("b", Some("2"))], Compression::None, t);
    seal(&mut log);
    assert!(clean(&mut log, t));
    let r = log.read(0, 1 << 20, i64::MAX, true).unwrap();
    let hs: Vec<_> = BatchIter::verified(&r.records).map(|(h, _)| h).collect();
    // Batch 0 (not the producer's last) is gone; batch 2 stays as an empty header
    // with its sequence range; the plain batch keeps both records.
    assert_eq!(hs.iter().map(|h| (h.base_offset, h.record_count, h.last_offset_delta)).collect::<Vec<_>>(), vec![(2, 0, 0), (3, 2, 1)]);
    assert_eq!((hs[0].producer_id, hs[0].base_sequence, hs[0].compression()), (7, 2, 0));
    drop(log);
    let mut log = PartitionLog::open(dir.path(), config()).unwrap();
    assert_eq!(log.producer_state(7).and_then(|e| e.batches.back()).map(|b| b.last_seq), Some(2));
    // The producer continues its sequence after a restart.
    let mut b = batch_of(&[kv("z", Some("1"))], Compression::None, t, Some((7, 3)));
    log.append_at(&mut b, 0, t).unwrap();
}

#[test]
fn list_offsets_delete_records_and_retention_work_across_gaps() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), LogConfig { cleanup_delete: true, retention_ms: 10 * HOUR_MS, ..config() }).unwrap();
    // Real times: an emptied segment's age is its file's modification time, as in Kafka.
    let t = super::system_time_ms() - 100 * HOUR_MS;
    for i in 0..40 {
        append(&mut log, &[kv(&format!("k{}", i % 4), Some(&"x".repeat(60)))], Compression::None, t + i * 10);
    }
    seal(&mut log);
    assert!(clean(&mut log, t + 1_000));
    let seen = consume(&log);
    assert_eq!(seen.iter().map(|r| r.offset).collect::<Vec<_>>(), vec![36, 37, 38, 39]);
    // ListOffsets by timestamp: the earliest surviving record at or after it.
    assert_eq!(log.offset_for_timestamp(t).unwrap(), Some((36, t + 360)));
    assert_eq!(log.offset_for_timestamp(t + 375).unwrap(), Some((38, t + 380)));
    assert_eq!(log.offset_for_timestamp(t + 391).unwrap(), None);
    // DeleteRecords into a gap, then reading from the new start.
    log.delete_records_before(20, log.log_end_offset()).unwrap();
    let r = log.read(20, 1 << 20, i64::MAX, true).unwrap();
    assert_eq!(BatchIter::new(&r.records).next().unwrap().0.base_offset, 36);
    // Time retention deletes compacted segments, empty ones included.
    log.delete_old_segments(super::system_time_ms() + 20 * HOUR_MS, log.log_end_offset()).unwrap();
    assert_eq!(log.log_start_offset(), log.log_end_offset());
    drop(log);
    let log = PartitionLog::open(dir.path(), config()).unwrap();
    assert_eq!(log.log_start_offset(), log.log_end_offset());
}

#[test]
fn dirty_ratio_and_compaction_lags_decide_when_to_clean() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig { min_cleanable_dirty_ratio: 0.6, ..config() };
    let mut log = PartitionLog::open(dir.path(), cfg).unwrap();
    let t = 100 * HOUR_MS;
    for i in 0..20 {
        append(&mut log, &[kv(&format!("k{i}"), Some(&"v".repeat(50)))], Compression::None, t);
    }
    seal(&mut log);
    assert!(clean(&mut log, t), "a fresh log is all dirty");
    append(&mut log, &[kv("k1", Some("new"))], Compression::None, t);
    seal(&mut log);
    assert!(!clean(&mut log, t), "little new dirty data: below the ratio");
    log.set_config(LogConfig { max_compaction_lag_ms: 1_000, ..cfg });
    assert!(clean(&mut log, t + 2_000), "max.compaction.lag.ms forces a pass");
    assert_eq!(consume(&log).iter().filter(|r| r.key.as_deref() == Some(b"k1")).count(), 1);
    // min.compaction.lag.ms holds back young segments.
    log.set_config(LogConfig { min_compaction_lag_ms: HOUR_MS, min_cleanable_dirty_ratio: 0.0, ..cfg });
    append(&mut log, &[kv("k2", Some("new"))], Compression::None, t + 5_000);
    seal(&mut log);
    assert!(!clean(&mut log, t + 6_000));
    assert!(clean(&mut log, t + 5_000 + HOUR_MS + 1));
    // A policy without compact stops the cleaner.
    log.set_config(LogConfig { cleanup_compact: false, cleanup_delete: true, ..cfg });
    append(&mut log, &[kv("k3", Some("new"))], Compression::None, t);
    seal(&mut log);
    assert!(!clean(&mut log, t + 10 * HOUR_MS));
}

#[test]
fn never_cleans_the_active_segment_or_past_the_high_watermark() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), config()).unwrap();
    let t = 1_000_000;
    for _ in 0..3 {
        append(&mut log, &[kv("a", Some("1"))], Compression::None, t);
    }
    log.mark_synced(log.log_end_offset());
    assert!(!clean(&mut log, t), "everything is in the active segment");
    log.roll().unwrap();
    append(&mut log, &[kv("a", Some("2"))], Compression::None, t);
    log.roll().unwrap();
    // The high watermark (and the recovery point) stop at 3: only [0, 3) is cleanable.
    assert!(log.clean_at(t, 3, &CleanerOptions::default()).unwrap().is_some());
    assert_eq!(consume(&log).iter().map(|r| r.offset).collect::<Vec<_>>(), vec![2, 3]);
}

#[test]
fn a_small_dedupe_buffer_cleans_in_several_passes() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), LogConfig { segment_bytes: 600, ..config() }).unwrap();
    let t = 1_000_000;
    for round in 0..3 {
        for k in 0..30 {
            append(&mut log, &[kv(&format!("k{k}"), Some(&format!("{round}")))], Compression::None, t);
        }
    }
    seal(&mut log);
    let expected = latest_per_key(&consume(&log));
    // 20 slots: 16 buckets, 14 keys per pass.
    let small = CleanerOptions { dedupe_buffer_bytes: super::offset_map::SLOT_BYTES * 20, load_factor: 1.0, ..CleanerOptions::default() };
    let mut passes = 0;
    while log.clean_at(t, log.log_end_offset(), &small).unwrap().is_some() {
        passes += 1;
        assert!(passes < 20);
        assert_eq!(latest_per_key(&consume(&log)), expected);
    }
    assert!(passes >= 4, "{passes} passes");
    assert_eq!(consume(&log).len(), 30);
}

fn crash_log(dir: &Path, point: CrashPoint) -> (Vec<Seen>, Vec<Seen>) {
    let mut log = PartitionLog::open(dir, config()).unwrap();
    let t = 1_000_000;
    for i in 0..30 {
        append(&mut log, &[kv(&format!("k{}", i % 3), Some(&"v".repeat(40 + i)))], Compression::Snappy, t);
    }
    seal(&mut log);
    let before = consume(&log);
    let plan = log.plan_clean(t, log.log_end_offset()).unwrap().unwrap();
    let out = plan.execute(&CleanerOptions::default(), t, &|| false).unwrap();
    assert!(log.commit_clean(out, Some(point)).is_err());
    drop(log); // kill -9 here
    let log = PartitionLog::open(dir, config()).unwrap();
    (before, consume(&log))
}

#[test]
fn a_crash_at_any_step_of_the_swap_leaves_a_valid_log() {
    for point in [
        CrashPoint::AfterSwapRenamed,
        CrashPoint::AfterSourcesRenamed,
        CrashPoint::AfterIndexesMoved,
        CrashPoint::AfterLogRenamed,
        CrashPoint::BeforeCheckpoint,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let (before, after) = crash_log(dir.path(), point);
        // Same latest value per key, no retained record lost or changed.
        assert_eq!(latest_per_key(&after), latest_per_key(&before), "{point:?}");
        assert!(after.iter().all(|r| before.contains(r)), "{point:?}");
        let names: Vec<String> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        assert!(!names.iter().any(|n| n.ends_with(".swap") || n.ends_with(".deleted") || n == super::cleaner::STAGING_DIR), "{point:?}: {names:?}");
        // A later pass finishes the job and appends continue.
        let mut log = PartitionLog::open(dir.path(), config()).unwrap();
        clean(&mut log, 1_000_000);
        assert_eq!(consume(&log).len(), 3, "{point:?}");
        append(&mut log, &[kv("k9", Some("x"))], Compression::None, 1_000_000);
    }
}

#[test]
fn a_failed_swap_reloads_the_log_from_disk() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), config()).unwrap();
    for i in 0..30 {
        append(&mut log, &[kv(&format!("k{}", i % 3), Some("v"))], Compression::Gzip, 1_000);
    }
    seal(&mut log);
    let before = latest_per_key(&consume(&log));
    let plan = log.plan_clean(1_000, log.log_end_offset()).unwrap().unwrap();
    let out = plan.execute(&CleanerOptions::default(), 1_000, &|| false).unwrap();
    assert!(log.commit_clean(out, Some(CrashPoint::AfterSourcesRenamed)).is_err());
    // The in-memory segment map lost the renamed sources: reload repairs it in place.
    log.reload().unwrap();
    assert_eq!(latest_per_key(&consume(&log)), before);
    append(&mut log, &[kv("k0", Some("w"))], Compression::None, 1_000);
    assert_eq!(log.log_end_offset(), 31);
}

#[test]
fn a_crash_while_staging_discards_the_staged_files() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), config()).unwrap();
    for i in 0..20 {
        append(&mut log, &[kv(&format!("k{}", i % 2), Some("v"))], Compression::None, 1_000);
    }
    seal(&mut log);
    let before = consume(&log);
    let plan = log.plan_clean(1_000, log.log_end_offset()).unwrap().unwrap();
    // A stop request part-way removes the staging directory.
    let calls = std::cell::Cell::new(0);
    let stop = || {
        calls.set(calls.get() + 1);
        calls.get() > 3
    };
    assert!(matches!(plan.execute(&CleanerOptions::default(), 1_000, &stop), Err(super::Error::CleanerAborted)));
    assert!(!dir.path().join(super::cleaner::STAGING_DIR).exists());
    // A staged but uncommitted pass (crash before the swap) is discarded on open.
    let plan = log.plan_clean(1_000, log.log_end_offset()).unwrap().unwrap();
    let _out = plan.execute(&CleanerOptions::default(), 1_000, &|| false).unwrap();
    drop(log);
    let log = PartitionLog::open(dir.path(), config()).unwrap();
    assert_eq!(consume(&log), before);
    assert!(!dir.path().join(super::cleaner::STAGING_DIR).exists());
}

#[test]
fn the_background_cleaner_compacts_a_log_and_stops_promptly() {
    let dir = tempfile::tempdir().unwrap();
    let mgr = LogManager::new(dir.path()).unwrap();
    let tp = TopicPartition::new("compacted", 0);
    let p = mgr.open(&tp, config()).unwrap();
    let now = super::system_time_ms();
    for i in 0..60 {
        let mut b = batch_of(&[kv(&format!("k{}", i % 5), Some(&"v".repeat(30)))], Compression::Zstd, now, None);
        mgr.append(&p, &mut b, 0).unwrap();
    }
    // Wait for the flusher so the high watermark covers everything, then seal.
    let end = p.log_end_offset();
    while p.high_watermark() < end {
        std::thread::sleep(Duration::from_millis(5));
    }
    p.with_log(|log| log.roll()).unwrap();
    mgr.start_cleaner(1, CleanerOptions::default(), Duration::from_millis(20)).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let n = p.with_log(|log| Ok(consume(log).len())).unwrap();
        if n == 5 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "not compacted: {n} records");
        std::thread::sleep(Duration::from_millis(20));
    }
    let started = std::time::Instant::now();
    mgr.close().unwrap();
    assert!(started.elapsed() < Duration::from_secs(2), "cleaner stopped slowly");
}

#[derive(Debug, Clone)]
struct Op {
    records: Vec<(u8, Option<u8>)>,
    codec: usize,
    roll_after: bool,
}

fn op() -> impl Strategy<Value = Op> {
    (
        proptest::collection::vec((0u8..6, proptest::option::weighted(0.8, any::<u8>())), 1..5),
        0usize..5,
        proptest::bool::weighted(0.25),
    )
        .prop_map(|(records, codec, roll_after)| Op { records, codec, roll_after })
}

const CODECS: [Compression; 5] = [Compression::None, Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd];

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn cleaning_keeps_latest_values_and_drops_tombstones_after_the_horizon(
        ops in proptest::collection::vec(op(), 1..40),
        dedupe_slots in prop_oneof![Just(4usize), Just(1_000)],
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut log = PartitionLog::open(dir.path(), LogConfig { segment_bytes: 400, ..config() }).unwrap();
        let t = 1_000 * HOUR_MS;
        for (i, op) in ops.iter().enumerate() {
            let recs: Vec<Kv> = op.records.iter().map(|(k, v)| (Some(format!("key{k}")), v.map(|v| format!("value-{v}")))).collect();
            append(&mut log, &recs, CODECS[op.codec], t + i as i64);
            if op.roll_after {
                log.mark_synced(log.log_end_offset());
                log.roll().unwrap();
            }
        }
        let before = consume(&log);
        let expected = latest_per_key(&before);
        seal(&mut log);
        let options = CleanerOptions { dedupe_buffer_bytes: super::offset_map::SLOT_BYTES * dedupe_slots, load_factor: 1.0, ..CleanerOptions::default() };
        let hw = log.log_end_offset();
        let mut passes = 0;
        while log.clean_at(t, hw, &options).unwrap().is_some() {
            passes += 1;
            prop_assert!(passes < 100);
        }
        let after = consume(&log);
        // Every retained record is an original record, unchanged, at its offset.
        prop_assert!(after.iter().all(|r| before.contains(r)));
        // Before the horizon: exactly the latest record of each key, tombstones too.
        prop_assert_eq!(latest_per_key(&after), expected.clone());
        prop_assert_eq!(after.len(), expected.len());
        // Recovery (a crash) and a clean reopen see the same log.
        drop(log);
        let mut log = PartitionLog::open(dir.path(), LogConfig { segment_bytes: 400, ..config() }).unwrap();
        prop_assert_eq!(consume(&log), after.clone());
        // Past the delete horizon the tombstones go and nothing else does.
        let later = t + HOUR_MS;
        while log.clean_at(later, hw, &options).unwrap().is_some() {
            passes += 1;
            prop_assert!(passes < 200);
        }
        let last = consume(&log);
        let mut live: Vec<Seen> = expected.values().filter(|r| r.value.is_some()).cloned().collect();
        live.sort_by_key(|r| r.offset);
        prop_assert_eq!(last.clone(), live);
        log.close().unwrap();
        drop(log);
        let log = PartitionLog::open(dir.path(), config()).unwrap();
        prop_assert_eq!(consume(&log), last);
        // The on-disk batches all verify.
        for s in super::partition_tests::segment_files(dir.path()) {
            let bytes = std::fs::read(&s).unwrap();
            let mut it = BatchIter::verified(&bytes);
            let _ = it.by_ref().count();
            prop_assert!(it.error().is_none() && !it.truncated_tail(), "{}", s.display());
            prop_assert_eq!(it.position_bytes(), bytes.len());
        }
    }
}

/// A transactional or control batch as a transactional producer / coordinator writes it.
fn txn_batch(key: &[u8], value: Option<&[u8]>, control: bool, seq: i32, ts: i64) -> Vec<u8> {
    let rec = Record {
        transactional: true,
        control,
        partition_leader_epoch: 0,
        producer_id: 5,
        producer_epoch: 0,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence: if control { -1 } else { seq },
        timestamp: ts,
        key: Some(Bytes::copy_from_slice(key)),
        value: value.map(Bytes::copy_from_slice),
        headers: Default::default(),
        delete_horizon: false,
    };
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(&mut buf, &[rec], &RecordEncodeOptions { version: 2, compression: Compression::None }).unwrap();
    buf.to_vec()
}

#[test]
fn transactional_and_control_batches_are_kept_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), config()).unwrap();
    let t = 1_000_000;
    append(&mut log, &[kv("a", Some("1"))], Compression::None, t);
    let mut txn = txn_batch(b"a", Some(b"2"), false, 0, t);
    log.append_at(&mut txn, 0, t).unwrap();
    // A commit marker: control record key (version 0, type 1 = commit).
    let mut marker = txn_batch(&[0, 0, 0, 1], Some(&[0, 0, 0, 0, 0, 0]), true, 0, t);
    log.append_at(&mut marker, 0, t).unwrap();
    append(&mut log, &[kv("a", Some("3"))], Compression::None, t);
    let raw_before = log.read(1, 1 << 20, 3, true).unwrap().records;
    seal(&mut log);
    assert!(clean(&mut log, t));
    let r = log.read(0, 1 << 20, i64::MAX, true).unwrap();
    let bases: Vec<i64> = BatchIter::verified(&r.records).map(|(h, _)| h.base_offset).collect();
    // a@0 goes (superseded by a@3); the transaction's batch and its marker stay as
    // written: a transaction's keys never hide older values, its bytes never change.
    assert_eq!(bases, vec![1, 2, 3]);
    assert_eq!(log.read(1, 1 << 20, 3, true).unwrap().records, raw_before);
}
