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

use std::time::Duration;

use sluice_config::route::GrpcTimeoutHeader;

use crate::http::{RequestHead, ResponseHead};

/// Envoy's `Grpc::Common::getGrpcTimeout`: `grpc-timeout` is 1 to 8 digits and a unit
/// (`H`, `M`, `S`, `m`, `u`, `n`); anything else is no timeout.
pub fn grpc_timeout(head: &RequestHead) -> Option<Duration> {
    let v = head.headers.get(b"grpc-timeout")?;
    let (digits, unit) = v.split_at(v.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n: u64 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some(match unit {
        b"H" => Duration::from_secs(n * 3600),
        b"M" => Duration::from_secs(n * 60),
        b"S" => Duration::from_secs(n),
        b"m" => Duration::from_millis(n),
        b"u" => Duration::from_micros(n),
        b"n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// The stream's maximum duration from a gRPC request's `grpc-timeout` under the
/// route's `grpc_timeout_header_max`/`_offset` (Envoy's `refreshDurationTimeout`):
/// the header capped by a non-zero max, less the offset (zero when the offset is
/// larger). `Some(None)`: no limit (a zero result); `None`: the header does not apply.
pub fn stream_duration_from_header(cfg: Option<GrpcTimeoutHeader>, head: &RequestHead) -> Option<Option<Duration>> {
    let cfg = cfg?;
    if !crate::router::route_match::is_grpc(head) {
        return None;
    }
    let mut t = grpc_timeout(head)?;
    if !cfg.max.is_zero() && t > cfg.max {
        t = cfg.max;
    }
    if let (false, Some(o)) = (t.is_zero(), cfg.offset) {
        t = t.saturating_sub(o);
    }
    Some((!t.is_zero()).then_some(t))
}

/// A gRPC status code's name as Envoy's `%GRPC_STATUS%` prints it: CamelCase
/// (`grpcStatusToString`) or SNAKE_CASE; a code beyond the known ones is its number.
pub fn status_name(code: u8, snake: bool) -> String {
    const NAMES: [(&str, &str); 17] = [
        ("OK", "OK"),
        ("Canceled", "CANCELLED"),
        ("Unknown", "UNKNOWN"),
        ("InvalidArgument", "INVALID_ARGUMENT"),
        ("DeadlineExceeded", "DEADLINE_EXCEEDED"),
        ("NotFound", "NOT_FOUND"),
        ("AlreadyExists", "ALREADY_EXISTS"),
        ("PermissionDenied", "PERMISSION_DENIED"),
        ("ResourceExhausted", "RESOURCE_EXHAUSTED"),
        ("FailedPrecondition", "FAILED_PRECONDITION"),
        ("Aborted", "ABORTED"),
        ("OutOfRange", "OUT_OF_RANGE"),
        ("Unimplemented", "UNIMPLEMENTED"),
        ("Internal", "INTERNAL"),
        ("Unavailable", "UNAVAILABLE"),
        ("DataLoss", "DATA_LOSS"),
        ("Unauthenticated", "UNAUTHENTICATED"),
    ];
    match NAMES.get(code as usize) {
        Some((camel, snake_name)) => if snake { snake_name } else { camel }.to_string(),
        None => code.to_string(),
    }
}

/// The `grpc-status` value of a header block.
pub fn parse_status(value: Option<&[u8]>) -> Option<u8> {
    std::str::from_utf8(value?).ok()?.trim().parse().ok()
}

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
/// `grpc_status` overrides the mapping (a max-duration timeout is DEADLINE_EXCEEDED).
pub fn build_local_reply(head: &mut ResponseHead, status: u16, body: &[u8], is_head: bool, grpc_status: Option<u8>) {
    head.clear();
    head.status = 200;
    head.headers.append(b"content-type", b"application/grpc");
    let code = grpc_status.unwrap_or_else(|| http_to_grpc_status(status));
    head.headers.append(b"grpc-status", code.to_string().as_bytes());
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
        build_local_reply(&mut h, 503, b"no healthy upstream", false, None);
        assert_eq!(h.status, 200);
        assert_eq!(h.headers.get_str(b"grpc-status"), Some("14"));
        assert_eq!(h.headers.get_str(b"grpc-message"), Some("no healthy upstream"));
        assert_eq!(h.headers.get_str(b"content-type"), Some("application/grpc"));
        assert!(!h.headers.contains(b"content-length"));
        assert_eq!(percent_encode(b"50% \n\xff"), b"50%25 %0A%FF");
    }

    #[test]
    fn grpc_timeout_header_under_the_route_options() {
        let mut head = RequestHead::default();
        head.headers.append(b"content-type", b"application/grpc");
        let cfg = |max: u64, offset: Option<u64>| {
            Some(GrpcTimeoutHeader { max: Duration::from_millis(max), offset: offset.map(Duration::from_millis) })
        };
        assert_eq!(stream_duration_from_header(cfg(0, None), &head), None, "no header");
        head.headers.set(b"grpc-timeout", b"1500m");
        assert_eq!(grpc_timeout(&head), Some(Duration::from_millis(1500)));
        assert_eq!(stream_duration_from_header(cfg(0, None), &head), Some(Some(Duration::from_millis(1500))));
        assert_eq!(stream_duration_from_header(cfg(1000, None), &head), Some(Some(Duration::from_secs(1))));
        assert_eq!(stream_duration_from_header(cfg(0, Some(500)), &head), Some(Some(Duration::from_secs(1))));
        assert_eq!(stream_duration_from_header(cfg(0, Some(2000)), &head), Some(None));
        assert_eq!(stream_duration_from_header(None, &head), None, "not configured");
        for bad in [&b"123456789S"[..], b"10", b"10x", b"S", b"-1S"] {
            head.headers.set(b"grpc-timeout", bad);
            assert_eq!(grpc_timeout(&head), None, "{bad:?}");
        }
        head.headers.set(b"grpc-timeout", b"2H");
        assert_eq!(grpc_timeout(&head), Some(Duration::from_secs(7200)));
    }
}
