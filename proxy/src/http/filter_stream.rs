//! The filter chain between the router and the downstream codec: a [`ServerStream`]
//! over the codec's that runs request body chunks through the decoder filters and the
//! response (head, body, trailers) through the encoder filters, so a filter can
//! rewrite bodies (gRPC-Web's base64, the gRPC frames it adds and strips) and hold the
//! response head until it has seen the body.
//!
//! The router and local replies write the response through this; the codec gets only
//! what passed every filter ([`crate::http::filter_manager::Encoded`]). A held head
//! goes out when its filter lets it go, with the framing it ends up with: its
//! `content-length` if it has one, a streamed body if a filter removed it, else the
//! framing it came with (none when the stream ended with it). Request bytes a filter changed are kept here between the router's
//! reads ([`DecodedBody`], moved in and out of the stream around each call). With no
//! filters on the stream every call goes straight to the codec, and bodies and
//! trailers do when every filter is headers-only ([`ActiveFilter::headers_only`]).

use std::net::SocketAddr;

use sluice_stack::Stack;

use crate::http::codec::{BodyFraming, OutgoingBody};
use crate::http::conn_manager::config::HcmConfig;
use crate::http::conn_manager::stream::Stream;
use crate::http::filter::LocalReply;
use crate::http::filter_manager::{DataOutcome, Encoded, TrailersRun};
use crate::http::filters::ActiveFilter;
use crate::http::stream_encoder::{BodyChunk, MalformedBody, ServerStream};
use crate::http::HeaderMap;

/// Request body bytes the decoder filters passed, not yet taken by the router.
#[derive(Debug, Default)]
pub struct DecodedBody {
    buf: Vec<u8>,
    pos: usize,
    /// `buf` ends the request body.
    end: bool,
    /// A chunk is ready in `buf` (possibly empty when it only carries the end).
    ready: bool,
    /// The request's trailers as the decoder filters left them, for the router.
    pub trailers: Option<HeaderMap>,
}

/// What the stream keeps between calls: the request bytes above and a head an
/// encoder filter holds.
#[derive(Debug, Default)]
pub struct FilterIo {
    pub body: DecodedBody,
    held: Option<HeldHead>,
    /// The end of the response went to the codec.
    ended: bool,
}

impl FilterIo {
    /// A new exchange on the stream.
    pub fn clear(&mut self) {
        self.body = DecodedBody::default();
        self.held = None;
        self.ended = false;
    }
}

/// How a held head is to be written once it is let go.
#[derive(Debug)]
struct HeldHead {
    date: Vec<u8>,
    draining: bool,
    body: OutgoingBody,
    /// The head had a `content-length` when the filters got it.
    had_length: bool,
}

/// The codec's stream seen through the filters.
pub struct FilteredStream<'a, D: ServerStream> {
    inner: &'a mut D,
    cfg: &'a HcmConfig,
    body: DecodedBody,
    /// The request's trailers go through the decoder filters (one looks at bodies).
    filtered: bool,
    /// A decoder filter's local reply while the router read the body.
    reply: Option<LocalReply>,
}

impl<'a, D: ServerStream> FilteredStream<'a, D> {
    /// Wrap `inner` for one call; the request bytes kept in `stream` come along.
    pub fn new(inner: &'a mut D, cfg: &'a HcmConfig, stream: &mut Stream) -> FilteredStream<'a, D> {
        let body = std::mem::take(&mut stream.filter_io.body);
        let filtered = trailers_filtered(stream);
        FilteredStream { inner, cfg, body, filtered, reply: None }
    }

    /// Put the kept request bytes back; a decoder filter's local reply, if one ended the
    /// request body.
    pub fn finish(self, stream: &mut Stream) -> Option<LocalReply> {
        stream.filter_io.body = self.body;
        self.reply
    }

    /// What the encoder filters let go outside of a codec event (a filter that held the
    /// response resumed when its async request ended) goes to the codec.
    pub fn deliver_resumed(&mut self, stream: &mut Stream, out: Encoded) {
        let limit = self.cfg.buffer_limit;
        self.deliver(stream, out, limit);
    }

    fn pass(stream: &Stream) -> bool {
        stream.filters.filters().is_empty()
    }

    /// No filter of the stream looks at bodies or trailers: they go straight through
    /// (the head still passes the filters).
    fn body_pass(stream: &Stream) -> bool {
        stream.filters.filters().iter().all(ActiveFilter::headers_only)
    }

    /// Hand what passed the encoder filters to the codec.
    fn deliver(&mut self, stream: &mut Stream, out: Encoded, limit: usize) {
        if let Some(r) = out.reply {
            self.reply_from_encoder(stream, r);
            return;
        }
        if out.headers {
            let Some(held) = stream.filter_io.held.take() else { return };
            let ends = out.headers_end
                || (out.end && out.data.is_empty() && out.trailers.as_ref().is_none_or(HeaderMap::is_empty));
            let body = if ends {
                OutgoingBody::Empty
            } else if let Some(n) = stream.response.headers.get(b"content-length") {
                match std::str::from_utf8(n).ok().and_then(|n| n.parse::<u64>().ok()) {
                    Some(n) => OutgoingBody::Length(n),
                    None => OutgoingBody::Streaming,
                }
            } else if held.had_length {
                // A filter dropped the length: the body it changed is streamed.
                OutgoingBody::Streaming
            } else {
                held.body
            };
            stream.filter_io.ended = matches!(body, OutgoingBody::Empty);
            self.inner.encode_headers(self.cfg, stream, &held.date, held.draining, body);
        }
        if !stream.response_started {
            return;
        }
        if !out.data.is_empty() {
            self.inner.encode_data(stream, &out.data, limit);
        }
        if out.end {
            stream.filter_io.ended = true;
            match out.trailers {
                Some(t) if !t.is_empty() => self.inner.encode_trailers(stream, to_http(&t)),
                _ => self.inner.encode_end(stream),
            }
        }
    }

    /// An encoder filter (or its buffer limit) answered: Envoy's local reply while the
    /// head is still held; once the client has a head the response can only end.
    fn reply_from_encoder(&mut self, stream: &mut Stream, r: LocalReply) {
        let held = stream.filter_io.held.take();
        if stream.response_started {
            tracing::debug!(status = r.status, details = r.details, "encoder filter reply after the head went out");
            self.inner.encode_end(stream);
            return;
        }
        let (date, draining) = held.map_or((Vec::new(), false), |h| (h.date, h.draining));
        crate::http::local_reply::build(&mut stream.response, r.status, &r.body);
        for (n, v) in &r.headers {
            stream.response.headers.set(n, v);
        }
        stream.filter_io.ended = true;
        let len = r.body.len() as u64;
        self.inner.encode_headers(self.cfg, stream, &date, draining, OutgoingBody::Length(len));
        self.inner.encode_data(stream, &r.body, usize::MAX);
        self.inner.encode_end(stream);
    }
}

/// Our trailer map as the codecs take it (names and values that `http` refuses are
/// dropped, as the HTTP/2 codec would refuse them).
pub fn to_http(t: &HeaderMap) -> http::HeaderMap {
    let mut m = http::HeaderMap::with_capacity(t.len());
    for (n, v) in t.iter() {
        if let (Ok(n), Ok(v)) = (http::HeaderName::from_bytes(n), http::HeaderValue::from_bytes(v)) {
            m.append(n, v);
        }
    }
    m
}

pub fn from_http(t: &http::HeaderMap) -> HeaderMap {
    let mut m = HeaderMap::default();
    for (n, v) in t {
        m.append(n.as_str().as_bytes(), v.as_bytes());
    }
    m
}

/// The stream's request trailers go through its decoder filters: one of them looks at
/// bodies and every one takes trailers ([`ActiveFilter::takes_request_trailers`]).
pub fn trailers_filtered(stream: &Stream) -> bool {
    let filters = stream.filters.filters();
    !filters.iter().all(ActiveFilter::headers_only) && filters.iter().all(ActiveFilter::takes_request_trailers)
}

/// After the decoder filters: a request whose `content-length` a filter removed is
/// sent on with a streamed body (an HTTP/1 upstream gets it chunked).
pub fn reframe_request(stream: &mut Stream) {
    if matches!(stream.meta.framing, BodyFraming::Length(n) if n > 0)
        && stream.head.headers.get(b"content-length").is_none()
    {
        stream.meta.framing = BodyFraming::Chunked;
    }
}

impl<D: ServerStream> ServerStream for FilteredStream<'_, D> {
    fn peer(&self) -> SocketAddr {
        self.inner.peer()
    }

    fn local(&self) -> SocketAddr {
        self.inner.local()
    }

    fn next_body(&mut self, stream: &mut Stream) -> Result<Option<BodyChunk>, MalformedBody> {
        if Self::body_pass(stream) && !self.body.ready {
            return self.inner.next_body(stream);
        }
        loop {
            if self.body.ready {
                let b = &self.body;
                return Ok(Some(BodyChunk { data: b.pos..b.buf.len(), consumed: b.buf.len() - b.pos, end: b.end }));
            }
            let Some(d) = self.inner.next_body(stream)? else { return Ok(None) };
            let chunk = self.inner.body_input()[d.data.clone()].to_vec();
            self.inner.consume_body(d.consumed);
            let random = stream.encode_random;
            // Trailers end the request: the last chunk is not its end for the filters,
            // the trailers are (Envoy's decodeData(end_stream=false), decodeTrailers).
            let trailers = if d.end && self.filtered {
                self.inner.take_request_trailers().filter(|t| !t.is_empty())
            } else {
                None
            };
            let data_end = d.end && trailers.is_none();
            let out = stream.filters.decode_data(chunk, data_end, random);
            let out = match (out, trailers) {
                (DataOutcome::LocalReply(r), _) => DataOutcome::LocalReply(r),
                (out, Some(t)) => match stream.filters.decode_trailers(from_http(&t), random) {
                    TrailersRun::Continue(t) => {
                        self.body.trailers = Some(t);
                        out
                    }
                    TrailersRun::Held => out,
                    TrailersRun::LocalReply(r) => DataOutcome::LocalReply(r),
                },
                (out, None) => out,
            };
            match out {
                DataOutcome::Continue(bytes) => {
                    if bytes.is_empty() && !d.end {
                        if d.consumed == 0 {
                            return Ok(None);
                        }
                        continue;
                    }
                    let trailers = self.body.trailers.take();
                    self.body = DecodedBody { buf: bytes, pos: 0, end: d.end, ready: true, trailers };
                }
                DataOutcome::Held => {
                    if d.consumed == 0 || d.end {
                        return Ok(None);
                    }
                }
                DataOutcome::LocalReply(r) => {
                    self.reply = Some(r);
                    return Err(MalformedBody);
                }
            }
        }
    }

    fn body_input(&self) -> &[u8] {
        if self.body.ready {
            &self.body.buf
        } else {
            self.inner.body_input()
        }
    }

    fn consume_body(&mut self, n: usize) {
        if !self.body.ready {
            return self.inner.consume_body(n);
        }
        self.body.pos += n;
        if self.body.pos >= self.body.buf.len() {
            let trailers = self.body.trailers.take();
            self.body = DecodedBody { trailers, ..DecodedBody::default() };
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
        if Self::pass(stream) {
            return self.inner.encode_headers(cfg, stream, date, draining, body);
        }
        let end = matches!(body, OutgoingBody::Empty | OutgoingBody::Length(0)) || stream.meta.is_head;
        stream.filter_io.ended = false;
        let had_length = stream.response.headers.contains(b"content-length");
        stream.filter_io.held = Some(HeldHead { date: date.to_vec(), draining, body, had_length });
        let random = stream.encode_random;
        let s = &mut *stream;
        let out = s.filters.encode_head(&mut s.response, end, random);
        stream.flags.set(stream.filters.flags());
        let limit = self.cfg.buffer_limit;
        self.deliver(stream, out, limit);
    }

    fn encode_switching_headers(&mut self, cfg: &HcmConfig, stream: &mut Stream, date: &[u8]) {
        if !Self::pass(stream) {
            // A tunnel's head cannot be held: the filters see it, then it goes.
            let random = stream.encode_random;
            let s = &mut *stream;
            let _ = s.filters.encode_head(&mut s.response, false, random);
            stream.flags.set(stream.filters.flags());
        }
        self.inner.encode_switching_headers(cfg, stream, date)
    }

    fn encode_data(&mut self, stream: &mut Stream, data: &[u8], limit: usize) {
        if Self::body_pass(stream) {
            return self.inner.encode_data(stream, data, limit);
        }
        if stream.filter_io.ended {
            return;
        }
        let random = stream.encode_random;
        let s = &mut *stream;
        let out = s.filters.encode_body(&mut s.response, data.to_vec(), false, random);
        self.deliver(stream, out, limit);
    }

    fn encode_end(&mut self, stream: &mut Stream) {
        if Self::body_pass(stream) {
            return self.inner.encode_end(stream);
        }
        if stream.filter_io.ended {
            return self.inner.encode_end(stream);
        }
        let random = stream.encode_random;
        let s = &mut *stream;
        let out = s.filters.encode_body(&mut s.response, Vec::new(), true, random);
        let limit = self.cfg.buffer_limit;
        self.deliver(stream, out, limit);
    }

    fn encode_trailers(&mut self, stream: &mut Stream, trailers: http::HeaderMap) {
        if Self::body_pass(stream) {
            return self.inner.encode_trailers(stream, trailers);
        }
        let random = stream.encode_random;
        let s = &mut *stream;
        let out = s.filters.encode_end(&mut s.response, from_http(&trailers), random);
        let limit = self.cfg.buffer_limit;
        self.deliver(stream, out, limit);
    }

    fn take_request_trailers(&mut self) -> Option<http::HeaderMap> {
        if !self.filtered {
            return self.inner.take_request_trailers();
        }
        // Only once the filters had them (with the last chunk).
        self.body.trailers.take().map(|t| to_http(&t))
    }

    fn encode_100_continue(&mut self) {
        self.inner.encode_100_continue()
    }

    fn reset<S: Stack>(&mut self, stack: &mut S) {
        self.inner.reset(stack)
    }

    fn buffered(&self) -> usize {
        self.inner.buffered()
    }
}
