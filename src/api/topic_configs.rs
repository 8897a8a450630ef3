//! Topic configs: Kafka's names, types, defaults and validators, and how a topic's
//! effective value is resolved: a topic override, else a dynamic broker config (set
//! through AlterConfigs, kept in the metadata image), else the broker's static config
//! (`server.properties`, `--override`), else Kafka's default. CreateTopics,
//! AlterConfigs and IncrementalAlterConfigs validate with [`validate`];
//! DescribeConfigs reports the same resolution with its sources; [`log_config`] turns
//! it into the [`LogConfig`] the partition logs run with.

use std::collections::BTreeMap;

use crate::config::Config;
use crate::log::LogConfig;

// Config sources, as Kafka numbers them.
pub const DYNAMIC_TOPIC_CONFIG: i8 = 1;
pub const DYNAMIC_BROKER_CONFIG: i8 = 2;
pub const DYNAMIC_DEFAULT_BROKER_CONFIG: i8 = 3;
pub const STATIC_BROKER_CONFIG: i8 = 4;
pub const DEFAULT_CONFIG: i8 = 5;

#[derive(Clone, Copy, PartialEq, Debug)]
pub enum Type {
    Boolean = 1,
    String = 2,
    Int = 3,
    Long = 5,
    Double = 6,
    List = 7,
}

/// A topic config: its name, the broker key it falls back to, Kafka's default, type,
/// and the smallest value Kafka accepts (numbers only).
pub struct TopicConfig {
    pub name: &'static str,
    pub broker_key: &'static str,
    pub default: &'static str,
    pub ty: Type,
    pub at_least: Option<f64>,
}

const fn tc(name: &'static str, broker_key: &'static str, default: &'static str, ty: Type, at_least: Option<f64>) -> TopicConfig {
    TopicConfig { name, broker_key, default, ty, at_least }
}

const LONG_MAX: &str = "9223372036854775807";

pub const TOPIC_CONFIGS: &[TopicConfig] = &[
    tc("cleanup.policy", "log.cleanup.policy", "delete", Type::List, None),
    tc("compression.type", "compression.type", "producer", Type::String, None),
    tc("delete.retention.ms", "log.cleaner.delete.retention.ms", "86400000", Type::Long, Some(0.0)),
    tc("file.delete.delay.ms", "log.segment.delete.delay.ms", "60000", Type::Long, Some(0.0)),
    tc("flush.messages", "log.flush.interval.messages", LONG_MAX, Type::Long, Some(1.0)),
    tc("flush.ms", "log.flush.interval.ms", LONG_MAX, Type::Long, Some(0.0)),
    tc("index.interval.bytes", "log.index.interval.bytes", "4096", Type::Int, Some(0.0)),
    tc("max.compaction.lag.ms", "log.cleaner.max.compaction.lag.ms", LONG_MAX, Type::Long, Some(1.0)),
    tc("max.message.bytes", "message.max.bytes", "1048588", Type::Int, Some(0.0)),
    tc("message.timestamp.type", "log.message.timestamp.type", "CreateTime", Type::String, None),
    tc("min.cleanable.dirty.ratio", "log.cleaner.min.cleanable.ratio", "0.5", Type::Double, Some(0.0)),
    tc("min.compaction.lag.ms", "log.cleaner.min.compaction.lag.ms", "0", Type::Long, Some(0.0)),
    tc("min.insync.replicas", "min.insync.replicas", "1", Type::Int, Some(1.0)),
    tc("preallocate", "log.preallocate", "false", Type::Boolean, None),
    tc("retention.bytes", "log.retention.bytes", "-1", Type::Long, None),
    tc("retention.ms", "log.retention.ms", "604800000", Type::Long, Some(-1.0)),
    // Kafka 4 raised the floor from 14 bytes to 1 MiB (the broker key keeps its own).
    tc("segment.bytes", "log.segment.bytes", "1073741824", Type::Int, Some(1_048_576.0)),
    tc("segment.index.bytes", "log.index.size.max.bytes", "10485760", Type::Int, Some(4.0)),
    tc("segment.ms", "log.roll.ms", "604800000", Type::Long, Some(1.0)),
    tc("unclean.leader.election.enable", "unclean.leader.election.enable", "false", Type::Boolean, None),
];

pub fn find(name: &str) -> Option<&'static TopicConfig> {
    TOPIC_CONFIGS.iter().find(|t| t.name == name)
}

/// The topic config whose broker-level synonym is `broker_key`.
pub fn by_broker_key(broker_key: &str) -> Option<&'static TopicConfig> {
    TOPIC_CONFIGS.iter().find(|t| t.broker_key == broker_key)
}

/// Check a topic config value; the error message is the one Kafka's clients show.
pub fn validate(key: &str, value: &str) -> Result<(), String> {
    let t = find(key).ok_or_else(|| format!("Unknown topic config name: {key}"))?;
    validate_value(t, key, value)
}

/// Check `value` against the type, range and allowed values of `t` (`key` is the
/// name it was given under: the topic name or its broker synonym).
pub fn validate_value(t: &TopicConfig, key: &str, value: &str) -> Result<(), String> {
    let invalid = |why: &str| format!("Invalid value {value} for configuration {key}: {why}");
    let number = match t.ty {
        Type::Boolean => {
            return matches!(value.trim().to_ascii_lowercase().as_str(), "true" | "false")
                .then_some(())
                .ok_or_else(|| invalid("Expected value to be either true or false"));
        }
        Type::Int => value.trim().parse::<i32>().map(f64::from).map_err(|_| invalid("Not a number of type INT"))?,
        Type::Long => value.trim().parse::<i64>().map(|v| v as f64).map_err(|_| invalid("Not a number of type LONG"))?,
        Type::Double => value.trim().parse::<f64>().map_err(|_| invalid("Not a number of type DOUBLE"))?,
        Type::String | Type::List => return validate_choice(t.name, value).map_err(|why| invalid(&why)),
    };
    if let Some(min) = t.at_least
        && number < min
    {
        return Err(invalid(&format!("Value must be at least {min}")));
    }
    if t.name == "min.cleanable.dirty.ratio" && number > 1.0 {
        return Err(invalid("Value must be no more than 1"));
    }
    Ok(())
}

fn validate_choice(name: &str, value: &str) -> Result<(), String> {
    let allowed: &[&str] = match name {
        "cleanup.policy" => &["delete", "compact"],
        "compression.type" => &["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"],
        "message.timestamp.type" => &["CreateTime", "LogAppendTime"],
        _ => return Ok(()),
    };
    // Kafka 4 accepts an empty cleanup.policy: no cleanup at all (infinite retention).
    let items: Vec<&str> = if name == "cleanup.policy" { value.split(',').map(str::trim).filter(|i| !i.is_empty()).collect() } else { vec![value] };
    match items.iter().find(|i| !allowed.contains(i)) {
        None => Ok(()),
        Some(_) if name == "cleanup.policy" => Err(format!("[{value}] is not a valid value; valid values are [{}]", allowed.join(", "))),
        Some(_) => Err(format!("String must be one of: {}", allowed.join(", "))),
    }
}

/// Milliseconds given in a broker key family `<base>.ms|.minutes|.hours`, the finest wins.
fn broker_millis(raw: &BTreeMap<String, String>, base: &str) -> Option<String> {
    let scaled = |suffix: &str, factor: i64| {
        raw.get(&format!("{base}.{suffix}"))
            .and_then(|v| v.trim().parse::<i64>().ok())
            .map(|v| if v < 0 { v } else { v.saturating_mul(factor) }.to_string())
    };
    scaled("ms", 1).or_else(|| scaled("minutes", 60_000)).or_else(|| scaled("hours", 3_600_000))
}

/// The typed `Config` field behind a broker key, when `Config` has one.
fn typed_broker_value(c: &Config, broker_key: &str) -> Option<String> {
    Some(match broker_key {
        "log.segment.bytes" => c.log_segment_bytes.to_string(),
        "log.index.interval.bytes" => c.log_index_interval_bytes.to_string(),
        "log.index.size.max.bytes" => c.log_index_size_max_bytes.to_string(),
        "message.max.bytes" => c.message_max_bytes.to_string(),
        "log.retention.ms" => c.log_retention_ms.to_string(),
        "log.retention.bytes" => c.log_retention_bytes.to_string(),
        "log.cleanup.policy" => c.log_cleanup_policy.clone(),
        "min.insync.replicas" => c.min_insync_replicas.to_string(),
        "unclean.leader.election.enable" => c.unclean_leader_election_enable.to_string(),
        _ => return None,
    })
}

/// The static broker value of a topic config, if the broker's config sets it (in its
/// file or overrides, or, for embedders and tests, in a typed `Config` field).
pub fn static_broker_value(c: &Config, t: &TopicConfig) -> Option<String> {
    let typed = typed_broker_value(c, t.broker_key);
    if typed.is_some() && typed != typed_broker_value(&Config::default(), t.broker_key) {
        return typed;
    }
    match t.broker_key {
        // Retention and roll can be given in hours, minutes or ms: use the resolved value.
        "log.retention.ms" => broker_millis(&c.raw, "log.retention"),
        "log.roll.ms" => broker_millis(&c.raw, "log.roll"),
        k => c.raw.get(k).cloned(),
    }
}

/// A topic config's effective value and where it comes from, with the lower layers
/// (synonyms, highest precedence first) as DescribeConfigs reports them.
pub struct Resolved {
    pub value: String,
    pub source: i8,
    /// (name, value, source), highest precedence first, Kafka's default last.
    pub synonyms: Vec<(String, String, i8)>,
}

pub fn resolve(c: &Config, dynamic_broker: &DynamicBrokerConfigs<'_>, topic: &BTreeMap<String, String>, t: &TopicConfig) -> Resolved {
    let mut synonyms = Vec::new();
    if let Some(v) = topic.get(t.name) {
        synonyms.push((t.name.to_string(), v.clone(), DYNAMIC_TOPIC_CONFIG));
    }
    if let Some(v) = dynamic_broker.per_broker.and_then(|m| m.get(t.broker_key)) {
        synonyms.push((t.broker_key.to_string(), v.clone(), DYNAMIC_BROKER_CONFIG));
    }
    if let Some(v) = dynamic_broker.cluster_default.and_then(|m| m.get(t.broker_key)) {
        synonyms.push((t.broker_key.to_string(), v.clone(), DYNAMIC_DEFAULT_BROKER_CONFIG));
    }
    if let Some(v) = static_broker_value(c, t) {
        synonyms.push((t.broker_key.to_string(), v, STATIC_BROKER_CONFIG));
    }
    synonyms.push((t.broker_key.to_string(), t.default.to_string(), DEFAULT_CONFIG));
    let (_, value, source) = synonyms[0].clone();
    Resolved { value, source, synonyms }
}

/// Dynamic broker configs from the metadata image: this broker's own and the cluster-wide
/// defaults (either may be absent).
#[derive(Default, Clone, Copy)]
pub struct DynamicBrokerConfigs<'a> {
    pub per_broker: Option<&'a BTreeMap<String, String>>,
    pub cluster_default: Option<&'a BTreeMap<String, String>>,
}

/// The dynamic broker configs of the image, as they apply to this (single) broker.
pub fn dynamic_broker_configs(image: &crate::metadata::Image) -> DynamicBrokerConfigs<'_> {
    DynamicBrokerConfigs { per_broker: Some(&image.broker_configs), cluster_default: Some(&image.broker_default_configs) }
}

/// The settings a partition log of a topic with these overrides runs with.
pub fn log_config(c: &Config, dynamic_broker: &DynamicBrokerConfigs<'_>, topic: &BTreeMap<String, String>) -> LogConfig {
    let value = |name: &str| {
        let t = find(name).expect("log_config asks only for names in TOPIC_CONFIGS");
        resolve(c, dynamic_broker, topic, t).value
    };
    // Values were validated on their way in; a value that still does not parse (a
    // static broker key sluice does not type-check) falls back to Kafka's default.
    let num = |name: &str| -> i64 {
        value(name).trim().parse::<i64>().unwrap_or_else(|_| find(name).map_or(0, |t| t.default.parse().unwrap_or(0)))
    };
    let policy = value("cleanup.policy");
    let has = |p: &str| policy.split(',').any(|x| x.trim() == p);
    LogConfig {
        segment_bytes: num("segment.bytes").max(14) as u64,
        index_interval_bytes: num("index.interval.bytes").max(0) as u64,
        segment_index_bytes: num("segment.index.bytes").max(4) as u64,
        max_message_bytes: num("max.message.bytes").max(0) as usize,
        segment_ms: num("segment.ms").max(1),
        retention_ms: num("retention.ms"),
        retention_bytes: num("retention.bytes"),
        cleanup_delete: has("delete"),
        cleanup_compact: has("compact"),
        delete_retention_ms: num("delete.retention.ms").max(0),
        min_cleanable_dirty_ratio: value("min.cleanable.dirty.ratio").trim().parse::<f64>().ok().filter(|r| (0.0..=1.0).contains(r)).unwrap_or(0.5),
        min_compaction_lag_ms: num("min.compaction.lag.ms").max(0),
        max_compaction_lag_ms: num("max.compaction.lag.ms").max(1),
        log_append_time: value("message.timestamp.type") == "LogAppendTime",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_messages_follow_kafka() {
        assert!(validate("retention.ms", "-1").is_ok());
        assert_eq!(validate("retention.ms", "abc").unwrap_err(), "Invalid value abc for configuration retention.ms: Not a number of type LONG");
        assert_eq!(validate("retention.ms", "-2").unwrap_err(), "Invalid value -2 for configuration retention.ms: Value must be at least -1");
        assert_eq!(validate("nope", "1").unwrap_err(), "Unknown topic config name: nope");
        assert!(validate("segment.bytes", "3000000000").is_err(), "INT overflow");
        assert!(validate("cleanup.policy", "compact,delete").is_ok());
        assert!(validate("cleanup.policy", "compact,nope").is_err());
        assert!(validate("message.timestamp.type", "LogAppendTime").is_ok());
        assert!(validate("message.timestamp.type", "logappendtime").is_err());
        assert!(validate("min.cleanable.dirty.ratio", "1.5").is_err());
        assert!(validate("preallocate", "TRUE").is_ok());
    }

    #[test]
    fn resolution_order_and_log_config() {
        let mut c = Config::default();
        c.set("log.retention.hours", "2").unwrap();
        c.set("log.segment.bytes", "2048").unwrap();
        let per_broker = BTreeMap::from([("log.segment.bytes".to_string(), "4096".to_string())]);
        let dynamic = DynamicBrokerConfigs { per_broker: Some(&per_broker), cluster_default: None };
        let topic = BTreeMap::from([
            ("retention.bytes".to_string(), "100".to_string()),
            ("cleanup.policy".to_string(), "compact".to_string()),
            ("message.timestamp.type".to_string(), "LogAppendTime".to_string()),
        ]);
        let lc = log_config(&c, &dynamic, &topic);
        assert_eq!(lc.retention_ms, 7_200_000);
        assert_eq!(lc.segment_bytes, 4096);
        assert_eq!(lc.retention_bytes, 100);
        assert!(lc.cleanup_compact && !lc.cleanup_delete && lc.log_append_time);
        assert_eq!((lc.delete_retention_ms, lc.min_cleanable_dirty_ratio, lc.min_compaction_lag_ms, lc.max_compaction_lag_ms), (86_400_000, 0.5, 0, i64::MAX));
        let topic = BTreeMap::from([
            ("delete.retention.ms".to_string(), "100".to_string()),
            ("min.cleanable.dirty.ratio".to_string(), "0.01".to_string()),
            ("min.compaction.lag.ms".to_string(), "5".to_string()),
            ("max.compaction.lag.ms".to_string(), "6000".to_string()),
        ]);
        let lc = log_config(&c, &dynamic, &topic);
        assert_eq!((lc.delete_retention_ms, lc.min_cleanable_dirty_ratio, lc.min_compaction_lag_ms, lc.max_compaction_lag_ms), (100, 0.01, 5, 6000));
        let r = resolve(&c, &dynamic, &topic, find("segment.bytes").unwrap());
        assert_eq!(r.source, DYNAMIC_BROKER_CONFIG);
        let sources: Vec<i8> = r.synonyms.iter().map(|s| s.2).collect();
        assert_eq!(sources, vec![DYNAMIC_BROKER_CONFIG, STATIC_BROKER_CONFIG, DEFAULT_CONFIG]);
    }
}
