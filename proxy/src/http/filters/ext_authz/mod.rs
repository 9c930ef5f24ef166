//! The external authorization filter (`envoy.filters.http.ext_authz`, Envoy's
//! ext_authz.cc): each request's attributes go to an authorization service — an HTTP
//! server (`http_service`, [`http`]) or an `envoy.service.auth.v3.Authorization/Check`
//! gRPC server (`grpc_service`, [`grpc`]) — through the worker's
//! [`AsyncClient`](crate::http::async_client), and the chain waits for the answer.
//!
//! - OK: the service's headers are set on (or appended to, or removed from) the
//!   request before it goes on, its response headers are added to the response, its
//!   dynamic metadata lands under `envoy.filters.http.ext_authz`; with
//!   `clear_route_cache` the route is matched again when headers changed.
//! - Denied: the client gets the service's status (403 without one), body and allowed
//!   headers (flag `UAEX`, details `ext_authz_denied`).
//! - Error (unreachable, timeout, HTTP 5xx, a gRPC failure, a malformed answer): with
//!   `failure_mode_allow` the request goes on (with `x-envoy-auth-failure-mode-allowed:
//!   true` when `failure_mode_allow_header_add`), else `status_on_error` (403).
//! - `with_request_body`: the check waits for the request body (up to
//!   `max_request_bytes`, held with that limit: a longer body is answered 413 `Payload
//!   Too Large` unless `allow_partial_message`, which sends the first
//!   `max_request_bytes` as soon as they are here and marks the check request
//!   `x-envoy-auth-partial-body: true`). The body goes in the HTTP check request, or
//!   in the gRPC `attributes.request.http.body` (`raw_body` with `pack_as_bytes`).
//!   While the service decides, the rest of the body waits in the codec; it then goes
//!   on after the held bytes. A route's `check_settings` turn buffering off
//!   (`disable_request_body_buffering`) or replace the settings (`with_request_body`).
//! - `filter_enabled` off skips the check (`disabled`), and `deny_at_disable` then
//!   answers `status_on_error`; a route's `ExtAuthzPerRoute.disabled` skips it silently;
//!   `check_settings.context_extensions` go into the gRPC `CheckRequest`.
//!
//! Stats: `http.<stat_prefix>.ext_authz.[<filter stat_prefix>.]{ok,denied,error,
//! disabled,failure_mode_allowed}`.

mod grpc;
mod http;
mod proto;

use std::sync::Arc;

use sluice_config::core::RuntimeFractionalPercent;
use sluice_config::filters::ext_authz::{AuthzService, BufferSettings, ExtAuthz, ExtAuthzPerRoute, RuntimeFeatureFlag};
use sluice_config::metadata::Struct;

use crate::http::async_client::{AsyncClient, Outcome, Request};
use crate::http::filter::{DataStatus, FilterCallbacks, HeadersStatus, StreamContext, StreamFilter, TrailersStatus};
use crate::http::filters::per_route::{PerRouteFilter, RouteView};
use crate::http::filters::CounterSet;
use crate::http::response_flags::ResponseFlags;
use crate::http::{HeaderMap, RequestHead, ResponseHead};
use crate::stats::SharedCounter;
use crate::upstream::cluster_manager::ClusterManager;

/// The dynamic metadata namespace of the filter.
pub const METADATA_NAMESPACE: &str = "envoy.filters.http.ext_authz";
const FAILURE_MODE_ALLOWED_HEADER: &[u8] = b"x-envoy-auth-failure-mode-allowed";
/// In the check request when it carries a body: `true` when the body was cut at
/// `max_request_bytes` (a client's own header of that name is never passed on).
pub(super) const PARTIAL_BODY_HEADER: &[u8] = b"x-envoy-auth-partial-body";

/// `ext_authz.*` counters.
#[derive(Debug)]
struct Stats {
    ok: Arc<SharedCounter>,
    denied: Arc<SharedCounter>,
    error: Arc<SharedCounter>,
    disabled: Arc<SharedCounter>,
    failure_mode_allowed: Arc<SharedCounter>,
}

/// Which service, compiled.
#[derive(Debug)]
enum Service {
    Http(http::HttpCheck),
    Grpc(grpc::GrpcCheck),
}

/// The filter's config, compiled once and shared by the workers.
#[derive(Debug)]
pub struct ExtAuthzConfig {
    client: Arc<AsyncClient>,
    service: Service,
    failure_mode_allow: bool,
    failure_mode_allow_header_add: bool,
    clear_route_cache: bool,
    status_on_error: u16,
    filter_enabled: Option<RuntimeFractionalPercent>,
    deny_at_disable: Option<RuntimeFeatureFlag>,
    with_request_body: Option<BufferSettings>,
    stats: Stats,
}

impl ExtAuthzConfig {
    /// Compile; an error (for the filter's path) when the service's cluster is unknown
    /// or a gRPC service's cluster does not speak HTTP/2.
    pub fn new(
        c: &ExtAuthz,
        clusters: &Arc<ClusterManager>,
        prefix: &str,
        counters: &mut CounterSet,
    ) -> Result<ExtAuthzConfig, String> {
        let (client, service) = match &c.service {
            AuthzService::Http(h) => {
                let client = AsyncClient::new(&h.cluster, clusters)
                    .map_err(|e| format!("http_service.server_uri.cluster: {e}"))?;
                (client, Service::Http(http::HttpCheck::new(h, c.allowed_headers.clone())))
            }
            AuthzService::Grpc(g) => {
                let client = AsyncClient::new(&g.cluster_name, clusters)
                    .map_err(|e| format!("grpc_service.envoy_grpc.cluster_name: {e}"))?;
                if !client.is_http2() {
                    return Err(format!(
                        "grpc_service.envoy_grpc.cluster_name: cluster '{}' is not configured for HTTP/2 \
                         (gRPC needs explicit_http_config.http2_protocol_options)",
                        g.cluster_name
                    ));
                }
                (client, Service::Grpc(grpc::GrpcCheck::new(g, c.allowed_headers.clone())))
            }
        };
        let base = if c.stat_prefix.is_empty() {
            format!("{prefix}ext_authz.")
        } else {
            format!("{prefix}ext_authz.{}.", c.stat_prefix)
        };
        let stats = Stats {
            ok: counters.counter(format!("{base}ok")),
            denied: counters.counter(format!("{base}denied")),
            error: counters.counter(format!("{base}error")),
            disabled: counters.counter(format!("{base}disabled")),
            failure_mode_allowed: counters.counter(format!("{base}failure_mode_allowed")),
        };
        Ok(ExtAuthzConfig {
            client,
            service,
            failure_mode_allow: c.failure_mode_allow,
            failure_mode_allow_header_add: c.failure_mode_allow_header_add,
            clear_route_cache: c.clear_route_cache,
            status_on_error: c.status_on_error,
            filter_enabled: c.filter_enabled.clone(),
            deny_at_disable: c.deny_at_disable.clone(),
            with_request_body: c.with_request_body,
            stats,
        })
    }
}

/// What the service decided.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Allowed {
    /// Set on the request (replacing values of the same name).
    pub headers_to_set: Vec<(Vec<u8>, Vec<u8>)>,
    pub headers_to_append: Vec<(Vec<u8>, Vec<u8>)>,
    pub headers_to_remove: Vec<Vec<u8>>,
    /// Added to the response.
    pub response_headers_to_add: Vec<(Vec<u8>, Vec<u8>)>,
    pub dynamic_metadata: Option<Struct>,
}

#[derive(Debug, PartialEq)]
pub(super) enum Decision {
    Ok(Allowed),
    Denied { status: u16, headers: Vec<(Vec<u8>, Vec<u8>)>, body: Vec<u8> },
    Error,
}

/// The body a check request waits for.
#[derive(Debug)]
pub(super) struct BodyCheck {
    settings: BufferSettings,
    /// The check request, built from the request head (its body added at the end).
    pending: Option<Pending>,
    /// The first `max_request_bytes` of the body.
    body: Vec<u8>,
    /// Body bytes seen.
    seen: usize,
}

/// A check request waiting for the body.
#[derive(Debug)]
enum Pending {
    Http(Request),
    Grpc(Box<proto::CheckRequest>),
}

/// ext_authz on one stream.
#[derive(Debug)]
pub struct ExtAuthzFilter {
    config: Arc<ExtAuthzConfig>,
    /// The route's `check_settings.context_extensions`.
    context_extensions: Vec<(String, String)>,
    /// The route turns the check off.
    route_disabled: bool,
    /// Headers for the response (an OK decision's).
    response_headers: Vec<(Vec<u8>, Vec<u8>)>,
    /// The request body settings for this stream (`None`: headers only).
    body_settings: Option<BufferSettings>,
    /// Waiting for the body (set by `decode_headers`, taken when the check goes).
    body_check: Option<Box<BodyCheck>>,
}

impl ExtAuthzFilter {
    pub fn new(config: Arc<ExtAuthzConfig>, route: &RouteView<'_>, k: usize) -> ExtAuthzFilter {
        let mut body_settings = config.with_request_body;
        let (route_disabled, context_extensions) = match route.most_specific(k) {
            Some(PerRouteFilter::ExtAuthz(p)) => match &**p {
                ExtAuthzPerRoute::Disabled => (true, Vec::new()),
                ExtAuthzPerRoute::CheckSettings {
                    context_extensions,
                    disable_request_body_buffering,
                    with_request_body,
                } => {
                    if *disable_request_body_buffering {
                        body_settings = None;
                    } else if with_request_body.is_some() {
                        body_settings = *with_request_body;
                    }
                    (false, context_extensions.clone())
                }
            },
            _ => (false, Vec::new()),
        };
        if route_disabled {
            body_settings = None;
        }
        ExtAuthzFilter {
            config,
            context_extensions,
            route_disabled,
            response_headers: Vec::new(),
            body_settings,
            body_check: None,
        }
    }

    /// This stream's check takes the request body (the filter sees body chunks).
    pub fn reads_body(&self) -> bool {
        self.body_settings.is_some()
    }

    /// Send the check that waited for the body, with the body it got.
    fn send_with_body(&mut self, check: Box<BodyCheck>, cb: &mut FilterCallbacks) {
        let c = &self.config;
        let partial = check.seen > check.body.len();
        let request = match check.pending {
            Some(Pending::Http(r)) => match &c.service {
                Service::Http(h) => h.with_body(r, check.body, partial, check.settings.pack_as_bytes),
                Service::Grpc(_) => return,
            },
            Some(Pending::Grpc(mut m)) => {
                grpc::GrpcCheck::add_body(&mut m, check.body, partial, check.settings.pack_as_bytes);
                let Service::Grpc(g) = &c.service else { return };
                g.call(&m, c.client.cluster_name())
            }
            None => return,
        };
        cb.send_request(&c.client, request, 0);
    }

    fn reply_on_error(&self, cb: &mut FilterCallbacks) {
        cb.set_flag(ResponseFlags::UNAUTHORIZED_EXTERNAL_SERVICE);
        cb.send_local_reply(self.config.status_on_error, b"", Vec::new(), "ext_authz_error");
    }

    fn apply(&mut self, decision: Decision, head: &mut RequestHead, cb: &mut FilterCallbacks) -> HeadersStatus {
        let c = &self.config;
        match decision {
            Decision::Ok(ok) => {
                c.stats.ok.inc();
                let changed = !ok.headers_to_set.is_empty()
                    || !ok.headers_to_append.is_empty()
                    || !ok.headers_to_remove.is_empty();
                for (n, v) in &ok.headers_to_set {
                    head.headers.set(n, v);
                }
                for (n, v) in &ok.headers_to_append {
                    head.headers.append(n, v);
                }
                for n in &ok.headers_to_remove {
                    head.headers.remove(n);
                }
                if let Some(md) = ok.dynamic_metadata.filter(|m| !m.is_empty()) {
                    cb.set_dynamic_metadata(METADATA_NAMESPACE, md);
                }
                self.response_headers = ok.response_headers_to_add;
                if c.clear_route_cache && changed {
                    cb.clear_route_cache();
                }
                HeadersStatus::Continue
            }
            Decision::Denied { status, headers, body } => {
                c.stats.denied.inc();
                cb.set_flag(ResponseFlags::UNAUTHORIZED_EXTERNAL_SERVICE);
                cb.send_local_reply(status, &body, headers, "ext_authz_denied");
                HeadersStatus::StopIteration
            }
            Decision::Error => {
                c.stats.error.inc();
                if c.failure_mode_allow {
                    c.stats.failure_mode_allowed.inc();
                    if c.failure_mode_allow_header_add {
                        head.headers.set(FAILURE_MODE_ALLOWED_HEADER, b"true");
                    }
                    return HeadersStatus::Continue;
                }
                self.reply_on_error(cb);
                HeadersStatus::StopIteration
            }
        }
    }
}

/// An upgrade (WebSocket) or a CONNECT tunnel: its bytes are never buffered (Envoy).
fn is_upgrade(head: &RequestHead) -> bool {
    head.headers.get(b"upgrade").is_some() || head.method == "CONNECT"
}

impl StreamFilter for ExtAuthzFilter {
    fn decode_headers(
        &mut self,
        head: &mut RequestHead,
        end_stream: bool,
        cx: &StreamContext<'_>,
        cb: &mut FilterCallbacks,
    ) -> HeadersStatus {
        if self.route_disabled {
            return HeadersStatus::Continue;
        }
        let c = &self.config;
        if let Some(p) = &c.filter_enabled {
            if !cx.enabled(p, cb.random()) {
                c.stats.disabled.inc();
                let deny =
                    c.deny_at_disable.as_ref().is_some_and(|f| cx.runtime.get_boolean(&f.runtime_key, f.default_value));
                if deny {
                    self.reply_on_error(cb);
                    return HeadersStatus::StopIteration;
                }
                return HeadersStatus::Continue;
            }
        }
        if let Some(settings) = self.body_settings.filter(|_| !end_stream && !is_upgrade(head)) {
            // Envoy's `buffer_data_`: the check goes once the body is here.
            let pending = match &c.service {
                Service::Http(h) => Pending::Http(h.request(head)),
                Service::Grpc(g) => Pending::Grpc(Box::new(g.message(head, cx, &self.context_extensions))),
            };
            cb.set_decoder_buffer_limit(settings.max_request_bytes as usize);
            self.body_check = Some(Box::new(BodyCheck { settings, pending: Some(pending), body: Vec::new(), seen: 0 }));
            return HeadersStatus::StopIteration;
        }
        let request = match &c.service {
            Service::Http(h) => h.request(head),
            Service::Grpc(g) => g.request(head, cx, &self.context_extensions, c.client.cluster_name()),
        };
        cb.send_request(&c.client, request, 0);
        HeadersStatus::StopIteration
    }

    fn decode_data(&mut self, data: &mut Vec<u8>, end_stream: bool, cb: &mut FilterCallbacks) -> DataStatus {
        let Some(check) = self.body_check.as_mut() else {
            return DataStatus::Continue;
        };
        let max = check.settings.max_request_bytes as usize;
        check.seen = check.seen.saturating_add(data.len());
        let room = max.saturating_sub(check.body.len()).min(data.len());
        check.body.extend_from_slice(&data[..room]);
        if check.seen > max && !check.settings.allow_partial_message {
            // The decoder buffer limit: Envoy's 413.
            self.body_check = None;
            cb.send_local_reply(413, b"Payload Too Large", Vec::new(), "request_payload_too_large");
            return DataStatus::StopIterationNoBuffer;
        }
        let full = check.settings.allow_partial_message && check.seen >= max;
        if !(end_stream || full) {
            return DataStatus::StopIterationAndBuffer;
        }
        if let Some(check) = self.body_check.take() {
            self.send_with_body(check, cb);
        }
        DataStatus::StopIterationAndWatermark
    }

    /// Trailers end a body the check waits for (Envoy's `decodeTrailers` with
    /// `buffer_data_`): the check goes now, and the stream waits for it.
    fn decode_trailers(&mut self, _trailers: &mut HeaderMap, cb: &mut FilterCallbacks) -> TrailersStatus {
        match self.body_check.take() {
            Some(check) => {
                self.send_with_body(check, cb);
                TrailersStatus::StopIteration
            }
            None => TrailersStatus::Continue,
        }
    }

    fn encode_headers(
        &mut self,
        head: &mut ResponseHead,
        _end_stream: bool,
        _cb: &mut FilterCallbacks,
    ) -> HeadersStatus {
        for (n, v) in self.response_headers.drain(..) {
            head.headers.set(&n, &v);
        }
        HeadersStatus::Continue
    }

    fn on_async_complete(
        &mut self,
        _tag: u32,
        outcome: Outcome,
        head: &mut RequestHead,
        _cx: &StreamContext<'_>,
        cb: &mut FilterCallbacks,
    ) -> HeadersStatus {
        let decision = match &self.config.service {
            Service::Http(h) => h.decide(outcome),
            Service::Grpc(g) => g.decide(outcome),
        };
        self.apply(decision, head, cb)
    }
}
