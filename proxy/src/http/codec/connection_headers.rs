//! The connection-level request headers: recognising them in the one pass over a
//! head, what they say about keep-alive, upgrades and `Expect`, and Envoy's
//! sanitization of the headers `Connection` nominates.
//!
//! Recognition dispatches on the name's length, so ordinary headers cost one length
//! compare; nothing here allocates.

use super::super::RequestHead;
use super::error::RequestError;
use super::rules::{has_token, tokens};

/// Envoy's `Utility::sanitizeConnectionHeader`: remove the headers `Connection`
/// nominates; refuse ten or more nominations, nominated `x-forwarded-*` or pseudo
/// headers, and oversized `te`; keep `te` only as `trailers`. (The `Connection` value
/// itself is left as received: it is hop-by-hop and never forwarded.) Returns whether
/// any header was removed or changed.
pub(crate) fn sanitize_connection(
    fields: &[httparse::Header<'_>],
    head: &mut RequestHead,
) -> Result<bool, RequestError> {
    const MAX_NOMINATED: usize = 10;
    const MAX_TE_VALUE: usize = 256;
    let connection_values = || fields.iter().filter(|f| f.name.eq_ignore_ascii_case("connection")).map(|f| f.value);
    if connection_values().flat_map(tokens).count() >= MAX_NOMINATED {
        return Err(RequestError::ConnectionHeaderRejected);
    }
    let mut changed = false;
    for token in connection_values().flat_map(tokens) {
        let is = |name: &[u8]| token.eq_ignore_ascii_case(name);
        if is(b"close") || is(b"http2-settings") || is(b"keep-alive") || is(b"upgrade") || is(b"connection") {
            continue;
        }
        if is(b"x-forwarded-for") || is(b"x-forwarded-host") || is(b"x-forwarded-proto") || token[0] == b':' {
            return Err(RequestError::ConnectionHeaderRejected);
        }
        if is(b"te") {
            let Some(te) = head.headers.get(b"te") else {
                continue;
            };
            if te.len() >= MAX_TE_VALUE {
                return Err(RequestError::ConnectionHeaderRejected);
            }
            if has_token(te, b"trailers") {
                head.headers.set(b"te", b"trailers");
            } else {
                head.headers.remove(b"te");
            }
            changed = true;
            continue;
        }
        let before = head.headers.len();
        head.headers.retain(|name, _| !name.eq_ignore_ascii_case(token));
        changed |= head.headers.len() != before;
    }
    Ok(changed)
}

/// Headers the parser acts on besides Host and the framing headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Known {
    Host,
    ContentLength,
    TransferEncoding,
    Connection,
    ProxyConnection,
    Upgrade,
    Expect,
    Other,
}

/// Recognise a header name (any case) without a search per name.
pub(crate) fn classify(name: &[u8]) -> Known {
    let is = |n: &[u8]| name.eq_ignore_ascii_case(n);
    match name.len() {
        4 if is(b"host") => Known::Host,
        6 if is(b"expect") => Known::Expect,
        7 if is(b"upgrade") => Known::Upgrade,
        10 if is(b"connection") => Known::Connection,
        14 if is(b"content-length") => Known::ContentLength,
        16 if is(b"proxy-connection") => Known::ProxyConnection,
        17 if is(b"transfer-encoding") => Known::TransferEncoding,
        _ => Known::Other,
    }
}

/// What the connection-level headers said, gathered in the one pass over the headers.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Seen {
    pub connection: bool,
    pub conn_close: bool,
    pub conn_keep_alive: bool,
    pub conn_upgrade: bool,
    pub proxy_close: bool,
    pub expect_continue: bool,
    expect_seen: bool,
}

impl Seen {
    pub fn note(&mut self, known: Known, value: &[u8]) {
        match known {
            Known::Connection => {
                self.connection = true;
                for t in tokens(value) {
                    self.conn_close |= t.eq_ignore_ascii_case(b"close");
                    self.conn_keep_alive |= t.eq_ignore_ascii_case(b"keep-alive");
                    self.conn_upgrade |= t.eq_ignore_ascii_case(b"upgrade");
                }
            }
            Known::ProxyConnection => self.proxy_close |= has_token(value, b"close"),
            Known::Expect if !self.expect_seen => {
                self.expect_seen = true;
                self.expect_continue = value.eq_ignore_ascii_case(b"100-continue");
            }
            _ => {}
        }
    }

    /// Recompute from the header map (after `Connection` removed nominated headers).
    pub fn from_map(head: &RequestHead) -> Seen {
        let mut seen = Seen::default();
        for (name, value) in head.headers.iter() {
            seen.note(classify(name), value);
        }
        seen
    }
}
