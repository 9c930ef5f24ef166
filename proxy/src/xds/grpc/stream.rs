//! The ADS stream: one HTTP/2 connection to the control plane carrying one gRPC
//! bidirectional stream (`StreamAggregatedResources` or `DeltaAggregatedResources`),
//! run on a dedicated `sluice-xds` thread with its own small readiness loop.
//!
//! **Why a thread of its own, over a kernel socket.** The control plane lives on the
//! management network, not on the ports the datapath serves: in xdp mode the workers'
//! stacks own only the steered traffic, and the main thread must stay free for
//! signals and the admin server. So the stream uses an ordinary kernel socket (mio)
//! on this thread, with the `h2` crate driven the way the workers drive it (the
//! in-memory transport of `http2/io.rs`: socket bytes in, frames out, no runtime).
//! The thread only moves messages: requests from the main thread are framed and sent;
//! responses are decoded ([`super::proto`]) and handed to the main thread, which
//! validates, applies and answers with the ACK or NACK to send. No config state lives
//! here.
//!
//! A stream that ends (connect refused, reset, GOAWAY, `grpc-status`) is reopened
//! after a back-off with full jitter (Envoy's `JitteredExponentialBackOffStrategy`:
//! 500 ms base, 30 s cap), reset once a response arrives. Each new stream is announced
//! with its generation ([`Event::Connected`]); the main thread then sends the stream's
//! first requests, and requests for an older generation are dropped.

use std::future::Future;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, TryRecvError};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use h2::client::{Connection, ResponseFuture, SendRequest};
use h2::{RecvStream, SendStream};

use super::proto;
use crate::http::conn_manager::http2::io::{self as h2io, SharedBuffers, Transport, TurnFlag};

const SOTW_PATH: &str = "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources";
const DELTA_PATH: &str = "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources";
const BACKOFF_BASE: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// Largest gRPC message taken from the control plane (Envoy's default is 4 MiB for
/// `max_receive_message_length` unset... sluice allows snapshots of thousands of clusters).
const MAX_MESSAGE: usize = 64 << 20;
const TICK: Duration = Duration::from_millis(20);

/// What the stream tells the main thread.
#[derive(Debug)]
pub enum Event {
    /// A new stream is open (its generation): send its first requests.
    Connected(u64),
    /// The stream ended; a new one is tried after the back-off.
    Disconnected(String),
    Response(u64, proto::Response),
    Delta(u64, proto::DeltaResponse),
}

/// A request for the stream of one generation, as an encoded message.
#[derive(Debug)]
pub struct Outgoing {
    pub generation: u64,
    pub message: Vec<u8>,
}

/// The running thread.
pub struct Handle {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    pub requests: Sender<Outgoing>,
    pub events: Receiver<Event>,
}

impl Handle {
    /// Start the thread for the control plane at `addrs` (tried in turn).
    pub fn spawn(addrs: Vec<SocketAddr>, authority: String, delta: bool) -> io::Result<Handle> {
        let stop = Arc::new(AtomicBool::new(false));
        let (req_tx, req_rx) = std::sync::mpsc::channel();
        let (ev_tx, ev_rx) = std::sync::mpsc::channel();
        let s = Arc::clone(&stop);
        let thread = std::thread::Builder::new().name("sluice-xds".into()).spawn(move || {
            let mut r = Runner { addrs, authority, delta, stop: s, requests: req_rx, events: ev_tx, generation: 0 };
            r.run();
        })?;
        Ok(Handle { stop, thread: Some(thread), requests: req_tx, events: ev_rx })
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Runner {
    addrs: Vec<SocketAddr>,
    authority: String,
    delta: bool,
    stop: Arc<AtomicBool>,
    requests: Receiver<Outgoing>,
    events: Sender<Event>,
    generation: u64,
}

/// Full jitter: a random wait in [0, min(cap, base * 2^attempt)).
fn backoff(attempt: u32, seed: &mut u64) -> Duration {
    let ceiling = BACKOFF_BASE.saturating_mul(1u32 << attempt.min(10)).min(BACKOFF_MAX);
    // xorshift64*: jitter only, not a secret.
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    let ms = ceiling.as_millis().max(1) as u64;
    Duration::from_millis(*seed % ms)
}

impl Runner {
    fn run(&mut self) {
        let mut attempt = 0u32;
        let mut seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x9e37_79b9)
            | 1;
        while !self.stop.load(Ordering::Relaxed) {
            self.generation += 1;
            let (why, got_response) = self.stream_once();
            if self.stop.load(Ordering::Relaxed) {
                return;
            }
            let _ = self.events.send(Event::Disconnected(why));
            attempt = if got_response { 0 } else { attempt.saturating_add(1) };
            let wait = backoff(attempt, &mut seed);
            let until = Instant::now() + wait;
            while Instant::now() < until && !self.stop.load(Ordering::Relaxed) {
                std::thread::sleep(TICK.min(until.saturating_duration_since(Instant::now())));
                // Requests for a stream that is gone are dropped.
                while self.requests.try_recv().is_ok() {}
            }
        }
    }

    fn connect(&self) -> Result<std::net::TcpStream, String> {
        let mut last = String::from("no address");
        for a in &self.addrs {
            match std::net::TcpStream::connect_timeout(a, Duration::from_secs(2)) {
                Ok(s) => return Ok(s),
                Err(e) => last = format!("{a}: {e}"),
            }
        }
        Err(last)
    }

    /// One connection and stream, until it ends: why, and whether a response came.
    fn stream_once(&mut self) -> (String, bool) {
        let sock = match self.connect() {
            Ok(s) => s,
            Err(e) => return (format!("connect: {e}"), false),
        };
        let _ = sock.set_nodelay(true);
        if let Err(e) = sock.set_nonblocking(true) {
            return (format!("socket: {e}"), false);
        }
        let mut sock = mio::net::TcpStream::from_std(sock);
        let Ok(mut poll) = mio::Poll::new() else { return ("poll: cannot create".into(), false) };
        if let Err(e) =
            poll.registry().register(&mut sock, mio::Token(0), mio::Interest::READABLE | mio::Interest::WRITABLE)
        {
            return (format!("register: {e}"), false);
        }
        let mut c = Conn {
            sock,
            bufs: SharedBuffers::new(4 << 20),
            flag: Arc::new(TurnFlag::default()),
            state: State::Idle,
            body: BytesMut::new(),
            got_response: false,
            eof: false,
        };
        let builder = h2::client::Builder::new();
        c.state = State::Handshaking(Box::pin(builder.handshake::<Transport, Bytes>(Transport(c.bufs.clone()))));
        let mut events = mio::Events::with_capacity(8);
        loop {
            if self.stop.load(Ordering::Relaxed) {
                return ("stopped".into(), c.got_response);
            }
            if let Err(e) = c.read() {
                return (e, c.got_response);
            }
            match c.drive(self) {
                Ok(()) => {}
                Err(e) => return (e, c.got_response),
            }
            if let Err(e) = c.flush() {
                return (e, c.got_response);
            }
            let _ = poll.poll(&mut events, Some(TICK));
        }
    }
}

type Handshake =
    Pin<Box<dyn Future<Output = Result<(SendRequest<Bytes>, Connection<Transport, Bytes>), h2::Error>> + Send>>;

enum State {
    Idle,
    Handshaking(Handshake),
    Open {
        conn: Box<Connection<Transport, Bytes>>,
        send: SendStream<Bytes>,
        response: Option<ResponseFuture>,
        body: Option<RecvStream>,
    },
}

struct Conn {
    sock: mio::net::TcpStream,
    bufs: SharedBuffers,
    flag: Arc<TurnFlag>,
    state: State,
    /// gRPC bytes received, not yet a whole message.
    body: BytesMut,
    got_response: bool,
    eof: bool,
}

impl Conn {
    fn read(&mut self) -> Result<(), String> {
        let mut buf = [0u8; 16 << 10];
        loop {
            match self.sock.read(&mut buf) {
                Ok(0) => {
                    self.eof = true;
                    self.bufs.lock().eof = true;
                    return Ok(());
                }
                Ok(n) => self.bufs.lock().input.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("read: {e}")),
            }
        }
    }

    fn flush(&mut self) -> Result<(), String> {
        let mut b = self.bufs.lock();
        while b.out_len() > 0 {
            let start = b.out_pos;
            match self.sock.write(&b.out[start..]) {
                Ok(0) => return Err("write: closed".into()),
                Ok(n) => {
                    b.out_pos += n;
                    if b.out_pos == b.out.len() {
                        b.out.clear();
                        b.out_pos = 0;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("write: {e}")),
            }
        }
        Ok(())
    }

    /// Poll `h2` until it makes no more progress, moving requests and responses.
    fn drive(&mut self, r: &Runner) -> Result<(), String> {
        let waker = h2io::waker(&self.flag);
        let mut cx = Context::from_waker(&waker);
        for _ in 0..64 {
            self.flag.take();
            let mut progressed = false;
            match &mut self.state {
                State::Idle => return Err("no connection".into()),
                State::Handshaking(h) => match h.as_mut().poll(&mut cx) {
                    Poll::Ready(Ok((mut sender, conn))) => {
                        let path = if r.delta { DELTA_PATH } else { SOTW_PATH };
                        let req = http::Request::builder()
                            .method("POST")
                            .uri(format!("http://{}{path}", r.authority))
                            .header("content-type", "application/grpc")
                            .header("te", "trailers")
                            .body(())
                            .map_err(|e| e.to_string())?;
                        let (response, send) =
                            sender.send_request(req, false).map_err(|e| format!("open stream: {e}"))?;
                        self.state = State::Open { conn: Box::new(conn), send, response: Some(response), body: None };
                        let _ = r.events.send(Event::Connected(r.generation));
                        progressed = true;
                    }
                    Poll::Ready(Err(e)) => return Err(format!("HTTP/2 handshake: {e}")),
                    Poll::Pending => {}
                },
                State::Open { conn, send, response, body } => {
                    if let Poll::Ready(res) = Pin::new(conn.as_mut()).poll(&mut cx) {
                        return Err(match res {
                            Ok(()) => "connection closed".into(),
                            Err(e) => format!("connection: {e}"),
                        });
                    }
                    loop {
                        match r.requests.try_recv() {
                            Ok(o) if o.generation == r.generation => {
                                send.send_data(grpc_frame(&o.message), false).map_err(|e| format!("send: {e}"))?;
                                progressed = true;
                            }
                            Ok(_) => {}
                            Err(TryRecvError::Empty) => break,
                            Err(TryRecvError::Disconnected) => return Err("stopped".into()),
                        }
                    }
                    if let Some(f) = response {
                        match Pin::new(f).poll(&mut cx) {
                            Poll::Ready(Ok(resp)) => {
                                if resp.status() != http::StatusCode::OK {
                                    return Err(format!("control plane answered HTTP {}", resp.status()));
                                }
                                if let Some(s) = resp.headers().get("grpc-status").and_then(|v| v.to_str().ok()) {
                                    return Err(format!("control plane ended the stream: grpc-status {s}"));
                                }
                                *body = Some(resp.into_body());
                                *response = None;
                                progressed = true;
                            }
                            Poll::Ready(Err(e)) => return Err(format!("stream: {e}")),
                            Poll::Pending => {}
                        }
                    }
                    if let Some(b) = body {
                        match b.poll_data(&mut cx) {
                            Poll::Ready(Some(Ok(data))) => {
                                let _ = b.flow_control().release_capacity(data.len());
                                self.body.extend_from_slice(&data);
                                progressed = true;
                            }
                            Poll::Ready(Some(Err(e))) => return Err(format!("stream: {e}")),
                            Poll::Ready(None) => {
                                let status = match b.poll_trailers(&mut cx) {
                                    Poll::Ready(Ok(Some(t))) => t
                                        .get("grpc-status")
                                        .and_then(|v| v.to_str().ok())
                                        .map(|s| format!("grpc-status {s}"))
                                        .unwrap_or_default(),
                                    _ => String::new(),
                                };
                                return Err(format!("control plane ended the stream {status}"));
                            }
                            Poll::Pending => {}
                        }
                    }
                    while let Some(msg) = take_message(&mut self.body)? {
                        self.got_response = true;
                        let event = if r.delta {
                            Event::Delta(r.generation, proto::decode_delta_response(&msg)?)
                        } else {
                            Event::Response(r.generation, proto::decode_response(&msg)?)
                        };
                        let _ = r.events.send(event);
                    }
                }
            }
            if !(progressed || self.flag.take()) {
                break;
            }
        }
        if self.eof && self.bufs.lock().pending_input().is_empty() && matches!(self.state, State::Handshaking(_)) {
            return Err("connection closed".into());
        }
        Ok(())
    }
}

/// One gRPC message: uncompressed flag, length, bytes.
fn grpc_frame(msg: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(5 + msg.len());
    out.push(0);
    out.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    out.extend_from_slice(msg);
    Bytes::from(out)
}

/// Take one whole gRPC message off `buf`.
fn take_message(buf: &mut BytesMut) -> Result<Option<Vec<u8>>, String> {
    if buf.len() < 5 {
        return Ok(None);
    }
    if buf[0] != 0 {
        return Err("compressed gRPC message (no grpc-encoding was offered)".into());
    }
    let len = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
    if len > MAX_MESSAGE {
        return Err(format!("gRPC message of {len} bytes is over the {MAX_MESSAGE}-byte limit"));
    }
    if buf.len() < 5 + len {
        return Ok(None);
    }
    buf.advance(5);
    Ok(Some(buf.split_to(len).to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_framed_and_split_across_reads() {
        let f = grpc_frame(b"hello");
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&f[..3]);
        assert_eq!(take_message(&mut buf).unwrap(), None);
        buf.extend_from_slice(&f[3..]);
        buf.extend_from_slice(&grpc_frame(b"")[..]);
        assert_eq!(take_message(&mut buf).unwrap().as_deref(), Some(&b"hello"[..]));
        assert_eq!(take_message(&mut buf).unwrap().as_deref(), Some(&b""[..]));
        buf.extend_from_slice(&[1, 0, 0, 0, 0]);
        assert!(take_message(&mut buf).is_err(), "compressed is refused");
    }

    #[test]
    fn backoff_is_jittered_under_its_ceiling() {
        let mut seed = 12345;
        for attempt in 0..20 {
            let w = backoff(attempt, &mut seed);
            assert!(w < BACKOFF_BASE.saturating_mul(1 << attempt.min(10)).min(BACKOFF_MAX));
        }
    }
}
