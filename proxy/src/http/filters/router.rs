//! The router filter: send a routed request upstream and its response back (Envoy's
//! router.cc and upstream_request.cc, for HTTP/1.1 upstreams).
//!
//! Per request it picks a host with the cluster's per-worker balancer (on a retry with
//! `retry_host_predicate: previous_hosts`, re-picking a host an earlier try used up to
//! `host_selection_retry_max_attempts` times), borrows an idle connection from the worker's pool or opens a
//! new one (bounded by the cluster's `max_connections`; beyond it the request waits,
//! bounded by `max_pending_requests`, else 503 with `x-envoy-overloaded`), streams the
//! request (head, then body with backpressure), and streams the response back. The
//! route `timeout` spans all tries (504 `upstream request timeout`, or 204 with
//! `x-envoy-upstream-rq-timeout-alt-response`); `per_try_timeout` bounds each try.
//! As Envoy's `onRequestComplete`, both start once the downstream request is complete
//! (its whole body received), so a slow upload is bounded by the stream timeouts, not
//! by the route's.
//! Failed tries are retried per the retry policy with jittered back-off while the
//! request body still fits the retry buffer and nothing of the response reached the
//! client. An upstream failure after the response started resets the downstream.

mod h2;
mod timing;

use crate::runtime::maintenance;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_config::cluster::LbPolicy;
use sluice_config::route::{IdleTimeout, RetryHostPredicate};
use sluice_config::upstream_http::{UpstreamCodec, UpstreamProtocol};
use sluice_stack::{Interest, Stack};

use crate::http::codec::{
    encode_request_head, BodyDecoder, BodyEncoder, OutgoingBody, ResponseMeta, Status as ParseStatus,
};
use crate::http::codec_client::{CodecClient, ReadOutcome};
use crate::http::conn_manager::config::HcmConfig;
use crate::http::conn_manager::stream::Stream;
use crate::http::conn_manager::upgrade::{self, UpgradeKind};
use crate::http::flow_control;
use crate::http::local_reply;
use crate::http::response_flags::ResponseFlags;
use crate::http::stream_encoder::ServerStream;
use crate::router::hash;
use crate::router::hedge::{self, HedgeEvent, HedgedTry};
use crate::router::internal_redirect::{self, Passthrough, RedirectInput};
use crate::router::retry::{ResetReason, RetryState};
use crate::router::shadow::start_shadows;
use crate::router::timeout::{final_timeout, FinalTimeout};
use crate::router::{RouteRef, StreamInfo};
use crate::stats::ClusterStats;
use crate::timer::{earliest, TimerKey};
use crate::transport::TransportSocket;
use crate::upstream::cluster_manager::ClusterInfo;
use crate::upstream::conn_pool::{close_client, rest};
use crate::upstream::host::Host;
use crate::upstream::load_balancer::LbContext;
use crate::upstream::outlier::http as charge;
use crate::upstream::outlier::Outcome;
use crate::worker_ctx::Ctx;

/// A response the router wants the connection manager to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalReply {
    pub status: u16,
    pub body: &'static str,
    pub flags: ResponseFlags,
    /// Add `x-envoy-overloaded: true` (circuit breaker overflow).
    pub overloaded: bool,
}

impl LocalReply {
    fn new(status: u16, body: &'static str, flags: ResponseFlags) -> LocalReply {
        LocalReply { status, body, flags, overloaded: false }
    }

    fn overflow() -> LocalReply {
        LocalReply {
            status: 503,
            body: local_reply::UPSTREAM_OVERFLOW,
            flags: ResponseFlags::UPSTREAM_OVERFLOW,
            overloaded: true,
        }
    }
}

/// What one `drive` call did.
#[derive(Debug, Default)]
pub struct Step {
    pub progress: bool,
    pub reply: Option<LocalReply>,
    /// The upstream failed after the response started: reset the client.
    pub reset_downstream: bool,
    /// The upstream switched protocols (101, or 2xx to CONNECT): the stream becomes a
    /// tunnel over this try's connection ([`RouterState::take_tunnel`]).
    pub upgraded: bool,
    /// A redirect response met the route's internal redirect policy.
    pub redirect: Option<RedirectStep>,
}

/// What became of a response the route's `internal_redirect_policy` applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedirectStep {
    /// The request head is the redirected one (its body in `Stream::replay_body`): the
    /// stream starts again on this route (Envoy's `recreateStream`).
    Followed(RouteRef),
    /// The redirect goes to the client, for this reason.
    Passthrough(Passthrough),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    /// Waiting out a retry back-off.
    Backoff(Instant),
    /// No connection capacity: queued in the pool.
    WaitingCapacity,
    /// A new connection is being established.
    Connecting(Instant),
    /// Request going up, response coming down.
    Active,
    /// The response was delivered.
    Done,
}

#[derive(Debug)]
pub struct RouterState {
    cluster: usize,
    stats: Arc<ClusterStats>,
    phase: Phase,
    slot: Option<TimerKey>,
    client: Option<CodecClient>,
    upstream_event: bool,
    host: Option<Arc<Host>>,
    retry: Option<RetryState>,
    /// Hosts (indices) this request tried, in order.
    tried: Vec<usize>,
    /// `retry_host_predicate: previous_hosts`: a retry re-picks a tried host.
    previous_hosts: bool,
    /// `host_selection_retry_max_attempts`: re-picks allowed on a retry.
    host_selection_max_attempts: u32,
    attempts: u32,
    global_deadline: Option<Instant>,
    /// When the downstream request was complete: the route and per-try timeouts run
    /// from there.
    request_done_at: Option<Instant>,
    per_try: Option<Duration>,
    per_try_idle: Option<Duration>,
    try_deadline: Option<Instant>,
    try_activity: Instant,
    alt_response: bool,
    idle_override: Option<Option<Duration>>,
    duration_override: Option<Option<Duration>>,
    /// Raw request body bytes sent so far, kept for retries while they fit.
    body_copy: Vec<u8>,
    body_copy_ok: bool,
    body_encoder: BodyEncoder,
    /// Every request byte was handed to the connection.
    request_sent: bool,
    resp_meta: Option<ResponseMeta>,
    resp_body: BodyDecoder,
    try_started: Instant,
    hash: Option<u64>,
    counted_request: bool,
    counted_pending: bool,
    counted_retry: bool,
    include_attempt_count: bool,
    include_attempt_count_in_response: bool,
    /// The downstream's original destination (ORIGINAL_DST clusters).
    original_dst: Option<std::net::SocketAddr>,
    /// A `set-cookie` for the response (a generated hash cookie).
    set_cookie: Option<String>,
    /// Keep a copy of the request body (retries or mirrors need it).
    keep_body: bool,
    /// The route mirrors requests; shadows not started yet.
    shadow_pending: bool,
    route_timeout: Option<Duration>,
    /// An allowed upgrade or CONNECT (conn_manager/upgrade.rs).
    upgrade: UpgradeKind,
    /// A per-try timeout starts another try beside the first (router/hedge.rs).
    hedge_on_per_try_timeout: bool,
    /// The try that timed out and keeps running beside the current one.
    hedged: Option<HedgedTry>,
    /// The current try's per-try (or per-try idle) timeout fired softly (hedging).
    soft_timed_out: bool,
    /// The current try's stream when it goes over HTTP/2 (`router/h2.rs`).
    h2: Option<h2::H2Try>,
    /// Tries repeated because the upstream refused their stream unprocessed.
    unprocessed_retries: u32,
    /// The request's trailers (HTTP/2 downstream), kept for every HTTP/2 try.
    rq_trailers: Option<::http::HeaderMap>,
}

impl RouterState {
    /// Start routing the stream's request to `cluster`: timeouts, retry state, header
    /// finalization, then the first try.
    pub fn begin<S: Stack>(
        cfg: &HcmConfig,
        stream: &mut Stream,
        cluster: usize,
        info: &StreamInfo<'_>,
        original_dst: Option<std::net::SocketAddr>,
        ctx: &mut Ctx<'_, S>,
    ) -> Result<RouterState, LocalReply> {
        let key = &ctx.clusters.clusters[cluster].info.maintenance_key;
        let random = ctx.rng.next_u64();
        if let Some(reply) =
            maintenance::check(ctx.runtime, key, random, &ctx.cluster_stats[cluster], cfg.suppress_envoy_headers)
        {
            return Err(reply);
        }
        let route = stream.route.clone().expect("routed stream");
        let matched = cfg.routes.get(&route).expect("route from this table");
        let head = &mut stream.head;
        let policy = matched.retry_policy();
        let route_per_try = policy.and_then(|p| p.per_try_timeout);
        let hedge_on_per_try_timeout = hedge::hedge_on_per_try_timeout(matched.hedge_on_per_try_timeout(), head);
        let FinalTimeout { global: timeout, per_try } = final_timeout(
            matched.timeout(),
            route_per_try,
            head,
            cfg.respect_expected_rq_timeout,
            !cfg.suppress_envoy_headers,
            hedge_on_per_try_timeout,
        );
        let per_try_idle = policy.and_then(|p| p.per_try_idle_timeout);
        let alt_response = head.headers.remove(b"x-envoy-upstream-rq-timeout-alt-response") > 0;
        let retry = RetryState::new(policy, head);
        let local = info.downstream_local.unwrap_or_else(|| std::net::SocketAddr::from(([0, 0, 0, 0], 0)));
        let hashed = hash::evaluate(matched.hash_policy(), head, stream.remote, local);
        let (hash, set_cookie) = (hashed.hash, hashed.set_cookie);
        matched.finalize_request_headers(head, info, !cfg.suppress_envoy_headers);
        let override_of = |t: IdleTimeout| match t {
            IdleTimeout::Inherit => None,
            IdleTimeout::Disabled => Some(None),
            IdleTimeout::After(t) => Some(Some(t)),
        };
        let idle_override = override_of(matched.idle_timeout());
        let duration_override =
            crate::http::grpc::stream_duration_from_header(matched.grpc_timeout_header(), &stream.head)
                .or_else(|| override_of(matched.max_stream_duration()));
        let stats = Arc::clone(&ctx.cluster_stats[cluster]);
        let mut r = RouterState {
            cluster,
            stats,
            phase: Phase::Active,
            slot: None,
            client: None,
            upstream_event: false,
            host: None,
            retry,
            tried: Vec::new(),
            previous_hosts: policy.is_some_and(|p| p.retry_host_predicate.contains(&RetryHostPredicate::PreviousHosts)),
            host_selection_max_attempts: policy.map_or(1, |p| p.host_selection_retry_max_attempts),
            attempts: 0,
            global_deadline: None,
            request_done_at: None,
            per_try,
            per_try_idle,
            try_deadline: None,
            try_activity: ctx.now,
            alt_response,
            idle_override,
            duration_override,
            body_copy: Vec::new(),
            body_copy_ok: true,
            body_encoder: BodyEncoder::None,
            request_sent: false,
            resp_meta: None,
            resp_body: BodyDecoder::new(crate::http::codec::BodyFraming::None, 0),
            try_started: ctx.now,
            hash,
            counted_request: false,
            counted_pending: false,
            counted_retry: false,
            include_attempt_count: matched.include_request_attempt_count(),
            include_attempt_count_in_response: matched.include_attempt_count_in_response(),
            original_dst,
            keep_body: false,
            set_cookie,
            shadow_pending: !matched.mirror_policies().is_empty(),
            route_timeout: timeout,
            upgrade: stream.upgrade,
            hedge_on_per_try_timeout,
            hedged: None,
            soft_timed_out: false,
            h2: None,
            unprocessed_retries: 0,
            rq_trailers: None,
        };
        r.on_request_progress(stream, ctx.now);
        r.keep_body = r.retry.is_some() || r.shadow_pending || matched.internal_redirect_policy().is_some();
        r.body_copy_ok = r.keep_body;
        if let Some(body) = stream.replay_body.take() {
            // An internal redirect: the whole request body, buffered by the last router.
            r.body_copy = body;
            r.body_copy_ok = true;
        }
        r.stats.upstream_rq_total.inc();
        r.stats.upstream_rq_active.inc();
        r.attempt(cfg, stream, ctx)?;
        r.observe_timing(stream, ctx.now);
        Ok(r)
    }

    /// The route's stream idle timeout override, if it has one.
    pub fn idle_timeout_override(&self) -> Option<Option<Duration>> {
        self.idle_override
    }

    /// The route's maximum stream duration override, if it has one.
    pub fn max_stream_duration_override(&self) -> Option<Option<Duration>> {
        self.duration_override
    }

    /// An event on the upstream connection lent to this stream (`peer_closed`: it
    /// reports the upstream's FIN or RST). True when `slot` is this router's.
    pub fn on_upstream_event(&mut self, slot: TimerKey, peer_closed: bool) -> bool {
        let mut mine = false;
        if self.slot == Some(slot) {
            mine = true;
            self.upstream_event = true;
            if let Some(c) = self.client.as_mut() {
                c.readable = true;
                c.peer_closed |= peer_closed;
            }
        }
        if let Some(h) = self.hedged.as_mut().filter(|h| h.slot == slot) {
            mine = true;
            h.client.readable = true;
            h.client.peer_closed |= peer_closed;
        }
        mine
    }

    /// The earliest deadline the router waits for.
    pub fn next_deadline(&self) -> Option<Instant> {
        let phase = match self.phase {
            Phase::Backoff(t) | Phase::Connecting(t) => Some(t),
            _ => None,
        };
        let has_try = self.client.is_some() || self.h2.is_some();
        let idle = match (self.per_try_idle, self.resp_meta.is_none(), self.phase, has_try) {
            (Some(t), true, Phase::Active, true) if !self.soft_timed_out => Some(self.try_activity + t),
            _ => None,
        };
        let try_deadline = if self.resp_meta.is_none() { self.try_deadline } else { None };
        let h2_connect = self.h2.as_ref().filter(|_| self.resp_meta.is_none()).and_then(|t| t.connect_deadline);
        earliest([self.global_deadline, try_deadline, phase, idle, h2_connect])
    }

    /// One try: pick a host, get a connection, send.
    fn attempt<S: Stack>(
        &mut self,
        cfg: &HcmConfig,
        stream: &mut Stream,
        ctx: &mut Ctx<'_, S>,
    ) -> Result<(), LocalReply> {
        let info = Arc::clone(&ctx.clusters.clusters[self.cluster].info);
        if !self.counted_request {
            if !info.try_acquire_request() {
                self.stats.upstream_rq_pending_overflow.inc();
                return Err(LocalReply::overflow());
            }
            self.counted_request = true;
        }
        let dst = original_dst_for(&info, stream, self.original_dst);
        let Some((idx, host)) = self.choose_host(&info, dst, ctx) else {
            self.stats.upstream_cx_none_healthy.inc();
            return Err(LocalReply::new(503, local_reply::NO_HEALTHY_UPSTREAM, ResponseFlags::NO_HEALTHY_UPSTREAM));
        };
        stream.upstream_host = Some(host.address);
        stream.attempt_count += 1;
        let downstream_h2 = stream.head.version == Some(crate::http::Version::Http2);
        let protocol = info.config.http_protocol_options.protocol;
        // auto_config (Envoy's mixed pool): an HTTP/2 connection with room, else an idle
        // HTTP/1.1 one, else a new connection whose protocol ALPN decides.
        let auto_h2 = protocol == UpstreamProtocol::Auto
            && (ctx.pool.h2_with_capacity(self.cluster, host.address).is_some()
                || !ctx.pool.has_idle(self.cluster, host.address));
        if let (Some(tracer), Some(trace)) =
            (cfg.tracer.as_ref().filter(|t| t.spawns_upstream_spans()), stream.trace.as_deref_mut())
        {
            let start = crate::trace::upstream::TryStart {
                cluster: info.name(),
                host: host.address,
                attempt: stream.attempt_count,
                http2: self.upgrade == UpgradeKind::None
                    && (auto_h2 || protocol.codec_for(downstream_h2) == UpstreamCodec::Http2),
                now: ctx.now,
                wall: ctx.wall,
            };
            tracer.start_upstream(trace, &mut stream.head.headers, &start, ctx.rng);
        }
        if self.upgrade == UpgradeKind::None && (auto_h2 || protocol.codec_for(downstream_h2) == UpstreamCodec::Http2) {
            return match self.attempt_h2(&info, idx, host, ctx) {
                Ok(true) => {
                    self.release_pending(&info);
                    Ok(())
                }
                Ok(false) => self.wait_for_capacity(&info, ctx),
                Err(()) => self.fail(cfg, stream, ctx, ResetReason::ConnectFailure),
            };
        }
        // A terminated CONNECT needs a TCP connection of its own, never a pooled one.
        let pooled = match self.upgrade {
            UpgradeKind::ConnectTerminate => None,
            _ => ctx.pool.take_idle(self.cluster, host.address, ctx.key),
        };
        if let Some((slot, client)) = pooled {
            self.release_pending(&info);
            charge::request_sent(&info, &host);
            self.start_try(idx, host, slot, client, ctx);
            self.send_request(cfg, stream);
            return Ok(());
        }
        if info.try_acquire_connection(&host) {
            self.release_pending(&info);
            match ctx.stack.connect(host.address) {
                Ok(sock) => {
                    let slot = ctx.pool.new_busy(ctx.key);
                    if let Err(e) = ctx.stack.register(sock, ctx.pool.token(slot), Interest::BOTH) {
                        tracing::warn!("cannot register an upstream socket: {e}");
                        ctx.stack.close(sock);
                        ctx.pool.remove(slot);
                        info.release_connection(&host);
                        return Err(LocalReply::new(
                            503,
                            local_reply::CONNECT_FAILURE,
                            ResponseFlags::UPSTREAM_CONNECTION_FAILURE,
                        ));
                    }
                    self.stats.upstream_cx_total.inc();
                    self.stats.upstream_cx_http1_total.inc();
                    charge::connection_opened(&host);
                    self.stats.upstream_cx_active.inc();
                    let max_headers = info.config.http_protocol_options.common.max_headers_count;
                    let mut client = CodecClient::new(sock, Arc::clone(&host), idx, self.cluster, max_headers, ctx.now);
                    if let Some(tls) = &info.tls {
                        match TransportSocket::tls_client(tls, host.address.ip()) {
                            Ok(t) => client.transport = t,
                            Err(e) => {
                                tracing::warn!(cluster = %info.name(), "cannot start upstream TLS: {e:?}");
                                self.start_try(idx, host, slot, client, ctx);
                                self.drop_client(ctx, true);
                                return self.fail(cfg, stream, ctx, ResetReason::ConnectFailure);
                            }
                        }
                    }
                    self.start_try(idx, host, slot, client, ctx);
                    self.phase = Phase::Connecting(ctx.now + info.config.connect_timeout);
                    Ok(())
                }
                Err(e) => {
                    tracing::debug!(host = %host.address, "connect failed at once: {e}");
                    info.release_connection(&host);
                    charge::connect_failed(&info, &host, Outcome::LocalOriginConnectFailed);
                    self.stats.upstream_cx_connect_fail.inc();
                    self.tried.push(idx);
                    self.host = Some(host);
                    self.fail(cfg, stream, ctx, ResetReason::ConnectFailure)
                }
            }
        } else {
            self.wait_for_capacity(&info, ctx)
        }
    }

    /// No connection capacity: wait as a pending request, or overflow.
    fn wait_for_capacity<S: Stack>(&mut self, info: &ClusterInfo, ctx: &mut Ctx<'_, S>) -> Result<(), LocalReply> {
        if self.counted_pending || info.try_acquire_pending_request() {
            if !self.counted_pending {
                self.counted_pending = true;
                self.stats.upstream_rq_pending_total.inc();
                self.stats.upstream_rq_pending_active.inc();
                ctx.pool.wait_for_capacity(self.cluster, ctx.key);
            }
            self.phase = Phase::WaitingCapacity;
            Ok(())
        } else {
            self.stats.upstream_rq_pending_overflow.inc();
            Err(LocalReply::overflow())
        }
    }

    /// Envoy's `LoadBalancerBase::chooseHost` with the router as its context: on a
    /// retry with `previous_hosts`, a host this request tried is picked again, up to
    /// `host_selection_retry_max_attempts` more times, and the last pick stands. A
    /// hashing balancer walks past the tried hosts on a re-pick (Envoy's ring walk by
    /// attempt number); the others draw again.
    fn choose_host<S: Stack>(
        &self,
        info: &ClusterInfo,
        dst: Option<std::net::SocketAddr>,
        ctx: &mut Ctx<'_, S>,
    ) -> Option<(usize, Arc<Host>)> {
        let is_retry = !self.tried.is_empty();
        let picks = if is_retry && self.previous_hosts { 1 + self.host_selection_max_attempts as usize } else { 1 };
        let hashing = matches!(info.config.lb_policy, LbPolicy::RingHash | LbPolicy::Maglev);
        let mut chosen = None;
        for i in 0..picks {
            let exclude: &[usize] = if i > 0 && hashing { &self.tried } else { &[] };
            let lb = LbContext { hash: self.hash, exclude, random: ctx.rng.next_u64() };
            let pick = ctx.clusters.clusters[self.cluster].choose_host(&lb, dst)?;
            let again = self.previous_hosts && is_retry && self.tried.contains(&pick.0);
            chosen = Some(pick);
            if !again {
                break;
            }
        }
        chosen
    }

    /// The request left the pending queue (it got a connection).
    fn release_pending(&mut self, info: &ClusterInfo) {
        if self.counted_pending {
            self.counted_pending = false;
            info.release_pending_request();
            self.stats.upstream_rq_pending_active.dec();
        }
    }

    fn start_try<S: Stack>(
        &mut self,
        idx: usize,
        host: Arc<Host>,
        slot: TimerKey,
        client: CodecClient,
        ctx: &mut Ctx<'_, S>,
    ) {
        self.attempts += 1;
        self.tried.push(idx);
        host.rq_active.fetch_add(1, Ordering::Relaxed);
        self.host = Some(host);
        self.slot = Some(slot);
        self.client = Some(client);
        self.upstream_event = true;
        self.phase = Phase::Active;
        self.try_started = ctx.now;
        self.try_activity = ctx.now;
        self.try_deadline = self.request_done_at.and(self.per_try).map(|t| ctx.now + t);
        self.resp_meta = None;
        self.request_sent = false;
        self.soft_timed_out = false;
    }

    /// Encode the head (and the body bytes kept from an earlier try) into the connection.
    fn send_request(&mut self, cfg: &HcmConfig, stream: &mut Stream) {
        let Some(client) = self.client.as_mut() else {
            return;
        };
        if self.include_attempt_count {
            stream.head.headers.set(b"x-envoy-attempt-count", self.attempts.to_string().as_bytes());
        }
        if cfg.match_upstream_scheme {
            // scheme_header_transformation.match_upstream (:scheme is not on an HTTP/1 wire).
            stream.head.scheme.clear();
            stream.head.scheme.push_str(if client.transport.is_tls() { "https" } else { "http" });
        }
        if self.upgrade == UpgradeKind::ConnectTerminate {
            // Raw bytes only: the CONNECT head ends here.
            self.request_sent = true;
            return;
        }
        let upgrading = self.upgrade == UpgradeKind::Upgrade;
        client.parser.expect_upgrade = upgrading;
        let body = OutgoingBody::from(stream.meta.framing);
        let out = client.out.tail();
        self.body_encoder = encode_request_head(&stream.head, body, upgrading, out);
        if !self.body_copy.is_empty() {
            let _ = self.body_encoder.encode(&self.body_copy, out);
        }
        if stream.request_done {
            let _ = self.body_encoder.finish(out);
            self.request_sent = true;
        }
        client.requests += 1;
    }

    /// Move request body bytes from the downstream input into the connection, while
    /// its output is under the cluster's buffer limit (`out_limit`).
    fn pump_request<D: ServerStream>(
        &mut self,
        cfg: &HcmConfig,
        stream: &mut Stream,
        down: &mut D,
        out_limit: usize,
    ) -> Result<bool, LocalReply> {
        let Some(client) = self.client.as_mut() else {
            return Ok(false);
        };
        if !client.connected || self.request_sent {
            return Ok(false);
        }
        let mut progress = false;
        while !stream.request_done && client.out.len() < out_limit {
            let d = match down.next_body(stream) {
                Ok(Some(d)) => d,
                Ok(None) => break,
                Err(_) => {
                    return Err(LocalReply::new(400, "Bad Request", ResponseFlags::DOWNSTREAM_PROTOCOL_ERROR));
                }
            };
            let data = &down.body_input()[d.data.clone()];
            stream.rq_body_bytes += data.len() as u64;
            let out = client.out.tail();
            if !data.is_empty() {
                let _ = self.body_encoder.encode(data, out);
                if self.body_copy_ok && self.keep_body {
                    if self.body_copy.len() + data.len() <= cfg.buffer_limit {
                        self.body_copy.extend_from_slice(data);
                    } else {
                        self.body_copy_ok = false;
                        self.body_copy = Vec::new();
                    }
                }
            }
            if d.end {
                stream.request_done = true;
                let _ = self.body_encoder.finish(out);
            }
            down.consume_body(d.consumed);
            progress = true;
            if d.consumed == 0 {
                break;
            }
        }
        if stream.request_done && !self.request_sent {
            self.request_sent = true;
            progress = true;
        }
        Ok(progress)
    }

    /// Advance the request: deadlines, connect, send, receive.
    pub fn drive<S: Stack, D: ServerStream>(
        &mut self,
        cfg: &HcmConfig,
        stream: &mut Stream,
        down: &mut D,
        ctx: &mut Ctx<'_, S>,
    ) -> Step {
        let mut step = Step::default();
        self.on_request_progress(stream, ctx.now);
        if let Err(reply) = self.drive_inner(cfg, stream, down, ctx, &mut step) {
            step.reply = Some(reply);
        }
        self.on_request_progress(stream, ctx.now);
        self.observe_timing(stream, ctx.now);
        step
    }

    /// Envoy's `onRequestComplete`: once the downstream request is complete, the route
    /// timeout starts, and so does the per-try timeout of the try in progress.
    fn on_request_progress(&mut self, stream: &Stream, now: Instant) {
        if self.request_done_at.is_some() || !stream.request_done {
            return;
        }
        self.request_done_at = Some(now);
        if self.phase != Phase::Done {
            self.global_deadline = self.route_timeout.map(|t| now + t);
        }
        if self.client.is_some() && self.resp_meta.is_none() {
            self.try_deadline = self.per_try.map(|t| now + t);
        }
    }

    fn drive_inner<S: Stack, D: ServerStream>(
        &mut self,
        cfg: &HcmConfig,
        stream: &mut Stream,
        down: &mut D,
        ctx: &mut Ctx<'_, S>,
        step: &mut Step,
    ) -> Result<(), LocalReply> {
        let now = ctx.now;
        // The route timeout spans every try.
        if self.global_deadline.is_some_and(|d| now >= d) && self.phase != Phase::Done {
            if self.client.as_ref().is_some_and(|c| c.connected) {
                if self.resp_meta.is_none() {
                    let code = self.timeout_code();
                    self.charge(ctx, |info, host| charge::timeout(info, host, code));
                } else {
                    self.charge(ctx, |_, host| Host::inc(&host.rq_timeout));
                }
            }
            self.stats.upstream_rq_timeout.inc();
            self.drop_client(ctx, true);
            if let Some(h) = self.hedged.take() {
                charge::hedged_timed_out(&h.host);
                h.reset(ctx);
            }
            self.global_deadline = None;
            if stream.response_started {
                step.reset_downstream = true;
                return Ok(());
            }
            stream.flags.set(ResponseFlags::UPSTREAM_REQUEST_TIMEOUT);
            self.phase = Phase::Done;
            if self.alt_response {
                return Err(LocalReply::new(204, "", ResponseFlags::UPSTREAM_REQUEST_TIMEOUT));
            }
            return Err(LocalReply::new(504, local_reply::UPSTREAM_TIMEOUT, ResponseFlags::UPSTREAM_REQUEST_TIMEOUT));
        }
        // A hedged try may answer whatever the current try is doing.
        if self.hedged.is_some() && self.phase != Phase::Done {
            if let Some(meta) = self.poll_hedged(stream, ctx) {
                step.progress = true;
                return self.on_response_head(cfg, stream, down, ctx, meta, step);
            }
            if self.client.is_none() && self.phase == Phase::Active && self.hedged.is_none() {
                // The hedged try failed and nothing else is in flight.
                return self.fail(cfg, stream, ctx, ResetReason::Reset);
            }
        }
        match self.phase {
            Phase::Done => return Ok(()),
            Phase::Backoff(until) => {
                if now < until {
                    return Ok(());
                }
                self.release_retry(ctx);
                self.attempt(cfg, stream, ctx)?;
                step.progress = true;
            }
            Phase::WaitingCapacity => {
                self.attempt(cfg, stream, ctx)?;
                if self.phase == Phase::WaitingCapacity {
                    return Ok(());
                }
                step.progress = true;
            }
            Phase::Connecting(deadline) => {
                let Some(client) = self.client.as_mut() else {
                    return Ok(());
                };
                if self.upstream_event {
                    self.upstream_event = false;
                    match ctx.stack.connect_result(client.socket) {
                        Ok(()) => {
                            client.connected = true;
                            self.charge(ctx, charge::request_sent);
                            self.phase = Phase::Active;
                            self.send_request(cfg, stream);
                            step.progress = true;
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                        Err(e) => {
                            tracing::debug!("upstream connect failed: {e}");
                            self.stats.upstream_cx_connect_fail.inc();
                            self.charge(ctx, |i, h| charge::connect_failed(i, h, Outcome::LocalOriginConnectFailed));
                            self.drop_client(ctx, true);
                            return self.fail(cfg, stream, ctx, ResetReason::ConnectFailure);
                        }
                    }
                }
                if self.phase != Phase::Active {
                    if now >= deadline {
                        self.charge(ctx, |i, h| charge::connect_failed(i, h, Outcome::LocalOriginTimeout));
                        self.stats.upstream_cx_connect_timeout.inc();
                        self.stats.upstream_cx_connect_fail.inc();
                        self.drop_client(ctx, true);
                        return self.fail(cfg, stream, ctx, ResetReason::ConnectFailure);
                    }
                    return Ok(());
                }
            }
            Phase::Active => {}
        }
        // Per-try deadlines (only until the response head arrives).
        if self.resp_meta.is_none() {
            let per_try = self.try_deadline.is_some_and(|d| now >= d);
            let idle = self.per_try_idle.is_some_and(|t| now >= self.try_activity + t);
            if (per_try || idle) && self.hedge_on_per_try_timeout && self.client.is_some() {
                // Hedging: every per-try timeout of the try is soft, and fires once.
                if !self.soft_timed_out {
                    self.soft_per_try_timeout(ctx);
                    if self.client.is_none() {
                        return Ok(());
                    }
                }
            } else if per_try || idle {
                let code = self.timeout_code();
                self.charge(ctx, |info, host| charge::timeout(info, host, code));
                self.stats.upstream_rq_per_try_timeout.inc();
                self.drop_client(ctx, true);
                let reason = if per_try { ResetReason::PerTryTimeout } else { ResetReason::PerTryIdleTimeout };
                return self.fail(cfg, stream, ctx, reason);
            }
        }
        if self.h2.is_some() {
            return self.drive_h2(cfg, stream, down, ctx, step);
        }
        if self.upgrade == UpgradeKind::ConnectTerminate
            && self.resp_meta.is_none()
            && self.client.as_ref().is_some_and(|c| c.connected)
        {
            // Connected: answer the CONNECT with a 200 as Envoy's TcpUpstream does.
            stream.response.clear();
            stream.response.status = 200;
            let meta = ResponseMeta {
                head_len: 0,
                interim: None,
                framing: crate::http::codec::BodyFraming::None,
                keep_alive: false,
            };
            step.progress = true;
            return self.on_response_head(cfg, stream, down, ctx, meta, step);
        }
        let out_limit = ctx.clusters.clusters[self.cluster].info.config.per_connection_buffer_limit_bytes as usize;
        step.progress |= self.pump_request(cfg, stream, down, out_limit)?;
        if self.shadow_pending && stream.request_done {
            self.shadow_pending = false;
            if self.body_copy_ok {
                if let Some(matched) = stream.route.as_ref().and_then(|r| cfg.routes.get(r)) {
                    let policies = matched.mirror_policies();
                    start_shadows(policies, &stream.head, &self.body_copy, self.route_timeout, &cfg.clusters, ctx);
                }
            }
        }
        let Some(client) = self.client.as_mut() else {
            return Ok(());
        };
        if client.flush(ctx.stack) > 0 {
            step.progress = true;
            self.try_activity = now;
        }
        // Read the response while neither the connection's input nor the downstream
        // output is above its high watermark (resume at the low one).
        let mut eof = false;
        let mut error = client.dead;
        let in_limit = flow_control::upstream_input_limit(
            ctx.clusters.clusters[self.cluster].info.config.per_connection_buffer_limit_bytes,
        );
        while client.readable && !error {
            let (paused, change) = client.update_read_pause(in_limit, down.buffered(), cfg.buffer_limit);
            match change {
                Some(true) => self.stats.upstream_flow_control_paused_reading_total.inc(),
                Some(false) => self.stats.upstream_flow_control_resumed_reading_total.inc(),
                None => {}
            }
            if paused {
                break;
            }
            let held = client.pending_input().len();
            match client.read(ctx.stack, in_limit, ctx.scratch) {
                ReadOutcome::Data => {
                    self.stats.upstream_cx_rx_bytes_total.add((client.pending_input().len() - held) as u64);
                    step.progress = true;
                    self.try_activity = now;
                    stream.last_activity = now;
                }
                ReadOutcome::WouldBlock | ReadOutcome::Full => break,
                ReadOutcome::Eof => {
                    eof = true;
                    break;
                }
                ReadOutcome::Error => error = true,
            }
        }
        eof |= client.read_eof;
        if self.resp_meta.is_none() {
            loop {
                let client = self.client.as_mut().expect("checked above");
                if client.pending_input().is_empty() {
                    break;
                }
                let input = &client.input[client.input_pos..];
                let parsed = client.parser.parse(input, stream.meta.is_head, &mut stream.response);
                match parsed {
                    Ok(ParseStatus::Partial) => break,
                    Err(e) => {
                        tracing::debug!("upstream response unparsable: {e:?}");
                        self.charge(ctx, |info, host| charge::reset(info, host, true));
                        self.drop_client(ctx, true);
                        stream.flags.set(ResponseFlags::UPSTREAM_PROTOCOL_ERROR);
                        self.phase = Phase::Done;
                        return Err(LocalReply::new(
                            503,
                            "upstream connect error or disconnect/reset before headers. reset reason: protocol error",
                            ResponseFlags::UPSTREAM_PROTOCOL_ERROR,
                        ));
                    }
                    Ok(ParseStatus::Complete(meta)) => {
                        client.consume_input(meta.head_len);
                        if meta.interim.is_some() {
                            // 1xx: Envoy already answered 100-continue itself; others
                            // are swallowed.
                            stream.response.clear();
                            continue;
                        }
                        step.progress = true;
                        return self.on_response_head(cfg, stream, down, ctx, meta, step);
                    }
                }
            }
            if eof || error {
                // A TLS handshake that never completed is a connection failure.
                let handshake_failed = self.client.as_ref().is_some_and(|c| !c.transport.established());
                let reason = if handshake_failed {
                    // Envoy raises Connected only after the handshake: count it as
                    // a connect failure.
                    self.stats.upstream_cx_connect_fail.inc();
                    self.charge(ctx, |i, h| charge::connect_failed(i, h, Outcome::LocalOriginConnectFailed));
                    ResetReason::ConnectFailure
                } else {
                    self.charge(ctx, |info, host| charge::reset(info, host, true));
                    ResetReason::Reset
                };
                self.drop_client(ctx, true);
                return self.fail(cfg, stream, ctx, reason);
            }
            return Ok(());
        }
        self.pump_response(cfg, stream, down, ctx, eof || error, step)
    }

    /// A final response head arrived: retry it, or send it downstream.
    fn on_response_head<S: Stack, D: ServerStream>(
        &mut self,
        cfg: &HcmConfig,
        stream: &mut Stream,
        down: &mut D,
        ctx: &mut Ctx<'_, S>,
        meta: ResponseMeta,
        step: &mut Step,
    ) -> Result<(), LocalReply> {
        let status = stream.response.status;
        if let Some(t) = stream.trace.as_deref_mut() {
            t.on_upstream_status(status);
        }
        let retriable = self.retry.as_ref().is_some_and(|r| r.retriable_response(status, &stream.response));
        let retry_now = retriable && self.can_retry(ctx);
        self.charge(ctx, |info, host| charge::response_head(info, host, status, retry_now));
        if retriable && !retry_now && self.hedged.is_some() {
            // A bad answer with no retry left while the hedged try may still answer.
            self.drop_client(ctx, true);
            stream.response.clear();
            self.promote_hedged();
            return Ok(());
        }
        if !retry_now {
            // This answer goes downstream: the hedged try is abandoned.
            if let Some(h) = self.hedged.take() {
                h.reset(ctx);
            }
        }
        if retry_now {
            // The retried response is dropped with its connection.
            self.drop_client(ctx, true);
            stream.response.clear();
            self.schedule_retry(ctx);
            return Ok(());
        }
        if retriable && self.retry.as_ref().is_some_and(|r| r.remaining() == 0) {
            self.stats.upstream_rq_retry_limit_exceeded.inc();
        }
        if let Some(outcome) = self.internal_redirect(cfg, stream, ctx, status, &meta) {
            let followed = matches!(outcome, RedirectStep::Followed(_));
            step.redirect = Some(outcome);
            if followed {
                return Ok(());
            }
        }
        if self.retry.as_ref().is_some_and(|r| r.retries > 0) {
            self.stats.upstream_rq_retry_success.inc();
        }
        count_class(&self.stats, status);
        if let Some(client) = self.client.as_ref() {
            self.resp_body = client.parser.body_decoder(&meta);
        }
        self.resp_meta = Some(meta);
        let route = stream.route.clone().expect("routed");
        if let Some(matched) = cfg.routes.get(&route) {
            let mut info = StreamInfo::new(stream.start_time);
            info.protocol = stream.head.version;
            info.downstream_remote = stream.remote;
            info.downstream_direct_remote = Some(down.peer());
            info.downstream_local = Some(down.local());
            info.upstream_remote = self.host.as_ref().map(|h| h.address);
            info.response_code = Some(status);
            matched.finalize_response_headers(&mut stream.response, &stream.head, &info);
        }
        if !cfg.suppress_envoy_headers {
            let ms = ctx.now.saturating_duration_since(self.try_started).as_millis();
            stream.response.headers.set(b"x-envoy-upstream-service-time", ms.to_string().as_bytes());
        }
        if let Some(c) = &self.set_cookie {
            stream.response.headers.append(b"set-cookie", c.as_bytes());
        }
        if self.include_attempt_count_in_response {
            stream.response.headers.set(b"x-envoy-attempt-count", self.attempts.to_string().as_bytes());
        }
        if upgrade::switches(self.upgrade, status) {
            down.encode_switching_headers(cfg, stream, ctx.date.get(ctx.wall));
            (self.phase, self.global_deadline, self.try_deadline) = (Phase::Done, None, None);
            step.upgraded = true;
            return Ok(());
        }
        if self.upgrade != UpgradeKind::None {
            // Not switched: a normal response, and the connection closes after it.
            stream.close_after = true;
        }
        let body = OutgoingBody::from(meta.framing);
        let date = ctx.date.get(ctx.wall);
        down.encode_headers(cfg, stream, date, ctx.draining, body);
        if self.h2.is_some() {
            return self.drive_h2(cfg, stream, down, ctx, step);
        }
        let eof = self.client.as_ref().is_some_and(|c| c.read_eof || c.dead);
        self.pump_response(cfg, stream, down, ctx, eof, step)
    }

    /// Envoy's `setupRedirect`: a response the route's internal redirect policy names
    /// either turns the request into the redirected one (the try ends here, and the
    /// stream starts again on the new route) or passes to the client. `None`: the
    /// policy does not apply to this response.
    fn internal_redirect<S: Stack>(
        &mut self,
        cfg: &HcmConfig,
        stream: &mut Stream,
        ctx: &mut Ctx<'_, S>,
        status: u16,
        meta: &ResponseMeta,
    ) -> Option<RedirectStep> {
        let route = stream.route.clone()?;
        let matched = cfg.routes.get(&route)?;
        let policy = matched.internal_redirect_policy().filter(|p| p.should_redirect_for(status))?;
        // Only a complete request whose body fit the buffer can be sent again.
        let outcome = if !stream.request_done || !self.body_copy_ok || self.upgrade != UpgradeKind::None {
            Err(Passthrough::Other)
        } else {
            let input = RedirectInput {
                policy,
                current_route: matched.route_name(),
                status,
                table: &cfg.routes,
                random: ctx.rng.next_u64(),
                runtime: ctx.runtime,
            };
            internal_redirect::convert(&input, &mut stream.head, &stream.response, &mut stream.redirects)
        };
        let redirected = match outcome {
            Ok(r) => r,
            Err(reason) => {
                self.stats.upstream_internal_redirect_failed_total.inc();
                return Some(RedirectStep::Passthrough(reason));
            }
        };
        self.stats.upstream_internal_redirect_succeeded_total.inc();
        let body = if redirected.drop_body {
            stream.meta.framing = crate::http::codec::BodyFraming::None;
            Vec::new()
        } else {
            std::mem::take(&mut self.body_copy)
        };
        stream.replay_body = Some(body);
        stream.response.clear();
        // The redirect response is not forwarded: its connection goes back to the pool
        // when its whole body is already here, else it closes.
        let reusable = self.skip_response_body(meta);
        self.release_client(ctx, reusable && meta.keep_alive && self.request_sent);
        (self.phase, self.global_deadline, self.try_deadline) = (Phase::Done, None, None);
        self.finish(ctx);
        Some(RedirectStep::Followed(redirected.route))
    }

    /// Consume the body of a response that is not forwarded, as far as it is in the
    /// connection's input; true when it was there whole.
    fn skip_response_body(&mut self, meta: &ResponseMeta) -> bool {
        let Some(client) = self.client.as_mut() else {
            return false;
        };
        let mut body = client.parser.body_decoder(meta);
        while !body.is_done() {
            let input = client.pending_input();
            if input.is_empty() {
                break;
            }
            let Ok(d) = body.decode(input) else {
                return false;
            };
            client.consume_input(d.consumed);
            if d.end {
                return true;
            }
            if d.consumed == 0 {
                break;
            }
        }
        body.is_done()
    }

    /// Move response body bytes downstream; finish the try when the response is done.
    fn pump_response<S: Stack, D: ServerStream>(
        &mut self,
        cfg: &HcmConfig,
        stream: &mut Stream,
        down: &mut D,
        ctx: &mut Ctx<'_, S>,
        eof: bool,
        step: &mut Step,
    ) -> Result<(), LocalReply> {
        let Some(client) = self.client.as_mut() else {
            return Ok(());
        };
        let mut done = self.resp_body.is_done();
        while !done && down.buffered() < cfg.buffer_limit {
            let input = client.pending_input();
            if input.is_empty() {
                break;
            }
            let d = match self.resp_body.decode(input) {
                Ok(d) => d,
                Err(e) => {
                    tracing::debug!("upstream body framing error: {e:?}");
                    self.charge(ctx, |info, host| charge::reset(info, host, false));
                    self.drop_client(ctx, true);
                    step.reset_downstream = true;
                    return Ok(());
                }
            };
            down.encode_data(stream, &input[d.data.clone()], cfg.buffer_limit);
            client.consume_input(d.consumed);
            step.progress |= d.consumed > 0;
            done = d.end;
            if d.consumed == 0 {
                break;
            }
        }
        if !done && eof && client.pending_input().is_empty() {
            match self.resp_body.finish_at_eof() {
                Ok(()) => done = true,
                Err(_) => {
                    // Truncated response: the client must see the reset.
                    self.stats.upstream_rq_rx_reset.inc();
                    stream.flags.set(ResponseFlags::UPSTREAM_CONNECTION_TERMINATION);
                    self.charge(ctx, |info, host| charge::reset(info, host, false));
                    self.drop_client(ctx, true);
                    step.reset_downstream = true;
                    return Ok(());
                }
            }
        }
        if done {
            down.encode_end(stream);
            stream.response_done = true;
            self.stats.upstream_rq_completed.inc();
            self.stats.upstream_rq_time.record(ctx.now.saturating_duration_since(self.try_started));
            let reusable =
                self.resp_meta.is_some_and(|m| m.keep_alive) && self.request_sent && self.upgrade == UpgradeKind::None;
            self.release_client(ctx, reusable);
            self.phase = Phase::Done;
            self.finish(ctx);
            step.progress = true;
        }
        Ok(())
    }

    /// Whether another try may start now.
    fn can_retry<S: Stack>(&mut self, ctx: &mut Ctx<'_, S>) -> bool {
        let Some(r) = self.retry.as_ref() else {
            return false;
        };
        if r.remaining() == 0 || !self.body_copy_ok {
            return false;
        }
        let info = &ctx.clusters.clusters[self.cluster].info;
        if !info.try_acquire_retry() {
            self.stats.upstream_rq_retry_overflow.inc();
            return false;
        }
        // Envoy's RetryStateImpl::shouldRetry: after the retry circuit breaker, the
        // runtime's `upstream.use_retry` (percent, default 100).
        if !ctx.runtime.feature_enabled(crate::runtime::USE_RETRY, 100, ctx.rng.next_u64()) {
            info.release_retry();
            return false;
        }
        self.counted_retry = true;
        true
    }

    fn release_retry<S: Stack>(&mut self, ctx: &mut Ctx<'_, S>) {
        if self.counted_retry {
            self.counted_retry = false;
            ctx.clusters.clusters[self.cluster].info.release_retry();
        }
    }

    fn schedule_retry<S: Stack>(&mut self, ctx: &mut Ctx<'_, S>) {
        let random = ctx.rng.next_u64();
        let backoff = self.retry.as_mut().map(|r| r.take(random)).unwrap_or_default();
        self.stats.upstream_rq_retry.inc();
        tracing::debug!(attempt = self.attempts, ?backoff, "retrying");
        self.phase = Phase::Backoff(ctx.now + backoff);
        self.resp_meta = None;
    }

    /// A try failed without a usable response: retry, or answer as Envoy does.
    fn fail<S: Stack>(
        &mut self,
        cfg: &HcmConfig,
        stream: &mut Stream,
        ctx: &mut Ctx<'_, S>,
        reason: ResetReason,
    ) -> Result<(), LocalReply> {
        let _ = cfg;
        if let Some(t) = stream.trace.as_deref_mut() {
            t.on_upstream_reset(reason);
        }
        let retriable = self.retry.as_ref().is_some_and(|r| r.retriable_reset(reason));
        if retriable && self.can_retry(ctx) {
            self.schedule_retry(ctx);
            return Ok(());
        }
        if self.hedged.is_some() {
            // The hedged try is still in flight: wait for its answer instead.
            self.promote_hedged();
            return Ok(());
        }
        let retried = self.retry.as_ref().is_some_and(|r| r.retries > 0);
        if retriable {
            self.stats.upstream_rq_retry_limit_exceeded.inc();
            stream.flags.set(ResponseFlags::UPSTREAM_RETRY_LIMIT_EXCEEDED);
        }
        self.phase = Phase::Done;
        Err(match reason {
            ResetReason::ConnectFailure if retried => {
                LocalReply::new(503, local_reply::RETRIED_CONNECT_FAILURE, ResponseFlags::UPSTREAM_CONNECTION_FAILURE)
            }
            ResetReason::ConnectFailure => {
                LocalReply::new(503, local_reply::CONNECT_FAILURE, ResponseFlags::UPSTREAM_CONNECTION_FAILURE)
            }
            ResetReason::Reset => {
                self.stats.upstream_rq_rx_reset.inc();
                LocalReply::new(503, local_reply::UPSTREAM_RESET, ResponseFlags::UPSTREAM_CONNECTION_TERMINATION)
            }
            ResetReason::PerTryTimeout | ResetReason::PerTryIdleTimeout => {
                LocalReply::new(504, local_reply::UPSTREAM_TIMEOUT, ResponseFlags::UPSTREAM_REQUEST_TIMEOUT)
            }
        })
    }

    /// Give the connection back to the pool (reusable) or close it.
    fn release_client<S: Stack>(&mut self, ctx: &mut Ctx<'_, S>, reusable: bool) {
        let (Some(slot), Some(mut client)) = (self.slot.take(), self.client.take()) else {
            return;
        };
        if let Some(h) = &self.host {
            h.rq_active.fetch_sub(1, Ordering::Relaxed);
        }
        if reusable && client.reusable() {
            rest(ctx, slot, client);
        } else {
            close_client(ctx, &mut client);
            ctx.pool.remove(slot);
        }
    }

    /// Close the current try's connection (reset) and forget it.
    fn drop_client<S: Stack>(&mut self, ctx: &mut Ctx<'_, S>, abort: bool) {
        self.drop_h2(ctx, ::h2::Reason::CANCEL);
        if let (Some(slot), Some(mut client)) = (self.slot.take(), self.client.take()) {
            if let Some(h) = &self.host {
                h.rq_active.fetch_sub(1, Ordering::Relaxed);
            }
            if abort {
                self.stats.upstream_cx_destroy_local.inc();
            }
            close_client(ctx, &mut client);
            ctx.pool.remove(slot);
        }
        self.upstream_event = false;
        self.try_deadline = None;
    }

    /// Tell the current host (its outlier monitor and counters) how the try went.
    fn charge<S: Stack>(&self, ctx: &mut Ctx<'_, S>, f: impl FnOnce(&ClusterInfo, &Host)) {
        if let Some(host) = &self.host {
            f(&ctx.clusters.clusters[self.cluster].info, host);
        }
    }

    /// The status a timed-out request is answered with (Envoy's `timeout_response_code_`).
    fn timeout_code(&self) -> u16 {
        if self.alt_response {
            204
        } else {
            504
        }
    }

    /// Release the request's circuit-breaker resources.
    fn finish<S: Stack>(&mut self, ctx: &mut Ctx<'_, S>) {
        let info = &ctx.clusters.clusters[self.cluster].info;
        if self.counted_request {
            self.counted_request = false;
            info.release_request();
            self.stats.upstream_rq_active.dec();
        }
        if self.counted_pending {
            self.counted_pending = false;
            info.release_pending_request();
            self.stats.upstream_rq_pending_active.dec();
            ctx.pool.stop_waiting(self.cluster, ctx.key);
        }
        self.release_retry(ctx);
    }

    /// The connection of a try that switched protocols, for the tunnel: it leaves the
    /// router (and never returns to the pool); the request's circuit-breaker counts
    /// stay held until the stream ends.
    pub fn take_tunnel(&mut self) -> Option<(TimerKey, CodecClient)> {
        let slot = self.slot.take()?;
        let client = self.client.take()?;
        self.upstream_event = false;
        Some((slot, client))
    }

    /// The stream ends early (client gone, timeout, local reply): drop everything.
    pub fn cancel<S: Stack>(&mut self, ctx: &mut Ctx<'_, S>) {
        if self.phase != Phase::Done {
            self.stats.upstream_rq_tx_reset.inc();
        }
        self.drop_client(ctx, true);
        if let Some(h) = self.hedged.take() {
            h.reset(ctx);
        }
        self.finish(ctx);
        self.phase = Phase::Done;
    }

    /// Envoy's `onSoftPerTryTimeout`: report the timeout, and when a retry is allowed
    /// keep the try running as the hedged one while the retry starts.
    fn soft_per_try_timeout<S: Stack>(&mut self, ctx: &mut Ctx<'_, S>) {
        let code = self.timeout_code();
        self.charge(ctx, |info, host| charge::soft_timeout(info, host, code));
        self.try_deadline = None;
        self.soft_timed_out = true;
        let retriable = self.retry.as_ref().is_some_and(|r| r.retriable_reset(ResetReason::PerTryTimeout));
        // One hedged try at a time: a later soft timeout only goes on waiting.
        if self.hedged.is_some() || !retriable || !self.body_copy_ok || !self.can_retry(ctx) {
            return;
        }
        let (Some(slot), Some(client), Some(host)) = (self.slot.take(), self.client.take(), self.host.clone()) else {
            return;
        };
        self.upstream_event = false;
        self.hedged = Some(HedgedTry { slot, client, host, started: self.try_started });
        self.schedule_retry(ctx);
    }

    /// Read the hedged try; its response head, when it wins (the current try, or the
    /// retry waiting to start, is abandoned and the hedged try becomes the current one).
    fn poll_hedged<S: Stack>(&mut self, stream: &mut Stream, ctx: &mut Ctx<'_, S>) -> Option<ResponseMeta> {
        let limit = ctx.clusters.clusters[self.cluster].info.config.per_connection_buffer_limit_bytes;
        let in_limit = flow_control::upstream_input_limit(limit);
        let mut head = crate::http::ResponseHead::default();
        let event = self.hedged.as_mut()?.poll(ctx, in_limit, stream.meta.is_head, &mut head);
        match event {
            HedgeEvent::Nothing => None,
            HedgeEvent::Failed => {
                let h = self.hedged.take()?;
                let info = Arc::clone(&ctx.clusters.clusters[self.cluster].info);
                charge::reset(&info, &h.host, true);
                h.reset(ctx);
                None
            }
            HedgeEvent::Head(meta) => {
                self.drop_client(ctx, true);
                self.release_retry(ctx);
                if self.counted_pending {
                    let info = Arc::clone(&ctx.clusters.clusters[self.cluster].info);
                    self.release_pending(&info);
                    ctx.pool.stop_waiting(self.cluster, ctx.key);
                }
                self.promote_hedged();
                stream.response = head;
                Some(meta)
            }
        }
    }

    /// The hedged try becomes the current one (awaiting its response head).
    fn promote_hedged(&mut self) {
        let Some(h) = self.hedged.take() else { return };
        self.slot = Some(h.slot);
        self.client = Some(h.client);
        self.host = Some(h.host);
        self.try_started = h.started;
        self.phase = Phase::Active;
        self.request_sent = true;
        self.upstream_event = true;
        self.try_deadline = None;
        self.resp_meta = None;
        // Its timeout fired already (that is how it became hedged).
        self.soft_timed_out = true;
    }
}

impl Drop for RouterState {
    fn drop(&mut self) {
        debug_assert!(self.client.is_none(), "router dropped with a live upstream connection");
        debug_assert!(self.hedged.is_none(), "router dropped with a live hedged try");
        debug_assert!(self.h2.is_none(), "router dropped with a live HTTP/2 stream");
    }
}

/// The destination an ORIGINAL_DST cluster connects to: the request's
/// `x-envoy-original-dst-host` (or the configured header) when `use_http_header` is
/// set and it holds an `ip:port`, else the downstream connection's original
/// destination.
fn original_dst_for(
    info: &crate::upstream::cluster_manager::ClusterInfo,
    stream: &Stream,
    connection: Option<std::net::SocketAddr>,
) -> Option<std::net::SocketAddr> {
    if !info.is_original_dst() {
        return None;
    }
    let lb = &info.config.original_dst_lb_config;
    if lb.use_http_header {
        if let Some(addr) =
            stream.head.headers.get_str(lb.http_header_name.as_bytes()).and_then(|v| v.trim().parse().ok())
        {
            return Some(addr);
        }
    }
    connection
}

fn count_class(stats: &ClusterStats, status: u16) {
    match status {
        100..=199 => stats.upstream_rq_1xx.inc(),
        200..=299 => stats.upstream_rq_2xx.inc(),
        300..=399 => stats.upstream_rq_3xx.inc(),
        400..=499 => stats.upstream_rq_4xx.inc(),
        _ => stats.upstream_rq_5xx.inc(),
    }
}
