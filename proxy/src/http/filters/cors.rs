//! The CORS filter (`envoy.extensions.filters.http.cors.v3.Cors`), as Envoy's
//! cors_filter.cc: policies come from the route — every level's per-filter
//! `CorsPolicy` (route first), else the older route and virtual-host `cors` fields —
//! and each setting is taken from the first policy that has it.
//!
//! On a forwarding route, a request with an `Origin` is checked against
//! `allow_origin_string_match` (`cors.origin_valid` / `cors.origin_invalid`). A
//! preflight (`OPTIONS` with `Access-Control-Request-Method`) is answered here with 200
//! and the `access-control-allow-*` headers, unless the origin is not allowed and
//! `forward_not_matching_preflights` (default true) sends it upstream. On other
//! requests from an allowed origin the response gets `access-control-allow-origin`
//! (plus credentials and expose headers). `filter_enabled` (default 100 %) and
//! `shadow_enabled` (stats only) come from the first policy.

use std::sync::Arc;

use sluice_config::filters::cors::CorsPolicy;
use smallvec::SmallVec;

use crate::http::filter::{FilterCallbacks, HeadersStatus, StreamContext, StreamFilter};
use crate::http::filters::per_route::{PerRouteFilter, RouteView};
use crate::http::filters::{mix, CounterSet};
use crate::http::{RequestHead, ResponseHead};
use crate::stats::SharedCounter;

/// The filter's stats (`http.<stat_prefix>.cors.*`).
#[derive(Debug)]
pub struct CorsConfig {
    origin_valid: Arc<SharedCounter>,
    origin_invalid: Arc<SharedCounter>,
}

impl CorsConfig {
    pub fn new(prefix: &str, counters: &mut CounterSet) -> CorsConfig {
        CorsConfig {
            origin_valid: counters.counter(format!("{prefix}cors.origin_valid")),
            origin_invalid: counters.counter(format!("{prefix}cors.origin_invalid")),
        }
    }
}

/// The CORS filter on one stream.
#[derive(Debug)]
pub struct CorsFilter {
    config: Arc<CorsConfig>,
    /// Most specific first (at most one per level: no allocation per stream).
    policies: SmallVec<[Arc<CorsPolicy>; 3]>,
    is_cors_request: bool,
    latched_origin: Option<Vec<u8>>,
}

impl CorsFilter {
    /// `k`: this filter's index in the chain (its per-filter config key).
    pub fn new(config: Arc<CorsConfig>, route: &RouteView<'_>, k: usize) -> CorsFilter {
        let mut policies: SmallVec<[Arc<CorsPolicy>; 3]> = route
            .all(k)
            .filter_map(|c| match c {
                PerRouteFilter::Cors(p) => Some(Arc::clone(p)),
                _ => None,
            })
            .collect();
        if policies.is_empty() {
            policies.extend(route.cors_fields().into_iter().flatten().cloned());
        }
        CorsFilter { config, policies, is_cors_request: false, latched_origin: None }
    }

    fn first<T>(&self, f: impl Fn(&CorsPolicy) -> Option<T>) -> Option<T> {
        self.policies.iter().find_map(|p| f(p))
    }

    fn text(&self, f: impl Fn(&CorsPolicy) -> &str) -> Option<&str> {
        self.policies.iter().map(|p| f(p)).find(|s| !s.is_empty())
    }

    fn allow_credentials(&self) -> bool {
        self.first(|p| p.allow_credentials).unwrap_or(false)
    }

    fn origin_allowed(&self, origin: &[u8]) -> bool {
        let matchers = self.policies.iter().map(|p| &p.allow_origin_string_match).find(|m| !m.is_empty());
        matchers.is_some_and(|ms| ms.iter().any(|m| m.matches(b"*") || m.matches(origin)))
    }
}

impl StreamFilter for CorsFilter {
    fn decode_headers(
        &mut self,
        head: &mut RequestHead,
        _end_stream: bool,
        cx: &StreamContext<'_>,
        cb: &mut FilterCallbacks,
    ) -> HeadersStatus {
        if !cx.routed {
            return HeadersStatus::Continue;
        }
        let Some(first) = self.policies.first() else {
            return HeadersStatus::Continue;
        };
        let r = cb.random();
        let enabled = first.filter_enabled.as_ref().is_none_or(|p| cx.enabled(p, r));
        let shadow = first.shadow_enabled.as_ref().is_some_and(|p| cx.enabled(p, mix(r)));
        if !enabled && !shadow {
            return HeadersStatus::Continue;
        }
        let Some(origin) = head.headers.get(b"origin").filter(|o| !o.is_empty()) else {
            return HeadersStatus::Continue;
        };
        let allowed = self.origin_allowed(origin);
        if allowed {
            self.config.origin_valid.inc();
            self.latched_origin = Some(origin.to_vec());
        } else {
            self.config.origin_invalid.inc();
        }
        if shadow && !enabled {
            return HeadersStatus::Continue;
        }
        self.is_cors_request = true;
        let request_method = head.headers.get(b"access-control-request-method").unwrap_or(b"");
        if head.method != "OPTIONS" || request_method.is_empty() {
            return HeadersStatus::Continue;
        }
        if !allowed && self.first(|p| p.forward_not_matching_preflights).unwrap_or(true) {
            return HeadersStatus::Continue;
        }
        // A preflight: answered here.
        let mut headers: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        if allowed {
            headers.push((b"access-control-allow-origin".to_vec(), origin.to_vec()));
        }
        if self.allow_credentials() {
            headers.push((b"access-control-allow-credentials".to_vec(), b"true".to_vec()));
        }
        let echo = |v: &str, requested: &[u8]| if v == "*" { requested.to_vec() } else { v.as_bytes().to_vec() };
        if let Some(m) = self.text(|p| &p.allow_methods) {
            headers.push((b"access-control-allow-methods".to_vec(), echo(m, request_method)));
        }
        if let Some(h) = self.text(|p| &p.allow_headers) {
            let requested = head.headers.get(b"access-control-request-headers").unwrap_or(b"");
            headers.push((b"access-control-allow-headers".to_vec(), echo(h, requested)));
        }
        if let Some(a) = self.text(|p| &p.max_age) {
            headers.push((b"access-control-max-age".to_vec(), a.as_bytes().to_vec()));
        }
        if self.first(|p| p.allow_private_network_access).unwrap_or(false)
            && head.headers.get(b"access-control-request-private-network") == Some(b"true")
        {
            headers.push((b"access-control-allow-private-network".to_vec(), b"true".to_vec()));
        }
        cb.send_local_reply(200, b"", headers, "cors_response");
        HeadersStatus::StopIteration
    }

    fn encode_headers(&mut self, head: &mut ResponseHead, _end: bool, _cb: &mut FilterCallbacks) -> HeadersStatus {
        if !self.is_cors_request {
            return HeadersStatus::Continue;
        }
        let Some(origin) = &self.latched_origin else {
            return HeadersStatus::Continue;
        };
        head.headers.set(b"access-control-allow-origin", origin);
        if self.allow_credentials() {
            head.headers.set(b"access-control-allow-credentials", b"true");
        }
        if let Some(e) = self.text(|p| &p.expose_headers) {
            let e = e.as_bytes().to_vec();
            head.headers.set(b"access-control-expose-headers", &e);
        }
        HeadersStatus::Continue
    }
}
