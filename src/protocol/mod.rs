//! Glue over the `kafka-protocol` crate: record-batch header parsing, the bounds
//! check that runs before any request body is decoded, the supported version table,
//! and Kafka error codes.

pub mod bounds;
pub mod control;
pub mod record_codec;
pub mod records;
pub mod versions;

pub use kafka_protocol::error::ResponseError;

/// Kafka error code for a `ResponseError`, or 0 for success.
pub fn code(e: ResponseError) -> i16 {
    e.code()
}
