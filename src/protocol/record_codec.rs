//! Our own v2 record codec: the records inside a batch, decoded from (and encoded back
//! to) raw bytes. The log cleaner needs it to drop superseded records and rewrite a
//! batch; ListOffsets by timestamp needs record timestamps. Keys, values and headers
//! stay borrowed slices of the decompressed bytes: headers are kept raw, so repeated
//! header keys survive byte for byte (the `kafka-protocol` crate's record type holds
//! headers in a map and would collapse them).
//!
//! Every length read from the data is checked against the bytes that remain, and a
//! compressed batch may only decompress to `limit_bytes`, so hostile input gives an
//! error, never a panic or an unbounded allocation.
//!
//! Record layout (all varints zigzag): `length varint, attributes i8, timestampDelta
//! varlong, offsetDelta varint, keyLength varint (-1 = null), key, valueLength varint
//! (-1 = null: a tombstone), value, headerCount varint, headers`.

use std::io::{Read, Write};

use super::records::{BATCH_HEADER_BYTES, BatchHeader, LOG_OVERHEAD, RecordsError};

/// Attribute bit (KIP-534) saying `baseTimestamp` holds the batch's delete horizon.
pub const DELETE_HORIZON_BIT: i16 = 1 << 6;
/// xerial snappy-java's stream magic (Java producers frame snappy this way).
const XERIAL_MAGIC: &[u8] = b"\x82SNAPPY\x00";
/// The whole xerial header: magic, version 1, compatible version 1.
const XERIAL_HEADER: &[u8; 16] = b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01";
/// snappy-java's block size; blocks are compressed independently.
const XERIAL_BLOCK_BYTES: usize = 32 * 1024;

fn corrupt(reason: impl Into<String>) -> RecordsError {
    RecordsError::CorruptMessage {
        reason: reason.into(),
    }
}

/// One record of a batch, borrowing from the batch's (decompressed) record bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    pub attributes: i8,
    pub timestamp_delta: i64,
    pub offset_delta: i32,
    pub key: Option<&'a [u8]>,
    /// `None`: a tombstone.
    pub value: Option<&'a [u8]>,
    /// From the header count through the last header, as stored.
    pub headers_raw: &'a [u8],
}

impl Record<'_> {
    /// The record's absolute offset in a batch starting at `base_offset`.
    pub fn offset(&self, base_offset: i64) -> i64 {
        base_offset + i64::from(self.offset_delta)
    }
}

/// The records of one batch: the decompressed record bytes and the header.
pub struct DecodedBatch {
    pub header: BatchHeader,
    data: Vec<u8>,
}

impl DecodedBatch {
    /// Decodes the records of the one whole batch `batch` (CRC not checked here),
    /// decompressing into at most `limit_bytes`.
    pub fn decode(batch: &[u8], limit_bytes: usize) -> Result<DecodedBatch, RecordsError> {
        let header = BatchHeader::parse(batch)?;
        if header.total_bytes() > batch.len() {
            return Err(corrupt("batch runs past its buffer"));
        }
        let body = &batch[BATCH_HEADER_BYTES..header.total_bytes()];
        let data = decompress(header.compression(), body, limit_bytes)?;
        let decoded = DecodedBatch { header, data };
        decoded.check()?;
        Ok(decoded)
    }

    /// Walks every record once so that [`Self::records`] can only yield valid ones.
    fn check(&self) -> Result<(), RecordsError> {
        let mut n = 0i64;
        for r in self.iter() {
            let r = r?;
            if r.offset_delta < 0 || r.offset_delta > self.header.last_offset_delta {
                return Err(corrupt(format!("record offset delta {} out of range", r.offset_delta)));
            }
            n += 1;
        }
        if n != i64::from(self.header.record_count) {
            return Err(corrupt(format!("batch holds {n} records, header says {}", self.header.record_count)));
        }
        Ok(())
    }

    fn iter(&self) -> RecordIter<'_> {
        RecordIter {
            rest: &self.data,
            left: self.header.record_count.max(0),
        }
    }

    /// The batch's records, in order (validated by `decode`).
    pub fn records(&self) -> impl Iterator<Item = Record<'_>> {
        self.iter().map_while(Result::ok)
    }

    /// Absolute timestamp of `r` as a consumer sees it: the batch's max timestamp with
    /// LogAppendTime, else base timestamp plus the record's delta.
    pub fn timestamp_of(&self, r: &Record<'_>) -> i64 {
        if self.header.is_log_append_time() {
            self.header.max_timestamp
        } else {
            self.header.base_timestamp.saturating_add(r.timestamp_delta)
        }
    }

    /// The delete horizon (KIP-534) the batch carries, if any.
    pub fn delete_horizon_ms(&self) -> Option<i64> {
        delete_horizon_ms(&self.header)
    }
}

pub fn delete_horizon_ms(h: &BatchHeader) -> Option<i64> {
    (h.attributes & DELETE_HORIZON_BIT != 0).then_some(h.base_timestamp)
}

struct RecordIter<'a> {
    rest: &'a [u8],
    left: i32,
}

impl<'a> Iterator for RecordIter<'a> {
    type Item = Result<Record<'a>, RecordsError>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.left <= 0 {
            return None;
        }
        self.left -= 1;
        let r = parse_record(&mut self.rest);
        if r.is_err() {
            self.left = 0;
        }
        Some(r)
    }
}

fn read_varlong(buf: &mut &[u8]) -> Result<i64, RecordsError> {
    let mut raw = 0u64;
    for i in 0..10 {
        let (&b, rest) = buf.split_first().ok_or_else(|| corrupt("varint cut short"))?;
        *buf = rest;
        raw |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64));
        }
    }
    Err(corrupt("varint longer than 10 bytes"))
}

fn read_varint(buf: &mut &[u8]) -> Result<i32, RecordsError> {
    i32::try_from(read_varlong(buf)?).map_err(|_| corrupt("varint out of i32 range"))
}

fn take<'a>(buf: &mut &'a [u8], n: usize) -> Result<&'a [u8], RecordsError> {
    if n > buf.len() {
        return Err(corrupt(format!("length {n} runs past the {} bytes left", buf.len())));
    }
    let (head, rest) = buf.split_at(n);
    *buf = rest;
    Ok(head)
}

/// A varint length, then that many bytes; -1 is null.
fn read_nullable<'a>(buf: &mut &'a [u8]) -> Result<Option<&'a [u8]>, RecordsError> {
    match read_varint(buf)? {
        -1 => Ok(None),
        n if n < 0 => Err(corrupt(format!("negative length {n}"))),
        n => take(buf, n as usize).map(Some),
    }
}

fn parse_record<'a>(buf: &mut &'a [u8]) -> Result<Record<'a>, RecordsError> {
    let length = read_varint(buf)?;
    if length < 0 {
        return Err(corrupt(format!("negative record length {length}")));
    }
    let mut body = take(buf, length as usize)?;
    let (&attributes, rest) = body.split_first().ok_or_else(|| corrupt("empty record"))?;
    body = rest;
    let timestamp_delta = read_varlong(&mut body)?;
    let offset_delta = read_varint(&mut body)?;
    let key = read_nullable(&mut body)?;
    let value = read_nullable(&mut body)?;
    let headers_raw = body;
    let count = read_varint(&mut body)?;
    // Each header takes at least two bytes (two length varints).
    if count < 0 || count as usize > body.len() / 2 + 1 {
        return Err(corrupt(format!("bad header count {count}")));
    }
    for _ in 0..count {
        match read_varint(&mut body)? {
            n if n < 0 => return Err(corrupt("null or negative header key length")),
            n => take(&mut body, n as usize)?,
        };
        read_nullable(&mut body)?;
    }
    if !body.is_empty() {
        return Err(corrupt(format!("{} stray bytes after the record's headers", body.len())));
    }
    Ok(Record {
        attributes: attributes as i8,
        timestamp_delta,
        offset_delta,
        key,
        value,
        headers_raw,
    })
}

fn write_varlong(out: &mut Vec<u8>, v: i64) {
    let mut raw = ((v << 1) ^ (v >> 63)) as u64;
    while raw >= 0x80 {
        out.push((raw as u8 & 0x7f) | 0x80);
        raw >>= 7;
    }
    out.push(raw as u8);
}

fn write_nullable(out: &mut Vec<u8>, v: Option<&[u8]>) {
    match v {
        None => write_varlong(out, -1),
        Some(b) => {
            write_varlong(out, b.len() as i64);
            out.extend_from_slice(b);
        }
    }
}

/// Appends one record (length prefix included) to `out`.
pub fn write_record(out: &mut Vec<u8>, r: &Record<'_>) {
    let mut body = Vec::with_capacity(16 + r.key.map_or(0, <[u8]>::len) + r.value.map_or(0, <[u8]>::len) + r.headers_raw.len());
    body.push(r.attributes as u8);
    write_varlong(&mut body, r.timestamp_delta);
    write_varlong(&mut body, i64::from(r.offset_delta));
    write_nullable(&mut body, r.key);
    write_nullable(&mut body, r.value);
    body.extend_from_slice(r.headers_raw);
    write_varlong(out, body.len() as i64);
    out.extend_from_slice(&body);
}

/// What a rewritten batch keeps from its original and what changes.
#[derive(Debug, Clone, Copy)]
pub struct BatchFields {
    /// Attributes as stored (codec, timestamp type, transactional, control, horizon bit).
    pub attributes: i16,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    /// Preserved from the original so the producer's last sequence survives.
    pub last_offset_delta: i32,
}

/// Encodes a batch with the original's base offset, leader epoch and producer fields,
/// `fields`, and `records` (their offset deltas as given), compressed with the codec in
/// `fields.attributes`, with a fresh CRC.
pub fn encode_batch(
    original: &BatchHeader,
    fields: BatchFields,
    records: &[Record<'_>],
) -> Result<Vec<u8>, RecordsError> {
    let mut plain = Vec::new();
    for r in records {
        write_record(&mut plain, r);
    }
    let codec = fields.attributes & 0x07;
    let body = compress(codec, &plain)?;
    let total_bytes = BATCH_HEADER_BYTES + body.len();
    let batch_length = i32::try_from(total_bytes - LOG_OVERHEAD)
        .map_err(|_| corrupt("rewritten batch exceeds 2 GiB"))?;
    let record_count = i32::try_from(records.len()).map_err(|_| corrupt("too many records"))?;
    let mut out = Vec::with_capacity(total_bytes);
    out.extend_from_slice(&original.base_offset.to_be_bytes());
    out.extend_from_slice(&batch_length.to_be_bytes());
    out.extend_from_slice(&original.partition_leader_epoch.to_be_bytes());
    out.push(original.magic as u8);
    out.extend_from_slice(&[0; 4]); // CRC, filled below
    out.extend_from_slice(&fields.attributes.to_be_bytes());
    out.extend_from_slice(&fields.last_offset_delta.to_be_bytes());
    out.extend_from_slice(&fields.base_timestamp.to_be_bytes());
    out.extend_from_slice(&fields.max_timestamp.to_be_bytes());
    out.extend_from_slice(&original.producer_id.to_be_bytes());
    out.extend_from_slice(&original.producer_epoch.to_be_bytes());
    out.extend_from_slice(&original.base_sequence.to_be_bytes());
    out.extend_from_slice(&record_count.to_be_bytes());
    debug_assert_eq!(out.len(), BATCH_HEADER_BYTES);
    out.extend_from_slice(&body);
    let crc = super::records::compute_crc(&out);
    out[17..21].copy_from_slice(&crc.to_be_bytes());
    Ok(out)
}

/// Reads `r` to the end, failing once more than `limit_bytes` come out.
fn read_bounded(mut r: impl Read, limit_bytes: usize) -> Result<Vec<u8>, RecordsError> {
    let mut out = Vec::new();
    let cap = u64::try_from(limit_bytes).unwrap_or(u64::MAX).saturating_add(1);
    r.by_ref()
        .take(cap)
        .read_to_end(&mut out)
        .map_err(|e| corrupt(format!("decompression failed: {e}")))?;
    if out.len() > limit_bytes {
        return Err(corrupt(format!("batch decompresses to more than {limit_bytes} bytes")));
    }
    Ok(out)
}

/// Decompresses the records section of a batch with `codec` (0 none, 1 gzip,
/// 2 snappy (xerial-framed or raw), 3 lz4 (Kafka's LZ4 frame), 4 zstd).
pub fn decompress(codec: i16, body: &[u8], limit_bytes: usize) -> Result<Vec<u8>, RecordsError> {
    match codec {
        0 => Ok(body.to_vec()),
        1 => read_bounded(flate2::read::GzDecoder::new(body), limit_bytes),
        2 => snappy_decompress(body, limit_bytes),
        3 => {
            let d = lz4::Decoder::new(body).map_err(|e| corrupt(format!("lz4: {e}")))?;
            read_bounded(d, limit_bytes)
        }
        4 => {
            let d = zstd::stream::read::Decoder::new(body).map_err(|e| corrupt(format!("zstd: {e}")))?;
            read_bounded(d, limit_bytes)
        }
        c => Err(corrupt(format!("unknown compression codec {c}"))),
    }
}

fn snappy_block(block: &[u8], out: &mut Vec<u8>, limit_bytes: usize) -> Result<(), RecordsError> {
    let n = snap::raw::decompress_len(block).map_err(|e| corrupt(format!("snappy: {e}")))?;
    if n > limit_bytes.saturating_sub(out.len()) {
        return Err(corrupt(format!("batch decompresses to more than {limit_bytes} bytes")));
    }
    let at = out.len();
    out.resize(at + n, 0);
    snap::raw::Decoder::new()
        .decompress(block, &mut out[at..])
        .map_err(|e| corrupt(format!("snappy: {e}")))?;
    Ok(())
}

fn snappy_decompress(body: &[u8], limit_bytes: usize) -> Result<Vec<u8>, RecordsError> {
    let mut out = Vec::new();
    // Like snappy-java's SnappyInputStream: framed when the magic is there, else raw.
    if body.len() < XERIAL_HEADER.len() || !body.starts_with(XERIAL_MAGIC) {
        snappy_block(body, &mut out, limit_bytes)?;
        return Ok(out);
    }
    let mut rest = &body[XERIAL_HEADER.len()..];
    while !rest.is_empty() {
        let len = take(&mut rest, 4)?;
        // `take` returned exactly 4 bytes.
        let n = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
        let block = take(&mut rest, n)?;
        snappy_block(block, &mut out, limit_bytes)?;
    }
    Ok(out)
}

fn compress(codec: i16, plain: &[u8]) -> Result<Vec<u8>, RecordsError> {
    let io = |e: std::io::Error| corrupt(format!("compression failed: {e}"));
    match codec {
        0 => Ok(plain.to_vec()),
        1 => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(plain).map_err(io)?;
            e.finish().map_err(io)
        }
        2 => {
            // xerial framing, as Java producers write it and every client reads it.
            let mut out = XERIAL_HEADER.to_vec();
            let mut enc = snap::raw::Encoder::new();
            for chunk in plain.chunks(XERIAL_BLOCK_BYTES) {
                let block = enc.compress_vec(chunk).map_err(|e| corrupt(format!("snappy: {e}")))?;
                out.extend_from_slice(&(block.len() as u32).to_be_bytes());
                out.extend_from_slice(&block);
            }
            Ok(out)
        }
        3 => {
            // Independent blocks: Kafka's Java LZ4 reader decompresses block by block.
            let mut e = lz4::EncoderBuilder::new()
                .block_mode(lz4::BlockMode::Independent)
                .build(Vec::new())
                .map_err(io)?;
            e.write_all(plain).map_err(io)?;
            let (out, result) = e.finish();
            result.map_err(io)?;
            Ok(out)
        }
        4 => zstd::stream::encode_all(plain, 3).map_err(io),
        c => Err(corrupt(format!("unknown compression codec {c}"))),
    }
}

#[cfg(test)]
#[path = "record_codec_tests.rs"]
mod tests;
