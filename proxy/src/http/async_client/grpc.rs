//! Unary gRPC on the async client (Envoy's `Grpc::AsyncClient::send` for
//! `envoy_grpc` services): one length-prefixed message up, one down, the status from
//! `grpc-status` in the trailers (or the headers of a trailers-only response).
//!
//! Requests go as HTTP/2 `POST /<service>/<method>` with `content-type:
//! application/grpc`, `te: trailers` and, with a timeout, `grpc-timeout`; `:authority`
//! is the cluster's name, as Envoy sets it. A response that is not HTTP 200 gets the
//! status Envoy maps from its HTTP status; a failure of the request itself is
//! `DEADLINE_EXCEEDED` (timeout) or `UNAVAILABLE` (reset). Never panics on the bytes.

use std::time::Duration;

use super::{Failure, Outcome, Request};
use crate::http::grpc::{http_to_grpc_status, parse_status};
use crate::http::{RequestHead, Version};

/// `DEADLINE_EXCEEDED`.
pub const DEADLINE_EXCEEDED: u8 = 4;
/// `INTERNAL`.
pub const INTERNAL: u8 = 13;
/// `UNAVAILABLE`.
pub const UNAVAILABLE: u8 = 14;

/// A call's non-OK end: the gRPC status and `grpc-message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub code: u8,
    pub message: String,
}

/// The request for `path` (`/package.Service/Method`) carrying `message` (an encoded
/// protobuf) to the client's cluster `authority`.
pub fn request(authority: &str, path: &str, message: &[u8], timeout: Option<Duration>) -> Request {
    let mut head = RequestHead {
        method: "POST".to_string(),
        scheme: "http".to_string(),
        authority: authority.to_string(),
        path: path.to_string(),
        version: Some(Version::Http2),
        ..RequestHead::default()
    };
    head.headers.set(b"content-type", b"application/grpc");
    head.headers.set(b"te", b"trailers");
    if let Some(t) = timeout {
        head.headers.set(b"grpc-timeout", format!("{}m", t.as_millis()).as_bytes());
    }
    Request { head, body: frame(message), timeout }
}

/// One gRPC message frame: uncompressed flag, big-endian length, the message.
pub fn frame(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + message.len());
    out.push(0);
    out.extend_from_slice(&(message.len() as u32).to_be_bytes());
    out.extend_from_slice(message);
    out
}

/// The response message of a unary call, or its status.
pub fn response(outcome: Outcome) -> Result<Vec<u8>, Status> {
    let r = match outcome {
        Ok(r) => r,
        Err(Failure::Timeout) => return Err(Status { code: DEADLINE_EXCEEDED, message: "timeout".into() }),
        Err(Failure::Reset) => return Err(Status { code: UNAVAILABLE, message: "stream reset".into() }),
    };
    if r.head.status != 200 {
        let code = http_to_grpc_status(r.head.status);
        return Err(Status { code, message: String::from_utf8_lossy(&r.body).into_owned() });
    }
    let block = r.trailers.as_ref().filter(|t| t.get(b"grpc-status").is_some()).unwrap_or(&r.head.headers);
    let Some(code) = parse_status(block.get(b"grpc-status")) else {
        return Err(Status { code: INTERNAL, message: "no grpc-status".into() });
    };
    if code != 0 {
        let message = String::from_utf8_lossy(block.get(b"grpc-message").unwrap_or_default()).into_owned();
        return Err(Status { code, message });
    }
    unframe(&r.body).ok_or_else(|| Status { code: INTERNAL, message: "malformed gRPC response message".into() })
}

/// The one message of a unary response body (uncompressed; exactly one frame).
fn unframe(body: &[u8]) -> Option<Vec<u8>> {
    let (&flag, rest) = body.split_first()?;
    if flag != 0 || rest.len() < 4 {
        return None;
    }
    let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
    let msg = rest.get(4..)?;
    (msg.len() == len).then(|| msg.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::async_client::Response;
    use crate::http::{HeaderMap, ResponseHead};

    fn ok(body: Vec<u8>, trailers: &[(&str, &str)]) -> Outcome {
        let mut head = ResponseHead { status: 200, ..ResponseHead::default() };
        head.headers.set(b"content-type", b"application/grpc");
        let mut t = HeaderMap::default();
        for (n, v) in trailers {
            t.set(n.as_bytes(), v.as_bytes());
        }
        Ok(Response { head, body, trailers: Some(t) })
    }

    #[test]
    fn the_request_is_a_framed_http2_post() {
        let r = request("authz", "/envoy.service.auth.v3.Authorization/Check", b"abc", Some(Duration::from_secs(2)));
        assert_eq!(r.head.path, "/envoy.service.auth.v3.Authorization/Check");
        assert_eq!(r.head.version, Some(Version::Http2));
        assert_eq!(r.head.headers.get(b"grpc-timeout"), Some(&b"2000m"[..]));
        assert_eq!(r.body, b"\0\0\0\0\x03abc");
    }

    #[test]
    fn statuses_come_from_trailers_headers_or_the_http_status() {
        assert_eq!(response(ok(frame(b"xy"), &[("grpc-status", "0")])), Ok(b"xy".to_vec()));
        let denied = response(ok(Vec::new(), &[("grpc-status", "7"), ("grpc-message", "no")]));
        assert_eq!(denied, Err(Status { code: 7, message: "no".into() }));
        let mut only = ok(Vec::new(), &[]);
        if let Ok(r) = only.as_mut() {
            r.head.headers.set(b"grpc-status", b"16");
        }
        assert_eq!(response(only).unwrap_err().code, 16);
        let mut unavailable = ok(Vec::new(), &[]);
        if let Ok(r) = unavailable.as_mut() {
            r.head.status = 503;
        }
        assert_eq!(response(unavailable).unwrap_err().code, UNAVAILABLE);
        assert_eq!(response(Err(Failure::Timeout)).unwrap_err().code, DEADLINE_EXCEEDED);
        assert_eq!(response(ok(b"\0\0\0\0\x09ab".to_vec(), &[("grpc-status", "0")])).unwrap_err().code, INTERNAL);
        assert_eq!(response(ok(Vec::new(), &[])).unwrap_err().code, INTERNAL);
    }
}
