//! Transaction markers: the control batches the broker writes to end a producer's
//! transaction in a partition (clients never send them; Produce refuses them).
//!
//! Layout (Kafka's `EndTransactionMarker` in a v2 batch): attributes carry the
//! transactional and control bits; base sequence is -1; one record whose key is
//! `i16 version (0), i16 type (0 abort, 1 commit)` and whose value is
//! `i16 version (0), i32 coordinator epoch`. The CRC-32C is computed here, so a
//! marker passes the same checks as any produced batch.

use bytes::{BufMut, BytesMut};

use super::records::{BATCH_HEADER_BYTES, BatchHeader, LOG_OVERHEAD, MAGIC_V2, compute_crc};

const TRANSACTIONAL_BIT: i16 = 1 << 4;
const CONTROL_BIT: i16 = 1 << 5;
const CRC_AT: usize = 17;
/// length varint (1) + attributes (1) + timestamp delta (1) + offset delta (1)
/// + key length (1) + key (4) + value length (1) + value (6) + header count (1).
const RECORD_BYTES: usize = 17;
/// The record's body, after its own length varint.
const RECORD_BODY_BYTES: u8 = (RECORD_BYTES - 1) as u8;
pub const MARKER_BYTES: usize = BATCH_HEADER_BYTES + RECORD_BYTES;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlType {
    Abort = 0,
    Commit = 1,
}

/// Zigzag varint of a small non-negative value (< 64): one byte.
fn small_varint(v: u8) -> u8 {
    debug_assert!(v < 64);
    v << 1
}

/// One marker batch (base offset 0; the log assigns the real one) ending the
/// transaction of `producer_id`/`producer_epoch`.
pub fn marker_batch(producer_id: i64, producer_epoch: i16, coordinator_epoch: i32, kind: ControlType, timestamp_ms: i64) -> BytesMut {
    let mut b = BytesMut::with_capacity(MARKER_BYTES);
    b.put_i64(0); // base offset
    b.put_i32((MARKER_BYTES - LOG_OVERHEAD) as i32);
    b.put_i32(0); // partition leader epoch, stamped by the log
    b.put_i8(MAGIC_V2);
    b.put_u32(0); // crc, below
    b.put_i16(TRANSACTIONAL_BIT | CONTROL_BIT);
    b.put_i32(0); // last offset delta
    b.put_i64(timestamp_ms);
    b.put_i64(timestamp_ms);
    b.put_i64(producer_id);
    b.put_i16(producer_epoch);
    b.put_i32(-1); // base sequence: markers carry none
    b.put_i32(1); // record count
    b.put_u8(small_varint(RECORD_BODY_BYTES));
    b.put_i8(0); // record attributes
    b.put_u8(0); // timestamp delta
    b.put_u8(0); // offset delta
    b.put_u8(small_varint(4));
    b.put_i16(0); // key version
    b.put_i16(kind as i16);
    b.put_u8(small_varint(6));
    b.put_i16(0); // value version
    b.put_i32(coordinator_epoch);
    b.put_u8(0); // no headers
    debug_assert_eq!(b.len(), MARKER_BYTES);
    let crc = compute_crc(&b);
    b[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
    b
}

/// The key and value of a control batch's only record (`batch` is the whole batch),
/// or None when it is not a control batch or the record is cut short. A null value
/// reads as empty.
fn control_record<'a>(h: &BatchHeader, batch: &'a [u8]) -> Option<(&'a [u8], &'a [u8])> {
    if !h.is_control() {
        return None;
    }
    // The record: length varint, attributes, ts delta, offset delta, key, value.
    let rec = batch.get(BATCH_HEADER_BYTES..)?;
    let mut at = 0usize;
    let _len = read_varint(rec, &mut at)?;
    at += 1; // attributes
    let _ts = read_varint(rec, &mut at)?;
    let _od = read_varint(rec, &mut at)?;
    let key_len = usize::try_from(read_varint(rec, &mut at)?).ok()?;
    let key = rec.get(at..at.checked_add(key_len)?)?;
    at += key_len;
    let value = match usize::try_from(read_varint(rec, &mut at)?) {
        Ok(n) => rec.get(at..at.checked_add(n)?)?,
        Err(_) => &[],
    };
    Some((key, value))
}

/// The marker type of a control batch (key `i16 version, i16 type`), or None when it
/// is not a control batch or its key is not a marker key we know.
pub fn control_type(h: &BatchHeader, batch: &[u8]) -> Option<ControlType> {
    let (key, _) = control_record(h, batch)?;
    match i16::from_be_bytes(key.get(2..4)?.try_into().ok()?) {
        0 => Some(ControlType::Abort),
        1 => Some(ControlType::Commit),
        _ => None,
    }
}

/// The coordinator epoch in a marker's value (`i16 version, i32 coordinator epoch`),
/// or None when `batch` is not a control batch or its value is not one we can read.
pub fn coordinator_epoch(h: &BatchHeader, batch: &[u8]) -> Option<i32> {
    let (_, value) = control_record(h, batch)?;
    Some(i32::from_be_bytes(value.get(2..6)?.try_into().ok()?))
}

/// A zigzag varint (at most 5 bytes) at `*at`, advancing it.
fn read_varint(buf: &[u8], at: &mut usize) -> Option<i64> {
    let mut raw: u64 = 0;
    for i in 0..5 {
        let byte = *buf.get(*at)?;
        *at += 1;
        raw |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some(((raw >> 1) as i64) ^ -((raw & 1) as i64));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::records::{BatchIter, check_batch, validate_batches};
    use kafka_protocol::records::RecordBatchDecoder;

    #[test]
    fn marker_passes_our_checks_and_decodes() {
        for kind in [ControlType::Abort, ControlType::Commit] {
            let b = marker_batch(42, 3, 7, kind, 1_700_000_000_000);
            let h = check_batch(&b).expect("crc and framing valid");
            assert!(h.is_control() && h.is_transactional());
            assert_eq!((h.producer_id, h.producer_epoch, h.base_sequence, h.record_count), (42, 3, -1, 1));
            assert_eq!(validate_batches(&b, 1 << 20).unwrap().len(), 1);
            assert_eq!(control_type(&h, &b), Some(kind));
            assert_eq!(coordinator_epoch(&h, &b), Some(7));
            assert_eq!(BatchIter::verified(&b).count(), 1);
            // The codec crate agrees on the record layout.
            let mut bytes = b.clone().freeze();
            let set = RecordBatchDecoder::decode(&mut bytes).expect("decodes");
            let rec = &set.records[0];
            assert!(rec.control && rec.transactional);
            assert_eq!(rec.key.as_deref(), Some(&[0u8, 0, 0, kind as u8][..]));
            assert_eq!(rec.value.as_deref(), Some(&[0u8, 0, 0, 0, 0, 7][..]));
        }
    }

    #[test]
    fn data_batches_have_no_control_type() {
        let mut b = marker_batch(1, 0, 0, ControlType::Commit, 0);
        b[21..23].copy_from_slice(&TRANSACTIONAL_BIT.to_be_bytes());
        let h = BatchHeader::parse(&b).unwrap();
        assert_eq!(control_type(&h, &b), None);
        assert_eq!(coordinator_epoch(&h, &b), None);
    }
}
