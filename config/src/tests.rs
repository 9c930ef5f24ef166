//! Bootstrap-level tests: Envoy's defaults, both spellings, durations, error paths.

use std::time::Duration;

use crate::cluster::{DiscoveryType, DnsLookupFamily, LbPolicy};
use crate::error::ErrorKind;
use crate::listener::{ConnectionSourceType, ListenerFilterKind, NetworkFilterKind};
use crate::tcp_proxy::TcpProxyCluster;
use crate::{load_str, ConfigErrors};

const MINIMAL: &str = r#"
static_resources:
  listeners:
  - name: l
    address: { socket_address: { address: 0.0.0.0, port_value: 10000 } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: t
          cluster: c
  clusters:
  - name: c
    load_assignment:
      cluster_name: c
      endpoints:
      - lb_endpoints:
        - endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: 8080 } } }
"#;

fn errors(yaml: &str) -> ConfigErrors {
    load_str(yaml).expect_err("config should be rejected")
}

#[test]
fn listener_defaults_are_envoys() {
    let b = load_str(MINIMAL).unwrap().bootstrap;
    let l = &b.listeners[0];
    assert_eq!(l.name, "l");
    assert!(l.bind_to_port, "bind_to_port defaults to true");
    assert!(!l.use_original_dst);
    assert_eq!(l.per_connection_buffer_limit_bytes, 1024 * 1024);
    assert_eq!(l.listener_filters_timeout, Duration::from_secs(15));
    assert!(!l.continue_on_listener_filters_timeout);
    assert!(l.default_filter_chain.is_none());
    assert!(l.listener_filters.is_empty());
    assert_eq!(l.stat_name(), "0.0.0.0_10000");
    assert!(!l.address.ipv4_compat);
    let m = &l.filter_chains[0].filter_chain_match;
    assert_eq!(m.destination_port, None);
    assert!(m.prefix_ranges.is_empty() && m.server_names.is_empty() && m.application_protocols.is_empty());
    assert_eq!(m.transport_protocol, "");
    assert_eq!(m.source_type, ConnectionSourceType::Any);
}

#[test]
fn tcp_proxy_defaults_are_envoys() {
    let b = load_str(MINIMAL).unwrap().bootstrap;
    let NetworkFilterKind::TcpProxy(tp) = &b.listeners[0].filter_chains[0].filters[0].kind else {
        panic!("not a tcp_proxy")
    };
    assert_eq!(tp.stat_prefix, "t");
    assert_eq!(tp.cluster, TcpProxyCluster::Cluster("c".into()));
    assert_eq!(tp.idle_timeout, Some(Duration::from_secs(3600)), "idle_timeout defaults to 1h");
    assert_eq!(tp.max_connect_attempts, 1);
    assert_eq!(tp.max_downstream_connection_duration, None);
}

#[test]
fn cluster_defaults_are_envoys() {
    let b = load_str(MINIMAL).unwrap().bootstrap;
    let c = &b.clusters[0];
    assert_eq!(c.discovery_type, DiscoveryType::Static);
    assert_eq!(c.connect_timeout, Duration::from_secs(5));
    assert_eq!(c.lb_policy, LbPolicy::RoundRobin);
    assert_eq!(c.per_connection_buffer_limit_bytes, 1024 * 1024);
    assert_eq!(c.dns_lookup_family, DnsLookupFamily::Auto);
    assert_eq!(c.dns_refresh_rate, Duration::from_millis(5000));
    assert_eq!(c.cleanup_interval, Duration::from_millis(5000));
    assert_eq!(c.healthy_panic_threshold, 50.0);
    let cb = &c.circuit_breakers;
    assert_eq!((cb.max_connections, cb.max_pending_requests, cb.max_requests, cb.max_retries), (1024, 1024, 1024, 3));
    assert!(c.outlier_detection.is_none());
    assert!(c.health_checks.is_empty());
    assert_eq!(c.ring_hash_lb_config.minimum_ring_size, 1024);
    assert_eq!(c.ring_hash_lb_config.maximum_ring_size, 8388608);
    assert_eq!(c.maglev_table_size, 65537);
    assert_eq!(c.least_request_choice_count, 2);
    assert_eq!(c.http_protocol_options.common.idle_timeout, Some(Duration::from_secs(3600)));
    let (e, prio) = c.load_assignment.hosts().next().unwrap();
    assert_eq!(e.load_balancing_weight, 1);
    assert_eq!(prio, 0);
}

#[test]
fn retry_budget_defaults_are_envoys() {
    let with = |budget: &str| {
        let yaml = MINIMAL.replace(
            "  - name: c\n",
            &format!("  - name: c\n    circuit_breakers: {{ thresholds: [{{ retry_budget: {budget} }}] }}\n"),
        );
        load_str(&yaml).map(|l| l.bootstrap.clusters[0].circuit_breakers.retry_budget)
    };
    let b = with("{}").unwrap().unwrap();
    assert_eq!((b.budget_percent, b.min_retry_concurrency), (20.0, 3));
    let b = with("{ budget_percent: { value: 50.5 }, min_retry_concurrency: 0 }").unwrap().unwrap();
    assert_eq!((b.budget_percent, b.min_retry_concurrency), (50.5, 0));
    assert!(with("{ budget_percent: { value: 120 } }").is_err());
    assert!(load_str(MINIMAL).unwrap().bootstrap.clusters[0].circuit_breakers.retry_budget.is_none());
}

#[test]
fn outlier_detection_defaults_are_envoys() {
    let yaml = MINIMAL.replace("  - name: c\n", "  - name: c\n    outlier_detection: {}\n");
    let b = load_str(&yaml).unwrap().bootstrap;
    let o = b.clusters[0].outlier_detection.as_ref().unwrap();
    assert_eq!(o.consecutive_5xx, 5);
    assert_eq!(o.interval, Duration::from_secs(10));
    assert_eq!(o.base_ejection_time, Duration::from_secs(30));
    assert_eq!(o.max_ejection_time, Duration::from_secs(300));
    assert_eq!(o.max_ejection_percent, 10);
    assert_eq!(o.enforcing_consecutive_5xx, 100);
    assert_eq!(o.consecutive_gateway_failure, 5);
    assert_eq!(o.enforcing_consecutive_gateway_failure, 0);
    assert_eq!(o.success_rate_stdev_factor, 1900);
    assert_eq!(o.failure_percentage_threshold, 85);
    assert!(o.successful_active_health_check_uneject_host);
}

#[test]
fn lower_camel_case_is_accepted() {
    let yaml = r#"
staticResources:
  listeners:
  - name: l
    useOriginalDst: true
    bindToPort: false
    perConnectionBufferLimitBytes: 4096
    listenerFiltersTimeout: 2.5s
    address: { socketAddress: { address: 0.0.0.0, portValue: 15001 } }
    listenerFilters:
    - name: envoy.filters.listener.original_dst
      typedConfig: { "@type": type.googleapis.com/envoy.extensions.filters.listener.original_dst.v3.OriginalDst }
    filterChains:
    - filterChainMatch: { destinationPort: 80, prefixRanges: [{ addressPrefix: 10.0.0.0, prefixLen: 8 }] }
      filters:
      - name: tcp
        typedConfig:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          statPrefix: t
          weightedClusters: { clusters: [{ name: c, weight: 3 }] }
          idleTimeout: 0s
          maxConnectAttempts: "3"
  clusters:
  - name: c
    type: STRICT_DNS
    connectTimeout: 0.25s
    lbPolicy: LEAST_REQUEST
    dnsLookupFamily: V4_ONLY
    loadAssignment:
      clusterName: c
      endpoints:
      - lbEndpoints:
        - endpoint: { address: { socketAddress: { address: localhost, portValue: 8080 } } }
          loadBalancingWeight: 7
"#;
    let b = load_str(yaml).unwrap().bootstrap;
    let l = &b.listeners[0];
    assert!(l.use_original_dst && !l.bind_to_port);
    assert_eq!(l.per_connection_buffer_limit_bytes, 4096);
    assert_eq!(l.listener_filters_timeout, Duration::from_millis(2500));
    assert_eq!(l.listener_filters[0].kind, ListenerFilterKind::OriginalDst);
    let m = &l.filter_chains[0].filter_chain_match;
    assert_eq!(m.destination_port, Some(80));
    assert_eq!(m.prefix_ranges[0].to_string(), "10.0.0.0/8");
    let NetworkFilterKind::TcpProxy(tp) = &l.filter_chains[0].filters[0].kind else { panic!("not a tcp_proxy") };
    assert_eq!(tp.idle_timeout, None, "0s disables idle_timeout");
    assert_eq!(tp.max_connect_attempts, 3, "uint32 wrapper given as a string");
    assert!(matches!(&tp.cluster, TcpProxyCluster::Weighted(w) if w[0].weight == 3));
    let c = &b.clusters[0];
    assert_eq!(c.discovery_type, DiscoveryType::StrictDns);
    assert_eq!(c.connect_timeout, Duration::from_millis(250));
    assert_eq!(c.lb_policy, LbPolicy::LeastRequest);
    assert_eq!(c.dns_lookup_family, DnsLookupFamily::V4Only);
    assert_eq!(c.load_assignment.hosts().next().unwrap().0.load_balancing_weight, 7);
}

#[test]
fn json_is_accepted() {
    let json = r#"{"static_resources": {"clusters": [{"name": "c", "connect_timeout": "1s", "type": 0,
        "load_assignment": {"cluster_name": "c", "endpoints": [{"lb_endpoints": [{"endpoint":
        {"address": {"socket_address": {"address": "10.0.0.1", "port_value": 80}}}}]}]}}]}}"#;
    let b = load_str(json).unwrap().bootstrap;
    assert_eq!(b.clusters[0].discovery_type, DiscoveryType::Static, "enum by number");
    assert_eq!(b.clusters[0].connect_timeout, Duration::from_secs(1));
}

#[test]
fn misspelled_field_names_path_and_line() {
    let e = errors(&MINIMAL.replace("cluster_name: c", "cluster_nam: c"));
    assert_eq!(e.0.len(), 2, "{e}");
    let unknown = e.0.iter().find(|e| e.kind == ErrorKind::UnknownField).unwrap();
    assert_eq!(unknown.path, "static_resources.clusters[0].load_assignment.cluster_nam");
    assert_eq!(unknown.line, 16);
    assert!(unknown.to_string().contains("did you mean `cluster_name`"), "{unknown}");
    let missing = e.0.iter().find(|e| e.kind == ErrorKind::Missing).unwrap();
    assert_eq!(missing.path, "static_resources.clusters[0].load_assignment.cluster_name");
}

#[test]
fn unsupported_and_ignored_fields() {
    let e = errors(&MINIMAL.replace("static_resources:", "dynamic_resources: { ads_config: {} }\nstatic_resources:"));
    assert_eq!(e.0[0].kind, ErrorKind::Missing);
    assert_eq!(e.0[0].path, "dynamic_resources.ads_config.api_type");
    let l =
        load_str(&MINIMAL.replace("static_resources:", "node: { id: n1, cluster: c1 }\nstatic_resources:")).unwrap();
    assert_eq!(l.warnings.len(), 1);
    assert_eq!(l.warnings[0].path, "node");
}

#[test]
fn bad_durations_and_ranges() {
    let e = errors(&MINIMAL.replace("  - name: c\n", "  - name: c\n    connect_timeout: 5\n"));
    assert!(e.0[0].message.contains("duration"), "{e}");
    assert_eq!(e.0[0].path, "static_resources.clusters[0].connect_timeout");
    let e = errors(&MINIMAL.replace("port_value: 8080", "port_value: 70000"));
    assert!(e.0[0].path.ends_with("socket_address.port_value"), "{e}");
    let e = errors(&MINIMAL.replace("  - name: c\n", "  - name: c\n    connect_timeout: 0s\n"));
    assert!(e.to_string().contains("greater than 0"), "{e}");
}

#[test]
fn cross_references_are_checked() {
    let e = errors(&MINIMAL.replace("cluster: c", "cluster: missing"));
    assert!(e.0[0].to_string().contains("unknown cluster `missing`"), "{e}");
    assert_eq!(e.0[0].kind, ErrorKind::Reference);
    let two_clusters = MINIMAL.to_string() + "  - name: c\n    load_assignment: { cluster_name: c, endpoints: [] }\n";
    let e = errors(&two_clusters);
    assert!(e.to_string().contains("duplicate cluster name `c`"), "{e}");
}

#[test]
fn duplicate_listener_names_and_addresses() {
    let doubled = MINIMAL.replace(
        "  clusters:",
        r#"  - name: l
    address: { socket_address: { address: 0.0.0.0, port_value: 10000 } }
    filter_chains: [{ filters: [] }]
  clusters:"#,
    );
    let e = errors(&doubled);
    let text = e.to_string();
    assert!(text.contains("duplicate listener name `l`"), "{text}");
    assert!(text.contains("listener address 0.0.0.0:10000 is already used"), "{text}");
}

#[test]
fn original_dst_cluster_needs_cluster_provided() {
    let yaml = MINIMAL.replace("  - name: c\n", "  - name: c\n    type: ORIGINAL_DST\n").replace(
        "    load_assignment:\n      cluster_name: c\n      endpoints:\n      - lb_endpoints:\n        - endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: 8080 } } }\n",
        "",
    );
    let e = errors(&yaml);
    assert!(e.to_string().contains("Only 'CLUSTER_PROVIDED' is allowed"), "{e}");
}

#[test]
fn extensions_are_selected_by_type_url_not_name() {
    let yaml = MINIMAL.replace("name: envoy.filters.network.tcp_proxy", "name: anything.at.all");
    assert!(load_str(&yaml).is_ok());
    let yaml = MINIMAL.replace("tcp_proxy.v3.TcpProxy", "tcp_proxy.v3.Nope");
    let e = errors(&yaml);
    assert!(e.to_string().contains("unsupported network filter type"), "{e}");
}

#[test]
fn syntax_errors_have_a_line() {
    let e = errors("static_resources:\n  listeners: [\n");
    assert_eq!(e.0[0].kind, ErrorKind::Syntax);
    assert!(e.0[0].line >= 2);
}

#[test]
fn max_ejection_time_follows_base_and_must_not_be_below_it() {
    let with = |od: &str| MINIMAL.replace("  - name: c\n", &format!("  - name: c\n    outlier_detection: {od}\n"));
    let b = load_str(&with("{ base_ejection_time: 400s }")).unwrap().bootstrap;
    let o = b.clusters[0].outlier_detection.as_ref().unwrap();
    assert_eq!(o.max_ejection_time, Duration::from_secs(400), "absent: max(300s, base)");
    let e = errors(&with("{ base_ejection_time: 10s, max_ejection_time: 5s }"));
    assert!(e.to_string().contains("cannot be smaller than base_ejection_time"), "{e}");
    assert!(e.0[0].path.ends_with("outlier_detection.max_ejection_time"), "{e}");
}

#[test]
fn more_than_one_health_check_is_refused_as_envoy_does() {
    let hc = "{ timeout: 1s, interval: 1s, unhealthy_threshold: 1, healthy_threshold: 1, tcp_health_check: {} }";
    let yaml = MINIMAL.replace("  - name: c\n", &format!("  - name: c\n    health_checks: [{hc}, {hc}]\n"));
    let e = errors(&yaml);
    assert!(e.to_string().contains("Multiple health checks not supported"), "{e}");
    assert_eq!(e.0[0].path, "static_resources.clusters[0].health_checks");
    let one = MINIMAL.replace("  - name: c\n", &format!("  - name: c\n    health_checks: [{hc}]\n"));
    assert_eq!(load_str(&one).unwrap().bootstrap.clusters[0].health_checks.len(), 1);
}

#[test]
fn filter_chain_transport_socket_connect_timeout() {
    let b = load_str(MINIMAL).unwrap().bootstrap;
    assert_eq!(b.listeners[0].filter_chains[0].transport_socket_connect_timeout, None, "no limit by default");
    let with = |t: &str| {
        MINIMAL.replace("    - filters:\n", &format!("    - transport_socket_connect_timeout: {t}\n      filters:\n"))
    };
    let b = load_str(&with("2.5s")).unwrap().bootstrap;
    assert_eq!(b.listeners[0].filter_chains[0].transport_socket_connect_timeout, Some(Duration::from_millis(2500)));
    let b = load_str(&with("0s")).unwrap().bootstrap;
    assert_eq!(b.listeners[0].filter_chains[0].transport_socket_connect_timeout, None, "0 disables it");
    let e = errors(&with("soon"));
    assert!(e.0[0].path.ends_with("filter_chains[0].transport_socket_connect_timeout"), "{e}");
}

/// Shadows are written as HTTP/1.1: a mirror naming a cluster that speaks HTTP/2
/// upstream is refused with its path, not sent over the wrong protocol.
#[test]
fn mirroring_to_an_http2_cluster_is_refused() {
    let yaml = |protocol: &str| {
        format!(
            r#"
static_resources:
  listeners:
  - address: {{ socket_address: {{ address: 127.0.0.1, port_value: 10000 }} }}
    filter_chains:
    - filters:
      - name: hcm
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: h
          http_filters: [{{ name: router, typed_config: {{ "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }} }}]
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {{ prefix: / }}
                route: {{ cluster: c, request_mirror_policies: [{{ cluster: m }}] }}
  clusters:
  - name: c
    load_assignment: {{ cluster_name: c, endpoints: [{{ lb_endpoints: [{{ endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: 8080 }} }} }} }}] }}] }}
  - name: m
    {protocol}
    load_assignment: {{ cluster_name: m, endpoints: [{{ lb_endpoints: [{{ endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: 8081 }} }} }} }}] }}] }}
"#
        )
    };
    let h2 = "typed_extension_protocol_options: { envoy.extensions.upstreams.http.v3.HttpProtocolOptions: { '@type': type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions, explicit_http_config: { http2_protocol_options: {} } } }";
    let e = errors(&yaml(h2)).to_string();
    assert!(e.contains("routes[0].route.request_mirror_policies[0].cluster"), "{e}");
    assert!(e.contains("speaks HTTP/2"), "{e}");
    load_str(&yaml("connect_timeout: 1s")).expect("an HTTP/1.1 mirror cluster loads");
}

#[test]
fn auto_config_needs_an_alpn_transport_socket() {
    let yaml = |extra: &str| {
        format!(
            r#"
static_resources:
  clusters:
  - name: c
    typed_extension_protocol_options: {{ envoy.extensions.upstreams.http.v3.HttpProtocolOptions: {{ '@type': type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions, auto_config: {{}} }} }}
    {extra}
    load_assignment: {{ cluster_name: c, endpoints: [{{ lb_endpoints: [{{ endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: 8443 }} }} }} }}] }}] }}
"#
        )
    };
    let e = errors(&yaml("connect_timeout: 1s")).to_string();
    assert!(
        e.contains(
            "typed_extension_protocol_options.envoy.extensions.upstreams.http.v3.HttpProtocolOptions.auto_config"
        ),
        "{e}"
    );
    assert!(e.contains("non-ALPN transport socket"), "{e}");
    let tls = "transport_socket: { name: tls, typed_config: { '@type': type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext } }";
    let b = load_str(&yaml(tls)).expect("auto_config over TLS loads");
    assert_eq!(b.bootstrap.clusters[0].http_protocol_options.protocol, crate::upstream_http::UpstreamProtocol::Auto);
}
