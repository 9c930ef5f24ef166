//! The gRPC authorization service (Envoy's `GrpcClientImpl` and
//! `CheckRequestUtils`): a `CheckRequest` with the request's attributes (peers, method,
//! path with query, host, scheme, protocol, headers — all of them unless `allowed_headers` says
//! which — and the route's context extensions) goes to
//! `/envoy.service.auth.v3.Authorization/Check` on the `envoy_grpc` cluster within
//! `timeout`. Status OK allows with `ok_response`'s mutations, any other status denies
//! with `denied_response` (403 without a status), a failed call or an undecodable
//! answer is an error.

use std::net::SocketAddr;

use prost::Message;
use sluice_config::filters::ext_authz::{GrpcService, ListStringMatcher};

use super::proto::{self, CheckRequest, HeaderValueOption};
use super::{Allowed, Decision};
use crate::http::async_client::{grpc as unary, Outcome, Request};
use crate::http::filter::StreamContext;
use crate::http::{RequestHead, Version};

#[derive(Debug)]
pub(super) struct GrpcCheck {
    timeout: std::time::Duration,
    allowed_headers: Option<ListStringMatcher>,
}

fn peer(addr: SocketAddr) -> proto::Peer {
    proto::Peer {
        address: Some(proto::Address {
            socket_address: Some(proto::SocketAddress {
                address: addr.ip().to_string(),
                port_value: u32::from(addr.port()),
            }),
        }),
        principal: String::new(),
    }
}

impl GrpcCheck {
    pub fn new(s: &GrpcService, allowed_headers: Option<ListStringMatcher>) -> GrpcCheck {
        GrpcCheck { timeout: s.timeout, allowed_headers }
    }

    /// The `CheckRequest` of the client's request.
    pub fn message(&self, head: &RequestHead, cx: &StreamContext<'_>, extensions: &[(String, String)]) -> CheckRequest {
        let mut headers = std::collections::HashMap::new();
        let pseudo = [(":method", &head.method), (":path", &head.path), (":authority", &head.authority)];
        let allowed = |n: &[u8]| self.allowed_headers.as_ref().is_none_or(|m| m.matches(n));
        for (n, v) in pseudo {
            if allowed(n.as_bytes()) {
                headers.insert(n.to_string(), v.clone());
            }
        }
        for (n, v) in head.headers.iter() {
            if !allowed(n) || n == super::PARTIAL_BODY_HEADER {
                continue;
            }
            let (n, v) = (String::from_utf8_lossy(n).into_owned(), String::from_utf8_lossy(v));
            // Repeated headers are joined with a comma, as Envoy's header map does.
            headers
                .entry(n)
                .and_modify(|e: &mut String| {
                    e.push(',');
                    e.push_str(&v);
                })
                .or_insert_with(|| v.into_owned());
        }
        let size = head
            .headers
            .get(b"content-length")
            .and_then(|v| std::str::from_utf8(v).ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(-1);
        let protocol = match head.version {
            Some(Version::Http2) => "HTTP/2",
            Some(Version::Http10) => "HTTP/1.0",
            _ => "HTTP/1.1",
        };
        let scheme = if head.scheme.is_empty() {
            if cx.tls {
                "https"
            } else {
                "http"
            }
        } else {
            &head.scheme
        };
        let http = proto::HttpRequest {
            id: head.headers.get(b"x-request-id").map(|v| String::from_utf8_lossy(v).into_owned()).unwrap_or_default(),
            method: head.method.clone(),
            headers,
            // Envoy: the request target with its query; `query` stays empty.
            path: head.path.clone(),
            host: head.authority.clone(),
            scheme: scheme.to_string(),
            query: String::new(),
            fragment: String::new(),
            size,
            protocol: protocol.to_string(),
            body: Vec::new(),
            raw_body: Vec::new(),
        };
        CheckRequest {
            attributes: Some(proto::AttributeContext {
                source: Some(peer(cx.direct_remote)),
                destination: Some(peer(cx.local)),
                request: Some(proto::Request { time: None, http: Some(http) }),
                context_extensions: extensions.iter().cloned().collect(),
                // Only with include_tls_session, which is refused.
                tls_session: None,
            }),
        }
    }

    /// The gRPC call for the client's request.
    pub fn request(
        &self,
        head: &RequestHead,
        cx: &StreamContext<'_>,
        extensions: &[(String, String)],
        cluster: &str,
    ) -> Request {
        self.call(&self.message(head, cx, extensions), cluster)
    }

    /// The gRPC call carrying `m`.
    pub fn call(&self, m: &CheckRequest, cluster: &str) -> Request {
        unary::request(cluster, proto::CHECK_PATH, &m.encode_to_vec(), Some(self.timeout))
    }

    /// Put the request body (its first `max_request_bytes`) in `m`: `body`, or
    /// `raw_body` with `pack_as_bytes`, and `x-envoy-auth-partial-body` in its headers.
    pub fn add_body(m: &mut CheckRequest, body: Vec<u8>, partial: bool, pack_as_bytes: bool) {
        let Some(http) = m.attributes.as_mut().and_then(|a| a.request.as_mut()).and_then(|r| r.http.as_mut()) else {
            return;
        };
        let flag = if partial { "true" } else { "false" };
        http.headers.insert(String::from_utf8_lossy(super::PARTIAL_BODY_HEADER).into_owned(), flag.to_string());
        if pack_as_bytes {
            http.raw_body = body;
        } else {
            http.body = body;
        }
    }

    /// The decision the call's outcome carries.
    pub fn decide(&self, outcome: Outcome) -> Decision {
        let Ok(bytes) = unary::response(outcome) else {
            return Decision::Error;
        };
        let Some(r) = proto::decode_check_response(&bytes) else {
            return Decision::Error;
        };
        let code = r.status.as_ref().map_or(0, |s| s.code);
        if code == 0 {
            let mut ok = Allowed::default();
            let mut metadata = r.dynamic_metadata;
            if let Some(o) = r.ok_response {
                for h in &o.headers {
                    let Some((n, v)) = header(h) else { continue };
                    if appends(h) {
                        ok.headers_to_append.push((n, v));
                    } else {
                        ok.headers_to_set.push((n, v));
                    }
                }
                for n in &o.headers_to_remove {
                    let n = n.to_ascii_lowercase();
                    if n != "host" && !n.starts_with(':') {
                        ok.headers_to_remove.push(n.into_bytes());
                    }
                }
                ok.response_headers_to_add = o.response_headers_to_add.iter().filter_map(header).collect();
                // The deprecated field overrides CheckResponse.dynamic_metadata.
                if o.dynamic_metadata.is_some() {
                    metadata = o.dynamic_metadata;
                }
            }
            ok.dynamic_metadata = metadata.map(proto::to_struct);
            return Decision::Ok(ok);
        }
        let denied = r.denied_response.unwrap_or_default();
        let status = denied.status.map(|s| s.code).filter(|c| (100..=599).contains(c)).unwrap_or(403) as u16;
        let headers = denied.headers.iter().filter_map(header).collect();
        Decision::Denied { status, headers, body: denied.body.into_bytes() }
    }
}

/// A header of the service's, lower-cased; `None` for an invalid name.
fn header(h: &HeaderValueOption) -> Option<(Vec<u8>, Vec<u8>)> {
    let hv = h.header.as_ref()?;
    let name = hv.key.to_ascii_lowercase();
    if name.is_empty() || name.bytes().any(|b| b <= b' ' || b == b':' || b >= 0x7f) {
        return None;
    }
    let value = if hv.raw_value.is_empty() { hv.value.as_bytes().to_vec() } else { hv.raw_value.clone() };
    if value.iter().any(|&b| b == b'\r' || b == b'\n' || b == 0) {
        return None;
    }
    Some((name.into_bytes(), value))
}

/// Whether a header appends: `append` is false by default in these messages (Envoy's
/// external_auth.proto), so only an explicit `append: true` does.
fn appends(h: &HeaderValueOption) -> bool {
    h.append.as_ref().is_some_and(|a| a.value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::async_client::{grpc::frame, Response};
    use crate::http::{HeaderMap, ResponseHead};

    fn answer(r: proto::CheckResponse) -> Outcome {
        let head = ResponseHead { status: 200, ..ResponseHead::default() };
        let mut t = HeaderMap::default();
        t.set(b"grpc-status", b"0");
        Ok(Response { head, body: frame(&r.encode_to_vec()), trailers: Some(t) })
    }

    fn hvo(k: &str, v: &str, append: Option<bool>) -> HeaderValueOption {
        HeaderValueOption {
            header: Some(proto::HeaderValue { key: k.into(), value: v.into(), raw_value: Vec::new() }),
            append: append.map(|value| proto::BoolValue { value }),
            append_action: 0,
        }
    }

    #[test]
    fn ok_and_denied_responses() {
        let g = GrpcCheck { timeout: std::time::Duration::from_millis(200), allowed_headers: None };
        let ok = proto::CheckResponse {
            status: Some(proto::RpcStatus { code: 0, message: String::new() }),
            ok_response: Some(proto::OkHttpResponse {
                headers: vec![hvo("X-User", "bob", None), hvo("x-tag", "t", Some(true))],
                headers_to_remove: vec!["authorization".into(), ":path".into()],
                ..Default::default()
            }),
            ..Default::default()
        };
        let Decision::Ok(a) = g.decide(answer(ok)) else { panic!() };
        assert_eq!(a.headers_to_set, vec![(b"x-user".to_vec(), b"bob".to_vec())]);
        assert_eq!(a.headers_to_append, vec![(b"x-tag".to_vec(), b"t".to_vec())]);
        assert_eq!(a.headers_to_remove, vec![b"authorization".to_vec()]);
        let denied = proto::CheckResponse {
            status: Some(proto::RpcStatus { code: 7, message: String::new() }),
            denied_response: Some(proto::DeniedHttpResponse {
                status: Some(proto::HttpStatus { code: 401 }),
                headers: vec![hvo("x-why", "because", None)],
                body: "go away".into(),
            }),
            ..Default::default()
        };
        assert_eq!(
            g.decide(answer(denied)),
            Decision::Denied {
                status: 401,
                headers: vec![(b"x-why".to_vec(), b"because".to_vec())],
                body: b"go away".to_vec()
            }
        );
        let bare = proto::CheckResponse {
            status: Some(proto::RpcStatus { code: 16, message: String::new() }),
            ..Default::default()
        };
        assert!(matches!(g.decide(answer(bare)), Decision::Denied { status: 403, .. }));
        assert_eq!(g.decide(Err(crate::http::async_client::Failure::Reset)), Decision::Error);
    }
}
