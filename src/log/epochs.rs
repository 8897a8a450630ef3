//! The leader epoch cache of one partition log (Kafka's `LeaderEpochFileCache`): which
//! leader epoch started at which offset. Replication needs it to find where a follower's
//! log diverged from the leader's (OffsetForLeaderEpoch): the answer for an epoch is the
//! offset at which the next larger epoch began.
//!
//! Entries are strictly increasing in both epoch and start offset. They are added when a
//! batch with a larger epoch is appended (leader or replica append) and when a new
//! leader takes over ([`super::PartitionLog::assign_epoch`]); they are dropped from the
//! end by truncation and from the start by log start moves (keeping the entry that covers
//! the new log start, moved up to it).
//!
//! Persisted in Kafka's text format as `leader-epoch-checkpoint` (version line `0`,
//! count line, then `epoch offset` lines), replaced atomically (tmp + rename) whenever
//! the cache changes. The file is a hint, not the truth: open drops entries at or past
//! the log end and fills in epochs found in the batch headers it scans anyway (the
//! transaction index rebuild), so a lost or stale write only costs that scan.

use std::fs;
use std::io;
use std::path::Path;

use super::checkpoint;

pub const EPOCH_CHECKPOINT_FILE: &str = "leader-epoch-checkpoint";
/// Kafka's `LeaderEpochCheckpointFile` format version.
const FILE_VERSION: &str = "0";
/// More entries than this in a file means it is not ours (a leader change each second for
/// years would not reach it); it is then ignored and rebuilt from the log.
const MAX_FILE_ENTRIES: usize = 1 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochEntry {
    pub epoch: i32,
    pub start_offset: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EpochCache {
    /// Ascending by epoch and by start offset, both strictly.
    entries: Vec<EpochEntry>,
}

impl EpochCache {
    #[cfg(test)]
    pub fn from_entries(entries: &[(i32, i64)]) -> EpochCache {
        let mut cache = EpochCache::default();
        for &(epoch, start_offset) in entries {
            cache.assign(epoch, start_offset);
        }
        cache
    }

    pub fn entries(&self) -> &[EpochEntry] {
        &self.entries
    }

    pub fn latest_epoch(&self) -> Option<i32> {
        self.entries.last().map(|e| e.epoch)
    }

    /// Records that `epoch` starts at `start_offset` if it is larger than the latest
    /// epoch. Entries starting at or after `start_offset` are dropped first: they belong
    /// to epochs whose data never got past that offset (Kafka does the same), and
    /// keeping them would break the ordering the lookups rely on. Negative epochs (batches
    /// never stamped by a leader) are ignored. Returns true if the cache changed.
    pub fn assign(&mut self, epoch: i32, start_offset: i64) -> bool {
        if epoch < 0 || start_offset < 0 || self.latest_epoch().is_some_and(|l| epoch <= l) {
            return false;
        }
        let keep = self.entries.partition_point(|e| e.start_offset < start_offset);
        if keep < self.entries.len() {
            tracing::debug!(epoch, start_offset, dropped = ?&self.entries[keep..], "epoch entries superseded");
            self.entries.truncate(keep);
        }
        self.entries.push(EpochEntry { epoch, start_offset });
        self.debug_check();
        true
    }

    /// OffsetForLeaderEpoch: the largest known epoch <= `epoch` and where it ends (the
    /// start of the next larger epoch, or `log_end_offset` for the latest one). `None`
    /// when `epoch` is below every known epoch (Kafka: UNDEFINED_EPOCH, -1).
    pub fn end_offset_for(&self, epoch: i32, log_end_offset: i64) -> Option<(i32, i64)> {
        if epoch < 0 {
            return None;
        }
        let above = self.entries.partition_point(|e| e.epoch <= epoch);
        let floor = self.entries[..above].last()?;
        let end = self.entries.get(above).map_or(log_end_offset, |next| next.start_offset);
        Some((floor.epoch, end))
    }

    /// Drops entries starting at or after `offset` (truncation of the log end). Returns
    /// true if the cache changed.
    pub fn truncate_from_end(&mut self, offset: i64) -> bool {
        let keep = self.entries.partition_point(|e| e.start_offset < offset);
        let changed = keep < self.entries.len();
        self.entries.truncate(keep);
        changed
    }

    /// The log now starts at `offset`: drops entries wholly below it and moves the one
    /// covering it up to it, so its epoch is still known for the offsets that remain.
    /// Returns true if the cache changed.
    pub fn truncate_from_start(&mut self, offset: i64) -> bool {
        let covering = self.entries.partition_point(|e| e.start_offset <= offset);
        let Some(first_kept) = covering.checked_sub(1) else {
            return false; // every entry starts above `offset`
        };
        let changed = first_kept > 0 || self.entries[first_kept].start_offset != offset;
        self.entries.drain(..first_kept);
        self.entries[0].start_offset = offset;
        self.debug_check();
        changed
    }

    pub fn clear(&mut self) -> bool {
        let changed = !self.entries.is_empty();
        self.entries.clear();
        changed
    }

    fn debug_check(&self) {
        debug_assert!(
            self.entries
                .windows(2)
                .all(|w| w[0].epoch < w[1].epoch && w[0].start_offset < w[1].start_offset),
            "epoch entries must increase: {:?}",
            self.entries
        );
    }

    /// The cache saved in `dir`, or an empty one if the file is absent or does not parse
    /// (open then rebuilds the entries from batch headers).
    pub fn load(dir: &Path) -> io::Result<EpochCache> {
        let path = dir.join(EPOCH_CHECKPOINT_FILE);
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(EpochCache::default()),
            Err(e) if e.kind() == io::ErrorKind::InvalidData => String::new(),
            Err(e) => return Err(e),
        };
        match parse(&text) {
            Ok(cache) => Ok(cache),
            Err(reason) => {
                tracing::warn!(path = %path.display(), reason, "unreadable leader epoch checkpoint; rebuilding it from the log");
                Ok(EpochCache::default())
            }
        }
    }

    /// Replaces the file in `dir`. With `durable` it is fsynced (data and rename) before
    /// returning: truncation needs that before it cuts the log, or a crash could leave
    /// entries for batches that are gone and then replaced by other epochs' batches.
    pub fn write(&self, dir: &Path, durable: bool) -> io::Result<()> {
        let mut text = format!("{FILE_VERSION}\n{}\n", self.entries.len());
        for e in &self.entries {
            text.push_str(&format!("{} {}\n", e.epoch, e.start_offset));
        }
        checkpoint::write_atomically(dir, EPOCH_CHECKPOINT_FILE, text.as_bytes(), durable)
    }
}

fn parse(text: &str) -> Result<EpochCache, String> {
    let mut lines = text.lines();
    if lines.next() != Some(FILE_VERSION) {
        return Err("missing or unknown version line".into());
    }
    let count: usize = lines
        .next()
        .and_then(|l| l.trim().parse().ok())
        .ok_or("missing entry count")?;
    if count > MAX_FILE_ENTRIES {
        return Err(format!("{count} entries"));
    }
    let mut cache = EpochCache::default();
    for i in 0..count {
        let line = lines.next().ok_or("fewer entries than counted")?;
        let mut fields = line.split_whitespace();
        let (Some(epoch), Some(offset), None) = (fields.next(), fields.next(), fields.next()) else {
            return Err(format!("bad entry line {line:?}"));
        };
        let epoch: i32 = epoch.parse().map_err(|_| format!("bad epoch in {line:?}"))?;
        let start_offset: i64 = offset.parse().map_err(|_| format!("bad offset in {line:?}"))?;
        // `assign` refuses a smaller epoch and drops entries a smaller offset supersedes:
        // either way the file was not written by us in order.
        if !cache.assign(epoch, start_offset) || cache.entries.len() != i + 1 {
            return Err(format!("entry {line:?} out of order"));
        }
    }
    if lines.any(|l| !l.trim().is_empty()) {
        return Err("more entries than counted".into());
    }
    Ok(cache)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Kafka's example: epochs 0, 2 and 5 starting at 0, 10 and 20; log end 30.
    fn kafka_example() -> EpochCache {
        EpochCache::from_entries(&[(0, 0), (2, 10), (5, 20)])
    }

    #[test]
    fn end_offset_for_epoch_follows_kafka() {
        let c = kafka_example();
        assert_eq!(c.end_offset_for(0, 30), Some((0, 10)));
        assert_eq!(c.end_offset_for(1, 30), Some((0, 10)), "unknown epoch: the floor's end");
        assert_eq!(c.end_offset_for(2, 30), Some((2, 20)));
        assert_eq!(c.end_offset_for(3, 30), Some((2, 20)));
        assert_eq!(c.end_offset_for(5, 30), Some((5, 30)), "latest epoch ends at the log end");
        assert_eq!(c.end_offset_for(9, 30), Some((5, 30)));
        assert_eq!(c.end_offset_for(-1, 30), None);
        assert_eq!(EpochCache::from_entries(&[(3, 7)]).end_offset_for(2, 30), None, "below the first epoch");
        assert_eq!(EpochCache::default().end_offset_for(0, 30), None);
        assert_eq!(c.latest_epoch(), Some(5));
    }

    #[test]
    fn assign_keeps_entries_increasing() {
        let mut c = kafka_example();
        assert!(!c.assign(5, 25), "same epoch again");
        assert!(!c.assign(4, 25), "older epoch");
        assert!(!c.assign(-1, 40));
        assert!(c.assign(6, 30));
        // A larger epoch starting where earlier ones start supersedes them.
        assert!(c.assign(7, 20));
        let got: Vec<_> = c.entries().iter().map(|e| (e.epoch, e.start_offset)).collect();
        assert_eq!(got, vec![(0, 0), (2, 10), (7, 20)]);
    }

    #[test]
    fn truncation_from_either_end() {
        let mut c = kafka_example();
        assert!(!c.truncate_from_end(21));
        assert!(c.truncate_from_end(20));
        assert_eq!(c.latest_epoch(), Some(2));
        let mut c = kafka_example();
        assert!(!c.truncate_from_start(0));
        assert!(c.truncate_from_start(15));
        let got: Vec<_> = c.entries().iter().map(|e| (e.epoch, e.start_offset)).collect();
        assert_eq!(got, vec![(2, 15), (5, 20)], "the entry covering the new start moves up");
        assert!(c.truncate_from_start(20));
        assert_eq!(c.entries(), &[EpochEntry { epoch: 5, start_offset: 20 }]);
        assert!(c.clear() && c.latest_epoch().is_none());
    }

    #[test]
    fn file_round_trip_and_garbage() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(EpochCache::load(dir.path()).unwrap(), EpochCache::default());
        let c = kafka_example();
        c.write(dir.path(), true).unwrap();
        let text = fs::read_to_string(dir.path().join(EPOCH_CHECKPOINT_FILE)).unwrap();
        assert_eq!(text, "0\n3\n0 0\n2 10\n5 20\n", "Kafka's format");
        assert_eq!(EpochCache::load(dir.path()).unwrap(), c);
        for garbage in ["1\n0\n", "0\n2\n0 0\n", "0\n2\n2 10\n0 0\n", "0\n1\n0 0\n1 5\n", "0\nx\n", "0\n1\n0 0 0\n"] {
            fs::write(dir.path().join(EPOCH_CHECKPOINT_FILE), garbage).unwrap();
            assert_eq!(EpochCache::load(dir.path()).unwrap(), EpochCache::default(), "{garbage:?}");
        }
    }
}
