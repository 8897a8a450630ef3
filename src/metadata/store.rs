//! The metadata log and the current image, behind the controller quorum.
//!
//! Every change to topics, partitions, configs or producer-id blocks is proposed
//! as a batch of records. `propose` checks the batch against the latest image
//! under a lock and returns only once the batch is committed by the quorum and
//! applied here, so a handler that sees the new image knows it is durable on a
//! majority of controllers. With one controller (the default) that majority is
//! this node's own fsync'd raft log; `raft/` is the same code either way.
//!
//! On disk, under this directory: `raft/` (raft log, vote, snapshot), and, in a
//! data dir from before the quorum, the old `metadata.log`, imported on start
//! (`legacy`) and renamed `metadata.log.imported` once a snapshot holds it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::image::{ApplyError, Image};
use super::record::MetadataRecord;
use crate::raft::{NodeConfig, NodeId, RaftNode};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("metadata log io: {0}")]
    Io(#[from] std::io::Error),
    #[error("metadata record rejected: {0}")]
    Rejected(#[from] ApplyError),
    #[error("metadata log {path} is corrupt at entry {offset}: {reason}")]
    Corrupt { path: PathBuf, offset: i64, reason: String },
    /// Retriable: the quorum has no reachable leader right now.
    #[error("metadata quorum unavailable: {0}")]
    Unavailable(String),
    #[error("metadata quorum: {0}")]
    Quorum(String),
}

impl Error {
    /// True when the client should retry (e.g. after an election).
    pub fn is_retriable(&self) -> bool {
        matches!(self, Error::Unavailable(_))
    }
}

impl From<crate::raft::Error> for Error {
    fn from(e: crate::raft::Error) -> Self {
        use crate::raft::Error as R;
        match e {
            R::Rejected(a) => Error::Rejected(a),
            R::NoLeader(m) => Error::Unavailable(m),
            R::ShuttingDown => Error::Unavailable("shutting down".into()),
            R::Storage(m) => Error::Quorum(m),
            R::Io(e) => Error::Io(e),
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// Who votes on the metadata log and where this node's raft transport listens.
#[derive(Debug, Clone)]
pub struct Quorum {
    pub node_id: NodeId,
    /// Voter id → raft transport address (`host:port`).
    pub voters: BTreeMap<NodeId, String>,
    pub listen: Option<SocketAddr>,
    /// Some for a broker-only node: it is no voter but an observer (a raft learner)
    /// that the leader streams the log to at this address.
    pub observer_addr: Option<String>,
    /// Some for a dynamic quorum (KIP-853, see `raft::voters`): then `voters` is
    /// empty and `observer_addr` unused.
    pub dynamic: Option<crate::raft::voters::Dynamic>,
}

impl Quorum {
    /// This node alone: a one-voter quorum with no transport.
    pub fn single(node_id: NodeId) -> Quorum {
        Quorum { node_id, voters: BTreeMap::from([(node_id, String::new())]), listen: None, observer_addr: None, dynamic: None }
    }
}

pub struct MetadataStore {
    dir: PathBuf,
    node: RaftNode,
}

impl MetadataStore {
    /// A single-voter store (node 1), as tests and a config-less start use.
    pub fn open(dir: &Path) -> Result<MetadataStore> {
        Self::open_quorum(dir, Quorum::single(1))
    }

    pub fn open_quorum(dir: &Path, quorum: Quorum) -> Result<MetadataStore> {
        std::fs::create_dir_all(dir)?;
        let legacy_path = dir.join("metadata.log");
        let (base, legacy) = if legacy_path.exists() {
            (super::legacy::replay(&legacy_path)?, Some(legacy_path))
        } else {
            (Image::empty(), None)
        };
        let importing = legacy.is_some();
        let cfg = NodeConfig { node_id: quorum.node_id, voters: quorum.voters, listen: quorum.listen, observer_addr: quorum.observer_addr, dir: dir.join("raft"), dynamic: quorum.dynamic };
        let node = RaftNode::open(cfg, base, legacy)?;
        if importing {
            // Make the import a raft snapshot now, so followers get it and the old file retires.
            node.trigger_snapshot();
        }
        Ok(MetadataStore { dir: dir.to_path_buf(), node })
    }

    pub fn image(&self) -> Arc<Image> {
        self.node.image()
    }

    /// Check, commit through the quorum, apply, then return the image holding
    /// `records` as one atomic batch. `build` sees the latest image under the
    /// proposal lock, so read-check-write (e.g. "create unless it exists") cannot
    /// race another proposal; it may run more than once when the leader's image
    /// moved on before a forwarded batch arrived. Blocking: call it from a
    /// blocking thread.
    pub fn propose<F>(&self, build: F) -> Result<Arc<Image>>
    where
        F: FnMut(&Image) -> std::result::Result<Vec<MetadataRecord>, ApplyError>,
    {
        Ok(self.node.propose(build)?)
    }

    /// Changes whenever a new image is applied (its value: the image and raft index).
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<crate::raft::state_machine::Published> {
        self.node.subscribe()
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    pub fn raft(&self) -> &RaftNode {
        &self.node
    }

    /// Stop the raft transport and openraft (the broker's shutdown path).
    pub async fn shutdown(&self) {
        self.node.shutdown().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn create(store: &MetadataStore, name: &str, partitions: i32) -> Uuid {
        let id = Uuid::new_v4();
        store
            .propose(|_| {
                let mut r = vec![MetadataRecord::Topic { name: name.into(), id }];
                for p in 0..partitions {
                    r.push(MetadataRecord::Partition { topic_id: id, partition: p, leader: 1, leader_epoch: 0, replicas: vec![1], isr: vec![1], adding_replicas: vec![], removing_replicas: vec![] });
                }
                Ok(r)
            })
            .unwrap();
        id
    }

    #[test]
    fn replays_after_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let id = {
            let s = MetadataStore::open(dir.path()).unwrap();
            let id = create(&s, "a", 3);
            create(&s, "b", 1);
            id
        };
        let s = MetadataStore::open(dir.path()).unwrap();
        let img = s.image();
        assert_eq!(img.topic("a").unwrap().partitions.len(), 3);
        assert_eq!(img.topic_by_id(&id).unwrap().name, "a");
        assert!(img.topic("b").is_some());
        // And metadata offsets stay dense across the restart (elections add no batches).
        create(&s, "c", 1);
        assert_eq!(s.image().last_offset, 2);
    }

    #[test]
    fn rejected_proposal_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let s = MetadataStore::open(dir.path()).unwrap();
        create(&s, "a", 1);
        let before = s.node.applied_index();
        let err = s.propose(|_| Ok(vec![MetadataRecord::Topic { name: "a".into(), id: Uuid::new_v4() }]));
        assert!(matches!(err, Err(Error::Rejected(ApplyError::TopicExists(_)))));
        assert_eq!(s.node.applied_index(), before);
        assert_eq!(s.image().last_offset, 0);
    }

    #[test]
    fn imports_a_pre_quorum_log_once() {
        let dir = tempfile::tempdir().unwrap();
        let id = Uuid::new_v4();
        let old = vec![
            vec![MetadataRecord::Topic { name: "old".into(), id }],
            vec![MetadataRecord::Partition { topic_id: id, partition: 0, leader: 1, leader_epoch: 0, replicas: vec![1], isr: vec![1], adding_replicas: vec![], removing_replicas: vec![] }],
        ];
        super::super::legacy::tests::write_old_log(&dir.path().join("metadata.log"), &old);
        {
            let s = MetadataStore::open(dir.path()).unwrap();
            assert_eq!(s.image().topic("old").unwrap().partitions.len(), 1);
            create(&s, "new", 1);
            assert_eq!(s.image().last_offset, 2);
        }
        // The import became a snapshot and the old file retired; both topics survive.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while dir.path().join("metadata.log").exists() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert!(dir.path().join("metadata.log.imported").exists());
        let s = MetadataStore::open(dir.path()).unwrap();
        assert!(s.image().topic("old").is_some() && s.image().topic("new").is_some());
        assert_eq!(s.image().last_offset, 2);
    }
}
