//! `envoy.config.cluster.v3.Cluster` with its endpoints, circuit breakers, outlier
//! detection, health checks and load-balancer options.

use std::time::Duration;

use crate::address::SocketAddress;
use crate::core::{nonzero, HeaderValueOption, Int64Range, Percent};
use crate::decode::{Decode, Decoder, Fields};
use crate::error::ErrorKind;
use crate::listener::DEFAULT_BUFFER_LIMIT;
use crate::node::{Node, Value};
use crate::proto_enum;
use crate::tls::{decode_upstream_transport_socket, UpstreamTlsContext};

proto_enum! {
    /// `Cluster.DiscoveryType`.
    pub enum DiscoveryType {
        Static = ("STATIC", 0),
        StrictDns = ("STRICT_DNS", 1),
        LogicalDns = ("LOGICAL_DNS", 2),
        Eds = ("EDS", 3),
        OriginalDst = ("ORIGINAL_DST", 4),
    }
}

proto_enum! {
    /// `Cluster.LbPolicy`.
    pub enum LbPolicy {
        RoundRobin = ("ROUND_ROBIN", 0),
        LeastRequest = ("LEAST_REQUEST", 1),
        RingHash = ("RING_HASH", 2),
        Random = ("RANDOM", 3),
        Maglev = ("MAGLEV", 5),
        ClusterProvided = ("CLUSTER_PROVIDED", 6),
        LoadBalancingPolicyConfig = ("LOAD_BALANCING_POLICY_CONFIG", 7),
    }
}

proto_enum! {
    /// `Cluster.DnsLookupFamily`.
    pub enum DnsLookupFamily {
        Auto = ("AUTO", 0),
        V4Only = ("V4_ONLY", 1),
        V6Only = ("V6_ONLY", 2),
        V4Preferred = ("V4_PREFERRED", 3),
        All = ("ALL", 4),
    }
}

proto_enum! {
    /// `core.v3.RoutingPriority`.
    pub enum RoutingPriority { Default = ("DEFAULT", 0), High = ("HIGH", 1) }
}

proto_enum! {
    /// `core.v3.HealthStatus` of an endpoint.
    pub enum HealthStatus {
        Unknown = ("UNKNOWN", 0),
        Healthy = ("HEALTHY", 1),
        Unhealthy = ("UNHEALTHY", 2),
        Draining = ("DRAINING", 3),
        Timeout = ("TIMEOUT", 4),
        Degraded = ("DEGRADED", 5),
    }
}

proto_enum! {
    /// `Cluster.RingHashLbConfig.HashFunction`.
    pub enum HashFunction { XxHash = ("XX_HASH", 0), MurmurHash2 = ("MURMUR_HASH_2", 1) }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Cluster {
    pub name: String,
    pub alt_stat_name: Option<String>,
    pub discovery_type: DiscoveryType,
    pub connect_timeout: Duration,
    pub lb_policy: LbPolicy,
    pub load_assignment: ClusterLoadAssignment,
    pub per_connection_buffer_limit_bytes: u32,
    pub dns_lookup_family: DnsLookupFamily,
    pub dns_refresh_rate: Duration,
    pub respect_dns_ttl: bool,
    pub cleanup_interval: Duration,
    pub original_dst_lb_config: OriginalDstLbConfig,
    pub circuit_breakers: CircuitBreakers,
    pub outlier_detection: Option<OutlierDetection>,
    pub health_checks: Vec<HealthCheck>,
    pub healthy_panic_threshold: f64,
    pub ring_hash_lb_config: RingHashLbConfig,
    pub maglev_table_size: u64,
    pub least_request_choice_count: u32,
    pub http_protocol_options: HttpProtocolOptions,
    /// TLS to the hosts (`UpstreamTlsContext`); `None` is plaintext.
    pub transport_socket: Option<UpstreamTlsContext>,
    /// `metadata.filter_metadata` (read by tracing's cluster metadata custom tags).
    pub metadata: crate::metadata::Metadata,
    /// `eds_cluster_config` of an EDS cluster: where its endpoints come from.
    pub eds_cluster_config: Option<EdsClusterConfig>,
    pub line: u32,
}

/// `Cluster.EdsClusterConfig`: the file source of an EDS cluster's
/// `ClusterLoadAssignment` and its name there (`service_name`, or the cluster's name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdsClusterConfig {
    pub eds_config: crate::xds::ConfigSource,
    pub service_name: String,
}

impl Decode for EdsClusterConfig {
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::of(d, node, path)?;
        let eds_config: Option<crate::xds::ConfigSource> = f.req(d, "eds_config");
        // Over ADS the timeout ends a dynamic cluster's warming; an EDS file is read at once.
        if let Some(s) = eds_config.as_ref().filter(|s| !s.ads) {
            s.refuse_initial_fetch_timeout(d, &f.field_path("eds_config"), f.line());
        }
        let service_name = f.or(d, "service_name", String::new());
        f.finish(d);
        Some(EdsClusterConfig { eds_config: eds_config?, service_name })
    }
}

impl Cluster {
    /// The name Envoy uses in stats: `alt_stat_name` when set.
    pub fn stat_name(&self) -> &str {
        self.alt_stat_name.as_deref().filter(|s| !s.is_empty()).unwrap_or(&self.name)
    }
}

impl Decode for Cluster {
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::of(d, node, path)?;
        let line = f.line();
        let name: Option<String> = f.req(d, "name");
        let alt_stat_name = f.opt(d, "alt_stat_name");
        // A `type` or `lb_policy` that did not decode has its own error; the checks that
        // depend on them are skipped rather than run against the default and reported
        // as a second, misleading error.
        let type_given = f.has("type");
        let discovery_type: Option<DiscoveryType> = f.opt(d, "type");
        let type_known = !type_given || discovery_type.is_some();
        let discovery_type = discovery_type.unwrap_or(DiscoveryType::Static);
        let connect_timeout = f.or(d, "connect_timeout", Duration::from_secs(5));
        let lb_given = f.has("lb_policy");
        let lb_policy: Option<LbPolicy> = f.opt(d, "lb_policy");
        let lb_known = !lb_given || lb_policy.is_some();
        let lb_policy = lb_policy.unwrap_or(LbPolicy::RoundRobin);
        let load_assignment: Option<ClusterLoadAssignment> = f.opt(d, "load_assignment");
        let eds_given = f.has("eds_cluster_config");
        let eds_cluster_config: Option<EdsClusterConfig> = f.opt(d, "eds_cluster_config");
        let per_connection_buffer_limit_bytes = f.or(d, "per_connection_buffer_limit_bytes", DEFAULT_BUFFER_LIMIT);
        let dns_lookup_family = f.or(d, "dns_lookup_family", DnsLookupFamily::Auto);
        let dns_refresh_rate = f.or(d, "dns_refresh_rate", Duration::from_millis(5000));
        let respect_dns_ttl = f.or(d, "respect_dns_ttl", false);
        let cleanup_interval = f.or(d, "cleanup_interval", Duration::from_millis(5000));
        let original_dst_lb_config = f.or(d, "original_dst_lb_config", OriginalDstLbConfig::default());
        let circuit_breakers = f.or(d, "circuit_breakers", CircuitBreakers::default());
        let outlier_detection = f.opt(d, "outlier_detection");
        let hc_line = f.line();
        let health_checks: Vec<HealthCheck> = f.list(d, "health_checks");
        if health_checks.len() > 1 {
            d.error(
                ErrorKind::Unsupported,
                &format!("{path}.health_checks"),
                hc_line,
                "Multiple health checks not supported",
            );
        }
        let common_lb: CommonLbConfig = f.or(d, "common_lb_config", CommonLbConfig::default());
        let ring_hash_lb_config = f.or(d, "ring_hash_lb_config", RingHashLbConfig::default());
        let maglev_table_size = match f.take("maglev_lb_config") {
            Some(n) => {
                let mut m = Fields::of(d, n, &f.field_path("maglev_lb_config"))?;
                let size: u64 = m.or(d, "table_size", 65537);
                m.finish(d);
                size
            }
            None => 65537,
        };
        let least_request_choice_count = match f.take("least_request_lb_config") {
            Some(n) => {
                let mut m = Fields::of(d, n, &f.field_path("least_request_lb_config"))?;
                let c: u32 = m.or(d, "choice_count", 2);
                m.empty_only(
                    d,
                    "active_request_bias",
                    "sluice's least-request balancer uses Envoy's default bias of 1.0; remove it",
                );
                m.empty_only(d, "slow_start_config", "slow start is not supported; remove it");
                m.finish(d);
                c
            }
            None => 2,
        };
        // Deprecated-but-common spellings of HTTP protocol options on the cluster itself.
        let mut http = HttpProtocolOptions::default();
        let common_path = f.field_path("common_http_protocol_options");
        if let Some(common) = f.opt::<CommonHttpProtocolOptions>(d, "common_http_protocol_options") {
            crate::upstream_http::check_upstream_common(d, &common, &common_path, line);
            http.common = common;
        }
        if let Some(n) = f.opt::<u32>(d, "max_requests_per_connection") {
            http.common.max_requests_per_connection = Some(n);
        }
        if let Some(n) = f.take("http_protocol_options") {
            let mut h = Fields::of(d, n, &f.field_path("http_protocol_options"))?;
            upstream_http1_options(d, &mut h);
            h.finish(d);
        }
        let h2_path = f.field_path("http2_protocol_options");
        if let Some(h2) = f.opt::<Http2ProtocolOptions>(d, "http2_protocol_options") {
            // Deprecated in Envoy for typed_extension_protocol_options, still honoured.
            d.warn(
                &h2_path,
                line,
                "deprecated: use typed_extension_protocol_options \
                 (envoy.extensions.upstreams.http.v3.HttpProtocolOptions); the cluster speaks HTTP/2",
            );
            crate::upstream_http::refuse_upstream_flood_limits(d, &h2, &h2_path, line);
            http.protocol = UpstreamProtocol::Explicit(UpstreamCodec::Http2);
            http.http2 = h2;
        }
        let tepo_path = f.field_path("typed_extension_protocol_options");
        if let Some(n) = f.take("typed_extension_protocol_options") {
            if let Some(opts) = decode_extension_protocol_options(d, n, &tepo_path) {
                http = opts;
            }
        }
        let ts_path = f.field_path("transport_socket");
        let transport_socket =
            f.take("transport_socket").and_then(|n| decode_upstream_transport_socket(d, n, &ts_path)).flatten();
        if http.protocol == UpstreamProtocol::Auto && transport_socket.is_none() {
            // Envoy: "ALPN configured for cluster ... which has a non-ALPN transport socket".
            d.error(
                ErrorKind::Invalid,
                &format!("{tepo_path}.{}.auto_config", crate::upstream_http::HTTP_PROTOCOL_OPTIONS),
                line,
                format!("ALPN configured for cluster {} which has a non-ALPN transport socket (auto_config needs a TLS transport_socket)", name.as_deref().unwrap_or("")),
            );
        }
        f.unsupported(
            d,
            &[
                "cluster_type",
                "load_balancing_policy",
                "transport_socket_matches",
                "lb_subset_config",
                "round_robin_lb_config",
                "upstream_http_protocol_options",
                "protocol_selection",
                "dns_resolvers",
                "dns_resolution_config",
                "typed_dns_resolver_config",
                "use_tcp_for_dns_lookups",
                "wait_for_warm_on_init",
                "filters",
                "lrs_server",
                "upstream_config",
                "preconnect_policy",
                "dns_jitter",
                "dns_failure_refresh_rate",
            ],
        );
        let metadata = f.or(d, "metadata", crate::metadata::Metadata::default());
        f.ignored(d, &["track_cluster_stats", "track_timeout_budgets"]);
        f.empty_only(
            d,
            "upstream_bind_config",
            "binding upstream connections to a source address is not supported; remove it",
        );
        f.empty_only(
            d,
            "upstream_connection_options",
            "upstream socket options (TCP keepalive) are not supported; remove them",
        );
        f.default_only(
            d,
            "close_connections_on_host_health_failure",
            false,
            "connections to a host that fails health checks are not closed by sluice; remove it",
        );
        f.default_only(
            d,
            "ignore_health_on_host_removal",
            false,
            "sluice removes a host that leaves discovery at once; remove it",
        );
        f.default_only(
            d,
            "connection_pool_per_downstream_connection",
            false,
            "sluice's pools are per worker; remove it",
        );
        f.finish(d);
        let name = name?;
        if name.is_empty() {
            d.error(ErrorKind::Invalid, &format!("{path}.name"), line, "must not be empty");
        }
        if connect_timeout.is_zero() {
            d.error(ErrorKind::Invalid, &format!("{path}.connect_timeout"), line, "must be greater than 0");
        }
        if discovery_type == DiscoveryType::Eds {
            if !eds_given {
                d.error(
                    ErrorKind::Missing,
                    &format!("{path}.eds_cluster_config"),
                    line,
                    "an EDS cluster needs `eds_cluster_config.eds_config` (a file source)",
                );
            }
            if load_assignment.is_some() {
                d.error(
                    ErrorKind::Invalid,
                    &format!("{path}.load_assignment"),
                    line,
                    "an EDS cluster's endpoints come from its `eds_config`; remove `load_assignment`",
                );
            }
        } else if eds_given {
            d.error(
                ErrorKind::Invalid,
                &format!("{path}.eds_cluster_config"),
                line,
                "`eds_cluster_config` is only for clusters of `type: EDS`",
            );
        }
        if lb_policy == LbPolicy::LoadBalancingPolicyConfig {
            d.error(
                ErrorKind::Unsupported,
                &format!("{path}.lb_policy"),
                line,
                "load_balancing_policy is not supported",
            );
        }
        // original_dst_cluster.cc: ORIGINAL_DST requires CLUSTER_PROVIDED, and only it.
        match (discovery_type, lb_policy) {
            _ if !type_known || !lb_known => {}
            (DiscoveryType::OriginalDst, LbPolicy::ClusterProvided) => {}
            (DiscoveryType::OriginalDst, p) => d.error(
                ErrorKind::Invalid,
                &format!("{path}.lb_policy"),
                line,
                format!("cluster: LB policy {} is not valid for Cluster type ORIGINAL_DST. Only 'CLUSTER_PROVIDED' is allowed with cluster type 'ORIGINAL_DST'", crate::decode::ProtoEnum::name(p)),
            ),
            (_, LbPolicy::ClusterProvided) => d.error(
                ErrorKind::Invalid,
                &format!("{path}.lb_policy"),
                line,
                "cluster: LB policy CLUSTER_PROVIDED is only valid with cluster type ORIGINAL_DST",
            ),
            _ => {}
        }
        // No load_assignment is a cluster without hosts, as in Envoy (Istio's
        // BlackHoleCluster): it loads, and every request finds no healthy upstream.
        let load_assignment = load_assignment.unwrap_or_default();
        if discovery_type == DiscoveryType::OriginalDst && load_assignment.endpoint_count() > 0 {
            d.error(
                ErrorKind::Invalid,
                &format!("{path}.load_assignment"),
                line,
                "ORIGINAL_DST clusters must not have endpoints",
            );
        }
        if type_known && discovery_type == DiscoveryType::Static {
            for (host, _) in load_assignment.hosts() {
                if host.address.ip().is_none() {
                    d.error(
                        ErrorKind::Invalid,
                        &format!("{path}.load_assignment"),
                        host.address.line,
                        format!(
                            "`{}` is not an IP address; STATIC clusters need IPs (use STRICT_DNS for host names)",
                            host.address.address
                        ),
                    );
                }
            }
        }
        if type_known && discovery_type == DiscoveryType::LogicalDns && load_assignment.endpoint_count() != 1 {
            d.error(
                ErrorKind::Invalid,
                &format!("{path}.load_assignment"),
                line,
                "LOGICAL_DNS clusters must have exactly one endpoint",
            );
        }
        if lb_policy == LbPolicy::Maglev && (maglev_table_size > 5_000_011 || !is_prime(maglev_table_size)) {
            d.error(
                ErrorKind::Invalid,
                &format!("{path}.maglev_lb_config.table_size"),
                line,
                "table_size must be a prime number no larger than 5000011",
            );
        }
        if least_request_choice_count < 2 {
            d.error(
                ErrorKind::Invalid,
                &format!("{path}.least_request_lb_config.choice_count"),
                line,
                "must be at least 2",
            );
        }
        Some(Cluster {
            name,
            alt_stat_name,
            discovery_type,
            connect_timeout,
            lb_policy,
            load_assignment,
            per_connection_buffer_limit_bytes,
            dns_lookup_family,
            dns_refresh_rate,
            respect_dns_ttl,
            cleanup_interval,
            original_dst_lb_config,
            circuit_breakers,
            outlier_detection,
            health_checks,
            healthy_panic_threshold: common_lb.healthy_panic_threshold,
            ring_hash_lb_config,
            maglev_table_size,
            least_request_choice_count,
            http_protocol_options: http,
            transport_socket,
            metadata,
            eds_cluster_config,
            line,
        })
    }
}

fn is_prime(n: u64) -> bool {
    if n < 2 {
        return false;
    }
    let mut i = 2;
    while i * i <= n {
        if n % i == 0 {
            return false;
        }
        i += 1;
    }
    true
}

/// `endpoint.v3.ClusterLoadAssignment`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ClusterLoadAssignment {
    pub cluster_name: String,
    pub endpoints: Vec<LocalityLbEndpoints>,
}

impl ClusterLoadAssignment {
    /// Every endpoint with its priority.
    pub fn hosts(&self) -> impl Iterator<Item = (&LbEndpoint, u32)> {
        self.endpoints.iter().flat_map(|l| l.lb_endpoints.iter().map(move |e| (e, l.priority)))
    }

    pub fn endpoint_count(&self) -> usize {
        self.endpoints.iter().map(|l| l.lb_endpoints.len()).sum()
    }
}

impl Decode for ClusterLoadAssignment {
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::of(d, node, path)?;
        let cluster_name: Option<String> = f.req(d, "cluster_name");
        let endpoints = f.list(d, "endpoints");
        f.empty_only(
            d,
            "policy",
            "load-assignment policy (overprovisioning factor, drop overloads) is not supported; remove it",
        );
        f.empty_only(d, "named_endpoints", "named endpoints are not supported; put the endpoints in `endpoints`");
        f.finish(d);
        Some(ClusterLoadAssignment { cluster_name: cluster_name?, endpoints })
    }
}

/// `endpoint.v3.LocalityLbEndpoints`.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalityLbEndpoints {
    pub priority: u32,
    pub lb_endpoints: Vec<LbEndpoint>,
}

impl Decode for LocalityLbEndpoints {
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::of(d, node, path)?;
        let priority = f.or(d, "priority", 0u32);
        let lb_endpoints = f.list(d, "lb_endpoints");
        f.ignored(d, &["locality", "metadata", "proximity"]);
        f.unsupported_because(
            d,
            "load_balancing_weight",
            "locality weights are not supported (locality-weighted balancing is not); remove it",
        );
        f.unsupported(d, &["leds_cluster_locality_config"]);
        f.finish(d);
        if priority > 127 {
            d.invalid(node, &format!("{path}.priority"), "priority must be at most 127");
        }
        Some(LocalityLbEndpoints { priority, lb_endpoints })
    }
}

/// `endpoint.v3.LbEndpoint`.
#[derive(Debug, Clone, PartialEq)]
pub struct LbEndpoint {
    pub address: SocketAddress,
    pub hostname: String,
    pub load_balancing_weight: u32,
    /// Health-check port override (`endpoint.health_check_config.port_value`).
    pub health_check_port: Option<u16>,
    /// `metadata.filter_metadata`: the host's metadata (tracing's host metadata tags).
    pub metadata: crate::metadata::Metadata,
}

impl Decode for LbEndpoint {
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::of(d, node, path)?;
        let endpoint = f.take("endpoint");
        let ep_path = f.field_path("endpoint");
        let weight: u32 = f.or(d, "load_balancing_weight", 1);
        let metadata = f.or(d, "metadata", crate::metadata::Metadata::default());
        if let Some(n) = f.take("health_status") {
            let hs_path = f.field_path("health_status");
            if let Some(status) = d.decode::<HealthStatus>(n, &hs_path) {
                if !matches!(status, HealthStatus::Unknown | HealthStatus::Healthy) {
                    d.error(
                        ErrorKind::Unsupported,
                        &hs_path,
                        n.line,
                        format!(
                            "health_status {} is not supported (only UNKNOWN and HEALTHY); remove the endpoint instead",
                            crate::decode::ProtoEnum::name(status)
                        ),
                    );
                }
            }
        }
        f.unsupported(d, &["endpoint_name"]);
        let line = f.line();
        f.finish(d);
        let Some(endpoint) = endpoint else {
            d.error(ErrorKind::Missing, &ep_path, line, "an lb_endpoint needs an `endpoint`");
            return None;
        };
        let mut e = Fields::of(d, endpoint, &ep_path)?;
        let address: Option<SocketAddress> = e.req(d, "address");
        let hostname = e.or(d, "hostname", String::new());
        let health_check_port = match e.take("health_check_config") {
            Some(n) => {
                let mut h = Fields::of(d, n, &e.field_path("health_check_config"))?;
                let p: Option<u32> = h.opt(d, "port_value");
                h.default_only(
                    d,
                    "hostname",
                    String::new(),
                    "a per-endpoint health check host name is not supported; remove it",
                );
                h.empty_only(d, "address", "a per-endpoint health check address is not supported; use port_value");
                h.default_only(
                    d,
                    "disable_active_health_check",
                    false,
                    "disabling health checks per endpoint is not supported; remove it",
                );
                h.finish(d);
                p.filter(|p| *p > 0 && *p <= 65535).map(|p| p as u16)
            }
            None => None,
        };
        e.unsupported(d, &["additional_addresses"]);
        e.finish(d);
        if weight == 0 {
            d.invalid(node, &format!("{path}.load_balancing_weight"), "weight must be at least 1");
        }
        Some(LbEndpoint {
            address: address?,
            hostname,
            load_balancing_weight: weight.max(1),
            health_check_port,
            metadata,
        })
    }
}

/// `Cluster.OriginalDstLbConfig`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginalDstLbConfig {
    pub use_http_header: bool,
    pub http_header_name: String,
    pub upstream_port_override: Option<u16>,
}

impl Default for OriginalDstLbConfig {
    fn default() -> Self {
        OriginalDstLbConfig {
            use_http_header: false,
            http_header_name: "x-envoy-original-dst-host".into(),
            upstream_port_override: None,
        }
    }
}

impl Decode for OriginalDstLbConfig {
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::of(d, node, path)?;
        let use_http_header = f.or(d, "use_http_header", false);
        let name: String = f.or(d, "http_header_name", String::new());
        let port: Option<u32> = f.opt(d, "upstream_port_override");
        f.unsupported(d, &["metadata_key"]);
        f.finish(d);
        Some(OriginalDstLbConfig {
            use_http_header,
            http_header_name: if name.is_empty() {
                "x-envoy-original-dst-host".into()
            } else {
                name.to_ascii_lowercase()
            },
            upstream_port_override: port.filter(|p| *p > 0 && *p <= 65535).map(|p| p as u16),
        })
    }
}

/// `circuit_breakers.thresholds[].retry_budget`: concurrent retries are limited to
/// `budget_percent` of the cluster's active and pending requests, and never below
/// `min_retry_concurrency`; with a budget, `max_retries` does not apply.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryBudget {
    /// Percent (default 20).
    pub budget_percent: f64,
    /// Default 3.
    pub min_retry_concurrency: u32,
}

impl Decode for RetryBudget {
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::of(d, node, path)?;
        let budget_percent = f.or(d, "budget_percent", crate::core::Percent(20.0)).0;
        let min_retry_concurrency = f.or(d, "min_retry_concurrency", 3u32);
        f.finish(d);
        Some(RetryBudget { budget_percent, min_retry_concurrency })
    }
}

/// `cluster.v3.CircuitBreakers`: the DEFAULT-priority thresholds (first entry wins).
#[derive(Debug, Clone, PartialEq)]
pub struct CircuitBreakers {
    pub max_connections: u32,
    pub max_pending_requests: u32,
    pub max_requests: u32,
    pub max_retries: u32,
    pub track_remaining: bool,
    pub retry_budget: Option<RetryBudget>,
    /// `per_host_thresholds[].max_connections` for DEFAULT priority.
    pub per_host_max_connections: Option<u32>,
}

impl Default for CircuitBreakers {
    fn default() -> Self {
        CircuitBreakers {
            max_connections: 1024,
            max_pending_requests: 1024,
            max_requests: 1024,
            max_retries: 3,
            track_remaining: false,
            retry_budget: None,
            per_host_max_connections: None,
        }
    }
}

struct Thresholds {
    priority: RoutingPriority,
    max_connections: Option<u32>,
    max_pending_requests: Option<u32>,
    max_requests: Option<u32>,
    max_retries: Option<u32>,
    track_remaining: bool,
    retry_budget: Option<RetryBudget>,
}

impl Decode for Thresholds {
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::of(d, node, path)?;
        let t = Thresholds {
            priority: f.or(d, "priority", RoutingPriority::Default),
            max_connections: f.opt(d, "max_connections"),
            max_pending_requests: f.opt(d, "max_pending_requests"),
            max_requests: f.opt(d, "max_requests"),
            max_retries: f.opt(d, "max_retries"),
            track_remaining: f.or(d, "track_remaining", false),
            retry_budget: f.opt(d, "retry_budget"),
        };
        f.unsupported(d, &["max_connection_pools"]);
        f.finish(d);
        Some(t)
    }
}

impl Decode for CircuitBreakers {
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::of(d, node, path)?;
        let thresholds: Vec<Thresholds> = f.list(d, "thresholds");
        let per_host: Vec<Thresholds> = f.list(d, "per_host_thresholds");
        f.finish(d);
        let mut cb = CircuitBreakers::default();
        // Envoy: the first thresholds entry for a priority wins.
        if let Some(t) = thresholds.iter().find(|t| t.priority == RoutingPriority::Default) {
            cb.max_connections = t.max_connections.unwrap_or(cb.max_connections);
            cb.max_pending_requests = t.max_pending_requests.unwrap_or(cb.max_pending_requests);
            cb.max_requests = t.max_requests.unwrap_or(cb.max_requests);
            cb.max_retries = t.max_retries.unwrap_or(cb.max_retries);
            cb.track_remaining = t.track_remaining;
            cb.retry_budget = t.retry_budget;
        }
        if let Some(t) = per_host.iter().find(|t| t.priority == RoutingPriority::Default) {
            cb.per_host_max_connections = t.max_connections;
        }
        Some(cb)
    }
}

/// `cluster.v3.OutlierDetection` with Envoy's defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct OutlierDetection {
    pub consecutive_5xx: u32,
    pub interval: Duration,
    pub base_ejection_time: Duration,
    pub max_ejection_time: Duration,
    pub max_ejection_percent: u32,
    pub enforcing_consecutive_5xx: u32,
    pub consecutive_gateway_failure: u32,
    pub enforcing_consecutive_gateway_failure: u32,
    pub success_rate_minimum_hosts: u32,
    pub success_rate_request_volume: u32,
    pub success_rate_stdev_factor: u32,
    pub enforcing_success_rate: u32,
    pub failure_percentage_threshold: u32,
    pub enforcing_failure_percentage: u32,
    pub enforcing_failure_percentage_local_origin: u32,
    pub failure_percentage_minimum_hosts: u32,
    pub failure_percentage_request_volume: u32,
    pub split_external_local_origin_errors: bool,
    pub consecutive_local_origin_failure: u32,
    pub enforcing_consecutive_local_origin_failure: u32,
    pub enforcing_local_origin_success_rate: u32,
    pub max_ejection_time_jitter: Duration,
    pub successful_active_health_check_uneject_host: bool,
    pub always_eject_one_host: bool,
}

impl Default for OutlierDetection {
    fn default() -> Self {
        OutlierDetection {
            consecutive_5xx: 5,
            interval: Duration::from_secs(10),
            base_ejection_time: Duration::from_secs(30),
            max_ejection_time: Duration::from_secs(300),
            max_ejection_percent: 10,
            enforcing_consecutive_5xx: 100,
            consecutive_gateway_failure: 5,
            enforcing_consecutive_gateway_failure: 0,
            success_rate_minimum_hosts: 5,
            success_rate_request_volume: 100,
            success_rate_stdev_factor: 1900,
            enforcing_success_rate: 100,
            failure_percentage_threshold: 85,
            enforcing_failure_percentage: 0,
            enforcing_failure_percentage_local_origin: 0,
            failure_percentage_minimum_hosts: 5,
            failure_percentage_request_volume: 50,
            split_external_local_origin_errors: false,
            consecutive_local_origin_failure: 5,
            enforcing_consecutive_local_origin_failure: 100,
            enforcing_local_origin_success_rate: 100,
            max_ejection_time_jitter: Duration::ZERO,
            successful_active_health_check_uneject_host: true,
            always_eject_one_host: false,
        }
    }
}

impl Decode for OutlierDetection {
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::of(d, node, path)?;
        let z = OutlierDetection::default();
        let max_ejection_time: Option<Duration> = f.opt(d, "max_ejection_time");
        let o = OutlierDetection {
            consecutive_5xx: f.or(d, "consecutive_5xx", z.consecutive_5xx),
            interval: f.or(d, "interval", z.interval),
            base_ejection_time: f.or(d, "base_ejection_time", z.base_ejection_time),
            // Envoy: when absent, the larger of 300s and base_ejection_time.
            max_ejection_time: max_ejection_time.unwrap_or(Duration::ZERO),
            max_ejection_percent: f.or(d, "max_ejection_percent", z.max_ejection_percent),
            enforcing_consecutive_5xx: f.or(d, "enforcing_consecutive_5xx", z.enforcing_consecutive_5xx),
            consecutive_gateway_failure: f.or(d, "consecutive_gateway_failure", z.consecutive_gateway_failure),
            enforcing_consecutive_gateway_failure: f.or(
                d,
                "enforcing_consecutive_gateway_failure",
                z.enforcing_consecutive_gateway_failure,
            ),
            success_rate_minimum_hosts: f.or(d, "success_rate_minimum_hosts", z.success_rate_minimum_hosts),
            success_rate_request_volume: f.or(d, "success_rate_request_volume", z.success_rate_request_volume),
            success_rate_stdev_factor: f.or(d, "success_rate_stdev_factor", z.success_rate_stdev_factor),
            enforcing_success_rate: f.or(d, "enforcing_success_rate", z.enforcing_success_rate),
            failure_percentage_threshold: f.or(d, "failure_percentage_threshold", z.failure_percentage_threshold),
            enforcing_failure_percentage: f.or(d, "enforcing_failure_percentage", z.enforcing_failure_percentage),
            enforcing_failure_percentage_local_origin: f.or(
                d,
                "enforcing_failure_percentage_local_origin",
                z.enforcing_failure_percentage_local_origin,
            ),
            failure_percentage_minimum_hosts: f.or(
                d,
                "failure_percentage_minimum_hosts",
                z.failure_percentage_minimum_hosts,
            ),
            failure_percentage_request_volume: f.or(
                d,
                "failure_percentage_request_volume",
                z.failure_percentage_request_volume,
            ),
            split_external_local_origin_errors: f.or(
                d,
                "split_external_local_origin_errors",
                z.split_external_local_origin_errors,
            ),
            consecutive_local_origin_failure: f.or(
                d,
                "consecutive_local_origin_failure",
                z.consecutive_local_origin_failure,
            ),
            enforcing_consecutive_local_origin_failure: f.or(
                d,
                "enforcing_consecutive_local_origin_failure",
                z.enforcing_consecutive_local_origin_failure,
            ),
            enforcing_local_origin_success_rate: f.or(
                d,
                "enforcing_local_origin_success_rate",
                z.enforcing_local_origin_success_rate,
            ),
            max_ejection_time_jitter: f.or(d, "max_ejection_time_jitter", z.max_ejection_time_jitter),
            successful_active_health_check_uneject_host: f.or(
                d,
                "successful_active_health_check_uneject_host",
                z.successful_active_health_check_uneject_host,
            ),
            always_eject_one_host: f.or(d, "always_eject_one_host", z.always_eject_one_host),
        };
        f.unsupported(d, &["monitor", "detect_degraded_hosts"]);
        f.finish(d);
        let mut o = o;
        if max_ejection_time.is_none() {
            o.max_ejection_time = z.max_ejection_time.max(o.base_ejection_time);
        } else if o.max_ejection_time < o.base_ejection_time {
            d.invalid(
                node,
                &format!("{path}.max_ejection_time"),
                "outlier detector's max_ejection_time cannot be smaller than base_ejection_time",
            );
        }
        for (name, v) in [
            ("max_ejection_percent", o.max_ejection_percent),
            ("enforcing_consecutive_5xx", o.enforcing_consecutive_5xx),
            ("enforcing_consecutive_gateway_failure", o.enforcing_consecutive_gateway_failure),
            ("enforcing_success_rate", o.enforcing_success_rate),
            ("failure_percentage_threshold", o.failure_percentage_threshold),
            ("enforcing_failure_percentage", o.enforcing_failure_percentage),
            ("enforcing_consecutive_local_origin_failure", o.enforcing_consecutive_local_origin_failure),
        ] {
            if v > 100 {
                d.invalid(node, &format!("{path}.{name}"), format!("{v} is above 100"));
            }
        }
        if o.interval.is_zero() || o.base_ejection_time.is_zero() || o.max_ejection_time.is_zero() {
            d.invalid(node, path, "interval, base_ejection_time and max_ejection_time must be greater than 0");
        }
        Some(o)
    }
}

/// `core.v3.HealthCheck` (HTTP or TCP).
#[derive(Debug, Clone, PartialEq)]
pub struct HealthCheck {
    pub timeout: Duration,
    pub interval: Duration,
    pub initial_jitter: Duration,
    pub interval_jitter: Duration,
    pub interval_jitter_percent: u32,
    pub unhealthy_threshold: u32,
    pub healthy_threshold: u32,
    pub reuse_connection: bool,
    pub no_traffic_interval: Duration,
    pub no_traffic_healthy_interval: Option<Duration>,
    pub unhealthy_interval: Duration,
    pub unhealthy_edge_interval: Duration,
    pub healthy_edge_interval: Duration,
    pub always_log_health_check_failures: bool,
    pub kind: HealthCheckKind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum HealthCheckKind {
    Http(HttpHealthCheck),
    Tcp(TcpHealthCheck),
}

#[derive(Debug, Clone, PartialEq)]
pub struct HttpHealthCheck {
    /// Host header; empty = the cluster name.
    pub host: String,
    pub path: String,
    pub method: String,
    pub expected_statuses: Vec<Int64Range>,
    pub request_headers_to_add: Vec<HeaderValueOption>,
    pub request_headers_to_remove: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpHealthCheck {
    /// Bytes to send (empty = connect-only check).
    pub send: Vec<u8>,
    /// Byte blocks that must all be found, in order, in the response.
    pub receive: Vec<Vec<u8>>,
}

fn decode_payload(d: &mut Decoder, node: &Node, path: &str) -> Option<Vec<u8>> {
    let mut f = Fields::of(d, node, path)?;
    let text: Option<String> = f.opt(d, "text");
    f.unsupported(d, &["binary"]);
    f.finish(d);
    let text = text?;
    match hex_decode(&text) {
        Some(b) => Some(b),
        None => {
            d.invalid(node, &format!("{path}.text"), "payload text must be hex");
            None
        }
    }
}

fn hex_decode(s: &str) -> Option<Vec<u8>> {
    let s = s.trim();
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
}

impl Decode for HealthCheck {
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::of(d, node, path)?;
        let timeout: Option<Duration> = f.req(d, "timeout");
        let interval: Option<Duration> = f.req(d, "interval");
        let unhealthy_threshold: Option<u32> = f.req(d, "unhealthy_threshold");
        let healthy_threshold: Option<u32> = f.req(d, "healthy_threshold");
        let initial_jitter = f.or(d, "initial_jitter", Duration::ZERO);
        let interval_jitter = f.or(d, "interval_jitter", Duration::ZERO);
        let interval_jitter_percent = f.or(d, "interval_jitter_percent", 0u32);
        let reuse_connection = f.or(d, "reuse_connection", true);
        let no_traffic_interval = f.or(d, "no_traffic_interval", Duration::from_secs(60));
        let no_traffic_healthy_interval = f.opt(d, "no_traffic_healthy_interval");
        let unhealthy_interval: Option<Duration> = f.opt(d, "unhealthy_interval");
        let unhealthy_edge_interval: Option<Duration> = f.opt(d, "unhealthy_edge_interval");
        let healthy_edge_interval: Option<Duration> = f.opt(d, "healthy_edge_interval");
        let always_log_health_check_failures = f.or(d, "always_log_health_check_failures", false);
        let http = f.take("http_health_check");
        let http_path = f.field_path("http_health_check");
        let tcp = f.take("tcp_health_check");
        let tcp_path = f.field_path("tcp_health_check");
        f.unsupported(
            d,
            &["grpc_health_check", "custom_health_check", "tls_options", "transport_socket_match_criteria"],
        );
        f.ignored(d, &["event_log_path", "event_logger", "event_service", "always_log_health_check_success"]);
        f.ignored(d, &["alt_port"]);
        let line = f.line();
        f.finish(d);
        let kind = match (http, tcp) {
            (Some(n), None) => {
                let mut h = Fields::of(d, n, &http_path)?;
                let host = h.or(d, "host", String::new());
                let hc_path: Option<String> = h.req(d, "path");
                let method = match h.take("method") {
                    Some(m) => scalar_upper(d, m, &format!("{http_path}.method")),
                    None => "GET".to_string(),
                };
                let expected_statuses: Vec<Int64Range> = h.list(d, "expected_statuses");
                let request_headers_to_add = h.list(d, "request_headers_to_add");
                let request_headers_to_remove = h.list(d, "request_headers_to_remove");
                h.unsupported(
                    d,
                    &[
                        "send",
                        "receive",
                        "response_buffer_size",
                        "retriable_statuses",
                        "codec_client_type",
                        "service_name_matcher",
                    ],
                );
                h.finish(d);
                for r in &expected_statuses {
                    if r.start < 100 || r.end > 600 {
                        d.invalid(
                            n,
                            &format!("{http_path}.expected_statuses"),
                            "status ranges must lie within [100, 600)",
                        );
                    }
                }
                let hc_path = hc_path?;
                if hc_path.is_empty() {
                    d.invalid(n, &format!("{http_path}.path"), "must not be empty");
                }
                HealthCheckKind::Http(HttpHealthCheck {
                    host,
                    path: hc_path,
                    method,
                    expected_statuses: if expected_statuses.is_empty() {
                        vec![Int64Range { start: 200, end: 201 }]
                    } else {
                        expected_statuses
                    },
                    request_headers_to_add,
                    request_headers_to_remove,
                })
            }
            (None, Some(n)) => {
                let mut t = Fields::of(d, n, &tcp_path)?;
                let send = match t.take("send") {
                    Some(p) => decode_payload(d, p, &format!("{tcp_path}.send")).unwrap_or_default(),
                    None => Vec::new(),
                };
                let receive = match t.take("receive") {
                    Some(Node { value: Value::Seq(items), .. }) => items
                        .iter()
                        .enumerate()
                        .filter_map(|(i, p)| decode_payload(d, p, &format!("{tcp_path}.receive[{i}]")))
                        .collect(),
                    Some(other) => {
                        d.invalid(other, &format!("{tcp_path}.receive"), "expected a list");
                        Vec::new()
                    }
                    None => Vec::new(),
                };
                t.unsupported(d, &["proxy_protocol_config"]);
                t.finish(d);
                HealthCheckKind::Tcp(TcpHealthCheck { send, receive })
            }
            (Some(_), Some(_)) => {
                d.error(ErrorKind::Invalid, path, line, "set only one of http_health_check and tcp_health_check");
                return None;
            }
            (None, None) => {
                d.error(ErrorKind::Missing, path, line, "a health check needs http_health_check or tcp_health_check");
                return None;
            }
        };
        let interval = interval?;
        let timeout = timeout?;
        if interval.is_zero() || timeout.is_zero() {
            d.error(ErrorKind::Invalid, path, line, "interval and timeout must be greater than 0");
        }
        Some(HealthCheck {
            timeout,
            interval,
            initial_jitter,
            interval_jitter,
            interval_jitter_percent,
            unhealthy_threshold: unhealthy_threshold?,
            healthy_threshold: healthy_threshold?,
            reuse_connection,
            no_traffic_interval,
            no_traffic_healthy_interval,
            unhealthy_interval: unhealthy_interval.unwrap_or(interval),
            unhealthy_edge_interval: unhealthy_edge_interval.unwrap_or(unhealthy_interval.unwrap_or(interval)),
            healthy_edge_interval: healthy_edge_interval.unwrap_or(interval),
            always_log_health_check_failures,
            kind,
        })
    }
}

fn scalar_upper(d: &mut Decoder, node: &Node, path: &str) -> String {
    crate::decode::scalar(d, node, path, "an HTTP method").map(|s| s.to_ascii_uppercase()).unwrap_or_default()
}

#[derive(Debug, Clone, PartialEq)]
struct CommonLbConfig {
    healthy_panic_threshold: f64,
}

impl Default for CommonLbConfig {
    fn default() -> Self {
        CommonLbConfig { healthy_panic_threshold: 50.0 }
    }
}

impl Decode for CommonLbConfig {
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::of(d, node, path)?;
        let t: Option<Percent> = f.opt(d, "healthy_panic_threshold");
        f.default_only(
            d,
            "update_merge_window",
            Duration::ZERO,
            "sluice applies host set changes at once (0s); remove it or set 0s",
        );
        f.default_only(
            d,
            "ignore_new_hosts_until_first_hc",
            false,
            "sluice balances onto a new host before its first health check; remove it",
        );
        f.default_only(
            d,
            "close_connections_on_host_set_change",
            false,
            "sluice keeps pooled connections when the host set changes; remove it",
        );
        f.empty_only(
            d,
            "consistent_hashing_lb_config",
            "consistent hashing options (hostname hashing, bounded load) are not supported; remove them",
        );
        f.empty_only(d, "override_host_status", "host overrides are not supported; remove it");
        f.unsupported(d, &["zone_aware_lb_config", "locality_weighted_lb_config"]);
        f.finish(d);
        Some(CommonLbConfig { healthy_panic_threshold: t.map_or(50.0, |p| p.0) })
    }
}

/// `Cluster.RingHashLbConfig`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RingHashLbConfig {
    pub minimum_ring_size: u64,
    pub maximum_ring_size: u64,
    pub hash_function: HashFunction,
}

impl Default for RingHashLbConfig {
    fn default() -> Self {
        RingHashLbConfig {
            minimum_ring_size: 1024,
            maximum_ring_size: 8 * 1024 * 1024,
            hash_function: HashFunction::XxHash,
        }
    }
}

impl Decode for RingHashLbConfig {
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::of(d, node, path)?;
        let z = RingHashLbConfig::default();
        let c = RingHashLbConfig {
            minimum_ring_size: f.or(d, "minimum_ring_size", z.minimum_ring_size),
            maximum_ring_size: f.or(d, "maximum_ring_size", z.maximum_ring_size),
            hash_function: f.or(d, "hash_function", z.hash_function),
        };
        f.finish(d);
        if c.minimum_ring_size == 0
            || c.minimum_ring_size > c.maximum_ring_size
            || c.maximum_ring_size > 8 * 1024 * 1024
        {
            d.invalid(node, path, "need 0 < minimum_ring_size <= maximum_ring_size <= 8388608");
        }
        if c.hash_function == HashFunction::MurmurHash2 {
            d.error(ErrorKind::Unsupported, &format!("{path}.hash_function"), node.line, "only XX_HASH is supported");
        }
        Some(c)
    }
}

use crate::hcm::Http2ProtocolOptions;
use crate::upstream_http::{decode_extension_protocol_options, upstream_http1_options};
pub use crate::upstream_http::{HttpProtocolOptions, UpstreamCodec, UpstreamProtocol};

/// `core.v3.HttpProtocolOptions` (shared by the HCM and clusters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommonHttpProtocolOptions {
    /// `None` when `0s` disables it; Envoy's default is 1h.
    pub idle_timeout: Option<Duration>,
    pub max_connection_duration: Option<Duration>,
    pub max_headers_count: u32,
    pub max_stream_duration: Option<Duration>,
    pub headers_with_underscores_action: HeadersWithUnderscoresAction,
    pub max_requests_per_connection: Option<u32>,
}

proto_enum! {
    /// `HttpProtocolOptions.HeadersWithUnderscoresAction`.
    pub enum HeadersWithUnderscoresAction {
        Allow = ("ALLOW", 0),
        RejectRequest = ("REJECT_REQUEST", 1),
        DropHeader = ("DROP_HEADER", 2),
    }
}

impl Default for CommonHttpProtocolOptions {
    fn default() -> Self {
        CommonHttpProtocolOptions {
            idle_timeout: Some(Duration::from_secs(3600)),
            max_connection_duration: None,
            max_headers_count: 100,
            max_stream_duration: None,
            headers_with_underscores_action: HeadersWithUnderscoresAction::Allow,
            max_requests_per_connection: None,
        }
    }
}

impl Decode for CommonHttpProtocolOptions {
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::of(d, node, path)?;
        let idle: Duration = f.or(d, "idle_timeout", Duration::from_secs(3600));
        let max_connection_duration: Option<Duration> = f.opt(d, "max_connection_duration");
        let max_headers_count = f.or(d, "max_headers_count", 100u32);
        let max_stream_duration: Option<Duration> = f.opt(d, "max_stream_duration");
        let headers_with_underscores_action =
            f.or(d, "headers_with_underscores_action", HeadersWithUnderscoresAction::Allow);
        let max_requests_per_connection: Option<u32> = f.opt(d, "max_requests_per_connection");
        f.default_only(
            d,
            "max_response_headers_kb",
            80u32,
            "sluice limits response headers to Envoy's default of 80 KiB; remove it",
        );
        f.finish(d);
        if max_headers_count == 0 {
            d.invalid(node, &format!("{path}.max_headers_count"), "must be at least 1");
        }
        Some(CommonHttpProtocolOptions {
            idle_timeout: nonzero(idle),
            max_connection_duration: max_connection_duration.and_then(nonzero),
            max_headers_count,
            max_stream_duration: max_stream_duration.and_then(nonzero),
            headers_with_underscores_action,
            max_requests_per_connection: max_requests_per_connection.filter(|n| *n > 0),
        })
    }
}
