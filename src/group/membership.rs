//! JoinGroup, SyncGroup, Heartbeat and LeaveGroup on one [`Group`], following
//! Kafka's classic coordinator: broker-assigned member ids (with the
//! MEMBER_ID_REQUIRED round trip from JoinGroup v4), static membership through
//! `group.instance.id`, and generation fencing.


use bytes::Bytes;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::Error;
use super::state::{Group, GroupState, HeldWrite, JoinResult, Member, MemberProfile, Reply, StaticRejoin, SyncResult};

/// A JoinGroup, decoded.
#[derive(Debug, Clone, Default)]
pub struct JoinRequest {
    pub member_id: String,
    pub profile: MemberProfile,
    /// v4+: a member without an id first gets one with MEMBER_ID_REQUIRED.
    pub require_known_member_id: bool,
    /// v9+: a static leader rejoining without a rebalance is told to skip assignment.
    pub supports_skip_assignment: bool,
}

/// A member's identity as SyncGroup, Heartbeat and OffsetCommit give it.
#[derive(Debug, Clone, Default)]
pub struct MemberRef<'a> {
    pub member_id: &'a str,
    pub instance_id: Option<&'a str>,
    pub generation: i32,
}

fn new_member_id(client_id: &str, instance_id: Option<&str>) -> String {
    format!("{}-{}", instance_id.unwrap_or(client_id), uuid::Uuid::new_v4())
}

impl Group {
    /// Validate what applies to any JoinGroup.
    fn check_join(&self, req: &JoinRequest) -> Result<(), Error> {
        let l = &self.limits;
        if req.profile.session_timeout < l.min_session_timeout || req.profile.session_timeout > l.max_session_timeout {
            return Err(Error::InvalidSessionTimeout);
        }
        if req.profile.protocols.iter().map(|(n, m)| n.len() + m.len()).sum::<usize>() > l.member_metadata_max_bytes {
            return Err(Error::MemberMetadataTooLarge);
        }
        if self.state == GroupState::Dead {
            return Err(Error::CoordinatorNotAvailable);
        }
        if !self.supports(&req.profile.protocol_type, &req.profile.protocols) {
            return Err(Error::InconsistentGroupProtocol);
        }
        Ok(())
    }

    pub fn join(&mut self, req: JoinRequest, now: Instant) -> Reply<JoinResult> {
        if let Err(e) = self.check_join(&req) {
            return Reply::Now(JoinResult::error(e, &req.member_id));
        }
        let owner = req.profile.instance_id.as_ref().and_then(|i| self.static_members.get(i)).cloned();
        let result = match (req.member_id.is_empty(), owner) {
            (true, Some(old)) => self.rejoin_static(req, &old, now),
            (false, Some(old)) if old != req.member_id => Err((Error::FencedInstanceId, req.member_id.clone())),
            (true, None) => self.join_unknown(req, now),
            (false, _) => self.join_known(req, now),
        };
        result.unwrap_or_else(|(e, id)| Reply::Now(JoinResult::error(e, &id)))
    }

    fn join_unknown(&mut self, req: JoinRequest, now: Instant) -> Result<Reply<JoinResult>, (Error, String)> {
        if self.members.len() + self.pending.len() >= self.limits.max_size {
            return Err((Error::GroupMaxSizeReached, String::new()));
        }
        let id = new_member_id(&req.profile.client_id, req.profile.instance_id.as_deref());
        if req.require_known_member_id && req.profile.instance_id.is_none() {
            self.pending.insert(id.clone(), now + req.profile.session_timeout);
            return Err((Error::MemberIdRequired, id));
        }
        Ok(self.add_member(id, req, now))
    }

    fn join_known(&mut self, req: JoinRequest, now: Instant) -> Result<Reply<JoinResult>, (Error, String)> {
        let id = req.member_id.clone();
        if self.pending.remove(&id).is_some() {
            return Ok(self.add_member(id, req, now));
        }
        let Some(m) = self.members.get(&id) else {
            return Err((Error::UnknownMemberId, id));
        };
        let unchanged = m.profile.protocols == req.profile.protocols;
        let is_leader = self.leader.as_deref() == Some(id.as_str());
        match self.state {
            GroupState::CompletingRebalance if unchanged => {
                // It missed the JoinGroup answer: repeat it rather than rebalance again.
                Ok(Reply::Now(self.current_join_result(&id)))
            }
            GroupState::Stable if unchanged && !is_leader => Ok(Reply::Now(self.current_join_result(&id))),
            GroupState::PreparingRebalance | GroupState::CompletingRebalance | GroupState::Stable => {
                Ok(self.update_and_wait(&id, req, now))
            }
            GroupState::Empty | GroupState::Dead => Err((Error::UnknownMemberId, id)),
        }
    }

    fn add_member(&mut self, id: String, req: JoinRequest, now: Instant) -> Reply<JoinResult> {
        let (tx, rx) = oneshot::channel();
        if let Some(inst) = &req.profile.instance_id {
            self.static_members.insert(inst.clone(), id.clone());
        }
        if self.members.is_empty() {
            self.protocol_type = Some(req.profile.protocol_type.clone());
        }
        let session_timeout = req.profile.session_timeout;
        let m = Member {
            id: id.clone(),
            profile: req.profile,
            assignment: Bytes::new(),
            joined_seq: self.next_seq,
            join_waiter: Some(tx),
            sync_waiter: None,
            session_deadline: now + session_timeout,
        };
        self.next_seq += 1;
        self.members.insert(id, m);
        self.dirty = true;
        if self.state == GroupState::PreparingRebalance {
            self.extend_initial_delay(now);
        } else {
            self.prepare_rebalance(now, "new member joined");
        }
        self.maybe_complete_join(now);
        Reply::Wait(rx)
    }

    fn update_and_wait(&mut self, id: &str, req: JoinRequest, now: Instant) -> Reply<JoinResult> {
        let (tx, rx) = oneshot::channel();
        let Some(m) = self.members.get_mut(id) else {
            return Reply::Now(JoinResult::error(Error::UnknownMemberId, id));
        };
        if let Some(old) = m.join_waiter.replace(tx) {
            // A retried JoinGroup supersedes the first; that one just rejoins.
            let _ = old.send(JoinResult::error(Error::RebalanceInProgress, id));
        }
        m.profile.protocols = req.profile.protocols;
        m.profile.session_timeout = req.profile.session_timeout;
        m.profile.rebalance_timeout = req.profile.rebalance_timeout;
        m.profile.client_id = req.profile.client_id;
        m.session_deadline = now + m.profile.session_timeout;
        if self.state != GroupState::PreparingRebalance {
            self.prepare_rebalance(now, "member rejoined");
        }
        self.maybe_complete_join(now);
        Reply::Wait(rx)
    }

    /// A static member restarted (new process, no member id): it takes over its old
    /// member's place under a new id, and the old id is fenced. Unchanged metadata in
    /// a Stable group means no rebalance: it gets its old assignment back.
    fn rejoin_static(&mut self, req: JoinRequest, old: &str, now: Instant) -> Result<Reply<JoinResult>, (Error, String)> {
        let new_id = new_member_id(&req.profile.client_id, req.profile.instance_id.as_deref());
        let Some(mut m) = self.members.remove(old) else {
            return Err((Error::UnknownMemberId, String::new()));
        };
        m.fail_waiters(Error::FencedInstanceId);
        let old_profile = m.profile.clone();
        m.id = new_id.clone();
        m.profile.session_timeout = req.profile.session_timeout;
        m.profile.rebalance_timeout = req.profile.rebalance_timeout;
        m.profile.client_id = req.profile.client_id.clone();
        m.profile.client_host = req.profile.client_host.clone();
        m.session_deadline = now + req.profile.session_timeout;
        let unchanged = m.profile.protocols == req.profile.protocols;
        self.members.insert(new_id.clone(), m);
        if let Some(inst) = &req.profile.instance_id {
            self.static_members.insert(inst.clone(), new_id.clone());
        }
        let was_leader = self.leader.as_deref() == Some(old);
        if was_leader {
            self.leader = Some(new_id.clone());
        }
        self.dirty = true;
        if self.state == GroupState::Stable && unchanged {
            let mut r = self.current_join_result(&new_id);
            if was_leader {
                r.skip_assignment = req.supports_skip_assignment;
                if !req.supports_skip_assignment {
                    // Older clients would reassign from this list; give them none.
                    r.members.clear();
                }
            }
            // Answered once the new member id is stored.
            let (tx, rx) = oneshot::channel();
            let rejoin = StaticRejoin { instance_id: req.profile.instance_id.unwrap_or_default(), old_id: old.to_string(), new_id, old_profile };
            self.held_write = Some(HeldWrite::StaticRejoin { rejoin: Box::new(rejoin), answer: Box::new(r), tx });
            return Ok(Reply::Wait(rx));
        }
        Ok(self.update_and_wait(&new_id, req, now))
    }

    /// A static member's rejoin could not be stored: its old member id and profile
    /// come back (Kafka reverts the same way), unless the group has moved on and the
    /// new id no longer holds the instance.
    pub(super) fn revert_static_rejoin(&mut self, r: StaticRejoin, now: Instant) {
        if self.static_members.get(&r.instance_id) != Some(&r.new_id) {
            return;
        }
        let Some(mut m) = self.members.remove(&r.new_id) else { return };
        m.fail_waiters(Error::FencedInstanceId);
        m.id = r.old_id.clone();
        m.profile = r.old_profile;
        m.session_deadline = now + m.profile.session_timeout;
        self.members.insert(r.old_id.clone(), m);
        self.static_members.insert(r.instance_id, r.old_id.clone());
        if self.leader.as_deref() == Some(r.new_id.as_str()) {
            self.leader = Some(r.old_id);
        }
    }

    /// Who the member is and whether its generation is current.
    fn check_member(&self, who: &MemberRef) -> Result<(), Error> {
        if let Some(inst) = who.instance_id
            && self.static_members.get(inst).is_some_and(|owner| owner != who.member_id)
        {
            return Err(Error::FencedInstanceId);
        }
        if !self.members.contains_key(who.member_id) {
            return Err(Error::UnknownMemberId);
        }
        if who.generation != self.generation {
            return Err(Error::IllegalGeneration);
        }
        Ok(())
    }

    /// SyncGroup. `protocol` is (type, name) as v5+ send them, checked against the group's.
    pub fn sync(
        &mut self,
        who: MemberRef,
        protocol: (Option<&str>, Option<&str>),
        assignments: Vec<(String, Bytes)>,
        now: Instant,
    ) -> Reply<SyncResult> {
        match self.state {
            GroupState::Dead => return Reply::Now(SyncResult::error(Error::CoordinatorNotAvailable)),
            GroupState::Empty => return Reply::Now(SyncResult::error(Error::UnknownMemberId)),
            _ => {}
        }
        if let Err(e) = self.check_member(&who) {
            return Reply::Now(SyncResult::error(e));
        }
        let mismatch = |asked: Option<&str>, ours: &Option<String>| asked.is_some_and(|a| Some(a) != ours.as_deref());
        if mismatch(protocol.0, &self.protocol_type) || mismatch(protocol.1, &self.protocol_name) {
            return Reply::Now(SyncResult::error(Error::InconsistentGroupProtocol));
        }
        let id = who.member_id;
        let result = |g: &Group, assignment: Bytes| SyncResult {
            error: None,
            protocol_type: g.protocol_type.clone(),
            protocol_name: g.protocol_name.clone(),
            assignment,
        };
        match self.state {
            GroupState::PreparingRebalance => Reply::Now(SyncResult::error(Error::RebalanceInProgress)),
            GroupState::Stable => {
                let m = self.members.get_mut(id).expect("check_member found it");
                m.session_deadline = now + m.profile.session_timeout;
                let a = m.assignment.clone();
                Reply::Now(result(self, a))
            }
            _ => {
                let (tx, rx) = oneshot::channel();
                let m = self.members.get_mut(id).expect("check_member found it");
                m.sync_waiter = Some(tx);
                m.session_deadline = now + m.profile.session_timeout;
                if self.leader.as_deref() == Some(id) {
                    self.apply_assignments(assignments);
                }
                Reply::Wait(rx)
            }
        }
    }

    /// The leader's SyncGroup: keep each member's bytes, exactly as sent. Nobody is
    /// answered yet: the group stays CompletingRebalance until the coordinator has
    /// stored the assignment ([`Group::assignment_stored`]), as Kafka's does, so no
    /// member consumes by an assignment a failover would forget.
    fn apply_assignments(&mut self, assignments: Vec<(String, Bytes)>) {
        for (id, a) in assignments {
            if let Some(m) = self.members.get_mut(&id) {
                m.assignment = a;
            }
        }
        self.sync_deadline = None;
        self.dirty = true;
        self.held_write = Some(HeldWrite::Assignment { generation: self.generation });
    }

    /// The assignment the leader sent in `generation` is stored (Ok) or could not be
    /// (Err): the group goes Stable and every waiting SyncGroup gets its bytes, or
    /// they all get the error and the group rebalances (Kafka's
    /// `resetAndPropagateAssignmentError`). Nothing if the group moved on meanwhile.
    pub(super) fn assignment_stored(&mut self, generation: i32, stored: Result<(), Error>, now: Instant) {
        if self.state != GroupState::CompletingRebalance || self.generation != generation {
            return;
        }
        if let Err(e) = stored {
            tracing::warn!(group = %self.id, generation, error = %e, "storing the group's assignment failed");
            for m in self.members.values_mut() {
                m.assignment = Bytes::new();
                m.answer_sync(SyncResult::error(e));
            }
            self.prepare_rebalance(now, "storing the assignment failed");
            self.maybe_complete_join(now);
            return;
        }
        self.state = GroupState::Stable;
        tracing::info!(group = %self.id, generation, members = self.members.len(), "group stable");
        let (pt, pn) = (self.protocol_type.clone(), self.protocol_name.clone());
        for m in self.members.values_mut() {
            m.session_deadline = now + m.profile.session_timeout;
            let r = SyncResult { error: None, protocol_type: pt.clone(), protocol_name: pn.clone(), assignment: m.assignment.clone() };
            m.answer_sync(r);
        }
    }

    pub fn heartbeat(&mut self, who: MemberRef, now: Instant) -> Result<(), Error> {
        match self.state {
            GroupState::Dead => return Err(Error::CoordinatorNotAvailable),
            GroupState::Empty => return Err(Error::UnknownMemberId),
            _ => {}
        }
        self.check_member(&who)?;
        let m = self.members.get_mut(who.member_id).expect("check_member found it");
        m.session_deadline = now + m.profile.session_timeout;
        match self.state {
            GroupState::PreparingRebalance => Err(Error::RebalanceInProgress),
            _ => Ok(()),
        }
    }

    /// One member of a LeaveGroup. With an empty member id (v3+), the static member
    /// named by `instance_id` leaves.
    pub fn leave_one(&mut self, member_id: &str, instance_id: Option<&str>) -> Result<String, Error> {
        if self.state == GroupState::Dead {
            return Err(Error::CoordinatorNotAvailable);
        }
        let id = match instance_id {
            Some(inst) => {
                let owner = self.static_members.get(inst).cloned().ok_or(Error::UnknownMemberId)?;
                if !member_id.is_empty() && owner != member_id {
                    return Err(Error::FencedInstanceId);
                }
                owner
            }
            None => member_id.to_string(),
        };
        if self.pending.remove(&id).is_some() {
            return Ok(id);
        }
        if !self.remove_member(&id, Error::UnknownMemberId) {
            return Err(Error::UnknownMemberId);
        }
        Ok(id)
    }

    /// After a LeaveGroup's members are gone: rebalance what is left.
    pub fn after_leave(&mut self, now: Instant) {
        self.after_removal(now);
    }

    /// May this member commit offsets for this generation (Kafka's `validateOffsetCommit`)?
    pub fn check_commit(&self, who: &MemberRef) -> Result<(), Error> {
        match self.state {
            GroupState::Dead => return Err(Error::CoordinatorNotAvailable),
            // Simple (non-member) commits: allowed while nobody uses group management.
            GroupState::Empty if who.generation < 0 => return Ok(()),
            _ => {}
        }
        if who.generation < 0 && who.member_id.is_empty() && who.instance_id.is_none() {
            return Err(Error::UnknownMemberId);
        }
        self.check_member(who)?;
        if self.state == GroupState::CompletingRebalance {
            return Err(Error::RebalanceInProgress);
        }
        Ok(())
    }
}
