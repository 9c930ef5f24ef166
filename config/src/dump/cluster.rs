//! Dump of clusters: endpoints, circuit breakers, outlier detection, health checks,
//! load-balancer and protocol options, TLS `transport_socket`.

use super::{any, enum_name, list, Dump, Json};
use crate::cluster::{
    CircuitBreakers, Cluster, ClusterLoadAssignment, CommonHttpProtocolOptions, HealthCheck, HealthCheckKind,
    LbEndpoint, LocalityLbEndpoints, OutlierDetection,
};

impl Dump for Cluster {
    fn dump(&self) -> Json {
        Json::obj()
            .with("name", &self.name)
            .with_opt("alt_stat_name", self.alt_stat_name.as_ref())
            .with("type", enum_name(self.discovery_type))
            .with("connect_timeout", self.connect_timeout)
            .with("lb_policy", enum_name(self.lb_policy))
            .with_opt("load_assignment", self.eds_cluster_config.is_none().then(|| self.load_assignment.dump()))
            .with_opt(
                "eds_cluster_config",
                self.eds_cluster_config.as_ref().map(|e| {
                    Json::obj().with("eds_config", e.eds_config.dump()).with("service_name", e.service_name.as_str())
                }),
            )
            .with("per_connection_buffer_limit_bytes", self.per_connection_buffer_limit_bytes)
            .with("dns_lookup_family", enum_name(self.dns_lookup_family))
            .with("dns_refresh_rate", self.dns_refresh_rate)
            .with("respect_dns_ttl", self.respect_dns_ttl)
            .with("cleanup_interval", self.cleanup_interval)
            .with(
                "original_dst_lb_config",
                Json::obj()
                    .with("use_http_header", self.original_dst_lb_config.use_http_header)
                    .with("http_header_name", &self.original_dst_lb_config.http_header_name)
                    .with_opt(
                        "upstream_port_override",
                        self.original_dst_lb_config.upstream_port_override.map(u32::from),
                    ),
            )
            .with("circuit_breakers", self.circuit_breakers.dump())
            .with_opt("outlier_detection", self.outlier_detection.as_ref().map(Dump::dump))
            .with("health_checks", list(&self.health_checks))
            .with(
                "common_lb_config",
                Json::obj().with("healthy_panic_threshold", Json::obj().with("value", self.healthy_panic_threshold)),
            )
            .with(
                "ring_hash_lb_config",
                Json::obj()
                    .with("minimum_ring_size", self.ring_hash_lb_config.minimum_ring_size)
                    .with("maximum_ring_size", self.ring_hash_lb_config.maximum_ring_size)
                    .with("hash_function", enum_name(self.ring_hash_lb_config.hash_function)),
            )
            .with("maglev_lb_config", Json::obj().with("table_size", self.maglev_table_size))
            .with("least_request_lb_config", Json::obj().with("choice_count", self.least_request_choice_count))
            .with(
                "typed_extension_protocol_options",
                Json::obj().with(
                    "envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                    any("envoy.extensions.upstreams.http.v3.HttpProtocolOptions", self.http_protocol_options.dump()),
                ),
            )
            .with_opt("transport_socket", self.transport_socket.as_ref().map(super::tls::upstream))
    }
}

impl Dump for ClusterLoadAssignment {
    fn dump(&self) -> Json {
        Json::obj().with("cluster_name", &self.cluster_name).with("endpoints", list(&self.endpoints))
    }
}

impl Dump for LocalityLbEndpoints {
    fn dump(&self) -> Json {
        Json::obj().with("priority", self.priority).with("lb_endpoints", list(&self.lb_endpoints))
    }
}

impl Dump for LbEndpoint {
    fn dump(&self) -> Json {
        let mut endpoint = Json::obj().with("address", self.address.dump()).with("hostname", &self.hostname);
        if let Some(p) = self.health_check_port {
            endpoint = endpoint.with("health_check_config", Json::obj().with("port_value", p as u32));
        }
        Json::obj().with("endpoint", endpoint).with("load_balancing_weight", self.load_balancing_weight)
    }
}

impl Dump for CircuitBreakers {
    fn dump(&self) -> Json {
        let mut thresholds = Json::obj()
            .with("priority", "DEFAULT")
            .with("max_connections", self.max_connections)
            .with("max_pending_requests", self.max_pending_requests)
            .with("max_requests", self.max_requests)
            .with("max_retries", self.max_retries)
            .with("track_remaining", self.track_remaining);
        if let Some(b) = &self.retry_budget {
            thresholds = thresholds.with(
                "retry_budget",
                Json::obj()
                    .with("budget_percent", Json::obj().with("value", b.budget_percent))
                    .with("min_retry_concurrency", b.min_retry_concurrency),
            );
        }
        let mut j = Json::obj().with("thresholds", Json::Arr(vec![thresholds]));
        if let Some(m) = self.per_host_max_connections {
            j = j.with(
                "per_host_thresholds",
                Json::Arr(vec![Json::obj().with("priority", "DEFAULT").with("max_connections", m)]),
            );
        }
        j
    }
}

impl Dump for OutlierDetection {
    fn dump(&self) -> Json {
        Json::obj()
            .with("consecutive_5xx", self.consecutive_5xx)
            .with("interval", self.interval)
            .with("base_ejection_time", self.base_ejection_time)
            .with("max_ejection_time", self.max_ejection_time)
            .with("max_ejection_percent", self.max_ejection_percent)
            .with("enforcing_consecutive_5xx", self.enforcing_consecutive_5xx)
            .with("consecutive_gateway_failure", self.consecutive_gateway_failure)
            .with("enforcing_consecutive_gateway_failure", self.enforcing_consecutive_gateway_failure)
            .with("success_rate_minimum_hosts", self.success_rate_minimum_hosts)
            .with("success_rate_request_volume", self.success_rate_request_volume)
            .with("success_rate_stdev_factor", self.success_rate_stdev_factor)
            .with("enforcing_success_rate", self.enforcing_success_rate)
            .with("failure_percentage_threshold", self.failure_percentage_threshold)
            .with("enforcing_failure_percentage", self.enforcing_failure_percentage)
            .with("enforcing_failure_percentage_local_origin", self.enforcing_failure_percentage_local_origin)
            .with("failure_percentage_minimum_hosts", self.failure_percentage_minimum_hosts)
            .with("failure_percentage_request_volume", self.failure_percentage_request_volume)
            .with("split_external_local_origin_errors", self.split_external_local_origin_errors)
            .with("consecutive_local_origin_failure", self.consecutive_local_origin_failure)
            .with("enforcing_consecutive_local_origin_failure", self.enforcing_consecutive_local_origin_failure)
            .with("enforcing_local_origin_success_rate", self.enforcing_local_origin_success_rate)
            .with("max_ejection_time_jitter", self.max_ejection_time_jitter)
            .with("successful_active_health_check_uneject_host", self.successful_active_health_check_uneject_host)
            .with("always_eject_one_host", self.always_eject_one_host)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Dump for HealthCheck {
    fn dump(&self) -> Json {
        let j = Json::obj()
            .with("timeout", self.timeout)
            .with("interval", self.interval)
            .with("initial_jitter", self.initial_jitter)
            .with("interval_jitter", self.interval_jitter)
            .with("interval_jitter_percent", self.interval_jitter_percent)
            .with("unhealthy_threshold", self.unhealthy_threshold)
            .with("healthy_threshold", self.healthy_threshold)
            .with("reuse_connection", self.reuse_connection)
            .with("no_traffic_interval", self.no_traffic_interval)
            .with_opt("no_traffic_healthy_interval", self.no_traffic_healthy_interval)
            .with("unhealthy_interval", self.unhealthy_interval)
            .with("unhealthy_edge_interval", self.unhealthy_edge_interval)
            .with("healthy_edge_interval", self.healthy_edge_interval)
            .with("always_log_health_check_failures", self.always_log_health_check_failures);
        match &self.kind {
            HealthCheckKind::Http(h) => j.with(
                "http_health_check",
                Json::obj()
                    .with("host", &h.host)
                    .with("path", &h.path)
                    .with("method", &h.method)
                    .with("expected_statuses", list(&h.expected_statuses))
                    .with("request_headers_to_add", list(&h.request_headers_to_add))
                    .with("request_headers_to_remove", h.request_headers_to_remove.clone()),
            ),
            HealthCheckKind::Tcp(t) => {
                let mut tcp = Json::obj();
                if !t.send.is_empty() {
                    tcp = tcp.with("send", Json::obj().with("text", hex(&t.send)));
                }
                tcp = tcp
                    .with("receive", Json::Arr(t.receive.iter().map(|r| Json::obj().with("text", hex(r))).collect()));
                j.with("tcp_health_check", tcp)
            }
        }
    }
}

impl Dump for CommonHttpProtocolOptions {
    fn dump(&self) -> Json {
        Json::obj()
            .with("idle_timeout", self.idle_timeout.unwrap_or_default())
            .with_opt("max_connection_duration", self.max_connection_duration)
            .with("max_headers_count", self.max_headers_count)
            .with_opt("max_stream_duration", self.max_stream_duration)
            .with("headers_with_underscores_action", enum_name(self.headers_with_underscores_action))
            .with_opt("max_requests_per_connection", self.max_requests_per_connection)
    }
}

impl Dump for crate::upstream_http::HttpProtocolOptions {
    /// The protocol choice with every option's effective value (defaults filled in).
    fn dump(&self) -> Json {
        use crate::upstream_http::{UpstreamCodec, UpstreamProtocol};
        let h2 = &self.http2;
        let http2 = Json::obj()
            .with("hpack_table_size", h2.hpack_table_size)
            .with("max_concurrent_streams", h2.max_concurrent_streams)
            .with("initial_stream_window_size", h2.initial_stream_window_size)
            .with("initial_connection_window_size", h2.initial_connection_window_size)
            .with("allow_connect", false)
            .with("override_stream_error_on_invalid_http_message", true);
        let j = Json::obj().with("common_http_protocol_options", self.common.dump());
        match self.protocol {
            UpstreamProtocol::Explicit(UpstreamCodec::Http1) => {
                j.with("explicit_http_config", Json::obj().with("http_protocol_options", Json::obj()))
            }
            UpstreamProtocol::Explicit(UpstreamCodec::Http2) => {
                j.with("explicit_http_config", Json::obj().with("http2_protocol_options", http2))
            }
            UpstreamProtocol::UseDownstream => j.with(
                "use_downstream_protocol_config",
                Json::obj().with("http_protocol_options", Json::obj()).with("http2_protocol_options", http2),
            ),
            UpstreamProtocol::Auto => j.with(
                "auto_config",
                Json::obj().with("http_protocol_options", Json::obj()).with("http2_protocol_options", http2),
            ),
        }
    }
}
