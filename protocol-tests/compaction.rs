//! Log compaction through the broker: a `cleanup.policy=compact` topic, compacted by
//! the background cleaner, read from offset 0 by Fetch as a consumer (or a Kafka
//! Streams changelog restore) reads it.

use super::*;

const BASE_TS: i64 = 1_700_000_000_000;

fn keyed_batch(records: &[(&str, Option<&str>)], ts: i64) -> Bytes {
    let records: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, (k, v))| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: -1,
            timestamp: ts,
            key: Some(Bytes::from(k.to_string())),
            value: v.map(|v| Bytes::from(v.to_string())),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(&mut buf, &records, &RecordEncodeOptions { version: 2, compression: Compression::Snappy }).unwrap();
    buf.freeze()
}

async fn produce(s: &mut TcpStream, topic: &str, records: Bytes) -> i16 {
    let r: ProduceResponse = call(s, ApiKey::Produce, 9, 70, &produce_request(topic, 0, records, -1)).await;
    r.responses[0].partition_responses[0].error_code
}

/// (offset, key, value) of every record from offset 0, fetching as a consumer does:
/// from the next offset after the last batch, until the high watermark.
async fn consume_all(s: &mut TcpStream, topic: &str) -> Vec<(i64, String, Option<String>)> {
    use fetch_request::{FetchPartition, FetchTopic};
    let mut out = Vec::new();
    let mut offset = 0;
    loop {
        let req = FetchRequest::default().with_max_wait_ms(0).with_min_bytes(1).with_max_bytes(1 << 20).with_topics(vec![
            FetchTopic::default()
                .with_topic(TopicName(topic.to_string().into()))
                .with_partitions(vec![FetchPartition::default().with_partition(0).with_fetch_offset(offset).with_partition_max_bytes(300)]),
        ]);
        let r: FetchResponse = call(s, ApiKey::Fetch, 12, 71, &req).await;
        let p = &r.responses[0].partitions[0];
        assert_eq!(p.error_code, 0);
        let mut records = p.records.clone().unwrap_or_default();
        if records.is_empty() {
            return out;
        }
        while records.has_remaining() {
            let next = i64::from_be_bytes(records[..8].try_into().unwrap()) + i64::from(i32::from_be_bytes(records[23..27].try_into().unwrap())) + 1;
            let set = kafka_protocol::records::RecordBatchDecoder::decode(&mut records).unwrap();
            for rec in set.records {
                if rec.offset >= offset {
                    assert!(out.last().is_none_or(|(o, _, _)| *o < rec.offset), "offsets must increase");
                    let key = String::from_utf8(rec.key.unwrap().to_vec()).unwrap();
                    out.push((rec.offset, key, rec.value.map(|v| String::from_utf8(v.to_vec()).unwrap())));
                }
            }
            offset = offset.max(next);
        }
        if offset >= p.high_watermark {
            return out;
        }
    }
}

#[tokio::test]
async fn a_compacted_topic_serves_the_latest_value_per_key_from_offset_zero() {
    let b = TestBroker::start_with(|c| {
        c.set("log.cleaner.backoff.ms", "20").unwrap();
    })
    .await;
    let mut s = b.connect().await;
    let configs = [("cleanup.policy", "compact"), ("min.cleanable.dirty.ratio", "0.01"), ("segment.ms", "1"), ("delete.retention.ms", "600000")];
    assert_eq!(log_admin::create_with(&mut s, "changelog", 1, &configs).await, 0);
    // A keyless record is refused on a compacted topic (INVALID_RECORD).
    let keyless = {
        let mut b = BytesMut::new();
        let r = Record { key: None, ..kafka_protocol::records::RecordBatchDecoder::decode(&mut keyed_batch(&[("x", Some("y"))], BASE_TS)).unwrap().records.remove(0) };
        RecordBatchEncoder::encode(&mut b, &[r], &RecordEncodeOptions { version: 2, compression: Compression::None }).unwrap();
        b.freeze()
    };
    assert_eq!(produce(&mut s, "changelog", keyless).await, 87);
    // Each produce rolls the segment (segment.ms=1 and timestamps 10 ms apart).
    for round in 0..5 {
        let v = format!("r{round}");
        let recs = [("k0", Some(v.as_str())), ("k1", Some(v.as_str())), ("k2", Some(v.as_str())), ("k3", Some(v.as_str()))];
        assert_eq!(produce(&mut s, "changelog", keyed_batch(&recs, BASE_TS + round * 10)).await, 0);
    }
    assert_eq!(produce(&mut s, "changelog", keyed_batch(&[("k3", None)], BASE_TS + 60)).await, 0);
    assert_eq!(produce(&mut s, "changelog", keyed_batch(&[("k9", Some("last"))], BASE_TS + 70)).await, 0);
    let expected = vec![
        (16, "k0".to_string(), Some("r4".to_string())),
        (17, "k1".to_string(), Some("r4".to_string())),
        (18, "k2".to_string(), Some("r4".to_string())),
        (20, "k3".to_string(), None),
        (21, "k9".to_string(), Some("last".to_string())),
    ];
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let seen = consume_all(&mut s, "changelog").await;
        if seen == expected {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "not compacted: {seen:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(log_admin::earliest(&mut s, "changelog", 0).await, 0, "compaction does not move the log start");
    b.stop().await;
}
