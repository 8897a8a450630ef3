//! Data replication, Kafka style: every partition has a leader and followers
//! (its replicas in the metadata image); followers fetch from the leader with
//! Fetch requests carrying their replica id; the leader tracks how far each has
//! come, keeps the ISR (proposing changes through the metadata quorum) and caps the
//! high watermark at the slowest in-sync replica, so acks=all and consumers only
//! ever see what the in-sync replicas hold.
//!
//! The metadata image is the truth about roles: [`ReplicaManager::reconcile`] turns
//! it into leader states and fetcher assignments. It runs when the image changes
//! (a background task) and, cheaply, before any request that needs to know whether
//! this node leads a partition (so a produce right after CreateTopics does not see
//! a stale role).
//!
//! - `leader`: one partition's followers, high watermark cap and ISR decisions.
//! - `fetcher`: one task per leader this node follows partitions of.
//! - `client`: the Kafka-protocol client the fetchers speak.

pub mod client;
pub mod fetcher;
pub mod leader;
pub mod selector;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use tokio::sync::watch;
use uuid::Uuid;

use crate::broker::Broker;
use crate::log::manager::TopicPartition;
use crate::metadata::image::ApplyError;
use crate::metadata::{Image, MetadataRecord};
pub use leader::{FetchOutcome, LeaderState};

/// A partition this node follows: who leads it, at which epoch.
#[derive(Debug, Clone, PartialEq)]
pub struct Following {
    pub topic_id: Uuid,
    pub leader: i32,
    pub leader_epoch: i32,
}

/// Tunables, from Kafka's broker keys.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `replica.lag.time.max.ms`: a follower not caught up for this long leaves the ISR.
    pub max_lag: Duration,
    /// `replica.fetch.wait.max.ms`.
    pub fetch_max_wait: Duration,
    /// `replica.fetch.max.bytes` (per partition) and `replica.fetch.response.max.bytes`.
    pub partition_fetch_max_bytes: i32,
    pub fetch_response_max_bytes: i32,
    /// `replica.fetch.backoff.ms`: pause after a failed fetch.
    pub fetch_backoff: Duration,
}

impl Settings {
    pub fn from_config(c: &crate::config::Config) -> Settings {
        Settings {
            max_lag: Duration::from_millis(c.replica_lag_time_max_ms),
            fetch_max_wait: Duration::from_millis(500),
            partition_fetch_max_bytes: 1_048_576,
            fetch_response_max_bytes: 10 * 1_048_576,
            fetch_backoff: Duration::from_millis(200),
        }
    }
}

type Key = (Uuid, i32);

pub struct ReplicaManager {
    node_id: i32,
    settings: Settings,
    broker: std::sync::OnceLock<Weak<Broker>>,
    leaders: RwLock<HashMap<Key, Arc<LeaderState>>>,
    following: RwLock<HashMap<TopicPartition, Following>>,
    /// Leader id → a fetcher task runs for it.
    fetchers: Mutex<HashSet<i32>>,
    /// Metadata offset of the image last reconciled (-2: never).
    reconciled_offset: AtomicI64,
    reconcile_lock: Mutex<()>,
    /// Partitions this node hosts a replica of, as of the last reconcile.
    hosted: Mutex<HashSet<TopicPartition>>,
    /// Bumped after every leader append: wakes followers' long-polling fetches.
    appended: watch::Sender<u64>,
    stopping: AtomicBool,
}

impl ReplicaManager {
    pub fn new(node_id: i32, settings: Settings) -> ReplicaManager {
        ReplicaManager {
            node_id,
            settings,
            broker: std::sync::OnceLock::new(),
            leaders: RwLock::new(HashMap::new()),
            following: RwLock::new(HashMap::new()),
            fetchers: Mutex::new(HashSet::new()),
            reconciled_offset: AtomicI64::new(-2),
            reconcile_lock: Mutex::new(()),
            hosted: Mutex::new(HashSet::new()),
            appended: watch::channel(0).0,
            stopping: AtomicBool::new(false),
        }
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Give the manager its broker (after `Broker` is built: they refer to each other).
    pub fn attach(&self, broker: &Arc<Broker>) {
        let _ = self.broker.set(Arc::downgrade(broker));
    }

    fn broker(&self) -> Option<Arc<Broker>> {
        self.broker.get().and_then(Weak::upgrade)
    }

    /// Start the background work: reconcile on every image change, and the ISR
    /// shrink check. Call from inside the tokio runtime.
    pub fn start(broker: &Arc<Broker>) {
        let weak = Arc::downgrade(broker);
        let mut images = broker.metadata.subscribe();
        tokio::spawn({
            let weak = weak.clone();
            async move {
                loop {
                    {
                        // Runs on through shutdown: a broker that handed its leaderships
                        // away must still resign them (waking the requests waiting on them).
                        let Some(b) = weak.upgrade() else { return };
                        let b2 = b.clone();
                        // Reconcile opens logs and writes epoch checkpoints: blocking work.
                        let _ = tokio::task::spawn_blocking(move || b2.replicas.ensure_current(&b2)).await;
                    }
                    if images.changed().await.is_err() {
                        return;
                    }
                }
            }
        });
        let period = (broker.replicas.settings.max_lag / 2).clamp(Duration::from_millis(200), Duration::from_secs(5));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            loop {
                tick.tick().await;
                let Some(b) = weak.upgrade() else { return };
                if b.replicas.stopping.load(Ordering::Acquire) {
                    return;
                }
                b.replicas.shrink_lagging();
            }
        });
    }

    /// Stop fetching and background work (shutdown, before the logs close).
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::Release);
    }

    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    /// Reconcile with the broker's current image unless that image was reconciled already.
    pub fn ensure_current(&self, broker: &Arc<Broker>) {
        let image = broker.image();
        if self.reconciled_offset.load(Ordering::Acquire) == image.last_offset {
            return;
        }
        let _g = self.reconcile_lock.lock();
        let image = broker.image(); // the newest, now that we hold the lock
        if self.reconciled_offset.load(Ordering::Acquire) == image.last_offset {
            return;
        }
        self.reconcile(broker, &image);
        self.reconciled_offset.store(image.last_offset, Ordering::Release);
    }

    /// Turn the image's view of this node's replicas into leader states and fetcher
    /// assignments; open logs for new replicas and delete those of deleted topics.
    fn reconcile(&self, broker: &Arc<Broker>, image: &Image) {
        let me = self.node_id;
        let now = Instant::now();
        let mut hosted = HashSet::new();
        let mut leaders = HashMap::new();
        let mut following = HashMap::new();
        for topic in image.topics.values() {
            for (i, p) in topic.partitions.iter().enumerate() {
                if !p.replicas.contains(&me) {
                    continue;
                }
                let index = i as i32;
                let tp = TopicPartition::new(&topic.name, index);
                hosted.insert(tp.clone());
                let log = match broker.partition(topic, index) {
                    Ok(Some(log)) => log,
                    Ok(None) => continue,
                    Err(e) => {
                        tracing::error!(partition = %tp.dir_name(), error = %e, "cannot open replica log");
                        continue;
                    }
                };
                if p.leader == me {
                    let key = (topic.id, index);
                    let current = self.leaders.read().get(&key).cloned();
                    let state = match current {
                        Some(s) if s.epoch == p.leader_epoch => {
                            s.update_from_image(&p.replicas, &p.isr, now);
                            s
                        }
                        _ => {
                            // Becoming leader (Kafka's makeLeader): the new epoch starts at our log end.
                            let start = log.log_end_offset();
                            if let Err(e) = log.assign_epoch(p.leader_epoch, start) {
                                tracing::error!(partition = %tp.dir_name(), error = %e, "cannot record the leader epoch");
                            }
                            tracing::info!(partition = %tp.dir_name(), epoch = p.leader_epoch, log_end = start, isr = ?p.isr, "leading");
                            Arc::new(LeaderState::new(tp.clone(), topic.id, me, p, start, now))
                        }
                    };
                    log.set_hw_cap(state.hw_cap());
                    leaders.insert(key, state);
                } else {
                    // A follower's high watermark is the leader's (learnt by fetching):
                    // hold it where it is until the first fetch answers.
                    let f = Following { topic_id: topic.id, leader: p.leader, leader_epoch: p.leader_epoch };
                    if self.following.read().get(&tp) != Some(&f) {
                        log.set_hw_cap(log.high_watermark());
                        tracing::info!(partition = %tp.dir_name(), leader = p.leader, epoch = p.leader_epoch, "following");
                    }
                    following.insert(tp, f);
                }
            }
        }
        let previous = std::mem::replace(&mut *self.leaders.write(), leaders);
        for (key, old) in previous {
            if self.leaders.read().get(&key).is_none_or(|new| !Arc::ptr_eq(new, &old)) {
                tracing::info!(partition = %old.tp.dir_name(), epoch = old.epoch, "no longer leading");
                old.resign();
            }
        }
        *self.following.write() = following;
        // Partitions of deleted topics (or moved away) lose their local replica.
        let gone: Vec<TopicPartition> = {
            let mut h = self.hosted.lock();
            let gone = h.difference(&hosted).cloned().collect();
            *h = hosted;
            gone
        };
        for tp in gone {
            if image.topic(&tp.topic).is_some_and(|t| t.partitions.get(tp.partition as usize).is_some_and(|p| p.replicas.contains(&me))) {
                continue;
            }
            if let Err(e) = broker.logs.delete(&tp) {
                tracing::warn!(partition = %tp.dir_name(), error = %e, "removing a replica that is no longer assigned here failed");
            }
        }
        self.start_fetchers(image);
        // Coordinators follow the leadership of their internal partitions.
        crate::coordinator::reconciled(broker, image);
    }

    fn start_fetchers(&self, image: &Image) {
        let Ok(rt) = tokio::runtime::Handle::try_current() else { return };
        let wanted: HashSet<i32> = self.following.read().values().map(|f| f.leader).filter(|l| *l >= 0).collect();
        let mut running = self.fetchers.lock();
        for leader in wanted {
            if running.contains(&leader) || !image.brokers.contains_key(&leader) {
                continue;
            }
            let Some(weak) = self.broker.get().cloned() else { return };
            running.insert(leader);
            rt.spawn(fetcher::run(weak, leader));
        }
    }

    /// The partitions this node follows from `leader`.
    pub fn followed_from(&self, leader: i32) -> Vec<(TopicPartition, Following)> {
        self.following.read().iter().filter(|(_, f)| f.leader == leader).map(|(tp, f)| (tp.clone(), f.clone())).collect()
    }

    /// A fetcher with nothing left to fetch asks to stop; refused (false) if a
    /// partition was assigned to its leader meanwhile.
    pub fn retire_fetcher(&self, leader: i32) -> bool {
        let mut running = self.fetchers.lock();
        if self.following.read().values().any(|f| f.leader == leader) && !self.is_stopping() {
            return false;
        }
        running.remove(&leader);
        true
    }

    /// The leader state of a partition this node leads at the image's epoch.
    pub fn leader_state(&self, topic_id: Uuid, partition: i32) -> Option<Arc<LeaderState>> {
        self.leaders.read().get(&(topic_id, partition)).cloned()
    }

    pub fn notify_appended(&self) {
        self.appended.send_modify(|n| *n = n.wrapping_add(1));
    }

    pub fn subscribe_appended(&self) -> watch::Receiver<u64> {
        self.appended.subscribe()
    }

    /// A follower fetched `fetch_offset` (its log end): update its progress, the
    /// high watermark, and propose it into the ISR if it has caught up.
    pub fn on_follower_fetch(&self, state: &Arc<LeaderState>, log: &crate::log::manager::Partition, replica: i32, fetch_offset: i64) {
        let outcome = state.on_fetch(replica, fetch_offset, log.log_end_offset(), log.high_watermark(), Instant::now());
        log.set_hw_cap(state.hw_cap());
        if let FetchOutcome::ProposeAdd(r) = outcome {
            if !self.broker().is_some_and(|b| b.image().is_live(r)) {
                // Fenced (e.g. resumed after a stop, not yet heartbeating): not before it is live.
                state.add_failed(r);
                return;
            }
            tracing::info!(partition = %state.tp.dir_name(), replica = r, "follower caught up: adding to the ISR");
            self.propose_isr(state.clone(), IsrChange::Add(r));
        }
    }

    fn shrink_lagging(&self) {
        let now = Instant::now();
        let states: Vec<Arc<LeaderState>> = self.leaders.read().values().cloned().collect();
        for s in states {
            let lagging = s.take_lagging(now, self.settings.max_lag);
            if lagging.is_empty() {
                continue;
            }
            tracing::warn!(partition = %s.tp.dir_name(), lagging = ?lagging, "followers fell behind: shrinking the ISR");
            self.propose_isr(s, IsrChange::Remove(lagging));
        }
    }

    /// Propose an ISR change for a partition this node leads (Kafka's AlterPartition):
    /// checked against the latest image under the quorum's proposal lock, so it only
    /// lands while this node still leads at the same epoch.
    fn propose_isr(&self, state: Arc<LeaderState>, change: IsrChange) {
        let Some(broker) = self.broker() else { return };
        let Ok(rt) = tokio::runtime::Handle::try_current() else { return };
        rt.spawn_blocking(move || {
            let me = state.node_id;
            let result = broker.metadata.propose(|img| {
                let t = img.topic_by_id(&state.topic_id).ok_or(ApplyError::UnknownTopicId(state.topic_id))?;
                let p = t.partitions.get(state.tp.partition as usize).ok_or_else(|| ApplyError::UnknownTopic(t.name.clone()))?;
                if p.leader != me || p.leader_epoch != state.epoch {
                    return Err(ApplyError::NotLeader { topic: t.name.clone(), partition: state.tp.partition });
                }
                let mut isr = p.isr.clone();
                if let IsrChange::Add(r) = &change
                    && !img.is_live(*r)
                {
                    // KIP-841: a fenced broker (stopped, or in controlled shutdown) never
                    // rejoins an ISR, however caught up its last fetch looked.
                    return Err(ApplyError::UnknownBroker(*r));
                }
                match &change {
                    IsrChange::Add(r) if !isr.contains(r) && p.replicas.contains(r) => isr.push(*r),
                    IsrChange::Remove(rs) => isr.retain(|r| *r == me || !rs.contains(r)),
                    _ => {}
                }
                if isr == p.isr {
                    return Ok(vec![]);
                }
                let next = crate::metadata::PartitionImage { isr, ..p.clone() };
                // A grown ISR may hold every replica a reassignment adds: then it
                // completes in the same record (KIP-455, as KRaft's AlterPartition does).
                let next = crate::controller::reassignment::complete_if_done(&next, |b| img.is_live(b)).unwrap_or(next);
                Ok(vec![MetadataRecord::partition(state.topic_id, state.tp.partition, next)])
            });
            match result {
                Ok(_) => broker.replicas.ensure_current(&broker),
                Err(e) => {
                    tracing::info!(partition = %state.tp.dir_name(), error = %e, "ISR change not made");
                    match change {
                        IsrChange::Add(r) => state.add_failed(r),
                        IsrChange::Remove(_) => state.shrink_failed(),
                    }
                }
            }
        });
    }
}

enum IsrChange {
    Add(i32),
    Remove(Vec<i32>),
}
