//! DescribeConfigs (32): topic and broker configs with Kafka's names, defaults,
//! sources and synonyms. Also the validation of topic config values, shared with
//! CreateTopics.

use kafka_protocol::messages::describe_configs_response::{DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};

use super::{RequestContext, str_bytes};
use crate::broker::Broker;
use crate::config::Config;
use crate::metadata::TopicImage;
use crate::protocol::ResponseError;

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;

// Config sources, as Kafka numbers them.
const DYNAMIC_TOPIC_CONFIG: i8 = 1;
const STATIC_BROKER_CONFIG: i8 = 4;
const DEFAULT_CONFIG: i8 = 5;

#[derive(Clone, Copy, PartialEq)]
enum Type {
    Boolean = 1,
    String = 2,
    Int = 3,
    Long = 5,
    Double = 6,
    List = 7,
}

/// A topic config: its name, the broker key it falls back to, Kafka's default, type.
struct TopicConfig {
    name: &'static str,
    broker_key: &'static str,
    default: &'static str,
    ty: Type,
}

const fn tc(name: &'static str, broker_key: &'static str, default: &'static str, ty: Type) -> TopicConfig {
    TopicConfig { name, broker_key, default, ty }
}

const TOPIC_CONFIGS: &[TopicConfig] = &[
    tc("cleanup.policy", "log.cleanup.policy", "delete", Type::List),
    tc("compression.type", "compression.type", "producer", Type::String),
    tc("delete.retention.ms", "log.cleaner.delete.retention.ms", "86400000", Type::Long),
    tc("file.delete.delay.ms", "log.segment.delete.delay.ms", "60000", Type::Long),
    tc("flush.messages", "log.flush.interval.messages", "9223372036854775807", Type::Long),
    tc("flush.ms", "log.flush.interval.ms", "9223372036854775807", Type::Long),
    tc("index.interval.bytes", "log.index.interval.bytes", "4096", Type::Int),
    tc("max.compaction.lag.ms", "log.cleaner.max.compaction.lag.ms", "9223372036854775807", Type::Long),
    tc("max.message.bytes", "message.max.bytes", "1048588", Type::Int),
    tc("message.timestamp.type", "log.message.timestamp.type", "CreateTime", Type::String),
    tc("min.cleanable.dirty.ratio", "log.cleaner.min.cleanable.ratio", "0.5", Type::Double),
    tc("min.compaction.lag.ms", "log.cleaner.min.compaction.lag.ms", "0", Type::Long),
    tc("min.insync.replicas", "min.insync.replicas", "1", Type::Int),
    tc("preallocate", "log.preallocate", "false", Type::Boolean),
    tc("retention.bytes", "log.retention.bytes", "-1", Type::Long),
    tc("retention.ms", "log.retention.ms", "604800000", Type::Long),
    tc("segment.bytes", "log.segment.bytes", "1073741824", Type::Int),
    tc("segment.index.bytes", "log.index.size.max.bytes", "10485760", Type::Int),
    tc("segment.ms", "log.roll.ms", "604800000", Type::Long),
    tc("unclean.leader.election.enable", "unclean.leader.election.enable", "false", Type::Boolean),
];

/// The broker-level value a topic config falls back to, if the broker sets it.
fn broker_value(c: &Config, t: &TopicConfig) -> Option<String> {
    match t.broker_key {
        // Retention can be given in hours, minutes or ms: use the resolved value.
        "log.retention.ms" if ["log.retention.ms", "log.retention.minutes", "log.retention.hours"].iter().any(|k| c.raw.contains_key(*k)) => {
            Some(c.log_retention_ms.to_string())
        }
        k => c.raw.get(k).cloned(),
    }
}

/// Check a topic config value; the error message is the one clients show.
pub fn validate_topic_config(key: &str, value: &str, _broker: &Broker) -> Result<(), String> {
    let Some(t) = TOPIC_CONFIGS.iter().find(|t| t.name == key) else {
        return Err(format!("Unknown topic config name: {key}"));
    };
    let ok = match t.ty {
        Type::Boolean => matches!(value, "true" | "false"),
        Type::Int => value.parse::<i32>().is_ok(),
        Type::Long => value.parse::<i64>().is_ok(),
        Type::Double => value.parse::<f64>().is_ok(),
        Type::String | Type::List => match key {
            "cleanup.policy" => value.split(',').all(|p| matches!(p.trim(), "delete" | "compact")),
            "compression.type" => matches!(value, "producer" | "uncompressed" | "gzip" | "snappy" | "lz4" | "zstd"),
            "message.timestamp.type" => matches!(value, "CreateTime" | "LogAppendTime"),
            _ => true,
        },
    };
    if !ok {
        return Err(format!("Invalid value {value} for configuration {key}"));
    }
    if key == "segment.bytes" && value.parse::<i64>().is_ok_and(|v| v < 14) {
        return Err(format!("Invalid value {value} for configuration {key}: Value must be at least 14"));
    }
    Ok(())
}

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
                    Some(t) => Ok(topic_entries(&ctx.broker.config, t, req.include_synonyms, v)),
                    None => Err((ResponseError::UnknownTopicOrPartition, format!("Topic {} does not exist", &*r.resource_name))),
                },
                RESOURCE_BROKER => {
                    let name = r.resource_name.to_string();
                    if name.is_empty() || name == ctx.node_id().to_string() {
                        Ok(broker_entries(&ctx.broker.config, v))
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

fn topic_entries(c: &Config, t: &TopicImage, include_synonyms: bool, v: i16) -> Vec<DescribeConfigsResourceResult> {
    TOPIC_CONFIGS
        .iter()
        .map(|tc| {
            let topic_value = t.configs.get(tc.name);
            let broker = broker_value(c, tc);
            let (value, source) = match (topic_value, &broker) {
                (Some(val), _) => (val.clone(), DYNAMIC_TOPIC_CONFIG),
                (None, Some(b)) => (b.clone(), STATIC_BROKER_CONFIG),
                (None, None) => (tc.default.to_string(), DEFAULT_CONFIG),
            };
            let mut e = entry(tc.name, &value, source, tc.ty, v);
            if include_synonyms {
                if let Some(val) = topic_value {
                    e.synonyms.push(synonym(tc.name, val, DYNAMIC_TOPIC_CONFIG));
                }
                if let Some(b) = &broker {
                    e.synonyms.push(synonym(tc.broker_key, b, STATIC_BROKER_CONFIG));
                }
                e.synonyms.push(synonym(tc.broker_key, tc.default, DEFAULT_CONFIG));
            }
            e
        })
        .collect()
}

fn broker_entries(c: &Config, v: i16) -> Vec<DescribeConfigsResourceResult> {
    let effective: Vec<(&str, String, &str, Type)> = vec![
        ("node.id", c.node_id.to_string(), "-1", Type::Int),
        ("broker.id", c.node_id.to_string(), "-1", Type::Int),
        ("num.partitions", c.num_partitions.to_string(), "1", Type::Int),
        ("default.replication.factor", c.default_replication_factor.to_string(), "1", Type::Int),
        ("auto.create.topics.enable", c.auto_create_topics_enable.to_string(), "true", Type::Boolean),
        ("delete.topic.enable", c.delete_topic_enable.to_string(), "true", Type::Boolean),
        ("log.dirs", c.data_dir.display().to_string(), "", Type::String),
        ("log.segment.bytes", c.log_segment_bytes.to_string(), "1073741824", Type::Int),
        ("log.index.interval.bytes", c.log_index_interval_bytes.to_string(), "4096", Type::Int),
        ("log.index.size.max.bytes", c.log_index_size_max_bytes.to_string(), "10485760", Type::Int),
        ("log.retention.ms", c.log_retention_ms.to_string(), "604800000", Type::Long),
        ("log.retention.bytes", c.log_retention_bytes.to_string(), "-1", Type::Long),
        ("log.cleanup.policy", c.log_cleanup_policy.clone(), "delete", Type::List),
        ("message.max.bytes", c.message_max_bytes.to_string(), "1048588", Type::Int),
        ("socket.request.max.bytes", c.socket_request_max_bytes.to_string(), "104857600", Type::Int),
        ("max.connections", c.connections_max.to_string(), "2147483647", Type::Int),
        ("queued.max.requests", c.inflight_requests_max.to_string(), "500", Type::Int),
    ];
    effective
        .into_iter()
        .map(|(name, value, _default, ty)| {
            let source = if c.raw.contains_key(name) { STATIC_BROKER_CONFIG } else { DEFAULT_CONFIG };
            let mut e = entry(name, &value, source, ty, v);
            e.read_only = true; // no AlterConfigs yet
            e
        })
        .collect()
}
