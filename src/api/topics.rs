//! Topic creation shared by CreateTopics and auto-creation (Metadata, Produce):
//! name validation, the metadata records, and opening the new logs.

use std::collections::BTreeMap;

use uuid::Uuid;

use crate::broker::Broker;
use crate::metadata::image::ApplyError;
use crate::metadata::{ConfigResource, Image, MetadataRecord, PartitionImage};
use crate::protocol::ResponseError;

pub const TOPIC_NAME_BYTES_MAX: usize = 249;
/// A bound on partitions per topic: each partition holds files and memory.
pub const PARTITIONS_PER_TOPIC_MAX: i32 = 10_000;

/// Kafka's rule: 1-249 chars of [a-zA-Z0-9._-], not "." or "..".
pub fn validate_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name == "." || name == ".." {
        return Err(format!("topic name {name:?} is illegal"));
    }
    if name.len() > TOPIC_NAME_BYTES_MAX {
        return Err(format!("topic name is longer than {TOPIC_NAME_BYTES_MAX} characters"));
    }
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-') {
        return Err(format!("topic name {name:?} contains characters other than ASCII alphanumerics, '.', '_' and '-'"));
    }
    Ok(())
}

pub struct NewTopic {
    pub name: String,
    pub partitions: i32,
    pub replication_factor: i16,
    /// Replicas per partition as the request gave them (CreateTopics `assignments`);
    /// None = place them over the live brokers.
    pub assignments: Option<Vec<Vec<i32>>>,
    pub configs: BTreeMap<String, String>,
}

impl From<crate::controller::placement::PlacementError> for CreateError {
    fn from(e: crate::controller::placement::PlacementError) -> Self {
        use crate::controller::placement::PlacementError as P;
        match e {
            P::ReplicationFactor(m) => CreateError::new(ResponseError::InvalidReplicationFactor, m),
            P::Assignment(m) => CreateError::new(ResponseError::InvalidReplicaAssignment, m),
        }
    }
}

/// Leader, ISR and replicas of each new partition `first..first + count`: the manual
/// `assignments` if given (checked), else Kafka's spread over the live brokers (and their racks).
pub fn place(image: &Image, first: i32, count: i32, replication_factor: i16, assignments: Option<&[Vec<i32>]>, expected_rf: Option<usize>) -> Result<Vec<PartitionImage>, CreateError> {
    use crate::controller::placement;
    let replicas = match assignments {
        Some(a) => {
            placement::validate_manual(a, |b| image.brokers.contains_key(&b), expected_rf)?;
            a.to_vec()
        }
        None => {
            let live: Vec<placement::Candidate> = image.live_brokers().iter().map(|b| placement::Candidate { id: b.id, rack: b.rack.as_deref() }).collect();
            placement::place_replicas(&live, count, replication_factor, first, placement::random_seed())?
        }
    };
    Ok(replicas.into_iter().map(|r| placement::new_partition(r, |b| image.is_live(b))).collect())
}

#[derive(Debug)]
pub struct CreateError {
    pub error: ResponseError,
    pub message: String,
}

impl CreateError {
    fn new(error: ResponseError, message: impl Into<String>) -> Self {
        CreateError { error, message: message.into() }
    }
}

/// Check a request to create a topic against the current image and the config.
pub fn validate(broker: &Broker, image: &Image, t: &NewTopic) -> Result<(), CreateError> {
    validate_with(broker, image, t, false)
}

/// `internal`: the broker itself creates a coordinator topic (clients may not).
fn validate_with(_broker: &Broker, image: &Image, t: &NewTopic, internal: bool) -> Result<(), CreateError> {
    validate_name(&t.name).map_err(|m| CreateError::new(ResponseError::InvalidTopicException, m))?;
    if crate::coordinator::is_internal(&t.name) && !internal {
        // Coordinators create these on demand, with their own settings.
        return Err(CreateError::new(ResponseError::InvalidTopicException, format!("Topic '{}' is reserved for internal use.", t.name)));
    }
    if image.topic(&t.name).is_some() {
        return Err(CreateError::new(ResponseError::TopicAlreadyExists, format!("Topic '{}' already exists.", t.name)));
    }
    if t.partitions < 1 || t.partitions > PARTITIONS_PER_TOPIC_MAX {
        return Err(CreateError::new(ResponseError::InvalidPartitions, format!("Number of partitions must be between 1 and {PARTITIONS_PER_TOPIC_MAX}.")));
    }
    place(image, 0, t.partitions, t.replication_factor, t.assignments.as_deref(), None)?;
    for (k, v) in &t.configs {
        crate::api::topic_configs::validate(k, v)
            .map_err(|m| CreateError::new(ResponseError::InvalidConfig, m))?;
    }
    Ok(())
}

/// The records that create `t` on `image` (placement included).
pub fn records_for(image: &Image, t: &NewTopic, id: Uuid) -> Result<Vec<MetadataRecord>, CreateError> {
    let partitions = place(image, 0, t.partitions, t.replication_factor, t.assignments.as_deref(), None)?;
    let mut records = vec![MetadataRecord::Topic { name: t.name.clone(), id }];
    records.extend(partitions.into_iter().enumerate().map(|(p, pi)| MetadataRecord::partition(id, p as i32, pi)));
    records.extend(t.configs.iter().map(|(k, v)| MetadataRecord::Config {
        resource: ConfigResource::Topic(t.name.clone()),
        key: k.clone(),
        value: Some(v.clone()),
    }));
    Ok(records)
}

/// How long topic creation waits for this broker's own registration to land (a
/// quorum start registers in the background): creation places replicas over the
/// live brokers, and a broker that is not one yet would place nothing on itself.
const OWN_REGISTRATION_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Create one topic: validate, log the records durably, open its partition logs.
/// Returns the topic id.
pub async fn create(broker: &std::sync::Arc<Broker>, t: NewTopic) -> Result<Uuid, CreateError> {
    create_with(broker, t, false).await
}

/// Create an internal (coordinator) topic: as `create`, but the reserved name is allowed.
pub async fn create_internal(broker: &std::sync::Arc<Broker>, t: NewTopic) -> Result<Uuid, CreateError> {
    create_with(broker, t, true).await
}

async fn create_with(broker: &std::sync::Arc<Broker>, t: NewTopic, internal: bool) -> Result<Uuid, CreateError> {
    broker.membership.wait_live(&broker.metadata, OWN_REGISTRATION_WAIT).await;
    let b = broker.clone();
    tokio::task::spawn_blocking(move || {
        let id = Uuid::new_v4();
        let mut rejected = None;
        let image = b
            .metadata
            .propose(|img| match validate_with(&b, img, &t, internal).and_then(|()| records_for(img, &t, id)) {
                Ok(records) => Ok(records),
                Err(e) => {
                    rejected = Some(e);
                    Ok(vec![])
                }
            })
            .map_err(|e| match e {
                crate::metadata::store::Error::Rejected(ApplyError::TopicExists(n)) => {
                    CreateError::new(ResponseError::TopicAlreadyExists, format!("Topic '{n}' already exists."))
                }
                other => CreateError::new(super::metadata_error(&other), other.to_string()),
            })?;
        if let Some(e) = rejected {
            return Err(e);
        }
        let topic = image.topic(&t.name).expect("just created").clone();
        // Open the logs this node holds a replica of; others open theirs on first use.
        for p in (0..t.partitions).filter(|&p| topic.partitions[p as usize].replicas.contains(&b.config.node_id)) {
            b.partition(&topic, p).map_err(|e| CreateError::new(ResponseError::KafkaStorageError, e.to_string()))?;
        }
        tracing::info!(topic = %t.name, partitions = t.partitions, "created topic");
        Ok(id)
    })
    .await
    .expect("topic creation task does not panic")
}

/// Auto-create `name` with the broker defaults if allowed. Races with another
/// creator are fine: whoever loses sees TopicAlreadyExists and uses the topic.
pub async fn auto_create(broker: &std::sync::Arc<Broker>, name: &str) -> Result<(), CreateError> {
    let t = NewTopic {
        name: name.to_string(),
        partitions: broker.config.num_partitions,
        replication_factor: broker.config.default_replication_factor,
        assignments: None,
        configs: BTreeMap::new(),
    };
    match create(broker, t).await {
        Ok(_) => Ok(()),
        Err(e) if e.error == ResponseError::TopicAlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}
