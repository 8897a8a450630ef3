//! Tests of retention, DeleteRecords, crash-safe segment deletion, time rolling,
//! LogAppendTime and live config changes, with injected time (`now_ms` parameters).

use std::fs;
use std::path::Path;

use kafka_protocol::records::{Compression, RecordBatchDecoder};

use super::partition_tests::{read_all, segment_files, tiny_config};
use super::test_util::{self, Spec};
use super::{Error, LogConfig, PartitionLog, UNLIMITED};
use crate::protocol::records::{self, BatchIter};

fn open_with(dir: &Path, config: LogConfig) -> PartitionLog {
    PartitionLog::open(dir, config).unwrap()
}

/// `n` one-record batches; batch i has timestamp `first_ts + i`.
fn fill(log: &mut PartitionLog, n: usize, first_ts: i64) {
    for i in 0..n {
        log.append(&mut test_util::plain(1, first_ts + i as i64), 0).unwrap();
    }
}

fn bases(log: &PartitionLog) -> Vec<i64> {
    log.segment_base_offsets()
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    v.sort();
    v
}

#[test]
fn time_retention_deletes_expired_segments_but_never_past_the_high_watermark() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig { retention_ms: 10_000, ..tiny_config() };
    let mut log = open_with(dir.path(), config);
    fill(&mut log, 40, 1_000); // old: timestamps 1_000..1_039
    let old_end = log.log_end_offset();
    fill(&mut log, 40, 50_000); // new: timestamps 50_000..50_039
    let segments = bases(&log);
    assert!(segments.len() > 4, "{segments:?}");

    // Nothing has expired yet at now = 11_000 (1_039 + 10_000 is not exceeded by much).
    let out = log.delete_old_segments(10_500, i64::MAX).unwrap();
    assert_eq!(out.deleted_segments, 0);

    // A high watermark at offset 0 protects everything.
    let out = log.delete_old_segments(40_000, 0).unwrap();
    assert_eq!((out.deleted_segments, log.log_start_offset()), (0, 0));

    // At now = 40_000 every segment made only of old batches is deleted; the segment
    // holding both old and new batches (its largest timestamp is new) stays.
    let out = log.delete_old_segments(40_000, i64::MAX).unwrap();
    assert!(out.deleted_segments > 0);
    let first = bases(&log)[0];
    assert!(first <= old_end && first > 0, "first kept segment {first}, old end {old_end}");
    assert_eq!((out.log_start_offset, log.log_start_offset()), (first, first));
    assert_eq!(segment_files(dir.path()).len(), log.segment_count());
    assert!(names_in(dir.path()).iter().any(|n| n.ends_with(".deleted")), "renamed, not yet removed");
    super::segment::remove_deleted_files(&out.renamed_files).unwrap();
    assert!(!names_in(dir.path()).iter().any(|n| n.ends_with(".deleted")));
    assert!(matches!(log.read(first - 1, 1000, i64::MAX, true), Err(Error::OffsetOutOfRange { .. })));
    let r = log.read(first, 1000, i64::MAX, true).unwrap();
    assert_eq!(BatchIter::new(&r.records).next().unwrap().0.base_offset, first);

    // A high watermark inside the remaining data stops deletion before it.
    let hw = bases(&log)[2];
    log.delete_old_segments(i64::MAX / 2, hw).unwrap();
    assert_eq!(log.log_start_offset(), bases(&log)[0]);
    assert!(bases(&log)[0] <= hw && bases(&log).len() >= 2);
}

#[test]
fn size_retention_keeps_the_newest_segments_within_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig { retention_bytes: 2_000, retention_ms: UNLIMITED, ..tiny_config() };
    let mut log = open_with(dir.path(), config);
    fill(&mut log, 100, 1_000);
    let before = log.size_bytes();
    assert!(before > 5_000);
    let out = log.delete_old_segments(0, i64::MAX).unwrap();
    assert!(out.deleted_segments > 0);
    assert!(log.size_bytes() >= 2_000, "never below the limit: {}", log.size_bytes());
    // Deleting one more (the oldest remaining) segment would go below the limit.
    let oldest = fs::metadata(&segment_files(dir.path())[0]).unwrap().len();
    assert!(log.size_bytes() - oldest < 2_000);
    assert_eq!(before - log.size_bytes(), out.deleted_bytes);
    assert_eq!(log.log_start_offset(), bases(&log)[0]);
}

#[test]
fn retention_off_with_compact_policy_and_unlimited_values() {
    let dir = tempfile::tempdir().unwrap();
    let compact = LogConfig { retention_ms: 1, retention_bytes: 1, cleanup_delete: false, cleanup_compact: true, ..tiny_config() };
    let mut log = open_with(dir.path(), compact);
    fill(&mut log, 60, 1_000);
    assert_eq!(log.delete_old_segments(i64::MAX / 2, i64::MAX).unwrap().deleted_segments, 0);
    log.set_config(LogConfig { retention_ms: UNLIMITED, retention_bytes: UNLIMITED, ..tiny_config() });
    assert_eq!(log.delete_old_segments(i64::MAX / 2, i64::MAX).unwrap().deleted_segments, 0);
    log.set_config(LogConfig { retention_ms: -5, retention_bytes: -5, ..tiny_config() });
    assert_eq!(log.delete_old_segments(i64::MAX / 2, i64::MAX).unwrap().deleted_segments, 0);
    // Applied live: a retention.ms set now takes effect at the next pass.
    log.set_config(LogConfig { retention_ms: 1_000, ..tiny_config() });
    assert!(log.delete_old_segments(1_000_000, i64::MAX).unwrap().deleted_segments > 0);
}

#[test]
fn everything_expired_rolls_and_appends_continue_at_the_log_end() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig { retention_ms: 1_000, ..tiny_config() };
    let mut log = open_with(dir.path(), config);
    fill(&mut log, 30, 1_000);
    let end = log.log_end_offset();
    let out = log.delete_old_segments(100_000, end).unwrap();
    assert!(out.deleted_segments >= 2);
    assert_eq!(bases(&log), vec![end]);
    assert_eq!((log.log_start_offset(), log.log_end_offset(), log.size_bytes()), (end, end, 0));
    assert_eq!(log.read(end, 100, i64::MAX, true).unwrap().records.len(), 0);
    let info = log.append(&mut test_util::plain(2, 200_000), 0).unwrap();
    assert_eq!(info.base_offset, end);
    // An empty active segment is never deleted.
    assert_eq!(log.delete_old_segments(i64::MAX / 2, 0).unwrap().deleted_segments, 0);
}

#[test]
fn log_start_offset_survives_clean_and_unclean_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open_with(dir.path(), tiny_config());
    fill(&mut log, 50, 1_000);
    let end = log.log_end_offset();
    let start = log.delete_records_before(17, end).unwrap().log_start_offset;
    assert_eq!(start, 17);
    let kept = read_all(&log);
    drop(log); // crash: no close
    let mut log = open_with(dir.path(), tiny_config());
    assert_eq!(log.log_start_offset(), 17);
    assert_eq!(read_all(&log), kept);
    log.delete_records_before(30, end).unwrap();
    log.close().unwrap();
    drop(log);
    let log = open_with(dir.path(), tiny_config());
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (30, end));
}

#[test]
fn delete_records_moves_the_start_and_drops_whole_segments_below_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open_with(dir.path(), tiny_config());
    fill(&mut log, 60, 1_000);
    let end = log.log_end_offset();
    let segments = bases(&log);
    let target = segments[2] + 1; // inside the third segment
    let out = log.delete_records_before(target, end).unwrap();
    assert_eq!(out.log_start_offset, target);
    assert_eq!(out.deleted_segments, 2);
    assert_eq!(bases(&log)[0], segments[2]);
    // The read at the start returns the batch holding it; below it is out of range.
    let r = log.read(target, 1000, i64::MAX, true).unwrap();
    assert_eq!(r.log_start_offset, target);
    assert!(BatchIter::new(&r.records).next().unwrap().0.last_offset() >= target);
    assert!(matches!(log.read(target - 1, 1000, i64::MAX, true), Err(Error::OffsetOutOfRange { .. })));
    // Earlier offsets change nothing; beyond the high watermark is out of range.
    assert_eq!(log.delete_records_before(3, end).unwrap().log_start_offset, target);
    assert!(matches!(log.delete_records_before(end - 5, end - 10), Err(Error::OffsetOutOfRange { .. })));
    assert!(matches!(log.delete_records_before(-3, end), Err(Error::OffsetOutOfRange { .. })));
    // Up to the log end: only the active segment is left, the start is the end.
    log.delete_records_before(end, end).unwrap();
    assert_eq!(log.log_start_offset(), end);
    assert_eq!(log.segment_count(), 1);
}

/// A crash after the checkpoint (new log start) was written but before any file was
/// renamed: recovery deletes the segments wholly below the start.
#[test]
fn crash_after_checkpoint_before_rename() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open_with(dir.path(), tiny_config());
    fill(&mut log, 60, 1_000);
    let segments = bases(&log);
    let kept_from = segments[3];
    let expected: Vec<_> = read_all(&log).into_iter().filter(|(h, _)| h.base_offset >= kept_from).collect();
    super::checkpoint::Checkpoint::new(false, 0, kept_from).write(dir.path()).unwrap();
    drop(log);
    let log = open_with(dir.path(), tiny_config());
    assert_eq!(log.log_start_offset(), kept_from);
    assert_eq!(bases(&log)[0], kept_from);
    assert_eq!(segment_files(dir.path()).len(), segments.len() - 3);
    assert_eq!(read_all(&log), expected);
}

/// A crash in the middle of renaming: the first segment fully renamed, the second with
/// only its log file renamed, the checkpoint not yet showing the new start (the older
/// order guarantee is "checkpoint first", but recovery must cope with any state).
#[test]
fn crash_in_the_middle_of_renaming() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open_with(dir.path(), tiny_config());
    fill(&mut log, 60, 1_000);
    let segments = bases(&log);
    let expected: Vec<_> = read_all(&log).into_iter().filter(|(h, _)| h.base_offset >= segments[2]).collect();
    drop(log);
    let stem = |b: i64| dir.path().join(format!("{b:020}"));
    for ext in ["log", "index", "timeindex"] {
        let p = stem(segments[0]).with_extension(ext);
        fs::rename(&p, format!("{}.deleted", p.display())).unwrap();
    }
    let p = stem(segments[1]).with_extension("log");
    fs::rename(&p, format!("{}.deleted", p.display())).unwrap();
    let log = open_with(dir.path(), tiny_config());
    assert_eq!(bases(&log)[0], segments[2]);
    assert_eq!(log.log_start_offset(), segments[2]);
    assert_eq!(read_all(&log), expected);
    let names = names_in(dir.path());
    assert!(!names.iter().any(|n| n.ends_with(".deleted") || n.starts_with(&format!("{:020}", segments[1]))), "{names:?}");
}

/// A crash after the renames, before the files were removed.
#[test]
fn crash_after_rename_before_removal() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig { retention_ms: 1_000, ..tiny_config() };
    let mut log = open_with(dir.path(), config);
    fill(&mut log, 40, 1_000);
    fill(&mut log, 40, 900_000);
    let out = log.delete_old_segments(500_000, i64::MAX).unwrap();
    assert!(out.deleted_segments > 0 && !out.renamed_files.is_empty());
    let start = log.log_start_offset();
    let expected = read_all(&log);
    drop(log); // crash: renamed files are still there
    let log = open_with(dir.path(), config);
    assert_eq!(log.log_start_offset(), start);
    assert_eq!(read_all(&log), expected);
    assert!(!names_in(dir.path()).iter().any(|n| n.ends_with(".deleted")));
}

#[test]
fn segment_ms_rolls_on_batch_timestamps() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig { segment_bytes: 1 << 20, segment_ms: 100, ..tiny_config() };
    let mut log = open_with(dir.path(), config);
    fill(&mut log, 5, 1_000); // 1_000..1_004: same segment
    assert_eq!(log.segment_count(), 1);
    log.append(&mut test_util::plain(1, 1_100), 0).unwrap(); // 100 past the first: not more
    assert_eq!(log.segment_count(), 1);
    log.append(&mut test_util::plain(1, 1_101), 0).unwrap();
    assert_eq!(bases(&log), vec![0, 6]);
    log.close().unwrap();
    drop(log);
    // After reopening, the active segment's first timestamp is known again.
    let mut log = open_with(dir.path(), config);
    log.append(&mut test_util::plain(1, 1_150), 0).unwrap();
    assert_eq!(log.segment_count(), 2);
    log.append(&mut test_util::plain(1, 1_202), 0).unwrap();
    assert_eq!(log.segment_count(), 3);
}

#[test]
fn log_append_time_rewrites_timestamps_and_crc() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig { log_append_time: true, ..tiny_config() };
    let mut log = open_with(dir.path(), config);
    let codecs = [Compression::None, Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd];
    for (i, codec) in codecs.iter().enumerate() {
        let spec = Spec { records: 3, first_timestamp: 1_000, timestamp_step: 7, compression: *codec, ..Spec::default() };
        let info = log.append_at(&mut test_util::build(&spec), 0, 50_000 + i as i64).unwrap();
        assert_eq!(info.log_append_time_ms, 50_000 + i as i64);
    }
    let all = read_all(&log);
    assert_eq!(all.len(), 5);
    for (i, (h, bytes)) in all.iter().enumerate() {
        assert!(h.is_log_append_time());
        assert_eq!(h.max_timestamp, 50_000 + i as i64);
        assert_eq!(h.base_timestamp, 1_000, "base timestamp stays as produced");
        records::check_batch(bytes).expect("the recomputed CRC matches");
        let mut b = bytes::Bytes::from(bytes.clone());
        let set = RecordBatchDecoder::decode(&mut b).expect("clients can decode it");
        // Java clients read every record's timestamp as the batch's maxTimestamp when
        // the type is LogAppendTime (the compat suite checks that); this crate's decoder
        // reports only the type, and the deltas it adds stay the producer's.
        for r in &set.records {
            assert_eq!(r.timestamp_type, kafka_protocol::records::TimestampType::LogAppend);
        }
    }
    // The time index and ListOffsets-by-timestamp use the append time.
    assert_eq!(log.offset_for_timestamp(50_002).unwrap(), Some((6, 50_002)));
    assert_eq!(log.max_timestamp(), Some((12, 50_004)));
    drop(log);
    let mut log = open_with(dir.path(), config); // recovery re-checks every CRC
    assert_eq!(read_all(&log), all);
    // CreateTime topics keep the producer's timestamps and answer -1.
    log.set_config(tiny_config());
    let info = log.append_at(&mut test_util::plain(1, 1_234), 0, 60_000).unwrap();
    assert_eq!(info.log_append_time_ms, -1);
    let last = read_all(&log).pop().unwrap().0;
    assert!(!last.is_log_append_time());
    assert_eq!(last.max_timestamp, 1_234);
}

#[test]
fn segment_bytes_and_max_message_bytes_apply_live() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open_with(dir.path(), LogConfig { segment_bytes: 1 << 20, ..tiny_config() });
    fill(&mut log, 30, 1_000);
    assert_eq!(log.segment_count(), 1);
    log.set_config(LogConfig { segment_bytes: 500, max_message_bytes: 100, ..tiny_config() });
    fill(&mut log, 30, 2_000);
    assert!(log.segment_count() > 3);
    let big = Spec { value_bytes: 200, ..Spec::default() };
    assert!(matches!(
        log.append(&mut test_util::build(&big), 0),
        Err(Error::Records(records::RecordsError::MessageTooLarge { .. }))
    ));
}

#[derive(Debug, Clone)]
enum Step {
    /// `n` one-record batches at timestamp `ts`.
    Append { n: usize, ts: i64 },
    Retention { now: i64, hw_back: i64 },
    DeleteRecords { fraction: u8 },
    Reopen { clean: bool },
}

fn step() -> impl proptest::strategy::Strategy<Value = Step> {
    use proptest::prelude::*;
    prop_oneof![
        4 => (1usize..12, 0i64..10_000).prop_map(|(n, ts)| Step::Append { n, ts }),
        2 => (0i64..20_000, 0i64..5).prop_map(|(now, hw_back)| Step::Retention { now, hw_back }),
        1 => any::<u8>().prop_map(|fraction| Step::DeleteRecords { fraction }),
        1 => any::<bool>().prop_map(|clean| Step::Reopen { clean }),
    ]
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 32, failure_persistence: None, ..Default::default() })]

    /// Random appends, retention passes (time and size), DeleteRecords and restarts:
    /// the log start never moves back or past the high watermark, the segments stay
    /// contiguous from it, and every record from the log start on reads back densely.
    #[test]
    fn retention_keeps_the_log_valid(steps in proptest::collection::vec(step(), 1..40)) {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig { retention_ms: 5_000, retention_bytes: 3_000, ..tiny_config() };
        let mut log = open_with(dir.path(), config);
        let mut last_start = 0;
        for s in steps {
            match s {
                Step::Append { n, ts } => fill(&mut log, n, ts),
                Step::Retention { now, hw_back } => {
                    let hw = (log.log_end_offset() - hw_back).max(log.log_start_offset());
                    let out = log.delete_old_segments(now, hw).unwrap();
                    super::segment::remove_deleted_files(&out.renamed_files).unwrap();
                    proptest::prop_assert!(log.log_start_offset() <= hw);
                }
                Step::DeleteRecords { fraction } => {
                    let (start, end) = (log.log_start_offset(), log.log_end_offset());
                    let target = start + (end - start) * i64::from(fraction) / 255;
                    let out = log.delete_records_before(target, end).unwrap();
                    super::segment::remove_deleted_files(&out.renamed_files).unwrap();
                    proptest::prop_assert_eq!(log.log_start_offset(), target.max(start));
                }
                Step::Reopen { clean } => {
                    if clean { log.close().unwrap(); }
                    drop(log);
                    log = open_with(dir.path(), config);
                }
            }
            proptest::prop_assert!(log.log_start_offset() >= last_start, "log start moved back");
            last_start = log.log_start_offset();
            let bases = bases(&log);
            proptest::prop_assert!(bases[0] <= log.log_start_offset());
            // At most one segment lies wholly below the start, ending exactly there: a
            // DeleteRecords to the end of the active segment, then a roll. The next
            // retention pass removes it (as in Kafka).
            proptest::prop_assert!(bases.len() == 1 || bases[1] >= log.log_start_offset(), "segments below the start: {:?}", bases);
            let batches = read_all(&log);
            let mut next = batches.first().map_or(log.log_end_offset(), |(h, _)| h.base_offset);
            proptest::prop_assert!(next <= log.log_start_offset().max(bases[0]));
            for (h, _) in &batches {
                proptest::prop_assert_eq!(h.base_offset, next);
                next = h.next_offset();
            }
            proptest::prop_assert_eq!(next, log.log_end_offset());
        }
    }
}
