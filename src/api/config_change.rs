//! Config changes, shared by AlterConfigs (which replaces a resource's whole set of
//! dynamic configs) and IncrementalAlterConfigs (SET / DELETE / APPEND / SUBTRACT per
//! key). A change is computed and validated against the current image, logged through
//! the metadata store as `MetadataRecord::Config` records (one per changed key, `None`
//! for a removed one), and then applied live to the open partition logs it affects.
//!
//! Resources: topics (every topic config), and the broker, either this node (resource
//! name = node id) or the cluster default (name ""), for the broker-level synonyms of
//! topic configs (`log.retention.ms`, `log.segment.bytes`, ...), which are the topics'
//! defaults. Other broker keys are not dynamic here: INVALID_REQUEST, as Kafka answers
//! for keys it cannot update dynamically.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::topic_configs::{self as tcfg, TopicConfig, Type};
use crate::broker::Broker;
use crate::metadata::{ConfigResource, Image, MetadataRecord};
use crate::protocol::ResponseError;

pub const RESOURCE_TOPIC: i8 = 2;
pub const RESOURCE_BROKER: i8 = 4;

/// One requested change to a key (values as sent; `None` is a null value).
#[derive(Debug, Clone)]
pub enum Op {
    Set(Option<String>),
    Delete,
    Append(Option<String>),
    Subtract(Option<String>),
}

#[derive(Debug, Clone)]
pub struct Change {
    pub resource_type: i8,
    pub resource_name: String,
    pub ops: Vec<(String, Op)>,
    /// AlterConfigs semantics: keys not named are removed.
    pub replace: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{0}")]
    InvalidConfig(String),
    #[error("{0}")]
    InvalidRequest(String),
    #[error("{0}")]
    UnknownTopic(String),
    #[error("{0}")]
    Storage(String),
}

impl ConfigError {
    pub fn code(&self) -> i16 {
        match self {
            ConfigError::InvalidConfig(_) => ResponseError::InvalidConfig,
            ConfigError::InvalidRequest(_) => ResponseError::InvalidRequest,
            ConfigError::UnknownTopic(_) => ResponseError::UnknownTopicOrPartition,
            ConfigError::Storage(_) => ResponseError::KafkaStorageError,
        }
        .code()
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Target {
    Topic(String),
    Broker,
    BrokerDefault,
}

impl Target {
    fn resource(&self) -> ConfigResource {
        match self {
            Target::Topic(name) => ConfigResource::Topic(name.clone()),
            Target::Broker => ConfigResource::Broker,
            Target::BrokerDefault => ConfigResource::BrokerDefault,
        }
    }

    fn current<'a>(&self, image: &'a Image) -> Result<&'a BTreeMap<String, String>, ConfigError> {
        match self {
            Target::Topic(name) => image
                .topic(name)
                .map(|t| &t.configs)
                .ok_or_else(|| ConfigError::UnknownTopic(format!("The topic '{name}' does not exist."))),
            Target::Broker => Ok(&image.broker_configs),
            Target::BrokerDefault => Ok(&image.broker_default_configs),
        }
    }

    /// The definition behind `key` for this kind of resource.
    fn definition(&self, key: &str) -> Result<&'static TopicConfig, ConfigError> {
        match self {
            Target::Topic(_) => tcfg::find(key).ok_or_else(|| ConfigError::InvalidConfig(format!("Unknown topic config name: {key}"))),
            Target::Broker | Target::BrokerDefault => tcfg::by_broker_key(key)
                .ok_or_else(|| ConfigError::InvalidRequest(format!("Cannot update these configs dynamically: Set({key})"))),
        }
    }
}

fn target_of(broker: &Broker, change: &Change) -> Result<Target, ConfigError> {
    match change.resource_type {
        RESOURCE_TOPIC => Ok(Target::Topic(change.resource_name.clone())),
        RESOURCE_BROKER if change.resource_name.is_empty() => Ok(Target::BrokerDefault),
        RESOURCE_BROKER if change.resource_name == broker.config.node_id.to_string() => Ok(Target::Broker),
        RESOURCE_BROKER => Err(ConfigError::InvalidRequest(format!(
            "Unexpected broker id, expected {} or empty string, but received {}",
            broker.config.node_id, change.resource_name
        ))),
        other => Err(ConfigError::InvalidRequest(format!("Unsupported resource type {other}"))),
    }
}

/// Validates `change` and, unless `validate_only`, makes it durable and live.
pub async fn apply(broker: &Arc<Broker>, change: Change, validate_only: bool) -> Result<(), ConfigError> {
    let broker = broker.clone();
    // The metadata log fsyncs: keep it off the async workers.
    tokio::task::spawn_blocking(move || apply_blocking(&broker, &change, validate_only))
        .await
        .expect("config change task does not panic")
}

fn apply_blocking(broker: &Broker, change: &Change, validate_only: bool) -> Result<(), ConfigError> {
    let target = target_of(broker, change)?;
    if validate_only {
        return new_configs(&broker.image(), &target, change).map(|_| ());
    }
    let mut rejected = None;
    broker
        .metadata
        .propose(|image| match new_configs(image, &target, change) {
            Ok(new) => Ok(diff(&target, target.current(image).expect("checked by new_configs"), &new)),
            Err(e) => {
                rejected = Some(e);
                Ok(vec![])
            }
        })
        .map_err(|e| ConfigError::Storage(e.to_string()))?;
    if let Some(e) = rejected {
        return Err(e);
    }
    apply_live(broker, &target);
    Ok(())
}

/// Kafka's replication throttle configs (KIP-73), broker and topic level. sluice does
/// not throttle replication: setting one is refused, deleting one is accepted.
const REPLICATION_THROTTLES: &[&str] = &[
    "leader.replication.throttled.rate",
    "follower.replication.throttled.rate",
    "replica.alter.log.dirs.io.max.bytes.per.second",
    "leader.replication.throttled.replicas",
    "follower.replication.throttled.replicas",
];

/// The resource's dynamic configs after `change`, every value validated.
fn new_configs(image: &Image, target: &Target, change: &Change) -> Result<BTreeMap<String, String>, ConfigError> {
    let current = target.current(image)?;
    let mut seen = std::collections::HashSet::new();
    if !change.ops.iter().all(|(k, _)| seen.insert(k.as_str())) {
        return Err(ConfigError::InvalidRequest("Error due to duplicate config keys".into()));
    }
    let mut new = if change.replace { BTreeMap::new() } else { current.clone() };
    for (key, op) in &change.ops {
        if matches!(op, Op::Delete) && REPLICATION_THROTTLES.contains(&key.as_str()) {
            // Nothing throttles replication here, so there is never one to clear; the
            // reassignment tool clears them after every --verify and --cancel.
            new.remove(key);
            continue;
        }
        let def = target.definition(key)?;
        let null = || ConfigError::InvalidRequest(format!("Null value not supported for : {key}"));
        let value = match op {
            Op::Delete => {
                new.remove(key);
                continue;
            }
            Op::Set(v) => v.clone().ok_or_else(null)?,
            Op::Append(v) | Op::Subtract(v) => {
                let verb = if matches!(op, Op::Append(_)) { "append" } else { "subtract" };
                if def.ty != Type::List {
                    return Err(ConfigError::InvalidConfig(format!("Config value {verb} is not allowed for config key: {key}")));
                }
                let items = v.clone().ok_or_else(null)?;
                let old = new.get(key).map_or(def.default, String::as_str).to_string();
                edit_list(&old, &items, verb == "append")
            }
        };
        tcfg::validate_value(def, key, &value).map_err(ConfigError::InvalidConfig)?;
        new.insert(key.clone(), value);
    }
    Ok(new)
}

/// `old` with the comma-separated `items` appended (those not yet present) or removed.
fn edit_list(old: &str, items: &str, append: bool) -> String {
    let split = |s: &str| s.split(',').map(str::trim).filter(|x| !x.is_empty()).map(String::from).collect::<Vec<_>>();
    let mut list = split(old);
    for item in split(items) {
        if append && !list.contains(&item) {
            list.push(item);
        } else if !append {
            list.retain(|x| *x != item);
        }
    }
    list.join(",")
}

fn diff(target: &Target, old: &BTreeMap<String, String>, new: &BTreeMap<String, String>) -> Vec<MetadataRecord> {
    let record = |key: &str, value: Option<&String>| MetadataRecord::Config { resource: target.resource(), key: key.to_string(), value: value.cloned() };
    let changed = new.iter().filter(|(k, v)| old.get(*k) != Some(*v)).map(|(k, v)| record(k, Some(v)));
    let removed = old.keys().filter(|k| !new.contains_key(*k)).map(|k| record(k, None));
    changed.chain(removed).collect()
}

/// Re-resolves the log settings of every open partition the change can affect.
fn apply_live(broker: &Broker, target: &Target) {
    let image = broker.image();
    let topics: Vec<_> = match target {
        Target::Topic(name) => image.topic(name).into_iter().collect(),
        Target::Broker | Target::BrokerDefault => image.topics.values().collect(),
    };
    for topic in topics {
        let config = broker.log_config(topic);
        for index in 0..topic.partitions.len() as i32 {
            if let Some(p) = broker.logs.get_by_name(&topic.name, index)
                && let Err(e) = p.set_config(config)
            {
                tracing::warn!(topic = %topic.name, partition = index, error = %e, "applying config change");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_edits() {
        assert_eq!(edit_list("delete", "compact", true), "delete,compact");
        assert_eq!(edit_list("delete,compact", "compact", true), "delete,compact");
        assert_eq!(edit_list("delete,compact", "delete", false), "compact");
        assert_eq!(edit_list("compact", "compact", false), "");
    }

    fn change(ops: Vec<(&str, Op)>, replace: bool) -> Change {
        Change { resource_type: RESOURCE_TOPIC, resource_name: "t".into(), ops: ops.into_iter().map(|(k, o)| (k.to_string(), o)).collect(), replace }
    }

    fn image_with(configs: &[(&str, &str)]) -> Image {
        let mut image = Image::default();
        let id = uuid::Uuid::new_v4();
        image.apply(0, &MetadataRecord::Topic { name: "t".into(), id }).unwrap();
        for (k, v) in configs {
            image.apply(1, &MetadataRecord::Config { resource: ConfigResource::Topic("t".into()), key: k.to_string(), value: Some(v.to_string()) }).unwrap();
        }
        image
    }

    #[test]
    fn incremental_and_replacing_changes_validate_every_value() {
        let image = image_with(&[("retention.ms", "1000"), ("segment.ms", "5000")]);
        let t = Target::Topic("t".into());
        let new = new_configs(&image, &t, &change(vec![("retention.bytes", Op::Set(Some("10".into()))), ("segment.ms", Op::Delete)], false)).unwrap();
        assert_eq!(new, BTreeMap::from([("retention.ms".into(), "1000".into()), ("retention.bytes".into(), "10".into())]));
        let new = new_configs(&image, &t, &change(vec![("retention.bytes", Op::Set(Some("10".into())))], true)).unwrap();
        assert_eq!(new, BTreeMap::from([("retention.bytes".into(), "10".into())]));
        let new = new_configs(&image, &t, &change(vec![("cleanup.policy", Op::Append(Some("compact".into())))], false)).unwrap();
        assert_eq!(new["cleanup.policy"], "delete,compact");

        let err = |c: Change| new_configs(&image, &t, &c).unwrap_err();
        assert!(matches!(err(change(vec![("retention.ms", Op::Set(Some("soon".into())))], false)), ConfigError::InvalidConfig(m) if m.contains("retention.ms")));
        assert!(matches!(err(change(vec![("no.such", Op::Set(Some("1".into())))], false)), ConfigError::InvalidConfig(_)));
        assert!(matches!(err(change(vec![("retention.ms", Op::Append(Some("1".into())))], false)), ConfigError::InvalidConfig(m) if m.contains("append is not allowed")));
        assert!(matches!(err(change(vec![("retention.ms", Op::Set(None))], false)), ConfigError::InvalidRequest(_)));
        assert!(matches!(err(change(vec![("retention.ms", Op::Delete), ("retention.ms", Op::Delete)], false)), ConfigError::InvalidRequest(_)));
        let missing = Target::Topic("missing".into());
        assert!(matches!(new_configs(&image, &missing, &change(vec![], false)), Err(ConfigError::UnknownTopic(_))));
        let broker = Target::Broker;
        assert!(matches!(new_configs(&image, &broker, &change(vec![("log.dirs", Op::Set(Some("/x".into())))], false)), Err(ConfigError::InvalidRequest(_))));
        assert!(new_configs(&image, &broker, &change(vec![("log.retention.ms", Op::Set(Some("5".into())))], false)).is_ok());
    }

    #[test]
    fn diff_names_changed_and_removed_keys() {
        let old = BTreeMap::from([("a".to_string(), "1".to_string()), ("b".to_string(), "2".to_string())]);
        let new = BTreeMap::from([("a".to_string(), "1".to_string()), ("c".to_string(), "3".to_string())]);
        let records = diff(&Target::Topic("t".into()), &old, &new);
        assert_eq!(records.len(), 2);
        assert!(records.contains(&MetadataRecord::Config { resource: ConfigResource::Topic("t".into()), key: "c".into(), value: Some("3".into()) }));
        assert!(records.contains(&MetadataRecord::Config { resource: ConfigResource::Topic("t".into()), key: "b".into(), value: None }));
    }
}
