//! Test helpers: real v2 batches built with the `kafka-protocol` encoder, as a client
//! would send them.

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

#[derive(Debug, Clone)]
pub struct Spec {
    pub records: usize,
    pub value_bytes: usize,
    /// Timestamp of each record: `first_timestamp + i * timestamp_step`.
    pub first_timestamp: i64,
    pub timestamp_step: i64,
    pub compression: Compression,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    /// Sets the transactional bit (needs a producer id).
    pub transactional: bool,
}

impl Default for Spec {
    fn default() -> Self {
        Spec {
            records: 1,
            value_bytes: 10,
            first_timestamp: 1_000,
            timestamp_step: 1,
            compression: Compression::None,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            transactional: false,
        }
    }
}

pub fn build(spec: &Spec) -> Vec<u8> {
    let records: Vec<Record> = (0..spec.records)
        .map(|i| Record {
            transactional: spec.transactional,
            control: false,
            partition_leader_epoch: -1,
            producer_id: spec.producer_id,
            producer_epoch: spec.producer_epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // The encoder splits a batch wherever offset - sequence changes, so sequences
            // count up even without a producer id (the batch's base sequence stays -1).
            sequence: spec.base_sequence.wrapping_add(i as i32),
            timestamp: spec.first_timestamp + i as i64 * spec.timestamp_step,
            key: Some(Bytes::from(format!("key-{i}"))),
            value: Some(Bytes::from(vec![b'a' + (i % 26) as u8; spec.value_bytes])),
            headers: Default::default(),
            delete_horizon: false,
        })
        .collect();
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: spec.compression,
    };
    // Encoding records we just built cannot fail for these sizes.
    RecordBatchEncoder::encode(&mut buf, &records, &options).expect("encode test batch");
    buf.to_vec()
}

/// A plain batch of `records` records, timestamps from `first_timestamp`.
pub fn plain(records: usize, first_timestamp: i64) -> Vec<u8> {
    build(&Spec {
        records,
        first_timestamp,
        ..Spec::default()
    })
}

/// An idempotent producer's batch.
pub fn idempotent(
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
    records: usize,
) -> Vec<u8> {
    build(&Spec {
        records,
        producer_id,
        producer_epoch,
        base_sequence,
        ..Spec::default()
    })
}
