//! The JWT authentication filter (`envoy.extensions.filters.http.jwt_authn.v3.
//! JwtAuthentication`), as Envoy's jwt_authn filter.cc: pick the requirement (the
//! route's `PerRouteConfig`, else the first matching `rules` entry), verify the
//! request's JWTs against it, and either let the request on or answer it: 401 with the
//! failure's text (403 for "Audiences in Jwt are not allowed") and
//! `WWW-Authenticate: Bearer realm="<scheme>://<host><path>"` (plus
//! `, error="invalid_token"` unless the token was missing); a route naming a
//! requirement the filter lacks gets 403 "Failed JWT authentication: Wrong
//! requirement_name: ...". `strip_failure_response` leaves the bodies empty (and the
//! header off). `bypass_cors_preflight` lets CORS preflights through.
//!
//! Local keys are parsed once per config; a request is verified synchronously in
//! `decode_headers`, with each provider's per-worker cache of verified tokens
//! (`jwt_cache_config`, [`worker`]). When its tokens need `remote_jwks` keys this worker
//! lacks, the filter fetches them ([`remote_jwks`]), stops iteration, and verifies the
//! request in `on_async_complete` once every fetch has ended. Token times are judged against the wall clock derived from the
//! stream's `now` (a monotonic instant) and a wall-clock anchor taken when the config
//! was compiled, so nothing here reads the clock. Stats: `http.<stat_prefix>.jwt_authn.
//! {allowed,denied,cors_preflight_bypassed,jwt_cache_hit,jwt_cache_miss}`; verified payloads
//! and headers go to dynamic metadata namespace `envoy.filters.http.jwt_authn`.

pub mod extractor;
pub mod jwks;
pub mod jwt;
pub mod jwt_cache;
pub mod remote_jwks;
pub mod status;
pub mod verifier;
pub mod worker;

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use sluice_config::filters::jwt_authn::{JwksSource, JwtAuthentication, JwtPerRoute, RuleRequirement};
use sluice_config::route::RouteMatch;

use self::jwks::Jwks;
use self::remote_jwks::RemoteJwks;
use self::status::Status;
use self::verifier::{Context, Provider, Verifier};
use crate::http::async_client::Outcome;
use crate::http::filter::{DataStatus, FilterCallbacks, HeadersStatus, StreamContext, StreamFilter, TrailersStatus};
use crate::http::filters::per_route::{PerRouteFilter, RouteView};
use crate::http::filters::CounterSet;
use crate::http::{HeaderMap, RequestHead};
use crate::stats::SharedCounter;
use crate::upstream::cluster_manager::ClusterManager;

/// The dynamic metadata namespace of verified payloads.
pub const METADATA_NAMESPACE: &str = "envoy.filters.http.jwt_authn";
const MAX_URI_PATH: usize = 256;

/// A route's `PerRouteConfig`, resolved against the filter's `requirement_map`.
#[derive(Debug, Clone)]
pub enum JwtRoute {
    Disabled,
    Requirement(usize),
    /// A name the map lacks: 403 with this message.
    Unknown(Arc<str>),
}

impl JwtRoute {
    /// Resolve `c` against the filter `factory` it configures.
    pub fn new(c: &JwtPerRoute, factory: &super::FilterFactory) -> JwtRoute {
        let name = match c {
            JwtPerRoute::Disabled => return JwtRoute::Disabled,
            JwtPerRoute::RequirementName(n) => n,
        };
        let super::FilterFactory::JwtAuthn(config) = factory else {
            return JwtRoute::Disabled;
        };
        match config.names.iter().position(|n| n == name) {
            Some(i) => JwtRoute::Requirement(i),
            None => {
                let mut all: Vec<&str> = config.names.iter().map(String::as_str).collect();
                all.sort_unstable();
                JwtRoute::Unknown(
                    format!("Wrong requirement_name: {name}. It should be one of [{}]", all.join(",")).into(),
                )
            }
        }
    }
}

/// The filter's compiled config and stats.
#[derive(Debug)]
pub struct JwtAuthnConfig {
    providers: Vec<Provider>,
    rules: Vec<(RouteMatch, Option<usize>)>,
    /// Rule requirements, then `requirement_map` entries (from `named`).
    verifiers: Vec<Verifier>,
    /// Index of the first `requirement_map` verifier in `verifiers`.
    named: usize,
    names: Vec<String>,
    bypass_cors_preflight: bool,
    strip_failure_response: bool,
    /// The wall clock at `anchor` (token times are Unix seconds).
    wall_anchor: SystemTime,
    anchor: Instant,
    allowed: Arc<SharedCounter>,
    denied: Arc<SharedCounter>,
    cors_preflight_bypassed: Arc<SharedCounter>,
    jwt_cache_hit: Arc<SharedCounter>,
    jwt_cache_miss: Arc<SharedCounter>,
    jwks_fetch_success: Arc<SharedCounter>,
    jwks_fetch_failed: Arc<SharedCounter>,
    /// Some provider's keys are remote (requests may have to wait for them).
    has_remote: bool,
}

impl JwtAuthnConfig {
    /// Compile: read and parse every provider's JWKS. A JWKS that cannot be read is an
    /// error; one that does not parse is logged, and its provider's tokens fail with
    /// "Jwks doesn't have any valid public key" (Envoy's behaviour).
    /// `remote_jwks` clusters must be known to `clusters`.
    pub fn new(
        c: &JwtAuthentication,
        clusters: &Arc<ClusterManager>,
        prefix: &str,
        counters: &mut CounterSet,
    ) -> Result<JwtAuthnConfig, String> {
        let mut providers = Vec::with_capacity(c.providers.len());
        for p in &c.providers {
            let provider = match &p.jwks {
                JwksSource::Local(source) => {
                    let text = source.read().map_err(|e| format!("providers.{}.local_jwks: {e}", p.name))?;
                    let jwks = match Jwks::parse(&text) {
                        Ok(j) => Some(j),
                        Err(e) => {
                            tracing::warn!(provider = %p.name, issuer = %p.issuer, "jwt_authn: invalid local_jwks: {e}");
                            None
                        }
                    };
                    Provider::new(p, jwks)
                }
                JwksSource::Remote(r) => {
                    let remote =
                        RemoteJwks::new(r, clusters).map_err(|e| format!("providers.{}.remote_jwks.{e}", p.name))?;
                    let mut provider = Provider::new(p, None);
                    provider.remote = Some(remote);
                    provider
                }
            };
            providers.push(provider);
        }
        let mut verifiers = Vec::new();
        let mut rules = Vec::with_capacity(c.rules.len());
        let named_base = c.rules.iter().filter(|r| matches!(r.requirement, RuleRequirement::Requires(_))).count();
        for r in &c.rules {
            let v = match &r.requirement {
                RuleRequirement::None => None,
                RuleRequirement::Requires(req) => {
                    verifiers.push(Verifier::new(req, &providers));
                    Some(verifiers.len() - 1)
                }
                RuleRequirement::Named(i) => Some(named_base + i),
            };
            rules.push((r.route_match.clone(), v));
        }
        for (_, req) in &c.requirement_map {
            verifiers.push(Verifier::new(req, &providers));
        }
        let stat = |counters: &mut CounterSet, n: &str| counters.counter(format!("{prefix}jwt_authn.{n}"));
        let has_remote = providers.iter().any(|p| p.remote.is_some());
        Ok(JwtAuthnConfig {
            providers,
            rules,
            verifiers,
            named: named_base,
            names: c.requirement_map.iter().map(|(n, _)| n.clone()).collect(),
            bypass_cors_preflight: c.bypass_cors_preflight,
            strip_failure_response: c.strip_failure_response,
            wall_anchor: SystemTime::now(),
            anchor: Instant::now(),
            allowed: stat(counters, "allowed"),
            denied: stat(counters, "denied"),
            cors_preflight_bypassed: stat(counters, "cors_preflight_bypassed"),
            jwt_cache_hit: stat(counters, "jwt_cache_hit"),
            jwt_cache_miss: stat(counters, "jwt_cache_miss"),
            jwks_fetch_success: stat(counters, "jwks_fetch_success"),
            jwks_fetch_failed: stat(counters, "jwks_fetch_failed"),
            has_remote,
        })
    }

    /// Unix seconds at `now`.
    fn unix(&self, now: Instant) -> u64 {
        let wall = match now.checked_duration_since(self.anchor) {
            Some(d) => self.wall_anchor.checked_add(d),
            None => self.wall_anchor.checked_sub(self.anchor.duration_since(now)),
        };
        wall.and_then(|w| w.duration_since(UNIX_EPOCH).ok()).map_or(0, |d| d.as_secs())
    }

    /// The first rule matching the request: its verifier (`None`: nothing required).
    fn find(&self, head: &RequestHead) -> Option<&Verifier> {
        let (_, v) = self.rules.iter().find(|(m, _)| crate::router::route_match::route_matches(m, head))?;
        v.and_then(|i| self.verifiers.get(i))
    }
}

/// The filter on one stream.
#[derive(Debug)]
pub struct JwtAuthnFilter {
    config: Arc<JwtAuthnConfig>,
    route: Option<JwtRoute>,
    /// JWKS fetches in flight (the request waits for all of them).
    fetching: u32,
    /// Providers whose fetch failed for this request.
    fetch_failed: Vec<usize>,
}

impl JwtAuthnFilter {
    pub fn new(config: Arc<JwtAuthnConfig>, route: &RouteView<'_>, k: usize) -> JwtAuthnFilter {
        let route = match route.most_specific(k) {
            Some(PerRouteFilter::JwtAuthn(r)) => Some(r.clone()),
            _ => None,
        };
        JwtAuthnFilter { config, route, fetching: 0, fetch_failed: Vec::new() }
    }

    /// Judge the request: pick its requirement, fetch the remote keys it needs (when
    /// `may_fetch`; the request then waits), verify.
    fn run(
        &mut self,
        head: &mut RequestHead,
        cx: &StreamContext<'_>,
        cb: &mut FilterCallbacks,
        may_fetch: bool,
    ) -> HeadersStatus {
        let JwtAuthnFilter { config, route, fetching, fetch_failed } = self;
        let config: &Arc<JwtAuthnConfig> = config;
        let verifier = match route {
            Some(JwtRoute::Disabled) => None,
            Some(JwtRoute::Requirement(i)) => config.verifiers.get(config.named + *i),
            Some(JwtRoute::Unknown(msg)) => {
                let body = format!("Failed JWT authentication: {msg}");
                deny(config, 403, &body, None, "jwt_authn_access_denied{Wrong_requirement_name}", cb);
                return HeadersStatus::StopIteration;
            }
            None => config.find(head),
        };
        let Some(verifier) = verifier else {
            config.allowed.inc();
            return HeadersStatus::Continue;
        };
        let state = worker::state(config);
        let mut state = state.borrow_mut();
        let mut ctx = Context {
            providers: &config.providers,
            now: config.unix(cx.now),
            instant: cx.now,
            fetch_failed: fetch_failed.as_slice(),
            jwt_cache_hit: &config.jwt_cache_hit,
            jwt_cache_miss: &config.jwt_cache_miss,
            worker: &mut state,
            extracted: Default::default(),
        };
        if may_fetch && config.has_remote {
            let mut fetches = Vec::new();
            ctx.fetches(verifier, head, &mut fetches);
            if !fetches.is_empty() {
                for p in fetches {
                    if let Some(r) = config.providers[p].remote.as_ref() {
                        cb.send_request(r.client(), r.request(), p as u32);
                        *fetching += 1;
                    }
                }
                return HeadersStatus::StopIteration;
            }
        }
        let status = ctx.verify(verifier, head);
        if !ctx.extracted.is_empty() {
            cb.set_dynamic_metadata(METADATA_NAMESPACE, std::mem::take(&mut ctx.extracted));
        }
        if status == Status::Ok {
            config.allowed.inc();
            return HeadersStatus::Continue;
        }
        tracing::debug!(status = status.text(), "jwt_authn: denied");
        let mut www = format!("Bearer realm=\"{}\"", original_uri(head));
        if status != Status::JwtMissed {
            www.push_str(", error=\"invalid_token\"");
        }
        deny(config, status.http_status(), status.text(), Some(www), status.details(), cb);
        HeadersStatus::StopIteration
    }
}

/// Count the denial and answer it (bodies and `WWW-Authenticate` unless
/// `strip_failure_response`).
fn deny(
    config: &JwtAuthnConfig,
    status: u16,
    body: &str,
    www: Option<String>,
    details: &'static str,
    cb: &mut FilterCallbacks,
) {
    config.denied.inc();
    if config.strip_failure_response {
        cb.send_local_reply(status, b"", Vec::new(), details);
        return;
    }
    let headers = www.map(|v| vec![(b"www-authenticate".to_vec(), v.into_bytes())]).unwrap_or_default();
    cb.send_local_reply(status, body.as_bytes(), headers, details);
}

/// `isCorsPreflightRequest`.
fn is_cors_preflight(head: &RequestHead) -> bool {
    let nonempty = |n: &[u8]| head.headers.get(n).is_some_and(|v| !v.is_empty());
    head.method == "OPTIONS" && nonempty(b"origin") && nonempty(b"access-control-request-method")
}

/// `Http::Utility::buildOriginalUri(headers, 256)`: `x-forwarded-proto://host/path`,
/// the path without its query, at most 256 bytes.
fn original_uri(head: &RequestHead) -> String {
    let path = head.headers.get_str(b"x-envoy-original-path").unwrap_or(&head.path);
    let path = crate::router::route_match::path_only(path);
    let mut end = path.len().min(MAX_URI_PATH);
    while !path.is_char_boundary(end) {
        end -= 1;
    }
    let proto = head.headers.get_str(b"x-forwarded-proto").unwrap_or("");
    format!("{proto}://{}{}", head.authority, &path[..end])
}

impl StreamFilter for JwtAuthnFilter {
    fn decode_headers(
        &mut self,
        head: &mut RequestHead,
        _end_stream: bool,
        cx: &StreamContext<'_>,
        cb: &mut FilterCallbacks,
    ) -> HeadersStatus {
        let config = &self.config;
        if config.bypass_cors_preflight && is_cors_preflight(head) {
            config.cors_preflight_bypassed.inc();
            config.allowed.inc();
            return HeadersStatus::Continue;
        }
        self.run(head, cx, cb, true)
    }

    fn decode_data(&mut self, _data: &mut Vec<u8>, _end_stream: bool, _cb: &mut FilterCallbacks) -> DataStatus {
        DataStatus::Continue
    }

    fn decode_trailers(&mut self, _trailers: &mut HeaderMap, _cb: &mut FilterCallbacks) -> TrailersStatus {
        TrailersStatus::Continue
    }

    /// A JWKS fetch ended: keep the keys (or note the failure); once the last one the
    /// request waits for has ended, verify it.
    fn on_async_complete(
        &mut self,
        tag: u32,
        outcome: Outcome,
        head: &mut RequestHead,
        cx: &StreamContext<'_>,
        cb: &mut FilterCallbacks,
    ) -> HeadersStatus {
        let config = Arc::clone(&self.config);
        let p = tag as usize;
        if let Some(remote) = config.providers.get(p).and_then(|x| x.remote.as_ref()) {
            match remote.fetched(outcome, cx.now) {
                Ok(f) => {
                    config.jwks_fetch_success.inc();
                    let state = worker::state(&config);
                    let mut state = state.borrow_mut();
                    if let Some(s) = state.providers.get_mut(p) {
                        s.remote = Some(f);
                    }
                }
                Err(e) => {
                    config.jwks_fetch_failed.inc();
                    tracing::debug!(provider = %config.providers[p].config.name, "jwt_authn: JWKS fetch failed: {e}");
                    self.fetch_failed.push(p);
                }
            }
        }
        self.fetching = self.fetching.saturating_sub(1);
        if self.fetching > 0 {
            return HeadersStatus::StopIteration;
        }
        self.run(head, cx, cb, false)
    }
}

#[cfg(test)]
mod tests;
