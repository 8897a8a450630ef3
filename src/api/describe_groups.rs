//! DescribeGroups (15): state, protocol and members of each group. A group that does
//! not exist is described as Dead with no error, as Kafka's classic coordinator does.

use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::{DescribeGroupsRequest, DescribeGroupsResponse};

use super::{RequestContext, str_bytes};

pub async fn handle(ctx: &RequestContext, req: DescribeGroupsRequest) -> DescribeGroupsResponse {
    let v = ctx.api_version;
    let groups = req
        .groups
        .iter()
        .map(|id| {
            let mut out = DescribedGroup::default().with_group_id(id.clone());
            if let Err(e) = ctx.broker.groups.check(id) {
                return out.with_error_code(e.code());
            }
            match ctx.broker.groups.describe(id) {
                None => out.group_state = str_bytes("Dead"),
                Some(d) => {
                    out.group_state = str_bytes(d.state.name());
                    out.protocol_type = str_bytes(&d.protocol_type);
                    out.protocol_data = str_bytes(&d.protocol_name);
                    out.members = d
                        .members
                        .into_iter()
                        .map(|m| {
                            DescribedGroupMember::default()
                                .with_member_id(str_bytes(&m.member_id))
                                .with_group_instance_id(if v >= 4 { m.instance_id.as_deref().map(str_bytes) } else { None })
                                .with_client_id(str_bytes(&m.client_id))
                                .with_client_host(str_bytes(&m.client_host))
                                .with_member_metadata(m.metadata)
                                .with_member_assignment(m.assignment)
                        })
                        .collect();
                }
            }
            out
        })
        .collect();
    DescribeGroupsResponse::default().with_groups(groups)
}
