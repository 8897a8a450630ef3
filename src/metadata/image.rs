//! The metadata image: an immutable snapshot of topics, partitions and configs,
//! built by applying metadata records in log order. Handlers read an
//! `Arc<Image>`; nothing mutates it in place — a change is a new record, applied
//! to a copy and published as a new image.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::record::{ConfigResource, MetadataRecord};

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct PartitionImage {
    pub leader: i32,
    pub leader_epoch: i32,
    /// During a reassignment (KIP-455): the target replicas first, then the
    /// current ones being removed.
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    /// Replicas a reassignment in progress adds (target − original); empty when
    /// none is. Absent in images and records from before reassignments.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub adding_replicas: Vec<i32>,
    /// Replicas a reassignment in progress removes (original − target).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removing_replicas: Vec<i32>,
}

impl PartitionImage {
    /// True while a reassignment of this partition is in progress.
    pub fn is_reassigning(&self) -> bool {
        !self.adding_replicas.is_empty() || !self.removing_replicas.is_empty()
    }
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

/// A registered broker: where clients reach it and whether it may lead.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BrokerImage {
    pub id: i32,
    /// Changes on every process start, so a restart is told apart from a heartbeat.
    pub incarnation: Uuid,
    pub host: String,
    pub port: i32,
    pub rack: Option<String>,
    /// Fenced brokers are not listed to clients and are never elected leader.
    pub fenced: bool,
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
    /// Every broker that ever registered, fenced or not, by id.
    pub brokers: BTreeMap<i32, BrokerImage>,
    /// The cluster id all nodes answer with; None until the first broker registers.
    pub cluster_id: Option<String>,
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
    /// A controller decision from a node that no longer leads the metadata quorum.
    #[error("this node no longer leads the metadata quorum")]
    NotController,
    #[error("unknown broker {0}")]
    UnknownBroker(i32),
    #[error("the cluster id is already {0}")]
    ClusterIdSet(String),
}

/// The image as stored in a snapshot: plain data, no shared pointers or indexes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageSnapshot {
    pub last_offset: i64,
    pub topics: Vec<TopicImage>,
    pub broker_configs: BTreeMap<String, String>,
    pub broker_default_configs: BTreeMap<String, String>,
    pub next_producer_id: i64,
    /// Absent in snapshots from before broker registration.
    #[serde(default)]
    pub brokers: Vec<BrokerImage>,
    #[serde(default)]
    pub cluster_id: Option<String>,
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
            brokers: self.brokers.values().cloned().collect(),
            cluster_id: self.cluster_id.clone(),
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
            brokers: s.brokers.into_iter().map(|b| (b.id, b)).collect(),
            cluster_id: s.cluster_id,
        }
    }

    /// Unfenced brokers, by id: the ones clients see and leaders are chosen from.
    pub fn live_brokers(&self) -> Vec<&BrokerImage> {
        self.brokers.values().filter(|b| !b.fenced).collect()
    }

    /// True when `id` is registered and unfenced.
    pub fn is_live(&self, id: i32) -> bool {
        self.brokers.get(&id).is_some_and(|b| !b.fenced)
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
            MetadataRecord::Partition { topic_id, partition, leader, leader_epoch, replicas, isr, adding_replicas, removing_replicas } => {
                let name = self.topic_names_by_id.get(topic_id).ok_or(ApplyError::UnknownTopicId(*topic_id))?.clone();
                let topic = Arc::make_mut(self.topics.get_mut(&name).expect("id index and topics agree"));
                let p = PartitionImage {
                    leader: *leader,
                    leader_epoch: *leader_epoch,
                    replicas: replicas.clone(),
                    isr: isr.clone(),
                    adding_replicas: adding_replicas.clone(),
                    removing_replicas: removing_replicas.clone(),
                };
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
            MetadataRecord::RegisterBroker { id, incarnation, host, port, rack } => {
                let b = BrokerImage { id: *id, incarnation: *incarnation, host: host.clone(), port: *port, rack: rack.clone(), fenced: true };
                self.brokers.insert(*id, b);
            }
            MetadataRecord::FenceBroker { id } | MetadataRecord::UnfenceBroker { id } => {
                let b = self.brokers.get_mut(id).ok_or(ApplyError::UnknownBroker(*id))?;
                b.fenced = matches!(record, MetadataRecord::FenceBroker { .. });
            }
            MetadataRecord::ClusterId(id) => match &self.cluster_id {
                Some(set) if set != id => return Err(ApplyError::ClusterIdSet(set.clone())),
                _ => self.cluster_id = Some(id.clone()),
            },
        }
        self.last_offset = offset;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn register(id: i32) -> MetadataRecord {
        MetadataRecord::RegisterBroker { id, incarnation: Uuid::new_v4(), host: "h".into(), port: 9000 + id, rack: None }
    }

    #[test]
    fn brokers_register_fenced_and_survive_a_snapshot() {
        let mut img = Image::empty();
        img.apply(0, &register(2)).unwrap();
        img.apply(1, &register(1)).unwrap();
        assert!(img.live_brokers().is_empty(), "new registrations start fenced");
        img.apply(2, &MetadataRecord::UnfenceBroker { id: 2 }).unwrap();
        img.apply(3, &MetadataRecord::UnfenceBroker { id: 1 }).unwrap();
        assert_eq!(img.live_brokers().iter().map(|b| b.id).collect::<Vec<_>>(), vec![1, 2]);
        // A restart replaces the endpoint and fences again until the next heartbeat.
        let again = MetadataRecord::RegisterBroker { id: 2, incarnation: Uuid::new_v4(), host: "new".into(), port: 1, rack: Some("r1".into()) };
        img.apply(4, &again).unwrap();
        assert!(!img.is_live(2) && img.brokers[&2].host == "new");
        img.apply(5, &MetadataRecord::ClusterId("c1".into())).unwrap();
        assert_eq!(img.apply(6, &MetadataRecord::ClusterId("c2".into())), Err(ApplyError::ClusterIdSet("c1".into())));
        assert_eq!(img.apply(6, &MetadataRecord::FenceBroker { id: 9 }), Err(ApplyError::UnknownBroker(9)));

        let json = serde_json::to_vec(&img.to_snapshot()).unwrap();
        let back = Image::from_snapshot(serde_json::from_slice(&json).unwrap());
        assert_eq!(back.brokers, img.brokers);
        assert_eq!(back.cluster_id.as_deref(), Some("c1"));
        assert_eq!(back.to_snapshot(), img.to_snapshot());
    }

    #[test]
    fn snapshots_from_before_registration_still_load() {
        let old = r#"{"last_offset":3,"topics":[],"broker_configs":{},"broker_default_configs":{},"next_producer_id":2000}"#;
        let img = Image::from_snapshot(serde_json::from_str(old).unwrap());
        assert!(img.brokers.is_empty() && img.cluster_id.is_none());
        assert_eq!(img.next_producer_id, 2000);
    }
}
