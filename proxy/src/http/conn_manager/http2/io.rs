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
    /// The GOAWAY frames among what `h2` wrote (why it ended the connection).
    pub goaway: super::flood::GoawayWatch,
    /// The client's frames, for the flood checks `h2` does not make.
    pub inbound: super::flood::InboundWatch,
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
        b.goaway.feed(&data[..n]);
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

    /// Ask for another turn.
    pub fn raise(&self) {
        self.0.store(true, Ordering::Relaxed);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn poll_read(t: &mut Transport, n: usize) -> Poll<io::Result<Vec<u8>>> {
        let flag = Arc::new(TurnFlag::default());
        let w = waker(&flag);
        let mut cx = Context::from_waker(&w);
        let mut storage = vec![0u8; n];
        let mut buf = ReadBuf::new(&mut storage);
        match Pin::new(t).poll_read(&mut cx, &mut buf) {
            Poll::Ready(Ok(())) => Poll::Ready(Ok(buf.filled().to_vec())),
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }

    #[test]
    fn reads_pend_when_empty_and_end_at_eof() {
        let bufs = SharedBuffers::new(8);
        let mut t = Transport(bufs.clone());
        assert!(poll_read(&mut t, 4).is_pending());
        bufs.lock().input.extend_from_slice(b"abcdef");
        assert!(matches!(poll_read(&mut t, 4), Poll::Ready(Ok(v)) if v == b"abcd"));
        assert!(matches!(poll_read(&mut t, 4), Poll::Ready(Ok(v)) if v == b"ef"));
        assert!(bufs.lock().input.is_empty(), "a drained input is reset");
        bufs.lock().eof = true;
        assert!(matches!(poll_read(&mut t, 4), Poll::Ready(Ok(v)) if v.is_empty()));
    }

    #[test]
    fn writes_stop_at_the_output_limit() {
        let bufs = SharedBuffers::new(8);
        let mut t = Transport(bufs.clone());
        let flag = Arc::new(TurnFlag::default());
        let w = waker(&flag);
        let mut cx = Context::from_waker(&w);
        assert!(matches!(Pin::new(&mut t).poll_write(&mut cx, b"0123456789"), Poll::Ready(Ok(8))));
        assert!(Pin::new(&mut t).poll_write(&mut cx, b"x").is_pending());
        bufs.lock().out_pos = 6;
        assert!(matches!(Pin::new(&mut t).poll_write(&mut cx, b"xyz"), Poll::Ready(Ok(3))));
        let b = bufs.lock();
        assert_eq!(&b.out[b.out_pos..], b"67xyz");
    }

    #[test]
    fn the_waker_raises_the_flag_once() {
        let flag = Arc::new(TurnFlag::default());
        waker(&flag).wake_by_ref();
        assert!(flag.take());
        assert!(!flag.take());
    }
}
