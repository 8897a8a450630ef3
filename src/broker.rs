//! The broker's shared state: configuration, identity, metadata and logs. Built
//! once at start; every request handler gets an `Arc<Broker>` through its context.

use std::collections::HashSet;
use std::sync::Arc;

use crate::config::Config;
use crate::log::manager::{LogManager, Partition, TopicPartition};
use crate::log::LogConfig;
use crate::metadata::identity::Identity;
use crate::metadata::{Image, MetadataStore, TopicImage};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Identity(#[from] crate::metadata::identity::Error),
    #[error(transparent)]
    Metadata(#[from] crate::metadata::store::Error),
    #[error(transparent)]
    Log(#[from] crate::log::Error),
}

pub struct Broker {
    pub config: Config,
    pub identity: Identity,
    pub metadata: MetadataStore,
    pub logs: Arc<LogManager>,
    /// The unused part of the producer-id block this broker reserved.
    pub producer_ids: crate::api::init_producer_id::ProducerIdBlock,
}

impl Broker {
    /// Open the data dir: identity, metadata log, then every partition's log.
    pub fn open(config: Config) -> Result<Arc<Broker>, StartError> {
        let identity = Identity::load_or_create(&config.data_dir, config.node_id)?;
        let metadata = MetadataStore::open(&config.data_dir.join("__cluster_metadata-0"))?;
        let logs = LogManager::new(&config.data_dir.join("logs"))?;
        let broker = Arc::new(Broker { config, identity, metadata, logs, producer_ids: Default::default() });
        let image = broker.metadata.image();
        let mut keep = HashSet::new();
        for topic in image.topics.values() {
            for p in 0..topic.partitions.len() as i32 {
                let tp = TopicPartition::new(&topic.name, p);
                keep.insert(tp.dir_name());
                broker.logs.open(&tp, broker.log_config(topic))?;
            }
        }
        broker.logs.remove_orphans(&keep)?;
        Ok(broker)
    }

    pub fn image(&self) -> Arc<Image> {
        self.metadata.image()
    }

    /// The log settings of a topic: its overrides over the broker's defaults.
    pub fn log_config(&self, topic: &TopicImage) -> LogConfig {
        let c = &self.config;
        let get = |k: &str| topic.configs.get(k).and_then(|v| v.parse::<u64>().ok());
        LogConfig {
            segment_bytes: get("segment.bytes").unwrap_or(c.log_segment_bytes),
            index_interval_bytes: get("index.interval.bytes").unwrap_or(c.log_index_interval_bytes),
            segment_index_bytes: get("segment.index.bytes").unwrap_or(c.log_index_size_max_bytes),
            max_message_bytes: get("max.message.bytes").map(|v| v as usize).unwrap_or(c.message_max_bytes),
        }
    }

    /// The partition's log, opening it if metadata knows it but the log is not open yet.
    pub fn partition(&self, topic: &TopicImage, partition: i32) -> Result<Option<Arc<Partition>>, crate::log::Error> {
        if partition < 0 || partition as usize >= topic.partitions.len() {
            return Ok(None);
        }
        let tp = TopicPartition::new(&topic.name, partition);
        if let Some(p) = self.logs.get(&tp) {
            return Ok(Some(p));
        }
        self.logs.open(&tp, self.log_config(topic)).map(Some)
    }
}
