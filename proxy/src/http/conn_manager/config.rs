//! The HTTP connection manager's config, compiled once per filter chain.

use std::sync::Arc;
use std::time::Duration;

use sluice_config::hcm::{CodecType, HttpConnectionManager, HttpFilterKind, ServerHeaderTransformation, StripPortMode};

use crate::access_log::AccessLogger;
use crate::http::codec::Http1Settings;
use crate::http::conn_manager::headers::HeaderPolicy;
use crate::http::conn_manager::normalize::PathNormalization;
use crate::http::conn_manager::upgrade::UpgradePolicy;
use crate::http::filters::buffer::BufferSettings;
use crate::http::filters::compressor::CompressorConfig;
use crate::http::filters::cors::CorsConfig;
use crate::http::filters::csrf::CsrfConfig;
use crate::http::filters::decompressor::DecompressorConfig;
use crate::http::filters::ext_authz::ExtAuthzConfig;
use crate::http::filters::fault::FaultConfig;
use crate::http::filters::grpc_http1_bridge::GrpcHttp1BridgeConfig;
use crate::http::filters::grpc_web::GrpcWebConfig;
use crate::http::filters::header_to_metadata::HeaderToMetadataConfig;
use crate::http::filters::local_ratelimit::LocalRateLimitConfig;
use crate::http::filters::per_route::RouteFilterTable;
use crate::http::filters::rbac::RbacConfig;
use crate::http::filters::{CounterSet, FilterFactory, HttpFilterConfig};
use crate::router::RouteTable;
use crate::stats::SharedCounter;
use crate::trace::Tracer;
use crate::upstream::cluster_manager::ClusterManager;

/// `http2_protocol_options` (and `max_request_headers_kb`) as the HTTP/2 codec uses
/// them; the defaults are Envoy's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Http2Settings {
    /// SETTINGS_MAX_CONCURRENT_STREAMS (default 2147483647).
    pub max_concurrent_streams: u32,
    /// SETTINGS_INITIAL_WINDOW_SIZE (default 268435456, 256 MiB).
    pub initial_stream_window_size: u32,
    /// The connection window (default 268435456).
    pub initial_connection_window_size: u32,
    /// SETTINGS_HEADER_TABLE_SIZE (default 4096).
    pub hpack_table_size: u32,
    /// SETTINGS_MAX_HEADER_LIST_SIZE: `max_request_headers_kb`.
    pub max_header_list_bytes: u32,
    /// `max_outbound_frames` (default 10000).
    pub max_outbound_frames: u32,
    /// `max_outbound_control_frames` (default 1000).
    pub max_outbound_control_frames: u32,
    /// The inbound flood limits.
    pub inbound: crate::http::conn_manager::http2::flood::InboundLimits,
}

impl Default for Http2Settings {
    fn default() -> Self {
        Http2Settings {
            max_concurrent_streams: 2_147_483_647,
            initial_stream_window_size: 268_435_456,
            initial_connection_window_size: 268_435_456,
            hpack_table_size: 4096,
            max_header_list_bytes: 60 * 1024,
            max_outbound_frames: 10_000,
            max_outbound_control_frames: 1_000,
            inbound: Default::default(),
        }
    }
}

impl Http2Settings {
    /// The `h2` server builder for these settings.
    pub fn builder(&self) -> h2::server::Builder {
        let mut b = h2::server::Builder::new();
        b.max_concurrent_streams(self.max_concurrent_streams)
            .initial_window_size(self.initial_stream_window_size)
            .initial_connection_window_size(self.initial_connection_window_size)
            .header_table_size(self.hpack_table_size)
            .max_header_list_size(self.max_header_list_bytes);
        b
    }
}

#[derive(Debug)]
pub struct HcmConfig {
    pub stat_prefix: String,
    pub codec_type: CodecType,
    pub settings: Arc<Http1Settings>,
    pub routes: RouteTable,
    pub filters: Vec<HttpFilterConfig>,
    /// The routes' `typed_per_filter_config`, by filter.
    pub route_filters: RouteFilterTable,
    /// The filters' counters by full name (registered in the stats store).
    pub filter_counters: Vec<(String, Arc<SharedCounter>)>,
    /// A filter reads the client certificate's names (RBAC `authenticated`).
    pub needs_principals: bool,
    pub suppress_envoy_headers: bool,
    pub respect_expected_rq_timeout: bool,
    pub strict_check_headers: Vec<String>,
    /// `upgrade_configs`: the upgrades allowed (routes may override).
    pub upgrades: UpgradePolicy,
    /// Connection idle timeout (no active stream).
    pub idle_timeout: Option<Duration>,
    pub max_connection_duration: Option<Duration>,
    pub max_requests_per_connection: Option<u32>,
    pub max_stream_duration: Option<Duration>,
    pub stream_idle_timeout: Option<Duration>,
    pub request_timeout: Option<Duration>,
    pub request_headers_timeout: Option<Duration>,
    pub drain_timeout: Duration,
    pub delayed_close_timeout: Option<Duration>,
    pub server_name: String,
    pub server_header_transformation: ServerHeaderTransformation,
    /// XFF, internal/external, `x-envoy-*` sanitising, `via`, request id, XFCC.
    pub headers: HeaderPolicy,
    /// `scheme_header_transformation.match_upstream`: `:scheme` follows the upstream
    /// connection's transport.
    pub match_upstream_scheme: bool,
    pub strip_port_mode: StripPortMode,
    /// `normalize_path`, `merge_slashes`, `path_with_escaped_slashes_action`,
    /// `strip_trailing_host_dot` and the `strip_port_mode`.
    pub path_normalization: PathNormalization,
    pub stream_error_on_invalid_http_message: bool,
    /// The listener's `per_connection_buffer_limit_bytes`: bounds buffered body bytes
    /// in each direction, and the request bytes kept for retries and mirrors.
    pub buffer_limit: usize,
    /// `http2_protocol_options`.
    pub http2: Http2Settings,
    /// The cluster manager the routes' clusters are looked up in.
    pub clusters: Arc<ClusterManager>,
    /// Loggers of finished requests.
    pub access_log: Vec<AccessLogger>,
    /// `tracing` (None: no sampling, no spans).
    pub tracer: Option<Tracer>,
    pub always_set_request_id_in_response: bool,
}

impl HcmConfig {
    /// Compile; errors name the config path.
    pub fn new(
        c: &HttpConnectionManager,
        clusters: Arc<ClusterManager>,
        buffer_limit: usize,
        path: &str,
    ) -> Result<HcmConfig, String> {
        if c.codec_type == CodecType::Http3 {
            return Err(format!("{path}.codec_type: HTTP3 is not supported"));
        }
        let router =
            c.router().ok_or_else(|| format!("{path}.http_filters: the last HTTP filter must be the router"))?;
        let mut filters = Vec::new();
        let mut counters = CounterSet::default();
        // Envoy's HTTP filter stats live under the connection manager's prefix.
        let prefix = format!("http.{}.", c.stat_prefix);
        // Envoy's per-stream compressor registry: every compressor of the chain, in order.
        let mut compressors: Vec<CompressorConfig> = Vec::new();
        for f in &c.http_filters {
            if let HttpFilterKind::Compressor(cc) = &f.kind {
                compressors.push(CompressorConfig::new(cc, &prefix, &mut counters));
            }
        }
        let registry: Vec<_> = compressors.iter().map(CompressorConfig::registered).collect();
        let mut compressors = compressors.into_iter();
        for (i, f) in c.http_filters.iter().enumerate() {
            let factory = match &f.kind {
                HttpFilterKind::Buffer(b) => FilterFactory::Buffer(BufferSettings::new(b)),
                HttpFilterKind::Compressor(_) => {
                    let Some(mut cc) = compressors.next() else { continue };
                    cc.chain = registry.clone();
                    FilterFactory::Compressor(Arc::new(cc))
                }
                HttpFilterKind::Decompressor(d) => {
                    FilterFactory::Decompressor(Arc::new(DecompressorConfig::new(d, &prefix, &mut counters)))
                }
                HttpFilterKind::Router(_) => {
                    if i + 1 != c.http_filters.len() {
                        return Err(format!("{path}.http_filters[{i}]: the router must be the last HTTP filter"));
                    }
                    continue;
                }
                HttpFilterKind::Fault(fault) => {
                    let fc = FaultConfig::new(fault, &clusters, &prefix, &mut counters)
                        .map_err(|e| format!("{path}.http_filters[{i}]: {e}"))?;
                    FilterFactory::Fault(Arc::new(fc))
                }
                HttpFilterKind::Cors => FilterFactory::Cors(Arc::new(CorsConfig::new(&prefix, &mut counters))),
                HttpFilterKind::Csrf(p) => FilterFactory::Csrf(Arc::new(CsrfConfig::new(p, &prefix, &mut counters))),
                HttpFilterKind::ExtAuthz(e) => FilterFactory::ExtAuthz(Arc::new(
                    ExtAuthzConfig::new(e, &clusters, &prefix, &mut counters)
                        .map_err(|e| format!("{path}.http_filters[{i}].typed_config.{e}"))?,
                )),
                HttpFilterKind::HeaderToMetadata(h) => {
                    FilterFactory::HeaderToMetadata(Arc::new(HeaderToMetadataConfig::new(h, &mut counters)))
                }
                HttpFilterKind::HealthCheck(h) => FilterFactory::HealthCheck(Arc::new(h.clone())),
                HttpFilterKind::LocalRateLimit(l) => FilterFactory::LocalRateLimit(Arc::new(
                    LocalRateLimitConfig::new(l, &mut counters)
                        .map_err(|e| format!("{path}.http_filters[{i}].typed_config: {e}"))?,
                )),
                HttpFilterKind::Rbac(r) => FilterFactory::Rbac(Arc::new(RbacConfig::new(r, &prefix, &mut counters))),
                HttpFilterKind::JwtAuthn(j) => FilterFactory::JwtAuthn(Arc::new(
                    crate::http::filters::jwt_authn::JwtAuthnConfig::new(j, &clusters, &prefix, &mut counters)
                        .map_err(|e| format!("{path}.http_filters[{i}].typed_config.{e}"))?,
                )),
                HttpFilterKind::RateLimit(r) => FilterFactory::RateLimit(Arc::new(
                    crate::http::filters::ratelimit::RateLimitConfig::new(r, &clusters, &mut counters)
                        .map_err(|e| format!("{path}.http_filters[{i}].typed_config.{e}"))?,
                )),
                HttpFilterKind::GrpcWeb => FilterFactory::GrpcWeb(Arc::new(GrpcWebConfig)),
                HttpFilterKind::Lua(l) => FilterFactory::Lua(Arc::new(
                    // Errors name the source's full config path.
                    crate::http::filters::lua::LuaConfig::new(
                        l,
                        &f.name,
                        &clusters,
                        buffer_limit,
                        &prefix,
                        &mut counters,
                    )?,
                )),
                HttpFilterKind::GrpcHttp1Bridge(b) => {
                    FilterFactory::GrpcHttp1Bridge(Arc::new(GrpcHttp1BridgeConfig { options: *b, buffer_limit }))
                }
            };
            filters.push(HttpFilterConfig { name: f.name.clone(), disabled: f.disabled, factory });
        }
        let common = &c.common_http_protocol_options;
        let opts = &c.http_protocol_options;
        let settings = Http1Settings {
            accept_http_10: opts.accept_http_10,
            default_host_for_http_10: opts.default_host_for_http_10.clone(),
            allow_chunked_length: opts.allow_chunked_length,
            allow_absolute_url: opts.allow_absolute_url.unwrap_or(true),
            allow_custom_methods: false,
            validate_scheme: c.use_remote_address && c.xff_num_trusted_hops == 0,
            max_request_headers_kb: c.max_request_headers_kb,
            max_headers_count: common.max_headers_count,
            headers_with_underscores_action: common.headers_with_underscores_action,
        };
        let route_filters =
            RouteFilterTable::new(&c.route_config, &filters, &mut counters, &format!("{path}.route_config"))?;
        let needs_principals = filters.iter().any(|f| matches!(f.factory, FilterFactory::Rbac(_)));
        let mut access_log = Vec::with_capacity(c.access_log.len());
        for (i, l) in c.access_log.iter().enumerate() {
            access_log.push(AccessLogger::new(l).map_err(|e| format!("{path}.access_log[{i}]: {e}"))?);
        }
        let tracer = match &c.tracing {
            Some(t) => Some(Tracer::new(t, c.request_id, &clusters).map_err(|e| format!("{path}.tracing: {e}"))?),
            None => None,
        };
        let mut filter_counters = counters.0;
        filter_counters.extend(tracer.iter().flat_map(|t| t.counters()));
        Ok(HcmConfig {
            access_log,
            tracer,
            always_set_request_id_in_response: c.always_set_request_id_in_response,
            stat_prefix: c.stat_prefix.clone(),
            codec_type: c.codec_type,
            settings: Arc::new(settings),
            routes: RouteTable::new(&c.route_config),
            filters,
            route_filters,
            filter_counters,
            needs_principals,
            suppress_envoy_headers: router.suppress_envoy_headers,
            respect_expected_rq_timeout: router.respect_expected_rq_timeout,
            strict_check_headers: router.strict_check_headers.clone(),
            upgrades: UpgradePolicy::new(&c.upgrade_configs),
            idle_timeout: common.idle_timeout,
            max_connection_duration: common.max_connection_duration,
            max_requests_per_connection: common.max_requests_per_connection,
            max_stream_duration: common.max_stream_duration,
            stream_idle_timeout: c.stream_idle_timeout,
            request_timeout: c.request_timeout,
            request_headers_timeout: c.request_headers_timeout,
            drain_timeout: c.drain_timeout,
            delayed_close_timeout: c.delayed_close_timeout,
            server_name: c.server_name.clone(),
            server_header_transformation: c.server_header_transformation,
            headers: HeaderPolicy::new(c),
            match_upstream_scheme: c
                .forwarding
                .scheme_header_transformation
                .as_ref()
                .is_some_and(|s| s.scheme_to_overwrite.is_none() && s.match_upstream),
            strip_port_mode: c.strip_port_mode,
            path_normalization: PathNormalization::new(c),
            stream_error_on_invalid_http_message: c.stream_error_on_invalid_http_message,
            buffer_limit,
            http2: Http2Settings {
                max_concurrent_streams: c.http2_protocol_options.max_concurrent_streams,
                initial_stream_window_size: c.http2_protocol_options.initial_stream_window_size,
                initial_connection_window_size: c.http2_protocol_options.initial_connection_window_size,
                hpack_table_size: c.http2_protocol_options.hpack_table_size,
                max_header_list_bytes: c.max_request_headers_kb.saturating_mul(1024),
                max_outbound_frames: c.http2_protocol_options.max_outbound_frames,
                max_outbound_control_frames: c.http2_protocol_options.max_outbound_control_frames,
                inbound: crate::http::conn_manager::http2::flood::InboundLimits {
                    max_consecutive_empty: c.http2_protocol_options.max_consecutive_inbound_frames_with_empty_payload,
                    max_priority_per_stream: c.http2_protocol_options.max_inbound_priority_frames_per_stream,
                    max_window_updates_per_data_frame: c
                        .http2_protocol_options
                        .max_inbound_window_update_frames_per_data_frame_sent,
                },
            },
            clusters,
        })
    }
}
