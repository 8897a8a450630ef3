//! Pre-vote, which openraft 0.9 lacks (Kafka has it since KIP-996; Raft thesis
//! §9.6): a voter may start an election only after a majority of the voters,
//! itself included, say they have not heard from a leader lately either.
//!
//! Without it, a voter cut off from the others times out again and again, raising
//! its term each time; when the network heals, its higher term deposes a healthy
//! leader (the quorum is without a leader for an election, ~0.7 s here). With it,
//! the cut-off voter asks, hears nothing back, and never starts an election, so it
//! rejoins at the term it left.
//!
//! openraft elects on its own timer; we gate that timer with its runtime switch
//! (`runtime_config().elect`), re-deciding every [`CHECK_PERIOD`]. A voter grants a
//! pre-vote when it does not lead and has had no append or snapshot from a leader
//! for [`stale_after`] (the election timeout's lower bound). Logs are not compared:
//! the real vote still does that, and a pre-vote that refused an up-to-date
//! candidate on a partial log comparison could stop every election.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::ServerState;
use parking_lot::Mutex;
use tokio::sync::watch;

use super::NodeId;
use super::network::{Client, Request, Response};
use super::node::Core;

/// How often a voter without a leader re-decides whether it may elect.
pub const CHECK_PERIOD: Duration = Duration::from_millis(100);
/// How long a pre-vote request may take: well under an election timeout.
const ASK_TIMEOUT: Duration = Duration::from_millis(250);

/// When this node last heard from a leader (an append or a snapshot it accepted).
#[derive(Debug, Default)]
pub struct LeaderContact {
    last: Mutex<Option<Instant>>,
}

impl LeaderContact {
    pub fn heard(&self, at: Instant) {
        *self.last.lock() = Some(at);
    }

    /// Whether a leader was heard within `window` before `now`.
    pub fn recent(&self, now: Instant, window: Duration) -> bool {
        self.last.lock().is_some_and(|t| now.saturating_duration_since(t) < window)
    }
}

/// How long without a leader before a voter grants pre-votes (and asks for them).
pub fn stale_after(config: &openraft::Config) -> Duration {
    Duration::from_millis(config.election_timeout_min)
}

/// A peer's answer to a pre-vote: grant unless it leads or heard a leader lately.
pub fn grant(is_leader: bool, heard_leader_lately: bool) -> bool {
    !is_leader && !heard_leader_lately
}

/// Whether `grants` (counting this voter) out of `voters` is a majority.
pub fn majority(grants: usize, voters: usize) -> bool {
    grants * 2 > voters
}

/// The gate: runs on every voter of a multi-voter quorum until shutdown.
pub async fn gate(core: Arc<Core>, stale_after: Duration, mut shutdown: watch::Receiver<bool>) {
    let mut allowed = None;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(CHECK_PERIOD) => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
        let m = core.raft.metrics().borrow().clone();
        if m.state == ServerState::Leader {
            continue;
        }
        let membership = m.membership_config.membership();
        let voters: BTreeMap<NodeId, String> =
            membership.voter_ids().filter_map(|id| membership.get_node(&id).map(|n| (id, n.addr.clone()))).collect();
        let may_elect = if !voters.contains_key(&core.id) {
            false
        } else if voters.len() == 1 {
            true
        } else if core.leader_contact.recent(Instant::now(), stale_after) {
            false
        } else {
            majority(1 + ask_peers(&voters, core.id).await, voters.len())
        };
        if allowed != Some(may_elect) {
            tracing::debug!(may_elect, "pre-vote: elections {}", if may_elect { "allowed" } else { "held back" });
            core.raft.runtime_config().elect(may_elect);
            allowed = Some(may_elect);
        }
    }
}

/// How many of the other voters grant a pre-vote (asked at once; silence is no).
async fn ask_peers(voters: &BTreeMap<NodeId, String>, me: NodeId) -> usize {
    let mut asks = tokio::task::JoinSet::new();
    for (_, addr) in voters.iter().filter(|(id, _)| **id != me) {
        let addr = addr.clone();
        asks.spawn(async move { matches!(Client::new(addr).call(&Request::PreVote, ASK_TIMEOUT).await, Ok(Response::PreVote(true))) });
    }
    let mut grants = 0;
    while let Some(granted) = asks.join_next().await {
        grants += usize::from(granted.unwrap_or(false));
    }
    grants
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_only_without_a_leader_and_elects_on_a_majority() {
        assert!(grant(false, false));
        assert!(!grant(true, false), "a leader is alive: no");
        assert!(!grant(false, true), "heard a leader lately: no");
        assert!(majority(2, 3) && !majority(1, 3));
        assert!(majority(3, 5) && !majority(2, 5));
        assert!(!majority(1, 2) && majority(2, 2));

        let c = LeaderContact::default();
        let t0 = Instant::now();
        assert!(!c.recent(t0, Duration::from_millis(300)), "never heard");
        c.heard(t0);
        assert!(c.recent(t0 + Duration::from_millis(299), Duration::from_millis(300)));
        assert!(!c.recent(t0 + Duration::from_millis(300), Duration::from_millis(300)));
    }
}
