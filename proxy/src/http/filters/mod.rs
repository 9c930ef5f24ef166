//! HTTP filters: the decoder/encoder filters that run before the router on the filter
//! contract of [`crate::http::filter`], and the router, the terminal filter that sends
//! the request upstream.
//!
//! [`HttpFilterConfig`] is one entry of the connection manager's `http_filters`,
//! compiled once per config and shared by the workers; [`ActiveFilter`] is its
//! instance on one stream (enum-dispatched: no `dyn` on the request path).

pub mod fault;
pub mod router;

use std::sync::Arc;

use crate::http::filter::{DataStatus, FilterCallbacks, HeadersStatus, StreamContext, StreamFilter, TrailersStatus};
use crate::http::{HeaderMap, RequestHead, ResponseHead};

use self::fault::{FaultConfig, FaultFilter};

/// A compiled filter of the chain (the router, always last, is not in this list).
#[derive(Debug)]
pub enum FilterFactory {
    Fault(Arc<FaultConfig>),
}

/// One `http_filters` entry: its name (the key of `typed_per_filter_config`), whether
/// it is off unless a route enables it, and its compiled config.
#[derive(Debug)]
pub struct HttpFilterConfig {
    pub name: String,
    pub disabled: bool,
    pub factory: FilterFactory,
}

impl HttpFilterConfig {
    /// The filter's instance for one stream.
    pub fn create(&self) -> ActiveFilter {
        match &self.factory {
            FilterFactory::Fault(c) => ActiveFilter::Fault(FaultFilter::new(Arc::clone(c))),
        }
    }
}

/// A filter instance on one stream.
#[derive(Debug)]
pub enum ActiveFilter {
    Fault(FaultFilter),
}

macro_rules! dispatch {
    ($self:ident, $f:ident => $e:expr) => {
        match $self {
            ActiveFilter::Fault($f) => $e,
        }
    };
}

impl StreamFilter for ActiveFilter {
    fn decode_headers(
        &mut self,
        head: &mut RequestHead,
        end: bool,
        cx: &StreamContext<'_>,
        cb: &mut FilterCallbacks,
    ) -> HeadersStatus {
        dispatch!(self, f => f.decode_headers(head, end, cx, cb))
    }

    fn decode_data(&mut self, data: &mut Vec<u8>, end: bool, cb: &mut FilterCallbacks) -> DataStatus {
        dispatch!(self, f => f.decode_data(data, end, cb))
    }

    fn decode_trailers(&mut self, trailers: &mut HeaderMap, cb: &mut FilterCallbacks) -> TrailersStatus {
        dispatch!(self, f => f.decode_trailers(trailers, cb))
    }

    fn encode_headers(&mut self, head: &mut ResponseHead, end: bool, cb: &mut FilterCallbacks) -> HeadersStatus {
        dispatch!(self, f => f.encode_headers(head, end, cb))
    }

    fn encode_data(&mut self, data: &mut Vec<u8>, end: bool, cb: &mut FilterCallbacks) -> DataStatus {
        dispatch!(self, f => f.encode_data(data, end, cb))
    }

    fn encode_trailers(&mut self, trailers: &mut HeaderMap, cb: &mut FilterCallbacks) -> TrailersStatus {
        dispatch!(self, f => f.encode_trailers(trailers, cb))
    }

    fn on_timer(&mut self, cx: &StreamContext<'_>, cb: &mut FilterCallbacks) -> HeadersStatus {
        dispatch!(self, f => f.on_timer(cx, cb))
    }

    fn on_destroy(&mut self) {
        dispatch!(self, f => f.on_destroy())
    }
}

/// splitmix64: more random numbers from one (a filter may need several per hook).
pub fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
