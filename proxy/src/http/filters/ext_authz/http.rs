//! The HTTP authorization service (Envoy's `RawHttpClientImpl`): the check request is
//! the client's request head — `:method`, `:path` (after `path_prefix`), `:authority`,
//! `authorization` and the `allowed_headers`, plus `headers_to_add` — with
//! `content-length: 0`, or with the request body `with_request_body` held (not with
//! `pack_as_bytes`, which Envoy sends in the gRPC `raw_body` only) — sent to `server_uri.cluster` within
//! `server_uri.timeout`. A 200 allows (the `allowed_upstream_headers` and
//! `x-envoy-auth-headers-to-remove` apply to the request), a 5xx or no response is an
//! error, anything else denies with the service's status, body and
//! `allowed_client_headers`.

use sluice_config::filters::ext_authz::{HeaderValue, HttpService, ListStringMatcher};
use sluice_config::metadata::{Struct, Value};

use super::{Allowed, Decision};
use crate::http::async_client::{Outcome, Request};
use crate::http::{HeaderMap, RequestHead};

/// Always in the check request besides `allowed_headers` (Envoy's defaults; the
/// method, path and authority travel as the request's own).
const DEFAULT_REQUEST_HEADERS: &[&[u8]] = &[b"authorization"];
/// Added to `allowed_client_headers` when that is set.
const DEFAULT_CLIENT_HEADERS: &[&[u8]] = &[b"www-authenticate", b"location"];
/// Never copied from the service's response (the reply frames its own body).
const HOP_BY_HOP: &[&[u8]] =
    &[b"connection", b"keep-alive", b"transfer-encoding", b"content-length", b"upgrade", b"proxy-connection"];
/// The header an HTTP service names request headers to remove in.
const HEADERS_TO_REMOVE: &[u8] = b"x-envoy-auth-headers-to-remove";

#[derive(Debug)]
pub(super) struct HttpCheck {
    path_prefix: String,
    timeout: std::time::Duration,
    allowed_headers: Option<ListStringMatcher>,
    headers_to_add: Vec<HeaderValue>,
    upstream: Option<ListStringMatcher>,
    upstream_append: Option<ListStringMatcher>,
    client: Option<ListStringMatcher>,
    client_on_success: Option<ListStringMatcher>,
    metadata: Option<ListStringMatcher>,
}

fn matches(m: &Option<ListStringMatcher>, name: &[u8]) -> bool {
    m.as_ref().is_some_and(|m| m.matches(name))
}

impl HttpCheck {
    pub fn new(s: &HttpService, allowed_headers: Option<ListStringMatcher>) -> HttpCheck {
        HttpCheck {
            path_prefix: s.path_prefix.clone(),
            timeout: s.timeout,
            allowed_headers,
            headers_to_add: s.headers_to_add.clone(),
            upstream: s.allowed_upstream_headers.clone(),
            upstream_append: s.allowed_upstream_headers_to_append.clone(),
            client: s.allowed_client_headers.clone(),
            client_on_success: s.allowed_client_headers_on_success.clone(),
            metadata: s.dynamic_metadata_from_headers.clone(),
        }
    }

    /// The check request for the client's request `head`.
    pub fn request(&self, head: &RequestHead) -> Request {
        let mut out = RequestHead {
            method: head.method.clone(),
            scheme: "http".to_string(),
            authority: head.authority.clone(),
            path: format!("{}{}", self.path_prefix, head.path),
            version: Some(crate::http::Version::Http11),
            headers: HeaderMap::default(),
        };
        out.headers.set(b"content-length", b"0");
        for (n, v) in head.headers.iter() {
            if n == b"content-length" || n == super::PARTIAL_BODY_HEADER {
                continue;
            }
            if DEFAULT_REQUEST_HEADERS.contains(&n) || matches(&self.allowed_headers, n) {
                out.headers.append(n, v);
            }
        }
        for h in &self.headers_to_add {
            out.headers.set(h.key.as_bytes(), h.value.as_bytes());
        }
        Request { head: out, body: Vec::new(), timeout: Some(self.timeout) }
    }

    /// The check request `r` with the request body the filter held (its first
    /// `max_request_bytes`; `partial`: there was more). Envoy's HTTP client sends the
    /// `body` attribute, which `pack_as_bytes` leaves empty; `x-envoy-auth-partial-body`
    /// goes only where `allowed_headers` lets it.
    pub fn with_body(&self, mut r: Request, body: Vec<u8>, partial: bool, pack_as_bytes: bool) -> Request {
        if matches(&self.allowed_headers, super::PARTIAL_BODY_HEADER) {
            let flag: &[u8] = if partial { b"true" } else { b"false" };
            r.head.headers.set(super::PARTIAL_BODY_HEADER, flag);
        }
        if !pack_as_bytes && !body.is_empty() {
            r.head.headers.set(b"content-length", body.len().to_string().as_bytes());
            r.body = body;
        }
        r
    }

    /// The decision an outcome carries.
    pub fn decide(&self, outcome: Outcome) -> Decision {
        let Ok(r) = outcome else {
            return Decision::Error;
        };
        let status = r.head.status;
        if (500..600).contains(&status) || status < 200 {
            return Decision::Error;
        }
        let headers = &r.head.headers;
        if status == 200 {
            let mut ok = Allowed::default();
            let mut md = Struct::new();
            for (n, v) in headers.iter() {
                if n == HEADERS_TO_REMOVE {
                    for name in v.split(|b| *b == b',') {
                        let name = name.trim_ascii().to_ascii_lowercase();
                        if !name.is_empty() && name != b"host" && !name.starts_with(b":") {
                            ok.headers_to_remove.push(name);
                        }
                    }
                    continue;
                }
                if matches(&self.upstream, n) {
                    ok.headers_to_set.push((n.to_vec(), v.to_vec()));
                }
                if matches(&self.upstream_append, n) {
                    ok.headers_to_append.push((n.to_vec(), v.to_vec()));
                }
                if matches(&self.client_on_success, n) {
                    ok.response_headers_to_add.push((n.to_vec(), v.to_vec()));
                }
                if matches(&self.metadata, n) {
                    let key = String::from_utf8_lossy(n).into_owned();
                    md.insert(key, Value::String(String::from_utf8_lossy(v).into_owned()));
                }
            }
            ok.dynamic_metadata = Some(md);
            return Decision::Ok(ok);
        }
        let mut out = Vec::new();
        for (n, v) in headers.iter() {
            if HOP_BY_HOP.contains(&n) {
                continue;
            }
            let allowed = match &self.client {
                // Unset: every header but Host.
                None => n != b"host",
                Some(m) => m.matches(n) || DEFAULT_CLIENT_HEADERS.contains(&n),
            };
            if allowed {
                out.push((n.to_vec(), v.to_vec()));
            }
        }
        Decision::Denied { status, headers: out, body: r.body }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::async_client::{Failure, Response};
    use crate::http::ResponseHead;
    use sluice_config::matcher::StringMatcher;

    fn list(names: &[&str]) -> Option<ListStringMatcher> {
        let patterns =
            names.iter().map(|n| StringMatcher::Exact { value: n.to_string(), ignore_case: false }).collect();
        Some(ListStringMatcher { patterns })
    }

    fn check() -> HttpCheck {
        HttpCheck {
            path_prefix: "/auth".into(),
            timeout: std::time::Duration::from_millis(250),
            allowed_headers: list(&["x-user"]),
            headers_to_add: vec![HeaderValue { key: "x-from".into(), value: "sluice".into() }],
            upstream: list(&["x-current-user"]),
            upstream_append: None,
            client: None,
            client_on_success: list(&["x-ok"]),
            metadata: list(&["x-md"]),
        }
    }

    fn response(status: u16, headers: &[(&str, &str)], body: &str) -> Outcome {
        let mut head = ResponseHead { status, ..ResponseHead::default() };
        for (n, v) in headers {
            head.headers.append(n.as_bytes(), v.as_bytes());
        }
        Ok(Response { head, body: body.as_bytes().to_vec(), trailers: None })
    }

    #[test]
    fn the_check_request_carries_the_allowed_headers_only() {
        let mut head = RequestHead {
            method: "POST".into(),
            authority: "example.com".into(),
            path: "/a?b".into(),
            ..RequestHead::default()
        };
        for (n, v) in [("authorization", "Bearer x"), ("x-user", "u"), ("cookie", "c"), ("content-length", "9")] {
            head.headers.append(n.as_bytes(), v.as_bytes());
        }
        let r = check().request(&head);
        assert_eq!((r.head.method.as_str(), r.head.path.as_str()), ("POST", "/auth/a?b"));
        assert_eq!(r.head.authority, "example.com");
        assert_eq!(r.head.headers.get(b"authorization"), Some(&b"Bearer x"[..]));
        assert_eq!(r.head.headers.get(b"x-user"), Some(&b"u"[..]));
        assert_eq!(r.head.headers.get(b"cookie"), None);
        assert_eq!(r.head.headers.get(b"content-length"), Some(&b"0"[..]));
        assert_eq!(r.head.headers.get(b"x-from"), Some(&b"sluice"[..]));
        assert_eq!(r.timeout, Some(std::time::Duration::from_millis(250)));
    }

    #[test]
    fn ok_denied_and_errors() {
        let c = check();
        let ok = c.decide(response(
            200,
            &[("x-current-user", "alice"), ("x-ok", "1"), ("x-md", "m"), ("x-envoy-auth-headers-to-remove", "a, B")],
            "",
        ));
        let Decision::Ok(ok) = ok else { panic!("{ok:?}") };
        assert_eq!(ok.headers_to_set, vec![(b"x-current-user".to_vec(), b"alice".to_vec())]);
        assert_eq!(ok.response_headers_to_add, vec![(b"x-ok".to_vec(), b"1".to_vec())]);
        assert_eq!(ok.headers_to_remove, vec![b"a".to_vec(), b"b".to_vec()]);
        assert_eq!(ok.dynamic_metadata.unwrap().get("x-md"), Some(&Value::String("m".into())));
        let denied =
            c.decide(response(401, &[("www-authenticate", "Bearer"), ("host", "h"), ("connection", "close")], "no"));
        assert_eq!(
            denied,
            Decision::Denied {
                status: 401,
                headers: vec![(b"www-authenticate".to_vec(), b"Bearer".to_vec())],
                body: b"no".to_vec()
            }
        );
        assert_eq!(c.decide(response(503, &[], "")), Decision::Error);
        assert_eq!(c.decide(Err(Failure::Timeout)), Decision::Error);
    }
}
