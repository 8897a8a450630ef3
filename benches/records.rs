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

mod common;

use common::build_batch;

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
