//! The HTTP connection manager (Envoy's `ConnectionManagerImpl`).
//!
//! One [`HttpConnection`] serves one downstream connection. It picks the codec as
//! Envoy does: `codec_type: HTTP1` always HTTP/1.1; `HTTP2` always HTTP/2; `AUTO`
//! HTTP/2 when TLS negotiated ALPN `h2` or the first bytes are the HTTP/2 client
//! preface, else HTTP/1.1. HTTP/2 is served by the `http2` module (many streams, each
//! its own router); the rest of this file is the HTTP/1.1 connection: it reads and
//! parses request heads with Envoy's HTTP/1 rules, runs each stream through
//! `active_stream.rs` (decoder filters, router, local replies) over the HTTP/1 codec
//! (`http1.rs`), writes responses in request order (pipelined requests wait in the
//! input buffer until the previous response is complete), and keeps the connection
//! alive as HTTP/1.1 and the config allow. Bodies stream in both directions and never
//! sit whole in memory: each direction buffers at most
//! `per_connection_buffer_limit_bytes` before reading from its source stops.
//! Malformed requests get Envoy's status and the connection closes; nothing of a
//! rejected request reaches an upstream.
//!
//! Timers (all in the worker's timer structure): connection `idle_timeout` (no request
//! begun), `max_connection_duration`, `request_headers_timeout`, `request_timeout`,
//! `stream_idle_timeout`, plus the router's route and per-try timeouts. As in Envoy, a
//! request's stream timers run from its first byte, and a client's FIN or reset resets
//! the stream in progress (see `timeouts.rs`); a drain can start later than asked
//! ([`HttpConnection::drain_at`], a gradual server drain).

pub mod active_stream;
pub mod config;
pub mod headers;
mod http1;
pub mod http2;
pub mod normalize;
pub mod original_ip;
pub mod stream;
#[cfg(test)]
mod tests;
mod timeouts;
pub mod upgrade;
pub mod xfcc;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use sluice_config::hcm::CodecType;
use sluice_stack::{SocketId, Stack};

use crate::http::codec::{
    encode_response_head, h2_preface, OutgoingBody, RequestError, RequestParser, ResponseContext, Status as ParseStatus,
};
use crate::http::flow_control::{Crossing, Watermark};
use crate::http::local_reply;
use crate::http::response_flags::ResponseFlags;
use crate::stats::HttpStats;
use crate::tcp_proxy::{CloseReason, Status};
use crate::timer::TimerKey;
use crate::transport::TransportSocket;
use crate::worker_ctx::Ctx;

use sluice_config::overload::TimerType;

use self::active_stream::StreamCx;
use self::config::HcmConfig;
use self::stream::{FilterPhase, Stream};
use crate::http::filter::PeerFacts;

/// Read size for downstream input.
const READ_CHUNK: usize = 64 * 1024;
/// Rounds of the state machine per handler call before yielding.
const ROUND_BUDGET: usize = 64;

/// The encode path's one call site for a response head, whatever the codec: the HCM's
/// response mutations (server, date, via) on `stream.response`.
pub fn encode_response_headers(cfg: &HcmConfig, stream: &mut Stream, date: &[u8], end_stream: bool) {
    // The encoder filters ran before (`FilteredStream::encode_headers`, the chain's
    // encode call site for every response head, local replies included).
    let _ = end_stream;
    headers::mutate_response(cfg, &mut stream.response, date);
    crate::trace::mutate_response_headers(
        cfg.always_set_request_id_in_response,
        &stream.head.headers,
        stream.trace.as_deref(),
        &mut stream.response,
    );
}

/// What the HCM's request mutations know of the downstream connection (after
/// [`HttpConnection::compute_connection_facts`]).
fn downstream_info<'a>(down: &Downstream, xfcc_element: &'a Option<Option<String>>) -> headers::DownstreamInfo<'a> {
    headers::DownstreamInfo {
        peer: down.peer,
        tls: down.tls,
        mtls: down.transport.peer_certificates().is_some(),
        xfcc_element: xfcc_element.as_ref().and_then(|e| e.as_deref()),
    }
}

/// The filters' view of a connection before its first request.
pub(super) static NO_PEER_FACTS: PeerFacts = PeerFacts::NONE;

/// What is known of an accepted connection when its HTTP connection manager starts.
pub struct Accepted {
    pub socket: SocketId,
    pub peer: SocketAddr,
    pub local: SocketAddr,
    /// The restored original destination (ORIGINAL_DST clusters).
    pub original_dst: Option<SocketAddr>,
    pub transport: TransportSocket,
}

/// The downstream half of a connection: socket and buffers.
#[derive(Debug)]
pub struct Downstream {
    pub socket: SocketId,
    pub peer: SocketAddr,
    pub local: SocketAddr,
    pub tls: bool,
    pub input: Vec<u8>,
    pub input_pos: usize,
    pub out: Vec<u8>,
    pub out_pos: usize,
    pub readable: bool,
    /// An event reported the peer's FIN or RST: reads go on until they reach it, as no
    /// further event will come (a short read does not mean drained).
    pub peer_closed: bool,
    pub read_eof: bool,
    /// No more I/O: the transport failed (peer reset, TLS error) or we let go.
    pub dead: bool,
    /// The socket was handed back to the stack (closed or aborted).
    pub released: bool,
    /// Raw, or TLS terminated here.
    pub transport: TransportSocket,
}

impl Downstream {
    pub fn pending_input(&self) -> &[u8] {
        &self.input[self.input_pos..]
    }

    pub fn consume_input(&mut self, n: usize) {
        self.input_pos += n;
        if self.input_pos >= self.input.len() {
            self.input.clear();
            self.input_pos = 0;
        }
    }

    /// Output bytes not yet written.
    pub fn out_len(&self) -> usize {
        self.out.len() - self.out_pos
    }

    /// Read once (through `scratch`, so no buffer is zero-filled per read); true when
    /// new bytes arrived. EOF and errors set the flags.
    fn read<S: Stack>(&mut self, stack: &mut S, limit: usize, scratch: &mut [u8]) -> bool {
        if self.dead || self.read_eof || !self.readable {
            return false;
        }
        if self.input_pos > 0 && self.input_pos * 2 >= self.input.len() {
            self.input.drain(..self.input_pos);
            self.input_pos = 0;
        }
        let held = self.input.len() - self.input_pos;
        if held >= limit {
            return false;
        }
        let want = READ_CHUNK.min(limit - held).min(scratch.len()).max(1);
        match self.transport.read(stack, self.socket, &mut scratch[..want]) {
            Ok(0) => {
                self.read_eof = true;
                false
            }
            Ok(n) => {
                self.input.extend_from_slice(&scratch[..n]);
                if n < want && self.transport.short_read_drains() && !self.peer_closed {
                    // A short read drained the socket; the next arrival is a new event. Not
                    // so once the peer's FIN or RST was reported: it waits behind the data.
                    self.readable = false;
                }
                true
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                self.readable = false;
                false
            }
            Err(_) => {
                self.dead = true;
                false
            }
        }
    }

    /// Write pending output; returns bytes written.
    fn flush<S: Stack>(&mut self, stack: &mut S) -> usize {
        let mut total = 0;
        while self.out_pos < self.out.len() && !self.dead {
            match self.transport.write(stack, self.socket, &self.out[self.out_pos..]) {
                Ok(0) => break,
                Ok(n) => {
                    self.out_pos += n;
                    total += n;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => self.dead = true,
            }
        }
        if self.out_pos == self.out.len() {
            self.out.clear();
            self.out_pos = 0;
            if self.out.capacity() > 256 * 1024 {
                self.out = Vec::new();
            }
        }
        if !self.dead && self.transport.flush(stack, self.socket).is_err() {
            self.dead = true;
        }
        total
    }

    /// Between requests: give back buffer memory above a small size.
    fn shrink_idle(&mut self) {
        crate::http::flow_control::shrink_idle(&mut self.input, &mut self.input_pos);
        crate::http::flow_control::shrink_idle(&mut self.out, &mut self.out_pos);
        self.transport.shrink_idle();
    }

    /// Memory held by this connection's buffers (for accounting and tests).
    pub fn buffered_capacity(&self) -> usize {
        self.input.capacity() + self.out.capacity() + self.transport.buffered_capacity()
    }

    /// Output still owed to the client (plaintext or TLS records).
    pub fn has_output(&self) -> bool {
        self.out_len() > 0 || self.transport.has_pending_output()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Closing {
    /// Close once the output is flushed.
    AfterFlush,
}

pub struct HttpConnection {
    cfg: Arc<HcmConfig>,
    /// RDS: the config with new routes, taken at the next request that starts while no
    /// other is in flight (a request in flight keeps the routes it started with).
    next_cfg: Option<Arc<HcmConfig>>,
    stats: Arc<HttpStats>,
    pub down: Downstream,
    parser: RequestParser,
    stream: Stream,
    requests: u32,
    created: Instant,
    /// When the connection last had no active stream.
    idle_since: Instant,
    /// When the first byte of the current (partial) request head arrived.
    head_started: Option<Instant>,
    timer_at: Option<Instant>,
    closing: Option<Closing>,
    /// The connection was checked for an HTTP/2 preface.
    preface_checked: bool,
    /// The connection speaks HTTP/2 (preface, ALPN `h2`, or `codec_type: HTTP2`).
    h2: Option<Box<http2::Http2Connection>>,
    /// Draining: close when idle, `connection: close` on the next response.
    draining: bool,
    /// While draining, an idle connection is kept open until then (a request may be
    /// on its way); `None`: close it as soon as it is idle.
    drain_idle_until: Option<Instant>,
    /// A drain that starts later (a gradual server drain spreads the connections'
    /// starts).
    drain_start_at: Option<Instant>,
    /// The restored original destination (ORIGINAL_DST clusters).
    original_dst: Option<SocketAddr>,
    /// The request input's watermark: reading the client pauses above it.
    read_pause: Watermark,
    /// SNI and client certificate names for the filters, computed on the first request.
    peer_facts: Option<PeerFacts>,
    /// This hop's XFCC element, computed on the first request (None inside: no mTLS,
    /// or the mode sets none).
    xfcc_element: Option<Option<String>>,
}

impl HttpConnection {
    /// Bytes of buffer this connection holds for its client: the socket's input and
    /// output and, over HTTP/2, the codec's and its streams' (the fuzzing harness
    /// bounds it).
    pub fn buffered_capacity(&self) -> usize {
        self.down.buffered_capacity() + self.h2.as_ref().map_or(0, |h| h.buffered_capacity())
    }

    pub fn new(cfg: Arc<HcmConfig>, stats: Arc<HttpStats>, conn: Accepted, now: Instant) -> HttpConnection {
        let Accepted { socket, peer, local, original_dst, transport } = conn;
        stats.downstream_cx_total.inc();
        stats.downstream_cx_active.inc();
        let tls = transport.is_tls();
        let parser = RequestParser::new(Arc::clone(&cfg.settings), tls);
        HttpConnection {
            cfg,
            next_cfg: None,
            stats,
            down: Downstream {
                socket,
                peer,
                local,
                tls,
                input: Vec::new(),
                input_pos: 0,
                out: Vec::new(),
                out_pos: 0,
                readable: true,
                peer_closed: false,
                read_eof: false,
                dead: false,
                released: false,
                transport,
            },
            parser,
            stream: Stream::new(now),
            requests: 0,
            created: now,
            idle_since: now,
            head_started: None,
            timer_at: None,
            closing: None,
            preface_checked: false,
            h2: None,
            draining: false,
            drain_idle_until: None,
            drain_start_at: None,
            original_dst,
            xfcc_element: None,
            peer_facts: None,
            read_pause: Watermark::default(),
        }
    }

    /// The config serving this connection's requests.
    pub fn cfg(&self) -> &Arc<HcmConfig> {
        self.next_cfg.as_ref().unwrap_or(&self.cfg)
    }

    /// RDS updated this connection's routes: `cfg` (the same HCM with the new routes)
    /// serves the next request that starts with none in flight.
    pub fn update_routes(&mut self, cfg: Arc<HcmConfig>) {
        self.next_cfg = Some(cfg);
    }

    /// Take the routes of an RDS update (between requests only).
    fn take_new_routes(&mut self) {
        if let Some(cfg) = self.next_cfg.take() {
            self.cfg = cfg;
        }
    }

    /// Readiness on the downstream socket; `peer_closed` when the event reports the
    /// client's FIN or RST.
    pub fn on_event<S: Stack>(&mut self, ctx: &mut Ctx<'_, S>, peer_closed: bool) -> Status {
        self.down.readable = true;
        self.down.peer_closed |= peer_closed;
        self.process(ctx)
    }

    /// Readiness on the upstream connection lent to this connection's stream;
    /// `peer_closed` when the event reports the upstream's FIN or RST.
    pub fn on_upstream_event<S: Stack>(&mut self, ctx: &mut Ctx<'_, S>, slot: TimerKey, peer_closed: bool) -> Status {
        self.h2_upstream_event(slot, peer_closed);
        if let Some(r) = self.stream.router.as_mut() {
            r.on_upstream_event(slot, peer_closed);
        }
        self.stream.async_calls.on_upstream_event(slot, peer_closed);
        self.process(ctx)
    }

    /// Another round (budget ran out, or the pool freed capacity for a waiting stream).
    pub fn resume<S: Stack>(&mut self, ctx: &mut Ctx<'_, S>) -> Status {
        self.h2_visit_all();
        self.process(ctx)
    }

    /// Drain the connection: `connection: close` on the next response; an idle
    /// connection closes now, or with `grace` once it stayed idle for the HCM's
    /// `drain_timeout` (a config reload: a client may be sending its next request).
    pub fn drain<S: Stack>(&mut self, ctx: &mut Ctx<'_, S>, grace: bool) -> Status {
        if !self.draining {
            self.draining = true;
            self.stats.downstream_cx_drain_close.inc();
            if grace {
                self.drain_idle_until = Some(ctx.now + self.cfg.drain_timeout);
            }
        }
        self.process(ctx)
    }

    /// Start the drain sequence at `at` (now if it is past): `connection: close` on
    /// the next response, and close once idle for the HCM's `drain_timeout`.
    pub fn drain_at<S: Stack>(&mut self, ctx: &mut Ctx<'_, S>, at: Instant) -> Status {
        if ctx.now >= at {
            self.drain_start_at = None;
            return self.drain(ctx, true);
        }
        if !self.draining {
            self.drain_start_at = Some(at);
        }
        self.process(ctx)
    }

    /// A timer fired: check every deadline against `ctx.now`.
    pub fn on_timer<S: Stack>(&mut self, ctx: &mut Ctx<'_, S>, fired: Instant) -> Status {
        if self.timer_at == Some(fired) {
            self.timer_at = None;
        }
        let now = ctx.now;
        if self.down.transport.connect_timed_out(now) {
            // transport_socket_connect_timeout: the TLS handshake did not finish.
            self.down.dead = true;
            return self.close(ctx, false);
        }
        if let Some(at) = self.drain_start_at.filter(|at| now >= *at) {
            return self.drain_at(ctx, at);
        }
        if self.h2.is_some() {
            self.h2_timeouts(ctx);
            return self.process(ctx);
        }
        if self.stream.active {
            if let Some(status) = self.stream_timeouts(ctx) {
                return status;
            }
        } else if self.closing.is_none() {
            if let Some(t) =
                self.cfg.idle_timeout.map(|t| ctx.overload.scaled_timeout(TimerType::HttpDownstreamConnectionIdle, t))
            {
                if now >= self.idle_since + t && self.down.pending_input().is_empty() {
                    self.stats.downstream_cx_idle_timeout.inc();
                    return self.close(ctx, false);
                }
            }
            if let Some(status) = self.head_timeouts(ctx) {
                return status;
            }
        }
        if let Some(t) = self.cfg.max_connection_duration {
            if now >= self.created + t && !self.draining {
                self.stats.downstream_cx_max_duration_reached.inc();
                self.draining = true;
            }
        }
        self.process(ctx)
    }

    /// Stream-level deadlines; `Some` when the connection ended.
    fn stream_timeouts<S: Stack>(&mut self, ctx: &mut Ctx<'_, S>) -> Option<Status> {
        let now = ctx.now;
        // A filter's delay (fault): process() resumes the chain.
        if self.stream.phase == FilterPhase::Decoding && self.stream.filters.wake_at().is_some_and(|t| now >= t) {
            return None;
        }
        if let Some(t) = self.cfg.request_timeout {
            if !self.stream.request_done && now >= self.stream.start + t {
                self.stats.downstream_rq_timeout.inc();
                return Some(self.timeout_reply(ctx, 408, local_reply::REQUEST_TIMEOUT));
            }
        }
        let idle = match self.stream.router.as_ref().and_then(|r| r.idle_timeout_override()) {
            Some(o) => o,
            None => self.cfg.stream_idle_timeout,
        };
        if let Some(t) = idle.map(|t| ctx.overload.scaled_timeout(TimerType::HttpDownstreamStreamIdle, t)) {
            if now >= self.stream.last_activity + t {
                self.stats.downstream_rq_idle_timeout.inc();
                self.stream.flags.set(ResponseFlags::STREAM_IDLE_TIMEOUT);
                return Some(self.timeout_reply(ctx, 408, local_reply::STREAM_IDLE_TIMEOUT));
            }
        }
        if let Some(t) = self.max_stream_duration() {
            if now >= self.stream.start + t {
                self.stats.downstream_rq_max_duration_reached.inc();
                self.stream.flags.set(ResponseFlags::DURATION_TIMEOUT);
                return Some(self.timeout_reply(ctx, 408, local_reply::REQUEST_TIMEOUT));
            }
        }
        None
    }

    /// The stream's maximum duration: the route's override, else the HCM's.
    fn max_stream_duration(&self) -> Option<std::time::Duration> {
        match self.stream.router.as_ref().and_then(|r| r.max_stream_duration_override()) {
            Some(o) => o,
            None => self.cfg.max_stream_duration,
        }
    }

    /// Answer a timed-out stream (or reset it if its response already started).
    fn timeout_reply<S: Stack>(&mut self, ctx: &mut Ctx<'_, S>, status: u16, body: &str) -> Status {
        if let Some(mut r) = self.stream.router.take() {
            r.cancel(ctx);
        }
        if self.stream.response_started {
            return self.close(ctx, true);
        }
        self.stream.close_after = true;
        self.cx().send_local_reply(ctx, status, body.as_bytes(), &[]);
        self.process(ctx)
    }

    /// Close at once (drain deadline, worker stop).
    pub fn abort<S: Stack>(&mut self, ctx: &mut Ctx<'_, S>) -> Status {
        self.close(ctx, true)
    }

    fn close<S: Stack>(&mut self, ctx: &mut Ctx<'_, S>, reset: bool) -> Status {
        self.end_tunnel(ctx, reset);
        self.h2_abort_streams(ctx);
        if let Some(mut r) = self.stream.router.take() {
            r.cancel(ctx);
        }
        if self.stream.active {
            self.end_stream(ctx, true);
        }
        if !self.down.released {
            if self.down.dead {
                // The transport failed (a reset, a TLS error): let the socket go; an
                // alert already queued still leaves with it.
                ctx.stack.close(self.down.socket);
            } else if reset {
                ctx.stack.abort(self.down.socket);
            } else {
                if self.down.transport.is_tls() {
                    // close_notify, best effort: the socket then closes with its queue.
                    let _ = self.down.transport.shutdown_write(ctx.stack, self.down.socket);
                }
                ctx.stack.close(self.down.socket);
            }
            self.down.released = true;
            self.down.dead = true;
        }
        self.stats.downstream_cx_active.dec();
        if self.h2.is_some() {
            self.stats.downstream_cx_http2_active.dec();
        } else if self.preface_checked {
            self.stats.downstream_cx_http1_active.dec();
        }
        Status::Closed(CloseReason::Done)
    }

    /// Run the state machine until it makes no more progress.
    fn process<S: Stack>(&mut self, ctx: &mut Ctx<'_, S>) -> Status {
        if self.h2.is_some() {
            return self.process_h2(ctx);
        }
        let limit = self.cfg.buffer_limit;
        for round in 0.. {
            if round >= ROUND_BUDGET {
                ctx.again();
                break;
            }
            if self.stream.tunnel.is_some() {
                return self.run_tunnel(ctx);
            }
            if self.h2.is_some() {
                return self.process_h2(ctx);
            }
            let mut progress = false;
            if self.closing.is_none() && !self.stream.active {
                progress |= self.next_request(ctx);
            }
            if self.stream.active {
                progress |= self.run_stream(ctx);
            }
            let sent = self.down.flush(ctx.stack);
            if sent > 0 {
                self.stats.downstream_cx_tx_bytes_total.add(sent as u64);
                self.stream.last_activity = ctx.now;
                progress = true;
            }
            if self.down.dead {
                if self.stream.active && !self.stream.response_done {
                    self.stats.downstream_cx_destroy_remote_active_rq.inc();
                    self.stream.flags.set(ResponseFlags::DOWNSTREAM_CONNECTION_TERMINATION);
                }
                return self.close(ctx, true);
            }
            if self.peer_closed_mid_stream() {
                // Envoy's RemoteClose: the stream and its upstream request are reset.
                self.stats.downstream_cx_destroy_remote_active_rq.inc();
                self.stream.flags.set(ResponseFlags::DOWNSTREAM_CONNECTION_TERMINATION);
                return self.close(ctx, false);
            }
            if self.down.read_eof && !self.down.has_output() && !self.stream.active && self.closing.is_none() {
                return self.close(ctx, false);
            }
            if !progress {
                break;
            }
            // Keep reading only while the input holds less than the limit.
            if self.down.pending_input().len() >= limit {
                continue;
            }
        }
        if self.closing == Some(Closing::AfterFlush) && !self.down.has_output() && !self.stream.active {
            return self.close(ctx, false);
        }
        if !self.stream.active && !self.down.has_output() {
            self.down.shrink_idle();
        }
        self.schedule(ctx);
        Status::Open
    }

    /// Between requests: parse the next head (reading as needed), or decide to close.
    fn next_request<S: Stack>(&mut self, ctx: &mut Ctx<'_, S>) -> bool {
        if self.down.pending_input().is_empty() {
            let got = self.down.read(ctx.stack, self.cfg.settings.max_head_bytes() + READ_CHUNK, ctx.scratch);
            if got {
                self.stats.downstream_cx_rx_bytes_total.add(self.down.pending_input().len() as u64);
                self.head_started.get_or_insert(ctx.now);
            }
            // Draining and nothing arrived: close once the grace (if any) is over.
            if self.draining
                && self.down.pending_input().is_empty()
                && self.drain_idle_until.is_none_or(|t| ctx.now >= t)
            {
                self.closing = Some(Closing::AfterFlush);
                return true;
            }
            return got;
        }
        if !self.preface_checked {
            if self.cfg.codec_type != CodecType::Http1 {
                // codec_type HTTP2, or AUTO with ALPN `h2` or the client preface.
                let forced = self.cfg.codec_type == CodecType::Http2 || self.down.transport.alpn() == Some(b"h2");
                match h2_preface::detect(self.down.pending_input()) {
                    h2_preface::Detected::Http2 => return self.switch_to_h2(ctx),
                    _ if forced => return self.switch_to_h2(ctx),
                    h2_preface::Detected::NeedMore => {
                        if self.down.read_eof {
                            self.closing = Some(Closing::AfterFlush);
                            return true;
                        }
                        return self.read_more(ctx);
                    }
                    h2_preface::Detected::Http1 => {}
                }
            }
            self.preface_checked = true;
            self.stats.downstream_cx_http1_total.inc();
            self.stats.downstream_cx_http1_active.inc();
        }
        let parsed = self.parser.parse(self.down.pending_input(), &mut self.stream.head);
        match parsed {
            Ok(ParseStatus::Partial) => {
                self.head_started.get_or_insert(ctx.now);
                self.read_more(ctx)
            }
            Ok(ParseStatus::Complete(meta)) => {
                self.down.consume_input(meta.head_len);
                let first_byte = self.head_started.take();
                self.take_new_routes();
                self.begin_stream(ctx, meta);
                // Envoy's stream exists from the request's first byte: its request
                // timeout and duration count from there.
                if let Some(t) = first_byte.filter(|_| self.stream.active) {
                    self.stream.start = t;
                }
                true
            }
            Err(e) => {
                self.reject(ctx, e);
                true
            }
        }
    }

    /// Read more of an incomplete head; at EOF the connection just closes.
    fn read_more<S: Stack>(&mut self, ctx: &mut Ctx<'_, S>) -> bool {
        let before = self.down.pending_input().len();
        let got = self.down.read(ctx.stack, self.cfg.settings.max_head_bytes() + READ_CHUNK, ctx.scratch);
        if got {
            self.stats.downstream_cx_rx_bytes_total.add((self.down.pending_input().len() - before) as u64);
        }
        got
    }

    /// Serve the connection as HTTP/2 from here on.
    fn switch_to_h2<S: Stack>(&mut self, ctx: &mut Ctx<'_, S>) -> bool {
        self.head_started = None;
        self.start_h2(ctx.now);
        true
    }

    /// A malformed request: Envoy's status, then close. Nothing reaches an upstream.
    fn reject<S: Stack>(&mut self, ctx: &mut Ctx<'_, S>, e: RequestError) {
        self.stats.downstream_cx_protocol_error.inc();
        self.stats.downstream_rq_total.inc();
        self.stats.downstream_rq_http1_total.inc();
        if e == RequestError::HeadersTooLarge || e == RequestError::TooManyHeaders {
            self.stats.downstream_rq_too_large.inc();
        }
        tracing::debug!(peer = %self.down.peer, details = e.details(), "rejecting request: {}", e.status());
        self.reply_without_stream(ctx, e.status(), e.body(), ResponseFlags::DOWNSTREAM_PROTOCOL_ERROR);
    }

    /// A local reply to a request that never became a stream (malformed, or its head
    /// timed out), then close.
    fn reply_without_stream<S: Stack>(&mut self, ctx: &mut Ctx<'_, S>, status: u16, body: &str, flags: ResponseFlags) {
        let mut head = std::mem::take(&mut self.stream.response);
        local_reply::build(&mut head, status, body.as_bytes());
        let date = ctx.date.get(ctx.wall).to_vec();
        headers::mutate_response(&self.cfg, &mut head, &date);
        let version = self.stream.head.version.unwrap_or(crate::http::Version::Http11);
        let rctx = ResponseContext { request_version: version, head_request: false, keep_alive: false };
        encode_response_head(&head, OutgoingBody::Length(body.len() as u64), rctx, &mut self.down.out);
        self.down.out.extend_from_slice(body.as_bytes());
        self.stream.response = head;
        self.cx().count_status(status);
        if !self.cfg.access_log.is_empty() {
            // A rejected request never became a stream: log what is known of it.
            let s = &mut self.stream;
            s.start = self.head_started.unwrap_or(ctx.now);
            s.start_time = ctx.wall;
            s.response_started = true;
            s.flags = flags;
            (s.rq_body_bytes, s.resp_body_bytes) = (0, body.len() as u64);
            (s.route, s.cluster, s.remote, s.upstream_host, s.attempt_count) = (None, None, None, None, 0);
            self.cx().write_access_log(ctx);
        }
        // Whatever else was sent is not processed.
        self.down.consume_input(self.down.pending_input().len());
        self.closing = Some(Closing::AfterFlush);
    }

    /// A complete request head: set up the stream, route it, run the filters.
    fn begin_stream<S: Stack>(&mut self, ctx: &mut Ctx<'_, S>, meta: crate::http::codec::RequestMeta) {
        self.requests += 1;
        self.stats.downstream_rq_total.inc();
        self.stats.downstream_rq_http1_total.inc();
        self.stats.downstream_rq_active.inc();
        let body = self.parser.body_decoder(&meta);
        self.stream.begin(meta, body, ctx.now, ctx.wall);
        if let Some(max) = self.cfg.max_requests_per_connection {
            if self.requests >= max {
                self.stats.downstream_cx_max_requests_reached.inc();
                self.stream.close_after = true;
            }
        }
        if self.draining {
            self.stream.close_after = true;
        }
        self.compute_connection_facts();
        let info = downstream_info(&self.down, &self.xfcc_element);
        let mut cx = StreamCx {
            cfg: &self.cfg,
            stats: &self.stats,
            stream: &mut self.stream,
            io: &mut self.down,
            original_dst: self.original_dst,
            draining: self.draining,
            peer_facts: self.peer_facts.as_ref().unwrap_or(&NO_PEER_FACTS),
        };
        cx.decode_headers(ctx, &info, meta.expect_continue);
    }

    /// What every stream of the connection needs of it, computed on its first request
    /// (the TLS handshake is over by then): this hop's XFCC element and the filters'
    /// view of the peer. Both codecs call this before a stream's `decodeHeaders`.
    fn compute_connection_facts(&mut self) {
        if self.xfcc_element.is_none() {
            let policy = &self.cfg.headers;
            let element =
                xfcc::element_for(policy.forward_client_cert, &policy.client_cert_details, &self.down.transport);
            self.xfcc_element = Some(element);
        }
        if self.peer_facts.is_none() {
            self.peer_facts = Some(PeerFacts::of(&self.down.transport, self.cfg.needs_principals));
        }
    }

    /// The current stream with the HTTP/1 codec, for one event.
    pub(super) fn cx(&mut self) -> StreamCx<'_, Downstream> {
        StreamCx {
            cfg: &self.cfg,
            stats: &self.stats,
            stream: &mut self.stream,
            io: &mut self.down,
            original_dst: self.original_dst,
            draining: self.draining,
            peer_facts: self.peer_facts.as_ref().unwrap_or(&NO_PEER_FACTS),
        }
    }

    /// Run the active stream: decoder filters waiting on a delay, the router, the end.
    fn run_stream<S: Stack>(&mut self, ctx: &mut Ctx<'_, S>) -> bool {
        let mut progress = self.cx().drive_async(ctx);
        if self.stream.phase == FilterPhase::Decoding && self.stream.filters.wake_at().is_some_and(|t| ctx.now >= t) {
            self.cx().run_filters(ctx, true);
            progress = true;
        }
        // Read request body bytes as long as the input has room; the router decodes
        // them (or they are discarded after a local reply).
        // The input is the request's buffer: at the high watermark the client is no
        // longer read until it drains to the low one (Envoy's HCM
        // `downstream_flow_control_{paused,resumed}_reading_total`).
        match self.read_pause.update(self.down.pending_input().len(), self.cfg.buffer_limit) {
            Some(Crossing::High) => self.stats.downstream_flow_control_paused_reading_total.inc(),
            Some(Crossing::Low) => self.stats.downstream_flow_control_resumed_reading_total.inc(),
            None => {}
        }
        if !self.stream.request_done && !self.read_pause.above() {
            let before = self.down.pending_input().len();
            if self.down.read(ctx.stack, self.cfg.buffer_limit, ctx.scratch) {
                let n = self.down.pending_input().len() - before;
                self.stats.downstream_cx_rx_bytes_total.add(n as u64);
                self.stream.bytes_received += n as u64;
                self.stream.last_activity = ctx.now;
                progress = true;
            }
        }
        if self.stream.phase == FilterPhase::Decoding {
            // A buffering filter takes the request body before the router starts.
            progress |= self.cx().feed_filters(ctx);
        }
        if self.stream.router.is_some() {
            let step = self.cx().drive_router(ctx);
            progress |= step.progress;
            if step.upgraded {
                self.start_tunnel();
            } else if step.reset_downstream {
                self.down.dead = true;
                self.down.released = true;
                ctx.stack.abort(self.down.socket);
                return true;
            }
        } else if self.stream.response_done && !self.stream.request_done {
            // A local reply went out before the request body was read: discard it.
            progress |= self.discard_request_body();
        }
        // An encoder filter that holds the response (waiting for its async request)
        // keeps the stream open after the router is done.
        if self.stream.response_done
            && self.down.out_len() < self.cfg.buffer_limit
            && !self.stream.filters.encoding_held()
        {
            if !self.stream.request_done {
                if self.down.read_eof || self.down.dead {
                    self.stream.close_after = true;
                } else if self.stream.router.is_none() {
                    // Keep discarding; close if the client keeps sending past the limit.
                    if self.stream.bytes_received > (self.cfg.buffer_limit as u64) * 4 {
                        self.stream.close_after = true;
                        self.stats.downstream_rq_response_before_rq_complete.inc();
                    } else {
                        return progress;
                    }
                } else {
                    self.stream.close_after = true;
                    self.stats.downstream_rq_response_before_rq_complete.inc();
                }
            }
            self.end_stream(ctx, false);
            progress = true;
        }
        progress
    }

    /// Drop request body bytes of a stream that was answered locally.
    fn discard_request_body(&mut self) -> bool {
        let mut progress = false;
        loop {
            let input = self.down.pending_input();
            if input.is_empty() || self.stream.request_done {
                break;
            }
            match self.stream.body.decode(input) {
                Ok(d) => {
                    self.stream.rq_body_bytes += d.data.len() as u64;
                    self.down.consume_input(d.consumed);
                    progress |= d.consumed > 0;
                    if d.end {
                        self.stream.request_done = true;
                    }
                    if d.consumed == 0 {
                        break;
                    }
                }
                Err(_) => {
                    self.stream.close_after = true;
                    self.stream.request_done = true;
                    break;
                }
            }
        }
        progress
    }

    /// The exchange is over (or the connection is going away): stats, filters' state,
    /// then the next request or the close.
    fn end_stream<S: Stack>(&mut self, ctx: &mut Ctx<'_, S>, aborted: bool) {
        if !self.cx().end_stream(ctx, aborted) {
            return;
        }
        self.idle_since = ctx.now;
        if self.stream.close_after {
            self.closing = Some(Closing::AfterFlush);
        }
    }

    fn schedule<S: Stack>(&mut self, ctx: &mut Ctx<'_, S>) {
        let mut next: Option<Instant> = None;
        let mut consider = |d: Option<Instant>| {
            if let Some(d) = d {
                next = Some(next.map_or(d, |n| n.min(d)));
            }
        };
        if self.h2.is_some() {
            consider(self.h2_next_deadline(ctx));
        } else if self.stream.active {
            if self.stream.phase == FilterPhase::Decoding {
                consider(self.stream.filters.wake_at());
            }
            if !self.stream.request_done {
                consider(self.cfg.request_timeout.map(|t| self.stream.start + t));
            }
            let idle = match self.stream.router.as_ref().and_then(|r| r.idle_timeout_override()) {
                Some(o) => o,
                None => self.cfg.stream_idle_timeout,
            };
            consider(idle.map(|t| {
                self.stream.last_activity + ctx.overload.scaled_timeout(TimerType::HttpDownstreamStreamIdle, t)
            }));
            consider(self.max_stream_duration().map(|t| self.stream.start + t));
            if let Some(r) = &self.stream.router {
                consider(r.next_deadline());
            }
            consider(self.stream.async_calls.next_deadline());
        } else {
            if self.head_started.is_none() {
                consider(self.cfg.idle_timeout.map(|t| {
                    self.idle_since + ctx.overload.scaled_timeout(TimerType::HttpDownstreamConnectionIdle, t)
                }));
            }
            if self.draining {
                consider(self.drain_idle_until);
            }
            consider(self.head_deadline());
        }
        if !self.draining {
            consider(self.cfg.max_connection_duration.map(|t| self.created + t));
            consider(self.drain_start_at);
        }
        consider(self.down.transport.connect_deadline());
        let mut at = self.timer_at;
        ctx.arm(&mut at, next);
        self.timer_at = at;
    }
}
