//! The bounded accept loop both listeners use (Kafka clients in `server`, the
//! controllers' raft transport in `raft::network`).
//!
//! A permit is taken before `accept()`, so past the limit new connections wait in
//! the kernel's backlog rather than in our memory; a failing `accept` (EMFILE and
//! friends) backs off instead of spinning.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

/// Pause after a failed `accept`.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Accept until `shutdown` turns true, at most `max_connections` served at once,
/// each by `serve` in its own task. Returns the tasks still running, for the
/// caller's drain policy (wait, or abort).
pub async fn accept_bounded<F, Fut>(listener: TcpListener, max_connections: usize, mut shutdown: watch::Receiver<bool>, mut serve: F) -> JoinSet<()>
where
    F: FnMut(TcpStream, SocketAddr) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let permits = Arc::new(Semaphore::new(max_connections));
    let mut conns = JoinSet::new();
    loop {
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => p.expect("semaphore never closed"),
            _ = shutdown.wait_for(|s| *s) => break,
        };
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.wait_for(|s| *s) => break,
        };
        match accepted {
            Ok((stream, peer)) => {
                let conn = serve(stream, peer);
                conns.spawn(async move {
                    conn.await;
                    drop(permit);
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
            }
        }
        while conns.try_join_next().is_some() {}
    }
    conns
}
