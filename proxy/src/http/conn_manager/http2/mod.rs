//! The HTTP/2 server codec (RFC 9113) of a downstream connection: many concurrent
//! streams, each an [`ActiveStream`](super::active_stream) with its own router.
//!
//! **Why `h2`, and how it is driven.** `h2` is the HTTP/2 implementation hyper,
//! pingora and linkerd2-proxy use: framing, HPACK, stream states, SETTINGS, PING,
//! flow control, RFC 9113 §8 header validation (malformed requests are refused with
//! RST_STREAM PROTOCOL_ERROR before they reach us), and the known flood limits
//! (`max_pending_accept_reset_streams`, `max_local_error_reset_streams`, CONTINUATION
//! and header-list limits). Its API is futures-based but it needs no runtime: a
//! future is a state machine that is polled. The connection manager polls it from the
//! worker's readiness loop, on either stack backend, with an in-memory transport over
//! the connection's byte buffers (`io.rs`): socket bytes are appended to the input,
//! `h2` is polled until it makes no more progress, its frames are written to the
//! socket. The connection's waker only raises a flag for another turn; each stream
//! slot has a waker of its own that also records the slot, so a turn visits only the
//! streams with something to do (`streams.rs`); no thread, no task queue. Everything
//! stays on the worker that accepted the connection.
//!
//! Per stream, request DATA is handed to the router as the upstream accepts it and
//! only then released to `h2`'s flow control (the client's window reopens as fast as
//! the upstream takes the body); response DATA is queued in the stream and given to
//! `h2` as the client's window allows, and the router stops reading the upstream once
//! that queue reaches `per_connection_buffer_limit_bytes` (`stream_io.rs`). A drain
//! sends Envoy's two-step GOAWAY (`h2`'s graceful shutdown: GOAWAY with the last
//! possible stream ID and a PING, then the final GOAWAY once the PING returns); the
//! connection closes after its last stream.

pub mod flood;
mod inbound;
pub(crate) mod io;
mod request;
pub mod stream_io;
mod streams;
mod timeouts;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use bytes::Bytes;
use h2::server::{self, Handshake, SendResponse};
use h2::{Reason, RecvStream};
use sluice_stack::Stack;

use crate::http::response_flags::ResponseFlags;
use crate::http::stream_encoder::ServerStream;
use crate::tcp_proxy::Status;
use crate::timer::TimerKey;
use crate::worker_ctx::Ctx;

use self::io::{SharedBuffers, Transport, TurnFlag};
use self::stream_io::H2StreamIo;
use self::streams::StreamSet;
use super::active_stream::StreamCx;
use super::stream::{FilterPhase, Stream};
use super::HttpConnection;

/// Rounds per handler call before yielding to other connections.
const ROUND_BUDGET: usize = 64;
/// How long the last frames may take to leave when `delayed_close_timeout` is unset.
const CLOSE_GRACE: std::time::Duration = std::time::Duration::from_secs(1);
/// Finished streams kept for reuse per connection.
const SPARE_STREAMS: usize = 8;
/// Socket bytes read per round.
const READ_CHUNK: usize = 64 * 1024;

enum State {
    Handshaking(Pin<Box<Handshake<Transport, Bytes>>>),
    Open(Box<server::Connection<Transport, Bytes>>),
    /// `h2` is done with the connection (closed by either side, or failed).
    Closed,
}

struct H2Stream {
    s: Box<Stream>,
    io: H2StreamIo,
}

/// The HTTP/2 side of a downstream connection.
pub struct Http2Connection {
    bufs: SharedBuffers,
    flag: Arc<TurnFlag>,
    waker: Waker,
    state: State,
    /// Open streams; a turn visits only the ready ones (`streams.rs`).
    streams: StreamSet<H2Stream>,
    /// The slots visited in this turn (kept for its allocation).
    visit: Vec<usize>,
    /// Finished streams' state, kept for reuse (its header maps and strings keep their
    /// allocations), at most [`SPARE_STREAMS`]. Boxed: a stream moves between `streams`
    /// and here as a pointer.
    #[allow(clippy::vec_box)]
    spare: Vec<Box<Stream>>,
    /// The graceful GOAWAY sequence started.
    goaway: bool,
    /// When the first GOAWAY went out, until the final one does (`drain_timeout`
    /// later at the latest, see `timeouts.rs`).
    goaway_started: Option<Instant>,
    /// When the connection last had no stream.
    idle_since: Instant,
    /// When `h2` finished with the connection: its last frames may take until
    /// `delayed_close_timeout` (1 s when unset) to leave, then the socket is reset.
    closed_at: Option<Instant>,
    /// Close at once (a handshake that idled out).
    close_now: bool,
    /// A flood check of sluice's own ended the connection.
    flood: bool,
    /// Why `h2` ended the connection, not yet counted.
    error: Option<h2::Error>,
}

impl std::fmt::Debug for Http2Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Http2Connection").field("streams", &self.streams.len()).field("goaway", &self.goaway).finish()
    }
}

impl Http2Connection {
    /// Start serving HTTP/2 on a connection whose first bytes are `input` (the client
    /// preface, as far as it arrived).
    pub fn new(
        builder: &server::Builder,
        limits: flood::InboundLimits,
        input: &[u8],
        out_limit: usize,
        now: Instant,
    ) -> Http2Connection {
        let bufs = SharedBuffers::new(out_limit);
        {
            let mut b = bufs.lock();
            b.inbound = flood::InboundWatch::new(limits);
            b.input.extend_from_slice(input);
            b.inbound.feed(input);
        }
        let flag = Arc::new(TurnFlag::default());
        let waker = io::waker(&flag);
        let handshake = builder.handshake::<Transport, Bytes>(Transport(bufs.clone()));
        Http2Connection {
            bufs,
            streams: StreamSet::new(&flag),
            flag,
            waker,
            state: State::Handshaking(Box::pin(handshake)),
            visit: Vec::new(),
            spare: Vec::new(),
            goaway: false,
            goaway_started: None,
            idle_since: now,
            closed_at: None,
            close_now: false,
            error: None,
            flood: false,
        }
    }

    /// Streams in progress.
    pub fn active_streams(&self) -> usize {
        self.streams.len()
    }

    /// Bytes of buffer held: `h2`'s input and output, each stream's body queues.
    pub fn buffered_capacity(&self) -> usize {
        let b = self.bufs.lock();
        b.input.capacity() + b.out.capacity() + self.streams.iter().map(|s| s.io.buffered_capacity()).sum::<usize>()
    }

    /// Poll `h2`'s connection: finish the handshake, then accept new streams.
    fn poll_connection(&mut self, accepted: &mut Vec<(http::Request<RecvStream>, SendResponse<Bytes>)>) -> bool {
        let mut cx = Context::from_waker(&self.waker);
        let mut progress = false;
        if let State::Handshaking(h) = &mut self.state {
            match h.as_mut().poll(&mut cx) {
                Poll::Ready(Ok(conn)) => {
                    self.state = State::Open(Box::new(conn));
                    progress = true;
                }
                Poll::Ready(Err(e)) => {
                    tracing::debug!("http2 handshake: {e}");
                    self.error = Some(e);
                    self.state = State::Closed;
                    return true;
                }
                Poll::Pending => return false,
            }
        }
        let State::Open(conn) = &mut self.state else {
            return progress;
        };
        loop {
            match conn.poll_accept(&mut cx) {
                Poll::Ready(Some(Ok(pair))) => {
                    accepted.push(pair);
                    progress = true;
                }
                Poll::Ready(Some(Err(e))) => {
                    tracing::debug!("http2 connection: {e}");
                    self.error = Some(e);
                    self.state = State::Closed;
                    return true;
                }
                Poll::Ready(None) => {
                    self.state = State::Closed;
                    return true;
                }
                Poll::Pending => return progress,
            }
        }
    }

    /// Start the graceful GOAWAY sequence (once).
    fn start_goaway(&mut self, now: Instant) -> bool {
        if self.goaway {
            return false;
        }
        match &mut self.state {
            State::Open(conn) => {
                conn.graceful_shutdown();
                self.goaway = true;
                self.goaway_started = Some(now);
                true
            }
            State::Handshaking(_) => false,
            State::Closed => {
                self.goaway = true;
                false
            }
        }
    }
}

impl HttpConnection {
    /// Switch this connection to HTTP/2: the bytes read so far are its preface.
    pub(super) fn start_h2(&mut self, now: Instant) {
        let builder = self.cfg.http2.builder();
        let input = self.down.pending_input().len();
        let limits = self.cfg.http2.inbound;
        let out_limit = self.cfg.buffer_limit.max(64 * 1024);
        let h2 = Http2Connection::new(&builder, limits, self.down.pending_input(), out_limit, now);
        self.down.consume_input(input);
        self.stats.downstream_cx_http2_total.inc();
        self.stats.downstream_cx_http2_active.inc();
        self.h2 = Some(Box::new(h2));
    }

    /// Readiness on an upstream connection of one of the streams: that stream is
    /// visited in the next turn.
    pub(super) fn h2_upstream_event(&mut self, slot: TimerKey, peer_closed: bool) {
        let Some(h2) = self.h2.as_mut() else { return };
        let deliver = |st: &mut H2Stream| {
            let router = st.s.router.as_mut().is_some_and(|r| r.on_upstream_event(slot, peer_closed));
            st.s.async_calls.on_upstream_event(slot, peer_closed) | router
        };
        // An upstream connection is lent to one stream at a time: the one that had it
        // last usually still has it.
        if let Some(i) = h2.streams.upstream_owner(slot) {
            if h2.streams.get_mut(i).is_some_and(deliver) {
                h2.streams.mark(i);
                return;
            }
        }
        if let Some(i) = h2.streams.for_each_marking(deliver) {
            h2.streams.learn_upstream(slot, i);
        }
    }

    /// An event for the connection rather than one of its streams (the pool has room
    /// for a waiting request, another round): every stream is visited.
    pub(super) fn h2_visit_all(&mut self) {
        if let Some(h2) = self.h2.as_mut() {
            h2.streams.mark_all();
        }
    }

    /// Run the HTTP/2 connection until it makes no more progress.
    pub(super) fn process_h2<S: Stack>(&mut self, ctx: &mut Ctx<'_, S>) -> Status {
        let Some(mut h2) = self.h2.take() else {
            return Status::Open;
        };
        let mut accepted = Vec::new();
        for round in 0.. {
            if round >= ROUND_BUDGET {
                ctx.again();
                break;
            }
            let mut progress = self.h2_read(ctx, &h2.bufs);
            progress |= self.h2_check_floods(&mut h2);
            if h2.flood && h2.close_now {
                // An outbound flood: more output is pointless, the connection ends now.
                self.h2 = Some(h2);
                return self.close(ctx, true);
            }
            // The connection's drain, or the worker's drainClose() for this round: the
            // GOAWAY sequence (HTTP/1 would answer `connection: close`).
            if (self.draining || ctx.draining) && h2.start_goaway(ctx.now) {
                self.stats.http2_goaway_sent.inc();
                progress = true;
            }
            progress |= h2.poll_connection(&mut accepted);
            for (req, respond) in accepted.drain(..) {
                self.h2_begin_stream(ctx, &mut h2, req, respond);
                progress = true;
            }
            progress |= self.h2_run_streams(ctx, &mut h2);
            // Frames the streams queued go out on the next poll of the connection.
            progress |= h2.poll_connection(&mut accepted);
            progress |= self.h2_flush(ctx, &h2.bufs);
            progress |= h2.flag.take();
            if let Some(e) = h2.error.take() {
                flood::count(&self.stats, &e, &h2.bufs.lock().goaway);
            }
            if self.down.dead {
                self.h2 = Some(h2);
                return self.close(ctx, true);
            }
            if matches!(h2.state, State::Closed) && accepted.is_empty() {
                let flushed = h2.bufs.lock().out_len() == 0 && !self.down.has_output();
                let since = *h2.closed_at.get_or_insert(ctx.now);
                let late = ctx.now >= since + self.cfg.delayed_close_timeout.unwrap_or(CLOSE_GRACE);
                if flushed || late || h2.close_now {
                    self.h2 = Some(h2);
                    return self.close(ctx, !flushed);
                }
            }
            if !progress {
                break;
            }
        }
        if h2.streams.is_empty() && self.down.read_eof && matches!(h2.state, State::Handshaking(_)) {
            self.h2 = Some(h2);
            return self.close(ctx, false);
        }
        self.h2 = Some(h2);
        self.schedule(ctx);
        Status::Open
    }

    /// Socket bytes into `h2`'s input (the input is handed over, not copied, when
    /// `h2` took everything before).
    fn h2_read<S: Stack>(&mut self, ctx: &mut Ctx<'_, S>, bufs: &SharedBuffers) -> bool {
        let mut b = bufs.lock();
        if b.eof || b.pending_input().len() >= READ_CHUNK {
            return false;
        }
        let before = self.down.pending_input().len();
        let got = self.down.read(ctx.stack, READ_CHUNK, ctx.scratch);
        let n = self.down.pending_input().len() - before;
        if n > 0 {
            self.stats.downstream_cx_rx_bytes_total.add(n as u64);
            b.inbound.feed(self.down.pending_input());
            if b.pending_input().is_empty() {
                std::mem::swap(&mut b.input, &mut self.down.input);
                std::mem::swap(&mut b.input_pos, &mut self.down.input_pos);
            } else {
                b.input.extend_from_slice(self.down.pending_input());
            }
            self.down.consume_input(self.down.pending_input().len());
        }
        if self.down.read_eof || self.down.dead {
            b.eof = true;
            return true;
        }
        got
    }

    /// Envoy's flood limits (`ProtocolConstraints`), which `h2` does not apply as
    /// Envoy does: an inbound flood ends the connection with GOAWAY ENHANCE_YOUR_CALM;
    /// an outbound one (the client does not read what it asks for) closes it at once
    /// (`close_now`).
    fn h2_check_floods(&mut self, h2: &mut Http2Connection) -> bool {
        if h2.flood {
            return false;
        }
        let (inbound, outbound) = {
            let mut b = h2.bufs.lock();
            let queued = b.out_len() + self.down.out_len();
            b.goaway.still_queued(queued);
            let http2 = &self.cfg.http2;
            (
                b.inbound.flood(b.goaway.data_frames),
                b.goaway.outbound_flood(http2.max_outbound_frames, http2.max_outbound_control_frames),
            )
        };
        if let Some(o) = outbound {
            match o {
                flood::OutboundFlood::Frames => self.stats.http2_outbound_flood.inc(),
                flood::OutboundFlood::ControlFrames => self.stats.http2_outbound_control_flood.inc(),
            }
            tracing::debug!(peer = %self.down.peer, "http2 outbound flood: {o:?}");
            h2.flood = true;
            h2.close_now = true;
            return true;
        }
        let Some(i) = inbound else {
            return false;
        };
        let State::Open(conn) = &mut h2.state else {
            return false;
        };
        match i {
            flood::InboundFlood::EmptyFrames => self.stats.http2_inbound_empty_frames_flood.inc(),
            flood::InboundFlood::PriorityFrames => self.stats.http2_inbound_priority_frames_flood.inc(),
            flood::InboundFlood::WindowUpdateFrames => self.stats.http2_inbound_window_update_frames_flood.inc(),
        }
        tracing::debug!(peer = %self.down.peer, "http2 inbound flood: {i:?}");
        conn.abrupt_shutdown(Reason::ENHANCE_YOUR_CALM);
        h2.flood = true;
        true
    }

    /// `h2`'s frames to the socket (handed over, not copied, when the connection's own
    /// output is empty). They stay in `h2`'s buffer while the connection's output holds
    /// its buffer limit: a client that does not read then stops `h2` (its writes pend,
    /// and it reads no more frames that need an answer), so a PING or SETTINGS flood
    /// from a client that never reads is back-pressured instead of queued.
    fn h2_flush<S: Stack>(&mut self, ctx: &mut Ctx<'_, S>, bufs: &SharedBuffers) -> bool {
        let mut b = bufs.lock();
        if b.out_len() > 0 {
            if !self.down.has_output() && self.down.out_len() == 0 {
                std::mem::swap(&mut b.out, &mut self.down.out);
                std::mem::swap(&mut b.out_pos, &mut self.down.out_pos);
            } else if self.down.out_len() < b.out_limit {
                let pos = b.out_pos;
                self.down.out.extend_from_slice(&b.out[pos..]);
                b.out.clear();
                b.out_pos = 0;
            }
        }
        drop(b);
        let sent = self.down.flush(ctx.stack);
        if sent > 0 {
            self.stats.downstream_cx_tx_bytes_total.add(sent as u64);
        }
        sent > 0
    }

    /// A new stream: its request head, then the same path as an HTTP/1 request.
    fn h2_begin_stream<S: Stack>(
        &mut self,
        ctx: &mut Ctx<'_, S>,
        h2: &mut Http2Connection,
        req: http::Request<RecvStream>,
        respond: SendResponse<Bytes>,
    ) {
        if h2.active_streams() == 0 {
            self.take_new_routes();
        }
        self.requests += 1;
        self.stats.downstream_rq_total.inc();
        self.stats.downstream_rq_http2_total.inc();
        self.stats.downstream_rq_active.inc();
        let (parts, recv) = req.into_parts();
        let mut io = H2StreamIo::new(self.down.peer, self.down.local, recv, respond);
        let mut s = h2.spare.pop().unwrap_or_else(|| Box::new(Stream::new(ctx.now)));
        let meta = match request::convert(&parts, io.recv_end, self.down.tls, &self.cfg.settings, &mut s.head) {
            Ok(meta) => meta,
            Err(why) => {
                tracing::debug!(peer = %self.down.peer, why, "http2 request refused");
                self.stats.http2_rx_messaging_error.inc();
                self.stats.downstream_rq_active.dec();
                self.stats.http2_tx_reset.inc();
                io.send_reset(Reason::PROTOCOL_ERROR);
                h2.spare.push(s);
                return;
            }
        };
        let body = crate::http::codec::BodyDecoder::new(meta.framing, 0);
        s.begin(meta, body, ctx.now, ctx.wall);
        s.request_done = io.recv_end;
        s.close_after = false;
        if let Some(max) = self.cfg.max_requests_per_connection {
            if self.requests >= max && !self.draining {
                self.stats.downstream_cx_max_requests_reached.inc();
                self.draining = true;
            }
        }
        self.compute_connection_facts();
        let info = super::downstream_info(&self.down, &self.xfcc_element);
        // A literal, not `h2_cx`: `info` borrows the XFCC element from the connection.
        let mut cx = StreamCx {
            cfg: &self.cfg,
            stats: &self.stats,
            stream: &mut s,
            io: &mut io,
            original_dst: self.original_dst,
            draining: self.draining,
            peer_facts: self.peer_facts.as_ref().unwrap_or(&super::NO_PEER_FACTS),
        };
        cx.decode_headers(ctx, &info, meta.expect_continue);
        h2.streams.insert(H2Stream { s, io });
    }

    /// One HTTP/2 stream (taken out of the connection for the event) with what it
    /// shares with its connection.
    pub(super) fn h2_cx<'a>(&'a self, s: &'a mut Stream, io: &'a mut H2StreamIo) -> StreamCx<'a, H2StreamIo> {
        StreamCx {
            cfg: &self.cfg,
            stats: &self.stats,
            stream: s,
            io,
            original_dst: self.original_dst,
            draining: self.draining,
            peer_facts: self.peer_facts.as_ref().unwrap_or(&super::NO_PEER_FACTS),
        }
    }

    /// One round of the ready streams (`streams.rs`): request body in, router,
    /// response out, the end. A stream that moved is visited again next round; each
    /// visited stream's earliest deadline is armed.
    fn h2_run_streams<S: Stack>(&mut self, ctx: &mut Ctx<'_, S>, h2: &mut Http2Connection) -> bool {
        let mut progress = false;
        let limit = self.cfg.buffer_limit;
        let mut visit = std::mem::take(&mut h2.visit);
        h2.streams.take_ready(&mut visit);
        for &i in &visit {
            let Some((st, waker)) = h2.streams.get_with_waker(i) else {
                continue;
            };
            let mut cx = Context::from_waker(waker);
            let mut moved = false;
            let got = st.io.pull(&mut cx, limit);
            if got > 0 {
                st.s.bytes_received += got as u64;
                st.s.last_activity = ctx.now;
                moved = true;
            }
            if st.io.poll_client_reset(&mut cx) && !st.s.response_done {
                self.stats.http2_rx_reset.inc();
            }
            let mut scx = self.h2_cx(&mut st.s, &mut st.io);
            if !scx.io.reset {
                moved |= scx.drive_async(ctx);
                if scx.stream.phase == FilterPhase::Decoding {
                    moved |= scx.feed_filters(ctx);
                }
                if scx.stream.phase == FilterPhase::Decoding
                    && scx.stream.filters.wake_at().is_some_and(|t| ctx.now >= t)
                {
                    scx.run_filters(ctx, true);
                    moved = true;
                }
                if scx.stream.router.is_some() {
                    let step = scx.drive_router(ctx);
                    moved |= step.progress;
                    if step.reset_downstream {
                        self.stats.http2_tx_reset.inc();
                        scx.io.send_reset(Reason::INTERNAL_ERROR);
                    }
                } else if scx.stream.response_done && !scx.stream.request_done {
                    // Answered locally before the body arrived: drop it as it comes.
                    let n = scx.io.input_len();
                    scx.io.consume_body(n);
                    scx.stream.rq_body_bytes += n as u64;
                    scx.stream.request_done = scx.io.recv_end;
                }
                if scx.io.push(&mut cx) {
                    scx.stream.last_activity = ctx.now;
                    moved = true;
                }
            }
            let done = scx.io.reset || (scx.stream.response_done && scx.io.finished);
            if done {
                if !scx.io.reset && !scx.io.recv_end {
                    // The response is complete and the client still sends: Envoy
                    // resets the rest of the request (RST_STREAM NO_ERROR).
                    scx.io.send_reset(Reason::NO_ERROR);
                }
                let aborted = !scx.stream.response_done;
                if aborted {
                    scx.stream.flags.set(ResponseFlags::DOWNSTREAM_CONNECTION_TERMINATION);
                }
                scx.end_stream(ctx, aborted);
                if let Some(st) = h2.streams.remove(i) {
                    if h2.spare.len() < SPARE_STREAMS {
                        h2.spare.push(st.s);
                    }
                }
                if h2.streams.is_empty() {
                    h2.idle_since = ctx.now;
                }
                progress = true;
                continue;
            }
            let deadline = self.h2_stream_deadline(ctx, st);
            h2.streams.arm(i, deadline);
            if moved {
                h2.streams.mark(i);
                progress = true;
            }
        }
        h2.visit = visit;
        progress
    }

    /// The connection goes away: every stream ends (reset), each logged.
    pub(super) fn h2_abort_streams<S: Stack>(&mut self, ctx: &mut Ctx<'_, S>) {
        let Some(mut h2) = self.h2.take() else {
            return;
        };
        for mut st in h2.streams.drain() {
            let mut scx = self.h2_cx(&mut st.s, &mut st.io);
            if !scx.stream.response_done {
                self.stats.downstream_cx_destroy_remote_active_rq.inc();
                scx.stream.flags.set(ResponseFlags::DOWNSTREAM_CONNECTION_TERMINATION);
            }
            let aborted = !scx.stream.response_done;
            scx.end_stream(ctx, aborted);
        }
        h2.state = State::Closed;
        self.h2 = Some(h2);
    }
}
