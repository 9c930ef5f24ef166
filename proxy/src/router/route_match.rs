//! Does a route's `match` accept a request? Path, headers, query parameters and gRPC,
//! with Envoy's semantics (config_impl.cc `*RouteEntryImpl::matches`,
//! header_utility.cc `matchHeaders`, config_utility.cc `QueryParameterMatcher`).
//!
//! Path matchers see the path without its query string and fragment; `prefix`, `path`
//! and `path_separated_prefix` compare bytes (ASCII case-folded when `case_sensitive`
//! is false, with nothing lower-cased per request); `safe_regex` must match the whole
//! path. Header matchers read HTTP/2 pseudo-header names (`:authority`, `:path`,
//! `:method`, `:scheme`) from the request head; a repeated header is matched as its
//! values joined with `,` (the only case that allocates).

use std::borrow::Cow;

use sluice_config::matcher::{HeaderMatcher, QueryParameterMatcher};
use sluice_config::route::{PathSpecifier, RouteMatch};

use crate::http::{HeaderMap, RequestHead, ResponseHead};

/// The path without query string or fragment (`Http::PathUtil::removeQueryAndFragment`).
pub fn path_only(path: &str) -> &str {
    // Both are ASCII, so the byte index is a char boundary.
    match memchr::memchr2(b'?', b'#', path.as_bytes()) {
        Some(i) => &path[..i],
        None => path,
    }
}

fn starts_with(hay: &[u8], prefix: &[u8], case_sensitive: bool) -> bool {
    hay.len() >= prefix.len()
        && if case_sensitive {
            &hay[..prefix.len()] == prefix
        } else {
            hay[..prefix.len()].eq_ignore_ascii_case(prefix)
        }
}

/// Whether the route's path specifier accepts `path` (the request's `:path`).
pub(crate) fn path_matches(m: &RouteMatch, path: &str) -> bool {
    let p = path_only(path).as_bytes();
    match &m.path {
        PathSpecifier::Prefix(prefix) => starts_with(p, prefix.as_bytes(), m.case_sensitive),
        PathSpecifier::Path(exact) => p.len() == exact.len() && starts_with(p, exact.as_bytes(), m.case_sensitive),
        PathSpecifier::SafeRegex(r) => r.is_full_match(p),
        PathSpecifier::PathSeparatedPrefix(prefix) => {
            let n = prefix.len();
            starts_with(p, prefix.as_bytes(), m.case_sensitive) && (p.len() == n || p[n] == b'/')
        }
        PathSpecifier::ConnectMatcher => false,
    }
}

/// The text a prefix rewrite replaces: the configured prefix or path, or for a regex
/// route the whole path (config_impl.cc `currentUrlPathAfterRewrite`).
pub(crate) fn matched_prefix_len(m: &RouteMatch, path: &str) -> usize {
    match &m.path {
        PathSpecifier::Prefix(p) | PathSpecifier::Path(p) | PathSpecifier::PathSeparatedPrefix(p) => p.len(),
        PathSpecifier::SafeRegex(_) => path_only(path).len(),
        PathSpecifier::ConnectMatcher => 0,
    }
}

/// A request header's value for matching: `None` when absent.
pub fn request_header_value<'a>(req: &'a RequestHead, name: &str) -> Option<Cow<'a, [u8]>> {
    match pseudo_request(req, name) {
        Pseudo::Value(v) => v.map(Cow::Borrowed),
        Pseudo::Regular => joined(&req.headers, name),
    }
}

/// The first value of a request header (formatters, cluster_header, host rewrite).
pub fn request_header_first<'a>(req: &'a RequestHead, name: &str) -> Option<&'a [u8]> {
    match pseudo_request(req, name) {
        Pseudo::Value(v) => v,
        Pseudo::Regular => req.headers.get(name.as_bytes()),
    }
}

/// A response header's value for matching (`:status` is the status code).
pub fn response_header_value<'a>(resp: &'a ResponseHead, name: &str) -> Option<Cow<'a, [u8]>> {
    if name == ":status" {
        return (resp.status != 0).then(|| Cow::Owned(resp.status.to_string().into_bytes()));
    }
    joined(&resp.headers, name)
}

pub fn response_header_first<'a>(resp: &'a ResponseHead, name: &str) -> Option<&'a [u8]> {
    resp.headers.get(name.as_bytes())
}

enum Pseudo<'a> {
    Value(Option<&'a [u8]>),
    Regular,
}

fn pseudo_request<'a>(req: &'a RequestHead, name: &str) -> Pseudo<'a> {
    let field = match name {
        ":authority" => &req.authority,
        ":path" => &req.path,
        ":method" => &req.method,
        ":scheme" => &req.scheme,
        _ => return Pseudo::Regular,
    };
    Pseudo::Value((!field.is_empty()).then_some(field.as_bytes()))
}

/// Every value of `name` joined with `,` (`HeaderUtility::getAllOfHeaderAsString`).
fn joined<'a>(headers: &'a HeaderMap, name: &str) -> Option<Cow<'a, [u8]>> {
    let name = name.as_bytes();
    let mut values = headers.iter().filter(|(n, _)| *n == name).map(|(_, v)| v);
    let first = values.next()?;
    let Some(second) = values.next() else {
        return Some(Cow::Borrowed(first));
    };
    let mut out = Vec::with_capacity(first.len() + second.len() + 1);
    out.extend_from_slice(first);
    out.push(b',');
    out.extend_from_slice(second);
    for v in values {
        out.push(b',');
        out.extend_from_slice(v);
    }
    Some(Cow::Owned(out))
}

/// Every header matcher accepts the request (an empty list always does).
pub(crate) fn headers_match(matchers: &[HeaderMatcher], req: &RequestHead) -> bool {
    matchers.iter().all(|m| m.matches(request_header_value(req, &m.name).as_deref()))
}

/// The first value of query parameter `name` in `path` (not percent-decoded), as
/// `Http::Utility::QueryParamsMulti::parseQueryString` + `getFirstValue`.
pub(crate) fn first_query_value<'a>(path: &'a str, name: &str) -> Option<&'a [u8]> {
    let q = &path[path.find('?')? + 1..];
    let q = match q.find('#') {
        Some(i) => &q[..i],
        None => q,
    };
    for param in q.split('&') {
        let (k, v) = match param.find('=') {
            Some(i) => (&param[..i], &param[i + 1..]),
            None => (param, ""),
        };
        if k == name {
            return Some(v.as_bytes());
        }
    }
    None
}

pub(crate) fn query_matches(matchers: &[QueryParameterMatcher], path: &str) -> bool {
    matchers.iter().all(|m| m.matches(first_query_value(path, &m.name)))
}

/// `Grpc::Common::isGrpcRequestHeaders`: `content-type` is `application/grpc` or
/// `application/grpc+<subtype>` / `;params`.
pub(crate) fn is_grpc(req: &RequestHead) -> bool {
    const GRPC: &[u8] = b"application/grpc";
    match req.headers.get(b"content-type") {
        Some(ct) => ct.starts_with(GRPC) && (ct.len() == GRPC.len() || matches!(ct[GRPC.len()], b'+' | b';')),
        None => false,
    }
}

/// The whole `match` of a route (Envoy evaluates headers and query before the path;
/// the result is the same either way). A CONNECT request has no path: only a
/// `connect_matcher` route takes it (Envoy's `supportsPathlessHeaders`), and a
/// `connect_matcher` route takes nothing else.
pub(crate) fn route_matches(m: &RouteMatch, req: &RequestHead) -> bool {
    let path_ok = match m.path {
        PathSpecifier::ConnectMatcher => req.method == "CONNECT",
        _ => !req.path.is_empty() && path_matches(m, &req.path),
    };
    path_ok
        && (!m.grpc || is_grpc(req))
        && headers_match(&m.headers, req)
        && (m.query_parameters.is_empty() || query_matches(&m.query_parameters, &req.path))
}
