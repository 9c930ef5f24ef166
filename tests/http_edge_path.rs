//! Path and host normalisation at the edge, end to end on both datapaths: raw request
//! bytes in, the status the client gets and the request line and host the origin sees
//! out. `normalize_path`, `merge_slashes`, every `path_with_escaped_slashes_action`,
//! `strip_matching_host_port` / `strip_any_host_port`, `strip_trailing_host_dot`, and an
//! absolute-form target without a path. Counters are Envoy's
//! (`downstream_rq_failed_path_normalization`,
//! `downstream_rq_redirected_with_normalized_path`).

use sluice_e2e::backend::{Backend, Net};
use sluice_e2e::config::ClusterAt;
use sluice_e2e::http_client::{Client, Response};
use sluice_e2e::http_origin::{HttpOrigin, Seen};
use sluice_e2e::http_proxy::HttpProxy;
use sluice_e2e::on_both_backends;

on_both_backends!(
    normalize_path_routes_and_forwards_the_normalised_path,
    normalize_path_refuses_an_escaped_nul,
    merge_slashes_merges_runs_of_slashes,
    escaped_slashes_reject_request,
    escaped_slashes_unescape_and_redirect,
    escaped_slashes_unescape_and_forward,
    escaped_slashes_keep_unchanged_by_default,
    strip_matching_host_port_only_strips_the_listener_port,
    strip_any_host_port_strips_every_port,
    strip_trailing_host_dot_changes_vhost_selection,
    absolute_form_without_a_path_is_routed_as_slash,
);

// Over HTTP/2 as well (prior knowledge; the origins stay HTTP/1.1). Not over HTTP/2: the
// normalize/merge/escaped-slash cases and absolute_form send raw HTTP/1.1 request lines
// (paths an HTTP/2 client library would not send as is); escaped_slashes_unescape_and_redirect too.
sluice_e2e::over_http2!(
    strip_matching_host_port_only_strips_the_listener_port,
    strip_any_host_port_strips_every_port,
    strip_trailing_host_dot_changes_vhost_selection,
);

/// Virtual hosts: `h.test` forwards `/a/b` (exactly) and `/` to the origin (cluster
/// `web`); `10.1.2.3` answers `ip`; anything else answers `star`. Inside `h.test`, a
/// path that is not `/a/b` but starts with `/a/` answers `other-a` so that a missed
/// normalisation shows.
const VHOSTS: &str = r#"- name: exact
  domains: ["h.test"]
  routes:
  - match: { path: "/a/b" }
    route: { cluster: web }
  - match: { prefix: "/a/" }
    direct_response: { status: 200, body: { inline_string: "other-a" } }
  - match: { prefix: "/" }
    route: { cluster: web }
- name: ip
  domains: ["10.1.2.3"]
  routes:
  - match: { prefix: "/" }
    direct_response: { status: 200, body: { inline_string: "ip" } }
- name: star
  domains: ["*"]
  routes:
  - match: { prefix: "/" }
    direct_response: { status: 200, body: { inline_string: "star" } }
"#;

struct Edge<'n> {
    proxy: HttpProxy<'n>,
    origin: HttpOrigin,
}

fn start<'n>(net: &'n Net, hcm_extra: &str) -> Edge<'n> {
    let origin = HttpOrigin::serve(net.listen(), "web");
    let endpoints = [origin.addr];
    let clusters = [ClusterAt { name: "web", endpoints: &endpoints, extra: "" }];
    let proxy = HttpProxy::start(net, VHOSTS, &clusters, hcm_extra, "", 1);
    Edge { proxy, origin }
}

impl Edge<'_> {
    /// Send `GET target` with `host` as raw bytes on a fresh connection.
    fn get(&self, target: &str, host: &str) -> Response {
        self.send(&format!("GET {target} HTTP/1.1\r\nhost: {host}\r\n\r\n"))
    }

    fn send(&self, raw: &str) -> Response {
        let mut c = self.proxy.client();
        c.send(raw.as_bytes());
        c.read_response(false).expect("a response")
    }

    /// The last request the origin saw.
    fn last_seen(&self) -> Seen {
        self.origin.seen().last().cloned().expect("the origin saw a request")
    }

    /// Which virtual host answered: `exact` (the origin), `ip` or `star`.
    fn vhost(&self, client: &mut Client, host: &str) -> String {
        let r = client.request("GET", "/", &[("host", host)], b"");
        assert_eq!(r.status, 200, "{host}");
        if r.header("x-origin").is_some() {
            "exact".to_string()
        } else {
            r.text()
        }
    }
}

fn normalize_path_routes_and_forwards_the_normalised_path(backend: Backend) {
    let net = Net::new(backend);
    let e = start(&net, "normalize_path: true\n");
    let r = e.get("/a/./c/../b", "h.test");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-origin"), Some("web"), "the /a/b route forwards: {}", r.text());
    let seen = e.last_seen();
    assert_eq!(seen.path, "/a/b", "the origin sees the normalised path");
    assert_eq!(seen.header("x-envoy-original-path"), None, "Envoy records no original path for normalisation");
    // Percent-encoded dots are dot segments; unreserved characters are decoded; the
    // query is left as it is.
    assert_eq!(e.get("/a/x/%2E%2e/%62?q=/../%41", "h.test").status, 200);
    assert_eq!(e.last_seen().path, "/a/b?q=/../%41");
    // Backslashes are slashes; `..` above the root stays at the root.
    assert_eq!(e.get("/../../a\\b", "h.test").status, 200);
    assert_eq!(e.last_seen().path, "/a/b");
    // Dot segments with parameters (`..;x`) are dot segments.
    assert_eq!(e.get("/a/b/c/..;x=1", "h.test").text(), "other-a");
    assert_eq!(e.get("/a/b/..;x=1/b", "h.test").status, 200);
    assert_eq!(e.last_seen().path, "/a/b");
    assert_eq!(e.proxy.counter("http.ingress.downstream_rq_failed_path_normalization"), 0);
    assert_eq!(e.origin.requests(), 4);
}

fn normalize_path_refuses_an_escaped_nul(backend: Backend) {
    let net = Net::new(backend);
    let e = start(&net, "normalize_path: true\n");
    let r = e.get("/a/%00/b", "h.test");
    assert_eq!((r.status, r.body.as_slice()), (400, &b""[..]));
    // A fragment is refused whatever the options (Envoy's http_reject_path_with_fragment).
    assert_eq!(e.get("/a/b#frag", "h.test").status, 400);
    assert_eq!(e.proxy.counter("http.ingress.downstream_rq_failed_path_normalization"), 2);
    assert_eq!(e.proxy.counter("http.ingress.downstream_rq_4xx"), 2);
    assert_eq!(e.origin.requests(), 0, "nothing of a refused request reaches the origin");
}

fn merge_slashes_merges_runs_of_slashes(backend: Backend) {
    let net = Net::new(backend);
    let e = start(&net, "merge_slashes: true\n");
    let r = e.get("//a///b?x=//y", "h.test");
    assert_eq!(r.header("x-origin"), Some("web"), "the /a/b route forwards: {}", r.text());
    assert_eq!(e.last_seen().path, "/a/b?x=//y", "slashes in the query stay");
    // merge_slashes alone does not remove dot segments.
    assert_eq!(e.get("//a/./b", "h.test").text(), "other-a");
}

fn escaped_slashes_reject_request(backend: Backend) {
    let net = Net::new(backend);
    let e = start(&net, "path_with_escaped_slashes_action: REJECT_REQUEST\n");
    for target in ["/a%2Fb", "/a%2fb", "/a%5Cb", "/a%5cb"] {
        let r = e.get(target, "h.test");
        assert_eq!((r.status, r.body.as_slice()), (400, &b""[..]), "{target}");
    }
    // Only the path counts: an escaped slash in the query is fine.
    assert_eq!(e.get("/a/b?next=%2Fx", "h.test").status, 200);
    assert_eq!(e.last_seen().path, "/a/b?next=%2Fx");
    assert_eq!(e.proxy.counter("http.ingress.downstream_rq_failed_path_normalization"), 4);
    assert_eq!(e.origin.requests(), 1);
}

fn escaped_slashes_unescape_and_redirect(backend: Backend) {
    let net = Net::new(backend);
    let e = start(&net, "path_with_escaped_slashes_action: UNESCAPE_AND_REDIRECT\nnormalize_path: true\n");
    let r = e.get("/a%2Fb?q=1", "h.test");
    assert_eq!(r.status, 307);
    assert_eq!(r.header("location"), Some("/a/b?q=1"));
    assert_eq!(r.body, b"");
    // `%5C` unescapes to `\`, which normalize_path turns into `/`.
    let r = e.get("/a%5Cb", "h.test");
    assert_eq!((r.status, r.header("location")), (307, Some("/a/b")));
    // A gRPC client cannot follow a redirect: Envoy refuses the request instead, with
    // its gRPC local reply (INTERNAL).
    let r =
        e.send("POST /a%2Fb HTTP/1.1\r\nhost: h.test\r\ncontent-type: application/grpc\r\ncontent-length: 0\r\n\r\n");
    assert_eq!((r.status, r.header("grpc-status"), r.header("location")), (200, Some("13"), None));
    assert_eq!(r.header("content-type"), Some("application/grpc"));
    // Nothing escaped: no redirect.
    assert_eq!(e.get("/a/b", "h.test").status, 200);
    assert_eq!(e.proxy.counter("http.ingress.downstream_rq_redirected_with_normalized_path"), 2);
    assert_eq!(e.proxy.counter("http.ingress.downstream_rq_failed_path_normalization"), 1);
    assert_eq!(e.origin.requests(), 1, "only the unescaped request was forwarded");
}

fn escaped_slashes_unescape_and_forward(backend: Backend) {
    let net = Net::new(backend);
    let e = start(&net, "path_with_escaped_slashes_action: UNESCAPE_AND_FORWARD\nnormalize_path: true\n");
    for target in ["/a%2Fb", "/a%5cb"] {
        let r = e.get(target, "h.test");
        assert_eq!(r.header("x-origin"), Some("web"), "{target} reaches the /a/b route: {}", r.text());
        assert_eq!(e.last_seen().path, "/a/b", "{target}");
    }
    assert_eq!(e.proxy.counter("http.ingress.downstream_rq_redirected_with_normalized_path"), 0);
}

fn escaped_slashes_keep_unchanged_by_default(backend: Backend) {
    let net = Net::new(backend);
    for extra in ["", "path_with_escaped_slashes_action: KEEP_UNCHANGED\nnormalize_path: true\n"] {
        let e = start(&net, extra);
        for target in ["/x%2Fb", "/x%5Cb"] {
            assert_eq!(e.get(target, "h.test").status, 200, "{extra}{target}");
            assert_eq!(e.last_seen().path, target, "{extra}: forwarded unchanged");
        }
        assert_eq!(e.proxy.counter("http.ingress.downstream_rq_failed_path_normalization"), 0);
    }
}

fn strip_matching_host_port_only_strips_the_listener_port(backend: Backend) {
    let net = Net::new(backend);
    let e = start(&net, "strip_matching_host_port: true\n");
    let mut c = e.proxy.client();
    let port = c.stream.peer_addr().unwrap().port();
    assert_eq!(e.vhost(&mut c, &format!("h.test:{port}")), "exact");
    assert_eq!(e.last_seen().header("host"), Some("h.test"), "the origin sees the stripped host");
    assert_eq!(e.vhost(&mut c, &format!("10.1.2.3:{port}")), "ip");
    let other = if port == 1 { 2 } else { port - 1 };
    assert_eq!(e.vhost(&mut c, &format!("h.test:{other}")), "star", "another port is kept");
    assert_eq!(e.vhost(&mut c, &format!("10.1.2.3:{other}")), "star");
    assert_eq!(e.vhost(&mut c, "h.test"), "exact");

    // Without the option the port is part of the host.
    let plain = start(&net, "");
    let mut c = plain.proxy.client();
    let port = c.stream.peer_addr().unwrap().port();
    assert_eq!(plain.vhost(&mut c, &format!("h.test:{port}")), "star");
}

fn strip_any_host_port_strips_every_port(backend: Backend) {
    let net = Net::new(backend);
    let e = start(&net, "strip_any_host_port: true\n");
    let mut c = e.proxy.client();
    assert_eq!(e.vhost(&mut c, "h.test:9999"), "exact");
    assert_eq!(e.last_seen().header("host"), Some("h.test"));
    assert_eq!(e.vhost(&mut c, "10.1.2.3:1"), "ip");
}

fn strip_trailing_host_dot_changes_vhost_selection(backend: Backend) {
    let net = Net::new(backend);
    let e = start(&net, "strip_trailing_host_dot: true\nstrip_matching_host_port: true\n");
    let mut c = e.proxy.client();
    let port = c.stream.peer_addr().unwrap().port();
    assert_eq!(e.vhost(&mut c, "h.test."), "exact");
    assert_eq!(e.last_seen().header("host"), Some("h.test"));
    // The dot before the port goes, then the matching port.
    assert_eq!(e.vhost(&mut c, &format!("h.test.:{port}")), "exact");
    let plain = start(&net, "");
    let mut c = plain.proxy.client();
    assert_eq!(plain.vhost(&mut c, "h.test."), "star", "without the option the dot stays");
}

fn absolute_form_without_a_path_is_routed_as_slash(backend: Backend) {
    let net = Net::new(backend);
    let e = start(&net, "");
    let r = e.send("GET http://h.test?x=1 HTTP/1.1\r\nhost: ignored\r\n\r\n");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-origin"), Some("web"));
    let seen = e.last_seen();
    assert_eq!((seen.path.as_str(), seen.header("host")), ("/?x=1", Some("h.test")));
    let r = e.send("GET http://h.test HTTP/1.1\r\nhost: ignored\r\n\r\n");
    assert_eq!(r.status, 200);
    assert_eq!(e.last_seen().path, "/");
}
