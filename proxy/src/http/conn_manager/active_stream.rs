//! One stream's way through the connection manager, whatever the codec (Envoy's
//! `ActiveStream` with its `FilterManager`): `decodeHeaders` (the HCM's request
//! mutations, path normalization, route, upgrade check), the decoder filters, the
//! router, local replies, and the end of the stream (stats, access log).
//!
//! A [`StreamCx`] borrows one stream and its codec's [`ServerStream`] for the length of
//! a call; the HTTP/1 and HTTP/2 connections build one per stream event. Nothing here
//! reads from or writes to a socket: bytes go through the `ServerStream`.
//!
//! The two call sites other filters plug into: decode in [`StreamCx::run_filters`],
//! encode in [`StreamCx::write_response_head`] (and `encode_response_headers` for the
//! router's responses).

use std::net::SocketAddr;
use std::sync::Arc;

use sluice_config::metadata::Metadata;
use sluice_config::overload::ActionKind;
use sluice_stack::Stack;

use crate::http::codec::OutgoingBody;
use crate::http::filter::{PeerFacts, StreamContext};
use crate::http::filter_manager::{Decoded, TrailersRun};
use crate::http::filter_stream::FilteredStream;
use crate::http::filters::router::{self, RedirectStep, RouterState, Step};
use crate::http::local_reply;
use crate::http::response_flags::ResponseFlags;
use crate::http::stream_encoder::ServerStream;
use crate::router::formatter::FormatContext;
use crate::router::internal_redirect::Passthrough;
use crate::router::vhost::VhostIndex;
use crate::router::{Matched, RouteKind, RouteRef, StreamInfo};
use crate::stats::HttpStats;
use crate::worker_ctx::Ctx;

use super::config::HcmConfig;
use super::headers;
use super::normalize;
use super::stream::{FilterPhase, Stream};

/// One stream and its codec, borrowed for one event.
pub struct StreamCx<'a, D: ServerStream> {
    pub cfg: &'a Arc<HcmConfig>,
    pub stats: &'a HttpStats,
    pub stream: &'a mut Stream,
    pub io: &'a mut D,
    /// The restored original destination (ORIGINAL_DST clusters).
    pub original_dst: Option<SocketAddr>,
    /// The connection is draining.
    pub draining: bool,
    /// SNI and client certificate names, for the filters.
    pub peer_facts: &'a PeerFacts,
}

impl<D: ServerStream> StreamCx<'_, D> {
    /// A complete request head (Envoy's `decodeHeaders`): the overload manager's
    /// checks, 100-continue, the HCM's request mutations, path normalization, the
    /// route, then the decoder filters.
    pub fn decode_headers<S: Stack>(
        &mut self,
        ctx: &mut Ctx<'_, S>,
        info: &headers::DownstreamInfo<'_>,
        expect_continue: bool,
    ) {
        if self.overloaded(ctx) {
            return;
        }
        if expect_continue {
            // proxy_100_continue is off: Envoy answers 100 itself and drops the header.
            self.io.encode_100_continue();
            self.stream.head.headers.remove(b"expect");
        }
        let origin = match headers::mutate_request(self.cfg, &mut self.stream.head, info, ctx.rng) {
            Ok(origin) => origin,
            Err(status) => {
                // An original IP detection extension rejects the request.
                self.stats.downstream_rq_rejected_via_ip_detection.inc();
                self.send_local_reply(ctx, status, b"", &[]);
                return;
            }
        };
        self.stream.remote = Some(origin.remote);
        let local_port = self.io.local().port();
        if let Some(reply) =
            normalize::apply(&self.cfg.path_normalization, &mut self.stream.head, local_port, self.stats)
        {
            self.send_local_reply(ctx, reply.status(), b"", &reply.headers());
            return;
        }
        let cfg = Arc::clone(self.cfg);
        let random = ctx.rng.next_u64();
        let mut pos = None;
        self.stream.forwarding = false;
        // The route is chosen before any filter ran (Envoy's cached route), so its
        // `dynamic_metadata` matchers see no metadata; Envoy's header_to_metadata does
        // not clear the route cache.
        let no_metadata = Metadata::default();
        if let Some(matched) = cfg.routes.route_in(&self.stream.head, random, ctx.runtime, &no_metadata) {
            self.stream.route = Some(matched.route_ref());
            if !self.check_upgrade(ctx, &matched) {
                return;
            }
            pos = Some(self.take_route(&cfg, &matched));
        }
        self.start_tracing(ctx);
        self.start_filters(ctx, pos);
    }

    /// Remember a matched route's cluster; its position for the per-route filter configs.
    fn take_route(&mut self, cfg: &HcmConfig, matched: &Matched<'_>) -> (VhostIndex, Option<usize>) {
        if let RouteKind::Forward(_) = matched.kind() {
            self.stream.forwarding = true;
            self.stream.cluster = cfg.clusters.index_of(matched.cluster_name());
        }
        (matched.vhost_index, matched.route_position().map(|(_, j)| j))
    }

    /// Envoy's `recreateStream` after an internal redirect: the request head is the
    /// redirected one (its body in `Stream::replay_body`); the decoder filters and the
    /// router run again on `route`, matched for it.
    pub fn recreate_stream<S: Stack>(&mut self, ctx: &mut Ctx<'_, S>, route: RouteRef) {
        let cfg = Arc::clone(self.cfg);
        self.stream.async_calls.cancel_all(ctx);
        self.stream.filters.destroy();
        self.stream.response.clear();
        self.stream.forwarding = false;
        self.stream.cluster = None;
        self.stream.route = None;
        let pos = cfg.routes.get(&route).map(|matched| self.take_route(&cfg, &matched));
        self.stream.route = pos.is_some().then_some(route);
        self.start_filters(ctx, pos);
    }

    /// Start the decoder filters on the routed request head.
    fn start_filters<S: Stack>(&mut self, ctx: &mut Ctx<'_, S>, pos: Option<(VhostIndex, Option<usize>)>) {
        let cfg = Arc::clone(self.cfg);
        // The filter chain runs for every request; the router (last) answers a request
        // without a route, a redirect or direct response, or forwards it.
        let view = cfg.route_filters.view(pos);
        let filters = cfg.filters.iter().enumerate().filter_map(|(k, f)| f.create(k, &view));
        self.stream.filters.start(filters, cfg.buffer_limit);
        self.stream.phase = FilterPhase::Decoding;
        self.run_filters(ctx, false);
    }

    /// Tracing's call site on the request path: the sampling decision, the span, and
    /// its context in the request headers (see `crate::trace`).
    fn start_tracing<S: Stack>(&mut self, ctx: &mut Ctx<'_, S>) {
        let Some(tracer) = &self.cfg.tracer else { return };
        let route = self.stream.route.as_ref().and_then(|r| self.cfg.routes.get(r));
        let entry = route.as_ref().and_then(|m| m.entry());
        let mut trace = tracer.start(&mut self.stream.head, entry, ctx.rng, ctx.runtime, self.stats);
        let p = crate::trace::timing::Progress { request_done: self.stream.request_done, ..Default::default() };
        trace.observe(&p, ctx.now);
        self.stream.trace = Some(Box::new(trace));
    }

    /// Tracing's call site at the end of the stream: a sampled span is finished and
    /// queued for export.
    fn finish_tracing<S: Stack>(&mut self, ctx: &mut Ctx<'_, S>) {
        let (Some(tracer), Some(mut trace)) = (&self.cfg.tracer, self.stream.trace.take()) else { return };
        let s = &*self.stream;
        // The downstream events of the stream's last round (a local reply's).
        let p = crate::trace::timing::Progress {
            attempt: s.attempt_count,
            request_done: s.request_done,
            response_started: s.response_started,
            response_done: s.response_done,
            ..Default::default()
        };
        trace.observe(&p, ctx.now);
        let route = s.route.as_ref().and_then(|r| self.cfg.routes.get(r));
        let cluster = s.cluster.and_then(|i| self.cfg.clusters.clusters.get(i));
        let facts = crate::trace::SpanFacts {
            head: &s.head,
            route: route.as_ref().and_then(|m| m.entry()),
            status: s.response_started.then_some(s.response.status),
            flags: s.flags,
            upstream_cluster: cluster.map(|c| c.name()),
            upstream_address: s.upstream_host,
            peer: self.io.peer(),
            request_size: s.rq_body_bytes,
            response_size: s.resp_body_bytes,
            start_time: s.start_time,
            start: s.start,
            duration: ctx.now.saturating_duration_since(s.start),
            end: ctx.now,
            dynamic_metadata: Some(s.filters.dynamic_metadata()),
            cluster: cluster.map(|c| &**c),
        };
        tracer.finish(*trace, &facts, ctx);
    }

    pub fn count_status(&self, status: u16) {
        match status {
            100..=199 => self.stats.downstream_rq_1xx.inc(),
            200..=299 => self.stats.downstream_rq_2xx.inc(),
            300..=399 => self.stats.downstream_rq_3xx.inc(),
            400..=499 => self.stats.downstream_rq_4xx.inc(),
            _ => self.stats.downstream_rq_5xx.inc(),
        }
    }

    /// The overload manager's hooks on a new stream: `stop_accepting_requests` answers
    /// 503 `envoy overloaded` at once (true), `disable_http_keepalive` closes the
    /// connection after this response.
    pub fn overloaded<S: Stack>(&mut self, ctx: &mut Ctx<'_, S>) -> bool {
        if ctx.overload.fires(ActionKind::StopAcceptingRequests, ctx.rng.next_u64()) {
            self.stats.downstream_rq_overload_close.inc();
            self.stream.flags.set(ResponseFlags::OVERLOAD_MANAGER);
            self.send_local_reply(ctx, 503, local_reply::OVERLOADED.as_bytes(), &[]);
            return true;
        }
        if !self.stream.close_after && ctx.overload.fires(ActionKind::DisableHttpKeepalive, ctx.rng.next_u64()) {
            self.stats.downstream_cx_overload_disable_keepalive.inc();
            self.stream.close_after = true;
        }
        false
    }

    pub fn stream_info(&self) -> StreamInfo<'static> {
        let mut info = StreamInfo::new(self.stream.start_time);
        info.protocol = self.stream.head.version;
        info.downstream_remote = self.stream.remote.or(Some(self.io.peer()));
        info.downstream_direct_remote = Some(self.io.peer());
        info.downstream_local = Some(self.io.local());
        info
    }

    /// A redirect or direct response from the route.
    pub fn direct_response<S: Stack>(&mut self, ctx: &mut Ctx<'_, S>) {
        let cfg = Arc::clone(self.cfg);
        let info = self.stream_info();
        let Some(route) = self.stream.route.clone() else {
            return;
        };
        let Some(matched) = cfg.routes.get(&route) else {
            return;
        };
        let mut resp = std::mem::take(&mut self.stream.response);
        resp.clear();
        let keep_original = !cfg.suppress_envoy_headers;
        let body = matched.local_reply(&mut self.stream.head, &info, keep_original, &mut resp).unwrap_or(&[]);
        self.stream.response = resp;
        self.write_response_head(ctx, OutgoingBody::Length(body.len() as u64), false);
        let mut io = FilteredStream::new(self.io, self.cfg, self.stream);
        io.encode_data(self.stream, body, self.cfg.buffer_limit);
        io.encode_end(self.stream);
        io.finish(self.stream);
        self.stream.response_done = true;
        self.start_calls(ctx);
    }

    /// The decoder filters' call site: start the chain on the request headers, or
    /// wake the filter that stopped it (`wake`); when every filter continued, the
    /// router takes the request.
    pub fn run_filters<S: Stack>(&mut self, ctx: &mut Ctx<'_, S>, wake: bool) {
        if self.stream.phase != FilterPhase::Decoding {
            return;
        }
        let cfg = Arc::clone(self.cfg);
        let cluster = self.stream.cluster.and_then(|c| cfg.clusters.clusters.get(c)).map_or("", |c| c.name());
        let cx = StreamContext {
            now: ctx.now,
            remote: self.stream.remote.unwrap_or(self.io.peer()),
            direct_remote: self.io.peer(),
            local: self.io.local(),
            sni: self.peer_facts.sni.as_deref(),
            peer_principals: &self.peer_facts.principals,
            tls: self.peer_facts.tls,
            cluster,
            routed: self.stream.forwarding,
            health_check_failed: ctx.health_check_failed,
            runtime: ctx.runtime,
        };
        let end = self.stream.request_done;
        let random = ctx.rng.next_u64();
        self.stream.encode_random = ctx.rng.next_u64();
        let s = &mut *self.stream;
        let resumed = wake && s.filters.resume_pending();
        let out = if resumed {
            s.filters.continue_decoding(&mut s.head, end, &cx, random)
        } else if wake {
            s.filters.on_timer(&mut s.head, end, &cx, random)
        } else {
            s.filters.decode_headers(&mut s.head, end, &cx, random)
        };
        self.on_decoded(ctx, out, resumed);
    }

    /// Where decoding stands after a filter hook: start the async requests the filters
    /// asked for; the router takes a request every filter passed (on a route matched
    /// again when a filter cleared the route cache), or a filter's local reply goes out.
    fn on_decoded<S: Stack>(&mut self, ctx: &mut Ctx<'_, S>, out: Decoded, resumed: bool) {
        self.stream.flags.set(self.stream.filters.flags());
        self.start_calls(ctx);
        match out {
            Decoded::Continue => {
                if self.stream.filters.take_route_cleared() {
                    self.refresh_route(ctx);
                }
                if resumed && !self.take_filtered_body(ctx) {
                    return;
                }
                // Request trailers a filter held: on through the filters after it.
                let random = ctx.rng.next_u64();
                match self.stream.filters.resumed_trailers(random) {
                    Some(TrailersRun::Continue(t)) => self.stream.filter_io.body.trailers = Some(t),
                    Some(TrailersRun::LocalReply(r)) => {
                        let headers: Vec<(&[u8], &[u8])> = r.headers.iter().map(|(n, v)| (&n[..], &v[..])).collect();
                        self.send_local_reply(ctx, r.status, &r.body, &headers);
                        return;
                    }
                    Some(TrailersRun::Held) | None => {}
                }
                self.stream.phase = FilterPhase::Routed;
                crate::http::filter_stream::reframe_request(self.stream);
                self.start_router(ctx);
            }
            Decoded::Stopped => {}
            Decoded::LocalReply(r) => {
                let headers: Vec<(&[u8], &[u8])> = r.headers.iter().map(|(n, v)| (&n[..], &v[..])).collect();
                self.send_local_reply(ctx, r.status, &r.body, &headers);
            }
        }
    }

    /// Envoy's `clearRouteCache`: match the route again on the headers (and dynamic
    /// metadata) as the filters left them.
    fn refresh_route<S: Stack>(&mut self, ctx: &mut Ctx<'_, S>) {
        let cfg = Arc::clone(self.cfg);
        let random = ctx.rng.next_u64();
        let metadata = self.stream.filters.dynamic_metadata().clone();
        self.stream.forwarding = false;
        self.stream.cluster = None;
        self.stream.route = None;
        if let Some(matched) = cfg.routes.route_in(&self.stream.head, random, ctx.runtime, &metadata) {
            self.stream.route = Some(matched.route_ref());
            self.take_route(&cfg, &matched);
        }
    }

    /// The filters' async requests: advance them and hand each outcome to the filter
    /// that sent it (which may resume the chain). True when anything moved.
    pub fn drive_async<S: Stack>(&mut self, ctx: &mut Ctx<'_, S>) -> bool {
        if self.stream.async_calls.is_idle() {
            return false;
        }
        let (done, progress) = self.stream.async_calls.drive(ctx);
        for c in done {
            if self.stream.phase != FilterPhase::Decoding {
                // The decoder filters are done: an encoder filter may hold the response
                // for this answer (the others ignore it).
                self.encode_async_complete(ctx, c);
                continue;
            }
            let cfg = Arc::clone(self.cfg);
            let cluster = self.stream.cluster.and_then(|c| cfg.clusters.clusters.get(c)).map_or("", |c| c.name());
            let cx = StreamContext {
                now: ctx.now,
                remote: self.stream.remote.unwrap_or(self.io.peer()),
                direct_remote: self.io.peer(),
                local: self.io.local(),
                sni: self.peer_facts.sni.as_deref(),
                peer_principals: &self.peer_facts.principals,
                tls: self.peer_facts.tls,
                cluster,
                routed: self.stream.forwarding,
                health_check_failed: ctx.health_check_failed,
                runtime: ctx.runtime,
            };
            let end = self.stream.request_done;
            let random = ctx.rng.next_u64();
            let s = &mut *self.stream;
            // A filter that took the request body before asking: that body goes on too.
            let held = s.filters.holds_request_body();
            let out = s.filters.on_async_complete(c.filter, c.tag, c.outcome, &mut s.head, end, &cx, random);
            self.on_decoded(ctx, out, held);
        }
        progress
    }

    /// An async request ended after decoding: the encoder filter that sent it may let
    /// the response it holds go on, which then goes to the codec.
    fn encode_async_complete<S: Stack>(&mut self, ctx: &mut Ctx<'_, S>, c: crate::http::async_client::Completed) {
        let random = ctx.rng.next_u64();
        let s = &mut *self.stream;
        let out = s.filters.encode_async_complete(c.filter, c.tag, c.outcome, &mut s.response, random);
        self.stream.flags.set(self.stream.filters.flags());
        self.start_calls(ctx);
        if out == crate::http::filter_manager::Encoded::default() {
            return;
        }
        let cfg = Arc::clone(self.cfg);
        let mut io = FilteredStream::new(self.io, &cfg, self.stream);
        io.deliver_resumed(self.stream, out);
        io.finish(self.stream);
    }

    /// Start the async requests the filters asked for: the stream's own, and the
    /// fire-and-forget ones as the worker's (they outlive the stream).
    fn start_calls<S: Stack>(&mut self, ctx: &mut Ctx<'_, S>) {
        for (i, call) in self.stream.filters.take_calls() {
            self.stream.async_calls.start(i, call, ctx);
        }
        for call in self.stream.filters.take_detached() {
            crate::worker::background::Background::fire(ctx, call);
        }
    }

    /// The request body the decoder filters held (a buffering filter resumed): it goes
    /// to the router as a replayed body; a complete one with its length. `false`: a
    /// filter answered locally instead.
    fn take_filtered_body<S: Stack>(&mut self, ctx: &mut Ctx<'_, S>) -> bool {
        let random = ctx.rng.next_u64();
        let end = self.stream.request_done;
        match self.stream.filters.resume_data(end, random) {
            crate::http::filter_manager::DataOutcome::Continue(body) => {
                if end {
                    let n = body.len() as u64;
                    let head = &mut self.stream.head.headers;
                    head.remove(b"transfer-encoding");
                    if head.get(b"content-length").is_none() {
                        head.set(b"content-length", n.to_string().as_bytes());
                    }
                    self.stream.meta.framing = crate::http::codec::BodyFraming::Length(n);
                }
                self.stream.replay_body = Some(body);
                true
            }
            crate::http::filter_manager::DataOutcome::Held => true,
            crate::http::filter_manager::DataOutcome::LocalReply(r) => {
                let headers: Vec<(&[u8], &[u8])> = r.headers.iter().map(|(n, v)| (&n[..], &v[..])).collect();
                self.send_local_reply(ctx, r.status, &r.body, &headers);
                false
            }
        }
    }

    /// While a filter holds the headers with a buffer limit of its own (the buffer
    /// filter), the request body goes to the filters as it arrives; when the holding
    /// filter continues, the chain and then the router go on. `true`: progress.
    pub fn feed_filters<S: Stack>(&mut self, ctx: &mut Ctx<'_, S>) -> bool {
        let mut progress = false;
        while self.stream.phase == FilterPhase::Decoding
            && !self.stream.request_done
            && self.stream.filters.wants_request_body()
        {
            let d = match self.io.next_body(self.stream) {
                Ok(Some(d)) => d,
                Ok(None) => break,
                Err(_) => {
                    self.stream.flags.set(ResponseFlags::DOWNSTREAM_PROTOCOL_ERROR);
                    self.send_local_reply(ctx, 400, b"Bad Request", &[]);
                    return true;
                }
            };
            let data = self.io.body_input()[d.data.clone()].to_vec();
            self.stream.rq_body_bytes += data.len() as u64;
            self.io.consume_body(d.consumed);
            if d.end {
                self.stream.request_done = true;
            }
            progress = true;
            let random = ctx.rng.next_u64();
            // Trailers end the request: the last chunk is not its end for the filters.
            let trailers = if d.end && crate::http::filter_stream::trailers_filtered(self.stream) {
                self.io.take_request_trailers().filter(|t| !t.is_empty())
            } else {
                None
            };
            let mut out = self.stream.filters.decode_data(data, d.end && trailers.is_none(), random);
            if let (Some(t), false) = (trailers, matches!(out, crate::http::filter_manager::DataOutcome::LocalReply(_)))
            {
                let t = crate::http::filter_stream::from_http(&t);
                match self.stream.filters.decode_trailers(t, random) {
                    TrailersRun::Continue(t) => self.stream.filter_io.body.trailers = Some(t),
                    TrailersRun::Held => {}
                    TrailersRun::LocalReply(r) => out = crate::http::filter_manager::DataOutcome::LocalReply(r),
                }
            }
            // A filter that took the body it waited for may now ask a service (ext_authz).
            self.start_calls(ctx);
            match out {
                crate::http::filter_manager::DataOutcome::LocalReply(r) => {
                    if r.status == 413 {
                        self.stats.downstream_rq_too_large.inc();
                    }
                    let headers: Vec<(&[u8], &[u8])> = r.headers.iter().map(|(n, v)| (&n[..], &v[..])).collect();
                    self.send_local_reply(ctx, r.status, &r.body, &headers);
                    return true;
                }
                _ => {
                    if self.stream.filters.resume_pending() {
                        self.run_filters(ctx, true);
                        return true;
                    }
                }
            }
            if d.consumed == 0 && !d.end {
                break;
            }
        }
        progress
    }

    /// The router, the terminal filter: no route (404), a redirect or direct
    /// response, an unknown cluster, or the upstream request.
    pub fn start_router<S: Stack>(&mut self, ctx: &mut Ctx<'_, S>) {
        let cfg = Arc::clone(self.cfg);
        let matched = self.stream.route.as_ref().and_then(|r| cfg.routes.get(r));
        let Some(matched) = matched else {
            self.stats.rq_total.inc();
            self.stats.no_route.inc();
            self.stream.flags.set(ResponseFlags::NO_ROUTE_FOUND);
            self.send_local_reply(ctx, 404, b"", &[]);
            return;
        };
        match matched.kind() {
            RouteKind::Forward(_) => {}
            RouteKind::Redirect(_) | RouteKind::SslRedirect => {
                self.stats.rq_total.inc();
                self.stats.rq_redirect.inc();
                self.direct_response(ctx);
                return;
            }
            RouteKind::DirectResponse(_) => {
                self.stats.rq_total.inc();
                self.stats.rq_direct_response.inc();
                self.direct_response(ctx);
                return;
            }
        }
        let Some(cluster) = self.stream.cluster else {
            self.stats.rq_total.inc();
            self.stats.no_cluster.inc();
            self.stream.flags.set(ResponseFlags::NO_CLUSTER_FOUND);
            let status = matched.cluster_not_found_response_code();
            self.send_local_reply(ctx, status, b"", &[]);
            return;
        };
        let info = self.stream_info();
        // The router decodes the request (Envoy counts `rq_total` there, and where the
        // route ends in a local answer: no route, no cluster, redirect, direct response).
        self.stats.rq_total.inc();
        match RouterState::begin(&cfg, self.stream, cluster, &info, self.original_dst, ctx) {
            Ok(r) => {
                self.stream.router = Some(Box::new(r));
            }
            Err(reply) => self.router_reply(ctx, reply),
        }
    }

    /// The router's `passthrough_internal_redirect_*` stats.
    fn count_passthrough(&self, reason: Passthrough) {
        match reason {
            Passthrough::BadLocation => self.stats.passthrough_internal_redirect_bad_location.inc(),
            Passthrough::UnsafeScheme => self.stats.passthrough_internal_redirect_unsafe_scheme.inc(),
            Passthrough::TooManyRedirects => self.stats.passthrough_internal_redirect_too_many_redirects.inc(),
            Passthrough::NoRoute => self.stats.passthrough_internal_redirect_no_route.inc(),
            Passthrough::Predicate => self.stats.passthrough_internal_redirect_predicate.inc(),
            Passthrough::Other => {}
        }
    }

    /// A local reply the router asked for.
    pub fn router_reply<S: Stack>(&mut self, ctx: &mut Ctx<'_, S>, reply: router::LocalReply) {
        self.stream.flags.set(reply.flags);
        let extra: Vec<(&[u8], &[u8])> =
            if reply.overloaded { vec![(b"x-envoy-overloaded", b"true")] } else { Vec::new() };
        self.send_local_reply(ctx, reply.status, reply.body.as_bytes(), &extra);
    }

    /// Send a local reply (Envoy's `sendLocalReply`): the route's response header
    /// mutations do not apply; the HCM's do.
    pub fn send_local_reply<S: Stack>(
        &mut self,
        ctx: &mut Ctx<'_, S>,
        status: u16,
        body: &[u8],
        extra: &[(&[u8], &[u8])],
    ) {
        if self.stream.response_started {
            // Too late for a reply: the client already has a response head.
            self.io.reset(ctx.stack);
            return;
        }
        let mut resp = std::mem::take(&mut self.stream.response);
        if crate::router::route_match::is_grpc(&self.stream.head) {
            // A trailers-only gRPC response (Envoy's sendLocalReply for gRPC).
            // Envoy answers a max-duration timeout with DEADLINE_EXCEEDED.
            let deadline = self.stream.flags.contains(ResponseFlags::DURATION_TIMEOUT).then_some(4);
            crate::http::grpc::build_local_reply(&mut resp, status, body, self.stream.meta.is_head, deadline);
            for (n, v) in extra {
                resp.headers.set(n, v);
            }
            self.stream.response = resp;
            self.write_response_head(ctx, OutgoingBody::Empty, true);
            let mut io = FilteredStream::new(self.io, self.cfg, self.stream);
            io.encode_end(self.stream);
            io.finish(self.stream);
            self.stream.response_done = true;
            self.stream.phase = FilterPhase::Routed;
            self.start_calls(ctx);
            return;
        }
        local_reply::build(&mut resp, status, body);
        for (n, v) in extra {
            resp.headers.set(n, v);
        }
        self.stream.response = resp;
        self.write_response_head(ctx, OutgoingBody::Length(body.len() as u64), true);
        let mut io = FilteredStream::new(self.io, self.cfg, self.stream);
        io.encode_data(self.stream, body, self.cfg.buffer_limit);
        io.encode_end(self.stream);
        io.finish(self.stream);
        self.stream.response_done = true;
        self.stream.phase = FilterPhase::Routed;
        self.start_calls(ctx);
    }

    /// Encode `self.stream.response` downstream (HCM mutations applied here).
    pub fn write_response_head<S: Stack>(&mut self, ctx: &mut Ctx<'_, S>, body: OutgoingBody, _local: bool) {
        if self.draining {
            self.stream.close_after = true;
        }
        let date = ctx.date.get(ctx.wall);
        let mut io = FilteredStream::new(self.io, self.cfg, self.stream);
        io.encode_headers(self.cfg, self.stream, date, ctx.draining, body);
        io.finish(self.stream);
    }

    /// Hand the finished request to every access logger.
    pub fn write_access_log<S: Stack>(&self, ctx: &mut Ctx<'_, S>) {
        let s = &self.stream;
        let mut info: StreamInfo<'_> = self.stream_info();
        info.dynamic_metadata = Some(s.filters.dynamic_metadata());
        info.response_code = s.response_started.then_some(s.response.status);
        info.response_flags = s.flags;
        info.bytes_received = s.rq_body_bytes;
        info.bytes_sent = s.resp_body_bytes;
        info.duration = Some(ctx.now.saturating_duration_since(s.start));
        info.upstream_remote = s.upstream_host;
        info.attempt_count = s.attempt_count;
        if s.response_started {
            info.grpc_status =
                s.resp_grpc_status.or_else(|| crate::http::grpc::parse_status(s.response.headers.get(b"grpc-status")));
        }
        info.hostname = crate::access_log::hostname();
        let matched = s.route.as_ref().and_then(|r| self.cfg.routes.get(r));
        let cluster = s.cluster.and_then(|i| self.cfg.clusters.clusters.get(i)).map(|c| c.name());
        let cx = FormatContext {
            info: &info,
            request: Some(&s.head),
            response: s.response_started.then_some(&s.response),
            route_name: matched.as_ref().map_or("", |m| m.route_name()),
            cluster,
        };
        for logger in &self.cfg.access_log {
            logger.log(&cx, ctx.access_log, ctx.runtime);
        }
    }

    /// Drive the router one round; what the connection must do next is in the step
    /// (`upgraded`, `reset_downstream`); a local reply it asked for is sent here.
    pub fn drive_router<S: Stack>(&mut self, ctx: &mut Ctx<'_, S>) -> Step {
        let Some(mut r) = self.stream.router.take() else {
            return Step::default();
        };
        let cfg = Arc::clone(self.cfg);
        let mut io = FilteredStream::new(self.io, &cfg, self.stream);
        let mut step = r.drive(&cfg, self.stream, &mut io, ctx);
        let filter_reply = io.finish(self.stream);
        self.start_calls(ctx);
        self.stream.router = Some(r);
        if let (Some(fr), Some(_)) = (filter_reply, step.reply.as_ref()) {
            // A decoder filter refused the request body (the router saw it as malformed).
            step.reply = None;
            if let Some(mut r) = self.stream.router.take() {
                r.cancel(ctx);
            }
            let headers: Vec<(&[u8], &[u8])> = fr.headers.iter().map(|(n, v)| (&n[..], &v[..])).collect();
            self.send_local_reply(ctx, fr.status, &fr.body, &headers);
            step.progress = true;
            return step;
        }
        match step.redirect.take() {
            Some(RedirectStep::Followed(route)) => {
                if let Some(mut r) = self.stream.router.take() {
                    r.cancel(ctx);
                }
                self.recreate_stream(ctx, route);
                step.progress = true;
                return step;
            }
            Some(RedirectStep::Passthrough(reason)) => self.count_passthrough(reason),
            None => {}
        }
        if !step.upgraded {
            if let Some(reply) = step.reply.take() {
                if let Some(mut r) = self.stream.router.take() {
                    r.cancel(ctx);
                }
                self.router_reply(ctx, reply);
                step.progress = true;
            }
        }
        step
    }

    /// The stream is over (or its connection is going away): router and filter state
    /// released, stats, access log. False when it had already ended.
    pub fn end_stream<S: Stack>(&mut self, ctx: &mut Ctx<'_, S>, aborted: bool) -> bool {
        if !self.stream.active {
            return false;
        }
        self.stream.active = false;
        if let Some(mut r) = self.stream.router.take() {
            r.cancel(ctx);
        }
        self.stream.async_calls.cancel_all(ctx);
        self.stream.filters.destroy();
        self.stats.downstream_rq_active.dec();
        if self.stream.upgrade != super::upgrade::UpgradeKind::None {
            self.stats.downstream_cx_upgrades_active.dec();
        }
        if self.stream.response_started {
            self.count_status(self.stream.response.status);
            self.stats.downstream_rq_completed.inc();
            self.stats.downstream_rq_time.record(ctx.now.saturating_duration_since(self.stream.start));
        } else if aborted {
            self.stats.downstream_rq_rx_reset.inc();
        }
        tracing::debug!(
            method = %self.stream.head.method,
            path = %self.stream.head.path,
            status = self.stream.response.status,
            "request done"
        );
        if !self.cfg.access_log.is_empty() {
            self.write_access_log(ctx);
        }
        self.finish_tracing(ctx);
        true
    }
}
