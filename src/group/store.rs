//! The coordinator log: group metadata and committed offsets as records in the
//! group's partition of `__consumer_offsets` (a shard: see `coordinator::shard`).
//! Replayed when the shard loads, keeping the latest value per key; a null value
//! (tombstone) deletes the key. The log is compacted by the log cleaner like any
//! `cleanup.policy=compact` topic, so replay expects offset gaps and batches emptied
//! by compaction.
//!
//! Record format (ours, not Kafka's; big-endian; `str` = i16 length + UTF-8 with -1
//! for null; `bytes` = i32 length + bytes):
//! - offset commit key: `i16 1, str group, str topic, i32 partition`;
//!   value: `i16 0, i64 offset, i32 leader_epoch, str metadata, i64 commit_timestamp_ms`.
//! - staged transactional offset key: `i16 3, i64 producer_id, str group, str topic,
//!   i32 partition`; value as an offset commit's. COMMIT/ABORT control batches of
//!   that producer settle them (replay applies both).
//! - group metadata key: `i16 2, str group`;
//!   value: `i16 0, str protocol_type, i32 generation, str protocol_name, str leader,
//!   i32 n, n × member`, member = `str id, str instance_id, str client_id,
//!   str client_host, i32 session_timeout_ms, i32 rebalance_timeout_ms,
//!   str protocol_type, i32 m, m × (str name, bytes metadata), bytes assignment`.
//!
//! Batches are v2, uncompressed, producer id -1, written with `RecordBatchEncoder`.

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::offsets::Committed;
use super::state::MemberProfile;
use crate::coordinator::shard::{self, ShardStore};
use crate::log::manager::{LogManager, TopicPartition};

pub const TOPIC: &str = crate::coordinator::GROUP_TOPIC;
const KEY_OFFSET: i16 = 1;
const KEY_GROUP: i16 = 2;
const KEY_TXN_OFFSET: i16 = 3;

/// A decoded record of the coordinator log.
#[derive(Debug, Clone, PartialEq)]
pub enum Entry {
    Offset { group: String, topic: String, partition: i32, value: Option<Committed> },
    Group { group: String, value: Option<GroupRecord> },
    /// An offset TxnOffsetCommit staged for producer `producer_id`'s open transaction:
    /// it takes effect when a COMMIT marker of that producer follows in this
    /// partition, and is dropped at an ABORT. A tombstone retires it once settled.
    TxnOffset { producer_id: i64, group: String, topic: String, partition: i32, value: Option<Committed> },
    /// A transaction marker (control batch) of `producer_id` (replay only: markers are
    /// written with `protocol::control::marker_batch`).
    Marker { producer_id: i64, commit: bool },
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct GroupRecord {
    pub protocol_type: Option<String>,
    pub generation: i32,
    pub protocol_name: Option<String>,
    pub leader: Option<String>,
    pub members: Vec<MemberRecord>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct MemberRecord {
    pub id: String,
    pub profile: MemberProfile,
    pub assignment: Bytes,
}

/// How long a write waits for its record to be replicated to every in-sync
/// replica before it times out (Kafka's `offsets.commit.timeout.ms` default; a
/// commit is then answered REQUEST_TIMED_OUT).
const COMMIT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// The format of the group coordinator's log (the [`Entry`] records above).
pub enum GroupLog {}

/// One shard of the coordinator log: a `__consumer_offsets` partition this node
/// leads (or, in unit tests, a standalone log with no leadership).
pub type Store = ShardStore<GroupLog>;

impl ShardStore<GroupLog> {
    /// A standalone log, partition 0, with no replication (unit tests).
    pub fn open(logs: &Arc<LogManager>) -> Result<Store, crate::log::Error> {
        Store::new_standalone(logs, &TopicPartition::new(TOPIC, 0), COMMIT_TIMEOUT)
    }

    /// The shard of a partition this node leads.
    pub fn led(broker: &Arc<crate::broker::Broker>, index: i32, led: &crate::coordinator::Led) -> Store {
        Store::new_led(broker, index, led, 1, COMMIT_TIMEOUT)
    }

    /// Append entries as one batch (the leader append path, at this shard's leader
    /// epoch); returns the offsets they took.
    pub fn append(&self, entries: &[Entry]) -> Result<Range<i64>, shard::Error> {
        let buf = crate::protocol::encode_plain_batch(entries.iter().map(encode), crate::log::system_time_ms()).map_err(|_| shard::Error::Storage)?;
        self.append_batch(buf)
    }

    /// Every entry from the start of the log, in order, with its log offset.
    pub fn replay(&self, mut apply: impl FnMut(i64, Entry)) -> Result<(), crate::log::Error> {
        self.replay_batches(|batch| {
            let h = &batch.header;
            if h.is_control() {
                // A transaction marker: key `i16 version, i16 type (0 abort, 1 commit)`.
                for rec in batch.records() {
                    if let Some(k) = rec.key.filter(|k| k.len() >= 4) {
                        let commit = i16::from_be_bytes([k[2], k[3]]) == 1;
                        apply(rec.offset(h.base_offset), Entry::Marker { producer_id: h.producer_id, commit });
                    }
                }
                return;
            }
            for rec in batch.records() {
                let at = rec.offset(h.base_offset);
                let key = rec.key.map(Bytes::copy_from_slice);
                let value = rec.value.map(Bytes::copy_from_slice);
                match key.and_then(|k| decode(k, value)) {
                    Some(e) => apply(at, e),
                    None => tracing::warn!(offset = at, "undecodable coordinator record skipped"),
                }
            }
        })
    }
}

fn put_str(b: &mut BytesMut, s: Option<&str>) {
    match s {
        // Lengths are bounded by the request sizes they came from (< 32 KiB strings).
        Some(s) => {
            b.put_i16(s.len().min(i16::MAX as usize) as i16);
            b.put_slice(&s.as_bytes()[..s.len().min(i16::MAX as usize)]);
        }
        None => b.put_i16(-1),
    }
}

fn put_bytes(b: &mut BytesMut, v: &[u8]) {
    b.put_i32(v.len() as i32);
    b.put_slice(v);
}

pub fn encode(e: &Entry) -> (Bytes, Option<Bytes>) {
    let mut k = BytesMut::new();
    match e {
        Entry::Offset { group, topic, partition, value } => {
            k.put_i16(KEY_OFFSET);
            put_str(&mut k, Some(group));
            put_str(&mut k, Some(topic));
            k.put_i32(*partition);
            (k.freeze(), value.as_ref().map(encode_committed))
        }
        Entry::TxnOffset { producer_id, group, topic, partition, value } => {
            k.put_i16(KEY_TXN_OFFSET);
            k.put_i64(*producer_id);
            put_str(&mut k, Some(group));
            put_str(&mut k, Some(topic));
            k.put_i32(*partition);
            (k.freeze(), value.as_ref().map(encode_committed))
        }
        Entry::Marker { .. } => unreachable!("markers are control batches, never encoded as records"),
        Entry::Group { group, value } => {
            k.put_i16(KEY_GROUP);
            put_str(&mut k, Some(group));
            (k.freeze(), value.as_ref().map(encode_group))
        }
    }
}

fn encode_committed(c: &Committed) -> Bytes {
    let mut v = BytesMut::new();
    v.put_i16(0);
    v.put_i64(c.offset);
    v.put_i32(c.leader_epoch);
    put_str(&mut v, Some(&c.metadata));
    v.put_i64(c.commit_timestamp_ms);
    v.freeze()
}

fn decode_committed(v: Bytes) -> Option<Committed> {
    let mut v = Rd(v);
    let _version = v.i16()?;
    Some(Committed { offset: v.i64()?, leader_epoch: v.i32()?, metadata: v.str()?, commit_timestamp_ms: v.i64()? })
}

fn encode_group(g: &GroupRecord) -> Bytes {
    let mut v = BytesMut::new();
    v.put_i16(0);
    put_str(&mut v, g.protocol_type.as_deref());
    v.put_i32(g.generation);
    put_str(&mut v, g.protocol_name.as_deref());
    put_str(&mut v, g.leader.as_deref());
    v.put_i32(g.members.len() as i32);
    for m in &g.members {
        put_str(&mut v, Some(&m.id));
        put_str(&mut v, m.profile.instance_id.as_deref());
        put_str(&mut v, Some(&m.profile.client_id));
        put_str(&mut v, Some(&m.profile.client_host));
        v.put_i32(m.profile.session_timeout.as_millis() as i32);
        v.put_i32(m.profile.rebalance_timeout.as_millis() as i32);
        put_str(&mut v, Some(&m.profile.protocol_type));
        v.put_i32(m.profile.protocols.len() as i32);
        for (name, meta) in &m.profile.protocols {
            put_str(&mut v, Some(name));
            put_bytes(&mut v, meta);
        }
        put_bytes(&mut v, &m.assignment);
    }
    v.freeze()
}

/// A reader that fails (None) instead of panicking on short or bad input.
struct Rd(Bytes);

impl Rd {
    fn i16(&mut self) -> Option<i16> {
        (self.0.remaining() >= 2).then(|| self.0.get_i16())
    }
    fn i32(&mut self) -> Option<i32> {
        (self.0.remaining() >= 4).then(|| self.0.get_i32())
    }
    fn i64(&mut self) -> Option<i64> {
        (self.0.remaining() >= 8).then(|| self.0.get_i64())
    }
    fn opt_str(&mut self) -> Option<Option<String>> {
        let n = self.i16()?;
        if n < 0 {
            return Some(None);
        }
        let n = n as usize;
        if self.0.remaining() < n {
            return None;
        }
        String::from_utf8(self.0.split_to(n).to_vec()).ok().map(Some)
    }
    fn str(&mut self) -> Option<String> {
        self.opt_str()?
    }
    fn bytes(&mut self) -> Option<Bytes> {
        let n = usize::try_from(self.i32()?).ok()?;
        (self.0.remaining() >= n).then(|| self.0.split_to(n))
    }
    /// A count, checked against the bytes left (each element takes at least `min` bytes).
    fn count(&mut self, min: usize) -> Option<usize> {
        let n = usize::try_from(self.i32()?).ok()?;
        (n.saturating_mul(min) <= self.0.remaining()).then_some(n)
    }
}

pub fn decode(key: Bytes, value: Option<Bytes>) -> Option<Entry> {
    let mut k = Rd(key);
    match k.i16()? {
        KEY_OFFSET => {
            let (group, topic, partition) = (k.str()?, k.str()?, k.i32()?);
            let value = match value {
                None => None,
                Some(v) => Some(decode_committed(v)?),
            };
            Some(Entry::Offset { group, topic, partition, value })
        }
        KEY_TXN_OFFSET => {
            let (producer_id, group, topic, partition) = (k.i64()?, k.str()?, k.str()?, k.i32()?);
            let value = match value {
                None => None,
                Some(v) => Some(decode_committed(v)?),
            };
            Some(Entry::TxnOffset { producer_id, group, topic, partition, value })
        }
        KEY_GROUP => {
            let group = k.str()?;
            let value = match value {
                None => None,
                Some(v) => Some(decode_group(Rd(v))?),
            };
            Some(Entry::Group { group, value })
        }
        _ => None,
    }
}

fn decode_group(mut v: Rd) -> Option<GroupRecord> {
    let _version = v.i16()?;
    let mut g = GroupRecord { protocol_type: v.opt_str()?, generation: v.i32()?, protocol_name: v.opt_str()?, leader: v.opt_str()?, members: vec![] };
    let n = v.count(30)?;
    for _ in 0..n {
        let mut m = MemberRecord {
            id: v.str()?,
            profile: MemberProfile {
                instance_id: v.opt_str()?,
                client_id: v.str()?,
                client_host: v.str()?,
                session_timeout: Duration::from_millis(v.i32()?.max(0) as u64),
                rebalance_timeout: Duration::from_millis(v.i32()?.max(0) as u64),
                protocol_type: v.str()?,
                protocols: vec![],
            },
            ..Default::default()
        };
        let p = v.count(6)?;
        for _ in 0..p {
            m.profile.protocols.push((v.str()?, v.bytes()?));
        }
        m.assignment = v.bytes()?;
        g.members.push(m);
    }
    Some(g)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn commit(group: &str, offset: i64) -> Entry {
        Entry::Offset {
            group: group.into(),
            topic: "t".into(),
            partition: 0,
            value: Some(Committed { offset, leader_epoch: 0, metadata: String::new(), commit_timestamp_ms: 1 }),
        }
    }

    #[test]
    fn replay_after_compaction_sees_the_latest_entries_across_gaps() {
        let dir = tempfile::tempdir().unwrap();
        let logs = LogManager::new(dir.path()).unwrap();
        let store = Store::open(&logs).unwrap();
        for i in 0..50 {
            store.append(&[commit("g1", i), commit("g2", 100 + i)]).unwrap();
        }
        store.append(&[Entry::Offset { group: "g2".into(), topic: "t".into(), partition: 0, value: None }]).unwrap();
        store.append(&[commit("g1", 999)]).unwrap();
        let end = store.partition().log_end_offset();
        while store.partition().high_watermark() < end {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let now = crate::log::system_time_ms();
        let stats = store
            .partition()
            .with_log(|log| {
                log.roll()?;
                log.clean_at(now, end, &crate::log::CleanerOptions::default())
            })
            .unwrap();
        assert!(stats.is_some_and(|s| s.records_dropped >= 99), "compacted");
        let mut seen = Vec::new();
        store.replay(|offset, e| seen.push((offset, e))).unwrap();
        // g1's latest commit and g2's tombstone (kept until delete.retention.ms passes).
        assert_eq!(seen.iter().map(|(o, _)| *o).collect::<Vec<_>>(), vec![100, 101]);
        assert_eq!(seen[1].1, commit("g1", 999));
        logs.close().unwrap();
    }
}
