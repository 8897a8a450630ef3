//! Transactions on the wire, at the versions clients send: a transactional
//! InitProducerId, AddPartitionsToTxn v3, a transactional Produce, EndTxn (abort,
//! then commit), and read_committed Fetch / ListOffsets seeing the LSO and the
//! aborted-transaction list.

use super::*;

fn s(v: &str) -> kafka_protocol::protocol::StrBytes {
    kafka_protocol::protocol::StrBytes::from_string(v.to_string())
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
    let b = TestBroker::start().await;
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
