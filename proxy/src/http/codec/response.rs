//! Client side: upstream response heads and how their bodies are framed.
//!
//! [`ResponseParser::parse`] reads one status line and header block into a reused
//! [`ResponseHead`] and decides the body framing by RFC 9112 §6.3 and Envoy's client
//! codec: responses to HEAD, 1xx, 204 and 304 have no body; chunked wins; then
//! Content-Length; otherwise the body runs until the upstream closes. Interim (1xx)
//! responses are reported as such, so the caller parses the final response that follows
//! them. Content-Length with Transfer-Encoding, unknown transfer codings and framing
//! headers on 1xx/204 are protocol errors, as in Envoy.

use super::super::{ResponseHead, Version};
use super::body::{BodyDecoder, BodyFraming};
use super::error::ResponseError;
use super::head_scan::{recycle_headers, HeadScan, ScanError};
use super::rules::{is_field_value_byte, parse_content_length, parse_http_version, should_close_connection};
use super::Status;

/// Envoy's response head limit (`MAX_RESPONSE_HEADERS_KB`).
pub const MAX_RESPONSE_HEADERS_KB: usize = 80;

/// A 1xx response that precedes the final one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interim {
    /// 100 Continue: forwarded only when the manager proxies 100-continue (Envoy's
    /// `proxy_100_continue`), else swallowed.
    Continue,
    /// 102 Processing or 103 Early Hints: Envoy's "special 1xx", forwarded downstream.
    Forward,
    /// Any other 1xx but 101: swallowed.
    Ignore,
}

/// What the parse of one response head found besides the head itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseMeta {
    /// Bytes the head took; the body (or, after an interim response, the next head)
    /// starts here.
    pub head_len: usize,
    /// `Some` for a 1xx: no body follows; parse the next head.
    pub interim: Option<Interim>,
    /// How the body is delimited.
    pub framing: BodyFraming,
    /// Whether the upstream connection may be reused once this response has been read
    /// whole: the response allowed it and its end is not marked by a close.
    pub keep_alive: bool,
}

/// Parses response heads off one upstream connection.
#[derive(Debug)]
pub struct ResponseParser {
    /// The request asked for an upgrade: a `101` is its final response (the
    /// connection then switches protocols), not an error.
    pub expect_upgrade: bool,
    max_headers_count: usize,
    max_head_bytes: usize,
    scan: HeadScan,
    scratch: Vec<httparse::Header<'static>>,
}

impl ResponseParser {
    /// A parser enforcing the cluster's `max_headers_count` and Envoy's 80 KiB head limit.
    pub fn new(max_headers_count: u32) -> Self {
        ResponseParser {
            expect_upgrade: false,
            max_headers_count: max_headers_count as usize,
            max_head_bytes: MAX_RESPONSE_HEADERS_KB * 1024,
            scan: HeadScan::default(),
            scratch: Vec::new(),
        }
    }

    pub fn reset(&mut self) {
        self.scan.reset();
    }

    /// A body decoder for the response `meta` describes.
    pub fn body_decoder(&self, meta: &ResponseMeta) -> BodyDecoder {
        BodyDecoder::new(meta.framing, self.max_head_bytes)
    }

    /// Parse the response head at the start of `buf` into `head`; `head_request` says
    /// whether it answers a HEAD request (then it has no body whatever it says).
    pub fn parse(
        &mut self,
        buf: &[u8],
        head_request: bool,
        head: &mut ResponseHead,
    ) -> Result<Status<ResponseMeta>, ResponseError> {
        let bounds = match self.scan.scan(buf, self.max_head_bytes) {
            Ok(Some(b)) => b,
            Ok(None) => return Ok(Status::Partial),
            Err(e) => {
                self.scan.reset();
                return Err(match e {
                    ScanError::BareLf => ResponseError::CodecError,
                    ScanError::TooLarge => ResponseError::HeadersTooLarge,
                });
            }
        };
        if bounds.header_lines > self.max_headers_count {
            return Err(ResponseError::TooManyHeaders);
        }
        let line = &buf[bounds.start..bounds.start_line_end];
        let (version, status, reason) = parse_status_line(line)?;
        let block = &buf[bounds.start_line_end + 2..bounds.end];

        let mut scratch: Vec<httparse::Header<'_>> = std::mem::take(&mut self.scratch);
        scratch.resize(bounds.header_lines, httparse::EMPTY_HEADER);
        let parsed = match httparse::parse_headers(block, &mut scratch) {
            Ok(httparse::Status::Complete((n, fields))) if n == block.len() => {
                fill_head(head, version, status, reason, fields)
            }
            Err(httparse::Error::HeaderValue) => Err(ResponseError::InvalidCharacters),
            _ => Err(ResponseError::CodecError),
        };
        self.scratch = recycle_headers(scratch);
        let framing_headers = parsed?;
        if head.status == 101 && self.expect_upgrade {
            return Ok(Status::Complete(ResponseMeta {
                head_len: bounds.end,
                interim: None,
                framing: BodyFraming::None,
                keep_alive: false,
            }));
        }
        decide(head, framing_headers, head_request, bounds.end).map(Status::Complete)
    }
}

/// `HTTP/d.d SP 3DIGIT [SP reason]`.
fn parse_status_line(line: &[u8]) -> Result<(Version, u16, &[u8]), ResponseError> {
    if line.len() < 12 || line[8] != b' ' {
        return Err(ResponseError::CodecError);
    }
    let version = parse_http_version(&line[..8]).ok_or(ResponseError::CodecError)?;
    let code = &line[9..12];
    if !code.iter().all(u8::is_ascii_digit) || code[0] == b'0' {
        return Err(ResponseError::CodecError);
    }
    let status = code.iter().fold(0u16, |n, &d| n * 10 + u16::from(d - b'0'));
    let reason = match &line[12..] {
        [] => &[][..],
        [b' ', reason @ ..] if reason.iter().all(|&b| is_field_value_byte(b)) => reason,
        _ => return Err(ResponseError::CodecError),
    };
    Ok((version, status, reason))
}

/// What the header block said about framing.
struct FramingHeaders<'a> {
    content_length: Option<(u64, &'a [u8])>,
    te_count: usize,
    te_value: &'a [u8],
}

fn fill_head<'b>(
    head: &mut ResponseHead,
    version: Version,
    status: u16,
    reason: &[u8],
    fields: &[httparse::Header<'b>],
) -> Result<FramingHeaders<'b>, ResponseError> {
    head.clear();
    head.status = status;
    head.version = Some(version);
    // The reason is informational only; a non-UTF-8 one is dropped, not an error.
    if let Ok(r) = std::str::from_utf8(reason) {
        head.reason.push_str(r);
    }
    let mut f = FramingHeaders { content_length: None, te_count: 0, te_value: b"" };
    for h in fields {
        let name = h.name.as_bytes();
        if name.eq_ignore_ascii_case(b"content-length") {
            if f.content_length.is_some() {
                return Err(ResponseError::CodecError);
            }
            let n = parse_content_length(h.value).ok_or(ResponseError::CodecError)?;
            f.content_length = Some((n, h.value));
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            f.te_count += 1;
            f.te_value = h.value;
        }
        head.headers.append(name, h.value);
    }
    Ok(f)
}

fn decide(
    head: &mut ResponseHead,
    f: FramingHeaders<'_>,
    head_request: bool,
    head_len: usize,
) -> Result<ResponseMeta, ResponseError> {
    let status = head.status;
    if status == 101 {
        return Err(ResponseError::UnexpectedUpgrade);
    }
    if status < 200 || status == 204 {
        if f.te_count > 0 {
            return Err(ResponseError::TransferEncodingNotAllowed);
        }
        if let Some((_, raw)) = f.content_length {
            if raw != b"0" {
                return Err(ResponseError::ContentLengthNotAllowed);
            }
            head.headers.remove(b"content-length");
        }
    }
    if f.te_count > 0 && f.content_length.is_some() {
        return Err(ResponseError::ChunkedContentLength);
    }
    if f.te_count > 0 && (f.te_count > 1 || !f.te_value.eq_ignore_ascii_case(b"chunked")) {
        return Err(ResponseError::InvalidTransferEncoding);
    }
    if status < 200 {
        let interim = match status {
            100 => Interim::Continue,
            102 | 103 => Interim::Forward,
            _ => Interim::Ignore,
        };
        return Ok(ResponseMeta { head_len, interim: Some(interim), framing: BodyFraming::None, keep_alive: true });
    }
    let framing = if head_request || status == 204 || status == 304 {
        BodyFraming::None
    } else if f.te_count > 0 {
        BodyFraming::Chunked
    } else {
        match f.content_length {
            Some((0, _)) => BodyFraming::None,
            Some((n, _)) => BodyFraming::Length(n),
            None => BodyFraming::UntilClose,
        }
    };
    let version = head.version.unwrap_or(Version::Http11);
    let keep_alive = framing != BodyFraming::UntilClose && !should_close_connection(version, &head.headers);
    Ok(ResponseMeta { head_len, interim: None, framing, keep_alive })
}
