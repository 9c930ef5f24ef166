//! Local replies: responses sluice makes itself (Envoy's `sendLocalReply`).
//!
//! The bodies and statuses are Envoy's, so clients and tests written against Envoy see
//! the same bytes: `no healthy upstream`, `upstream request timeout`, `upstream connect
//! error or disconnect/reset before headers. reset reason: connection failure`, ... A
//! non-empty body gets `content-type: text/plain` and its `content-length`.

use crate::http::ResponseHead;

pub const NO_HEALTHY_UPSTREAM: &str = "no healthy upstream";
pub const UPSTREAM_TIMEOUT: &str = "upstream request timeout";
pub const CONNECT_FAILURE: &str =
    "upstream connect error or disconnect/reset before headers. reset reason: connection failure";
pub const CONNECT_TIMEOUT: &str =
    "upstream connect error or disconnect/reset before headers. reset reason: connection timeout";
pub const UPSTREAM_RESET: &str =
    "upstream connect error or disconnect/reset before headers. reset reason: connection termination";
pub const UPSTREAM_OVERFLOW: &str = "upstream connect error or disconnect/reset before headers. reset reason: overflow";
pub const RETRIED_CONNECT_FAILURE: &str =
    "upstream connect error or disconnect/reset before headers. retried and the latest reset reason: connection failure";
pub const STREAM_IDLE_TIMEOUT: &str = "stream timeout";
pub const REQUEST_TIMEOUT: &str = "request timeout";
pub const REQUEST_HEADER_TIMEOUT: &str = "request header timeout";
pub const FAULT_ABORT: &str = "fault filter abort";
/// `envoy.overload_actions.stop_accepting_requests`.
pub const OVERLOADED: &str = "envoy overloaded";

/// Fill `head` with a local reply of `status` carrying `body`.
pub fn build(head: &mut ResponseHead, status: u16, body: &[u8]) {
    head.clear();
    head.status = status;
    if !body.is_empty() {
        head.headers.append(b"content-length", itoa(body.len() as u64).as_bytes());
        head.headers.append(b"content-type", b"text/plain");
    } else {
        head.headers.append(b"content-length", b"0");
    }
}

/// Decimal text of a number without allocating more than the result.
pub fn itoa(v: u64) -> String {
    let mut buf = [0u8; 20];
    decimal_digits(v, &mut buf).to_owned()
}

/// The decimal digits of `v`, written at the end of `buf` (20 bytes hold any u64): the
/// one number formatter of the hot paths (local replies, span tags, Zipkin JSON), with
/// no formatting machinery.
pub fn decimal_digits(mut v: u64, buf: &mut [u8; 20]) -> &str {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    // Only ASCII digits were written.
    std::str::from_utf8(&buf[i..]).unwrap_or("0")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_reply_headers() {
        let mut h = ResponseHead::default();
        build(&mut h, 503, NO_HEALTHY_UPSTREAM.as_bytes());
        assert_eq!(h.status, 503);
        assert_eq!(h.headers.get_str(b"content-length"), Some("19"));
        assert_eq!(h.headers.get_str(b"content-type"), Some("text/plain"));
        build(&mut h, 404, b"");
        assert_eq!(h.headers.get_str(b"content-length"), Some("0"));
        assert!(!h.headers.contains(b"content-type"));
        assert_eq!(itoa(0), "0");
        assert_eq!(itoa(1234567), "1234567");
    }
}
