//! DeleteGroups (42): an Empty group and its committed offsets go; a group with
//! members gets NON_EMPTY_GROUP.

use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse};

use super::RequestContext;
use crate::group::Error;

pub async fn handle(ctx: &RequestContext, req: DeleteGroupsRequest) -> DeleteGroupsResponse {
    let results = req
        .groups_names
        .iter()
        .map(|id| {
            let r = if id.is_empty() { Err(Error::InvalidGroupId) } else { ctx.broker.groups.delete_group(id) };
            DeletableGroupResult::default().with_group_id(id.clone()).with_error_code(crate::group::code_of(r.err()))
        })
        .collect();
    DeleteGroupsResponse::default().with_results(results)
}
