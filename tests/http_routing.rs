//! HTTP routing end to end on both datapaths: the same cases against sluice's workers
//! over kernel sockets on loopback and over smol stacks on an in-memory network (see
//! `sluice_e2e::backend`). Virtual-host order, every match kind, every action, errors
//! with Envoy's statuses and bodies, header mutations at every level, weighted clusters.

use std::net::SocketAddr;

use sluice_e2e::backend::{Backend, Net};
use sluice_e2e::config::{forward_all, http_at, ClusterAt};
use sluice_e2e::http_client::Client;
use sluice_e2e::http_origin::HttpOrigin;
use sluice_e2e::http_proxy::HttpProxy;
use sluice_e2e::inproc::InProcessProxy;
use sluice_e2e::on_both_backends;

on_both_backends!(
    virtual_host_selection_follows_envoys_order,
    every_match_kind,
    case_sensitive_prefix_by_default,
    route_actions_rewrite_and_forward,
    redirects_and_direct_responses,
    header_mutations_at_every_level,
    weighted_clusters_split_within_tolerance,
    router_errors_use_envoys_statuses_and_bodies,
    forwarding_preserves_method_body_and_query,
);

// Over HTTP/2 as well (prior knowledge; the origins stay HTTP/1.1).
sluice_e2e::over_http2!(
    virtual_host_selection_follows_envoys_order,
    every_match_kind,
    case_sensitive_prefix_by_default,
    route_actions_rewrite_and_forward,
    redirects_and_direct_responses,
    header_mutations_at_every_level,
    weighted_clusters_split_within_tolerance,
    router_errors_use_envoys_statuses_and_bodies,
    forwarding_preserves_method_body_and_query,
);

/// Run the bootstrap `yaml`, whose HTTP listener is at `listen` (from
/// [`Net::proxy_listen_addr`]), with `workers` workers; returns the proxy and a client of
/// that listener. For a bootstrap [`HttpProxy::start`] cannot build.
fn start_yaml(net: &Net, yaml: &str, listen: SocketAddr, workers: usize) -> (InProcessProxy, Client) {
    let proxy = net.start_proxy(yaml, workers);
    let client = Client::over(net.connect(proxy.target(listen)).expect("connect to the proxy"));
    (proxy, client)
}

/// A virtual host for `domains` (a YAML list) answering every request with its name.
fn direct(name: &str, domains: &str) -> String {
    format!(
        "- name: {name}\n  domains: {domains}\n  routes:\n  - match: {{ prefix: \"/\" }}\n    direct_response: {{ status: 200, body: {{ inline_string: \"{name}\" }} }}\n"
    )
}

fn virtual_host_selection_follows_envoys_order(backend: Backend) {
    let net = Net::new(backend);
    let vhosts = [
        direct("star", "[\"*\"]"),
        direct("prefix_short", "[\"api.*\"]"),
        direct("prefix_long", "[\"api.example.*\"]"),
        direct("suffix_short", "[\"*.com\"]"),
        direct("suffix_long", "[\"*.example.com\"]"),
        direct("exact", "[\"www.example.com\", \"port.example.com:8080\"]"),
    ]
    .concat();
    let p = HttpProxy::start(&net, &vhosts, &[], "", "", 1);
    let mut c = p.client();
    let mut via = |host: &str| c.request("GET", "/", &[("host", host)], b"").text();
    assert_eq!(via("www.example.com"), "exact", "exact beats every wildcard");
    assert_eq!(via("WWW.Example.COM"), "exact", "domains are case-insensitive");
    assert_eq!(via("a.example.com"), "suffix_long", "longest suffix wildcard");
    assert_eq!(via("a.other.com"), "suffix_short");
    assert_eq!(via("api.example.com"), "suffix_long", "suffix wildcards beat prefix wildcards");
    assert_eq!(via("api.example.org"), "prefix_long", "longest prefix wildcard");
    assert_eq!(via("api.x.org"), "prefix_short");
    assert_eq!(via("nothing.org"), "star");
    assert_eq!(via("port.example.com:8080"), "exact", "an exact domain with a port matches with the port");
    // The port is part of host matching unless ignore_port_in_host_matching is set.
    assert_eq!(via("www.example.com:8080"), "star");
}

fn every_match_kind(backend: Backend) {
    let net = Net::new(backend);
    let routes = r#"- name: m
  domains: ["*"]
  routes:
  - match: { path: "/exact" }
    direct_response: { status: 200, body: { inline_string: "path" } }
  - match: { safe_regex: { regex: "/re/[0-9]+" } }
    direct_response: { status: 200, body: { inline_string: "regex" } }
  - match: { path_separated_prefix: "/seg" }
    direct_response: { status: 200, body: { inline_string: "separated" } }
  - match: { prefix: "/CASE", case_sensitive: false }
    direct_response: { status: 200, body: { inline_string: "case" } }
  - match:
      prefix: "/hdr"
      headers:
      - { name: x-exact, string_match: { exact: "yes" } }
      - { name: x-range, range_match: { start: 10, end: 20 } }
      - { name: x-absent, present_match: false }
    direct_response: { status: 200, body: { inline_string: "headers" } }
  - match:
      prefix: "/hdr"
      headers:
      - { name: x-inv, string_match: { prefix: "bad" }, invert_match: true }
    direct_response: { status: 200, body: { inline_string: "inverted" } }
  - match:
      prefix: "/q"
      query_parameters:
      - { name: debug, string_match: { exact: "1" } }
      - { name: flag, present_match: true }
    direct_response: { status: 200, body: { inline_string: "query" } }
  - match: { prefix: "/" }
    direct_response: { status: 200, body: { inline_string: "fallback" } }
"#;
    let p = HttpProxy::start(&net, routes, &[], "", "", 1);
    let mut c = p.client();
    let mut get = |path: &str, headers: &[(&str, &str)]| c.request("GET", path, headers, b"").text();
    assert_eq!(get("/exact", &[]), "path");
    assert_eq!(get("/exact?x=1", &[]), "path", "path ignores the query string");
    assert_eq!(get("/exact/more", &[]), "fallback");
    assert_eq!(get("/re/123", &[]), "regex");
    assert_eq!(get("/re/123x", &[]), "fallback", "safe_regex must match the whole path");
    assert_eq!(get("/re/42?q=1", &[]), "regex", "regex ignores the query");
    assert_eq!(get("/seg", &[]), "separated");
    assert_eq!(get("/seg/a", &[]), "separated");
    assert_eq!(get("/segment", &[]), "fallback", "path_separated_prefix stops at a separator");
    assert_eq!(get("/case/x", &[]), "case");
    assert_eq!(get("/hdr", &[("x-exact", "yes"), ("x-range", "15")]), "headers");
    let inv = ("x-inv", "goodvalue");
    assert_eq!(get("/hdr", &[("x-exact", "yes"), ("x-range", "20"), inv]), "inverted", "range end is exclusive");
    assert_eq!(get("/hdr", &[("x-exact", "yes"), ("x-range", "15"), ("x-absent", "1"), inv]), "inverted");
    assert_eq!(get("/hdr", &[("x-inv", "badvalue")]), "fallback");
    // Envoy's matchHeaders: a missing header never satisfies an inverted string match.
    assert_eq!(get("/hdr", &[("x-exact", "no")]), "fallback");
    assert_eq!(get("/q?debug=1&flag", &[]), "query");
    assert_eq!(get("/q?debug=2&flag=1", &[]), "fallback");
    assert_eq!(get("/q?debug=1", &[]), "fallback");
}

fn case_sensitive_prefix_by_default(backend: Backend) {
    let net = Net::new(backend);
    let routes = "- name: m\n  domains: [\"*\"]\n  routes:\n  - match: { prefix: \"/api\" }\n    direct_response: { status: 200, body: { inline_string: \"api\" } }\n";
    let p = HttpProxy::start(&net, routes, &[], "", "", 1);
    let mut c = p.client();
    assert_eq!(c.get("/api/x").text(), "api");
    let r = c.get("/API/x");
    assert_eq!(r.status, 404, "no route: 404");
    assert_eq!(r.body, b"");
    // The connection survives a 404.
    assert_eq!(c.get("/api").status, 200);
}

fn route_actions_rewrite_and_forward(backend: Backend) {
    let net = Net::new(backend);
    let origin = HttpOrigin::serve(net.listen(), "web");
    let routes = r#"- name: m
  domains: ["*"]
  routes:
  - match: { prefix: "/old/" }
    route: { cluster: web, prefix_rewrite: "/new/" }
  - match: { safe_regex: { regex: "/re/(\\d+)/(\\w+)" } }
    route:
      cluster: web
      regex_rewrite: { pattern: { regex: "/re/(\\d+)/(\\w+)" }, substitution: "/\\2/\\1" }
  - match: { prefix: "/host" }
    route: { cluster: web, host_rewrite_literal: "rewritten.example" }
  - match: { prefix: "/by-header" }
    route: { cluster_header: x-cluster }
  - match: { prefix: "/" }
    route: { cluster: web }
"#;
    let endpoints = [origin.addr];
    let p = HttpProxy::start(&net, routes, &[ClusterAt { name: "web", endpoints: &endpoints, extra: "" }], "", "", 1);
    let mut c = p.client();
    let r = c.get("/old/a/b?x=1");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-origin"), Some("web"));
    let seen = origin.seen();
    let last = seen.last().unwrap();
    assert_eq!(last.path, "/new/a/b?x=1", "prefix rewritten, query kept");
    assert_eq!(last.header("x-envoy-original-path"), Some("/old/a/b?x=1"));
    c.get("/re/42/name?k=v");
    assert_eq!(origin.seen().last().unwrap().path, "/name/42?k=v");
    c.get("/host");
    assert_eq!(origin.seen().last().unwrap().header("host"), Some("rewritten.example"));
    let r = c.request("GET", "/by-header", &[("x-cluster", "web")], b"");
    assert_eq!(r.header("x-origin"), Some("web"));
    // Unknown cluster from the header: cluster_not_found_response_code (503).
    let r = c.request("GET", "/by-header", &[("x-cluster", "nope")], b"");
    assert_eq!(r.status, 503);
    // Missing header: also cluster not found.
    let r = c.get("/by-header");
    assert_eq!(r.status, 503);
    assert_eq!(c.get("/").status, 200, "connection still serving");
}

fn redirects_and_direct_responses(backend: Backend) {
    let net = Net::new(backend);
    let routes = r#"- name: m
  domains: ["*"]
  routes:
  - match: { prefix: "/https" }
    redirect: { https_redirect: true }
  - match: { prefix: "/moved" }
    redirect: { host_redirect: "new.example", path_redirect: "/landing", response_code: FOUND }
  - match: { prefix: "/strip" }
    redirect: { path_redirect: "/clean", strip_query: true, response_code: TEMPORARY_REDIRECT }
  - match: { prefix: "/pre/" }
    redirect: { prefix_rewrite: "/post/", port_redirect: 8443, scheme_redirect: https }
  - match: { prefix: "/teapot" }
    direct_response: { status: 418, body: { inline_string: "short and stout" } }
  - match: { prefix: "/empty" }
    direct_response: { status: 204 }
"#;
    let p = HttpProxy::start(&net, routes, &[], "", "", 1);
    let mut c = p.client();
    let r = c.request("GET", "/https/x?q=1", &[("host", "site.example")], b"");
    assert_eq!(r.status, 301);
    assert_eq!(r.header("location"), Some("https://site.example/https/x?q=1"));
    let r = c.request("GET", "/moved?a=b", &[("host", "site.example")], b"");
    assert_eq!(r.status, 302);
    assert_eq!(r.header("location"), Some("http://new.example/landing?a=b"), "path_redirect keeps the query");
    let r = c.request("GET", "/strip?a=b", &[("host", "site.example")], b"");
    assert_eq!(r.status, 307);
    assert_eq!(r.header("location"), Some("http://site.example/clean"));
    let r = c.request("GET", "/pre/rest", &[("host", "site.example:80")], b"");
    assert_eq!(r.header("location"), Some("https://site.example:8443/post/rest"));
    let r = c.get("/teapot");
    assert_eq!(r.status, 418);
    assert_eq!(r.text(), "short and stout");
    assert_eq!(r.header("content-type"), Some("text/plain"));
    assert_eq!(r.header("content-length"), Some("15"));
    let r = c.get("/empty");
    assert_eq!(r.status, 204);
    assert!(r.body.is_empty());
}

fn header_mutations_at_every_level(backend: Backend) {
    let net = Net::new(backend);
    let origin = HttpOrigin::serve(net.listen(), "web");
    let routes = r#"- name: vh
  domains: ["*"]
  request_headers_to_add:
  - header: { key: x-vhost, value: "vh" }
  response_headers_to_add:
  - header: { key: x-resp-vhost, value: "vh" }
  routes:
  - match: { prefix: "/" }
    route: { cluster: web }
    request_headers_to_add:
    - header: { key: x-route, value: "r" }
    - header: { key: x-client, value: "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%" }
    - header: { key: x-multi, value: "added" }
      append_action: APPEND_IF_EXISTS_OR_ADD
    - header: { key: x-over, value: "new" }
      append_action: OVERWRITE_IF_EXISTS_OR_ADD
    - header: { key: x-absent-only, value: "default" }
      append_action: ADD_IF_ABSENT
    request_headers_to_remove: [x-secret]
    response_headers_to_add:
    - header: { key: x-resp-route, value: "r" }
    response_headers_to_remove: [x-origin]
"#;
    let listen = net.proxy_listen_addr();
    let endpoints = [origin.addr];
    let cfg = http_at(listen, routes, &[ClusterAt { name: "web", endpoints: &endpoints, extra: "" }], "", "");
    // Route-configuration-level mutations sit beside `virtual_hosts`, which the builder
    // does not template: splice them in after the route configuration's name.
    let cfg = cfg.replace(
        "            name: local\n",
        "            name: local\n            request_headers_to_add:\n            - header: { key: x-rc, value: \"rc\" }\n            response_headers_to_remove: [x-drop-me]\n",
    );
    let (_p, mut c) = start_yaml(&net, &cfg, listen, 1);
    let r = c.request(
        "GET",
        "/",
        &[("x-secret", "s"), ("x-multi", "orig"), ("x-over", "old"), ("x-absent-only", "mine")],
        b"",
    );
    assert_eq!(r.status, 200);
    let seen = origin.seen();
    let s = seen.last().unwrap();
    assert_eq!(s.header("x-route"), Some("r"));
    assert_eq!(s.header("x-vhost"), Some("vh"));
    assert_eq!(s.header("x-rc"), Some("rc"));
    let client_ip = net.client_ip().to_string();
    assert_eq!(s.header("x-client"), Some(client_ip.as_str()), "the downstream peer's address");
    assert_eq!(s.header("x-secret"), None);
    let multi: Vec<&str> = s.headers.iter().filter(|(n, _)| n == "x-multi").map(|(_, v)| v.as_str()).collect();
    assert_eq!(multi, vec!["orig", "added"]);
    assert_eq!(s.header("x-over"), Some("new"));
    assert_eq!(s.header("x-absent-only"), Some("mine"));
    assert!(s.header("x-request-id").is_some_and(|v| v.len() == 36), "x-request-id generated");
    assert_eq!(s.header("x-forwarded-proto"), Some("http"));
    assert!(s.header("x-envoy-expected-rq-timeout-ms") == Some("15000"), "route timeout advertised");
    assert_eq!(r.header("x-resp-route"), Some("r"));
    assert_eq!(r.header("x-resp-vhost"), Some("vh"));
    assert_eq!(r.header("x-origin"), None, "removed by response_headers_to_remove");
    assert_eq!(r.header("server"), Some("envoy"));
    assert!(r.header("date").is_some());
    assert!(r.header("x-envoy-upstream-service-time").is_some());
}

fn weighted_clusters_split_within_tolerance(backend: Backend) {
    let net = Net::new(backend);
    let a = HttpOrigin::serve(net.listen(), "a");
    let b = HttpOrigin::serve(net.listen(), "b");
    let routes = r#"- name: m
  domains: ["*"]
  routes:
  - match: { prefix: "/" }
    route:
      weighted_clusters:
        clusters:
        - { name: a, weight: 20 }
        - { name: b, weight: 80 }
"#;
    let (ea, eb) = ([a.addr], [b.addr]);
    let clusters =
        [ClusterAt { name: "a", endpoints: &ea, extra: "" }, ClusterAt { name: "b", endpoints: &eb, extra: "" }];
    let p = HttpProxy::start(&net, routes, &clusters, "", "", 2);
    let mut c = p.client();
    for _ in 0..1000 {
        assert_eq!(c.get("/").status, 200);
    }
    let (na, nb) = (a.requests(), b.requests());
    assert_eq!(na + nb, 1000);
    // 20 % of 1000 = 200, sd ~12.6: allow ±5 sd.
    assert!((137..=263).contains(&na), "a got {na}, b got {nb}");
}

fn router_errors_use_envoys_statuses_and_bodies(backend: Backend) {
    let net = Net::new(backend);
    let dead = [net.refused_addr()];
    let routes = r#"- name: m
  domains: ["*"]
  routes:
  - match: { prefix: "/empty" }
    route: { cluster: empty }
  - match: { prefix: "/dead" }
    route: { cluster: dead }
"#;
    let clusters = [
        ClusterAt { name: "empty", endpoints: &[], extra: "" },
        ClusterAt { name: "dead", endpoints: &dead, extra: "" },
    ];
    let p = HttpProxy::start(&net, routes, &clusters, "", "", 1);
    let mut c = p.client();
    let r = c.get("/empty");
    assert_eq!(r.status, 503);
    assert_eq!(r.text(), "no healthy upstream");
    let r = c.get("/dead");
    assert_eq!(r.status, 503);
    assert_eq!(r.text(), "upstream connect error or disconnect/reset before headers. reset reason: connection failure");
    let r = c.get("/none");
    assert_eq!(r.status, 404);
    assert_eq!(c.get("/empty").status, 503, "still serving on the same connection");
}

fn forwarding_preserves_method_body_and_query(backend: Backend) {
    let net = Net::new(backend);
    let origin = HttpOrigin::serve(net.listen(), "web");
    let endpoints = [origin.addr];
    let clusters = [ClusterAt { name: "web", endpoints: &endpoints, extra: "" }];
    let p = HttpProxy::start(&net, &forward_all("web"), &clusters, "", "", 1);
    let mut c = p.client();
    let r = c.request("POST", "/submit?a=1&b=2", &[("content-type", "text/plain")], b"hello body");
    assert_eq!(r.status, 200);
    let seen = origin.seen();
    let s = seen.last().unwrap();
    assert_eq!(s.method, "POST");
    assert_eq!(s.path, "/submit?a=1&b=2");
    assert_eq!(s.body, b"hello body");
    assert_eq!(s.header("host"), Some("test"));
    let r = c.request("HEAD", "/x", &[], b"");
    assert_eq!(r.status, 200);
    assert!(r.body.is_empty());
    assert_eq!(c.get("/after-head").status, 200, "HEAD response framing kept the connection in sync");
}
