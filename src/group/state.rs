//! One classic consumer group: its members and the rebalance state machine
//! (Empty → PreparingRebalance → CompletingRebalance → Stable, and Dead), as Kafka's
//! classic `GroupCoordinator` runs it.
//!
//! Pure state: no sockets, no log, no clock of its own. Every operation takes `now`,
//! and requests that must wait (JoinGroup until every member rejoined, SyncGroup until
//! the leader's assignment) leave a oneshot sender in the member, answered by a later
//! operation or by [`Group::tick`]. The coordinator holds one group's lock only
//! while calling in here, never across an await. The operations themselves (join,
//! sync, heartbeat, leave) live in `membership.rs`.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::Error;
use super::offsets::Offsets;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl GroupState {
    /// The name Kafka uses on the wire (DescribeGroups, ListGroups).
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

/// Named limits, from `group.*` broker configs.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_size: usize,
    pub min_session_timeout: Duration,
    pub max_session_timeout: Duration,
    /// `group.initial.rebalance.delay.ms`: an Empty group's first rebalance waits this
    /// long (extended per new member, up to the rebalance timeout) for more members.
    pub initial_rebalance_delay: Duration,
    /// Total protocol metadata bytes one member may send in a JoinGroup.
    pub member_metadata_max_bytes: usize,
    /// `offsets.retention.minutes`: see [`Group::expire_offsets`].
    pub offsets_retention: Duration,
    /// `offsets.retention.check.interval.ms`: how often expiry runs.
    pub offsets_retention_check_interval: Duration,
    /// `group.consumer.session.timeout.ms` (KIP-848 groups).
    pub consumer_session_timeout: Duration,
    /// `group.consumer.heartbeat.interval.ms` (KIP-848 groups).
    pub consumer_heartbeat_interval: Duration,
    /// `group.consumer.assignors`, the first the default.
    pub consumer_assignors: &'static [&'static str],
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_size: i32::MAX as usize,
            min_session_timeout: Duration::from_millis(6_000),
            max_session_timeout: Duration::from_millis(1_800_000),
            initial_rebalance_delay: Duration::from_millis(3_000),
            member_metadata_max_bytes: 1 << 20,
            offsets_retention: Duration::from_secs(7 * 24 * 3600),
            offsets_retention_check_interval: Duration::from_millis(600_000),
            consumer_session_timeout: Duration::from_millis(45_000),
            consumer_heartbeat_interval: Duration::from_millis(5_000),
            consumer_assignors: &["uniform", "range"],
        }
    }
}

/// What a JoinGroup is answered with.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JoinResult {
    pub error: Option<Error>,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    pub member_id: String,
    /// All members with their metadata for the chosen protocol: for the leader only.
    pub members: Vec<JoinedMember>,
    /// KIP-814: a static leader that rejoined without a rebalance must not reassign.
    pub skip_assignment: bool,
}

impl JoinResult {
    pub fn error(e: Error, member_id: &str) -> JoinResult {
        JoinResult { error: Some(e), generation: -1, member_id: member_id.to_string(), ..Default::default() }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct JoinedMember {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub metadata: Bytes,
}

/// What a SyncGroup is answered with.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SyncResult {
    pub error: Option<Error>,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

impl SyncResult {
    pub fn error(e: Error) -> SyncResult {
        SyncResult { error: Some(e), ..Default::default() }
    }
}

/// A group metadata write whose answers wait until it is replicated, as Kafka's
/// `storeGroup` callbacks do. The coordinator completes it with
/// [`Group::write_done`].
#[derive(Debug)]
pub enum HeldWrite {
    /// The leader's SyncGroup of `generation`: the group stays CompletingRebalance
    /// and no SyncGroup is answered until its assignment is stored.
    Assignment { generation: i32 },
    /// A static member rejoined a Stable group under a new member id without a
    /// rebalance: its JoinGroup gets `answer` once that is stored; if it cannot be,
    /// the old member id is put back.
    /// (Boxed: rarer and much larger than an assignment.)
    StaticRejoin { rejoin: Box<StaticRejoin>, answer: Box<JoinResult>, tx: oneshot::Sender<JoinResult> },
}

/// What a static member's rejoin replaced, to put back if it cannot be stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StaticRejoin {
    pub instance_id: String,
    pub old_id: String,
    pub new_id: String,
    /// The old member's profile before the rejoin updated it.
    pub old_profile: MemberProfile,
}

/// An answer now, or one that a later operation on the group sends.
pub enum Reply<T> {
    Now(T),
    Wait(oneshot::Receiver<T>),
}

/// What a classic member tells about itself when it joins: kept by the live group,
/// written to the coordinator log, restored from it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MemberProfile {
    /// `group.instance.id` of a static member.
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout: Duration,
    pub rebalance_timeout: Duration,
    pub protocol_type: String,
    /// (name, metadata) in the member's order of preference.
    pub protocols: Vec<(String, Bytes)>,
}

#[derive(Debug)]
pub struct Member {
    pub id: String,
    pub profile: MemberProfile,
    /// This generation's assignment, from the leader's SyncGroup (empty until then).
    pub assignment: Bytes,
    /// Order of first join: the longest-standing member becomes leader.
    pub(super) joined_seq: u64,
    pub(super) join_waiter: Option<oneshot::Sender<JoinResult>>,
    pub(super) sync_waiter: Option<oneshot::Sender<SyncResult>>,
    /// Removed unless a heartbeat (or a join/sync) arrives before this.
    pub(super) session_deadline: Instant,
}

impl Member {
    /// This member's metadata for `protocol`, empty if it does not support it.
    pub fn metadata_for(&self, protocol: Option<&str>) -> Bytes {
        self.profile.protocols.iter().find(|(n, _)| Some(n.as_str()) == protocol).map(|(_, m)| m.clone()).unwrap_or_default()
    }
    fn answer_join(&mut self, r: JoinResult) {
        if let Some(tx) = self.join_waiter.take() {
            let _ = tx.send(r); // the requester may have gone; nothing to do then
        }
    }
    pub(super) fn answer_sync(&mut self, r: SyncResult) {
        if let Some(tx) = self.sync_waiter.take() {
            let _ = tx.send(r);
        }
    }
    /// Fail whatever this member is waiting for (it was removed or fenced).
    pub(super) fn fail_waiters(&mut self, e: Error) {
        let id = self.id.clone();
        self.answer_join(JoinResult::error(e, &id));
        self.answer_sync(SyncResult::error(e));
    }
}

pub struct Group {
    pub id: String,
    pub state: GroupState,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: Option<String>,
    pub(super) members: BTreeMap<String, Member>,
    /// group.instance.id → the member id that currently owns it.
    pub(super) static_members: HashMap<String, String>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, not yet joined, and when they lapse.
    pub(super) pending: HashMap<String, Instant>,
    pub(super) next_seq: u64,
    /// PreparingRebalance: members that have not rejoined by then are removed.
    pub(super) rebalance_deadline: Option<Instant>,
    /// PreparingRebalance from Empty: do not complete before this.
    pub(super) initial_delay_until: Option<Instant>,
    /// CompletingRebalance: members that have not sent SyncGroup by then are removed.
    pub(super) sync_deadline: Option<Instant>,
    pub limits: Limits,
    /// Committed offsets, and commits not yet durable.
    pub offsets: Offsets,
    /// Membership changed in a way the coordinator log must record.
    pub(super) dirty: bool,
    /// A write the coordinator must see replicated before it answers (set and taken
    /// under one hold of the group's lock: see [`Group::take_held_write`]).
    pub(super) held_write: Option<HeldWrite>,
    /// When the group last became Empty after having members: its offsets expire
    /// `offsets.retention.minutes` after this (KIP-211).
    pub(super) empty_since: Option<Instant>,
    /// Some: a KIP-848 consumer group (`consumer.rs`); its classic side stays Empty.
    pub consumer: Option<super::consumer::ConsumerGroup>,
}

impl Group {
    pub fn new(id: &str, limits: Limits) -> Group {
        Group {
            id: id.to_string(),
            state: GroupState::Empty,
            generation: 0,
            protocol_type: None,
            protocol_name: None,
            leader: None,
            members: BTreeMap::new(),
            static_members: HashMap::new(),
            pending: HashMap::new(),
            next_seq: 0,
            rebalance_deadline: None,
            initial_delay_until: None,
            sync_deadline: None,
            limits,
            offsets: Offsets::default(),
            dirty: false,
            held_write: None,
            empty_since: None,
            consumer: None,
        }
    }

    pub fn members(&self) -> impl Iterator<Item = &Member> {
        self.members.values()
    }

    pub fn member_count(&self) -> usize {
        self.members.len() + self.consumer.as_ref().map_or(0, |c| c.members.len())
    }

    /// Take the "needs persisting" flag.
    pub fn take_dirty(&mut self) -> bool {
        std::mem::take(&mut self.dirty)
    }

    /// The write the last operation's answers wait for, if any (taken by the
    /// coordinator right after it persisted the group, under the same lock).
    pub fn take_held_write(&mut self) -> Option<HeldWrite> {
        self.held_write.take()
    }

    /// The write `h` is replicated (Ok) or failed: send the answers it held.
    pub fn write_done(&mut self, h: HeldWrite, stored: Result<(), Error>, now: Instant) {
        match h {
            HeldWrite::Assignment { generation } => self.assignment_stored(generation, stored, now),
            HeldWrite::StaticRejoin { rejoin, answer, tx } => {
                let answer = match stored {
                    Ok(()) => *answer,
                    Err(e) => {
                        tracing::warn!(group = %self.id, member = %rejoin.new_id, error = %e, "storing a static member's rejoin failed");
                        self.revert_static_rejoin(*rejoin, now);
                        JoinResult::error(e, "")
                    }
                };
                let _ = tx.send(answer); // the requester may have gone
            }
        }
    }

    /// Whether the group's metadata is to be recorded in its present state: settled
    /// states, and a CompletingRebalance whose leader's assignment is being stored
    /// (recorded as the Stable generation it becomes). A restart mid-rebalance
    /// otherwise restores the last Stable generation, whose members then rejoin
    /// (ILLEGAL_GENERATION).
    pub fn recordable(&self) -> bool {
        match self.state {
            GroupState::PreparingRebalance => false,
            GroupState::CompletingRebalance => matches!(self.held_write, Some(HeldWrite::Assignment { .. })),
            GroupState::Empty | GroupState::Stable | GroupState::Dead => true,
        }
    }

    /// Protocols every member supports, in no particular order.
    fn candidate_protocols(&self) -> Vec<String> {
        let mut members = self.members.values();
        let Some(first) = members.next() else { return vec![] };
        let mut c: Vec<String> = first.profile.protocols.iter().map(|(n, _)| n.clone()).collect();
        for m in members {
            c.retain(|n| m.profile.protocols.iter().any(|(p, _)| p == n));
        }
        c
    }

    /// Whether a joining member's protocols fit the group (Kafka's `supportsProtocols`).
    pub(super) fn supports(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        if self.members.is_empty() {
            return !protocol_type.is_empty() && !protocols.is_empty();
        }
        let cands = self.candidate_protocols();
        self.protocol_type.as_deref() == Some(protocol_type) && protocols.iter().any(|(n, _)| cands.contains(n))
    }

    /// Each member votes for its most preferred candidate; most votes wins, ties go to
    /// the longest-standing member's preference.
    fn select_protocol(&self) -> Option<String> {
        let cands = self.candidate_protocols();
        let mut members: Vec<&Member> = self.members.values().collect();
        members.sort_by_key(|m| m.joined_seq);
        let mut votes: Vec<(String, usize)> = Vec::new();
        for m in &members {
            if let Some((n, _)) = m.profile.protocols.iter().find(|(n, _)| cands.contains(n)) {
                match votes.iter_mut().find(|(v, _)| v == n) {
                    Some((_, c)) => *c += 1,
                    None => votes.push((n.clone(), 1)),
                }
            }
        }
        let best = votes.iter().map(|(_, c)| *c).max()?;
        votes.into_iter().find(|(_, c)| *c == best).map(|(n, _)| n)
    }

    /// Enter PreparingRebalance (Kafka's `prepareRebalance`).
    pub(super) fn prepare_rebalance(&mut self, now: Instant, reason: &str) {
        tracing::info!(group = %self.id, state = self.state.name(), generation = self.generation,
            members = self.members.len(), reason, "preparing to rebalance");
        if self.state == GroupState::CompletingRebalance {
            for m in self.members.values_mut() {
                m.assignment = Bytes::new();
                m.answer_sync(SyncResult::error(Error::RebalanceInProgress));
            }
        }
        let timeout = self.members.values().map(|m| m.profile.rebalance_timeout).max().unwrap_or_default();
        let from_empty = self.state == GroupState::Empty;
        self.state = GroupState::PreparingRebalance;
        self.rebalance_deadline = Some(now + timeout);
        self.sync_deadline = None;
        let delay = self.limits.initial_rebalance_delay.min(timeout);
        self.initial_delay_until = (from_empty && !delay.is_zero()).then(|| now + delay);
    }

    /// A member was added during the initial delay: give others a little longer.
    pub(super) fn extend_initial_delay(&mut self, now: Instant) {
        if let (Some(_), Some(deadline)) = (self.initial_delay_until, self.rebalance_deadline) {
            self.initial_delay_until = Some((now + self.limits.initial_rebalance_delay).min(deadline));
        }
    }

    /// Complete the join phase if every known member has rejoined.
    pub(super) fn maybe_complete_join(&mut self, now: Instant) {
        if self.state != GroupState::PreparingRebalance {
            return;
        }
        let all_joined = self.members.values().all(|m| m.join_waiter.is_some()) && self.pending.is_empty();
        let delay_over = self.initial_delay_until.is_none_or(|d| now >= d);
        if all_joined && delay_over {
            self.complete_join(now);
        }
    }

    /// End the join phase: drop members that did not rejoin, start the next
    /// generation, and answer every JoinGroup (Kafka's `onCompleteJoin`).
    pub(super) fn complete_join(&mut self, now: Instant) {
        let gone: Vec<String> = self.members.values().filter(|m| m.join_waiter.is_none()).map(|m| m.id.clone()).collect();
        for id in gone {
            self.remove_member(&id, Error::UnknownMemberId);
        }
        self.generation += 1;
        self.rebalance_deadline = None;
        self.initial_delay_until = None;
        self.dirty = true;
        if self.members.is_empty() {
            self.state = GroupState::Empty;
            self.protocol_name = None;
            self.leader = None;
            self.empty_since = Some(now);
            return;
        }
        self.protocol_name = self.select_protocol();
        if self.leader.as_ref().is_none_or(|l| !self.members.contains_key(l)) {
            self.leader = self.members.values().min_by_key(|m| m.joined_seq).map(|m| m.id.clone());
        }
        self.state = GroupState::CompletingRebalance;
        tracing::info!(group = %self.id, generation = self.generation, members = self.members.len(),
            leader = self.leader.as_deref().unwrap_or_default(), "group joined: awaiting the leader's assignment");
        let timeout = self.members.values().map(|m| m.profile.rebalance_timeout).max().unwrap_or_default();
        self.sync_deadline = Some(now + timeout);
        let all = self.joined_members();
        let leader = self.leader.clone().unwrap_or_default();
        let base = JoinResult {
            error: None,
            generation: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            leader: leader.clone(),
            ..Default::default()
        };
        for m in self.members.values_mut() {
            m.assignment = Bytes::new();
            m.session_deadline = now + m.profile.session_timeout;
            let members = if m.id == leader { all.clone() } else { vec![] };
            m.answer_join(JoinResult { member_id: m.id.clone(), members, ..base.clone() });
        }
    }

    /// Every member with its metadata for the chosen protocol (the leader's view).
    pub(super) fn joined_members(&self) -> Vec<JoinedMember> {
        let mut ms: Vec<&Member> = self.members.values().collect();
        ms.sort_by_key(|m| m.joined_seq);
        ms.into_iter()
            .map(|m| JoinedMember {
                member_id: m.id.clone(),
                instance_id: m.profile.instance_id.clone(),
                metadata: m.metadata_for(self.protocol_name.as_deref()),
            })
            .collect()
    }

    /// The current generation as a JoinGroup answer for `member_id` (a member that
    /// rejoins with unchanged metadata is told what it already should know).
    pub(super) fn current_join_result(&self, member_id: &str) -> JoinResult {
        let leader = self.leader.clone().unwrap_or_default();
        JoinResult {
            error: None,
            generation: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            members: if leader == member_id { self.joined_members() } else { vec![] },
            leader,
            member_id: member_id.to_string(),
            skip_assignment: false,
        }
    }

    /// Remove a member, failing its waiting requests with `e`. No state transition.
    pub(super) fn remove_member(&mut self, id: &str, e: Error) -> bool {
        let Some(mut m) = self.members.remove(id) else { return false };
        m.fail_waiters(e);
        if let Some(inst) = &m.profile.instance_id
            && self.static_members.get(inst).is_some_and(|owner| owner == id)
        {
            self.static_members.remove(inst);
        }
        if self.leader.as_deref() == Some(id) {
            self.leader = None;
        }
        self.dirty = true;
        true
    }

    /// After members were removed: rebalance or finish the join phase (Kafka's
    /// `removeMemberAndUpdateGroup`).
    pub(super) fn after_removal(&mut self, now: Instant) {
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => self.prepare_rebalance(now, "member removed"),
            GroupState::PreparingRebalance => self.maybe_complete_join(now),
            GroupState::Empty | GroupState::Dead => {}
        }
        if self.state == GroupState::PreparingRebalance && self.members.is_empty() && self.pending.is_empty() {
            // Nobody is left to wait for: go Empty now rather than after the delay.
            self.complete_join(now);
        }
    }

    /// Expire sessions, lapsed member ids and phase deadlines. Called periodically.
    pub fn tick(&mut self, now: Instant) {
        if let Some(c) = &mut self.consumer {
            for id in c.tick(now) {
                tracing::info!(group = %self.id, member = %id, "consumer group member expired or fenced");
            }
        }
        let before = self.pending.len();
        self.pending.retain(|_, deadline| *deadline > now);
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|m| m.join_waiter.is_none() && m.sync_waiter.is_none() && m.session_deadline <= now)
            .map(|m| m.id.clone())
            .collect();
        for id in &expired {
            tracing::info!(group = %self.id, member = %id, "session expired");
            self.remove_member(id, Error::UnknownMemberId);
        }
        match self.state {
            GroupState::PreparingRebalance if self.rebalance_deadline.is_some_and(|d| now >= d) => self.complete_join(now),
            GroupState::CompletingRebalance if self.sync_deadline.is_some_and(|d| now >= d) => {
                let lagging: Vec<String> = self.members.values().filter(|m| m.sync_waiter.is_none()).map(|m| m.id.clone()).collect();
                for id in &lagging {
                    self.remove_member(id, Error::UnknownMemberId);
                }
                self.after_removal(now);
            }
            _ if !expired.is_empty() => self.after_removal(now),
            GroupState::PreparingRebalance if before != self.pending.len() || self.initial_delay_until.is_some() => {
                self.maybe_complete_join(now)
            }
            _ => {}
        }
    }

    /// DeleteGroups: only an Empty group goes Dead.
    pub fn mark_dead(&mut self) -> Result<(), Error> {
        match self.state {
            GroupState::Dead => Err(Error::GroupIdNotFound),
            GroupState::Empty if self.member_count() > 0 => Err(Error::NonEmptyGroup),
            GroupState::Empty => {
                self.state = GroupState::Dead;
                self.offsets.clear();
                Ok(())
            }
            _ => Err(Error::NonEmptyGroup),
        }
    }

    /// Restore a member from the coordinator log; the group is then Stable (or
    /// Empty) until its members heartbeat, rejoin or time out.
    pub(super) fn restore_member(&mut self, mut m: Member, now: Instant) {
        m.joined_seq = self.next_seq;
        self.next_seq += 1;
        m.session_deadline = now + m.profile.session_timeout;
        if let Some(inst) = &m.profile.instance_id {
            self.static_members.insert(inst.clone(), m.id.clone());
        }
        self.members.insert(m.id.clone(), m);
    }
}

impl Limits {
    pub fn from_config(c: &crate::config::Config) -> Limits {
        Limits {
            max_size: c.group_max_size,
            min_session_timeout: Duration::from_millis(c.group_min_session_timeout_ms),
            max_session_timeout: Duration::from_millis(c.group_max_session_timeout_ms),
            initial_rebalance_delay: Duration::from_millis(c.group_initial_rebalance_delay_ms),
            member_metadata_max_bytes: c.group_member_metadata_max_bytes,
            offsets_retention: Duration::from_secs(c.offsets_retention_minutes.saturating_mul(60)),
            offsets_retention_check_interval: Duration::from_millis(c.offsets_retention_check_interval_ms),
            consumer_session_timeout: raw_ms(c, "group.consumer.session.timeout.ms", 45_000),
            consumer_heartbeat_interval: raw_ms(c, "group.consumer.heartbeat.interval.ms", 5_000),
            consumer_assignors: match c.raw.get("group.consumer.assignors").map(|s| s.replace(' ', "")).as_deref() {
                Some("range") => &["range"],
                Some("uniform") => &["uniform"],
                Some("range,uniform") => &["range", "uniform"],
                _ => &["uniform", "range"],
            },
        }
    }
}

/// A `group.consumer.*` duration: sluice reads these from the raw config (Kafka's
/// keys and defaults) so they need no field of their own in `Config`.
fn raw_ms(c: &crate::config::Config, key: &str, default_ms: u64) -> Duration {
    Duration::from_millis(c.raw.get(key).and_then(|v| v.trim().parse().ok()).unwrap_or(default_ms))
}

impl Group {
    /// Offsets past `offsets.retention.minutes`, removed and returned (Kafka's
    /// rule): in an Empty group that had members, all of them once it has been Empty
    /// that long; in a group that never had members (simple commits), each once its
    /// commit is that old. A group with members keeps its offsets.
    pub fn expire_offsets(&mut self, now: Instant, now_ms: i64, retention: Duration) -> Vec<super::Tp> {
        if self.state != GroupState::Empty || self.member_count() > 0 {
            return vec![];
        }
        let expired: Vec<super::Tp> = match self.empty_since {
            Some(since) if now.saturating_duration_since(since) >= retention => self.offsets.iter().map(|(tp, _)| tp.clone()).collect(),
            Some(_) => vec![],
            None => self
                .offsets
                .iter()
                .filter(|(tp, c)| !self.offsets.has_pending(tp) && now_ms - c.commit_timestamp_ms >= retention.as_millis() as i64)
                .map(|(tp, _)| tp.clone())
                .collect(),
        };
        for tp in &expired {
            self.offsets.remove(tp);
        }
        expired
    }
}
