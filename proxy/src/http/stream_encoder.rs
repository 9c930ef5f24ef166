//! The codec-independent face of one downstream stream: Envoy's `ResponseEncoder`
//! (`encodeHeaders`, `encodeData`, end of stream) plus the decoder side's request body
//! source.
//!
//! The router and the filters see a stream only through [`ServerStream`]: request body
//! bytes come out of [`ServerStream::next_body`] already decoded (HTTP/1 chunked
//! framing, HTTP/2 DATA frames), and the response goes back through the `encode_*`
//! calls, whatever protocol the client speaks. Each codec implements it over its own
//! buffers (HTTP/1: `conn_manager/http1.rs`, over the connection's input and output;
//! HTTP/2: `conn_manager/http2/stream_io.rs`, over one stream's).
//!
//! Backpressure is the caller's: it stops reading the upstream once
//! [`ServerStream::buffered`] reaches the listener's `per_connection_buffer_limit_bytes`
//! (Envoy's high watermark), and a codec only takes request bytes off the wire while
//! its own input is under that limit. Nothing here allocates per call once buffers are
//! warm, reads the clock or panics on input.

use std::net::SocketAddr;
use std::ops::Range;

use sluice_stack::Stack;

use crate::http::codec::OutgoingBody;
use crate::http::conn_manager::config::HcmConfig;
use crate::http::conn_manager::stream::Stream;

/// Decoded request body bytes ready for the router: `data` indexes
/// [`ServerStream::body_input`]; `consumed` input bytes go with them (framing
/// included); `end`: the request body is complete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyChunk {
    pub data: Range<usize>,
    pub consumed: usize,
    pub end: bool,
}

/// The client broke the request body's framing: the stream ends with a 400.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MalformedBody;

/// One downstream stream as the router sees it.
pub trait ServerStream {
    /// The downstream connection's peer address.
    fn peer(&self) -> SocketAddr;

    /// The downstream connection's local address.
    fn local(&self) -> SocketAddr;

    /// The next request body bytes available now (`None`: nothing yet).
    fn next_body(&mut self, stream: &mut Stream) -> Result<Option<BodyChunk>, MalformedBody>;

    /// The bytes a [`BodyChunk`]'s `data` range indexes.
    fn body_input(&self) -> &[u8];

    /// Take `n` input bytes (a chunk's `consumed`): the codec may read or grant more.
    fn consume_body(&mut self, n: usize);

    /// Send the response head `stream.response` (the HCM's response mutations applied
    /// first) with `body` framing; `OutgoingBody::Empty` ends the stream with it.
    /// `draining`: the server is draining (HTTP/1 closes the connection after it).
    fn encode_headers(&mut self, cfg: &HcmConfig, stream: &mut Stream, date: &[u8], draining: bool, body: OutgoingBody);

    /// Send the head of a response that switches the stream to a tunnel (101, or 2xx to
    /// a CONNECT): no framing headers; the stream becomes a byte relay.
    fn encode_switching_headers(&mut self, cfg: &HcmConfig, stream: &mut Stream, date: &[u8]);

    /// Send response body bytes; `limit` bounds the buffer's growth (watermark).
    fn encode_data(&mut self, stream: &mut Stream, data: &[u8], limit: usize);

    /// The response body is complete (chunked terminator, END_STREAM).
    fn encode_end(&mut self, stream: &mut Stream);

    /// End the response with `trailers` (HTTP/2: a HEADERS frame with END_STREAM).
    /// HTTP/1 drops them and ends the body, as Envoy does without `enable_trailers`.
    fn encode_trailers(&mut self, stream: &mut Stream, trailers: http::HeaderMap) {
        let _ = trailers;
        self.encode_end(stream);
    }

    /// The request's trailers, once the request is complete (HTTP/2), taken once.
    fn take_request_trailers(&mut self) -> Option<http::HeaderMap> {
        None
    }

    /// Answer `Expect: 100-continue` (Envoy does it itself; the header is dropped).
    fn encode_100_continue(&mut self);

    /// The response already started and cannot be completed: reset the stream
    /// (HTTP/1: the connection; HTTP/2: RST_STREAM).
    fn reset<S: Stack>(&mut self, stack: &mut S);

    /// Response bytes buffered and not yet taken by the client (the high watermark
    /// check: the upstream is read only while this is under the limit).
    fn buffered(&self) -> usize;
}
