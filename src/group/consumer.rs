//! One KIP-848 consumer group (`group.protocol=consumer`): members, the group epoch,
//! the target assignment computed by a server-side assignor, and each member's
//! progress toward it (`reconcile.rs`).
//!
//! Epochs as KIP-848 defines them: the *group epoch* moves when membership,
//! subscriptions or the partition counts of subscribed topics change; the
//! *assignment epoch* is the group epoch the target assignment was computed for
//! (recomputed at once here, so it equals the group epoch after every operation);
//! a *member epoch* reaches the assignment epoch once the member has revoked what it
//! had to. Pure state like `state.rs`: every operation takes `now`; the
//! coordinator (`consumer_io.rs`) owns locking and the clock.
//!
//! Membership is not written to the coordinator log: after a restart members
//! rejoin (UNKNOWN_MEMBER_ID → epoch 0), as Kafka allows. Offsets stay in the
//! enclosing `Group`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use tokio::time::Instant;

use super::Error;
use super::assignor::{self, Assignment, AssignorMember};
use super::reconcile::{self, Progress};

/// Epoch of a member leaving for good / a static member leaving for now.
pub const LEAVE_EPOCH: i32 = -1;
pub const STATIC_LEAVE_EPOCH: i32 = -2;

/// `group.consumer.*` configs.
#[derive(Debug, Clone)]
pub struct Settings {
    pub session_timeout: Duration,
    pub heartbeat_interval: Duration,
    /// Server assignors, the first one the default.
    pub assignors: Vec<String>,
    pub max_size: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            session_timeout: Duration::from_millis(45_000),
            heartbeat_interval: Duration::from_millis(5_000),
            assignors: vec![assignor::UNIFORM.into(), assignor::RANGE.into()],
            max_size: i32::MAX as usize,
        }
    }
}

/// A ConsumerGroupHeartbeat, with topic ids already turned into names.
#[derive(Debug, Clone, Default)]
pub struct Heartbeat {
    pub member_id: String,
    pub member_epoch: i32,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub rebalance_timeout: Option<Duration>,
    pub topics: Option<Vec<String>>,
    pub regex: Option<String>,
    pub server_assignor: Option<String>,
    pub owned: Option<Assignment>,
    pub client_id: String,
    pub client_host: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HeartbeatAnswer {
    pub member_id: String,
    pub member_epoch: i32,
    pub heartbeat_interval: Duration,
    /// Sent when it changed or the member needs it again; None: unchanged.
    pub assignment: Option<Assignment>,
}

#[derive(Debug, Clone)]
pub struct ConsumerMember {
    pub id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout: Duration,
    pub topics: BTreeSet<String>,
    pub regex: Option<String>,
    pub server_assignor: Option<String>,
    pub progress: Progress,
    pub session_deadline: Instant,
    /// A static member that left with epoch -2: its assignment waits for its return.
    pub left_static: bool,
}

#[derive(Debug, Default)]
pub struct ConsumerGroup {
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    pub members: BTreeMap<String, ConsumerMember>,
    /// Target assignment per member id, for `assignment_epoch`.
    pub target: BTreeMap<String, Assignment>,
    /// group.instance.id → member id.
    pub static_members: HashMap<String, String>,
    /// Partition counts of subscribed topics when the group epoch last moved.
    pub topic_partitions: BTreeMap<String, i32>,
    /// The assignor of the current target assignment.
    pub assignor: String,
    /// Every topic name, as last told by the coordinator: what regexes match against.
    pub known_topics: Vec<String>,
    /// Membership or subscriptions changed since the group epoch last moved.
    epoch_moved: bool,
    pub settings: Settings,
}

impl Settings {
    pub fn from_limits(l: &super::Limits) -> Settings {
        Settings {
            session_timeout: l.consumer_session_timeout,
            heartbeat_interval: l.consumer_heartbeat_interval,
            assignors: l.consumer_assignors.iter().map(|s| s.to_string()).collect(),
            max_size: l.max_size,
        }
    }
}

impl ConsumerGroup {
    pub fn new(settings: Settings) -> ConsumerGroup {
        let assignor = settings.assignors.first().cloned().unwrap_or_else(|| assignor::UNIFORM.into());
        ConsumerGroup { settings, assignor, ..Default::default() }
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Kafka's consumer-group state names: Empty, Assigning, Reconciling, Stable.
    pub fn state_name(&self) -> &'static str {
        if self.members.is_empty() {
            "Empty"
        } else if self.assignment_epoch != self.group_epoch {
            "Assigning"
        } else if self.members.values().any(|m| m.progress.epoch != self.assignment_epoch || m.progress.state.is_reconciling()) {
            "Reconciling"
        } else {
            "Stable"
        }
    }

    /// One ConsumerGroupHeartbeat. `partitions_of(topic)`: its partition count, if it exists.
    pub fn heartbeat(&mut self, hb: Heartbeat, partitions_of: &dyn Fn(&str) -> Option<i32>, now: Instant) -> Result<HeartbeatAnswer, Error> {
        if let Some(a) = hb.server_assignor.as_deref()
            && !self.settings.assignors.iter().any(|n| n == a)
        {
            return Err(Error::UnsupportedAssignor);
        }
        match hb.member_epoch {
            LEAVE_EPOCH | STATIC_LEAVE_EPOCH => return self.leave(&hb, now),
            0 => self.join(&hb, now)?,
            e if e > 0 => self.check_epoch(&hb)?,
            _ => return Err(Error::InvalidRequest),
        }
        let before = self.members[&hb.member_id].progress.clone();
        self.update_member(&hb, now);
        self.refresh(partitions_of);
        self.reconcile_member(&hb.member_id, hb.owned.as_ref(), now);
        let m = &self.members[&hb.member_id];
        let resend = hb.member_epoch == 0 || m.progress != before || hb.owned.as_ref().is_some_and(|o| *o != m.progress.assigned);
        Ok(HeartbeatAnswer {
            member_id: m.id.clone(),
            member_epoch: m.progress.epoch,
            heartbeat_interval: self.settings.heartbeat_interval,
            assignment: resend.then(|| m.progress.assigned.clone()),
        })
    }

    /// Epoch 0: a new member, a member starting over, or a static member returning.
    fn join(&mut self, hb: &Heartbeat, now: Instant) -> Result<(), Error> {
        if hb.topics.is_none() && hb.regex.is_none() {
            return Err(Error::InvalidRequest);
        }
        let predecessor = hb
            .instance_id
            .as_ref()
            .and_then(|i| self.static_members.get(i))
            .filter(|owner| **owner != hb.member_id)
            .and_then(|owner| self.members.get(owner));
        if predecessor.is_some_and(|p| !p.left_static) {
            return Err(Error::UnreleasedInstanceId);
        }
        let predecessor = predecessor.map(|p| p.id.clone());
        if predecessor.is_none() && !self.members.contains_key(&hb.member_id) && self.members.len() >= self.settings.max_size {
            return Err(Error::GroupMaxSizeReached);
        }
        // A known member at epoch 0 starts over (it released everything first).
        self.members.remove(&hb.member_id);
        let mut m = self.fresh_member(hb, now);
        if let Some(owner) = predecessor {
            // The returning static member takes over its predecessor's assignment.
            let old = self.members.remove(&owner).expect("looked up above");
            if let Some(t) = self.target.remove(&owner) {
                self.target.insert(m.id.clone(), t);
            }
            m.progress = old.progress;
        }
        if let Some(inst) = &hb.instance_id {
            self.static_members.insert(inst.clone(), m.id.clone());
        }
        self.members.insert(m.id.clone(), m);
        self.bump();
        Ok(())
    }

    fn fresh_member(&self, hb: &Heartbeat, now: Instant) -> ConsumerMember {
        ConsumerMember {
            id: hb.member_id.clone(),
            instance_id: hb.instance_id.clone(),
            rack_id: hb.rack_id.clone(),
            client_id: hb.client_id.clone(),
            client_host: hb.client_host.clone(),
            rebalance_timeout: hb.rebalance_timeout.unwrap_or(Duration::from_secs(300)),
            topics: BTreeSet::new(),
            regex: None,
            server_assignor: None,
            progress: Progress::new(),
            session_deadline: now + self.settings.session_timeout,
            left_static: false,
        }
    }

    /// Kafka's rule: a higher epoch than ours is fenced; a lower one only if it is
    /// the member's previous epoch and it owns nothing it no longer has (a lost answer).
    fn check_epoch(&self, hb: &Heartbeat) -> Result<(), Error> {
        let m = self.members.get(&hb.member_id).ok_or(Error::UnknownMemberId)?;
        if m.left_static {
            return Err(Error::UnknownMemberId);
        }
        let p = &m.progress;
        if hb.member_epoch > p.epoch {
            return Err(Error::FencedMemberEpoch);
        }
        if hb.member_epoch < p.epoch {
            let subset = hb.owned.as_ref().is_some_and(|o| {
                o.iter().all(|(t, ps)| p.assigned.get(t).is_some_and(|qs| ps.is_subset(qs)) || ps.is_empty())
            });
            if hb.member_epoch != p.previous_epoch || !subset {
                return Err(Error::FencedMemberEpoch);
            }
        }
        Ok(())
    }

    /// Apply what the heartbeat changed; a changed subscription moves the group epoch.
    fn update_member(&mut self, hb: &Heartbeat, now: Instant) {
        let session = self.settings.session_timeout;
        let m = self.members.get_mut(&hb.member_id).expect("joined or checked");
        m.session_deadline = now + session;
        if let Some(t) = hb.rebalance_timeout {
            m.rebalance_timeout = t;
        }
        let mut changed = false;
        if let Some(topics) = &hb.topics {
            let topics: BTreeSet<String> = topics.iter().cloned().collect();
            changed |= topics != m.topics;
            m.topics = topics;
        }
        if let Some(r) = &hb.regex {
            let r = (!r.is_empty()).then(|| r.clone());
            changed |= r != m.regex;
            m.regex = r;
        }
        if hb.server_assignor.is_some() && hb.server_assignor != m.server_assignor {
            m.server_assignor = hb.server_assignor.clone();
            changed = true;
        }
        for (field, value) in [(&mut m.rack_id, &hb.rack_id)] {
            if value.is_some() {
                *field = value.clone();
            }
        }
        if changed {
            self.bump();
        }
    }

    /// The group epoch must move: done once per operation, in `refresh`.
    fn bump(&mut self) {
        self.epoch_moved = true;
    }

    /// Topics subscribed by names, plus those matched by regexes.
    fn subscribed(&self, exists: &dyn Fn(&str) -> Option<i32>, all_topics: &[String]) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for m in self.members.values() {
            out.extend(m.topics.iter().filter(|t| exists(t).is_some()).cloned());
            if let Some(r) = &m.regex {
                out.extend(all_topics.iter().filter(|t| regex_matches(r, t)).cloned());
            }
        }
        out
    }

    /// Notice partition-count changes of subscribed topics, then recompute the target
    /// if the group epoch moved past it.
    pub fn refresh(&mut self, partitions_of: &dyn Fn(&str) -> Option<i32>) {
        let counts: BTreeMap<String, i32> =
            self.subscribed(partitions_of, &self.known_topics).into_iter().filter_map(|t| partitions_of(&t).map(|n| (t, n))).collect();
        if counts != self.topic_partitions {
            self.topic_partitions = counts;
            self.bump();
        }
        if std::mem::take(&mut self.epoch_moved) {
            self.group_epoch += 1;
        }
        if self.group_epoch != self.assignment_epoch {
            self.compute_target();
        }
    }

    /// `refresh` with the partition counts last seen: members only went away, so no
    /// topic can have become subscribed.
    fn refresh_cached(&mut self) {
        let cached = self.topic_partitions.clone();
        self.refresh(&|t| cached.get(t).copied());
    }

    /// The most preferred assignor among members, else the configured default.
    fn pick_assignor(&self) -> String {
        let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
        for m in self.members.values() {
            if let Some(a) = &m.server_assignor {
                *votes.entry(a).or_default() += 1;
            }
        }
        let best = votes.iter().max_by_key(|(n, c)| (**c, std::cmp::Reverse(**n))).map(|(n, _)| n.to_string());
        best.or_else(|| self.settings.assignors.first().cloned()).unwrap_or_else(|| assignor::UNIFORM.into())
    }

    fn compute_target(&mut self) {
        self.assignor = self.pick_assignor();
        let subs: BTreeMap<&str, BTreeSet<String>> = self
            .members
            .values()
            .map(|m| {
                let mut s: BTreeSet<String> = m.topics.iter().filter(|t| self.topic_partitions.contains_key(*t)).cloned().collect();
                if let Some(r) = &m.regex {
                    s.extend(self.topic_partitions.keys().filter(|t| regex_matches(r, t)).cloned());
                }
                (m.id.as_str(), s)
            })
            .collect();
        let members: Vec<AssignorMember> =
            subs.iter().map(|(id, topics)| AssignorMember { id, topics, previous: self.target.get(*id) }).collect();
        self.target = assignor::assign(&self.assignor, &members, &self.topic_partitions);
        self.assignment_epoch = self.group_epoch;
    }

    /// Whether a member other than `me` still holds (owns or is revoking) the partition.
    fn held_by_others(&self, me: &str) -> BTreeSet<(String, i32)> {
        let mut out = BTreeSet::new();
        for m in self.members.values().filter(|m| m.id != me) {
            for a in [&m.progress.assigned, &m.progress.revoking] {
                out.extend(a.iter().flat_map(|(t, ps)| ps.iter().map(move |p| (t.clone(), *p))));
            }
        }
        out
    }

    fn reconcile_member(&mut self, id: &str, owned: Option<&Assignment>, now: Instant) {
        let held = self.held_by_others(id);
        let target = self.target.get(id).cloned().unwrap_or_default();
        let epoch = self.assignment_epoch;
        let m = self.members.get_mut(id).expect("member exists");
        let timeout = m.rebalance_timeout;
        reconcile::step(&mut m.progress, epoch, &target, owned, &|t, p| held.contains(&(t.to_string(), p)), timeout, now);
    }

    fn leave(&mut self, hb: &Heartbeat, now: Instant) -> Result<HeartbeatAnswer, Error> {
        let id = match (&hb.instance_id, hb.member_id.is_empty()) {
            (Some(inst), _) => self.static_members.get(inst).cloned().ok_or(Error::UnknownMemberId)?,
            (None, false) => hb.member_id.clone(),
            (None, true) => return Err(Error::UnknownMemberId),
        };
        if !self.members.contains_key(&id) {
            return Err(Error::UnknownMemberId);
        }
        if hb.member_epoch == STATIC_LEAVE_EPOCH && hb.instance_id.is_some() {
            let m = self.members.get_mut(&id).expect("checked above");
            m.left_static = true;
            m.session_deadline = now + self.settings.session_timeout;
        } else {
            self.remove(&id);
            self.refresh_cached();
        }
        Ok(HeartbeatAnswer { member_id: id, member_epoch: hb.member_epoch, heartbeat_interval: Duration::ZERO, assignment: None })
    }

    /// Remove a member (left, expired or fenced): its partitions are free at once.
    pub fn remove(&mut self, id: &str) {
        if let Some(m) = self.members.remove(id) {
            if let Some(inst) = &m.instance_id
                && self.static_members.get(inst).is_some_and(|o| o == id)
            {
                self.static_members.remove(inst);
            }
            self.target.remove(id);
            self.bump();
        }
    }

    /// Expire sessions and revocations not confirmed within the rebalance timeout.
    pub fn tick(&mut self, now: Instant) -> Vec<String> {
        let gone: Vec<String> = self
            .members
            .values()
            .filter(|m| m.session_deadline <= now || m.progress.revoke_deadline.is_some_and(|d| d <= now))
            .map(|m| m.id.clone())
            .collect();
        for id in &gone {
            self.remove(id);
        }
        if !gone.is_empty() {
            self.refresh_cached();
        }
        gone
    }

    /// OffsetCommit / OffsetFetch by a member (KIP-848): the epoch must be current.
    /// An empty member id with a negative epoch is an admin or simple commit.
    pub fn check_member_epoch(&self, member_id: &str, epoch: i32) -> Result<(), Error> {
        self.check_commit(member_id, epoch, &[])
    }

    /// OffsetCommit: the current epoch, or (as KIP-1251 relaxes it, so a commit
    /// racing the heartbeat that moved the epoch is not refused) the previous one
    /// when every committed partition is still the member's, assigned or being
    /// revoked: no other member can own those yet.
    pub fn check_commit(&self, member_id: &str, epoch: i32, tps: &[super::Tp]) -> Result<(), Error> {
        if member_id.is_empty() && epoch < 0 {
            return Ok(());
        }
        let m = self.members.get(member_id).ok_or(Error::UnknownMemberId)?;
        let p = &m.progress;
        if epoch == p.epoch {
            return Ok(());
        }
        let held = |(t, q): &super::Tp| [&p.assigned, &p.revoking].iter().any(|a| a.get(t).is_some_and(|ps| ps.contains(q)));
        if !tps.is_empty() && epoch > 0 && epoch < p.epoch && epoch >= p.previous_epoch && tps.iter().all(held) {
            return Ok(());
        }
        Err(Error::StaleMemberEpoch)
    }
}

/// Regexes sluice can evaluate without a regex engine: a literal topic name,
/// `prefix.*` and `.*`. Others are rejected up front (`regex_supported`).
pub fn regex_supported(r: &str) -> bool {
    let body = r.strip_suffix(".*").unwrap_or(r);
    body.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.' || c == '\\')
}

fn regex_matches(r: &str, topic: &str) -> bool {
    match r.strip_suffix(".*") {
        Some(prefix) => topic.starts_with(&prefix.replace('\\', "")),
        None => topic == r.replace('\\', ""),
    }
}

#[cfg(test)]
impl ConsumerGroup {
    pub fn member_state(&self, id: &str) -> reconcile::MemberState {
        self.members[id].progress.state
    }
}
