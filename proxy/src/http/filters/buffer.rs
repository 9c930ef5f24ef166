//! The buffer filter (`envoy.extensions.filters.http.buffer.v3.Buffer`), as Envoy's
//! `buffer_filter.cc`: a request with a body is held until the whole body is here, so
//! the upstream sees it complete (with a `Content-Length` added when it had none). The
//! stream's request buffer limit becomes `max_request_bytes`; past it the request is
//! answered 413 `Payload Too Large` by the filter manager. A route's `BufferPerRoute`
//! disables the filter or sets its own limit.

use sluice_config::filters::buffer::{Buffer, BufferPerRoute};

use crate::http::filter::{DataStatus, FilterCallbacks, HeadersStatus, StreamContext, StreamFilter};
use crate::http::filters::per_route::{PerRouteFilter, RouteView};
use crate::http::RequestHead;

/// The filter's config.
#[derive(Debug, Clone, Copy)]
pub struct BufferSettings {
    max_request_bytes: usize,
}

impl BufferSettings {
    pub fn new(b: &Buffer) -> BufferSettings {
        BufferSettings { max_request_bytes: b.max_request_bytes as usize }
    }
}

/// The buffer filter on one stream (`max: None`: disabled for this route).
#[derive(Debug)]
pub struct BufferFilter {
    max: Option<usize>,
    buffering: bool,
}

impl BufferFilter {
    pub fn new(settings: BufferSettings, route: &RouteView<'_>, k: usize) -> BufferFilter {
        let max = match route.most_specific(k) {
            Some(PerRouteFilter::Buffer(BufferPerRoute::Disabled)) => None,
            Some(PerRouteFilter::Buffer(BufferPerRoute::Buffer(b))) => Some(b.max_request_bytes as usize),
            _ => Some(settings.max_request_bytes),
        };
        BufferFilter { max, buffering: false }
    }
}

impl StreamFilter for BufferFilter {
    fn decode_headers(
        &mut self,
        _head: &mut RequestHead,
        end_stream: bool,
        _cx: &StreamContext<'_>,
        cb: &mut FilterCallbacks,
    ) -> HeadersStatus {
        let Some(max) = self.max.filter(|_| !end_stream) else {
            return HeadersStatus::Continue;
        };
        cb.set_decoder_buffer_limit(max);
        self.buffering = true;
        HeadersStatus::StopIteration
    }

    fn decode_data(&mut self, _data: &mut Vec<u8>, end_stream: bool, _cb: &mut FilterCallbacks) -> DataStatus {
        if end_stream || !self.buffering {
            self.buffering = false;
            return DataStatus::Continue;
        }
        DataStatus::StopIterationAndBuffer
    }
}
