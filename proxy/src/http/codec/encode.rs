//! Serializing heads and framing bodies, into caller-provided buffers.
//!
//! [`encode_request_head`] writes the upstream request in origin form with `host` from
//! the authority; [`encode_response_head`] writes the downstream response with the
//! canonical reason phrase. Both drop hop-by-hop headers (connection, keep-alive,
//! proxy-connection, transfer-encoding, te, upgrade) and any content-length, then state
//! the framing themselves from the [`OutgoingBody`] the caller knows, following Envoy's
//! `encodeHeadersBase`; they return the [`BodyEncoder`] that frames the body to match.
//! Nothing here allocates beyond growing the caller's `Vec<u8>`.

use std::io::Write as _;

use super::super::{RequestHead, ResponseHead, Version};
use super::body::BodyFraming;
use super::reason::reason_phrase;
use super::rules::request_should_have_no_body;

/// `HTTP/1.1 100 Continue`, what Envoy sends for `Expect: 100-continue`.
pub const CONTINUE_RESPONSE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// What the caller knows about the body it is about to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutgoingBody {
    /// The message ends with its head.
    Empty,
    /// Exactly this many bytes will follow.
    Length(u64),
    /// A body of unknown length will be streamed.
    Streaming,
}

impl From<BodyFraming> for OutgoingBody {
    /// How to forward a body received with `framing`: lengths pass through, chunked
    /// and read-until-close bodies stream.
    fn from(framing: BodyFraming) -> Self {
        match framing {
            BodyFraming::None | BodyFraming::Length(0) => OutgoingBody::Empty,
            BodyFraming::Length(n) => OutgoingBody::Length(n),
            BodyFraming::Chunked | BodyFraming::UntilClose => OutgoingBody::Streaming,
        }
    }
}

/// Frames an outgoing body as its head announced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyEncoder {
    /// No body may be sent.
    None,
    /// Exactly `remaining` more bytes.
    Length { remaining: u64 },
    /// Chunked transfer coding.
    Chunked,
    /// Raw bytes; the end is marked by closing the connection.
    UntilClose,
}

/// A body that does not match what its head announced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncodeError {
    /// More bytes than the Content-Length, or any bytes where no body is allowed.
    TooLong,
    /// The body ended before its Content-Length.
    TooShort,
}

impl std::fmt::Display for EncodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            EncodeError::TooLong => "body longer than its framing allows",
            EncodeError::TooShort => "body shorter than its content-length",
        })
    }
}

impl std::error::Error for EncodeError {}

impl BodyEncoder {
    /// Append `data`, framed, to `out`. Empty data writes nothing (an empty chunk would
    /// end a chunked body).
    pub fn encode(&mut self, data: &[u8], out: &mut Vec<u8>) -> Result<(), EncodeError> {
        self.encode_prefix(data.len(), out)?;
        out.extend_from_slice(data);
        self.encode_suffix(data.len(), out);
        Ok(())
    }

    /// Append the framing that goes before `len` data bytes (the chunk-size line), for
    /// callers that write the data itself from elsewhere (vectored writes).
    pub fn encode_prefix(&mut self, len: usize, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        if len == 0 {
            return Ok(());
        }
        match self {
            BodyEncoder::None => Err(EncodeError::TooLong),
            BodyEncoder::Length { remaining } => {
                *remaining = remaining.checked_sub(len as u64).ok_or(EncodeError::TooLong)?;
                Ok(())
            }
            BodyEncoder::Chunked => {
                // Writing into a Vec cannot fail.
                let _ = write!(out, "{len:x}\r\n");
                Ok(())
            }
            BodyEncoder::UntilClose => Ok(()),
        }
    }

    /// Append the framing that goes after `len` data bytes (the chunk's CRLF).
    pub fn encode_suffix(&self, len: usize, out: &mut Vec<u8>) {
        if len > 0 && *self == BodyEncoder::Chunked {
            out.extend_from_slice(b"\r\n");
        }
    }

    /// End the body: the last chunk for chunked; a check that a Content-Length body is
    /// complete. A read-until-close body ends when the caller closes.
    pub fn finish(&mut self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        match *self {
            BodyEncoder::Chunked => out.extend_from_slice(b"0\r\n\r\n"),
            BodyEncoder::Length { remaining } if remaining > 0 => return Err(EncodeError::TooShort),
            _ => {}
        }
        *self = BodyEncoder::None;
        Ok(())
    }

    /// Whether the connection must close to end this body.
    pub fn ends_with_close(&self) -> bool {
        *self == BodyEncoder::UntilClose
    }
}

/// Hop-by-hop headers never forwarded, plus the framing headers the encoder writes
/// itself.
fn is_hop_by_hop(name: &[u8], keep_upgrade: bool) -> bool {
    matches!(
        name,
        b"connection"
            | b"keep-alive"
            | b"proxy-connection"
            | b"transfer-encoding"
            | b"te"
            | b"content-length"
            | b"host"
    ) || (name == b"upgrade" && !keep_upgrade)
}

fn write_header(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

fn write_content_length(out: &mut Vec<u8>, n: u64) {
    let _ = write!(out, "content-length: {n}\r\n");
}

/// Write the upstream request head: `METHOD path HTTP/1.1`, `host` from the authority,
/// the headers minus hop-by-hop ones (`upgrade` and `connection: upgrade` kept only
/// when `upgrading`), then the framing for `body`: a length, `transfer-encoding:
/// chunked` for a stream, and for an empty body `content-length: 0` unless the method
/// carries no body (Envoy's `requestShouldHaveNoBody`). CONNECT writes the authority as
/// its target.
pub fn encode_request_head(head: &RequestHead, body: OutgoingBody, upgrading: bool, out: &mut Vec<u8>) -> BodyEncoder {
    let is_connect = head.method == "CONNECT";
    out.extend_from_slice(head.method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(if is_connect { head.authority.as_bytes() } else { head.path.as_bytes() });
    out.extend_from_slice(b" HTTP/1.1\r\n");
    write_header(out, b"host", head.authority.as_bytes());
    for (name, value) in head.headers.iter() {
        if !is_hop_by_hop(name, upgrading) {
            write_header(out, name, value);
        }
    }
    if upgrading {
        out.extend_from_slice(b"connection: upgrade\r\n");
    }
    let encoder = match body {
        OutgoingBody::Empty => {
            if !request_should_have_no_body(&head.method) {
                write_content_length(out, 0);
            }
            BodyEncoder::None
        }
        OutgoingBody::Length(0) => {
            write_content_length(out, 0);
            BodyEncoder::None
        }
        OutgoingBody::Length(n) => {
            write_content_length(out, n);
            BodyEncoder::Length { remaining: n }
        }
        OutgoingBody::Streaming if upgrading || is_connect => BodyEncoder::UntilClose,
        OutgoingBody::Streaming => {
            out.extend_from_slice(b"transfer-encoding: chunked\r\n");
            BodyEncoder::Chunked
        }
    };
    out.extend_from_slice(b"\r\n");
    encoder
}

/// What the downstream request said that shapes its response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseContext {
    /// The request's version: HTTP/1.0 (and 0.9) clients get an `HTTP/1.0` status line
    /// and no chunked coding.
    pub request_version: Version,
    /// The request was HEAD: no body is sent; the head's own content-length (if any)
    /// is passed through.
    pub head_request: bool,
    /// Whether the connection stays open after this response: when false the head
    /// says `connection: close`; an HTTP/1.0 client that stays gets
    /// `connection: keep-alive`.
    pub keep_alive: bool,
}

/// Write the downstream response head: status line with the canonical reason, the
/// headers minus hop-by-hop ones, `connection` as `ctx` says, and the framing for
/// `body` (Envoy's rules: none for 1xx/204/304; the head's content-length for HEAD and
/// 304; a length; chunked for a stream, or read-until-close for HTTP/1.0 clients;
/// `content-length: 0` for an empty body). If the body must end with a close, the head
/// says `connection: close` and the returned encoder reports `ends_with_close`.
pub fn encode_response_head(
    head: &ResponseHead,
    body: OutgoingBody,
    ctx: ResponseContext,
    out: &mut Vec<u8>,
) -> BodyEncoder {
    let http10 = matches!(ctx.request_version, Version::Http10 | Version::Http09);
    let status = head.status;
    out.extend_from_slice(if http10 { b"HTTP/1.0 " } else { b"HTTP/1.1 " });
    let _ = write!(out, "{status:03} ");
    out.extend_from_slice(reason_phrase(status).as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in head.headers.iter() {
        if !is_hop_by_hop(name, false) {
            write_header(out, name, value);
        }
    }
    let no_body_status = status < 200 || status == 204 || status == 304;
    let (encoder, framing_header): (BodyEncoder, Option<u64>) = if no_body_status || ctx.head_request {
        if status >= 200 && status != 204 {
            if let Some(cl) = head.headers.get(b"content-length") {
                write_header(out, b"content-length", cl);
            }
        }
        (BodyEncoder::None, None)
    } else {
        match body {
            OutgoingBody::Empty => (BodyEncoder::None, Some(0)),
            OutgoingBody::Length(n) => {
                (if n == 0 { BodyEncoder::None } else { BodyEncoder::Length { remaining: n } }, Some(n))
            }
            OutgoingBody::Streaming if http10 => (BodyEncoder::UntilClose, None),
            OutgoingBody::Streaming => {
                out.extend_from_slice(b"transfer-encoding: chunked\r\n");
                (BodyEncoder::Chunked, None)
            }
        }
    };
    if let Some(n) = framing_header {
        write_content_length(out, n);
    }
    if status >= 200 {
        if !ctx.keep_alive || encoder.ends_with_close() {
            out.extend_from_slice(b"connection: close\r\n");
        } else if http10 {
            out.extend_from_slice(b"connection: keep-alive\r\n");
        }
    }
    out.extend_from_slice(b"\r\n");
    encoder
}
