//! FindCoordinator (10). Key type 0 is a group: its coordinator is the leader of
//! its `__consumer_offsets` partition (see `coordinator`); key type 1 a
//! transactional id, the leader of its `__transaction_state` partition. The topic is
//! created at the first such request; COORDINATOR_NOT_AVAILABLE until the key's
//! partition has a live leader. v4+ batch keys.

use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};

use super::{RequestContext, str_bytes};
use crate::protocol::ResponseError;

/// (error, node id, host, port) for one key.
async fn answer(ctx: &RequestContext, key: &str, key_type: i8) -> (i16, i32, String, i32) {
    let err = match key_type {
        0 | 1 if key.is_empty() => Some(ResponseError::InvalidRequest),
        0 | 1 => None,
        _ => Some(ResponseError::InvalidRequest),
    };
    match err {
        Some(e) => (e.code(), -1, String::new(), -1),
        None if key_type == 0 => {
            crate::coordinator::topic::ensure_group_topic(&ctx.broker).await;
            match crate::coordinator::group_coordinator(&ctx.broker.image(), key) {
                Some(c) => (0, c.id, c.host, c.port),
                None => (ResponseError::CoordinatorNotAvailable.code(), -1, String::new(), -1),
            }
        }
        None => {
            crate::coordinator::topic::ensure_txn_topic(&ctx.broker).await;
            match crate::coordinator::txn_coordinator(&ctx.broker.image(), key) {
                Some(c) => (0, c.id, c.host, c.port),
                None => (ResponseError::CoordinatorNotAvailable.code(), -1, String::new(), -1),
            }
        }
    }
}

pub async fn handle(ctx: &RequestContext, req: FindCoordinatorRequest) -> FindCoordinatorResponse {
    let v = ctx.api_version;
    let key_type = if v >= 1 { req.key_type } else { 0 };
    let mut resp = FindCoordinatorResponse::default();
    if v >= 4 {
        for key in &req.coordinator_keys {
            let (error_code, node, host, port) = answer(ctx, key, key_type).await;
            resp.coordinators.push(
                Coordinator::default()
                    .with_key(key.clone())
                    .with_node_id(BrokerId(node))
                    .with_host(str_bytes(&host))
                    .with_port(port)
                    .with_error_code(error_code),
            );
        }
        return resp;
    }
    let (error_code, node, host, port) = answer(ctx, &req.key, key_type).await;
    resp.error_code = error_code;
    resp.node_id = BrokerId(node);
    resp.host = str_bytes(&host);
    resp.port = port;
    resp
}
