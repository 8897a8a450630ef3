//! Shared by the criterion benches: v2 record batches built by hand from the format
//! (KIP-98), like a Java producer's: 1 KiB values, no key, no headers, uncompressed.

use sluice::protocol::records;

pub const VALUE_BYTES: usize = 1024;

fn put_varint(out: &mut Vec<u8>, v: i64) {
    // Zig-zag, then base-128 little-endian groups (protobuf style), as Kafka records use.
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    loop {
        let byte = (z & 0x7f) as u8;
        z >>= 7;
        if z == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// One v2 batch of `count` records with `VALUE_BYTES`-byte values; `producer_id` -1 for
/// a plain producer, else idempotent with `base_sequence`.
pub fn build_batch(count: i32, producer_id: i64, base_sequence: i32) -> Vec<u8> {
    let value = vec![0x5a_u8; VALUE_BYTES];
    let mut recs = Vec::with_capacity(count as usize * (VALUE_BYTES + 16));
    let mut body = Vec::with_capacity(VALUE_BYTES + 16);
    for i in 0..count {
        body.clear();
        body.push(0); // record attributes
        put_varint(&mut body, 0); // timestamp delta
        put_varint(&mut body, i64::from(i)); // offset delta
        put_varint(&mut body, -1); // null key
        put_varint(&mut body, VALUE_BYTES as i64);
        body.extend_from_slice(&value);
        put_varint(&mut body, 0); // no headers
        put_varint(&mut recs, body.len() as i64);
        recs.extend_from_slice(&body);
    }
    let ts: i64 = 1_700_000_000_000;
    let mut b = Vec::with_capacity(records::BATCH_HEADER_BYTES + recs.len());
    b.extend_from_slice(&0i64.to_be_bytes()); // base offset
    let batch_length = (records::BATCH_HEADER_BYTES - records::LOG_OVERHEAD + recs.len()) as i32;
    b.extend_from_slice(&batch_length.to_be_bytes());
    b.extend_from_slice(&0i32.to_be_bytes()); // partition leader epoch
    b.push(2); // magic
    b.extend_from_slice(&0u32.to_be_bytes()); // crc, set below
    b.extend_from_slice(&0i16.to_be_bytes()); // attributes: no compression, create time
    b.extend_from_slice(&(count - 1).to_be_bytes()); // last offset delta
    b.extend_from_slice(&ts.to_be_bytes()); // base timestamp
    b.extend_from_slice(&ts.to_be_bytes()); // max timestamp
    b.extend_from_slice(&producer_id.to_be_bytes());
    b.extend_from_slice(&(if producer_id < 0 { -1i16 } else { 0 }).to_be_bytes());
    b.extend_from_slice(&(if producer_id < 0 { -1 } else { base_sequence }).to_be_bytes());
    b.extend_from_slice(&count.to_be_bytes());
    b.extend_from_slice(&recs);
    seal(&mut b);
    b
}

/// Recomputes the batch CRC after a header field was rewritten.
pub fn seal(b: &mut [u8]) {
    let crc = records::compute_crc(b);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
}
