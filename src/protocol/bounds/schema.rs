//! Request schemas for the bounds walker, transcribed from Kafka's message JSON
//! (`clients/src/main/resources/common/message/*Request.json`): field order, the
//! versions each field exists in, nullable versions, and tagged-field tags.
//! Only what affects the wire layout is kept (no defaults, no entity types).
//!
//! Version ranges per message are the ones `kafka-protocol` 0.18 implements. The
//! transcription is from the Oct 2024 schemas plus the later additions the crate
//! knows about (checked against the crate's generated codecs):
//! Produce v12 (no request change) and v13 (topic `Name` -> `TopicId`, KIP-516);
//! Fetch v18 (tagged `HighWatermark`, tag 1, per partition); Metadata v13,
//! DescribeGroups v6, TxnOffsetCommit v5, ConsumerGroupDescribe v1 (no request
//! change); DescribeCluster v2 (`IncludeFencedBrokers`).
//!
//! A field is inline in version `v` when `versions` contains `v` and `tag` does not;
//! when the tag's range contains `v` it lives in the tagged-field section instead.

use Ty::*;

/// Highest version marker ("N+" in the JSON schemas).
pub(super) const MAX: i16 = i16::MAX;

/// Wire type of a field.
#[derive(Debug, Clone, Copy)]
pub(super) enum Ty {
    Int8,
    Int16,
    Int32,
    Int64,
    #[allow(dead_code)] // in schemas not transcribed yet
    Uint16,
    #[allow(dead_code)]
    Uint32,
    Uuid,
    #[allow(dead_code)]
    Float64,
    Bool,
    String,
    Bytes,
    /// Record batches: nullable bytes on the wire, parsed later.
    Records,
    /// Array of primitive elements.
    ArrayOf(&'static Ty),
    /// Array of structs.
    Array(&'static [Field]),
    /// A single nested struct.
    Struct(&'static [Field]),
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Field {
    pub name: &'static str,
    pub ty: Ty,
    pub versions: (i16, i16),
    pub nullable: Option<(i16, i16)>,
    /// `(tag, tagged versions)`.
    pub tag: Option<(u32, (i16, i16))>,
}

impl Field {
    const fn null(mut self, lo: i16, hi: i16) -> Field {
        self.nullable = Some((lo, hi));
        self
    }
    const fn tag(mut self, tag: u32, lo: i16, hi: i16) -> Field {
        self.tag = Some((tag, (lo, hi)));
        self
    }
}

const fn f(name: &'static str, ty: Ty, lo: i16, hi: i16) -> Field {
    Field {
        name,
        ty,
        versions: (lo, hi),
        nullable: None,
        tag: None,
    }
}

#[derive(Debug)]
pub(super) struct Message {
    pub api_key: i16,
    pub name: &'static str,
    pub versions: (i16, i16),
    /// First flexible version (`MAX` if none).
    pub flexible_from: i16,
    pub fields: &'static [Field],
}

const fn msg(
    api_key: i16,
    name: &'static str,
    lo: i16,
    hi: i16,
    flexible_from: i16,
    fields: &'static [Field],
) -> Message {
    Message {
        api_key,
        name,
        versions: (lo, hi),
        flexible_from,
        fields,
    }
}

// ProduceRequest
const PRODUCE_TOPIC_DATA_PARTITION_DATA: &[Field] = &[
    f("Index", Int32, 0, MAX),
    f("Records", Records, 0, MAX).null(0, MAX),
];
const PRODUCE_TOPIC_DATA: &[Field] = &[
    f("Name", String, 0, 12),
    f("TopicId", Uuid, 13, MAX),
    f(
        "PartitionData",
        Array(PRODUCE_TOPIC_DATA_PARTITION_DATA),
        0,
        MAX,
    ),
];
const PRODUCE: &[Field] = &[
    f("TransactionalId", String, 3, MAX).null(3, MAX),
    f("Acks", Int16, 0, MAX),
    f("TimeoutMs", Int32, 0, MAX),
    f("TopicData", Array(PRODUCE_TOPIC_DATA), 0, MAX),
];

// FetchRequest
const FETCH_REPLICA_STATE: &[Field] = &[
    f("ReplicaId", Int32, 15, MAX),
    f("ReplicaEpoch", Int64, 15, MAX),
];
const FETCH_TOPICS_PARTITIONS: &[Field] = &[
    f("Partition", Int32, 0, MAX),
    f("CurrentLeaderEpoch", Int32, 9, MAX),
    f("FetchOffset", Int64, 0, MAX),
    f("LastFetchedEpoch", Int32, 12, MAX),
    f("LogStartOffset", Int64, 5, MAX),
    f("PartitionMaxBytes", Int32, 0, MAX),
    f("ReplicaDirectoryId", Uuid, 17, MAX).tag(0, 17, MAX),
    f("HighWatermark", Int64, 18, MAX).tag(1, 18, MAX),
];
const FETCH_TOPICS: &[Field] = &[
    f("Topic", String, 0, 12),
    f("TopicId", Uuid, 13, MAX),
    f("Partitions", Array(FETCH_TOPICS_PARTITIONS), 0, MAX),
];
const FETCH_FORGOTTEN_TOPICS_DATA: &[Field] = &[
    f("Topic", String, 7, 12),
    f("TopicId", Uuid, 13, MAX),
    f("Partitions", ArrayOf(&Int32), 7, MAX),
];
const FETCH: &[Field] = &[
    f("ClusterId", String, 12, MAX)
        .null(12, MAX)
        .tag(0, 12, MAX),
    f("ReplicaId", Int32, 0, 14),
    f("ReplicaState", Struct(FETCH_REPLICA_STATE), 15, MAX).tag(1, 15, MAX),
    f("MaxWaitMs", Int32, 0, MAX),
    f("MinBytes", Int32, 0, MAX),
    f("MaxBytes", Int32, 3, MAX),
    f("IsolationLevel", Int8, 4, MAX),
    f("SessionId", Int32, 7, MAX),
    f("SessionEpoch", Int32, 7, MAX),
    f("Topics", Array(FETCH_TOPICS), 0, MAX),
    f(
        "ForgottenTopicsData",
        Array(FETCH_FORGOTTEN_TOPICS_DATA),
        7,
        MAX,
    ),
    f("RackId", String, 11, MAX),
];

// ListOffsetsRequest
const LIST_OFFSETS_TOPICS_PARTITIONS: &[Field] = &[
    f("PartitionIndex", Int32, 0, MAX),
    f("CurrentLeaderEpoch", Int32, 4, MAX),
    f("Timestamp", Int64, 0, MAX),
    f("MaxNumOffsets", Int32, 0, 0),
];
const LIST_OFFSETS_TOPICS: &[Field] = &[
    f("Name", String, 0, MAX),
    f("Partitions", Array(LIST_OFFSETS_TOPICS_PARTITIONS), 0, MAX),
];
const LIST_OFFSETS: &[Field] = &[
    f("ReplicaId", Int32, 0, MAX),
    f("IsolationLevel", Int8, 2, MAX),
    f("Topics", Array(LIST_OFFSETS_TOPICS), 0, MAX),
    f("TimeoutMs", Int32, 10, MAX),
];

// MetadataRequest
const METADATA_TOPICS: &[Field] = &[
    f("TopicId", Uuid, 10, MAX),
    f("Name", String, 0, MAX).null(10, MAX),
];
const METADATA: &[Field] = &[
    f("Topics", Array(METADATA_TOPICS), 0, MAX).null(1, MAX),
    f("AllowAutoTopicCreation", Bool, 4, MAX),
    f("IncludeClusterAuthorizedOperations", Bool, 8, 10),
    f("IncludeTopicAuthorizedOperations", Bool, 8, MAX),
];

// OffsetCommitRequest
const OFFSET_COMMIT_TOPICS_PARTITIONS: &[Field] = &[
    f("PartitionIndex", Int32, 0, MAX),
    f("CommittedOffset", Int64, 0, MAX),
    f("CommittedLeaderEpoch", Int32, 6, MAX),
    f("CommitTimestamp", Int64, 1, 1),
    f("CommittedMetadata", String, 0, MAX).null(0, MAX),
];
const OFFSET_COMMIT_TOPICS: &[Field] = &[
    f("Name", String, 0, MAX),
    f("Partitions", Array(OFFSET_COMMIT_TOPICS_PARTITIONS), 0, MAX),
];
const OFFSET_COMMIT: &[Field] = &[
    f("GroupId", String, 0, MAX),
    f("GenerationIdOrMemberEpoch", Int32, 1, MAX),
    f("MemberId", String, 1, MAX),
    f("GroupInstanceId", String, 7, MAX).null(7, MAX),
    f("RetentionTimeMs", Int64, 2, 4),
    f("Topics", Array(OFFSET_COMMIT_TOPICS), 0, MAX),
];

// OffsetFetchRequest
const OFFSET_FETCH_TOPICS: &[Field] = &[
    f("Name", String, 0, 7),
    f("PartitionIndexes", ArrayOf(&Int32), 0, 7),
];
const OFFSET_FETCH_GROUPS_TOPICS: &[Field] = &[
    f("Name", String, 8, MAX),
    f("PartitionIndexes", ArrayOf(&Int32), 8, MAX),
];
const OFFSET_FETCH_GROUPS: &[Field] = &[
    f("GroupId", String, 8, MAX),
    f("MemberId", String, 9, MAX).null(9, MAX),
    f("MemberEpoch", Int32, 9, MAX),
    f("Topics", Array(OFFSET_FETCH_GROUPS_TOPICS), 8, MAX).null(8, MAX),
];
const OFFSET_FETCH: &[Field] = &[
    f("GroupId", String, 0, 7),
    f("Topics", Array(OFFSET_FETCH_TOPICS), 0, 7).null(2, 7),
    f("Groups", Array(OFFSET_FETCH_GROUPS), 8, MAX),
    f("RequireStable", Bool, 7, MAX),
];

// FindCoordinatorRequest
const FIND_COORDINATOR: &[Field] = &[
    f("Key", String, 0, 3),
    f("KeyType", Int8, 1, MAX),
    f("CoordinatorKeys", ArrayOf(&String), 4, MAX),
];

// JoinGroupRequest
const JOIN_GROUP_PROTOCOLS: &[Field] = &[f("Name", String, 0, MAX), f("Metadata", Bytes, 0, MAX)];
const JOIN_GROUP: &[Field] = &[
    f("GroupId", String, 0, MAX),
    f("SessionTimeoutMs", Int32, 0, MAX),
    f("RebalanceTimeoutMs", Int32, 1, MAX),
    f("MemberId", String, 0, MAX),
    f("GroupInstanceId", String, 5, MAX).null(5, MAX),
    f("ProtocolType", String, 0, MAX),
    f("Protocols", Array(JOIN_GROUP_PROTOCOLS), 0, MAX),
    f("Reason", String, 8, MAX).null(8, MAX),
];

// HeartbeatRequest
const HEARTBEAT: &[Field] = &[
    f("GroupId", String, 0, MAX),
    f("GenerationId", Int32, 0, MAX),
    f("MemberId", String, 0, MAX),
    f("GroupInstanceId", String, 3, MAX).null(3, MAX),
];

// LeaveGroupRequest
const LEAVE_GROUP_MEMBERS: &[Field] = &[
    f("MemberId", String, 3, MAX),
    f("GroupInstanceId", String, 3, MAX).null(3, MAX),
    f("Reason", String, 5, MAX).null(5, MAX),
];
const LEAVE_GROUP: &[Field] = &[
    f("GroupId", String, 0, MAX),
    f("MemberId", String, 0, 2),
    f("Members", Array(LEAVE_GROUP_MEMBERS), 3, MAX),
];

// SyncGroupRequest
const SYNC_GROUP_ASSIGNMENTS: &[Field] = &[
    f("MemberId", String, 0, MAX),
    f("Assignment", Bytes, 0, MAX),
];
const SYNC_GROUP: &[Field] = &[
    f("GroupId", String, 0, MAX),
    f("GenerationId", Int32, 0, MAX),
    f("MemberId", String, 0, MAX),
    f("GroupInstanceId", String, 3, MAX).null(3, MAX),
    f("ProtocolType", String, 5, MAX).null(5, MAX),
    f("ProtocolName", String, 5, MAX).null(5, MAX),
    f("Assignments", Array(SYNC_GROUP_ASSIGNMENTS), 0, MAX),
];

// DescribeGroupsRequest
const DESCRIBE_GROUPS: &[Field] = &[
    f("Groups", ArrayOf(&String), 0, MAX),
    f("IncludeAuthorizedOperations", Bool, 3, MAX),
];

// ListGroupsRequest
const LIST_GROUPS: &[Field] = &[
    f("StatesFilter", ArrayOf(&String), 4, MAX),
    f("TypesFilter", ArrayOf(&String), 5, MAX),
];

// ApiVersionsRequest
const API_VERSIONS: &[Field] = &[
    f("ClientSoftwareName", String, 3, MAX),
    f("ClientSoftwareVersion", String, 3, MAX),
];

// CreateTopicsRequest
const CREATE_TOPICS_TOPICS_ASSIGNMENTS: &[Field] = &[
    f("PartitionIndex", Int32, 0, MAX),
    f("BrokerIds", ArrayOf(&Int32), 0, MAX),
];
const CREATE_TOPICS_TOPICS_CONFIGS: &[Field] = &[
    f("Name", String, 0, MAX),
    f("Value", String, 0, MAX).null(0, MAX),
];
const CREATE_TOPICS_TOPICS: &[Field] = &[
    f("Name", String, 0, MAX),
    f("NumPartitions", Int32, 0, MAX),
    f("ReplicationFactor", Int16, 0, MAX),
    f(
        "Assignments",
        Array(CREATE_TOPICS_TOPICS_ASSIGNMENTS),
        0,
        MAX,
    ),
    f("Configs", Array(CREATE_TOPICS_TOPICS_CONFIGS), 0, MAX),
];
const CREATE_TOPICS: &[Field] = &[
    f("Topics", Array(CREATE_TOPICS_TOPICS), 0, MAX),
    f("timeoutMs", Int32, 0, MAX),
    f("validateOnly", Bool, 1, MAX),
];

// DeleteTopicsRequest
const DELETE_TOPICS_TOPICS: &[Field] = &[
    f("Name", String, 6, MAX).null(6, MAX),
    f("TopicId", Uuid, 6, MAX),
];
const DELETE_TOPICS: &[Field] = &[
    f("Topics", Array(DELETE_TOPICS_TOPICS), 6, MAX),
    f("TopicNames", ArrayOf(&String), 0, 5),
    f("TimeoutMs", Int32, 0, MAX),
];

// DeleteRecordsRequest
const DELETE_RECORDS_TOPICS_PARTITIONS: &[Field] = &[
    f("PartitionIndex", Int32, 0, MAX),
    f("Offset", Int64, 0, MAX),
];
const DELETE_RECORDS_TOPICS: &[Field] = &[
    f("Name", String, 0, MAX),
    f(
        "Partitions",
        Array(DELETE_RECORDS_TOPICS_PARTITIONS),
        0,
        MAX,
    ),
];
const DELETE_RECORDS: &[Field] = &[
    f("Topics", Array(DELETE_RECORDS_TOPICS), 0, MAX),
    f("TimeoutMs", Int32, 0, MAX),
];

// InitProducerIdRequest
const INIT_PRODUCER_ID: &[Field] = &[
    f("TransactionalId", String, 0, MAX).null(0, MAX),
    f("TransactionTimeoutMs", Int32, 0, MAX),
    f("ProducerId", Int64, 3, MAX),
    f("ProducerEpoch", Int16, 3, MAX),
];

// OffsetForLeaderEpochRequest
const OFFSET_FOR_LEADER_EPOCH_TOPICS_PARTITIONS: &[Field] = &[
    f("Partition", Int32, 0, MAX),
    f("CurrentLeaderEpoch", Int32, 2, MAX),
    f("LeaderEpoch", Int32, 0, MAX),
];
const OFFSET_FOR_LEADER_EPOCH_TOPICS: &[Field] = &[
    f("Topic", String, 0, MAX),
    f(
        "Partitions",
        Array(OFFSET_FOR_LEADER_EPOCH_TOPICS_PARTITIONS),
        0,
        MAX,
    ),
];
const OFFSET_FOR_LEADER_EPOCH: &[Field] = &[
    f("ReplicaId", Int32, 3, MAX),
    f("Topics", Array(OFFSET_FOR_LEADER_EPOCH_TOPICS), 0, MAX),
];

// AddPartitionsToTxnRequest
const ADD_PARTITIONS_TO_TXN_ADD_PARTITIONS_TO_TXN_TOPIC: &[Field] = &[
    f("Name", String, 0, MAX),
    f("Partitions", ArrayOf(&Int32), 0, MAX),
];
const ADD_PARTITIONS_TO_TXN_TRANSACTIONS: &[Field] = &[
    f("TransactionalId", String, 4, MAX),
    f("ProducerId", Int64, 4, MAX),
    f("ProducerEpoch", Int16, 4, MAX),
    f("VerifyOnly", Bool, 4, MAX),
    f(
        "Topics",
        Array(ADD_PARTITIONS_TO_TXN_ADD_PARTITIONS_TO_TXN_TOPIC),
        4,
        MAX,
    ),
];
const ADD_PARTITIONS_TO_TXN: &[Field] = &[
    f(
        "Transactions",
        Array(ADD_PARTITIONS_TO_TXN_TRANSACTIONS),
        4,
        MAX,
    ),
    f("V3AndBelowTransactionalId", String, 0, 3),
    f("V3AndBelowProducerId", Int64, 0, 3),
    f("V3AndBelowProducerEpoch", Int16, 0, 3),
    f(
        "V3AndBelowTopics",
        Array(ADD_PARTITIONS_TO_TXN_ADD_PARTITIONS_TO_TXN_TOPIC),
        0,
        3,
    ),
];

// AddOffsetsToTxnRequest
const ADD_OFFSETS_TO_TXN: &[Field] = &[
    f("TransactionalId", String, 0, MAX),
    f("ProducerId", Int64, 0, MAX),
    f("ProducerEpoch", Int16, 0, MAX),
    f("GroupId", String, 0, MAX),
];

// EndTxnRequest
const END_TXN: &[Field] = &[
    f("TransactionalId", String, 0, MAX),
    f("ProducerId", Int64, 0, MAX),
    f("ProducerEpoch", Int16, 0, MAX),
    f("Committed", Bool, 0, MAX),
];

// WriteTxnMarkersRequest (v0 removed in Kafka 4.0; v1 is flexible)
const WRITE_TXN_MARKERS_TOPICS: &[Field] = &[
    f("Name", String, 0, MAX),
    f("PartitionIndexes", ArrayOf(&Int32), 0, MAX),
];
const WRITE_TXN_MARKERS_MARKERS: &[Field] = &[
    f("ProducerId", Int64, 0, MAX),
    f("ProducerEpoch", Int16, 0, MAX),
    f("TransactionResult", Bool, 0, MAX),
    f("Topics", Array(WRITE_TXN_MARKERS_TOPICS), 0, MAX),
    f("CoordinatorEpoch", Int32, 0, MAX),
];
const WRITE_TXN_MARKERS: &[Field] = &[f("Markers", Array(WRITE_TXN_MARKERS_MARKERS), 0, MAX)];

// TxnOffsetCommitRequest
const TXN_OFFSET_COMMIT_TOPICS_PARTITIONS: &[Field] = &[
    f("PartitionIndex", Int32, 0, MAX),
    f("CommittedOffset", Int64, 0, MAX),
    f("CommittedLeaderEpoch", Int32, 2, MAX),
    f("CommittedMetadata", String, 0, MAX).null(0, MAX),
];
const TXN_OFFSET_COMMIT_TOPICS: &[Field] = &[
    f("Name", String, 0, MAX),
    f(
        "Partitions",
        Array(TXN_OFFSET_COMMIT_TOPICS_PARTITIONS),
        0,
        MAX,
    ),
];
const TXN_OFFSET_COMMIT: &[Field] = &[
    f("TransactionalId", String, 0, MAX),
    f("GroupId", String, 0, MAX),
    f("ProducerId", Int64, 0, MAX),
    f("ProducerEpoch", Int16, 0, MAX),
    f("GenerationId", Int32, 3, MAX),
    f("MemberId", String, 3, MAX),
    f("GroupInstanceId", String, 3, MAX).null(3, MAX),
    f("Topics", Array(TXN_OFFSET_COMMIT_TOPICS), 0, MAX),
];

// DescribeConfigsRequest
const DESCRIBE_CONFIGS_RESOURCES: &[Field] = &[
    f("ResourceType", Int8, 0, MAX),
    f("ResourceName", String, 0, MAX),
    f("ConfigurationKeys", ArrayOf(&String), 0, MAX).null(0, MAX),
];
const DESCRIBE_CONFIGS: &[Field] = &[
    f("Resources", Array(DESCRIBE_CONFIGS_RESOURCES), 0, MAX),
    f("IncludeSynonyms", Bool, 1, MAX),
    f("IncludeDocumentation", Bool, 3, MAX),
];

// AlterConfigsRequest
const ALTER_CONFIGS_RESOURCES_CONFIGS: &[Field] = &[
    f("Name", String, 0, MAX),
    f("Value", String, 0, MAX).null(0, MAX),
];
const ALTER_CONFIGS_RESOURCES: &[Field] = &[
    f("ResourceType", Int8, 0, MAX),
    f("ResourceName", String, 0, MAX),
    f("Configs", Array(ALTER_CONFIGS_RESOURCES_CONFIGS), 0, MAX),
];
const ALTER_CONFIGS: &[Field] = &[
    f("Resources", Array(ALTER_CONFIGS_RESOURCES), 0, MAX),
    f("ValidateOnly", Bool, 0, MAX),
];

// DescribeLogDirsRequest
const DESCRIBE_LOG_DIRS_TOPICS: &[Field] = &[
    f("Topic", String, 0, MAX),
    f("Partitions", ArrayOf(&Int32), 0, MAX),
];
const DESCRIBE_LOG_DIRS: &[Field] =
    &[f("Topics", Array(DESCRIBE_LOG_DIRS_TOPICS), 0, MAX).null(0, MAX)];

// CreatePartitionsRequest
const CREATE_PARTITIONS_TOPICS_ASSIGNMENTS: &[Field] = &[f("BrokerIds", ArrayOf(&Int32), 0, MAX)];
const CREATE_PARTITIONS_TOPICS: &[Field] = &[
    f("Name", String, 0, MAX),
    f("Count", Int32, 0, MAX),
    f(
        "Assignments",
        Array(CREATE_PARTITIONS_TOPICS_ASSIGNMENTS),
        0,
        MAX,
    )
    .null(0, MAX),
];
const CREATE_PARTITIONS: &[Field] = &[
    f("Topics", Array(CREATE_PARTITIONS_TOPICS), 0, MAX),
    f("TimeoutMs", Int32, 0, MAX),
    f("ValidateOnly", Bool, 0, MAX),
];

// DeleteGroupsRequest
const DELETE_GROUPS: &[Field] = &[f("GroupsNames", ArrayOf(&String), 0, MAX)];

// ElectLeadersRequest
const ELECT_LEADERS_TOPIC_PARTITIONS: &[Field] = &[
    f("Topic", String, 0, MAX),
    f("Partitions", ArrayOf(&Int32), 0, MAX),
];
const ELECT_LEADERS: &[Field] = &[
    f("ElectionType", Int8, 1, MAX),
    f("TopicPartitions", Array(ELECT_LEADERS_TOPIC_PARTITIONS), 0, MAX).null(0, MAX),
    f("TimeoutMs", Int32, 0, MAX),
];

// AlterPartitionReassignmentsRequest
const ALTER_PARTITION_REASSIGNMENTS_PARTITIONS: &[Field] = &[
    f("PartitionIndex", Int32, 0, MAX),
    f("Replicas", ArrayOf(&Int32), 0, MAX).null(0, MAX),
];
const ALTER_PARTITION_REASSIGNMENTS_TOPICS: &[Field] = &[
    f("Name", String, 0, MAX),
    f("Partitions", Array(ALTER_PARTITION_REASSIGNMENTS_PARTITIONS), 0, MAX),
];
const ALTER_PARTITION_REASSIGNMENTS: &[Field] = &[
    f("TimeoutMs", Int32, 0, MAX),
    f("AllowReplicationFactorChange", Bool, 1, MAX),
    f("Topics", Array(ALTER_PARTITION_REASSIGNMENTS_TOPICS), 0, MAX),
];

// ListPartitionReassignmentsRequest
const LIST_PARTITION_REASSIGNMENTS_TOPICS: &[Field] = &[
    f("Name", String, 0, MAX),
    f("PartitionIndexes", ArrayOf(&Int32), 0, MAX),
];
const LIST_PARTITION_REASSIGNMENTS: &[Field] = &[
    f("TimeoutMs", Int32, 0, MAX),
    f("Topics", Array(LIST_PARTITION_REASSIGNMENTS_TOPICS), 0, MAX).null(0, MAX),
];

// IncrementalAlterConfigsRequest
const INCREMENTAL_ALTER_CONFIGS_RESOURCES_CONFIGS: &[Field] = &[
    f("Name", String, 0, MAX),
    f("ConfigOperation", Int8, 0, MAX),
    f("Value", String, 0, MAX).null(0, MAX),
];
const INCREMENTAL_ALTER_CONFIGS_RESOURCES: &[Field] = &[
    f("ResourceType", Int8, 0, MAX),
    f("ResourceName", String, 0, MAX),
    f(
        "Configs",
        Array(INCREMENTAL_ALTER_CONFIGS_RESOURCES_CONFIGS),
        0,
        MAX,
    ),
];
const INCREMENTAL_ALTER_CONFIGS: &[Field] = &[
    f(
        "Resources",
        Array(INCREMENTAL_ALTER_CONFIGS_RESOURCES),
        0,
        MAX,
    ),
    f("ValidateOnly", Bool, 0, MAX),
];

// OffsetDeleteRequest
const OFFSET_DELETE_TOPICS_PARTITIONS: &[Field] = &[f("PartitionIndex", Int32, 0, MAX)];
const OFFSET_DELETE_TOPICS: &[Field] = &[
    f("Name", String, 0, MAX),
    f("Partitions", Array(OFFSET_DELETE_TOPICS_PARTITIONS), 0, MAX),
];
const OFFSET_DELETE: &[Field] = &[
    f("GroupId", String, 0, MAX),
    f("Topics", Array(OFFSET_DELETE_TOPICS), 0, MAX),
];

// DescribeQuorumRequest
const DESCRIBE_QUORUM_PARTITIONS: &[Field] = &[f("PartitionIndex", Int32, 0, MAX)];
const DESCRIBE_QUORUM_TOPICS: &[Field] = &[f("TopicName", String, 0, MAX), f("Partitions", Array(DESCRIBE_QUORUM_PARTITIONS), 0, MAX)];
const DESCRIBE_QUORUM: &[Field] = &[f("Topics", Array(DESCRIBE_QUORUM_TOPICS), 0, MAX)];

// AddRaftVoterRequest
const ADD_RAFT_VOTER_LISTENERS: &[Field] = &[f("Name", String, 0, MAX), f("Host", String, 0, MAX), f("Port", Uint16, 0, MAX)];
const ADD_RAFT_VOTER: &[Field] = &[
    f("ClusterId", String, 0, MAX).null(0, MAX),
    f("TimeoutMs", Int32, 0, MAX),
    f("VoterId", Int32, 0, MAX),
    f("VoterDirectoryId", Uuid, 0, MAX),
    f("Listeners", Array(ADD_RAFT_VOTER_LISTENERS), 0, MAX),
];

// RemoveRaftVoterRequest
const REMOVE_RAFT_VOTER: &[Field] = &[
    f("ClusterId", String, 0, MAX).null(0, MAX),
    f("VoterId", Int32, 0, MAX),
    f("VoterDirectoryId", Uuid, 0, MAX),
];

// DescribeClusterRequest
const DESCRIBE_CLUSTER: &[Field] = &[
    f("IncludeClusterAuthorizedOperations", Bool, 0, MAX),
    f("EndpointType", Int8, 1, MAX),
    f("IncludeFencedBrokers", Bool, 2, MAX),
];

// DescribeTopicPartitionsRequest
const DESCRIBE_TOPIC_PARTITIONS_TOPICS: &[Field] = &[f("Name", String, 0, MAX)];
const DESCRIBE_TOPIC_PARTITIONS_CURSOR: &[Field] = &[f("TopicName", String, 0, MAX), f("PartitionIndex", Int32, 0, MAX)];
const DESCRIBE_TOPIC_PARTITIONS: &[Field] = &[
    f("Topics", Array(DESCRIBE_TOPIC_PARTITIONS_TOPICS), 0, MAX),
    f("ResponsePartitionLimit", Int32, 0, MAX),
    f("Cursor", Struct(DESCRIBE_TOPIC_PARTITIONS_CURSOR), 0, MAX).null(0, MAX),
];

// DescribeProducersRequest
const DESCRIBE_PRODUCERS_TOPICS: &[Field] = &[
    f("Name", String, 0, MAX),
    f("PartitionIndexes", ArrayOf(&Int32), 0, MAX),
];
const DESCRIBE_PRODUCERS: &[Field] = &[f("Topics", Array(DESCRIBE_PRODUCERS_TOPICS), 0, MAX)];

// DescribeTransactionsRequest
const DESCRIBE_TRANSACTIONS: &[Field] = &[f("TransactionalIds", ArrayOf(&String), 0, MAX)];

// ListTransactionsRequest
const LIST_TRANSACTIONS: &[Field] = &[
    f("StateFilters", ArrayOf(&String), 0, MAX),
    f("ProducerIdFilters", ArrayOf(&Int64), 0, MAX),
    f("DurationFilter", Int64, 1, MAX),
    f("TransactionalIdPattern", String, 2, MAX).null(2, MAX),
];

// ConsumerGroupHeartbeatRequest
const CONSUMER_GROUP_HEARTBEAT_TOPIC_PARTITIONS: &[Field] = &[
    f("TopicId", Uuid, 0, MAX),
    f("Partitions", ArrayOf(&Int32), 0, MAX),
];
const CONSUMER_GROUP_HEARTBEAT: &[Field] = &[
    f("GroupId", String, 0, MAX),
    f("MemberId", String, 0, MAX),
    f("MemberEpoch", Int32, 0, MAX),
    f("InstanceId", String, 0, MAX).null(0, MAX),
    f("RackId", String, 0, MAX).null(0, MAX),
    f("RebalanceTimeoutMs", Int32, 0, MAX),
    f("SubscribedTopicNames", ArrayOf(&String), 0, MAX).null(0, MAX),
    f("SubscribedTopicRegex", String, 1, MAX).null(1, MAX),
    f("ServerAssignor", String, 0, MAX).null(0, MAX),
    f(
        "TopicPartitions",
        Array(CONSUMER_GROUP_HEARTBEAT_TOPIC_PARTITIONS),
        0,
        MAX,
    )
    .null(0, MAX),
];

// ConsumerGroupDescribeRequest
const CONSUMER_GROUP_DESCRIBE: &[Field] = &[
    f("GroupIds", ArrayOf(&String), 0, MAX),
    f("IncludeAuthorizedOperations", Bool, 0, MAX),
];

pub(super) static MESSAGES: &[Message] = &[
    msg(0, "ProduceRequest", 3, 13, 9, PRODUCE), // newer than snapshot; see header. Snapshot max 11
    msg(1, "FetchRequest", 4, 18, 12, FETCH),    // newer than snapshot; see header. Snapshot max 17
    msg(2, "ListOffsetsRequest", 1, 10, 6, LIST_OFFSETS),
    msg(3, "MetadataRequest", 0, 13, 9, METADATA), // newer than snapshot; see header. Snapshot max 12
    msg(8, "OffsetCommitRequest", 2, 9, 8, OFFSET_COMMIT),
    msg(9, "OffsetFetchRequest", 1, 9, 6, OFFSET_FETCH),
    msg(10, "FindCoordinatorRequest", 0, 6, 3, FIND_COORDINATOR),
    msg(11, "JoinGroupRequest", 0, 9, 6, JOIN_GROUP),
    msg(12, "HeartbeatRequest", 0, 4, 4, HEARTBEAT),
    msg(13, "LeaveGroupRequest", 0, 5, 4, LEAVE_GROUP),
    msg(14, "SyncGroupRequest", 0, 5, 4, SYNC_GROUP),
    msg(15, "DescribeGroupsRequest", 0, 6, 5, DESCRIBE_GROUPS), // newer than snapshot; see header. Snapshot max 5
    msg(16, "ListGroupsRequest", 0, 5, 3, LIST_GROUPS),
    msg(18, "ApiVersionsRequest", 0, 4, 3, API_VERSIONS),
    msg(19, "CreateTopicsRequest", 2, 7, 5, CREATE_TOPICS),
    msg(20, "DeleteTopicsRequest", 1, 6, 4, DELETE_TOPICS),
    msg(21, "DeleteRecordsRequest", 0, 2, 2, DELETE_RECORDS),
    msg(22, "InitProducerIdRequest", 0, 5, 2, INIT_PRODUCER_ID),
    msg(
        23,
        "OffsetForLeaderEpochRequest",
        2,
        4,
        4,
        OFFSET_FOR_LEADER_EPOCH,
    ),
    msg(
        24,
        "AddPartitionsToTxnRequest",
        0,
        5,
        3,
        ADD_PARTITIONS_TO_TXN,
    ),
    msg(25, "AddOffsetsToTxnRequest", 0, 4, 3, ADD_OFFSETS_TO_TXN),
    msg(26, "EndTxnRequest", 0, 5, 3, END_TXN),
    msg(27, "WriteTxnMarkersRequest", 1, 1, 1, WRITE_TXN_MARKERS),
    msg(28, "TxnOffsetCommitRequest", 0, 5, 3, TXN_OFFSET_COMMIT), // newer than snapshot; see header. Snapshot max 4
    msg(32, "DescribeConfigsRequest", 1, 4, 4, DESCRIBE_CONFIGS),
    msg(33, "AlterConfigsRequest", 0, 2, 2, ALTER_CONFIGS),
    msg(35, "DescribeLogDirsRequest", 1, 4, 2, DESCRIBE_LOG_DIRS),
    msg(37, "CreatePartitionsRequest", 0, 3, 2, CREATE_PARTITIONS),
    msg(42, "DeleteGroupsRequest", 0, 2, 2, DELETE_GROUPS),
    msg(43, "ElectLeadersRequest", 0, 2, 2, ELECT_LEADERS),
    msg(
        44,
        "IncrementalAlterConfigsRequest",
        0,
        1,
        1,
        INCREMENTAL_ALTER_CONFIGS,
    ),
    msg(45, "AlterPartitionReassignmentsRequest", 0, 1, 0, ALTER_PARTITION_REASSIGNMENTS),
    msg(46, "ListPartitionReassignmentsRequest", 0, 0, 0, LIST_PARTITION_REASSIGNMENTS),
    msg(47, "OffsetDeleteRequest", 0, 0, MAX, OFFSET_DELETE),
    msg(55, "DescribeQuorumRequest", 0, 2, 0, DESCRIBE_QUORUM),
    msg(60, "DescribeClusterRequest", 0, 2, 0, DESCRIBE_CLUSTER), // newer than snapshot; see header. Snapshot max 1
    msg(61, "DescribeProducersRequest", 0, 0, 0, DESCRIBE_PRODUCERS),
    msg(65, "DescribeTransactionsRequest", 0, 0, 0, DESCRIBE_TRANSACTIONS),
    msg(66, "ListTransactionsRequest", 0, 2, 0, LIST_TRANSACTIONS),
    msg(
        68,
        "ConsumerGroupHeartbeatRequest",
        0,
        1,
        0,
        CONSUMER_GROUP_HEARTBEAT,
    ),
    msg(
        69,
        "ConsumerGroupDescribeRequest",
        0,
        1,
        0,
        CONSUMER_GROUP_DESCRIBE,
    ), // newer than snapshot; see header. Snapshot max 0
    msg(75, "DescribeTopicPartitionsRequest", 0, 0, 0, DESCRIBE_TOPIC_PARTITIONS),
    msg(80, "AddRaftVoterRequest", 0, 0, 0, ADD_RAFT_VOTER),
    msg(81, "RemoveRaftVoterRequest", 0, 0, 0, REMOVE_RAFT_VOTER),
];
