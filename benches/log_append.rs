//! Criterion micro-benches of the storage engine (`sluice::log::PartitionLog`) without
//! the network: the append path (validate + producer checks + offset rewrite + pwrite +
//! index), the read path (segment lookup + sparse offset-index lookup + pread + batch
//! walk), and append followed by the fdatasync that group commit does.
//!
//! `cargo bench --bench log_append`. Each sample appends into a fresh log in a temporary
//! directory that is deleted afterwards, so disk use stays bounded by one sample.
//! Batches are built here from the v2 format: 15 records of 1 KiB (a Java producer's
//! 16 KiB `batch.size`). The timed append includes copying the batch into the request
//! buffer that `append` rewrites in place (about what decoding a request costs).

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use sluice::log::{LogConfig, PartitionLog};
mod common;

use common::{VALUE_BYTES, build_batch, seal};

const RECORDS_PER_BATCH: i32 = 15;
/// Batches generated up front for the idempotent bench; past this many appends in a
/// sample the next producer id continues (the CRC is redone outside the timed region).
const TEMPLATES: usize = 2048;

/// Producer id field (bytes 43..51) rewritten, CRC redone.
fn set_producer_id(b: &mut [u8], producer_id: i64) {
    b[43..51].copy_from_slice(&producer_id.to_be_bytes());
    seal(b);
}

fn config() -> LogConfig {
    LogConfig {
        // Smaller than Kafka's 1 GiB so that rolling is part of the measured path.
        segment_bytes: 256 << 20,
        ..LogConfig::default()
    }
}

fn fresh_log() -> (tempfile::TempDir, PartitionLog) {
    let dir = tempfile::tempdir().expect("temp dir");
    let log = PartitionLog::open(&dir.path().join("bench-0"), config()).expect("open log");
    (dir, log)
}

fn bench_append(c: &mut Criterion) {
    let plain = build_batch(RECORDS_PER_BATCH, -1, 0);
    let mut g = c.benchmark_group("append");
    g.measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    g.sample_size(20);
    g.throughput(Throughput::Bytes(plain.len() as u64));

    g.bench_function("plain_15x1KiB", |b| {
        b.iter_custom(|iters| {
            let (_dir, mut log) = fresh_log();
            let mut buf = plain.clone();
            let t0 = Instant::now();
            for _ in 0..iters {
                buf.copy_from_slice(&plain);
                black_box(log.append(&mut buf, 0).expect("append"));
            }
            t0.elapsed()
        })
    });

    let mut templates: Vec<Vec<u8>> = (0..TEMPLATES)
        .map(|i| build_batch(RECORDS_PER_BATCH, 1000, i as i32 * RECORDS_PER_BATCH))
        .collect();
    let mut next_producer_id = 2000i64;
    g.bench_function("idempotent_15x1KiB", |b| {
        b.iter_custom(|iters| {
            let (_dir, mut log) = fresh_log();
            let mut buf = templates[0].clone();
            let mut timed = Duration::ZERO;
            let mut done = 0u64;
            while done < iters {
                // A new producer per round of templates keeps sequences valid.
                next_producer_id += 1;
                for t in templates.iter_mut() {
                    set_producer_id(t, next_producer_id);
                }
                let round = (iters - done).min(TEMPLATES as u64) as usize;
                let t0 = Instant::now();
                for t in &templates[..round] {
                    buf.copy_from_slice(t);
                    black_box(log.append(&mut buf, 0).expect("append"));
                }
                timed += t0.elapsed();
                done += round as u64;
            }
            timed
        })
    });
    g.finish();

    // Append 1 MiB (64 batches, one Produce request's partition data), then the fsync
    // group commit would do: duplicate handles, fdatasync, mark synced.
    let mut request = Vec::new();
    while request.len() < (1 << 20) {
        request.extend_from_slice(&plain);
    }
    let mut g = c.benchmark_group("append_fsync");
    g.sample_size(10).measurement_time(Duration::from_secs(5));
    g.throughput(Throughput::Bytes(request.len() as u64));
    g.bench_function("1MiB_then_fdatasync", |b| {
        b.iter_custom(|iters| {
            let (_dir, mut log) = fresh_log();
            let mut buf = request.clone();
            let t0 = Instant::now();
            for _ in 0..iters {
                buf.copy_from_slice(&request);
                log.append(&mut buf, 0).expect("append");
                let (files, upto) = log.sync_handles();
                for f in &files {
                    f.sync_data().expect("fdatasync");
                }
                log.mark_synced(upto);
            }
            t0.elapsed()
        })
    });
    g.finish();
}

fn bench_read(c: &mut Criterion) {
    // 64 MiB of batches: about 4,000 batches, 61,000 offsets, 16,000 index entries.
    let (_dir, mut log) = fresh_log();
    let plain = build_batch(RECORDS_PER_BATCH, -1, 0);
    let mut buf = plain.clone();
    while log.log_end_offset() < (64 << 20) / VALUE_BYTES as i64 {
        buf.copy_from_slice(&plain);
        log.append(&mut buf, 0).expect("append");
    }
    let end = log.log_end_offset();
    let mut g = c.benchmark_group("read");
    for max_bytes in [16 << 10, 1 << 20] {
        g.throughput(Throughput::Bytes(max_bytes as u64));
        g.bench_with_input(BenchmarkId::new("random_offset", max_bytes), &max_bytes, |b, &m| {
            let mut x = 0x2545_f491_4f6c_dd1d_u64;
            b.iter(|| {
                // xorshift: a different offset every call, so no lookup is cached.
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let offset = (x % end as u64) as i64;
                black_box(log.read(offset, m, i64::MAX, true).expect("read"))
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench_append, bench_read);
criterion_main!(benches);
