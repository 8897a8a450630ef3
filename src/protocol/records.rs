//! The v2 record-batch header: parsing, checking and the two in-place rewrites the
//! broker makes (base offset, partition leader epoch). Records inside a batch are never
//! decoded here: a batch stays the client's bytes, byte for byte, from the Produce
//! request to the segment file to the Fetch response. `log/` uses this module to
//! validate appends and to walk stored bytes during reads and recovery.
//!
//! Every length read from the bytes is checked against the bytes that remain before it
//! is used, so a hostile or torn input can produce an error but never a panic or a
//! large allocation.

use std::ops::Range;

/// Size of the fixed v2 batch header, from `baseOffset` through `recordCount`.
pub const BATCH_HEADER_BYTES: usize = 61;
/// `baseOffset` (8) + `batchLength` (4): the bytes not counted by `batchLength`.
pub const LOG_OVERHEAD: usize = 12;
/// Smallest legal `batchLength`: the header after the log overhead.
pub const MIN_BATCH_LENGTH: i32 = (BATCH_HEADER_BYTES - LOG_OVERHEAD) as i32;
/// The only record-batch format sluice accepts (KIP-896 dropped v0/v1 in Kafka 4).
pub const MAGIC_V2: i8 = 2;
/// `producerId` of a batch written without an idempotent producer.
pub const NO_PRODUCER_ID: i64 = -1;
/// Timestamp of a batch or record that has none.
pub const NO_TIMESTAMP: i64 = -1;

// Byte positions of the header fields (big-endian on the wire and on disk).
const BASE_OFFSET_AT: usize = 0;
const BATCH_LENGTH_AT: usize = 8;
const PARTITION_LEADER_EPOCH_AT: usize = 12;
const MAGIC_AT: usize = 16;
const CRC_AT: usize = 17;
/// The CRC covers everything from `attributes` to the end of the batch.
const CRC_COVERED_FROM: usize = 21;
const ATTRIBUTES_AT: usize = 21;
const LAST_OFFSET_DELTA_AT: usize = 23;
const BASE_TIMESTAMP_AT: usize = 27;
const MAX_TIMESTAMP_AT: usize = 35;
const PRODUCER_ID_AT: usize = 43;
const PRODUCER_EPOCH_AT: usize = 51;
const BASE_SEQUENCE_AT: usize = 53;
const RECORD_COUNT_AT: usize = 57;

const COMPRESSION_MASK: i16 = 0x07;
const TIMESTAMP_TYPE_BIT: i16 = 1 << 3;
const TRANSACTIONAL_BIT: i16 = 1 << 4;
const CONTROL_BIT: i16 = 1 << 5;
/// Codecs 0..=4: none, gzip, snappy, lz4, zstd.
const MAX_COMPRESSION_CODEC: i16 = 4;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordsError {
    /// Bytes that cannot be a batch: bad length, bad CRC, truncated. Kafka: CORRUPT_MESSAGE.
    #[error("corrupt record batch: {reason}")]
    CorruptMessage { reason: String },
    /// A well-formed batch whose contents break a rule. Kafka: INVALID_RECORD.
    #[error("invalid record batch: {reason}")]
    InvalidRecord { reason: String },
    /// Kafka: MESSAGE_TOO_LARGE (`max.message.bytes`).
    #[error("record batch of {size} bytes exceeds the maximum of {max} bytes")]
    MessageTooLarge { size: usize, max: usize },
    /// Kafka: UNSUPPORTED_FOR_MESSAGE_FORMAT / CORRUPT_MESSAGE for v0/v1 message sets.
    #[error("unsupported record batch magic {0}")]
    UnsupportedMagic(i8),
}

fn corrupt(reason: impl Into<String>) -> RecordsError {
    RecordsError::CorruptMessage {
        reason: reason.into(),
    }
}

fn invalid(reason: impl Into<String>) -> RecordsError {
    RecordsError::InvalidRecord {
        reason: reason.into(),
    }
}

/// The parsed fixed header of one v2 record batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    /// Bytes after the `batchLength` field; the batch occupies `12 + batch_length`.
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub record_count: i32,
}

// The slices below are taken from `buf[..BATCH_HEADER_BYTES]`, whose length `parse`
// checks first, so the fixed-size conversions cannot fail.
fn be_i64(buf: &[u8], at: usize) -> i64 {
    i64::from_be_bytes(buf[at..at + 8].try_into().expect("8-byte slice"))
}
fn be_i32(buf: &[u8], at: usize) -> i32 {
    i32::from_be_bytes(buf[at..at + 4].try_into().expect("4-byte slice"))
}
fn be_u32(buf: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(buf[at..at + 4].try_into().expect("4-byte slice"))
}
fn be_i16(buf: &[u8], at: usize) -> i16 {
    i16::from_be_bytes(buf[at..at + 2].try_into().expect("2-byte slice"))
}

impl BatchHeader {
    /// Parses the fixed header at the start of `buf`. Checks that the header is complete,
    /// the magic is 2 and `batchLength` is at least a header; it does not check that the
    /// whole batch is present, nor the CRC (see [`validate_batches`], [`BatchIter`]).
    pub fn parse(buf: &[u8]) -> Result<BatchHeader, RecordsError> {
        if buf.len() < LOG_OVERHEAD {
            return Err(corrupt(format!(
                "{} bytes cannot hold a batch length",
                buf.len()
            )));
        }
        let batch_length = be_i32(buf, BATCH_LENGTH_AT);
        if batch_length < MIN_BATCH_LENGTH {
            return Err(corrupt(format!(
                "batch length {batch_length} is below {MIN_BATCH_LENGTH}"
            )));
        }
        if buf.len() <= MAGIC_AT {
            return Err(corrupt("batch truncated before its magic byte"));
        }
        let magic = buf[MAGIC_AT] as i8;
        if magic != MAGIC_V2 {
            return Err(RecordsError::UnsupportedMagic(magic));
        }
        if buf.len() < BATCH_HEADER_BYTES {
            return Err(corrupt(format!(
                "{} bytes cannot hold a batch header",
                buf.len()
            )));
        }
        Ok(BatchHeader {
            base_offset: be_i64(buf, BASE_OFFSET_AT),
            batch_length,
            partition_leader_epoch: be_i32(buf, PARTITION_LEADER_EPOCH_AT),
            magic,
            crc: be_u32(buf, CRC_AT),
            attributes: be_i16(buf, ATTRIBUTES_AT),
            last_offset_delta: be_i32(buf, LAST_OFFSET_DELTA_AT),
            base_timestamp: be_i64(buf, BASE_TIMESTAMP_AT),
            max_timestamp: be_i64(buf, MAX_TIMESTAMP_AT),
            producer_id: be_i64(buf, PRODUCER_ID_AT),
            producer_epoch: be_i16(buf, PRODUCER_EPOCH_AT),
            base_sequence: be_i32(buf, BASE_SEQUENCE_AT),
            record_count: be_i32(buf, RECORD_COUNT_AT),
        })
    }

    /// Bytes the whole batch occupies: log overhead plus `batchLength`.
    pub fn total_bytes(&self) -> usize {
        // batch_length >= MIN_BATCH_LENGTH > 0 after `parse`, so the cast is lossless.
        LOG_OVERHEAD + self.batch_length as usize
    }

    pub fn last_offset(&self) -> i64 {
        self.base_offset + i64::from(self.last_offset_delta)
    }

    /// Offset the batch after this one starts at.
    pub fn next_offset(&self) -> i64 {
        self.last_offset() + 1
    }

    /// Compression codec: 0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd.
    pub fn compression(&self) -> i16 {
        self.attributes & COMPRESSION_MASK
    }

    pub fn is_log_append_time(&self) -> bool {
        self.attributes & TIMESTAMP_TYPE_BIT != 0
    }

    pub fn is_transactional(&self) -> bool {
        self.attributes & TRANSACTIONAL_BIT != 0
    }

    pub fn is_control(&self) -> bool {
        self.attributes & CONTROL_BIT != 0
    }

    pub fn has_producer_id(&self) -> bool {
        self.producer_id > NO_PRODUCER_ID
    }

    /// Sequence of the last record, wrapping past `i32::MAX` to 0 as Kafka does.
    pub fn last_sequence(&self) -> i32 {
        increment_sequence(self.base_sequence, self.last_offset_delta)
    }
}

/// `seq + delta` in Kafka's sequence space, which wraps from `i32::MAX` to 0.
pub fn increment_sequence(seq: i32, delta: i32) -> i32 {
    if seq < 0 || delta < 0 {
        return seq;
    }
    if seq > i32::MAX - delta {
        delta - (i32::MAX - seq) - 1
    } else {
        seq + delta
    }
}

/// Rewrites `baseOffset`; the CRC does not cover it. `batch` must hold a header.
pub fn set_base_offset(batch: &mut [u8], off: i64) {
    batch[BASE_OFFSET_AT..BASE_OFFSET_AT + 8].copy_from_slice(&off.to_be_bytes());
}

/// Rewrites `partitionLeaderEpoch`; the CRC does not cover it. `batch` must hold a header.
pub fn set_partition_leader_epoch(batch: &mut [u8], e: i32) {
    batch[PARTITION_LEADER_EPOCH_AT..PARTITION_LEADER_EPOCH_AT + 4]
        .copy_from_slice(&e.to_be_bytes());
}

/// Stamps a batch with the broker's append time, as Kafka does for topics with
/// `message.timestamp.type=LogAppendTime`: sets the timestamp-type attribute bit and
/// `maxTimestamp` (consumers then read every record's timestamp as `maxTimestamp`;
/// `baseTimestamp` and the record deltas stay as produced), then recomputes the CRC,
/// which covers both fields. `batch` must be one whole batch.
pub fn set_log_append_time(batch: &mut [u8], append_time_ms: i64) {
    let attributes = be_i16(batch, ATTRIBUTES_AT) | TIMESTAMP_TYPE_BIT;
    batch[ATTRIBUTES_AT..ATTRIBUTES_AT + 2].copy_from_slice(&attributes.to_be_bytes());
    batch[MAX_TIMESTAMP_AT..MAX_TIMESTAMP_AT + 8].copy_from_slice(&append_time_ms.to_be_bytes());
    let crc = compute_crc(batch);
    batch[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
}

/// CRC-32C of `batch[21..]`, the bytes the stored `crc` field covers. `batch` must be one
/// whole batch (at least a header).
pub fn compute_crc(batch: &[u8]) -> u32 {
    crc32c::crc32c(&batch[CRC_COVERED_FROM..])
}

/// Checks the one batch at the start of `buf` without trusting its length: returns the
/// header once the whole batch is present and its CRC matches.
pub fn check_batch(buf: &[u8]) -> Result<BatchHeader, RecordsError> {
    let header = BatchHeader::parse(buf)?;
    let total_bytes = header.total_bytes();
    if total_bytes > buf.len() {
        return Err(corrupt(format!(
            "batch of {total_bytes} bytes at offset {} runs past the {} bytes available",
            header.base_offset,
            buf.len()
        )));
    }
    let actual = compute_crc(&buf[..total_bytes]);
    if actual != header.crc {
        return Err(corrupt(format!(
            "crc mismatch: stored {:#010x}, computed {actual:#010x}",
            header.crc
        )));
    }
    Ok(header)
}

/// Rules for a batch arriving in a Produce request, beyond its framing and CRC.
fn check_produce_rules(h: &BatchHeader) -> Result<(), RecordsError> {
    if h.record_count < 0 || h.last_offset_delta < 0 {
        return Err(invalid(format!(
            "negative record count {} or last offset delta {}",
            h.record_count, h.last_offset_delta
        )));
    }
    if i64::from(h.record_count) != i64::from(h.last_offset_delta) + 1 {
        return Err(invalid(format!(
            "record count {} does not match last offset delta {}",
            h.record_count, h.last_offset_delta
        )));
    }
    if h.compression() > MAX_COMPRESSION_CODEC {
        return Err(corrupt(format!(
            "unknown compression codec {}",
            h.compression()
        )));
    }
    if h.is_transactional() && !h.has_producer_id() {
        return Err(invalid("transactional batch without a producer id"));
    }
    if h.has_producer_id() && !h.is_control() && h.base_sequence < 0 {
        return Err(invalid(format!(
            "idempotent batch with base sequence {}",
            h.base_sequence
        )));
    }
    Ok(())
}

/// Validates the concatenated batches of one partition of a Produce request: framing
/// (no length is trusted), magic, CRC, record count vs. last offset delta, the size limit
/// and the absence of a trailing partial batch. Returns the headers in order.
pub fn validate_batches(
    buf: &[u8],
    max_batch_bytes: usize,
) -> Result<Vec<BatchHeader>, RecordsError> {
    if buf.is_empty() {
        return Err(corrupt("no record batch"));
    }
    let mut headers = Vec::new();
    let mut position_bytes = 0usize;
    while position_bytes < buf.len() {
        let rest = &buf[position_bytes..];
        // Check the size limit from the header alone, before hashing a huge batch.
        let header = BatchHeader::parse(rest)?;
        if header.total_bytes() > max_batch_bytes {
            return Err(RecordsError::MessageTooLarge {
                size: header.total_bytes(),
                max: max_batch_bytes,
            });
        }
        let header = check_batch(rest)?;
        check_produce_rules(&header)?;
        position_bytes += header.total_bytes();
        headers.push(header);
    }
    debug_assert_eq!(position_bytes, buf.len());
    Ok(headers)
}

/// Walks batches stored back to back (a segment, a fetch response) and yields each
/// header with its byte range. It stops at the end, at a partial tail or at the first
/// batch that does not parse; with [`BatchIter::verified`] also at a CRC mismatch.
/// After it stops, [`BatchIter::position_bytes`] is where the valid prefix ends and
/// [`BatchIter::error`] says why it stopped early, if it did (`None` for a clean end or a
/// torn tail: both are normal at the end of an active segment after a crash).
pub struct BatchIter<'a> {
    buf: &'a [u8],
    position_bytes: usize,
    verify_crc: bool,
    stopped: bool,
    truncated_tail: bool,
    error: Option<RecordsError>,
}

impl<'a> BatchIter<'a> {
    /// Structural walk: lengths and magic, no CRC (reads of already-checked data).
    pub fn new(buf: &'a [u8]) -> Self {
        BatchIter {
            buf,
            position_bytes: 0,
            verify_crc: false,
            stopped: false,
            truncated_tail: false,
            error: None,
        }
    }

    /// Walk that also checks every CRC (recovery).
    pub fn verified(buf: &'a [u8]) -> Self {
        BatchIter {
            verify_crc: true,
            ..BatchIter::new(buf)
        }
    }

    /// End of the last whole (and, if verified, intact) batch yielded so far.
    pub fn position_bytes(&self) -> usize {
        self.position_bytes
    }

    /// Why the walk stopped before the end, if a batch was corrupt (not merely cut short).
    pub fn error(&self) -> Option<&RecordsError> {
        self.error.as_ref()
    }

    /// True when the walk stopped at a batch cut short by the end of the buffer.
    pub fn truncated_tail(&self) -> bool {
        self.truncated_tail
    }
}

impl Iterator for BatchIter<'_> {
    type Item = (BatchHeader, Range<usize>);

    fn next(&mut self) -> Option<Self::Item> {
        if self.stopped || self.position_bytes >= self.buf.len() {
            return None;
        }
        let rest = &self.buf[self.position_bytes..];
        let header = match BatchHeader::parse(rest) {
            Ok(h) => h,
            Err(e) => {
                self.stopped = true;
                // A header cut short by the end of the buffer is a torn tail, not corruption.
                let short = rest.len() < BATCH_HEADER_BYTES
                    && !matches!(e, RecordsError::UnsupportedMagic(_))
                    && !(rest.len() >= LOG_OVERHEAD
                        && be_i32(rest, BATCH_LENGTH_AT) < MIN_BATCH_LENGTH);
                if short {
                    self.truncated_tail = true;
                } else {
                    self.error = Some(e);
                }
                return None;
            }
        };
        if header.total_bytes() > rest.len() {
            self.stopped = true;
            self.truncated_tail = true;
            return None;
        }
        if self.verify_crc
            && let Err(e) = check_batch(rest)
        {
            self.stopped = true;
            self.error = Some(e);
            return None;
        }
        let start = self.position_bytes;
        self.position_bytes += header.total_bytes();
        Some((header, start..self.position_bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::{Bytes, BytesMut};
    use kafka_protocol::records::{
        Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };
    use proptest::prelude::*;

    fn record(offset: i64, seq: i32, producer_id: i64) -> Record {
        Record {
            transactional: false,
            control: false,
            partition_leader_epoch: 0,
            producer_id,
            producer_epoch: if producer_id >= 0 { 0 } else { -1 },
            timestamp_type: TimestampType::Creation,
            offset,
            sequence: seq,
            timestamp: 1_000 + offset,
            key: Some(Bytes::from(format!("k{offset}"))),
            value: Some(Bytes::from(vec![b'v'; 20])),
            headers: Default::default(),
            delete_horizon: false,
        }
    }

    fn batch(count: i64, compression: Compression, producer_id: i64) -> Vec<u8> {
        let records: Vec<Record> = (0..count)
            .map(|i| record(i, i as i32, producer_id))
            .collect();
        let mut buf = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            &records,
            &RecordEncodeOptions {
                version: 2,
                compression,
            },
        )
        .expect("encode test batch");
        buf.to_vec()
    }

    #[test]
    fn parses_an_encoded_batch() {
        let b = batch(3, Compression::None, 7);
        let h = BatchHeader::parse(&b).unwrap();
        assert_eq!(h.total_bytes(), b.len());
        assert_eq!(
            (h.base_offset, h.last_offset_delta, h.record_count),
            (0, 2, 3)
        );
        assert_eq!((h.last_offset(), h.next_offset()), (2, 3));
        assert_eq!(
            (
                h.producer_id,
                h.producer_epoch,
                h.base_sequence,
                h.last_sequence()
            ),
            (7, 0, 0, 2)
        );
        assert_eq!((h.base_timestamp, h.max_timestamp), (1_000, 1_002));
        assert!(h.has_producer_id() && !h.is_transactional() && !h.is_control());
        assert_eq!(h.compression(), 0);
        assert_eq!(compute_crc(&b), h.crc);
        assert_eq!(validate_batches(&b, 1 << 20).unwrap(), vec![h]);
    }

    #[test]
    fn rewrites_leave_crc_valid() {
        let mut b = batch(2, Compression::Gzip, -1);
        set_base_offset(&mut b, 12_345);
        set_partition_leader_epoch(&mut b, 9);
        let h = check_batch(&b).unwrap();
        assert_eq!(
            (h.base_offset, h.partition_leader_epoch, h.compression()),
            (12_345, 9, 1)
        );
    }

    #[test]
    fn validates_concatenated_batches() {
        let mut buf = batch(2, Compression::None, -1);
        buf.extend(batch(5, Compression::Lz4, -1));
        buf.extend(batch(1, Compression::Zstd, -1));
        let hs = validate_batches(&buf, 1 << 20).unwrap();
        assert_eq!(
            hs.iter().map(|h| h.record_count).collect::<Vec<_>>(),
            vec![2, 5, 1]
        );
        let it: Vec<_> = BatchIter::verified(&buf).map(|(_, r)| r).collect();
        assert_eq!(it.len(), 3);
        assert_eq!(it[2].end, buf.len());
    }

    #[test]
    fn rejects_bad_input() {
        let good = batch(2, Compression::None, -1);
        assert!(matches!(
            validate_batches(&[], 100),
            Err(RecordsError::CorruptMessage { .. })
        ));
        // Trailing partial batch.
        let mut torn = good.clone();
        torn.extend_from_slice(&good[..30]);
        assert!(matches!(
            validate_batches(&torn, 1 << 20),
            Err(RecordsError::CorruptMessage { .. })
        ));
        // Too large.
        assert_eq!(
            validate_batches(&good, good.len() - 1),
            Err(RecordsError::MessageTooLarge {
                size: good.len(),
                max: good.len() - 1
            })
        );
        // Bad magic.
        let mut m = good.clone();
        m[16] = 1;
        assert_eq!(
            validate_batches(&m, 1 << 20),
            Err(RecordsError::UnsupportedMagic(1))
        );
        // Length too small, negative, past the end.
        for len in [0i32, 48, -1, i32::MAX] {
            let mut l = good.clone();
            l[8..12].copy_from_slice(&len.to_be_bytes());
            assert!(
                matches!(
                    validate_batches(&l, usize::MAX),
                    Err(RecordsError::CorruptMessage { .. })
                ),
                "{len}"
            );
        }
        // Record count inconsistent with last offset delta (CRC recomputed so only the rule fails).
        let mut c = good.clone();
        c[57..61].copy_from_slice(&5i32.to_be_bytes());
        let crc = compute_crc(&c);
        c[17..21].copy_from_slice(&crc.to_be_bytes());
        assert!(matches!(
            validate_batches(&c, 1 << 20),
            Err(RecordsError::InvalidRecord { .. })
        ));
        // CRC flip.
        let mut f = good.clone();
        let last = f.len() - 1;
        f[last] ^= 0x01;
        assert!(matches!(
            validate_batches(&f, 1 << 20),
            Err(RecordsError::CorruptMessage { .. })
        ));
    }

    #[test]
    fn iter_stops_cleanly_at_torn_tail_and_reports_corruption() {
        let one = batch(3, Compression::None, -1);
        let mut buf = one.clone();
        buf.extend_from_slice(&one);
        for cut in [one.len() + 5, one.len() + 30, one.len() + 61, buf.len() - 1] {
            let mut it = BatchIter::verified(&buf[..cut]);
            assert_eq!(it.by_ref().count(), 1);
            assert_eq!(it.position_bytes(), one.len());
            assert!(it.error().is_none() && it.truncated_tail(), "cut at {cut}");
        }
        let mut bad = buf.clone();
        bad[one.len() + 40] ^= 0xff;
        let mut it = BatchIter::verified(&bad);
        assert_eq!(it.by_ref().count(), 1);
        assert!(it.error().is_some());
        // The structural walk does not check CRCs.
        assert_eq!(BatchIter::new(&bad).count(), 2);
    }

    #[test]
    fn sequence_wraps_like_kafka() {
        assert_eq!(increment_sequence(5, 3), 8);
        assert_eq!(increment_sequence(i32::MAX, 1), 0);
        assert_eq!(increment_sequence(i32::MAX - 1, 3), 1);
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn mutations_never_panic(
            count in 1i64..6,
            codec in 0usize..3,
            edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
            cut in any::<usize>(),
        ) {
            let compression = [Compression::None, Compression::Gzip, Compression::Snappy][codec];
            let mut buf = batch(count, compression, 3);
            buf.extend(batch(1, Compression::None, -1));
            for (at, byte) in edits {
                let i = at % buf.len();
                buf[i] = byte;
            }
            let cut = cut % (buf.len() + 1);
            let _ = validate_batches(&buf[..cut], 1 << 20);
            let _ = BatchHeader::parse(&buf[..cut]);
            let mut it = BatchIter::verified(&buf[..cut]);
            let n = it.by_ref().count();
            prop_assert!(it.position_bytes() <= cut);
            prop_assert!(n <= 2);
        }

        #[test]
        fn any_flip_in_crc_range_is_detected(count in 1i64..6, at in any::<usize>(), bit in 0u8..8) {
            let mut buf = batch(count, Compression::None, -1);
            let i = CRC_COVERED_FROM + at % (buf.len() - CRC_COVERED_FROM);
            buf[i] ^= 1 << bit;
            let flipped_crc = validate_batches(&buf, 1 << 20);
            prop_assert!(flipped_crc.is_err());
        }
    }
}
