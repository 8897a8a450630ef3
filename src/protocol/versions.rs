//! The API versions sluice serves: the single source for ApiVersions answers and
//! for dispatch's range check. Only versions that are implemented and tested go
//! here; an API that is absent is one we do not serve yet.

use kafka_protocol::messages::ApiKey;

/// (api, min, max). Floors follow what Kafka 4.x still accepts (KIP-896);
/// ceilings are what our handlers encode correctly.
pub const SUPPORTED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 12),
    (ApiKey::Fetch, 4, 17),
    (ApiKey::ListOffsets, 1, 9),
    (ApiKey::Metadata, 0, 12),
    (ApiKey::ApiVersions, 0, 4),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 6),
    (ApiKey::InitProducerId, 0, 5),
    (ApiKey::OffsetForLeaderEpoch, 2, 4),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::CreatePartitions, 0, 3),
    // Leader elections and reassignments (controller/preferred.rs, reassignment.rs).
    (ApiKey::ElectLeaders, 0, 2),
    (ApiKey::AlterPartitionReassignments, 0, 1),
    (ApiKey::ListPartitionReassignments, 0, 0),
    (ApiKey::DescribeCluster, 0, 1),
    // KIP-966 paged topic descriptions (the Java Admin client's describeTopics).
    (ApiKey::DescribeTopicPartitions, 0, 0),
    // The metadata quorum (raft/): answered by its leader.
    (ApiKey::DescribeQuorum, 0, 2),
    // KIP-853 voter changes (raft/voters.rs), forwarded to the quorum leader.
    (ApiKey::AddRaftVoter, 0, 0),
    (ApiKey::RemoveRaftVoter, 0, 0),
    // Consumer groups (group/): classic protocol and committed offsets.
    (ApiKey::FindCoordinator, 0, 6),
    (ApiKey::JoinGroup, 0, 9),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    (ApiKey::OffsetCommit, 2, 9),
    (ApiKey::OffsetFetch, 1, 9),
    (ApiKey::DescribeGroups, 0, 5),
    (ApiKey::ListGroups, 0, 5),
    (ApiKey::DeleteGroups, 0, 2),
    (ApiKey::OffsetDelete, 0, 0),
    // KIP-848 consumer groups (group/consumer.rs).
    (ApiKey::ConsumerGroupHeartbeat, 0, 1),
    (ApiKey::ConsumerGroupDescribe, 0, 1),
    // The log over time (log/retention.rs): issue 5.
    (ApiKey::DeleteRecords, 0, 2),
    (ApiKey::DescribeLogDirs, 1, 4),
    (ApiKey::AlterConfigs, 0, 2),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    // Transactions (txn/), transaction version 1 only: AddPartitionsToTxn v4+ is the
    // broker-to-broker form; EndTxn v5 and TxnOffsetCommit v5 belong to KIP-890's
    // transaction version 2, which we do not advertise.
    (ApiKey::AddPartitionsToTxn, 0, 3),
    (ApiKey::AddOffsetsToTxn, 0, 4),
    (ApiKey::EndTxn, 0, 4),
    (ApiKey::TxnOffsetCommit, 0, 4),
    // Broker to broker (txn/marker.rs): v0 is gone in Kafka 4.x.
    (ApiKey::WriteTxnMarkers, 1, 1),
    // Admin (`kafka-transactions`).
    (ApiKey::DescribeTransactions, 0, 0),
    (ApiKey::ListTransactions, 0, 2),
];

pub fn supported_range(api_key: i16) -> Option<(i16, i16)> {
    SUPPORTED.iter().find(|(k, _, _)| *k as i16 == api_key).map(|&(_, lo, hi)| (lo, hi))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::*;
    use kafka_protocol::protocol::Message;

    /// Every advertised range must lie within what the codec crate can decode.
    #[test]
    fn ranges_fit_the_codec() {
        fn check<M: Message>(key: ApiKey) {
            let (lo, hi) = supported_range(key as i16).unwrap();
            assert!(lo >= M::VERSIONS.min && hi <= M::VERSIONS.max && lo <= hi, "{key:?}");
        }
        check::<ProduceRequest>(ApiKey::Produce);
        check::<FetchRequest>(ApiKey::Fetch);
        check::<ListOffsetsRequest>(ApiKey::ListOffsets);
        check::<MetadataRequest>(ApiKey::Metadata);
        check::<ApiVersionsRequest>(ApiKey::ApiVersions);
        check::<CreateTopicsRequest>(ApiKey::CreateTopics);
        check::<DeleteTopicsRequest>(ApiKey::DeleteTopics);
        check::<InitProducerIdRequest>(ApiKey::InitProducerId);
        check::<OffsetForLeaderEpochRequest>(ApiKey::OffsetForLeaderEpoch);
        check::<DescribeConfigsRequest>(ApiKey::DescribeConfigs);
        check::<CreatePartitionsRequest>(ApiKey::CreatePartitions);
        check::<ElectLeadersRequest>(ApiKey::ElectLeaders);
        check::<AlterPartitionReassignmentsRequest>(ApiKey::AlterPartitionReassignments);
        check::<ListPartitionReassignmentsRequest>(ApiKey::ListPartitionReassignments);
        check::<DescribeClusterRequest>(ApiKey::DescribeCluster);
        check::<DescribeTopicPartitionsRequest>(ApiKey::DescribeTopicPartitions);
        check::<DescribeQuorumRequest>(ApiKey::DescribeQuorum);
        check::<AddRaftVoterRequest>(ApiKey::AddRaftVoter);
        check::<RemoveRaftVoterRequest>(ApiKey::RemoveRaftVoter);
        check::<DeleteRecordsRequest>(ApiKey::DeleteRecords);
        check::<DescribeLogDirsRequest>(ApiKey::DescribeLogDirs);
        check::<AlterConfigsRequest>(ApiKey::AlterConfigs);
        check::<IncrementalAlterConfigsRequest>(ApiKey::IncrementalAlterConfigs);
        check::<FindCoordinatorRequest>(ApiKey::FindCoordinator);
        check::<JoinGroupRequest>(ApiKey::JoinGroup);
        check::<SyncGroupRequest>(ApiKey::SyncGroup);
        check::<HeartbeatRequest>(ApiKey::Heartbeat);
        check::<LeaveGroupRequest>(ApiKey::LeaveGroup);
        check::<OffsetCommitRequest>(ApiKey::OffsetCommit);
        check::<OffsetFetchRequest>(ApiKey::OffsetFetch);
        check::<DescribeGroupsRequest>(ApiKey::DescribeGroups);
        check::<ListGroupsRequest>(ApiKey::ListGroups);
        check::<DescribeTransactionsRequest>(ApiKey::DescribeTransactions);
        check::<ListTransactionsRequest>(ApiKey::ListTransactions);
        check::<DeleteGroupsRequest>(ApiKey::DeleteGroups);
        check::<OffsetDeleteRequest>(ApiKey::OffsetDelete);
        check::<ConsumerGroupHeartbeatRequest>(ApiKey::ConsumerGroupHeartbeat);
        check::<ConsumerGroupDescribeRequest>(ApiKey::ConsumerGroupDescribe);
        check::<AddPartitionsToTxnRequest>(ApiKey::AddPartitionsToTxn);
        check::<AddOffsetsToTxnRequest>(ApiKey::AddOffsetsToTxn);
        check::<EndTxnRequest>(ApiKey::EndTxn);
        check::<TxnOffsetCommitRequest>(ApiKey::TxnOffsetCommit);
        check::<WriteTxnMarkersRequest>(ApiKey::WriteTxnMarkers);
    }

    /// The README's table of served APIs lists exactly what ApiVersions advertises.
    #[test]
    fn readme_table_matches() {
        let readme = include_str!("../../README.md");
        let rows: Vec<&str> = readme.lines().filter(|l| l.starts_with("| ") && l.matches('|').count() == 5).skip(1).collect();
        assert_eq!(rows.len(), SUPPORTED.len(), "README lists {} APIs, SUPPORTED has {}", rows.len(), SUPPORTED.len());
        for &(key, lo, hi) in SUPPORTED {
            let cell = format!("| {} | {lo}–{hi} |", key as i16);
            assert!(rows.iter().any(|r| r.contains(&format!("| {key:?} {cell}"))), "README row for {key:?} {lo}–{hi} missing");
        }
    }
}
