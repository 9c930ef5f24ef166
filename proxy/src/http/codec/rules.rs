//! Header rules shared by both sides of the codec, as Envoy states them.
//!
//! Token lists (`Connection: keep-alive, Upgrade`), Content-Length syntax, the
//! keep-alive decision of `HeaderUtility::shouldCloseConnection`, the authority
//! character set and the method list of Envoy's HTTP/1 parser. Pure functions over
//! bytes: no allocation, no UTF-8 work.

use super::super::{HeaderMap, Version};

/// Iterate the comma-separated tokens of a header value, trimmed of spaces and tabs,
/// skipping empty ones (Envoy's `StringUtil::splitToken(.., ",", false)` + trim).
pub(crate) fn tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value.split(|&b| b == b',').map(trim_ows).filter(|t| !t.is_empty())
}

/// Whether the comma-separated `value` holds `token` (ASCII case-insensitive).
pub(crate) fn has_token(value: &[u8], token: &[u8]) -> bool {
    tokens(value).any(|t| t.eq_ignore_ascii_case(token))
}

/// Whether any `name` header of `headers` holds `token`.
pub(crate) fn headers_have_token(headers: &HeaderMap, name: &[u8], token: &[u8]) -> bool {
    headers.get_all(name).any(|v| has_token(v, token))
}

/// Strip leading and trailing spaces and tabs.
pub(crate) fn trim_ows(mut v: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = v {
        v = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = v {
        v = rest;
    }
    v
}

/// Parse a Content-Length value: one or more decimal digits (surrounding whitespace
/// already trimmed) that fit in a u64. Anything else is invalid, as in Envoy's parser
/// (no sign, no list, no empty value).
pub(crate) fn parse_content_length(value: &[u8]) -> Option<u64> {
    if value.is_empty() {
        return None;
    }
    let mut n: u64 = 0;
    for &b in value {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    Some(n)
}

/// Envoy's `HeaderUtility::shouldCloseConnection`: may the connection carry another
/// message after this one? HTTP/1.0 (and 0.9) closes unless `Connection` holds
/// `keep-alive`; HTTP/1.1 closes when `Connection` holds `close`; both close when
/// `Proxy-Connection` holds `close`.
pub fn should_close_connection(version: Version, headers: &HeaderMap) -> bool {
    match version {
        Version::Http10 | Version::Http09 => {
            if !headers_have_token(headers, b"connection", b"keep-alive") {
                return true;
            }
        }
        Version::Http11 => {
            if headers_have_token(headers, b"connection", b"close") {
                return true;
            }
        }
        Version::Http2 => return false,
    }
    headers_have_token(headers, b"proxy-connection", b"close")
}

/// Envoy's `HeaderUtility::requestShouldHaveNoBody`: methods whose requests carry no
/// body, so an empty one is sent without `content-length: 0`.
pub fn request_should_have_no_body(method: &str) -> bool {
    matches!(method, "GET" | "HEAD" | "DELETE" | "TRACE" | "CONNECT")
}

/// Whether `method` is acceptable: a token, and on Envoy's list (`balsa_parser.cc`, the
/// http-parser methods) unless custom methods are allowed.
pub(crate) fn method_is_valid(method: &[u8], allow_custom: bool) -> bool {
    if allow_custom {
        return !method.is_empty() && method.iter().all(|&b| is_tchar(b));
    }
    matches!(
        method,
        b"GET"
            | b"POST"
            | b"HEAD"
            | b"PUT"
            | b"DELETE"
            | b"OPTIONS"
            | b"PATCH"
            | b"CONNECT"
            | b"TRACE"
            | b"ACL"
            | b"BIND"
            | b"CHECKOUT"
            | b"COPY"
            | b"LINK"
            | b"LOCK"
            | b"MERGE"
            | b"MKACTIVITY"
            | b"MKCALENDAR"
            | b"MKCOL"
            | b"MOVE"
            | b"MSEARCH"
            | b"NOTIFY"
            | b"PROPFIND"
            | b"PROPPATCH"
            | b"PURGE"
            | b"REBIND"
            | b"REPORT"
            | b"SEARCH"
            | b"SOURCE"
            | b"SUBSCRIBE"
            | b"UNBIND"
            | b"UNLINK"
            | b"UNLOCK"
            | b"UNSUBSCRIBE"
    )
}

/// A 256-entry membership table built at compile time from a byte predicate.
macro_rules! byte_table {
    ($pred:expr) => {{
        let mut t = [false; 256];
        let mut i = 0;
        while i < 256 {
            t[i] = $pred(i as u8);
            i += 1;
        }
        t
    }};
}
pub(crate) use byte_table;

const fn tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+' | b'-' | b'.' | b'^' | b'_' | b'`' | b'|' | b'~'
        )
}
static TCHAR: [bool; 256] = byte_table!(tchar);

/// RFC 9110 `tchar`: the bytes of a token (header names, methods).
pub(crate) fn is_tchar(b: u8) -> bool {
    TCHAR[b as usize]
}

/// RFC 9110 field-value bytes: HTAB, SP, VCHAR, obs-text (what httparse accepts).
pub(crate) fn is_field_value_byte(b: u8) -> bool {
    b == b'\t' || (b' '..=b'~').contains(&b) || b >= 0x80
}

const fn authority_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.'
                | b'_'
                | b'~'
                | b'!'
                | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b';'
                | b'='
                | b':'
                | b'@'
                | b'['
                | b']'
                | b'%'
        )
}
static AUTHORITY: [bool; 256] = byte_table!(authority_byte);

/// Envoy's authority check (nghttp2's `check_authority`): unreserved, sub-delims,
/// `:`, `@`, `[`, `]` and `%`; ASCII only.
pub(crate) fn authority_is_valid(value: &[u8]) -> bool {
    value.iter().all(|&b| AUTHORITY[b as usize])
}

/// Parse `HTTP/d.d`. Returns the version Envoy treats the message as: exactly
/// `HTTP/1.1` is 1.1; any other well-formed version is handled as HTTP/1.0.
pub(crate) fn parse_http_version(v: &[u8]) -> Option<Version> {
    match v {
        b"HTTP/1.1" => Some(Version::Http11),
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor] if major.is_ascii_digit() && minor.is_ascii_digit() => {
            Some(Version::Http10)
        }
        _ => None,
    }
}
