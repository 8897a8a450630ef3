//! What a partition leader knows about its followers: how far each has fetched,
//! when it was last caught up, and from that the high watermark cap and the ISR
//! changes to propose (Kafka's `Partition` leader side).
//!
//! The high watermark is the smallest log end among the in-sync replicas (the
//! leader's own end counts as its durable end: `log::manager::Partition` takes the
//! min of that and the cap computed here). A follower being added to the ISR counts
//! from the moment the addition is proposed, and a follower being removed counts
//! until the removal is committed (Kafka's "maximal ISR"): otherwise the high
//! watermark could pass a replica that the controller may elect.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use uuid::Uuid;

use crate::log::manager::TopicPartition;
use crate::metadata::PartitionImage;

#[derive(Debug, Clone)]
struct FollowerProgress {
    /// The follower's log end offset as its last fetch offset said; -1 = not fetched yet.
    log_end: i64,
    last_fetch: Instant,
    /// Last time the follower had everything the leader had (Kafka's lastCaughtUpTimeMs).
    last_caught_up: Instant,
    /// The leader's log end at the follower's previous fetch.
    leader_end_at_last_fetch: i64,
}

#[derive(Debug)]
struct Inner {
    /// The ISR as the metadata image has it (committed).
    isr: Vec<i32>,
    /// Followers proposed for the ISR and not yet in the image.
    adding: BTreeSet<i32>,
    /// A shrink is in flight: do not propose another until the image moves.
    shrinking: bool,
    followers: BTreeMap<i32, FollowerProgress>,
}

#[derive(Debug)]
pub struct LeaderState {
    pub tp: TopicPartition,
    pub topic_id: Uuid,
    pub node_id: i32,
    pub epoch: i32,
    /// The log end when this node became leader at `epoch`: a follower is not in sync
    /// before it has reached the current epoch (Kafka's leaderEpochStartOffset).
    pub epoch_start_offset: i64,
    /// Set when this node stops leading at `epoch`. A request waiting on the log
    /// must then fail: once a follower, the log may be truncated and refilled by the
    /// new leader past the offset it waits for, with other records.
    resigned: tokio::sync::watch::Sender<bool>,
    inner: Mutex<Inner>,
}

/// Whether a fetch made the follower eligible to join the ISR.
#[derive(Debug, PartialEq)]
pub enum FetchOutcome {
    Nothing,
    ProposeAdd(i32),
}

impl LeaderState {
    /// This node (`node_id`) takes the lead of `p` (its image: epoch, replicas, ISR)
    /// with its log ending at `epoch_start_offset`.
    pub fn new(tp: TopicPartition, topic_id: Uuid, node_id: i32, p: &PartitionImage, epoch_start_offset: i64, now: Instant) -> LeaderState {
        let (epoch, isr) = (p.leader_epoch, &p.isr);
        let followers = p
            .replicas
            .iter()
            .filter(|r| **r != node_id)
            .map(|r| (*r, FollowerProgress { log_end: -1, last_fetch: now, last_caught_up: now, leader_end_at_last_fetch: -1 }))
            .collect();
        let inner = Inner { isr: isr.to_vec(), adding: BTreeSet::new(), shrinking: false, followers };
        LeaderState { tp, topic_id, node_id, epoch, epoch_start_offset, resigned: tokio::sync::watch::channel(false).0, inner: Mutex::new(inner) }
    }

    /// Wakes every request waiting on this leadership (see `resigned`).
    pub fn resign(&self) {
        self.resigned.send_replace(true);
    }

    pub fn has_resigned(&self) -> bool {
        *self.resigned.borrow()
    }

    /// Completes once this node no longer leads at `epoch`.
    pub async fn wait_resigned(&self) {
        let mut rx = self.resigned.subscribe();
        let _ = rx.wait_for(|r| *r).await;
    }

    /// The image moved on (same leader epoch): take its ISR and replica set as committed.
    pub fn update_from_image(&self, replicas: &[i32], isr: &[i32], now: Instant) {
        let mut g = self.inner.lock();
        g.isr = isr.to_vec();
        g.adding.retain(|r| !isr.contains(r));
        g.shrinking = false;
        g.followers.retain(|r, _| replicas.contains(r));
        for r in replicas.iter().filter(|r| **r != self.node_id) {
            g.followers.entry(*r).or_insert(FollowerProgress { log_end: -1, last_fetch: now, last_caught_up: now, leader_end_at_last_fetch: -1 });
        }
    }

    pub fn isr(&self) -> Vec<i32> {
        self.inner.lock().isr.clone()
    }

    /// Whether any other replica exists (a single-replica partition never waits on one).
    pub fn has_followers(&self) -> bool {
        !self.inner.lock().followers.is_empty()
    }

    pub fn is_replica(&self, broker: i32) -> bool {
        self.inner.lock().followers.contains_key(&broker)
    }

    /// In-sync followers whose log reaches `offset`, as (broker, log end, time since last
    /// caught up): the ones that may serve a consumer reading from `offset` (KIP-392).
    pub fn read_candidates(&self, offset: i64, now: Instant) -> Vec<(i32, i64, Duration)> {
        let g = self.inner.lock();
        g.followers
            .iter()
            .filter(|(r, f)| g.isr.contains(r) && f.log_end >= offset)
            .map(|(r, f)| (*r, f.log_end, now.saturating_duration_since(f.last_caught_up)))
            .collect()
    }

    /// Record a follower's fetch at `fetch_offset` (its log end) while the leader's
    /// log end is `leader_end` and its high watermark `hw`.
    pub fn on_fetch(&self, replica: i32, fetch_offset: i64, leader_end: i64, hw: i64, now: Instant) -> FetchOutcome {
        let mut g = self.inner.lock();
        let Some(f) = g.followers.get_mut(&replica) else { return FetchOutcome::Nothing };
        if fetch_offset >= leader_end {
            f.last_caught_up = now;
        } else if fetch_offset >= f.leader_end_at_last_fetch && f.leader_end_at_last_fetch >= 0 {
            // It has what the leader had when it last fetched: caught up as of then.
            f.last_caught_up = f.last_caught_up.max(f.last_fetch);
        }
        f.log_end = fetch_offset;
        f.last_fetch = now;
        f.leader_end_at_last_fetch = leader_end;
        let eligible = fetch_offset >= hw && fetch_offset >= self.epoch_start_offset;
        if eligible && !g.isr.contains(&replica) && !g.adding.contains(&replica) {
            g.adding.insert(replica);
            return FetchOutcome::ProposeAdd(replica);
        }
        FetchOutcome::Nothing
    }

    /// A proposed ISR addition failed: allow it to be proposed again.
    pub fn add_failed(&self, replica: i32) {
        self.inner.lock().adding.remove(&replica);
    }

    pub fn shrink_failed(&self) {
        self.inner.lock().shrinking = false;
    }

    /// The cap on the high watermark: the smallest log end among the followers of the
    /// maximal ISR; i64::MAX when the leader is alone in it.
    pub fn hw_cap(&self) -> i64 {
        let g = self.inner.lock();
        g.isr
            .iter()
            .chain(g.adding.iter())
            .filter(|r| **r != self.node_id)
            .map(|r| g.followers.get(r).map_or(-1, |f| f.log_end))
            .min()
            .unwrap_or(i64::MAX)
    }

    /// ISR followers that have not been caught up for longer than `max_lag`; marks a
    /// shrink as in flight when there are some (the caller proposes it).
    pub fn take_lagging(&self, now: Instant, max_lag: Duration) -> Vec<i32> {
        let mut g = self.inner.lock();
        if g.shrinking {
            return vec![];
        }
        let lagging: Vec<i32> = g
            .isr
            .iter()
            .filter(|r| **r != self.node_id)
            .filter(|r| g.followers.get(r).is_none_or(|f| now.saturating_duration_since(f.last_caught_up) > max_lag))
            .copied()
            .collect();
        if !lagging.is_empty() {
            g.shrinking = true;
        }
        lagging
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(epoch: i32, replicas: &[i32]) -> PartitionImage {
        PartitionImage { leader: 1, leader_epoch: epoch, replicas: replicas.to_vec(), isr: replicas.to_vec(), ..Default::default() }
    }

    fn state(now: Instant) -> LeaderState {
        LeaderState::new(TopicPartition::new("t", 0), Uuid::nil(), 1, &image(3, &[1, 2, 3]), 100, now)
    }

    #[test]
    fn cap_is_the_slowest_in_sync_follower() {
        let now = Instant::now();
        let s = state(now);
        assert_eq!(s.hw_cap(), -1, "nothing known about followers yet: the HW may not move");
        s.on_fetch(2, 150, 200, 100, now);
        assert_eq!(s.hw_cap(), -1);
        s.on_fetch(3, 120, 200, 100, now);
        assert_eq!(s.hw_cap(), 120);
        s.update_from_image(&[1, 2, 3], &[1, 2], now);
        assert_eq!(s.hw_cap(), 150, "3 left the ISR: it no longer holds the HW back");
        let alone = LeaderState::new(TopicPartition::new("t", 0), Uuid::nil(), 1, &image(0, &[1]), 0, now);
        assert_eq!(alone.hw_cap(), i64::MAX);
    }

    #[test]
    fn follower_joins_once_at_the_high_watermark_of_this_epoch() {
        let now = Instant::now();
        let s = state(now);
        s.update_from_image(&[1, 2, 3], &[1, 2], now);
        assert_eq!(s.on_fetch(3, 90, 200, 95, now), FetchOutcome::Nothing, "below the epoch start");
        assert_eq!(s.on_fetch(3, 120, 200, 130, now), FetchOutcome::Nothing, "below the HW");
        assert_eq!(s.on_fetch(3, 130, 200, 130, now), FetchOutcome::ProposeAdd(3));
        assert_eq!(s.on_fetch(3, 140, 200, 130, now), FetchOutcome::Nothing, "already proposed");
        // While proposed, it counts for the HW (maximal ISR).
        s.on_fetch(2, 200, 200, 130, now);
        assert_eq!(s.hw_cap(), 140);
        s.add_failed(3);
        assert_eq!(s.hw_cap(), 200);
    }

    #[test]
    fn lagging_followers_are_found_once() {
        let t0 = Instant::now();
        let s = state(t0);
        let lag = Duration::from_secs(10);
        let t1 = t0 + Duration::from_secs(5);
        s.on_fetch(2, 200, 200, 100, t1); // caught up at t1
        s.on_fetch(3, 150, 200, 100, t1); // behind
        let t2 = t0 + Duration::from_secs(12);
        assert_eq!(s.take_lagging(t2, lag), vec![3]);
        assert_eq!(s.take_lagging(t2, lag), Vec::<i32>::new(), "a shrink is in flight");
        s.shrink_failed();
        // 3 fetches what the leader had at its previous fetch: caught up as of then.
        s.on_fetch(3, 200, 260, 100, t2);
        assert_eq!(s.take_lagging(t0 + Duration::from_secs(14), lag), Vec::<i32>::new());
        assert_eq!(s.take_lagging(t0 + Duration::from_secs(25), lag), vec![2, 3]);
    }
}
