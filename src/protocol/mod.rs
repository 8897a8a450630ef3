//! Glue over the `kafka-protocol` crate: record-batch header parsing, the bounds
//! check that runs before any request body is decoded, the supported version table,
//! and Kafka error codes.

pub mod bounds;
pub mod control;
pub mod record_codec;
pub mod records;
pub mod versions;

pub use kafka_protocol::error::ResponseError;

/// One uncompressed v2 batch of plain keyed records (no producer id, CreateTime
/// `timestamp_ms`, offset deltas 0..n): what the coordinators write to their internal
/// logs. The base offset is assigned by the log on append.
pub fn encode_plain_batch(
    records: impl IntoIterator<Item = (bytes::Bytes, Option<bytes::Bytes>)>,
    timestamp_ms: i64,
) -> Result<bytes::BytesMut, String> {
    use kafka_protocol::records::{Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType};
    let records: Vec<Record> = records
        .into_iter()
        .enumerate()
        .map(|(i, (key, value))| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: -1,
            timestamp: timestamp_ms,
            key: Some(key),
            value,
            headers: Default::default(),
        })
        .collect();
    let mut buf = bytes::BytesMut::new();
    let opts = RecordEncodeOptions { version: 2, compression: Compression::None };
    RecordBatchEncoder::encode(&mut buf, &records, &opts).map_err(|e| e.to_string())?;
    Ok(buf)
}

/// Kafka error code for a `ResponseError`, or 0 for success.
pub fn code(e: ResponseError) -> i16 {
    e.code()
}
