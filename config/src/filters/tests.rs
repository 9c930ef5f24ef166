//! `typed_per_filter_config` and the filters' configs: what loads, what is rejected
//! with its path, what an optional config of an unknown type does.

use crate::filters::{PerFilterConfigs, PerRouteConfig};
use crate::route::RouteConfiguration;
use crate::{decode::Decoder, node::parse};

fn decode(yaml: &str) -> (Option<RouteConfiguration>, Decoder) {
    let n = parse(yaml).unwrap();
    let mut d = Decoder::new();
    let v = d.decode::<RouteConfiguration>(&n, "rc");
    (v, d)
}

/// A route configuration whose one route has `tpfc` as its typed_per_filter_config.
fn on_route(tpfc: &str) -> String {
    format!("virtual_hosts:\n- name: vh\n  domains: ['*']\n  routes:\n  - match: {{prefix: /}}\n    route: {{cluster: c}}\n    typed_per_filter_config:\n{tpfc}")
}

fn route_configs(rc: &RouteConfiguration) -> &PerFilterConfigs {
    &rc.virtual_hosts[0].routes[0].typed_per_filter_config
}

#[test]
fn filter_config_disabled_optional_and_typed() {
    let (rc, d) = decode(&on_route(
        "      a: {'@type': type.googleapis.com/envoy.config.route.v3.FilterConfig, disabled: true}\n      b: {'@type': type.googleapis.com/envoy.config.route.v3.FilterConfig, config: {}}\n      c: {'@type': type.googleapis.com/envoy.config.route.v3.FilterConfig, is_optional: true, config: {'@type': type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm, config: {}}}\n      d: {'@type': type.googleapis.com/envoy.extensions.filters.http.csrf.v3.CsrfPolicy, filter_enabled: {default_value: {numerator: 0}}}\n",
    ));
    assert!(d.errors.is_empty(), "{:?}", d.errors);
    assert!(d
        .warnings
        .iter()
        .any(|w| w.path == "rc.virtual_hosts[0].routes[0].typed_per_filter_config.c.config.@type"));
    let rc = rc.unwrap();
    let c = route_configs(&rc);
    assert!(c.get("a").unwrap().disabled);
    let b = c.get("b").unwrap();
    assert!(!b.disabled && b.config.is_none(), "an empty config enables the filter");
    assert!(c.get("c").unwrap().config.is_none(), "an optional unknown config is skipped");
    assert!(matches!(c.get("d").unwrap().config, Some(PerRouteConfig::Csrf(_))));
}

#[test]
fn unknown_or_empty_per_filter_configs_are_rejected_with_their_path() {
    let (_, d) =
        decode(&on_route("      x: {'@type': type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm}\n"));
    let e = d.errors.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n");
    assert!(e.contains("rc.virtual_hosts[0].routes[0].typed_per_filter_config.x.@type"), "{e}");
    assert!(e.contains("Didn't find a registered implementation"), "{e}");
    let (_, d) = decode(&on_route("      x: {'@type': type.googleapis.com/envoy.config.route.v3.FilterConfig}\n"));
    assert!(d.errors[0].message.contains("Empty route/virtual host per filter configuration for x filter"));
    // A per-route local rate limit needs its own bucket.
    let (_, d) = decode(&on_route(
        "      l: {'@type': type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit, stat_prefix: r}\n",
    ));
    assert!(d.errors[0].message.contains("token bucket must be set for per filter configs"), "{:?}", d.errors);
}

#[test]
fn rbac_rejects_what_it_cannot_evaluate() {
    let rbac = |policy: &str| {
        on_route(&format!("      r: {{'@type': type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBACPerRoute, rbac: {{rules: {{policies: {{p: {policy}}}}}}}}}\n"))
    };
    let (rc, d) = decode(&rbac("{permissions: [{header: {name: ':method', string_match: {exact: GET}}}], principals: [{remote_ip: {address_prefix: 10.0.0.0, prefix_len: 8}}]}"));
    assert!(d.errors.is_empty(), "{:?}", d.errors);
    assert!(rc.is_some());
    let (_, d) = decode(&rbac("{permissions: [{metadata: {}}], principals: [{any: true}]}"));
    assert!(d.errors.iter().any(|e| e.path.ends_with("permissions[0].metadata")), "{:?}", d.errors);
    let (_, d) = decode(&rbac("{permissions: [{any: true}], principals: [{any: true}], condition: {}}"));
    assert!(d.errors.iter().any(|e| e.path.ends_with("policies.p.condition")), "{:?}", d.errors);
    let (_, d) = decode(&rbac("{permissions: [{any: true, url_path: {path: {exact: /}}}], principals: [{any: true}]}"));
    assert!(d.errors.iter().any(|e| e.message.contains("exactly one rule")), "{:?}", d.errors);
}

#[test]
fn header_to_metadata_rules_are_validated_as_envoy_does() {
    let h2m = |rules: &str| {
        on_route(&format!(
            "      envoy.filters.http.header_to_metadata:\n        \"@type\": type.googleapis.com/envoy.extensions.filters.http.header_to_metadata.v3.Config\n        request_rules: {rules}\n"
        ))
    };
    let (rc, d) = decode(&h2m("[{cookie: s, on_header_present: {key: k, type: NUMBER}}]"));
    assert!(d.errors.is_empty(), "{:?}", d.errors);
    let Some(PerRouteConfig::HeaderToMetadata(c)) = &route_configs(rc.as_ref().unwrap()).0[0].config else {
        panic!("not a header_to_metadata config")
    };
    assert_eq!(
        c.request_rules[0].on_header_present.as_ref().unwrap().metadata_namespace,
        "envoy.filters.http.header_to_metadata"
    );
    for (rules, want) in [
        ("[{header: a, cookie: b, on_header_present: {key: k}}]", "both header and cookie"),
        ("[{header: a}]", "`on_header_present` or `on_header_missing`"),
        ("[{cookie: a, remove: true, on_header_present: {key: k}}]", "remove for cookie"),
        ("[{header: a, on_header_missing: {key: k}}]", "on_header_missing rule with an empty value"),
        ("[{header: a, on_header_present: {key: k, value: v, regex_value_rewrite: {pattern: {regex: x}, substitution: y}}}]", "both value and regex_value_rewrite"),
        ("[{header: a, on_header_present: {key: ''}}]", "key"),
        ("[]", "Per filter configs must at least specify"),
    ] {
        let (_, d) = decode(&h2m(rules));
        let e = d.errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n");
        assert!(e.contains(want), "{rules}: {e}");
    }
}
