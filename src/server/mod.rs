//! Listener, connection limits and the one shutdown path.
//!
//! At most `connections_max` connections are served at once (`accept`): a flood
//! waits in the kernel backlog instead of in our memory.
//! Shutdown: one watch signal; stop accepting, let connections finish what they
//! have read, then fsync and close every log.
//!
//! As a Kafka broker does (it enables request processing only once the controller
//! has unfenced it), the listener is bound at once but clients are accepted only
//! when this process's own registration is live in the metadata image. Until then
//! connections wait in the backlog: a restarted node whose image still shows its
//! previous incarnation as live must not be taken as back in the cluster (topics
//! created through it would find it fenced). A single-voter broker registers before
//! it listens, so it serves at once.

pub mod accept;
pub mod connection;
pub mod dispatch;
pub mod frame;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::broker::Broker;

/// How long in-flight requests get to finish after shutdown is signalled.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Server {
    pub local_addr: SocketAddr,
    shutdown_tx: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    broker: Arc<Broker>,
}

impl Server {
    pub async fn start(broker: Arc<Broker>) -> std::io::Result<Server> {
        let listener = TcpListener::bind(broker.config.listen).await?;
        let local_addr = listener.local_addr()?;
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        crate::replication::ReplicaManager::start(&broker);
        let task = tokio::spawn(accept_loop(broker.clone(), listener, shutdown_rx));
        Ok(Server { local_addr, shutdown_tx, task, broker })
    }

    /// Stop accepting, drain connections, close the logs (fsync), stop the metadata quorum.
    pub async fn shutdown(self) -> Result<(), crate::log::Error> {
        let _ = self.shutdown_tx.send(true);
        // Followers stop fetching: nothing more is appended once the logs close.
        self.broker.replicas.stop();
        // Waiting JoinGroup/SyncGroup answers would otherwise hold their connections.
        self.broker.groups.shutdown();
        let started = std::time::Instant::now();
        let _ = self.task.await;
        tracing::info!(elapsed_ms = started.elapsed().as_millis() as u64, "connections drained");
        let logs = self.broker.logs.clone();
        let closed = tokio::task::spawn_blocking(move || logs.close()).await.expect("close task does not panic");
        tracing::info!(elapsed_ms = started.elapsed().as_millis() as u64, "logs closed");
        // Last: the raft transport and openraft (a leader steps away with its log fsync'd).
        self.broker.metadata.shutdown().await;
        closed
    }
}

/// How often a broker still waiting to be unfenced says so.
const UNFENCE_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Wait until this broker is registered and unfenced; false if shutdown came first.
async fn wait_unfenced(broker: &Broker, shutdown: &mut watch::Receiver<bool>) -> bool {
    loop {
        tokio::select! {
            live = broker.membership.wait_live(&broker.metadata, UNFENCE_LOG_INTERVAL) => {
                if live {
                    return true;
                }
                tracing::info!(broker = broker.config.node_id, "waiting for the metadata quorum to unfence this broker before serving clients");
            }
            _ = shutdown.wait_for(|s| *s) => return false,
        }
    }
}

async fn accept_loop(broker: Arc<Broker>, listener: TcpListener, mut shutdown: watch::Receiver<bool>) {
    if !wait_unfenced(&broker, &mut shutdown).await {
        return;
    }
    let pool = Arc::new(connection::MemoryPool::new(broker.config.queued_bytes_max));
    let rx = shutdown.clone();
    let mut conns = accept::accept_bounded(listener, broker.config.connections_max, shutdown, |stream, _| {
        connection::serve(broker.clone(), pool.clone(), stream, rx.clone())
    })
    .await;
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, async { while conns.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::warn!("connections still busy after drain timeout; aborting them");
        conns.abort_all();
    }
}
