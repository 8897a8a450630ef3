//! Read-only views of groups for DescribeGroups, ListGroups and OffsetDelete.

use std::collections::HashSet;

use bytes::{Buf, Bytes};

use super::state::{Group, GroupState};
use super::GroupCoordinator;

#[derive(Debug, Clone)]
pub struct GroupListing {
    pub group_id: String,
    pub protocol_type: String,
    pub state: GroupState,
    /// "classic", or "consumer" for a KIP-848 group.
    pub group_type: &'static str,
    /// The state name on the wire: a KIP-848 group has its own states
    /// (Empty, Assigning, Reconciling, Stable).
    pub state_name: &'static str,
}

#[derive(Debug, Clone)]
pub struct MemberDescription {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub metadata: Bytes,
    pub assignment: Bytes,
}

#[derive(Debug, Clone)]
pub struct GroupDescription {
    pub state: GroupState,
    pub protocol_type: String,
    pub protocol_name: String,
    pub members: Vec<MemberDescription>,
}

impl GroupCoordinator {
    pub fn list(&self) -> Vec<GroupListing> {
        let groups: Vec<_> = self.groups.read().values().cloned().collect();
        let mut out: Vec<GroupListing> = groups
            .iter()
            .map(|g| {
                let g = g.lock();
                let (protocol_type, group_type, state_name) = match &g.consumer {
                    Some(c) => ("consumer".to_string(), "consumer", c.state_name()),
                    None => (g.protocol_type.clone().unwrap_or_default(), "classic", g.state.name()),
                };
                GroupListing { group_id: g.id.clone(), protocol_type, state: g.state, group_type, state_name }
            })
            .filter(|l| l.state != GroupState::Dead)
            .collect();
        out.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        out
    }

    /// None: no such group (DescribeGroups answers it as Dead, as Kafka does).
    pub fn describe(&self, group_id: &str) -> Option<GroupDescription> {
        let g = self.get(group_id)?;
        let g = g.lock();
        // Kafka lists member metadata and assignments only once they mean something.
        let stable = g.state == GroupState::Stable;
        let members = g
            .members()
            .map(|m| MemberDescription {
                member_id: m.id.clone(),
                instance_id: m.profile.instance_id.clone(),
                client_id: m.profile.client_id.clone(),
                client_host: m.profile.client_host.clone(),
                metadata: if stable { m.metadata_for(g.protocol_name.as_deref()) } else { Bytes::new() },
                assignment: if stable { m.assignment.clone() } else { Bytes::new() },
            })
            .collect();
        Some(GroupDescription {
            state: g.state,
            protocol_type: g.protocol_type.clone().unwrap_or_default(),
            protocol_name: if stable { g.protocol_name.clone().unwrap_or_default() } else { String::new() },
            members,
        })
    }
}

/// Topics the members of a "consumer" group subscribe to, read from their
/// subscription metadata (ConsumerProtocolSubscription: i16 version, then an array
/// of topic names). Offsets of these topics may not be deleted.
pub(super) fn subscribed_topics(g: &Group) -> HashSet<String> {
    let mut out = HashSet::new();
    if g.state == GroupState::Empty || g.protocol_type.as_deref() != Some("consumer") {
        return out;
    }
    for m in g.members() {
        out.extend(subscription_topics(m.metadata_for(g.protocol_name.as_deref())));
    }
    out
}

fn subscription_topics(mut b: Bytes) -> Vec<String> {
    let mut out = Vec::new();
    if b.remaining() < 6 {
        return out;
    }
    let _version = b.get_i16();
    let n = b.get_i32();
    for _ in 0..n.max(0) {
        if b.remaining() < 2 {
            break;
        }
        let len = b.get_i16();
        if len < 0 || b.remaining() < len as usize {
            break;
        }
        if let Ok(s) = String::from_utf8(b.split_to(len as usize).to_vec()) {
            out.push(s);
        }
    }
    out
}
