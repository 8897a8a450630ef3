use super::*;
use crate::protocol::records::check_batch;
use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record as KRecord, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions,
    TimestampType,
};

const LIMIT_BYTES: usize = 16 << 20;

fn krecord(i: i64, key: Option<&str>, value: Option<&str>) -> KRecord {
    KRecord {
        transactional: false,
        control: false,
        partition_leader_epoch: 0,
        producer_id: 9,
        producer_epoch: 1,
        timestamp_type: TimestampType::Creation,
        offset: i,
        sequence: i as i32,
        timestamp: 5_000 + i * 3,
        key: key.map(|k| Bytes::from(k.to_string())),
        value: value.map(|v| Bytes::from(v.to_string())),
        headers: [("h".into(), Some(Bytes::from_static(b"x")))].into_iter().collect(),
        delete_horizon: false,
    }
}

fn kafka_batch(compression: Compression) -> Vec<u8> {
    let records = vec![
        krecord(0, Some("a"), Some("1")),
        krecord(1, None, Some("2")),
        krecord(2, Some("b"), None),
        krecord(3, Some("a"), Some(&"z".repeat(5000))),
    ];
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(&mut buf, &records, &RecordEncodeOptions { version: 2, compression }).unwrap();
    buf.to_vec()
}

const CODECS: [Compression; 5] = [
    Compression::None,
    Compression::Gzip,
    Compression::Snappy,
    Compression::Lz4,
    Compression::Zstd,
];

#[test]
fn decodes_batches_of_every_codec_like_kafka_protocol() {
    for c in CODECS {
        let b = kafka_batch(c);
        let d = DecodedBatch::decode(&b, LIMIT_BYTES).unwrap();
        let mine: Vec<_> = d.records().map(|r| (r.offset(d.header.base_offset), d.timestamp_of(&r), r.key.map(<[u8]>::to_vec), r.value.map(<[u8]>::to_vec))).collect();
        let theirs: Vec<_> = RecordBatchDecoder::decode(&mut Bytes::from(b.clone())).unwrap().records.into_iter().map(|r| (r.offset, r.timestamp, r.key.map(|k| k.to_vec()), r.value.map(|v| v.to_vec()))).collect();
        assert_eq!(mine, theirs, "{c:?}");
        assert_eq!(mine[1].2, None, "null key");
        assert_eq!(mine[2].3, None, "tombstone");
    }
}

#[test]
fn round_trip_per_codec_is_byte_exact_for_records() {
    for c in CODECS {
        let b = kafka_batch(c);
        let d = DecodedBatch::decode(&b, LIMIT_BYTES).unwrap();
        let records: Vec<_> = d.records().collect();
        let h = d.header;
        let fields = BatchFields { attributes: h.attributes, base_timestamp: h.base_timestamp, max_timestamp: h.max_timestamp, last_offset_delta: h.last_offset_delta };
        let out = encode_batch(&h, fields, &records).unwrap();
        let h2 = check_batch(&out).unwrap();
        assert_eq!((h2.base_offset, h2.producer_id, h2.producer_epoch, h2.base_sequence, h2.attributes, h2.record_count), (h.base_offset, h.producer_id, h.producer_epoch, h.base_sequence, h.attributes, h.record_count));
        if c == Compression::None {
            assert_eq!(out, b, "uncompressed round trip is byte exact");
        }
        let d2 = DecodedBatch::decode(&out, LIMIT_BYTES).unwrap();
        assert!(d2.records().eq(d.records()), "{c:?}");
        // Other decoders read what we write.
        let theirs = RecordBatchDecoder::decode(&mut Bytes::from(out)).unwrap();
        assert_eq!(theirs.records.len(), 4);
    }
}

/// Raw header bytes with the key "k" twice: a map-based codec would collapse them.
fn repeated_headers() -> Vec<u8> {
    let mut h = Vec::new();
    write_varlong(&mut h, 3);
    for (k, v) in [("k", Some("1")), ("k", Some("2")), ("n", None)] {
        write_nullable(&mut h, Some(k.as_bytes()));
        write_nullable(&mut h, v.map(str::as_bytes));
    }
    h
}

fn header_of(attributes: i16, count: i32) -> BatchHeader {
    BatchHeader {
        base_offset: 100,
        batch_length: 0,
        partition_leader_epoch: 3,
        magic: 2,
        crc: 0,
        attributes,
        last_offset_delta: count - 1,
        base_timestamp: 1_000,
        max_timestamp: 1_010,
        producer_id: -1,
        producer_epoch: -1,
        base_sequence: -1,
        record_count: count,
    }
}

#[test]
fn repeated_header_keys_survive_byte_exact_in_every_codec() {
    let headers = repeated_headers();
    let records = [
        Record { attributes: 0, timestamp_delta: 0, offset_delta: 0, key: Some(b"k1"), value: Some(b"v1"), headers_raw: &headers },
        Record { attributes: 0, timestamp_delta: 10, offset_delta: 1, key: None, value: None, headers_raw: &[0] },
    ];
    for codec in 0..=4i16 {
        let h = header_of(codec, 2);
        let fields = BatchFields { attributes: codec, base_timestamp: 1_000, max_timestamp: 1_010, last_offset_delta: 1 };
        let out = encode_batch(&h, fields, &records).unwrap();
        check_batch(&out).unwrap();
        let d = DecodedBatch::decode(&out, LIMIT_BYTES).unwrap();
        let back: Vec<_> = d.records().collect();
        assert_eq!(back, records, "codec {codec}");
        assert_eq!(back[0].headers_raw, &headers[..]);
        // Re-encoding what we decoded gives the same record bytes.
        let (mut a, mut b) = (Vec::new(), Vec::new());
        write_record(&mut a, &records[0]);
        write_record(&mut b, &back[0]);
        assert_eq!(a, b);
    }
}

#[test]
fn snappy_raw_and_xerial_framed_both_decode() {
    let plain = b"hello hello hello hello".repeat(100);
    let raw = snap::raw::Encoder::new().compress_vec(&plain).unwrap();
    assert_eq!(decompress(2, &raw, LIMIT_BYTES).unwrap(), plain);
    let framed = compress(2, &plain).unwrap();
    assert!(framed.starts_with(XERIAL_MAGIC));
    assert_eq!(decompress(2, &framed, LIMIT_BYTES).unwrap(), plain);
    // Several xerial blocks.
    let big = vec![7u8; 3 * XERIAL_BLOCK_BYTES + 5];
    assert_eq!(decompress(2, &compress(2, &big).unwrap(), LIMIT_BYTES).unwrap(), big);
}

#[test]
fn decompression_is_bounded() {
    let plain = vec![0u8; 1 << 20];
    for codec in 1..=4i16 {
        let c = compress(codec, &plain).unwrap();
        assert!(decompress(codec, &c, 1 << 19).is_err(), "codec {codec}");
        assert_eq!(decompress(codec, &c, 1 << 20).unwrap().len(), 1 << 20);
    }
}

#[test]
fn hostile_lengths_are_errors() {
    let b = kafka_batch(Compression::None);
    for at in BATCH_HEADER_BYTES..b.len() {
        for byte in [0x00u8, 0x7f, 0xff, 0x01] {
            let mut m = b.clone();
            m[at] = byte;
            let _ = DecodedBatch::decode(&m, LIMIT_BYTES); // never panics
        }
    }
    // A record count larger than the records present.
    let mut m = b.clone();
    m[57..61].copy_from_slice(&1_000_000i32.to_be_bytes());
    assert!(DecodedBatch::decode(&m, LIMIT_BYTES).is_err());
}

#[test]
fn varints_round_trip() {
    for v in [0i64, 1, -1, 63, -64, 64, 300, -300, i64::from(i32::MAX), i64::MIN, i64::MAX] {
        let mut out = Vec::new();
        write_varlong(&mut out, v);
        let mut s = &out[..];
        assert_eq!(read_varlong(&mut s).unwrap(), v);
        assert!(s.is_empty());
    }
}
