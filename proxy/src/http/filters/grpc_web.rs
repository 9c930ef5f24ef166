//! The gRPC-Web filter (`envoy.extensions.filters.http.grpc_web.v3.GrpcWeb`), as
//! Envoy's grpc_web_filter.cc: a browser's gRPC-Web request becomes a gRPC request
//! upstream and the gRPC response a gRPC-Web one.
//!
//! A request is gRPC-Web when its `content-type` is `application/grpc-web`,
//! `application/grpc-web+proto`, `application/grpc-web-text` or
//! `application/grpc-web-text+proto`. Upstream it goes as `application/grpc` with
//! `te: trailers`, `grpc-accept-encoding: identity,deflate,gzip` unless the client set
//! one, and no `content-length`; a `-text` body is base64-decoded as it streams (quads
//! split across chunks wait for their rest; a body that is not base64, or ends between
//! quads, is answered 400 `Bad gRPC-web request, invalid base64 data.` — a gRPC local
//! reply, so HTTP 200 with `grpc-status: 13`). The response gets `content-type:
//! application/grpc-web+proto` (`-text+proto` when `accept` asked for text, each gRPC
//! frame then base64-encoded on its own), no `content-length`, and the trailers as a
//! last frame in the body (flag `0x80`, `name:value\r\n` lines). A response that is
//! not gRPC (not 200 with a gRPC or proto gRPC-Web type, or trailers-only without
//! `grpc-status`) is held and answered with `grpc-status` mapped from its HTTP status
//! and `grpc-message` from its body (percent-encoded, at most 16 KiB buffered). Stats:
//! `cluster.<cluster>.grpc-web.<service>.<method>.{<status>,success,failure,total}`.

use std::sync::Arc;

use base64::Engine;

use crate::http::filter::{
    DataStatus, FilterCallbacks, HeadEdit, HeadersStatus, StreamContext, StreamFilter, TrailersStatus,
};
use crate::http::grpc::{http_to_grpc_status, percent_encode};
use crate::http::grpc_stats::RequestStatNames;
use crate::http::{HeaderMap, RequestHead, ResponseHead};

const GRPC_WEB: &[u8] = b"application/grpc-web";
const GRPC_WEB_PROTO: &[u8] = b"application/grpc-web+proto";
const GRPC_WEB_TEXT: &[u8] = b"application/grpc-web-text";
const GRPC_WEB_TEXT_PROTO: &[u8] = b"application/grpc-web-text+proto";
/// The gRPC-Web trailers frame's flag byte.
const TRAILER_FLAG: u8 = 0x80;
/// Envoy's `MAX_BUFFERED_PLAINTEXT_LENGTH`: what a non-gRPC body contributes to
/// `grpc-message`.
const MAX_PLAINTEXT: usize = 16384;
const BAD_BASE64: &[u8] = b"Bad gRPC-web request, invalid base64 data.";
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// The filter's config (no fields).
#[derive(Debug, Default)]
pub struct GrpcWebConfig;

/// The gRPC-Web filter on one stream.
#[derive(Debug)]
pub struct GrpcWebFilter {
    is_grpc_web: bool,
    text_request: bool,
    text_response: bool,
    /// Base64 characters short of a quad, waiting for the next chunk.
    decoding: Vec<u8>,
    /// Response bytes short of a whole gRPC frame (text responses).
    frame: Vec<u8>,
    /// The response is not gRPC: its head is held and its body becomes `grpc-message`.
    transform: bool,
    /// A non-gRPC body so far (transform) and whether any chunk was buffered.
    plain: Vec<u8>,
    buffered: bool,
    status: u16,
    stats: Option<RequestStatNames>,
}

impl GrpcWebFilter {
    pub fn new(_config: Arc<GrpcWebConfig>) -> GrpcWebFilter {
        GrpcWebFilter {
            is_grpc_web: false,
            text_request: false,
            text_response: false,
            decoding: Vec::new(),
            frame: Vec::new(),
            transform: false,
            plain: Vec::new(),
            buffered: false,
            status: 0,
            stats: None,
        }
    }

    fn charge(&self, headers: &HeaderMap) {
        if let Some(s) = &self.stats {
            s.charge(headers.get(b"grpc-status"));
        }
    }

    /// Envoy's `setTransformedNonProtoEncodedResponseHeaders`.
    fn transformed_head(&mut self, last: Option<&mut Vec<u8>>, cb: &mut FilterCallbacks) {
        let mut message = std::mem::take(&mut self.plain);
        if let Some(last) = last {
            message.extend_from_slice(last);
            last.clear();
        }
        if self.buffered {
            message.truncate(MAX_PLAINTEXT);
        }
        cb.edit_held_response(HeadEdit::Set(b"grpc-message", percent_encode(&message)));
        let code = http_to_grpc_status(self.status);
        cb.edit_held_response(HeadEdit::Set(b"grpc-status", code.to_string().into_bytes()));
        cb.edit_held_response(HeadEdit::Set(b"content-length", b"0".to_vec()));
        self.transform = false;
    }

    /// Base64-encode every whole gRPC frame of `data` (and what was held before it)
    /// frame by frame; the rest waits for more.
    fn encode_text(&mut self, data: &mut Vec<u8>) {
        self.frame.extend_from_slice(data);
        data.clear();
        let mut at = 0;
        while self.frame.len() - at >= 5 {
            let f = &self.frame[at..];
            let len = u32::from_be_bytes([f[1], f[2], f[3], f[4]]) as usize;
            if f.len() - 5 < len {
                break;
            }
            data.extend_from_slice(B64.encode(&f[..5 + len]).as_bytes());
            at += 5 + len;
        }
        self.frame.drain(..at);
    }
}

/// `content-type` is one of the gRPC-Web types (exactly, as Envoy's set lookup).
fn is_grpc_web_request(head: &RequestHead) -> bool {
    head.headers
        .get(b"content-type")
        .is_some_and(|ct| [GRPC_WEB, GRPC_WEB_PROTO, GRPC_WEB_TEXT, GRPC_WEB_TEXT_PROTO].contains(&ct))
}

fn is_text(v: Option<&[u8]>) -> bool {
    matches!(v, Some(v) if v == GRPC_WEB_TEXT || v == GRPC_WEB_TEXT_PROTO)
}

/// Envoy's `Grpc::Common::hasGrpcContentType`: `application/grpc`, optionally
/// followed by `+...` or `;...`.
pub fn has_grpc_content_type(headers: &HeaderMap) -> bool {
    let Some(ct) = headers.get(b"content-type") else { return false };
    let Some(rest) = ct.strip_prefix(b"application/grpc") else { return false };
    rest.is_empty() || rest[0] == b'+' || rest[0] == b';'
}

/// Envoy's `isGrpcResponseHeaders` or `isProtoEncodedGrpcWebResponseHeaders`.
fn is_grpc_response(head: &ResponseHead, end: bool) -> bool {
    if end && head.headers.contains(b"grpc-status") {
        return true;
    }
    if head.status != 200 {
        return false;
    }
    if !end && has_grpc_content_type(&head.headers) {
        return true;
    }
    let Some(ct) = head.headers.get(b"content-type") else { return false };
    let ct = ct.split(|&b| b == b';').next().unwrap_or(b"").trim_ascii_end();
    ct.eq_ignore_ascii_case(GRPC_WEB_PROTO) || ct.eq_ignore_ascii_case(GRPC_WEB)
}

impl StreamFilter for GrpcWebFilter {
    fn decode_headers(
        &mut self,
        head: &mut RequestHead,
        _end: bool,
        cx: &StreamContext<'_>,
        _cb: &mut FilterCallbacks,
    ) -> HeadersStatus {
        if !is_grpc_web_request(head) {
            return HeadersStatus::Continue;
        }
        self.is_grpc_web = true;
        head.headers.remove(b"content-length");
        self.stats = RequestStatNames::new(cx.cluster, "grpc-web", &head.path);
        self.text_request = is_text(head.headers.get(b"content-type"));
        head.headers.set(b"content-type", b"application/grpc");
        self.text_response = is_text(head.headers.get(b"accept"));
        head.headers.set(b"te", b"trailers");
        if !head.headers.contains(b"grpc-accept-encoding") {
            head.headers.set(b"grpc-accept-encoding", b"identity,deflate,gzip");
        }
        HeadersStatus::Continue
    }

    fn decode_data(&mut self, data: &mut Vec<u8>, end: bool, cb: &mut FilterCallbacks) -> DataStatus {
        if !self.is_grpc_web || !self.text_request {
            return DataStatus::Continue;
        }
        let available = data.len() + self.decoding.len();
        if end {
            if available == 0 {
                return DataStatus::Continue;
            }
            if available % 4 != 0 {
                cb.send_local_reply(400, BAD_BASE64, Vec::new(), "grpc_base_64_decode_failed_bad_size");
                return DataStatus::StopIterationNoBuffer;
            }
        } else if available < 4 {
            self.decoding.append(data);
            return DataStatus::StopIterationNoBuffer;
        }
        let take = available / 4 * 4 - self.decoding.len();
        self.decoding.extend_from_slice(&data[..take]);
        let rest = data.split_off(take);
        let decoded = match B64.decode(&self.decoding) {
            Ok(d) if !d.is_empty() => d,
            _ => {
                cb.send_local_reply(400, BAD_BASE64, Vec::new(), "grpc_base_64_decode_failed");
                return DataStatus::StopIterationNoBuffer;
            }
        };
        self.decoding = rest;
        *data = decoded;
        DataStatus::Continue
    }

    fn encode_headers(&mut self, head: &mut ResponseHead, end: bool, _cb: &mut FilterCallbacks) -> HeadersStatus {
        if !self.is_grpc_web {
            return HeadersStatus::Continue;
        }
        self.charge(&head.headers);
        self.transform = !is_grpc_response(head, end);
        self.status = head.status;
        head.headers.remove(b"content-length");
        let ct: &[u8] = if self.text_response { GRPC_WEB_TEXT_PROTO } else { GRPC_WEB_PROTO };
        head.headers.set(b"content-type", ct);
        if end || !self.transform {
            return HeadersStatus::Continue;
        }
        HeadersStatus::StopIteration
    }

    fn encode_data(&mut self, data: &mut Vec<u8>, end: bool, cb: &mut FilterCallbacks) -> DataStatus {
        if !self.is_grpc_web {
            return DataStatus::Continue;
        }
        if self.transform {
            if !end {
                if self.plain.len() < MAX_PLAINTEXT {
                    self.plain.append(data);
                    self.buffered = true;
                }
                data.clear();
                return DataStatus::StopIterationNoBuffer;
            }
            self.transformed_head(Some(data), cb);
            return DataStatus::Continue;
        }
        if !self.text_response {
            return DataStatus::Continue;
        }
        self.encode_text(data);
        if data.is_empty() && !end {
            return DataStatus::StopIterationNoBuffer;
        }
        DataStatus::Continue
    }

    fn encode_trailers(&mut self, trailers: &mut HeaderMap, cb: &mut FilterCallbacks) -> TrailersStatus {
        if !self.is_grpc_web {
            return TrailersStatus::Continue;
        }
        self.charge(trailers);
        if self.transform {
            self.transformed_head(None, cb);
            return TrailersStatus::Continue;
        }
        let mut block = Vec::new();
        for (n, v) in trailers.iter() {
            block.extend_from_slice(n);
            block.push(b':');
            block.extend_from_slice(v);
            block.extend_from_slice(b"\r\n");
        }
        trailers.clear();
        let mut frame = Vec::with_capacity(5 + block.len());
        frame.push(TRAILER_FLAG);
        frame.extend_from_slice(&(block.len() as u32).to_be_bytes());
        frame.extend_from_slice(&block);
        if self.text_response {
            cb.add_encoded_data(B64.encode(&frame).as_bytes());
        } else {
            cb.add_encoded_data(&frame);
        }
        TrailersStatus::Continue
    }
}

#[cfg(test)]
#[path = "grpc_web_tests.rs"]
mod tests;
