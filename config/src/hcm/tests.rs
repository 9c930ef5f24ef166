use std::time::Duration;

use super::*;
use crate::cluster::HeadersWithUnderscoresAction;
use crate::core::{Denominator, FractionalPercent};
use crate::fault::{FaultAbortKind, FaultDelayKind};
use crate::listener::NetworkFilterKind;

const ROUTER: &str = "{name: envoy.filters.http.router, typed_config: {'@type': type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}";

fn bootstrap(hcm_fields: &str) -> String {
    format!(
        r#"static_resources:
  listeners:
  - name: l
    address: {{socket_address: {{address: 127.0.0.1, port_value: 8080}}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
{hcm_fields}
  clusters:
  - name: web
    load_assignment: {{cluster_name: web, endpoints: [{{lb_endpoints: [{{endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: 9000}}}}}}}}]}}]}}
"#
    )
}

fn minimal(extra: &str) -> String {
    bootstrap(&format!(
        "          stat_prefix: ingress\n          route_config: {{virtual_hosts: [{{name: vh, domains: ['*'], routes: [{{match: {{prefix: /}}, route: {{cluster: web}}}}]}}]}}\n          http_filters: [{ROUTER}]\n{extra}"
    ))
}

fn hcm(text: &str) -> HttpConnectionManager {
    let loaded = crate::load_str(text).unwrap_or_else(|e| panic!("{e}"));
    let l = &loaded.bootstrap.listeners[0];
    match &l.filter_chains[0].filters[0].kind {
        NetworkFilterKind::HttpConnectionManager(h) => (**h).clone(),
        other => panic!("{other:?}"),
    }
}

fn load_err(text: &str) -> String {
    crate::load_str(text).err().map(|e| e.to_string()).unwrap_or_else(|| panic!("should fail:\n{text}"))
}

#[test]
fn hcm_defaults() {
    let h = hcm(&minimal(""));
    assert_eq!(h.stat_prefix, "ingress");
    assert_eq!(h.codec_type, CodecType::Auto);
    assert_eq!(h.http_protocol_options, Http1ProtocolOptions::default());
    assert!(!h.http_protocol_options.accept_http_10);
    assert_eq!(h.http_protocol_options.allow_absolute_url, None);
    assert_eq!(h.common_http_protocol_options.idle_timeout, Some(Duration::from_secs(3600)));
    assert_eq!(h.common_http_protocol_options.max_headers_count, 100);
    assert_eq!(h.common_http_protocol_options.headers_with_underscores_action, HeadersWithUnderscoresAction::Allow);
    assert_eq!(h.stream_idle_timeout, Some(Duration::from_secs(300)));
    assert_eq!(h.request_timeout, None);
    assert_eq!(h.request_headers_timeout, None);
    assert_eq!(h.drain_timeout, Duration::from_secs(5));
    assert_eq!(h.delayed_close_timeout, Some(Duration::from_millis(1000)));
    assert_eq!(h.max_request_headers_kb, 60);
    assert_eq!(h.server_name, "envoy");
    assert_eq!(h.server_header_transformation, ServerHeaderTransformation::Overwrite);
    assert!(!h.use_remote_address && !h.skip_xff_append);
    assert_eq!(h.xff_num_trusted_hops, 0);
    assert_eq!(h.via, "");
    assert!(h.generate_request_id);
    assert!(!h.normalize_path && !h.merge_slashes);
    assert_eq!(h.path_with_escaped_slashes_action, PathWithEscapedSlashesAction::ImplementationSpecificDefault);
    assert_eq!(h.strip_port_mode, StripPortMode::None);
    assert!(!h.strip_trailing_host_dot);
    assert!(!h.stream_error_on_invalid_http_message);
    let r = h.router().unwrap();
    assert!(!r.suppress_envoy_headers && !r.respect_expected_rq_timeout && r.strict_check_headers.is_empty());
}

#[test]
fn hcm_camel_case_fields() {
    let h = hcm(&minimal(
        "          codecType: HTTP1\n          httpProtocolOptions: {acceptHttp10: true, defaultHostForHttp10: h, allowChunkedLength: true, allowAbsoluteUrl: false}\n          commonHttpProtocolOptions: {idleTimeout: 0s, maxHeadersCount: 50}\n          streamIdleTimeout: 0s\n          requestTimeout: 10s\n          requestHeadersTimeout: 2s\n          drainTimeout: 1s\n          delayedCloseTimeout: 0s\n          maxRequestHeadersKb: 96\n          serverName: sluice\n          serverHeaderTransformation: PASS_THROUGH\n          useRemoteAddress: true\n          xffNumTrustedHops: 2\n          skipXffAppend: true\n          via: sluice-1\n          generateRequestId: false\n          normalizePath: true\n          mergeSlashes: true\n          pathWithEscapedSlashesAction: REJECT_REQUEST\n          stripAnyHostPort: true\n          streamErrorOnInvalidHttpMessage: true\n",
    ));
    assert_eq!(h.codec_type, CodecType::Http1);
    assert!(h.http_protocol_options.accept_http_10 && h.http_protocol_options.allow_chunked_length);
    assert_eq!(h.http_protocol_options.default_host_for_http_10, "h");
    assert_eq!(h.http_protocol_options.allow_absolute_url, Some(false));
    assert_eq!(h.common_http_protocol_options.idle_timeout, None);
    assert_eq!(h.common_http_protocol_options.max_headers_count, 50);
    assert_eq!(h.stream_idle_timeout, None);
    assert_eq!(h.request_timeout, Some(Duration::from_secs(10)));
    assert_eq!(h.request_headers_timeout, Some(Duration::from_secs(2)));
    assert_eq!(h.drain_timeout, Duration::from_secs(1));
    assert_eq!(h.delayed_close_timeout, None);
    assert_eq!(h.max_request_headers_kb, 96);
    assert_eq!(h.server_name, "sluice");
    assert_eq!(h.server_header_transformation, ServerHeaderTransformation::PassThrough);
    assert!(h.use_remote_address && h.skip_xff_append && !h.generate_request_id);
    assert_eq!(h.xff_num_trusted_hops, 2);
    assert_eq!(h.via, "sluice-1");
    assert!(h.normalize_path && h.merge_slashes && h.stream_error_on_invalid_http_message);
    assert_eq!(h.path_with_escaped_slashes_action, PathWithEscapedSlashesAction::RejectRequest);
    assert_eq!(h.strip_port_mode, StripPortMode::Any);
    assert_eq!(hcm(&minimal("          strip_matching_host_port: true\n")).strip_port_mode, StripPortMode::Matching);
    assert!(hcm(&minimal("          strip_trailing_host_dot: true\n")).strip_trailing_host_dot);
}

#[test]
fn hcm_errors() {
    let e = load_err(&bootstrap(
        "          stat_prefix: s\n          rds: {route_config_name: r}\n          http_filters: []\n",
    ));
    assert!(e.contains("rds.config_source") && e.contains("required"), "{e}");
    let e = load_err(&bootstrap(&format!("          stat_prefix: s\n          http_filters: [{ROUTER}]\n")));
    assert!(e.contains("typed_config.route_config") && e.contains("required"), "{e}");
    let e = load_err(&minimal("          max_request_headers_kb: 9000\n"));
    assert!(e.contains("1..=8192"), "{e}");
    let e = load_err(&minimal("          strip_any_host_port: true\n          strip_matching_host_port: true\n"));
    assert!(e.contains("only one of `strip_matching_host_port`"), "{e}");
    let e = load_err(&minimal("          codec_type: HTTP3\n"));
    assert!(e.contains("HTTP3"), "{e}");
    let e = load_err(&minimal("          path_normalization_options: {}\n"));
    assert!(e.contains("path_normalization_options is not implemented") && e.contains("normalize_path"), "{e}");
    let e = load_err(&minimal("          scoped_routes: {}\n"));
    assert!(e.contains("unsupported field `scoped_routes`"), "{e}");
}

#[test]
fn hcm_fields_without_effect_are_refused_unless_at_their_default() {
    let loaded = crate::load_str(&minimal("          add_user_agent: false\n          access_log: []\n")).unwrap();
    assert!(loaded.warnings.iter().all(|w| !w.path.ends_with("add_user_agent")), "{:?}", loaded.warnings);
    let e = load_err(&minimal("          add_user_agent: true\n"));
    assert!(e.contains("typed_config.add_user_agent (line 13): `add_user_agent` is not supported"), "{e}");
}

#[test]
fn http_filter_order() {
    let fault = "{name: f, typed_config: {'@type': type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault, abort: {http_status: 503, percentage: {numerator: 100}}}}";
    let rc = "          stat_prefix: s\n          route_config: {virtual_hosts: []}\n";
    let e = load_err(&bootstrap(&format!("{rc}          http_filters: [{ROUTER}, {fault}]\n")));
    assert!(e.contains("terminal filter named envoy.filters.http.router of type envoy.extensions.filters.http.router.v3.Router must be the last filter"), "{e}");
    assert!(e.contains("non-terminal filter named f"), "{e}");
    let e = load_err(&bootstrap(&format!("{rc}          http_filters: []\n")));
    assert!(e.contains("http_filters is empty"), "{e}");
    let e = load_err(&bootstrap(&format!("{rc}          http_filters: [{{name: x, typed_config: {{'@type': type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm}}}}, {ROUTER}]\n")));
    assert!(e.contains("unsupported HTTP filter type `envoy.extensions.filters.http.wasm.v3.Wasm` (filter `x`"), "{e}");
    let e = load_err(&bootstrap(&format!("{rc}          http_filters: [{{name: x}}]\n")));
    assert!(e.contains("needs a typed_config"), "{e}");
    let disabled = "{name: r, disabled: true, typed_config: {'@type': type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}";
    let e = load_err(&bootstrap(&format!("{rc}          http_filters: [{disabled}]\n")));
    assert!(e.contains("may not be disabled"), "{e}");
    // Selection is by type URL; the name is a free label.
    let h = hcm(&bootstrap(&format!("{rc}          http_filters: [{fault}, {{name: envoy.router, typed_config: {{'@type': type.googleapis.com/envoy.extensions.filters.http.router.v3.Router, suppressEnvoyHeaders: true, strictCheckHeaders: [x-envoy-max-retries]}}}}]\n")));
    assert_eq!(h.http_filters.len(), 2);
    let r = h.router().unwrap();
    assert!(r.suppress_envoy_headers);
    assert_eq!(r.strict_check_headers, vec!["x-envoy-max-retries"]);
    let e = load_err(&bootstrap(&format!("{rc}          http_filters: [{{name: r, typed_config: {{'@type': type.googleapis.com/envoy.extensions.filters.http.router.v3.Router, strict_check_headers: [x-foo]}}}}]\n")));
    assert!(e.contains("`x-foo` is not one of"), "{e}");
}

#[test]
fn fault_filter_defaults_and_fields() {
    let rc = "          stat_prefix: s\n          route_config: {virtual_hosts: []}\n";
    let fault = |body: &str| {
        bootstrap(&format!(
            "{rc}          http_filters:\n          - name: fault\n            typed_config:\n              '@type': type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault\n{body}          - {ROUTER}\n"
        ))
    };
    let h = hcm(&fault("              delay: {fixed_delay: 2s}\n"));
    let HttpFilterKind::Fault(f) = &h.http_filters[0].kind else { panic!() };
    let d = f.delay.unwrap();
    assert_eq!(d.kind, FaultDelayKind::Fixed(Duration::from_secs(2)));
    assert_eq!(d.percentage, FractionalPercent { numerator: 0, denominator: Denominator::Hundred });
    assert!(f.abort.is_none() && f.headers.is_empty() && f.downstream_nodes.is_empty());
    assert_eq!(f.upstream_cluster, None);
    assert_eq!(f.max_active_faults, None);

    let h = hcm(&fault("              abort: {httpStatus: 503, percentage: {numerator: 50, denominator: MILLION}}\n              delay: {headerDelay: {}, percentage: {numerator: 100}}\n              upstreamCluster: web\n              headers: [{name: x-fault}]\n              downstreamNodes: [n1]\n              maxActiveFaults: 3\n"));
    let HttpFilterKind::Fault(f) = &h.http_filters[0].kind else { panic!() };
    let a = f.abort.unwrap();
    assert_eq!(a.kind, FaultAbortKind::HttpStatus(503));
    assert_eq!(a.percentage, FractionalPercent { numerator: 50, denominator: Denominator::Million });
    assert_eq!(f.delay.unwrap().kind, FaultDelayKind::Header);
    assert_eq!(f.upstream_cluster.as_deref(), Some("web"));
    assert_eq!(f.headers[0].name, "x-fault");
    assert_eq!(f.downstream_nodes, vec!["n1"]);
    assert_eq!(f.max_active_faults, Some(3));
    let h = hcm(&fault("              abort: {grpc_status: 14}\n"));
    let HttpFilterKind::Fault(f) = &h.http_filters[0].kind else { panic!() };
    assert_eq!(f.abort.unwrap().kind, FaultAbortKind::GrpcStatus(14));
    let h = hcm(&fault("              abort: {header_abort: {}}\n"));
    let HttpFilterKind::Fault(f) = &h.http_filters[0].kind else { panic!() };
    assert_eq!(f.abort.unwrap().kind, FaultAbortKind::Header);

    assert!(load_err(&fault("              delay: {}\n")).contains("fixed_delay"));
    assert!(load_err(&fault("              delay: {fixed_delay: 0s}\n")).contains("greater than 0"));
    assert!(load_err(&fault("              abort: {http_status: 700}\n")).contains("200..=599"));
    assert!(load_err(&fault("              abort: {http_status: 500, grpc_status: 1}\n")).contains("exactly one"));
    let text = fault("              abort: {http_status: 500}\n              abort_percent_runtime: x\n");
    let loaded = crate::load_str(&text).unwrap();
    assert!(loaded.warnings.iter().all(|w| !w.path.ends_with("abort_percent_runtime")), "{:?}", loaded.warnings);
    let h = hcm(&text);
    let HttpFilterKind::Fault(f) = &h.http_filters[0].kind else { panic!() };
    assert_eq!(f.runtime.abort_percent, "x");
    assert_eq!(f.runtime.delay_percent, "fault.http.delay.fixed_delay_percent");
}

#[test]
fn validate_clusters() {
    let text = bootstrap("          stat_prefix: s\n          route_config:\n            request_mirror_policies: [{cluster: nope0}]\n            virtual_hosts:\n            - name: vh\n              domains: ['*']\n              routes:\n              - match: {prefix: /a}\n                route: {cluster: nope1}\n              - match: {prefix: /b}\n              \n                route: {weighted_clusters: {clusters: [{name: web, weight: 1}, {name: nope2, weight: 1}]}}\n              - match: {prefix: /c}\n                route: {cluster: web, request_mirror_policies: [{cluster: nope3}]}\n              - match: {prefix: /d}\n                route: {cluster_header: x-c}\n          http_filters: [{name: r, typed_config: {'@type': type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}]\n");
    let e = load_err(&text);
    let base = "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.route_config";
    assert!(
        e.contains(&format!("{base}.request_mirror_policies[0].cluster"))
            && e.contains("unknown shadow cluster 'nope0'"),
        "{e}"
    );
    assert!(
        e.contains(&format!("{base}.virtual_hosts[0].routes[0].route.cluster"))
            && e.contains("route: unknown cluster 'nope1'"),
        "{e}"
    );
    assert!(e.contains(&format!("{base}.virtual_hosts[0].routes[1].route.weighted_clusters.clusters[1].name")), "{e}");
    assert!(e.contains("'nope3'"), "{e}");
    assert!(!e.contains("x-c"), "{e}");
    // validate_clusters: false defers unknown clusters to request time.
    let text = text.replace("route_config:\n", "route_config:\n            validate_clusters: false\n");
    assert!(crate::load_str(&text).is_ok());
}

#[test]
fn upgrade_configs_decode_with_envoys_defaults() {
    assert!(hcm(&minimal("")).upgrade_configs.is_empty(), "no upgrade is allowed by default");
    let h = hcm(&minimal(
        "          upgrade_configs:\n          - upgrade_type: websocket\n          - {upgrade_type: CONNECT, enabled: false}\n          - {upgrade_type: spdy/3.1, filters: []}\n",
    ));
    let got: Vec<(&str, bool)> = h.upgrade_configs.iter().map(|u| (u.upgrade_type.as_str(), u.enabled)).collect();
    assert_eq!(got, [("websocket", true), ("CONNECT", false), ("spdy/3.1", true)]);
    // A `filters` chain equal to `http_filters` is the same chain: accepted.
    let h = hcm(&minimal(&format!("          upgrade_configs: [{{upgrade_type: websocket, filters: [{ROUTER}]}}]\n")));
    assert_eq!(h.upgrade_configs[0].filters.len(), 1);
}

#[test]
fn upgrade_configs_errors() {
    let e = load_err(&minimal("          upgrade_configs: [{upgrade_type: websocket}, {upgrade_type: WebSocket}]\n"));
    assert!(
        e.contains("upgrade_configs[1].upgrade_type")
            && e.contains("multiple upgrade configs with the same name: 'WebSocket'"),
        "{e}"
    );
    let fault = "{name: f, typed_config: {'@type': type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault, abort: {http_status: 500, percentage: {numerator: 100}}}}";
    let e = load_err(&minimal(&format!(
        "          upgrade_configs: [{{upgrade_type: websocket, filters: [{fault}, {ROUTER}]}}]\n"
    )));
    assert!(
        e.contains("upgrade_configs[0].filters") && e.contains("upgrade-specific HTTP filter chains are not supported"),
        "{e}"
    );
    let e = load_err(&minimal("          upgrade_configs: [{upgrade_type: 'web socket'}]\n"));
    assert!(e.contains("upgrade_configs[0].upgrade_type") && e.contains("is not an `Upgrade:` value"), "{e}");
    let e = load_err(&minimal("          upgrade_configs: [{enabled: true}]\n"));
    assert!(e.contains("upgrade_type"), "{e}");
    let e = load_err(&minimal("          upgrade_configs: [{upgrade_type: websocket, bogus: 1}]\n"));
    assert!(e.contains("bogus"), "{e}");
}
