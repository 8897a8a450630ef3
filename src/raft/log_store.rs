//! The raft log on disk: one append-only file of CRC'd frames plus a vote file.
//!
//! Metadata entries are few and small, so every live entry is also held in memory
//! (a `BTreeMap` by index, with each frame's file position for truncation); the
//! file is the durable copy. Frames are entries, the purge point and the committed
//! log id. Appends are fsync'd before openraft is told they are flushed; a purge
//! rewrites the file (tmp, fsync, rename) so the purge point and the remaining
//! entries replace the old file atomically. A torn or corrupt tail is cut off on
//! open: it was never reported as flushed. The vote is its own small file, written
//! atomically and fsync'd before `save_vote` returns.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use openraft::storage::{LogFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::{RaftLogId, StorageIOError};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use super::{Entry, LogId, StorageError, TypeConfig, Vote, frame, unframe, write_atomic};

/// One entry may carry a batch creating thousands of partitions; far below this.
const FRAME_BYTES_MAX: usize = 64 * 1024 * 1024;
const LOG_FILE: &str = "raft.log";
const VOTE_FILE: &str = "vote.json";

#[derive(Serialize, Deserialize)]
enum LogFrame {
    Entry(Entry),
    /// Everything up to and including this id is purged (covered by a snapshot).
    Purged(LogId),
    /// A hint for restart: entries up to here are committed and may be re-applied
    /// at once. Written without its own fsync; losing it only delays the re-apply
    /// until the leader commits again.
    Committed(Option<LogId>),
}

struct Inner {
    dir: PathBuf,
    file: File,
    /// Live entries by index, each with the byte position of its frame.
    entries: BTreeMap<u64, (Entry, u64)>,
    file_len_bytes: u64,
    purged: Option<LogId>,
    committed: Option<LogId>,
    vote: Option<Vote>,
}

/// Cheap to clone: the log reader openraft's replication tasks use is a clone.
#[derive(Clone)]
pub struct LogStore {
    inner: Arc<Mutex<Inner>>,
}

impl LogStore {
    pub fn open(dir: &Path) -> std::io::Result<LogStore> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(LOG_FILE);
        let mut file = OpenOptions::new().read(true).append(true).create(true).open(&path)?;
        let mut data = Vec::new();
        file.read_to_end(&mut data)?;
        let mut inner = Inner {
            dir: dir.to_path_buf(),
            file,
            entries: BTreeMap::new(),
            file_len_bytes: 0,
            purged: None,
            committed: None,
            vote: read_vote(dir)?,
        };
        let mut pos = 0usize;
        while let Some((payload, n)) = unframe(&data[pos..], FRAME_BYTES_MAX) {
            let Ok(f) = serde_json::from_slice::<LogFrame>(payload) else { break };
            match f {
                LogFrame::Entry(e) => {
                    let index = e.get_log_id().index;
                    // A later frame for an index replaces it and everything after it.
                    let _ = inner.entries.split_off(&index);
                    inner.entries.insert(index, (e, pos as u64));
                }
                LogFrame::Purged(id) => {
                    inner.entries = inner.entries.split_off(&(id.index + 1));
                    inner.purged = Some(id);
                }
                LogFrame::Committed(c) => inner.committed = c,
            }
            pos += n;
        }
        if (pos as u64) < data.len() as u64 {
            tracing::warn!(path = %path.display(), good_len = pos, "truncating torn raft log tail");
            inner.file.set_len(pos as u64)?;
            inner.file.sync_all()?;
        }
        inner.file_len_bytes = pos as u64;
        Ok(LogStore { inner: Arc::new(Mutex::new(inner)) })
    }
}

fn read_vote(dir: &Path) -> std::io::Result<Option<Vote>> {
    match std::fs::read(dir.join(VOTE_FILE)) {
        Ok(bytes) => match unframe(&bytes, FRAME_BYTES_MAX) {
            Some((payload, _)) => serde_json::from_slice(payload).map(Some).map_err(std::io::Error::other),
            // Written atomically, so a bad vote file is damage, not a torn write.
            None => Err(std::io::Error::other("vote.json is corrupt")),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

impl Inner {
    fn append_frames(&mut self, frames: &[LogFrame], fsync: bool) -> std::io::Result<Vec<u64>> {
        let mut buf = Vec::new();
        let mut positions = Vec::with_capacity(frames.len());
        for f in frames {
            positions.push(self.file_len_bytes + buf.len() as u64);
            let payload = serde_json::to_vec(f).map_err(std::io::Error::other)?;
            assert!(payload.len() <= FRAME_BYTES_MAX, "raft log frame of {} bytes", payload.len());
            buf.extend_from_slice(&frame(&payload));
        }
        self.file.write_all(&buf)?;
        if fsync {
            self.file.sync_data()?;
        }
        self.file_len_bytes += buf.len() as u64;
        Ok(positions)
    }

    /// Replace the file by the purge point, the committed hint and the live entries.
    fn rewrite(&mut self) -> std::io::Result<()> {
        let mut buf = Vec::new();
        let mut frames = Vec::new();
        if let Some(p) = self.purged {
            frames.push(LogFrame::Purged(p));
        }
        frames.push(LogFrame::Committed(self.committed));
        for f in &frames {
            buf.extend_from_slice(&frame(&serde_json::to_vec(f).map_err(std::io::Error::other)?));
        }
        let mut entries = BTreeMap::new();
        for (index, (e, _)) in std::mem::take(&mut self.entries) {
            let pos = buf.len() as u64;
            let payload = serde_json::to_vec(&LogFrame::Entry(e.clone())).map_err(std::io::Error::other)?;
            buf.extend_from_slice(&frame(&payload));
            entries.insert(index, (e, pos));
        }
        let path = self.dir.join(LOG_FILE);
        write_atomic(&path, &buf)?;
        self.file = OpenOptions::new().read(true).append(true).open(&path)?;
        self.file_len_bytes = buf.len() as u64;
        self.entries = entries;
        Ok(())
    }
}

fn io_err(e: std::io::Error, write: bool) -> StorageError {
    if write { StorageIOError::write_logs(&e).into() } else { StorageIOError::read_logs(&e).into() }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(&mut self, range: RB) -> Result<Vec<Entry>, StorageError> {
        let inner = self.inner.lock();
        Ok(inner.entries.range(range).map(|(_, (e, _))| e.clone()).collect())
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let inner = self.inner.lock();
        let last = inner.entries.last_key_value().map(|(_, (e, _))| *e.get_log_id()).or(inner.purged);
        Ok(LogState { last_purged_log_id: inner.purged, last_log_id: last })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        let mut inner = self.inner.lock();
        let payload = serde_json::to_vec(vote).map_err(|e| StorageError::from(StorageIOError::write_vote(&e)))?;
        write_atomic(&inner.dir.join(VOTE_FILE), &frame(&payload)).map_err(|e| StorageError::from(StorageIOError::write_vote(&e)))?;
        inner.vote = Some(*vote);
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        Ok(self.inner.lock().vote)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        let mut inner = self.inner.lock();
        inner.committed = committed;
        inner.append_frames(&[LogFrame::Committed(committed)], false).map_err(|e| io_err(e, true))?;
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(self.inner.lock().committed)
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let mut inner = self.inner.lock();
        let frames: Vec<LogFrame> = entries.into_iter().map(LogFrame::Entry).collect();
        let result = inner.append_frames(&frames, true);
        match result {
            Ok(positions) => {
                for (f, pos) in frames.into_iter().zip(positions) {
                    let LogFrame::Entry(e) = f else { unreachable!("only entries were framed") };
                    inner.entries.insert(e.get_log_id().index, (e, pos));
                }
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                callback.log_io_completed(Err(std::io::Error::new(e.kind(), e.to_string())));
                Err(io_err(e, true))
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let mut inner = self.inner.lock();
        let removed = inner.entries.split_off(&log_id.index);
        if let Some((_, (_, pos))) = removed.first_key_value() {
            let pos = *pos;
            inner.file.set_len(pos).map_err(|e| io_err(e, true))?;
            inner.file.sync_data().map_err(|e| io_err(e, true))?;
            inner.file_len_bytes = pos;
        }
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let mut inner = self.inner.lock();
        inner.entries = inner.entries.split_off(&(log_id.index + 1));
        inner.purged = Some(log_id);
        inner.rewrite().map_err(|e| io_err(e, true))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::{CommittedLeaderId, EntryPayload};

    fn entry(term: u64, index: u64) -> Entry {
        Entry { log_id: LogId::new(CommittedLeaderId::new(term, 1), index), payload: EntryPayload::Blank }
    }

    fn append(store: &mut LogStore, entries: Vec<Entry>) {
        let mut inner = store.inner.lock();
        let frames: Vec<LogFrame> = entries.into_iter().map(LogFrame::Entry).collect();
        let pos = inner.append_frames(&frames, true).unwrap();
        for (f, p) in frames.into_iter().zip(pos) {
            let LogFrame::Entry(e) = f else { unreachable!() };
            inner.entries.insert(e.log_id.index, (e, p));
        }
    }

    #[tokio::test]
    async fn survives_reopen_truncate_purge_and_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = LogStore::open(dir.path()).unwrap();
        append(&mut s, (0..6).map(|i| entry(1, i)).collect());
        s.truncate(LogId::new(CommittedLeaderId::new(1, 1), 4)).await.unwrap();
        s.purge(LogId::new(CommittedLeaderId::new(1, 1), 1)).await.unwrap();
        append(&mut s, vec![entry(2, 4)]);
        s.save_vote(&Vote::new(2, 1)).await.unwrap();
        drop(s);
        let mut f = OpenOptions::new().append(true).open(dir.path().join(LOG_FILE)).unwrap();
        f.write_all(&[0, 0, 1, 0, 9, 9]).unwrap();
        drop(f);
        let mut s = LogStore::open(dir.path()).unwrap();
        let st = s.get_log_state().await.unwrap();
        assert_eq!(st.last_purged_log_id.unwrap().index, 1);
        assert_eq!(st.last_log_id.unwrap(), LogId::new(CommittedLeaderId::new(2, 1), 4));
        let idx: Vec<u64> = s.try_get_log_entries(0..10).await.unwrap().iter().map(|e| e.log_id.index).collect();
        assert_eq!(idx, vec![2, 3, 4]);
        assert_eq!(s.read_vote().await.unwrap(), Some(Vote::new(2, 1)));
    }
}
