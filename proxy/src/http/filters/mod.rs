//! HTTP filters: the decoder/encoder filters that run before the router on the filter
//! contract of [`crate::http::filter`], and the router, the terminal filter that sends
//! the request upstream.
//!
//! [`HttpFilterConfig`] is one entry of the connection manager's `http_filters`,
//! compiled once per config and shared by the workers; [`ActiveFilter`] is its
//! instance on one stream (enum-dispatched: no `dyn` on the request path).

pub mod buffer;
pub mod compression_lib;
pub mod compressor;
pub mod cors;
pub mod csrf;
pub mod decompressor;
pub mod ext_authz;
pub mod fault;
pub mod grpc_http1_bridge;
pub mod grpc_web;
pub mod header_to_metadata;
pub mod health_check;
pub mod jwt_authn;
pub mod local_ratelimit;
pub mod lua;
pub mod per_route;
pub mod ratelimit;
pub mod rbac;
pub mod router;

use std::sync::Arc;

use crate::http::filter::{DataStatus, FilterCallbacks, HeadersStatus, StreamContext, StreamFilter, TrailersStatus};
use crate::http::{HeaderMap, RequestHead, ResponseHead};

use self::buffer::{BufferFilter, BufferSettings};
use self::compressor::{CompressorConfig, CompressorFilter};
use self::cors::{CorsConfig, CorsFilter};
use self::csrf::{CsrfConfig, CsrfFilter};
use self::decompressor::{DecompressorConfig, DecompressorFilter};
use self::ext_authz::{ExtAuthzConfig, ExtAuthzFilter};
use self::fault::{FaultConfig, FaultFilter};
use self::grpc_http1_bridge::{GrpcHttp1BridgeConfig, GrpcHttp1BridgeFilter};
use self::grpc_web::{GrpcWebConfig, GrpcWebFilter};
use self::header_to_metadata::{HeaderToMetadataConfig, HeaderToMetadataFilter};
use self::health_check::HealthCheckFilter;
use self::jwt_authn::{JwtAuthnConfig, JwtAuthnFilter};
use self::local_ratelimit::{LocalRateLimitConfig, LocalRateLimitFilter};
use self::lua::{LuaConfig, LuaFilter};
use self::per_route::RouteView;
use self::ratelimit::{RateLimitConfig, RateLimitFilter};
use self::rbac::{RbacConfig, RbacFilter};
use crate::stats::SharedCounter;

/// A compiled filter of the chain (the router, always last, is not in this list).
#[derive(Debug)]
pub enum FilterFactory {
    Buffer(BufferSettings),
    Compressor(Arc<CompressorConfig>),
    Decompressor(Arc<DecompressorConfig>),
    Fault(Arc<FaultConfig>),
    Cors(Arc<CorsConfig>),
    Csrf(Arc<CsrfConfig>),
    ExtAuthz(Arc<ExtAuthzConfig>),
    HeaderToMetadata(Arc<HeaderToMetadataConfig>),
    HealthCheck(Arc<sluice_config::filters::health_check::HealthCheck>),
    LocalRateLimit(Arc<LocalRateLimitConfig>),
    Rbac(Arc<RbacConfig>),
    JwtAuthn(Arc<JwtAuthnConfig>),
    GrpcWeb(Arc<GrpcWebConfig>),
    GrpcHttp1Bridge(Arc<GrpcHttp1BridgeConfig>),
    Lua(Arc<LuaConfig>),
    RateLimit(Arc<RateLimitConfig>),
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
    /// The filter's instance for one stream whose route is `route`; `k` is this
    /// filter's index in the chain. `None`: the route turns it off (or, for a filter
    /// the connection manager lists as disabled, does not turn it on).
    pub fn create(&self, k: usize, route: &RouteView<'_>) -> Option<ActiveFilter> {
        if route.disabled(k).unwrap_or(self.disabled) {
            return None;
        }
        Some(match &self.factory {
            FilterFactory::Buffer(c) => ActiveFilter::Buffer(BufferFilter::new(*c, route, k)),
            FilterFactory::Compressor(c) => ActiveFilter::Compressor(CompressorFilter::new(Arc::clone(c), route, k)),
            FilterFactory::Decompressor(c) => ActiveFilter::Decompressor(DecompressorFilter::new(Arc::clone(c))),
            FilterFactory::Fault(c) => ActiveFilter::Fault(FaultFilter::new(Arc::clone(c))),
            FilterFactory::Cors(c) => ActiveFilter::Cors(CorsFilter::new(Arc::clone(c), route, k)),
            FilterFactory::Csrf(c) => ActiveFilter::Csrf(CsrfFilter::new(Arc::clone(c), route, k)),
            FilterFactory::ExtAuthz(c) => ActiveFilter::ExtAuthz(ExtAuthzFilter::new(Arc::clone(c), route, k)),
            FilterFactory::HeaderToMetadata(c) => {
                ActiveFilter::HeaderToMetadata(HeaderToMetadataFilter::new(Arc::clone(c), route, k))
            }
            FilterFactory::HealthCheck(c) => ActiveFilter::HealthCheck(HealthCheckFilter::new(Arc::clone(c))),
            FilterFactory::LocalRateLimit(c) => ActiveFilter::LocalRateLimit(LocalRateLimitFilter::new(c, route, k)),
            FilterFactory::Rbac(c) => ActiveFilter::Rbac(RbacFilter::new(Arc::clone(c), route, k)),
            FilterFactory::JwtAuthn(c) => ActiveFilter::JwtAuthn(JwtAuthnFilter::new(Arc::clone(c), route, k)),
            FilterFactory::GrpcWeb(c) => ActiveFilter::GrpcWeb(GrpcWebFilter::new(Arc::clone(c))),
            FilterFactory::GrpcHttp1Bridge(c) => {
                ActiveFilter::GrpcHttp1Bridge(GrpcHttp1BridgeFilter::new(Arc::clone(c)))
            }
            FilterFactory::Lua(c) => ActiveFilter::Lua(LuaFilter::new(Arc::clone(c), route, k)),
            FilterFactory::RateLimit(c) => ActiveFilter::RateLimit(RateLimitFilter::new(Arc::clone(c), route, k)),
        })
    }
}

/// The counters a config's filters own, by full name (one counter per name).
#[derive(Debug, Default)]
pub struct CounterSet(pub Vec<(String, Arc<SharedCounter>)>);

impl CounterSet {
    /// The counter named `name`, created on first use.
    pub fn counter(&mut self, name: String) -> Arc<SharedCounter> {
        if let Some((_, c)) = self.0.iter().find(|(n, _)| *n == name) {
            return Arc::clone(c);
        }
        let c = Arc::new(SharedCounter::default());
        self.0.push((name, Arc::clone(&c)));
        c
    }
}

/// A filter instance on one stream.
#[derive(Debug)]
pub enum ActiveFilter {
    Buffer(BufferFilter),
    Compressor(CompressorFilter),
    Decompressor(DecompressorFilter),
    Fault(FaultFilter),
    Cors(CorsFilter),
    Csrf(CsrfFilter),
    ExtAuthz(ExtAuthzFilter),
    HeaderToMetadata(HeaderToMetadataFilter),
    HealthCheck(HealthCheckFilter),
    LocalRateLimit(LocalRateLimitFilter),
    Rbac(RbacFilter),
    JwtAuthn(JwtAuthnFilter),
    GrpcWeb(GrpcWebFilter),
    GrpcHttp1Bridge(GrpcHttp1BridgeFilter),
    Lua(LuaFilter),
    RateLimit(RateLimitFilter),
}

impl ActiveFilter {
    /// The filter has no body or trailers hooks (Envoy's default pass-through), so a
    /// stream whose filters are all such skips the body path. Filters not listed here
    /// see the body.
    /// The filter takes a request body that ends in trailers as Envoy's do: the last
    /// chunk is not the end, the trailers are (`decode_trailers`). A stream whose
    /// filters all do runs its request trailers through them; with a filter that
    /// finishes its work on the last chunk (compressor, decompressor, gRPC bridges) the
    /// last chunk keeps the end and the trailers go to the router as they came.
    pub fn takes_request_trailers(&self) -> bool {
        self.headers_only()
            || matches!(self, ActiveFilter::Lua(_) | ActiveFilter::ExtAuthz(_) | ActiveFilter::Buffer(_))
    }

    pub fn headers_only(&self) -> bool {
        if let ActiveFilter::ExtAuthz(f) = self {
            return !f.reads_body();
        }
        matches!(
            self,
            ActiveFilter::Fault(_)
                | ActiveFilter::Cors(_)
                | ActiveFilter::Csrf(_)
                | ActiveFilter::HeaderToMetadata(_)
                | ActiveFilter::HealthCheck(_)
                | ActiveFilter::LocalRateLimit(_)
                | ActiveFilter::Rbac(_)
                | ActiveFilter::JwtAuthn(_)
                | ActiveFilter::RateLimit(_)
        )
    }
}

macro_rules! dispatch {
    ($self:ident, $f:ident => $e:expr) => {
        match $self {
            ActiveFilter::Buffer($f) => $e,
            ActiveFilter::Compressor($f) => $e,
            ActiveFilter::Decompressor($f) => $e,
            ActiveFilter::Fault($f) => $e,
            ActiveFilter::Cors($f) => $e,
            ActiveFilter::Csrf($f) => $e,
            ActiveFilter::ExtAuthz($f) => $e,
            ActiveFilter::HeaderToMetadata($f) => $e,
            ActiveFilter::HealthCheck($f) => $e,
            ActiveFilter::LocalRateLimit($f) => $e,
            ActiveFilter::Rbac($f) => $e,
            ActiveFilter::JwtAuthn($f) => $e,
            ActiveFilter::GrpcWeb($f) => $e,
            ActiveFilter::GrpcHttp1Bridge($f) => $e,
            ActiveFilter::Lua($f) => $e,
            ActiveFilter::RateLimit($f) => $e,
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

    fn on_async_complete(
        &mut self,
        tag: u32,
        outcome: crate::http::async_client::Outcome,
        head: &mut RequestHead,
        cx: &StreamContext<'_>,
        cb: &mut FilterCallbacks,
    ) -> HeadersStatus {
        dispatch!(self, f => f.on_async_complete(tag, outcome, head, cx, cb))
    }

    fn on_encode_async_complete(
        &mut self,
        tag: u32,
        outcome: crate::http::async_client::Outcome,
        cb: &mut FilterCallbacks,
    ) -> Option<crate::http::filter::EncodeResume> {
        dispatch!(self, f => f.on_encode_async_complete(tag, outcome, cb))
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
