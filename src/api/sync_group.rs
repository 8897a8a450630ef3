//! SyncGroup (14): the leader's assignments, handed to each member byte for byte.
//! Members wait until the leader's SyncGroup arrives, so the answer is deferred.

use std::future::Future;

use kafka_protocol::messages::{SyncGroupRequest, SyncGroupResponse};

use super::{RequestContext, str_bytes};
use crate::group::{Error, MemberRef, Reply, SyncResult};

pub fn handle(ctx: &RequestContext, req: SyncGroupRequest) -> impl Future<Output = SyncGroupResponse> + Send + 'static {
    let v = ctx.api_version;
    let instance_id = if v >= 3 { req.group_instance_id.as_ref().map(|s| s.to_string()) } else { None };
    let who = MemberRef { member_id: &req.member_id, instance_id: instance_id.as_deref(), generation: req.generation_id };
    let protocol = if v >= 5 { (req.protocol_type.as_deref(), req.protocol_name.as_deref()) } else { (None, None) };
    let assignments = req.assignments.iter().map(|a| (a.member_id.to_string(), a.assignment.clone())).collect();
    let reply = ctx.broker.groups.sync(&req.group_id, who, protocol, assignments);
    async move {
        let r = match reply {
            Reply::Now(r) => r,
            Reply::Wait(rx) => rx.await.unwrap_or_else(|_| SyncResult::error(Error::UnknownMemberId)),
        };
        let mut resp = SyncGroupResponse::default().with_error_code(crate::group::code_of(r.error)).with_assignment(r.assignment);
        if v >= 5 {
            resp.protocol_type = r.protocol_type.as_deref().map(str_bytes);
            resp.protocol_name = r.protocol_name.as_deref().map(str_bytes);
        }
        resp
    }
}
