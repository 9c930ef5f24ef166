//! tcp_proxy: relay a downstream connection to an upstream host, both ways.
//!
//! The session connects to a host of its cluster (weighted clusters picked per
//! connection; hosts by the cluster's per-worker balancer), trying other hosts up to
//! `max_connect_attempts`, each bounded by the cluster's `connect_timeout`; when no
//! upstream can be reached the downstream is closed at once. Once connected, bytes move
//! both ways through the worker's scratch buffer straight into the other socket; only
//! what the other side will not take yet is queued, and reading stops while a queue is
//! at `per_connection_buffer_limit_bytes` (backpressure, never unbounded buffering).
//! A FIN is passed on once everything before it was delivered (half-close both ways);
//! a reset or error on one side (Envoy's `RemoteClose` of that connection) flushes what
//! is queued towards the other and closes it (`FlushWrite`), whether or not the other
//! side finished sending: bytes it sent that were never read make that close a reset
//! (the kernel's rule for closing a socket with unread data), and the session ends
//! instead of waiting, half-closed, for a FIN that the paused reader would never see.
//! `idle_timeout` and `max_downstream_connection_duration` end the session.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_config::tcp_proxy::TcpProxy;
use sluice_stack::{SocketId, Stack};

use crate::buffer::Buffer;
use crate::stats::{ClusterStats, TcpProxyStats};
use crate::timer::earliest;
use crate::transport::TransportSocket;
use crate::upstream::cluster_manager::{release, try_acquire, ClusterInfo};
use crate::upstream::host::Host;
use crate::upstream::load_balancer::LbContext;
use crate::upstream::outlier::Outcome;
use crate::worker_ctx::Ctx;

/// Most bytes moved per direction per handler call before yielding to other
/// connections (the rest is done in the next round).
const ROUND_BUDGET: usize = 256 * 1024;

/// A compiled tcp_proxy filter.
#[derive(Debug)]
pub struct TcpProxyConfig {
    pub stat_prefix: String,
    /// (cluster index, weight)
    pub clusters: Vec<(usize, u32)>,
    total_weight: u64,
    pub idle_timeout: Option<Duration>,
    pub max_connect_attempts: u32,
    pub max_downstream_connection_duration: Option<Duration>,
}

impl TcpProxyConfig {
    pub fn new(c: &TcpProxy, clusters: Vec<(usize, u32)>) -> TcpProxyConfig {
        let total_weight = clusters.iter().map(|(_, w)| *w as u64).sum();
        TcpProxyConfig {
            stat_prefix: c.stat_prefix.clone(),
            clusters,
            total_weight,
            idle_timeout: c.idle_timeout,
            max_connect_attempts: c.max_connect_attempts,
            max_downstream_connection_duration: c.max_downstream_connection_duration,
        }
    }

    /// Pick a cluster by weight with a uniform random number.
    pub fn pick_cluster(&self, random: u64) -> usize {
        if self.clusters.len() == 1 {
            return self.clusters[0].0;
        }
        let mut r = random % self.total_weight.max(1);
        for (idx, w) in &self.clusters {
            if r < *w as u64 {
                return *idx;
            }
            r -= *w as u64;
        }
        self.clusters[0].0
    }
}

/// One side of the relay (also the sides of an upgraded HTTP stream, http/tunnel.rs).
#[derive(Debug)]
pub(crate) struct Side {
    pub(crate) socket: SocketId,
    /// Read may make progress (set by events, cleared by WouldBlock).
    pub(crate) readable: bool,
    /// The peer sent FIN.
    pub(crate) read_eof: bool,
    /// We sent FIN.
    pub(crate) write_shut: bool,
    /// Reset or failed: the socket is closed.
    pub(crate) dead: bool,
    /// Raw, or TLS.
    pub(crate) transport: TransportSocket,
}

impl Side {
    pub(crate) fn new(socket: SocketId, transport: TransportSocket) -> Side {
        Side { socket, readable: true, read_eof: false, write_shut: false, dead: false, transport }
    }
}

enum State {
    Connecting { deadline: Instant },
    Connected,
}

/// Why a session ended (for logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    Done,
    NoHealthyUpstream,
    ConnectFailed,
    Overflow,
    IdleTimeout,
    MaxDuration,
    Drained,
    /// The downstream's TLS handshake outlived `transport_socket_connect_timeout`.
    TransportConnectTimeout,
}

pub struct TcpProxySession {
    config: Arc<TcpProxyConfig>,
    stats: Arc<TcpProxyStats>,
    cluster: Arc<ClusterInfo>,
    cluster_stats: Arc<ClusterStats>,
    limit: usize,
    downstream: Side,
    upstream: Option<Side>,
    host: Option<Arc<Host>>,
    state: State,
    attempts: u32,
    tried: Vec<usize>,
    original_dst: Option<SocketAddr>,
    /// Bytes from downstream waiting for the upstream, and the reverse.
    d2u: Buffer,
    u2d: Buffer,
    last_activity: Instant,
    started: Instant,
    timer_at: Option<Instant>,
    counted_cx: bool,
    /// The connected session counts as an active request on its host (least request).
    counted_rq: bool,
}

/// Whether a session is still open after a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Open,
    Closed(CloseReason),
}

/// Token sub-ids of a session's sockets.
pub const DOWNSTREAM: usize = 0;
pub const UPSTREAM: usize = 1;

impl TcpProxySession {
    /// Start serving `downstream` (already registered with the connection's token).
    #[allow(clippy::too_many_arguments)]
    pub fn start<S: Stack>(
        ctx: &mut Ctx<'_, S>,
        config: Arc<TcpProxyConfig>,
        stats: Arc<TcpProxyStats>,
        downstream: SocketId,
        transport: TransportSocket,
        buffer_limit: usize,
        original_dst: Option<SocketAddr>,
        token_base: usize,
    ) -> (TcpProxySession, Status) {
        stats.downstream_cx_total.inc();
        let cluster_idx = config.pick_cluster(ctx.rng.next_u64());
        let cluster = Arc::clone(&ctx.clusters.clusters[cluster_idx].info);
        let cluster_stats = Arc::clone(&ctx.cluster_stats[cluster_idx]);
        let mut s = TcpProxySession {
            config,
            stats,
            cluster,
            cluster_stats,
            limit: buffer_limit,
            downstream: Side::new(downstream, transport),
            upstream: None,
            host: None,
            state: State::Connected,
            attempts: 0,
            tried: Vec::new(),
            original_dst,
            d2u: Buffer::new(),
            u2d: Buffer::new(),
            last_activity: ctx.now,
            started: ctx.now,
            timer_at: None,
            counted_cx: false,
            counted_rq: false,
        };
        let status = s.connect_next(ctx, token_base);
        (s, status)
    }

    /// Begin the next connect attempt, or give up.
    fn connect_next<S: Stack>(&mut self, ctx: &mut Ctx<'_, S>, token_base: usize) -> Status {
        let cluster_idx = self.cluster.index;
        loop {
            if self.attempts >= self.config.max_connect_attempts {
                if self.attempts > 1 {
                    self.cluster_stats.upstream_cx_connect_attempts_exceeded.inc();
                }
                return self.close(ctx, CloseReason::ConnectFailed);
            }
            let lb = LbContext { exclude: &self.tried, random: ctx.rng.next_u64(), hash: None };
            let Some((idx, host)) = ctx.clusters.clusters[cluster_idx].choose_host(&lb, self.original_dst) else {
                self.cluster_stats.upstream_cx_none_healthy.inc();
                self.stats.downstream_cx_no_route.inc();
                return self.close(ctx, CloseReason::NoHealthyUpstream);
            };
            if !try_acquire(&self.cluster.resources.connections, self.cluster.max_connections()) {
                self.cluster_stats.upstream_cx_overflow.inc();
                return self.close(ctx, CloseReason::Overflow);
            }
            self.attempts += 1;
            self.tried.push(idx);
            self.cluster_stats.upstream_cx_total.inc();
            self.cluster_stats.upstream_cx_active.inc();
            host.cx_active.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Host::inc(&host.cx_total);
            self.counted_cx = true;
            match ctx.stack.connect(host.address) {
                Ok(sock) => {
                    if let Err(e) = ctx.stack.register(
                        sock,
                        sluice_stack::Token(token_base | UPSTREAM),
                        sluice_stack::Interest::BOTH,
                    ) {
                        tracing::warn!("cannot register upstream socket: {e}");
                        ctx.stack.close(sock);
                        self.host = Some(host);
                        self.release_upstream(true);
                        continue;
                    }
                    tracing::debug!(host = %host.address, attempt = self.attempts, "tcp_proxy: connecting upstream");
                    let transport = match &self.cluster.tls {
                        Some(tls) => match TransportSocket::tls_client(tls, host.address.ip()) {
                            Ok(t) => t,
                            Err(e) => {
                                tracing::warn!(cluster = %self.cluster.name(), "cannot start upstream TLS: {e:?}");
                                ctx.stack.close(sock);
                                self.release_upstream(true);
                                continue;
                            }
                        },
                        None => TransportSocket::Raw,
                    };
                    self.upstream = Some(Side::new(sock, transport));
                    self.host = Some(host);
                    let deadline = ctx.now + self.cluster.config.connect_timeout;
                    self.state = State::Connecting { deadline };
                    self.schedule(ctx);
                    return Status::Open;
                }
                Err(e) => {
                    tracing::debug!(host = %host.address, "tcp_proxy: connect failed at once: {e}");
                    self.cluster_stats.upstream_cx_connect_fail.inc();
                    self.cluster.put_result(&host, Outcome::LocalOriginConnectFailed);
                    Host::inc(&host.cx_connect_fail);
                    // Release this attempt's host count too.
                    self.host = Some(host);
                    self.release_upstream(false);
                }
            }
        }
    }

    /// Forget the upstream attempt's resources (and its socket, if any).
    fn release_upstream(&mut self, _local: bool) {
        if self.counted_rq {
            self.counted_rq = false;
            if let Some(h) = &self.host {
                h.rq_active.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
        if self.counted_cx {
            self.counted_cx = false;
            self.cluster_stats.upstream_cx_active.dec();
            self.cluster_stats.upstream_cx_destroy.inc();
            release(&self.cluster.resources.connections);
            if let Some(h) = &self.host {
                h.cx_active.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
        self.host = None;
    }

    /// Handle readiness on one of the session's sockets.
    pub fn on_event<S: Stack>(&mut self, ctx: &mut Ctx<'_, S>, sub: usize, token_base: usize) -> Status {
        match sub {
            DOWNSTREAM => self.downstream.readable = true,
            _ => {
                if let Some(u) = &mut self.upstream {
                    u.readable = true;
                }
            }
        }
        if let State::Connecting { .. } = self.state {
            if sub != UPSTREAM {
                return Status::Open;
            }
            let sock = match &self.upstream {
                Some(u) => u.socket,
                None => return Status::Open,
            };
            match ctx.stack.connect_result(sock) {
                Ok(()) => {
                    tracing::debug!("tcp_proxy: upstream connected");
                    if let Some(h) = &self.host {
                        self.cluster.put_result(h, Outcome::LocalOriginConnectSuccessFinal);
                        h.rq_active.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        self.counted_rq = true;
                    }
                    self.state = State::Connected;
                    self.last_activity = ctx.now;
                    self.downstream.readable = true;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Status::Open,
                Err(e) => {
                    tracing::debug!("tcp_proxy: upstream connect failed: {e}");
                    self.cluster_stats.upstream_cx_connect_fail.inc();
                    if let Some(h) = &self.host {
                        self.cluster.put_result(h, Outcome::LocalOriginConnectFailed);
                        Host::inc(&h.cx_connect_fail);
                    }
                    return self.retry_connect(ctx, token_base);
                }
            }
        }
        self.relay(ctx)
    }

    fn retry_connect<S: Stack>(&mut self, ctx: &mut Ctx<'_, S>, token_base: usize) -> Status {
        if let Some(u) = self.upstream.take() {
            ctx.stack.close(u.socket);
        }
        self.release_upstream(true);
        self.connect_next(ctx, token_base)
    }

    /// Another round after the budget ran out.
    pub fn resume<S: Stack>(&mut self, ctx: &mut Ctx<'_, S>) -> Status {
        match self.state {
            State::Connected => self.relay(ctx),
            State::Connecting { .. } => Status::Open,
        }
    }

    fn relay<S: Stack>(&mut self, ctx: &mut Ctx<'_, S>) -> Status {
        let Some(up) = self.upstream.as_mut() else {
            return Status::Open;
        };
        let limit = self.limit;
        let a = pump(ctx, &mut self.downstream, up, &mut self.d2u, limit);
        let b = pump(ctx, up, &mut self.downstream, &mut self.u2d, limit);
        if a.moved + b.moved > 0 {
            self.last_activity = ctx.now;
        }
        self.stats.downstream_cx_rx_bytes_total.add(a.read as u64);
        self.stats.downstream_cx_tx_bytes_total.add(b.written as u64);
        self.cluster_stats.upstream_cx_tx_bytes_total.add(a.written as u64);
        self.cluster_stats.upstream_cx_rx_bytes_total.add(b.read as u64);
        if a.paused {
            self.stats.downstream_flow_control_paused_reading_total.inc();
        }
        if a.more || b.more {
            ctx.again();
        }
        let up = self.upstream.as_ref().expect("checked above");
        let d = &self.downstream;
        // A direction is finished when its source stopped and what it sent was passed
        // on with a FIN, or when its destination is gone.
        let d2u_done = (d.read_eof || d.dead) && ((self.d2u.is_empty() && up.write_shut) || up.dead);
        let u2d_done = (up.read_eof || up.dead) && ((self.u2d.is_empty() && d.write_shut) || d.dead);
        // A side that is gone takes the session with it once what it sent is delivered.
        let upstream_gone = up.dead && (self.u2d.is_empty() || d.dead);
        let downstream_gone = d.dead && (self.d2u.is_empty() || up.dead);
        if upstream_gone || downstream_gone {
            // Bytes the survivor sent that were never read make its close a reset, on
            // every stack (the kernel's close does so by itself).
            let up = self.upstream.as_mut().expect("checked above");
            for side in [&mut self.downstream, up] {
                if !side.dead && side.readable && !side.read_eof {
                    side.dead = true;
                    ctx.stack.abort(side.socket);
                }
            }
            return self.close(ctx, CloseReason::Done);
        }
        if d2u_done && u2d_done {
            return self.close(ctx, CloseReason::Done);
        }
        self.schedule(ctx);
        Status::Open
    }

    /// Timer: check connect, idle and duration deadlines.
    pub fn on_timer<S: Stack>(&mut self, ctx: &mut Ctx<'_, S>, fired: Instant, token_base: usize) -> Status {
        if self.timer_at == Some(fired) {
            self.timer_at = None;
        }
        if self.downstream.transport.connect_timed_out(ctx.now) {
            // transport_socket_connect_timeout: the TLS handshake did not finish.
            tracing::debug!("tcp_proxy: downstream transport handshake timed out");
            return self.close(ctx, CloseReason::TransportConnectTimeout);
        }
        if let State::Connecting { deadline } = self.state {
            if ctx.now >= deadline {
                tracing::debug!("tcp_proxy: upstream connect timeout");
                self.cluster_stats.upstream_cx_connect_timeout.inc();
                self.cluster_stats.upstream_cx_connect_fail.inc();
                if let Some(h) = &self.host {
                    self.cluster.put_result(h, Outcome::LocalOriginTimeout);
                    Host::inc(&h.cx_connect_fail);
                }
                return self.retry_connect(ctx, token_base);
            }
        }
        if let Some(d) = self.config.max_downstream_connection_duration {
            if ctx.now >= self.started + d {
                self.stats.max_downstream_connection_duration.inc();
                return self.close(ctx, CloseReason::MaxDuration);
            }
        }
        if let (State::Connected, Some(idle)) = (&self.state, self.config.idle_timeout) {
            if ctx.now >= self.last_activity + idle {
                self.stats.idle_timeout.inc();
                return self.close(ctx, CloseReason::IdleTimeout);
            }
        }
        self.schedule(ctx);
        Status::Open
    }

    fn schedule<S: Stack>(&mut self, ctx: &mut Ctx<'_, S>) {
        let connect = match self.state {
            State::Connecting { deadline } => Some(deadline),
            State::Connected => None,
        };
        let idle = match self.state {
            State::Connected => self.config.idle_timeout.map(|d| self.last_activity + d),
            State::Connecting { .. } => None,
        };
        let max = self.config.max_downstream_connection_duration.map(|d| self.started + d);
        let next = earliest([connect, idle, max, self.downstream.transport.connect_deadline()]);
        let mut at = self.timer_at;
        ctx.arm(&mut at, next);
        self.timer_at = at;
    }

    /// The worker is draining: tcp sessions finish on their own (bounded by the drain
    /// deadline, after which the worker calls [`TcpProxySession::abort`]).
    pub fn close<S: Stack>(&mut self, ctx: &mut Ctx<'_, S>, reason: CloseReason) -> Status {
        tracing::debug!(?reason, "tcp_proxy: session closed");
        if let Some(u) = self.upstream.take() {
            if !u.dead {
                match reason {
                    CloseReason::Done => ctx.stack.close(u.socket),
                    _ => ctx.stack.abort(u.socket),
                }
            }
        }
        self.release_upstream(true);
        if !self.downstream.dead {
            self.downstream.dead = true;
            ctx.stack.close(self.downstream.socket);
        }
        Status::Closed(reason)
    }

    /// End the session now (drain deadline passed).
    pub fn abort<S: Stack>(&mut self, ctx: &mut Ctx<'_, S>) -> Status {
        self.close(ctx, CloseReason::Drained)
    }
}

/// What one pump call did.
#[derive(Debug, Default)]
pub(crate) struct Pumped {
    pub(crate) read: usize,
    pub(crate) written: usize,
    pub(crate) moved: usize,
    /// Budget ran out while the source may have more.
    pub(crate) more: bool,
    /// Reading stopped because the queue reached the limit.
    pub(crate) paused: bool,
}

/// Move bytes from `src` to `dst`, queueing in `pending` what `dst` will not take.
pub(crate) fn pump<S: Stack>(
    ctx: &mut Ctx<'_, S>,
    src: &mut Side,
    dst: &mut Side,
    pending: &mut Buffer,
    limit: usize,
) -> Pumped {
    let mut out = Pumped::default();
    if !dst.dead && dst.transport.flush(ctx.stack, dst.socket).is_err() {
        dst.dead = true;
        ctx.stack.abort(dst.socket);
    }
    if dst.dead {
        pending.clear();
    } else if !pending.is_empty() {
        let n = write_some(ctx.stack, dst, pending.as_slice());
        pending.consume(n);
        out.written += n;
    }
    while src.readable && !src.read_eof && !src.dead && !dst.dead {
        if pending.len() >= limit {
            out.paused = true;
            break;
        }
        if out.read >= ROUND_BUDGET {
            out.more = true;
            break;
        }
        let room = (limit - pending.len()).min(ctx.scratch.len());
        match src.transport.read(ctx.stack, src.socket, &mut ctx.scratch[..room]) {
            Ok(0) => src.read_eof = true,
            Ok(n) => {
                out.read += n;
                let w = if pending.is_empty() { write_some(ctx.stack, dst, &ctx.scratch[..n]) } else { 0 };
                out.written += w;
                if w < n {
                    pending.extend(&ctx.scratch[w..n]);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => src.readable = false,
            Err(e) => {
                tracing::debug!("tcp_proxy: read error: {e}");
                src.dead = true;
                ctx.stack.abort(src.socket);
            }
        }
    }
    if (src.read_eof || src.dead) && pending.is_empty() && !dst.write_shut && !dst.dead {
        if let Err(e) = dst.transport.shutdown_write(ctx.stack, dst.socket) {
            tracing::debug!("tcp_proxy: shutdown error: {e}");
            dst.dead = true;
            ctx.stack.abort(dst.socket);
        }
        dst.write_shut = true;
    }
    out.moved = out.read + out.written;
    out
}

/// Write as much as `dst` takes now; a write error marks it dead.
fn write_some<S: Stack>(stack: &mut S, dst: &mut Side, mut data: &[u8]) -> usize {
    let mut total = 0;
    while !data.is_empty() {
        match dst.transport.write(stack, dst.socket, data) {
            Ok(0) => break,
            Ok(n) => {
                total += n;
                data = &data[n..];
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) => {
                tracing::debug!("tcp_proxy: write error: {e}");
                dst.dead = true;
                stack.abort(dst.socket);
                break;
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weighted_cluster_pick_follows_weights() {
        let c = TcpProxyConfig {
            stat_prefix: "t".into(),
            clusters: vec![(0, 1), (1, 3)],
            total_weight: 4,
            idle_timeout: None,
            max_connect_attempts: 1,
            max_downstream_connection_duration: None,
        };
        assert_eq!(c.pick_cluster(0), 0);
        assert_eq!(c.pick_cluster(1), 1);
        assert_eq!(c.pick_cluster(3), 1);
        assert_eq!(c.pick_cluster(4), 0);
    }
}
