//! One member of the metadata quorum: its openraft instance on a dedicated
//! runtime, the raft transport's listener, and the proposal path.
//!
//! The raft runtime is separate from the broker's so heartbeats and elections do
//! not queue behind request handling, and so the synchronous `propose` (called
//! from blocking threads) can drive a future with `Handle::block_on`.
//!
//! Proposal path. On the leader: take the proposal lock, make sure every
//! committed entry is applied here (`ensure_linearizable`), build the records on
//! that image, check them on a copy, `client_write`, which returns once the entry
//! is committed on a quorum and applied. On a follower: build and check on the
//! local image, then `Forward` to the leader with the image's metadata offset; the
//! leader accepts only if its image is at that same offset (else `Stale`, and the
//! follower catches up and rebuilds), then the follower waits until the entry is
//! applied locally before returning, so the caller sees its own change.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::error::{CheckIsLeaderError, ClientWriteError, RaftError};
use openraft::{ChangeMembers, ServerState, SnapshotPolicy};
use tokio::net::TcpListener;
use tokio::runtime::{Handle, Runtime};
use tokio::sync::watch;

use super::log_store::LogStore;
use super::network::{Client, Forward, ForwardResult, Heartbeat, HeartbeatAck, IO_TIMEOUT, Join, JoinResult, NetworkFactory, Request, Response};
use super::state_machine::{Published, StateMachine};
use super::prevote;
use super::voters::{AddVoter, RemoveVoter, VoterChangeError};
use super::{Batch, Error, Member, NodeId, Raft, Result};
use crate::metadata::image::{ApplyError, Image};
use crate::controller::liveness::Liveness;
use crate::metadata::MetadataRecord;

/// How long a proposal may wait for a leader, a forward or its own apply before
/// the caller gets a retriable error (Kafka clients retry CreateTopics etc.).
const PROPOSE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long `open` waits for a single voter to become leader and apply its log.
const SINGLE_VOTER_READY_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause between attempts while leadership is moving.
const RETRY_PAUSE: Duration = Duration::from_millis(20);
/// Pause between an observer's attempts to join while no leader takes it.
const JOIN_RETRY_PAUSE: Duration = Duration::from_millis(500);

/// The quorum as this node sees it, for DescribeQuorum. Offsets are raft log
/// offsets (index + 1 of the last entry), Kafka's "log end offset" of the metadata log.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct QuorumView {
    pub leader: Option<NodeId>,
    pub term: u64,
    pub is_leader: bool,
    /// Applied on the leader, so committed: a lower bound of the commit point.
    pub high_watermark: i64,
    /// Each voter with its raft address and, on the leader, its replicated log end
    /// offset (-1 when unknown: not the leader, or nothing matched yet).
    pub voters: Vec<(NodeId, String, i64)>,
    /// Observers (broker-only nodes, raft learners), likewise.
    pub observers: Vec<(NodeId, String, i64)>,
    /// The directory id of each member that reported one (KIP-853 replica keys).
    #[serde(default)]
    pub directory_ids: BTreeMap<NodeId, String>,
}

pub struct NodeConfig {
    pub node_id: NodeId,
    /// Every voter and the address of its raft transport. A single entry is the
    /// one-voter quorum (its address may be empty: nothing connects to it).
    pub voters: BTreeMap<NodeId, String>,
    /// Where this node's raft transport listens; None only for a single voter.
    pub listen: Option<SocketAddr>,
    /// Some for an observer (a broker-only node, not among `voters`): the address
    /// it asks the leader to stream the log to, as a raft learner.
    pub observer_addr: Option<String>,
    /// Directory for the raft log, vote and snapshot.
    pub dir: PathBuf,
    /// Some for a dynamic quorum (KIP-853, `controller.quorum.bootstrap.servers`):
    /// voters change at run time; `voters` and `observer_addr` are then unused.
    pub dynamic: Option<super::voters::Dynamic>,
}

/// State shared by the proposal path and the transport's server side.
pub struct Core {
    pub id: NodeId,
    pub raft: Raft,
    published: watch::Receiver<Published>,
    /// Serialises leader-side proposals: build, check and write happen against
    /// an image no other proposal can change in between.
    lock: tokio::sync::Mutex<()>,
    /// Brokers' heartbeats received while this node leads (see `controller::liveness`).
    liveness: Arc<Liveness>,
    /// When a leader was last heard from, and how long until that is stale (`prevote`).
    pub(super) leader_contact: prevote::LeaderContact,
    stale_after: Duration,
    /// Held for the whole of a voter change (add or remove), so there is one at a
    /// time; a second one meanwhile is refused at once (`voters`).
    pub(super) voter_change: Arc<tokio::sync::Mutex<()>>,
}

pub struct RaftNode {
    /// Some until drop; dropped in the background so drop is safe anywhere.
    rt: Option<Runtime>,
    handle: Handle,
    core: Arc<Core>,
    shutdown_tx: watch::Sender<bool>,
    /// The transport's bound address (port 0 in tests resolves here).
    pub listen_addr: Option<SocketAddr>,
}

fn raft_config(single_voter: bool) -> Result<openraft::Config> {
    let c = openraft::Config {
        cluster_name: "sluice-metadata".into(),
        heartbeat_interval: 50,
        // A single voter elects itself at once (see `open`); these only matter
        // with several voters, on a LAN.
        election_timeout_min: if single_voter { 150 } else { 300 },
        election_timeout_max: if single_voter { 300 } else { 600 },
        install_snapshot_timeout: 2_000,
        max_payload_entries: 64,
        snapshot_policy: SnapshotPolicy::LogsSinceLast(1_000),
        max_in_snapshot_log_to_keep: 1_000,
        // Several voters elect only once a pre-vote succeeds (see `prevote`).
        enable_elect: single_voter,
        ..Default::default()
    };
    c.validate().map_err(|e| Error::Storage(format!("raft config: {e}")))
}

/// Run a `'static` future on the raft runtime and wait for it from any thread,
/// including a broker worker during start (where `block_on` would panic).
fn run_blocking<F>(handle: &Handle, fut: F) -> F::Output
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let (tx, rx) = std::sync::mpsc::channel();
    handle.spawn(async move {
        let _ = tx.send(fut.await);
    });
    rx.recv().expect("raft runtime runs the task to completion")
}

impl RaftNode {
    /// Start this quorum member. `base` is the image the log applies on top of
    /// when there is no snapshot yet (an imported legacy log, or empty); `legacy`
    /// is that log's path, retired once a snapshot covers it.
    pub fn open(cfg: NodeConfig, base: Image, legacy: Option<PathBuf>) -> Result<RaftNode> {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).thread_name("sluice-raft").enable_all().build()?;
        let handle = rt.handle().clone();
        let log_store = LogStore::open(&cfg.dir)?;
        let (sm, published) = StateMachine::open(&cfg.dir, base, legacy)?;
        let single_voter = cfg.voters.len() == 1 && cfg.dynamic.is_none();
        let config = Arc::new(raft_config(single_voter)?);
        let stale_after = prevote::stale_after(&config);
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let id = cfg.node_id;
        let voters = cfg.voters.clone();
        let listen = cfg.listen;
        let observer_addr = cfg.observer_addr.clone();
        let dynamic = cfg.dynamic.clone();
        let join_shutdown = shutdown_rx.clone();
        let started = run_blocking(&handle, async move {
            let listener = match listen {
                Some(a) => Some(TcpListener::bind(a).await?),
                None => None,
            };
            let raft = Raft::new(id, config, NetworkFactory, log_store, sm).await.map_err(|e| Error::Storage(e.to_string()))?;
            let core = Arc::new(Core {
                id,
                raft: raft.clone(),
                published,
                lock: tokio::sync::Mutex::new(()),
                liveness: Arc::default(),
                leader_contact: Default::default(),
                stale_after,
                voter_change: Arc::default(),
            });
            let listen_addr = match listener {
                Some(l) => {
                    let addr = l.local_addr()?;
                    tokio::spawn(super::network::serve(l, core.clone(), shutdown_rx));
                    Some(addr)
                }
                None => None,
            };
            match (observer_addr, dynamic) {
                (_, Some(d)) => super::voters::start_dynamic(&core, d, stale_after, join_shutdown).await?,
                // Every start: the leader may not have it yet, or under another address.
                (Some(addr), None) => {
                    let targets = voters.into_values().collect();
                    tokio::spawn(join_as_observer(core.clone(), targets, Member::new(addr, None), join_shutdown));
                }
                (None, None) => {
                    if voters.len() > 1 {
                        tokio::spawn(prevote::gate(core.clone(), stale_after, join_shutdown));
                    }
                    start_quorum(&raft, id, &voters).await?
                }
            }
            Ok::<_, Error>((core, listen_addr))
        });
        let (core, listen_addr) = match started {
            Ok(x) => x,
            Err(e) => {
                rt.shutdown_background();
                return Err(e);
            }
        };
        Ok(RaftNode { rt: Some(rt), handle, core, shutdown_tx, listen_addr })
    }

    pub fn id(&self) -> NodeId {
        self.core.id
    }

    /// The newest applied image.
    /// Wakes on every newly applied image.
    pub fn subscribe(&self) -> watch::Receiver<super::state_machine::Published> {
        self.core.published.clone()
    }

    pub fn image(&self) -> Arc<Image> {
        self.core.image()
    }

    /// The last raft log index applied here.
    pub fn applied_index(&self) -> Option<u64> {
        self.core.published.borrow().applied_index
    }

    /// The quorum as this node sees it (only the leader knows replication progress).
    pub fn quorum_view(&self) -> QuorumView {
        self.core.quorum_view()
    }

    /// The quorum as its leader sees it: this node's view when it leads, else the
    /// leader's, asked over the raft transport (Kafka brokers forward DescribeQuorum
    /// to the active controller). This node's own view when the leader cannot be
    /// asked, which DescribeQuorum answers with NOT_LEADER_OR_FOLLOWER.
    pub async fn leader_quorum_view(&self) -> QuorumView {
        let core = self.core.clone();
        let local = self.quorum_view();
        self.handle.spawn(async move { core.ask_leader_quorum_view().await }).await.ok().flatten().unwrap_or(local)
    }

    /// The heartbeat table this node fills while it leads the quorum.
    pub fn liveness(&self) -> &Arc<Liveness> {
        &self.core.liveness
    }

    /// Send a broker heartbeat to the quorum leader (recorded directly when this
    /// node leads). Callable from any runtime.
    pub async fn heartbeat(&self, broker_id: i32, incarnation: uuid::Uuid) -> Result<HeartbeatAck> {
        let core = self.core.clone();
        let beat = Heartbeat { broker_id, incarnation };
        self.handle.spawn(async move { core.send_heartbeat(beat).await }).await.map_err(|_| Error::ShuttingDown)?
    }

    /// Make the node described by `v` a voter (AddRaftVoter): done by the quorum
    /// leader, asked over the raft transport when that is another node.
    pub async fn add_voter(&self, v: AddVoter) -> std::result::Result<(), VoterChangeError> {
        let core = self.core.clone();
        self.handle.spawn(async move { core.voter_change_at_leader(Request::AddVoter(v)).await }).await.map_err(|_| VoterChangeError::NotLeader("shutting down".into()))?
    }

    /// Remove a voter (RemoveRaftVoter); see `add_voter`.
    pub async fn remove_voter(&self, v: RemoveVoter) -> std::result::Result<(), VoterChangeError> {
        let core = self.core.clone();
        self.handle.spawn(async move { core.voter_change_at_leader(Request::RemoveVoter(v)).await }).await.map_err(|_| VoterChangeError::NotLeader("shutting down".into()))?
    }

    pub fn metrics(&self) -> openraft::RaftMetrics<NodeId, Member> {
        self.core.raft.metrics().borrow().clone()
    }

    /// Commit `build`'s records through the quorum; see the module comment.
    /// Blocking: call it from a blocking thread, never from an async task.
    pub fn propose<F>(&self, mut build: F) -> Result<Arc<Image>>
    where
        F: FnMut(&Image) -> std::result::Result<Vec<MetadataRecord>, ApplyError>,
    {
        self.handle.block_on(self.core.propose(&mut build))
    }

    /// Build a snapshot in the background (e.g. right after importing a legacy log).
    pub fn trigger_snapshot(&self) {
        let raft = self.core.raft.clone();
        self.handle.spawn(async move {
            if let Err(e) = raft.trigger().snapshot().await {
                tracing::warn!(error = %e, "could not trigger a metadata snapshot");
            }
        });
    }

    /// Build a snapshot of everything applied and purge the log it covers, so a
    /// lagging follower must be sent the snapshot. Blocking; for tests.
    pub fn snapshot_and_purge_for_tests(&self) {
        let raft = self.core.raft.clone();
        run_blocking(&self.handle, async move {
            let applied = raft.metrics().borrow().last_applied.expect("something was applied");
            raft.trigger().snapshot().await.expect("raft runs");
            raft.wait(Some(Duration::from_secs(10))).snapshot(applied, "snapshot built").await.expect("snapshot builds");
            raft.trigger().purge_log(applied.index).await.expect("raft runs");
            raft.wait(Some(Duration::from_secs(10))).purged(Some(applied), "log purged").await.expect("log purges");
        });
    }

    /// Stop the transport and openraft; idempotent.
    pub async fn shutdown(&self) {
        let _ = self.shutdown_tx.send(true);
        let raft = self.core.raft.clone();
        let _ = self.handle.spawn(async move { raft.shutdown().await }).await;
    }
}

impl Drop for RaftNode {
    fn drop(&mut self) {
        let _ = self.shutdown_tx.send(true);
        if let Some(rt) = self.rt.take() {
            // Dropping a runtime inside another one's task would panic.
            rt.shutdown_background();
        }
    }
}

/// Initialise a brand-new quorum (every voter may do it with the same membership;
/// whoever is second is told it is already initialised), and let a single voter
/// elect itself now rather than after an election timeout, then wait until it
/// leads and has applied its log, so the broker starts with the full image.
async fn start_quorum(raft: &Raft, id: NodeId, voters: &BTreeMap<NodeId, String>) -> Result<()> {
    let fatal = |e: openraft::error::Fatal<NodeId>| Error::Storage(e.to_string());
    if !raft.is_initialized().await.map_err(fatal)? {
        let members: BTreeMap<NodeId, Member> = voters.iter().map(|(id, addr)| (*id, Member::new(addr, None))).collect();
        if let Err(e) = raft.initialize(members).await {
            tracing::debug!(error = %e, "raft initialize (another voter may have done it)");
        }
    } else {
        // Voters are fixed when the quorum is first formed; changing them needs a
        // membership change, which this version does not do. Say so instead of
        // silently running with the stored set.
        let stored: Vec<NodeId> = raft.metrics().borrow().membership_config.membership().voter_ids().collect();
        let configured: Vec<NodeId> = voters.keys().copied().collect();
        if stored != configured {
            tracing::warn!(?stored, ?configured, "controller.quorum.voters differs from the quorum formed earlier; the stored voters stay in force");
        }
    }
    if voters.len() == 1 && voters.contains_key(&id) {
        raft.trigger().elect().await.map_err(fatal)?;
        raft.wait(Some(SINGLE_VOTER_READY_TIMEOUT))
            .metrics(
                |m| m.current_leader == Some(id) && m.state == ServerState::Leader && m.last_applied.map(|l| l.index) >= m.last_log_index,
                "single voter leads and has applied its log",
            )
            .await
            .map_err(|e| Error::NoLeader(e.to_string()))?;
    }
    Ok(())
}

/// An observer asks the voters, until the leader adds it as a learner (or already
/// has it at this address); from then on the leader streams it the log.
pub(super) async fn join_as_observer(core: Arc<Core>, voters: Vec<String>, me: Member, mut shutdown: watch::Receiver<bool>) {
    let addr = me.addr.clone();
    let mut next = 0usize;
    let mut hint: Option<String> = None;
    let join = Request::Join(Join { node_id: core.id, addr: me.addr, directory_id: me.directory_id });
    loop {
        if *shutdown.borrow() {
            return;
        }
        let target = hint.take().unwrap_or_else(|| {
            next += 1;
            voters[(next - 1) % voters.len()].clone()
        });
        match Client::new(target.clone()).call(&join, IO_TIMEOUT).await {
            Ok(Response::Join(JoinResult::Ok)) => {
                tracing::info!(%addr, via = %target, "observing the metadata quorum");
                return;
            }
            Ok(Response::Join(JoinResult::NotLeader(leader))) => hint = leader,
            Ok(Response::Join(JoinResult::Rejected(reason))) => {
                tracing::error!(%reason, "the metadata quorum refused this broker as an observer");
                return;
            }
            Ok(Response::Join(JoinResult::Retry(reason))) => tracing::debug!(%reason, "joining the metadata quorum: retrying"),
            Ok(_) => tracing::warn!(%target, "unexpected answer to a join"),
            Err(e) => tracing::debug!(error = %e, "joining the metadata quorum: retrying"),
        }
        tokio::select! {
            _ = tokio::time::sleep(JOIN_RETRY_PAUSE) => {}
            _ = shutdown.changed() => {}
        }
    }
}

/// Why a leader-side attempt did not commit.
enum LeadError {
    /// Leadership moved or is not settled: try again.
    Retry,
    Stale(i64),
    Fail(Error),
}

impl From<ApplyError> for LeadError {
    fn from(e: ApplyError) -> Self {
        LeadError::Fail(Error::Rejected(e))
    }
}

/// Check `records` against a copy of `image`, exactly as the state machine will apply them.
fn check(image: &Image, records: &[MetadataRecord]) -> std::result::Result<(), ApplyError> {
    let mut next = image.clone();
    let offset = image.last_offset + 1;
    records.iter().try_for_each(|r| next.apply(offset, r))
}

impl Core {
    fn image(&self) -> Arc<Image> {
        self.published.borrow().image.clone()
    }

    async fn propose(&self, build: &mut dyn FnMut(&Image) -> std::result::Result<Vec<MetadataRecord>, ApplyError>) -> Result<Arc<Image>> {
        let deadline = Instant::now() + PROPOSE_TIMEOUT;
        let mut last_problem = "no leader elected".to_string();
        loop {
            let leader = self.raft.metrics().borrow().current_leader;
            match leader {
                Some(l) if l == self.id => {
                    let attempt = self.lead_with(&mut |img| Ok(build(img)?)).await;
                    match attempt {
                        Ok(None) => return Ok(self.image()),
                        Ok(Some(index)) => return self.wait_applied(index, deadline).await,
                        Err(LeadError::Fail(e)) => return Err(e),
                        Err(LeadError::Retry | LeadError::Stale(_)) => last_problem = "leadership changed".into(),
                    }
                }
                Some(l) => {
                    let image = self.image();
                    let records = build(&image)?;
                    if records.is_empty() {
                        return Ok(image);
                    }
                    check(&image, &records)?;
                    match self.forward(l, Forward { expected_offset: image.last_offset, records }).await {
                        Ok(ForwardResult::Committed { index }) => return self.wait_applied(index, deadline).await,
                        Ok(ForwardResult::Rejected(e)) => return Err(Error::Rejected(e)),
                        Ok(ForwardResult::Stale { leader_offset }) => {
                            let mut rx = self.published.clone();
                            let _ = tokio::time::timeout_at(deadline.into(), rx.wait_for(|p| p.image.last_offset >= leader_offset)).await;
                            continue;
                        }
                        Ok(ForwardResult::NotLeader) => last_problem = format!("node {l} is no longer the leader"),
                        Ok(ForwardResult::Failed(e)) => last_problem = e,
                        Err(e) => last_problem = e,
                    }
                }
                None => {}
            }
            if Instant::now() >= deadline {
                return Err(Error::NoLeader(last_problem));
            }
            tokio::time::sleep(RETRY_PAUSE).await;
        }
    }

    /// Record a broker's heartbeat if this node leads and knows the registration.
    pub(super) fn accept_heartbeat(&self, h: &Heartbeat) -> HeartbeatAck {
        if self.raft.metrics().borrow().state != ServerState::Leader {
            return HeartbeatAck::NotLeader;
        }
        match self.image().brokers.get(&h.broker_id) {
            Some(b) if b.incarnation == h.incarnation => {
                self.liveness.record(h.broker_id, h.incarnation, Instant::now());
                HeartbeatAck::Ok
            }
            _ => HeartbeatAck::UnknownBroker,
        }
    }

    /// Add an observer as a learner (or update its address). Leader only.
    pub(super) async fn accept_join(&self, j: Join) -> JoinResult {
        let m = self.raft.metrics().borrow().clone();
        let membership = m.membership_config.membership();
        if m.state != ServerState::Leader {
            let leader = m.current_leader.filter(|l| *l != self.id).and_then(|l| membership.get_node(&l).map(|n| n.addr.clone()));
            return JoinResult::NotLeader(leader);
        }
        if membership.voter_ids().any(|v| v == j.node_id) {
            return JoinResult::Rejected(format!("node id {} belongs to a voter of the metadata quorum", j.node_id));
        }
        let member = Member::new(&j.addr, j.directory_id.clone());
        let node = BTreeMap::from([(j.node_id, member.clone())]);
        let change = match membership.get_node(&j.node_id) {
            Some(n) if *n == member => return JoinResult::Ok,
            // Restarted elsewhere: only the address changes, never the voter set.
            Some(_) => ChangeMembers::SetNodes(node),
            None => ChangeMembers::AddNodes(node),
        };
        match self.raft.change_membership(change, true).await {
            Ok(_) => {
                tracing::info!(node = j.node_id, addr = %j.addr, "observer joined the metadata quorum");
                JoinResult::Ok
            }
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_))) => JoinResult::NotLeader(None),
            Err(e) => JoinResult::Retry(e.to_string()),
        }
    }

    pub(super) fn quorum_view(&self) -> QuorumView {
        let m = self.raft.metrics().borrow().clone();
        let is_leader = m.state == ServerState::Leader;
        let end = |idx: Option<u64>| idx.map(|i| i as i64 + 1).unwrap_or(0);
        let progress = |id: NodeId| {
            let addr = m.membership_config.membership().get_node(&id).map(|n| n.addr.clone()).unwrap_or_default();
            let leo = match (&m.replication, is_leader) {
                _ if is_leader && id == m.id => end(m.last_log_index),
                (Some(r), true) => r.get(&id).map(|l| end(l.map(|l| l.index))).unwrap_or(-1),
                _ => -1,
            };
            (id, addr, leo)
        };
        let voters = m.membership_config.membership().voter_ids().map(progress).collect();
        let observers = m.membership_config.membership().learner_ids().map(progress).collect();
        let directory_ids = m.membership_config.membership().nodes().filter_map(|(id, n)| Some((*id, n.directory_id.clone()?))).collect();
        QuorumView {
            leader: m.current_leader,
            term: m.current_term,
            is_leader,
            high_watermark: if is_leader { end(m.last_applied.map(|l| l.index)) } else { -1 },
            voters,
            observers,
            directory_ids,
        }
    }

    /// A pre-vote: yes unless this node leads or has heard a leader lately.
    pub(super) fn grant_prevote(&self) -> bool {
        let leads = self.raft.metrics().borrow().state == ServerState::Leader;
        prevote::grant(leads, self.leader_contact.recent(Instant::now(), self.stale_after))
    }

    /// The leader's quorum view; None when there is no leader to ask or it did not
    /// answer as leader.
    async fn ask_leader_quorum_view(&self) -> Option<QuorumView> {
        let view = self.quorum_view();
        if view.is_leader {
            return Some(view);
        }
        let leader = view.leader?;
        let addr = self.raft.metrics().borrow().membership_config.membership().get_node(&leader).map(|n| n.addr.clone())?;
        match Client::new(addr).call(&Request::DescribeQuorum, IO_TIMEOUT).await {
            Ok(Response::DescribeQuorum(v)) if v.is_leader => Some(v),
            _ => None,
        }
    }

    async fn send_heartbeat(&self, h: Heartbeat) -> Result<HeartbeatAck> {
        let leader = self.raft.metrics().borrow().current_leader;
        let Some(leader) = leader else { return Err(Error::NoLeader("no quorum leader for a heartbeat".into())) };
        if leader == self.id {
            return Ok(self.accept_heartbeat(&h));
        }
        let addr = self.raft.metrics().borrow().membership_config.membership().get_node(&leader).map(|n| n.addr.clone());
        let addr = addr.ok_or_else(|| Error::NoLeader(format!("leader {leader} has no known address")))?;
        match Client::new(addr).call(&Request::Heartbeat(h), IO_TIMEOUT).await {
            Ok(Response::Heartbeat(ack)) => Ok(ack),
            Ok(_) => Err(Error::NoLeader("unexpected response to a heartbeat".into())),
            Err(e) => Err(Error::NoLeader(e.to_string())),
        }
    }

    /// Serve a proposal forwarded by a follower.
    pub(super) async fn lead(&self, f: Forward) -> ForwardResult {
        let mut records = Some(f.records);
        let attempt = self
            .lead_with(&mut |img| {
                if img.last_offset != f.expected_offset {
                    return Err(LeadError::Stale(img.last_offset));
                }
                Ok(records.take().unwrap_or_default())
            })
            .await;
        match attempt {
            Ok(Some(index)) => ForwardResult::Committed { index },
            // Nothing to write: the follower only forwards non-empty batches.
            Ok(None) => ForwardResult::Failed("empty forwarded batch".into()),
            Err(LeadError::Retry) => ForwardResult::NotLeader,
            Err(LeadError::Stale(leader_offset)) => ForwardResult::Stale { leader_offset },
            Err(LeadError::Fail(Error::Rejected(e))) => ForwardResult::Rejected(e),
            Err(LeadError::Fail(e)) => ForwardResult::Failed(e.to_string()),
        }
    }

    /// One leader-side attempt: Some(log index) once committed and applied, None
    /// when `build` had nothing to write.
    async fn lead_with<B>(&self, build: &mut B) -> std::result::Result<Option<u64>, LeadError>
    where
        B: FnMut(&Image) -> std::result::Result<Vec<MetadataRecord>, LeadError>,
    {
        let _guard = self.lock.lock().await;
        match self.raft.ensure_linearizable().await {
            Ok(_) => {}
            Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(_) | CheckIsLeaderError::QuorumNotEnough(_))) => {
                return Err(LeadError::Retry);
            }
            Err(RaftError::Fatal(_)) => return Err(LeadError::Fail(Error::ShuttingDown)),
        }
        let image = self.image();
        let records = build(&image)?;
        if records.is_empty() {
            return Ok(None);
        }
        check(&image, &records)?;
        match self.raft.client_write(Batch { records }).await {
            Ok(resp) => match resp.data.rejected {
                // Checked under the lock on the applied image, so this means a bug or a bad log.
                Some(reason) => Err(LeadError::Fail(Error::Storage(format!("batch skipped at apply: {reason}")))),
                None => Ok(Some(resp.log_id.index)),
            },
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_))) => Err(LeadError::Retry),
            Err(RaftError::APIError(e)) => Err(LeadError::Fail(Error::Storage(e.to_string()))),
            Err(RaftError::Fatal(_)) => Err(LeadError::Fail(Error::ShuttingDown)),
        }
    }

    async fn forward(&self, leader: NodeId, f: Forward) -> std::result::Result<ForwardResult, String> {
        let addr = {
            let m = self.raft.metrics();
            let m = m.borrow();
            m.membership_config.membership().get_node(&leader).map(|n| n.addr.clone())
        };
        let addr = addr.ok_or_else(|| format!("leader {leader} has no known address"))?;
        let mut client = Client::new(addr);
        // The leader may wait for a quorum; allow for it on top of the IO bound.
        match client.call(&Request::Forward(f), IO_TIMEOUT * 2).await {
            Ok(Response::Forward(r)) => Ok(r),
            Ok(_) => Err("unexpected response to a forwarded proposal".into()),
            Err(e) => Err(e.to_string()),
        }
    }

    async fn wait_applied(&self, index: u64, deadline: Instant) -> Result<Arc<Image>> {
        let mut rx = self.published.clone();
        match tokio::time::timeout_at(deadline.into(), rx.wait_for(|p| p.applied_index >= Some(index))).await {
            Ok(Ok(p)) => Ok(p.image.clone()),
            Ok(Err(_)) => Err(Error::ShuttingDown),
            Err(_) => Err(Error::NoLeader(format!("committed entry {index} not applied here in time"))),
        }
    }
}
