//! One upstream HTTP/2 connection (Envoy's `CodecClient` over the HTTP/2 client
//! codec): many streams multiplexed on one socket, owned by the worker's pool.
//!
//! **Why it fits a share-nothing readiness loop.** The `h2` crate's client is a state
//! machine behind futures; like the downstream codec (`conn_manager/http2`) it is
//! polled from the worker's loop with the same in-memory transport (`http2/io.rs`):
//! socket bytes read on a readiness event are appended to the input, the connection
//! future is polled until it makes no more progress, and the frames it queued are
//! written to the socket, over either stack backend and TLS. Streams hold `h2`'s
//! per-stream handles (`router/upstream_h2.rs`); polling a handle never touches the
//! socket, so a stream that queued a frame asks for a [`Http2Client::turn`]. No
//! runtime, thread or lock crosses workers: the connection lives in one worker's
//! pool slot for its whole life.
//!
//! Capacity: a connection takes new streams while it is open, not draining (GOAWAY
//! received or sent) and under both the peer's SETTINGS_MAX_CONCURRENT_STREAMS and the
//! cluster's `max_concurrent_streams`; `max_requests_per_connection` streams in all,
//! and never more than 2^29 (Envoy's `DEFAULT_MAX_STREAMS`: client stream IDs are odd
//! and end at 2^31-1, so a connection is drained well before its IDs run out and the
//! pool opens a new one).
//!
//! **`auto_config`** (Envoy's mixed pool, `HttpConnPoolImplMixed`): a connection opened
//! without knowing the protocol first completes its TLS handshake, offering ALPN; it
//! takes one stream meanwhile. When the origin picked `h2` the HTTP/2 handshake starts
//! and the connection takes as many streams as the limits allow; otherwise (`http/1.1`
//! or no ALPN) it is HTTP/1.1: its one stream's router takes the socket and its TLS
//! session over as an HTTP/1.1 connection ([`Http2Client::take_transport`]).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use bytes::Bytes;
use h2::client::{Connection, SendRequest};
use sluice_config::hcm::Http2ProtocolOptions;
use sluice_stack::{SocketId, Stack};

use crate::http::conn_manager::http2::io::{self as h2io, SharedBuffers, Transport, TurnFlag};
use crate::timer::TimerKey;
use crate::transport::TransportSocket;
use crate::upstream::host::Host;

/// Polls of the connection future per turn before yielding.
const POLL_BUDGET: usize = 32;
/// Streams one connection carries at most (Envoy's `DEFAULT_MAX_STREAMS`): then it
/// drains, before its stream IDs (odd, up to 2^31-1) run out.
pub const MAX_STREAMS_PER_CONNECTION: u32 = 1 << 29;
/// Socket bytes read per turn at most (the rest waits for the next turn).
const READ_BUDGET: usize = 1 << 20;

type Handshake =
    Pin<Box<dyn Future<Output = Result<(SendRequest<Bytes>, Connection<Transport, Bytes>), h2::Error>> + Send>>;

enum State {
    /// `auto_config`: the TLS handshake and its ALPN choice come first.
    Negotiating(Box<h2::client::Builder>),
    /// `auto_config` and the origin did not pick `h2`: an HTTP/1.1 connection.
    Http1,
    Handshaking(Handshake),
    Open {
        send: SendRequest<Bytes>,
        conn: Box<Connection<Transport, Bytes>>,
    },
    Closed,
}

/// What a [`Http2Client::turn`] saw.
#[derive(Debug, Default, Clone, Copy)]
pub struct Turn {
    /// Bytes arrived (streams may have news).
    pub read: bool,
    /// The connection ended (either side, or an error): its streams fail.
    pub closed: bool,
    /// `auto_config`: the origin picked `h2` in this turn.
    pub negotiated_h2: bool,
}

pub struct Http2Client {
    pub socket: SocketId,
    pub host: Arc<Host>,
    pub host_index: usize,
    pub cluster: usize,
    /// The TCP connect completed.
    pub connected: bool,
    pub transport: TransportSocket,
    bufs: SharedBuffers,
    flag: Arc<TurnFlag>,
    waker: Waker,
    state: State,
    /// The downstream connection of each open stream (one entry per stream).
    pub owners: Vec<TimerKey>,
    /// Streams started on this connection.
    pub requests: u32,
    /// The cluster's `max_concurrent_streams`.
    max_streams: u32,
    max_requests: Option<u32>,
    /// No new streams: GOAWAY, a failure, or `max_requests_per_connection` reached.
    pub draining: bool,
    pub readable: bool,
    pub dead: bool,
    read_eof: bool,
    closed: bool,
    pub idle_since: Instant,
    pub timer_at: Option<Instant>,
    /// The connect (TCP and TLS) must finish by then.
    pub connect_deadline: Instant,
}

impl std::fmt::Debug for Http2Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Http2Client").field("host", &self.host.address).field("streams", &self.owners.len()).finish()
    }
}

/// The `h2` client builder for a cluster's HTTP/2 options.
pub fn builder(o: &Http2ProtocolOptions) -> h2::client::Builder {
    let mut b = h2::client::Builder::new();
    b.initial_window_size(o.initial_stream_window_size)
        .initial_connection_window_size(o.initial_connection_window_size)
        .header_table_size(o.hpack_table_size)
        .enable_push(false)
        .max_header_list_size(80 * 1024);
    b
}

impl Http2Client {
    /// A connection being established on `socket`; the preface and SETTINGS wait in
    /// its output until the connect completes. With `alpn_auto` (`auto_config`, TLS
    /// only) the HTTP/2 handshake waits for the origin's ALPN choice.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        socket: SocketId,
        host: Arc<Host>,
        host_index: usize,
        cluster: usize,
        builder: &h2::client::Builder,
        opts: (u32, Option<u32>),
        out_limit: usize,
        alpn_auto: bool,
        now: Instant,
        connect_deadline: Instant,
    ) -> Http2Client {
        let bufs = SharedBuffers::new(out_limit.max(64 * 1024));
        let flag = Arc::new(TurnFlag::default());
        let waker = h2io::waker(&flag);
        let state = if alpn_auto {
            State::Negotiating(Box::new(builder.clone()))
        } else {
            State::Handshaking(Box::pin(builder.handshake::<Transport, Bytes>(Transport(bufs.clone()))))
        };
        Http2Client {
            socket,
            host,
            host_index,
            cluster,
            connected: false,
            transport: TransportSocket::Raw,
            bufs,
            flag,
            waker,
            state,
            owners: Vec::new(),
            requests: 0,
            max_streams: opts.0,
            max_requests: Some(opts.1.map_or(MAX_STREAMS_PER_CONNECTION, |m| m.min(MAX_STREAMS_PER_CONNECTION))),
            draining: false,
            readable: false,
            dead: false,
            read_eof: false,
            closed: false,
            idle_since: now,
            timer_at: None,
            connect_deadline,
        }
    }

    /// Whether a new stream may start here now.
    pub fn has_capacity(&self) -> bool {
        if matches!(self.state, State::Negotiating(_)) {
            // Envoy's mixed pool: one stream until ALPN tells the protocol.
            return !self.dead && !self.draining && self.owners.is_empty();
        }
        let State::Open { send, .. } = &self.state else {
            // Streams wait for the handshake on the connection being established.
            return !self.dead && !self.draining && (self.owners.len() as u32) < self.max_streams.min(100);
        };
        let peer = send.current_max_send_streams().min(u32::MAX as usize) as u32;
        !self.dead
            && !self.draining
            && (self.owners.len() as u32) < self.max_streams.min(peer)
            && self.max_requests.is_none_or(|m| self.requests < m)
    }

    /// Whether the handshake completed (requests can be sent).
    pub fn is_open(&self) -> bool {
        matches!(self.state, State::Open { .. })
    }

    /// `auto_config`: the origin did not pick `h2`; the connection speaks HTTP/1.1.
    pub fn negotiated_http1(&self) -> bool {
        matches!(self.state, State::Http1)
    }

    /// Hand the established TLS session over (to the HTTP/1.1 connection that replaces
    /// this one after ALPN picked HTTP/1.1); this connection is left closed without
    /// closing its socket.
    pub fn take_transport(&mut self) -> TransportSocket {
        self.closed = true;
        self.dead = true;
        self.state = State::Closed;
        std::mem::replace(&mut self.transport, TransportSocket::Raw)
    }

    /// A handle to start a stream, once the connection is open and ready for one.
    pub fn ready_sender(&mut self) -> Option<&mut SendRequest<Bytes>> {
        let mut cx = Context::from_waker(&self.waker);
        match &mut self.state {
            State::Open { send, .. } => match send.poll_ready(&mut cx) {
                Poll::Ready(Ok(())) => Some(send),
                Poll::Ready(Err(_)) => {
                    self.draining = true;
                    None
                }
                Poll::Pending => None,
            },
            _ => None,
        }
    }

    /// A stream started for `owner`.
    pub fn add_stream(&mut self, owner: TimerKey) {
        self.owners.push(owner);
        self.requests += 1;
        if self.max_requests.is_some_and(|m| self.requests >= m) {
            self.draining = true;
        }
    }

    /// A stream of `owner` ended.
    pub fn remove_stream(&mut self, owner: TimerKey, now: Instant) {
        if let Some(i) = self.owners.iter().position(|o| *o == owner) {
            self.owners.swap_remove(i);
        }
        if self.owners.is_empty() {
            self.idle_since = now;
        }
    }

    /// Read what the socket has, let `h2` process it and write what it queued. Only
    /// after the connect completed.
    pub fn turn<S: Stack>(&mut self, stack: &mut S, scratch: &mut [u8]) -> Turn {
        let mut t = Turn::default();
        if !self.connected || self.closed {
            t.closed = self.closed || self.dead;
            return t;
        }
        let mut total = 0;
        while self.readable && !self.dead && !self.read_eof && total < READ_BUDGET {
            match self.transport.read(stack, self.socket, scratch) {
                Ok(0) => self.read_eof = true,
                Ok(n) => {
                    self.bufs.lock().input.extend_from_slice(&scratch[..n]);
                    total += n;
                    t.read = true;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.readable = false,
                Err(_) => self.dead = true,
            }
        }
        if self.read_eof || self.dead {
            self.bufs.lock().eof = true;
        }
        if let State::Negotiating(_) = self.state {
            self.flush(stack);
            if self.transport.established() && !self.dead {
                let State::Negotiating(builder) = std::mem::replace(&mut self.state, State::Http1) else {
                    unreachable!("matched Negotiating above")
                };
                if self.transport.alpn() == Some(b"h2") {
                    let handshake = builder.handshake::<Transport, Bytes>(Transport(self.bufs.clone()));
                    self.state = State::Handshaking(Box::pin(handshake));
                    t.negotiated_h2 = true;
                } else {
                    // HTTP/1.1 (picked, or no ALPN: an old TLS stack). No HTTP/2 streams.
                    self.draining = true;
                    t.read = true;
                }
            }
        }
        for _ in 0..POLL_BUDGET {
            let polled = self.poll_h2();
            let wrote = self.flush(stack);
            if !(polled || wrote) {
                break;
            }
        }
        if let State::Open { send, .. } = &mut self.state {
            // A GOAWAY received: the connection takes no new streams.
            let mut cx = Context::from_waker(&self.waker);
            if let Poll::Ready(Err(_)) = send.poll_ready(&mut cx) {
                self.draining = true;
            }
        }
        if matches!(self.state, State::Closed) || self.dead {
            self.draining = true;
            t.closed = true;
        }
        t
    }

    /// Poll the handshake or the connection once; whether to go on.
    fn poll_h2(&mut self) -> bool {
        let mut cx = Context::from_waker(&self.waker);
        self.flag.take();
        match &mut self.state {
            State::Handshaking(h) => match h.as_mut().poll(&mut cx) {
                Poll::Ready(Ok((send, conn))) => {
                    self.state = State::Open { send, conn: Box::new(conn) };
                    true
                }
                Poll::Ready(Err(e)) => {
                    tracing::debug!("upstream HTTP/2 handshake failed: {e}");
                    self.state = State::Closed;
                    false
                }
                Poll::Pending => self.flag.take(),
            },
            State::Open { conn, .. } => match conn.as_mut().poll_unpin_ready(&mut cx) {
                Poll::Ready(result) => {
                    if let Err(e) = result {
                        tracing::debug!("upstream HTTP/2 connection ended: {e}");
                    }
                    self.state = State::Closed;
                    false
                }
                Poll::Pending => self.flag.take(),
            },
            State::Closed | State::Negotiating(_) | State::Http1 => false,
        }
    }

    /// Write queued frames to the socket; whether anything left.
    fn flush<S: Stack>(&mut self, stack: &mut S) -> bool {
        let mut wrote = false;
        loop {
            let mut b = self.bufs.lock();
            if b.out_len() == 0 || self.dead {
                break;
            }
            let start = b.out_pos;
            match self.transport.write(stack, self.socket, &b.out[start..]) {
                Ok(0) => break,
                Ok(n) => {
                    b.out_pos += n;
                    if b.out_pos == b.out.len() {
                        b.out.clear();
                        b.out_pos = 0;
                    }
                    wrote = true;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => self.dead = true,
            }
        }
        if !self.dead && self.transport.flush(stack, self.socket).is_err() {
            self.dead = true;
        }
        wrote
    }

    /// Start the graceful close: no new streams.
    pub fn drain(&mut self) {
        self.draining = true;
    }

    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Close the socket (reset when `abort`); open streams' handles fail.
    pub fn close<S: Stack>(&mut self, stack: &mut S, abort: bool) {
        if self.closed {
            return;
        }
        self.closed = true;
        self.state = State::Closed;
        if abort {
            stack.abort(self.socket);
        } else {
            stack.close(self.socket);
        }
        self.dead = true;
    }
}

trait ConnPoll {
    fn poll_unpin_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), h2::Error>>;
}

impl ConnPoll for Connection<Transport, Bytes> {
    fn poll_unpin_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), h2::Error>> {
        Pin::new(self).poll(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timer::TimerKey;

    fn client(max_requests: Option<u32>) -> Http2Client {
        let socket = sluice_stack::socket::SocketTable::<()>::default().insert(());
        let host = Arc::new(Host::new(std::net::SocketAddr::from(([127, 0, 0, 1], 1)), String::new(), 1, 0, None));
        let now = Instant::now();
        let b = builder(&Http2ProtocolOptions::default());
        Http2Client::new(socket, host, 0, 0, &b, (100, max_requests), 1 << 16, false, now, now)
    }

    #[test]
    fn a_connection_drains_before_its_stream_ids_run_out() {
        let mut c = client(None);
        let owner = TimerKey { index: 1, generation: 0 };
        c.requests = MAX_STREAMS_PER_CONNECTION - 2;
        c.add_stream(owner);
        c.remove_stream(owner, Instant::now());
        assert!(!c.draining && c.has_capacity(), "2^29 - 1 streams started: one more fits");
        c.add_stream(owner);
        assert!(c.draining, "the 2^29th stream drains the connection");
        c.remove_stream(owner, Instant::now());
        assert!(!c.has_capacity(), "no stream is started on it any more");
        // A larger max_requests_per_connection is capped the same way.
        let mut c = client(Some(u32::MAX));
        c.requests = MAX_STREAMS_PER_CONNECTION - 1;
        c.add_stream(owner);
        assert!(c.draining);
        // A smaller one stays as configured.
        let mut c = client(Some(2));
        c.add_stream(owner);
        assert!(!c.draining);
        c.add_stream(owner);
        assert!(c.draining);
    }
}
