//! A response frame as a list of chunks, so that a Fetch response's record sets are
//! written to the socket straight from the segment files (`sendfile`) or from the
//! buffers the log read them into (vectored writes), never copied into one response
//! buffer first.
//!
//! The kafka-protocol crate encodes the whole response, records included: it writes a
//! record set with one `put_slice` of the `Bytes` we gave it. [`SpliceBuf`] is the buffer
//! it encodes into; when a `put_slice` is exactly (same address, same length) the next
//! record set we expect, it keeps that record set at that position instead of copying
//! it. A record set left in its file is given to the crate as a [`placeholder`] of its
//! length (a slice of one static zero buffer, never read), so that the crate writes its
//! length prefix; the file range takes its place. Every other byte, length prefixes of
//! the records included, is the crate's own encoding; `tests` checks that the chunks
//! concatenate to `encode_frame`'s bytes.

use std::ops::Range;

use bytes::{BufMut, Bytes, BytesMut, buf::UninitSlice};
use kafka_protocol::messages::FetchResponse;
use kafka_protocol::protocol::buf::ByteBufMut;
use kafka_protocol::protocol::{Encodable, HeaderVersion};

use super::dispatch::{DispatchError, encode_frame};
use crate::log::FileSlice;

/// Record sets smaller than this are copied into the frame: a separate iovec (or a
/// `sendfile` call) costs more than copying a few KiB.
pub const SPLICE_MIN_BYTES: usize = 4096;

/// The largest record set that can stay in its file (a larger one is read into memory):
/// the size of the zero buffer placeholders are cut from. It is in `.bss` and never
/// touched, so it costs address space, not memory (nor binary size).
pub const PLACEHOLDER_MAX_BYTES: usize = 256 << 20;

/// An immutable zero `static` would go to `.rodata`, i.e. into the binary; interior
/// mutability puts it in `.bss`. Nothing ever writes it.
struct Zeros(std::cell::UnsafeCell<[u8; PLACEHOLDER_MAX_BYTES]>);
// SAFETY: never written, so shared reads from any thread are fine.
unsafe impl Sync for Zeros {}
static ZEROS: Zeros = Zeros(std::cell::UnsafeCell::new([0; PLACEHOLDER_MAX_BYTES]));

fn zeros() -> &'static [u8; PLACEHOLDER_MAX_BYTES] {
    // SAFETY: no `&mut` to ZEROS is ever made (see `Zeros`).
    unsafe { &*ZEROS.0.get() }
}

/// Stands in, in a response, for a record set of `len` bytes left in its file; `None`
/// when too large for one.
pub fn placeholder(len: usize) -> Option<Bytes> {
    (len <= PLACEHOLDER_MAX_BYTES).then(|| Bytes::from_static(&zeros()[..len]))
}

fn is_placeholder(b: &Bytes) -> bool {
    b.as_ptr() == zeros().as_ptr()
}

/// A piece of a response frame.
pub enum Chunk {
    Bytes(Bytes),
    /// Sent from the file (`sendfile`).
    File(FileSlice),
}

impl Chunk {
    pub fn len(&self) -> usize {
        match self {
            Chunk::Bytes(b) => b.len(),
            Chunk::File(f) => f.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A complete response frame (size prefix, header, body).
pub enum Frame {
    One(Bytes),
    /// In order; none empty.
    Chunks(Vec<Chunk>),
}

impl Frame {
    pub fn len(&self) -> usize {
        match self {
            Frame::One(b) => b.len(),
            Frame::Chunks(c) => c.iter().map(Chunk::len).sum(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The frame as one buffer, file ranges read (for tests and diagnostics).
    pub fn to_bytes(&self) -> std::io::Result<Bytes> {
        match self {
            Frame::One(b) => Ok(b.clone()),
            Frame::Chunks(c) => {
                let mut out = BytesMut::with_capacity(self.len());
                for chunk in c {
                    match chunk {
                        Chunk::Bytes(b) => out.extend_from_slice(b),
                        Chunk::File(f) => out.extend_from_slice(&f.read()?),
                    }
                }
                Ok(out.freeze())
            }
        }
    }
}

/// `resp` with its placeholders replaced by the bytes of `files` (in order): for when
/// the response cannot be sent in chunks.
fn with_records_read(resp: &FetchResponse, files: &[FileSlice]) -> Result<FetchResponse, DispatchError> {
    let mut resp = resp.clone();
    let mut files = files.iter();
    for records in resp.responses.iter_mut().flat_map(|t| &mut t.partitions).filter_map(|p| p.records.as_mut()) {
        if is_placeholder(records) {
            let file = files.next().ok_or(DispatchError::Encode(anyhow::anyhow!("placeholder without a file range")))?;
            *records = file.read().map_err(DispatchError::ReadRecords)?;
        }
    }
    Ok(resp)
}

/// Encodes a Fetch response frame with its larger record sets left as separate chunks.
/// `files` are the file ranges of the response's placeholders, in the order the
/// partitions appear.
pub fn encode_fetch_frame(correlation_id: i32, version: i16, resp: &FetchResponse, files: &[FileSlice]) -> Result<Frame, DispatchError> {
    let header_version = FetchResponse::header_version(version);
    let spliced: Vec<&Bytes> = resp
        .responses
        .iter()
        .flat_map(|t| &t.partitions)
        .filter_map(|p| p.records.as_ref())
        .filter(|r| r.len() >= SPLICE_MIN_BYTES || is_placeholder(r))
        .collect();
    let placeholders = spliced.iter().filter(|r| is_placeholder(r)).count();
    if placeholders != files.len() || spliced.iter().filter(|r| is_placeholder(r)).zip(files).any(|(r, f)| r.len() != f.len()) {
        return Err(DispatchError::Encode(anyhow::anyhow!("fetch response placeholders do not match its file ranges")));
    }
    if spliced.is_empty() {
        return encode_frame(correlation_id, version, header_version, resp).map(Frame::One);
    }
    let spliced_bytes: usize = spliced.iter().map(|r| r.len()).sum();
    let body_len = resp.compute_size(version).map_err(DispatchError::Encode)?;
    let header_len = if header_version >= 1 { 5 } else { 4 };
    let mut buf = SpliceBuf {
        head: BytesMut::with_capacity(4 + header_len + body_len - spliced_bytes),
        expected: spliced.iter(),
        splices: Vec::with_capacity(spliced.len()),
    };
    buf.head.put_i32((header_len + body_len) as i32);
    buf.head.put_i32(correlation_id);
    if header_version >= 1 {
        buf.head.put_u8(0); // no tagged fields
    }
    resp.encode(&mut buf, version).map_err(DispatchError::Encode)?;
    if buf.splices.len() != spliced.len() || buf.head.len() + spliced_bytes != 4 + header_len + body_len {
        // The crate wrote a record set other than through one put_slice of its bytes: the
        // chunks would be wrong, so encode the plain way.
        tracing::error!("fetch response records were not spliced; encoding flat");
        let resp = with_records_read(resp, files)?;
        return encode_frame(correlation_id, version, header_version, &resp).map(Frame::One);
    }
    let head = buf.head.freeze();
    let mut chunks = Vec::with_capacity(2 * buf.splices.len() + 1);
    let mut files = files.iter();
    let mut from = 0;
    for (at, records) in buf.splices {
        if at > from {
            chunks.push(Chunk::Bytes(head.slice(from..at)));
        }
        let file = if is_placeholder(&records) { files.next() } else { None };
        match file {
            Some(file) => chunks.push(Chunk::File(file.clone())),
            None => chunks.push(Chunk::Bytes(records)),
        }
        from = at;
    }
    if from < head.len() {
        chunks.push(Chunk::Bytes(head.slice(from..)));
    }
    Ok(Frame::Chunks(chunks))
}

/// The buffer the crate encodes a Fetch response into: everything but the spliced record
/// sets goes into `head`; `splices` says where in `head` each record set belongs.
struct SpliceBuf<'a> {
    head: BytesMut,
    /// The record sets to splice, in the order the crate encodes them.
    expected: std::slice::Iter<'a, &'a Bytes>,
    splices: Vec<(usize, Bytes)>,
}

// SAFETY: every method that hands out or commits uninitialised memory is `head`'s own.
unsafe impl BufMut for SpliceBuf<'_> {
    fn remaining_mut(&self) -> usize {
        self.head.remaining_mut()
    }

    unsafe fn advance_mut(&mut self, cnt: usize) {
        // SAFETY: the caller's guarantee for `self` is the one `head` needs.
        unsafe { self.head.advance_mut(cnt) }
    }

    fn chunk_mut(&mut self) -> &mut UninitSlice {
        self.head.chunk_mut()
    }

    fn put_slice(&mut self, src: &[u8]) {
        // Identity, not content: the crate is handing us back the very Bytes we gave it.
        if let Some(next) = self.expected.as_slice().first()
            && src.as_ptr() == next.as_ptr()
            && src.len() == next.len()
        {
            self.splices.push((self.head.len(), (*next).clone()));
            self.expected.next();
            return;
        }
        self.head.extend_from_slice(src);
    }
}

impl ByteBufMut for SpliceBuf<'_> {
    // The crate's messages never seek back (no gaps); offsets are `head`'s, which is
    // right for any gap that does not span a spliced record set.
    fn offset(&self) -> usize {
        self.head.len()
    }

    fn seek(&mut self, offset: usize) {
        ByteBufMut::seek(&mut self.head, offset)
    }

    fn range(&mut self, r: Range<usize>) -> &mut [u8] {
        ByteBufMut::range(&mut self.head, r)
    }
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::fetch_response::{AbortedTransaction, EpochEndOffset, FetchableTopicResponse, PartitionData};
    use kafka_protocol::messages::{ProducerId, TopicName};
    use kafka_protocol::protocol::StrBytes;

    use super::*;

    fn records(len: usize, seed: u8) -> Bytes {
        Bytes::from((0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect::<Vec<_>>())
    }

    fn response(version: i16) -> FetchResponse {
        let mut topics = Vec::new();
        for t in 0..3u8 {
            let mut topic = FetchableTopicResponse::default();
            if version >= 13 {
                topic.topic_id = uuid::Uuid::from_bytes([t + 1; 16]);
            } else {
                topic.topic = TopicName(StrBytes::from_string(format!("topic-{t}")));
            }
            for p in 0..4 {
                let mut pd = PartitionData::default()
                    .with_partition_index(p)
                    .with_high_watermark(1000 + p as i64)
                    .with_last_stable_offset(900)
                    .with_log_start_offset(7);
                pd.records = match p {
                    0 => Some(records(SPLICE_MIN_BYTES + 100 * t as usize, t)),
                    1 => Some(records(100, t)),            // small: copied
                    2 => None,                              // null
                    _ => Some(records(300_000 + p as usize, p as u8)),
                };
                if p == 3 {
                    pd.aborted_transactions = Some(vec![AbortedTransaction::default().with_producer_id(ProducerId(5)).with_first_offset(3)]);
                    if version >= 12 {
                        pd.diverging_epoch = EpochEndOffset::default().with_epoch(4).with_end_offset(99);
                    }
                }
                topic.partitions.push(pd);
            }
            topics.push(topic);
        }
        FetchResponse::default().with_responses(topics)
    }

    #[test]
    fn chunks_concatenate_to_the_crates_encoding() {
        for version in [4, 7, 11, 12, 13, 15, 16] {
            let resp = response(version);
            let flat = encode_frame(17, version, FetchResponse::header_version(version), &resp).unwrap();
            let frame = encode_fetch_frame(17, version, &resp, &[]).unwrap();
            let Frame::Chunks(chunks) = &frame else { panic!("v{version}: expected chunks") };
            assert_eq!(frame.to_bytes().unwrap(), flat, "v{version}");
            assert!(chunks.iter().all(|c| !c.is_empty()));
            let chunks: Vec<&Bytes> = chunks.iter().map(|c| match c { Chunk::Bytes(b) => b, Chunk::File(_) => panic!("no files given") }).collect();
            // Each large record set is its own chunk, sharing the read buffer (no copy).
            let big: Vec<&Bytes> = resp.responses.iter().flat_map(|t| &t.partitions).filter_map(|p| p.records.as_ref()).filter(|r| r.len() >= SPLICE_MIN_BYTES).collect();
            assert_eq!(big.len(), 6);
            for r in big {
                assert!(chunks.iter().any(|c| c.as_ptr() == r.as_ptr() && c.len() == r.len()), "v{version}");
            }
        }
    }

    #[test]
    fn small_or_no_records_are_one_buffer() {
        let mut resp = response(12);
        for pd in resp.responses.iter_mut().flat_map(|t| &mut t.partitions) {
            if pd.records.as_ref().is_some_and(|r| r.len() >= SPLICE_MIN_BYTES) {
                pd.records = Some(Bytes::from_static(b"tiny"));
            }
        }
        let frame = encode_fetch_frame(3, 12, &resp, &[]).unwrap();
        assert!(matches!(frame, Frame::One(_)));
        assert_eq!(frame.to_bytes().unwrap(), encode_frame(3, 12, FetchResponse::header_version(12), &resp).unwrap());
    }

    #[test]
    fn the_same_records_twice_are_spliced_twice() {
        // Two partitions answering with the same Bytes (same address): both are spliced,
        // each at its own place.
        let shared = records(10_000, 9);
        let mut resp = response(11);
        for pd in resp.responses.iter_mut().flat_map(|t| &mut t.partitions) {
            if pd.records.as_ref().is_some_and(|r| r.len() >= SPLICE_MIN_BYTES) {
                pd.records = Some(shared.clone());
            }
        }
        let frame = encode_fetch_frame(3, 11, &resp, &[]).unwrap();
        assert_eq!(frame.to_bytes().unwrap(), encode_frame(3, 11, FetchResponse::header_version(11), &resp).unwrap());
        let Frame::Chunks(chunks) = frame else { panic!("expected chunks") };
        assert_eq!(chunks.iter().filter(|c| matches!(c, Chunk::Bytes(b) if b.as_ptr() == shared.as_ptr())).count(), 6);
    }

    /// `resp` with its large record sets moved into a file: the response with
    /// placeholders, and the file ranges.
    fn in_file(resp: &FetchResponse) -> (FetchResponse, Vec<FileSlice>) {
        use std::io::Write;
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(b"some bytes before").unwrap();
        let mut at = 17u64;
        let mut ranges = Vec::new();
        for r in resp.responses.iter().flat_map(|t| &t.partitions).filter_map(|p| p.records.as_ref()).filter(|r| r.len() >= SPLICE_MIN_BYTES) {
            file.write_all(r).unwrap();
            ranges.push((at, r.len()));
            at += r.len() as u64;
        }
        file.write_all(b"and after").unwrap();
        let file = std::sync::Arc::new(file);
        let files: Vec<FileSlice> = ranges.iter().map(|&(at, len)| FileSlice::new(file.clone(), at, len)).collect();
        let mut with = resp.clone();
        for r in with.responses.iter_mut().flat_map(|t| &mut t.partitions).filter_map(|p| p.records.as_mut()).filter(|r| r.len() >= SPLICE_MIN_BYTES) {
            *r = placeholder(r.len()).unwrap();
        }
        (with, files)
    }

    #[test]
    fn file_ranges_take_the_placeholders_places() {
        for version in [4, 7, 11, 12, 13, 15, 16] {
            let resp = response(version);
            let flat = encode_frame(17, version, FetchResponse::header_version(version), &resp).unwrap();
            let (with, files) = in_file(&resp);
            assert_eq!(files.len(), 6);
            let frame = encode_fetch_frame(17, version, &with, &files).unwrap();
            // The crate saw records of the right lengths; the file's bytes replace the zeros.
            assert_eq!(frame.to_bytes().unwrap(), flat, "v{version}");
            let Frame::Chunks(chunks) = &frame else { panic!("v{version}: expected chunks") };
            assert!(chunks.iter().all(|c| !c.is_empty()));
            let sent: Vec<(u64, usize)> = chunks.iter().filter_map(|c| match c { Chunk::File(f) => Some((f.position_bytes(), f.len())), Chunk::Bytes(_) => None }).collect();
            let given: Vec<(u64, usize)> = files.iter().map(|f| (f.position_bytes(), f.len())).collect();
            assert_eq!(sent, given, "v{version}: every range, in order");
            // And the flat fallback reads them.
            assert_eq!(encode_frame(17, version, FetchResponse::header_version(version), &with_records_read(&with, &files).unwrap()).unwrap(), flat);
        }
    }

    #[test]
    fn file_ranges_mixed_with_buffers() {
        // Some large record sets in memory (e.g. over the placeholder size), some in files.
        let resp = response(12);
        let flat = encode_frame(5, 12, FetchResponse::header_version(12), &resp).unwrap();
        let (mut with, mut files) = in_file(&resp);
        let originals: Vec<Bytes> = resp.responses.iter().flat_map(|t| &t.partitions).filter_map(|p| p.records.clone()).filter(|r| r.len() >= SPLICE_MIN_BYTES).collect();
        let mut kept = Vec::new();
        for (i, r) in with.responses.iter_mut().flat_map(|t| &mut t.partitions).filter_map(|p| p.records.as_mut()).filter(|r| is_placeholder(r)).enumerate() {
            if i % 2 == 0 {
                *r = originals[i].clone();
            } else {
                kept.push(files[i].clone());
            }
        }
        files = kept;
        let frame = encode_fetch_frame(5, 12, &with, &files).unwrap();
        assert_eq!(frame.to_bytes().unwrap(), flat);
        let Frame::Chunks(chunks) = &frame else { panic!("expected chunks") };
        assert_eq!(chunks.iter().filter(|c| matches!(c, Chunk::File(_))).count(), 3);
    }

    #[test]
    fn placeholders_without_their_files_are_refused() {
        let (with, files) = in_file(&response(12));
        assert!(encode_fetch_frame(5, 12, &with, &files[1..]).is_err());
        let mut wrong = files.clone();
        wrong[0] = FileSlice::new(std::sync::Arc::new(tempfile::tempfile().unwrap()), 0, files[0].len() + 1);
        assert!(encode_fetch_frame(5, 12, &with, &wrong).is_err());
        assert!(placeholder(PLACEHOLDER_MAX_BYTES + 1).is_none());
    }
}
