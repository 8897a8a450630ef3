//! Wire-level tests: real client bytes in, checked bytes out.
//!
//! `captures/*.frames` hold request frames recorded from real clients (kcat,
//! confluent-kafka-python, kafka-python, the Java client) by `capture.py`. Each
//! file is replayed, byte for byte, against a fresh in-process broker, and every
//! answer is decoded at the version the client asked for and checked. The rest
//! are hostile inputs: each must get a Kafka error or a clean disconnect, and the
//! broker must keep serving other connections.

use std::path::Path;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion};
use kafka_protocol::records::{Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType};
use sluice::broker::Broker;
use sluice::config::Config;
use sluice::server::Server;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

mod compaction;
mod groups;
mod log_admin;
mod txn;

struct TestBroker {
    server: Option<Server>,
    addr: std::net::SocketAddr,
    _dir: tempfile::TempDir,
}

impl TestBroker {
    async fn start_with(tweak: impl FnOnce(&mut Config)) -> TestBroker {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Config::default();
        c.set_listen("127.0.0.1:0").unwrap();
        c.data_dir = dir.path().to_path_buf();
        tweak(&mut c);
        let broker = Broker::open(c).unwrap();
        let server = Server::start(broker).await.unwrap();
        TestBroker { addr: server.local_addr, server: Some(server), _dir: dir }
    }
    async fn start() -> TestBroker {
        Self::start_with(|_| {}).await
    }
    async fn connect(&self) -> TcpStream {
        TcpStream::connect(self.addr).await.unwrap()
    }
    async fn stop(mut self) {
        self.server.take().unwrap().shutdown().await.unwrap();
    }
}

async fn send_frame(s: &mut TcpStream, frame: &[u8]) {
    let mut out = Vec::with_capacity(frame.len() + 4);
    out.extend_from_slice(&(frame.len() as i32).to_be_bytes());
    out.extend_from_slice(frame);
    s.write_all(&out).await.unwrap();
}

/// Read one response frame; None when the broker closed the connection.
async fn recv_frame(s: &mut TcpStream) -> Option<Bytes> {
    let mut len = [0u8; 4];
    match tokio::time::timeout(Duration::from_secs(10), s.read_exact(&mut len)).await.expect("broker answers within 10s") {
        Ok(_) => {}
        Err(_) => return None,
    }
    let mut body = vec![0u8; i32::from_be_bytes(len) as usize];
    s.read_exact(&mut body).await.ok()?;
    Some(Bytes::from(body))
}

fn request_frame<R: Encodable + HeaderVersion>(api_key: ApiKey, version: i16, correlation_id: i32, req: &R) -> Vec<u8> {
    let header = RequestHeader::default()
        .with_request_api_key(api_key as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(kafka_protocol::protocol::StrBytes::from_static_str("protocol-tests")));
    let mut buf = BytesMut::new();
    header.encode(&mut buf, api_key.request_header_version(version)).unwrap();
    req.encode(&mut buf, version).unwrap();
    buf.to_vec()
}

/// Strip the response header (v0: correlation id; v1: + tagged fields) and check the id.
fn response_body<R: HeaderVersion>(mut frame: Bytes, version: i16, correlation_id: i32) -> Bytes {
    let hdr = ResponseHeader::decode(&mut frame, R::header_version(version)).unwrap();
    assert_eq!(hdr.correlation_id, correlation_id, "responses must come back in request order");
    frame
}

async fn call<Req, Resp>(s: &mut TcpStream, key: ApiKey, version: i16, correlation_id: i32, req: &Req) -> Resp
where
    Req: Encodable + HeaderVersion,
    Resp: Decodable + HeaderVersion,
{
    send_frame(s, &request_frame(key, version, correlation_id, req)).await;
    let frame = recv_frame(s).await.expect("response, not a disconnect");
    let mut body = response_body::<Resp>(frame, version, correlation_id);
    Resp::decode(&mut body, version).unwrap()
}

fn batch(values: &[&[u8]], producer_id: i64, base_sequence: i32) -> Bytes {
    let records: Vec<Record> = values
        .iter()
        .enumerate()
        .map(|(i, v)| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id,
            producer_epoch: if producer_id >= 0 { 0 } else { -1 },
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: if producer_id >= 0 { base_sequence + i as i32 } else { -1 },
            timestamp: 1_700_000_000_000 + i as i64,
            key: Some(Bytes::from(format!("k{i}"))),
            value: Some(Bytes::copy_from_slice(v)),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(&mut buf, &records, &RecordEncodeOptions { version: 2, compression: Compression::None }).unwrap();
    buf.freeze()
}

fn produce_request(topic: &str, partition: i32, records: Bytes, acks: i16) -> ProduceRequest {
    use produce_request::{PartitionProduceData, TopicProduceData};
    ProduceRequest::default().with_acks(acks).with_timeout_ms(5000).with_topic_data(vec![
        TopicProduceData::default()
            .with_name(TopicName(topic.to_string().into()))
            .with_partition_data(vec![PartitionProduceData::default().with_index(partition).with_records(Some(records))]),
    ])
}

async fn create_topic(s: &mut TcpStream, name: &str, partitions: i32) {
    use create_topics_request::CreatableTopic;
    let req = CreateTopicsRequest::default().with_timeout_ms(5000).with_topics(vec![
        CreatableTopic::default().with_name(TopicName(name.to_string().into())).with_num_partitions(partitions).with_replication_factor(1),
    ]);
    let resp: CreateTopicsResponse = call(s, ApiKey::CreateTopics, 7, 900, &req).await;
    assert_eq!(resp.topics[0].error_code, 0, "{:?}", resp.topics[0].error_message);
}

// ---------------------------------------------------------------- captures

/// Every response decodes at the client's version; error codes are the expected ones.
fn check_response(api_key: i16, version: i16, mut body: Bytes, file: &str, line: usize) {
    let ctx = format!("{file}:{line} api {api_key} v{version}");
    match ApiKey::try_from(api_key).unwrap() {
        ApiKey::ApiVersions if version > 4 => {
            // Newer clients (Java 4.x) open with a version we do not speak: KIP-511
            // answers in v0 with UNSUPPORTED_VERSION, and the client retries lower.
            let r = ApiVersionsResponse::decode(&mut body, 0).unwrap();
            assert_eq!(r.error_code, 35, "{ctx}");
            assert!(r.api_keys.iter().any(|k| k.api_key == 18 && k.max_version == 4), "{ctx}");
        }
        ApiKey::ApiVersions => {
            let r = ApiVersionsResponse::decode(&mut body, version).unwrap();
            assert_eq!(r.error_code, 0, "{ctx}");
            assert!(r.api_keys.iter().any(|k| k.api_key == ApiKey::Produce as i16), "{ctx}");
        }
        ApiKey::Metadata => {
            let r = MetadataResponse::decode(&mut body, version).unwrap();
            assert_eq!(r.brokers.len(), 1, "{ctx}");
            for t in &r.topics {
                assert_eq!(t.error_code, 0, "{ctx}: topic {:?}", t.name);
                assert!(!t.partitions.is_empty(), "{ctx}");
            }
        }
        ApiKey::Produce => {
            let r = ProduceResponse::decode(&mut body, version).unwrap();
            for t in &r.responses {
                for p in &t.partition_responses {
                    assert_eq!(p.error_code, 0, "{ctx}: {:?}-{}", t.name, p.index);
                    assert!(p.base_offset >= 0, "{ctx}");
                }
            }
        }
        ApiKey::Fetch => {
            let r = FetchResponse::decode(&mut body, version).unwrap();
            assert_eq!(r.error_code, 0, "{ctx}");
            for t in &r.responses {
                for p in &t.partitions {
                    assert_eq!(p.error_code, 0, "{ctx}: partition {}", p.partition_index);
                }
            }
        }
        ApiKey::ListOffsets => {
            let r = ListOffsetsResponse::decode(&mut body, version).unwrap();
            for t in &r.topics {
                for p in &t.partitions {
                    assert_eq!(p.error_code, 0, "{ctx}");
                }
            }
        }
        ApiKey::InitProducerId => {
            let r = InitProducerIdResponse::decode(&mut body, version).unwrap();
            assert_eq!(r.error_code, 0, "{ctx}");
            assert!(r.producer_id.0 >= 0, "{ctx}");
        }
        ApiKey::CreateTopics => {
            let r = CreateTopicsResponse::decode(&mut body, version).unwrap();
            for t in &r.topics {
                assert_eq!(t.error_code, 0, "{ctx}: {:?}", t.error_message);
            }
        }
        ApiKey::OffsetForLeaderEpoch => {
            let r = OffsetForLeaderEpochResponse::decode(&mut body, version).unwrap();
            for t in &r.topics {
                for p in &t.partitions {
                    assert_eq!(p.error_code, 0, "{ctx}");
                }
            }
        }
        ApiKey::DescribeConfigs => {
            let r = DescribeConfigsResponse::decode(&mut body, version).unwrap();
            for res in &r.results {
                assert_eq!(res.error_code, 0, "{ctx}");
                assert!(!res.configs.is_empty(), "{ctx}");
            }
        }
        ApiKey::DescribeCluster => {
            let r = DescribeClusterResponse::decode(&mut body, version).unwrap();
            assert_eq!(r.error_code, 0, "{ctx}");
        }
        ApiKey::DeleteTopics => {
            let r = DeleteTopicsResponse::decode(&mut body, version).unwrap();
            for t in &r.responses {
                assert_eq!(t.error_code, 0, "{ctx}");
            }
        }
        ApiKey::CreatePartitions => {
            let r = CreatePartitionsResponse::decode(&mut body, version).unwrap();
            for t in &r.results {
                assert_eq!(t.error_code, 0, "{ctx}");
            }
        }
        other => panic!("{ctx}: capture contains {other:?}, which sluice does not serve"),
    }
    assert!(!body.has_remaining(), "{ctx}: {} trailing bytes in response", body.remaining());
}

fn header_version_of(api_key: ApiKey, version: i16) -> i16 {
    macro_rules! hv {
        ($($k:ident => $t:ty),*) => {
            match api_key { $(ApiKey::$k => <$t>::header_version(version),)* _ => panic!("unexpected {api_key:?}") }
        };
    }
    hv!(ApiVersions => ApiVersionsResponse, Metadata => MetadataResponse, Produce => ProduceResponse, Fetch => FetchResponse,
        ListOffsets => ListOffsetsResponse, InitProducerId => InitProducerIdResponse, CreateTopics => CreateTopicsResponse,
        OffsetForLeaderEpoch => OffsetForLeaderEpochResponse, DescribeConfigs => DescribeConfigsResponse,
        DescribeCluster => DescribeClusterResponse, DeleteTopics => DeleteTopicsResponse, CreatePartitions => CreatePartitionsResponse)
}

fn is_acks0_produce(api_key: i16, version: i16, frame: &[u8]) -> bool {
    if api_key != ApiKey::Produce as i16 {
        return false;
    }
    let mut b = Bytes::copy_from_slice(frame);
    let _ = RequestHeader::decode(&mut b, ApiKey::Produce.request_header_version(version)).unwrap();
    ProduceRequest::decode(&mut b, version).unwrap().acks == 0
}

#[tokio::test]
async fn replay_captured_client_sessions() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("protocol-tests/captures");
    let mut files: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|e| e == "frames")).collect();
    files.sort();
    assert!(!files.is_empty(), "no captures in {}", dir.display());
    for file in files {
        let name = file.file_name().unwrap().to_string_lossy().to_string();
        let broker = TestBroker::start().await;
        let mut s = broker.connect().await;
        let text = std::fs::read_to_string(&file).unwrap();
        let mut replayed = 0;
        // Topic ids are random per broker: learn the fresh ones from Metadata answers
        // and put them where the capture carries the recorded ones (Fetch v13+).
        let mut fresh_ids: Vec<uuid::Uuid> = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let mut parts = line.split_whitespace();
            let (key, ver, hex) = (parts.next().unwrap(), parts.next().unwrap(), parts.next().unwrap());
            let (key, ver): (i16, i16) = (key.parse().unwrap(), ver.parse().unwrap());
            let mut frame = hex_decode(hex);
            substitute_topic_ids(key, ver, &mut frame, &fresh_ids);
            let correlation_id = i32::from_be_bytes(frame[4..8].try_into().unwrap());
            send_frame(&mut s, &frame).await;
            replayed += 1;
            if is_acks0_produce(key, ver, &frame) {
                continue;
            }
            let resp = recv_frame(&mut s).await.unwrap_or_else(|| panic!("{name}:{} broker closed the connection", i + 1));
            let mut resp = resp;
            let hdr = ResponseHeader::decode(&mut resp, header_version_of(ApiKey::try_from(key).unwrap(), ver)).unwrap();
            assert_eq!(hdr.correlation_id, correlation_id, "{name}:{}", i + 1);
            if key == ApiKey::Metadata as i16 && ver >= 10 {
                let m = MetadataResponse::decode(&mut resp.clone(), ver).unwrap();
                for t in m.topics {
                    if !fresh_ids.contains(&t.topic_id) {
                        fresh_ids.push(t.topic_id);
                    }
                }
            }
            check_response(key, ver, resp, &name, i + 1);
        }
        assert!(replayed > 3, "{name}: capture too short to mean anything");
        broker.stop().await;
    }
}

/// Captures hold one topic each: a recorded topic id the broker does not know is
/// replaced, byte for byte, by the one fresh id the replay has seen.
fn substitute_topic_ids(api_key: i16, version: i16, frame: &mut [u8], fresh: &[uuid::Uuid]) {
    if api_key != ApiKey::Fetch as i16 || version < 13 {
        return;
    }
    let mut b = Bytes::copy_from_slice(frame);
    let _ = RequestHeader::decode(&mut b, ApiKey::Fetch.request_header_version(version)).unwrap();
    let req = FetchRequest::decode(&mut b, version).unwrap();
    for t in req.topics {
        if fresh.contains(&t.topic_id) {
            continue;
        }
        assert_eq!(fresh.len(), 1, "capture with several topics needs an explicit id map");
        let (old, new) = (t.topic_id.into_bytes(), fresh[0].into_bytes());
        let pos = frame.windows(16).position(|w| w == old).expect("recorded id is in the frame");
        frame[pos..pos + 16].copy_from_slice(&new);
    }
}

fn hex_decode(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

// ---------------------------------------------------------------- protocol rules

#[tokio::test]
async fn api_versions_at_unknown_version_gets_v0_unsupported_version() {
    let b = TestBroker::start().await;
    let mut s = b.connect().await;
    // ApiVersions v127, header v2 with a client id and an empty tag section.
    let mut f = BytesMut::new();
    f.put_i16(18);
    f.put_i16(127);
    f.put_i32(42);
    f.put_i16(3);
    f.put_slice(b"cli");
    f.put_u8(0);
    f.put_slice(&[2, 1, b'x', 1, b'y', 0]); // whatever a future version carries
    send_frame(&mut s, &f).await;
    let mut resp = recv_frame(&mut s).await.unwrap();
    // Header v0: just the correlation id, even though v3+ requests use v2 headers.
    assert_eq!(resp.get_i32(), 42);
    let r = ApiVersionsResponse::decode(&mut resp, 0).unwrap();
    assert_eq!(r.error_code, 35, "UNSUPPORTED_VERSION");
    let av = r.api_keys.iter().find(|k| k.api_key == 18).unwrap();
    assert_eq!((av.min_version, av.max_version), (0, 4));
    assert!(!resp.has_remaining());
    b.stop().await;
}

#[tokio::test]
async fn pipelined_requests_answer_in_order() {
    let b = TestBroker::start().await;
    let mut s = b.connect().await;
    create_topic(&mut s, "pipe", 1).await;
    // Five produces and a metadata request written back to back before reading.
    let mut out = Vec::new();
    for i in 0..5 {
        let f = request_frame(ApiKey::Produce, 9, 100 + i, &produce_request("pipe", 0, batch(&[b"a", b"b"], -1, 0), -1));
        out.extend_from_slice(&(f.len() as i32).to_be_bytes());
        out.extend_from_slice(&f);
    }
    let f = request_frame(ApiKey::Metadata, 12, 105, &MetadataRequest::default().with_topics(None));
    out.extend_from_slice(&(f.len() as i32).to_be_bytes());
    out.extend_from_slice(&f);
    s.write_all(&out).await.unwrap();
    for i in 0..5 {
        let frame = recv_frame(&mut s).await.unwrap();
        let mut body = response_body::<ProduceResponse>(frame, 9, 100 + i);
        let r = ProduceResponse::decode(&mut body, 9).unwrap();
        let p = &r.responses[0].partition_responses[0];
        assert_eq!((p.error_code, p.base_offset), (0, 2 * i as i64), "offsets are dense and in request order");
    }
    let frame = recv_frame(&mut s).await.unwrap();
    response_body::<MetadataResponse>(frame, 12, 105);
    b.stop().await;
}

// ---------------------------------------------------------------- hostile input

/// After a hostile frame the broker closes that connection (or answers with an
/// error) and still serves a fresh one.
async fn assert_still_serving(b: &TestBroker) {
    let mut s = b.connect().await;
    let r: ApiVersionsResponse = call(&mut s, ApiKey::ApiVersions, 3, 7, &ApiVersionsRequest::default()).await;
    assert_eq!(r.error_code, 0);
}

async fn assert_disconnects(b: &TestBroker, raw: &[u8]) {
    let mut s = b.connect().await;
    s.write_all(raw).await.unwrap();
    assert!(recv_frame(&mut s).await.is_none(), "expected a disconnect for {:02x?}", &raw[..raw.len().min(16)]);
    assert_still_serving(b).await;
}

#[tokio::test]
async fn hostile_frames_disconnect_cleanly() {
    let b = TestBroker::start_with(|c| {
        c.socket_request_max_bytes = 1 << 20;
        c.queued_bytes_max = 1 << 19;
    })
    .await;
    // Oversized and negative lengths: refused before any allocation.
    assert_disconnects(&b, &0x7fff_ffffi32.to_be_bytes()).await;
    assert_disconnects(&b, &((1 << 20) + 1i32).to_be_bytes()).await;
    // Within socket.request.max.bytes but larger than the whole memory pool.
    assert_disconnects(&b, &((1 << 19) + 1i32).to_be_bytes()).await;
    assert_disconnects(&b, &(-5i32).to_be_bytes()).await;
    // Unknown API key 9999, and an API we do not serve (SaslHandshake, 17).
    for key in [9999i16, 17] {
        let mut f = vec![0, 0, 0, 10];
        f.extend_from_slice(&key.to_be_bytes());
        f.extend_from_slice(&[0, 0, 0, 0, 0, 1, 0xff, 0xff]);
        assert_disconnects(&b, &f).await;
    }
    // Metadata v1 at an unsupported version (99).
    let mut f = vec![0, 0, 0, 10, 0, 3, 0, 99, 0, 0, 0, 1, 0xff, 0xff];
    f.truncate(14);
    assert_disconnects(&b, &f).await;
    // Metadata v12 claiming 2^31-1 topics in a 13-byte body: bounds check, not an abort.
    let mut body = request_frame(ApiKey::Metadata, 12, 1, &MetadataRequest::default().with_topics(None));
    let hdr_len = body.len() - 4; // topics(null)=1 byte + 3 bools + tags
    body.truncate(hdr_len);
    body.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x07, 1, 0, 0, 0]);
    let mut raw = (body.len() as i32).to_be_bytes().to_vec();
    raw.extend_from_slice(&body);
    assert_disconnects(&b, &raw).await;
    // A frame cut short: header says 100 bytes, 10 arrive, then the client hangs up.
    {
        let mut s = b.connect().await;
        s.write_all(&[0, 0, 0, 100, 0, 18, 0, 3, 0, 0, 0, 1, 0, 0]).await.unwrap();
        s.shutdown().await.unwrap();
        assert!(recv_frame(&mut s).await.is_none());
    }
    // Random garbage bodies under real headers.
    for seed in 0..64u32 {
        let mut f = request_frame(ApiKey::Produce, 9, 1, &produce_request("t", 0, batch(&[b"x"], -1, 0), 1));
        let mut x = seed.wrapping_mul(2654435761);
        for byte in f.iter_mut().skip(12) {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            if x % 7 == 0 {
                *byte = x as u8;
            }
        }
        let mut s = b.connect().await;
        send_frame(&mut s, &f).await;
        // Either an answer (possibly with error codes) or a disconnect; never a hang or crash.
        let _ = recv_frame(&mut s).await;
    }
    assert_still_serving(&b).await;
    b.stop().await;
}

#[tokio::test]
async fn bad_batches_get_kafka_error_codes() {
    let b = TestBroker::start_with(|c| c.message_max_bytes = 1000).await;
    let mut s = b.connect().await;
    create_topic(&mut s, "bad", 1).await;
    let produce = |records: Bytes| produce_request("bad", 0, records, -1);

    // CRC mismatch: CORRUPT_MESSAGE (2).
    let mut flipped = BytesMut::from(&batch(&[b"hello"], -1, 0)[..]);
    let last = flipped.len() - 1;
    flipped[last] ^= 0x55;
    let r: ProduceResponse = call(&mut s, ApiKey::Produce, 9, 1, &produce(flipped.freeze())).await;
    assert_eq!(r.responses[0].partition_responses[0].error_code, 2);

    // Over message.max.bytes: MESSAGE_TOO_LARGE (10).
    let big = vec![7u8; 2000];
    let r: ProduceResponse = call(&mut s, ApiKey::Produce, 9, 2, &produce(batch(&[&big], -1, 0))).await;
    assert_eq!(r.responses[0].partition_responses[0].error_code, 10);

    // Unknown topic and partition: UNKNOWN_TOPIC_OR_PARTITION (3).
    let r: ProduceResponse = call(&mut s, ApiKey::Produce, 9, 3, &produce_request("nope", 0, batch(&[b"x"], -1, 0), -1)).await;
    assert_eq!(r.responses[0].partition_responses[0].error_code, 3);
    let r: ProduceResponse = call(&mut s, ApiKey::Produce, 9, 4, &produce_request("bad", 7, batch(&[b"x"], -1, 0), -1)).await;
    assert_eq!(r.responses[0].partition_responses[0].error_code, 3);

    // Invalid acks: INVALID_REQUIRED_ACKS (21).
    let r: ProduceResponse = call(&mut s, ApiKey::Produce, 9, 5, &produce_request("bad", 0, batch(&[b"x"], -1, 0), 2)).await;
    assert_eq!(r.responses[0].partition_responses[0].error_code, 21);

    // Nothing bad was appended: the next good batch lands at offset 0.
    let r: ProduceResponse = call(&mut s, ApiKey::Produce, 9, 6, &produce(batch(&[b"ok"], -1, 0))).await;
    let p = &r.responses[0].partition_responses[0];
    assert_eq!((p.error_code, p.base_offset), (0, 0));
    b.stop().await;
}

#[tokio::test]
async fn idempotent_producer_duplicates_and_gaps() {
    let b = TestBroker::start().await;
    let mut s = b.connect().await;
    create_topic(&mut s, "idem", 1).await;
    let init: InitProducerIdResponse = call(&mut s, ApiKey::InitProducerId, 4, 1, &InitProducerIdRequest::default().with_transactional_id(None).with_transaction_timeout_ms(60000)).await;
    assert_eq!(init.error_code, 0);
    let pid = init.producer_id.0;
    let send = |seq: i32, n: usize| produce_request("idem", 0, batch(&vec![&b"v"[..]; n], pid, seq), -1);
    let r: ProduceResponse = call(&mut s, ApiKey::Produce, 9, 2, &send(0, 3)).await;
    assert_eq!(r.responses[0].partition_responses[0].base_offset, 0);
    let r: ProduceResponse = call(&mut s, ApiKey::Produce, 9, 3, &send(3, 2)).await;
    assert_eq!(r.responses[0].partition_responses[0].base_offset, 3);
    // A retry of the first batch: answered with its original offset, not appended again.
    let r: ProduceResponse = call(&mut s, ApiKey::Produce, 9, 4, &send(0, 3)).await;
    let p = &r.responses[0].partition_responses[0];
    assert_eq!((p.error_code, p.base_offset), (0, 0));
    // A gap: OUT_OF_ORDER_SEQUENCE_NUMBER (45).
    let r: ProduceResponse = call(&mut s, ApiKey::Produce, 9, 5, &send(9, 1)).await;
    assert_eq!(r.responses[0].partition_responses[0].error_code, 45);
    // The log holds exactly 5 records.
    let lo = ListOffsetsRequest::default().with_replica_id(BrokerId(-1)).with_topics(vec![
        list_offsets_request::ListOffsetsTopic::default()
            .with_name(TopicName("idem".to_string().into()))
            .with_partitions(vec![list_offsets_request::ListOffsetsPartition::default().with_partition_index(0).with_timestamp(-1)]),
    ]);
    let r: ListOffsetsResponse = call(&mut s, ApiKey::ListOffsets, 7, 6, &lo).await;
    assert_eq!(r.topics[0].partitions[0].offset, 5);
    b.stop().await;
}
