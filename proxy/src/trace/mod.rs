//! HTTP tracing in the connection manager (Envoy's `source/common/tracing` and the
//! tracing half of `ConnectionManagerUtility`/`ActiveStream`), compiled once per
//! connection manager into a [`Tracer`].
//!
//! Per request, in Envoy's order: once the route is known, the sampling decision is
//! made on the request id (`mutateTracingRequestHeader`: `x-client-trace-id` with
//! `client_sampling`, `x-envoy-force-trace`, else `random_sampling` on the id's value
//! modulo 10,000, all capped by `overall_sampling`; the route's `tracing` replaces the
//! percentages) and packed into `x-request-id`; the provider starts the span (a child
//! of the incoming W3C or B3 context, whose sampled flag it follows, else a root span
//! sampled by the decision), the route's `decorator` (or an internal request's
//! `x-envoy-decorator-operation`) names it, and the span's context is written into the
//! request that goes upstream. When the stream ends, a sampled span gets Envoy's tags
//! and goes to the worker's span buffer ([`span_buffer`]), whose reports the worker
//! sends through its own async client ([`reporter`]); an unsampled one is propagated as such and
//! never exported. The hot path reads no string it could have resolved at load, and a
//! connection manager without `tracing` pays nothing.

pub mod context;
pub mod custom_tag;
pub mod otlp;
pub mod otlp_wire;
pub mod reporter;
pub mod span;
pub mod span_buffer;
pub mod timing;
pub mod upstream;
pub mod zipkin;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use sluice_config::core::FractionalPercent;
use sluice_config::metadata::Metadata;
use sluice_config::route::Route;
use sluice_config::trace::{HcmTracing, OtlpExporter, RouteTracing, TracingProvider, UuidRequestIdConfig};

use sluice_stack::Stack;

use crate::http::async_client::AsyncClient;
use crate::http::request_id::{self, TraceReason};
use crate::http::response_flags::ResponseFlags;
use crate::http::{HeaderMap, RequestHead, ResponseHead, Version};
use crate::rng::Rng;
use crate::runtime::Snapshot;
use crate::stats::{HttpStats, SharedCounter};
use crate::upstream::cluster_manager::{ClusterInfo, ClusterManager};
use crate::worker::background::Background;
use crate::worker_ctx::Ctx;

use self::context::SpanContext;
use self::custom_tag::{compile_tags, Tag, TagSources};
use self::reporter::{Format, Reporter};
use self::span::{ActiveSpan, FinishedSpan, SpanKind, StreamTrace, TagText};
use self::upstream::{TryStart, UpstreamTry};

const FORCE_TRACE: &[u8] = b"x-envoy-force-trace";
/// How long an OTLP/gRPC export may take when `grpc_service.timeout` is unset (Envoy
/// sets none; sluice bounds every report).
const GRPC_EXPORT_TIMEOUT: Duration = Duration::from_secs(5);
const CLIENT_TRACE_ID: &[u8] = b"x-client-trace-id";
const DECORATOR_OPERATION: &[u8] = b"x-envoy-decorator-operation";

/// The proxy's identity as Envoy's `LocalInfo` has it (the bootstrap's `node`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LocalInfo {
    pub node_id: String,
    /// `node.cluster`: Zipkin's `serviceName`.
    pub cluster: String,
    pub zone: String,
}

static LOCAL_INFO: OnceLock<LocalInfo> = OnceLock::new();

/// Record the node (once, at start; Envoy's node does not change on reload).
pub fn set_local_info(info: LocalInfo) {
    let _ = LOCAL_INFO.set(info);
}

pub(crate) fn local_info() -> &'static LocalInfo {
    static NONE: LocalInfo = LocalInfo { node_id: String::new(), cluster: String::new(), zone: String::new() };
    LOCAL_INFO.get().unwrap_or(&NONE)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DriverKind {
    Zipkin { shared_span_context: bool, trace_id_128bit: bool },
    OpenTelemetry,
}

#[derive(Debug)]
struct Driver {
    kind: DriverKind,
    reporter: Arc<Reporter>,
}

/// A connection manager's tracing, compiled.
#[derive(Debug)]
pub struct Tracer {
    client_sampling: FractionalPercent,
    random_sampling: FractionalPercent,
    overall_sampling: FractionalPercent,
    max_path_tag_length: usize,
    custom_tags: Vec<Tag>,
    spawn_upstream_span: bool,
    verbose: bool,
    request_id: UuidRequestIdConfig,
    driver: Option<Driver>,
    local: &'static LocalInfo,
}

/// What the end of a stream knows, for the span's tags.
#[derive(Debug, Clone, Copy)]
pub struct SpanFacts<'a> {
    pub head: &'a RequestHead,
    pub route: Option<&'a Route>,
    /// The response code sent downstream (None: none was, e.g. a reset).
    pub status: Option<u16>,
    pub flags: ResponseFlags,
    pub upstream_cluster: Option<&'a str>,
    pub upstream_address: Option<SocketAddr>,
    /// The downstream connection's peer.
    pub peer: SocketAddr,
    pub request_size: u64,
    pub response_size: u64,
    pub start_time: SystemTime,
    /// When the stream started, on the worker's clock (`start_time`'s instant).
    pub start: Instant,
    pub duration: Duration,
    /// When the stream ended (the last upstream try's end).
    pub end: Instant,
    /// The stream's dynamic metadata (request metadata custom tags).
    pub dynamic_metadata: Option<&'a Metadata>,
    /// The upstream cluster (cluster and host metadata custom tags).
    pub cluster: Option<&'a ClusterInfo>,
}

impl Tracer {
    /// Compile; the collector cluster must exist.
    pub fn new(
        t: &HcmTracing,
        request_id: UuidRequestIdConfig,
        clusters: &Arc<ClusterManager>,
    ) -> Result<Tracer, String> {
        let local = local_info();
        let driver = match &t.provider {
            None => None,
            Some(p) => {
                let name = p.collector_cluster();
                let client = AsyncClient::new(name, clusters)
                    .map_err(|_| format!("tracing: unknown collector cluster `{name}`"))?;
                let (kind, format, timeout) = match p {
                    TracingProvider::Zipkin(z) => (
                        DriverKind::Zipkin {
                            shared_span_context: z.shared_span_context,
                            trace_id_128bit: z.trace_id_128bit,
                        },
                        Format::Zipkin {
                            endpoint: z.collector_endpoint.clone(),
                            hostname: z.collector_hostname.clone(),
                            proto: z.proto,
                            local: zipkin::LocalEndpoint {
                                service_name: local.cluster.clone(),
                                address: crate::http::conn_manager::headers::local_address(),
                            },
                        },
                        Duration::from_secs(5),
                    ),
                    TracingProvider::OpenTelemetry(o) => {
                        let env =
                            o.environment_resource_detector.then(|| std::env::var("OTEL_RESOURCE_ATTRIBUTES").ok());
                        let resource = otlp::resource_attributes(&o.service_name, env.flatten().as_deref());
                        let (format, timeout) = match &o.exporter {
                            OtlpExporter::Http(h) => (
                                Format::OtlpHttp {
                                    path: h.path.clone(),
                                    host: h.host.clone(),
                                    headers: h.request_headers_to_append.clone(),
                                    resource,
                                },
                                h.timeout,
                            ),
                            OtlpExporter::Grpc(g) => {
                                if !client.is_http2() {
                                    return Err(format!(
                                        "tracing: OTLP/gRPC needs an HTTP/2 cluster: `{name}` speaks HTTP/1.1 \
                                         (set its typed_extension_protocol_options http2_protocol_options)"
                                    ));
                                }
                                let authority = g.cluster_name.clone();
                                (Format::OtlpGrpc { authority, resource }, g.timeout.unwrap_or(GRPC_EXPORT_TIMEOUT))
                            }
                        };
                        (DriverKind::OpenTelemetry, format, timeout)
                    }
                };
                Some(Driver { kind, reporter: Arc::new(Reporter::new(format, client, timeout)) })
            }
        };
        Ok(Tracer {
            client_sampling: t.client_sampling,
            random_sampling: t.random_sampling,
            overall_sampling: t.overall_sampling,
            max_path_tag_length: t.max_path_tag_length as usize,
            custom_tags: compile_tags(&t.custom_tags),
            spawn_upstream_span: t.spawn_upstream_span,
            verbose: t.verbose,
            request_id,
            driver,
            local,
        })
    }

    /// The tracer's counters, by full name.
    pub fn counters(&self) -> Vec<(String, Arc<SharedCounter>)> {
        self.driver.as_ref().map(|d| d.reporter.counters()).unwrap_or_default()
    }

    /// Envoy's `mutateTracingRequestHeader`: the trace decision, packed into the
    /// request id.
    pub fn decide(
        &self,
        h: &mut HeaderMap,
        route: Option<&RouteTracing>,
        rng: &mut Rng,
        runtime: &Snapshot,
    ) -> TraceReason {
        if !self.request_id.use_request_id_for_trace_sampling {
            return TraceReason::Sampling;
        }
        let Some(rid) = request_id::to_integer(h) else {
            return TraceReason::NotTraceable;
        };
        let result = rid % 10_000;
        let (client, random, overall) = match route {
            Some(r) => (r.client_sampling, r.random_sampling, r.overall_sampling),
            None => (self.client_sampling, self.random_sampling, self.overall_sampling),
        };
        let pack = self.request_id.pack_trace_reason;
        let mut reason = request_id::trace_reason(h);
        if reason == TraceReason::NotTraceable {
            if h.contains(CLIENT_TRACE_ID)
                && runtime.feature_enabled_fraction("tracing.client_enabled", client, rng.next_u64())
            {
                reason = TraceReason::ClientForced;
                request_id::set_trace_reason(h, reason, pack);
            } else if h.contains(FORCE_TRACE) {
                reason = TraceReason::ServiceForced;
                request_id::set_trace_reason(h, reason, pack);
            } else if runtime.feature_enabled_fraction("tracing.random_sampling", random, result) {
                reason = TraceReason::Sampling;
                request_id::set_trace_reason(h, reason, pack);
            }
        }
        if reason != TraceReason::NotTraceable
            && !runtime.feature_enabled_fraction("tracing.global_enabled", overall, result)
        {
            reason = TraceReason::NotTraceable;
            request_id::set_trace_reason(h, reason, pack);
        }
        reason
    }

    /// The request has its route: decide, start the span, name it, and write its
    /// context into the request (Envoy's `traceRequest` plus the router's
    /// `injectContext`).
    pub fn start(
        &self,
        head: &mut RequestHead,
        route: Option<&Route>,
        rng: &mut Rng,
        runtime: &Snapshot,
        stats: &HttpStats,
    ) -> StreamTrace {
        let reason = self.decide(&mut head.headers, route.and_then(|r| r.tracing.as_ref()), rng, runtime);
        match reason {
            TraceReason::ClientForced => stats.tracing_client_enabled.inc(),
            TraceReason::Sampling => stats.tracing_random_sampling.inc(),
            TraceReason::ServiceForced => stats.tracing_service_forced.inc(),
            TraceReason::NotTraceable => stats.tracing_not_traceable.inc(),
        }
        let mut trace = StreamTrace::default();
        let mut span = self.driver.as_ref().and_then(|d| start_span(d.kind, head, reason.traced(), rng));
        if let Some(d) = route.and_then(|r| r.decorator.as_ref()) {
            if let Some(s) = span.as_mut() {
                s.name.clone_from(&d.operation);
            }
            if d.propagate {
                trace.propagate_operation = Some(d.operation.clone());
            }
        }
        // Ingress: a request's decorator operation (kept only on internal requests)
        // overrides the span's name and is not passed on.
        if let Some(op) = head.headers.get(DECORATOR_OPERATION) {
            if !op.is_empty() {
                if let Some(s) = span.as_mut() {
                    s.name = String::from_utf8_lossy(op).into_owned();
                }
                trace.propagate_operation = None;
            }
            head.headers.remove(DECORATOR_OPERATION);
        }
        if let (Some(s), Some(d)) = (&span, &self.driver) {
            match d.kind {
                DriverKind::Zipkin { .. } => context::inject_b3(&mut head.headers, &s.context),
                DriverKind::OpenTelemetry => context::inject_w3c(&mut head.headers, &s.context),
            }
        }
        if self.verbose && span.as_ref().is_some_and(|s| s.context.sampled) {
            trace.timing = Some(timing::StreamTiming::default());
        }
        trace.span = span;
        trace
    }

    /// The stream ended: a sampled span (and its upstream tries' spans) gets its tags
    /// and goes to the worker's span buffer.
    pub fn finish<S: Stack>(&self, trace: StreamTrace, f: &SpanFacts<'_>, ctx: &mut Ctx<'_, S>) {
        let (Some(span), Some(driver)) = (trace.span, &self.driver) else { return };
        if !span.context.sampled {
            return;
        }
        for t in trace.upstream {
            let s = self.finished_upstream_span(t, f);
            let wake = ctx.background.spans.push(&driver.reporter, s, ctx.now, ctx.runtime);
            Background::wake(ctx, wake);
        }
        let mut s = self.finished_span(span, f);
        if let Some(t) = &trace.timing {
            s.logs = t.logs(f.start, f.start_time);
        }
        let wake = ctx.background.spans.push(&driver.reporter, s, ctx.now, ctx.runtime);
        Background::wake(ctx, wake);
    }

    /// Whether the router starts a span per upstream try (`spawn_upstream_span`).
    pub fn spawns_upstream_spans(&self) -> bool {
        self.spawn_upstream_span && self.driver.is_some()
    }

    /// A try starts (Envoy's `UpstreamRequest` with `spawnUpstreamSpan()`): a CLIENT
    /// child of the stream's span, named `router <cluster> egress`, whose context
    /// replaces the stream's in the request going upstream.
    pub fn start_upstream(&self, trace: &mut StreamTrace, headers: &mut HeaderMap, s: &TryStart<'_>, rng: &mut Rng) {
        let (Some(parent), Some(driver)) = (&trace.span, &self.driver) else { return };
        let context = SpanContext { span_id: random_id(rng), parent_id: parent.context.span_id, ..parent.context };
        let child = ActiveSpan {
            context,
            name: format!("router {} egress", s.cluster),
            shared: false,
            trace_state: parent.trace_state.clone(),
        };
        match driver.kind {
            DriverKind::Zipkin { .. } => context::inject_b3(headers, &child.context),
            DriverKind::OpenTelemetry => context::inject_w3c(headers, &child.context),
        }
        trace.on_try_start(s, child);
    }

    /// A try's span with Envoy's tags (`finalizeUpstreamSpan`, `setCommonTags`).
    fn finished_upstream_span(&self, t: UpstreamTry, f: &SpanFacts<'_>) -> FinishedSpan {
        let start_us = t.start_time.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64);
        let mut s = FinishedSpan {
            context: t.span.context,
            kind: SpanKind::Client,
            name: t.span.name.clone(),
            shared: false,
            trace_state: t.span.trace_state.clone(),
            start_us,
            duration_us: t.duration(f.end).as_micros() as u64,
            tags: Vec::with_capacity(12),
            error: false,
            logs: Vec::new(),
        };
        if t.attempt > 1 {
            s.push_tag("retry.count", (t.attempt - 1).to_string());
        }
        s.push_tag("http.protocol", if t.http2 { "HTTP/2" } else { "HTTP/1.1" });
        s.push_tag("upstream_address", socket_text(t.host));
        s.push_tag("peer.address", socket_text(t.host));
        s.push_tag("component", "proxy");
        s.push_tag("upstream_cluster", t.cluster.clone());
        s.push_tag("upstream_cluster.name", t.cluster.clone());
        s.push_tag("http.status_code", status_text(t.status.unwrap_or(0)));
        s.push_tag("response_flags", t.response_flags());
        if t.status.is_none_or(|c| (500..600).contains(&c)) {
            s.push_tag("error", "true");
            s.error = true;
        }
        let route_tags = f.route.and_then(|r| r.tracing.as_ref()).map(|t| compile_tags(&t.custom_tags));
        let sources = TagSources {
            dynamic_metadata: f.dynamic_metadata,
            route_metadata: f.route.map(|r| &r.metadata),
            cluster: f.cluster,
            upstream_address: Some(t.host),
        };
        for tag in self.custom_tags.iter().chain(route_tags.iter().flatten()) {
            let value = tag.value(&f.head.headers, &sources);
            if !value.is_empty() {
                s.set_tag(tag.name.clone(), value);
            }
        }
        s
    }

    /// The span with Envoy's tags (`finalizeDownstreamSpan`, `setCommonTags`, custom
    /// tags of the connection manager and the route).
    pub fn finished_span(&self, span: ActiveSpan, f: &SpanFacts<'_>) -> FinishedSpan {
        let h = &f.head.headers;
        let start_us = f.start_time.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64);
        let mut s = FinishedSpan {
            context: span.context,
            kind: SpanKind::Server,
            name: span.name,
            shared: span.shared,
            trace_state: span.trace_state,
            start_us,
            duration_us: f.duration.as_micros() as u64,
            tags: Vec::with_capacity(24),
            error: false,
            logs: Vec::new(),
        };
        // The tracer's own tags, each set once (push_tag: no lookup); fixed strings
        // are borrowed, not copied.
        s.push_tag("node_id", self.local.node_id.as_str());
        s.push_tag("zone", self.local.zone.as_str());
        if let Some(rid) = h.get_str(request_id::REQUEST_ID) {
            s.push_tag("guid:x-request-id", rid.to_string());
        }
        let path = h.get_str(b"x-envoy-original-path").unwrap_or(&f.head.path);
        let (scheme, authority) = (f.head.scheme.as_str(), f.head.authority.as_str());
        let mut url = String::with_capacity(scheme.len() + 3 + authority.len() + path.len());
        url.push_str(scheme);
        url.push_str("://");
        url.push_str(authority);
        url.push_str(path);
        if url.len() > self.max_path_tag_length {
            let mut cut = self.max_path_tag_length;
            while !url.is_char_boundary(cut) {
                cut -= 1;
            }
            url.truncate(cut);
        }
        s.push_tag("http.url", url);
        s.push_tag("http.method", static_or_owned(f.head.method.as_str(), METHODS));
        s.push_tag("downstream_cluster", or_dash(h.get_str(b"x-envoy-downstream-service-cluster")));
        s.push_tag("user_agent", or_dash(h.get_str(b"user-agent")));
        s.push_tag("http.protocol", crate::router::formatter::protocol_name(f.head.version.unwrap_or(Version::Http11)));
        s.push_tag("peer.address", ip_text(f.peer.ip()));
        if let Some(id) = h.get_str(CLIENT_TRACE_ID) {
            s.push_tag("guid:x-client-trace-id", id.to_string());
        }
        s.push_tag("request_size", decimal_text(f.request_size));
        s.push_tag("response_size", decimal_text(f.response_size));
        s.push_tag("component", "proxy");
        if let (Some(cluster), Some(addr)) = (f.upstream_cluster, f.upstream_address) {
            s.push_tag("upstream_cluster", cluster.to_string());
            s.push_tag("upstream_cluster.name", cluster.to_string());
            s.push_tag("upstream_address", socket_text(addr));
        }
        s.push_tag("http.status_code", status_text(f.status.unwrap_or(0)));
        if f.flags == ResponseFlags::NONE {
            s.push_tag("response_flags", "-");
        } else {
            let mut flags = String::new();
            f.flags.write(&mut flags);
            s.push_tag("response_flags", flags);
        }
        if f.status.is_none_or(|c| (500..600).contains(&c)) {
            s.push_tag("error", "true");
            s.error = true;
        }
        let route_tags = f.route.and_then(|r| r.tracing.as_ref()).map(|t| compile_tags(&t.custom_tags));
        let sources = TagSources {
            dynamic_metadata: f.dynamic_metadata,
            route_metadata: f.route.map(|r| &r.metadata),
            cluster: f.cluster,
            upstream_address: f.upstream_address,
        };
        for tag in self.custom_tags.iter().chain(route_tags.iter().flatten()) {
            let value = tag.value(h, &sources);
            if !value.is_empty() {
                s.set_tag(tag.name.clone(), value);
            }
        }
        s
    }
}

const METHODS: &[&str] = &["GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "CONNECT", "TRACE"];

/// `s` borrowed from `known` when it is one of them, else copied.
fn static_or_owned(s: &str, known: &[&'static str]) -> TagText {
    match known.iter().find(|k| **k == s) {
        Some(k) => TagText::Borrowed(k),
        None => TagText::Owned(s.to_string()),
    }
}

fn or_dash(v: Option<&str>) -> TagText {
    match v {
        Some(v) => TagText::Owned(v.to_string()),
        None => TagText::Borrowed("-"),
    }
}

/// The status code as text (the common ones without an allocation).
fn status_text(code: u16) -> TagText {
    const COMMON: &[(u16, &str)] = &[
        (200, "200"),
        (201, "201"),
        (204, "204"),
        (301, "301"),
        (302, "302"),
        (304, "304"),
        (400, "400"),
        (401, "401"),
        (403, "403"),
        (404, "404"),
        (500, "500"),
        (502, "502"),
        (503, "503"),
        (504, "504"),
        (0, "0"),
    ];
    match COMMON.iter().find(|(c, _)| *c == code) {
        Some((_, t)) => TagText::Borrowed(t),
        None => TagText::Owned(code.to_string()),
    }
}

/// `v` in decimal, without the formatting machinery (the size tags of every span).
fn decimal_text(v: u64) -> TagText {
    if v == 0 {
        return TagText::Borrowed("0");
    }
    let mut t = String::with_capacity(20);
    push_decimal(&mut t, v);
    TagText::Owned(t)
}

fn push_decimal(t: &mut String, v: u64) {
    t.push_str(crate::http::local_reply::decimal_digits(v, &mut [0u8; 20]));
}

fn push_ipv4(t: &mut String, ip: Ipv4Addr) {
    for (i, o) in ip.octets().into_iter().enumerate() {
        if i > 0 {
            t.push('.');
        }
        push_decimal(t, o as u64);
    }
}

/// An address as `IpAddr`'s `Display` writes it (IPv4 without the formatting machinery).
fn ip_text(ip: IpAddr) -> TagText {
    match ip {
        IpAddr::V4(v4) => {
            let mut t = String::with_capacity(15);
            push_ipv4(&mut t, v4);
            TagText::Owned(t)
        }
        IpAddr::V6(_) => TagText::Owned(ip.to_string()),
    }
}

/// `ip:port` as `SocketAddr`'s `Display` writes it.
fn socket_text(addr: SocketAddr) -> TagText {
    match addr {
        SocketAddr::V4(a) => {
            let mut t = String::with_capacity(21);
            push_ipv4(&mut t, *a.ip());
            t.push(':');
            push_decimal(&mut t, a.port() as u64);
            TagText::Owned(t)
        }
        SocketAddr::V6(_) => TagText::Owned(addr.to_string()),
    }
}

fn random_id(rng: &mut Rng) -> u64 {
    rng.next_u64().max(1)
}

/// The provider's `startSpan`: a child of the incoming context, else a root span; a
/// malformed incoming context makes no span (Envoy's `NullSpan`).
fn start_span(kind: DriverKind, head: &RequestHead, traced: bool, rng: &mut Rng) -> Option<ActiveSpan> {
    let h = &head.headers;
    match kind {
        DriverKind::Zipkin { shared_span_context, trace_id_128bit } => {
            let sampled = context::b3_sampled(h, traced);
            let name = head.authority.clone();
            match context::extract_b3(h, sampled).ok()? {
                None => {
                    let id = random_id(rng);
                    let high = if trace_id_128bit { rng.next_u64() } else { 0 };
                    let trace_id = ((high as u128) << 64) | id as u128;
                    let context = SpanContext { trace_id, span_id: id, parent_id: 0, sampled };
                    Some(ActiveSpan { context, name, shared: false, trace_state: None })
                }
                Some(parent) if shared_span_context => {
                    Some(ActiveSpan { context: parent, name, shared: true, trace_state: None })
                }
                Some(parent) => {
                    let context = SpanContext { span_id: random_id(rng), parent_id: parent.span_id, ..parent };
                    Some(ActiveSpan { context, name, shared: false, trace_state: None })
                }
            }
        }
        DriverKind::OpenTelemetry => {
            let name = "ingress".to_string();
            match context::extract_w3c(h).ok()? {
                None => {
                    let trace_id = ((random_id(rng) as u128) << 64) | rng.next_u64() as u128;
                    let context = SpanContext { trace_id, span_id: random_id(rng), parent_id: 0, sampled: traced };
                    Some(ActiveSpan { context, name, shared: false, trace_state: None })
                }
                Some(parent) => {
                    let context = SpanContext { span_id: random_id(rng), parent_id: parent.span_id, ..parent };
                    let trace_state = h.get_str(context::TRACESTATE).map(str::to_string);
                    Some(ActiveSpan { context, name, shared: false, trace_state })
                }
            }
        }
    }
}

/// The response head's tracing headers (Envoy's `mutateResponseHeaders` and
/// `encodeHeaders`): `x-request-id` when `always_set_request_id_in_response` or the
/// request asked for `x-envoy-force-trace`, and the decorator's operation.
pub fn mutate_response_headers(
    always_set_request_id: bool,
    request: &HeaderMap,
    trace: Option<&StreamTrace>,
    response: &mut ResponseHead,
) {
    if always_set_request_id || request.contains(FORCE_TRACE) {
        if let Some(rid) = request.get(request_id::REQUEST_ID) {
            response.headers.set(request_id::REQUEST_ID, rid);
        }
    }
    if let Some(op) = trace.and_then(|t| t.propagate_operation.as_deref()) {
        response.headers.set(DECORATOR_OPERATION, op.as_bytes());
    }
}

#[cfg(test)]
mod tests;
