//! One client connection: frames in, frames out. It knows nothing of APIs.
//!
//! The reader decodes and dispatches requests strictly in arrival order, so every
//! side effect (an append, a topic creation) happens in request order. What a
//! request then waits for (an fsync, a fetch long-poll) is handed to the writer as
//! a pending reply; the writer awaits replies in the same order and writes them,
//! so responses leave in request order while waits overlap (pipelining). The
//! channel between the two bounds in-flight requests per connection.

use std::sync::Arc;

use parking_lot::Mutex;

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

/// Frames at least this large are read into recycled buffers (see [`MemoryPool`]);
/// smaller ones are cheap to allocate.
const RECYCLED_FRAME_MIN_BYTES: usize = 64 << 10;

/// Bytes of idle frame buffers kept for reuse, in all; a buffer given back beyond it is
/// freed. Also bounds what a burst of large requests leaves allocated afterwards.
const IDLE_BUFFERS_MAX_BYTES: usize = 32 << 20;

/// Request bytes admitted into memory, shared by every connection. A frame takes
/// its size in permits before its body is allocated and gives them back when its
/// response has been written, so slow responses throttle reading, not memory.
///
/// Large frame bodies are read into buffers that come back here when the frame's last
/// `Bytes` is dropped, and are reused: a fresh allocation of a megabyte per produce
/// request was served from newly mapped pages (glibc maps large blocks and returns
/// them when freed), and faulting those in cost the broker more CPU than the copy
/// from the socket.
pub struct MemoryPool {
    permits: Arc<Semaphore>,
    capacity_bytes: usize,
    idle: Mutex<IdleBuffers>,
}

#[derive(Default)]
struct IdleBuffers {
    buffers: Vec<Vec<u8>>,
    /// Sum of their capacities.
    bytes: usize,
}

impl MemoryPool {
    pub fn new(capacity_bytes: usize) -> MemoryPool {
        MemoryPool {
            permits: Arc::new(Semaphore::new(capacity_bytes)),
            capacity_bytes,
            idle: Mutex::new(IdleBuffers::default()),
        }
    }

    /// An empty buffer with room for `len` bytes: the smallest idle one that fits, or
    /// a new one rounded up to an eighth of `len`'s power of two (at most 12.5% over),
    /// so that the next, slightly larger request still fits it.
    fn take_buffer(&self, len: usize) -> Vec<u8> {
        let mut idle = self.idle.lock();
        let fitting = idle.buffers.iter().enumerate().filter(|(_, b)| b.capacity() >= len);
        if let Some(i) = fitting.min_by_key(|(_, b)| b.capacity()).map(|(i, _)| i) {
            let buffer = idle.buffers.swap_remove(i);
            idle.bytes -= buffer.capacity();
            return buffer;
        }
        drop(idle);
        let step = (len.next_power_of_two() / 8).max(1);
        Vec::with_capacity(len.div_ceil(step) * step)
    }

    fn give_back(&self, mut buffer: Vec<u8>) {
        let mut idle = self.idle.lock();
        if idle.bytes + buffer.capacity() <= IDLE_BUFFERS_MAX_BYTES {
            buffer.clear();
            idle.bytes += buffer.capacity();
            idle.buffers.push(buffer);
        }
    }

    #[cfg(test)]
    fn idle_bytes(&self) -> usize {
        self.idle.lock().bytes
    }
}

/// A frame body in a recycled buffer: back to its pool when the last `Bytes` viewing
/// it (the frame, or a record set sliced from it) is dropped.
struct RecycledFrame {
    buffer: Vec<u8>,
    pool: Arc<MemoryPool>,
}

impl AsRef<[u8]> for RecycledFrame {
    fn as_ref(&self) -> &[u8] {
        &self.buffer
    }
}

impl Drop for RecycledFrame {
    fn drop(&mut self) {
        self.pool.give_back(std::mem::take(&mut self.buffer));
    }
}

/// Read one size-prefixed frame. `Ok(None)` is a clean end of stream between frames.
/// The length is checked against `max_bytes`, and memory for it reserved from the
/// pool, before anything is allocated for it.
pub async fn read_frame(
    stream: &mut (impl AsyncReadExt + Unpin),
    max_bytes: usize,
    pool: &Arc<MemoryPool>,
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
    let len = len as usize;
    if len > max_bytes {
        return Err(FrameError::TooLarge { size: len as i64, max: max_bytes });
    }
    if len > pool.capacity_bytes {
        return Err(FrameError::OverMemoryPool { size: len, max: pool.capacity_bytes });
    }
    // At least one permit even for an empty frame, so every frame is accounted for.
    let permit = pool.permits.clone().acquire_many_owned((len as u32).max(1)).await.expect("pool never closed");
    if len < RECYCLED_FRAME_MIN_BYTES {
        let mut body = BytesMut::zeroed(len);
        stream.read_exact(&mut body).await?;
        return Ok(Some((body.freeze(), permit)));
    }
    let mut buffer = pool.take_buffer(len);
    // Into the spare capacity: nothing to zero first, as every byte is read over.
    let mut body = (&mut *stream).take(len as u64);
    while buffer.len() < len {
        if body.read_buf(&mut buffer).await? == 0 {
            return Err(FrameError::Io(std::io::ErrorKind::UnexpectedEof.into()));
        }
    }
    debug_assert_eq!(buffer.len(), len);
    Ok(Some((Bytes::from_owner(RecycledFrame { buffer, pool: pool.clone() }), permit)))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(body: &[u8]) -> Vec<u8> {
        let mut out = (body.len() as i32).to_be_bytes().to_vec();
        out.extend_from_slice(body);
        out
    }

    #[tokio::test]
    async fn large_frames_reuse_their_buffer_once_dropped() {
        let pool = Arc::new(MemoryPool::new(16 << 20));
        let a: Vec<u8> = (0..300_000u32).map(|i| i as u8).collect();
        let b = vec![7u8; 290_000];
        let mut wire = framed(&a);
        wire.extend(framed(&b));
        wire.extend(framed(b"small"));
        let mut stream = &wire[..];

        let (first, permit) = read_frame(&mut stream, 1 << 20, &pool).await.unwrap().unwrap();
        assert_eq!(&first[..], &a[..]);
        let at = first.as_ptr();
        let records = first.slice(1_000..2_000); // a record set sliced from the frame
        drop(first);
        drop(permit);
        assert_eq!(pool.idle_bytes(), 0, "a slice still views the buffer");
        drop(records);
        assert!(pool.idle_bytes() >= a.len(), "the last view gave it back");

        let (second, _permit) = read_frame(&mut stream, 1 << 20, &pool).await.unwrap().unwrap();
        assert_eq!(&second[..], &b[..], "all of it read over the old bytes");
        assert_eq!(second.as_ptr(), at, "the smaller frame reused the buffer");
        assert_eq!(pool.idle_bytes(), 0);

        let (third, _permit) = read_frame(&mut stream, 1 << 20, &pool).await.unwrap().unwrap();
        assert_eq!(&third[..], b"small");
        assert!(read_frame(&mut stream, 1 << 20, &pool).await.unwrap().is_none(), "clean end");
    }

    #[tokio::test]
    async fn a_frame_cut_short_is_an_error_and_idle_buffers_are_bounded() {
        let pool = Arc::new(MemoryPool::new(64 << 20));
        let mut wire = framed(&vec![1u8; 100_000]);
        wire.truncate(50_000);
        let mut stream = &wire[..];
        assert!(matches!(read_frame(&mut stream, 1 << 20, &pool).await, Err(FrameError::Io(_))));

        let held: Vec<_> = (0..6).map(|_| pool.take_buffer(8 << 20)).collect();
        assert!(held.iter().all(|b| b.capacity() >= 8 << 20 && b.capacity() <= 9 << 20));
        for b in held {
            pool.give_back(b);
        }
        assert!(pool.idle_bytes() <= IDLE_BUFFERS_MAX_BYTES, "{}", pool.idle_bytes());
        assert!(pool.idle_bytes() >= 3 * (8 << 20));
    }
}
