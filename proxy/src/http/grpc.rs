//! gRPC over the connection manager (Envoy's `Grpc::Common` / `Grpc::Utility` pieces
//! the HCM and router use): local replies to gRPC requests as trailers-only gRPC
//! responses, and the mapping from HTTP status to gRPC status.
//!
//! A local reply (no healthy upstream, timeout, RBAC denial, ...) to a request whose
//! `content-type` is `application/grpc[+...]` is, as Envoy's `sendLocalReply` makes
//! it: HTTP 200, `content-type: application/grpc`, `grpc-status` mapped from the HTTP
//! status (`httpToGrpcStatus`, grpc's http-grpc-status-mapping.md), `grpc-message` the
//! percent-encoded body, and no body: the head ends the stream. Nothing here
//! allocates beyond the header values it writes.

use crate::http::ResponseHead;

/// Envoy's `Grpc::Utility::httpToGrpcStatus`.
pub fn http_to_grpc_status(status: u16) -> u8 {
    match status {
        400 => 13,                   // INTERNAL
        401 => 16,                   // UNAUTHENTICATED
        403 => 7,                    // PERMISSION_DENIED
        404 => 12,                   // UNIMPLEMENTED
        429 | 502 | 503 | 504 => 14, // UNAVAILABLE
        _ => 2,                      // UNKNOWN
    }
}

/// Fill `head` with the trailers-only gRPC form of a local reply of `status` with
/// `body` (`is_head`: a HEAD request gets no `grpc-message`).
pub fn build_local_reply(head: &mut ResponseHead, status: u16, body: &[u8], is_head: bool) {
    head.clear();
    head.status = 200;
    head.headers.append(b"content-type", b"application/grpc");
    head.headers.append(b"grpc-status", http_to_grpc_status(status).to_string().as_bytes());
    if !body.is_empty() && !is_head {
        head.headers.append(b"grpc-message", &percent_encode(body));
    }
}

/// Envoy's `PercentEncoding::encode` for `grpc-message`: bytes outside printable
/// ASCII, and `%`, become `%XX`.
pub fn percent_encode(value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len());
    for &b in value {
        if !(b' '..=b'~').contains(&b) || b == b'%' {
            out.extend_from_slice(format!("%{b:02X}").as_bytes());
        } else {
            out.push(b);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envoys_status_mapping() {
        let cases = [(400, 13), (401, 16), (403, 7), (404, 12), (429, 14), (502, 14), (503, 14), (504, 14), (500, 2)];
        for (http, grpc) in cases {
            assert_eq!(http_to_grpc_status(http), grpc, "{http}");
        }
    }

    #[test]
    fn trailers_only_reply() {
        let mut h = ResponseHead::default();
        build_local_reply(&mut h, 503, b"no healthy upstream", false);
        assert_eq!(h.status, 200);
        assert_eq!(h.headers.get_str(b"grpc-status"), Some("14"));
        assert_eq!(h.headers.get_str(b"grpc-message"), Some("no healthy upstream"));
        assert_eq!(h.headers.get_str(b"content-type"), Some("application/grpc"));
        assert!(!h.headers.contains(b"content-length"));
        assert_eq!(percent_encode(b"50% \n\xff"), b"50%25 %0A%FF");
    }
}
