//! Real-world configs that must load as in Envoy, and the errors a user of such
//! configs must see: one error per mistake (no follow-on errors), with its line.

use crate::cluster::{DiscoveryType, LbPolicy};
use crate::hcm::CodecType;
use crate::listener::NetworkFilterKind;
use crate::route::{Action, IdleTimeout};
use crate::{decode_str, load_str, ConfigErrors};

/// One HTTP listener routing to cluster `c`; `hcm_extra` and `cluster_extra` are
/// spliced in (indented 10 and 4), `router_type` is the router filter's type URL.
fn http(hcm_extra: &str, router_type: &str, cluster_extra: &str) -> String {
    format!(
        r#"static_resources:
  listeners:
  - name: l
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: 10000 }} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress
{hcm_extra}          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {{ prefix: "/" }}
                route: {{ cluster: c }}
          http_filters:
          - name: envoy.filters.http.router
            typed_config: {{ "@type": "type.googleapis.com/{router_type}" }}
  clusters:
  - name: c
{cluster_extra}"#
    )
}

const ROUTER: &str = "envoy.extensions.filters.http.router.v3.Router";
const ENDPOINT: &str = "    load_assignment:\n      cluster_name: c\n      endpoints:\n      - lb_endpoints:\n        - endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: 8080 } } }\n";

fn errors(yaml: &str) -> ConfigErrors {
    load_str(yaml).expect_err("config should be rejected")
}

#[test]
fn enums_are_case_insensitive_as_in_envoys_loader() {
    let dns = "    type: strict_dns\n    lb_policy: round_robin\n    dns_lookup_family: v4_only\n    load_assignment:\n      cluster_name: c\n      endpoints:\n      - lb_endpoints:\n        - endpoint: { address: { socket_address: { address: backend.test, port_value: 80 } } }\n";
    let b = load_str(&http("          codec_type: auto\n", ROUTER, dns)).unwrap().bootstrap;
    assert_eq!(b.clusters[0].discovery_type, DiscoveryType::StrictDns);
    assert_eq!(b.clusters[0].lb_policy, LbPolicy::RoundRobin);
    let NetworkFilterKind::HttpConnectionManager(hcm) = &b.listeners[0].filter_chains[0].filters[0].kind else {
        panic!("not an HCM")
    };
    assert_eq!(hcm.codec_type, CodecType::Auto);
    // Numbers still work, and mixed case too.
    let b = load_str(&http(
        "          codec_type: 1\n",
        ROUTER,
        &format!("    type: Static\n    lb_policy: 3\n{ENDPOINT}"),
    ))
    .unwrap()
    .bootstrap;
    assert_eq!(b.clusters[0].discovery_type, DiscoveryType::Static);
    assert_eq!(b.clusters[0].lb_policy, LbPolicy::Random);
    let e = errors(&http("", ROUTER, &format!("    lb_policy: round_robbin\n{ENDPOINT}"))).to_string();
    assert!(e.contains("unknown value `round_robbin`"), "{e}");
}

#[test]
fn static_cluster_without_load_assignment_loads_as_a_black_hole() {
    let l = load_str(&http("", ROUTER, "    type: STATIC\n    connect_timeout: 10s\n")).unwrap();
    assert_eq!(l.bootstrap.clusters[0].discovery_type, DiscoveryType::Static);
    assert_eq!(l.bootstrap.clusters[0].load_assignment.endpoint_count(), 0);
}

#[test]
fn a_mistyped_filter_type_is_one_error_not_two() {
    let e = errors(&http("", "envoy.extensions.filters.http.router.v3.Routr", ENDPOINT));
    assert_eq!(e.0.len(), 1, "{e}");
    assert!(
        e.0[0].message.contains("unsupported HTTP filter type `envoy.extensions.filters.http.router.v3.Routr`"),
        "{e}"
    );
    assert!(!e.to_string().contains("http_filters is empty"), "{e}");
}

#[test]
fn a_bad_cluster_type_is_one_error_not_two() {
    let cluster = "    type: strictdns\n    load_assignment:\n      cluster_name: c\n      endpoints:\n      - lb_endpoints:\n        - endpoint: { address: { socket_address: { address: backend.test, port_value: 80 } } }\n";
    let e = errors(&http("", ROUTER, cluster));
    assert_eq!(e.0.len(), 1, "{e}");
    assert_eq!(e.0[0].path, "static_resources.clusters[0].type");
    assert!(!e.to_string().contains("is not an IP address"), "{e}");
}

#[test]
fn an_empty_config_warns_that_nothing_will_listen() {
    for text in [
        "",
        "static_resources: {}\n",
        "admin: { address: { socket_address: { address: 127.0.0.1, port_value: 9901 } } }\n",
    ] {
        let l = load_str(text).unwrap();
        let w: Vec<String> = l.warnings.iter().map(ToString::to_string).collect();
        assert!(w.iter().any(|w| w.contains("no listeners: nothing will listen")), "{text:?}: {w:?}");
    }
    let l = load_str(&http("", ROUTER, ENDPOINT)).unwrap();
    assert!(l.warnings.iter().all(|w| !w.message.contains("nothing will listen")));
}

#[test]
fn a_yaml_syntax_error_points_at_the_line_where_it_starts() {
    // An unclosed flow list: the parser notices only at the end of the document.
    let e = errors("static_resources:\n  clusters: [ { name: a },\n\n\n  listeners: []\n");
    assert_eq!(e.0.len(), 1, "{e}");
    assert_eq!(e.0[0].line, 2, "{e}");
    // A key indented less than its siblings.
    let e = errors("static_resources:\n  clusters:\n  - name: a\n     connect_timeout: 1s\n");
    assert_eq!(e.0[0].line, 4, "{e}");
}

#[test]
fn a_partly_broken_config_keeps_what_decoded() {
    let d = decode_str(&http("          bogus: 1\n", ROUTER, ENDPOINT));
    assert_eq!(d.errors.len(), 1, "{:?}", d.errors);
    let b = d.bootstrap.expect("the bootstrap as far as it decoded");
    assert_eq!(b.clusters.len(), 1);
}

#[test]
fn an_unknown_tracing_provider_is_refused_and_http2_options_are_decoded() {
    let e = errors(&http(
        "          tracing: {provider: {name: envoy.tracers.datadog, typed_config: {'@type': type.googleapis.com/envoy.config.trace.v3.DatadogConfig}}}\n",
        ROUTER,
        ENDPOINT,
    ));
    assert!(e.to_string().contains("tracing provider `envoy.tracers.datadog`"), "{e}");
    let l = load_str(&http("          codec_type: HTTP1\n          http2_protocol_options: {}\n", ROUTER, ENDPOINT));
    assert!(l.is_ok(), "{:?}", l.err());
    let l = load_str(&http(
        "          http2_protocol_options: { max_concurrent_streams: 10, initial_stream_window_size: 65536 }\n",
        ROUTER,
        ENDPOINT,
    ));
    assert!(l.is_ok(), "{:?}", l.err());
    let e = errors(&http("          http2_protocol_options: { allow_connect: true }\n", ROUTER, ENDPOINT));
    assert!(e.to_string().contains("http2_protocol_options.allow_connect"), "{e}");
    let e = errors(&http("          http2_protocol_options: { max_concurrent_streams: 0 }\n", ROUTER, ENDPOINT));
    assert!(e.to_string().contains("http2_protocol_options.max_concurrent_streams"), "{e}");
    let e = errors(&http("          http2_protocol_options: { initial_stream_window_size: 100 }\n", ROUTER, ENDPOINT));
    assert!(e.to_string().contains("initial_stream_window_size"), "{e}");
    let e = errors(&http("          http2_protocol_options: { max_outbound_frames: 0 }\n", ROUTER, ENDPOINT));
    assert!(e.to_string().contains("max_outbound_frames"), "{e}");
    let e = errors(&http("          http2_protocol_options: { connection_keepalive: {} }\n", ROUTER, ENDPOINT));
    assert!(e.to_string().contains("connection_keepalive"), "{e}");
}

#[test]
fn fields_that_change_behaviour_are_refused_unless_at_their_default() {
    let e = errors(&http(
        "",
        ROUTER,
        &format!("    upstream_bind_config: {{ source_address: {{ address: 10.0.0.1, port_value: 0 }} }}\n{ENDPOINT}"),
    ));
    assert!(e.to_string().contains("static_resources.clusters[0].upstream_bind_config"), "{e}");
    assert!(load_str(&http("", ROUTER, &format!("    close_connections_on_host_health_failure: false\n{ENDPOINT}")))
        .is_ok());
    let e = errors(&http("", ROUTER, &format!("    close_connections_on_host_health_failure: true\n{ENDPOINT}")));
    assert!(e.to_string().contains("`close_connections_on_host_health_failure` is not supported"), "{e}");
}

#[test]
fn inert_fields_warn_once_with_their_reason() {
    let yaml = format!(
        "node: {{ id: a, cluster: b }}\n{}",
        http("", ROUTER, &format!("    track_cluster_stats: {{ timeout_budgets: true }}\n{ENDPOINT}"))
    );
    let l = load_str(&yaml).unwrap();
    let w: Vec<String> = l.warnings.iter().map(ToString::to_string).collect();
    assert!(w.iter().any(|w| w.starts_with("node (line 1): has no effect in sluice: identifies the proxy")), "{w:?}");
    assert!(w.iter().any(|w| w.starts_with("static_resources.clusters[0].track_cluster_stats")), "{w:?}");
}

#[test]
fn route_max_stream_duration_overrides_the_connection_managers() {
    let route = |msd: &str| {
        let yaml = http("", ROUTER, ENDPOINT)
            .replace("route: { cluster: c }", &format!("route: {{ cluster: c, max_stream_duration: {msd} }}"));
        let b = load_str(&yaml).unwrap().bootstrap;
        let NetworkFilterKind::HttpConnectionManager(hcm) = &b.listeners[0].filter_chains[0].filters[0].kind else {
            panic!("not an HCM")
        };
        let Action::Route(a) = &hcm.route_config.virtual_hosts[0].routes[0].action else { panic!("not a route") };
        a.max_stream_duration
    };
    assert_eq!(route("{ max_stream_duration: 2s }"), IdleTimeout::After(std::time::Duration::from_secs(2)));
    assert_eq!(route("{ max_stream_duration: 0s }"), IdleTimeout::Disabled);
    assert_eq!(route("{}"), IdleTimeout::Inherit);
    let yaml = http("", ROUTER, ENDPOINT).replace(
        "route: { cluster: c }",
        "route: { cluster: c, max_stream_duration: { grpc_timeout_header_max: 1s, grpc_timeout_header_offset: 0.1s } }",
    );
    let b = load_str(&yaml).unwrap().bootstrap;
    let NetworkFilterKind::HttpConnectionManager(hcm) = &b.listeners[0].filter_chains[0].filters[0].kind else {
        panic!("not an HCM")
    };
    let Action::Route(a) = &hcm.route_config.virtual_hosts[0].routes[0].action else { panic!("not a route") };
    let g = a.grpc_timeout_header.expect("the gRPC header options");
    assert_eq!((g.max, g.offset), (std::time::Duration::from_secs(1), Some(std::time::Duration::from_millis(100))));
    assert_eq!(a.max_stream_duration, IdleTimeout::Inherit);
}

#[test]
fn tls_inspector_options_are_read_and_checked_as_envoy_does() {
    use crate::listener::{ListenerFilterKind, TlsInspectorOptions};
    let with = |options: &str| {
        http("", ROUTER, ENDPOINT).replace(
            "    filter_chains:\n",
            &format!("    listener_filters:\n    - name: tls\n      typed_config: {{ \"@type\": type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector{options} }}\n    filter_chains:\n"),
        )
    };
    let b = load_str(&with(", max_client_hello_size: 4096, close_connection_on_client_hello_parsing_errors: true"))
        .unwrap()
        .bootstrap;
    assert_eq!(
        b.listeners[0].listener_filters[0].kind,
        ListenerFilterKind::TlsInspector(TlsInspectorOptions {
            max_client_hello_size: Some(4096),
            initial_read_buffer_size: None,
            close_connection_on_client_hello_parsing_errors: true,
        })
    );
    let e = errors(&with(", max_client_hello_size: 70000")).to_string();
    assert!(e.contains("max_client_hello_size of 70000 is greater than maximum of 65536."), "{e}");
    let e = errors(&with(", initial_read_buffer_size: 100")).to_string();
    assert!(e.contains("initial_read_buffer_size 100 must be in 256..=65536"), "{e}");
}

#[test]
fn tcp_backlog_size_is_read() {
    let yaml =
        http("", ROUTER, ENDPOINT).replace("    filter_chains:\n", "    tcp_backlog_size: 77\n    filter_chains:\n");
    assert_eq!(load_str(&yaml).unwrap().bootstrap.listeners[0].tcp_backlog_size, Some(77));
    assert_eq!(load_str(&http("", ROUTER, ENDPOINT)).unwrap().bootstrap.listeners[0].tcp_backlog_size, None);
}

#[test]
fn a_cluster_that_fails_to_decode_is_not_also_an_unknown_cluster() {
    let e =
        errors(&http("", ROUTER, "    connect_timeout: fast\n    name_typo: 1\n").replace("  - name: c\n", "  -\n"));
    let text = e.to_string();
    assert!(text.contains("static_resources.clusters[0].name"), "{text}");
    assert!(!text.contains("unknown cluster"), "a follow-on error: {text}");
}
