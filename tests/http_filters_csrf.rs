//! The CSRF filter end to end on both backends: a cross-origin POST is answered 403
//! `Invalid origin` and never reaches the origin; same-origin, `additional_origins` and
//! safe methods pass; a request without Origin or Referer is refused; a route's
//! per-filter policy in shadow mode only counts; `http.<prefix>.csrf.*` counters.

use sluice_e2e::backend::{Backend, Net};
use sluice_e2e::config::ClusterAt;
use sluice_e2e::http_origin::HttpOrigin;
use sluice_e2e::http_proxy::HttpProxy;
use sluice_e2e::on_both_backends;

const FILTERS: &str = r#"- name: envoy.filters.http.csrf
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.filters.http.csrf.v3.CsrfPolicy
    filter_enabled: { default_value: { numerator: 100, denominator: HUNDRED } }
    additional_origins: [{ suffix: ".trusted.example" }]
"#;

const VHOSTS: &str = r#"- name: app
  domains: ["*"]
  routes:
  - match: { prefix: "/shadow" }
    route: { cluster: web }
    typed_per_filter_config:
      envoy.filters.http.csrf:
        "@type": type.googleapis.com/envoy.extensions.filters.http.csrf.v3.CsrfPolicy
        filter_enabled: { default_value: { numerator: 0 } }
        shadow_enabled: { default_value: { numerator: 100 } }
  - match: { prefix: "/" }
    route: { cluster: web }
"#;

fn cross_origin_writes_are_refused(backend: Backend) {
    let net = Net::new(backend);
    let origin = HttpOrigin::serve(net.listen(), "web");
    let endpoints = [origin.addr];
    let clusters = [ClusterAt { name: "web", endpoints: &endpoints, extra: "" }];
    let p = HttpProxy::start(&net, VHOSTS, &clusters, "", FILTERS, 1);
    let mut c = p.client();
    let r = c.request("POST", "/form", &[("host", "app.example"), ("origin", "https://evil.example")], b"a=1");
    assert_eq!(r.status, 403);
    assert_eq!(r.text(), "Invalid origin");
    assert_eq!(origin.requests(), 0, "a refused request never reaches the origin");
    // Same origin (scheme and port ignored as Envoy compares host and port).
    let r = c.request("POST", "/form", &[("host", "app.example"), ("origin", "http://app.example")], b"a=1");
    assert_eq!(r.status, 200);
    // Referer stands in for a missing Origin.
    let r = c.request("DELETE", "/x", &[("host", "app.example"), ("referer", "http://app.example/page")], b"");
    assert_eq!(r.status, 200);
    let r = c.request("PUT", "/x", &[("host", "app.example"), ("origin", "https://a.trusted.example")], b"");
    assert_eq!(r.status, 200, "additional_origins");
    // No source origin at all: refused, and counted as missing too.
    assert_eq!(c.request("PATCH", "/x", &[("host", "app.example")], b"").status, 403);
    // Safe methods are not checked.
    assert_eq!(c.request("GET", "/x", &[("host", "app.example"), ("origin", "https://evil.example")], b"").status, 200);
    assert_eq!(p.counter("http.ingress.csrf.request_invalid"), 2);
    assert_eq!(p.counter("http.ingress.csrf.missing_source_origin"), 1);
    assert_eq!(p.counter("http.ingress.csrf.request_valid"), 3);
    assert_eq!(origin.requests(), 4);
}

fn a_route_in_shadow_mode_only_counts(backend: Backend) {
    let net = Net::new(backend);
    let origin = HttpOrigin::serve(net.listen(), "web");
    let endpoints = [origin.addr];
    let clusters = [ClusterAt { name: "web", endpoints: &endpoints, extra: "" }];
    let p = HttpProxy::start(&net, VHOSTS, &clusters, "", FILTERS, 1);
    let mut c = p.client();
    let r = c.request("POST", "/shadow/x", &[("host", "app.example"), ("origin", "https://evil.example")], b"");
    assert_eq!(r.status, 200, "shadow mode never refuses");
    assert_eq!(p.counter("http.ingress.csrf.request_invalid"), 1);
    assert_eq!(origin.requests(), 1);
}

on_both_backends!(cross_origin_writes_are_refused, a_route_in_shadow_mode_only_counts);

// Over HTTP/2 as well (prior knowledge; the origins stay HTTP/1.1).
sluice_e2e::over_http2!(cross_origin_writes_are_refused, a_route_in_shadow_mode_only_counts,);
