//! One segment: a `.log` file of whole v2 batches stored back to back, starting at
//! `base_offset`, plus its offset and time indexes. The segment knows positions and
//! offsets; it does not know producers, the recovery point or other segments (that is
//! [`super::partition`]). It also owns the two ways of walking its file: a structural
//! walk of headers (reads, producer-state rebuild) and a verified walk that checks every
//! CRC and that offsets increase, and truncates at the first bad batch (recovery).
//! Offsets inside a segment may have gaps once the cleaner has compacted it.
//!
//! Reads use `pread` (`FileExt::read_exact_at`) into fresh buffers, so a reader never
//! observes a partially appended batch: the segment's `size_bytes` only moves after a
//! write completed. A consumer fetch takes a [`FileSlice`] instead (a range below
//! `size_bytes` with the file held open) and the connection sends it with `sendfile`.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use super::index::{OffsetIndex, TimeIndex};
use super::{Error, LogConfig, Result};
use crate::protocol::records::{BATCH_HEADER_BYTES, BatchHeader, NO_TIMESTAMP};

/// Read-ahead of the chunked reader when every byte is read (CRC checks in recovery).
const WALK_CHUNK_BYTES: usize = 1 << 20;
/// Read-ahead of a header walk ([`ChunkReader::header_walk`]) among small batches.
const HEADER_WALK_CHUNK_BYTES: usize = 16 << 10;
/// In a header walk, the header after a batch at least this large is read alone.
const HEADER_READ_ALONE_BYTES: u64 = 4 << 10;
/// Read-ahead when locating one batch for a fetch: an index interval plus a header or so.
const LOCATE_CHUNK_BYTES: usize = 16 << 10;
/// The batch CRC covers the bytes from `attributes` (this position) to the end.
const CRC_FROM_BYTES: u64 = 21;

/// Suffix of segment files renamed for deletion; recovery removes any it finds.
pub const DELETED_SUFFIX: &str = ".deleted";

/// Second step of a deletion: removes files renamed by [`Segment::rename_to_deleted`].
pub fn remove_deleted_files(paths: &[PathBuf]) -> io::Result<()> {
    for p in paths {
        match std::fs::remove_file(p) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

/// Removes the log file and both indexes of the segment at `base_offset`, if present.
pub fn remove_files(dir: &Path, base_offset: i64) -> io::Result<()> {
    remove_deleted_files(&[
        log_path(dir, base_offset),
        index_path(dir, base_offset),
        time_index_path(dir, base_offset),
    ])
}

/// `base_offset` as the 20-digit zero-padded file stem Kafka uses.
pub fn file_stem(base_offset: i64) -> String {
    format!("{base_offset:020}")
}

pub fn log_path(dir: &Path, base_offset: i64) -> PathBuf {
    dir.join(format!("{}.log", file_stem(base_offset)))
}

fn index_path(dir: &Path, base_offset: i64) -> PathBuf {
    dir.join(format!("{}.index", file_stem(base_offset)))
}

fn time_index_path(dir: &Path, base_offset: i64) -> PathBuf {
    dir.join(format!("{}.timeindex", file_stem(base_offset)))
}

/// `len` bytes at `position_bytes` into a new buffer, without zeroing it first (a fetch
/// reads up to megabytes per partition; the memset would be a second pass over them).
pub(super) fn pread_exact(file: &File, position_bytes: u64, len: usize) -> io::Result<BytesMut> {
    use std::os::fd::AsRawFd;
    let mut buf = BytesMut::with_capacity(len);
    let mut done = 0usize;
    while done < len {
        let spare = buf.spare_capacity_mut();
        // SAFETY: `spare` is valid for writes of `len - done` bytes (capacity is `len`,
        // `done` bytes are initialised), and pread writes only into it.
        let n = unsafe {
            libc::pread(
                file.as_raw_fd(),
                spare.as_mut_ptr().cast(),
                len - done,
                (position_bytes + done as u64) as libc::off_t,
            )
        };
        match n {
            0 => return Err(io::ErrorKind::UnexpectedEof.into()),
            n if n < 0 => {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
            n => {
                // SAFETY: pread initialised the next `n` bytes (n <= len - done).
                unsafe { buf.set_len(done + n as usize) };
                done += n as usize;
            }
        }
    }
    Ok(buf)
}

/// Bytes of a segment file, held open: a fetch response's record set, sent with
/// `sendfile` (or read with `pread`) when the response is written.
#[derive(Clone)]
pub struct FileSlice {
    file: Arc<File>,
    position_bytes: u64,
    len: usize,
}

impl FileSlice {
    /// `len` bytes at `position_bytes` of `file` (which must hold them).
    pub fn new(file: Arc<File>, position_bytes: u64, len: usize) -> FileSlice {
        FileSlice { file, position_bytes, len }
    }
    pub fn file(&self) -> &File {
        &self.file
    }
    pub fn position_bytes(&self) -> u64 {
        self.position_bytes
    }
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// The bytes, copied out of the file.
    pub fn read(&self) -> io::Result<Bytes> {
        self.read_tail(0)
    }
    /// The bytes after the first `skip`, copied out of the file.
    pub fn read_tail(&self, skip: u64) -> io::Result<Bytes> {
        let skip = skip.min(self.len as u64);
        Ok(pread_exact(&self.file, self.position_bytes + skip, self.len - skip as usize)?.freeze())
    }
}

impl std::fmt::Debug for FileSlice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FileSlice({}..+{})", self.position_bytes, self.len)
    }
}

/// Sequential reader over a file range with a reusable read-ahead buffer.
pub struct ChunkReader<'a> {
    file: &'a File,
    end_bytes: u64,
    chunk_bytes: usize,
    buf: Vec<u8>,
    buf_start_bytes: u64,
    /// Set for walks that read headers only: then a header after a large batch is read
    /// alone, and only small batches are read ahead (see [`Self::header_walk`]).
    header_walk: bool,
    last_batch_bytes: u64,
}

impl<'a> ChunkReader<'a> {
    pub fn new(file: &'a File, end_bytes: u64, chunk_bytes: usize) -> Self {
        ChunkReader {
            file,
            end_bytes,
            chunk_bytes,
            buf: Vec::new(),
            buf_start_bytes: 0,
            header_walk: false,
            last_batch_bytes: 0,
        }
    }

    /// A reader for walks that look at batch headers only. Copying the records out of
    /// the page cache was most of the cost of such a walk (70% of a restart after a
    /// crash): after a batch of [`HEADER_READ_ALONE_BYTES`] or more the next header is
    /// read alone (61 bytes); after smaller batches a [`HEADER_WALK_CHUNK_BYTES`] window
    /// serves several headers from one read.
    pub fn header_walk(file: &'a File, end_bytes: u64) -> Self {
        ChunkReader { header_walk: true, ..ChunkReader::new(file, end_bytes, HEADER_WALK_CHUNK_BYTES) }
    }

    /// Up to `len` bytes at `position_bytes` (fewer only at the end of the range).
    /// `len` must not exceed the chunk size.
    pub fn read_at(&mut self, position_bytes: u64, len: usize) -> io::Result<&[u8]> {
        self.read_ahead_at(position_bytes, len, self.chunk_bytes)
    }

    /// `read_at`, reading `ahead` bytes (at least `len`) when the buffer misses.
    fn read_ahead_at(&mut self, position_bytes: u64, len: usize, ahead: usize) -> io::Result<&[u8]> {
        debug_assert!(len <= self.chunk_bytes && len <= ahead);
        let len = len.min(self.end_bytes.saturating_sub(position_bytes) as usize);
        if len == 0 {
            return Ok(&[]);
        }
        let buf_end = self.buf_start_bytes + self.buf.len() as u64;
        if position_bytes < self.buf_start_bytes || position_bytes + len as u64 > buf_end {
            let want = (self.end_bytes - position_bytes).min(ahead as u64) as usize;
            self.buf.resize(want, 0);
            self.file.read_exact_at(&mut self.buf, position_bytes)?;
            self.buf_start_bytes = position_bytes;
        }
        let at = (position_bytes - self.buf_start_bytes) as usize;
        Ok(&self.buf[at..at + len])
    }

    /// CRC-32C of `len` bytes at `position_bytes`, read chunk by chunk.
    pub fn crc_of(&mut self, position_bytes: u64, len: u64) -> io::Result<u32> {
        let (mut crc, mut done) = (0u32, 0u64);
        while done < len {
            let step = (len - done).min(self.chunk_bytes as u64) as usize;
            let bytes = self.read_at(position_bytes + done, step)?;
            crc = crc32c::crc32c_append(crc, bytes);
            done += step as u64;
        }
        Ok(crc)
    }

    /// The header of the batch at `position_bytes`, or `None` at the end of the range or
    /// when the batch there is cut short (torn tail). A header that cannot parse is an
    /// error carrying the reason.
    pub fn header_at(&mut self, position_bytes: u64) -> io::Result<HeaderAt> {
        let ahead = if self.header_walk && self.last_batch_bytes >= HEADER_READ_ALONE_BYTES {
            BATCH_HEADER_BYTES
        } else {
            self.chunk_bytes
        };
        let end_bytes = self.end_bytes;
        let bytes = self.read_ahead_at(position_bytes, BATCH_HEADER_BYTES, ahead)?;
        if bytes.is_empty() {
            return Ok(HeaderAt::End);
        }
        let short = bytes.len() < BATCH_HEADER_BYTES;
        match BatchHeader::parse(bytes) {
            Ok(h) if (h.total_bytes() as u64) <= end_bytes - position_bytes => {
                self.last_batch_bytes = h.total_bytes() as u64;
                Ok(HeaderAt::Batch(h))
            }
            Ok(_) => Ok(HeaderAt::Torn),
            Err(_) if short => Ok(HeaderAt::Torn),
            Err(e) => Ok(HeaderAt::Corrupt(e.to_string())),
        }
    }
}

pub enum HeaderAt {
    Batch(BatchHeader),
    End,
    Torn,
    Corrupt(String),
}

pub struct Segment {
    base_offset: i64,
    log_path: PathBuf,
    /// Shared with fetch responses being sent from it ([`FileSlice`]): an open handle
    /// keeps the bytes readable even after the segment is deleted or replaced.
    log: Arc<File>,
    /// Bytes of whole batches in the file; appends write here.
    size_bytes: u64,
    /// Offset the next batch appended here gets (== base_offset while empty).
    next_offset: i64,
    offset_index: OffsetIndex,
    time_index: TimeIndex,
    /// Largest batch max-timestamp in the segment (NO_TIMESTAMP if none).
    max_timestamp: i64,
    /// Base offset of the first batch that reached `max_timestamp`.
    offset_of_max_timestamp: i64,
    /// Max timestamp of the first batch (NO_TIMESTAMP if empty): Kafka's time-roll base.
    first_batch_timestamp: i64,
    bytes_since_index_entry: u64,
    index_interval_bytes: u64,
    segment_index_bytes: u64,
}

impl Segment {
    /// Creates an empty active segment, replacing any stray files of that name.
    pub fn create(dir: &Path, base_offset: i64, config: &LogConfig) -> Result<Segment> {
        let log_path = log_path(dir, base_offset);
        let log = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&log_path)?;
        for p in [
            index_path(dir, base_offset),
            time_index_path(dir, base_offset),
        ] {
            match std::fs::remove_file(&p) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e.into()),
                _ => {}
            }
        }
        Self::from_files(dir, base_offset, log_path, log, config, true)
    }

    /// Opens an existing segment. `next_offset` and the maximum timestamp are not known
    /// until [`Segment::load_trusted`] or [`Segment::recover`] runs.
    pub fn open(dir: &Path, base_offset: i64, config: &LogConfig, active: bool) -> Result<Segment> {
        let log_path = log_path(dir, base_offset);
        let log = OpenOptions::new().read(true).write(true).open(&log_path)?;
        Self::from_files(dir, base_offset, log_path, log, config, active)
    }

    fn from_files(
        dir: &Path,
        base_offset: i64,
        log_path: PathBuf,
        log: File,
        config: &LogConfig,
        active: bool,
    ) -> Result<Segment> {
        let capacity = active.then_some(config.segment_index_bytes);
        let size_bytes = log.metadata()?.len();
        Ok(Segment {
            offset_index: OffsetIndex::open(&index_path(dir, base_offset), base_offset, capacity)?,
            time_index: TimeIndex::open(&time_index_path(dir, base_offset), base_offset, capacity)?,
            base_offset,
            log_path,
            log: Arc::new(log),
            size_bytes,
            next_offset: base_offset,
            max_timestamp: NO_TIMESTAMP,
            offset_of_max_timestamp: base_offset,
            first_batch_timestamp: NO_TIMESTAMP,
            bytes_since_index_entry: 0,
            index_interval_bytes: config.index_interval_bytes,
            segment_index_bytes: config.segment_index_bytes,
        })
    }

    pub fn base_offset(&self) -> i64 {
        self.base_offset
    }
    pub fn next_offset(&self) -> i64 {
        self.next_offset
    }
    pub fn size_bytes(&self) -> u64 {
        self.size_bytes
    }
    pub fn is_empty(&self) -> bool {
        self.size_bytes == 0
    }
    pub fn log_file(&self) -> &File {
        &self.log
    }
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }
    pub fn max_timestamp(&self) -> i64 {
        self.max_timestamp
    }
    pub fn offset_of_max_timestamp(&self) -> i64 {
        self.offset_of_max_timestamp
    }
    pub fn time_index(&self) -> &TimeIndex {
        &self.time_index
    }
    pub fn first_batch_timestamp(&self) -> i64 {
        self.first_batch_timestamp
    }

    /// Kafka's `largestTimestamp`, what time retention compares: the largest batch
    /// timestamp, or the file's modification time when no batch has one.
    pub fn largest_timestamp_ms(&self) -> Result<i64> {
        if self.max_timestamp > NO_TIMESTAMP {
            return Ok(self.max_timestamp);
        }
        let modified = self.log.metadata()?.modified()?;
        Ok(modified
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64))
    }

    /// True when either index has no room for more entries.
    pub fn indexes_full(&self) -> bool {
        self.offset_index.is_full() || self.time_index.is_full()
    }

    pub(super) fn corrupt(&self, reason: String) -> Error {
        Error::Corrupt {
            path: self.log_path.clone(),
            reason,
        }
    }

    /// Index bookkeeping for a batch now stored at `position_bytes`.
    fn on_batch_stored(&mut self, h: &BatchHeader, position_bytes: u64) {
        // Compaction leaves gaps, so only growth is an invariant (dense in the active
        // segment, which the partition checks).
        debug_assert!(h.base_offset >= self.next_offset, "offsets must increase");
        if position_bytes == 0 {
            self.first_batch_timestamp = h.max_timestamp;
        }
        if h.max_timestamp > self.max_timestamp {
            self.max_timestamp = h.max_timestamp;
            self.offset_of_max_timestamp = h.base_offset;
        }
        if self.bytes_since_index_entry >= self.index_interval_bytes && position_bytes > 0 {
            // The partition rolls before 4 GiB, so positions fit u32; only one huge request
            // in a fresh segment could pass it, and then lookups just walk further.
            if let Ok(position) = u32::try_from(position_bytes)
                && self.offset_index.append(h.base_offset, position)
            {
                self.time_index.maybe_append(
                    self.max_timestamp,
                    self.offset_of_max_timestamp,
                    false,
                );
            }
            self.bytes_since_index_entry = 0;
        }
        self.bytes_since_index_entry += h.total_bytes() as u64;
        self.next_offset = h.next_offset();
    }

    /// Writes `buf` (the batches described by `headers`, offsets already assigned) at the
    /// end of the file and indexes them. On a failed write the file is cut back so the
    /// segment is unchanged.
    pub fn append(&mut self, buf: &[u8], headers: &[BatchHeader]) -> Result<()> {
        debug_assert_eq!(
            headers.iter().map(|h| h.total_bytes()).sum::<usize>(),
            buf.len()
        );
        if let Err(e) = self.log.write_all_at(buf, self.size_bytes) {
            let _ = self.log.set_len(self.size_bytes);
            return Err(e.into());
        }
        let mut position_bytes = self.size_bytes;
        for h in headers {
            self.on_batch_stored(h, position_bytes);
            position_bytes += h.total_bytes() as u64;
        }
        self.size_bytes = position_bytes;
        Ok(())
    }

    /// Copies `len` bytes at `position_bytes` out of the file.
    pub fn read_bytes(&self, position_bytes: u64, len: usize) -> Result<Bytes> {
        debug_assert!(position_bytes + len as u64 <= self.size_bytes);
        Ok(pread_exact(&self.log, position_bytes, len)?.freeze())
    }

    /// A handle on `len` bytes at `position_bytes`, to be read (or sent) later.
    pub fn slice(&self, position_bytes: u64, len: usize) -> FileSlice {
        debug_assert!(position_bytes + len as u64 <= self.size_bytes);
        FileSlice { file: self.log.clone(), position_bytes, len }
    }

    /// Where the whole batches from `position_bytes` (a batch start) end when they must
    /// end by `limit_bytes` and start below `max_offset`, with the offset after the last
    /// of them; `None` if not even the first qualifies. Only headers are read: the offset
    /// index skips to the last indexed batch within both bounds, the rest is walked.
    pub fn batches_end(&self, position_bytes: u64, limit_bytes: u64, max_offset: i64) -> Result<Option<(u64, i64)>> {
        // Entries are increasing in both offset and position, so the ones within both
        // bounds are a prefix.
        let within = |i: usize| {
            let (offset, position) = self.offset_index.get(i);
            u64::from(position) <= limit_bytes && offset < max_offset
        };
        let (mut lo, mut hi) = (0usize, self.offset_index.entries());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if within(mid) { lo = mid + 1 } else { hi = mid }
        }
        // The batch an entry points at starts within the bounds, so every batch before it
        // (from `position_bytes` on) is returned; `skipped_next` is the entry's offset,
        // which is the next offset after them (or past a compaction gap after them).
        let mut walk_from = position_bytes;
        let mut end = None;
        if lo > 0 {
            let (offset, position) = self.offset_index.get(lo - 1);
            if u64::from(position) > position_bytes {
                walk_from = u64::from(position);
                end = Some((walk_from, offset));
            }
        }
        let mut reader = self.reader(LOCATE_CHUNK_BYTES);
        let mut at = walk_from;
        loop {
            match reader.header_at(at)? {
                HeaderAt::Batch(h) if h.base_offset < max_offset && at + h.total_bytes() as u64 <= limit_bytes => {
                    at += h.total_bytes() as u64;
                    end = Some((at, h.next_offset()));
                }
                HeaderAt::Batch(_) | HeaderAt::End | HeaderAt::Torn => return Ok(end),
                HeaderAt::Corrupt(reason) => return Err(self.corrupt(reason)),
            }
        }
    }

    /// A reader over the segment's whole batches.
    pub fn reader(&self, chunk_bytes: usize) -> ChunkReader<'_> {
        ChunkReader::new(&self.log, self.size_bytes, chunk_bytes)
    }

    /// A reader for walking the segment's batch headers ([`ChunkReader::header_walk`]).
    fn header_reader(&self) -> ChunkReader<'_> {
        ChunkReader::header_walk(&self.log, self.size_bytes)
    }

    /// The batch containing `offset` and its position, found through the offset index
    /// and a short forward walk; `None` if `offset` is not in this segment.
    pub fn locate(&self, offset: i64) -> Result<Option<(BatchHeader, u64)>> {
        if offset < self.base_offset || offset >= self.next_offset {
            return Ok(None);
        }
        let (_, start) = self.offset_index.lookup(offset);
        let mut reader = self.reader(LOCATE_CHUNK_BYTES);
        let mut position_bytes = u64::from(start);
        loop {
            match reader.header_at(position_bytes)? {
                HeaderAt::Batch(h) if h.last_offset() >= offset => {
                    return Ok(Some((h, position_bytes)));
                }
                HeaderAt::Batch(h) => position_bytes += h.total_bytes() as u64,
                HeaderAt::End | HeaderAt::Torn => {
                    return Err(self.corrupt(format!(
                        "offset {offset} not found below {}",
                        self.next_offset
                    )));
                }
                HeaderAt::Corrupt(reason) => return Err(self.corrupt(reason)),
            }
        }
    }

    /// Calls `f` with every batch header from `position_bytes` to the end (structural
    /// walk, no CRC). Stops early when `f` returns false.
    pub fn walk_headers(
        &self,
        position_bytes: u64,
        mut f: impl FnMut(&BatchHeader, u64) -> bool,
    ) -> Result<()> {
        let mut reader = self.header_reader();
        let mut position_bytes = position_bytes;
        loop {
            match reader.header_at(position_bytes)? {
                HeaderAt::Batch(h) => {
                    if !f(&h, position_bytes) {
                        return Ok(());
                    }
                    position_bytes += h.total_bytes() as u64;
                }
                HeaderAt::End => return Ok(()),
                HeaderAt::Torn => {
                    return Err(self.corrupt(format!("torn batch at {position_bytes}")));
                }
                HeaderAt::Corrupt(reason) => return Err(self.corrupt(reason)),
            }
        }
    }

    /// [`Self::walk_headers`] over every batch from `position_bytes`, with a control
    /// batch's bytes (a marker's key says commit or abort, its value carries the
    /// coordinator epoch): one small read per marker; data batches are known by header.
    pub fn walk_headers_with_markers(
        &self,
        position_bytes: u64,
        mut f: impl FnMut(&BatchHeader, Option<&[u8]>),
    ) -> Result<()> {
        let mut failed = None;
        self.walk_headers(position_bytes, |h, at| {
            if !h.is_control() {
                f(h, None);
                return true;
            }
            match self.read_bytes(at, h.total_bytes()) {
                Ok(marker) => {
                    f(h, Some(&marker));
                    true
                }
                Err(e) => {
                    failed = Some(e);
                    false
                }
            }
        })?;
        failed.map_or(Ok(()), Err)
    }

    /// Loads a segment the checkpoint says was durable: checks both indexes, then walks
    /// headers from the last index entry to the end to learn `next_offset`. Returns false
    /// (and leaves the caller to run [`Segment::recover`]) if anything looks wrong.
    pub fn load_trusted(&mut self, offset_bound: i64) -> Result<bool> {
        if self
            .offset_index
            .sanity_check(offset_bound, self.size_bytes)
            .is_err()
            || self.time_index.sanity_check(offset_bound).is_err()
        {
            return Ok(false);
        }
        let (mut next_offset, start) = self
            .offset_index
            .last_entry()
            .unwrap_or((self.base_offset, 0));
        let mut position_bytes = u64::from(start);
        let mut reader = self.header_reader();
        loop {
            match reader.header_at(position_bytes)? {
                HeaderAt::Batch(h) if h.base_offset >= next_offset && h.last_offset_delta >= 0 => {
                    next_offset = h.next_offset();
                    position_bytes += h.total_bytes() as u64;
                }
                HeaderAt::End => break,
                _ => return Ok(false),
            }
        }
        if next_offset > offset_bound {
            return Ok(false);
        }
        let first_batch_timestamp = match reader.header_at(0)? {
            HeaderAt::Batch(first) => first.max_timestamp,
            _ => NO_TIMESTAMP,
        };
        self.first_batch_timestamp = first_batch_timestamp;
        self.next_offset = next_offset;
        self.bytes_since_index_entry = position_bytes - u64::from(start);
        // The last time-index entry is the segment's maximum (sealing writes it); check
        // it against the batch it names.
        if let Some((ts, offset)) = self.time_index.last_entry() {
            match self.locate(offset) {
                Ok(Some((h, _))) if h.base_offset == offset && h.max_timestamp == ts => {
                    self.max_timestamp = ts;
                    self.offset_of_max_timestamp = offset;
                }
                _ => return Ok(false),
            }
        } else if !self.is_empty() {
            return Ok(false);
        }
        Ok(true)
    }

    /// Rebuilds the indexes from the file and truncates it at the first bad batch.
    /// Returns true if bytes were cut off. `active` keeps the indexes preallocated.
    ///
    /// Every batch's framing and offset are checked (increasing from `base_offset`; a
    /// compacted segment has gaps). Batches wholly below `durable_below` (the recovery
    /// point: fsynced before the checkpoint naming it was written) are only walked, one
    /// header read each; the rest are read whole and CRC-checked. So recovery after a
    /// crash costs the unflushed tail, not the segment (Kafka rescans the whole segment
    /// holding the recovery point). Pass `i64::MIN` to check everything.
    pub fn recover(&mut self, active: bool, durable_below: i64) -> Result<bool> {
        self.recover_visiting(active, durable_below, &mut |_, _| Ok(()))
    }

    /// [`Self::recover`], showing `on_batch` each batch that stays (header and position)
    /// as it goes: open derives producer, transaction and epoch state from this walk
    /// instead of reading the headers again.
    pub fn recover_visiting(
        &mut self,
        active: bool,
        durable_below: i64,
        on_batch: &mut dyn FnMut(&BatchHeader, u64) -> Result<()>,
    ) -> Result<bool> {
        self.offset_index.reset(self.segment_index_bytes)?;
        self.time_index.reset(self.segment_index_bytes)?;
        self.next_offset = self.base_offset;
        self.max_timestamp = NO_TIMESTAMP;
        self.offset_of_max_timestamp = self.base_offset;
        self.first_batch_timestamp = NO_TIMESTAMP;
        self.bytes_since_index_entry = 0;
        let file_bytes = self.size_bytes;
        let mut position_bytes = 0u64;
        let mut reason = None;
        // A second handle so the readers can borrow it while indexing mutates `self`.
        let file = self.log.try_clone()?;
        let mut headers = ChunkReader::header_walk(&file, file_bytes);
        let mut whole = ChunkReader::new(&file, file_bytes, WALK_CHUNK_BYTES);
        loop {
            let in_durable_prefix = self.next_offset < durable_below;
            let reader = if in_durable_prefix { &mut headers } else { &mut whole };
            let h = match reader.header_at(position_bytes)? {
                HeaderAt::Batch(h) => h,
                HeaderAt::End => break,
                HeaderAt::Torn => {
                    reason = Some(format!("torn batch at position {position_bytes}"));
                    break;
                }
                HeaderAt::Corrupt(r) => {
                    reason = Some(format!("at position {position_bytes}: {r}"));
                    break;
                }
            };
            if h.base_offset < self.next_offset || h.last_offset_delta < 0 || h.record_count < 0 {
                reason = Some(format!(
                    "batch at position {position_bytes} has offset {}, expected at least {}",
                    h.base_offset, self.next_offset
                ));
                break;
            }
            if h.next_offset() > durable_below {
                let crc = whole.crc_of(
                    position_bytes + CRC_FROM_BYTES,
                    h.total_bytes() as u64 - CRC_FROM_BYTES,
                )?;
                if crc != h.crc {
                    reason = Some(format!("crc mismatch in batch at position {position_bytes}"));
                    break;
                }
            }
            self.on_batch_stored(&h, position_bytes);
            on_batch(&h, position_bytes)?;
            position_bytes += h.total_bytes() as u64;
        }
        let truncated = position_bytes < file_bytes;
        if truncated {
            tracing::warn!(
                path = %self.log_path.display(),
                kept_bytes = position_bytes,
                cut_bytes = file_bytes - position_bytes,
                reason = reason.as_deref().unwrap_or("unknown"),
                "truncating segment during recovery"
            );
            self.log.set_len(position_bytes)?;
        }
        self.size_bytes = position_bytes;
        if !active {
            self.seal()?;
        }
        Ok(truncated)
    }

    /// Cuts the file at `position_bytes` (a batch boundary) and rebuilds the indexes and
    /// the rest of the in-memory state from what remains, as an active segment.
    /// Truncation is rare (a follower whose log diverged from the leader's), so a rescan
    /// of one segment is preferred to trimming each index and recomputing the maximum
    /// timestamp by hand; it also re-verifies what stays. The caller syncs.
    pub fn truncate_at(&mut self, position_bytes: u64) -> Result<()> {
        assert!(position_bytes <= self.size_bytes, "truncation never grows a segment");
        self.log.set_len(position_bytes)?;
        self.size_bytes = position_bytes;
        if self.recover(true, i64::MIN)? {
            // Only a batch corrupted on disk since it was written gets here.
            tracing::warn!(path = %self.log_path.display(), "segment cut further while truncating");
        }
        Ok(())
    }

    /// Makes this segment read-only: writes the final time-index entry (the segment's
    /// maximum timestamp) and trims both index files to their entries.
    pub fn seal(&mut self) -> Result<()> {
        self.time_index
            .maybe_append(self.max_timestamp, self.offset_of_max_timestamp, true);
        self.offset_index.trim()?;
        self.time_index.trim()?;
        Ok(())
    }

    /// Turns a sealed segment back into an active one (its indexes regain capacity).
    pub fn unseal(&mut self) -> Result<()> {
        self.offset_index.set_capacity(self.segment_index_bytes)?;
        self.time_index.set_capacity(self.segment_index_bytes)?;
        Ok(())
    }

    /// fsyncs the log file and both indexes.
    pub fn sync_all(&self) -> Result<()> {
        self.log.sync_all()?;
        self.offset_index.sync()?;
        self.time_index.sync()?;
        Ok(())
    }

    /// First step of a crash-safe deletion: renames the log file, then both indexes, to
    /// `<name>.deleted` (recovery removes such files and indexes left without a log
    /// file, so a crash between the renames is harmless) and closes them. Returns the
    /// new paths for [`remove_deleted_files`].
    pub fn rename_to_deleted(self) -> Result<Vec<PathBuf>> {
        let paths = [
            self.log_path.clone(),
            self.offset_index.path().to_path_buf(),
            self.time_index.path().to_path_buf(),
        ];
        drop(self); // unmap the indexes and close the log file first
        let mut renamed = Vec::with_capacity(paths.len());
        for p in paths {
            let mut name = p.clone().into_os_string();
            name.push(DELETED_SUFFIX);
            let target = PathBuf::from(name);
            match std::fs::rename(&p, &target) {
                Ok(()) => renamed.push(target),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(renamed)
    }

    /// Removes the segment's files.
    pub fn delete_files(self) -> Result<()> {
        let paths = [
            self.log_path.clone(),
            self.offset_index.path().to_path_buf(),
            self.time_index.path().to_path_buf(),
        ];
        drop(self);
        for p in paths {
            match std::fs::remove_file(&p) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e.into()),
                _ => {}
            }
        }
        Ok(())
    }
}
