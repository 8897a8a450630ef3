//! IncrementalAlterConfigs (44): per-key SET, DELETE, APPEND and SUBTRACT (the last two
//! for list configs such as `cleanup.policy`), what `kafka-configs --alter` and
//! `Admin.incrementalAlterConfigs` send. Shared logic: [`super::config_change`].

use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse};

use super::config_change::{self, Change, ConfigError, Op};
use super::{RequestContext, str_bytes};

const SET: i8 = 0;
const DELETE: i8 = 1;
const APPEND: i8 = 2;
const SUBTRACT: i8 = 3;

pub async fn handle(ctx: &RequestContext, req: IncrementalAlterConfigsRequest) -> IncrementalAlterConfigsResponse {
    let mut responses = Vec::with_capacity(req.resources.len());
    for r in req.resources {
        let mut out = AlterConfigsResourceResponse::default().with_resource_type(r.resource_type).with_resource_name(r.resource_name.clone());
        let ops: Result<Vec<(String, Op)>, ConfigError> = r
            .configs
            .iter()
            .map(|c| {
                let value = c.value.as_ref().map(|v| v.to_string());
                let op = match c.config_operation {
                    SET => Op::Set(value),
                    DELETE => Op::Delete,
                    APPEND => Op::Append(value),
                    SUBTRACT => Op::Subtract(value),
                    other => return Err(ConfigError::InvalidRequest(format!("Unknown alter config operation {other} for config key: {}", &*c.name))),
                };
                Ok((c.name.to_string(), op))
            })
            .collect();
        let outcome = match ops {
            Ok(ops) => {
                let change = Change { resource_type: r.resource_type, resource_name: r.resource_name.to_string(), ops, replace: false };
                config_change::apply(&ctx.broker, change, req.validate_only).await
            }
            Err(e) => Err(e),
        };
        if let Err(e) = outcome {
            out.error_code = e.code();
            out.error_message = Some(str_bytes(&e.to_string()));
        }
        responses.push(out);
    }
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}
