//! The metadata image: an immutable snapshot of topics, partitions and configs,
//! built by applying metadata records in log order. Handlers read an
//! `Arc<Image>`; nothing mutates it in place — a change is a new record, applied
//! to a copy and published as a new image.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::record::{ConfigResource, MetadataRecord};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartitionImage {
    pub leader: i32,
    pub leader_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopicImage {
    pub name: String,
    pub id: Uuid,
    /// Indexed by partition number: partitions are dense from 0.
    pub partitions: Vec<PartitionImage>,
    /// Topic-level overrides only; defaults come from the broker config.
    pub configs: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default)]
pub struct Image {
    /// Offset of the last metadata record applied (-1 when empty).
    pub last_offset: i64,
    pub topics: BTreeMap<String, Arc<TopicImage>>,
    pub topic_names_by_id: HashMap<Uuid, String>,
    pub broker_configs: BTreeMap<String, String>,
    /// Cluster-wide dynamic broker defaults; `broker_configs` take precedence.
    pub broker_default_configs: BTreeMap<String, String>,
    /// The next producer id the controller hands out; ids below it are taken.
    pub next_producer_id: i64,
}

/// Serialisable: a leader's verdict on a forwarded proposal travels back with it.
#[derive(Debug, thiserror::Error, PartialEq, Clone, Serialize, Deserialize)]
pub enum ApplyError {
    #[error("topic {0} already exists")]
    TopicExists(String),
    #[error("unknown topic id {0}")]
    UnknownTopicId(Uuid),
    #[error("partition {partition} of {topic} is not the next one")]
    PartitionGap { topic: String, partition: i32 },
    #[error("unknown topic {0}")]
    UnknownTopic(String),
    /// An ISR change from a node that no longer leads the partition at its epoch.
    #[error("node is not the leader of {topic}-{partition} at that epoch")]
    NotLeader { topic: String, partition: i32 },
}

/// The image as stored in a snapshot: plain data, no shared pointers or indexes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageSnapshot {
    pub last_offset: i64,
    pub topics: Vec<TopicImage>,
    pub broker_configs: BTreeMap<String, String>,
    pub broker_default_configs: BTreeMap<String, String>,
    pub next_producer_id: i64,
}

impl Image {
    /// The image of an empty cluster. Producer ids start at 1000, as they always have.
    pub fn empty() -> Image {
        Image { last_offset: -1, next_producer_id: 1000, ..Default::default() }
    }

    pub fn to_snapshot(&self) -> ImageSnapshot {
        ImageSnapshot {
            last_offset: self.last_offset,
            topics: self.topics.values().map(|t| (**t).clone()).collect(),
            broker_configs: self.broker_configs.clone(),
            broker_default_configs: self.broker_default_configs.clone(),
            next_producer_id: self.next_producer_id,
        }
    }

    pub fn from_snapshot(s: ImageSnapshot) -> Image {
        let topic_names_by_id = s.topics.iter().map(|t| (t.id, t.name.clone())).collect();
        Image {
            last_offset: s.last_offset,
            topics: s.topics.into_iter().map(|t| (t.name.clone(), Arc::new(t))).collect(),
            topic_names_by_id,
            broker_configs: s.broker_configs,
            broker_default_configs: s.broker_default_configs,
            next_producer_id: s.next_producer_id,
        }
    }

    pub fn topic(&self, name: &str) -> Option<&Arc<TopicImage>> {
        self.topics.get(name)
    }

    pub fn topic_by_id(&self, id: &Uuid) -> Option<&Arc<TopicImage>> {
        self.topic_names_by_id.get(id).and_then(|n| self.topics.get(n))
    }

    /// Apply one record. A record that does not fit the image is an error and the
    /// image is left unchanged: proposals are validated before they are logged, so
    /// on replay this only fires on a corrupt log.
    pub fn apply(&mut self, offset: i64, record: &MetadataRecord) -> Result<(), ApplyError> {
        match record {
            MetadataRecord::Topic { name, id } => {
                if self.topics.contains_key(name) {
                    return Err(ApplyError::TopicExists(name.clone()));
                }
                let t = TopicImage { name: name.clone(), id: *id, partitions: vec![], configs: BTreeMap::new() };
                self.topics.insert(name.clone(), Arc::new(t));
                self.topic_names_by_id.insert(*id, name.clone());
            }
            MetadataRecord::Partition { topic_id, partition, leader, leader_epoch, replicas, isr } => {
                let name = self.topic_names_by_id.get(topic_id).ok_or(ApplyError::UnknownTopicId(*topic_id))?.clone();
                let topic = Arc::make_mut(self.topics.get_mut(&name).expect("id index and topics agree"));
                let p = PartitionImage { leader: *leader, leader_epoch: *leader_epoch, replicas: replicas.clone(), isr: isr.clone() };
                let idx = *partition as usize;
                if idx < topic.partitions.len() {
                    topic.partitions[idx] = p;
                } else if idx == topic.partitions.len() {
                    topic.partitions.push(p);
                } else {
                    return Err(ApplyError::PartitionGap { topic: name, partition: *partition });
                }
            }
            MetadataRecord::RemoveTopic { topic_id } => {
                let name = self.topic_names_by_id.remove(topic_id).ok_or(ApplyError::UnknownTopicId(*topic_id))?;
                self.topics.remove(&name);
            }
            MetadataRecord::Config { resource, key, value } => {
                let map = match resource {
                    ConfigResource::Broker => &mut self.broker_configs,
                    ConfigResource::BrokerDefault => &mut self.broker_default_configs,
                    ConfigResource::Topic(name) => {
                        let t = self.topics.get_mut(name).ok_or_else(|| ApplyError::UnknownTopic(name.clone()))?;
                        &mut Arc::make_mut(t).configs
                    }
                };
                match value {
                    Some(v) => map.insert(key.clone(), v.clone()),
                    None => map.remove(key),
                };
            }
            MetadataRecord::ProducerIds { next_producer_id } => {
                assert!(*next_producer_id >= self.next_producer_id, "producer id blocks only move forward");
                self.next_producer_id = *next_producer_id;
            }
        }
        self.last_offset = offset;
        Ok(())
    }
}
