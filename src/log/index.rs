//! The two sparse, memory-mapped indexes of a segment, in Kafka's on-disk format:
//! `.index` maps a relative offset (u32) to the file position (u32) of the batch that
//! starts at it; `.timeindex` maps a timestamp (i64) to the relative offset (u32) of the
//! first batch that reached that maximum timestamp. Entries are big-endian and strictly
//! increasing in both fields that are searched.
//!
//! The active segment's index files are preallocated to `segment_index_bytes` and
//! trimmed to their real length when the segment is sealed or the log closed, so the
//! entry count of a sealed index is its file length divided by the entry size. Indexes
//! are never trusted blindly: [`OffsetIndex::sanity_check`] and
//! [`TimeIndex::sanity_check`] run on open and a failure means "rebuild from the log".

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use memmap2::MmapMut;

use crate::protocol::records::NO_TIMESTAMP;

const OFFSET_ENTRY_BYTES: usize = 8;
const TIME_ENTRY_BYTES: usize = 12;

/// A file of fixed-size entries mapped into memory. `entries` entries are valid; the
/// file (and map) may be longer when preallocated.
struct MappedEntries {
    path: PathBuf,
    file: File,
    mmap: MmapMut,
    entry_bytes: usize,
    entries: usize,
    max_entries: usize,
}

fn map(file: &File) -> io::Result<MmapMut> {
    // SAFETY: the file is private to this partition directory and only this process
    // writes or resizes it, always through `&mut self` after dropping reads of the
    // map; nobody truncates it underneath a live mapping.
    let mmap = unsafe { MmapMut::map_mut(file) }?;
    // Index files are preallocated sparse (`segment.index.bytes`, 10 MiB) and filled
    // from the front, and lookups binary-search: no access is sequential. Without
    // this hint the first write faults in and zero-fills a whole read-ahead window
    // per file: gigabytes of page cache across 1,000 partitions (benches, workload 4).
    mmap.advise(memmap2::Advice::Random)?;
    Ok(mmap)
}

impl MappedEntries {
    /// Opens or creates `path`. Existing entries = file length / entry size (the file is
    /// trimmed whenever it is sealed). With `capacity_bytes`, the file is grown to hold
    /// that many bytes of entries so appends can continue.
    fn open(path: &Path, entry_bytes: usize, capacity_bytes: Option<u64>) -> io::Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        let len_bytes = file.metadata()?.len();
        let entries = usize::try_from(len_bytes).unwrap_or(usize::MAX) / entry_bytes;
        let mut this = MappedEntries {
            path: path.to_path_buf(),
            mmap: map(&file)?,
            file,
            entry_bytes,
            entries,
            max_entries: entries,
        };
        if let Some(capacity_bytes) = capacity_bytes {
            this.set_capacity(capacity_bytes)?;
        }
        Ok(this)
    }

    /// Resizes the file to hold max(current entries, capacity) entries and remaps it.
    fn set_capacity(&mut self, capacity_bytes: u64) -> io::Result<()> {
        let wanted = usize::try_from(capacity_bytes).unwrap_or(usize::MAX) / self.entry_bytes;
        self.resize(wanted.max(self.entries))
    }

    fn resize(&mut self, max_entries: usize) -> io::Result<()> {
        // No msync first: the mapping is shared, so its writes are already the page
        // cache's, which set_len keeps up to the new length and the new map shares.
        // Durability is `sync`'s (or the manager's syncfs) business; an msync here cost
        // one synchronous write per index file at every roll and at shutdown.
        self.file.set_len((max_entries * self.entry_bytes) as u64)?;
        self.mmap = map(&self.file)?;
        self.max_entries = max_entries;
        Ok(())
    }

    /// Shrinks the file to exactly the valid entries (sealing).
    fn trim(&mut self) -> io::Result<()> {
        self.resize(self.entries)
    }

    fn entry(&self, i: usize) -> &[u8] {
        debug_assert!(i < self.entries);
        &self.mmap[i * self.entry_bytes..(i + 1) * self.entry_bytes]
    }

    fn push(&mut self, bytes: &[u8]) {
        debug_assert!(self.entries < self.max_entries && bytes.len() == self.entry_bytes);
        let at = self.entries * self.entry_bytes;
        self.mmap[at..at + self.entry_bytes].copy_from_slice(bytes);
        self.entries += 1;
    }

    /// Largest index `i` with `key(i) <= target`, if any (entries sorted by key).
    fn floor(&self, target: i64, key: impl Fn(&[u8]) -> i64) -> Option<usize> {
        let (mut lo, mut hi) = (0usize, self.entries);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if key(self.entry(mid)) <= target {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo.checked_sub(1)
    }

    fn sync(&self) -> io::Result<()> {
        self.mmap.flush()?;
        self.file.sync_all()
    }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn i64_at(b: &[u8], at: usize) -> i64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(x)
}

/// Relative offset → file position of the batch starting there.
pub struct OffsetIndex {
    base_offset: i64,
    inner: MappedEntries,
}

impl OffsetIndex {
    pub fn open(path: &Path, base_offset: i64, capacity_bytes: Option<u64>) -> io::Result<Self> {
        Ok(OffsetIndex {
            base_offset,
            inner: MappedEntries::open(path, OFFSET_ENTRY_BYTES, capacity_bytes)?,
        })
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    pub fn entries(&self) -> usize {
        self.inner.entries
    }

    pub fn is_full(&self) -> bool {
        self.inner.entries >= self.inner.max_entries
    }

    fn decode(&self, e: &[u8]) -> (i64, u32) {
        (self.base_offset + i64::from(u32_at(e, 0)), u32_at(e, 4))
    }

    /// The entry `i` as (absolute offset, position in bytes).
    pub fn get(&self, i: usize) -> (i64, u32) {
        self.decode(self.inner.entry(i))
    }

    pub fn last_entry(&self) -> Option<(i64, u32)> {
        self.inner.entries.checked_sub(1).map(|i| self.get(i))
    }

    /// Adds an entry if there is room; a full index only makes lookups scan further.
    /// Offsets and positions must grow strictly.
    pub fn append(&mut self, offset: i64, position_bytes: u32) -> bool {
        if self.is_full() {
            return false;
        }
        let relative = offset - self.base_offset;
        debug_assert!(
            (0..=i64::from(u32::MAX)).contains(&relative),
            "relative offset {relative}"
        );
        if let Some((last_offset, last_position)) = self.last_entry() {
            debug_assert!(
                offset > last_offset && position_bytes > last_position,
                "index must grow"
            );
        }
        let mut e = [0u8; OFFSET_ENTRY_BYTES];
        e[..4].copy_from_slice(&(relative as u32).to_be_bytes());
        e[4..].copy_from_slice(&position_bytes.to_be_bytes());
        self.inner.push(&e);
        true
    }

    /// The greatest entry with offset <= `offset`, or (base offset, 0): a position at or
    /// before the batch containing `offset`.
    pub fn lookup(&self, offset: i64) -> (i64, u32) {
        let relative = offset - self.base_offset;
        match self.inner.floor(relative, |e| i64::from(u32_at(e, 0))) {
            Some(i) => self.get(i),
            None => (self.base_offset, 0),
        }
    }

    /// Entries strictly increasing, offsets below `offset_bound` (the next segment's
    /// base offset) and positions below `size_bytes` (the segment file's length).
    pub fn sanity_check(&self, offset_bound: i64, size_bytes: u64) -> Result<(), String> {
        let mut previous: Option<(i64, u32)> = None;
        for i in 0..self.inner.entries {
            let (offset, position) = self.get(i);
            if offset >= offset_bound || u64::from(position) >= size_bytes.max(1) {
                return Err(format!("entry {i} ({offset}, {position}) out of range"));
            }
            if let Some((po, pp)) = previous
                && (offset <= po || position <= pp)
            {
                return Err(format!(
                    "entry {i} ({offset}, {position}) not after ({po}, {pp})"
                ));
            }
            previous = Some((offset, position));
        }
        Ok(())
    }

    /// Drops all entries and makes room for `capacity_bytes` of new ones (rebuild).
    pub fn reset(&mut self, capacity_bytes: u64) -> io::Result<()> {
        self.inner.entries = 0;
        self.inner.set_capacity(capacity_bytes)
    }

    pub fn set_capacity(&mut self, capacity_bytes: u64) -> io::Result<()> {
        self.inner.set_capacity(capacity_bytes)
    }

    pub fn trim(&mut self) -> io::Result<()> {
        self.inner.trim()
    }

    pub fn sync(&self) -> io::Result<()> {
        self.inner.sync()
    }
}

/// Timestamp → relative offset of the first batch that reached that maximum timestamp.
/// Entries are added only when the segment's maximum timestamp grows, so every batch
/// before an entry's offset has a maximum timestamp below the entry's timestamp.
pub struct TimeIndex {
    base_offset: i64,
    inner: MappedEntries,
}

impl TimeIndex {
    pub fn open(path: &Path, base_offset: i64, capacity_bytes: Option<u64>) -> io::Result<Self> {
        Ok(TimeIndex {
            base_offset,
            inner: MappedEntries::open(path, TIME_ENTRY_BYTES, capacity_bytes)?,
        })
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Full for ordinary appends; one slot stays free for the entry written at sealing.
    pub fn is_full(&self) -> bool {
        self.inner.entries + 1 >= self.inner.max_entries
    }

    fn get(&self, i: usize) -> (i64, i64) {
        let e = self.inner.entry(i);
        (i64_at(e, 0), self.base_offset + i64::from(u32_at(e, 8)))
    }

    /// (timestamp, absolute offset) of the last entry.
    pub fn last_entry(&self) -> Option<(i64, i64)> {
        self.inner.entries.checked_sub(1).map(|i| self.get(i))
    }

    /// Appends (timestamp, offset) if the timestamp is greater than the last entry's and
    /// there is room (`sealing` may use the reserved last slot).
    pub fn maybe_append(&mut self, timestamp: i64, offset: i64, sealing: bool) -> bool {
        let room = if sealing {
            self.inner.entries < self.inner.max_entries
        } else {
            !self.is_full()
        };
        if !room || timestamp <= NO_TIMESTAMP {
            return false;
        }
        if let Some((last_ts, last_offset)) = self.last_entry() {
            if timestamp <= last_ts {
                return false;
            }
            debug_assert!(offset >= last_offset, "time index offsets must not go back");
        }
        let relative = offset - self.base_offset;
        debug_assert!((0..=i64::from(u32::MAX)).contains(&relative));
        let mut e = [0u8; TIME_ENTRY_BYTES];
        e[..8].copy_from_slice(&timestamp.to_be_bytes());
        e[8..].copy_from_slice(&(relative as u32).to_be_bytes());
        self.inner.push(&e);
        true
    }

    /// The offset to start scanning from for the first record with timestamp >=
    /// `timestamp`: the offset of the greatest entry whose timestamp <= `timestamp`, or
    /// the base offset.
    pub fn lookup(&self, timestamp: i64) -> i64 {
        match self.inner.floor(timestamp, |e| i64_at(e, 0)) {
            Some(i) => self.get(i).1,
            None => self.base_offset,
        }
    }

    /// Timestamps strictly increasing, offsets non-decreasing and below `offset_bound`.
    pub fn sanity_check(&self, offset_bound: i64) -> Result<(), String> {
        let mut previous: Option<(i64, i64)> = None;
        for i in 0..self.inner.entries {
            let (ts, offset) = self.get(i);
            if offset >= offset_bound || ts <= NO_TIMESTAMP {
                return Err(format!("time entry {i} ({ts}, {offset}) out of range"));
            }
            if let Some((pts, po)) = previous
                && (ts <= pts || offset < po)
            {
                return Err(format!(
                    "time entry {i} ({ts}, {offset}) not after ({pts}, {po})"
                ));
            }
            previous = Some((ts, offset));
        }
        Ok(())
    }

    pub fn reset(&mut self, capacity_bytes: u64) -> io::Result<()> {
        self.inner.entries = 0;
        self.inner.set_capacity(capacity_bytes)
    }

    pub fn set_capacity(&mut self, capacity_bytes: u64) -> io::Result<()> {
        self.inner.set_capacity(capacity_bytes)
    }

    pub fn trim(&mut self) -> io::Result<()> {
        self.inner.trim()
    }

    pub fn sync(&self) -> io::Result<()> {
        self.inner.sync()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn offset_index_lookup_trim_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("00000000000000000100.index");
        let mut idx = OffsetIndex::open(&path, 100, Some(80)).unwrap();
        assert_eq!(idx.lookup(150), (100, 0));
        for i in 1..=9u32 {
            assert!(idx.append(100 + i64::from(i) * 10, i * 1000));
        }
        assert!(!idx.is_full());
        assert!(idx.append(200, 10_000));
        assert!(idx.is_full() && !idx.append(210, 11_000));
        assert_eq!(idx.lookup(99), (100, 0));
        assert_eq!(idx.lookup(100), (100, 0));
        assert_eq!(idx.lookup(115), (110, 1000));
        assert_eq!(idx.lookup(120), (120, 2000));
        assert_eq!(idx.lookup(10_000), (200, 10_000));
        idx.trim().unwrap();
        drop(idx);
        let idx = OffsetIndex::open(&path, 100, None).unwrap();
        assert_eq!(idx.entries(), 10);
        assert!(idx.sanity_check(201, 10_001).is_ok());
        assert!(idx.sanity_check(200, 10_001).is_err());
        assert!(idx.sanity_check(201, 10_000).is_err());
    }

    #[test]
    fn preallocated_zeros_fail_sanity_check() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.index");
        let mut idx = OffsetIndex::open(&path, 0, Some(800)).unwrap();
        idx.append(5, 100);
        drop(idx); // not trimmed: the file still holds 99 entries of zeros
        let idx = OffsetIndex::open(&path, 0, None).unwrap();
        assert_eq!(idx.entries(), 100);
        assert!(idx.sanity_check(1000, 1 << 20).is_err());
        let tpath = dir.path().join("x.timeindex");
        let mut t = TimeIndex::open(&tpath, 0, Some(120)).unwrap();
        t.maybe_append(50, 3, false);
        drop(t);
        let t = TimeIndex::open(&tpath, 0, None).unwrap();
        assert!(t.sanity_check(1000).is_err());
    }

    #[test]
    fn time_index_keeps_only_growing_timestamps_and_reserves_a_slot() {
        let dir = tempfile::tempdir().unwrap();
        let mut t = TimeIndex::open(&dir.path().join("t"), 10, Some(36)).unwrap();
        assert_eq!(t.lookup(5), 10);
        assert!(t.maybe_append(100, 12, false));
        assert!(!t.maybe_append(100, 13, false));
        assert!(!t.maybe_append(90, 14, false));
        assert!(t.maybe_append(200, 15, false));
        assert!(t.is_full() && !t.maybe_append(300, 16, false));
        assert!(t.maybe_append(300, 16, true));
        assert_eq!(t.lookup(99), 10);
        assert_eq!(t.lookup(100), 12);
        assert_eq!(t.lookup(250), 15);
        assert_eq!(t.last_entry(), Some((300, 16)));
        assert!(t.sanity_check(17).is_ok());
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn lookup_matches_linear_scan(
            gaps in proptest::collection::vec((1u32..50, 1u32..5000), 0..200),
            probes in proptest::collection::vec(0i64..12_000, 1..20),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let mut idx = OffsetIndex::open(&dir.path().join("i"), 1000, Some(8 * 256)).unwrap();
            let (mut offset, mut position) = (1000i64, 0u32);
            let mut model = vec![];
            for (d_off, d_pos) in gaps {
                offset += i64::from(d_off);
                position += d_pos;
                prop_assert!(idx.append(offset, position));
                model.push((offset, position));
            }
            for p in probes {
                let expected = model.iter().rev().find(|(o, _)| *o <= p).copied().unwrap_or((1000, 0));
                prop_assert_eq!(idx.lookup(p), expected);
            }
        }
    }
}
