//! Cluster membership, liveness, placement and leader election: the part of the
//! controller that decides which broker leads each partition. Its decisions are
//! metadata records; the image they build (`Image::brokers`, each partition's
//! leader / epoch / replicas / ISR) is the truth `replication/` acts on.
//!
//! - `membership`: the broker side: register at start, heartbeat the quorum leader.
//! - `liveness`: the leader's heartbeat table and the fence / unfence rule.
//! - `election`: one partition's new leader and ISR when a broker leaves or returns.
//! - `placement`: replicas for new partitions.
//! - `preferred`: requested elections (ElectLeaders) and the preferred-leader rebalance.
//! - `reassignment`: moving a partition's replicas (AlterPartitionReassignments).
//! - here: the record builders that combine them, the loop that runs them on the
//!   quorum leader, and controlled shutdown.
//!
//! The loop runs on every controller node and acts only while the local raft node
//! leads, because only the leader hears heartbeats. Its proposals are rebuilt on the
//! newest image under the proposal lock, so a decision never acts on a stale view.

pub mod election;
pub mod liveness;
pub mod membership;
pub mod placement;
pub mod preferred;
pub mod reassignment;

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use uuid::Uuid;

use crate::config::Config;
use crate::metadata::{Image, MetadataRecord, MetadataStore, PartitionImage, TopicImage};
use liveness::{Liveness, judge};

/// How often the leader looks for silent brokers; well under the session timeout.
pub const TICK: Duration = Duration::from_millis(250);

/// Whether `topic` may elect an out-of-sync replica: its own
/// `unclean.leader.election.enable`, else the broker's (dynamic, then static).
pub fn unclean_allowed(config: &Config, image: &Image, topic: &TopicImage) -> bool {
    use crate::api::topic_configs as tc;
    let Some(t) = tc::find("unclean.leader.election.enable") else { return config.unclean_leader_election_enable };
    tc::resolve(config, &tc::dynamic_broker_configs(image), &topic.configs, t).value.trim().eq_ignore_ascii_case("true")
}

fn partition_record(topic: &TopicImage, partition: usize, p: PartitionImage) -> MetadataRecord {
    MetadataRecord::partition(topic.id, partition as i32, p)
}

/// Apply `records` to the working copy as they are emitted, so later decisions in
/// one batch see earlier ones (e.g. two brokers fenced together).
fn push(work: &mut Image, out: &mut Vec<MetadataRecord>, records: Vec<MetadataRecord>) {
    for r in records {
        // Built from `work` itself, so they fit it; a failure here is a bug.
        work.apply(work.last_offset, &r).expect("controller records fit the image they were built on");
        out.push(r);
    }
}

/// Fence `id`; brokers in `going` are being fenced in the same batch and are not
/// candidates either, so leadership moves once, to a broker that stays.
fn fence_one(img: &Image, id: i32, going: &[i32], config: &Config) -> Vec<MetadataRecord> {
    let mut out = Vec::new();
    for topic in img.topics.values() {
        let unclean = unclean_allowed(config, img, topic);
        for (i, p) in topic.partitions.iter().enumerate() {
            if let Some(next) = election::on_fenced(p, id, |b| img.is_live(b) && !going.contains(&b), unclean) {
                out.push(partition_record(topic, i, next));
            }
        }
    }
    if img.is_live(id) {
        out.push(MetadataRecord::FenceBroker { id });
    }
    out
}

fn unfence_one(img: &Image, id: i32, config: &Config) -> Vec<MetadataRecord> {
    if !img.brokers.get(&id).is_some_and(|b| b.fenced) {
        return vec![];
    }
    let mut out = vec![MetadataRecord::UnfenceBroker { id }];
    for topic in img.topics.values() {
        let unclean = unclean_allowed(config, img, topic);
        for (i, p) in topic.partitions.iter().enumerate() {
            if let Some(next) = election::on_unfenced(p, id, unclean) {
                out.push(partition_record(topic, i, next));
            }
        }
    }
    out
}

/// Records that fence `fence` and unfence `unfence`, with every leadership change
/// that follows, as one batch built on `image`.
pub fn liveness_records(image: &Image, fence: &[i32], unfence: &[i32], config: &Config) -> Vec<MetadataRecord> {
    let mut work = image.clone();
    let mut out = Vec::new();
    for &id in fence {
        let r = fence_one(&work, id, fence, config);
        push(&mut work, &mut out, r);
    }
    for &id in unfence {
        let r = unfence_one(&work, id, config);
        push(&mut work, &mut out, r);
    }
    out
}

/// A broker's registration: who it is and where clients reach it.
#[derive(Debug, Clone, PartialEq)]
pub struct Registration {
    pub id: i32,
    pub incarnation: Uuid,
    pub host: String,
    pub port: i32,
    pub rack: Option<String>,
}

/// The batch that registers `reg` on `image`. The first registration also logs
/// `cluster_id`. Re-registering a live broker under a new incarnation (a restart
/// the session timeout did not notice) first fences the old one, moving its
/// leaderships, since the new process starts without the old one's state.
/// `unfence_now` skips waiting for a heartbeat: only for a single-voter cluster,
/// where this broker is the only one and waiting would delay every start.
/// Empty when `reg` is already registered as asked.
pub fn registration_records(image: &Image, reg: &Registration, unfence_now: bool, cluster_id: &str, config: &Config) -> Vec<MetadataRecord> {
    let mut work = image.clone();
    let mut out = Vec::new();
    if let Some(b) = image.brokers.get(&reg.id)
        && b.incarnation == reg.incarnation
    {
        if unfence_now {
            let r = unfence_one(&work, reg.id, config);
            push(&mut work, &mut out, r);
        }
        return out;
    }
    if image.cluster_id.is_none() {
        push(&mut work, &mut out, vec![MetadataRecord::ClusterId(cluster_id.to_string())]);
    }
    if !unfence_now && image.is_live(reg.id) {
        let r = fence_one(&work, reg.id, &[], config);
        push(&mut work, &mut out, r);
    }
    let register =
        MetadataRecord::RegisterBroker { id: reg.id, incarnation: reg.incarnation, host: reg.host.clone(), port: reg.port, rack: reg.rack.clone() };
    push(&mut work, &mut out, vec![register]);
    if unfence_now {
        let r = unfence_one(&work, reg.id, config);
        push(&mut work, &mut out, r);
    }
    out
}

/// Graceful leave (the broker's SIGTERM path): move every leadership of
/// `broker_id` to another live ISR member and fence it, in one proposal. Stop the
/// broker's heartbeats first, or the controller unfences it again. Blocking (it
/// proposes); any node may call it, followers forward to the leader.
pub fn controlled_shutdown(store: &MetadataStore, config: &Config, broker_id: i32) -> crate::metadata::store::Result<()> {
    store.propose(|img| Ok(liveness_records(img, &[broker_id], &[], config)))?;
    Ok(())
}

/// The leader-side state of the controller loop.
struct Lead {
    term: u64,
    since: Instant,
    /// Each broker's (incarnation, fenced) at the last tick: a live → fenced change
    /// of one incarnation makes its older beats stale (see `liveness`).
    seen: HashMap<i32, (Uuid, bool)>,
    /// When the preferred-leader rebalance last looked (Kafka waits one interval
    /// after a controller takes over).
    last_rebalance: Instant,
}

/// Start the controller loop on the current tokio runtime. It stops when the store
/// is dropped.
pub fn start(store: &Arc<MetadataStore>, config: Arc<Config>) {
    let Ok(rt) = tokio::runtime::Handle::try_current() else { return };
    rt.spawn(run(Arc::downgrade(store), config));
}

async fn run(store: Weak<MetadataStore>, config: Arc<Config>) {
    let session_timeout = Duration::from_millis(config.broker_session_timeout_ms);
    let judge = move |img: &Image, beat: &dyn Fn(i32) -> Option<liveness::Beat>, since: Instant, now: Instant, exempt: Option<i32>| {
        let mut v = judge(img, beat, since, now, session_timeout);
        v.fence.retain(|id| Some(*id) != exempt);
        v
    };
    let mut lead: Option<Lead> = None;
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_tick = Instant::now();
    loop {
        tick.tick().await;
        // This process was paused (SIGSTOP, a stalled machine) for a good part of a
        // session: the beats it remembers are as old as the pause, not the brokers'
        // silence. Judge only after a fresh grace period.
        let paused = last_tick.elapsed() > session_timeout / 2;
        last_tick = Instant::now();
        if paused {
            lead = None;
        }
        let Some(store) = store.upgrade() else { return };
        let m = store.raft().metrics();
        if m.state != openraft::ServerState::Leader {
            lead = None;
            continue;
        }
        let liveness = store.raft().liveness().clone();
        let now = Instant::now();
        // A single voter in combined mode runs its only broker in this very process:
        // if this loop runs, that broker is up, and fencing it after a stall (a paused
        // process, a loaded machine) would only take every partition offline for a beat.
        let single_voter = m.membership_config.membership().voter_ids().count() == 1;
        let exempt = (config.role_broker && single_voter).then_some(config.node_id);
        let image = store.image();
        let l = match &mut lead {
            Some(l) if l.term == m.current_term => l,
            _ => {
                // A new term: beats heard in an earlier one may predate fencing; start over.
                liveness.clear();
                let seen = image.brokers.values().map(|b| (b.id, (b.incarnation, b.fenced))).collect();
                tracing::info!(term = m.current_term, "controller: leading; broker session clocks start now");
                lead.insert(Lead { term: m.current_term, since: now, seen, last_rebalance: now })
            }
        };
        for b in image.brokers.values() {
            if b.fenced && l.seen.get(&b.id) == Some(&(b.incarnation, false)) {
                liveness.forget_before(b.id, now);
            }
            l.seen.insert(b.id, (b.incarnation, b.fenced));
        }
        let rebalance_interval = Duration::from_secs(config.leader_imbalance_check_interval_seconds);
        if config.auto_leader_rebalance_enable && now.duration_since(l.last_rebalance) >= rebalance_interval {
            l.last_rebalance = now;
            rebalance(store.clone(), l.term, config.leader_imbalance_per_broker_percentage).await;
        }
        let verdict = judge(&image, &|id| liveness.get(id), l.since, now, exempt);
        if verdict.fence.is_empty() && verdict.unfence.is_empty() {
            continue;
        }
        let since = l.since;
        let term = l.term;
        let config = config.clone();
        let result = tokio::task::spawn_blocking(move || {
            store.propose(|img| {
                // Only as the leader of the term these beats were heard in: a deposed
                // leader (paused, partitioned) must not forward its stale verdict to
                // the new one, which would fence brokers it hears from.
                let m = store.raft().metrics();
                if m.state != openraft::ServerState::Leader || m.current_term != term {
                    return Err(crate::metadata::image::ApplyError::NotController);
                }
                let v = judge(img, &|id| liveness.get(id), since, Instant::now(), exempt);
                Ok(liveness_records(img, &v.fence, &v.unfence, &config))
            })
        })
        .await;
        match result {
            Ok(Ok(_)) => tracing::info!(fenced = ?verdict.fence, unfenced = ?verdict.unfence, "controller: broker liveness changed"),
            Ok(Err(e)) => tracing::warn!(error = %e, "controller: could not log broker liveness changes"),
            Err(e) => tracing::warn!(error = %e, "controller: liveness proposal task failed"),
        }
    }
}

/// One automatic preferred-leader rebalance (`auto.leader.rebalance.enable`), as the
/// leader of raft term `term` only: a deposed controller's view may be stale.
async fn rebalance(store: Arc<MetadataStore>, term: u64, threshold_percent: u32) {
    let result = tokio::task::spawn_blocking(move || {
        store.propose(|img| {
            let m = store.raft().metrics();
            if m.state != openraft::ServerState::Leader || m.current_term != term {
                return Err(crate::metadata::image::ApplyError::NotController);
            }
            Ok(preferred::rebalance_records(img, threshold_percent))
        })
    })
    .await;
    match result {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "controller: preferred leader rebalance not made"),
        Err(e) => tracing::warn!(error = %e, "controller: rebalance task failed"),
    }
}

/// The liveness table of this node (meaningful while it leads the quorum).
pub fn liveness_of(store: &MetadataStore) -> &Arc<Liveness> {
    store.raft().liveness()
}

#[cfg(test)]
mod tests;
