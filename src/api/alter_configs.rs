//! AlterConfigs (33), the legacy whole-set API: each resource's dynamic configs become
//! exactly the ones listed (keys not named are removed), as `kafka-configs` did before
//! IncrementalAlterConfigs. Validation, persistence and live application are shared
//! with IncrementalAlterConfigs in [`super::config_change`].

use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{AlterConfigsRequest, AlterConfigsResponse};

use super::config_change::{self, Change, Op};
use super::{RequestContext, str_bytes};

pub async fn handle(ctx: &RequestContext, req: AlterConfigsRequest) -> AlterConfigsResponse {
    let mut responses = Vec::with_capacity(req.resources.len());
    for r in req.resources {
        let change = Change {
            resource_type: r.resource_type,
            resource_name: r.resource_name.to_string(),
            ops: r.configs.iter().map(|c| (c.name.to_string(), Op::Set(c.value.as_ref().map(|v| v.to_string())))).collect(),
            replace: true,
        };
        let mut out = AlterConfigsResourceResponse::default().with_resource_type(r.resource_type).with_resource_name(r.resource_name);
        if let Err(e) = config_change::apply(&ctx.broker, change, req.validate_only).await {
            out.error_code = e.code();
            out.error_message = Some(str_bytes(&e.to_string()));
        }
        responses.push(out);
    }
    AlterConfigsResponse::default().with_responses(responses)
}
