//! The ext_authz filter end to end, over the worker's async client.
//!
//! HTTP service (both backends; the authorization server is a real HTTP/1.1 server on
//! the test's network): allowed requests reach the origin with the service's
//! `allowed_upstream_headers` and the client gets its `allowed_client_headers_on_success`;
//! denied requests get the service's status, body and headers and never reach the
//! origin; the service down is a 403 (or the request goes on with
//! `failure_mode_allow`, marked with `x-envoy-auth-failure-mode-allowed`); a slow
//! service times out into `status_on_error`; a route's `ExtAuthzPerRoute` turns the
//! check off; `filter_enabled` at 0% with `deny_at_disable`; `http.<prefix>.ext_authz.*`;
//! `with_request_body`: the service gets the body (whole, chunked or not), a longer
//! one is 413 without a check, `allow_partial_message` sends the first bytes marked
//! `x-envoy-auth-partial-body: true` and the origin still gets the whole body, a route
//! turns buffering off.
//!
//! gRPC service (kernel; grpcio serving `envoy.service.auth.v3.Authorization/Check`
//! with messages compiled by protoc from tests/ext_authz_protos, trimmed copies of
//! Envoy's protos): OK with header mutations and dynamic metadata, denied with the
//! service's status, headers and body, the route's context extensions in the
//! CheckRequest, the service down, the request body in `body` or (`pack_as_bytes`)
//! `raw_body`.
//!
//! Envoy's example (tests/envoy_examples/ext_authz-http-service.yaml, unchanged but for
//! addresses): a token from the example's users gets through with `x-current-user`,
//! anything else is 403.

use std::io::{BufRead, BufReader, Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sluice_e2e::backend::{Backend, Net};
use sluice_e2e::config::ClusterAt;
use sluice_e2e::conn::{Acceptor, Conn};
use sluice_e2e::grpc_service::{descriptor_set, GrpcService, Script};
use sluice_e2e::http_origin::HttpOrigin;
use sluice_e2e::http_proxy::HttpProxy;
use sluice_e2e::on_both_backends;

/// What the authorization server saw of one check request.
#[derive(Debug, Clone)]
struct Check {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Check {
    fn header(&self, n: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str())
    }
}

/// A real HTTP authorization server: `authorization: Bearer good` (or `Bearer <user>`
/// from `users`) is allowed with `x-current-user` and `x-auth-note`; a path containing
/// `/slow` answers after 2 s; a path containing `/boom` answers 500; anything else is
/// 401 with `www-authenticate`, `x-denied-by` and a body (a bare 403, as the Envoy
/// example's server.js answers, when `users` are given).
struct AuthServer {
    acceptor: Acceptor,
    checks: Arc<Mutex<Vec<Check>>>,
    count: Arc<AtomicUsize>,
}

impl AuthServer {
    fn serve(listener: sluice_e2e::conn::Listener, users: &'static [(&'static str, &'static str)]) -> AuthServer {
        let checks = Arc::new(Mutex::new(Vec::new()));
        let count = Arc::new(AtomicUsize::new(0));
        let (c2, n2) = (Arc::clone(&checks), Arc::clone(&count));
        let acceptor = Acceptor::start(listener, move |conn, _| serve_auth(conn, &c2, &n2, users));
        AuthServer { acceptor, checks, count }
    }

    fn checks(&self) -> Vec<Check> {
        self.checks.lock().unwrap().clone()
    }

    fn count(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }
}

fn serve_auth(conn: Conn, checks: &Mutex<Vec<Check>>, count: &AtomicUsize, users: &[(&str, &str)]) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
    let mut writer = conn.try_clone().unwrap();
    let mut reader = BufReader::new(conn);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let parts: Vec<String> = line.split_whitespace().map(str::to_string).collect();
        if parts.len() < 3 {
            return;
        }
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((n, v)) = h.split_once(':') {
                headers.push((n.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
        let get = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
        let len: usize = get("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
        let mut body = vec![0; len];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let path = parts[1].clone();
        checks.lock().unwrap().push(Check {
            method: parts[0].clone(),
            path: path.clone(),
            headers: headers.clone(),
            body: body.clone(),
        });
        count.fetch_add(1, Ordering::Relaxed);
        let user = get("authorization").and_then(|a| a.strip_prefix("Bearer ").map(str::to_string)).and_then(|t| {
            if t == "good" {
                Some("alice".to_string())
            } else {
                users.iter().find(|(k, _)| *k == t).map(|(_, u)| u.to_string())
            }
        });
        let response = if path.contains("/slow") {
            std::thread::sleep(Duration::from_secs(2));
            "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n".to_string()
        } else if path.contains("/boom") {
            "HTTP/1.1 500 Internal Server Error\r\ncontent-length: 4\r\n\r\nboom".to_string()
        } else if let Some(user) = user {
            format!("HTTP/1.1 200 OK\r\nx-current-user: {user}\r\nx-auth-note: welcome\r\nx-secret: no\r\ncontent-length: 0\r\n\r\n")
        } else if !users.is_empty() {
            // The example's server.js: a bare 403.
            "HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n".to_string()
        } else {
            let body = "denied by authz";
            format!(
                "HTTP/1.1 401 Unauthorized\r\nwww-authenticate: Bearer realm=\"test\"\r\nx-denied-by: authz\r\nx-other: hidden\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            )
        };
        if writer.write_all(response.as_bytes()).is_err() {
            return;
        }
    }
}

fn http_filter(extra: &str) -> String {
    format!(
        r#"- name: envoy.filters.http.ext_authz
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz
    http_service:
      server_uri: {{ uri: "http://authz", cluster: authz, timeout: 1s }}
      path_prefix: /check
      authorization_request:
        headers_to_add: [{{ key: x-authz-client, value: sluice }}]
      authorization_response:
        allowed_upstream_headers: {{ patterns: [{{ exact: x-current-user }}] }}
        allowed_client_headers_on_success: {{ patterns: [{{ exact: x-auth-note }}] }}
        allowed_client_headers: {{ patterns: [{{ exact: x-denied-by }}] }}
{extra}"#
    )
}

const VHOSTS: &str = r#"- name: app
  domains: ["*"]
  routes:
  - match: { prefix: "/public" }
    route: { cluster: web }
    typed_per_filter_config:
      envoy.filters.http.ext_authz:
        "@type": type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute
        disabled: true
  - match: { prefix: "/" }
    route: { cluster: web }
"#;

fn allowed_denied_and_per_route(backend: Backend) {
    let net = Net::new(backend);
    let origin = HttpOrigin::serve(net.listen(), "web");
    let auth = AuthServer::serve(net.listen(), &[]);
    let (web, authz) = ([origin.addr], [auth.acceptor.addr]);
    let clusters = [
        ClusterAt { name: "web", endpoints: &web, extra: "" },
        ClusterAt { name: "authz", endpoints: &authz, extra: "" },
    ];
    let p = HttpProxy::start(&net, VHOSTS, &clusters, "", &http_filter(""), 1);
    let mut c = p.client();

    let r = c.request("GET", "/app/data?q=1", &[("authorization", "Bearer good"), ("cookie", "c=1")], b"");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-auth-note"), Some("welcome"), "allowed_client_headers_on_success");
    assert_eq!(r.header("x-secret"), None);
    let seen = origin.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].header("x-current-user"), Some("alice"), "allowed_upstream_headers");
    assert_eq!(seen[0].header("x-auth-note"), None, "not an upstream header");
    let check = &auth.checks()[0];
    assert_eq!((check.method.as_str(), check.path.as_str()), ("GET", "/check/app/data?q=1"));
    let h = |n: &str| check.headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
    assert_eq!(h("authorization"), Some("Bearer good"));
    assert_eq!(h("x-authz-client"), Some("sluice"), "headers_to_add");
    assert_eq!(h("cookie"), None, "not an allowed header");

    let r = c.request("POST", "/app/data", &[("authorization", "Bearer bad")], b"payload");
    assert_eq!(r.status, 401);
    assert_eq!(r.text(), "denied by authz");
    assert_eq!(r.header("x-denied-by"), Some("authz"), "allowed_client_headers");
    assert_eq!(r.header("www-authenticate"), Some("Bearer realm=\"test\""), "always allowed");
    assert_eq!(r.header("x-other"), None);
    assert_eq!(origin.requests(), 1, "a denied request never reaches the origin");
    let check = &auth.checks()[1];
    let cl = check.headers.iter().find(|(k, _)| k == "content-length").map(|(_, v)| v.as_str());
    assert_eq!((check.method.as_str(), cl), ("POST", Some("0")), "the check carries no body");

    let before = auth.count();
    assert_eq!(c.get("/public/page").status, 200, "ExtAuthzPerRoute disabled");
    assert_eq!(auth.count(), before, "no check for a disabled route");

    assert_eq!(c.get("/boom").status, 403, "a 5xx from the service is an error");
    assert_eq!(p.counter("http.ingress.ext_authz.ok"), 1);
    assert_eq!(p.counter("http.ingress.ext_authz.denied"), 1);
    assert_eq!(p.counter("http.ingress.ext_authz.error"), 1);
    assert_eq!(p.counter("cluster.authz.upstream_rq_total"), 3, "the router's cluster stats count the checks");
}

/// The service's cluster refuses connections: 403, or with `failure_mode_allow` the
/// request goes on marked; `stat_prefix` names the filter's stats.
fn service_down(backend: Backend) {
    let net = Net::new(backend);
    let origin = HttpOrigin::serve(net.listen(), "web");
    let (web, authz) = ([origin.addr], [net.refused_addr()]);
    let clusters = [
        ClusterAt { name: "web", endpoints: &web, extra: "" },
        ClusterAt { name: "authz", endpoints: &authz, extra: "" },
    ];
    let p = HttpProxy::start(&net, VHOSTS, &clusters, "", &http_filter("    stat_prefix: front\n"), 1);
    let mut c = p.client();
    let r = c.get("/x");
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(origin.requests(), 0);
    assert_eq!(p.counter("http.ingress.ext_authz.front.error"), 1);
    drop(c);
    drop(p);

    let filters = http_filter("    failure_mode_allow: true\n    failure_mode_allow_header_add: true\n");
    let p = HttpProxy::start(&net, VHOSTS, &clusters, "", &filters, 1);
    let mut c = p.client();
    assert_eq!(c.get("/x").status, 200);
    assert_eq!(origin.seen()[0].header("x-envoy-auth-failure-mode-allowed"), Some("true"));
    assert_eq!(p.counter("http.ingress.ext_authz.error"), 1);
    assert_eq!(p.counter("http.ingress.ext_authz.failure_mode_allowed"), 1);
}

/// A service slower than `server_uri.timeout` (0.3 s) is an error: `status_on_error`.
fn slow_service_times_out(backend: Backend) {
    let net = Net::new(backend);
    let origin = HttpOrigin::serve(net.listen(), "web");
    let auth = AuthServer::serve(net.listen(), &[]);
    let (web, authz) = ([origin.addr], [auth.acceptor.addr]);
    let clusters = [
        ClusterAt { name: "web", endpoints: &web, extra: "" },
        ClusterAt { name: "authz", endpoints: &authz, extra: "" },
    ];
    let filters = http_filter("    status_on_error: { code: 503 }\n").replace("timeout: 1s", "timeout: 0.3s");
    let p = HttpProxy::start(&net, VHOSTS, &clusters, "", &filters, 1);
    let mut c = p.client();
    let t = Instant::now();
    let r = c.request("GET", "/slow", &[("authorization", "Bearer good")], b"");
    assert_eq!(r.status, 503);
    let took = t.elapsed();
    assert!(took >= Duration::from_millis(250) && took < Duration::from_millis(1800), "{took:?}");
    assert_eq!(origin.requests(), 0);
    assert_eq!(p.counter("http.ingress.ext_authz.error"), 1);
    // The next request is served (the timed-out check was reset).
    assert_eq!(c.request("GET", "/fine", &[("authorization", "Bearer good")], b"").status, 200);
}

/// `filter_enabled` at 0%: no check (`disabled`); with `deny_at_disable` the request
/// gets `status_on_error`.
fn filter_disabled_and_deny_at_disable(backend: Backend) {
    let net = Net::new(backend);
    let origin = HttpOrigin::serve(net.listen(), "web");
    let auth = AuthServer::serve(net.listen(), &[]);
    let (web, authz) = ([origin.addr], [auth.acceptor.addr]);
    let clusters = [
        ClusterAt { name: "web", endpoints: &web, extra: "" },
        ClusterAt { name: "authz", endpoints: &authz, extra: "" },
    ];
    let off = "    filter_enabled: { default_value: { numerator: 0 }, runtime_key: authz.enabled }\n";
    let p = HttpProxy::start(&net, VHOSTS, &clusters, "", &http_filter(off), 1);
    assert_eq!(p.client().get("/x").status, 200);
    assert_eq!(auth.count(), 0);
    assert_eq!(p.counter("http.ingress.ext_authz.disabled"), 1);
    drop(p);
    let deny = format!("{off}    deny_at_disable: {{ default_value: true, runtime_key: authz.deny }}\n");
    let p = HttpProxy::start(&net, VHOSTS, &clusters, "", &http_filter(&deny), 1);
    assert_eq!(p.client().get("/x").status, 403);
    assert_eq!(p.client().get("/public/x").status, 200, "a route that disables the filter is not denied");
    assert_eq!(auth.count(), 0);
}

/// The HTTP filter with `with_request_body` (`settings`) and the partial-body header
/// among the `allowed_headers`.
fn body_filter(settings: &str) -> String {
    http_filter(&format!("    with_request_body: {{ {settings} }}\n")).replace(
        "        headers_to_add:",
        "        allowed_headers: { patterns: [{ exact: x-envoy-auth-partial-body }] }\n        headers_to_add:",
    )
}

const BODY_VHOSTS: &str = r#"- name: app
  domains: ["*"]
  routes:
  - match: { prefix: "/nobuffer" }
    route: { cluster: web }
    typed_per_filter_config:
      envoy.filters.http.ext_authz:
        "@type": type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute
        check_settings: { disable_request_body_buffering: true }
  - match: { prefix: "/" }
    route: { cluster: web }
"#;

/// `with_request_body` (16 bytes, no partial message): the check carries the body
/// (sized or chunked) and the origin gets it after the OK; a longer body is 413
/// `Payload Too Large` and the service is never asked; a body-less request is checked
/// at once; a route's `disable_request_body_buffering` sends the check without it.
fn request_body_to_http_service(backend: Backend) {
    let net = Net::new(backend);
    let origin = HttpOrigin::serve(net.listen(), "web");
    let auth = AuthServer::serve(net.listen(), &[]);
    let (web, authz) = ([origin.addr], [auth.acceptor.addr]);
    let clusters = [
        ClusterAt { name: "web", endpoints: &web, extra: "" },
        ClusterAt { name: "authz", endpoints: &authz, extra: "" },
    ];
    let p = HttpProxy::start(&net, BODY_VHOSTS, &clusters, "", &body_filter("max_request_bytes: 16"), 1);
    let mut c = p.client();

    let r = c.request("POST", "/up", &[("authorization", "Bearer good")], b"hello body");
    assert_eq!(r.status, 200, "{}", r.text());
    let check = &auth.checks()[0];
    assert_eq!(check.body, b"hello body", "the body goes to the service");
    assert_eq!(check.header("content-length"), Some("10"));
    assert_eq!(check.header("x-envoy-auth-partial-body"), Some("false"));
    assert_eq!(origin.seen()[0].body, b"hello body", "and then to the origin");

    c.send(b"POST /up HTTP/1.1\r\nhost: test\r\nauthorization: Bearer good\r\ntransfer-encoding: chunked\r\n\r\n");
    c.send(b"5\r\nhello\r\n");
    std::thread::sleep(Duration::from_millis(50));
    c.send(b"7\r\n chunks\r\n0\r\n\r\n");
    let r = c.read_response(false).expect("response");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(auth.checks()[1].body, b"hello chunks", "a chunked body, whole");
    assert_eq!(origin.seen()[1].body, b"hello chunks");

    let r = c.request("POST", "/up", &[("authorization", "Bearer bad")], b"evil");
    assert_eq!(r.status, 401);
    assert_eq!(auth.checks()[2].body, b"evil", "a denied request's body was checked");
    assert_eq!(origin.requests(), 2);

    let mut c = p.client();
    let r = c.request("POST", "/up", &[("authorization", "Bearer good")], &[b'x'; 40]);
    assert_eq!(r.status, 413, "{}", r.text());
    assert_eq!(r.text(), "Payload Too Large");
    assert_eq!(auth.count(), 3, "no check for a body over max_request_bytes");
    assert_eq!(origin.requests(), 2);
    assert_eq!(p.counter("http.ingress.downstream_rq_too_large"), 1);

    let mut c = p.client();
    assert_eq!(c.request("GET", "/get", &[("authorization", "Bearer good")], b"").status, 200);
    let check = &auth.checks()[3];
    assert_eq!((check.method.as_str(), check.body.len()), ("GET", 0), "no body, no wait");

    let r = c.request("POST", "/nobuffer/x", &[("authorization", "Bearer good")], &[b'y'; 40]);
    assert_eq!(r.status, 200, "{}", r.text());
    let check = &auth.checks()[4];
    assert_eq!(
        (check.body.len(), check.header("x-envoy-auth-partial-body")),
        (0, None),
        "the route turned buffering off"
    );
    assert_eq!(origin.seen()[3].body, vec![b'y'; 40]);
    assert_eq!(p.counter("http.ingress.ext_authz.ok"), 4);
    assert_eq!(p.counter("http.ingress.ext_authz.denied"), 1);
}

/// `allow_partial_message`: the first `max_request_bytes` go to the service marked
/// partial as soon as they are here; the rest of a 256 KiB body waits for the answer,
/// and the origin gets the whole body, byte for byte.
fn partial_request_body(backend: Backend) {
    let net = Net::new(backend);
    let origin = HttpOrigin::serve(net.listen(), "web");
    let auth = AuthServer::serve(net.listen(), &[]);
    let (web, authz) = ([origin.addr], [auth.acceptor.addr]);
    let clusters = [
        ClusterAt { name: "web", endpoints: &web, extra: "" },
        ClusterAt { name: "authz", endpoints: &authz, extra: "" },
    ];
    let filter = body_filter("max_request_bytes: 16, allow_partial_message: true");
    let p = HttpProxy::start(&net, BODY_VHOSTS, &clusters, "", &filter, 1);
    let mut c = p.client();
    let body = sluice_e2e::http_origin::pattern(256 * 1024);
    let r = c.request("PUT", "/big", &[("authorization", "Bearer good")], &body);
    assert_eq!(r.status, 200, "{}", r.text());
    let check = &auth.checks()[0];
    assert_eq!(check.body, &body[..16], "the first max_request_bytes");
    assert_eq!(check.header("x-envoy-auth-partial-body"), Some("true"));
    let seen = &origin.seen()[0];
    assert_eq!(seen.body.len(), body.len());
    assert!(seen.body == body, "the origin gets the whole body");

    let r = c.request("POST", "/small", &[("authorization", "Bearer good")], b"tiny");
    assert_eq!(r.status, 200);
    assert_eq!(auth.checks()[1].body, b"tiny");
    assert_eq!(auth.checks()[1].header("x-envoy-auth-partial-body"), Some("false"));
    assert_eq!(origin.seen()[1].body, b"tiny");
}

/// `with_request_body` on an HTTP/2 client's stream: the service gets the body, the
/// origin gets it after the OK; over `max_request_bytes` is 413.
fn request_body_over_http2(backend: Backend) {
    let net = Net::new(backend);
    let origin = HttpOrigin::serve(net.listen(), "web");
    let auth = AuthServer::serve(net.listen(), &[]);
    let (web, authz) = ([origin.addr], [auth.acceptor.addr]);
    let clusters = [
        ClusterAt { name: "web", endpoints: &web, extra: "" },
        ClusterAt { name: "authz", endpoints: &authz, extra: "" },
    ];
    let p = HttpProxy::start(&net, BODY_VHOSTS, &clusters, "", &body_filter("max_request_bytes: 16"), 1);
    let conn = net.connect(p.proxy().target(p.listen_addr())).expect("connect");
    let mut c = sluice_e2e::h2_client::H2Client::handshake(conn).expect("handshake");
    let r = c.request("POST", "/h2", &[("authorization", "Bearer good")], b"over h2").expect("response");
    assert_eq!(r.status, 200);
    assert_eq!(auth.checks()[0].body, b"over h2");
    assert_eq!(origin.seen()[0].body, b"over h2");
    let r = c.request("POST", "/h2", &[("authorization", "Bearer good")], &[b'z'; 64]).expect("response");
    assert_eq!(r.status, 413);
    assert_eq!(auth.count(), 1);
    assert_eq!(origin.requests(), 1);
}

/// `with_request_body` on an HTTP/2 request whose body ends in trailers: the check goes
/// when the trailers end the body (Envoy's `decodeTrailers` with `buffer_data_`), with
/// the whole body; after the OK the origin (HTTP/2) gets the body and the trailers; a
/// denied request never reaches it.
fn request_body_ending_in_trailers(backend: Backend) {
    use sluice_e2e::h2_origin::H2Origin;
    let net = Net::new(backend);
    let origin = H2Origin::serve(net.listen(), "web", None);
    let auth = AuthServer::serve(net.listen(), &[]);
    let (web, authz) = ([origin.addr], [auth.acceptor.addr]);
    let clusters = [
        ClusterAt { name: "web", endpoints: &web, extra: crate::grpc::H2_UPSTREAM },
        ClusterAt { name: "authz", endpoints: &authz, extra: "" },
    ];
    let p = HttpProxy::start(&net, BODY_VHOSTS, &clusters, "", &body_filter("max_request_bytes: 16"), 1);
    let conn = net.connect(p.proxy().target(p.listen_addr())).expect("connect");
    let mut c = sluice_e2e::h2_client::H2Client::handshake(conn).expect("handshake");
    let good = [("authorization", "Bearer good")];
    let r = c
        .request_with_headers_and_trailers("POST", "/h2", &good, b"with trailers", &[("x-client", "1")])
        .expect("response");
    assert_eq!(r.status, 200);
    assert_eq!(auth.checks()[0].body, b"with trailers", "the check waited for the trailers");
    assert_eq!(origin.seen()[0].body, b"with trailers");
    let trailers = origin.trailers();
    assert!(trailers[0].contains(&("x-client".into(), "1".into())), "{trailers:?}");
    let bad = [("authorization", "Bearer bad")];
    let r = c.request_with_headers_and_trailers("POST", "/h2", &bad, b"evil", &[("x-client", "2")]).expect("response");
    assert_eq!(r.status, 401);
    assert_eq!(auth.checks()[1].body, b"evil");
    assert_eq!(origin.seen().len(), 1, "denied: never sent on");
}

on_both_backends!(
    request_body_ending_in_trailers,
    request_body_over_http2,
    request_body_to_http_service,
    partial_request_body,
    allowed_denied_and_per_route,
    service_down,
    slow_service_times_out,
    filter_disabled_and_deny_at_disable
);

/// The gRPC authorization server: grpcio, with the CheckRequest/CheckResponse classes
/// built from the descriptor set protoc made of tests/ext_authz_protos. `Bearer good`
/// is OK (sets `x-current-user: bob` and `x-tenant` from the context extensions,
/// removes `authorization`, adds `x-grpc-note` to the response, dynamic metadata);
/// anything else is PERMISSION_DENIED with a 401, `x-denied-by: grpc` and a body. One
/// JSON line per check on stdout.
const PY_AUTHZ: &str = r#"
import json, sys
from concurrent import futures
import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

fds = descriptor_pb2.FileDescriptorSet.FromString(open(sys.argv[1], "rb").read())
pool = descriptor_pool.DescriptorPool()
for f in fds.file:
    pool.Add(f)
cls = lambda n: message_factory.GetMessageClass(pool.FindMessageTypeByName(n))
CheckRequest = cls("envoy.service.auth.v3.CheckRequest")
CheckResponse = cls("envoy.service.auth.v3.CheckResponse")

USERS = {"token1": "user1", "token2": "user2", "token3": "user3"}

def example_check(http):
    # Envoy's examples/ext_authz grpc-service (auth/v3/auth.go): a known bearer token
    # gets `x-current-user` (append false); anything else PERMISSION_DENIED, no body.
    resp = CheckResponse()
    f = http.headers.get("authorization", "").split()
    if len(f) == 2 and f[0] == "Bearer" and f[1] in USERS:
        h = resp.ok_response.headers.add()
        h.append.value = False
        h.header.key, h.header.value = "x-current-user", USERS[f[1]]
        resp.status.code = 0
    else:
        resp.status.code = 7
    return resp.SerializeToString()

def check(raw, ctx):
    req = CheckRequest.FromString(raw)
    a = req.attributes
    http = a.request.http
    if sys.argv[2:] == ["example"]:
        print(json.dumps({"path": http.path}), flush=True)
        return example_check(http)
    print(json.dumps({"method": http.method, "path": http.path, "host": http.host, "protocol": http.protocol,
                      "headers": dict(http.headers), "ext": dict(a.context_extensions),
                      "source": a.source.address.socket_address.address,
                      "body": http.body, "raw_body": http.raw_body.decode("latin1")}), flush=True)
    resp = CheckResponse()
    if http.headers.get("authorization") == "Bearer good":
        resp.status.code = 0
        for k, v in (("x-current-user", "bob"), ("x-tenant", a.context_extensions.get("tenant", "none"))):
            h = resp.ok_response.headers.add()
            h.header.key, h.header.value = k, v
        resp.ok_response.headers_to_remove.append("authorization")
        r = resp.ok_response.response_headers_to_add.add()
        r.header.key, r.header.value = "x-grpc-note", "ok"
        resp.dynamic_metadata.fields["user"].string_value = "bob"
    else:
        resp.status.code = 7
        resp.denied_response.status.code = 401
        h = resp.denied_response.headers.add()
        h.header.key, h.header.value = "x-denied-by", "grpc"
        resp.denied_response.body = "grpc says no"
    return resp.SerializeToString()

h = grpc.method_handlers_generic_handler("envoy.service.auth.v3.Authorization",
                                         {"Check": grpc.unary_unary_rpc_method_handler(check)})
server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
server.add_generic_rpc_handlers((h,))
port = server.add_insecure_port("127.0.0.1:0")
server.start()
print(port, flush=True)
server.wait_for_termination()
"#;

/// The grpcio authorization server, its check lines in `lines`.
fn grpc_authz_server(dir: &std::path::Path) -> GrpcService {
    grpc_authz_server_as(dir, "test")
}

/// The grpcio authorization server with the logic `mode` picks: `test` (this file's
/// checks) or `example` (Envoy's examples/ext_authz gRPC service).
fn grpc_authz_server_as(dir: &std::path::Path, mode: &str) -> GrpcService {
    let set = descriptor_set("ext_authz_protos", "envoy/service/auth/v3/external_auth.proto", &dir.join("authz.pb"));
    GrpcService::start(Script::Inline(PY_AUTHZ), &[set.to_str().unwrap(), mode])
}

const H2_UPSTREAM: &str = r#"    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config:
          http2_protocol_options: {}
"#;

const GRPC_FILTER: &str = r#"- name: envoy.filters.http.ext_authz
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz
    transport_api_version: V3
    grpc_service:
      envoy_grpc: { cluster_name: authz }
      timeout: 2s
"#;

const GRPC_VHOSTS: &str = r#"- name: app
  domains: ["*"]
  typed_per_filter_config:
    envoy.filters.http.ext_authz:
      "@type": type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute
      check_settings: { context_extensions: { tenant: vhost } }
  routes:
  - match: { prefix: "/acme" }
    route: { cluster: web }
    typed_per_filter_config:
      envoy.filters.http.ext_authz:
        "@type": type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute
        check_settings: { context_extensions: { tenant: acme } }
  - match: { prefix: "/" }
    route: { cluster: web }
"#;

/// grpcio as the authorization service (kernel: the Python process is on loopback).
#[test]
fn grpc_service_allows_and_denies() {
    let dir = tempfile::tempdir().unwrap();
    let server = grpc_authz_server(dir.path());
    let (port, checks) = (server.port, &server.lines);
    let net = Net::new(Backend::Kernel);
    let origin = HttpOrigin::serve(net.listen(), "web");
    let web = [origin.addr];
    let authz = [sluice_e2e::localhost(port)];
    let clusters = [
        ClusterAt { name: "web", endpoints: &web, extra: "" },
        ClusterAt { name: "authz", endpoints: &authz, extra: H2_UPSTREAM },
    ];
    let p = HttpProxy::start(&net, GRPC_VHOSTS, &clusters, "", GRPC_FILTER, 1);
    let mut c = p.client();

    let r = c.request("GET", "/acme/orders?id=7", &[("authorization", "Bearer good"), ("x-trace", "t1")], b"");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-grpc-note"), Some("ok"), "response_headers_to_add");
    let seen = &origin.seen()[0];
    assert_eq!(seen.header("x-current-user"), Some("bob"));
    assert_eq!(seen.header("x-tenant"), Some("acme"), "the route's context extension");
    assert_eq!(seen.header("authorization"), None, "headers_to_remove");
    let line = checks.recv_timeout(Duration::from_secs(5)).expect("the check the server saw");
    for part in [
        r#""method": "GET""#,
        r#""path": "/acme/orders?id=7""#,
        r#""protocol": "HTTP/1.1""#,
        r#""x-trace": "t1""#,
        r#""tenant": "acme""#,
        r#""source": "127.0.0.1""#,
    ] {
        assert!(line.contains(part), "{part} in {line}");
    }

    let r = c.request("GET", "/other", &[("authorization", "Bearer good")], b"");
    assert_eq!(r.status, 200);
    assert_eq!(origin.seen()[1].header("x-tenant"), Some("vhost"), "the virtual host's context extension");
    let _ = checks.recv_timeout(Duration::from_secs(5));

    let r = c.request("GET", "/acme/x", &[("authorization", "Bearer nope")], b"");
    assert_eq!(r.status, 401);
    assert_eq!(r.text(), "grpc says no");
    assert_eq!(r.header("x-denied-by"), Some("grpc"));
    assert_eq!(origin.requests(), 2);
    assert_eq!(p.counter("http.ingress.ext_authz.ok"), 2);
    assert_eq!(p.counter("http.ingress.ext_authz.denied"), 1);
    assert_eq!(p.counter("cluster.authz.upstream_cx_http2_total"), 1, "one HTTP/2 connection for every check");
}

/// `with_request_body` with the gRPC service: the body in
/// `attributes.request.http.body` with `x-envoy-auth-partial-body: false` among the
/// headers, then with `pack_as_bytes` in `raw_body` (bytes that are not UTF-8 too); the
/// origin gets the body after the OK.
#[test]
fn grpc_service_gets_the_request_body() {
    let dir = tempfile::tempdir().unwrap();
    let server = grpc_authz_server(dir.path());
    let (port, checks) = (server.port, &server.lines);
    let net = Net::new(Backend::Kernel);
    let origin = HttpOrigin::serve(net.listen(), "web");
    let web = [origin.addr];
    let authz = [sluice_e2e::localhost(port)];
    let clusters = [
        ClusterAt { name: "web", endpoints: &web, extra: "" },
        ClusterAt { name: "authz", endpoints: &authz, extra: H2_UPSTREAM },
    ];
    let filter = format!("{GRPC_FILTER}    with_request_body: {{ max_request_bytes: 64 }}\n");
    let p = HttpProxy::start(&net, GRPC_VHOSTS, &clusters, "", &filter, 1);
    let r = p.client().request("POST", "/acme/in", &[("authorization", "Bearer good")], b"grpc body");
    assert_eq!(r.status, 200, "{}", r.text());
    let line = checks.recv_timeout(Duration::from_secs(5)).expect("the check the server saw");
    for part in [r#""body": "grpc body""#, r#""raw_body": """#, r#""x-envoy-auth-partial-body": "false""#] {
        assert!(line.contains(part), "{part} in {line}");
    }
    assert_eq!(origin.seen()[0].body, b"grpc body");
    drop(p);

    let filter = format!("{GRPC_FILTER}    with_request_body: {{ max_request_bytes: 64, pack_as_bytes: true }}\n");
    let p = HttpProxy::start(&net, GRPC_VHOSTS, &clusters, "", &filter, 1);
    let r = p.client().request("POST", "/acme/in", &[("authorization", "Bearer good")], b"raw\xffbytes");
    assert_eq!(r.status, 200, "{}", r.text());
    let line = checks.recv_timeout(Duration::from_secs(5)).expect("the check the server saw");
    for part in [r#""body": """#, r#""raw_body": "raw\u00ffbytes""#] {
        assert!(line.contains(part), "{part} in {line}");
    }
    assert_eq!(origin.seen()[1].body, b"raw\xffbytes");
}

/// A gRPC service that is down is an error (403); a cluster without HTTP/2 is refused
/// at load.
#[test]
fn grpc_service_down_and_http1_cluster_refused() {
    let net = Net::new(Backend::Kernel);
    let origin = HttpOrigin::serve(net.listen(), "web");
    let web = [origin.addr];
    let authz = [net.refused_addr()];
    let clusters = [
        ClusterAt { name: "web", endpoints: &web, extra: "" },
        ClusterAt { name: "authz", endpoints: &authz, extra: H2_UPSTREAM },
    ];
    let p = HttpProxy::start(&net, GRPC_VHOSTS, &clusters, "", GRPC_FILTER, 1);
    assert_eq!(p.client().get("/x").status, 403);
    assert_eq!(p.counter("http.ingress.ext_authz.error"), 1);
    assert_eq!(origin.requests(), 0);
    drop(p);
    let h1 = [
        ClusterAt { name: "web", endpoints: &web, extra: "" },
        ClusterAt { name: "authz", endpoints: &authz, extra: "" },
    ];
    let listen = net.proxy_listen_addr();
    let yaml = sluice_e2e::config::http_at(listen, GRPC_VHOSTS, &h1, "", GRPC_FILTER);
    let err = net.try_start_proxy(&yaml, 1).err().expect("an HTTP/1 cluster for gRPC is refused");
    assert!(err.contains("grpc_service.envoy_grpc.cluster_name") && err.contains("HTTP/2"), "{err}");
}

/// Envoy's examples/ext_authz `config/http-service.yaml`, unchanged but for addresses:
/// the README's `Authorization: Bearer token1` gets through and the upstream sees
/// `x-current-user: user1`; no token is 403. The service is the example's HTTP
/// authorization server's logic (its users.json tokens).
#[test]
fn envoy_ext_authz_http_example_behaves_as_its_readme() {
    use sluice_e2e::{free_port, proxy::Proxy};
    const USERS: &[(&str, &str)] = &[("token1", "user1"), ("token2", "user2"), ("token3", "user3")];
    let origin = HttpOrigin::start("upstream-service");
    let auth = AuthServer::serve(sluice_e2e::conn::Listener::bind("127.0.0.1:0").unwrap(), USERS);
    let port = free_port();
    let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("envoy_examples/ext_authz-http-service.yaml");
    let yaml = std::fs::read_to_string(path)
        .unwrap()
        .replace(
            "address: 0.0.0.0\n        port_value: 8000",
            &format!("address: 127.0.0.1\n        port_value: {port}"),
        )
        .replace(
            "address: upstream-service\n                port_value: 8080",
            &format!("address: 127.0.0.1\n                port_value: {}", origin.port()),
        )
        .replace(
            "address: ext_authz-http-service\n                port_value: 9002",
            &format!("address: 127.0.0.1\n                port_value: {}", auth.acceptor.addr.port()),
        );
    assert!(!yaml.contains("address: upstream-service") && !yaml.contains("address: ext_authz-http-service"));
    let _proxy = Proxy::start(&yaml, &[]);
    let mut c = sluice_e2e::http_client::Client::connect(port);
    let r = c.get("/service");
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(origin.requests(), 0);
    let r = c.request("GET", "/service", &[("authorization", "Bearer token1")], b"");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(origin.seen()[0].header("x-current-user"), Some("user1"));
}

/// Envoy's examples/ext_authz `config/grpc-service/v3.yaml`, unchanged but for
/// addresses, against a grpcio server with the example's authorization logic (its
/// `auth/grpc-service`, users token1..3): no token is `403 Forbidden` (verify.sh), a
/// known `Authorization: Bearer token1` reaches the upstream with `x-current-user:
/// user1`, an unknown token is 403 too. The checks go over HTTP/2 (the cluster's
/// `http2_protocol_options`).
#[test]
fn envoy_ext_authz_grpc_example_behaves_as_its_readme() {
    use sluice_e2e::{free_port, proxy::Proxy};
    let dir = tempfile::tempdir().unwrap();
    let server = grpc_authz_server_as(dir.path(), "example");
    let (auth_port, checks) = (server.port, &server.lines);
    let origin = HttpOrigin::start("upstream-service");
    let port = free_port();
    let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("envoy_examples/ext_authz-grpc-service.yaml");
    let yaml = std::fs::read_to_string(path)
        .unwrap()
        .replace(
            "address: 0.0.0.0\n        port_value: 8000",
            &format!("address: 127.0.0.1\n        port_value: {port}"),
        )
        .replace(
            "address: upstream-service\n                port_value: 8080",
            &format!("address: 127.0.0.1\n                port_value: {}", origin.port()),
        )
        .replace(
            "address: ext_authz-grpc-service\n                port_value: 9001",
            &format!("address: 127.0.0.1\n                port_value: {auth_port}"),
        );
    assert!(!yaml.contains("address: upstream-service") && !yaml.contains("address: ext_authz-grpc-service"));
    let _proxy = Proxy::start(&yaml, &[]);
    let mut c = sluice_e2e::http_client::Client::connect(port);
    let r = c.get("/service");
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(origin.requests(), 0);
    assert!(checks.recv_timeout(Duration::from_secs(5)).expect("a check").contains("/service"));
    let r = c.request("GET", "/service", &[("authorization", "Bearer token1")], b"");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(origin.seen()[0].header("x-current-user"), Some("user1"));
    let r = c.request("GET", "/service", &[("authorization", "Bearer token9")], b"");
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(origin.requests(), 1);
}
