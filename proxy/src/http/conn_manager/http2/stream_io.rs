//! One HTTP/2 stream behind [`ServerStream`]: request DATA in, response HEADERS and
//! DATA out, through the `h2` crate's stream handles.
//!
//! Request body: DATA frames land in the stream's own input (at most the listener's
//! buffer limit: the connection manager stops polling `h2` for more above it); bytes
//! the router hands upstream are released to `h2`'s flow control, so the client's
//! stream window reopens only as fast as the upstream accepts the body.
//! Response body: bytes wait in the stream's output until the client's window grants
//! capacity ([`H2StreamIo::push`]); the router stops reading the upstream once that
//! output reaches the limit (`buffered`), so a slow HTTP/2 reader pauses its upstream.

use std::net::SocketAddr;
use std::task::{Context, Poll};

use bytes::Bytes;
use h2::server::SendResponse;
use h2::{Reason, RecvStream, SendStream};
use sluice_stack::Stack;

use crate::http::codec::OutgoingBody;
use crate::http::flow_control;
use crate::http::stream_encoder::{BodyChunk, MalformedBody, ServerStream};

use super::super::config::HcmConfig;
use super::super::encode_response_headers;
use super::super::stream::Stream;

/// Most response bytes handed to `h2` in one piece (it cuts them into DATA frames).
const MAX_CHUNK: usize = 256 * 1024;

#[derive(Debug)]
pub struct H2StreamIo {
    peer: SocketAddr,
    local: SocketAddr,
    recv: RecvStream,
    input: Vec<u8>,
    input_pos: usize,
    /// The client ended the request (END_STREAM seen).
    pub recv_end: bool,
    respond: SendResponse<Bytes>,
    send: Option<SendStream<Bytes>>,
    out: Vec<u8>,
    out_pos: usize,
    /// The response body is complete (sent as END_STREAM once `out` is empty).
    out_end: bool,
    /// END_STREAM (or RST_STREAM) went out: nothing more to send.
    pub finished: bool,
    /// The stream was reset (by us or by the client).
    pub reset: bool,
    /// The request's trailers, until the router takes them.
    rq_trailers: Option<http::HeaderMap>,
    /// Response trailers, sent once `out` is empty (they end the stream).
    out_trailers: Option<http::HeaderMap>,
}

impl H2StreamIo {
    pub fn new(peer: SocketAddr, local: SocketAddr, recv: RecvStream, respond: SendResponse<Bytes>) -> H2StreamIo {
        let recv_end = recv.is_end_stream();
        H2StreamIo {
            peer,
            local,
            recv,
            input: Vec::new(),
            input_pos: 0,
            recv_end,
            respond,
            send: None,
            out: Vec::new(),
            out_pos: 0,
            out_end: false,
            finished: false,
            reset: false,
            rq_trailers: None,
            out_trailers: None,
        }
    }

    /// Request body bytes held, not yet taken by the router.
    pub fn input_len(&self) -> usize {
        self.input.len() - self.input_pos
    }

    /// Take DATA frames from `h2` while the input is under `limit`; returns the bytes
    /// taken. A stream error resets the stream.
    pub fn pull(&mut self, cx: &mut Context<'_>, limit: usize) -> usize {
        let mut got = 0;
        while !self.recv_end && !self.reset && self.input_len() < limit {
            match self.recv.poll_data(cx) {
                Poll::Ready(Some(Ok(data))) => {
                    if self.input_pos > 0 && self.input_pos * 2 >= self.input.len() {
                        self.input.drain(..self.input_pos);
                        self.input_pos = 0;
                    }
                    got += data.len();
                    self.input.extend_from_slice(&data);
                }
                Poll::Ready(Some(Err(e))) => {
                    tracing::debug!("http2 request body: {e}");
                    self.reset = true;
                }
                Poll::Ready(None) => {
                    // Request trailers, if any, end the stream too: kept for an
                    // HTTP/2 upstream; an HTTP/1.1 upstream does not get them (Envoy's
                    // default without `enable_trailers`).
                    match self.recv.poll_trailers(cx) {
                        Poll::Ready(Ok(t)) => {
                            self.rq_trailers = t;
                            self.recv_end = true;
                        }
                        Poll::Ready(Err(e)) => {
                            tracing::debug!("http2 request trailers: {e}");
                            self.reset = true;
                        }
                        Poll::Pending => break,
                    }
                }
                Poll::Pending => break,
            }
        }
        got
    }

    /// Whether the client reset the stream.
    pub fn poll_client_reset(&mut self, cx: &mut Context<'_>) -> bool {
        if self.finished || self.reset {
            return self.reset;
        }
        let poll = match self.send.as_mut() {
            Some(s) => s.poll_reset(cx),
            None => self.respond.poll_reset(cx),
        };
        if poll.is_ready() {
            self.reset = true;
        }
        self.reset
    }

    /// Hand response bytes to `h2` as the client's window allows; END_STREAM once the
    /// body is complete. True when something moved.
    pub fn push(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(send) = self.send.as_mut() else {
            return false;
        };
        if self.finished || self.reset {
            return false;
        }
        let mut progress = false;
        while self.out_pos < self.out.len() {
            let want = self.out.len() - self.out_pos;
            // `poll_capacity` only reports increases: use what is assigned first.
            send.reserve_capacity(want);
            let mut cap = send.capacity();
            if cap == 0 {
                match send.poll_capacity(cx) {
                    Poll::Ready(Some(Ok(n))) => cap = n,
                    Poll::Pending => break,
                    Poll::Ready(Some(Err(_))) | Poll::Ready(None) => {
                        self.reset = true;
                        return true;
                    }
                }
            }
            let n = cap.min(want).min(MAX_CHUNK);
            if n == 0 {
                break;
            }
            // The whole queue goes as it is (no copy); a part is copied out.
            let chunk = if self.out_pos == 0 && n == self.out.len() {
                Bytes::from(std::mem::take(&mut self.out))
            } else {
                let chunk = Bytes::copy_from_slice(&self.out[self.out_pos..self.out_pos + n]);
                self.out_pos += n;
                chunk
            };
            let end = self.out_end && self.out_pos == self.out.len() && self.out_trailers.is_none();
            if send.send_data(chunk, end).is_err() {
                self.reset = true;
                return true;
            }
            progress = true;
            if end {
                self.finished = true;
            }
        }
        if self.out_pos == self.out.len() {
            self.out.clear();
            self.out_pos = 0;
            if self.out_end && !self.finished {
                self.finished = true;
                let sent = match self.out_trailers.take() {
                    Some(t) => send.send_trailers(t),
                    None => send.send_data(Bytes::new(), true),
                };
                if sent.is_err() {
                    self.reset = true;
                }
                progress = true;
            }
        }
        progress
    }

    /// Reset the stream with `reason` (RST_STREAM).
    pub fn send_reset(&mut self, reason: Reason) {
        if self.finished || self.reset {
            return;
        }
        match self.send.as_mut() {
            Some(s) => s.send_reset(reason),
            None => self.respond.send_reset(reason),
        }
        self.reset = true;
        self.finished = true;
    }

    /// Memory held by the stream's buffers.
    pub fn buffered_capacity(&self) -> usize {
        self.input.capacity() + self.out.capacity()
    }

    fn respond(&mut self, response: http::Response<()>, end: bool) {
        match self.respond.send_response(response, end) {
            Ok(send) => {
                self.send = Some(send);
                if end {
                    self.finished = true;
                    self.out_end = true;
                }
            }
            Err(e) => {
                tracing::debug!("http2 response head: {e}");
                self.send_reset(Reason::INTERNAL_ERROR);
            }
        }
    }
}

/// Headers an HTTP/2 message must not carry (RFC 9113 §8.2.2).
pub(crate) fn connection_specific(name: &[u8]) -> bool {
    matches!(name, b"connection" | b"keep-alive" | b"proxy-connection" | b"transfer-encoding" | b"upgrade" | b"te")
}

/// `stream.response` as an `h2` response head; `length`: a content-length to announce.
/// The header values share one buffer (one allocation, not one per value).
fn response_head(stream: &Stream, length: Option<u64>) -> http::Response<()> {
    let mut r = http::Response::new(());
    let Ok(status) = http::StatusCode::from_u16(stream.response.status) else {
        *r.status_mut() = http::StatusCode::BAD_GATEWAY;
        return r;
    };
    *r.status_mut() = status;
    let mut values = Vec::new();
    let mut count = 1;
    for (name, value) in stream.response.headers.iter() {
        if !connection_specific(name) {
            values.extend_from_slice(value);
            count += 1;
        }
    }
    let values = Bytes::from(values);
    let headers = r.headers_mut();
    headers.reserve(count.min(256)); // `reserve` panics past 32,768
    let mut has_length = false;
    let mut at = 0;
    for (name, value) in stream.response.headers.iter() {
        if connection_specific(name) {
            continue;
        }
        let shared = values.slice(at..at + value.len());
        at += value.len();
        has_length |= name == b"content-length";
        let (Ok(n), Ok(v)) = (http::HeaderName::from_bytes(name), http::HeaderValue::from_maybe_shared(shared)) else {
            continue;
        };
        headers.append(n, v);
    }
    if let (Some(n), false) = (length, has_length) {
        headers.insert(http::header::CONTENT_LENGTH, http::HeaderValue::from(n));
    }
    r
}

impl ServerStream for H2StreamIo {
    fn peer(&self) -> SocketAddr {
        self.peer
    }

    fn local(&self) -> SocketAddr {
        self.local
    }

    fn next_body(&mut self, stream: &mut Stream) -> Result<Option<BodyChunk>, MalformedBody> {
        let _ = stream;
        let n = self.input_len();
        if n == 0 && !self.recv_end {
            return Ok(None);
        }
        if n == 0 && self.reset {
            return Err(MalformedBody);
        }
        Ok(Some(BodyChunk { data: 0..n, consumed: n, end: self.recv_end }))
    }

    fn body_input(&self) -> &[u8] {
        &self.input[self.input_pos..]
    }

    fn consume_body(&mut self, n: usize) {
        let n = n.min(self.input_len());
        self.input_pos += n;
        if self.input_pos == self.input.len() {
            self.input.clear();
            self.input_pos = 0;
        }
        if n > 0 {
            // The upstream took these bytes: the client may send as many more.
            let _ = self.recv.flow_control().release_capacity(n);
        }
    }

    fn encode_headers(
        &mut self,
        cfg: &HcmConfig,
        stream: &mut Stream,
        date: &[u8],
        draining: bool,
        body: OutgoingBody,
    ) {
        let _ = draining; // the connection sends GOAWAY; streams never carry `connection: close`
        let end_stream = stream.meta.is_head || matches!(body, OutgoingBody::Empty | OutgoingBody::Length(0));
        encode_response_headers(cfg, stream, date, end_stream);
        let no_body = end_stream || matches!(stream.response.status, 204 | 304);
        let length = match body {
            OutgoingBody::Length(n) => Some(n),
            _ => None,
        };
        let head = response_head(stream, length);
        stream.response_started = true;
        self.respond(head, no_body);
    }

    fn encode_switching_headers(&mut self, cfg: &HcmConfig, stream: &mut Stream, date: &[u8]) {
        // HTTP/2 streams are never upgraded (no Upgrade header; CONNECT is refused
        // before routing): answer as a plain response without a body.
        self.encode_headers(cfg, stream, date, false, OutgoingBody::Empty);
    }

    fn encode_data(&mut self, stream: &mut Stream, data: &[u8], limit: usize) {
        if data.is_empty() || stream.meta.is_head || self.out_end {
            return;
        }
        flow_control::make_room(&mut self.out, &mut self.out_pos, data.len(), limit);
        self.out.extend_from_slice(data);
        stream.bytes_sent += data.len() as u64;
        stream.resp_body_bytes += data.len() as u64;
    }

    fn encode_end(&mut self, stream: &mut Stream) {
        let _ = stream;
        self.out_end = true;
    }

    fn encode_trailers(&mut self, stream: &mut Stream, trailers: http::HeaderMap) {
        if !stream.meta.is_head && !trailers.is_empty() {
            self.out_trailers = Some(trailers);
        }
        self.encode_end(stream);
    }

    fn take_request_trailers(&mut self) -> Option<http::HeaderMap> {
        if self.recv_end {
            self.rq_trailers.take()
        } else {
            None
        }
    }

    fn encode_100_continue(&mut self) {
        let mut r = http::Response::new(());
        *r.status_mut() = http::StatusCode::CONTINUE;
        let _ = self.respond.send_informational(r);
    }

    fn reset<S: Stack>(&mut self, stack: &mut S) {
        let _ = stack;
        self.send_reset(Reason::INTERNAL_ERROR);
    }

    fn buffered(&self) -> usize {
        self.out.len() - self.out_pos
    }
}
