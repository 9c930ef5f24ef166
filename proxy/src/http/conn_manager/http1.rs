//! The HTTP/1.1 server codec behind [`ServerStream`]: one stream at a time over the
//! connection's own buffers.
//!
//! Request body bytes are decoded (Content-Length or chunked) straight out of the
//! connection's input as zero-copy ranges; the response head and body are framed into
//! its output (`encode_response_head`, the stream's `BodyEncoder`). Exactly the wire
//! behaviour the connection manager had before the stream interface existed; no
//! allocation once the buffers are warm.

use std::net::SocketAddr;

use sluice_stack::Stack;

use crate::http::codec::{encode_response_head, OutgoingBody, ResponseContext, CONTINUE_RESPONSE};
use crate::http::flow_control;
use crate::http::stream_encoder::{BodyChunk, MalformedBody, ServerStream};
use crate::http::tunnel::encode_tunnel_head;

use super::config::HcmConfig;
use super::stream::Stream;
use super::{encode_body, encode_response_headers, encode_response_headers_framed, Downstream};

impl ServerStream for Downstream {
    fn peer(&self) -> SocketAddr {
        self.peer
    }

    fn local(&self) -> SocketAddr {
        self.local
    }

    fn next_body(&mut self, stream: &mut Stream) -> Result<Option<BodyChunk>, MalformedBody> {
        let input = self.pending_input();
        if input.is_empty() {
            return Ok(None);
        }
        let d = stream.body.decode(input).map_err(|_| MalformedBody)?;
        Ok(Some(BodyChunk { data: d.data, consumed: d.consumed, end: d.end }))
    }

    fn body_input(&self) -> &[u8] {
        self.pending_input()
    }

    fn consume_body(&mut self, n: usize) {
        self.consume_input(n);
    }

    fn encode_headers(
        &mut self,
        cfg: &HcmConfig,
        stream: &mut Stream,
        date: &[u8],
        draining: bool,
        body: OutgoingBody,
    ) {
        let end_stream = matches!(body, OutgoingBody::Empty | OutgoingBody::Length(0)) || stream.meta.is_head;
        let body = encode_response_headers_framed(cfg, stream, date, end_stream, body);
        let keep_alive = !stream.close_after && !draining;
        let rctx = ResponseContext { request_version: stream.version(), head_request: stream.meta.is_head, keep_alive };
        let before = self.out.len();
        stream.response_encoder = encode_response_head(&stream.response, body, rctx, &mut self.out);
        if stream.response_encoder.ends_with_close() || !keep_alive {
            stream.close_after = true;
        }
        stream.bytes_sent += (self.out.len() - before) as u64;
        stream.response_started = true;
    }

    fn encode_switching_headers(&mut self, cfg: &HcmConfig, stream: &mut Stream, date: &[u8]) {
        encode_response_headers(cfg, stream, date, false);
        let before = self.out.len();
        encode_tunnel_head(&stream.response, stream.version(), &mut self.out);
        stream.bytes_sent += (self.out.len() - before) as u64;
        stream.response_started = true;
        stream.close_after = true;
    }

    fn encode_data(&mut self, stream: &mut Stream, data: &[u8], limit: usize) {
        if data.is_empty() || stream.meta.is_head {
            return;
        }
        let filtered = encode_body(stream, data, false);
        let data = filtered.as_deref().unwrap_or(data);
        if data.is_empty() {
            return;
        }
        flow_control::make_room(&mut self.out, &mut self.out_pos, data.len() + 64, limit);
        let before = self.out.len();
        let _ = stream.response_encoder.encode(data, &mut self.out);
        stream.bytes_sent += (self.out.len() - before) as u64;
        stream.resp_body_bytes += data.len() as u64;
    }

    fn encode_end(&mut self, stream: &mut Stream) {
        if !stream.meta.is_head {
            if let Some(tail) = encode_body(stream, &[], true).filter(|t| !t.is_empty()) {
                let _ = stream.response_encoder.encode(&tail, &mut self.out);
                stream.bytes_sent += tail.len() as u64;
            }
        }
        let before = self.out.len();
        let _ = stream.response_encoder.finish(&mut self.out);
        stream.bytes_sent += (self.out.len() - before) as u64;
    }

    fn encode_100_continue(&mut self) {
        self.out.extend_from_slice(CONTINUE_RESPONSE);
    }

    fn reset<S: Stack>(&mut self, stack: &mut S) {
        if !self.released {
            self.dead = true;
            self.released = true;
            stack.abort(self.socket);
        }
    }

    fn buffered(&self) -> usize {
        self.out_len()
    }
}
