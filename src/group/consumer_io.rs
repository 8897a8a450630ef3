//! The coordinator's side of KIP-848 consumer groups: finding or creating the group
//! (a group is classic or consumer, never both at once), and running the pure state
//! machine of `consumer.rs` under the group's lock. Nothing here waits: a
//! ConsumerGroupHeartbeat is answered at once, and timeouts run in the ticker
//! through `Group::tick`.

use tokio::time::Instant;

use super::consumer::{ConsumerGroup, Heartbeat, HeartbeatAnswer, Settings};
use super::{Error, GroupCoordinator, GroupState, Result};

/// What the coordinator needs to know of topics: partition counts and names.
pub struct TopicView<'a> {
    pub partitions_of: &'a dyn Fn(&str) -> Option<i32>,
    /// Every topic name, for regex subscriptions.
    pub all_topics: &'a [String],
}

/// A KIP-848 group's description (ConsumerGroupDescribe).
pub struct ConsumerGroupDescription {
    pub state: &'static str,
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    pub assignor: String,
    pub members: Vec<(super::consumer::ConsumerMember, super::assignor::Assignment)>,
}

impl GroupCoordinator {
    pub fn consumer_heartbeat(&self, group_id: &str, hb: Heartbeat, topics: TopicView) -> Result<HeartbeatAnswer> {
        if group_id.is_empty() {
            return Err(Error::InvalidGroupId);
        }
        self.check(group_id)?;
        let g = if hb.member_epoch == 0 { Some(self.get_or_create(group_id)) } else { self.get(group_id) };
        let g = g.ok_or(Error::UnknownMemberId)?;
        let mut gl = g.lock();
        if gl.state == GroupState::Dead {
            return Err(Error::CoordinatorNotAvailable);
        }
        if gl.consumer.is_none() {
            // An Empty classic group (offsets only) becomes a consumer group; one with
            // classic members is not a consumer group (Kafka's answer).
            if gl.state != GroupState::Empty || gl.member_count() > 0 {
                return Err(Error::GroupIdNotFound);
            }
            if hb.member_epoch != 0 {
                return Err(Error::UnknownMemberId);
            }
            gl.consumer = Some(ConsumerGroup::new(Settings::from_limits(&gl.limits)));
        }
        let c = gl.consumer.as_mut().expect("set above");
        if hb.regex.as_deref().is_some_and(|r| !r.is_empty()) || c.members.values().any(|m| m.regex.is_some()) {
            c.known_topics = topics.all_topics.to_vec();
        }
        c.heartbeat(hb, topics.partitions_of, Instant::now())
    }

    /// None: no consumer group of that id (Kafka answers GROUP_ID_NOT_FOUND).
    pub fn describe_consumer_group(&self, group_id: &str) -> Result<ConsumerGroupDescription> {
        self.check(group_id)?;
        let g = self.get(group_id).ok_or(Error::GroupIdNotFound)?;
        let gl = g.lock();
        let c = match &gl.consumer {
            Some(c) if gl.state != GroupState::Dead => c,
            _ => return Err(Error::GroupIdNotFound),
        };
        let members = c.members.values().map(|m| (m.clone(), c.target.get(&m.id).cloned().unwrap_or_default())).collect();
        Ok(ConsumerGroupDescription {
            state: c.state_name(),
            group_epoch: c.group_epoch,
            assignment_epoch: c.assignment_epoch,
            assignor: c.assignor.clone(),
            members,
        })
    }

    /// OffsetFetch v9 from a member: its epoch must be current.
    pub fn check_fetch_member(&self, group_id: &str, member_id: Option<&str>, epoch: i32) -> Result<()> {
        self.check(group_id)?;
        let Some(member_id) = member_id.filter(|m| !m.is_empty()) else { return Ok(()) };
        let Some(g) = self.get(group_id) else { return Err(Error::UnknownMemberId) };
        let gl = g.lock();
        match &gl.consumer {
            Some(c) => c.check_member_epoch(member_id, epoch),
            None => Ok(()),
        }
    }
}
