//! One client connection: frames in, frames out. It knows nothing of APIs.
//!
//! The reader decodes and dispatches requests strictly in arrival order, so every
//! side effect (an append, a topic creation) happens in request order. What a
//! request then waits for (an fsync, a fetch long-poll) is handed to the writer as
//! a pending reply; the writer awaits replies in the same order and writes them,
//! so responses leave in request order while waits overlap (pipelining). The
//! channel between the two bounds in-flight requests per connection.

use std::sync::Arc;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};

use crate::broker::Broker;
use crate::server::dispatch::{self, Reply};

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error("frame of {size} bytes is over socket.request.max.bytes ({max})")]
    TooLarge { size: i64, max: usize },
    #[error("negative frame length {0}")]
    Negative(i32),
}

/// Read one size-prefixed frame. `Ok(None)` is a clean end of stream between frames.
/// The length is checked against `max_bytes` before anything is allocated for it.
pub async fn read_frame(stream: &mut (impl AsyncReadExt + Unpin), max_bytes: usize) -> Result<Option<Bytes>, FrameError> {
    let mut len_buf = [0u8; 4];
    match stream.read_exact(&mut len_buf).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let len = i32::from_be_bytes(len_buf);
    if len < 0 {
        return Err(FrameError::Negative(len));
    }
    if len as usize > max_bytes {
        return Err(FrameError::TooLarge { size: len as i64, max: max_bytes });
    }
    let mut body = BytesMut::zeroed(len as usize);
    stream.read_exact(&mut body).await?;
    Ok(Some(body.freeze()))
}

pub async fn serve(broker: Arc<Broker>, stream: TcpStream, mut shutdown: watch::Receiver<bool>) {
    let peer = stream.peer_addr().ok();
    let _ = stream.set_nodelay(true);
    let (mut rd, wr) = stream.into_split();
    let (tx, rx) = mpsc::channel::<Reply>(broker.config.inflight_requests_max);
    let writer = tokio::spawn(write_replies(wr, rx));
    let max_bytes = broker.config.socket_request_max_bytes;
    loop {
        let frame = tokio::select! {
            f = read_frame(&mut rd, max_bytes) => f,
            _ = shutdown.wait_for(|s| *s) => break,
        };
        let frame = match frame {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => {
                tracing::warn!(?peer, error = %e, "closing connection");
                break;
            }
        };
        match dispatch::dispatch(&broker, frame).await {
            Ok(Reply::NoResponse) => {}
            Ok(reply) => {
                if tx.send(reply).await.is_err() {
                    break; // writer gone: the peer stopped reading
                }
            }
            Err(e) => {
                tracing::warn!(?peer, error = %e, "bad request; closing connection");
                break;
            }
        }
    }
    // Dropping the sender lets the writer finish what is in flight, then stop.
    drop(tx);
    let _ = writer.await;
}

async fn write_replies(wr: tokio::net::tcp::OwnedWriteHalf, mut rx: mpsc::Receiver<Reply>) {
    let mut out = BufWriter::with_capacity(64 * 1024, wr);
    while let Some(reply) = rx.recv().await {
        let bytes = match reply {
            Reply::Now(b) => b,
            Reply::Later(fut) => match fut.await {
                Some(b) => b,
                None => return,
            },
            Reply::NoResponse => continue,
        };
        if write_chunks(&mut out, bytes).await.is_err() {
            return;
        }
        // Batch socket writes: flush only when no further reply is already queued.
        if rx.is_empty() && out.flush().await.is_err() {
            return;
        }
    }
    let _ = out.flush().await;
    let _ = out.shutdown().await;
}

async fn write_chunks(out: &mut BufWriter<tokio::net::tcp::OwnedWriteHalf>, mut bytes: Bytes) -> std::io::Result<()> {
    while bytes.has_remaining() {
        let n = out.write(&bytes).await?;
        bytes.advance(n);
    }
    Ok(())
}
