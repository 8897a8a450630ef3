//! The transaction log: one record per state change of a transactional id, in the
//! id's partition of the internal topic `__transaction_state` (in the metadata
//! image, replicated like any topic; see `coordinator`). A [`Store`] is one shard:
//! a partition this node leads, appended to at its leader epoch, an append counting
//! once the high watermark passes it. Replay keeps the latest record per id. Record
//! format (ours, not Kafka's): key = `i16 0, utf-8 id`; value = JSON of [`TxnMeta`].
//! JSON because the value is small, read only when a shard loads, and
//! self-describing across versions of this struct.
//!
//! Upgrade: before sharding, the log was a local `__transaction_state-0` outside the
//! metadata image. At the first start of this version no image topic claims that
//! directory, so it is removed as an orphan (as the old local `__consumer_offsets-0`
//! was): the state of every transactional id is lost, and a transaction open or
//! prepared across the upgrade is never completed: it hangs in its partitions (their
//! last stable offset stops at its first record) until the topic is deleted. The
//! README says to end transactions before upgrading.

use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};

use super::error::Error;
use super::state::TxnMeta;
use crate::broker::Broker;
use crate::coordinator::shard::ShardStore;

pub const TOPIC: &str = crate::coordinator::TXN_TOPIC;
const KEY_VERSION: i16 = 0;
/// How long a state change waits for the in-sync replicas before it is answered
/// COORDINATOR_NOT_AVAILABLE (the client retries; the record may still commit).
const APPEND_TIMEOUT: Duration = Duration::from_secs(10);

/// One shard of the transaction log: a `__transaction_state` partition this node
/// leads (or, in unit tests, a standalone log with no leadership). Its leader epoch
/// is also the coordinator epoch of the markers its transactions write (as in Kafka).
pub type Store = ShardStore<TxnLog>;

/// The format of the transaction log (one [`TxnMeta`] per record).
pub enum TxnLog {}

impl ShardStore<TxnLog> {
    /// The shard of a partition this node leads; `min_isr` is the topic's
    /// `min.insync.replicas` (`transaction.state.log.min.isr`).
    pub fn led(broker: &Arc<Broker>, index: i32, led: &crate::coordinator::Led, min_isr: usize) -> Store {
        Store::new_led(broker, index, led, min_isr, APPEND_TIMEOUT)
    }

    /// A standalone log with no replication (unit tests).
    #[cfg(test)]
    pub fn standalone(logs: &Arc<crate::log::manager::LogManager>, index: i32) -> Result<Store, crate::log::Error> {
        Store::new_standalone(logs, &crate::log::manager::TopicPartition::new(TOPIC, index), APPEND_TIMEOUT)
    }

    /// Appends the state of one id (leader append path, page cache); returns the
    /// offset to wait for with [`ShardStore::wait_replicated`]. Kafka appends
    /// transaction state with acks=all: refused while the ISR is below the topic's
    /// min.insync.replicas (answered COORDINATOR_NOT_AVAILABLE).
    pub fn append(&self, meta: &TxnMeta) -> Result<i64, Error> {
        let mut key = BytesMut::with_capacity(2 + meta.transactional_id.len());
        key.put_i16(KEY_VERSION);
        key.put_slice(meta.transactional_id.as_bytes());
        let value = serde_json::to_vec(meta).map_err(|_| Error::Storage)?;
        let record = (key.freeze(), Some(Bytes::from(value)));
        let buf = crate::protocol::encode_plain_batch([record], crate::log::system_time_ms()).map_err(|_| Error::Storage)?;
        let appended = self.append_batch(buf).inspect_err(|e| {
            tracing::debug!(transactional_id = %meta.transactional_id, error = %e, "transaction log append refused");
        })?;
        Ok(appended.end)
    }

    /// Every state record of the shard, in order (see [`ShardStore::replay_batches`]).
    pub fn replay(&self, mut apply: impl FnMut(TxnMeta)) -> Result<(), crate::log::Error> {
        self.replay_batches(|batch| {
            if batch.header.is_control() {
                return;
            }
            for rec in batch.records() {
                match rec.value.map(serde_json::from_slice::<TxnMeta>) {
                    Some(Ok(meta)) => apply(meta),
                    _ => tracing::warn!(offset = rec.offset(batch.header.base_offset), "undecodable transaction log record skipped"),
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::manager::LogManager;

    #[test]
    fn replay_keeps_every_record_in_order_across_batches() {
        let dir = tempfile::tempdir().unwrap();
        let logs = LogManager::new(dir.path()).unwrap();
        let store = Store::standalone(&logs, 3).unwrap();
        let mut a = TxnMeta::new("a", 1, 1000);
        store.append(&a).unwrap();
        store.append(&TxnMeta::new("b", 2, 1000)).unwrap();
        a.producer_epoch = 4;
        let end = store.append(&a).unwrap();
        assert_eq!(end, 3);
        let mut seen = Vec::new();
        store.replay(|m| seen.push((m.transactional_id, m.producer_epoch))).unwrap();
        assert_eq!(seen, vec![("a".to_string(), -1), ("b".to_string(), -1), ("a".to_string(), 4)]);
        logs.close().unwrap();
    }
}
