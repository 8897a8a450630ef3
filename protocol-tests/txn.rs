//! Transactions on the wire, at the versions clients send: a transactional
//! InitProducerId, AddPartitionsToTxn v3, a transactional Produce, EndTxn (abort,
//! then commit), and read_committed Fetch / ListOffsets seeing the LSO and the
//! aborted-transaction list.

use super::*;

fn s(v: &str) -> kafka_protocol::protocol::StrBytes {
    kafka_protocol::protocol::StrBytes::from_string(v.to_string())
}

/// A broker whose transaction coordinator is ready, as a client finds it: a
/// FindCoordinator (key type 1) creates `__transaction_state` (one partition, so one
/// shard for every id), then InitProducerId is retried until the shard is loaded.
async fn txn_broker() -> TestBroker {
    let b = TestBroker::start_with(|c| c.txn_topic_num_partitions = 1).await;
    let mut conn = b.connect().await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut correlation = 900;
    loop {
        correlation += 1;
        let find = FindCoordinatorRequest::default().with_key(s("probe")).with_key_type(1);
        let r: FindCoordinatorResponse = call(&mut conn, ApiKey::FindCoordinator, 3, correlation, &find).await;
        let ready = r.error_code == 0 && {
            let init = InitProducerIdRequest::default().with_transactional_id(Some(TransactionalId(s("probe")))).with_transaction_timeout_ms(60000);
            let i: InitProducerIdResponse = call(&mut conn, ApiKey::InitProducerId, 4, correlation, &init).await;
            // NOT_COORDINATOR (16) until the new partition's leadership reaches the
            // coordinator, COORDINATOR_LOAD_IN_PROGRESS (14) while its shard loads.
            assert!([0, 14, 16].contains(&i.error_code), "InitProducerId error {}", i.error_code);
            i.error_code == 0
        };
        if ready {
            return b;
        }
        assert!(std::time::Instant::now() < deadline, "transaction coordinator not ready (FindCoordinator error {})", r.error_code);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn txn_batch(n: usize, producer_id: i64, epoch: i16, base_sequence: i32) -> Bytes {
    let records: Vec<Record> = (0..n)
        .map(|i| Record {
            transactional: true,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id,
            producer_epoch: epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: base_sequence + i as i32,
            timestamp: 1_700_000_000_000,
            key: None,
            value: Some(Bytes::from_static(b"v")),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(&mut buf, &records, &RecordEncodeOptions { version: 2, compression: Compression::None }).unwrap();
    buf.freeze()
}

fn fetch_committed(topic: &str) -> FetchRequest {
    use fetch_request::{FetchPartition, FetchTopic};
    FetchRequest::default().with_max_wait_ms(0).with_max_bytes(1 << 20).with_isolation_level(1).with_topics(vec![
        FetchTopic::default()
            .with_topic(TopicName(s(topic)))
            .with_partitions(vec![FetchPartition::default().with_partition(0).with_fetch_offset(0).with_partition_max_bytes(1 << 20)]),
    ])
}

#[tokio::test]
async fn transactional_produce_abort_commit_and_read_committed() {
    let b = txn_broker().await;
    let mut c = b.connect().await;
    create_topic(&mut c, "tx", 1).await;
    let tid = TransactionalId(s("wire-tx"));
    let init = InitProducerIdRequest::default().with_transactional_id(Some(tid.clone())).with_transaction_timeout_ms(60000);
    let r: InitProducerIdResponse = call(&mut c, ApiKey::InitProducerId, 4, 1, &init).await;
    assert_eq!((r.error_code, r.producer_epoch), (0, 0));
    let (pid, epoch) = (r.producer_id, r.producer_epoch);
    let bad = init.clone().with_transaction_timeout_ms(900_001);
    let r: InitProducerIdResponse = call(&mut c, ApiKey::InitProducerId, 4, 2, &bad).await;
    assert_eq!(r.error_code, 50, "INVALID_TRANSACTION_TIMEOUT");

    let produce = |seq: i32| produce_request("tx", 0, txn_batch(2, pid.0, epoch, seq), -1).with_transactional_id(Some(tid.clone()));
    let r: ProduceResponse = call(&mut c, ApiKey::Produce, 9, 3, &produce(0)).await;
    assert_eq!(r.responses[0].partition_responses[0].error_code, 48, "INVALID_TXN_STATE before AddPartitionsToTxn");

    let add = AddPartitionsToTxnRequest::default()
        .with_v3_and_below_transactional_id(tid.clone())
        .with_v3_and_below_producer_id(pid)
        .with_v3_and_below_producer_epoch(epoch)
        .with_v3_and_below_topics(vec![add_partitions_to_txn_request::AddPartitionsToTxnTopic::default().with_name(TopicName(s("tx"))).with_partitions(vec![0])]);
    let r: AddPartitionsToTxnResponse = call(&mut c, ApiKey::AddPartitionsToTxn, 3, 4, &add).await;
    assert_eq!(r.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code, 0);
    let r: ProduceResponse = call(&mut c, ApiKey::Produce, 9, 5, &produce(0)).await;
    assert_eq!((r.responses[0].partition_responses[0].error_code, r.responses[0].partition_responses[0].base_offset), (0, 0));

    let r: FetchResponse = call(&mut c, ApiKey::Fetch, 11, 6, &fetch_committed("tx")).await;
    let p = &r.responses[0].partitions[0];
    assert_eq!((p.high_watermark, p.last_stable_offset), (2, 0), "open transaction holds the LSO");
    assert!(p.records.as_ref().is_none_or(|r| r.is_empty()));

    let end = |commit: bool| EndTxnRequest::default().with_transactional_id(tid.clone()).with_producer_id(pid).with_producer_epoch(epoch).with_committed(commit);
    let r: EndTxnResponse = call(&mut c, ApiKey::EndTxn, 3, 7, &end(false)).await;
    assert_eq!(r.error_code, 0);
    let r: EndTxnResponse = call(&mut c, ApiKey::EndTxn, 3, 8, &end(true)).await;
    assert_eq!(r.error_code, 48, "commit after abort: INVALID_TXN_STATE");

    let r: AddPartitionsToTxnResponse = call(&mut c, ApiKey::AddPartitionsToTxn, 3, 9, &add).await;
    assert_eq!(r.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code, 0);
    let r: ProduceResponse = call(&mut c, ApiKey::Produce, 9, 10, &produce(2)).await;
    assert_eq!(r.responses[0].partition_responses[0].base_offset, 3, "after data 0-1 and the ABORT marker at 2");
    let r: EndTxnResponse = call(&mut c, ApiKey::EndTxn, 3, 11, &end(true)).await;
    assert_eq!(r.error_code, 0);

    let r: FetchResponse = call(&mut c, ApiKey::Fetch, 11, 12, &fetch_committed("tx")).await;
    let p = &r.responses[0].partitions[0];
    assert_eq!((p.high_watermark, p.last_stable_offset), (6, 6));
    let aborted = p.aborted_transactions.as_ref().expect("read_committed lists aborted transactions");
    assert_eq!(aborted.len(), 1);
    assert_eq!((aborted[0].producer_id, aborted[0].first_offset), (pid, 0));
    let lo = ListOffsetsRequest::default().with_replica_id(BrokerId(-1)).with_isolation_level(1).with_topics(vec![
        list_offsets_request::ListOffsetsTopic::default()
            .with_name(TopicName(s("tx")))
            .with_partitions(vec![list_offsets_request::ListOffsetsPartition::default().with_partition_index(0).with_timestamp(-1)]),
    ]);
    let r: ListOffsetsResponse = call(&mut c, ApiKey::ListOffsets, 7, 13, &lo).await;
    assert_eq!(r.topics[0].partitions[0].offset, 6);

    // A second incarnation fences the first: the old epoch gets PRODUCER_FENCED (v2+)
    // or INVALID_PRODUCER_EPOCH (older versions).
    let r: InitProducerIdResponse = call(&mut c, ApiKey::InitProducerId, 4, 14, &init).await;
    assert_eq!((r.error_code, r.producer_epoch), (0, 1));
    let r: EndTxnResponse = call(&mut c, ApiKey::EndTxn, 3, 15, &end(true)).await;
    assert_eq!(r.error_code, 90);
    let r: EndTxnResponse = call(&mut c, ApiKey::EndTxn, 1, 16, &end(true)).await;
    assert_eq!(r.error_code, 47);
    b.stop().await;
}

fn markers(topic: &str, partitions: Vec<i32>, producer_id: i64, producer_epoch: i16, coordinator_epoch: i32, commit: bool) -> WriteTxnMarkersRequest {
    use write_txn_markers_request::{WritableTxnMarker, WritableTxnMarkerTopic};
    WriteTxnMarkersRequest::default().with_markers(vec![
        WritableTxnMarker::default()
            .with_producer_id(ProducerId(producer_id))
            .with_producer_epoch(producer_epoch)
            .with_transaction_result(commit)
            .with_coordinator_epoch(coordinator_epoch)
            .with_topics(vec![WritableTxnMarkerTopic::default().with_name(TopicName(s(topic))).with_partition_indexes(partitions)]),
    ])
}

/// Error codes per (topic, partition), in response order.
fn marker_codes(r: &WriteTxnMarkersResponse) -> Vec<(String, i32, i16)> {
    r.markers.iter().flat_map(|m| m.topics.iter().flat_map(|t| t.partitions.iter().map(|p| (t.name.0.to_string(), p.partition_index, p.error_code)))).collect()
}

/// WriteTxnMarkers (27) v1 as a coordinator on another broker sends it: a COMMIT marker
/// ends an open transaction here (the LSO moves to the end); unknown topics and
/// partitions, older producer epochs and older coordinator epochs are refused with
/// Kafka's codes.
#[tokio::test]
async fn write_txn_markers_ends_transactions_and_refuses_what_kafka_refuses() {
    let b = txn_broker().await;
    let mut c = b.connect().await;
    create_topic(&mut c, "wm", 2).await;
    let tid = TransactionalId(s("wm-tx"));
    let init = InitProducerIdRequest::default().with_transactional_id(Some(tid.clone())).with_transaction_timeout_ms(60000);
    let r: InitProducerIdResponse = call(&mut c, ApiKey::InitProducerId, 4, 1, &init).await;
    let (pid, epoch) = (r.producer_id, r.producer_epoch);
    let add = AddPartitionsToTxnRequest::default()
        .with_v3_and_below_transactional_id(tid.clone())
        .with_v3_and_below_producer_id(pid)
        .with_v3_and_below_producer_epoch(epoch)
        .with_v3_and_below_topics(vec![add_partitions_to_txn_request::AddPartitionsToTxnTopic::default().with_name(TopicName(s("wm"))).with_partitions(vec![0])]);
    let r: AddPartitionsToTxnResponse = call(&mut c, ApiKey::AddPartitionsToTxn, 3, 2, &add).await;
    assert_eq!(r.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code, 0);
    let produce = produce_request("wm", 0, txn_batch(2, pid.0, epoch, 0), -1).with_transactional_id(Some(tid.clone()));
    let r: ProduceResponse = call(&mut c, ApiKey::Produce, 9, 3, &produce).await;
    assert_eq!(r.responses[0].partition_responses[0].error_code, 0);
    let r: FetchResponse = call(&mut c, ApiKey::Fetch, 11, 4, &fetch_committed("wm")).await;
    assert_eq!((r.responses[0].partitions[0].high_watermark, r.responses[0].partitions[0].last_stable_offset), (2, 0));

    // Unknown topic, unknown partition (negative and past the end), and a good one.
    let r: WriteTxnMarkersResponse = call(&mut c, ApiKey::WriteTxnMarkers, 1, 5, &markers("nope", vec![0], pid.0, epoch, 4, true)).await;
    assert_eq!(marker_codes(&r), vec![("nope".to_string(), 0, 3)], "UNKNOWN_TOPIC_OR_PARTITION");
    assert_eq!(r.markers[0].producer_id, pid);
    let r: WriteTxnMarkersResponse = call(&mut c, ApiKey::WriteTxnMarkers, 1, 6, &markers("wm", vec![-1, 7, 0], pid.0, epoch, 4, true)).await;
    assert_eq!(marker_codes(&r), vec![("wm".to_string(), -1, 3), ("wm".to_string(), 7, 3), ("wm".to_string(), 0, 0)]);
    // The COMMIT marker (data 0-1, marker 2) closed the transaction: LSO = HW = 3.
    let r: FetchResponse = call(&mut c, ApiKey::Fetch, 11, 7, &fetch_committed("wm")).await;
    assert_eq!((r.responses[0].partitions[0].high_watermark, r.responses[0].partitions[0].last_stable_offset), (3, 3));

    // A marker from an older coordinator epoch than the last one seen for this producer.
    let r: WriteTxnMarkersResponse = call(&mut c, ApiKey::WriteTxnMarkers, 1, 8, &markers("wm", vec![0], pid.0, epoch, 3, false)).await;
    assert_eq!(marker_codes(&r), vec![("wm".to_string(), 0, 52)], "TRANSACTION_COORDINATOR_FENCED");
    // The same coordinator epoch again is fine (a retried marker).
    let r: WriteTxnMarkersResponse = call(&mut c, ApiKey::WriteTxnMarkers, 1, 9, &markers("wm", vec![0], pid.0, epoch, 4, true)).await;
    assert_eq!(marker_codes(&r), vec![("wm".to_string(), 0, 0)]);
    // A newer producer epoch's marker moves the partition on; the older epoch is then refused.
    let r: WriteTxnMarkersResponse = call(&mut c, ApiKey::WriteTxnMarkers, 1, 10, &markers("wm", vec![1], pid.0, epoch + 1, 4, false)).await;
    assert_eq!(marker_codes(&r), vec![("wm".to_string(), 1, 0)]);
    let r: WriteTxnMarkersResponse = call(&mut c, ApiKey::WriteTxnMarkers, 1, 11, &markers("wm", vec![1], pid.0, epoch, 4, false)).await;
    assert_eq!(marker_codes(&r), vec![("wm".to_string(), 1, 47)], "INVALID_PRODUCER_EPOCH");
    // Several markers in one request, each answered under its producer id.
    let mut two = markers("wm", vec![1], 9001, 0, 0, true);
    two.markers.push(markers("wm", vec![1], 9002, 0, 0, false).markers.remove(0));
    let r: WriteTxnMarkersResponse = call(&mut c, ApiKey::WriteTxnMarkers, 1, 12, &two).await;
    assert_eq!(r.markers.iter().map(|m| m.producer_id.0).collect::<Vec<_>>(), vec![9001, 9002]);
    assert!(marker_codes(&r).iter().all(|(_, _, code)| *code == 0), "{:?}", marker_codes(&r));
    b.stop().await;
}

/// DescribeTransactions (65) and ListTransactions (66) at the coordinator, as
/// `kafka-transactions` sends them: a known id's state and partitions, an unknown id
/// TRANSACTIONAL_ID_NOT_FOUND, list filters by state (unknown names echoed back).
#[tokio::test]
async fn describe_and_list_transactions() {
    let b = txn_broker().await;
    let mut c = b.connect().await;
    create_topic(&mut c, "dt", 2).await;
    let tid = TransactionalId(s("dt-tx"));
    let init = InitProducerIdRequest::default().with_transactional_id(Some(tid.clone())).with_transaction_timeout_ms(60000);
    let r: InitProducerIdResponse = call(&mut c, ApiKey::InitProducerId, 4, 1, &init).await;
    assert_eq!(r.error_code, 0);
    let add = AddPartitionsToTxnRequest::default()
        .with_v3_and_below_transactional_id(tid.clone())
        .with_v3_and_below_producer_id(r.producer_id)
        .with_v3_and_below_producer_epoch(r.producer_epoch)
        .with_v3_and_below_topics(vec![add_partitions_to_txn_request::AddPartitionsToTxnTopic::default().with_name(TopicName(s("dt"))).with_partitions(vec![1, 0])]);
    let a: AddPartitionsToTxnResponse = call(&mut c, ApiKey::AddPartitionsToTxn, 3, 2, &add).await;
    assert_eq!(a.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code, 0);

    let d = DescribeTransactionsRequest::default().with_transactional_ids(vec![tid.clone(), TransactionalId(s("nope"))]);
    let d: DescribeTransactionsResponse = call(&mut c, ApiKey::DescribeTransactions, 0, 3, &d).await;
    let (known, unknown) = (&d.transaction_states[0], &d.transaction_states[1]);
    assert_eq!((known.error_code, known.transaction_state.as_str(), known.producer_id, known.producer_epoch), (0, "Ongoing", r.producer_id, r.producer_epoch));
    assert_eq!(known.transaction_timeout_ms, 60000);
    assert!(known.transaction_start_time_ms > 0);
    assert_eq!(known.topics.len(), 1);
    assert_eq!((known.topics[0].topic.as_str(), known.topics[0].partitions.clone()), ("dt", vec![0, 1]));
    assert_eq!(unknown.error_code, 105, "TRANSACTIONAL_ID_NOT_FOUND");

    let l = ListTransactionsRequest::default();
    let l: ListTransactionsResponse = call(&mut c, ApiKey::ListTransactions, 1, 4, &l).await;
    assert_eq!(l.error_code, 0);
    let mut listed: Vec<(String, String)> = l.transaction_states.iter().map(|t| (t.transactional_id.to_string(), t.transaction_state.to_string())).collect();
    listed.sort();
    assert_eq!(listed, vec![("dt-tx".to_string(), "Ongoing".to_string()), ("probe".to_string(), "Empty".to_string())]);
    let l = ListTransactionsRequest::default().with_state_filters(vec![s("Empty"), s("Nope")]);
    let l: ListTransactionsResponse = call(&mut c, ApiKey::ListTransactions, 1, 5, &l).await;
    assert_eq!(l.unknown_state_filters, vec![s("Nope")]);
    assert_eq!(l.transaction_states.iter().map(|t| t.transactional_id.to_string()).collect::<Vec<_>>(), vec!["probe".to_string()]);
    b.stop().await;
}
