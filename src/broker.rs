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
    /// Shared with the controller loop and the membership task (which hold it weakly).
    pub metadata: Arc<MetadataStore>,
    /// This process's broker registration and heartbeats.
    pub membership: Arc<crate::controller::membership::Membership>,
    pub logs: Arc<LogManager>,
    /// The unused part of the producer-id block this broker reserved.
    pub producer_ids: crate::api::init_producer_id::ProducerIdBlock,
    /// Consumer groups and committed offsets, in the `__consumer_offsets` partitions
    /// this node leads (see `coordinator`).
    pub groups: Arc<crate::group::GroupCoordinator>,
    /// Transactions, in the `__transaction_state` partitions this node leads (see
    /// `coordinator`).
    pub txns: Arc<crate::txn::TxnCoordinator>,
    /// Leader and follower roles of this node's partition replicas (`replication/`).
    pub replicas: crate::replication::ReplicaManager,
    /// Internal topics this broker is creating now (`coordinator::topic`): one creation
    /// each at a time. Per broker, not per process: tests run many brokers in one
    /// process, and one broker's stalled creation must not hold back another's.
    pub creating_internal: parking_lot::Mutex<std::collections::HashSet<&'static str>>,
}

impl Broker {
    /// Open the data dir: identity, metadata log, then every partition's log.
    pub fn open(config: Config) -> Result<Arc<Broker>, StartError> {
        let identity = Identity::load_or_create(&config.data_dir, config.node_id, config.initial_directory_id())?;
        let quorum = config.quorum(&identity.directory_id);
        // Alone means the only voter; an observer of a one-voter quorum is not alone.
        let single_voter = quorum.voters.len() == 1 && quorum.observer_addr.is_none();
        let metadata = Arc::new(MetadataStore::open_quorum(&config.data_dir.join("__cluster_metadata-0"), quorum)?);
        let shared_config = Arc::new(config.clone());
        let membership = crate::controller::membership::Membership::new(shared_config.clone(), identity.cluster_id.clone());
        if single_voter {
            // Alone, this broker is live at once: topics can be placed on it before it listens.
            // `propose` blocks on the raft runtime; a plain thread keeps that legal even
            // when `open` runs inside a tokio task.
            std::thread::scope(|s| s.spawn(|| membership.register(&metadata, true)).join()).expect("registration thread does not panic")?;
        }
        membership.start(&metadata);
        crate::controller::start(&metadata, shared_config);
        let logs = LogManager::new(&config.data_dir.join("logs"))?;
        let limits = crate::group::Limits::from_config(&config);
        let groups = crate::group::GroupCoordinator::sharded(limits, config.offset_metadata_max_bytes);
        let txns = crate::txn::TxnCoordinator::sharded(crate::txn::Settings::from_config(&config));
        let replicas = crate::replication::ReplicaManager::new(config.node_id, crate::replication::Settings::from_config(&config));
        let broker = Arc::new(Broker { config, identity, metadata, membership, logs, producer_ids: Default::default(), groups, txns, replicas, creating_internal: Default::default() });
        broker.replicas.attach(&broker);
        let image = broker.metadata.image();
        // Only the image's partitions are kept. An upgraded data dir's local,
        // pre-sharding coordinator logs (`__consumer_offsets-0`,
        // `__transaction_state-0` outside the image) are removed here: their state is
        // lost once (see `txn::store`).
        let mut keep = HashSet::new();
        let mut local = Vec::new();
        let me = broker.config.node_id;
        for topic in image.topics.values() {
            // Only this node's replicas: a partition placed elsewhere has no log here.
            for (p, _) in topic.partitions.iter().enumerate().filter(|(_, p)| p.replicas.contains(&me)) {
                let tp = TopicPartition::new(&topic.name, p as i32);
                keep.insert(tp.dir_name());
                local.push((tp, broker.log_config(topic)));
            }
        }
        broker.logs.open_all(&local, broker.config.num_recovery_threads)?;
        broker.logs.remove_orphans(&keep)?;
        // Roles before the first request: a leader serves from its first moment.
        broker.replicas.ensure_current(&broker);
        crate::txn::TxnCoordinator::start(&broker);
        let interval = std::time::Duration::from_millis(broker.config.log_retention_check_interval_ms);
        broker.logs.start_retention(interval)?;
        let c = &broker.config;
        if c.log_cleaner_enable {
            let options = crate::log::CleanerOptions {
                dedupe_buffer_bytes: c.log_cleaner_dedupe_buffer_bytes,
                load_factor: c.log_cleaner_io_buffer_load_factor,
                io_max_bytes_per_second: c.log_cleaner_io_max_bytes_per_second,
            };
            let backoff = std::time::Duration::from_millis(c.log_cleaner_backoff_ms);
            broker.logs.start_cleaner(c.log_cleaner_threads, options, backoff)?;
        }
        Ok(broker)
    }

    /// Graceful leave on SIGTERM: stop heartbeating, then hand this broker's
    /// leaderships to other ISR members and fence it (see `controller`). Skipped when
    /// no other broker is live: nobody could take over, and the next start would
    /// only have to restore every leader. Gives up after `deadline`.
    pub async fn controlled_shutdown(self: &Arc<Self>, deadline: std::time::Duration) {
        self.membership.stop().await;
        // Stop fetching first: a follower still fetching would be taken back into the
        // ISRs it is about to leave, and the leaders would then wait for it.
        self.replicas.stop();
        let id = self.config.node_id;
        if !self.image().live_brokers().iter().any(|b| b.id != id) {
            return;
        }
        let b = self.clone();
        let task = tokio::task::spawn_blocking(move || crate::controller::controlled_shutdown(&b.metadata, &b.config, id));
        match tokio::time::timeout(deadline, task).await {
            Ok(Ok(Ok(()))) => tracing::info!("controlled shutdown: leaderships moved, broker fenced"),
            Ok(Ok(Err(e))) => tracing::warn!(error = %e, "controlled shutdown failed; the session timeout will fence this broker"),
            Ok(Err(e)) => tracing::warn!(error = %e, "controlled shutdown task failed"),
            Err(_) => tracing::warn!(?deadline, "controlled shutdown timed out; the session timeout will fence this broker"),
        }
    }

    pub fn image(&self) -> Arc<Image> {
        self.metadata.image()
    }

    /// The log settings of a topic: its overrides over the broker's dynamic and static
    /// configs over Kafka's defaults (see `api::topic_configs`).
    pub fn log_config(&self, topic: &TopicImage) -> LogConfig {
        let image = self.image();
        crate::api::topic_configs::log_config(&self.config, &crate::api::topic_configs::dynamic_broker_configs(&image), &topic.configs)
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
