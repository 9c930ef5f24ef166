//! The HTTP connection manager, its filters and its route configuration, through a dump
//! and back.

use std::time::Duration;

use super::{at, has, hcm, n, round_trip, s};
use crate::dump::{Dump, Json};
use crate::fault::{FaultAbortKind, FaultDelayKind};
use crate::hcm::{CodecType, HttpFilterKind, StripPortMode};
use crate::route::{
    Action, ClusterSpecifier, HashPolicyKind, HeaderMutations, HostRewrite, IdleTimeout, MirrorTarget, PathRedirect,
    RetryOn, RouteAction, RouteConfiguration, WeightedTarget,
};

/// One listener with an HCM using every field sluice implements, and the clusters it
/// names.
const RICH: &str = r#"
admin: { address: { socket_address: { address: 127.0.0.1, port_value: 9901 } } }
static_resources:
  listeners:
  - name: http
    address: { socket_address: { address: 0.0.0.0, port_value: 8080 } }
    filter_chains:
    - filters:
      - name: hcm
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress
          codec_type: HTTP1
          access_log:
          - name: file
            filter: { and_filter: { filters: [ { status_code_filter: { comparison: { op: GE, value: { default_value: 400, runtime_key: a } } } }, { response_flag_filter: { flags: [UF, NR] } } ] } }
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
              path: /dev/null
              log_format: { json_format: { code: "%RESPONSE_CODE%", up: { host: "%UPSTREAM_HOST%" } }, omit_empty_values: true }
          - name: out
            typed_config: { "@type": type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog }
          http_protocol_options: { accept_http_10: true, default_host_for_http_10: legacy.local, allow_chunked_length: true, allow_absolute_url: false }
          common_http_protocol_options:
            idle_timeout: 0s
            max_headers_count: 50
            max_connection_duration: 60s
            max_stream_duration: 30s
            headers_with_underscores_action: REJECT_REQUEST
            max_requests_per_connection: 100
          stream_idle_timeout: 0s
          request_timeout: 10s
          drain_timeout: 2s
          delayed_close_timeout: 0s
          max_request_headers_kb: 96
          server_name: sluice-test
          server_header_transformation: APPEND_IF_ABSENT
          use_remote_address: true
          xff_num_trusted_hops: 2
          skip_xff_append: true
          via: sluice
          generate_request_id: false
          normalize_path: true
          merge_slashes: true
          path_with_escaped_slashes_action: UNESCAPE_AND_REDIRECT
          strip_any_host_port: true
          strip_trailing_host_dot: true
          stream_error_on_invalid_http_message: true
          http_filters:
          - name: fault
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault
              delay: { fixed_delay: 0.5s, percentage: { numerator: 25, denominator: TEN_THOUSAND } }
              abort: { http_status: 503, percentage: { numerator: 10 } }
              headers: [{ name: x-fault, exact_match: "yes" }]
              upstream_cluster: web
              downstream_nodes: [node-a]
              max_active_faults: 5
          - name: fault-by-header
            disabled: true
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault
              delay: { header_delay: {}, percentage: { numerator: 100 } }
              abort: { grpc_status: 14 }
          - name: abort-by-header
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault
              abort: { header_abort: {}, percentage: { numerator: 5, denominator: MILLION } }
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
              suppress_envoy_headers: true
              respect_expected_rq_timeout: true
              strict_check_headers: [x-envoy-max-retries, x-envoy-retry-on]
              dynamic_stats: false
          route_config:
            name: rich
            request_headers_to_add:
            - { header: { key: X-Client, value: "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%" }, append: false }
            - { header: { key: x-empty, value: "" }, keep_empty_value: true, append_action: ADD_IF_ABSENT }
            request_headers_to_remove: [x-remove-me]
            response_headers_to_add: [{ header: { key: x-served-by, value: "sluice %%" }, append_action: OVERWRITE_IF_EXISTS }]
            response_headers_to_remove: [server-timing]
            internal_only_headers: [X-Internal]
            most_specific_header_mutations_wins: true
            max_direct_response_body_size_bytes: 8192
            ignore_port_in_host_matching: true
            request_mirror_policies: [{ cluster: shadow }]
            virtual_hosts:
            - name: main
              domains: [Example.com, "*.example.com", "api-*"]
              require_tls: EXTERNAL_ONLY
              request_headers_to_add: [{ header: { key: x-vhost, value: main } }]
              response_headers_to_remove: [x-powered-by]
              retry_policy: { retry_on: "5xx,reset", num_retries: 3, per_try_timeout: 1s, retry_back_off: { base_interval: 0.1s } }
              request_mirror_policies:
              - { cluster_header: x-mirror, runtime_fraction: { default_value: { numerator: 50 } }, disable_shadow_host_suffix_append: true }
              include_request_attempt_count: true
              include_attempt_count_in_response: true
              virtual_clusters: [{ name: api, headers: [{ name: ":path", prefix_match: /api }] }]
              routes:
              - name: api
                match:
                  prefix: /api
                  case_sensitive: false
                  headers:
                  - { name: x-exact, exact_match: "yes" }
                  - { name: x-any, exact_match: "" }
                  - { name: x-never, exact_match: "", invert_match: true }
                  - { name: x-re, safe_regex_match: { google_re2: {}, regex: "v[0-9]+" } }
                  - { name: x-range, range_match: { start: 10, end: 20 } }
                  - { name: x-absent, present_match: false }
                  - { name: x-prefix, prefix_match: pre }
                  - { name: x-suffix, suffix_match: fix }
                  - { name: x-contains, contains_match: mid }
                  - { name: x-string, string_match: { exact: YES, ignore_case: true } }
                  - { name: x-string-re, string_match: { safe_regex: { regex: "[a-c]+" } }, invert_match: true }
                  - { name: x-present }
                  - { name: x-missing-empty, string_match: { exact: "" }, treat_missing_header_as_empty: true }
                  query_parameters:
                  - { name: a, string_match: { prefix: x } }
                  - { name: b, present_match: false }
                  - { name: c }
                route:
                  cluster: web
                  cluster_not_found_response_code: NOT_FOUND
                  prefix_rewrite: /v2
                  host_rewrite_literal: backend.local
                  append_x_forwarded_host: true
                  timeout: 0s
                  idle_timeout: 0s
                  priority: DEFAULT
                  retry_policy:
                    retry_on: retriable-status-codes,retriable-headers,connect-failure
                    num_retries: 2
                    per_try_idle_timeout: 2s
                    retry_back_off: { base_interval: 0.05s, max_interval: 1s }
                    retriable_status_codes: [503, 429]
                    retriable_headers: [{ name: x-retry, present_match: true }]
                    retriable_request_headers: [{ name: x-idempotent, exact_match: "1" }]
                  request_mirror_policies: [{ cluster: shadow, host_rewrite_literal: shadow.local }]
                  hash_policy:
                  - header: { header_name: X-User, regex_rewrite: { pattern: { regex: "^u-" }, substitution: "" } }
                  - cookie: { name: sid, ttl: 60s, path: / }
                  - connection_properties: { source_ip: true }
                  - query_parameter: { name: q }
                    terminal: true
                request_headers_to_add: [{ header: { key: x-route, value: api } }]
                response_headers_to_add: [{ header: { key: x-route-resp, value: "%UPSTREAM_CLUSTER%" } }]
              - match: { path: /exact }
                route:
                  cluster_header: X-Cluster
                  regex_rewrite: { pattern: { regex: "^/exact" }, substitution: /e }
                  auto_host_rewrite: true
                  timeout: 3s
                  idle_timeout: 20s
              - match: { safe_regex: { regex: "/users/[0-9]+" } }
                route:
                  host_rewrite_header: x-host
                  weighted_clusters:
                    header_name: x-weight
                    clusters:
                    - name: web
                      weight: 70
                      request_headers_to_add: [{ header: { key: x-weighted, value: web } }]
                      response_headers_to_remove: [x-internal-id]
                      host_rewrite_literal: w.local
                    - { cluster_header: x-alt, weight: 30 }
              - match: { path_separated_prefix: /sep, grpc: {} }
                route:
                  cluster: web
                  host_rewrite_path_regex: { pattern: { regex: "^/sep/(.*)$" }, substitution: "\\1.svc" }
              - match: { prefix: /old }
                redirect: { https_redirect: true, host_redirect: new.example.com, port_redirect: 8443, path_redirect: /new, response_code: PERMANENT_REDIRECT, strip_query: true }
              - match: { prefix: /p }
                redirect: { scheme_redirect: http, prefix_rewrite: /q }
              - match: { prefix: /r }
                redirect: { regex_rewrite: { pattern: { regex: "^/r/(.*)" }, substitution: "/s/\\1" }, response_code: FOUND }
              - match: { path: /text }
                direct_response: { status: 200, body: { inline_string: "hello\n\"quoted\"\t\u0001\u007f ünïcode" } }
              - match: { path: /bytes }
                direct_response: { status: 503, body: { inline_bytes: "/wCAYQ==" } }
              - match: { path: /empty }
                direct_response: { status: 204 }
            - name: fallback
              domains: ["*"]
              routes:
              - match: { prefix: / }
                route: { cluster: web }
  clusters:
  - name: web
    load_assignment: { cluster_name: web, endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: 9000 } } } }] }] }
  - name: shadow
    load_assignment: { cluster_name: shadow, endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: 9001 } } } }] }] }
"#;

fn route_config(b: &crate::Bootstrap) -> &RouteConfiguration {
    &hcm(b, 0).route_config
}

fn action(rc: &RouteConfiguration, route: usize) -> &RouteAction {
    match &rc.virtual_hosts[0].routes[route].action {
        Action::Route(a) => a,
        other => panic!("route {route} does not forward: {other:?}"),
    }
}

/// What a cluster specifier selects, without source lines: (target, weight, request
/// headers, response headers, host rewrite) per cluster.
fn targets(c: &ClusterSpecifier) -> Vec<(String, u32, HeaderMutations, HeaderMutations, Option<String>)> {
    match c {
        ClusterSpecifier::Cluster(n) => {
            vec![(n.clone(), 1, HeaderMutations::default(), HeaderMutations::default(), None)]
        }
        ClusterSpecifier::ClusterHeader(h) => {
            vec![(format!("header {h}"), 1, HeaderMutations::default(), HeaderMutations::default(), None)]
        }
        ClusterSpecifier::Weighted(w) => w
            .clusters
            .iter()
            .map(|c| {
                let target = match &c.target {
                    WeightedTarget::Name(n) => n.clone(),
                    WeightedTarget::Header(h) => format!("header {h}"),
                };
                (
                    target,
                    c.weight,
                    c.request_headers.clone(),
                    c.response_headers.clone(),
                    c.host_rewrite_literal.clone(),
                )
            })
            .collect(),
    }
}

#[test]
fn rich_http_config_round_trips() {
    let (first, again, _) = round_trip(RICH);
    // Nothing in the dump is a field sluice ignores: the only warning on reload is the
    // one virtual clusters always get.
    let warnings: Vec<String> = again.warnings.iter().map(|w| format!("{}: {}", w.path, w.message)).collect();
    assert!(warnings.iter().all(|w| w.contains("virtual_clusters")), "{warnings:#?}");
    let again = again.bootstrap;

    let (h1, h2) = (hcm(&first, 0), hcm(&again, 0));
    assert_eq!(h2.codec_type, CodecType::Http1);
    assert_eq!(h2.http_protocol_options, h1.http_protocol_options);
    assert_eq!(h2.http_protocol_options.allow_absolute_url, Some(false));
    assert_eq!(h2.common_http_protocol_options, h1.common_http_protocol_options);
    assert_eq!(h2.common_http_protocol_options.idle_timeout, None, "0s disables");
    assert_eq!(h2.stream_idle_timeout, None);
    assert_eq!(h2.request_timeout, Some(Duration::from_secs(10)));
    assert_eq!(h2.request_headers_timeout, None);
    assert_eq!(h2.delayed_close_timeout, None);
    assert_eq!(h2.drain_timeout, Duration::from_secs(2));
    assert_eq!(h2.strip_port_mode, StripPortMode::Any);
    assert_eq!((h2.server_name.as_str(), h2.via.as_str(), h2.xff_num_trusted_hops), ("sluice-test", "sluice", 2));
    assert!(
        !h2.generate_request_id && h2.normalize_path && h2.merge_slashes && h2.stream_error_on_invalid_http_message
    );
    assert!(h2.strip_trailing_host_dot);

    // Filters: in order, with their options.
    assert_eq!(h2.http_filters.len(), 4);
    for (a, b) in h1.http_filters.iter().zip(&h2.http_filters) {
        assert_eq!((&a.name, a.disabled), (&b.name, b.disabled));
        match (&a.kind, &b.kind) {
            (HttpFilterKind::Fault(x), HttpFilterKind::Fault(y)) => {
                assert_eq!((x.delay, x.abort, x.max_active_faults), (y.delay, y.abort, y.max_active_faults));
                assert_eq!((&x.upstream_cluster, &x.downstream_nodes), (&y.upstream_cluster, &y.downstream_nodes));
                assert_eq!(x.headers.len(), y.headers.len());
            }
            (HttpFilterKind::Router(x), HttpFilterKind::Router(y)) => assert_eq!(x, y),
            (x, y) => panic!("filter kinds differ: {x:?} / {y:?}"),
        }
    }
    let HttpFilterKind::Fault(f) = &h2.http_filters[1].kind else { panic!() };
    assert!(h2.http_filters[1].disabled);
    assert_eq!(f.delay.unwrap().kind, FaultDelayKind::Header);
    assert_eq!(f.abort.unwrap().kind, FaultAbortKind::GrpcStatus(14));
    let HttpFilterKind::Fault(f) = &h2.http_filters[2].kind else { panic!() };
    assert_eq!(f.abort.unwrap().kind, FaultAbortKind::Header);
    assert_eq!(f.abort.unwrap().percentage.numerator, 5);

    let (rc1, rc2) = (route_config(&first), route_config(&again));
    assert_eq!(rc2.validate_clusters, Some(true));
    assert_eq!(rc2.request_headers, rc1.request_headers);
    assert_eq!(rc2.response_headers, rc1.response_headers);
    assert_eq!(rc2.internal_only_headers, vec!["x-internal".to_string()]);
    assert_eq!(rc2.request_mirror_policies.len(), 1);
    let (vh1, vh2) = (&rc1.virtual_hosts[0], &rc2.virtual_hosts[0]);
    assert_eq!(vh2.domains, vh1.domains);
    assert_eq!(vh2.require_tls, vh1.require_tls);
    assert_eq!((&vh2.request_headers, &vh2.response_headers), (&vh1.request_headers, &vh1.response_headers));
    assert_eq!(vh2.retry_policy, vh1.retry_policy);
    assert_eq!(vh2.retry_policy.as_ref().unwrap().retry_on, RetryOn::FIVE_XX | RetryOn::RESET);
    assert_eq!(vh2.request_mirror_policies[0].target, MirrorTarget::ClusterHeader("x-mirror".into()));
    assert_eq!(vh2.request_mirror_policies[0].fraction.default_value.numerator, 50);
    assert_eq!(vh2.virtual_clusters.len(), 1);
    assert_eq!(vh2.routes.len(), vh1.routes.len());
    for (r1, r2) in vh1.routes.iter().zip(&vh2.routes) {
        assert_eq!(r2.name, r1.name);
        assert_eq!((&r2.request_headers, &r2.response_headers), (&r1.request_headers, &r1.response_headers));
        assert_eq!((&r2.r#match.path, r2.r#match.case_sensitive), (&r1.r#match.path, r1.r#match.case_sensitive));
        assert_eq!(r2.r#match.grpc, r1.r#match.grpc);
        match (&r1.action, &r2.action) {
            (Action::Route(a), Action::Route(b)) => {
                assert_eq!(targets(&a.cluster), targets(&b.cluster));
                assert_eq!((&a.host_rewrite, a.timeout), (&b.host_rewrite, b.timeout));
                assert_eq!((&a.prefix_rewrite, &a.regex_rewrite), (&b.prefix_rewrite, &b.regex_rewrite));
                assert_eq!(
                    (a.idle_timeout, a.cluster_not_found_response_code),
                    (b.idle_timeout, b.cluster_not_found_response_code)
                );
                assert_eq!(a.append_x_forwarded_host, b.append_x_forwarded_host);
                assert_eq!(a.request_mirror_policies.len(), b.request_mirror_policies.len());
                assert_eq!(a.hash_policy, b.hash_policy);
            }
            (Action::Redirect(a), Action::Redirect(b)) => assert_eq!(a, b),
            (Action::DirectResponse(a), Action::DirectResponse(b)) => {
                assert_eq!((a.status, &a.body), (b.status, &b.body))
            }
            (a, b) => panic!("actions differ: {a:?} / {b:?}"),
        }
    }

    let api = action(rc2, 0);
    assert_eq!(api.timeout, None, "timeout 0s disables");
    assert_eq!(api.idle_timeout, IdleTimeout::Disabled);
    assert_eq!(api.host_rewrite, HostRewrite::Literal("backend.local".into()));
    let retry = api.retry_policy.as_ref().unwrap();
    assert_eq!(retry.retriable_status_codes, vec![503, 429]);
    assert_eq!(retry.retry_back_off.max_interval, Duration::from_secs(1));
    assert_eq!(retry.per_try_idle_timeout, Some(Duration::from_secs(2)));
    assert_eq!(retry.per_try_timeout, None);
    assert_eq!((retry.retriable_headers.len(), retry.retriable_request_headers.len()), (1, 1));
    assert!(retry.retry_on.contains(RetryOn::RETRIABLE_STATUS_CODES | RetryOn::CONNECT_FAILURE));
    assert_eq!(api.hash_policy.len(), 4);
    assert!(
        matches!(&api.hash_policy[0].kind, HashPolicyKind::Header { name, regex_rewrite: Some(_) } if name == "x-user")
    );
    assert!(api.hash_policy[3].terminal);
    let exact = action(rc2, 1);
    assert_eq!(exact.cluster, ClusterSpecifier::ClusterHeader("x-cluster".into()));
    assert_eq!(
        (exact.host_rewrite.clone(), exact.idle_timeout),
        (HostRewrite::Auto, IdleTimeout::After(Duration::from_secs(20)))
    );
    let ClusterSpecifier::Weighted(w) = &action(rc2, 2).cluster else { panic!() };
    assert_eq!((w.total_weight, w.header_name.as_deref()), (100, Some("x-weight")));
    assert_eq!(w.clusters[0].host_rewrite_literal.as_deref(), Some("w.local"));
    assert_eq!(w.clusters[0].request_headers.to_add[0].key, "x-weighted");
    assert_eq!(w.clusters[0].response_headers.to_remove, vec!["x-internal-id".to_string()]);
    let HostRewrite::PathRegex(r) = &action(rc2, 3).host_rewrite else { panic!() };
    assert_eq!(r.replace_all("/sep/api"), "api.svc");
    let Action::Redirect(redirect) = &vh2.routes[6].action else { panic!() };
    assert!(matches!(&redirect.path, PathRedirect::RegexRewrite(r) if r.replace_all("/r/x") == "/s/x"));
    let Action::DirectResponse(text) = &vh2.routes[7].action else { panic!() };
    assert_eq!(text.body.as_deref(), Some("hello\n\"quoted\"\t\u{1}\u{7f} ünïcode".as_bytes()));
    let Action::DirectResponse(bytes) = &vh2.routes[8].action else { panic!() };
    assert_eq!(bytes.body.as_deref(), Some(&[0xff, 0x00, 0x80, b'a'][..]));
    let Action::DirectResponse(empty) = &vh2.routes[9].action else { panic!() };
    assert_eq!((empty.status, empty.body.is_none()), (204, true));
}

/// Every header and query-parameter matcher of the reloaded route behaves as the
/// original on every sample value, deprecated forms included.
#[test]
fn matchers_written_in_modern_form_behave_the_same() {
    let (first, again, _) = round_trip(RICH);
    let (m1, m2) = (
        &route_config(&first).virtual_hosts[0].routes[0].r#match,
        &route_config(&again.bootstrap).virtual_hosts[0].routes[0].r#match,
    );
    let samples: [Option<&[u8]>; 12] = [
        None,
        Some(b""),
        Some(b"yes"),
        Some(b"YES"),
        Some(b"v12"),
        Some(b"15"),
        Some(b"20"),
        Some(b"prefix-and-suffix"),
        Some(b"premidfix"),
        Some(b"abc"),
        Some(b"x1"),
        Some(&[0xff, b'a']),
    ];
    assert_eq!(m1.headers.len(), 13);
    for (a, b) in m1.headers.iter().zip(&m2.headers) {
        assert_eq!((&a.name, a.invert_match), (&b.name, b.invert_match));
        for v in samples {
            assert_eq!(
                a.matches(v),
                b.matches(v),
                "header {} on {:?}: {:?} vs {:?}",
                a.name,
                v,
                a.specifier,
                b.specifier
            );
        }
    }
    assert_eq!(m1.query_parameters.len(), 3);
    for (a, b) in m1.query_parameters.iter().zip(&m2.query_parameters) {
        for v in samples {
            assert_eq!(a.matches(v), b.matches(v), "query parameter {} on {v:?}", a.name);
        }
    }
}

#[test]
fn deprecated_header_matchers_are_dumped_in_modern_form() {
    let (first, _, _) = round_trip(RICH);
    let m = route_config(&first).virtual_hosts[0].routes[0].r#match.dump();
    assert_eq!(at(&m, "headers[0].string_match.exact"), &s("yes"));
    assert_eq!(at(&m, "headers[0].string_match.ignore_case"), &Json::Bool(false));
    assert_eq!(at(&m, "headers[1].present_match"), &Json::Bool(true), "an empty exact_match is a presence check");
    assert_eq!(at(&m, "headers[1].treat_missing_header_as_empty"), &Json::Bool(false));
    assert_eq!(at(&m, "headers[2].present_match"), &Json::Bool(true));
    assert_eq!(at(&m, "headers[2].invert_match"), &Json::Bool(true));
    assert_eq!(at(&m, "headers[2].treat_missing_header_as_empty"), &Json::Bool(true), "inverted, it never matches");
    assert_eq!(at(&m, "headers[3].string_match.safe_regex.regex"), &s("v[0-9]+"));
    assert_eq!(at(&m, "headers[4].range_match.start"), &n("10"));
    assert_eq!(at(&m, "headers[6].string_match.prefix"), &s("pre"));
    assert_eq!(at(&m, "headers[7].string_match.suffix"), &s("fix"));
    assert_eq!(at(&m, "headers[8].string_match.contains"), &s("mid"));
    assert_eq!(at(&m, "headers[9].string_match.exact"), &s("yes"), "stored lower-cased with ignore_case");
    assert_eq!(at(&m, "headers[11].present_match"), &Json::Bool(true), "no specifier is a presence check");
    assert_eq!(at(&m, "query_parameters[2].present_match"), &Json::Bool(true));
    for i in 0..13 {
        let h = at(&m, &format!("headers[{i}]"));
        for deprecated in ["exact_match", "safe_regex_match", "prefix_match", "suffix_match", "contains_match"] {
            assert!(!has(h, deprecated), "headers[{i}] still uses {deprecated}");
        }
    }
}

#[test]
fn rich_config_dump_fields() {
    let (first, _, _) = round_trip(RICH);
    let h = hcm(&first, 0).dump();
    assert_eq!(at(&h, "stream_idle_timeout"), &s("0s"));
    assert_eq!(at(&h, "delayed_close_timeout"), &s("0s"));
    assert_eq!(at(&h, "request_headers_timeout"), &s("0s"));
    assert_eq!(at(&h, "common_http_protocol_options.idle_timeout"), &s("0s"));
    assert_eq!(at(&h, "strip_any_host_port"), &Json::Bool(true));
    assert_eq!(at(&h, "access_log[0].filter.and_filter.filters[0].status_code_filter.comparison.op"), &s("GE"));
    assert_eq!(at(&h, "access_log[0].filter.and_filter.filters[1].response_flag_filter.flags[1]"), &s("NR"));
    assert_eq!(at(&h, "access_log[0].typed_config.path"), &s("/dev/null"));
    assert_eq!(at(&h, "access_log[0].typed_config.log_format.json_format.up.host"), &s("%UPSTREAM_HOST%"));
    assert_eq!(at(&h, "access_log[0].typed_config.log_format.omit_empty_values"), &Json::Bool(true));
    assert!(!has(at(&h, "access_log[1].typed_config"), "log_format"), "the default format is not written out");
    assert!(!has(at(&h, "http_filters[3].typed_config"), "dynamic_stats"));
    assert_eq!(at(&h, "http_filters[0].typed_config.delay.percentage.denominator"), &s("TEN_THOUSAND"));
    assert_eq!(at(&h, "http_filters[0].typed_config.abort.percentage.denominator"), &s("HUNDRED"));
    assert_eq!(at(&h, "http_filters[1].typed_config.delay.header_delay"), &Json::obj());
    let rc = at(&h, "route_config");
    assert_eq!(at(rc, "request_headers_to_add[0].append_action"), &s("OVERWRITE_IF_EXISTS_OR_ADD"), "append: false");
    assert_eq!(at(rc, "request_headers_to_add[0].header.value"), &s("%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%"));
    assert_eq!(at(rc, "request_headers_to_add[1].keep_empty_value"), &Json::Bool(true));
    assert_eq!(at(rc, "response_headers_to_add[0].header.value"), &s("sluice %%"));
    let api = at(rc, "virtual_hosts[0].routes[0].route");
    assert_eq!(at(api, "timeout"), &s("0s"));
    assert_eq!(at(api, "idle_timeout"), &s("0s"));
    assert!(!has(api, "priority"));
    assert!(!has(at(api, "retry_policy"), "per_try_timeout"), "unset per-try timeout stays unset");
    assert_eq!(at(api, "retry_policy.retry_on"), &s("connect-failure,retriable-status-codes,retriable-headers"));
    assert_eq!(at(api, "hash_policy[2].connection_properties.source_ip"), &Json::Bool(true));
    assert_eq!(at(api, "request_mirror_policies[0].runtime_fraction.default_value.numerator"), &n("100"));
    let direct = at(rc, "virtual_hosts[0].routes[8].direct_response");
    assert_eq!(at(direct, "body.inline_bytes"), &s("/wCAYQ=="), "a body that is not UTF-8 is base64");
    assert!(has(at(rc, "virtual_hosts[0].routes[7].direct_response.body"), "inline_string"));
    assert!(!has(at(rc, "virtual_hosts[0].routes[9].direct_response"), "body"));
    let redirect = at(rc, "virtual_hosts[0].routes[4].redirect");
    assert_eq!(at(redirect, "port_redirect"), &n("8443"));
    assert_eq!(at(redirect, "response_code"), &s("PERMANENT_REDIRECT"));
    assert_eq!(at(rc, "virtual_hosts[0].routes[3].match.grpc"), &Json::obj());
}

/// A config that sets almost nothing dumps with Envoy's defaults in force.
#[test]
fn minimal_http_config_dumps_envoy_defaults() {
    let yaml = r#"
static_resources:
  listeners:
  - address: { socket_address: { address: 127.0.0.1, port_value: 8080 } }
    filter_chains:
    - filters:
      - name: hcm
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress
          http_filters:
          - name: fault
            typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault, abort: { http_status: 500 } }
          - name: router
            typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: { prefix: / }
                route: { cluster: web, retry_policy: { retry_on: 5xx }, request_mirror_policies: [{ cluster: web }] }
  clusters:
  - name: web
    load_assignment: { cluster_name: web, endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: 9000 } } } }] }] }
"#;
    let (first, again, _) = round_trip(yaml);
    assert!(again.warnings.is_empty(), "{:?}", again.warnings);
    let b = first.dump();
    assert_eq!(at(&b, "static_resources.listeners[0].name"), &s("127.0.0.1:8080"));
    let h = at(&b, "static_resources.listeners[0].filter_chains[0].filters[0].typed_config");
    assert_eq!(
        at(h, "@type"),
        &s("type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager")
    );
    for (field, value) in [
        ("codec_type", s("AUTO")),
        ("stream_idle_timeout", s("300s")),
        ("request_timeout", s("0s")),
        ("request_headers_timeout", s("0s")),
        ("drain_timeout", s("5s")),
        ("delayed_close_timeout", s("1s")),
        ("max_request_headers_kb", n("60")),
        ("server_name", s("envoy")),
        ("server_header_transformation", s("OVERWRITE")),
        ("use_remote_address", Json::Bool(false)),
        ("generate_request_id", Json::Bool(true)),
        ("via", s("")),
        ("path_with_escaped_slashes_action", s("IMPLEMENTATION_SPECIFIC_DEFAULT")),
        ("strip_matching_host_port", Json::Bool(false)),
        ("strip_trailing_host_dot", Json::Bool(false)),
        ("http_protocol_options.accept_http_10", Json::Bool(false)),
        ("http2_protocol_options.hpack_table_size", n("4096")),
        ("http2_protocol_options.max_concurrent_streams", n("2147483647")),
        ("http2_protocol_options.initial_stream_window_size", n("268435456")),
        ("http2_protocol_options.initial_connection_window_size", n("268435456")),
        ("http2_protocol_options.allow_connect", Json::Bool(false)),
        ("http2_protocol_options.max_outbound_frames", n("10000")),
        ("http2_protocol_options.max_outbound_control_frames", n("1000")),
        ("http2_protocol_options.max_consecutive_inbound_frames_with_empty_payload", n("1")),
        ("http2_protocol_options.max_inbound_priority_frames_per_stream", n("100")),
        ("http2_protocol_options.max_inbound_window_update_frames_per_data_frame_sent", n("10")),
        ("common_http_protocol_options.idle_timeout", s("3600s")),
        ("common_http_protocol_options.max_headers_count", n("100")),
        ("common_http_protocol_options.headers_with_underscores_action", s("ALLOW")),
        ("http_filters[0].disabled", Json::Bool(false)),
        ("http_filters[0].typed_config.abort.percentage.numerator", n("0")),
        ("http_filters[1].typed_config.suppress_envoy_headers", Json::Bool(false)),
        ("route_config.name", s("")),
        ("route_config.validate_clusters", Json::Bool(true)),
        ("route_config.max_direct_response_body_size_bytes", n("4096")),
        ("route_config.virtual_hosts[0].require_tls", s("NONE")),
        ("route_config.virtual_hosts[0].routes[0].match.case_sensitive", Json::Bool(true)),
        ("route_config.virtual_hosts[0].routes[0].route.timeout", s("15s")),
        ("route_config.virtual_hosts[0].routes[0].route.cluster_not_found_response_code", s("SERVICE_UNAVAILABLE")),
        ("route_config.virtual_hosts[0].routes[0].route.retry_policy.num_retries", n("1")),
        ("route_config.virtual_hosts[0].routes[0].route.retry_policy.retry_back_off.base_interval", s("0.025s")),
        ("route_config.virtual_hosts[0].routes[0].route.retry_policy.retry_back_off.max_interval", s("0.250s")),
        ("route_config.virtual_hosts[0].routes[0].route.request_mirror_policies[0].runtime_fraction.default_value.numerator", n("100")),
    ] {
        assert_eq!(at(h, field), &value, "{field}");
    }
    for absent in ["strip_any_host_port", "http_protocol_options.allow_absolute_url"] {
        let (parent, key) = absent.rsplit_once('.').unwrap_or(("", absent));
        let parent = if parent.is_empty() { h } else { at(h, parent) };
        assert!(!has(parent, key), "{absent} is unset");
    }
    let route = at(h, "route_config.virtual_hosts[0].routes[0].route");
    assert!(!has(route, "idle_timeout"), "absent: the HCM's stream_idle_timeout applies");
    assert!(!has(at(route, "retry_policy"), "per_try_timeout"));
    let fault = at(h, "http_filters[0].typed_config");
    assert!(!has(fault, "max_active_faults") && !has(fault, "delay") && !has(fault, "upstream_cluster"));
}

/// The trust and forwarding options: dumped as set (defaults where unset) and reloaded
/// to the same effective config.
#[test]
fn forwarding_options_round_trip() {
    let yaml = r#"
static_resources:
  listeners:
  - address: { socket_address: { address: 127.0.0.1, port_value: 8080 } }
    filter_chains:
    - filters:
      - name: hcm
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress
          internal_address_config: { cidr_ranges: [{ address_prefix: 10.0.0.0, prefix_len: 8 }] }
          original_ip_detection_extensions:
          - name: xff
            typed_config: { "@type": type.googleapis.com/envoy.extensions.http.original_ip_detection.xff.v3.XffConfig, xff_trusted_cidrs: { cidrs: [{ address_prefix: 192.0.2.0, prefix_len: 24 }] }, skip_xff_append: false }
          - name: header
            typed_config: { "@type": type.googleapis.com/envoy.extensions.http.original_ip_detection.custom_header.v3.CustomHeaderConfig, header_name: x-real-ip, allow_extension_to_set_address_as_trusted: true, reject_with_status: { code: 401 } }
          forward_client_cert_details: SANITIZE_SET
          set_current_client_cert_details: { subject: true, uri: true }
          scheme_header_transformation: { scheme_to_overwrite: https }
          http_filters:
          - name: router
            typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }
          route_config: { virtual_hosts: [{ name: all, domains: ["*"], routes: [{ match: { prefix: / }, direct_response: { status: 200 } }] }] }
"#;
    let (first, again, _) = round_trip(yaml);
    assert!(again.warnings.is_empty(), "{:?}", again.warnings);
    assert_eq!(hcm(&again.bootstrap, 0).forwarding, hcm(&first, 0).forwarding);
    let h = hcm(&first, 0).dump();
    assert_eq!(at(&h, "internal_address_config.cidr_ranges[0].address_prefix"), &s("10.0.0.0"));
    assert_eq!(at(&h, "original_ip_detection_extensions[0].typed_config.skip_xff_append"), &Json::Bool(false));
    assert_eq!(
        at(&h, "original_ip_detection_extensions[0].typed_config.xff_trusted_cidrs.cidrs[0].prefix_len"),
        &n("24")
    );
    assert_eq!(at(&h, "original_ip_detection_extensions[1].typed_config.reject_with_status.code"), &n("401"));
    assert_eq!(at(&h, "forward_client_cert_details"), &s("SANITIZE_SET"));
    assert_eq!(at(&h, "set_current_client_cert_details.subject"), &Json::Bool(true));
    assert_eq!(at(&h, "set_current_client_cert_details.cert"), &Json::Bool(false));
    assert_eq!(at(&h, "scheme_header_transformation.scheme_to_overwrite"), &s("https"));
    // Unset: absent (no address internal, Envoy's scheme handling), or Envoy's default.
    let (plain, _, _) = round_trip(
        &yaml
            .replace("          internal_address_config", "          #")
            .replace("          scheme_header_transformation: { scheme_to_overwrite: https }\n", ""),
    );
    let h = hcm(&plain, 0).dump();
    assert!(!has(&h, "internal_address_config") && !has(&h, "scheme_header_transformation"));
}

/// `upgrade_configs` (HCM and route) and `connect_matcher` dump as Envoy writes them and
/// load back the same.
#[test]
fn upgrade_configs_and_connect_matcher_dump() {
    let yaml = r#"
static_resources:
  listeners:
  - address: { socket_address: { address: 127.0.0.1, port_value: 8080 } }
    filter_chains:
    - filters:
      - name: hcm
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress
          upgrade_configs: [{ upgrade_type: websocket }, { upgrade_type: CONNECT, enabled: false }]
          http_filters:
          - name: router
            typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: { connect_matcher: {} }
                route: { cluster: web, upgrade_configs: [{ upgrade_type: CONNECT, connect_config: {} }] }
              - match: { prefix: / }
                route: { cluster: web, upgrade_configs: [{ upgrade_type: websocket, enabled: false }] }
  clusters:
  - name: web
    load_assignment: { cluster_name: web, endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: 9000 } } } }] }] }
"#;
    let (first, again, _) = round_trip(yaml);
    assert!(again.warnings.is_empty(), "{:?}", again.warnings);
    let types = |b: &crate::Bootstrap| -> Vec<(String, bool)> {
        hcm(b, 0).upgrade_configs.iter().map(|u| (u.upgrade_type.clone(), u.enabled)).collect()
    };
    assert_eq!(types(&first), types(&again.bootstrap));
    for r in 0..2 {
        let (a, b) = (route_config(&first), route_config(&again.bootstrap));
        assert_eq!(action(a, r).upgrade_configs, action(b, r).upgrade_configs);
        assert_eq!(a.virtual_hosts[0].routes[r].r#match.path, b.virtual_hosts[0].routes[r].r#match.path);
    }
    let h = hcm(&first, 0).dump();
    assert_eq!(at(&h, "upgrade_configs[0].upgrade_type"), &s("websocket"));
    assert_eq!(at(&h, "upgrade_configs[0].enabled"), &Json::Bool(true));
    assert!(!has(at(&h, "upgrade_configs[0]"), "filters"));
    assert_eq!(at(&h, "upgrade_configs[1].enabled"), &Json::Bool(false));
    let rc = at(&h, "route_config");
    assert_eq!(at(rc, "virtual_hosts[0].routes[0].match.connect_matcher"), &Json::obj());
    assert!(!has(at(rc, "virtual_hosts[0].routes[0].match"), "prefix"));
    let up = at(rc, "virtual_hosts[0].routes[0].route.upgrade_configs[0]");
    assert_eq!(at(up, "upgrade_type"), &s("CONNECT"));
    assert_eq!(at(up, "connect_config"), &Json::obj());
    let up = at(rc, "virtual_hosts[0].routes[1].route.upgrade_configs[0]");
    assert_eq!(at(up, "enabled"), &Json::Bool(false));
    assert!(!has(up, "connect_config"));
    // Nothing set: empty lists.
    let none = hcm(&round_trip(RICH).0, 0).dump();
    assert_eq!(at(&none, "upgrade_configs"), &Json::Arr(Vec::new()));
}

#[test]
fn internal_redirect_policies_round_trip() {
    let yaml = r#"
static_resources:
  listeners:
  - address: { socket_address: { address: 127.0.0.1, port_value: 8080 } }
    filter_chains:
    - filters:
      - name: hcm
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress
          http_filters:
          - name: router
            typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: { prefix: /a }
                route:
                  cluster: web
                  internal_redirect_policy:
                    max_internal_redirects: 4
                    redirect_response_codes: [303, 307]
                    allow_cross_scheme_redirect: true
                    response_headers_to_copy: [x-token]
                    predicates:
                    - name: p
                      typed_config: { "@type": type.googleapis.com/envoy.extensions.internal_redirect.previous_routes.v3.PreviousRoutesConfig }
                    - name: a
                      typed_config: { "@type": type.googleapis.com/envoy.extensions.internal_redirect.allow_listed_routes.v3.AllowListedRoutesConfig, allowed_route_names: [x] }
              - match: { prefix: / }
                route: { cluster: web, internal_redirect_action: HANDLE_INTERNAL_REDIRECT, max_internal_redirects: 3 }
  clusters:
  - name: web
    load_assignment: { cluster_name: web, endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: 9000 } } } }] }] }
"#;
    let (first, again, _) = round_trip(yaml);
    let (rc1, rc2) = (route_config(&first), route_config(&again.bootstrap));
    for i in 0..2 {
        assert!(action(rc1, i).internal_redirect_policy.is_some());
        assert_eq!(action(rc2, i).internal_redirect_policy, action(rc1, i).internal_redirect_policy);
    }
    assert_eq!(action(rc2, 1).internal_redirect_policy.as_ref().unwrap().max_internal_redirects, 3);
}

/// Tracing (both providers), the request-id extension and the route's decorator and
/// tracing dump as Envoy writes them and load back the same.
#[test]
fn tracing_round_trips() {
    let yaml = |provider: &str| {
        format!(
            r#"
static_resources:
  clusters:
  - name: col
    load_assignment: {{ cluster_name: col, endpoints: [{{ lb_endpoints: [{{ endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: 9411 }} }} }} }}] }}] }}
  listeners:
  - address: {{ socket_address: {{ address: 127.0.0.1, port_value: 8080 }} }}
    filter_chains:
    - filters:
      - name: hcm
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress
          always_set_request_id_in_response: true
          request_id_extension: {{ typed_config: {{ "@type": type.googleapis.com/envoy.extensions.request_id.uuid.v3.UuidRequestIdConfig, pack_trace_reason: false }} }}
          tracing:
            random_sampling: {{ value: 12.5 }}
            client_sampling: {{ value: 40 }}
            max_path_tag_length: 64
            custom_tags: [{{ tag: a, literal: {{ value: b }} }}, {{ tag: c, request_header: {{ name: x-c, default_value: d }} }}, {{ tag: e, environment: {{ name: HOME }} }}]
            provider: {provider}
          http_filters:
          - name: router
            typed_config: {{ "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }}
          route_config: {{ virtual_hosts: [{{ name: all, domains: ["*"], routes: [{{ match: {{ prefix: / }}, direct_response: {{ status: 200 }}, decorator: {{ operation: op, propagate: false }}, tracing: {{ random_sampling: {{ numerator: 3, denominator: TEN_THOUSAND }}, custom_tags: [{{ tag: r, literal: {{ value: v }} }}] }} }}] }}] }}
"#
        )
    };
    let zipkin = "{ name: envoy.tracers.zipkin, typed_config: { \"@type\": type.googleapis.com/envoy.config.trace.v3.ZipkinConfig, collector_cluster: col, collector_endpoint: /api/v2/spans, trace_id_128bit: true, shared_span_context: false } }";
    let otel = "{ name: envoy.tracers.opentelemetry, typed_config: { \"@type\": type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig, service_name: svc, http_service: { http_uri: { uri: \"http://col:4318/v1/traces\", cluster: col, timeout: 3s }, request_headers_to_append: [{ header: { key: k, value: v } }] }, resource_detectors: [{ name: env, typed_config: { \"@type\": type.googleapis.com/envoy.extensions.tracers.opentelemetry.resource_detectors.v3.EnvironmentResourceDetectorConfig } }] } }";
    for provider in [zipkin, otel] {
        let (first, again, _) = round_trip(&yaml(provider));
        assert!(again.warnings.is_empty(), "{:?}", again.warnings);
        let (a, b) = (hcm(&first, 0), hcm(&again.bootstrap, 0));
        assert_eq!(a.tracing, b.tracing);
        assert_eq!(a.request_id, b.request_id);
        assert!(b.always_set_request_id_in_response);
        let (ra, rb) = (&a.route_config.virtual_hosts[0].routes[0], &b.route_config.virtual_hosts[0].routes[0]);
        assert_eq!((&ra.decorator, &ra.tracing), (&rb.decorator, &rb.tracing));
        let h = a.dump();
        assert_eq!(at(&h, "tracing.random_sampling.value"), &n("12.5"));
        assert_eq!(at(&h, "route_config.virtual_hosts[0].routes[0].decorator.operation"), &s("op"));
    }
}
