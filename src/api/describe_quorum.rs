//! DescribeQuorum (55): the metadata quorum's leader, epoch, voters and observers.
//!
//! Only the quorum leader knows how far each voter has replicated. As a Kafka broker
//! forwards DescribeQuorum to the active controller, a node that does not lead asks
//! the leader for its view (the admin client sends this to any broker, and would
//! retry the same follower until it times out); only when the leader cannot be
//! asked does it answer NOT_LEADER_OR_FOLLOWER with the leader it knows. Offsets are offsets of the raft log that
//! carries the metadata (`__cluster_metadata-0`).

use kafka_protocol::messages::describe_quorum_response::{Listener, Node, PartitionData, ReplicaState, TopicData};
use kafka_protocol::messages::{BrokerId, DescribeQuorumRequest, DescribeQuorumResponse};

use super::{RequestContext, str_bytes};
use crate::metadata::identity::text_to_uuid;
use crate::protocol::ResponseError;

const METADATA_TOPIC: &str = "__cluster_metadata";

pub async fn handle(ctx: &RequestContext, req: DescribeQuorumRequest) -> DescribeQuorumResponse {
    let view = ctx.broker.metadata.raft().leader_quorum_view().await;
    let v2 = ctx.api_version >= 2;
    let mut resp = DescribeQuorumResponse::default();
    for t in &req.topics {
        let mut topic = TopicData::default().with_topic_name(t.topic_name.clone());
        for p in &t.partitions {
            let mut part = PartitionData::default().with_partition_index(p.partition_index);
            if t.topic_name.as_str() != METADATA_TOPIC || p.partition_index != 0 {
                part.error_code = ResponseError::UnknownTopicOrPartition.code();
            } else {
                part.leader_id = BrokerId(view.leader.map(|l| l as i32).unwrap_or(-1));
                part.leader_epoch = view.term as i32;
                if view.is_leader {
                    let state = |(id, _, leo): &(u64, String, i64)| {
                        // KIP-853 replica keys (v2): the member's directory id when it reported one.
                        let dir = if v2 { view.directory_ids.get(id).and_then(|d| text_to_uuid(d)) } else { None };
                        ReplicaState::default()
                            .with_replica_id(BrokerId(*id as i32))
                            .with_replica_directory_id(dir.unwrap_or_default())
                            .with_log_end_offset(*leo)
                            .with_last_fetch_timestamp(-1)
                            .with_last_caught_up_timestamp(-1)
                    };
                    part.high_watermark = view.high_watermark;
                    part.current_voters = view.voters.iter().map(state).collect();
                    // Broker-only nodes: raft learners the leader streams the log to.
                    part.observers = view.observers.iter().map(state).collect();
                } else {
                    part.error_code = ResponseError::NotLeaderOrFollower.code();
                    part.high_watermark = -1;
                }
            }
            if v2 && part.error_code != 0 {
                part.error_message = ResponseError::try_from_code(part.error_code).map(|e| str_bytes(&e.to_string()));
            }
            topic.partitions.push(part);
        }
        resp.topics.push(topic);
    }
    if v2 {
        let name = ctx.broker.config.controller_listener_names.first().map_or("CONTROLLER", String::as_str);
        resp.nodes = view
            .voters
            .iter()
            .filter_map(|(id, addr, _)| {
                let (host, port) = addr.rsplit_once(':')?;
                let listener = Listener::default().with_name(str_bytes(name)).with_host(str_bytes(host)).with_port(port.parse().ok()?);
                Some(Node::default().with_node_id(BrokerId(*id as i32)).with_listeners(vec![listener]))
            })
            .collect();
    }
    resp
}
