//! Internal redirects (route `internal_redirect_policy`), end to end on both datapaths:
//! a redirect answered by the origin is followed by the proxy (a new route, a new
//! cluster), the target sees `x-envoy-original-url`, the chain is bounded by
//! `max_internal_redirects`, 303 turns the request into a GET, codes not listed and
//! cross-scheme targets pass to the client, `previous_routes` stops loops,
//! `allow_listed_routes` and `safe_cross_scheme` refuse their targets,
//! `response_headers_to_copy` carries response headers over, a request
//! whose body overflowed the buffer is not redirected; HTTP/1 and HTTP/2 clients; the
//! cluster's `upstream_internal_redirect_*_total` and the router's
//! `passthrough_internal_redirect_*` counters.
//!
//! The origin's `/redirect/N?to=URL` answers N with `location: URL` (everything after
//! `?to=`, so redirects nest).

use std::net::SocketAddr;

use sluice_e2e::backend::{Backend, Net};
use sluice_e2e::config::{http_at, ClusterAt};
use sluice_e2e::h2_client::H2Client;
use sluice_e2e::http_client::{Client, Response};
use sluice_e2e::http_origin::HttpOrigin;
use sluice_e2e::inproc::InProcessProxy;
use sluice_e2e::on_both_backends;

const VHOSTS: &str = r#"- name: all
  domains: ["*"]
  routes:
  - name: redirecting
    match: { prefix: "/redirect/" }
    route:
      cluster: web
      internal_redirect_policy: { max_internal_redirects: 2, redirect_response_codes: [302, 303, 307], response_headers_to_copy: [x-origin] }
  - name: loop
    match: { prefix: "/loop/" }
    route:
      cluster: web
      prefix_rewrite: "/redirect/"
      internal_redirect_policy:
        max_internal_redirects: 5
        predicates:
        - name: envoy.internal_redirect_predicates.previous_routes
          typed_config: { "@type": type.googleapis.com/envoy.extensions.internal_redirect.previous_routes.v3.PreviousRoutesConfig }
  - name: allowlisted
    match: { prefix: "/allow/" }
    route:
      cluster: web
      prefix_rewrite: "/redirect/"
      internal_redirect_policy:
        allow_cross_scheme_redirect: true
        predicates:
        - name: envoy.internal_redirect_predicates.allow_listed_routes
          typed_config: { "@type": type.googleapis.com/envoy.extensions.internal_redirect.allow_listed_routes.v3.AllowListedRoutesConfig, allowed_route_names: [target] }
        - name: envoy.internal_redirect_predicates.safe_cross_scheme
          typed_config: { "@type": type.googleapis.com/envoy.extensions.internal_redirect.safe_cross_scheme.v3.SafeCrossSchemeConfig }
  - name: deprecated
    match: { prefix: "/old/" }
    route: { cluster: web, prefix_rewrite: "/redirect/", internal_redirect_action: HANDLE_INTERNAL_REDIRECT }
  - name: target
    match: { prefix: "/target" }
    route: { cluster: other }
"#;

struct Proxy<'n> {
    net: &'n Net,
    proxy: InProcessProxy,
    listen: SocketAddr,
    web: HttpOrigin,
    other: HttpOrigin,
}

impl Proxy<'_> {
    fn request(&self, method: &str, path: &str, body: &[u8]) -> Response {
        let conn = self.net.connect(self.proxy.target(self.listen)).expect("connect to the proxy");
        Client::over(conn).request(method, path, &[], body)
    }

    fn counter(&self, name: &str) -> i64 {
        self.proxy.stats().get(name).unwrap_or_else(|| panic!("no stat named {name}"))
    }

    fn succeeded(&self) -> i64 {
        self.counter("cluster.web.upstream_internal_redirect_succeeded_total")
    }

    fn failed(&self) -> i64 {
        self.counter("cluster.web.upstream_internal_redirect_failed_total")
    }
}

/// Cluster `web` (origin "web", which redirects) and `other` (origin "other"); the
/// listener's buffer limit is `buffer_limit` bytes.
fn start(net: &Net, buffer_limit: u32) -> Proxy<'_> {
    let web = HttpOrigin::serve(net.listen(), "web");
    let other = HttpOrigin::serve(net.listen(), "other");
    let listen = net.proxy_listen_addr();
    let (w, o) = ([web.addr], [other.addr]);
    let clusters =
        [ClusterAt { name: "web", endpoints: &w, extra: "" }, ClusterAt { name: "other", endpoints: &o, extra: "" }];
    let yaml = http_at(listen, VHOSTS, &clusters, "", "").replacen(
        "    filter_chains:",
        &format!("    per_connection_buffer_limit_bytes: {buffer_limit}\n    filter_chains:"),
        1,
    );
    let proxy = net.start_proxy(&yaml, 1);
    Proxy { net, proxy, listen, web, other }
}

fn a_redirect_is_followed_to_another_route_and_cluster(backend: Backend) {
    let net = Net::new(backend);
    let p = start(&net, 1 << 20);
    let r = p.request("GET", "/redirect/302?to=http://target.example/target/a?x=1", b"");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-origin"), Some("other"), "the client sees the target's answer");
    let seen = p.other.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].path, "/target/a?x=1");
    assert_eq!(seen[0].header("host"), Some("target.example"));
    assert_eq!(seen[0].header("x-origin"), Some("web"), "response_headers_to_copy");
    assert_eq!(
        seen[0].header("x-envoy-original-url"),
        Some("http://test/redirect/302?to=http://target.example/target/a?x=1")
    );
    assert_eq!((p.succeeded(), p.failed()), (1, 0));
    // A POST answered 307 keeps its method and body.
    let r = p.request("POST", "/redirect/307?to=http://test/target/b", b"hello body");
    assert_eq!((r.status, r.header("x-origin")), (200, Some("other")), "{}", r.text());
    let seen = p.other.seen();
    assert_eq!((seen[1].method.as_str(), seen[1].body.as_slice()), ("POST", &b"hello body"[..]));
    // The deprecated HANDLE_INTERNAL_REDIRECT form follows 302 once.
    let r = p.request("GET", "/old/302?to=http://test/target/c", b"");
    assert_eq!((r.status, r.header("x-origin")), (200, Some("other")));
    assert_eq!(p.succeeded(), 3);
    assert_eq!(p.web.requests(), 3, "the origin answered each redirect once");
}

fn the_chain_is_bounded_by_max_internal_redirects(backend: Backend) {
    let net = Net::new(backend);
    let p = start(&net, 1 << 20);
    // Two redirects are allowed: the third reaches the client.
    let path = "/redirect/302?to=http://test/redirect/302?to=http://test/redirect/302?to=http://test/target/x";
    let r = p.request("GET", path, b"");
    assert_eq!(r.status, 302, "{}", r.text());
    assert_eq!(r.header("location"), Some("http://test/target/x"));
    assert_eq!(r.header("x-origin"), Some("web"));
    assert_eq!(p.web.requests(), 3);
    assert_eq!(p.other.requests(), 0);
    assert_eq!((p.succeeded(), p.failed()), (2, 1));
    assert_eq!(p.counter("http.ingress.passthrough_internal_redirect_too_many_redirects"), 1);
    // Two hops are within the bound.
    let r = p.request("GET", "/redirect/302?to=http://test/redirect/302?to=http://test/target/y", b"");
    assert_eq!((r.status, r.header("x-origin")), (200, Some("other")));
    let seen = p.other.seen();
    assert_eq!(seen[0].header("x-envoy-original-url"), Some("http://test/redirect/302?to=http://test/target/y"));
}

fn see_other_turns_the_request_into_a_get(backend: Backend) {
    let net = Net::new(backend);
    let p = start(&net, 1 << 20);
    let r = p.request("POST", "/redirect/303?to=http://test/target/form", b"field=value");
    assert_eq!((r.status, r.header("x-origin")), (200, Some("other")), "{}", r.text());
    let seen = &p.other.seen()[0];
    assert_eq!(seen.method, "GET");
    assert!(seen.body.is_empty());
    assert_eq!(seen.header("content-length"), None);
    assert_eq!(p.web.seen()[0].body, b"field=value");
}

fn unlisted_codes_cross_scheme_and_bad_locations_pass_to_the_client(backend: Backend) {
    let net = Net::new(backend);
    let p = start(&net, 1 << 20);
    // 301 is not in redirect_response_codes: not even attempted.
    let r = p.request("GET", "/redirect/301?to=http://test/target/a", b"");
    assert_eq!((r.status, r.header("location")), (301, Some("http://test/target/a")));
    assert_eq!((p.succeeded(), p.failed()), (0, 0));
    // http -> https needs allow_cross_scheme_redirect.
    let r = p.request("GET", "/redirect/302?to=https://test/target/a", b"");
    assert_eq!((r.status, r.header("location")), (302, Some("https://test/target/a")));
    assert_eq!(p.counter("http.ingress.passthrough_internal_redirect_unsafe_scheme"), 1);
    // A relative location is not an absolute URL.
    let r = p.request("GET", "/redirect/302?to=/target/a", b"");
    assert_eq!((r.status, r.header("location")), (302, Some("/target/a")));
    assert_eq!(p.counter("http.ingress.passthrough_internal_redirect_bad_location"), 1);
    // A target no route matches.
    let r = p.request("GET", "/redirect/302?to=http://test/nowhere", b"");
    assert_eq!(r.status, 302);
    assert_eq!(p.counter("http.ingress.passthrough_internal_redirect_no_route"), 1);
    assert_eq!((p.succeeded(), p.failed()), (0, 3));
    assert_eq!(p.other.requests(), 0);
    assert_eq!(r.text(), "redirect to http://test/nowhere", "the 3xx body reaches the client");
}

fn previous_routes_stops_a_loop(backend: Backend) {
    let net = Net::new(backend);
    let p = start(&net, 1 << 20);
    // loop -> loop is allowed once; the second time the target route was seen.
    let r = p.request("GET", "/loop/302?to=http://test/loop/302?to=http://test/loop/302?to=http://test/target", b"");
    assert_eq!(r.status, 302, "{}", r.text());
    assert_eq!(r.header("location"), Some("http://test/loop/302?to=http://test/target"));
    assert_eq!(p.web.requests(), 2);
    assert_eq!(p.counter("http.ingress.passthrough_internal_redirect_predicate"), 1);
    assert_eq!((p.succeeded(), p.failed()), (1, 1));
    // The loop route going elsewhere is fine.
    let r = p.request("GET", "/loop/302?to=http://test/target/z", b"");
    assert_eq!((r.status, r.header("x-origin")), (200, Some("other")));
}

fn allow_listed_routes_and_safe_cross_scheme_predicates(backend: Backend) {
    let net = Net::new(backend);
    let p = start(&net, 1 << 20);
    let r = p.request("GET", "/allow/302?to=http://test/target/ok", b"");
    assert_eq!((r.status, r.header("x-origin")), (200, Some("other")), "{}", r.text());
    // Route `redirecting` is not on the allow list.
    let r = p.request("GET", "/allow/302?to=http://test/redirect/302?to=http://test/target/x", b"");
    assert_eq!((r.status, r.header("location")), (302, Some("http://test/redirect/302?to=http://test/target/x")));
    // Cross-scheme is allowed by the policy, but http -> https is not safe.
    let r = p.request("GET", "/allow/302?to=https://test/target/tls", b"");
    assert_eq!((r.status, r.header("location")), (302, Some("https://test/target/tls")));
    assert_eq!(p.counter("http.ingress.passthrough_internal_redirect_predicate"), 2);
    assert_eq!(p.counter("http.ingress.passthrough_internal_redirect_unsafe_scheme"), 0);
    assert_eq!((p.succeeded(), p.failed()), (1, 2));
    assert_eq!(p.other.requests(), 1);
}

fn a_body_over_the_buffer_limit_is_not_redirected(backend: Backend) {
    let net = Net::new(backend);
    let p = start(&net, 16 * 1024);
    let body = vec![b'b'; 64 * 1024];
    let r = p.request("POST", "/redirect/307?to=http://test/target/big", &body);
    assert_eq!((r.status, r.header("location")), (307, Some("http://test/target/big")), "{}", r.text());
    assert_eq!(p.web.seen()[0].body.len(), body.len(), "the origin got the whole body");
    assert_eq!(p.other.requests(), 0);
    assert_eq!((p.succeeded(), p.failed()), (0, 1));
    // A body that fits is replayed.
    let small = vec![b's'; 8 * 1024];
    let r = p.request("POST", "/redirect/307?to=http://test/target/small", &small);
    assert_eq!((r.status, r.header("x-origin")), (200, Some("other")));
    assert_eq!(p.other.seen()[0].body, small);
}

fn an_http2_client_is_redirected_too(backend: Backend) {
    let net = Net::new(backend);
    let p = start(&net, 1 << 20);
    let conn = net.connect(p.proxy.target(p.listen)).expect("connect to the proxy");
    let mut c = H2Client::handshake(conn).expect("HTTP/2 handshake");
    let r = c.request("POST", "/redirect/307?to=http://test/target/h2", &[], b"h2 body").expect("response");
    assert_eq!((r.status, r.header("x-origin")), (200, Some("other")), "{}", r.text());
    let seen = &p.other.seen()[0];
    assert_eq!(seen.body, b"h2 body");
    assert!(seen.header("x-envoy-original-url").is_some_and(|u| u.ends_with("/redirect/307?to=http://test/target/h2")));
    // Past the bound on the same connection.
    let path = "/redirect/302?to=http://test/redirect/302?to=http://test/redirect/302?to=http://test/target/x";
    let r = c.request("GET", path, &[], b"").expect("response");
    assert_eq!((r.status, r.header("location")), (302, Some("http://test/target/x")));
    assert_eq!((p.succeeded(), p.failed()), (3, 1));
}

on_both_backends!(
    a_redirect_is_followed_to_another_route_and_cluster,
    the_chain_is_bounded_by_max_internal_redirects,
    see_other_turns_the_request_into_a_get,
    unlisted_codes_cross_scheme_and_bad_locations_pass_to_the_client,
    previous_routes_stops_a_loop,
    allow_listed_routes_and_safe_cross_scheme_predicates,
    a_body_over_the_buffer_limit_is_not_redirected,
    an_http2_client_is_redirected_too,
);

// Over HTTP/2 as well (prior knowledge; the origins stay HTTP/1.1);
// an_http2_client_is_redirected_too is HTTP/2 already.
sluice_e2e::over_http2!(
    a_redirect_is_followed_to_another_route_and_cluster,
    the_chain_is_bounded_by_max_internal_redirects,
    see_other_turns_the_request_into_a_get,
    unlisted_codes_cross_scheme_and_bad_locations_pass_to_the_client,
    previous_routes_stops_a_loop,
    allow_listed_routes_and_safe_cross_scheme_predicates,
    a_body_over_the_buffer_limit_is_not_redirected,
);
