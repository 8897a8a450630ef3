//! JoinGroup (11): hands the request to the group coordinator and answers when the
//! rebalance's join phase completes. That can take up to the rebalance timeout, so
//! dispatch defers the answer (`Reply::Later`) and the connection keeps reading.

use std::future::Future;
use std::time::Duration;

use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::{JoinGroupRequest, JoinGroupResponse};

use super::{RequestContext, str_bytes};
use crate::group::{Error, JoinRequest, JoinResult, MemberProfile, Reply};

pub fn ms(v: i32) -> Duration {
    Duration::from_millis(v.max(0) as u64)
}

pub fn handle(ctx: &RequestContext, req: JoinGroupRequest) -> impl Future<Output = JoinGroupResponse> + Send + 'static {
    let v = ctx.api_version;
    let member_id = req.member_id.to_string();
    let jr = JoinRequest {
        member_id: member_id.clone(),
        profile: MemberProfile {
            instance_id: if v >= 5 { req.group_instance_id.as_ref().map(|s| s.to_string()) } else { None },
            client_id: ctx.client_id.clone().unwrap_or_default(),
            client_host: ctx.client_host.clone(),
            session_timeout: ms(req.session_timeout_ms),
            // v0 has no rebalance timeout: Kafka uses the session timeout.
            rebalance_timeout: if v >= 1 { ms(req.rebalance_timeout_ms) } else { ms(req.session_timeout_ms) },
            protocol_type: req.protocol_type.to_string(),
            protocols: req.protocols.iter().map(|p| (p.name.to_string(), p.metadata.clone())).collect(),
        },
        require_known_member_id: v >= 4,
        supports_skip_assignment: v >= 9,
    };
    let reply = ctx.broker.groups.join(&req.group_id, jr);
    async move {
        let r = match reply {
            Reply::Now(r) => r,
            // The coordinator answers every waiter; a dropped one means the group went away.
            Reply::Wait(rx) => rx.await.unwrap_or_else(|_| JoinResult::error(Error::UnknownMemberId, &member_id)),
        };
        response(r, v)
    }
}

fn response(r: JoinResult, v: i16) -> JoinGroupResponse {
    let name = match (&r.protocol_name, v >= 7) {
        (Some(n), _) => Some(str_bytes(n)),
        (None, true) => None,
        (None, false) => Some(str_bytes("")),
    };
    JoinGroupResponse::default()
        .with_error_code(crate::group::code_of(r.error))
        .with_generation_id(r.generation)
        .with_protocol_type(r.protocol_type.as_deref().map(str_bytes))
        .with_protocol_name(name)
        .with_leader(str_bytes(&r.leader))
        .with_skip_assignment(v >= 9 && r.skip_assignment)
        .with_member_id(str_bytes(&r.member_id))
        .with_members(
            r.members
                .into_iter()
                .map(|m| {
                    JoinGroupResponseMember::default()
                        .with_member_id(str_bytes(&m.member_id))
                        .with_group_instance_id(if v >= 5 { m.instance_id.as_deref().map(str_bytes) } else { None })
                        .with_metadata(m.metadata)
                })
                .collect(),
        )
}
