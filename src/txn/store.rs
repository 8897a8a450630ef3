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
use crate::log::manager::{Durable, LogManager, Partition};
use crate::protocol::record_codec::DecodedBatch;
use crate::protocol::records::BatchIter;
use crate::replication::LeaderState;

pub const TOPIC: &str = crate::coordinator::TXN_TOPIC;
const KEY_VERSION: i16 = 0;
/// How much of the log one replay read takes.
const REPLAY_CHUNK_BYTES: usize = 1 << 20;
/// Largest decompressed batch replay accepts (batches are written uncompressed).
const REPLAY_BATCH_LIMIT_BYTES: usize = 256 << 20;
/// How long a state change waits for the in-sync replicas before it is answered
/// COORDINATOR_NOT_AVAILABLE (the client retries; the record may still commit).
const APPEND_TIMEOUT: Duration = Duration::from_secs(10);

fn io_error(e: impl std::fmt::Display) -> crate::log::Error {
    crate::log::Error::Io(std::io::Error::other(e.to_string()))
}

/// One shard of the transaction log: a `__transaction_state` partition this node
/// leads (or, in unit tests, a standalone log with no leadership).
pub struct Store {
    pub partition_index: i32,
    logs: Arc<LogManager>,
    partition: Arc<Partition>,
    /// The leader epoch appends are stamped with; also the coordinator epoch of the
    /// markers this shard's transactions write (as in Kafka).
    leader_epoch: i32,
    /// The leadership this shard was loaded under; None: a standalone log.
    leader: Option<Arc<LeaderState>>,
    /// The topic's `min.insync.replicas` (`transaction.state.log.min.isr`).
    min_isr: usize,
    /// Wakes followers' long-polling fetches after an append.
    notify: Option<Box<dyn Fn() + Send + Sync>>,
}

impl Store {
    /// The shard of a partition this node leads.
    pub fn led(logs: &Arc<LogManager>, index: i32, led: &crate::coordinator::Led, min_isr: usize, notify: Box<dyn Fn() + Send + Sync>) -> Store {
        Store {
            partition_index: index,
            logs: logs.clone(),
            partition: led.log.clone(),
            leader_epoch: led.epoch,
            leader: Some(led.leader.clone()),
            min_isr,
            notify: Some(notify),
        }
    }

    /// A standalone log with no replication (unit tests).
    #[cfg(test)]
    pub fn standalone(logs: &Arc<LogManager>, index: i32) -> Result<Store, crate::log::Error> {
        let partition = logs.open(&crate::log::manager::TopicPartition::new(TOPIC, index), crate::group::store::log_config())?;
        Ok(Store { partition_index: index, logs: logs.clone(), partition, leader_epoch: 0, leader: None, min_isr: 1, notify: None })
    }

    pub fn leader_epoch(&self) -> i32 {
        self.leader_epoch
    }

    /// Leadership moved on since this shard was loaded: it must not write any more.
    pub fn resigned(&self) -> bool {
        self.leader.as_ref().is_some_and(|l| l.has_resigned())
    }

    /// Appends the state of one id (leader append path, page cache); returns the
    /// offset to wait for with [`Store::wait_replicated`].
    pub fn append(&self, meta: &TxnMeta) -> Result<i64, Error> {
        if self.resigned() {
            return Err(Error::NotCoordinator);
        }
        // Kafka appends transaction state with acks=all: refused while the ISR is
        // below the topic's min.insync.replicas (answered COORDINATOR_NOT_AVAILABLE).
        if self.leader.as_ref().is_some_and(|l| l.isr().len() < self.min_isr) {
            return Err(Error::NotEnoughReplicas);
        }
        let mut key = BytesMut::with_capacity(2 + meta.transactional_id.len());
        key.put_i16(KEY_VERSION);
        key.put_slice(meta.transactional_id.as_bytes());
        let value = serde_json::to_vec(meta).map_err(|_| Error::Storage)?;
        let record = (key.freeze(), Some(Bytes::from(value)));
        let mut buf = crate::protocol::encode_plain_batch([record], crate::log::system_time_ms()).map_err(|_| Error::Storage)?;
        let info = self.logs.append(&self.partition, &mut buf, self.leader_epoch).map_err(|e| {
            tracing::error!(partition = %self.partition.tp.dir_name(), transactional_id = %meta.transactional_id, error = %e, "transaction log append failed");
            Error::Storage
        })?;
        if let Some(n) = &self.notify {
            n();
        }
        Ok(info.last_offset + 1)
    }

    /// The log end offset: everything appended so far lies below it.
    pub fn end_offset(&self) -> i64 {
        self.partition.log_end_offset()
    }

    /// Waits until everything below `end_offset` is replicated to the in-sync replicas
    /// (the high watermark; one replica: on disk). NOT_COORDINATOR if leadership moved
    /// meanwhile (what reached the offset may not be ours).
    pub async fn wait_replicated(&self, end_offset: i64) -> Result<(), Error> {
        let reached = self.partition.wait_high_watermark(end_offset);
        let d = match &self.leader {
            None => reached.await,
            Some(l) => {
                let watched = async {
                    tokio::select! {
                        d = reached => Some(d),
                        _ = l.wait_resigned() => None,
                    }
                };
                match tokio::time::timeout(APPEND_TIMEOUT, watched).await {
                    Err(_) => return Err(Error::Storage),
                    Ok(None) => return Err(Error::NotCoordinator),
                    Ok(Some(d)) => d,
                }
            }
        };
        if d == Durable::Failed {
            return Err(Error::Storage);
        }
        if self.resigned() {
            return Err(Error::NotCoordinator);
        }
        Ok(())
    }

    /// Every state record of the shard, in order: to the log end, as Kafka loads a
    /// shard (a new leader's tail beyond the high watermark is what it replicates
    /// next). Compaction leaves offset gaps and emptied batches; both are skipped.
    pub fn replay(&self, mut apply: impl FnMut(TxnMeta)) -> Result<(), crate::log::Error> {
        let mut offset = self.partition.log_start_offset();
        let end = self.partition.log_end_offset();
        while offset < end {
            let r = self.partition.read_to_log_end(offset, REPLAY_CHUNK_BYTES, true)?;
            if r.records.is_empty() {
                break;
            }
            let before = offset;
            for (h, range) in BatchIter::new(&r.records) {
                offset = offset.max(h.next_offset());
                if h.is_control() {
                    continue;
                }
                let batch = DecodedBatch::decode(&r.records[range], REPLAY_BATCH_LIMIT_BYTES).map_err(|e| io_error(format!("transaction log: {e}")))?;
                for rec in batch.records() {
                    match rec.value.map(serde_json::from_slice::<TxnMeta>) {
                        Some(Ok(meta)) => apply(meta),
                        _ => tracing::warn!(offset = rec.offset(h.base_offset), "undecodable transaction log record skipped"),
                    }
                }
            }
            if offset == before {
                break; // no progress: nothing decodable here
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
