//! The metadata log as an openraft quorum.
//!
//! Owns what openraft needs and nothing Kafka-shaped: the log storage on disk
//! (`log_store`), the state machine that applies record batches to the metadata
//! `Image` and snapshots it (`state_machine`), the TCP transport between
//! controllers (`network`), and the node that ties them together and turns a
//! proposal into a committed, applied batch (`node`). A single controller is a
//! one-voter quorum on the very same path; `metadata::MetadataStore` is the only
//! user, and handlers never see this module.

pub mod log_store;
pub mod network;
pub mod node;
pub mod prevote;
pub mod state_machine;
pub mod voters;
#[cfg(test)]
mod suite_tests;

use std::io::Cursor;

use serde::{Deserialize, Serialize};

use crate::metadata::image::ApplyError;
use crate::metadata::MetadataRecord;

pub use node::{NodeConfig, QuorumView, RaftNode};

/// Kafka node ids are i32 and non-negative; openraft wants u64.
pub type NodeId = u64;

/// A member of the raft group as its membership records it: where its raft
/// transport listens and, for a member that said so, the directory id of its data
/// dir (KIP-853's replica key is id + directory id, so remove-controller names both).
/// Serialised as openraft's `BasicNode` was (`{"addr": ..}`), so stored logs and
/// snapshots written before directory ids existed still read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub addr: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub directory_id: Option<String>,
}

impl Member {
    pub fn new(addr: impl Into<String>, directory_id: Option<String>) -> Member {
        Member { addr: addr.into(), directory_id }
    }
}

impl std::fmt::Display for Member {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.directory_id {
            Some(d) => write!(f, "{}/{d}", self.addr),
            None => f.write_str(&self.addr),
        }
    }
}

/// The payload of one log entry: one atomic batch of metadata records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Batch {
    pub records: Vec<MetadataRecord>,
}

/// What applying an entry produced. A batch that does not fit the image is skipped
/// identically on every replica (it can only come from a corrupt log, since the
/// leader validates under its proposal lock), and the reason is reported here.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Applied {
    /// The image's metadata offset after this entry (dense over record batches).
    pub metadata_offset: i64,
    pub rejected: Option<String>,
}

openraft::declare_raft_types!(
    /// openraft's type bundle for the metadata quorum.
    pub TypeConfig:
        D = Batch,
        R = Applied,
        NodeId = NodeId,
        Node = Member,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

pub type Raft = openraft::Raft<TypeConfig>;
pub type LogId = openraft::LogId<NodeId>;
pub type Entry = openraft::Entry<TypeConfig>;
pub type Vote = openraft::Vote<NodeId>;
pub type StorageError = openraft::StorageError<NodeId>;
pub type StoredMembership = openraft::StoredMembership<NodeId, Member>;
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, Member>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("metadata record rejected: {0}")]
    Rejected(#[from] ApplyError),
    /// Retriable: no leader is known or reachable right now (election under way,
    /// quorum lost). Handlers answer NOT_CONTROLLER / REQUEST_TIMED_OUT.
    #[error("no metadata quorum leader is available: {0}")]
    NoLeader(String),
    #[error("metadata quorum is shutting down")]
    ShuttingDown,
    #[error("metadata quorum storage: {0}")]
    Storage(String),
    #[error("metadata quorum io: {0}")]
    Io(#[from] std::io::Error),
}

impl Error {
    /// True for errors a client may retry (possibly against another node).
    pub fn is_retriable(&self) -> bool {
        matches!(self, Error::NoLeader(_))
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// A whole-file write that survives a crash: tmp file, fsync, rename, fsync dir.
pub(crate) fn write_atomic(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// `len: u32 | crc32c(payload): u32 | payload`: the frame both the log file and
/// the snapshot file use, so a torn or flipped write is detected on read.
pub(crate) fn frame(payload: &[u8]) -> Vec<u8> {
    let mut buf = Vec::with_capacity(8 + payload.len());
    buf.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    buf.extend_from_slice(&crc32c::crc32c(payload).to_be_bytes());
    buf.extend_from_slice(payload);
    buf
}

/// The payload of the frame at the start of `data` and the frame's length, or
/// None when the frame is torn, corrupt or longer than `max_bytes`.
pub(crate) fn unframe(data: &[u8], max_bytes: usize) -> Option<(&[u8], usize)> {
    if data.len() < 8 {
        return None;
    }
    let len = u32::from_be_bytes(data[0..4].try_into().ok()?) as usize;
    let crc = u32::from_be_bytes(data[4..8].try_into().ok()?);
    if len > max_bytes || data.len() - 8 < len {
        return None;
    }
    let payload = &data[8..8 + len];
    (crc32c::crc32c(payload) == crc).then_some((payload, 8 + len))
}
