//! The gRPC HTTP/1.1 bridge (`envoy.filters.http.grpc_http1_bridge`,
//! `extensions.filters.http.grpc_http1_bridge.v3.Config`), as Envoy's
//! http1_bridge_filter.cc: an HTTP/1.1 client that cannot read trailers calls a gRPC
//! server.
//!
//! A request over HTTP/1.x whose `content-type` is gRPC is bridged: its response is
//! held whole until the trailers, then answered with the trailers' `grpc-status` and
//! `grpc-message` as headers, the HTTP status 503 when `grpc-status` is not `0` (or not
//! a number), and a `content-length` of the body; a response that ends without
//! trailers passes as it is. `ignore_query_parameters` drops a bridged request's query
//! string. With `upgrade_protobuf_to_grpc`, an `application/x-protobuf` request is sent
//! as `application/grpc` with its body framed as one gRPC message (the body is
//! buffered for its length, bounded by the connection's buffer limit: 413 beyond it)
//! and the frame header is stripped off the response body. Unary calls only: the
//! response is buffered (500 beyond the limit). Envoy no longer charges gRPC stats
//! here (its gRPC stats filter does), and neither does this.

use std::sync::Arc;

use sluice_config::filters::grpc::GrpcHttp1Bridge;

use crate::http::filter::{
    DataStatus, FilterCallbacks, HeadEdit, HeadersStatus, StreamContext, StreamFilter, TrailersStatus,
};
use crate::http::filters::grpc_web::has_grpc_content_type;
use crate::http::{HeaderMap, RequestHead, ResponseHead, Version};

/// A gRPC frame's header: the compressed flag and the message length.
const GRPC_FRAME_HEADER: usize = 5;

/// The filter's options and the request buffer bound.
#[derive(Debug)]
pub struct GrpcHttp1BridgeConfig {
    pub options: GrpcHttp1Bridge,
    /// `per_connection_buffer_limit_bytes`: the most of a protobuf request held for
    /// framing.
    pub buffer_limit: usize,
}

/// The bridge on one stream.
#[derive(Debug)]
pub struct GrpcHttp1BridgeFilter {
    config: Arc<GrpcHttp1BridgeConfig>,
    bridging: bool,
    /// Frame the request as gRPC (and strip the response's frame header).
    framing: bool,
    /// The request body held for its frame header.
    body: Vec<u8>,
    /// Response body bytes buffered (the `content-length` to send).
    buffered: usize,
}

impl GrpcHttp1BridgeFilter {
    pub fn new(config: Arc<GrpcHttp1BridgeConfig>) -> GrpcHttp1BridgeFilter {
        GrpcHttp1BridgeFilter { config, bridging: false, framing: false, body: Vec::new(), buffered: 0 }
    }
}

impl StreamFilter for GrpcHttp1BridgeFilter {
    fn decode_headers(
        &mut self,
        head: &mut RequestHead,
        _end: bool,
        _cx: &StreamContext<'_>,
        _cb: &mut FilterCallbacks,
    ) -> HeadersStatus {
        let protobuf = head.headers.get(b"content-type") == Some(b"application/x-protobuf");
        if self.config.options.upgrade_protobuf_to_grpc && protobuf {
            self.framing = true;
            head.headers.set(b"content-type", b"application/grpc");
            head.headers.remove(b"content-length");
        }
        let http1 = !matches!(head.version, Some(Version::Http2));
        if http1 && has_grpc_content_type(&head.headers) {
            self.bridging = true;
        }
        if self.bridging && self.config.options.ignore_query_parameters {
            if let Some(i) = head.path.find('?') {
                head.path.truncate(i);
            }
        }
        HeadersStatus::Continue
    }

    fn decode_data(&mut self, data: &mut Vec<u8>, end: bool, cb: &mut FilterCallbacks) -> DataStatus {
        if !self.bridging || !self.framing {
            return DataStatus::Continue;
        }
        if self.body.len() + data.len() > self.config.buffer_limit {
            cb.send_local_reply(413, b"Payload Too Large", Vec::new(), "request_payload_too_large");
            return DataStatus::StopIterationNoBuffer;
        }
        self.body.append(data);
        if !end {
            return DataStatus::StopIterationNoBuffer;
        }
        let body = std::mem::take(&mut self.body);
        data.reserve(5 + body.len());
        data.push(0);
        data.extend_from_slice(&(body.len() as u32).to_be_bytes());
        data.extend_from_slice(&body);
        DataStatus::Continue
    }

    fn encode_headers(&mut self, _head: &mut ResponseHead, end: bool, _cb: &mut FilterCallbacks) -> HeadersStatus {
        if !self.bridging || end {
            return HeadersStatus::Continue;
        }
        HeadersStatus::StopIteration
    }

    fn encode_data(&mut self, data: &mut Vec<u8>, end: bool, _cb: &mut FilterCallbacks) -> DataStatus {
        if !self.bridging || end {
            return DataStatus::Continue;
        }
        if self.framing {
            // Envoy drains the frame header off the first chunk.
            let n = GRPC_FRAME_HEADER.min(data.len());
            data.drain(..n);
            self.framing = false;
        }
        self.buffered += data.len();
        DataStatus::StopIterationAndBuffer
    }

    fn encode_trailers(&mut self, trailers: &mut HeaderMap, cb: &mut FilterCallbacks) -> TrailersStatus {
        if !self.bridging {
            return TrailersStatus::Continue;
        }
        if let Some(status) = trailers.get(b"grpc-status") {
            let ok = std::str::from_utf8(status).ok().and_then(|s| s.parse::<u64>().ok()) == Some(0);
            if !ok {
                cb.edit_held_response(HeadEdit::Status(503));
            }
            cb.edit_held_response(HeadEdit::Set(b"grpc-status", status.to_vec()));
        }
        if let Some(message) = trailers.get(b"grpc-message") {
            cb.edit_held_response(HeadEdit::Set(b"grpc-message", message.to_vec()));
        }
        cb.edit_held_response(HeadEdit::Set(b"content-length", self.buffered.to_string().into_bytes()));
        // The trailers still go on; an HTTP/1.1 codec drops them.
        TrailersStatus::Continue
    }
}
