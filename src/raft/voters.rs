//! A dynamic metadata quorum (KIP-853): voters added and removed at run time.
//!
//! Every node names the controllers by address only
//! (`controller.quorum.bootstrap.servers`). On its first start a controller either
//! forms the quorum (`--standalone`: itself alone; `--initial-controllers`: the listed
//! voters) or starts as an observer (`--no-initial-controllers`): a raft learner
//! that asks the bootstrap servers to be streamed the log, as broker-only nodes do.
//! Later starts go by the membership stored in the raft log.
//!
//! AddRaftVoter promotes such an observer, RemoveRaftVoter demotes a voter back to
//! an observer, both through openraft's `change_membership` (joint consensus), on
//! the quorum leader only, one change at a time. The checks and their Kafka errors
//! follow Kafka's AddVoterHandler / RemoveVoterHandler: a change while another is
//! under way or uncommitted, or of a node that is not a caught-up observer, is
//! REQUEST_TIMED_OUT at once; an id that already votes is DUPLICATE_VOTER; removing
//! a replica key that does not vote is VOTER_NOT_FOUND. A leader that removed itself
//! steps down once the new voter set is committed (openraft does that), and the
//! remaining voters elect through the pre-vote gate.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::error::{ChangeMembershipError, ClientWriteError, RaftError};
use openraft::{ChangeMembers, ServerState};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::network::{Client, IO_TIMEOUT, Request, Response};
use super::node::{Core, join_as_observer};
use super::{Error, Member, NodeId, Result, prevote};

/// The longest a voter change may take, whatever the request's timeout says.
pub const CHANGE_TIMEOUT_MAX: Duration = Duration::from_secs(15);
/// How long the leader waits for a new voter to catch up before refusing it
/// (Kafka refuses a lagging one at once; a short wait spares a retry).
const CATCH_UP_WAIT: Duration = Duration::from_secs(5);

/// How a controller of a dynamic quorum starts on an empty data dir (kafka-storage
/// format's `--standalone` / `--initial-controllers` / `--no-initial-controllers`).
#[derive(Debug, Clone, PartialEq)]
pub enum Initial {
    /// Form the quorum with these voters (itself alone for `--standalone`).
    Voters(BTreeMap<NodeId, Member>),
    /// Observe until added with AddRaftVoter.
    Observe,
    /// Nothing said: fine once the quorum was formed, an error on an empty data dir.
    Unspecified,
}

/// A node of a dynamic quorum (see the module comment).
#[derive(Debug, Clone)]
pub struct Dynamic {
    /// The controllers' raft addresses, asked in turn to join.
    pub bootstrap: Vec<String>,
    /// This node's raft address and directory id, as recorded in the membership.
    pub me: Member,
    /// True for a controller (may vote); false for a broker-only observer.
    pub controller: bool,
    pub initial: Initial,
}

/// AddRaftVoter (80) as carried to the leader.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AddVoter {
    pub voter_id: NodeId,
    pub directory_id: String,
    /// The raft address of the listener the request names for the controller listener.
    pub addr: String,
    pub timeout_ms: u64,
}

/// RemoveRaftVoter (81) as carried to the leader.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RemoveVoter {
    pub voter_id: NodeId,
    pub directory_id: String,
}

/// Why a voter change was refused; each maps to one Kafka error code (api/).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
pub enum VoterChangeError {
    /// DUPLICATE_VOTER (126).
    #[error("{0}")]
    DuplicateVoter(String),
    /// VOTER_NOT_FOUND (127).
    #[error("{0}")]
    VoterNotFound(String),
    /// REQUEST_TIMED_OUT (7): another change is under way, the node is not a
    /// caught-up observer, or the change did not commit in time.
    #[error("{0}")]
    TimedOut(String),
    /// No quorum leader could be asked (NOT_CONTROLLER, 41: the admin client retries).
    #[error("{0}")]
    NotLeader(String),
}

type ChangeResult = std::result::Result<(), VoterChangeError>;

/// Start a node of a dynamic quorum: form the quorum on first start if told to,
/// run the pre-vote gate on a controller, and observe unless this node votes.
pub(super) async fn start_dynamic(core: &Arc<Core>, d: Dynamic, stale_after: Duration, shutdown: watch::Receiver<bool>) -> Result<()> {
    let fatal = |e: openraft::error::Fatal<NodeId>| Error::Storage(e.to_string());
    let raft = &core.raft;
    let formed = raft.is_initialized().await.map_err(fatal)?;
    if !formed && d.controller {
        match &d.initial {
            Initial::Voters(voters) => {
                if let Err(e) = raft.initialize(voters.clone()).await {
                    tracing::debug!(error = %e, "raft initialize (another initial controller may have done it)");
                }
            }
            Initial::Observe => {}
            Initial::Unspecified => {
                return Err(Error::Storage(
                    "a controller of a dynamic quorum (several controller.quorum.bootstrap.servers) needs --standalone, \
                     --initial-controllers or --no-initial-controllers on its first start"
                        .into(),
                ));
            }
        }
    }
    if d.controller {
        tokio::spawn(prevote::gate(core.clone(), stale_after, shutdown.clone()));
    }
    tokio::spawn(keep_membership(core.clone(), d.bootstrap, d.me, shutdown));
    Ok(())
}

/// How often a node of a dynamic quorum checks that the membership has it.
const MEMBERSHIP_CHECK_PERIOD: Duration = Duration::from_secs(1);

/// Join as an observer whenever the membership (as this node last saw it) lacks
/// this node at its address: on a fresh start, after a restart elsewhere, and after
/// a leader removed itself (it leaves the membership so that it steps down, see
/// `remove_voter`, and comes back as an observer here).
async fn keep_membership(core: Arc<Core>, bootstrap: Vec<String>, me: Member, mut shutdown: watch::Receiver<bool>) {
    loop {
        let present = {
            let m = core.raft.metrics();
            let m = m.borrow();
            let membership = m.membership_config.membership();
            // A voter is in (whatever address the initial list gave it); an observer
            // must be there at its current address.
            membership.voter_ids().any(|v| v == core.id) || membership.get_node(&core.id) == Some(&me)
        };
        if !present {
            join_as_observer(core.clone(), bootstrap.clone(), me.clone(), shutdown.clone()).await;
        }
        tokio::select! {
            _ = tokio::time::sleep(MEMBERSHIP_CHECK_PERIOD) => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
    }
}

impl Core {
    /// Do `req` (AddVoter / RemoveVoter) where the quorum leader is: here, or asked
    /// over the raft transport.
    pub(super) async fn voter_change_at_leader(&self, req: Request) -> ChangeResult {
        let m = self.raft.metrics().borrow().clone();
        if m.state == ServerState::Leader {
            return match req {
                Request::AddVoter(v) => self.add_voter(v).await,
                Request::RemoveVoter(v) => self.remove_voter(v).await,
                _ => Err(VoterChangeError::NotLeader("not a voter change".into())),
            };
        }
        let leader = m.current_leader.ok_or_else(|| VoterChangeError::NotLeader("no metadata quorum leader is known".into()))?;
        let addr = m.membership_config.membership().get_node(&leader).map(|n| n.addr.clone());
        let addr = addr.ok_or_else(|| VoterChangeError::NotLeader(format!("leader {leader} has no known address")))?;
        // The leader bounds the change by CHANGE_TIMEOUT_MAX; allow for the exchange on top.
        match Client::new(addr).call(&req, CHANGE_TIMEOUT_MAX + IO_TIMEOUT).await {
            Ok(Response::VoterChange(r)) => r,
            Ok(_) => Err(VoterChangeError::NotLeader("unexpected answer to a voter change".into())),
            Err(e) => Err(VoterChangeError::NotLeader(e.to_string())),
        }
    }

    /// Leader side of AddRaftVoter.
    pub(super) async fn add_voter(&self, v: AddVoter) -> ChangeResult {
        let deadline = Instant::now() + Duration::from_millis(v.timeout_ms).clamp(Duration::from_secs(1), CHANGE_TIMEOUT_MAX);
        let guard = self.begin_change()?;
        let m = self.raft.metrics().borrow().clone();
        let membership = m.membership_config.membership();
        let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
        let key = replica_key(v.voter_id, &v.directory_id);
        if voters.contains(&v.voter_id) {
            return Err(VoterChangeError::DuplicateVoter(format!("The voter id for {key} is already part of the set of voters {voters:?}.")));
        }
        let Some(node) = membership.get_node(&v.voter_id) else {
            return Err(VoterChangeError::TimedOut(format!(
                "New voter {key} is not an observer of the metadata quorum: start it with the controller role and \
                 controller.quorum.bootstrap.servers first"
            )));
        };
        if node.directory_id.as_deref().is_some_and(|d| d != v.directory_id) {
            return Err(VoterChangeError::TimedOut(format!(
                "New voter {key} is not the observer {} (directory id {})",
                v.voter_id,
                node.directory_id.as_deref().unwrap_or_default()
            )));
        }
        if node.addr != v.addr {
            tracing::info!(voter = v.voter_id, observed = %node.addr, requested = %v.addr, "adding a voter at the address it observes from");
        }
        self.wait_caught_up(v.voter_id, deadline.min(Instant::now() + CATCH_UP_WAIT)).await.map_err(|lag| {
            VoterChangeError::TimedOut(format!("Aborted add voter operation for {key} since it is lagging behind ({lag} entries)"))
        })?;
        tracing::info!(voter = v.voter_id, "adding a voter to the metadata quorum");
        self.change(ChangeMembers::AddVoterIds(BTreeSet::from([v.voter_id])), true, guard, deadline).await
    }

    /// Leader side of RemoveRaftVoter.
    pub(super) async fn remove_voter(&self, v: RemoveVoter) -> ChangeResult {
        let deadline = Instant::now() + CHANGE_TIMEOUT_MAX;
        let guard = self.begin_change()?;
        let m = self.raft.metrics().borrow().clone();
        let membership = m.membership_config.membership();
        let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
        let key = replica_key(v.voter_id, &v.directory_id);
        let not_found = || VoterChangeError::VoterNotFound(format!("Cannot remove voter {key} from the set of voters {voters:?}"));
        if !voters.contains(&v.voter_id) {
            return Err(not_found());
        }
        let recorded = membership.get_node(&v.voter_id).and_then(|n| n.directory_id.clone());
        if recorded.is_some_and(|d| d != v.directory_id) {
            return Err(not_found());
        }
        if voters.len() == 1 {
            return Err(VoterChangeError::VoterNotFound(format!("Cannot remove voter {key}: it is the last voter of the metadata quorum")));
        }
        tracing::info!(voter = v.voter_id, "removing a voter from the metadata quorum");
        // A removed controller goes on observing, as in Kafka: kept as a learner. Not
        // the leader itself: openraft lets a learner lead on, and only a leader that
        // left the membership steps down; it joins again as an observer
        // (`keep_membership`) once another leader is elected.
        let retain = v.voter_id != self.id;
        self.change(ChangeMembers::RemoveVoters(BTreeSet::from([v.voter_id])), retain, guard, deadline).await
    }

    /// The voter-change lock, if no change is under way and the last one is committed.
    fn begin_change(&self) -> std::result::Result<tokio::sync::OwnedMutexGuard<()>, VoterChangeError> {
        let guard = self.voter_change.clone().try_lock_owned().map_err(|_| {
            VoterChangeError::TimedOut("Request timed out waiting for leader to handle previous add or remove voter request".into())
        })?;
        let m = self.raft.metrics().borrow().clone();
        if m.state != ServerState::Leader {
            return Err(VoterChangeError::NotLeader(format!("node {} no longer leads the metadata quorum", self.id)));
        }
        // Applied implies committed; openraft applies membership entries too.
        let change_at = m.membership_config.log_id().map(|l| l.index);
        if change_at > m.last_applied.map(|l| l.index) || m.membership_config.membership().get_joint_config().len() > 1 {
            return Err(VoterChangeError::TimedOut("Request timed out waiting for voters to commit the latest voter change".into()));
        }
        Ok(guard)
    }

    /// Wait until `id` has replicated the leader's log as it is now; Err(lag) at `deadline`.
    async fn wait_caught_up(&self, id: NodeId, deadline: Instant) -> std::result::Result<(), u64> {
        let target = self.raft.metrics().borrow().last_log_index.unwrap_or(0);
        let mut rx = self.raft.metrics();
        let matched = |m: &openraft::RaftMetrics<NodeId, Member>| {
            m.replication.as_ref().and_then(|r| r.get(&id).copied().flatten()).map(|l| l.index).unwrap_or(0)
        };
        let waited = tokio::time::timeout_at(deadline.into(), rx.wait_for(|m| matched(m) >= target)).await;
        match waited {
            Ok(Ok(_)) => Ok(()),
            _ => Err(target.saturating_sub(matched(&self.raft.metrics().borrow()))),
        }
    }

    /// Run `change` holding `guard` until it ends (even past `deadline`, so the next
    /// change waits for it), answering by `deadline`.
    async fn change(&self, change: ChangeMembers<NodeId, Member>, retain: bool, guard: tokio::sync::OwnedMutexGuard<()>, deadline: Instant) -> ChangeResult {
        let raft = self.raft.clone();
        let task = tokio::spawn(async move {
            let _guard = guard;
            raft.change_membership(change, retain).await
        });
        match tokio::time::timeout_at(deadline.into(), task).await {
            Ok(Ok(Ok(_))) => Ok(()),
            Ok(Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_))))) => {
                Err(VoterChangeError::NotLeader("leadership moved during the voter change".into()))
            }
            Ok(Ok(Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(e))))) => Err(match e {
                ChangeMembershipError::LearnerNotFound(e) => VoterChangeError::TimedOut(format!("{e}")),
                e => VoterChangeError::TimedOut(e.to_string()),
            }),
            Ok(Ok(Err(e))) => Err(VoterChangeError::TimedOut(e.to_string())),
            Ok(Err(_)) => Err(VoterChangeError::NotLeader("shutting down".into())),
            Err(_) => Err(VoterChangeError::TimedOut("Request timed out waiting for the new voter set to commit".into())),
        }
    }
}

/// Kafka's text for a replica key, as its error messages show it.
fn replica_key(id: NodeId, directory_id: &str) -> String {
    format!("ReplicaKey(id={id}, directoryId=Optional[{directory_id}])")
}
