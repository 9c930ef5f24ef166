//! Dump of the HTTP connection manager: its codec and protocol options, timeouts, header
//! handling, inline route configuration and HTTP filters (`HTTPFault`, `Router`).
//!
//! Timeouts where Envoy documents `0s` as "disabled" (`stream_idle_timeout`,
//! `request_timeout`, `request_headers_timeout`, `delayed_close_timeout`,
//! `common_http_protocol_options.idle_timeout`) are written `0s` when disabled.

use super::{any, enum_name, list, Dump, Json};
use crate::fault::{FaultAbort, FaultAbortKind, FaultDelay, FaultDelayKind, HttpFault};
use crate::hcm::{
    Forwarding, HttpConnectionManager, HttpFilter, HttpFilterKind, OriginalIpDetection, OriginalIpDetectionExtension,
    RouterFilter, StripPortMode, UpgradeConfig,
};

impl Dump for HttpConnectionManager {
    fn dump(&self) -> Json {
        let h1 = &self.http_protocol_options;
        let http_protocol_options = Json::obj()
            .with("accept_http_10", h1.accept_http_10)
            .with("default_host_for_http_10", &h1.default_host_for_http_10)
            .with("allow_chunked_length", h1.allow_chunked_length)
            // Unset: the codec decides (absolute URLs accepted).
            .with_opt("allow_absolute_url", h1.allow_absolute_url);
        let h2 = &self.http2_protocol_options;
        let http2_protocol_options = Json::obj()
            .with("hpack_table_size", h2.hpack_table_size)
            .with("max_concurrent_streams", h2.max_concurrent_streams)
            .with("initial_stream_window_size", h2.initial_stream_window_size)
            .with("initial_connection_window_size", h2.initial_connection_window_size)
            .with("max_outbound_frames", h2.max_outbound_frames)
            .with("max_outbound_control_frames", h2.max_outbound_control_frames)
            .with(
                "max_consecutive_inbound_frames_with_empty_payload",
                h2.max_consecutive_inbound_frames_with_empty_payload,
            )
            .with("max_inbound_priority_frames_per_stream", h2.max_inbound_priority_frames_per_stream)
            .with(
                "max_inbound_window_update_frames_per_data_frame_sent",
                h2.max_inbound_window_update_frames_per_data_frame_sent,
            )
            .with("allow_connect", false)
            .with("override_stream_error_on_invalid_http_message", true);
        let j = Json::obj()
            .with("stat_prefix", &self.stat_prefix)
            .with("codec_type", enum_name(self.codec_type))
            .with_opt("route_config", self.rds.is_none().then(|| self.route_config.dump()))
            .with_opt("rds", self.rds.as_ref().map(Dump::dump))
            .with("http_filters", list(&self.http_filters))
            .with("access_log", list(&self.access_log))
            .with("http_protocol_options", http_protocol_options)
            .with("http2_protocol_options", http2_protocol_options)
            .with("common_http_protocol_options", self.common_http_protocol_options.dump())
            .with("stream_idle_timeout", self.stream_idle_timeout.unwrap_or_default())
            .with("request_timeout", self.request_timeout.unwrap_or_default())
            .with("request_headers_timeout", self.request_headers_timeout.unwrap_or_default())
            .with("drain_timeout", self.drain_timeout)
            .with("delayed_close_timeout", self.delayed_close_timeout.unwrap_or_default())
            .with("max_request_headers_kb", self.max_request_headers_kb)
            .with("server_name", &self.server_name)
            .with("server_header_transformation", enum_name(self.server_header_transformation))
            .with("use_remote_address", self.use_remote_address)
            .with("xff_num_trusted_hops", self.xff_num_trusted_hops)
            .with("skip_xff_append", self.skip_xff_append);
        let j = self
            .forwarding
            .dump_into(j)
            .with("via", &self.via)
            .with("generate_request_id", self.generate_request_id)
            .with("normalize_path", self.normalize_path)
            .with("merge_slashes", self.merge_slashes)
            .with("path_with_escaped_slashes_action", enum_name(self.path_with_escaped_slashes_action))
            .with("strip_matching_host_port", self.strip_port_mode == StripPortMode::Matching);
        // `strip_any_host_port` is the only member of the `strip_port_mode` oneof.
        let j = if self.strip_port_mode == StripPortMode::Any { j.with("strip_any_host_port", true) } else { j };
        j.with("strip_trailing_host_dot", self.strip_trailing_host_dot)
            .with("stream_error_on_invalid_http_message", self.stream_error_on_invalid_http_message)
            .with("upgrade_configs", list(&self.upgrade_configs))
            .with_opt("tracing", self.tracing.as_ref().map(Dump::dump))
            .with("always_set_request_id_in_response", self.always_set_request_id_in_response)
            .with("request_id_extension", self.request_id.dump())
    }
}

impl Forwarding {
    /// Unset `internal_address_config` (no address internal) and
    /// `scheme_header_transformation` stay absent.
    fn dump_into(&self, j: Json) -> Json {
        let internal = self
            .internal_address_config
            .as_ref()
            .map(|c| Json::obj().with("unix_sockets", c.unix_sockets).with("cidr_ranges", list(&c.cidr_ranges)));
        let d = &self.set_current_client_cert_details;
        let details = Json::obj()
            .with("subject", d.subject)
            .with("cert", d.cert)
            .with("chain", d.chain)
            .with("dns", d.dns)
            .with("uri", d.uri);
        let scheme = self.scheme_header_transformation.as_ref().map(|s| {
            Json::obj()
                .with_opt("scheme_to_overwrite", s.scheme_to_overwrite.as_ref())
                .with("match_upstream", s.match_upstream)
        });
        j.with_opt("internal_address_config", internal)
            .with("original_ip_detection_extensions", list(&self.original_ip_detection_extensions))
            .with("forward_client_cert_details", enum_name(self.forward_client_cert_details))
            .with("set_current_client_cert_details", details)
            .with_opt("scheme_header_transformation", scheme)
            .with("preserve_external_request_id", self.preserve_external_request_id)
    }
}

impl Dump for OriginalIpDetectionExtension {
    fn dump(&self) -> Json {
        let config = match &self.config {
            OriginalIpDetection::Xff(x) => {
                let cidrs = x.xff_trusted_cidrs.as_ref().map(|c| Json::obj().with("cidrs", list(c)));
                Json::obj()
                    .with("xff_num_trusted_hops", x.xff_num_trusted_hops)
                    .with_opt("xff_trusted_cidrs", cidrs)
                    .with("skip_xff_append", x.skip_xff_append)
            }
            OriginalIpDetection::CustomHeader(c) => Json::obj()
                .with("header_name", &c.header_name)
                .with("allow_extension_to_set_address_as_trusted", c.allow_extension_to_set_address_as_trusted)
                .with_opt("reject_with_status", c.reject_with_status.map(|s| Json::obj().with("code", u32::from(s)))),
        };
        Json::obj().with("name", &self.name).with("typed_config", any(self.config.type_name(), config))
    }
}

/// `enabled` is always written (Envoy's default: true); `filters` only when set.
impl Dump for UpgradeConfig {
    fn dump(&self) -> Json {
        let j = Json::obj().with("upgrade_type", &self.upgrade_type).with("enabled", self.enabled);
        if self.filters.is_empty() {
            j
        } else {
            j.with("filters", list(&self.filters))
        }
    }
}

impl Dump for HttpFilter {
    fn dump(&self) -> Json {
        let typed_config = match &self.kind {
            HttpFilterKind::Fault(f) => f.dump(),
            HttpFilterKind::Buffer(c) => c.dump(),
            HttpFilterKind::Compressor(c) => c.dump(),
            HttpFilterKind::Decompressor(c) => c.dump(),
            HttpFilterKind::Cors => Json::obj(),
            HttpFilterKind::Csrf(c) => c.dump(),
            HttpFilterKind::ExtAuthz(c) => c.dump(),
            HttpFilterKind::HeaderToMetadata(c) => c.dump(),
            HttpFilterKind::HealthCheck(c) => c.dump(),
            HttpFilterKind::LocalRateLimit(c) => c.dump(),
            HttpFilterKind::Rbac(c) => c.dump(),
            HttpFilterKind::JwtAuthn(c) => c.dump(),
            HttpFilterKind::RateLimit(c) => c.dump(),
            HttpFilterKind::GrpcWeb => Json::obj(),
            HttpFilterKind::GrpcHttp1Bridge(b) => Json::obj()
                .with("upgrade_protobuf_to_grpc", b.upgrade_protobuf_to_grpc)
                .with("ignore_query_parameters", b.ignore_query_parameters),
            HttpFilterKind::Lua(c) => c.dump(),
            HttpFilterKind::Router(r) => r.dump(),
        };
        Json::obj()
            .with("name", &self.name)
            .with("typed_config", any(self.kind.type_name(), typed_config))
            .with("disabled", self.disabled)
    }
}

/// The router's fields (without `@type`); `dynamic_stats`, `start_child_span` and the
/// upstream logs are accepted and ignored, so not part of the effective config.
impl Dump for RouterFilter {
    fn dump(&self) -> Json {
        Json::obj()
            .with("suppress_envoy_headers", self.suppress_envoy_headers)
            .with("respect_expected_rq_timeout", self.respect_expected_rq_timeout)
            .with("strict_check_headers", self.strict_check_headers.clone())
    }
}

/// The fault filter's fields (without `@type`). An absent `max_active_faults` means
/// unlimited and an absent `upstream_cluster` any cluster, so both stay absent then.
impl Dump for HttpFault {
    fn dump(&self) -> Json {
        Json::obj()
            .with_opt("delay", self.delay.as_ref().map(Dump::dump))
            .with_opt("abort", self.abort.as_ref().map(Dump::dump))
            .with_opt("upstream_cluster", self.upstream_cluster.as_ref())
            .with("headers", list(&self.headers))
            .with("downstream_nodes", self.downstream_nodes.clone())
            .with_opt("max_active_faults", self.max_active_faults)
            .with("delay_percent_runtime", self.runtime.delay_percent.as_str())
            .with("abort_percent_runtime", self.runtime.abort_percent.as_str())
            .with("delay_duration_runtime", self.runtime.delay_duration.as_str())
            .with("abort_http_status_runtime", self.runtime.abort_http_status.as_str())
            .with("abort_grpc_status_runtime", self.runtime.abort_grpc_status.as_str())
            .with("max_active_faults_runtime", self.runtime.max_active_faults.as_str())
    }
}

impl Dump for FaultDelay {
    fn dump(&self) -> Json {
        let j = match self.kind {
            FaultDelayKind::Fixed(t) => Json::obj().with("fixed_delay", t),
            FaultDelayKind::Header => Json::obj().with("header_delay", Json::obj()),
        };
        j.with("percentage", self.percentage.dump())
    }
}

impl Dump for FaultAbort {
    fn dump(&self) -> Json {
        let j = match self.kind {
            FaultAbortKind::HttpStatus(s) => Json::obj().with("http_status", u32::from(s)),
            FaultAbortKind::GrpcStatus(s) => Json::obj().with("grpc_status", s),
            FaultAbortKind::Header => Json::obj().with("header_abort", Json::obj()),
        };
        j.with("percentage", self.percentage.dump())
    }
}

impl Dump for crate::hcm::Rds {
    fn dump(&self) -> Json {
        Json::obj().with("config_source", self.config_source.dump()).with("route_config_name", &self.route_config_name)
    }
}
