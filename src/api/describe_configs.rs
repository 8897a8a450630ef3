//! DescribeConfigs (32): topic and broker configs with Kafka's names, defaults,
//! sources and synonyms. The names, defaults, validation and the resolution order
//! (topic override, dynamic broker config, static broker config, default) live in
//! [`super::topic_configs`], shared with CreateTopics and the AlterConfigs APIs.

use kafka_protocol::messages::describe_configs_response::{DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};

use super::{RequestContext, str_bytes};
use super::topic_configs::{self as tcfg, DynamicBrokerConfigs, STATIC_BROKER_CONFIG, DEFAULT_CONFIG, TOPIC_CONFIGS, Type};
use crate::config::Config;
use crate::metadata::TopicImage;
use crate::protocol::ResponseError;

pub const RESOURCE_TOPIC: i8 = 2;
pub const RESOURCE_BROKER: i8 = 4;

pub async fn handle(ctx: &RequestContext, req: DescribeConfigsRequest) -> DescribeConfigsResponse {
    let v = ctx.api_version;
    let image = ctx.broker.image();
    let results = req
        .resources
        .into_iter()
        .map(|r| {
            let keys: Option<Vec<String>> = r.configuration_keys.map(|k| k.iter().map(|s| s.to_string()).collect());
            let wanted = |name: &str| keys.as_ref().is_none_or(|k| k.iter().any(|x| x == name));
            let mut out = DescribeConfigsResult::default().with_resource_type(r.resource_type).with_resource_name(r.resource_name.clone());
            let entries = match r.resource_type {
                RESOURCE_TOPIC => match image.topic(&r.resource_name) {
                    Some(t) => Ok(topic_entries(&ctx.broker.config, &tcfg::dynamic_broker_configs(&image), t, req.include_synonyms, v)),
                    None => Err((ResponseError::UnknownTopicOrPartition, format!("Topic {} does not exist", &*r.resource_name))),
                },
                RESOURCE_BROKER => {
                    let name = r.resource_name.to_string();
                    if name.is_empty() {
                        // The cluster-default entity holds only what was set on it (Kafka).
                        Ok(cluster_default_entries(&image.broker_default_configs, req.include_synonyms, v))
                    } else if name == ctx.node_id().to_string() {
                        Ok(broker_entries(&ctx.broker.config, &tcfg::dynamic_broker_configs(&image), req.include_synonyms, v))
                    } else {
                        Err((ResponseError::InvalidRequest, format!("Unexpected broker id, expected {} or empty string, but received {name}", ctx.node_id())))
                    }
                }
                _ => Err((ResponseError::InvalidRequest, format!("Unsupported resource type {}", r.resource_type))),
            };
            match entries {
                Ok(e) => out.configs = e.into_iter().filter(|c| wanted(&c.name)).collect(),
                Err((e, msg)) => {
                    out.error_code = e.code();
                    out.error_message = Some(str_bytes(&msg));
                }
            }
            out
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

fn entry(name: &str, value: &str, source: i8, ty: Type, v: i16) -> DescribeConfigsResourceResult {
    let mut e = DescribeConfigsResourceResult::default().with_name(str_bytes(name)).with_value(Some(str_bytes(value))).with_config_source(source);
    if v >= 3 {
        e.config_type = ty as i8;
    }
    e
}

fn synonym(name: &str, value: &str, source: i8) -> DescribeConfigsSynonym {
    DescribeConfigsSynonym::default().with_name(str_bytes(name)).with_value(Some(str_bytes(value))).with_source(source)
}

fn topic_entries(c: &Config, dynamic: &DynamicBrokerConfigs<'_>, t: &TopicImage, include_synonyms: bool, v: i16) -> Vec<DescribeConfigsResourceResult> {
    TOPIC_CONFIGS
        .iter()
        .map(|tc| {
            let r = tcfg::resolve(c, dynamic, &t.configs, tc);
            // Every topic config can be altered at run time (AlterConfigs).
            let mut e = entry(tc.name, &r.value, r.source, tc.ty, v);
            if include_synonyms {
                e.synonyms = r.synonyms.iter().map(|(name, value, source)| synonym(name, value, *source)).collect();
            }
            e
        })
        .collect()
}

fn cluster_default_entries(defaults: &std::collections::BTreeMap<String, String>, include_synonyms: bool, v: i16) -> Vec<DescribeConfigsResourceResult> {
    defaults
        .iter()
        .map(|(name, value)| {
            let ty = tcfg::by_broker_key(name).map_or(Type::String, |t| t.ty);
            let mut e = entry(name, value, tcfg::DYNAMIC_DEFAULT_BROKER_CONFIG, ty, v);
            if include_synonyms {
                // Kafka lists only the entity's own value here, not the static layers.
                e.synonyms = vec![synonym(name, value, tcfg::DYNAMIC_DEFAULT_BROKER_CONFIG)];
            }
            e
        })
        .collect()
}

fn broker_entries(c: &Config, dynamic: &DynamicBrokerConfigs<'_>, include_synonyms: bool, v: i16) -> Vec<DescribeConfigsResourceResult> {
    let effective: Vec<(&str, String, &str, Type)> = vec![
        ("node.id", c.node_id.to_string(), "-1", Type::Int),
        ("broker.id", c.node_id.to_string(), "-1", Type::Int),
        ("num.partitions", c.num_partitions.to_string(), "1", Type::Int),
        ("default.replication.factor", c.default_replication_factor.to_string(), "1", Type::Int),
        ("auto.create.topics.enable", c.auto_create_topics_enable.to_string(), "true", Type::Boolean),
        ("delete.topic.enable", c.delete_topic_enable.to_string(), "true", Type::Boolean),
        ("log.dirs", c.data_dir.display().to_string(), "", Type::String),
        ("log.retention.check.interval.ms", c.log_retention_check_interval_ms.to_string(), "300000", Type::Long),
        ("socket.request.max.bytes", c.socket_request_max_bytes.to_string(), "104857600", Type::Int),
        ("max.connections", c.connections_max.to_string(), "2147483647", Type::Int),
        ("queued.max.requests", c.inflight_requests_max.to_string(), "500", Type::Int),
    ];
    let mut out: Vec<DescribeConfigsResourceResult> = effective
        .into_iter()
        .map(|(name, value, _default, ty)| {
            let source = if c.raw.contains_key(name) { STATIC_BROKER_CONFIG } else { DEFAULT_CONFIG };
            let mut e = entry(name, &value, source, ty, v);
            e.read_only = true; // not dynamically updatable here
            e
        })
        .collect();
    // The topic configs' broker-level defaults: dynamically updatable (AlterConfigs on
    // the broker or the cluster default), resolved like a topic without overrides.
    let no_topic_overrides = std::collections::BTreeMap::new();
    for tc in TOPIC_CONFIGS {
        let r = tcfg::resolve(c, dynamic, &no_topic_overrides, tc);
        let mut e = entry(tc.broker_key, &r.value, r.source, tc.ty, v);
        if include_synonyms {
            e.synonyms = r.synonyms.iter().map(|(name, value, source)| synonym(name, value, *source)).collect();
        }
        out.push(e);
    }
    out
}
