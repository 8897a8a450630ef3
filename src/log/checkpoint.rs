//! The small files beside the segments of a partition: `checkpoint.json` (recovery
//! point, log start offset, clean-shutdown flag) and `NNNNNNNNNNNNNNNNNNNN.producers`
//! (a snapshot of the producer state as of that offset). Both are written whole to a
//! temporary file and renamed into place, so a reader sees the old or the new version,
//! never a mix; a file that does not parse is treated as absent (the log then recovers
//! or replays more, it never trusts a half-written file).

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::producer_state::ProducerEntry;
use super::segment::file_stem;

pub const CHECKPOINT_FILE: &str = "checkpoint.json";
pub const PRODUCER_SNAPSHOT_SUFFIX: &str = ".producers";
const TMP_SUFFIX: &str = ".tmp";
const CHECKPOINT_VERSION: u32 = 1;
/// Producer snapshots kept; older ones are deleted after a new one is written.
const PRODUCER_SNAPSHOTS_KEPT: usize = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub version: u32,
    /// True only when written by `close` after every file was synced; cleared on open.
    pub clean_shutdown: bool,
    /// Every offset below this is known durable; recovery scans from its segment on.
    pub recovery_point: i64,
    pub log_start_offset: i64,
    /// The log cleaner's checkpoint: offsets below it have been compacted (Kafka's
    /// `cleaner-offset-checkpoint`). Absent in files written before compaction: 0.
    #[serde(default)]
    pub clean_offset: i64,
    /// Earliest delete horizon the cleaner stamped on a batch of tombstones and has not
    /// passed yet: when it passes, the log is cleaned again to drop them.
    #[serde(default)]
    pub delete_horizon_ms: Option<i64>,
}

impl Checkpoint {
    pub fn new(clean_shutdown: bool, recovery_point: i64, log_start_offset: i64) -> Self {
        Checkpoint {
            version: CHECKPOINT_VERSION,
            clean_shutdown,
            recovery_point,
            log_start_offset,
            clean_offset: 0,
            delete_horizon_ms: None,
        }
    }

    /// The same checkpoint carrying the cleaner's state.
    pub fn with_cleaner(mut self, clean_offset: i64, delete_horizon_ms: Option<i64>) -> Self {
        self.clean_offset = clean_offset;
        self.delete_horizon_ms = delete_horizon_ms;
        self
    }

    /// The checkpoint in `dir`, or `None` if absent or unreadable (then: full recovery).
    pub fn read(dir: &Path) -> io::Result<Option<Checkpoint>> {
        let bytes = match fs::read(dir.join(CHECKPOINT_FILE)) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        match serde_json::from_slice::<Checkpoint>(&bytes) {
            Ok(c) if c.version == CHECKPOINT_VERSION => Ok(Some(c)),
            _ => {
                tracing::warn!(dir = %dir.display(), "unreadable log checkpoint; recovering the whole log");
                Ok(None)
            }
        }
    }

    /// Writes durably: fsync of the data, rename, fsync of the directory.
    pub fn write(&self, dir: &Path) -> io::Result<()> {
        let bytes = serde_json::to_vec(self).map_err(io::Error::other)?;
        write_atomically(dir, CHECKPOINT_FILE, &bytes, true)
    }

    /// Writes by rename without fsync; the caller makes it durable later (one
    /// `syncfs` for many logs, or [`sync_checkpoint`]). Until then a crash leaves the
    /// previous checkpoint or none: never a newer claim than the data behind it, as
    /// long as the caller synced that data first.
    pub fn write_unsynced(&self, dir: &Path) -> io::Result<()> {
        let bytes = serde_json::to_vec(self).map_err(io::Error::other)?;
        write_atomically(dir, CHECKPOINT_FILE, &bytes, false)
    }
}

/// fsyncs a checkpoint written with [`Checkpoint::write_unsynced`], and its rename.
pub fn sync_checkpoint(dir: &Path) -> io::Result<()> {
    File::open(dir.join(CHECKPOINT_FILE))?.sync_all()?;
    sync_dir(dir)
}

/// fsyncs the producer snapshot taken at `offset` (written without fsync).
pub fn sync_producer_snapshot(dir: &Path, offset: i64) -> io::Result<()> {
    File::open(dir.join(snapshot_name(offset)))?.sync_all()
}

#[derive(Debug, Serialize, Deserialize)]
struct ProducerSnapshot {
    offset: i64,
    producers: Vec<ProducerEntry>,
}

fn snapshot_name(offset: i64) -> String {
    format!("{}{PRODUCER_SNAPSHOT_SUFFIX}", file_stem(offset))
}

/// Writes the producer state as of `offset` (the log end when taken). With `durable`
/// the file is fsynced; otherwise a crash may leave it unreadable, which only costs a
/// longer replay.
pub fn write_producer_snapshot(
    dir: &Path,
    offset: i64,
    producers: Vec<ProducerEntry>,
    durable: bool,
) -> io::Result<()> {
    let bytes =
        serde_json::to_vec(&ProducerSnapshot { offset, producers }).map_err(io::Error::other)?;
    write_atomically(dir, &snapshot_name(offset), &bytes, durable)?;
    let offsets = list_producer_snapshots(dir)?;
    let excess = offsets.len().saturating_sub(PRODUCER_SNAPSHOTS_KEPT);
    for old in &offsets[..excess] {
        remove_if_present(&dir.join(snapshot_name(*old)))?;
    }
    Ok(())
}

/// Removes the producer snapshot taken at `offset` (truncation: it describes offsets the
/// log no longer has).
pub fn remove_producer_snapshot(dir: &Path, offset: i64) -> io::Result<()> {
    remove_if_present(&dir.join(snapshot_name(offset)))
}

/// Offsets of the snapshots in `dir`, ascending.
pub fn list_producer_snapshots(dir: &Path) -> io::Result<Vec<i64>> {
    let mut offsets = Vec::new();
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(stem) = name.strip_suffix(PRODUCER_SNAPSHOT_SUFFIX)
            && let Ok(offset) = stem.parse::<i64>()
        {
            offsets.push(offset);
        }
    }
    offsets.sort_unstable();
    Ok(offsets)
}

/// The newest readable snapshot at or below `max_offset`, deleting any above it (they
/// describe offsets the log no longer has). Returns (offset, entries).
pub fn load_producer_snapshot(
    dir: &Path,
    max_offset: i64,
) -> io::Result<Option<(i64, Vec<ProducerEntry>)>> {
    let offsets = list_producer_snapshots(dir)?;
    for offset in offsets.iter().rev() {
        let path = dir.join(snapshot_name(*offset));
        if *offset > max_offset {
            remove_if_present(&path)?;
            continue;
        }
        match serde_json::from_slice::<ProducerSnapshot>(&fs::read(&path)?) {
            Ok(s) if s.offset == *offset => return Ok(Some((s.offset, s.producers))),
            _ => {
                tracing::warn!(path = %path.display(), "unreadable producer snapshot; ignoring it");
                remove_if_present(&path)?;
            }
        }
    }
    Ok(None)
}

pub fn remove_if_present(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// fsyncs a directory so that file creations, renames and deletions in it are durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// `syncfs(2)` on the filesystem holding `fd`: every file's data, metadata and
/// directory entry written before the call is durable when it returns Ok. One journal
/// commit and device flush for everything, where an fsync per file costs one each; it
/// also flushes unrelated files on that filesystem (the price, paid only when many
/// logs are dirty at once). Errors are reported on Linux 5.8 and later.
pub fn sync_filesystem(fd: &File) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: syncfs only reads the descriptor, which `fd` keeps open for the call.
    if unsafe { libc::syncfs(fd.as_raw_fd()) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

pub(super) fn write_atomically(dir: &Path, name: &str, bytes: &[u8], durable: bool) -> io::Result<()> {
    let tmp: PathBuf = dir.join(format!("{name}{TMP_SUFFIX}"));
    {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        if durable {
            f.sync_all()?;
        }
    }
    fs::rename(&tmp, dir.join(name))?;
    if durable {
        sync_dir(dir)?;
    }
    Ok(())
}

/// Leftover temporary files from an interrupted write.
pub fn is_temporary(name: &str) -> bool {
    name.ends_with(TMP_SUFFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_round_trip_and_garbage() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Checkpoint::read(dir.path()).unwrap(), None);
        let c = Checkpoint::new(true, 42, 7);
        c.write(dir.path()).unwrap();
        assert_eq!(Checkpoint::read(dir.path()).unwrap(), Some(c));
        fs::write(dir.path().join(CHECKPOINT_FILE), b"{\"vers").unwrap();
        assert_eq!(Checkpoint::read(dir.path()).unwrap(), None);
    }

    #[test]
    fn snapshots_keep_newest_and_drop_those_past_the_end() {
        let dir = tempfile::tempdir().unwrap();
        for off in [10, 20, 30, 40] {
            write_producer_snapshot(dir.path(), off, vec![], false).unwrap();
        }
        assert_eq!(
            list_producer_snapshots(dir.path()).unwrap(),
            vec![20, 30, 40]
        );
        fs::write(dir.path().join(snapshot_name(30)), b"garbage").unwrap();
        let (off, _) = load_producer_snapshot(dir.path(), 35).unwrap().unwrap();
        assert_eq!(off, 20);
        assert_eq!(list_producer_snapshots(dir.path()).unwrap(), vec![20]);
    }
}
