//! Heartbeat (12): keeps a member's session alive; REBALANCE_IN_PROGRESS tells it to rejoin.

use kafka_protocol::messages::{HeartbeatRequest, HeartbeatResponse};

use super::RequestContext;
use crate::group::MemberRef;

pub async fn handle(ctx: &RequestContext, req: HeartbeatRequest) -> HeartbeatResponse {
    let v = ctx.api_version;
    let instance_id = if v >= 3 { req.group_instance_id.as_ref().map(|s| s.to_string()) } else { None };
    let who = MemberRef { member_id: &req.member_id, instance_id: instance_id.as_deref(), generation: req.generation_id };
    let error = ctx.broker.groups.heartbeat(&req.group_id, who).err();
    HeartbeatResponse::default().with_error_code(crate::group::code_of(error))
}
