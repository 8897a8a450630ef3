//! The controllers' TCP transport: AppendEntries, Vote and InstallSnapshot for
//! openraft, plus `Forward`, which carries a proposal from a follower to the leader,
//! `Heartbeat`, a broker's liveness beat to the leader (see `controller`), and
//! `Join`, a broker-only node asking to observe the log as a raft learner.
//!
//! A frame is `len: u32 | JSON`; the length is checked against `FRAME_BYTES_MAX`
//! before anything is allocated. One request is in flight per connection; a client
//! connects lazily, applies the RPC's deadline to connect, write and read, and drops
//! the connection on any error so the next call reconnects.

use std::sync::Arc;
use std::time::Duration;

use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest, VoteResponse};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::node::Core;
use super::{Member, NodeId, TypeConfig};
use crate::metadata::MetadataRecord;
use crate::metadata::image::ApplyError;

/// AppendEntries is capped at `max_payload_entries` and snapshots travel in chunks
/// of `snapshot_max_chunk_size`, so honest frames stay far below this.
pub const FRAME_BYTES_MAX: usize = 128 * 1024 * 1024;
/// Bounds a dead peer's cost when no RPC deadline applies (forwarding, serving).
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// Incoming connections served at once; controllers are few.
const CONNECTIONS_MAX: usize = 64;

/// A proposal forwarded to the leader. `expected_offset` is the metadata offset of
/// the image the records were built against: the leader refuses them (`Stale`) if
/// its image has moved on, so the sender rebuilds them on a newer image and the
/// read-check-write of `propose` holds across nodes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Forward {
    pub expected_offset: i64,
    pub records: Vec<MetadataRecord>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ForwardResult {
    /// Committed and applied on the leader at this log index.
    Committed { index: u64 },
    Stale { leader_offset: i64 },
    NotLeader,
    Rejected(ApplyError),
    Failed(String),
}

/// A broker's liveness beat, answered by the quorum leader.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Heartbeat {
    pub broker_id: i32,
    pub incarnation: uuid::Uuid,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum HeartbeatAck {
    /// Recorded in the leader's liveness table.
    Ok,
    /// Sent to a node that is not (or no longer) the leader.
    NotLeader,
    /// The leader's image has no registration of this broker with this incarnation.
    UnknownBroker,
}

/// A broker-only node asking the leader to stream it the log (add it as a learner).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Join {
    pub node_id: NodeId,
    /// Where this node's raft transport listens.
    pub addr: String,
    /// Its data dir's directory id (meta.properties), when it has one.
    #[serde(default)]
    pub directory_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum JoinResult {
    /// A learner at this address in the committed membership.
    Ok,
    /// Ask the leader instead (its raft address, when known).
    NotLeader(Option<String>),
    /// Not now (e.g. another membership change is under way): ask again.
    Retry(String),
    /// Refused for good: e.g. the id is a voter's.
    Rejected(String),
}

#[derive(Serialize, Deserialize)]
pub enum Request {
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    Vote(VoteRequest<NodeId>),
    InstallSnapshot(InstallSnapshotRequest<TypeConfig>),
    Forward(Forward),
    Heartbeat(Heartbeat),
    Join(Join),
    /// The quorum as the receiver sees it (for DescribeQuorum at a follower).
    DescribeQuorum,
    /// Would the receiver vote in an election now (see `prevote`)?
    PreVote,
    /// AddRaftVoter / RemoveRaftVoter, carried to the quorum leader (see `voters`).
    AddVoter(super::voters::AddVoter),
    RemoveVoter(super::voters::RemoveVoter),
}

#[derive(Serialize, Deserialize)]
pub enum Response {
    AppendEntries(Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>>),
    Vote(Result<VoteResponse<NodeId>, RaftError<NodeId>>),
    InstallSnapshot(Result<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>>),
    Forward(ForwardResult),
    Heartbeat(HeartbeatAck),
    Join(JoinResult),
    DescribeQuorum(super::node::QuorumView),
    PreVote(bool),
    VoterChange(Result<(), super::voters::VoterChangeError>),
}

async fn write_frame<T: Serialize>(s: &mut TcpStream, msg: &T) -> std::io::Result<()> {
    let payload = serde_json::to_vec(msg).map_err(std::io::Error::other)?;
    if payload.len() > FRAME_BYTES_MAX {
        return Err(std::io::Error::other(format!("raft frame of {} bytes is over the limit", payload.len())));
    }
    let mut buf = Vec::with_capacity(4 + payload.len());
    buf.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    buf.extend_from_slice(&payload);
    s.write_all(&buf).await
}

/// None on a clean close before a frame starts.
async fn read_frame<T: for<'de> Deserialize<'de>>(s: &mut TcpStream) -> std::io::Result<Option<T>> {
    let mut len = [0u8; 4];
    match s.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > FRAME_BYTES_MAX {
        return Err(std::io::Error::other(format!("raft frame of {len} bytes is over the limit")));
    }
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).await?;
    serde_json::from_slice(&body).map(Some).map_err(std::io::Error::other)
}

/// One request/response exchange on a cached connection, reconnecting as needed.
pub struct Client {
    addr: String,
    conn: Option<TcpStream>,
}

#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("cannot reach {addr}: {source}")]
    Unreachable { addr: String, source: std::io::Error },
    #[error("exchange with {addr} failed: {source}")]
    Network { addr: String, source: std::io::Error },
}

impl Client {
    pub fn new(addr: String) -> Client {
        Client { addr, conn: None }
    }

    pub async fn call(&mut self, req: &Request, timeout: Duration) -> Result<Response, CallError> {
        let addr = self.addr.clone();
        if self.conn.is_none() {
            let s = tokio::time::timeout(timeout, TcpStream::connect(&addr))
                .await
                .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))
                .and_then(|r| r)
                .map_err(|source| CallError::Unreachable { addr: addr.clone(), source })?;
            let _ = s.set_nodelay(true);
            self.conn = Some(s);
        }
        let Some(conn) = self.conn.as_mut() else { unreachable!("connected just above") };
        let exchange = async {
            write_frame(conn, req).await?;
            read_frame::<Response>(conn).await?.ok_or_else(|| std::io::Error::from(std::io::ErrorKind::UnexpectedEof))
        };
        let result = tokio::time::timeout(timeout, exchange).await.map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut)).and_then(|r| r);
        result.map_err(|source| {
            // The stream may hold half a frame now; never reuse it.
            self.conn = None;
            CallError::Network { addr, source }
        })
    }
}

/// openraft's per-target client.
pub struct Network {
    target: NodeId,
    client: Client,
}

/// Creates a `Network` per replication target from its membership address.
pub struct NetworkFactory;

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = Network;

    async fn new_client(&mut self, target: NodeId, node: &Member) -> Network {
        Network { target, client: Client::new(node.addr.clone()) }
    }
}

fn rpc_err<E: std::error::Error>(e: CallError) -> RPCError<NodeId, Member, E> {
    match e {
        CallError::Unreachable { .. } => RPCError::Unreachable(Unreachable::new(&e)),
        CallError::Network { .. } => RPCError::Network(NetworkError::new(&e)),
    }
}

fn unexpected<E: std::error::Error>() -> RPCError<NodeId, Member, E> {
    RPCError::Network(NetworkError::new(&std::io::Error::other("unexpected response type")))
}

impl RaftNetwork<TypeConfig> for Network {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, Member, RaftError<NodeId>>> {
        match self.client.call(&Request::AppendEntries(rpc), option.hard_ttl()).await.map_err(rpc_err)? {
            Response::AppendEntries(r) => r.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e))),
            _ => Err(unexpected()),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<NodeId>, RPCError<NodeId, Member, RaftError<NodeId, InstallSnapshotError>>> {
        match self.client.call(&Request::InstallSnapshot(rpc), option.hard_ttl()).await.map_err(rpc_err)? {
            Response::InstallSnapshot(r) => r.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e))),
            _ => Err(unexpected()),
        }
    }

    async fn vote(&mut self, rpc: VoteRequest<NodeId>, option: RPCOption) -> Result<VoteResponse<NodeId>, RPCError<NodeId, Member, RaftError<NodeId>>> {
        match self.client.call(&Request::Vote(rpc), option.hard_ttl()).await.map_err(rpc_err)? {
            Response::Vote(r) => r.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e))),
            _ => Err(unexpected()),
        }
    }
}

/// Accept controller connections until `shutdown` turns true.
pub async fn serve(listener: TcpListener, core: Arc<Core>, shutdown: watch::Receiver<bool>) {
    let mut conns = crate::server::accept::accept_bounded(listener, CONNECTIONS_MAX, shutdown, |stream, peer| {
        let core = core.clone();
        async move {
            if let Err(e) = serve_conn(stream, &core).await {
                tracing::debug!(%peer, error = %e, "raft connection closed");
            }
        }
    })
    .await;
    // Raft RPCs are retried by their senders: nothing to drain.
    conns.abort_all();
}

async fn serve_conn(mut stream: TcpStream, core: &Core) -> std::io::Result<()> {
    let _ = stream.set_nodelay(true);
    while let Some(req) = read_frame::<Request>(&mut stream).await? {
        let resp = match req {
            Request::AppendEntries(r) => {
                let resp = core.raft.append_entries(r).await;
                // Accepted from a current leader (a higher vote would have been refused).
                if resp.as_ref().is_ok_and(|r| !matches!(r, AppendEntriesResponse::HigherVote(_))) {
                    core.leader_contact.heard(std::time::Instant::now());
                }
                Response::AppendEntries(resp)
            }
            Request::Vote(r) => Response::Vote(core.raft.vote(r).await),
            Request::InstallSnapshot(r) => {
                let resp = core.raft.install_snapshot(r).await;
                if resp.is_ok() {
                    core.leader_contact.heard(std::time::Instant::now());
                }
                Response::InstallSnapshot(resp)
            }
            Request::Forward(f) => Response::Forward(core.lead(f).await),
            Request::Heartbeat(h) => Response::Heartbeat(core.accept_heartbeat(&h)),
            Request::Join(j) => Response::Join(core.accept_join(j).await),
            Request::DescribeQuorum => Response::DescribeQuorum(core.quorum_view()),
            Request::PreVote => Response::PreVote(core.grant_prevote()),
            Request::AddVoter(v) => Response::VoterChange(core.add_voter(v).await),
            Request::RemoveVoter(v) => Response::VoterChange(core.remove_voter(v).await),
        };
        tokio::time::timeout(IO_TIMEOUT, write_frame(&mut stream, &resp)).await.map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
    }
    Ok(())
}
