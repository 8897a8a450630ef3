//! The transaction log: one record per state change of a transactional id, in the
//! internal partition `__transaction_state-0` (a `PartitionLog` never in the
//! metadata image, like the group coordinator's log). Replay keeps the latest
//! record per id. Record format (ours, not Kafka's): key = `i16 0, utf-8 id`;
//! value = JSON of [`TxnMeta`]. JSON because the value is small, read only at start,
//! and self-describing across versions of this struct.

use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::records::RecordBatchDecoder;

use super::state::TxnMeta;
use crate::log::LogConfig;
use crate::log::manager::{Durable, LogManager, Partition, TopicPartition};

pub const TOPIC: &str = "__transaction_state";
const KEY_VERSION: i16 = 0;
/// How much of the log one replay read takes.
const REPLAY_CHUNK_BYTES: usize = 1 << 20;

pub struct Store {
    logs: Arc<LogManager>,
    partition: Arc<Partition>,
}

fn io_error(e: impl std::fmt::Display) -> crate::log::Error {
    crate::log::Error::Io(std::io::Error::other(e.to_string()))
}

impl Store {
    pub fn open(logs: &Arc<LogManager>) -> Result<Store, crate::log::Error> {
        let config = LogConfig {
            max_message_bytes: 64 << 20,
            // Transaction state must outlive any time or size retention.
            retention_ms: crate::log::UNLIMITED,
            retention_bytes: crate::log::UNLIMITED,
            cleanup_delete: false,
            cleanup_compact: true,
            ..LogConfig::default()
        };
        let partition = logs.open(&TopicPartition::new(TOPIC, 0), config)?;
        Ok(Store { logs: logs.clone(), partition })
    }

    /// The partition directory name, which must survive orphan removal.
    pub fn dir_name() -> String {
        TopicPartition::new(TOPIC, 0).dir_name()
    }

    /// Appends the state of one id (page cache); returns the offset to wait for.
    pub fn append(&self, meta: &TxnMeta) -> Result<i64, crate::log::Error> {
        let mut key = BytesMut::with_capacity(2 + meta.transactional_id.len());
        key.put_i16(KEY_VERSION);
        key.put_slice(meta.transactional_id.as_bytes());
        let value = serde_json::to_vec(meta).map_err(io_error)?;
        let record = (key.freeze(), Some(Bytes::from(value)));
        let mut buf = crate::protocol::encode_plain_batch([record], crate::log::system_time_ms()).map_err(io_error)?;
        let info = self.logs.append(&self.partition, &mut buf, 0)?;
        Ok(info.last_offset + 1)
    }

    /// The log end offset: everything appended so far lies below it.
    pub fn end_offset(&self) -> i64 {
        self.partition.log_end_offset()
    }

    /// Waits until everything below `end_offset` is on disk; false if the disk failed.
    pub async fn wait_durable(&self, end_offset: i64) -> bool {
        matches!(self.partition.wait_durable(end_offset).await, Durable::UpTo(_))
    }

    /// Every state record from the start of the log, in order.
    pub fn replay(&self, mut apply: impl FnMut(TxnMeta)) -> Result<(), crate::log::Error> {
        let mut offset = self.partition.log_start_offset();
        let end = self.partition.high_watermark();
        while offset < end {
            let r = self.partition.read(offset, REPLAY_CHUNK_BYTES, true)?;
            if r.records.is_empty() {
                break;
            }
            let mut buf = r.records.clone();
            let sets = RecordBatchDecoder::decode_all(&mut buf).map_err(|e| io_error(format!("transaction log: {e}")))?;
            let before = offset;
            for rec in sets.into_iter().flat_map(|s| s.records) {
                offset = offset.max(rec.offset + 1);
                match rec.value.as_ref().map(|v| serde_json::from_slice::<TxnMeta>(v)) {
                    Some(Ok(meta)) => apply(meta),
                    _ => tracing::warn!(offset = rec.offset, "undecodable transaction log record skipped"),
                }
            }
            if offset == before {
                break; // no progress: nothing decodable here
            }
        }
        Ok(())
    }
}
