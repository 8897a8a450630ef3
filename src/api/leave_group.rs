//! LeaveGroup (13): one member (v0-2) or a batch of members (v3+, KIP-345), each
//! possibly named only by its group.instance.id.

use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{LeaveGroupRequest, LeaveGroupResponse};

use super::{RequestContext, str_bytes};

pub async fn handle(ctx: &RequestContext, req: LeaveGroupRequest) -> LeaveGroupResponse {
    let v = ctx.api_version;
    if v < 3 {
        let r = ctx.broker.groups.leave(&req.group_id, &[(req.member_id.to_string(), None)]);
        let error = r.into_iter().next().and_then(|r| r.err());
        return LeaveGroupResponse::default().with_error_code(crate::group::code_of(error));
    }
    let members: Vec<(String, Option<String>)> =
        req.members.iter().map(|m| (m.member_id.to_string(), m.group_instance_id.as_ref().map(|s| s.to_string()))).collect();
    let results = ctx.broker.groups.leave(&req.group_id, &members);
    let members = members
        .into_iter()
        .zip(results)
        .map(|((member_id, instance_id), r)| {
            MemberResponse::default()
                .with_member_id(str_bytes(&member_id))
                .with_group_instance_id(instance_id.as_deref().map(str_bytes))
                .with_error_code(crate::group::code_of(r.err()))
        })
        .collect();
    LeaveGroupResponse::default().with_members(members)
}
