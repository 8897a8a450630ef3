//! The metadata log and the current image.
//!
//! Every change to topics, partitions, configs or producer-id blocks is proposed
//! as a batch of records. A batch is checked by applying it to a copy of the
//! image, written to the log with a CRC and fsynced, and only then published, so
//! a handler that sees a new image knows it survives a crash.
//!
//! On one node the log is a local file: a one-voter quorum whose commit point is
//! its own fsync. The cluster work puts openraft behind the same `propose` /
//! `image` pair (the log entries are these record batches), so handlers do not
//! change when the quorum grows.
//!
//! Entry layout: `len: u32 | crc32c(payload): u32 | payload`, payload the JSON of
//! `Entry`. A torn or corrupt tail is cut off on open: it was never acknowledged.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};

use super::image::{ApplyError, Image};
use super::record::MetadataRecord;

/// A generous cap: a batch creating thousands of partitions stays well under it.
const ENTRY_BYTES_MAX: usize = 64 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("metadata log io: {0}")]
    Io(#[from] std::io::Error),
    #[error("metadata record rejected: {0}")]
    Rejected(#[from] ApplyError),
    #[error("metadata log {path} is corrupt at entry {offset}: {reason}")]
    Corrupt { path: PathBuf, offset: i64, reason: String },
}

pub type Result<T> = std::result::Result<T, Error>;

#[derive(Serialize, Deserialize)]
struct Entry {
    offset: i64,
    records: Vec<MetadataRecord>,
}

pub struct MetadataStore {
    path: PathBuf,
    /// Serialises proposals: the file append and image publication happen in order.
    file: Mutex<File>,
    /// The newest published image; readers clone the Arc and never block writers long.
    image: RwLock<Arc<Image>>,
}

impl MetadataStore {
    pub fn open(dir: &Path) -> Result<MetadataStore> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join("metadata.log");
        let mut file = OpenOptions::new().read(true).append(true).create(true).open(&path)?;
        let mut image = Image { last_offset: -1, next_producer_id: 1000, ..Default::default() };
        let good_len = replay(&path, &mut file, &mut image)?;
        if good_len < file.metadata()?.len() {
            tracing::warn!(path = %path.display(), good_len, "truncating torn metadata log tail");
            file.set_len(good_len)?;
            file.sync_all()?;
        }
        Ok(MetadataStore { path, file: Mutex::new(file), image: RwLock::new(Arc::new(image)) })
    }

    pub fn image(&self) -> Arc<Image> {
        self.image.read().clone()
    }

    /// Validate, log durably, then publish `records` as one atomic batch.
    /// `build` sees the latest image under the proposal lock, so read-check-write
    /// (e.g. "create unless it exists") cannot race another proposal.
    pub fn propose<F>(&self, build: F) -> Result<Arc<Image>>
    where
        F: FnOnce(&Image) -> std::result::Result<Vec<MetadataRecord>, ApplyError>,
    {
        let mut file = self.file.lock();
        let current = self.image();
        let records = build(&current)?;
        if records.is_empty() {
            return Ok(current);
        }
        let offset = current.last_offset + 1;
        let mut next = (*current).clone();
        for r in &records {
            next.apply(offset, r)?;
        }
        let payload = serde_json::to_vec(&Entry { offset, records }).expect("metadata records always serialise");
        assert!(payload.len() <= ENTRY_BYTES_MAX, "metadata entry of {} bytes", payload.len());
        let mut buf = Vec::with_capacity(8 + payload.len());
        buf.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        buf.extend_from_slice(&crc32c::crc32c(&payload).to_be_bytes());
        buf.extend_from_slice(&payload);
        file.write_all(&buf)?;
        file.sync_data()?;
        let next = Arc::new(next);
        *self.image.write() = next.clone();
        Ok(next)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Apply every whole, valid entry; return the byte length of that good prefix.
fn replay(path: &Path, file: &mut File, image: &mut Image) -> Result<u64> {
    file.seek(SeekFrom::Start(0))?;
    let mut data = Vec::new();
    file.read_to_end(&mut data)?;
    let mut pos = 0usize;
    while data.len() - pos >= 8 {
        let len = u32::from_be_bytes(data[pos..pos + 4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_be_bytes(data[pos + 4..pos + 8].try_into().expect("4 bytes"));
        if len > ENTRY_BYTES_MAX || data.len() - pos - 8 < len {
            break;
        }
        let payload = &data[pos + 8..pos + 8 + len];
        if crc32c::crc32c(payload) != crc {
            break;
        }
        let entry: Entry = serde_json::from_slice(payload).map_err(|e| Error::Corrupt {
            path: path.to_path_buf(),
            offset: image.last_offset + 1,
            reason: e.to_string(),
        })?;
        if entry.offset != image.last_offset + 1 {
            return Err(Error::Corrupt { path: path.to_path_buf(), offset: entry.offset, reason: "offset gap".into() });
        }
        for r in &entry.records {
            image.apply(entry.offset, r).map_err(|e| Error::Corrupt {
                path: path.to_path_buf(),
                offset: entry.offset,
                reason: e.to_string(),
            })?;
        }
        pos += 8 + len;
    }
    file.seek(SeekFrom::End(0))?;
    Ok(pos as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn create(store: &MetadataStore, name: &str, partitions: i32) -> Uuid {
        let id = Uuid::new_v4();
        store
            .propose(|_| {
                let mut r = vec![MetadataRecord::Topic { name: name.into(), id }];
                for p in 0..partitions {
                    r.push(MetadataRecord::Partition { topic_id: id, partition: p, leader: 1, leader_epoch: 0, replicas: vec![1], isr: vec![1] });
                }
                Ok(r)
            })
            .unwrap();
        id
    }

    #[test]
    fn replays_after_reopen_and_cuts_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let id = {
            let s = MetadataStore::open(dir.path()).unwrap();
            let id = create(&s, "a", 3);
            create(&s, "b", 1);
            id
        };
        // Simulate a torn write: half an entry at the end.
        let path = dir.path().join("metadata.log");
        let good = std::fs::metadata(&path).unwrap().len();
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&[0, 0, 1, 0, 9, 9]).unwrap();
        drop(f);
        let s = MetadataStore::open(dir.path()).unwrap();
        let img = s.image();
        assert_eq!(img.topic("a").unwrap().partitions.len(), 3);
        assert_eq!(img.topic_by_id(&id).unwrap().name, "a");
        assert!(img.topic("b").is_some());
        assert_eq!(std::fs::metadata(&path).unwrap().len(), good);
        // And the log keeps growing densely after the cut.
        create(&s, "c", 1);
        assert_eq!(s.image().last_offset, 2);
    }

    #[test]
    fn rejected_proposal_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let s = MetadataStore::open(dir.path()).unwrap();
        create(&s, "a", 1);
        let before = std::fs::metadata(s.path()).unwrap().len();
        let err = s.propose(|_| Ok(vec![MetadataRecord::Topic { name: "a".into(), id: Uuid::new_v4() }]));
        assert!(matches!(err, Err(Error::Rejected(ApplyError::TopicExists(_)))));
        assert_eq!(std::fs::metadata(s.path()).unwrap().len(), before);
        assert_eq!(s.image().last_offset, 0);
    }
}
