//! Tests of `PartitionLog` through its public API, with real batches on real files.

use std::fs::{self, OpenOptions};
use std::path::Path;

use kafka_protocol::records::Compression;
use proptest::prelude::*;

use super::test_util::{self, Spec};
use super::{Error, LogConfig, PartitionLog};
use crate::protocol::records::{BatchHeader, BatchIter};

pub(super) fn tiny_config() -> LogConfig {
    LogConfig {
        segment_bytes: 1024,
        index_interval_bytes: 100,
        segment_index_bytes: 4096,
        max_message_bytes: 1 << 20,
        ..LogConfig::default()
    }
}

fn open(dir: &Path) -> PartitionLog {
    PartitionLog::open(dir, tiny_config()).unwrap()
}

/// Every batch in the log, from offset 0, via reads.
pub(super) fn read_all(log: &PartitionLog) -> Vec<(BatchHeader, Vec<u8>)> {
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    while offset < log.log_end_offset() {
        let r = log.read(offset, 300, i64::MAX, true).unwrap();
        assert!(!r.records.is_empty(), "read at {offset} returned nothing");
        for (h, range) in BatchIter::verified(&r.records) {
            out.push((h, r.records[range].to_vec()));
            offset = h.next_offset();
        }
    }
    out
}

fn assert_dense(batches: &[(BatchHeader, Vec<u8>)], from: i64) {
    let mut next = from;
    for (h, _) in batches {
        assert_eq!(h.base_offset, next);
        next = h.next_offset();
    }
}

pub(super) fn segment_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    v.sort();
    v
}

#[test]
fn append_assigns_dense_offsets_and_rewrites_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path());
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (0, 0));
    let mut b = test_util::plain(3, 1_000);
    b.extend(test_util::plain(2, 2_000));
    let info = log.append(&mut b, 7).unwrap();
    assert_eq!(
        (
            info.base_offset,
            info.last_offset,
            info.batches,
            info.duplicate
        ),
        (0, 4, 2, false)
    );
    let info = log.append(&mut test_util::plain(1, 3_000), 8).unwrap();
    assert_eq!((info.base_offset, info.last_offset), (5, 5));
    let all = read_all(&log);
    assert_dense(&all, 0);
    assert_eq!(
        all.iter()
            .map(|(h, _)| h.partition_leader_epoch)
            .collect::<Vec<_>>(),
        vec![7, 7, 8]
    );
    // The bytes stored are the bytes the producer sent, except the rewritten fields.
    assert_eq!(all[0].1[21..], test_util::plain(3, 1_000)[21..]);
}

#[test]
fn rolls_segments_and_reads_across_them() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path());
    let mut sent = Vec::new();
    for i in 0..60 {
        let mut b = test_util::build(&Spec {
            records: 1 + i % 4,
            value_bytes: 20 + i * 3,
            ..Spec::default()
        });
        sent.push(b.clone());
        log.append(&mut b, 0).unwrap();
    }
    assert!(log.segment_count() > 5, "{} segments", log.segment_count());
    for path in segment_files(dir.path()) {
        let len = fs::metadata(&path).unwrap().len();
        assert!(
            len <= 1024 || BatchIter::new(&fs::read(&path).unwrap()).count() == 1,
            "{path:?} {len}"
        );
    }
    let all = read_all(&log);
    assert_eq!(all.len(), sent.len());
    assert_dense(&all, 0);
    for ((_, got), want) in all.iter().zip(&sent) {
        assert_eq!(got[21..], want[21..]);
    }
}

#[test]
fn oversized_batch_gets_a_segment_of_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path());
    log.append(&mut test_util::plain(1, 0), 0).unwrap();
    let mut big = test_util::build(&Spec {
        value_bytes: 3000,
        ..Spec::default()
    });
    log.append(&mut big, 0).unwrap();
    log.append(&mut test_util::plain(1, 0), 0).unwrap();
    assert_eq!(log.segment_base_offsets(), vec![0, 1, 2]);
    let r = log.read(1, 10, i64::MAX, true).unwrap();
    assert_eq!(r.records.len(), big.len());
}

#[test]
fn full_indexes_roll_and_every_offset_is_found() {
    let dir = tempfile::tempdir().unwrap();
    // Room for 6 offset entries and 4 time entries, an entry after every batch.
    let config = LogConfig {
        segment_bytes: 1 << 30,
        index_interval_bytes: 1,
        segment_index_bytes: 48,
        max_message_bytes: 1 << 20,
        ..LogConfig::default()
    };
    let mut log = PartitionLog::open(dir.path(), config).unwrap();
    for i in 0..40 {
        log.append(&mut test_util::plain(1 + i % 3, 1000 + i as i64 * 5), 0)
            .unwrap();
    }
    assert!(log.segment_count() >= 8, "{} segments", log.segment_count());
    for offset in 0..log.log_end_offset() {
        let r = log.read(offset, 1, i64::MAX, true).unwrap();
        let (h, _) = BatchIter::new(&r.records).next().unwrap();
        assert!(
            h.base_offset <= offset && offset <= h.last_offset(),
            "offset {offset} in {h:?}"
        );
    }
    let before = read_all(&log);
    log.close().unwrap();
    drop(log);
    let log = PartitionLog::open(dir.path(), config).unwrap();
    assert_eq!(read_all(&log), before);
}

#[test]
fn read_limits_and_out_of_range() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), LogConfig::default()).unwrap();
    let sizes: Vec<usize> = (0..5)
        .map(|_| {
            let mut b = test_util::plain(2, 0);
            log.append(&mut b, 0).unwrap();
            b.len()
        })
        .collect();
    let batch_bytes = sizes[0];
    // Offset inside a batch returns that whole batch.
    let r = log.read(3, 10_000, i64::MAX, false).unwrap();
    let hs: Vec<_> = BatchIter::new(&r.records)
        .map(|(h, _)| h.base_offset)
        .collect();
    assert_eq!(hs, vec![2, 4, 6, 8]);
    assert_eq!((r.log_start_offset, r.log_end_offset), (0, 10));
    // max_bytes cuts at whole batches.
    let r = log.read(0, batch_bytes * 2 + 5, i64::MAX, false).unwrap();
    assert_eq!(r.records.len(), batch_bytes * 2);
    // A first batch larger than max_bytes: only with min_one_batch.
    assert!(log.read(0, 10, i64::MAX, false).unwrap().records.is_empty());
    assert_eq!(
        log.read(0, 10, i64::MAX, true).unwrap().records.len(),
        batch_bytes
    );
    // max_offset: stop before a batch whose base offset is >= max_offset.
    let r = log.read(0, 10_000, 4, true).unwrap();
    assert_eq!(BatchIter::new(&r.records).count(), 2);
    let r = log.read(0, 10_000, 5, true).unwrap();
    assert_eq!(BatchIter::new(&r.records).count(), 3);
    assert!(log.read(4, 10_000, 4, true).unwrap().records.is_empty());
    // The log end is an empty read; beyond either end is out of range.
    assert!(
        log.read(10, 100, i64::MAX, true)
            .unwrap()
            .records
            .is_empty()
    );
    assert!(matches!(
        log.read(11, 100, i64::MAX, true),
        Err(Error::OffsetOutOfRange {
            requested: 11,
            log_start: 0,
            log_end: 10
        })
    ));
    assert!(matches!(
        log.read(-1, 100, i64::MAX, true),
        Err(Error::OffsetOutOfRange { .. })
    ));
}

#[test]
fn invalid_input_is_rejected_without_writing() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path());
    let mut bad = test_util::plain(2, 0);
    let last = bad.len() - 1;
    bad[last] ^= 1;
    let mut good_then_bad = test_util::plain(1, 0);
    good_then_bad.extend(&bad);
    assert!(matches!(
        log.append(&mut good_then_bad, 0),
        Err(Error::Records(_))
    ));
    let mut big = test_util::build(&Spec {
        value_bytes: 2 << 20,
        ..Spec::default()
    });
    assert!(matches!(
        log.append(&mut big, 0),
        Err(Error::Records(
            crate::protocol::records::RecordsError::MessageTooLarge { .. }
        ))
    ));
    assert_eq!(log.log_end_offset(), 0);
}

#[test]
fn reopen_after_clean_close() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path());
    for i in 0..40 {
        log.append(&mut test_util::plain(1 + i % 3, 1000 + i as i64 * 10), 1)
            .unwrap();
    }
    let (end, segments) = (log.log_end_offset(), log.segment_base_offsets());
    let before = read_all(&log);
    log.close().unwrap();
    assert!(matches!(
        log.append(&mut test_util::plain(1, 0), 0),
        Err(Error::Io(_))
    ));
    drop(log);
    let mut log = open(dir.path());
    assert_eq!(
        (log.log_end_offset(), log.segment_base_offsets()),
        (end, segments)
    );
    assert_eq!(log.recovery_point(), end);
    assert_eq!(read_all(&log), before);
    let info = log.append(&mut test_util::plain(2, 5000), 1).unwrap();
    assert_eq!(info.base_offset, end);
    assert_dense(&read_all(&log), 0);
}

/// Drops the log without closing it: the next open runs recovery.
fn crash(log: PartitionLog) {
    drop(log);
}

fn fill(log: &mut PartitionLog, batches: usize) -> Vec<Vec<u8>> {
    (0..batches)
        .map(|i| {
            let mut b = test_util::plain(1 + i % 3, 1000 + i as i64);
            log.append(&mut b, 0).unwrap();
            b
        })
        .collect()
}

/// What the flusher does after an fsync, plus the checkpoint it writes lazily: the
/// recovery point moves to the log end.
pub(super) fn sync_and_checkpoint(log: &mut PartitionLog) {
    let (_, upto) = log.sync_handles();
    log.mark_synced(upto);
    log.checkpoint().unwrap();
}

#[test]
fn recovery_after_unclean_shutdown_keeps_everything_written() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path());
    fill(&mut log, 30);
    let before = read_all(&log);
    crash(log);
    let log = open(dir.path());
    assert_eq!(read_all(&log), before);
}

#[test]
fn recovery_truncates_a_torn_tail_and_appends_continue_densely() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path());
    fill(&mut log, 30);
    let before = read_all(&log);
    crash(log);
    let last = segment_files(dir.path()).pop().unwrap();
    let len = fs::metadata(&last).unwrap().len();
    let last_batch_bytes = before.last().unwrap().1.len() as u64;
    OpenOptions::new()
        .write(true)
        .open(&last)
        .unwrap()
        .set_len(len - last_batch_bytes / 2)
        .unwrap();
    let mut log = open(dir.path());
    let after = read_all(&log);
    assert_eq!(after[..], before[..before.len() - 1]);
    let expected_end = before.last().unwrap().0.base_offset;
    assert_eq!(log.log_end_offset(), expected_end);
    let info = log.append(&mut test_util::plain(2, 9), 0).unwrap();
    assert_eq!(info.base_offset, expected_end);
    assert_dense(&read_all(&log), 0);
}

#[test]
fn recovery_truncates_at_a_flipped_byte_and_drops_later_segments() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path());
    fill(&mut log, 40);
    let before = read_all(&log);
    let bases = log.segment_base_offsets();
    assert!(bases.len() >= 4);
    crash(log);
    // Forget the checkpoint so every segment is scanned, then damage the 2nd segment.
    fs::remove_file(dir.path().join("checkpoint.json")).unwrap();
    let second = &segment_files(dir.path())[1];
    let mut bytes = fs::read(second).unwrap();
    let batches: Vec<_> = BatchIter::new(&bytes).collect();
    let (victim, range) = batches[1].clone();
    bytes[range.start + 40] ^= 0x20;
    fs::write(second, &bytes).unwrap();

    let mut log = open(dir.path());
    assert_eq!(log.log_end_offset(), victim.base_offset);
    assert_eq!(log.segment_base_offsets(), bases[..2].to_vec());
    let after = read_all(&log);
    assert_eq!(after[..], before[..after.len()]);
    assert_eq!(
        log.append(&mut test_util::plain(1, 0), 0)
            .unwrap()
            .base_offset,
        victim.base_offset
    );
    assert_dense(&read_all(&log), 0);
    // And it survives another unclean restart.
    crash(log);
    assert_dense(&read_all(&open(dir.path())), 0);
}

#[test]
fn recovery_from_the_recovery_point_with_a_flipped_byte_in_the_last_batch() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path());
    fill(&mut log, 30);
    sync_and_checkpoint(&mut log);
    fill(&mut log, 3);
    let before = read_all(&log);
    crash(log);
    let last = segment_files(dir.path()).pop().unwrap();
    let mut bytes = fs::read(&last).unwrap();
    let n = bytes.len();
    bytes[n - 3] ^= 0xff;
    fs::write(&last, &bytes).unwrap();
    let mut log = open(dir.path());
    assert_eq!(read_all(&log)[..], before[..before.len() - 1]);
    assert_eq!(log.recovery_point(), log.log_end_offset());
    let end = log.log_end_offset();
    assert_eq!(
        log.append(&mut test_util::plain(1, 0), 0)
            .unwrap()
            .base_offset,
        end
    );
    assert_dense(&read_all(&log), 0);
}

/// Recovery of the active segment: batches below the checkpointed recovery point were
/// fsynced before it was written, so only their framing is walked (one header read
/// each, as Kafka trusts segments below its recovery point); from the recovery point on
/// every batch is CRC-checked. Either way the indexes are rebuilt.
#[test]
fn recovery_walks_the_durable_prefix_and_checks_the_tail() {
    let config = LogConfig { segment_bytes: 1 << 20, ..tiny_config() };
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), config).unwrap();
    fill(&mut log, 40);
    sync_and_checkpoint(&mut log);
    fill(&mut log, 10);
    let before = read_all(&log);
    assert_eq!(log.segment_base_offsets().len(), 1, "one active segment");
    crash(log);

    let file = segment_files(dir.path()).pop().unwrap();
    let pristine = fs::read(&file).unwrap();
    let batches: Vec<_> = BatchIter::new(&pristine).collect();
    let flip = |bytes: &mut Vec<u8>, batch: usize, at: usize| {
        let (_, range) = &batches[batch];
        bytes[range.start + at] ^= 0x20;
    };
    let last_byte = |batch: usize| batches[batch].1.len() - 1;

    // A record byte flipped below the recovery point is not read; one above is caught.
    let mut bytes = pristine.clone();
    flip(&mut bytes, 10, last_byte(10));
    flip(&mut bytes, 45, last_byte(45));
    fs::write(&file, &bytes).unwrap();
    let log = PartitionLog::open(dir.path(), config).unwrap();
    assert_eq!(log.log_end_offset(), before[45].0.base_offset);
    assert_eq!(fs::read(&file).unwrap(), bytes[..batches[45].1.start]);
    // The rebuilt indexes find batches, through the prefix and the checked tail.
    for i in [30, 44] {
        let r = log.read(before[i].0.base_offset, 300, i64::MAX, true).unwrap();
        let (h, range) = BatchIter::verified(&r.records).next().unwrap();
        assert_eq!((h.base_offset, &r.records[range]), (before[i].0.base_offset, &before[i].1[..]));
    }
    assert_eq!(log.offset_for_timestamp(1_030).unwrap(), Some((by_ts(&before, 1_030), 1_030)));
    assert_eq!(log.offset_for_timestamp(1_039).unwrap(), Some((by_ts(&before, 1_039), 1_039)));
    drop(log);

    // Framing is checked below the recovery point too: a broken magic byte cuts there.
    let mut bytes = pristine.clone();
    flip(&mut bytes, 20, 16); // magic, after base offset (8), length (4) and epoch (4)
    fs::write(&file, &bytes).unwrap();
    fs::write(dir.path().join("checkpoint.json"), "{\"version\":1,\"clean_shutdown\":false,\"recovery_point\":60,\"log_start_offset\":0}").unwrap();
    let log = PartitionLog::open(dir.path(), config).unwrap();
    assert_eq!(log.log_end_offset(), before[20].0.base_offset);
    assert_eq!(read_all(&log)[..], before[..20]);
}

#[test]
fn corrupt_indexes_of_trusted_segments_are_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path());
    fill(&mut log, 40);
    let before = read_all(&log);
    log.close().unwrap();
    drop(log);
    for entry in fs::read_dir(dir.path()).unwrap() {
        let p = entry.unwrap().path();
        if p.extension()
            .is_some_and(|x| x == "index" || x == "timeindex")
        {
            let len = fs::metadata(&p).unwrap().len();
            // Garbage the indexes: zero-extend (like an untrimmed preallocation) or scribble.
            if len % 2 == 0 {
                OpenOptions::new()
                    .write(true)
                    .open(&p)
                    .unwrap()
                    .set_len(len + 64)
                    .unwrap();
            } else {
                fs::write(&p, vec![0xff; len as usize]).unwrap();
            }
        }
    }
    let log = open(dir.path());
    assert_eq!(read_all(&log), before);
    assert_eq!(
        log.offset_for_timestamp(1_020).unwrap(),
        Some((by_ts(&before, 1_020), 1_020))
    );
}

/// Offset of the first record with timestamp >= ts, by linear scan of `fill` batches
/// (whose record timestamps step by 1 within a batch).
fn by_ts(batches: &[(BatchHeader, Vec<u8>)], ts: i64) -> i64 {
    let (h, _) = batches.iter().find(|(h, _)| h.max_timestamp >= ts).unwrap();
    h.base_offset + (ts - h.base_timestamp).max(0)
}

#[test]
fn idempotent_producer_rules_and_state_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path());
    assert_eq!(
        log.append(&mut test_util::idempotent(5, 0, 0, 3), 0)
            .unwrap()
            .base_offset,
        0
    );
    assert_eq!(
        log.append(&mut test_util::idempotent(5, 0, 3, 2), 0)
            .unwrap()
            .base_offset,
        3
    );
    // Retry of the first batch: duplicate, original offsets, nothing written.
    let dup = log
        .append(&mut test_util::idempotent(5, 0, 0, 3), 0)
        .unwrap();
    assert_eq!(
        (dup.duplicate, dup.base_offset, dup.last_offset),
        (true, 0, 2)
    );
    assert_eq!(log.log_end_offset(), 5);
    assert!(matches!(
        log.append(&mut test_util::idempotent(5, 0, 9, 1), 0),
        Err(Error::OutOfOrderSequence {
            producer_id: 5,
            expected: 5,
            got: 9
        })
    ));
    // A request whose second batch is out of order writes nothing at all.
    let mut two = test_util::idempotent(5, 0, 5, 1);
    two.extend(test_util::idempotent(5, 0, 7, 1));
    assert!(matches!(
        log.append(&mut two, 0),
        Err(Error::OutOfOrderSequence { .. })
    ));
    assert_eq!(log.log_end_offset(), 5);

    // Force many segments so the state comes from a snapshot plus replay.
    for s in 5..30 {
        log.append(&mut test_util::idempotent(5, 0, s, 1), 0)
            .unwrap();
    }
    log.append(&mut test_util::idempotent(6, 2, 100, 1), 0)
        .unwrap();
    let state = log.producer_state(5).cloned();
    crash(log);
    let mut log = open(dir.path());
    assert_eq!(log.producer_state(5).cloned(), state);
    assert!(
        log.append(&mut test_util::idempotent(5, 0, 29, 1), 0)
            .unwrap()
            .duplicate
    );
    assert!(matches!(
        log.append(&mut test_util::idempotent(6, 1, 101, 1), 0),
        Err(Error::InvalidProducerEpoch {
            current: 2,
            got: 1,
            ..
        })
    ));
    log.append(&mut test_util::idempotent(5, 0, 30, 1), 0)
        .unwrap();
    log.close().unwrap();
    drop(log);
    // Also without any snapshot: full header replay.
    for entry in fs::read_dir(dir.path()).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_some_and(|x| x == "producers") {
            fs::remove_file(p).unwrap();
        }
    }
    let mut log = open(dir.path());
    let dup = log
        .append(&mut test_util::idempotent(5, 0, 30, 1), 0)
        .unwrap();
    assert!(dup.duplicate);
    assert!(matches!(
        log.append(&mut test_util::idempotent(5, 0, 32, 1), 0),
        Err(Error::OutOfOrderSequence { .. })
    ));
    assert!(matches!(
        log.append(&mut test_util::idempotent(5, 1, 3, 1), 0),
        Err(Error::OutOfOrderSequence { expected: 0, .. })
    ));
    assert!(
        !log.append(&mut test_util::idempotent(5, 1, 0, 1), 0)
            .unwrap()
            .duplicate
    );
}

#[test]
fn timestamps_across_segments_with_compression() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path());
    let codecs = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];
    // Batch i: 5 records, timestamps 10_000 + 100*i + {0, 10, 20, 30, 40}, except that
    // batch 7 has older timestamps (out of order, as clients may send).
    let mut expected = Vec::new(); // (offset, timestamp) per record
    for i in 0..30i64 {
        let first_timestamp = if i == 7 { 5_000 } else { 10_000 + 100 * i };
        let spec = Spec {
            records: 5,
            value_bytes: 40,
            first_timestamp,
            timestamp_step: 10,
            compression: codecs[i as usize % codecs.len()],
            ..Spec::default()
        };
        let info = log.append(&mut test_util::build(&spec), 0).unwrap();
        for r in 0..5 {
            expected.push((info.base_offset + r, first_timestamp + 10 * r));
        }
    }
    assert!(log.segment_count() > 3);
    let model = |ts: i64| expected.iter().copied().find(|&(_, t)| t >= ts);
    for ts in [
        0, 5_000, 5_015, 9_999, 10_000, 10_005, 10_040, 10_041, 10_700, 11_234, 12_940, 12_941,
        99_999,
    ] {
        assert_eq!(log.offset_for_timestamp(ts).unwrap(), model(ts), "ts {ts}");
    }
    assert_eq!(log.max_timestamp(), Some((149, 12_940)));
    log.close().unwrap();
    drop(log);
    let log = open(dir.path());
    assert_eq!(log.offset_for_timestamp(10_750).unwrap(), model(10_750));
    assert_eq!(log.max_timestamp(), Some((149, 12_940)));
}

#[test]
fn max_timestamp_picks_the_first_record_with_the_largest_timestamp() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path());
    assert_eq!(log.max_timestamp(), None);
    assert_eq!(log.offset_for_timestamp(0).unwrap(), None);
    log.append(
        &mut test_util::build(&Spec {
            records: 3,
            first_timestamp: 100,
            timestamp_step: 50,
            ..Spec::default()
        }),
        0,
    )
    .unwrap();
    log.append(
        &mut test_util::build(&Spec {
            records: 4,
            first_timestamp: 300,
            timestamp_step: -100,
            ..Spec::default()
        }),
        0,
    )
    .unwrap();
    log.append(
        &mut test_util::build(&Spec {
            records: 2,
            first_timestamp: 300,
            timestamp_step: 0,
            ..Spec::default()
        }),
        0,
    )
    .unwrap();
    assert_eq!(log.max_timestamp(), Some((3, 300)));
    crash(log);
    assert_eq!(open(dir.path()).max_timestamp(), Some((3, 300)));
}

#[test]
fn sync_bookkeeping() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path());
    let (files, upto) = log.sync_handles();
    assert!(files.is_empty() && upto == 0);
    fill(&mut log, 3);
    let (files, upto) = log.sync_handles();
    // The first segment's directory entry was not synced at open: it goes with the data.
    assert_eq!((files.len(), upto), (2, log.log_end_offset()));
    // An append between taking the handles and marking keeps its segment unsynced.
    fill(&mut log, 1);
    log.mark_synced(upto);
    assert_eq!(log.recovery_point(), upto);
    assert_eq!(log.sync_handles().0.len(), 1);
    let (_, upto) = log.sync_handles();
    log.mark_synced(upto);
    assert!(log.sync_handles().0.is_empty());
    // A roll dirties the old segment, the new one and the directory.
    fill(&mut log, 20);
    assert!(log.sync_handles().0.len() >= 3);
    let (_, upto) = log.sync_handles();
    log.mark_synced(upto);
    assert!(log.sync_handles().0.is_empty());
    assert_eq!(log.recovery_point(), log.log_end_offset());
}

#[test]
fn delete_removes_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("topic-0");
    let mut log = open(&path);
    fill(&mut log, 3);
    log.delete().unwrap();
    assert!(!path.exists());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, failure_persistence: None, ..ProptestConfig::default() })]

    /// Random appends, reads and restarts against a model of the log.
    #[test]
    fn log_matches_model(
        batches in proptest::collection::vec((1usize..6, 0usize..200), 1..50),
        reads in proptest::collection::vec((any::<u32>(), 0usize..800, any::<bool>(), any::<u32>()), 1..20),
        restart_at in any::<usize>(),
        clean in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open(dir.path());
        let mut model: Vec<(i64, i64, usize)> = Vec::new(); // (base, next, bytes)
        let restart_at = restart_at % batches.len();
        for (i, (records, value_bytes)) in batches.iter().enumerate() {
            if i == restart_at {
                if clean { log.close().unwrap(); }
                drop(log);
                log = open(dir.path());
            }
            let mut b = test_util::build(&Spec { records: *records, value_bytes: *value_bytes, ..Spec::default() });
            let info = log.append(&mut b, 0).unwrap();
            let base = model.last().map_or(0, |m| m.1);
            prop_assert_eq!(info.base_offset, base);
            model.push((base, base + *records as i64, b.len()));
        }
        let end = model.last().unwrap().1;
        prop_assert_eq!(log.log_end_offset(), end);
        for (offset, max_bytes, min_one, max_offset) in reads {
            let offset = i64::from(offset) % (end + 1);
            let max_offset = i64::from(max_offset) % (end + 2);
            let got = log.read(offset, max_bytes, max_offset, min_one).unwrap();
            let got: Vec<i64> = BatchIter::verified(&got.records).map(|(h, _)| h.base_offset).collect();
            // Model: batches from the one holding `offset`, within its segment.
            let segment_end = log.segment_base_offsets().into_iter().find(|&b| b > offset).unwrap_or(i64::MAX);
            let mut want = Vec::new();
            let mut total = 0;
            for &(base, next, bytes) in model.iter().filter(|m| m.1 > offset && m.0 < segment_end) {
                if base >= max_offset { break; }
                if total + bytes > max_bytes && !(want.is_empty() && min_one) { break; }
                total += bytes;
                want.push(base);
                let _ = next;
            }
            prop_assert_eq!(got, want, "offset {} max_bytes {} min_one {} max_offset {}", offset, max_bytes, min_one, max_offset);
        }
    }
}

/// A new partition directory costs no fsync at creation; the first append's flush
/// covers the partition directory and its parent (their entries must be durable
/// before the data is acknowledged), and later flushes only the written segment.
#[test]
fn new_log_syncs_its_directories_with_the_first_data() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("t-0");
    let mut log = open(&dir);
    let (files, upto) = log.sync_handles();
    assert!(files.is_empty(), "nothing to sync before any data");
    assert_eq!(upto, 0);

    log.append(&mut test_util::plain(3, 1_000), 0).unwrap();
    let (files, upto) = log.sync_handles();
    assert_eq!(upto, 3);
    let kinds: Vec<bool> = files.iter().map(|f| f.metadata().unwrap().is_dir()).collect();
    assert_eq!(kinds, vec![false, true, true], "segment, partition dir, parent dir");
    log.mark_synced(upto);

    log.append(&mut test_util::plain(2, 2_000), 0).unwrap();
    let (files, _) = log.sync_handles();
    assert_eq!(files.len(), 1, "only the segment once the directories are durable");
}

/// `prepare_close` + `finish_close` (the manager's two-phase shutdown) leave a clean
/// checkpoint: the next open trusts the log without a recovery scan.
#[test]
fn two_phase_close_reopens_clean() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path());
    log.append(&mut test_util::plain(5, 1_000), 0).unwrap();
    log.prepare_close().unwrap();
    assert!(log.append(&mut test_util::plain(1, 2_000), 0).is_err(), "closed to appends");
    log.finish_close().unwrap();
    drop(log);
    let c = super::checkpoint::Checkpoint::read(dir.path()).unwrap().unwrap();
    assert!(c.clean_shutdown && c.recovery_point == 5);
    let log = open(dir.path());
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (0, 5));
}

/// Reads (now computed from headers and the offset index, without reading the records)
/// return exactly the whole batches within max_bytes and below max_offset, as a plain
/// walk over the segment's bytes says, and the slice's next offset is the last's.
#[test]
fn reads_match_a_walk_of_the_batches_for_every_limit() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig { index_interval_bytes: 150, ..LogConfig::default() };
    let mut log = PartitionLog::open(dir.path(), config).unwrap();
    let batches = fill(&mut log, 40);
    let all = log.read(0, usize::MAX / 2, i64::MAX, true).unwrap().records;
    assert_eq!(all.len(), batches.iter().map(Vec::len).sum::<usize>());
    let walk: Vec<(BatchHeader, std::ops::Range<usize>)> = BatchIter::new(&all).collect();
    assert_eq!(walk.len(), 40);
    let end = log.log_end_offset();
    for (i, (first, at)) in walk.iter().enumerate() {
        for max_bytes in [0, 1, 60, 61, 100, 149, 150, 151, 299, 300, 301, 700, 1500, 1 << 20] {
            for max_offset in [first.base_offset, first.base_offset + 1, first.base_offset + 5, end - 3, end, i64::MAX] {
                for min_one in [false, true] {
                    // Reference: whole batches from the first, base below max_offset,
                    // within max_bytes, the first whole if min_one (KIP-74).
                    let mut want_end = at.start;
                    let mut want_next = None;
                    for (h, r) in &walk[i..] {
                        let fits = r.end - at.start <= max_bytes || (min_one && r.start == at.start);
                        if h.base_offset >= max_offset || !fits {
                            break;
                        }
                        want_end = r.end;
                        want_next = Some(h.next_offset());
                    }
                    let offset = first.base_offset + i64::from(first.last_offset_delta) / 2;
                    let got = log.read(offset, max_bytes, max_offset, min_one).unwrap();
                    let what = format!("from {offset}, max_bytes {max_bytes}, max_offset {max_offset}, min_one {min_one}");
                    assert_eq!(got.records, all.slice(at.start..want_end), "{what}");
                    let slice = log.read_slice(offset, max_bytes, max_offset, min_one).unwrap();
                    assert_eq!(slice.next_offset, want_next, "{what}");
                    assert_eq!(slice.records.map_or(0, |s| s.len()), want_end - at.start, "{what}");
                }
            }
        }
    }
}
