//! The bytes between the `h2` crate and the socket: an in-memory `AsyncRead` +
//! `AsyncWrite` over two buffers, and a waker that only raises a flag.
//!
//! `h2` is a state machine behind a futures interface: polling its connection parses
//! whatever the read side holds and queues frames on the write side. Nothing here
//! blocks or waits: `poll_read` with an empty input answers `Pending` (the connection
//! manager polls again after its next socket read), `poll_write` answers `Pending`
//! once the output holds the connection's buffer limit (the client reads too slowly:
//! `h2` then stops producing frames). The waker records that `h2` wants another turn
//! (a stream handle queued a frame); the connection manager loops while it is set.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Wake, Waker};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The socket side's two buffers.
#[derive(Debug, Default)]
pub struct Buffers {
    /// Bytes read from the client, not yet taken by `h2`.
    pub input: Vec<u8>,
    pub input_pos: usize,
    /// The client closed its side: `h2` sees EOF once the input is drained.
    pub eof: bool,
    /// Frames `h2` wrote, not yet written to the socket.
    pub out: Vec<u8>,
    pub out_pos: usize,
    /// High watermark of `out`.
    pub out_limit: usize,
}

impl Buffers {
    pub fn pending_input(&self) -> &[u8] {
        &self.input[self.input_pos..]
    }

    pub fn out_len(&self) -> usize {
        self.out.len() - self.out_pos
    }
}

/// The buffers, shared between the connection manager and `h2`'s transport. One
/// worker thread touches them; the mutex is never contended (it makes the connection
/// `Send` like every other one).
#[derive(Debug, Clone, Default)]
pub struct SharedBuffers(Arc<Mutex<Buffers>>);

impl SharedBuffers {
    pub fn new(out_limit: usize) -> SharedBuffers {
        SharedBuffers(Arc::new(Mutex::new(Buffers { out_limit, ..Buffers::default() })))
    }

    pub fn lock(&self) -> MutexGuard<'_, Buffers> {
        // A poisoned lock only means a panic elsewhere on this thread; the bytes are
        // still consistent (every update is a whole append or advance).
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// `h2`'s transport.
#[derive(Debug)]
pub struct Transport(pub SharedBuffers);

impl AsyncRead for Transport {
    fn poll_read(self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let mut b = self.0.lock();
        let n = b.pending_input().len().min(buf.remaining());
        if n == 0 {
            return if b.eof { Poll::Ready(Ok(())) } else { Poll::Pending };
        }
        let start = b.input_pos;
        buf.put_slice(&b.input[start..start + n]);
        b.input_pos += n;
        if b.input_pos == b.input.len() {
            b.input.clear();
            b.input_pos = 0;
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Transport {
    fn poll_write(self: Pin<&mut Self>, _cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let mut b = self.0.lock();
        let room = b.out_limit.saturating_sub(b.out_len());
        if room == 0 {
            return Poll::Pending;
        }
        let n = room.min(data.len());
        if b.out_pos > 0 && b.out_pos * 2 >= b.out.len() {
            let pos = b.out_pos;
            b.out.drain(..pos);
            b.out_pos = 0;
        }
        b.out.extend_from_slice(&data[..n]);
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// A waker that marks the connection for another turn.
#[derive(Debug, Default)]
pub struct TurnFlag(AtomicBool);

impl TurnFlag {
    /// Whether a wake-up came since the last call (and clear it).
    pub fn take(&self) -> bool {
        self.0.swap(false, Ordering::Relaxed)
    }
}

impl Wake for TurnFlag {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::Relaxed);
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// A waker for `flag`.
pub fn waker(flag: &Arc<TurnFlag>) -> Waker {
    Waker::from(Arc::clone(flag))
}
