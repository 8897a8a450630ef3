//! Criterion micro-benches of the record-batch header code on the produce and fetch
//! paths (`sluice::protocol::records`): parsing one header, checking one batch (CRC-32C
//! over the whole batch), validating a Produce request's worth of batches, and walking
//! stored batches the way a fetch does.
//!
//! `cargo bench --bench records`. Batches are built here from the v2 format (KIP-98),
//! like a Java producer's: 1 KiB values, no key, no headers, uncompressed.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use sluice::protocol::records::{self, BatchHeader, BatchIter};

const VALUE_BYTES: usize = 1024;

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
    let crc = records::compute_crc(&b);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b
}

fn bench_records(c: &mut Criterion) {
    // A Java producer with batch.size=16384 and 1 KiB records sends 15 records a batch.
    let batch = build_batch(15, 1000, 0);
    assert!(records::check_batch(&batch).is_ok(), "the bench batch must be valid");

    let mut g = c.benchmark_group("batch_header");
    g.throughput(Throughput::Elements(1));
    g.bench_function("parse", |b| b.iter(|| BatchHeader::parse(black_box(&batch))));
    g.finish();

    let mut g = c.benchmark_group("check_batch");
    for count in [1, 15, 64] {
        let batch = build_batch(count, 1000, 0);
        g.throughput(Throughput::Bytes(batch.len() as u64));
        g.bench_with_input(BenchmarkId::new("crc32c", batch.len()), &batch, |b, batch| {
            b.iter(|| records::check_batch(black_box(batch)))
        });
    }
    g.finish();

    // One partition's records in one Produce request: 16 batches of 15 records.
    let mut request = Vec::new();
    for i in 0..16 {
        request.extend_from_slice(&build_batch(15, 1000, i * 15));
    }
    let mut g = c.benchmark_group("validate_batches");
    g.throughput(Throughput::Bytes(request.len() as u64));
    g.bench_function("16x15_records", |b| {
        b.iter(|| records::validate_batches(black_box(&request), 1_048_588))
    });
    g.finish();

    // A fetch walks the headers of stored batches to cut the response at a batch end.
    let mut stored = Vec::new();
    let mut offset = 0i64;
    while stored.len() < (1 << 20) {
        let mut b = build_batch(15, -1, 0);
        records::set_base_offset(&mut b, offset);
        offset += 15;
        stored.extend_from_slice(&b);
    }
    let mut g = c.benchmark_group("batch_iter");
    g.throughput(Throughput::Bytes(stored.len() as u64));
    g.bench_function("walk_1MiB", |b| {
        b.iter(|| BatchIter::new(black_box(&stored)).map(|(h, _)| h.record_count).sum::<i32>())
    });
    g.bench_function("walk_verified_1MiB", |b| {
        b.iter(|| {
            BatchIter::verified(black_box(&stored))
                .map(|(h, _)| h.record_count)
                .sum::<i32>()
        })
    });
    g.finish();
}

criterion_group!(benches, bench_records);
criterion_main!(benches);
