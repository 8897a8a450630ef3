//! Partition logs: the storage engine. One [`PartitionLog`] owns one partition's
//! directory: its segments (`NNNNNNNNNNNNNNNNNNNN.log`, named by base offset), the sparse
//! offset and time indexes of each segment, the idempotent-producer state and a small
//! checkpoint (recovery point, log start offset, clean-shutdown flag).
//!
//! The API here is synchronous and single-writer (`&mut self` to append); the async
//! wrapper, group commit, fsync scheduling and wakeups live in [`manager`]. This module
//! knows raw v2 record-batch bytes only ([`crate::protocol::records`]); it never names a
//! protocol message type. Batches are stored byte for byte as produced, with only their
//! base offset and partition leader epoch rewritten (neither is covered by the CRC),
//! until the log cleaner ([`cleaner`]) compacts a `cleanup.policy=compact` log: it
//! rewrites sealed segments without superseded records, leaving offset gaps. A
//! follower stores its leader's batches unchanged ([`replica`]: replica appends,
//! truncation of a diverged log), and every log keeps a leader epoch cache ([`epochs`])
//! for OffsetForLeaderEpoch.

pub mod manager;

pub mod cleaner;
mod checkpoint;
mod epochs;
mod filter;
mod index;
mod offset_map;
mod partition;
mod replica;
mod producer_state;
mod recovery;
mod retention;
mod segment;
mod space;
mod txn;

#[cfg(test)]
mod cleaner_tests;
#[cfg(test)]
mod partition_tests;
#[cfg(test)]
mod replica_tests;
#[cfg(test)]
mod retention_tests;
#[cfg(test)]
mod test_util;

use std::path::PathBuf;

pub use crate::protocol::records::RecordsError;
pub use cleaner::{CleanStats, CleanerOptions};
pub use partition::PartitionLog;
pub use segment::FileSlice;
pub use producer_state::{BatchMeta, MAX_PRODUCERS_PER_PARTITION, ProducerEntry};
pub use retention::RetentionOutcome;
pub use txn::{AbortedTxn, CommittedRead, TxnIndex};

/// `retention.ms` / `retention.bytes` value meaning "no limit" (any negative value does).
pub const UNLIMITED: i64 = -1;

/// Milliseconds since the Unix epoch by the system clock: the time the broker passes
/// into the `_at` methods. Tests pass their own time instead (the clock seam).
pub fn system_time_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Per-log settings, named and defaulted like Kafka's topic configs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LogConfig {
    /// `segment.bytes`: roll the active segment before it would grow past this.
    pub segment_bytes: u64,
    /// `index.interval.bytes`: bytes of batches between two sparse index entries.
    pub index_interval_bytes: u64,
    /// `segment.index.bytes`: preallocated size of each index file of the active segment.
    pub segment_index_bytes: u64,
    /// `max.message.bytes`: largest batch (including its 12-byte log overhead) accepted.
    pub max_message_bytes: usize,
    /// `segment.ms`: roll the active segment once an incoming batch's timestamp is this
    /// far past the first batch's (Kafka's rule), so time retention can make progress.
    pub segment_ms: i64,
    /// `retention.ms`: delete a segment once its largest timestamp is this old
    /// ([`UNLIMITED`]: never). Applies only with the `delete` cleanup policy.
    pub retention_ms: i64,
    /// `retention.bytes`: delete the oldest segments while the log is larger than this
    /// by at least their size ([`UNLIMITED`]: never).
    pub retention_bytes: i64,
    /// `cleanup.policy` contains `delete`: retention runs.
    pub cleanup_delete: bool,
    /// `cleanup.policy` contains `compact`: the log cleaner compacts the log (and
    /// DeleteRecords refuses compact-only logs, as Kafka does).
    pub cleanup_compact: bool,
    /// `delete.retention.ms`: how long a tombstone survives after the cleaner first
    /// kept it (its delete horizon).
    pub delete_retention_ms: i64,
    /// `min.cleanable.dirty.ratio`: clean once dirty bytes / cleanable bytes reach it.
    pub min_cleanable_dirty_ratio: f64,
    /// `min.compaction.lag.ms`: records younger than this are not compacted yet.
    pub min_compaction_lag_ms: i64,
    /// `max.compaction.lag.ms`: dirty records older than this force a pass whatever
    /// the dirty ratio.
    pub max_compaction_lag_ms: i64,
    /// `message.timestamp.type=LogAppendTime`: the broker stamps each batch with the
    /// append time (max timestamp and the timestamp-type attribute bit).
    pub log_append_time: bool,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1 << 30,
            index_interval_bytes: 4096,
            segment_index_bytes: 10 << 20,
            max_message_bytes: 1_048_588,
            segment_ms: 7 * 24 * 3_600_000,
            retention_ms: 7 * 24 * 3_600_000,
            retention_bytes: UNLIMITED,
            cleanup_delete: true,
            cleanup_compact: false,
            delete_retention_ms: 86_400_000,
            min_cleanable_dirty_ratio: 0.5,
            min_compaction_lag_ms: 0,
            max_compaction_lag_ms: i64::MAX,
            log_append_time: false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("log i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Records(#[from] RecordsError),
    #[error("offset {requested} is out of range [{log_start}, {log_end}]")]
    OffsetOutOfRange {
        requested: i64,
        log_start: i64,
        log_end: i64,
    },
    #[error("out of order sequence for producer {producer_id}: expected {expected}, got {got}")]
    OutOfOrderSequence {
        producer_id: i64,
        expected: i32,
        got: i32,
    },
    #[error("producer {producer_id} has epoch {current}, request has older epoch {got}")]
    InvalidProducerEpoch {
        producer_id: i64,
        current: i16,
        got: i16,
    },
    /// A transaction marker from a coordinator older than the one that last wrote a
    /// marker for this producer here (Kafka's TRANSACTION_COORDINATOR_FENCED).
    #[error("producer {producer_id} saw coordinator epoch {current}, marker has older {got}")]
    CoordinatorFenced {
        producer_id: i64,
        current: i32,
        got: i32,
    },
    /// Not produced by this module today (an unknown producer is accepted, as Kafka does
    /// once a producer's state has expired); kept for the transaction coordinator.
    #[error("unknown producer id {producer_id}")]
    UnknownProducerId { producer_id: i64 },
    /// A cleaning pass stopped (shutdown, or a simulated crash in tests).
    #[error("log cleaning aborted")]
    CleanerAborted,
    /// A replica append whose batches start below the log end or go backwards: the
    /// follower's log and the leader's disagree and must be truncated first.
    #[error("batch at offset {base_offset} is below the expected offset {expected_at_least}")]
    NonMonotonicOffset {
        base_offset: i64,
        expected_at_least: i64,
    },
    /// An append refused because it would leave less than the reserve free
    /// ([`space`]): the reserve keeps room for checkpoints and deleting records.
    #[error("log dir has {free_bytes} bytes free, not more than its {reserve_bytes}-byte reserve")]
    DiskFull { free_bytes: u64, reserve_bytes: u64 },
    #[error("corrupt log file {}: {reason}", path.display())]
    Corrupt { path: PathBuf, reason: String },
}

pub type Result<T> = std::result::Result<T, Error>;

/// What one append did. For a duplicate (a producer retry of a batch already in the
/// log) nothing was written and the offsets are those of the original batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    pub base_offset: i64,
    pub last_offset: i64,
    pub log_start_offset: i64,
    pub duplicate: bool,
    /// Number of batches in the request.
    pub batches: usize,
    /// The time stamped on the batches with LogAppendTime, else -1 (Kafka's NO_TIMESTAMP).
    pub log_append_time_ms: i64,
}

/// Whole batches read from one segment, ready to go into a Fetch response as is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadResult {
    pub records: bytes::Bytes,
    pub log_start_offset: i64,
    pub log_end_offset: i64,
}

/// What a [`ReadResult`] would hold, left in the segment file (consumer fetches send it
/// from there). `next_offset` is the offset after the last batch, `None` with no records.
#[derive(Debug, Clone)]
pub struct SliceRead {
    pub records: Option<FileSlice>,
    pub next_offset: Option<i64>,
    pub log_start_offset: i64,
    pub log_end_offset: i64,
}
