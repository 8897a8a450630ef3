//! The state machine: committed batches applied to the metadata `Image`, and
//! snapshots of that image.
//!
//! The image lives in memory and is rebuilt on start from the newest snapshot
//! plus the log after it (openraft re-applies up to the committed id it finds).
//! A snapshot is one CRC'd file, `snapshot.json`: the snapshot meta (last applied
//! log id, membership) and the image as plain data, replaced atomically; the same
//! image JSON is what travels to a lagging follower. Every applied change is
//! published on a watch channel so `propose` can wait for "applied here" and
//! readers get the newest `Arc<Image>` without locking the state machine.
//!
//! A data dir from before the quorum holds `metadata.log` in the old format; its
//! image is the base the log applies on top of until the first snapshot covers
//! it, after which the old file is renamed `metadata.log.imported`.

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{EntryPayload, RaftSnapshotBuilder, RaftLogId, StorageIOError};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::{Applied, Entry, LogId, SnapshotMeta, StorageError, StoredMembership, TypeConfig, frame, unframe, write_atomic};
use crate::metadata::image::{Image, ImageSnapshot};

const SNAPSHOT_FILE: &str = "snapshot.json";
/// A snapshot of a very large cluster stays well below this.
const SNAPSHOT_BYTES_MAX: usize = 1 << 30;

/// What readers see: the newest image and the raft index it includes.
#[derive(Debug, Clone)]
pub struct Published {
    /// The last log index applied (None before anything was applied).
    pub applied_index: Option<u64>,
    pub image: Arc<Image>,
}

#[derive(Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta,
    image: ImageSnapshot,
}

pub struct StateMachine {
    dir: PathBuf,
    image: Arc<Image>,
    last_applied: Option<LogId>,
    membership: StoredMembership,
    published: watch::Sender<Published>,
    /// The pre-quorum `metadata.log`, while no snapshot covers it yet.
    legacy: Option<PathBuf>,
}

impl StateMachine {
    /// Load the newest snapshot, or start from `base` (an imported legacy image or
    /// an empty one) when there is none.
    pub fn open(dir: &Path, base: Image, legacy: Option<PathBuf>) -> std::io::Result<(StateMachine, watch::Receiver<Published>)> {
        std::fs::create_dir_all(dir)?;
        let (image, last_applied, membership, legacy) = match read_snapshot(dir)? {
            Some(s) => (Image::from_snapshot(s.image), s.meta.last_log_id, s.meta.last_membership, None),
            None => (base, None, StoredMembership::default(), legacy),
        };
        let image = Arc::new(image);
        let (tx, rx) = watch::channel(Published { applied_index: last_applied.map(|l| l.index), image: image.clone() });
        Ok((StateMachine { dir: dir.to_path_buf(), image, last_applied, membership, published: tx, legacy }, rx))
    }

    fn publish(&self) {
        self.published.send_replace(Published { applied_index: self.last_applied.map(|l| l.index), image: self.image.clone() });
    }

    /// Apply one batch all-or-nothing to a copy; a batch that does not fit is
    /// skipped the same way on every replica.
    fn apply_batch(&mut self, log_id: &LogId, records: &[crate::metadata::MetadataRecord]) -> Applied {
        let offset = self.image.last_offset + 1;
        let mut next = (*self.image).clone();
        for r in records {
            if let Err(e) = next.apply(offset, r) {
                tracing::error!(%log_id, error = %e, "skipping a metadata batch that does not fit the image");
                return Applied { metadata_offset: self.image.last_offset, rejected: Some(e.to_string()) };
            }
        }
        self.image = Arc::new(next);
        Applied { metadata_offset: offset, rejected: None }
    }
}

fn read_snapshot(dir: &Path) -> std::io::Result<Option<StoredSnapshot>> {
    match std::fs::read(dir.join(SNAPSHOT_FILE)) {
        Ok(bytes) => {
            // Written atomically: a bad file is damage, and starting without it would lose data.
            let (payload, _) = unframe(&bytes, SNAPSHOT_BYTES_MAX).ok_or_else(|| std::io::Error::other("snapshot.json is corrupt"))?;
            serde_json::from_slice(payload).map(Some).map_err(std::io::Error::other)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

fn write_snapshot(dir: &Path, s: &StoredSnapshot) -> std::io::Result<()> {
    let payload = serde_json::to_vec(s).map_err(std::io::Error::other)?;
    write_atomic(&dir.join(SNAPSHOT_FILE), &frame(&payload))
}

fn to_snapshot(s: StoredSnapshot) -> std::io::Result<Snapshot<TypeConfig>> {
    let data = serde_json::to_vec(&s.image).map_err(std::io::Error::other)?;
    Ok(Snapshot { meta: s.meta, snapshot: Box::new(Cursor::new(data)) })
}

/// Retire the legacy file once a snapshot holds its contents.
fn retire_legacy(legacy: &Option<PathBuf>) {
    if let Some(p) = legacy
        && p.exists()
        && let Err(e) = std::fs::rename(p, p.with_extension("log.imported"))
    {
        tracing::warn!(path = %p.display(), error = %e, "could not retire the imported metadata log");
    }
}

pub struct SnapshotBuilder {
    dir: PathBuf,
    image: Arc<Image>,
    last_applied: Option<LogId>,
    membership: StoredMembership,
    legacy: Option<PathBuf>,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let snapshot_id = match self.last_applied {
            Some(l) => format!("{}-{}", l.leader_id, l.index),
            None => "empty".to_string(),
        };
        let meta = SnapshotMeta { last_log_id: self.last_applied, last_membership: self.membership.clone(), snapshot_id };
        let stored = StoredSnapshot { meta, image: self.image.to_snapshot() };
        let err = |e: std::io::Error| StorageError::from(StorageIOError::write_snapshot(None, &e));
        write_snapshot(&self.dir, &stored).map_err(err)?;
        retire_legacy(&self.legacy);
        to_snapshot(stored).map_err(err)
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        Ok((self.last_applied, self.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Applied>, StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let mut out = Vec::new();
        for entry in entries {
            let log_id = *entry.get_log_id();
            self.last_applied = Some(log_id);
            let applied = match &entry.payload {
                EntryPayload::Blank => Applied { metadata_offset: self.image.last_offset, rejected: None },
                EntryPayload::Normal(batch) => self.apply_batch(&log_id, &batch.records),
                EntryPayload::Membership(m) => {
                    self.membership = StoredMembership::new(Some(log_id), m.clone());
                    Applied { metadata_offset: self.image.last_offset, rejected: None }
                }
            };
            out.push(applied);
        }
        self.publish();
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        SnapshotBuilder {
            dir: self.dir.clone(),
            image: self.image.clone(),
            last_applied: self.last_applied,
            membership: self.membership.clone(),
            legacy: self.legacy.clone(),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(&mut self, meta: &SnapshotMeta, snapshot: Box<Cursor<Vec<u8>>>) -> Result<(), StorageError> {
        let sig = Some(meta.signature());
        let image: ImageSnapshot =
            serde_json::from_slice(snapshot.get_ref()).map_err(|e| StorageError::from(StorageIOError::read_snapshot(sig.clone(), &e)))?;
        let stored = StoredSnapshot { meta: meta.clone(), image };
        write_snapshot(&self.dir, &stored).map_err(|e| StorageError::from(StorageIOError::write_snapshot(sig, &e)))?;
        // The leader's snapshot supersedes whatever this node imported locally.
        retire_legacy(&self.legacy);
        self.legacy = None;
        self.image = Arc::new(Image::from_snapshot(stored.image));
        self.last_applied = meta.last_log_id;
        self.membership = meta.last_membership.clone();
        self.publish();
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        let err = |e: std::io::Error| StorageError::from(StorageIOError::read_snapshot(None, &e));
        match read_snapshot(&self.dir).map_err(err)? {
            Some(s) => Ok(Some(to_snapshot(s).map_err(err)?)),
            None => Ok(None),
        }
    }
}
