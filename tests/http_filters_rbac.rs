//! The RBAC filter end to end on both backends: an ALLOW policy over methods (the
//! `:method` header), paths and the client's address; a denied request gets 403
//! `RBAC: access denied` and never reaches the origin; shadow rules only count; a
//! route's RBACPerRoute without rules turns the filter off; `http.<prefix>.rbac.*`.

use sluice_e2e::backend::{Backend, Net};
use sluice_e2e::config::ClusterAt;
use sluice_e2e::http_origin::HttpOrigin;
use sluice_e2e::http_proxy::HttpProxy;
use sluice_e2e::on_both_backends;

/// GET anywhere, or anything under /admin/ with `x-role: admin`, from 127/8 or
/// 10.99/16 (the test clients); shadow: a DENY of everything with `x-shadow`.
const FILTERS: &str = r#"- name: envoy.filters.http.rbac
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC
    rules:
      action: ALLOW
      policies:
        readers:
          permissions: [{ header: { name: ":method", string_match: { exact: GET } } }]
          principals:
          - or_ids: { ids: [{ direct_remote_ip: { address_prefix: 127.0.0.0, prefix_len: 8 } }, { direct_remote_ip: { address_prefix: 10.99.0.0, prefix_len: 16 } }] }
        admins:
          permissions:
          - and_rules: { rules: [{ url_path: { path: { prefix: "/admin/" } } }, { not_rule: { header: { name: ":method", string_match: { exact: DELETE } } } }] }
          principals: [{ header: { name: x-role, string_match: { exact: admin } } }]
    shadow_rules:
      action: DENY
      policies:
        flagged:
          permissions: [{ any: true }]
          principals: [{ header: { name: x-shadow, present_match: true } }]
"#;

const VHOSTS: &str = r#"- name: app
  domains: ["*"]
  routes:
  - match: { prefix: "/open" }
    route: { cluster: web }
    typed_per_filter_config:
      envoy.filters.http.rbac: { "@type": type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBACPerRoute }
  - match: { prefix: "/" }
    route: { cluster: web }
"#;

fn policies_allow_and_deny(backend: Backend) {
    let net = Net::new(backend);
    let origin = HttpOrigin::serve(net.listen(), "web");
    let endpoints = [origin.addr];
    let clusters = [ClusterAt { name: "web", endpoints: &endpoints, extra: "" }];
    let p = HttpProxy::start(&net, VHOSTS, &clusters, "", FILTERS, 1);
    let mut c = p.client();
    assert_eq!(c.get("/any").status, 200, "GET from a test client");
    let r = c.request("POST", "/data", &[], b"x");
    assert_eq!(r.status, 403);
    assert_eq!(r.text(), "RBAC: access denied");
    assert_eq!(c.request("POST", "/admin/users", &[("x-role", "admin")], b"x").status, 200);
    assert_eq!(c.request("DELETE", "/admin/users", &[("x-role", "admin")], b"").status, 403, "not_rule");
    assert_eq!(c.request("POST", "/admin/users", &[("x-role", "guest")], b"x").status, 403);
    assert_eq!(c.request("GET", "/x", &[("x-shadow", "1")], b"").status, 200, "shadow rules never deny");
    assert_eq!(c.request("POST", "/open/x", &[], b"x").status, 200, "RBACPerRoute without rules");
    assert_eq!(origin.requests(), 4);
    assert_eq!(p.counter("http.ingress.rbac.allowed"), 3);
    assert_eq!(p.counter("http.ingress.rbac.denied"), 3);
    assert_eq!(p.counter("http.ingress.rbac.shadow_denied"), 1);
    assert_eq!(p.counter("http.ingress.rbac.shadow_allowed"), 5);
}

/// The connection manager lists the filter `disabled`: it runs only where a route
/// enables it (an empty `FilterConfig.config`), or with the route's own RBACPerRoute
/// inside a `FilterConfig`.
fn a_disabled_filter_runs_where_a_route_enables_it(backend: Backend) {
    let net = Net::new(backend);
    let origin = HttpOrigin::serve(net.listen(), "web");
    let endpoints = [origin.addr];
    let clusters = [ClusterAt { name: "web", endpoints: &endpoints, extra: "" }];
    let filters =
        FILTERS.replacen("- name: envoy.filters.http.rbac\n", "- name: envoy.filters.http.rbac\n  disabled: true\n", 1);
    let vhosts = r#"- name: app
  domains: ["*"]
  routes:
  - match: { prefix: "/guarded" }
    route: { cluster: web }
    typed_per_filter_config:
      envoy.filters.http.rbac: { "@type": type.googleapis.com/envoy.config.route.v3.FilterConfig, config: {} }
  - match: { prefix: "/own" }
    route: { cluster: web }
    typed_per_filter_config:
      envoy.filters.http.rbac:
        "@type": type.googleapis.com/envoy.config.route.v3.FilterConfig
        config:
          "@type": type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBACPerRoute
          rbac: { rules: { action: DENY, policies: { all: { permissions: [{ any: true }], principals: [{ any: true }] } } } }
  - match: { prefix: "/" }
    route: { cluster: web }
"#;
    let p = HttpProxy::start(&net, vhosts, &clusters, "", &filters, 1);
    let mut c = p.client();
    assert_eq!(c.request("POST", "/elsewhere", &[], b"x").status, 200, "off unless a route enables it");
    assert_eq!(c.request("POST", "/guarded", &[], b"x").status, 403, "enabled with the filter's own rules");
    assert_eq!(c.get("/guarded").status, 200);
    assert_eq!(c.get("/own").status, 403, "the route's DENY-all rules");
    assert_eq!(p.counter("http.ingress.rbac.denied"), 2);
}

on_both_backends!(policies_allow_and_deny, a_disabled_filter_runs_where_a_route_enables_it);
