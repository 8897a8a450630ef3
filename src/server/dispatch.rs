//! Request header → handler. One `match` on the API key; no socket code here and
//! no API logic: version checks, the bounds check, decoding and encoding.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion};

use crate::api::{self, RequestContext};
use crate::broker::Broker;
use crate::protocol::{bounds, versions};
use crate::server::frame::{self, Frame};

/// What the connection's writer does with a request.
pub enum Reply {
    /// A complete response frame.
    Now(Bytes),
    /// A response frame that is ready when the future is (durability, long-poll).
    /// `None` closes the connection (the response could not be encoded).
    Later(Pin<Box<dyn Future<Output = Option<Frame>> + Send>>),
    /// acks=0 produce: Kafka sends nothing back.
    NoResponse,
}

/// Errors that close the connection, as Kafka does for requests it cannot parse.
#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    #[error("frame too short for a request header")]
    ShortFrame,
    #[error("unknown api key {0}")]
    UnknownApi(i16),
    #[error("unsupported version {version} of api {api_key}")]
    UnsupportedVersion { api_key: i16, version: i16 },
    #[error("request header does not decode: {0}")]
    Header(anyhow::Error),
    #[error("request body fails the bounds check: {0}")]
    Bounds(#[from] bounds::BoundsError),
    #[error("request body does not decode: {0}")]
    Decode(anyhow::Error),
    #[error("response does not encode: {0}")]
    Encode(anyhow::Error),
    #[error("records do not read: {0}")]
    ReadRecords(std::io::Error),
}

pub async fn dispatch(broker: &Arc<Broker>, frame: Bytes) -> Result<Reply, DispatchError> {
    dispatch_from(broker, frame, None).await
}

/// `dispatch` for a request that came from `peer`.
pub async fn dispatch_from(broker: &Arc<Broker>, frame: Bytes, peer: Option<std::net::SocketAddr>) -> Result<Reply, DispatchError> {
    if frame.len() < 8 {
        return Err(DispatchError::ShortFrame);
    }
    let api_key_raw = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    let api_key = ApiKey::try_from(api_key_raw).map_err(|_| DispatchError::UnknownApi(api_key_raw))?;
    let Some((min, max)) = versions::supported_range(api_key_raw) else {
        return Err(DispatchError::UnknownApi(api_key_raw));
    };
    if api_key == ApiKey::ApiVersions && !(min..=max).contains(&version) {
        // KIP-511: answer in v0 with UNSUPPORTED_VERSION and our ranges so the
        // client can retry at a version we speak. The header is not parsed: its
        // format at an unknown version is unknown.
        let resp = api::api_versions::unsupported_version();
        return encode_frame(correlation_id, 0, 0, &resp).map(Reply::Now);
    }
    if version < min || version > max {
        return Err(DispatchError::UnsupportedVersion { api_key: api_key_raw, version });
    }
    let mut buf = frame;
    let header_version = api_key.request_header_version(version);
    let header = RequestHeader::decode(&mut buf, header_version).map_err(DispatchError::Header)?;
    bounds::check_body(api_key_raw, version, &buf)?;
    let client_host = peer.map(|p| format!("/{}", p.ip())).unwrap_or_default();
    let ctx = RequestContext { broker: broker.clone(), api_version: version, client_id: header.client_id.map(|s| s.to_string()), client_host };

    macro_rules! now {
        ($req:ty, $handler:path) => {{
            let req = <$req>::decode(&mut buf, version).map_err(DispatchError::Decode)?;
            let resp = $handler(&ctx, req).await;
            encode_frame(correlation_id, version, header_version_of(&resp, version), &resp).map(Reply::Now)
        }};
    }
    match api_key {
        ApiKey::ApiVersions => now!(ApiVersionsRequest, api::api_versions::handle),
        ApiKey::Metadata => now!(MetadataRequest, api::metadata::handle),
        ApiKey::CreateTopics => now!(CreateTopicsRequest, api::create_topics::handle),
        ApiKey::DeleteTopics => now!(DeleteTopicsRequest, api::delete_topics::handle),
        ApiKey::CreatePartitions => now!(CreatePartitionsRequest, api::create_partitions::handle),
        // Leadership and replica placement (controller/preferred.rs, reassignment.rs).
        ApiKey::ElectLeaders => now!(ElectLeadersRequest, api::elect_leaders::handle),
        ApiKey::AlterPartitionReassignments => now!(AlterPartitionReassignmentsRequest, api::alter_partition_reassignments::handle),
        ApiKey::ListPartitionReassignments => now!(ListPartitionReassignmentsRequest, api::list_partition_reassignments::handle),
        ApiKey::InitProducerId => now!(InitProducerIdRequest, api::init_producer_id::handle),
        ApiKey::ListOffsets => now!(ListOffsetsRequest, api::list_offsets::handle),
        ApiKey::OffsetForLeaderEpoch => now!(OffsetForLeaderEpochRequest, api::offset_for_leader_epoch::handle),
        ApiKey::DescribeConfigs => now!(DescribeConfigsRequest, api::describe_configs::handle),
        ApiKey::DescribeCluster => now!(DescribeClusterRequest, api::describe_cluster::handle),
        ApiKey::DescribeTopicPartitions => now!(DescribeTopicPartitionsRequest, api::describe_topic_partitions::handle),
        ApiKey::DescribeQuorum => now!(DescribeQuorumRequest, api::describe_quorum::handle),
        ApiKey::AddRaftVoter => now!(AddRaftVoterRequest, api::add_raft_voter::handle),
        ApiKey::RemoveRaftVoter => now!(RemoveRaftVoterRequest, api::remove_raft_voter::handle),
        ApiKey::FindCoordinator => now!(FindCoordinatorRequest, api::find_coordinator::handle),
        ApiKey::Heartbeat => now!(HeartbeatRequest, api::heartbeat::handle),
        ApiKey::LeaveGroup => now!(LeaveGroupRequest, api::leave_group::handle),
        ApiKey::OffsetFetch => now!(OffsetFetchRequest, api::offset_fetch::handle),
        ApiKey::DescribeGroups => now!(DescribeGroupsRequest, api::describe_groups::handle),
        ApiKey::ListGroups => now!(ListGroupsRequest, api::list_groups::handle),
        ApiKey::DescribeTransactions => now!(DescribeTransactionsRequest, api::describe_transactions::handle),
        ApiKey::ListTransactions => now!(ListTransactionsRequest, api::list_transactions::handle),
        ApiKey::DeleteGroups => now!(DeleteGroupsRequest, api::delete_groups::handle),
        ApiKey::OffsetDelete => now!(OffsetDeleteRequest, api::offset_delete::handle),
        ApiKey::DeleteRecords => now!(DeleteRecordsRequest, api::delete_records::handle),
        ApiKey::DescribeLogDirs => now!(DescribeLogDirsRequest, api::describe_log_dirs::handle),
        ApiKey::AlterConfigs => now!(AlterConfigsRequest, api::alter_configs::handle),
        ApiKey::IncrementalAlterConfigs => now!(IncrementalAlterConfigsRequest, api::incremental_alter_configs::handle),
        ApiKey::ConsumerGroupHeartbeat => now!(ConsumerGroupHeartbeatRequest, api::consumer_group_heartbeat::handle),
        ApiKey::ConsumerGroupDescribe => now!(ConsumerGroupDescribeRequest, api::consumer_group_describe::handle),
        ApiKey::TxnOffsetCommit => now!(TxnOffsetCommitRequest, api::txn_offset_commit::handle),
        // Transactions (txn/): these wait for the transaction log's fsync.
        ApiKey::AddPartitionsToTxn => now!(AddPartitionsToTxnRequest, api::add_partitions_to_txn::handle),
        ApiKey::AddOffsetsToTxn => now!(AddOffsetsToTxnRequest, api::add_offsets_to_txn::handle),
        ApiKey::EndTxn => {
            let req = EndTxnRequest::decode(&mut buf, version).map_err(DispatchError::Decode)?;
            Ok(later(correlation_id, version, api::end_txn::handle(&ctx, req)))
        }
        // Broker to broker: markers are answered once replicated.
        ApiKey::WriteTxnMarkers => {
            let req = WriteTxnMarkersRequest::decode(&mut buf, version).map_err(DispatchError::Decode)?;
            Ok(later(correlation_id, version, api::write_txn_markers::handle(&ctx, req)))
        }
        // These wait (for other members, the leader, fsync): deferred so the
        // connection keeps reading, e.g. heartbeats sent while a JoinGroup is pending.
        ApiKey::JoinGroup => {
            let req = JoinGroupRequest::decode(&mut buf, version).map_err(DispatchError::Decode)?;
            Ok(later(correlation_id, version, api::join_group::handle(&ctx, req)))
        }
        ApiKey::SyncGroup => {
            let req = SyncGroupRequest::decode(&mut buf, version).map_err(DispatchError::Decode)?;
            Ok(later(correlation_id, version, api::sync_group::handle(&ctx, req)))
        }
        ApiKey::OffsetCommit => {
            let req = OffsetCommitRequest::decode(&mut buf, version).map_err(DispatchError::Decode)?;
            Ok(later(correlation_id, version, api::offset_commit::handle(&ctx, req)))
        }
        ApiKey::Produce => {
            let req = ProduceRequest::decode(&mut buf, version).map_err(DispatchError::Decode)?;
            match api::produce::handle(&ctx, req) {
                None => Ok(Reply::NoResponse),
                Some(fut) => Ok(later(correlation_id, version, fut)),
            }
        }
        ApiKey::Fetch => {
            let req = FetchRequest::decode(&mut buf, version).map_err(DispatchError::Decode)?;
            let fut = api::fetch::handle(&ctx, req);
            // Record sets go out as their own chunks (sendfile or vectored writes), not copied.
            Ok(Reply::Later(Box::pin(async move {
                let (resp, files) = fut.await;
                frame::encode_fetch_frame(correlation_id, version, &resp, &files)
                    .inspect_err(|e| tracing::error!(error = %e, "response encoding failed"))
                    .ok()
            })))
        }
        _ => Err(DispatchError::UnknownApi(api_key_raw)),
    }
}

fn header_version_of<R: HeaderVersion>(_: &R, version: i16) -> i16 {
    R::header_version(version)
}

fn later<R>(correlation_id: i32, version: i16, fut: impl Future<Output = R> + Send + 'static) -> Reply
where
    R: Encodable + HeaderVersion + Send + 'static,
{
    Reply::Later(Box::pin(async move {
        let resp = fut.await;
        let hv = R::header_version(version);
        // Handlers build responses for the version asked, so a failure here is a bug;
        // closing the connection is the one answer that cannot desynchronise the client.
        encode_frame(correlation_id, version, hv, &resp)
            .inspect_err(|e| tracing::error!(error = %e, "response encoding failed"))
            .ok()
            .map(Frame::One)
    }))
}

/// Size prefix, response header (v0: correlation id; v1 adds empty tagged fields), body.
pub fn encode_frame<R: Encodable>(correlation_id: i32, version: i16, header_version: i16, resp: &R) -> Result<Bytes, DispatchError> {
    let body_len = resp.compute_size(version).map_err(DispatchError::Encode)?;
    let header_len = if header_version >= 1 { 5 } else { 4 };
    let mut out = BytesMut::with_capacity(4 + header_len + body_len);
    out.put_i32((header_len + body_len) as i32);
    out.put_i32(correlation_id);
    if header_version >= 1 {
        out.put_u8(0); // no tagged fields
    }
    resp.encode(&mut out, version).map_err(DispatchError::Encode)?;
    debug_assert_eq!(out.len(), 4 + header_len + body_len);
    Ok(out.freeze())
}
