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
use tokio::io::Interest;
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};

use crate::broker::Broker;
use crate::server::dispatch::{self, Reply};
use crate::log::FileSlice;
use crate::server::frame::{Chunk, Frame};

/// Bytes per `sendfile` call, so one large record set does not hold the socket's
/// readiness loop for long.
const SENDFILE_MAX_BYTES: usize = 8 << 20;

/// iovecs per `writev` (the kernel's IOV_MAX is 1024).
const MAX_IOVECS: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error("frame of {size} bytes is over socket.request.max.bytes ({max})")]
    TooLarge { size: i64, max: usize },
    #[error("negative frame length {0}")]
    Negative(i32),
    #[error("frame of {size} bytes is over queued.max.request.bytes ({max})")]
    OverMemoryPool { size: usize, max: usize },
}

/// Request bytes admitted into memory, shared by every connection. A frame takes
/// its size in permits before its body is allocated and gives them back when its
/// response has been written, so slow responses throttle reading, not memory.
pub struct MemoryPool {
    permits: Arc<Semaphore>,
    capacity_bytes: usize,
}

impl MemoryPool {
    pub fn new(capacity_bytes: usize) -> MemoryPool {
        MemoryPool { permits: Arc::new(Semaphore::new(capacity_bytes)), capacity_bytes }
    }
}

/// Read one size-prefixed frame. `Ok(None)` is a clean end of stream between frames.
/// The length is checked against `max_bytes`, and memory for it reserved from the
/// pool, before anything is allocated for it.
pub async fn read_frame(
    stream: &mut (impl AsyncReadExt + Unpin),
    max_bytes: usize,
    pool: &MemoryPool,
) -> Result<Option<(Bytes, OwnedSemaphorePermit)>, FrameError> {
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
    if len as usize > pool.capacity_bytes {
        return Err(FrameError::OverMemoryPool { size: len as usize, max: pool.capacity_bytes });
    }
    // At least one permit even for an empty frame, so every frame is accounted for.
    let permit = pool.permits.clone().acquire_many_owned((len as u32).max(1)).await.expect("pool never closed");
    let mut body = BytesMut::zeroed(len as usize);
    stream.read_exact(&mut body).await?;
    Ok(Some((body.freeze(), permit)))
}

pub async fn serve(broker: Arc<Broker>, pool: Arc<MemoryPool>, stream: TcpStream, mut shutdown: watch::Receiver<bool>) {
    let peer = stream.peer_addr().ok();
    let _ = stream.set_nodelay(true);
    let (mut rd, wr) = stream.into_split();
    let (tx, rx) = mpsc::channel::<(Reply, OwnedSemaphorePermit)>(broker.config.inflight_requests_max);
    let writer = tokio::spawn(write_replies(wr, rx));
    let max_bytes = broker.config.socket_request_max_bytes;
    loop {
        let frame = tokio::select! {
            f = read_frame(&mut rd, max_bytes, &pool) => f,
            _ = shutdown.wait_for(|s| *s) => break,
        };
        let (frame, permit) = match frame {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => {
                tracing::warn!(?peer, error = %e, "closing connection");
                break;
            }
        };
        match dispatch::dispatch_from(&broker, frame, peer).await {
            Ok(Reply::NoResponse) => {}
            Ok(reply) => {
                if tx.send((reply, permit)).await.is_err() {
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

async fn write_replies(wr: tokio::net::tcp::OwnedWriteHalf, mut rx: mpsc::Receiver<(Reply, OwnedSemaphorePermit)>) {
    let mut out = BufWriter::with_capacity(64 * 1024, wr);
    // The permit lives until the reply is written: the request's memory is released
    // only once nothing of it can still be needed.
    while let Some((reply, _permit)) = rx.recv().await {
        let frame = match reply {
            Reply::Now(b) => Frame::One(b),
            Reply::Later(fut) => match fut.await {
                Some(f) => f,
                None => return,
            },
            Reply::NoResponse => continue,
        };
        let written = match frame {
            Frame::One(bytes) => write_chunks(&mut out, bytes).await,
            Frame::Chunks(chunks) => write_frame_chunks(&mut out, chunks).await,
        };
        if written.is_err() {
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

/// Writes the chunks of one frame: runs of buffers with `writev`, file ranges with
/// `sendfile` once what is buffered before them has been flushed.
async fn write_frame_chunks(out: &mut BufWriter<tokio::net::tcp::OwnedWriteHalf>, chunks: Vec<Chunk>) -> std::io::Result<()> {
    let mut run = Vec::new();
    for chunk in chunks {
        match chunk {
            Chunk::Bytes(b) => run.push(b),
            Chunk::File(f) => {
                if !run.is_empty() {
                    write_vectored(out, std::mem::take(&mut run)).await?;
                }
                out.flush().await?;
                send_file(out, &f).await?;
            }
        }
    }
    if !run.is_empty() {
        write_vectored(out, run).await?;
    }
    Ok(())
}

/// Sends a file range to the socket with `sendfile(2)`: the kernel copies from the page
/// cache to the socket, and the first bytes leave at once. Falls back to `pread` and
/// `write` where the kernel cannot sendfile between these two. A file cut shorter than
/// the range (a truncation since the fetch read it) is an error: the frame's length is
/// already promised, so the connection must close.
async fn send_file(out: &mut BufWriter<tokio::net::tcp::OwnedWriteHalf>, f: &FileSlice) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let mut offset = f.position_bytes() as libc::off_t;
    let end = offset + f.len() as libc::off_t;
    while offset < end {
        let stream: &TcpStream = out.get_ref().as_ref();
        stream.writable().await?;
        let want = ((end - offset) as usize).min(SENDFILE_MAX_BYTES);
        let sent = stream.try_io(Interest::WRITABLE, || {
            // SAFETY: both descriptors are open for the call (the stream and the Arc'd
            // file are borrowed), and `offset` is a valid off_t the kernel updates.
            let n = unsafe { libc::sendfile(stream.as_raw_fd(), f.file().as_raw_fd(), &mut offset, want) };
            if n < 0 { Err(std::io::Error::last_os_error()) } else { Ok(n as usize) }
        });
        match sent {
            Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(_) => {}
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted) => {}
            Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOSYS | libc::EOPNOTSUPP)) => {
                let rest = f.read_tail(offset as u64 - f.position_bytes())?;
                return out.write_all(&rest).await;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Writes the chunks of one frame with `writev`, straight to the socket when they are
/// larger than the buffer (tokio's BufWriter flushes what it holds first, so order is
/// kept), so record sets read from the log are not copied again on the way out.
async fn write_vectored(out: &mut BufWriter<tokio::net::tcp::OwnedWriteHalf>, mut chunks: Vec<Bytes>) -> std::io::Result<()> {
    let mut first = 0;
    while first < chunks.len() {
        let mut n = {
            let slices: Vec<std::io::IoSlice<'_>> = chunks[first..].iter().take(MAX_IOVECS).map(|c| std::io::IoSlice::new(c)).collect();
            out.write_vectored(&slices).await?
        };
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        while n > 0 {
            let c = &mut chunks[first];
            if n >= c.len() {
                n -= c.len();
                first += 1;
            } else {
                c.advance(n);
                n = 0;
            }
        }
    }
    Ok(())
}

async fn write_chunks(out: &mut BufWriter<tokio::net::tcp::OwnedWriteHalf>, mut bytes: Bytes) -> std::io::Result<()> {
    while bytes.has_remaining() {
        let n = out.write(&bytes).await?;
        bytes.advance(n);
    }
    Ok(())
}
