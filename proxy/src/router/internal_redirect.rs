//! Internal redirects (Envoy's router.cc `convertRequestHeadersForInternalRedirect` and
//! the `envoy.internal_redirect_predicates.*` extensions).
//!
//! When a forwarding route has an `internal_redirect_policy` and the upstream answers
//! one of its `redirect_response_codes`, the router asks [`convert`] to turn the
//! request into the redirected one: the `location` must be an absolute http(s) URL;
//! a scheme change needs `allow_cross_scheme_redirect`; the stream may not have
//! followed `max_internal_redirects` already; the new `:scheme`, `:authority` and
//! `:path` (fragment dropped) must match a route, which every predicate must accept;
//! 303 turns a method other than GET/HEAD into a bodiless GET; `x-envoy-original-url`
//! gets the URL the redirect answered. The request head is only changed when the
//! redirect goes ahead. The per-stream [`RedirectState`] (Envoy's filter state) counts
//! the redirects and remembers the previous routes across the recreated streams.

use sluice_config::metadata::Metadata;
use sluice_config::route::{InternalRedirectPolicy, InternalRedirectPredicate};

use crate::http::{RequestHead, ResponseHead};
use crate::runtime::Snapshot;

use super::{RouteRef, RouteTable};

/// Why a redirect response was passed to the client (the router's
/// `passthrough_internal_redirect_*` stats; `Other`: only the cluster's
/// `upstream_internal_redirect_failed_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Passthrough {
    BadLocation,
    UnsafeScheme,
    TooManyRedirects,
    NoRoute,
    Predicate,
    /// Request incomplete, body over the buffer limit, no `location`.
    Other,
}

/// What one stream's redirects remember (Envoy keeps it in the request's filter
/// state, which survives the recreated streams).
#[derive(Debug, Default, Clone)]
pub struct RedirectState {
    /// Internal redirects followed so far.
    pub count: u32,
    /// `previous_routes`: for each route whose policy has the predicate, the target
    /// routes its redirects already went to.
    previous_routes: Vec<(String, Vec<String>)>,
}

impl RedirectState {
    /// Envoy's `PreviousRoutesPredicate::acceptTargetRoute`: insert `target` in the set
    /// kept for `current`; false when it was there.
    fn insert_route(&mut self, current: &str, target: &str) -> bool {
        let idx = match self.previous_routes.iter().position(|(r, _)| r == current) {
            Some(i) => i,
            None => {
                self.previous_routes.push((current.to_string(), Vec::new()));
                self.previous_routes.len() - 1
            }
        };
        let set = &mut self.previous_routes[idx].1;
        if set.iter().any(|r| r == target) {
            return false;
        }
        set.push(target.to_string());
        true
    }
}

/// An absolute URL from a `location` header (Envoy's `Http::Utility::Url`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AbsoluteUrl<'a> {
    pub scheme: &'a str,
    pub host_and_port: &'a str,
    /// Path and query (`/` when the URL has no path), without the fragment.
    pub path_and_query: String,
}

/// Parse an absolute `http`/`https` URL; `None` for anything else (relative
/// references included, as Envoy's parser refuses them).
pub fn parse_location(url: &str) -> Option<AbsoluteUrl<'_>> {
    let (scheme, rest) = url.split_once("://")?;
    if !(scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https")) {
        return None;
    }
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let host_and_port = &rest[..end];
    if host_and_port.is_empty()
        || host_and_port.contains('@')
        || host_and_port.bytes().any(|b| b <= b' ' || b == 0x7f || b == b'\\')
    {
        return None;
    }
    let tail = &rest[end..];
    let tail = tail.split('#').next().unwrap_or("");
    if tail.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return None;
    }
    let path_and_query = if tail.starts_with('/') { tail.to_string() } else { format!("/{tail}") };
    Some(AbsoluteUrl { scheme, host_and_port, path_and_query })
}

/// The redirect is allowed: the new request head (already in place) and its route.
#[derive(Debug)]
pub struct Redirected {
    pub route: RouteRef,
    /// 303 made the request a bodiless GET.
    pub drop_body: bool,
}

/// What `convert` needs about the redirecting request.
pub struct RedirectInput<'a> {
    pub policy: &'a InternalRedirectPolicy,
    /// The name of the route whose policy applies (previous_routes keys on it).
    pub current_route: &'a str,
    pub status: u16,
    pub table: &'a RouteTable,
    pub random: u64,
    pub runtime: &'a Snapshot,
}

/// Envoy's `convertRequestHeadersForInternalRedirect`: change `head` into the
/// redirected request, or leave it untouched and say why not.
pub fn convert(
    input: &RedirectInput<'_>,
    head: &mut RequestHead,
    response: &ResponseHead,
    state: &mut RedirectState,
) -> Result<Redirected, Passthrough> {
    let location = response.headers.get(b"location").ok_or(Passthrough::Other)?;
    let location = std::str::from_utf8(location).map_err(|_| Passthrough::BadLocation)?;
    if location.is_empty() {
        return Err(Passthrough::BadLocation);
    }
    let url = parse_location(location).ok_or(Passthrough::BadLocation)?;
    let policy = input.policy;
    let scheme_is_http = !head.scheme.eq_ignore_ascii_case("https");
    let target_is_http = url.scheme.eq_ignore_ascii_case("http");
    if !policy.allow_cross_scheme_redirect && scheme_is_http != target_is_http {
        return Err(Passthrough::UnsafeScheme);
    }
    if state.count >= policy.max_internal_redirects {
        return Err(Passthrough::TooManyRedirects);
    }
    let mut new = head.clone();
    for name in &policy.response_headers_to_copy {
        let name = name.as_bytes();
        new.headers.remove(name);
        for v in response.headers.get_all(name) {
            new.headers.append(name, v);
        }
    }
    new.scheme.clear();
    new.scheme.push_str(&url.scheme.to_ascii_lowercase());
    new.authority.clear();
    new.authority.push_str(url.host_and_port);
    new.path.clear();
    new.path.push_str(&url.path_and_query);
    // The recreated stream is routed before its filters run, with no dynamic metadata
    // yet (as the first route choice of any stream).
    let no_metadata = Metadata::default();
    let matched = input.table.route_in(&new, input.random, input.runtime, &no_metadata).ok_or(Passthrough::NoRoute)?;
    let target = matched.route_name();
    let mut next = state.clone();
    for p in &policy.predicates {
        let accept = match p {
            InternalRedirectPredicate::PreviousRoutes => next.insert_route(input.current_route, target),
            InternalRedirectPredicate::AllowListedRoutes(names) => names.iter().any(|n| n == target),
            InternalRedirectPredicate::SafeCrossScheme => !scheme_is_http || target_is_http,
        };
        if !accept {
            return Err(Passthrough::Predicate);
        }
    }
    let route = matched.route_ref();
    let see_other = input.status == 303 && new.method != "GET" && new.method != "HEAD";
    if see_other {
        new.method.clear();
        new.method.push_str("GET");
        new.headers.remove(b"content-length");
    }
    next.count += 1;
    *state = next;
    let original = format!("{}://{}{}", if scheme_is_http { "http" } else { "https" }, head.authority, head.path);
    new.headers.set(b"x-envoy-original-url", original.as_bytes());
    *head = new;
    Ok(Redirected { route, drop_body: see_other })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations() {
        let u = parse_location("http://b.example:8080/x/y?q=1#frag").unwrap();
        assert_eq!((u.scheme, u.host_and_port, u.path_and_query.as_str()), ("http", "b.example:8080", "/x/y?q=1"));
        let u = parse_location("HTTPS://h").unwrap();
        assert_eq!((u.scheme, u.host_and_port, u.path_and_query.as_str()), ("HTTPS", "h", "/"));
        assert_eq!(parse_location("h?x").map(|u| u.path_and_query), None);
        assert_eq!(parse_location("http://h?x").unwrap().path_and_query, "/?x");
        for bad in ["/relative", "ftp://h/x", "http:///x", "http://a b/", "http://u@h/", "", "://h"] {
            assert_eq!(parse_location(bad), None, "{bad}");
        }
    }

    #[test]
    fn previous_routes_per_current_route() {
        let mut s = RedirectState::default();
        assert!(s.insert_route("a", "b"));
        assert!(s.insert_route("b", "b"));
        assert!(!s.insert_route("a", "b"));
        assert!(s.insert_route("a", "c"));
    }
}
