//! DeleteRecords, DescribeLogDirs, AlterConfigs and IncrementalAlterConfigs over the
//! wire, at every advertised version.

use super::*;

async fn produce_n(s: &mut TcpStream, topic: &str, partition: i32, n: usize) {
    let values: Vec<Vec<u8>> = (0..n).map(|i| format!("v{i}").into_bytes()).collect();
    let refs: Vec<&[u8]> = values.iter().map(|v| v.as_slice()).collect();
    let r: ProduceResponse = call(s, ApiKey::Produce, 9, 50, &produce_request(topic, partition, batch(&refs, -1, 0), -1)).await;
    assert_eq!(r.responses[0].partition_responses[0].error_code, 0);
}

pub(crate) async fn create_with(s: &mut TcpStream, name: &str, partitions: i32, configs: &[(&str, &str)]) -> i16 {
    use create_topics_request::{CreatableTopic, CreatableTopicConfig};
    let configs = configs
        .iter()
        .map(|(k, v)| CreatableTopicConfig::default().with_name(k.to_string().into()).with_value(Some(v.to_string().into())))
        .collect();
    let req = CreateTopicsRequest::default().with_timeout_ms(5000).with_topics(vec![
        CreatableTopic::default().with_name(TopicName(name.to_string().into())).with_num_partitions(partitions).with_replication_factor(1).with_configs(configs),
    ]);
    let resp: CreateTopicsResponse = call(s, ApiKey::CreateTopics, 7, 901, &req).await;
    resp.topics[0].error_code
}

fn delete_records_request(topic: &str, offsets: &[(i32, i64)]) -> DeleteRecordsRequest {
    use delete_records_request::{DeleteRecordsPartition, DeleteRecordsTopic};
    let partitions = offsets.iter().map(|&(p, o)| DeleteRecordsPartition::default().with_partition_index(p).with_offset(o)).collect();
    DeleteRecordsRequest::default()
        .with_timeout_ms(5000)
        .with_topics(vec![DeleteRecordsTopic::default().with_name(TopicName(topic.to_string().into())).with_partitions(partitions)])
}

pub(crate) async fn earliest(s: &mut TcpStream, topic: &str, partition: i32) -> i64 {
    use list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
    let req = ListOffsetsRequest::default().with_replica_id(BrokerId(-1)).with_topics(vec![
        ListOffsetsTopic::default()
            .with_name(TopicName(topic.to_string().into()))
            .with_partitions(vec![ListOffsetsPartition::default().with_partition_index(partition).with_timestamp(-2)]),
    ]);
    let r: ListOffsetsResponse = call(s, ApiKey::ListOffsets, 7, 60, &req).await;
    assert_eq!(r.topics[0].partitions[0].error_code, 0);
    r.topics[0].partitions[0].offset
}

async fn fetch_at(s: &mut TcpStream, topic: &str, partition: i32, offset: i64) -> fetch_response::PartitionData {
    use fetch_request::{FetchPartition, FetchTopic};
    let req = FetchRequest::default().with_max_wait_ms(0).with_min_bytes(1).with_max_bytes(1 << 20).with_topics(vec![
        FetchTopic::default()
            .with_topic(TopicName(topic.to_string().into()))
            .with_partitions(vec![FetchPartition::default().with_partition(partition).with_fetch_offset(offset).with_partition_max_bytes(1 << 20)]),
    ]);
    let r: FetchResponse = call(s, ApiKey::Fetch, 12, 61, &req).await;
    r.responses[0].partitions[0].clone()
}

#[tokio::test]
async fn delete_records_moves_the_log_start_at_every_version() {
    let b = TestBroker::start().await;
    let mut s = b.connect().await;
    create_topic(&mut s, "dr", 2).await;
    produce_n(&mut s, "dr", 0, 30).await;
    for (version, target) in [(0i16, 4i64), (1, 9), (2, 15)] {
        let req = delete_records_request("dr", &[(0, target), (1, -1), (7, 1)]);
        let r: DeleteRecordsResponse = call(&mut s, ApiKey::DeleteRecords, version, 70, &req).await;
        let parts = &r.topics[0].partitions;
        assert_eq!((parts[0].error_code, parts[0].low_watermark), (0, target), "v{version}");
        assert_eq!((parts[1].error_code, parts[1].low_watermark), (0, 0), "v{version}: -1 on an empty partition");
        assert_eq!(parts[2].error_code, 3, "v{version}: unknown partition");
        assert_eq!(earliest(&mut s, "dr", 0).await, target);
    }
    // Below the log start: OFFSET_OUT_OF_RANGE, and Fetch reports the log start.
    let pd = fetch_at(&mut s, "dr", 0, 3).await;
    assert_eq!((pd.error_code, pd.log_start_offset), (1, 15));
    let pd = fetch_at(&mut s, "dr", 0, 15).await;
    assert_eq!((pd.error_code, pd.log_start_offset), (0, 15));
    assert!(pd.records.is_some_and(|r| !r.is_empty()));
    // Past the high watermark: OFFSET_OUT_OF_RANGE; an earlier offset changes nothing.
    let r: DeleteRecordsResponse = call(&mut s, ApiKey::DeleteRecords, 2, 71, &delete_records_request("dr", &[(0, 31), (1, -7)])).await;
    assert_eq!(r.topics[0].partitions[0].error_code, 1);
    assert_eq!(r.topics[0].partitions[1].error_code, 1);
    let r: DeleteRecordsResponse = call(&mut s, ApiKey::DeleteRecords, 2, 72, &delete_records_request("dr", &[(0, 2)])).await;
    assert_eq!((r.topics[0].partitions[0].error_code, r.topics[0].partitions[0].low_watermark), (0, 15));
    let r: DeleteRecordsResponse = call(&mut s, ApiKey::DeleteRecords, 2, 73, &delete_records_request("dr", &[(0, -1)])).await;
    assert_eq!(r.topics[0].partitions[0].low_watermark, 30);
    // Unknown topic; a compact-only topic refuses (POLICY_VIOLATION).
    let r: DeleteRecordsResponse = call(&mut s, ApiKey::DeleteRecords, 2, 74, &delete_records_request("nope", &[(0, 1)])).await;
    assert_eq!(r.topics[0].partitions[0].error_code, 3);
    assert_eq!(create_with(&mut s, "dr-compact", 1, &[("cleanup.policy", "compact")]).await, 0);
    produce_n(&mut s, "dr-compact", 0, 3).await;
    let r: DeleteRecordsResponse = call(&mut s, ApiKey::DeleteRecords, 2, 75, &delete_records_request("dr-compact", &[(0, 1)])).await;
    assert_eq!(r.topics[0].partitions[0].error_code, 44);
    b.stop().await;
}

#[tokio::test]
async fn delete_records_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    let start = |path: std::path::PathBuf| async move {
        let mut c = Config::default();
        c.set_listen("127.0.0.1:0").unwrap();
        c.data_dir = path;
        Server::start(Broker::open(c).unwrap()).await.unwrap()
    };
    let server = start(path.clone()).await;
    let mut s = TcpStream::connect(server.local_addr).await.unwrap();
    create_topic(&mut s, "persist", 1).await;
    produce_n(&mut s, "persist", 0, 10).await;
    let r: DeleteRecordsResponse = call(&mut s, ApiKey::DeleteRecords, 2, 80, &delete_records_request("persist", &[(0, 6)])).await;
    assert_eq!(r.topics[0].partitions[0].low_watermark, 6);
    drop(s);
    server.shutdown().await.unwrap();
    let server = start(path).await;
    let mut s = TcpStream::connect(server.local_addr).await.unwrap();
    assert_eq!(earliest(&mut s, "persist", 0).await, 6);
    drop(s);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn describe_log_dirs_reports_partition_sizes() {
    use describe_log_dirs_request::DescribableLogDirTopic;
    let b = TestBroker::start().await;
    let mut s = b.connect().await;
    create_topic(&mut s, "ld", 2).await;
    produce_n(&mut s, "ld", 1, 5).await;
    for version in 1..=4i16 {
        let r: DescribeLogDirsResponse = call(&mut s, ApiKey::DescribeLogDirs, version, 90, &DescribeLogDirsRequest::default().with_topics(None)).await;
        assert_eq!(r.results.len(), 1, "v{version}");
        let dir = &r.results[0];
        assert_eq!(dir.error_code, 0);
        assert!(dir.log_dir.ends_with("logs"), "{:?}", dir.log_dir);
        let t = dir.topics.iter().find(|t| &*t.name.0 == "ld").expect("topic listed");
        let sizes: Vec<(i32, i64)> = t.partitions.iter().map(|p| (p.partition_index, p.partition_size)).collect();
        assert_eq!(sizes.len(), 2);
        assert_eq!(sizes[0], (0, 0));
        assert!(sizes[1].0 == 1 && sizes[1].1 > 61, "{sizes:?}");
        if version >= 4 {
            assert!(dir.total_bytes > 0 && dir.usable_bytes > 0 && dir.usable_bytes <= dir.total_bytes);
        }
    }
    let req = DescribeLogDirsRequest::default().with_topics(Some(vec![
        DescribableLogDirTopic::default().with_topic(TopicName("ld".into())).with_partitions(vec![1, 9]),
        DescribableLogDirTopic::default().with_topic(TopicName("missing".into())).with_partitions(vec![0]),
    ]));
    let r: DescribeLogDirsResponse = call(&mut s, ApiKey::DescribeLogDirs, 4, 91, &req).await;
    let topics = &r.results[0].topics;
    assert_eq!(topics.len(), 1);
    assert_eq!(topics[0].partitions.iter().map(|p| p.partition_index).collect::<Vec<_>>(), vec![1]);
    b.stop().await;
}

fn incremental(resource_type: i8, name: &str, ops: &[(&str, i8, Option<&str>)], validate_only: bool) -> IncrementalAlterConfigsRequest {
    use incremental_alter_configs_request::{AlterConfigsResource, AlterableConfig};
    let configs = ops
        .iter()
        .map(|(k, op, v)| AlterableConfig::default().with_name(k.to_string().into()).with_config_operation(*op).with_value(v.map(|v| v.to_string().into())))
        .collect();
    IncrementalAlterConfigsRequest::default()
        .with_validate_only(validate_only)
        .with_resources(vec![AlterConfigsResource::default().with_resource_type(resource_type).with_resource_name(name.to_string().into()).with_configs(configs)])
}

fn legacy(resource_type: i8, name: &str, configs: &[(&str, &str)], validate_only: bool) -> AlterConfigsRequest {
    use alter_configs_request::{AlterConfigsResource, AlterableConfig};
    let configs = configs.iter().map(|(k, v)| AlterableConfig::default().with_name(k.to_string().into()).with_value(Some(v.to_string().into()))).collect();
    AlterConfigsRequest::default()
        .with_validate_only(validate_only)
        .with_resources(vec![AlterConfigsResource::default().with_resource_type(resource_type).with_resource_name(name.to_string().into()).with_configs(configs)])
}

/// (value, source, read_only) of `key` for a topic (2) or broker (4) resource.
async fn describe(s: &mut TcpStream, resource_type: i8, name: &str, key: &str) -> (String, i8, bool) {
    use describe_configs_request::DescribeConfigsResource;
    let req = DescribeConfigsRequest::default().with_include_synonyms(true).with_resources(vec![
        DescribeConfigsResource::default().with_resource_type(resource_type).with_resource_name(name.to_string().into()).with_configuration_keys(Some(vec![key.to_string().into()])),
    ]);
    let r: DescribeConfigsResponse = call(s, ApiKey::DescribeConfigs, 4, 100, &req).await;
    assert_eq!(r.results[0].error_code, 0, "{:?}", r.results[0].error_message);
    let e = &r.results[0].configs[0];
    (e.value.as_ref().unwrap().to_string(), e.config_source, e.read_only)
}

const TOPIC: i8 = 2;
const BROKER: i8 = 4;
const SET: i8 = 0;
const DELETE: i8 = 1;
const APPEND: i8 = 2;

#[tokio::test]
async fn alter_configs_validate_persist_and_describe() {
    let b = TestBroker::start().await;
    let mut s = b.connect().await;
    create_topic(&mut s, "cfg", 1).await;
    assert_eq!(describe(&mut s, TOPIC, "cfg", "retention.ms").await, ("604800000".into(), 5, false));
    for version in 0..=1i16 {
        let r: IncrementalAlterConfigsResponse =
            call(&mut s, ApiKey::IncrementalAlterConfigs, version, 101, &incremental(TOPIC, "cfg", &[("retention.ms", SET, Some("3600000"))], true)).await;
        assert_eq!(r.responses[0].error_code, 0, "v{version}");
        assert_eq!(describe(&mut s, TOPIC, "cfg", "retention.ms").await.1, 5, "validate_only changes nothing");
        let req = incremental(TOPIC, "cfg", &[("retention.ms", SET, Some("3600000")), ("cleanup.policy", APPEND, Some("compact"))], false);
        let r: IncrementalAlterConfigsResponse = call(&mut s, ApiKey::IncrementalAlterConfigs, version, 102, &req).await;
        assert_eq!(r.responses[0].error_code, 0, "v{version}: {:?}", r.responses[0].error_message);
        assert_eq!(describe(&mut s, TOPIC, "cfg", "retention.ms").await, ("3600000".into(), 1, false));
        assert_eq!(describe(&mut s, TOPIC, "cfg", "cleanup.policy").await.0, "delete,compact");
        let req = incremental(TOPIC, "cfg", &[("retention.ms", DELETE, None), ("cleanup.policy", DELETE, None)], false);
        let r: IncrementalAlterConfigsResponse = call(&mut s, ApiKey::IncrementalAlterConfigs, version, 103, &req).await;
        assert_eq!(r.responses[0].error_code, 0);
        assert_eq!(describe(&mut s, TOPIC, "cfg", "retention.ms").await.1, 5);
    }
    // Bad values: INVALID_CONFIG (40) with Kafka's message; unknown topic (3); bad op (42).
    let r: IncrementalAlterConfigsResponse = call(&mut s, ApiKey::IncrementalAlterConfigs, 1, 104, &incremental(TOPIC, "cfg", &[("retention.ms", SET, Some("soon"))], false)).await;
    assert_eq!(r.responses[0].error_code, 40);
    assert_eq!(r.responses[0].error_message.as_deref(), Some("Invalid value soon for configuration retention.ms: Not a number of type LONG"));
    let r: IncrementalAlterConfigsResponse = call(&mut s, ApiKey::IncrementalAlterConfigs, 1, 105, &incremental(TOPIC, "nope", &[("retention.ms", SET, Some("1"))], false)).await;
    assert_eq!(r.responses[0].error_code, 3);
    let r: IncrementalAlterConfigsResponse = call(&mut s, ApiKey::IncrementalAlterConfigs, 1, 106, &incremental(TOPIC, "cfg", &[("retention.ms", 9, Some("1"))], false)).await;
    assert_eq!(r.responses[0].error_code, 42);

    // Legacy AlterConfigs replaces the whole set.
    for version in 0..=2i16 {
        let r: AlterConfigsResponse = call(&mut s, ApiKey::AlterConfigs, version, 110, &legacy(TOPIC, "cfg", &[("retention.bytes", "1048576"), ("segment.ms", "60000")], false)).await;
        assert_eq!(r.responses[0].error_code, 0, "v{version}");
        let r: AlterConfigsResponse = call(&mut s, ApiKey::AlterConfigs, version, 111, &legacy(TOPIC, "cfg", &[("retention.bytes", "2097152")], false)).await;
        assert_eq!(r.responses[0].error_code, 0);
        assert_eq!(describe(&mut s, TOPIC, "cfg", "retention.bytes").await, ("2097152".into(), 1, false));
        assert_eq!(describe(&mut s, TOPIC, "cfg", "segment.ms").await.1, 5, "v{version}: not named, so removed");
        let r: AlterConfigsResponse = call(&mut s, ApiKey::AlterConfigs, version, 112, &legacy(TOPIC, "cfg", &[("segment.bytes", "1000")], false)).await;
        assert_eq!(r.responses[0].error_code, 40);
        assert_eq!(describe(&mut s, TOPIC, "cfg", "retention.bytes").await.0, "2097152", "a failed change changes nothing");
    }

    // Broker: the log defaults are dynamic, per broker ("1") and cluster-wide ("").
    let r: IncrementalAlterConfigsResponse = call(&mut s, ApiKey::IncrementalAlterConfigs, 1, 120, &incremental(BROKER, "", &[("log.retention.ms", SET, Some("7200000"))], false)).await;
    assert_eq!(r.responses[0].error_code, 0, "{:?}", r.responses[0].error_message);
    assert_eq!(describe(&mut s, TOPIC, "cfg", "retention.ms").await, ("7200000".into(), 3, false));
    assert_eq!(describe(&mut s, BROKER, "", "log.retention.ms").await, ("7200000".into(), 3, false));
    let r: IncrementalAlterConfigsResponse = call(&mut s, ApiKey::IncrementalAlterConfigs, 1, 121, &incremental(BROKER, "1", &[("log.retention.ms", SET, Some("3600000"))], false)).await;
    assert_eq!(r.responses[0].error_code, 0);
    assert_eq!(describe(&mut s, TOPIC, "cfg", "retention.ms").await.1, 2);
    assert_eq!(describe(&mut s, BROKER, "1", "log.retention.ms").await, ("3600000".into(), 2, false));
    assert!(describe(&mut s, BROKER, "1", "log.dirs").await.2, "log.dirs is read-only");
    let r: IncrementalAlterConfigsResponse = call(&mut s, ApiKey::IncrementalAlterConfigs, 1, 122, &incremental(BROKER, "1", &[("log.dirs", SET, Some("/x"))], false)).await;
    assert_eq!(r.responses[0].error_code, 42);
    let r: IncrementalAlterConfigsResponse = call(&mut s, ApiKey::IncrementalAlterConfigs, 1, 123, &incremental(BROKER, "7", &[("log.retention.ms", SET, Some("1"))], false)).await;
    assert_eq!(r.responses[0].error_code, 42);
    b.stop().await;
}

#[tokio::test]
async fn config_changes_apply_live_and_survive_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    let start = |path: std::path::PathBuf| async move {
        let mut c = Config::default();
        c.set_listen("127.0.0.1:0").unwrap();
        c.data_dir = path;
        c.log_retention_check_interval_ms = 50;
        Server::start(Broker::open(c).unwrap()).await.unwrap()
    };
    let server = start(path.clone()).await;
    let mut s = TcpStream::connect(server.local_addr).await.unwrap();
    // The test batches are stamped in 2023: without an override, retention would take them.
    assert_eq!(create_with(&mut s, "live", 1, &[("retention.ms", "-1")]).await, 0);
    produce_n(&mut s, "live", 0, 5).await;

    // max.message.bytes: a batch over the new limit is refused.
    let r: IncrementalAlterConfigsResponse = call(&mut s, ApiKey::IncrementalAlterConfigs, 1, 130, &incremental(TOPIC, "live", &[("max.message.bytes", SET, Some("100"))], false)).await;
    assert_eq!(r.responses[0].error_code, 0);
    let big = vec![1u8; 300];
    let r: ProduceResponse = call(&mut s, ApiKey::Produce, 9, 131, &produce_request("live", 0, batch(&[&big], -1, 0), -1)).await;
    assert_eq!(r.responses[0].partition_responses[0].error_code, 10);

    // message.timestamp.type=LogAppendTime: the response carries the append time.
    let req = incremental(TOPIC, "live", &[("max.message.bytes", DELETE, None), ("message.timestamp.type", SET, Some("LogAppendTime"))], false);
    let r: IncrementalAlterConfigsResponse = call(&mut s, ApiKey::IncrementalAlterConfigs, 1, 132, &req).await;
    assert_eq!(r.responses[0].error_code, 0);
    let before = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    let r: ProduceResponse = call(&mut s, ApiKey::Produce, 9, 133, &produce_request("live", 0, batch(&[&big], -1, 0), -1)).await;
    let p = &r.responses[0].partition_responses[0];
    assert_eq!((p.error_code, p.base_offset), (0, 5));
    assert!(p.log_append_time_ms >= before, "{}", p.log_append_time_ms);
    let pd = fetch_at(&mut s, "live", 0, 5).await;
    let records = pd.records.unwrap();
    let h = sluice::protocol::records::check_batch(&records).unwrap();
    assert!(h.is_log_append_time() && h.max_timestamp == p.log_append_time_ms);

    // retention.ms back to the 7-day default: the background pass deletes everything
    // but the (rolled, empty) active segment.
    let r: IncrementalAlterConfigsResponse = call(&mut s, ApiKey::IncrementalAlterConfigs, 1, 134, &incremental(TOPIC, "live", &[("retention.ms", DELETE, None)], false)).await;
    assert_eq!(r.responses[0].error_code, 0);
    let mut start_offset = 0;
    for _ in 0..100 {
        start_offset = earliest(&mut s, "live", 0).await;
        if start_offset > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The LogAppendTime batch is new, so it stays; everything before it is gone.
    assert_eq!(start_offset, 5);
    drop(s);
    server.shutdown().await.unwrap();

    let server = start(path).await;
    let mut s = TcpStream::connect(server.local_addr).await.unwrap();
    assert_eq!(describe(&mut s, TOPIC, "live", "message.timestamp.type").await, ("LogAppendTime".into(), 1, false));
    assert_eq!(describe(&mut s, TOPIC, "live", "retention.ms").await.1, 5);
    assert_eq!(earliest(&mut s, "live", 0).await, 5);
    drop(s);
    server.shutdown().await.unwrap();
}
