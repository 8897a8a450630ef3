//! Import of the pre-quorum metadata log (`metadata.log`).
//!
//! Before the metadata log ran through openraft it was a local file of entries
//! `len: u32 | crc32c(payload): u32 | payload`, payload the JSON of
//! `{offset, records}`. A data dir written then still holds it; its image becomes
//! the base the raft log applies on top of (see `raft::state_machine`) until the
//! first snapshot covers it, so no topic is lost on upgrade. The file is only
//! read here, never written; a torn tail is ignored, as it was never acknowledged.

use std::path::Path;

use serde::Deserialize;

use super::image::Image;
use super::record::MetadataRecord;
use super::store::{Error, Result};

/// The old format's cap on one entry.
const ENTRY_BYTES_MAX: usize = 64 * 1024 * 1024;

#[derive(Deserialize)]
struct Entry {
    offset: i64,
    records: Vec<MetadataRecord>,
}

/// The image of every whole, valid entry of the old log at `path`.
pub fn replay(path: &Path) -> Result<Image> {
    let data = std::fs::read(path)?;
    let mut image = Image::empty();
    let mut pos = 0usize;
    while let Some((payload, n)) = crate::raft::unframe(&data[pos..], ENTRY_BYTES_MAX) {
        let corrupt = |offset: i64, reason: String| Error::Corrupt { path: path.to_path_buf(), offset, reason };
        let entry: Entry = serde_json::from_slice(payload).map_err(|e| corrupt(image.last_offset + 1, e.to_string()))?;
        if entry.offset != image.last_offset + 1 {
            return Err(corrupt(entry.offset, "offset gap".into()));
        }
        for r in &entry.records {
            image.apply(entry.offset, r).map_err(|e| corrupt(entry.offset, e.to_string()))?;
        }
        pos += n;
    }
    if pos < data.len() {
        tracing::warn!(path = %path.display(), good_len = pos, "ignoring a torn tail of the old metadata log");
    }
    Ok(image)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde::Serialize;
    use std::io::Write;

    #[derive(Serialize)]
    struct OldEntry<'a> {
        offset: i64,
        records: &'a [MetadataRecord],
    }

    /// Write a log in the old format, as the pre-quorum store did.
    pub(crate) fn write_old_log(path: &Path, batches: &[Vec<MetadataRecord>]) {
        let mut f = std::fs::File::create(path).unwrap();
        for (i, records) in batches.iter().enumerate() {
            let payload = serde_json::to_vec(&OldEntry { offset: i as i64, records }).unwrap();
            f.write_all(&crate::raft::frame(&payload)).unwrap();
        }
        // And a torn tail, which must be ignored.
        f.write_all(&[0, 0, 1, 0, 9, 9]).unwrap();
    }

    #[test]
    fn replays_old_entries_and_ignores_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metadata.log");
        let id = uuid::Uuid::new_v4();
        write_old_log(&path, &[vec![MetadataRecord::Topic { name: "a".into(), id }], vec![MetadataRecord::ProducerIds { next_producer_id: 2000 }]]);
        let img = replay(&path).unwrap();
        assert_eq!(img.last_offset, 1);
        assert_eq!(img.topic("a").unwrap().id, id);
        assert_eq!(img.next_producer_id, 2000);
    }
}
