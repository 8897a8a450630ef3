//! AddRaftVoter (80, KIP-853): make a controller that observes the metadata quorum
//! a voter (`kafka-metadata-quorum add-controller`). As a Kafka broker forwards it
//! to the active controller, any node carries it to the quorum leader over the raft
//! transport; the checks and their error codes are in `raft::voters`.

use kafka_protocol::messages::{AddRaftVoterRequest, AddRaftVoterResponse};

use super::{RequestContext, str_bytes};
use crate::metadata::identity::uuid_to_text;
use crate::protocol::ResponseError;
use crate::raft::voters::{AddVoter, VoterChangeError};

pub async fn handle(ctx: &RequestContext, req: AddRaftVoterRequest) -> AddRaftVoterResponse {
    let result = match check(ctx, &req) {
        Ok(v) => ctx.broker.metadata.raft().add_voter(v).await.map_err(voter_change_error),
        Err(e) => Err(e),
    };
    let mut resp = AddRaftVoterResponse::default();
    if let Err((e, message)) = result {
        resp.error_code = e.code();
        resp.error_message = Some(str_bytes(&message));
    }
    resp
}

/// The request as the leader takes it: the voter's raft address is the listener
/// named like this node's controller listener (sluice's raft transport listens there).
fn check(ctx: &RequestContext, req: &AddRaftVoterRequest) -> Result<AddVoter, (ResponseError, String)> {
    check_cluster_id(ctx, req.cluster_id.as_deref())?;
    if req.voter_id < 0 {
        return Err((ResponseError::InvalidRequest, format!("voter id {} is negative", req.voter_id)));
    }
    let names = &ctx.broker.config.controller_listener_names;
    let listener = req.listeners.iter().find(|l| names.iter().any(|n| n == l.name.as_str()));
    let Some(listener) = listener else {
        return Err((ResponseError::InvalidRequest, format!("Provided listeners do not contain a listener for {}", names.join(","))));
    };
    Ok(AddVoter {
        voter_id: req.voter_id as u64,
        directory_id: uuid_to_text(req.voter_directory_id),
        addr: format!("{}:{}", listener.host.as_str(), listener.port),
        timeout_ms: req.timeout_ms.max(0) as u64,
    })
}

/// A cluster id in the request must be this cluster's (Kafka: INCONSISTENT_CLUSTER_ID).
pub(super) fn check_cluster_id(ctx: &RequestContext, asked: Option<&str>) -> Result<(), (ResponseError, String)> {
    let Some(asked) = asked else { return Ok(()) };
    let ours = super::cluster::cluster_id(&ctx.broker, &ctx.broker.metadata.image());
    if asked != ours {
        return Err((ResponseError::InconsistentClusterId, format!("cluster id {asked} is not this cluster's ({ours})")));
    }
    Ok(())
}

/// The Kafka error for a refused voter change.
pub(super) fn voter_change_error(e: VoterChangeError) -> (ResponseError, String) {
    let code = match &e {
        VoterChangeError::DuplicateVoter(_) => ResponseError::DuplicateVoter,
        VoterChangeError::VoterNotFound(_) => ResponseError::VoterNotFound,
        VoterChangeError::TimedOut(_) => ResponseError::RequestTimedOut,
        VoterChangeError::NotLeader(_) => ResponseError::NotController,
    };
    (code, e.to_string())
}
