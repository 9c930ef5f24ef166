//! Server side: downstream request heads, with Envoy's HTTP/1 rules.
//!
//! [`RequestParser::parse`] finds a complete head (incrementally, see `head_scan`),
//! parses the request line itself (so that HTTP/1.0, 0.9 and odd versions reach
//! Envoy's 426 instead of a syntax error) and the header block with httparse, then
//! applies, in Envoy's order: header count and underscore rules, Content-Length and
//! Transfer-Encoding rules, `Connection` sanitization, absolute-form targets, the
//! protocol version check, Host validity, and the connection manager's Host and path
//! checks. The result fills a reused [`RequestHead`] and a [`RequestMeta`] saying how the
//! body is framed and whether the connection may be kept. It allocates nothing once the
//! head's strings, its header map and the parser's scratch array have grown to size.

use std::sync::Arc;

use sluice_config::cluster::HeadersWithUnderscoresAction;

use super::super::{RequestHead, Version};
use super::body::{BodyDecoder, BodyFraming};
use super::connection_headers::{classify, sanitize_connection, Known, Seen};
use super::error::RequestError;
use super::head_scan::{recycle_headers, HeadBounds, HeadScan, ScanError};
use super::rules::{authority_is_valid, method_is_valid, parse_content_length, parse_http_version};
use super::target::{split_absolute, target_is_valid};
use super::{Http1Settings, Status};

/// What the parse of one request head found besides the head itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestMeta {
    /// Bytes of the buffer the head took; the body (or the next request) starts here.
    pub head_len: usize,
    /// How the request body is delimited (never `UntilClose` for requests).
    pub framing: BodyFraming,
    /// Whether the connection may carry another request after this one
    /// (Envoy's `shouldCloseConnection`, negated).
    pub keep_alive: bool,
    /// HTTP/1.1 with `Expect: 100-continue`: the manager decides when to send
    /// [`CONTINUE_RESPONSE`](super::CONTINUE_RESPONSE).
    pub expect_continue: bool,
    /// The method is HEAD: its response has no body.
    pub is_head: bool,
    /// The method is CONNECT (authority-form target; `path` is empty).
    pub is_connect: bool,
    /// `Upgrade` with `Connection: upgrade` (h2c upgrades are stripped, as Envoy does).
    pub upgrade: bool,
}

/// Parses request heads off one downstream connection.
#[derive(Debug)]
pub struct RequestParser {
    settings: Arc<Http1Settings>,
    tls: bool,
    scan: HeadScan,
    /// httparse's header array, kept across requests (see `recycle_headers`).
    scratch: Vec<httparse::Header<'static>>,
}

impl RequestParser {
    /// A parser for one connection; `tls` says whether it is encrypted (the `:scheme`
    /// of CONNECT requests, and Envoy's https-in-plaintext check).
    pub fn new(settings: Arc<Http1Settings>, tls: bool) -> Self {
        RequestParser { settings, tls, scan: HeadScan::default(), scratch: Vec::new() }
    }

    pub fn settings(&self) -> &Http1Settings {
        &self.settings
    }

    /// Address of the scratch array's allocation (tests check it is reused).
    #[cfg(test)]
    pub(crate) fn scratch_ptr(&self) -> *const u8 {
        self.scratch.as_ptr().cast()
    }

    /// Forget a partially scanned head (e.g. after the caller discarded its buffer).
    pub fn reset(&mut self) {
        self.scan.reset();
    }

    /// A body decoder for the request `meta` describes, with the trailer limit
    /// Envoy applies (the head limit).
    pub fn body_decoder(&self, meta: &RequestMeta) -> BodyDecoder {
        BodyDecoder::new(meta.framing, self.settings.max_head_bytes())
    }

    /// Parse the request head at the start of `buf` into `head`.
    ///
    /// `Partial` means call again with the same bytes plus more; nothing is copied
    /// until the head is complete. After `Complete`, the body starts at
    /// `meta.head_len`. On error the caller answers `err.status()` and, for
    /// connection errors, closes.
    pub fn parse(&mut self, buf: &[u8], head: &mut RequestHead) -> Result<Status<RequestMeta>, RequestError> {
        let limit = self.settings.max_head_bytes();
        let bounds = match self.scan.scan(buf, limit) {
            Ok(Some(b)) => b,
            Ok(None) => return Ok(Status::Partial),
            Err(e) => {
                self.scan.reset();
                return Err(match e {
                    ScanError::BareLf => RequestError::CodecError,
                    ScanError::TooLarge => RequestError::HeadersTooLarge,
                });
            }
        };
        let mut scratch: Vec<httparse::Header<'_>> = std::mem::take(&mut self.scratch);
        let result = parse_head(&self.settings, self.tls, buf, bounds, head, &mut scratch);
        self.scratch = recycle_headers(scratch);
        result.map(Status::Complete)
    }
}

/// Split and check the request line: method, target, version.
fn parse_request_line(line: &[u8], allow_custom: bool) -> Result<(&[u8], &[u8], Version), RequestError> {
    let sp = memchr::memchr(b' ', line).ok_or(RequestError::CodecError)?;
    let (method, rest) = (&line[..sp], &line[sp + 1..]);
    if !method_is_valid(method, allow_custom) {
        return Err(RequestError::CodecError);
    }
    let (target, version) = match memchr::memchr(b' ', rest) {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &b""[..]),
    };
    if !target_is_valid(target, method == b"CONNECT") {
        return Err(RequestError::CodecError);
    }
    let version = if version.is_empty() {
        Version::Http09
    } else {
        parse_http_version(version).ok_or(RequestError::CodecError)?
    };
    Ok((method, target, version))
}

fn ascii_str(bytes: &[u8]) -> Result<&str, RequestError> {
    // Callers have checked the bytes are ASCII; this cannot fail, but must not panic.
    std::str::from_utf8(bytes).map_err(|_| RequestError::CodecError)
}

fn parse_head<'b>(
    settings: &Http1Settings,
    tls: bool,
    buf: &'b [u8],
    bounds: HeadBounds,
    head: &mut RequestHead,
    scratch: &mut Vec<httparse::Header<'b>>,
) -> Result<RequestMeta, RequestError> {
    // Cleared first: after an error the head holds only this request's fields (the
    // access log of a rejected request must not show the previous one's).
    head.clear();
    let line = &buf[bounds.start..bounds.start_line_end];
    let (method, target, version) = parse_request_line(line, settings.allow_custom_methods)?;
    let drop_underscores = settings.headers_with_underscores_action == HeadersWithUnderscoresAction::DropHeader;
    let max_count = settings.max_headers_count as usize;
    if bounds.header_lines > max_count && !drop_underscores {
        return Err(RequestError::TooManyHeaders);
    }

    scratch.clear();
    scratch.resize(bounds.header_lines, httparse::EMPTY_HEADER);
    let block = &buf[bounds.start_line_end + 2..bounds.end];
    let fields = match httparse::parse_headers(block, scratch) {
        Ok(httparse::Status::Complete((n, fields))) if n == block.len() => fields,
        Err(httparse::Error::HeaderValue) => return Err(RequestError::InvalidCharacters),
        _ => return Err(RequestError::CodecError),
    };

    head.method.push_str(ascii_str(method)?);
    head.version = Some(version);
    let check_underscores = settings.headers_with_underscores_action != HeadersWithUnderscoresAction::Allow;
    let mut count = 0usize;
    let mut host_seen = false;
    let mut host_valid = true;
    let mut content_length: Option<(u64, &[u8])> = None;
    let mut te_count = 0usize;
    let mut te_chunked = false;
    let mut te_value: &[u8] = b"";
    let mut seen = Seen::default();
    let mut upgrade_value: Option<&[u8]> = None;
    for f in fields.iter() {
        let name = f.name.as_bytes();
        if check_underscores && name.contains(&b'_') {
            if settings.headers_with_underscores_action == HeadersWithUnderscoresAction::DropHeader {
                continue;
            }
            return Err(RequestError::InvalidUnderscore);
        }
        count += 1;
        if count > max_count {
            return Err(RequestError::TooManyHeaders);
        }
        match classify(name) {
            Known::Host => {
                // Repeated Host headers join with ',' (Envoy's inline :authority).
                if host_seen {
                    head.authority.push(',');
                }
                host_seen = true;
                if authority_is_valid(f.value) {
                    head.authority.push_str(ascii_str(f.value)?);
                } else {
                    host_valid = false;
                }
                continue;
            }
            Known::ContentLength => {
                if content_length.is_some() {
                    return Err(RequestError::CodecError);
                }
                let n = parse_content_length(f.value).ok_or(RequestError::CodecError)?;
                content_length = Some((n, f.value));
            }
            Known::TransferEncoding => {
                te_count += 1;
                te_value = f.value;
                te_chunked |= f.value.eq_ignore_ascii_case(b"chunked");
            }
            Known::Upgrade => {
                upgrade_value.get_or_insert(f.value);
            }
            known => seen.note(known, f.value),
        }
        head.headers.append(name, f.value);
    }

    // h2c upgrade requests are served as plain HTTP/1.1 (Envoy issue 7161).
    let mut upgrade = upgrade_value.is_some() && seen.conn_upgrade;
    if upgrade && upgrade_value.is_some_and(|v| v.eq_ignore_ascii_case(b"h2c")) {
        head.headers.remove(b"upgrade");
        head.headers.remove(b"http2-settings");
        upgrade = false;
    }

    let is_connect = method == b"CONNECT";
    if is_connect {
        if let Some((_, raw)) = content_length {
            if raw != b"0" {
                return Err(RequestError::BodyDisallowed);
            }
            head.headers.remove(b"content-length");
            content_length = None;
        }
    }
    if te_count > 0 && content_length.is_some() {
        if te_chunked && settings.allow_chunked_length {
            head.headers.remove(b"content-length");
            content_length = None;
        } else {
            return Err(RequestError::ChunkedContentLength);
        }
    }
    if te_count > 0 && (te_count > 1 || !te_value.eq_ignore_ascii_case(b"chunked") || is_connect) {
        return Err(RequestError::InvalidTransferEncoding);
    }
    if !upgrade && seen.connection && sanitize_connection(fields, head)? {
        // Nominated headers were removed: decide from what is left.
        seen = Seen::from_map(head);
    }

    // The request target (Envoy's handlePath).
    let origin_form = !is_connect && (target[0] == b'/' || (method == b"OPTIONS" && target[0] == b'*'));
    if origin_form || (!settings.allow_absolute_url && !is_connect) {
        // No `:scheme` here: the connection manager sets it from a trusted
        // `x-forwarded-proto`, else from the transport (Envoy's mutateRequestHeaders).
        head.path.push_str(ascii_str(target)?);
    } else {
        let url = split_absolute(target, is_connect).ok_or(RequestError::InvalidUrl)?;
        head.authority.clear();
        head.authority.push_str(ascii_str(url.host_and_port)?);
        host_seen = true;
        host_valid = authority_is_valid(url.host_and_port);
        if is_connect {
            head.scheme.push_str(if tls { "https" } else { "http" });
        } else {
            let scheme = url.scheme;
            let https = scheme.eq_ignore_ascii_case(b"https");
            if !https && !scheme.eq_ignore_ascii_case(b"http") {
                return Err(RequestError::InvalidScheme);
            }
            if settings.validate_scheme && https && !tls {
                return Err(RequestError::HttpsInPlaintext);
            }
            head.scheme.push_str(if https { "https" } else { "http" });
        }
        if url.slash {
            head.path.push('/');
        }
        head.path.push_str(ascii_str(url.path_and_query)?);
    }

    // Envoy's checkProtocolVersion: anything but HTTP/1.1 is HTTP/1.0 to it.
    if version != Version::Http11 {
        if !settings.accept_http_10 {
            return Err(RequestError::LowVersion);
        }
        if !host_seen && !settings.default_host_for_http_10.is_empty() {
            head.authority.push_str(&settings.default_host_for_http_10);
            host_seen = true;
        }
    }
    if !host_valid {
        return Err(RequestError::InvalidAuthority);
    }
    // The connection manager's checks.
    if !host_seen {
        return Err(RequestError::MissingHost);
    }
    if !is_connect && !head.path.starts_with('/') {
        return Err(RequestError::AbsolutePath);
    }

    let framing = if te_count > 0 {
        BodyFraming::Chunked
    } else {
        match content_length {
            Some((n, _)) if n > 0 => BodyFraming::Length(n),
            _ => BodyFraming::None,
        }
    };
    let expect_continue = version == Version::Http11 && seen.expect_continue;
    // Envoy's shouldCloseConnection.
    let close = match version {
        Version::Http11 | Version::Http2 => seen.conn_close,
        Version::Http10 | Version::Http09 => !seen.conn_keep_alive,
    } || seen.proxy_close;
    Ok(RequestMeta {
        head_len: bounds.end,
        framing,
        keep_alive: !close,
        expect_continue,
        is_head: method == b"HEAD",
        is_connect,
        upgrade,
    })
}
