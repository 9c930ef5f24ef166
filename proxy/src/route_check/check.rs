//! Running one test case through the route table, as Envoy's router_check_tool
//! (test/tools/router_check/router.cc) does, with the proxy's own route code.
//!
//! The request carries `:authority`, `:path`, `:method`, `:scheme` and
//! `x-forwarded-proto` (https with `ssl`), `x-envoy-internal: true` with `internal`,
//! then the additional headers. After routing, the request and response headers are
//! finalized once (request mutations and rewrites for a forwarding route; the local
//! reply as the tool builds it, see [`tool_local_reply`]), then each present `validate` field is compared in
//! Envoy's order. A field that depends on a route entry reads `""` (or 0) when the
//! route is a direct response, and vice versa, exactly as Envoy reports.

use std::time::SystemTime;

use sluice_config::matcher::{HeaderMatch, HeaderMatcher, StringMatcher};

use crate::http::{RequestHead, ResponseHead, Version};
use crate::router::route_match::{request_header_first, request_header_value, response_header_value};
use crate::router::{Matched, RouteKind, RouteTable, StreamInfo};

use super::runtime::RuntimeMock;
use super::schema::{apply_dynamic_metadata, HeaderValue, ValidationItem};

/// One failed header matcher (`HeaderMatchFailure`).
#[derive(Debug, Clone)]
pub struct HeaderMatchFailure {
    pub matcher: HeaderMatcher,
    /// The first value of the header, `""` when absent.
    pub actual: String,
}

/// What differed (`ValidationFailure`): `(expected, actual)` pairs.
#[derive(Debug, Clone, Default)]
pub struct Failure {
    pub cluster_name: Option<(String, String)>,
    pub virtual_cluster_name: Option<(String, String)>,
    pub virtual_host_name: Option<(String, String)>,
    pub path_rewrite: Option<(String, String)>,
    pub host_rewrite: Option<(String, String)>,
    pub path_redirect: Option<(String, String)>,
    pub code_redirect: Option<(u32, u32)>,
    pub request_header_match_failures: Vec<HeaderMatchFailure>,
    pub response_header_match_failures: Vec<HeaderMatchFailure>,
}

/// The outcome of one test.
#[derive(Debug, Clone)]
pub struct TestResult {
    pub test_name: String,
    pub passed: bool,
    /// Envoy's failure lines: `expected: [..], actual: [..], test type: ..`.
    pub messages: Vec<String>,
    pub failure: Failure,
    /// The route a passing check was made on (coverage).
    pub covered: Option<(usize, usize)>,
}

fn report(messages: &mut Vec<String>, expected: &str, actual: &str, test_type: &str, expect_match: bool) {
    let not = if expect_match { "" } else { "NOT " };
    messages.push(format!("expected: [{expected}], actual: {not}[{actual}], test type: {test_type}"));
}

/// Compare and record; returns whether it matched.
fn compare(messages: &mut Vec<String>, actual: &str, expected: &str, test_type: &str) -> bool {
    let ok = actual == expected;
    if !ok {
        report(messages, expected, actual, test_type, true);
    }
    ok
}

/// Build the request and response heads of a test's input.
pub fn build_request(item: &ValidationItem) -> (RequestHead, ResponseHead) {
    let input = &item.input;
    let scheme = if input.ssl { "https" } else { "http" };
    let mut req = RequestHead {
        method: input.method.clone(),
        scheme: scheme.into(),
        authority: input.authority.clone(),
        path: input.path.clone(),
        version: Some(Version::Http11),
        ..RequestHead::default()
    };
    req.headers.append(b"x-forwarded-proto", scheme.as_bytes());
    if input.internal {
        req.headers.append(b"x-envoy-internal", b"true");
    }
    for h in &input.additional_request_headers {
        add_header(&mut req, h);
    }
    let mut resp = ResponseHead::default();
    for h in &input.additional_response_headers {
        if h.key == ":status" {
            resp.status = h.value.parse().unwrap_or(0);
        } else {
            resp.headers.append(h.key.as_bytes(), h.value.as_bytes());
        }
    }
    (req, resp)
}

/// Additional headers may name pseudo-headers; those set the head's field.
fn add_header(req: &mut RequestHead, h: &HeaderValue) {
    match h.key.as_str() {
        ":authority" => req.authority = h.value.clone(),
        ":path" => req.path = h.value.clone(),
        ":method" => req.method = h.value.clone(),
        ":scheme" => req.scheme = h.value.clone(),
        k => req.headers.append(k.as_bytes(), h.value.as_bytes()),
    }
}

/// Run one test.
pub fn run(table: &RouteTable, runtime: &RuntimeMock, item: &ValidationItem, now: SystemTime) -> TestResult {
    let mut result = TestResult {
        test_name: item.test_name.clone(),
        passed: false,
        messages: Vec::new(),
        failure: Failure::default(),
        covered: None,
    };
    let (mut req, mut resp) = build_request(item);
    // Envoy's tool: an HTTP/1.1 stream from 127.0.0.1 (port 0), no local address.
    let info = StreamInfo {
        protocol: Some(Version::Http11),
        downstream_remote: Some(std::net::SocketAddr::from(([127, 0, 0, 1], 0))),
        downstream_direct_remote: Some(std::net::SocketAddr::from(([127, 0, 0, 1], 0))),
        ..StreamInfo::new(now)
    };
    let metadata = apply_dynamic_metadata(&item.input.dynamic_metadata);
    let snapshot = runtime.snapshot(&item.input.runtime);
    let routed = table.route_in(&req, item.input.random_value, &snapshot, &metadata);
    if let Some(m) = &routed {
        if m.is_direct_response() {
            tool_local_reply(m, &mut req, &info, &mut resp);
        } else {
            m.finalize_request_headers(&mut req, &info, true);
            m.finalize_response_headers(&mut resp, &req, &info);
        }
    }
    let entry = routed.as_ref().filter(|m| !m.is_direct_response());
    let direct = routed.as_ref().filter(|m| m.is_direct_response());
    let v = &item.validate;
    let msgs = &mut result.messages;
    let f = &mut result.failure;
    let mut any_ok = false;

    let mut check = |expected: &Option<String>, actual: String, name: &str, slot: &mut Option<(String, String)>| {
        if let Some(e) = expected {
            if compare(msgs, &actual, e, name) {
                any_ok = true;
            } else {
                *slot = Some((e.clone(), actual));
            }
        }
    };
    check(
        &v.cluster_name,
        entry.map(|m| m.cluster_name().to_string()).unwrap_or_default(),
        "cluster_name",
        &mut f.cluster_name,
    );
    check(
        &v.virtual_cluster_name,
        entry.map(|m| m.virtual_cluster_name(&req).to_string()).unwrap_or_default(),
        "virtual_cluster_name",
        &mut f.virtual_cluster_name,
    );
    check(
        &v.virtual_host_name,
        entry.map(|m| m.virtual_host().name.clone()).unwrap_or_default(),
        "virtual_host_name",
        &mut f.virtual_host_name,
    );
    check(&v.path_rewrite, entry.map(|_| req.path.clone()).unwrap_or_default(), "path_rewrite", &mut f.path_rewrite);
    check(
        &v.host_rewrite,
        entry.map(|_| req.authority.clone()).unwrap_or_default(),
        "host_rewrite",
        &mut f.host_rewrite,
    );
    check(
        &v.path_redirect,
        direct.and_then(|m| m.new_uri(&req)).unwrap_or_default(),
        "path_redirect",
        &mut f.path_redirect,
    );
    if let Some(expected) = v.code_redirect {
        let actual = direct.and_then(Matched::direct_response_status).map(u32::from).unwrap_or(0);
        if compare(msgs, &actual.to_string(), &expected.to_string(), "code_redirect") {
            any_ok = true;
        } else {
            f.code_redirect = Some((expected, actual));
        }
    }

    let mut headers_ok = true;
    for m in &v.request_header_matches {
        let value = request_header_value(&req, &m.name);
        if !m.matches(value.as_deref()) {
            headers_ok = false;
            let first = request_first(&req, &m.name);
            describe_header_failure(msgs, m, first.as_deref(), "request_header_matches");
            f.request_header_match_failures
                .push(HeaderMatchFailure { matcher: m.clone(), actual: first.unwrap_or_default() });
        }
    }
    for h in &v.request_header_fields {
        let actual = request_first(&req, &h.key).unwrap_or_default();
        headers_ok &= compare(msgs, &actual, &h.value, "request_header_fields");
    }
    for m in &v.response_header_matches {
        let value = response_header_value(&resp, &m.name);
        if !m.matches(value.as_deref()) {
            headers_ok = false;
            let first = response_first(&resp, &m.name);
            describe_header_failure(msgs, m, first.as_deref(), "response_header_matches");
            f.response_header_match_failures
                .push(HeaderMatchFailure { matcher: m.clone(), actual: first.unwrap_or_default() });
        }
    }
    for h in &v.response_header_fields {
        let actual = response_first(&resp, &h.key).unwrap_or_default();
        headers_ok &= compare(msgs, &actual, &h.value, "response_header_fields");
    }

    result.passed = result.messages.is_empty() && headers_ok;
    // Envoy marks a route covered when one of its fields was checked successfully.
    if any_ok {
        result.covered = routed.as_ref().and_then(Matched::route_position);
    }
    result
}

/// The tool's `finalizeHeaders` for a direct response, which is not the proxy's local
/// reply: `rewritePathHeader`, then `Utility::sendLocalReply` with no header hook
/// (`:status`; `content-length` and `content-type: text/plain` when there is a body;
/// no `location`), appended to the input response headers, then the route's
/// `finalizeResponseHeaders`. So a route's default-append `content-type` reads
/// `text/plain,application/json` here, while the proxy sends only the route's value.
fn tool_local_reply(m: &Matched<'_>, req: &mut RequestHead, info: &StreamInfo<'_>, resp: &mut ResponseHead) {
    let Some(status) = m.direct_response_status() else {
        return;
    };
    m.rewrite_path_header(req, true);
    resp.status = status;
    let body_len = match m.kind() {
        RouteKind::DirectResponse(d) => d.body.as_ref().map_or(0, Vec::len),
        _ => 0,
    };
    if body_len > 0 {
        resp.headers.append(b"content-length", body_len.to_string().as_bytes());
        resp.headers.append(b"content-type", b"text/plain");
    }
    m.finalize_response_headers(resp, req, info);
}

/// The first value of a request header, as Envoy prints it.
fn request_first(req: &RequestHead, name: &str) -> Option<String> {
    request_header_first(req, name).map(|v| String::from_utf8_lossy(v).into_owned())
}

fn response_first(resp: &ResponseHead, name: &str) -> Option<String> {
    if name == ":status" {
        return (resp.status != 0).then(|| resp.status.to_string());
    }
    resp.headers.get(name.as_bytes()).map(|v| String::from_utf8_lossy(v).into_owned())
}

/// The oneof name of a matcher as Envoy's tool prints it. The deprecated spellings are
/// reported as their `string_match` equivalents, as Envoy upgrades them at load.
pub fn matcher_kind(m: &HeaderMatcher) -> String {
    match &m.specifier {
        HeaderMatch::ExactMatch(_) => "string_match.exact".into(),
        HeaderMatch::PrefixMatch(_) => "string_match.prefix".into(),
        HeaderMatch::SuffixMatch(_) => "string_match.suffix".into(),
        HeaderMatch::ContainsMatch(_) => "string_match.contains".into(),
        HeaderMatch::SafeRegexMatch(_) => "string_match.safe_regex".into(),
        _ => m.kind_name(),
    }
}

/// router.cc `matchHeaderField`: the line for a failed header matcher.
fn describe_header_failure(msgs: &mut Vec<String>, m: &HeaderMatcher, actual: Option<&str>, kind: &str) {
    let test_type = format!("{kind}.{}", matcher_kind(m));
    let shown = actual.unwrap_or("NULL");
    match &m.specifier {
        HeaderMatch::Present(p) => {
            let want = *p != m.invert_match;
            let has = actual.is_some();
            report(msgs, &format!("has({}):{want}", m.name), &format!("has({}):{has}", m.name), &test_type, true);
        }
        HeaderMatch::ExactMatch(v) | HeaderMatch::String(StringMatcher::Exact { value: v, .. }) => {
            report(msgs, &format!("{}: {v}", m.name), &format!("{}: {shown}", m.name), &test_type, !m.invert_match);
        }
        _ => msgs.push(format!("actual: [{}: {shown}], test type: {test_type}", m.name)),
    }
}
