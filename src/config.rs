//! Broker configuration: Kafka's own key names and defaults, read from a
//! `server.properties`-style file, then `--override KEY=VALUE`, then flags.
//!
//! Only keys that sluice honours are typed here; any other key is kept (so
//! DescribeConfigs can echo it) and logged once as ignored, as Kafka does for
//! unknown keys. A known key with a value that does not parse is fatal, and the
//! message names the key.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

mod initial;
pub use initial::{InitialController, InitialControllers, is_directory_id, parse_initial_controllers};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid value {value:?} for config {key}: {reason}")]
    InvalidValue { key: String, value: String, reason: String },
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("malformed line {line} in {path}: expected KEY=VALUE")]
    Malformed { path: PathBuf, line: usize },
}

pub type Result<T> = std::result::Result<T, Error>;

/// What `queued.max.request.bytes=-1` means: as many bytes as a semaphore can count.
pub const QUEUED_BYTES_UNBOUNDED: usize = usize::MAX >> 4;

/// A voter of the metadata quorum (`controller.quorum.voters`: `id@host:port`).
#[derive(Debug, Clone, PartialEq)]
pub struct Voter {
    pub id: i32,
    pub host: String,
    pub port: u16,
}

/// Everything the broker needs to start. Fields in Kafka units (bytes, ms).
#[derive(Debug, Clone)]
pub struct Config {
    pub node_id: i32,
    pub listen: SocketAddr,
    /// host:port written into Metadata responses; defaults to `listen`.
    pub advertise_host: String,
    pub advertise_port: i32,
    pub data_dir: PathBuf,
    pub num_partitions: i32,
    pub default_replication_factor: i16,
    pub auto_create_topics_enable: bool,
    pub log_segment_bytes: u64,
    pub log_index_interval_bytes: u64,
    pub log_index_size_max_bytes: u64,
    pub message_max_bytes: usize,
    pub socket_request_max_bytes: usize,
    pub connections_max: usize,
    /// Requests decoded but not yet answered, per connection (Kafka: `queued.max.requests`).
    pub inflight_requests_max: usize,
    /// Request bytes held in memory across all connections, from frame read until
    /// the response is written (Kafka: `queued.max.request.bytes`; -1 = unbounded).
    pub queued_bytes_max: usize,
    pub log_retention_ms: i64,
    pub log_retention_bytes: i64,
    pub log_cleanup_policy: String,
    /// `log.retention.check.interval.ms`: how often the retention pass runs.
    pub log_retention_check_interval_ms: u64,
    /// `num.recovery.threads.per.data.dir`: threads opening (and after a crash,
    /// recovering) the logs at startup. Kafka's default is 2; opens mostly wait on
    /// reads and fsyncs, and 4 made a thousand-partition restart faster here.
    pub num_recovery_threads: usize,
    pub delete_topic_enable: bool,
    /// `log.cleaner.enable`: run the log cleaner (compaction) threads.
    pub log_cleaner_enable: bool,
    /// `log.cleaner.threads`: cleaner threads; each cleans one log at a time.
    pub log_cleaner_threads: usize,
    /// `log.cleaner.dedupe.buffer.size`: memory for the key → offset maps of all
    /// cleaner threads together.
    pub log_cleaner_dedupe_buffer_bytes: usize,
    /// `log.cleaner.io.buffer.load.factor`: how full an offset map may get (0, 1].
    pub log_cleaner_io_buffer_load_factor: f64,
    /// `log.cleaner.io.max.bytes.per.second`: cleaner read + write rate (infinite: no limit).
    pub log_cleaner_io_max_bytes_per_second: f64,
    /// `log.cleaner.backoff.ms`: sleep when no log needs cleaning.
    pub log_cleaner_backoff_ms: u64,
    /// `group.max.size`: members per group; one more gets GROUP_MAX_SIZE_REACHED.
    pub group_max_size: usize,
    /// `group.min.session.timeout.ms` / `group.max.session.timeout.ms`: a JoinGroup
    /// outside gets INVALID_SESSION_TIMEOUT.
    pub group_min_session_timeout_ms: u64,
    pub group_max_session_timeout_ms: u64,
    /// `group.initial.rebalance.delay.ms`: an empty group's first rebalance waits this
    /// long for more members.
    pub group_initial_rebalance_delay_ms: u64,
    /// `group.max.member.metadata.bytes` (sluice's own): protocol metadata per member.
    pub group_member_metadata_max_bytes: usize,
    /// `offset.metadata.max.bytes`: longer commit metadata gets OFFSET_METADATA_TOO_LARGE.
    pub offset_metadata_max_bytes: usize,
    /// `offsets.retention.minutes`: committed offsets of a group Empty this long expire.
    pub offsets_retention_minutes: u64,
    /// `offsets.retention.check.interval.ms`: how often offset expiry runs.
    pub offsets_retention_check_interval_ms: u64,
    /// `offsets.topic.num.partitions`: partitions of `__consumer_offsets`.
    pub offsets_topic_num_partitions: i32,
    /// `offsets.topic.replication.factor`; None: min(3, controller quorum voters), so
    /// a one-node cluster works without configuration.
    pub offsets_topic_replication_factor: Option<i16>,
    /// `transaction.state.log.num.partitions`: partitions of `__transaction_state`.
    pub txn_topic_num_partitions: i32,
    /// `transaction.state.log.replication.factor`; None: as `offsets_topic_rf`.
    pub txn_topic_replication_factor: Option<i16>,
    /// `transaction.state.log.min.isr`: the `min.insync.replicas` of
    /// `__transaction_state`, honoured by its appends; None: min(2, its replication factor).
    pub txn_topic_min_isr: Option<i32>,
    /// `process.roles`: serve Kafka clients (broker) and/or vote on the metadata
    /// log (controller). Default: both, as a one-node combined cluster.
    pub role_broker: bool,
    pub role_controller: bool,
    /// `controller.quorum.voters`; empty = this node alone is the quorum.
    pub controller_quorum_voters: Vec<Voter>,
    /// `controller.quorum.bootstrap.servers` (host:port): a dynamic quorum (KIP-853,
    /// see `is_dynamic_quorum`), or one entry alone for a standalone controller.
    pub controller_quorum_bootstrap_servers: Vec<String>,
    /// `--standalone` / `--initial-controllers` / `--no-initial-controllers`: how a
    /// controller of a dynamic quorum starts on an empty data dir.
    pub initial_controllers: InitialControllers,
    /// `controller.listener.names`: which `listeners` entries are the raft transport.
    pub controller_listener_names: Vec<String>,
    /// The `CONTROLLER://host:port` entry of `listeners`, where the raft transport listens.
    pub controller_listen: Option<SocketAddr>,
    /// `broker.session.timeout.ms`: a broker whose last heartbeat to the quorum
    /// leader is older than this is fenced and loses its leaderships.
    pub broker_session_timeout_ms: u64,
    /// `broker.heartbeat.interval.ms`: how often a broker heartbeats the quorum leader.
    pub broker_heartbeat_interval_ms: u64,
    /// `unclean.leader.election.enable`: when no ISR member is live, elect any live
    /// replica (losing what only the ISR had) rather than leave the partition offline.
    pub unclean_leader_election_enable: bool,
    /// `replica.selector.class`: whether a leader points consumers in another rack at
    /// an in-sync follower in theirs (KIP-392; `replication::selector`).
    pub replica_selector: crate::replication::selector::ReplicaSelector,
    /// `auto.leader.rebalance.enable`: the active controller moves leadership back
    /// to preferred replicas when a broker's share of lost leaderships is too high.
    pub auto_leader_rebalance_enable: bool,
    /// `leader.imbalance.check.interval.seconds`: how often it looks.
    pub leader_imbalance_check_interval_seconds: u64,
    /// `leader.imbalance.per.broker.percentage`: the share of a broker's preferred
    /// partitions it may not lead before a rebalance acts.
    pub leader_imbalance_per_broker_percentage: u32,
    /// `replica.lag.time.max.ms`: a follower not caught up for this long leaves the ISR
    /// (used by replication).
    pub replica_lag_time_max_ms: u64,
    /// `min.insync.replicas`: acks=all needs this many ISR members (also a topic config).
    pub min_insync_replicas: i32,
    /// The raw key/value pairs as given (file, then overrides), for DescribeConfigs.
    pub raw: BTreeMap<String, String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            node_id: 1,
            listen: "127.0.0.1:9092".parse().expect("static address parses"),
            advertise_host: "127.0.0.1".into(),
            advertise_port: 9092,
            data_dir: PathBuf::from("sluice-data"),
            num_partitions: 1,
            default_replication_factor: 1,
            auto_create_topics_enable: true,
            log_segment_bytes: 1 << 30,
            log_index_interval_bytes: 4096,
            log_index_size_max_bytes: 10 * 1024 * 1024,
            message_max_bytes: 1_048_588,
            socket_request_max_bytes: 104_857_600,
            connections_max: 10_000,
            inflight_requests_max: 500,
            queued_bytes_max: 512 * 1024 * 1024,
            log_retention_ms: 168 * 3_600_000,
            log_retention_bytes: -1,
            log_cleanup_policy: "delete".into(),
            log_retention_check_interval_ms: 300_000,
            num_recovery_threads: 4,
            delete_topic_enable: true,
            log_cleaner_enable: true,
            log_cleaner_threads: 1,
            log_cleaner_dedupe_buffer_bytes: 134_217_728,
            log_cleaner_io_buffer_load_factor: 0.9,
            log_cleaner_io_max_bytes_per_second: f64::INFINITY,
            log_cleaner_backoff_ms: 15_000,
            group_max_size: i32::MAX as usize,
            group_min_session_timeout_ms: 6_000,
            group_max_session_timeout_ms: 1_800_000,
            group_initial_rebalance_delay_ms: 3_000,
            group_member_metadata_max_bytes: 1 << 20,
            offset_metadata_max_bytes: 4096,
            offsets_retention_minutes: 10_080,
            offsets_retention_check_interval_ms: 600_000,
            offsets_topic_num_partitions: 50,
            offsets_topic_replication_factor: None,
            txn_topic_num_partitions: 50,
            txn_topic_replication_factor: None,
            txn_topic_min_isr: None,
            role_broker: true,
            role_controller: true,
            controller_quorum_voters: Vec::new(),
            controller_quorum_bootstrap_servers: Vec::new(),
            initial_controllers: InitialControllers::Unspecified,
            controller_listener_names: vec!["CONTROLLER".into()],
            controller_listen: None,
            broker_session_timeout_ms: 9_000,
            broker_heartbeat_interval_ms: 2_000,
            unclean_leader_election_enable: false,
            replica_selector: Default::default(),
            auto_leader_rebalance_enable: true,
            leader_imbalance_check_interval_seconds: 300,
            leader_imbalance_per_broker_percentage: 10,
            replica_lag_time_max_ms: 30_000,
            min_insync_replicas: 1,
            raw: BTreeMap::new(),
        }
    }
}

/// Parse `server.properties` text: `key=value` or `key: value`, `#`/`!` comments.
pub fn parse_properties(text: &str, path: &std::path::Path) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
            continue;
        }
        let sep = line.find(['=', ':']).ok_or_else(|| Error::Malformed { path: path.to_path_buf(), line: i + 1 })?;
        out.push((line[..sep].trim().to_string(), line[sep + 1..].trim().to_string()));
    }
    Ok(out)
}

fn parse_num<T: std::str::FromStr>(key: &str, value: &str) -> Result<T>
where
    T::Err: std::fmt::Display,
{
    value.parse::<T>().map_err(|e| Error::InvalidValue { key: key.into(), value: value.into(), reason: e.to_string() })
}

fn positive<T: PartialOrd + Default + Copy>(key: &str, value: &str, v: T) -> Result<T> {
    if v <= T::default() {
        return Err(Error::InvalidValue { key: key.into(), value: value.into(), reason: "must be positive".into() });
    }
    Ok(v)
}

fn parse_bool(key: &str, value: &str) -> Result<bool> {
    match value.to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(Error::InvalidValue { key: key.into(), value: value.into(), reason: "expected true or false".into() }),
    }
}

impl Config {
    /// Apply one Kafka config key. Returns Ok(false) for keys sluice does not honour.
    pub fn set(&mut self, key: &str, value: &str) -> Result<bool> {
        self.raw.insert(key.to_string(), value.to_string());
        match key {
            "node.id" | "broker.id" => self.node_id = parse_num(key, value)?,
            "log.dirs" | "log.dir" => {
                // Kafka takes a comma-separated list; one data dir is all sluice uses.
                let first = value.split(',').next().unwrap_or("").trim();
                if first.is_empty() {
                    return Err(Error::InvalidValue { key: key.into(), value: value.into(), reason: "empty path".into() });
                }
                self.data_dir = PathBuf::from(first);
            }
            "num.partitions" => self.num_partitions = positive(key, value, parse_num(key, value)?)?,
            "default.replication.factor" => self.default_replication_factor = positive(key, value, parse_num(key, value)?)?,
            "auto.create.topics.enable" => self.auto_create_topics_enable = parse_bool(key, value)?,
            "delete.topic.enable" => self.delete_topic_enable = parse_bool(key, value)?,
            "group.max.size" => self.group_max_size = positive(key, value, parse_num(key, value)?)?,
            "group.min.session.timeout.ms" => self.group_min_session_timeout_ms = parse_num(key, value)?,
            "group.max.session.timeout.ms" => self.group_max_session_timeout_ms = positive(key, value, parse_num(key, value)?)?,
            "group.initial.rebalance.delay.ms" => self.group_initial_rebalance_delay_ms = parse_num(key, value)?,
            "group.max.member.metadata.bytes" => self.group_member_metadata_max_bytes = positive(key, value, parse_num(key, value)?)?,
            "offset.metadata.max.bytes" => self.offset_metadata_max_bytes = parse_num(key, value)?,
            "offsets.retention.minutes" => self.offsets_retention_minutes = positive(key, value, parse_num(key, value)?)?,
            "offsets.topic.num.partitions" => {
                let v: i32 = positive(key, value, parse_num(key, value)?)?;
                if v > crate::api::topics::PARTITIONS_PER_TOPIC_MAX {
                    return Err(Error::InvalidValue { key: key.into(), value: value.into(), reason: "too many partitions".into() });
                }
                self.offsets_topic_num_partitions = v;
            }
            "offsets.topic.replication.factor" => self.offsets_topic_replication_factor = Some(positive(key, value, parse_num(key, value)?)?),
            "transaction.state.log.num.partitions" => {
                let v: i32 = positive(key, value, parse_num(key, value)?)?;
                if v > crate::api::topics::PARTITIONS_PER_TOPIC_MAX {
                    return Err(Error::InvalidValue { key: key.into(), value: value.into(), reason: "too many partitions".into() });
                }
                self.txn_topic_num_partitions = v;
            }
            "transaction.state.log.replication.factor" => self.txn_topic_replication_factor = Some(positive(key, value, parse_num(key, value)?)?),
            "transaction.state.log.min.isr" => self.txn_topic_min_isr = Some(positive(key, value, parse_num(key, value)?)?),
            "offsets.retention.check.interval.ms" => self.offsets_retention_check_interval_ms = positive(key, value, parse_num(key, value)?)?,
            "log.segment.bytes" => {
                let v: u64 = parse_num(key, value)?;
                if v < 14 {
                    return Err(Error::InvalidValue { key: key.into(), value: value.into(), reason: "must be at least 14".into() });
                }
                self.log_segment_bytes = v;
            }
            "log.index.interval.bytes" => self.log_index_interval_bytes = parse_num(key, value)?,
            "log.index.size.max.bytes" => self.log_index_size_max_bytes = positive(key, value, parse_num(key, value)?)?,
            "message.max.bytes" => self.message_max_bytes = positive(key, value, parse_num(key, value)?)?,
            "socket.request.max.bytes" => self.socket_request_max_bytes = positive(key, value, parse_num(key, value)?)?,
            "max.connections" => self.connections_max = positive(key, value, parse_num(key, value)?)?,
            "queued.max.requests" => self.inflight_requests_max = positive(key, value, parse_num(key, value)?)?,
            "queued.max.request.bytes" => {
                let v: i64 = parse_num(key, value)?;
                self.queued_bytes_max = match v {
                    -1 => QUEUED_BYTES_UNBOUNDED,
                    v if v > 0 => v as usize,
                    _ => return Err(Error::InvalidValue { key: key.into(), value: value.into(), reason: "must be positive or -1".into() }),
                };
            }
            "log.cleaner.enable" => self.log_cleaner_enable = parse_bool(key, value)?,
            "log.cleaner.threads" => self.log_cleaner_threads = positive(key, value, parse_num(key, value)?)?,
            "log.cleaner.dedupe.buffer.size" => {
                let v: usize = parse_num(key, value)?;
                // Kafka's floor: each thread needs room for a useful map.
                if v < 1024 * 1024 {
                    return Err(Error::InvalidValue { key: key.into(), value: value.into(), reason: "must be at least 1048576".into() });
                }
                self.log_cleaner_dedupe_buffer_bytes = v;
            }
            "log.cleaner.io.buffer.load.factor" => {
                let v: f64 = parse_num(key, value)?;
                if !(v > 0.0 && v <= 1.0) {
                    return Err(Error::InvalidValue { key: key.into(), value: value.into(), reason: "must be in (0, 1]".into() });
                }
                self.log_cleaner_io_buffer_load_factor = v;
            }
            "log.cleaner.io.max.bytes.per.second" => {
                // Kafka's default is Double.MaxValue; "Infinity" parses too.
                self.log_cleaner_io_max_bytes_per_second = positive(key, value, parse_num::<f64>(key, value)?)?;
            }
            "log.cleaner.backoff.ms" => self.log_cleaner_backoff_ms = positive(key, value, parse_num(key, value)?)?,
            // Topic-config synonyms resolved in api::topic_configs; checked here so a typo is fatal.
            "log.cleaner.delete.retention.ms" | "log.cleaner.min.compaction.lag.ms" => {
                if parse_num::<i64>(key, value)? < 0 {
                    return Err(Error::InvalidValue { key: key.into(), value: value.into(), reason: "must not be negative".into() });
                }
            }
            "log.cleaner.max.compaction.lag.ms" => {
                positive::<i64>(key, value, parse_num(key, value)?)?;
            }
            "log.cleaner.min.cleanable.ratio" => {
                let v: f64 = parse_num(key, value)?;
                if !(0.0..=1.0).contains(&v) {
                    return Err(Error::InvalidValue { key: key.into(), value: value.into(), reason: "must be in [0, 1]".into() });
                }
            }
            "log.retention.ms" => self.log_retention_ms = parse_num(key, value)?,
            "log.retention.minutes" => self.log_retention_ms = parse_num::<i64>(key, value)? * 60_000,
            "log.retention.hours" => self.log_retention_ms = parse_num::<i64>(key, value)? * 3_600_000,
            "log.retention.bytes" => self.log_retention_bytes = parse_num(key, value)?,
            "log.retention.check.interval.ms" => self.log_retention_check_interval_ms = positive(key, value, parse_num(key, value)?)?,
            "num.recovery.threads.per.data.dir" => self.num_recovery_threads = positive(key, value, parse_num(key, value)?)?,
            // Resolved with the topic configs (api::topic_configs); checked here so a typo is fatal.
            "log.roll.ms" | "log.roll.hours" => {
                positive::<i64>(key, value, parse_num(key, value)?)?;
            }
            "log.message.timestamp.type" => {
                if !matches!(value, "CreateTime" | "LogAppendTime") {
                    return Err(Error::InvalidValue { key: key.into(), value: value.into(), reason: "expected CreateTime or LogAppendTime".into() });
                }
            }
            "log.cleanup.policy" => {
                for p in value.split(',') {
                    if !matches!(p.trim(), "delete" | "compact") {
                        return Err(Error::InvalidValue { key: key.into(), value: value.into(), reason: "expected delete and/or compact".into() });
                    }
                }
                self.log_cleanup_policy = value.to_string();
            }
            "listeners" | "advertised.listeners" => self.set_listeners(key, value)?,
            "controller.listener.names" => {
                let names: Vec<String> = value.split(',').map(|n| n.trim().to_string()).filter(|n| !n.is_empty()).collect();
                if names.is_empty() {
                    return Err(Error::InvalidValue { key: key.into(), value: value.into(), reason: "empty list".into() });
                }
                self.controller_listener_names = names;
                // `listeners` may have come first: sort its entries again by the new names.
                for k in ["listeners", "advertised.listeners"] {
                    if let Some(v) = self.raw.get(k).cloned() {
                        self.set_listeners(k, &v)?;
                    }
                }
            }
            "process.roles" => {
                let (mut broker, mut controller) = (false, false);
                for role in value.split(',').map(str::trim) {
                    match role {
                        "broker" if !broker => broker = true,
                        "controller" if !controller => controller = true,
                        _ => {
                            return Err(Error::InvalidValue {
                                key: key.into(),
                                value: value.into(),
                                reason: "expected broker, controller or broker,controller".into(),
                            });
                        }
                    }
                }
                (self.role_broker, self.role_controller) = (broker, controller);
            }
            "controller.quorum.voters" => self.controller_quorum_voters = parse_voters(key, value)?,
            "controller.quorum.bootstrap.servers" => {
                let mut servers = Vec::new();
                for s in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    split_host_port(key, s)?;
                    servers.push(s.to_string());
                }
                self.controller_quorum_bootstrap_servers = servers;
            }
            "broker.session.timeout.ms" => self.broker_session_timeout_ms = positive(key, value, parse_num(key, value)?)?,
            "broker.heartbeat.interval.ms" => self.broker_heartbeat_interval_ms = positive(key, value, parse_num(key, value)?)?,
            "unclean.leader.election.enable" => self.unclean_leader_election_enable = parse_bool(key, value)?,
            "replica.selector.class" => {
                self.replica_selector = crate::replication::selector::ReplicaSelector::from_class(value).map_err(|reason| Error::InvalidValue { key: key.into(), value: value.into(), reason })?;
            }
            "auto.leader.rebalance.enable" => self.auto_leader_rebalance_enable = parse_bool(key, value)?,
            "leader.imbalance.check.interval.seconds" => self.leader_imbalance_check_interval_seconds = positive(key, value, parse_num(key, value)?)?,
            "leader.imbalance.per.broker.percentage" => {
                let v: u32 = parse_num(key, value)?;
                if v > 100 {
                    return Err(Error::InvalidValue { key: key.into(), value: value.into(), reason: "must be between 0 and 100".into() });
                }
                self.leader_imbalance_per_broker_percentage = v;
            }
            "replica.lag.time.max.ms" => self.replica_lag_time_max_ms = positive(key, value, parse_num(key, value)?)?,
            "min.insync.replicas" => self.min_insync_replicas = positive(key, value, parse_num(key, value)?)?,
            // Read from `raw` by the transaction coordinator (txn::Settings); checked here.
            "transaction.max.timeout.ms" | "transaction.abort.timed.out.transaction.cleanup.interval.ms" => {
                positive::<i64>(key, value, parse_num(key, value)?)?;
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// `listeners` / `advertised.listeners`: entries named in `controller.listener.names`
    /// are the raft transport; the first other entry serves (or advertises) Kafka clients.
    fn set_listeners(&mut self, key: &str, value: &str) -> Result<()> {
        let mut client_seen = false;
        for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let Some((name, addr)) = entry.split_once("://") else {
                return Err(Error::InvalidValue { key: key.into(), value: value.into(), reason: "expected NAME://HOST:PORT entries".into() });
            };
            let (host, port) = split_host_port(key, addr)?;
            if self.controller_listener_names.iter().any(|n| n == name) {
                if key == "listeners" {
                    self.controller_listen = Some(resolve(key, &host, port)?);
                }
            } else if !client_seen {
                client_seen = true;
                if key == "listeners" {
                    self.listen = resolve(key, &host, port)?;
                }
                self.advertise_host = host;
                self.advertise_port = port as i32;
            }
        }
        Ok(())
    }

    /// Cross-key checks, as Kafka makes them at start; each error names the key.
    pub fn validate(&self) -> Result<()> {
        let bad = |key: &str, reason: String| {
            Err(Error::InvalidValue { key: key.into(), value: self.raw.get(key).cloned().unwrap_or_default(), reason })
        };
        let voters = &self.controller_quorum_voters;
        self.validate_dynamic()?;
        if !self.role_controller {
            // A broker-only node is an observer of the quorum (a raft learner): the
            // leader pushes the metadata log to it, so it needs the voters (or the
            // bootstrap servers) and a listener of its own for that stream.
            if voters.is_empty() && self.controller_quorum_bootstrap_servers.is_empty() {
                return bad(
                    "process.roles",
                    "a broker without the controller role needs controller.quorum.voters or controller.quorum.bootstrap.servers to find the quorum".into(),
                );
            }
            if voters.iter().any(|v| v.id == self.node_id) {
                return bad("controller.quorum.voters", format!("node.id {} is a voter but process.roles lacks controller", self.node_id));
            }
            if self.controller_listen.is_none() {
                return bad(
                    "controller.listener.names",
                    format!(
                        "a broker-only node needs a listeners entry named {} where the quorum sends it the metadata log",
                        self.controller_listener_names.join(",")
                    ),
                );
            }
        }
        if self.broker_heartbeat_interval_ms >= self.broker_session_timeout_ms {
            return bad(
                "broker.heartbeat.interval.ms",
                format!("must be below broker.session.timeout.ms ({}), or every broker is fenced between heartbeats", self.broker_session_timeout_ms),
            );
        }
        if !voters.is_empty() && !self.controller_quorum_bootstrap_servers.is_empty() {
            return bad("controller.quorum.bootstrap.servers", "set either controller.quorum.voters or controller.quorum.bootstrap.servers, not both".into());
        }
        if self.role_controller && !voters.is_empty() && !voters.iter().any(|v| v.id == self.node_id) {
            return bad("controller.quorum.voters", format!("node.id {} has the controller role but is not among the voters", self.node_id));
        }
        if voters.len() > 1 && self.controller_listen.is_none() {
            return bad(
                "controller.listener.names",
                format!("no entry of listeners is named {} for the controller quorum to listen on", self.controller_listener_names.join(",")),
            );
        }
        if (voters.len() > 1 || !self.role_controller || self.is_dynamic_quorum()) && self.role_broker && self.controller_listen.map(|c| c.port()) == Some(self.listen.port()) && self.listen.port() != 0 {
            return bad("listeners", "the controller listener and the client listener need different ports".into());
        }
        Ok(())
    }

    /// `__consumer_offsets`' replication factor: the configured one, else Kafka's 3
    /// capped at the controller quorum's size (1 for a one-node cluster).
    pub fn offsets_topic_rf(&self) -> i16 {
        self.offsets_topic_replication_factor.unwrap_or_else(|| self.static_voter_count().clamp(1, 3) as i16)
    }

    /// `__transaction_state`'s replication factor: the configured one, else as
    /// `__consumer_offsets`' default (3 capped at the quorum's size).
    pub fn txn_topic_rf(&self) -> i16 {
        self.txn_topic_replication_factor.unwrap_or_else(|| self.static_voter_count().clamp(1, 3) as i16)
    }

    /// Voters known from the config: `controller.quorum.voters`, else this node alone
    /// (a dynamic quorum's voters are only known at run time: 1 here, so internal
    /// topics never ask for more replicas than a fresh cluster has).
    fn static_voter_count(&self) -> usize {
        self.controller_quorum_voters.len().max(1)
    }

    /// `__transaction_state`'s `min.insync.replicas`: the configured one, else Kafka's
    /// 2 capped at the replication factor (so one node needs no configuration).
    pub fn txn_topic_min_isr(&self) -> i32 {
        self.txn_topic_min_isr.unwrap_or_else(|| i32::from(self.txn_topic_rf()).min(2))
    }

    /// A dynamic quorum (KIP-853): voters change at run time (AddRaftVoter /
    /// RemoveRaftVoter). Every node lists the controllers in
    /// `controller.quorum.bootstrap.servers`; a lone entry with no start flag on a
    /// controller stays the standalone single voter it always was.
    pub fn is_dynamic_quorum(&self) -> bool {
        let servers = &self.controller_quorum_bootstrap_servers;
        !servers.is_empty() && (servers.len() > 1 || !self.role_controller || self.initial_controllers != InitialControllers::Unspecified)
    }

    /// Checks of the dynamic-quorum keys and start flags.
    fn validate_dynamic(&self) -> Result<()> {
        let bad = |key: &str, reason: String| Err(Error::InvalidValue { key: key.into(), value: self.raw.get(key).cloned().unwrap_or_default(), reason });
        let flagged = self.initial_controllers != InitialControllers::Unspecified;
        if flagged && self.controller_quorum_bootstrap_servers.is_empty() {
            return bad(
                "controller.quorum.bootstrap.servers",
                "--standalone, --initial-controllers and --no-initial-controllers are for a dynamic quorum: set controller.quorum.bootstrap.servers".into(),
            );
        }
        if !self.role_controller && matches!(self.initial_controllers, InitialControllers::Standalone | InitialControllers::Voters(_)) {
            return bad("process.roles", "--standalone and --initial-controllers are for a node with the controller role".into());
        }
        if let InitialControllers::Voters(list) = &self.initial_controllers
            && !list.iter().any(|c| c.id == self.node_id)
        {
            return bad("node.id", format!("node.id {} is not among --initial-controllers", self.node_id));
        }
        if self.is_dynamic_quorum() && self.controller_listen.is_none() {
            return bad(
                "controller.listener.names",
                format!("a node of a dynamic quorum needs a listeners entry named {} for the metadata log", self.controller_listener_names.join(",")),
            );
        }
        Ok(())
    }

    /// This node's raft address as others reach it: its controller listener, with
    /// the advertised host when it listens on every interface.
    fn controller_addr(&self) -> Option<String> {
        self.controller_listen.map(|a| if a.ip().is_unspecified() { format!("{}:{}", self.advertise_host, a.port()) } else { a.to_string() })
    }

    /// The directory id `--initial-controllers` gives this node (meta.properties
    /// takes it on first start, as kafka-storage format does).
    pub fn initial_directory_id(&self) -> Option<&str> {
        match &self.initial_controllers {
            InitialControllers::Voters(list) => list.iter().find(|c| c.id == self.node_id).map(|c| c.directory_id.as_str()),
            _ => None,
        }
    }

    /// The metadata quorum this node takes part in; `directory_id` is its data
    /// dir's (meta.properties), recorded with its membership in a dynamic quorum.
    pub fn quorum(&self, directory_id: &str) -> crate::metadata::store::Quorum {
        use crate::raft::Member;
        use crate::raft::voters::{Dynamic, Initial};
        let mut q = crate::metadata::store::Quorum::single(self.node_id as u64);
        if self.is_dynamic_quorum() {
            let me = Member::new(self.controller_addr().unwrap_or_default(), Some(directory_id.to_string()));
            let initial = match &self.initial_controllers {
                InitialControllers::Standalone => Initial::Voters([(self.node_id as u64, me.clone())].into()),
                InitialControllers::Voters(list) => Initial::Voters(
                    list.iter().map(|c| (c.id as u64, Member::new(format!("{}:{}", c.host, c.port), Some(c.directory_id.clone())))).collect(),
                ),
                InitialControllers::None => Initial::Observe,
                InitialControllers::Unspecified => Initial::Unspecified,
            };
            q.voters.clear();
            q.listen = self.controller_listen;
            q.dynamic = Some(Dynamic { bootstrap: self.controller_quorum_bootstrap_servers.clone(), me, controller: self.role_controller, initial });
            return q;
        }
        if !self.controller_quorum_voters.is_empty() {
            q.voters = self.controller_quorum_voters.iter().map(|v| (v.id as u64, format!("{}:{}", v.host, v.port))).collect();
        }
        if q.voters.len() > 1 || self.controller_listen.is_some() {
            // A single voter listens too when configured to: broker-only nodes
            // (observers) join and forward through it.
            q.listen = self.controller_listen;
        }
        if !self.role_controller {
            q.observer_addr = self.controller_addr();
        }
        q
    }

    pub fn set_listen(&mut self, value: &str) -> Result<()> {
        let (host, port) = split_host_port("--listen", value)?;
        self.listen = resolve("--listen", &host, port)?;
        self.advertise_host = if host == "0.0.0.0" || host.is_empty() { "127.0.0.1".into() } else { host };
        self.advertise_port = port as i32;
        Ok(())
    }

    pub fn set_advertise(&mut self, value: &str) -> Result<()> {
        let (host, port) = split_host_port("--advertise", value)?;
        self.advertise_host = host;
        self.advertise_port = port as i32;
        Ok(())
    }
}

/// `1@host:port,2@host:port`: ids unique and non-negative.
fn parse_voters(key: &str, value: &str) -> Result<Vec<Voter>> {
    let bad = |reason: String| Error::InvalidValue { key: key.into(), value: value.into(), reason };
    let mut voters: Vec<Voter> = Vec::new();
    for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (id, addr) = entry.split_once('@').ok_or_else(|| bad(format!("{entry:?} is not ID@HOST:PORT")))?;
        let id: i32 = id.trim().parse().map_err(|_| bad(format!("{id:?} is not a node id")))?;
        if id < 0 {
            return Err(bad(format!("node id {id} is negative")));
        }
        if voters.iter().any(|v| v.id == id) {
            return Err(bad(format!("node id {id} is listed twice")));
        }
        let (host, port) = split_host_port(key, addr)?;
        voters.push(Voter { id, host, port });
    }
    if voters.is_empty() {
        return Err(bad("no voters".into()));
    }
    Ok(voters)
}

fn split_host_port(key: &str, value: &str) -> Result<(String, u16)> {
    let bad = |reason: &str| Error::InvalidValue { key: key.into(), value: value.into(), reason: reason.into() };
    let (host, port) = value.rsplit_once(':').ok_or_else(|| bad("expected HOST:PORT"))?;
    let port: u16 = port.parse().map_err(|_| bad("port is not a number 0-65535"))?;
    Ok((host.trim_matches(['[', ']']).to_string(), port))
}

fn resolve(key: &str, host: &str, port: u16) -> Result<SocketAddr> {
    use std::net::ToSocketAddrs;
    let host = if host.is_empty() { "0.0.0.0" } else { host };
    (host, port)
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| Error::InvalidValue { key: key.into(), value: format!("{host}:{port}"), reason: "cannot resolve host".into() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_properties_and_applies_known_keys() {
        let text = "# comment\nnum.partitions=3\nlog.segment.bytes: 1024\nsome.unknown=1\n";
        let mut c = Config::default();
        let mut unknown = vec![];
        for (k, v) in parse_properties(text, std::path::Path::new("x")).unwrap() {
            if !c.set(&k, &v).unwrap() {
                unknown.push(k);
            }
        }
        assert_eq!(c.num_partitions, 3);
        assert_eq!(c.log_segment_bytes, 1024);
        assert_eq!(unknown, vec!["some.unknown".to_string()]);
    }

    #[test]
    fn invalid_value_names_the_key() {
        let mut c = Config::default();
        let e = c.set("num.partitions", "zero").unwrap_err().to_string();
        assert!(e.contains("num.partitions"), "{e}");
        assert!(c.set("num.partitions", "0").is_err());
        assert!(c.set("auto.create.topics.enable", "yes").is_err());
    }

    #[test]
    fn recovery_threads_key_is_honoured_and_validated() {
        let mut c = Config::default();
        assert_eq!(c.num_recovery_threads, 4);
        c.set("num.recovery.threads.per.data.dir", "2").unwrap();
        assert_eq!(c.num_recovery_threads, 2);
        assert!(c.set("num.recovery.threads.per.data.dir", "0").is_err());
        assert!(c.set("num.recovery.threads.per.data.dir", "-1").is_err());
        assert_eq!(c.num_recovery_threads, 2);
    }

    #[test]
    fn cleaner_keys_parse_and_validate() {
        let mut c = Config::default();
        assert!(c.log_cleaner_enable && c.log_cleaner_threads == 1 && c.log_cleaner_backoff_ms == 15_000);
        assert!(c.log_cleaner_io_max_bytes_per_second.is_infinite());
        c.set("log.cleaner.enable", "false").unwrap();
        c.set("log.cleaner.threads", "2").unwrap();
        c.set("log.cleaner.dedupe.buffer.size", "2097152").unwrap();
        c.set("log.cleaner.io.buffer.load.factor", "0.5").unwrap();
        c.set("log.cleaner.io.max.bytes.per.second", "1048576").unwrap();
        c.set("log.cleaner.backoff.ms", "100").unwrap();
        assert!(!c.log_cleaner_enable);
        assert_eq!((c.log_cleaner_threads, c.log_cleaner_dedupe_buffer_bytes, c.log_cleaner_backoff_ms), (2, 2_097_152, 100));
        assert_eq!((c.log_cleaner_io_buffer_load_factor, c.log_cleaner_io_max_bytes_per_second), (0.5, 1_048_576.0));
        for (k, v) in [
            ("log.cleaner.threads", "0"),
            ("log.cleaner.dedupe.buffer.size", "1000"),
            ("log.cleaner.io.buffer.load.factor", "1.5"),
            ("log.cleaner.io.buffer.load.factor", "0"),
            ("log.cleaner.io.max.bytes.per.second", "-1"),
            ("log.cleaner.backoff.ms", "x"),
            ("log.cleaner.min.cleanable.ratio", "2"),
            ("log.cleaner.delete.retention.ms", "-1"),
        ] {
            assert!(c.set(k, v).is_err(), "{k}={v}");
        }
        assert!(c.set("log.cleaner.io.max.bytes.per.second", "1.7976931348623157E308").is_ok());
    }

    #[test]
    fn quorum_keys_parse_and_validate_like_kafka() {
        let mut c = Config::default();
        assert!(c.validate().is_ok());
        assert_eq!(c.quorum("AAAAAAAAAAAAAAAAAAAAAA").voters.len(), 1);
        c.set("controller.quorum.voters", "1@127.0.0.1:9093,2@127.0.0.1:9094,3@127.0.0.1:9095").unwrap();
        // No CONTROLLER listener yet.
        assert!(c.validate().unwrap_err().to_string().contains("controller.listener.names"));
        c.set("listeners", "RAFT://127.0.0.1:9093,PLAINTEXT://127.0.0.1:19092").unwrap();
        c.set("controller.listener.names", "RAFT").unwrap();
        assert_eq!(c.controller_listen.unwrap().port(), 9093);
        assert_eq!(c.listen.port(), 19092);
        c.validate().unwrap();
        let q = c.quorum("AAAAAAAAAAAAAAAAAAAAAA");
        assert_eq!(q.voters.len(), 3);
        assert_eq!(q.voters[&2], "127.0.0.1:9094");
        c.set("node.id", "4").unwrap();
        assert!(c.validate().unwrap_err().to_string().contains("controller.quorum.voters"));
        for (k, v) in [
            ("controller.quorum.voters", "1@x"),
            ("controller.quorum.voters", "a@h:1"),
            ("controller.quorum.voters", "1@h:1,1@h:2"),
            ("process.roles", "broker,broker"),
            ("process.roles", "leader"),
            ("listeners", "127.0.0.1:9092"),
        ] {
            let e = Config::default().set(k, v).unwrap_err().to_string();
            assert!(e.contains(k), "{e}");
        }
        let mut b = Config::default();
        b.set("process.roles", "broker").unwrap();
        assert!(b.validate().unwrap_err().to_string().contains("process.roles"));
        // A broker-only node: not a voter, with a listener for the metadata stream.
        b.set("node.id", "7").unwrap();
        b.set("controller.quorum.voters", "1@127.0.0.1:9093").unwrap();
        assert!(b.validate().unwrap_err().to_string().contains("controller.listener.names"));
        b.set("listeners", "PLAINTEXT://127.0.0.1:19097,CONTROLLER://0.0.0.0:19098").unwrap();
        b.validate().unwrap();
        let q = b.quorum("AAAAAAAAAAAAAAAAAAAAAA");
        assert_eq!(q.observer_addr.as_deref(), Some("127.0.0.1:19098"));
        assert!(!q.voters.contains_key(&7));
        b.set("node.id", "1").unwrap();
        assert!(b.validate().unwrap_err().to_string().contains("lacks controller"));
        let mut k = Config::default();
        k.set("process.roles", "controller").unwrap();
        k.validate().unwrap();
        assert!(k.role_controller && !k.role_broker);
    }

    #[test]
    fn dynamic_quorum_keys_and_start_flags_validate() {
        use crate::raft::voters::Initial;
        let dir = "MvDxzVmcRsaTz33bUuRU6A";
        let controller = |id: &str, servers: &str| {
            let mut c = Config::default();
            c.set("node.id", id).unwrap();
            c.set("process.roles", "controller").unwrap();
            c.set("listeners", "CONTROLLER://127.0.0.1:9093").unwrap();
            c.set("controller.quorum.bootstrap.servers", servers).unwrap();
            c
        };
        // One bootstrap server and no flag: the standalone single voter, as before.
        let c = controller("1", "127.0.0.1:9093");
        c.validate().unwrap();
        assert!(!c.is_dynamic_quorum() && c.quorum(dir).dynamic.is_none());
        // Several: dynamic; the voter set comes from the flags (or the stored log).
        let mut c = controller("1", "127.0.0.1:9093,127.0.0.1:9094,127.0.0.1:9095");
        c.validate().unwrap();
        let q = c.quorum(dir);
        let d = q.dynamic.expect("dynamic");
        assert!(q.voters.is_empty() && d.controller && d.initial == Initial::Unspecified && d.bootstrap.len() == 3);
        assert_eq!((d.me.addr.as_str(), d.me.directory_id.as_deref()), ("127.0.0.1:9093", Some(dir)));
        c.initial_controllers = InitialControllers::Standalone;
        let Some(Initial::Voters(v)) = c.quorum(dir).dynamic.map(|d| d.initial) else { panic!("standalone forms the quorum") };
        assert_eq!(v.keys().copied().collect::<Vec<_>>(), vec![1]);
        c.initial_controllers = InitialControllers::Voters(parse_initial_controllers("1@h1:9093:MvDxzVmcRsaTz33bUuRU6A,2@h2:9093:07R5amHmR32VDA6jHkGbTA").unwrap());
        c.validate().unwrap();
        assert_eq!(c.initial_directory_id(), Some("MvDxzVmcRsaTz33bUuRU6A"), "meta.properties takes the listed directory id");
        let Some(Initial::Voters(v)) = c.quorum(dir).dynamic.map(|d| d.initial) else { panic!("listed voters form the quorum") };
        assert_eq!(v[&2].addr, "h2:9093");
        c.set("node.id", "3").unwrap();
        assert!(c.validate().unwrap_err().to_string().contains("not among --initial-controllers"));
        // A flag on a lone server makes it dynamic too (it can grow later).
        let mut c = controller("2", "127.0.0.1:9093");
        c.initial_controllers = InitialControllers::None;
        assert!(c.is_dynamic_quorum() && c.quorum(dir).dynamic.is_some_and(|d| d.initial == Initial::Observe));
        // Flags need bootstrap servers; a broker takes only --no-initial-controllers.
        let c = Config { initial_controllers: InitialControllers::Standalone, ..Default::default() };
        assert!(c.validate().unwrap_err().to_string().contains("controller.quorum.bootstrap.servers"));
        let mut b = Config::default();
        b.set("node.id", "4").unwrap();
        b.set("process.roles", "broker").unwrap();
        b.set("listeners", "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093").unwrap();
        b.set("controller.quorum.bootstrap.servers", "127.0.0.1:9093,127.0.0.1:9094").unwrap();
        b.validate().unwrap();
        assert!(b.quorum(dir).dynamic.is_some_and(|d| !d.controller && d.me.addr == "127.0.0.1:19093"));
        b.initial_controllers = InitialControllers::Standalone;
        assert!(b.validate().unwrap_err().to_string().contains("process.roles"));
        // Without a controller listener there is nowhere for the log to arrive.
        let mut n = controller("1", "127.0.0.1:9093,127.0.0.1:9094");
        n.set("listeners", "PLAINTEXT://127.0.0.1:9092").unwrap();
        n.controller_listen = None;
        assert!(n.validate().unwrap_err().to_string().contains("controller.listener.names"));
    }

    #[test]
    fn membership_keys_have_kafka_defaults_and_validate() {
        let mut c = Config::default();
        assert_eq!((c.broker_session_timeout_ms, c.broker_heartbeat_interval_ms, c.replica_lag_time_max_ms), (9_000, 2_000, 30_000));
        assert!(!c.unclean_leader_election_enable && c.min_insync_replicas == 1);
        c.set("unclean.leader.election.enable", "true").unwrap();
        c.set("min.insync.replicas", "2").unwrap();
        c.set("replica.lag.time.max.ms", "10000").unwrap();
        assert!(c.unclean_leader_election_enable && c.min_insync_replicas == 2 && c.replica_lag_time_max_ms == 10_000);
        for (k, v) in [("min.insync.replicas", "0"), ("broker.session.timeout.ms", "0"), ("unclean.leader.election.enable", "1")] {
            assert!(c.set(k, v).is_err(), "{k}={v}");
        }
        c.set("broker.heartbeat.interval.ms", "9000").unwrap();
        assert!(c.validate().unwrap_err().to_string().contains("broker.heartbeat.interval.ms"));
    }

    #[test]
    fn listen_sets_advertised_address() {
        let mut c = Config::default();
        c.set_listen("127.0.0.1:19092").unwrap();
        assert_eq!((c.advertise_host.as_str(), c.advertise_port), ("127.0.0.1", 19092));
        c.set_advertise("broker.example:29092").unwrap();
        assert_eq!((c.advertise_host.as_str(), c.advertise_port), ("broker.example", 29092));
    }
}
