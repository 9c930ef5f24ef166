//! The CORS filter end to end on both backends: a browser's preflight answered by the
//! proxy (never reaching the origin), simple requests from an allowed origin getting
//! `access-control-allow-origin`, a disallowed origin's preflight forwarded, a route
//! that disables the filter through `typed_per_filter_config`, the older virtual-host
//! `cors` field, and the `http.<prefix>.cors.*` counters. On the kernel backend the
//! preflight is also sent by curl, as a browser's would be.

use std::process::Command;

use sluice_e2e::backend::{Backend, Net};
use sluice_e2e::config::ClusterAt;
use sluice_e2e::http_origin::HttpOrigin;
use sluice_e2e::http_proxy::HttpProxy;
use sluice_e2e::on_both_backends;

const FILTERS: &str = "- name: envoy.filters.http.cors\n  typed_config: { \"@type\": type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors }\n";

/// `app.example` with a per-filter CorsPolicy (route `/off` disables the filter) and
/// `legacy.example` with the older virtual-host `cors` field.
const VHOSTS: &str = r#"- name: app
  domains: ["app.example"]
  typed_per_filter_config:
    envoy.filters.http.cors:
      "@type": type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy
      allow_origin_string_match: [{ exact: "https://www.app.example" }]
      allow_methods: "GET, PUT"
      allow_headers: "x-custom"
      expose_headers: "x-exposed"
      max_age: "600"
      allow_credentials: true
  routes:
  - match: { prefix: "/off" }
    route: { cluster: web }
    typed_per_filter_config:
      envoy.filters.http.cors: { "@type": type.googleapis.com/envoy.config.route.v3.FilterConfig, disabled: true }
  - match: { prefix: "/" }
    route: { cluster: web }
- name: legacy
  domains: ["legacy.example"]
  cors:
    allow_origin_string_match: [{ prefix: "https://old." }]
    allow_methods: "POST"
  routes:
  - match: { prefix: "/" }
    route: { cluster: web }
"#;

fn proxy<'n>(net: &'n Net, origin: &HttpOrigin) -> HttpProxy<'n> {
    let endpoints = [origin.addr];
    let clusters = [ClusterAt { name: "web", endpoints: &endpoints, extra: "" }];
    HttpProxy::start(net, VHOSTS, &clusters, "", FILTERS, 1)
}

const ALLOWED: &str = "https://www.app.example";

fn preflight_is_answered_by_the_proxy(backend: Backend) {
    let net = Net::new(backend);
    let origin = HttpOrigin::serve(net.listen(), "web");
    let p = proxy(&net, &origin);
    let mut c = p.client();
    let r = c.request(
        "OPTIONS",
        "/api",
        &[
            ("host", "app.example"),
            ("origin", ALLOWED),
            ("access-control-request-method", "PUT"),
            ("access-control-request-headers", "x-custom"),
        ],
        b"",
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("access-control-allow-origin"), Some(ALLOWED));
    assert_eq!(r.header("access-control-allow-methods"), Some("GET, PUT"));
    assert_eq!(r.header("access-control-allow-headers"), Some("x-custom"));
    assert_eq!(r.header("access-control-max-age"), Some("600"));
    assert_eq!(r.header("access-control-allow-credentials"), Some("true"));
    assert_eq!(r.header("content-length"), Some("0"));
    assert_eq!(origin.requests(), 0, "a preflight never reaches the origin");
    // The actual request: the origin answers, the proxy adds the CORS headers.
    let r = c.request("PUT", "/api", &[("host", "app.example"), ("origin", ALLOWED)], b"x");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("access-control-allow-origin"), Some(ALLOWED));
    assert_eq!(r.header("access-control-expose-headers"), Some("x-exposed"));
    assert_eq!(origin.requests(), 1);
    assert_eq!(p.counter("http.ingress.cors.origin_valid"), 2);
    assert_eq!(p.counter("http.ingress.cors.origin_invalid"), 0);
}

fn disallowed_origins_get_no_cors_headers(backend: Backend) {
    let net = Net::new(backend);
    let origin = HttpOrigin::serve(net.listen(), "web");
    let p = proxy(&net, &origin);
    let mut c = p.client();
    let evil = [("host", "app.example"), ("origin", "https://evil.example")];
    let r = c.request("GET", "/api", &evil, b"");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("access-control-allow-origin"), None);
    // Its preflight goes upstream (forward_not_matching_preflights defaults to true).
    let r = c.request("OPTIONS", "/api", &[evil[0], evil[1], ("access-control-request-method", "PUT")], b"");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("access-control-allow-methods"), None);
    assert_eq!(origin.seen().last().map(|s| s.method.clone()).as_deref(), Some("OPTIONS"));
    // Without an Origin the filter does nothing and counts nothing.
    assert_eq!(c.request("GET", "/", &[("host", "app.example")], b"").status, 200);
    assert_eq!(p.counter("http.ingress.cors.origin_invalid"), 2);
    assert_eq!(p.counter("http.ingress.cors.origin_valid"), 0);
}

fn a_route_disables_it_and_the_older_cors_field_applies(backend: Backend) {
    let net = Net::new(backend);
    let origin = HttpOrigin::serve(net.listen(), "web");
    let p = proxy(&net, &origin);
    let mut c = p.client();
    let pre = |host, origin| [("host", host), ("origin", origin), ("access-control-request-method", "POST")];
    // `/off` disables the filter: the preflight goes to the origin, untouched.
    let r = c.request("OPTIONS", "/off", &pre("app.example", ALLOWED), b"");
    assert_eq!(r.header("access-control-allow-origin"), None);
    assert_eq!(origin.requests(), 1);
    assert_eq!(p.counter("http.ingress.cors.origin_valid"), 0, "a disabled filter counts nothing");
    // The virtual host's `cors` field (no per-filter policy there).
    let r = c.request("OPTIONS", "/x", &pre("legacy.example", "https://old.app"), b"");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("access-control-allow-origin"), Some("https://old.app"));
    assert_eq!(r.header("access-control-allow-methods"), Some("POST"));
    assert_eq!(origin.requests(), 1);
}

on_both_backends!(
    preflight_is_answered_by_the_proxy,
    disallowed_origins_get_no_cors_headers,
    a_route_disables_it_and_the_older_cors_field_applies,
);

// Over HTTP/2 as well (prior knowledge; the origins stay HTTP/1.1).
sluice_e2e::over_http2!(
    preflight_is_answered_by_the_proxy,
    disallowed_origins_get_no_cors_headers,
    a_route_disables_it_and_the_older_cors_field_applies,
);

/// The browser's preflight as curl sends it, over a kernel socket.
#[test]
fn curl_preflight() {
    let net = Net::new(Backend::Kernel);
    let origin = HttpOrigin::serve(net.listen(), "web");
    let p = proxy(&net, &origin);
    let addr = p.proxy().target(p.listen_addr());
    let out = Command::new("curl")
        .args(["-sS", "-i", "--max-time", "10", "-X", "OPTIONS"])
        .args(["-H", "Host: app.example", "-H", &format!("Origin: {ALLOWED}")])
        .args(["-H", "Access-Control-Request-Method: PUT", "-H", "Access-Control-Request-Headers: x-custom"])
        .arg(format!("http://{addr}/upload"))
        .output()
        .expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout).to_ascii_lowercase();
    assert!(out.status.success(), "curl: {}{text}", String::from_utf8_lossy(&out.stderr));
    assert!(text.starts_with("http/1.1 200 ok\r\n"), "{text}");
    assert!(text.contains("\r\naccess-control-allow-origin: https://www.app.example\r\n"), "{text}");
    assert!(text.contains("\r\naccess-control-allow-methods: get, put\r\n"), "{text}");
    assert_eq!(origin.requests(), 0);
}
