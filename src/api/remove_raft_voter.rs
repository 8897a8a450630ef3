//! RemoveRaftVoter (81, KIP-853): `kafka-metadata-quorum remove-controller`. Carried
//! to the quorum leader like AddRaftVoter (see `add_raft_voter`, `raft::voters`).

use kafka_protocol::messages::{RemoveRaftVoterRequest, RemoveRaftVoterResponse};

use super::add_raft_voter::{check_cluster_id, voter_change_error};
use super::{RequestContext, str_bytes};
use crate::metadata::identity::uuid_to_text;
use crate::protocol::ResponseError;
use crate::raft::voters::RemoveVoter;

pub async fn handle(ctx: &RequestContext, req: RemoveRaftVoterRequest) -> RemoveRaftVoterResponse {
    let result = match check_cluster_id(ctx, req.cluster_id.as_deref()) {
        Ok(()) if req.voter_id < 0 => Err((ResponseError::VoterNotFound, format!("voter id {} is negative", req.voter_id))),
        Ok(()) => {
            let v = RemoveVoter { voter_id: req.voter_id as u64, directory_id: uuid_to_text(req.voter_directory_id) };
            ctx.broker.metadata.raft().remove_voter(v).await.map_err(voter_change_error)
        }
        Err(e) => Err(e),
    };
    let mut resp = RemoveRaftVoterResponse::default();
    if let Err((e, message)) = result {
        resp.error_code = e.code();
        resp.error_message = Some(str_bytes(&message));
    }
    resp
}
