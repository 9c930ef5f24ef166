//! The CSRF filter (`envoy.extensions.filters.http.csrf.v3.CsrfPolicy`), as Envoy's
//! csrf_filter.cc: a state-changing request (POST, PUT, DELETE, PATCH) must come from
//! its own origin — the host and port of `Origin` (else `Referer`) equal those of the
//! request's `Host` — or from one of `additional_origins`. Otherwise it is answered 403
//! `Invalid origin` while the policy is enabled (`filter_enabled`), and only counted
//! while it is in shadow mode. The most specific per-route policy replaces the
//! filter's. Stats: `http.<stat_prefix>.csrf.{missing_source_origin,request_invalid,
//! request_valid}`.

use std::sync::Arc;

use sluice_config::filters::csrf::CsrfPolicy;

use crate::http::filter::{FilterCallbacks, HeadersStatus, StreamContext, StreamFilter};
use crate::http::filters::per_route::{PerRouteFilter, RouteView};
use crate::http::filters::{mix, CounterSet};
use crate::http::RequestHead;
use crate::stats::SharedCounter;

/// The filter's policy and stats.
#[derive(Debug)]
pub struct CsrfConfig {
    policy: Arc<CsrfPolicy>,
    missing_source_origin: Arc<SharedCounter>,
    request_invalid: Arc<SharedCounter>,
    request_valid: Arc<SharedCounter>,
}

impl CsrfConfig {
    pub fn new(policy: &CsrfPolicy, prefix: &str, counters: &mut CounterSet) -> CsrfConfig {
        CsrfConfig {
            policy: Arc::new(policy.clone()),
            missing_source_origin: counters.counter(format!("{prefix}csrf.missing_source_origin")),
            request_invalid: counters.counter(format!("{prefix}csrf.request_invalid")),
            request_valid: counters.counter(format!("{prefix}csrf.request_valid")),
        }
    }
}

/// The CSRF filter on one stream.
#[derive(Debug)]
pub struct CsrfFilter {
    config: Arc<CsrfConfig>,
    policy: Arc<CsrfPolicy>,
}

impl CsrfFilter {
    pub fn new(config: Arc<CsrfConfig>, route: &RouteView<'_>, k: usize) -> CsrfFilter {
        let policy = match route.most_specific(k) {
            Some(PerRouteFilter::Csrf(p)) => Arc::clone(p),
            _ => Arc::clone(&config.policy),
        };
        CsrfFilter { config, policy }
    }
}

/// Envoy's `hostAndPort`: the host and port of an absolute URL, else the text itself.
fn host_and_port(value: &str) -> &str {
    let Some((scheme, rest)) = value.split_once("://") else {
        return value;
    };
    if scheme.is_empty() || !scheme.bytes().all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b)) {
        return value;
    }
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    // Userinfo is not part of the host.
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if host.is_empty() {
        return value;
    }
    host
}

fn is_modify_method(method: &str) -> bool {
    matches!(method, "POST" | "PUT" | "DELETE" | "PATCH")
}

impl StreamFilter for CsrfFilter {
    fn decode_headers(
        &mut self,
        head: &mut RequestHead,
        _end_stream: bool,
        cx: &StreamContext<'_>,
        cb: &mut FilterCallbacks,
    ) -> HeadersStatus {
        let r = cb.random();
        let enabled = cx.enabled(&self.policy.filter_enabled, r);
        let shadow = self.policy.shadow_enabled.as_ref().is_some_and(|p| cx.enabled(p, mix(r)));
        if (!enabled && !shadow) || !is_modify_method(&head.method) {
            return HeadersStatus::Continue;
        }
        let header = |name: &[u8]| head.headers.get_str(name).filter(|v| !v.is_empty()).map(host_and_port);
        let source = header(b"origin").or_else(|| header(b"referer")).unwrap_or("");
        let mut valid = true;
        if source.is_empty() {
            valid = false;
            self.config.missing_source_origin.inc();
        }
        let target = if head.authority.is_empty() {
            String::new()
        } else {
            let scheme = if head.scheme.is_empty() { "http" } else { &head.scheme };
            host_and_port(&format!("{scheme}://{}", head.authority)).to_string()
        };
        let same = source == target || self.policy.additional_origins.iter().any(|m| m.matches(source.as_bytes()));
        if !same {
            valid = false;
            self.config.request_invalid.inc();
        }
        if valid {
            self.config.request_valid.inc();
            return HeadersStatus::Continue;
        }
        if shadow && !enabled {
            return HeadersStatus::Continue;
        }
        cb.send_local_reply(403, b"Invalid origin", Vec::new(), "csrf_origin_mismatch");
        HeadersStatus::StopIteration
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_and_port_of_origins() {
        assert_eq!(host_and_port("https://example.com"), "example.com");
        assert_eq!(host_and_port("http://example.com:8080/a?b"), "example.com:8080");
        assert_eq!(host_and_port("http://u:p@example.com/"), "example.com");
        assert_eq!(host_and_port("null"), "null");
        assert_eq!(host_and_port("example.com"), "example.com");
    }
}
