//! `envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager`
//! and its HTTP filters (`HTTPFault`, `Router`), selected by `typed_config."@type"`.
//!
//! The route configuration is inline (`route_config`) or comes from a file (`rds`, see
//! [`rds`]). As in
//! Envoy (http_connection_manager config.cc), the router is a terminal filter: it must
//! be the last of `http_filters`, and the last filter must be a terminal one.

use std::time::Duration;

use crate::access_log::AccessLog;
use crate::cluster::CommonHttpProtocolOptions;
use crate::decode::{Decode, Decoder, Fields};
use crate::error::ErrorKind;
use crate::node::Node;
use crate::proto_enum;
use crate::route::RouteConfiguration;
use crate::trace::{decode_request_id_extension, HcmTracing, UuidRequestIdConfig};

mod async_client;
mod forwarding;
mod http2;
mod http_filter;
mod not_yet;
mod rds;
mod upgrade;

pub use async_client::{async_client_hcm, async_client_hcm_with};
pub use rds::Rds;

pub use forwarding::{
    CustomHeaderConfig, ForwardClientCertDetails, Forwarding, InternalAddressConfig, OriginalIpDetection,
    OriginalIpDetectionExtension, SchemeHeaderTransformation, SetCurrentClientCertDetails, XffConfig,
};
pub use http2::Http2ProtocolOptions;
use http_filter::check_filter_order;
pub use http_filter::{HttpFilter, HttpFilterKind, RouterFilter, STRICT_CHECK_HEADERS};
pub use upgrade::UpgradeConfig;

proto_enum! {
    /// `HttpConnectionManager.CodecType`.
    pub enum CodecType {
        Auto = ("AUTO", 0),
        Http1 = ("HTTP1", 1),
        Http2 = ("HTTP2", 2),
        Http3 = ("HTTP3", 3),
    }
}

proto_enum! {
    /// `HttpConnectionManager.ServerHeaderTransformation`.
    pub enum ServerHeaderTransformation {
        Overwrite = ("OVERWRITE", 0),
        AppendIfAbsent = ("APPEND_IF_ABSENT", 1),
        PassThrough = ("PASS_THROUGH", 2),
    }
}

proto_enum! {
    /// `HttpConnectionManager.PathWithEscapedSlashesAction`.
    pub enum PathWithEscapedSlashesAction {
        ImplementationSpecificDefault = ("IMPLEMENTATION_SPECIFIC_DEFAULT", 0),
        KeepUnchanged = ("KEEP_UNCHANGED", 1),
        RejectRequest = ("REJECT_REQUEST", 2),
        UnescapeAndRedirect = ("UNESCAPE_AND_REDIRECT", 3),
        UnescapeAndForward = ("UNESCAPE_AND_FORWARD", 4),
    }
}

/// The `strip_port_mode` oneof.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StripPortMode {
    None,
    /// `strip_matching_host_port`: strip the port when it equals the listener's.
    Matching,
    /// `strip_any_host_port`
    Any,
}

/// `core.v3.Http1ProtocolOptions` as the HCM uses it (all off/empty by default).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Http1ProtocolOptions {
    pub accept_http_10: bool,
    pub default_host_for_http_10: String,
    pub allow_chunked_length: bool,
    /// `None` when unset (Envoy then decides per codec: absolute URLs are accepted).
    pub allow_absolute_url: Option<bool>,
}

impl Decode for Http1ProtocolOptions {
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::of(d, node, path)?;
        let accept_http_10 = f.or(d, "accept_http_10", false);
        let default_host_for_http_10 = f.or(d, "default_host_for_http_10", String::new());
        let allow_chunked_length = f.or(d, "allow_chunked_length", false);
        let allow_absolute_url = f.opt(d, "allow_absolute_url");
        f.default_only(d, "enable_trailers", false, "sluice drops HTTP/1.1 trailers (Envoy's default); remove it");
        f.empty_only(
            d,
            "header_key_format",
            "only Envoy's default (lower-case header names) is implemented; remove it",
        );
        f.unsupported(
            d,
            &[
                "override_stream_error_on_invalid_http_message",
                "send_fully_qualified_url",
                "use_balsa_parser",
                "allow_custom_methods",
                "ignore_http_11_upgrade",
            ],
        );
        f.finish(d);
        Some(Http1ProtocolOptions {
            accept_http_10,
            default_host_for_http_10,
            allow_chunked_length,
            allow_absolute_url,
        })
    }
}

/// The HCM config, with Envoy's defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpConnectionManager {
    pub stat_prefix: String,
    pub codec_type: CodecType,
    /// The routes: inline, or (with `rds`) from the RDS file once composed.
    pub route_config: RouteConfiguration,
    /// `rds`: `route_config` comes from this source (an empty one of that name until
    /// [`crate::xds::compose`] fills it in).
    pub rds: Option<Rds>,
    pub http_filters: Vec<HttpFilter>,
    /// Loggers of finished requests (none by default).
    pub access_log: Vec<AccessLog>,
    pub http_protocol_options: Http1ProtocolOptions,
    /// Downstream HTTP/2 (codec_type AUTO or HTTP2).
    pub http2_protocol_options: Http2ProtocolOptions,
    /// `idle_timeout` 1h (None = disabled), `max_headers_count` 100, ...
    pub common_http_protocol_options: CommonHttpProtocolOptions,
    /// 5 min; `None` when `0s` disables it.
    pub stream_idle_timeout: Option<Duration>,
    /// Disabled by default.
    pub request_timeout: Option<Duration>,
    pub request_headers_timeout: Option<Duration>,
    /// 5 s.
    pub drain_timeout: Duration,
    /// 1000 ms; `None` when `0s` disables it.
    pub delayed_close_timeout: Option<Duration>,
    /// 60 (KiB), 1..=8192.
    pub max_request_headers_kb: u32,
    /// `envoy`.
    pub server_name: String,
    pub server_header_transformation: ServerHeaderTransformation,
    pub use_remote_address: bool,
    pub xff_num_trusted_hops: u32,
    pub skip_xff_append: bool,
    /// `internal_address_config`, `original_ip_detection_extensions`, the XFCC options
    /// and `scheme_header_transformation`.
    pub forwarding: Forwarding,
    /// Empty: no `via` header.
    pub via: String,
    /// true.
    pub generate_request_id: bool,
    pub normalize_path: bool,
    pub merge_slashes: bool,
    pub path_with_escaped_slashes_action: PathWithEscapedSlashesAction,
    pub strip_port_mode: StripPortMode,
    /// `strip_trailing_host_dot`: `example.com.` and `example.com.:80` lose the dot.
    pub strip_trailing_host_dot: bool,
    pub stream_error_on_invalid_http_message: bool,
    /// `upgrade_configs`: the upgrades (websocket, CONNECT, ...) allowed; none by default.
    pub upgrade_configs: Vec<UpgradeConfig>,
    /// `tracing`: absent, no sampling and no spans.
    pub tracing: Option<HcmTracing>,
    /// `always_set_request_id_in_response` (false).
    pub always_set_request_id_in_response: bool,
    /// `request_id_extension` (the UUID extension, Envoy's default).
    pub request_id: UuidRequestIdConfig,
    pub line: u32,
}

impl HttpConnectionManager {
    /// The router filter's options (the last filter).
    pub fn router(&self) -> Option<&RouterFilter> {
        match self.http_filters.last().map(|f| &f.kind) {
            Some(HttpFilterKind::Router(r)) => Some(r),
            _ => None,
        }
    }

    pub(crate) fn decode_fields(d: &mut Decoder, mut f: Fields<'_>) -> Option<HttpConnectionManager> {
        let line = f.line();
        let path = f.path().to_string();
        let stat_prefix: Option<String> = f.req(d, "stat_prefix");
        let codec_type = f.or(d, "codec_type", CodecType::Auto);
        let has_rds = f.has("rds");
        let route_config_missing = !f.has("route_config");
        if has_rds && !route_config_missing {
            d.error(ErrorKind::Invalid, &path, line, "set only one of `rds` and `route_config`");
        }
        let rds: Option<Rds> = f.opt(d, "rds");
        let route_config: Option<RouteConfiguration> = match &rds {
            Some(r) => Some(RouteConfiguration::empty(&r.route_config_name)),
            None => f.opt(d, "route_config"),
        };
        let filters_path = f.field_path("http_filters");
        let (http_filters, filters_dropped) = http_filter::decode_list(d, f.take("http_filters"), &filters_path);
        let access_log: Vec<AccessLog> = f.list(d, "access_log");
        let http_protocol_options = f.or(d, "http_protocol_options", Http1ProtocolOptions::default());
        let http2_protocol_options = f.or(d, "http2_protocol_options", Http2ProtocolOptions::default());
        let common_http_protocol_options =
            f.or(d, "common_http_protocol_options", CommonHttpProtocolOptions::default());
        let stream_idle_timeout: Duration = f.or(d, "stream_idle_timeout", Duration::from_secs(300));
        let request_timeout: Option<Duration> = f.opt(d, "request_timeout");
        let request_headers_timeout: Option<Duration> = f.opt(d, "request_headers_timeout");
        let drain_timeout: Duration = f.or(d, "drain_timeout", Duration::from_secs(5));
        let delayed_close_timeout: Duration = f.or(d, "delayed_close_timeout", Duration::from_millis(1000));
        let max_request_headers_kb: u32 = f.or(d, "max_request_headers_kb", 60);
        let server_name: String = f.or(d, "server_name", "envoy".to_string());
        let server_header_transformation =
            f.or(d, "server_header_transformation", ServerHeaderTransformation::Overwrite);
        let use_remote_address = f.or(d, "use_remote_address", false);
        let xff_num_trusted_hops = f.or(d, "xff_num_trusted_hops", 0u32);
        let skip_xff_append = f.or(d, "skip_xff_append", false);
        let forwarding = Forwarding::decode_from(d, &mut f, use_remote_address, xff_num_trusted_hops);
        let via: String = f.or(d, "via", String::new());
        let generate_request_id = f.or(d, "generate_request_id", true);
        let normalize_path = f.or(d, "normalize_path", false);
        let merge_slashes = f.or(d, "merge_slashes", false);
        let path_with_escaped_slashes_action =
            f.or(d, "path_with_escaped_slashes_action", PathWithEscapedSlashesAction::ImplementationSpecificDefault);
        let strip_matching = f.or(d, "strip_matching_host_port", false);
        let strip_any = f.or(d, "strip_any_host_port", false);
        let strip_trailing_host_dot = f.or(d, "strip_trailing_host_dot", false);
        let stream_error_on_invalid_http_message = f.or(d, "stream_error_on_invalid_http_message", false);
        not_yet::check(d, &mut f);
        let tracing: Option<HcmTracing> = f.opt(d, "tracing");
        let always_set_request_id_in_response = f.or(d, "always_set_request_id_in_response", false);
        let request_id = match f.take("request_id_extension") {
            Some(n) => decode_request_id_extension(d, n, &f.field_path("request_id_extension")).unwrap_or_default(),
            None => UuidRequestIdConfig::default(),
        };
        f.unsupported(
            d,
            &[
                "scoped_routes",
                "http3_protocol_options",
                "access_log_flush_interval",
                "flush_access_log_on_new_request",
                "access_log_options",
                "early_header_mutation_extensions",
                "proxy_100_continue",
                "represent_ipv4_remote_address_as_ipv4_mapped_ipv6",
                "local_reply_config",
                "proxy_status_config",
                "typed_header_validation_config",
                "append_x_forwarded_port",
                "append_local_overload",
                "add_proxy_protocol_connection_state",
            ],
        );
        if let Some(n) = f.take("path_normalization_options") {
            d.error(
                ErrorKind::Unsupported,
                &f.field_path("path_normalization_options"),
                n.line,
                "path_normalization_options is not implemented (Envoy marks it not-implemented-hide too); \
                 use `normalize_path` and `merge_slashes`",
            );
        }
        let upgrade_configs: Vec<UpgradeConfig> = f.list(d, "upgrade_configs");
        upgrade::check_upgrade_configs(d, &upgrade_configs, &http_filters, &f.field_path("upgrade_configs"));
        f.finish(d);

        if route_config_missing && !has_rds {
            d.error(ErrorKind::Missing, &format!("{path}.route_config"), line, "an inline `route_config` is required");
        }
        if codec_type == CodecType::Http3 {
            d.error(ErrorKind::Unsupported, &format!("{path}.codec_type"), line, "HTTP3 is not supported");
        }
        if !(1..=8192).contains(&max_request_headers_kb) {
            d.error(ErrorKind::Invalid, &format!("{path}.max_request_headers_kb"), line, "must be in 1..=8192");
        }
        if strip_matching && strip_any {
            d.error(
                ErrorKind::Invalid,
                &path,
                line,
                "set only one of `strip_matching_host_port` and `strip_any_host_port`",
            );
        }
        if !via.is_empty() && via.bytes().any(|b| b.is_ascii_control()) {
            d.error(ErrorKind::Invalid, &format!("{path}.via"), line, "may not contain control characters");
        }
        // A filter that did not decode has its own error; the order check would only
        // repeat it as "the last filter must be the router".
        if !filters_dropped {
            check_filter_order(d, &http_filters, &filters_path, line);
        }
        let stat_prefix = stat_prefix?;
        if stat_prefix.is_empty() {
            d.error(ErrorKind::Invalid, &format!("{path}.stat_prefix"), line, "must not be empty");
        }
        Some(HttpConnectionManager {
            stat_prefix,
            codec_type,
            route_config: route_config?,
            rds,
            http_filters,
            access_log,
            http_protocol_options,
            http2_protocol_options,
            common_http_protocol_options,
            stream_idle_timeout: (!stream_idle_timeout.is_zero()).then_some(stream_idle_timeout),
            request_timeout: request_timeout.filter(|t| !t.is_zero()),
            request_headers_timeout: request_headers_timeout.filter(|t| !t.is_zero()),
            drain_timeout,
            delayed_close_timeout: (!delayed_close_timeout.is_zero()).then_some(delayed_close_timeout),
            max_request_headers_kb,
            server_name,
            server_header_transformation,
            use_remote_address,
            xff_num_trusted_hops,
            skip_xff_append,
            forwarding,
            via,
            generate_request_id,
            normalize_path,
            merge_slashes,
            path_with_escaped_slashes_action,
            strip_port_mode: if strip_any {
                StripPortMode::Any
            } else if strip_matching {
                StripPortMode::Matching
            } else {
                StripPortMode::None
            },
            strip_trailing_host_dot,
            stream_error_on_invalid_http_message,
            upgrade_configs,
            tracing,
            always_set_request_id_in_response,
            request_id,
            line,
        })
    }
}

#[cfg(test)]
mod tests;
