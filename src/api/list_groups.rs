//! ListGroups (16): every group, filtered by state (v4+) and type (v5+: "classic",
//! or "consumer" for KIP-848 groups).

use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{GroupId, ListGroupsRequest, ListGroupsResponse};

use super::{RequestContext, str_bytes};

pub async fn handle(ctx: &RequestContext, req: ListGroupsRequest) -> ListGroupsResponse {
    let v = ctx.api_version;
    let states: Vec<String> = if v >= 4 { req.states_filter.iter().map(|s| s.to_lowercase()).collect() } else { vec![] };
    let types: Vec<String> = if v >= 5 { req.types_filter.iter().map(|s| s.to_lowercase()).collect() } else { vec![] };
    let groups = ctx
        .broker
        .groups
        .list()
        .into_iter()
        .filter(|g| states.is_empty() || states.contains(&g.state_name.to_lowercase()))
        .filter(|g| types.is_empty() || types.iter().any(|t| t == g.group_type))
        .map(|g| {
            let mut l = ListedGroup::default().with_group_id(GroupId(str_bytes(&g.group_id))).with_protocol_type(str_bytes(&g.protocol_type));
            if v >= 4 {
                l.group_state = str_bytes(g.state_name);
            }
            if v >= 5 {
                l.group_type = str_bytes(g.group_type);
            }
            l
        })
        .collect();
    ListGroupsResponse::default().with_groups(groups)
}
