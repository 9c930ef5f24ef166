//! The downstream side of an async request (Envoy's `AsyncStreamImpl` as the router's
//! `StreamDecoderFilterCallbacks`): the router reads no body from it (the whole body is
//! handed over up front) and encodes the response into it, bounded by a limit.

use std::net::SocketAddr;

use sluice_stack::Stack;

use crate::http::codec::OutgoingBody;
use crate::http::conn_manager::config::HcmConfig;
use crate::http::conn_manager::stream::Stream;
use crate::http::stream_encoder::{BodyChunk, MalformedBody, ServerStream};
use crate::http::HeaderMap;

/// What the router wrote back.
#[derive(Debug)]
pub(super) struct Sink {
    pub peer: SocketAddr,
    pub local: SocketAddr,
    pub body: Vec<u8>,
    pub trailers: Option<http::HeaderMap>,
    /// The response body passed `limit`, or the router reset the stream.
    pub reset: bool,
    pub limit: usize,
}

impl Sink {
    pub fn new(limit: usize) -> Sink {
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        Sink { peer: any, local: any, body: Vec::new(), trailers: None, reset: false, limit }
    }

    /// The trailers as the stream's header map.
    pub fn take_trailers(&mut self) -> Option<HeaderMap> {
        let t = self.trailers.take()?;
        let mut map = HeaderMap::default();
        for (name, value) in &t {
            map.append(name.as_str().as_bytes(), value.as_bytes());
        }
        Some(map)
    }
}

impl ServerStream for Sink {
    fn peer(&self) -> SocketAddr {
        self.peer
    }

    fn local(&self) -> SocketAddr {
        self.local
    }

    fn next_body(&mut self, _stream: &mut Stream) -> Result<Option<BodyChunk>, MalformedBody> {
        // The request body went up front (`Stream::replay_body`).
        Ok(None)
    }

    fn body_input(&self) -> &[u8] {
        &[]
    }

    fn consume_body(&mut self, _n: usize) {}

    fn encode_headers(&mut self, _: &HcmConfig, stream: &mut Stream, _: &[u8], _: bool, body: OutgoingBody) {
        stream.response_started = true;
        if matches!(body, OutgoingBody::Empty) {
            stream.response_done = true;
        }
    }

    fn encode_switching_headers(&mut self, _: &HcmConfig, stream: &mut Stream, _: &[u8]) {
        // No upgrade is asked for; a switch is not a response the caller can use.
        stream.response_started = true;
        self.reset = true;
    }

    fn encode_data(&mut self, _stream: &mut Stream, data: &[u8], _limit: usize) {
        if self.body.len() + data.len() > self.limit {
            self.reset = true;
            return;
        }
        self.body.extend_from_slice(data);
    }

    fn encode_end(&mut self, _stream: &mut Stream) {}

    fn encode_trailers(&mut self, _stream: &mut Stream, trailers: http::HeaderMap) {
        self.trailers = Some(trailers);
    }

    fn encode_100_continue(&mut self) {}

    fn reset<S: Stack>(&mut self, _stack: &mut S) {
        self.reset = true;
    }

    fn buffered(&self) -> usize {
        0
    }
}
