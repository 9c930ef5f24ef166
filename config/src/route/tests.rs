use std::time::Duration;

use super::*;
use crate::core::{AppendAction, Denominator, FractionalPercent};
use crate::decode::Decoder;
use crate::matcher::{HeaderMatch, QueryParameterMatch};
use crate::node::parse;

fn decode(yaml: &str) -> (Option<RouteConfiguration>, Decoder) {
    let n = parse(yaml).unwrap();
    let mut d = Decoder::new();
    let v = RouteConfiguration::decode(&mut d, &n, "rc");
    (v, d)
}

fn ok(yaml: &str) -> RouteConfiguration {
    let (v, d) = decode(yaml);
    assert!(d.errors.is_empty(), "{yaml}\n{:?}", d.errors);
    v.unwrap()
}

fn errors(yaml: &str) -> String {
    let (_, d) = decode(yaml);
    assert!(!d.errors.is_empty(), "{yaml} should fail");
    d.errors.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n")
}

/// One virtual host `vh` on `*` with the given routes.
fn one(routes: &str) -> RouteConfiguration {
    ok(&format!("virtual_hosts:\n- name: vh\n  domains: ['*']\n  routes:\n{routes}"))
}

fn route_action(rc: &RouteConfiguration) -> &RouteAction {
    match &rc.virtual_hosts[0].routes[0].action {
        Action::Route(a) => a,
        other => panic!("not a route action: {other:?}"),
    }
}

#[test]
fn route_configuration_defaults() {
    let rc = ok("virtual_hosts: []");
    assert_eq!(rc.name, "");
    assert_eq!(rc.validate_clusters, None);
    assert!(rc.request_headers.is_empty() && rc.response_headers.is_empty());
    assert!(rc.internal_only_headers.is_empty());
    assert!(!rc.most_specific_header_mutations_wins);
    assert_eq!(rc.max_direct_response_body_size_bytes, 4096);
    assert!(!rc.ignore_port_in_host_matching);
    assert!(rc.request_mirror_policies.is_empty());
}

#[test]
fn route_configuration_camel_case() {
    let rc = ok(r#"{"name": "r", "validateClusters": false, "mostSpecificHeaderMutationsWins": true,
        "maxDirectResponseBodySizeBytes": 10, "ignorePortInHostMatching": true,
        "internalOnlyHeaders": ["X-Internal"],
        "requestHeadersToAdd": [{"header": {"key": "a", "value": "1"}}],
        "responseHeadersToRemove": ["b"], "virtualHosts": []}"#);
    assert_eq!(rc.validate_clusters, Some(false));
    assert!(rc.most_specific_header_mutations_wins && rc.ignore_port_in_host_matching);
    assert_eq!(rc.max_direct_response_body_size_bytes, 10);
    assert_eq!(rc.internal_only_headers, vec!["x-internal"]);
    assert_eq!(rc.request_headers.to_add[0].key, "a");
    assert_eq!(rc.response_headers.to_remove, vec!["b"]);
}

#[test]
fn virtual_host_defaults() {
    let rc = ok("virtual_hosts:\n- name: vh\n  domains: [Example.COM]\n");
    let vh = &rc.virtual_hosts[0];
    assert_eq!(vh.domains, vec!["example.com"]);
    assert!(vh.routes.is_empty());
    assert_eq!(vh.require_tls, TlsRequirement::None);
    assert_eq!(vh.retry_policy, None);
    assert!(!vh.include_request_attempt_count && !vh.include_attempt_count_in_response);
    assert!(vh.virtual_clusters.is_empty());
}

#[test]
fn virtual_host_fields() {
    let rc = ok("virtualHosts:\n- name: vh\n  domains: ['*']\n  requireTls: EXTERNAL_ONLY\n  includeRequestAttemptCount: true\n  retryPolicy: {retryOn: 5xx}\n  requestMirrorPolicies: [{cluster: shadow}]\n  virtualClusters: [{name: vc, headers: [{name: ':method', exactMatch: POST}]}]\n");
    let vh = &rc.virtual_hosts[0];
    assert_eq!(vh.require_tls, TlsRequirement::ExternalOnly);
    assert!(vh.include_request_attempt_count);
    assert_eq!(vh.retry_policy.as_ref().unwrap().retry_on, RetryOn::FIVE_XX);
    assert_eq!(vh.request_mirror_policies[0].target, MirrorTarget::Cluster("shadow".into()));
    assert_eq!(vh.virtual_clusters[0].name, "vc");
}

#[test]
fn virtual_clusters_warn_and_need_headers() {
    let (_, d) = decode(
        "virtual_hosts:\n- name: vh\n  domains: ['*']\n  virtual_clusters: [{name: vc, headers: [{name: a}]}]\n",
    );
    assert!(d.warnings.iter().any(|w| w.path.ends_with("virtual_clusters")));
    assert!(errors("virtual_hosts:\n- name: vh\n  domains: ['*']\n  virtual_clusters: [{name: vc}]\n")
        .contains("virtual clusters must define 'headers'"));
}

#[test]
fn domain_rules() {
    let e = errors("virtual_hosts:\n- {name: a, domains: ['*']}\n- {name: b, domains: ['*']}\n");
    assert!(e.contains("Only a single wildcard domain is permitted"), "{e}");
    assert!(e.contains("rc.virtual_hosts[1].domains[0]"), "{e}");
    let e = errors("virtual_hosts:\n- {name: a, domains: [foo.com]}\n- {name: b, domains: [FOO.com]}\n");
    assert!(e.contains("Duplicate entry of domain foo.com"), "{e}");
    let e = errors("virtual_hosts:\n- {name: a, domains: ['foo.*.com']}\n");
    assert!(e.contains("a wildcard must be a leading"), "{e}");
    assert!(errors("virtual_hosts:\n- {name: a, domains: ['*foo*']}\n").contains("wildcard"));
    assert!(errors("virtual_hosts:\n- {name: a, domains: []}\n").contains("at least one domain"));
    assert!(errors("virtual_hosts:\n- {name: a, domains: ['']}\n").contains("must not be empty"));
    // The four forms are accepted, and a suffix and a prefix wildcard may coexist.
    let rc = ok(
        "virtual_hosts:\n- {name: a, domains: ['*.foo.com', '*-bar.foo.com', 'foo.*', 'foo-*', 'www.foo.com', '*']}\n",
    );
    assert_eq!(rc.virtual_hosts[0].domains.len(), 6);
}

#[test]
fn route_match_defaults_and_kinds() {
    let rc = one("  - match: {prefix: /}\n    route: {cluster: c}\n");
    let m = &rc.virtual_hosts[0].routes[0].r#match;
    assert_eq!(m.path, PathSpecifier::Prefix("/".into()));
    assert!(m.case_sensitive);
    assert!(m.headers.is_empty() && m.query_parameters.is_empty() && !m.grpc);

    let rc = one("  - match: {path: /a, caseSensitive: false, grpc: {}}\n    route: {cluster: c}\n");
    let m = &rc.virtual_hosts[0].routes[0].r#match;
    assert_eq!(m.path, PathSpecifier::Path("/a".into()));
    assert!(!m.case_sensitive && m.grpc);

    let rc = one("  - match: {safe_regex: {regex: '/a/\\d+'}, headers: [{name: x, presentMatch: true}], queryParameters: [{name: q}]}\n    route: {cluster: c}\n");
    let m = &rc.virtual_hosts[0].routes[0].r#match;
    assert!(matches!(&m.path, PathSpecifier::SafeRegex(r) if r.pattern() == "/a/\\d+"));
    assert_eq!(m.headers[0].specifier, HeaderMatch::Present(true));
    assert_eq!(m.query_parameters[0].specifier, QueryParameterMatch::Presence);

    let rc = one("  - match: {pathSeparatedPrefix: /api}\n    route: {cluster: c}\n");
    assert_eq!(rc.virtual_hosts[0].routes[0].r#match.path, PathSpecifier::PathSeparatedPrefix("/api".into()));
}

#[test]
fn route_match_errors() {
    let base = "virtual_hosts:\n- name: vh\n  domains: ['*']\n  routes:\n";
    assert!(errors(&format!("{base}  - match: {{}}\n    route: {{cluster: c}}\n")).contains("needs one of `prefix`"));
    assert!(errors(&format!("{base}  - match: {{prefix: /, path: /}}\n    route: {{cluster: c}}\n"))
        .contains("set only one"));
    assert!(errors(&format!("{base}  - match: {{path_separated_prefix: /a/}}\n    route: {{cluster: c}}\n"))
        .contains("not end with `/`"));
    let e = errors(&format!("{base}  - match: {{safe_regex: {{regex: '/(a'}}}}\n    route: {{cluster: c}}\n"));
    assert!(e.contains("rc.virtual_hosts[0].routes[0].match.safe_regex.regex"), "{e}");
    let e = errors(&format!(
        "{base}  - match: {{prefix: /, runtime_fraction: {{runtime_key: k}}}}\n    route: {{cluster: c}}\n"
    ));
    assert!(e.contains("match.runtime_fraction.default_value"), "{e}");
    assert!(errors(&format!("{base}  - match: {{prefix: /}}\n")).contains("needs one of `route`, `redirect`"));
    assert!(errors(&format!("{base}  - match: {{prefix: /}}\n    route: {{cluster: c}}\n    redirect: {{}}\n"))
        .contains("set only one of `route`"));
}

#[test]
fn route_action_defaults() {
    let rc = one("  - match: {prefix: /}\n    route: {cluster: c}\n");
    let a = route_action(&rc);
    assert_eq!(a.cluster, ClusterSpecifier::Cluster("c".into()));
    assert_eq!(a.cluster_not_found_response_code, ClusterNotFoundResponseCode::ServiceUnavailable);
    assert_eq!(a.cluster_not_found_response_code.status(), 503);
    assert_eq!(a.prefix_rewrite, None);
    assert_eq!(a.regex_rewrite, None);
    assert_eq!(a.host_rewrite, HostRewrite::None);
    assert!(!a.append_x_forwarded_host);
    assert_eq!(a.timeout, Some(Duration::from_secs(15)));
    assert_eq!(a.idle_timeout, IdleTimeout::Inherit);
    assert_eq!(a.retry_policy, None);
    assert!(a.request_mirror_policies.is_empty() && a.hash_policy.is_empty());
}

#[test]
fn route_action_fields() {
    let rc = one("  - match: {prefix: /}\n    route: {clusterHeader: X-Cluster, clusterNotFoundResponseCode: NOT_FOUND, prefixRewrite: /b, hostRewriteLiteral: h, timeout: 0s, idleTimeout: 0s}\n");
    let a = route_action(&rc);
    assert_eq!(a.cluster, ClusterSpecifier::ClusterHeader("x-cluster".into()));
    assert_eq!(a.cluster_not_found_response_code.status(), 404);
    assert_eq!(a.prefix_rewrite.as_deref(), Some("/b"));
    assert_eq!(a.host_rewrite, HostRewrite::Literal("h".into()));
    assert_eq!(a.timeout, None);
    assert_eq!(a.idle_timeout, IdleTimeout::Disabled);

    let rc = one("  - match: {prefix: /}\n    route: {cluster: c, regex_rewrite: {pattern: {regex: a}, substitution: b}, auto_host_rewrite: true, idle_timeout: 2s, timeout: 1.5s}\n");
    let a = route_action(&rc);
    assert_eq!(a.regex_rewrite.as_ref().unwrap().substitution(), "b");
    assert_eq!(a.host_rewrite, HostRewrite::Auto);
    assert_eq!(a.idle_timeout, IdleTimeout::After(Duration::from_secs(2)));
    assert_eq!(a.timeout, Some(Duration::from_millis(1500)));

    let rc = one("  - match: {prefix: /}\n    route: {cluster: c, host_rewrite_header: X-Host}\n");
    assert_eq!(route_action(&rc).host_rewrite, HostRewrite::Header("x-host".into()));
    let rc = one("  - match: {prefix: /}\n    route: {cluster: c, host_rewrite_path_regex: {pattern: {regex: '^/(.+)/.+$'}, substitution: '\\1'}}\n");
    assert!(matches!(route_action(&rc).host_rewrite, HostRewrite::PathRegex(_)));
}

#[test]
fn route_action_errors() {
    let base = "virtual_hosts:\n- name: vh\n  domains: ['*']\n  routes:\n  - match: {prefix: /}\n    route: ";
    assert!(errors(&format!("{base}{{}}\n")).contains("needs one of `cluster`"));
    assert!(errors(&format!("{base}{{cluster: a, cluster_header: b}}\n")).contains("set only one"));
    assert!(errors(&format!("{base}{{cluster: ''}}\n")).contains("must not be empty"));
    assert!(errors(&format!(
        "{base}{{cluster: a, prefix_rewrite: /x, regex_rewrite: {{pattern: {{regex: a}}, substitution: b}}}}\n"
    ))
    .contains("Specify only one of prefix_rewrite"));
    assert!(errors(&format!("{base}{{cluster: a, host_rewrite_literal: x, auto_host_rewrite: true}}\n"))
        .contains("set only one of host_rewrite_literal"));
    assert!(errors(&format!("{base}{{cluster: a, cors: {{allow_methods: 1.5.x}}, rate_limits: [{{}}]}}\n"))
        .contains("rate_limits[0].actions"));
    let e = errors(&format!("{base}{{cluster: a, tiemout: 1s}}\n"));
    assert!(e.contains("did you mean `timeout`"), "{e}");
}

#[test]
fn weighted_clusters() {
    let rc = one("  - match: {prefix: /}\n    route:\n      weightedClusters:\n        headerName: x-rand\n        totalWeight: 100\n        clusters:\n        - {name: a, weight: 30, requestHeadersToAdd: [{header: {key: x-c, value: a}}], hostRewriteLiteral: ha}\n        - {name: b, weight: 0}\n        - {clusterHeader: X-Pick, weight: 70}\n");
    let ClusterSpecifier::Weighted(w) = &route_action(&rc).cluster else { panic!() };
    assert_eq!(w.total_weight, 100);
    assert_eq!(w.header_name.as_deref(), Some("x-rand"));
    assert_eq!(w.clusters[0].target, WeightedTarget::Name("a".into()));
    assert_eq!(w.clusters[0].host_rewrite_literal.as_deref(), Some("ha"));
    assert_eq!(w.clusters[0].request_headers.to_add[0].key, "x-c");
    assert_eq!(w.clusters[1].weight, 0);
    assert_eq!(w.clusters[2].target, WeightedTarget::Header("x-pick".into()));

    let base = "virtual_hosts:\n- name: vh\n  domains: ['*']\n  routes:\n  - match: {prefix: /}\n    route:\n      weighted_clusters: ";
    assert!(errors(&format!("{base}{{clusters: [{{name: a, weight: 0}}]}}\n")).contains("must be greater than 0"));
    assert!(errors(&format!("{base}{{clusters: []}}\n")).contains("at least one cluster"));
    assert!(errors(&format!("{base}{{clusters: [{{weight: 1}}]}}\n"))
        .contains("exactly one of `name` and `cluster_header`"));
    assert!(errors(&format!("{base}{{clusters: [{{name: a, weight: 4294967295}}, {{name: b, weight: 1}}]}}\n"))
        .contains("exceeds"));
}

#[test]
fn retry_policy_defaults_and_fields() {
    let rc = one("  - match: {prefix: /}\n    route: {cluster: c, retry_policy: {}}\n");
    let p = route_action(&rc).retry_policy.clone().unwrap();
    assert_eq!(p, RetryPolicy::default());
    assert_eq!(p.num_retries, 1);
    assert_eq!(p.retry_back_off.base_interval, Duration::from_millis(25));
    assert_eq!(p.retry_back_off.max_interval, Duration::from_millis(250));
    assert!(p.retry_on.is_empty() && p.per_try_timeout.is_none());

    let rc = one("  - match: {prefix: /}\n    route: {cluster: c, retryPolicy: {retryOn: '5xx,reset, connect-failure,retriable-status-codes', numRetries: 3, perTryTimeout: 0.5s, perTryIdleTimeout: 1s, retriableStatusCodes: [409], retryBackOff: {baseInterval: 0.1s}, retriableHeaders: [{name: x-retry}]}}\n");
    let p = route_action(&rc).retry_policy.clone().unwrap();
    assert!(p.retry_on.contains(RetryOn::FIVE_XX) && p.retry_on.contains(RetryOn::RESET));
    assert!(p.retry_on.contains(RetryOn::CONNECT_FAILURE) && p.retry_on.contains(RetryOn::RETRIABLE_STATUS_CODES));
    assert!(!p.retry_on.contains(RetryOn::GATEWAY_ERROR));
    assert_eq!(p.num_retries, 3);
    assert_eq!(p.per_try_timeout, Some(Duration::from_millis(500)));
    assert_eq!(p.per_try_idle_timeout, Some(Duration::from_secs(1)));
    assert_eq!(p.retriable_status_codes, vec![409]);
    assert_eq!(p.retry_back_off.max_interval, Duration::from_secs(1));
    assert_eq!(p.retriable_headers[0].name, "x-retry");
}

#[test]
fn hedge_policy_on_routes_and_virtual_hosts() {
    let rc = one("  - match: {prefix: /}\n    route: {cluster: c, hedge_policy: {hedge_on_per_try_timeout: true}}\n");
    assert_eq!(route_action(&rc).hedge_policy, Some(HedgePolicy { hedge_on_per_try_timeout: true }));
    let rc = one("  - match: {prefix: /}\n    route: {cluster: c, hedge_policy: {initial_requests: 1}}\n");
    assert_eq!(route_action(&rc).hedge_policy, Some(HedgePolicy::default()));
    let (_, d) =
        decode("virtual_hosts:\n- name: vh\n  domains: ['*']\n  hedge_policy: {hedge_on_per_try_timeout: true}\n");
    assert!(d.errors.is_empty());
    let base = "virtual_hosts:\n- name: vh\n  domains: ['*']\n  hedge_policy: ";
    assert!(errors(&format!("{base}{{initial_requests: 2}}\n")).contains("only 1 initial request"));
    assert!(errors(&format!("{base}{{additional_request_chance: {{numerator: 5}}}}\n"))
        .contains("additional_request_chance"));
}

#[test]
fn retry_policy_checks() {
    let (_, d) = decode("virtual_hosts:\n- name: vh\n  domains: ['*']\n  retry_policy: {retry_on: '5xx,bogus'}\n");
    assert!(d.errors.is_empty());
    assert!(d.warnings.iter().any(|w| w.message.contains("bogus")));
    let base = "virtual_hosts:\n- name: vh\n  domains: ['*']\n  retry_policy: ";
    assert!(errors(&format!("{base}{{retry_back_off: {{max_interval: 1s}}}}\n")).contains("base_interval"));
    assert!(errors(&format!("{base}{{retry_back_off: {{base_interval: 0s}}}}\n")).contains("greater than 0"));
    assert!(errors(&format!("{base}{{retry_back_off: {{base_interval: 2s, max_interval: 1s}}}}\n"))
        .contains("greater than or equal to the base_interval"));
    assert!(errors(&format!("{base}{{retriable_status_codes: [42]}}\n")).contains("not an HTTP status code"));
}

#[test]
fn mirror_and_hash_policies() {
    let rc = one("  - match: {prefix: /}\n    route:\n      cluster: c\n      requestMirrorPolicies:\n      - {cluster: m1}\n      - {clusterHeader: X-Mirror, runtimeFraction: {defaultValue: {numerator: 5, denominator: TEN_THOUSAND}}, disableShadowHostSuffixAppend: true, hostRewriteLiteral: shadow.local}\n      hashPolicy:\n      - {header: {headerName: X-User}, terminal: true}\n      - {cookie: {name: sid, ttl: 10s, path: /}}\n      - {connectionProperties: {sourceIp: true}}\n      - {queryParameter: {name: u}}\n");
    let a = route_action(&rc);
    assert_eq!(a.request_mirror_policies[0].fraction.default_value, FractionalPercent::ALWAYS);
    assert!(!a.request_mirror_policies[0].disable_shadow_host_suffix_append);
    let m = &a.request_mirror_policies[1];
    assert_eq!(m.target, MirrorTarget::ClusterHeader("x-mirror".into()));
    assert_eq!(m.fraction.default_value, FractionalPercent { numerator: 5, denominator: Denominator::TenThousand });
    assert!(m.disable_shadow_host_suffix_append);
    assert_eq!(m.host_rewrite_literal.as_deref(), Some("shadow.local"));
    assert_eq!(
        a.hash_policy[0],
        HashPolicy { kind: HashPolicyKind::Header { name: "x-user".into(), regex_rewrite: None }, terminal: true }
    );
    assert_eq!(
        a.hash_policy[1].kind,
        HashPolicyKind::Cookie { name: "sid".into(), ttl: Some(Duration::from_secs(10)), path: "/".into() }
    );
    assert_eq!(a.hash_policy[2].kind, HashPolicyKind::SourceIp);
    assert_eq!(a.hash_policy[3].kind, HashPolicyKind::QueryParameter { name: "u".into() });

    let base = "virtual_hosts:\n- name: vh\n  domains: ['*']\n  request_mirror_policies: ";
    assert!(errors(&format!("{base}[{{}}]\n")).contains("Exactly one of cluster or cluster_header"));
    assert!(errors(&format!("{base}[{{cluster: a, cluster_header: b}}]\n")).contains("Only one of cluster"));
    let base = "virtual_hosts:\n- name: vh\n  domains: ['*']\n  routes:\n  - match: {prefix: /}\n    route: {cluster: c, hash_policy: ";
    assert!(errors(&format!("{base}[{{}}]}}\n")).contains("exactly one of `header`"));
    assert!(errors(&format!("{base}[{{filter_state: {{key: k}}}}]}}\n")).contains("unsupported"));
}

#[test]
fn redirect_defaults_and_fields() {
    let rc = one("  - match: {prefix: /}\n    redirect: {}\n");
    let Action::Redirect(r) = &rc.virtual_hosts[0].routes[0].action else { panic!() };
    assert_eq!(r.scheme, SchemeRedirect::Keep);
    assert_eq!(r.host_redirect, None);
    assert_eq!(r.port_redirect, None);
    assert_eq!(r.path, PathRedirect::Keep);
    assert_eq!(r.response_code.status(), 301);
    assert!(!r.strip_query);

    let rc = one("  - match: {prefix: /}\n    redirect: {httpsRedirect: true, hostRedirect: h, portRedirect: 8443, prefixRewrite: /n, responseCode: PERMANENT_REDIRECT, stripQuery: true}\n");
    let Action::Redirect(r) = &rc.virtual_hosts[0].routes[0].action else { panic!() };
    assert_eq!(r.scheme, SchemeRedirect::Https);
    assert_eq!(r.host_redirect.as_deref(), Some("h"));
    assert_eq!(r.port_redirect, Some(8443));
    assert_eq!(r.path, PathRedirect::PrefixRewrite("/n".into()));
    assert_eq!(r.response_code.status(), 308);
    assert!(r.strip_query);

    for (code, status) in [("FOUND", 302), ("SEE_OTHER", 303), ("TEMPORARY_REDIRECT", 307)] {
        let rc = one(&format!("  - match: {{prefix: /}}\n    redirect: {{response_code: {code}, scheme_redirect: ftp, path_redirect: /p}}\n"));
        let Action::Redirect(r) = &rc.virtual_hosts[0].routes[0].action else { panic!() };
        assert_eq!(r.response_code.status(), status);
        assert_eq!(r.scheme, SchemeRedirect::Scheme("ftp".into()));
        assert_eq!(r.path, PathRedirect::Path("/p".into()));
    }
    let base = "virtual_hosts:\n- name: vh\n  domains: ['*']\n  routes:\n  - match: {prefix: /}\n    redirect: ";
    assert!(errors(&format!("{base}{{https_redirect: true, scheme_redirect: http}}\n")).contains("only one"));
    assert!(errors(&format!("{base}{{path_redirect: /a, prefix_rewrite: /b}}\n")).contains("only one"));
    assert!(errors(&format!("{base}{{port_redirect: 70000}}\n")).contains("not in 0..=65535"));
}

#[test]
fn direct_response_bodies() {
    let rc = one("  - match: {prefix: /a}\n    direct_response: {status: 200}\n  - match: {prefix: /b}\n    directResponse: {status: 503, body: {inlineString: down}}\n  - match: {prefix: /c}\n    direct_response: {status: 200, body: {inline_bytes: aGVsbG8=}}\n");
    let bodies: Vec<_> = rc.virtual_hosts[0]
        .routes
        .iter()
        .map(|r| match &r.action {
            Action::DirectResponse(d) => (d.status, d.body.clone()),
            _ => panic!(),
        })
        .collect();
    assert_eq!(bodies, vec![(200, None), (503, Some(b"down".to_vec())), (200, Some(b"hello".to_vec()))]);

    let dir = std::env::temp_dir().join(format!("sluice-route-body-{}", std::process::id()));
    std::fs::write(&dir, b"from file").unwrap();
    let rc = one(&format!(
        "  - match: {{prefix: /}}\n    direct_response: {{status: 200, body: {{filename: '{}'}}}}\n",
        dir.display()
    ));
    let _ = std::fs::remove_file(&dir);
    let Action::DirectResponse(d) = &rc.virtual_hosts[0].routes[0].action else { panic!() };
    assert_eq!(d.body.as_deref(), Some(&b"from file"[..]));

    let base = "virtual_hosts:\n- name: vh\n  domains: ['*']\n  routes:\n  - match: {prefix: /}\n    direct_response: ";
    assert!(errors(&format!("{base}{{status: 100}}\n")).contains("not in 200..=599"));
    assert!(errors(&format!("{base}{{status: 200, body: {{filename: /nonexistent/x}}}}\n")).contains("cannot read"));
    assert!(errors(&format!("{base}{{status: 200, body: {{inline_bytes: '*'}}}}\n")).contains("base64"));
    assert!(errors(&format!("{base}{{status: 200, body: {{}}}}\n")).contains("exactly one"));
    let e = errors(&format!(
        "max_direct_response_body_size_bytes: 3\n{base}{{status: 200, body: {{inline_string: four}}}}\n"
    ));
    assert!(e.contains("response body size is 4 bytes; maximum is 3"), "{e}");
    assert!(e.contains("rc.virtual_hosts[0].routes[0].direct_response.body"), "{e}");
}

#[test]
fn header_mutations() {
    let rc = one("  - match: {prefix: /}\n    route: {cluster: c}\n    request_headers_to_add:\n    - {header: {key: X-A, value: '%DOWNSTREAM_REMOTE_ADDRESS%'}, append_action: OVERWRITE_IF_EXISTS_OR_ADD, keep_empty_value: true}\n    - {header: {key: x-b, value: lit}, append: false}\n    request_headers_to_remove: [X-Gone]\n");
    let r = &rc.virtual_hosts[0].routes[0];
    let a = &r.request_headers.to_add[0];
    assert_eq!(a.key, "x-a");
    assert_eq!(a.append_action, AppendAction::OverwriteIfExistsOrAdd);
    assert!(a.keep_empty_value);
    assert_eq!(a.value.pieces.len(), 1);
    assert_eq!(r.request_headers.to_add[1].append_action, AppendAction::OverwriteIfExistsOrAdd);
    assert_eq!(r.request_headers.to_add[1].value.as_literal(), Some("lit"));
    assert_eq!(r.request_headers.to_remove, vec!["x-gone"]);

    let base = "virtual_hosts:\n- name: vh\n  domains: ['*']\n  ";
    let e = errors(&format!("{base}request_headers_to_add: [{{header: {{key: x, value: '%BOGUS%'}}}}]\n"));
    assert!(e.contains("Not supported field in StreamInfo: BOGUS"), "{e}");
    assert!(e.contains("rc.virtual_hosts[0].request_headers_to_add[0].header.value"), "{e}");
    assert!(errors(&format!("{base}response_headers_to_add: [{{header: {{key: Host, value: x}}}}]\n"))
        .contains("may not be modified"));
    assert!(errors(&format!("{base}request_headers_to_remove: [host]\n")).contains("may not be removed"));
    assert!(errors(&format!("{base}request_headers_to_remove: [':path']\n")).contains("may not be removed"));
}

#[test]
fn route_names_and_unknown_fields() {
    let rc = one("  - name: r1\n    match: {prefix: /}\n    route: {cluster: c}\n    decorator: {operation: x}\n");
    assert_eq!(rc.virtual_hosts[0].routes[0].name, "r1");
    let e = errors("virtual_hosts:\n- name: vh\n  domains: ['*']\n  routes:\n  - match: {prefix: /}\n    route: {cluster: c}\n    stat_prefix: x\n");
    assert!(e.contains("unsupported field `stat_prefix`"), "{e}");
    assert!(errors("vhds: {}\nvirtual_hosts: []").contains("unsupported field `vhds`"));
}

#[test]
fn route_upgrade_configs() {
    let rc = one("  - match: {prefix: /}\n    route: {cluster: c}\n");
    assert!(route_action(&rc).upgrade_configs.is_empty());
    let rc = one(
        "  - match: {prefix: /}\n    route:\n      cluster: c\n      upgrade_configs:\n      - {upgrade_type: websocket, enabled: false}\n      - {upgrade_type: CONNECT, connect_config: {}}\n",
    );
    let u = &route_action(&rc).upgrade_configs;
    assert_eq!(u[0], RouteUpgradeConfig { upgrade_type: "websocket".into(), enabled: false, connect_config: None });
    assert_eq!(
        u[1],
        RouteUpgradeConfig { upgrade_type: "CONNECT".into(), enabled: true, connect_config: Some(ConnectConfig {}) }
    );
    let route = |upgrades: &str| {
        format!("virtual_hosts:\n- name: vh\n  domains: ['*']\n  routes:\n  - match: {{prefix: /}}\n    route: {{cluster: c, upgrade_configs: {upgrades}}}\n")
    };
    let e = errors(&route("[{upgrade_type: websocket, connect_config: {}}]"));
    assert!(
        e.contains("upgrade_configs[0].connect_config")
            && e.contains("Non-CONNECT upgrade type websocket has ConnectConfig"),
        "{e}"
    );
    let e = errors(&route("[{upgrade_type: websocket}, {upgrade_type: WEBSOCKET}]"));
    assert!(e.contains("upgrade_configs[1].upgrade_type") && e.contains("Duplicate upgrade WEBSOCKET"), "{e}");
    let e = errors(&route("[{upgrade_type: CONNECT, connect_config: {allow_post: true}}]"));
    assert!(e.contains("connect_config.allow_post") && e.contains("not supported"), "{e}");
    let e = errors(&route("[{upgrade_type: CONNECT, connect_config: {proxy_protocol_config: {version: V1}}}]"));
    assert!(e.contains("proxy_protocol_config"), "{e}");
}

#[test]
fn connect_matcher() {
    let rc = one("  - match: {connect_matcher: {}}\n    route: {cluster: c}\n");
    assert_eq!(rc.virtual_hosts[0].routes[0].r#match.path, PathSpecifier::ConnectMatcher);
    let e = errors("virtual_hosts:\n- name: vh\n  domains: ['*']\n  routes:\n  - match: {connect_matcher: {}, prefix: /}\n    route: {cluster: c}\n");
    assert!(e.contains("set only one of") && e.contains("connect_matcher"), "{e}");
    let e = errors("virtual_hosts:\n- name: vh\n  domains: ['*']\n  routes:\n  - match: {connect_matcher: {x: 1}}\n    route: {cluster: c}\n");
    assert!(e.contains("connect_matcher") && e.contains("x"), "{e}");
}

#[test]
fn internal_redirect_policy_defaults_and_fields() {
    let rc = one("  - match: {prefix: /}\n    route: {cluster: c, internal_redirect_policy: {}}\n");
    let p = route_action(&rc).internal_redirect_policy.clone().unwrap();
    assert_eq!(p, InternalRedirectPolicy::default());
    assert_eq!((p.max_internal_redirects, p.redirect_response_codes.as_slice()), (1, &[302u16][..]));
    let rc = one(
        "  - match: {prefix: /}
    route:
      cluster: c
      internal_redirect_policy:
        max_internal_redirects: 3
        redirect_response_codes: [301, 303, 200]
        allow_cross_scheme_redirect: true
        response_headers_to_copy: [X-Token]
        predicates:
        - name: envoy.internal_redirect_predicates.previous_routes
          typed_config: {'@type': type.googleapis.com/envoy.extensions.internal_redirect.previous_routes.v3.PreviousRoutesConfig}
        - name: allow
          typed_config:
            '@type': type.googleapis.com/envoy.extensions.internal_redirect.allow_listed_routes.v3.AllowListedRoutesConfig
            allowed_route_names: [a, b]
        - name: safe
          typed_config: {'@type': type.googleapis.com/envoy.extensions.internal_redirect.safe_cross_scheme.v3.SafeCrossSchemeConfig}
",
    );
    let p = route_action(&rc).internal_redirect_policy.clone().unwrap();
    assert_eq!(p.max_internal_redirects, 3);
    assert_eq!(p.redirect_response_codes, vec![301, 303], "200 is ignored as Envoy does");
    assert!(p.allow_cross_scheme_redirect);
    assert_eq!(p.response_headers_to_copy, vec!["x-token".to_string()]);
    assert_eq!(
        p.predicates,
        vec![
            InternalRedirectPredicate::PreviousRoutes,
            InternalRedirectPredicate::AllowListedRoutes(vec!["a".into(), "b".into()]),
            InternalRedirectPredicate::SafeCrossScheme,
        ]
    );
}

#[test]
fn internal_redirect_action_deprecated_form() {
    let rc = one("  - match: {prefix: /}\n    route: {cluster: c}\n");
    assert_eq!(route_action(&rc).internal_redirect_policy, None);
    let rc = one(
        "  - match: {prefix: /}\n    route: {cluster: c, internal_redirect_action: HANDLE_INTERNAL_REDIRECT, max_internal_redirects: 4}\n",
    );
    let p = route_action(&rc).internal_redirect_policy.clone().unwrap();
    assert_eq!((p.max_internal_redirects, p.redirect_response_codes), (4, vec![302]));
    let rc = one(
        "  - match: {prefix: /}\n    route: {cluster: c, internal_redirect_action: PASS_THROUGH_INTERNAL_REDIRECT}\n",
    );
    assert_eq!(route_action(&rc).internal_redirect_policy, None);
}

#[test]
fn internal_redirect_policy_rejections() {
    let e = errors(
        "virtual_hosts:\n- name: vh\n  domains: ['*']\n  routes:\n  - match: {prefix: /}\n    route: {cluster: c, internal_redirect_policy: {predicates: [{name: x, typed_config: {'@type': type.googleapis.com/foo.Bar}}]}}\n",
    );
    assert!(e.contains("internal_redirect_policy.predicates[0].typed_config.@type"), "{e}");
    let e = errors(
        "virtual_hosts:\n- name: vh\n  domains: ['*']\n  routes:\n  - match: {prefix: /}\n    route: {cluster: c, internal_redirect_policy: {response_headers_to_copy: [host]}}\n",
    );
    assert!(e.contains("response_headers_to_copy[0]"), "{e}");
}

#[test]
fn retry_host_predicates() {
    let rc = one("  - match: {prefix: /}\n    route: {cluster: c, retry_policy: {retry_on: 5xx}}\n");
    let p = route_action(&rc).retry_policy.clone().unwrap();
    assert!(p.retry_host_predicate.is_empty());
    assert_eq!(p.host_selection_retry_max_attempts, 1);
    let rc = one(
        "  - match: {prefix: /}
    route:
      cluster: c
      retry_policy:
        retry_on: 5xx
        host_selection_retry_max_attempts: 3
        retry_host_predicate:
        - name: envoy.retry_host_predicates.previous_hosts
          typed_config: {'@type': type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate}
",
    );
    let p = route_action(&rc).retry_policy.clone().unwrap();
    assert_eq!(p.retry_host_predicate, vec![RetryHostPredicate::PreviousHosts]);
    assert_eq!(p.host_selection_retry_max_attempts, 3);
    let e = errors(
        "virtual_hosts:\n- name: vh\n  domains: ['*']\n  routes:\n  - match: {prefix: /}\n    route: {cluster: c, retry_policy: {retry_host_predicate: [{name: x, typed_config: {'@type': type.googleapis.com/envoy.extensions.retry.host.omit_canary_hosts.v3.OmitCanaryHostsPredicate}}]}}\n",
    );
    assert!(e.contains("retry_policy.retry_host_predicate[0].typed_config.@type"), "{e}");
}

#[test]
fn dynamic_metadata_matchers_decode_and_dynamic_metadata_stays_out_of_header_values() {
    let rc = one(
        "  - match:\n      prefix: /\n      dynamic_metadata:\n      - {filter: ns, path: [{key: a}, {key: b}], value: {double_match: {exact: 1}}, invert: true}\n    route: {cluster: c}\n",
    );
    let m = &rc.virtual_hosts[0].routes[0].r#match.dynamic_metadata[0];
    assert_eq!((m.filter.as_str(), m.path.as_slice(), m.invert), ("ns", &["a".to_string(), "b".to_string()][..], true));
    let base = "virtual_hosts:\n- name: vh\n  domains: ['*']\n  routes:\n  - match:\n      prefix: /\n      dynamic_metadata: [{filter: ns, path: [{key: a}], value: ";
    let e = errors(&format!("{base}{{}}}}]\n    route: {{cluster: c}}\n"));
    assert!(e.contains("rc.virtual_hosts[0].routes[0].match.dynamic_metadata[0].value"), "{e}");
    let e = errors(
        "virtual_hosts:\n- name: vh\n  domains: ['*']\n  request_headers_to_add:\n  - header: {key: x-t, value: '%DYNAMIC_METADATA(ns:k)%'}\n",
    );
    assert!(e.contains("access logs only"), "{e}");
}
