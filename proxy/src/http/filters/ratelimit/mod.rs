//! The global rate limit filter (`envoy.filters.http.ratelimit`, Envoy's
//! ratelimit.cc): the route's (and the virtual host's) `rate_limits` make descriptors
//! of the request ([`descriptors`]); when there are any, `ShouldRateLimit` goes to the
//! `envoy.service.ratelimit.v3.RateLimitService` of `rate_limit_service` through the
//! worker's [`AsyncClient`] within `timeout`, and the chain waits for the answer.
//!
//! - OK: the service's `request_headers_to_add` are added to the request and its
//!   `response_headers_to_add` to the response.
//! - OVER_LIMIT: `rate_limited_status` (429) with the service's `raw_body` and
//!   response headers, `x-envoy-ratelimited: true` (unless
//!   `disable_x_envoy_ratelimited_header`), flag `RL`, details `request_rate_limited`;
//!   with the runtime's `ratelimit.http_filter_enforcing` off the request goes on.
//! - Error (service down, timeout, a gRPC failure, an undecodable answer): the request
//!   goes on (`failure_mode_allowed`), or with `failure_mode_deny` gets
//!   `status_on_error` (500), flag `RLSE`, details `rate_limiter_error`.
//! - `enable_x_ratelimit_headers: DRAFT_VERSION_03` adds `x-ratelimit-limit`,
//!   `-remaining` and `-reset` from the descriptor statuses.
//! - No call: runtime `ratelimit.http_filter_enabled` off, a request of the other
//!   `request_type` (`x-envoy-internal: true` is internal), no route entry, a route
//!   cluster the config does not have, or no descriptor.
//!
//! The virtual host's `rate_limits` apply when the route's action says
//! `include_vh_rate_limits`, else as the most specific `RateLimitPerRoute.vh_rate_limits`
//! says (OVERRIDE by default: only when the route has none).
//!
//! Stats, as Envoy: `cluster.<route's cluster>.ratelimit.{ok,error,over_limit,
//! failure_mode_allowed}`.

pub mod descriptors;
mod proto;

use std::collections::HashMap;
use std::sync::Arc;

use prost::Message;
use sluice_config::filters::ratelimit::{RateLimitFilter as Config, RequestType, VhRateLimits, XRateLimitHeaders};

use self::descriptors::RateLimitPolicy;
use self::proto::{RateLimitRequest, RateLimitResponse};
use crate::http::async_client::{grpc as unary, AsyncClient, Outcome};
use crate::http::filter::{FilterCallbacks, HeadersStatus, StreamContext, StreamFilter};
use crate::http::filters::per_route::{PerRouteFilter, RouteView};
use crate::http::filters::{mix, CounterSet};
use crate::http::response_flags::ResponseFlags;
use crate::http::{RequestHead, ResponseHead};
use crate::stats::SharedCounter;
use crate::upstream::cluster_manager::ClusterManager;

/// `cluster.<name>.ratelimit.*`.
#[derive(Debug)]
struct Stats {
    ok: Arc<SharedCounter>,
    error: Arc<SharedCounter>,
    over_limit: Arc<SharedCounter>,
    failure_mode_allowed: Arc<SharedCounter>,
}

/// The filter's config, compiled once and shared by the workers.
#[derive(Debug)]
pub struct RateLimitConfig {
    client: Arc<AsyncClient>,
    domain: String,
    stage: u32,
    request_type: RequestType,
    timeout: std::time::Duration,
    failure_mode_deny: bool,
    x_ratelimit_headers: bool,
    x_envoy_ratelimited_header: bool,
    rate_limited_status: u16,
    status_on_error: u16,
    /// By the route's cluster (every cluster of the config).
    stats: HashMap<String, Stats>,
}

impl RateLimitConfig {
    /// Compile; an error (for the filter's path) when the service's cluster is unknown
    /// or does not speak HTTP/2.
    pub fn new(c: &Config, clusters: &Arc<ClusterManager>, counters: &mut CounterSet) -> Result<Self, String> {
        let name = &c.service.cluster_name;
        let at = "rate_limit_service.grpc_service.envoy_grpc.cluster_name";
        let client = AsyncClient::new(name, clusters).map_err(|e| format!("{at}: {e}"))?;
        if !client.is_http2() {
            return Err(format!(
                "{at}: cluster '{name}' is not configured for HTTP/2 \
                 (gRPC needs explicit_http_config.http2_protocol_options)"
            ));
        }
        let mut stats = HashMap::new();
        for cl in &clusters.clusters {
            let n = &cl.config.name;
            let base = format!("cluster.{n}.ratelimit.");
            stats.insert(
                n.clone(),
                Stats {
                    ok: counters.counter(format!("{base}ok")),
                    error: counters.counter(format!("{base}error")),
                    over_limit: counters.counter(format!("{base}over_limit")),
                    failure_mode_allowed: counters.counter(format!("{base}failure_mode_allowed")),
                },
            );
        }
        Ok(RateLimitConfig {
            client,
            domain: c.domain.clone(),
            stage: c.stage,
            request_type: c.request_type,
            timeout: c.timeout,
            failure_mode_deny: c.failure_mode_deny,
            x_ratelimit_headers: c.x_ratelimit_headers == XRateLimitHeaders::DraftVersion03,
            x_envoy_ratelimited_header: !c.disable_x_envoy_ratelimited_header,
            rate_limited_status: c.rate_limited_status,
            status_on_error: c.status_on_error,
            stats,
        })
    }
}

/// What the service said.
#[derive(Debug, PartialEq)]
enum Answer {
    Ok(RateLimitResponse),
    OverLimit(RateLimitResponse),
    Error,
}

fn answer(outcome: Outcome) -> Answer {
    let Ok(bytes) = unary::response(outcome) else {
        return Answer::Error;
    };
    match proto::decode_response(&bytes) {
        None => Answer::Error,
        Some(r) if r.overall_code == proto::CODE_OVER_LIMIT => Answer::OverLimit(r),
        // Envoy: UNKNOWN is not over the limit.
        Some(r) => Answer::Ok(r),
    }
}

/// The rate limit filter on one stream.
#[derive(Debug)]
pub struct RateLimitFilter {
    config: Arc<RateLimitConfig>,
    /// The route's policy (`None`: no route entry) and the virtual host's, when it
    /// applies.
    route: Option<Arc<RateLimitPolicy>>,
    vhost: Option<Arc<RateLimitPolicy>>,
    /// The route's cluster, known to the config (set when the call goes out).
    cluster: Option<String>,
    /// For the response (appended).
    response_headers: Vec<(Vec<u8>, Vec<u8>)>,
}

impl RateLimitFilter {
    pub fn new(config: Arc<RateLimitConfig>, route: &RouteView<'_>, k: usize) -> RateLimitFilter {
        let Some(limits) = route.rate_limits() else {
            return RateLimitFilter { config, route: None, vhost: None, cluster: None, response_headers: Vec::new() };
        };
        let option = if limits.include_vh_rate_limits {
            VhRateLimits::Include
        } else {
            match route.most_specific(k) {
                Some(PerRouteFilter::RateLimit(p)) => p.vh_rate_limits,
                _ => VhRateLimits::Override,
            }
        };
        let vhost = match option {
            VhRateLimits::Include => Some(Arc::clone(limits.vhost)),
            VhRateLimits::Override if limits.route.is_empty() => Some(Arc::clone(limits.vhost)),
            _ => None,
        };
        RateLimitFilter {
            config,
            route: Some(Arc::clone(limits.route)),
            vhost,
            cluster: None,
            response_headers: Vec::new(),
        }
    }

    fn stats(&self) -> Option<&Stats> {
        self.config.stats.get(self.cluster.as_deref()?)
    }
}

fn header(h: &proto::HeaderValue) -> Option<(Vec<u8>, Vec<u8>)> {
    let name = h.key.to_ascii_lowercase();
    if name.is_empty() || name.bytes().any(|b| b <= b' ' || b == b':' || b >= 0x7f) {
        return None;
    }
    let value = if h.raw_value.is_empty() { h.value.as_bytes().to_vec() } else { h.raw_value.clone() };
    if value.iter().any(|&b| b == b'\r' || b == b'\n' || b == 0) {
        return None;
    }
    Some((name.into_bytes(), value))
}

/// `x-ratelimit-*` (draft 03) of the descriptor statuses: the status with the least
/// remaining, and the quota policy of each status with a known window.
fn x_ratelimit_headers(statuses: &[proto::DescriptorStatus]) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut min: Option<&proto::DescriptorStatus> = None;
    let mut policy = String::new();
    for s in statuses {
        let Some(limit) = &s.current_limit else { continue };
        if min.is_none_or(|m| s.limit_remaining < m.limit_remaining) {
            min = Some(s);
        }
        let window = proto::unit_seconds(limit.unit);
        if window != 0 {
            policy.push_str(&format!(", {};w={window}", limit.requests_per_unit));
            if !limit.name.is_empty() {
                policy.push_str(&format!(";name=\"{}\"", limit.name));
            }
        }
    }
    let Some(m) = min else { return Vec::new() };
    let limit = m.current_limit.as_ref().map_or(0, |l| l.requests_per_unit);
    let reset = m.duration_until_reset.as_ref().map_or(0, |d| d.seconds);
    vec![
        (b"x-ratelimit-limit".to_vec(), format!("{limit}{policy}").into_bytes()),
        (b"x-ratelimit-remaining".to_vec(), m.limit_remaining.to_string().into_bytes()),
        (b"x-ratelimit-reset".to_vec(), reset.to_string().into_bytes()),
    ]
}

impl StreamFilter for RateLimitFilter {
    fn decode_headers(
        &mut self,
        head: &mut RequestHead,
        _end_stream: bool,
        cx: &StreamContext<'_>,
        cb: &mut FilterCallbacks,
    ) -> HeadersStatus {
        let c = &self.config;
        let random = cb.random();
        if !cx.runtime.feature_enabled("ratelimit.http_filter_enabled", 100, random) {
            return HeadersStatus::Continue;
        }
        let internal = head.headers.get(b"x-envoy-internal") == Some(b"true");
        match c.request_type {
            RequestType::Internal if !internal => return HeadersStatus::Continue,
            RequestType::External if internal => return HeadersStatus::Continue,
            _ => {}
        }
        let Some(route) = &self.route else {
            return HeadersStatus::Continue;
        };
        if !c.stats.contains_key(cx.cluster) {
            return HeadersStatus::Continue;
        }
        let local = crate::trace::local_info().cluster.as_str();
        let mut descriptors = Vec::new();
        route.populate(c.stage, head, cx, local, mix(random), &mut descriptors);
        if let Some(vh) = &self.vhost {
            vh.populate(c.stage, head, cx, local, mix(random ^ 1), &mut descriptors);
        }
        if descriptors.is_empty() {
            return HeadersStatus::Continue;
        }
        self.cluster = Some(cx.cluster.to_string());
        let msg = RateLimitRequest { domain: c.domain.clone(), descriptors, hits_addend: 0 }.encode_to_vec();
        let request = unary::request(c.client.cluster_name(), proto::SHOULD_RATE_LIMIT_PATH, &msg, Some(c.timeout));
        cb.send_request(&c.client, request, 0);
        HeadersStatus::StopIteration
    }

    fn encode_headers(
        &mut self,
        head: &mut ResponseHead,
        _end_stream: bool,
        _cb: &mut FilterCallbacks,
    ) -> HeadersStatus {
        for (n, v) in self.response_headers.drain(..) {
            head.headers.append(&n, &v);
        }
        HeadersStatus::Continue
    }

    fn on_async_complete(
        &mut self,
        _tag: u32,
        outcome: Outcome,
        head: &mut RequestHead,
        cx: &StreamContext<'_>,
        cb: &mut FilterCallbacks,
    ) -> HeadersStatus {
        let Some(stats) = self.stats() else {
            return HeadersStatus::Continue;
        };
        let c = Arc::clone(&self.config);
        let (over, r) = match answer(outcome) {
            Answer::Error => {
                stats.error.inc();
                if !c.failure_mode_deny {
                    stats.failure_mode_allowed.inc();
                    return HeadersStatus::Continue;
                }
                cb.set_flag(ResponseFlags::RATE_LIMIT_SERVICE_ERROR);
                cb.send_local_reply(c.status_on_error, b"", Vec::new(), "rate_limiter_error");
                return HeadersStatus::StopIteration;
            }
            Answer::Ok(r) => {
                stats.ok.inc();
                (false, r)
            }
            Answer::OverLimit(r) => {
                stats.over_limit.inc();
                (true, r)
            }
        };
        self.response_headers = r.response_headers_to_add.iter().filter_map(header).collect();
        if over && c.x_envoy_ratelimited_header {
            self.response_headers.push((b"x-envoy-ratelimited".to_vec(), b"true".to_vec()));
        }
        if c.x_ratelimit_headers {
            self.response_headers.extend(x_ratelimit_headers(&r.statuses));
        }
        if over && cx.runtime.feature_enabled("ratelimit.http_filter_enforcing", 100, cb.random()) {
            cb.set_flag(ResponseFlags::RATE_LIMITED);
            let headers = std::mem::take(&mut self.response_headers);
            cb.send_local_reply(c.rate_limited_status, &r.raw_body, headers, "request_rate_limited");
            return HeadersStatus::StopIteration;
        }
        for (n, v) in r.request_headers_to_add.iter().filter_map(header) {
            head.headers.append(&n, &v);
        }
        HeadersStatus::Continue
    }
}

#[cfg(test)]
mod tests;
