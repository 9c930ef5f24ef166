//! The global rate limit filter end to end, over the worker's async client.
//!
//! The rate limit service is a real gRPC server: grpcio serving
//! `envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit` with messages compiled
//! by protoc from tests/ratelimit_protos (trimmed copies of Envoy's protos). It prints
//! each request's domain and descriptors and answers OVER_LIMIT when an entry's value
//! is `over`, answers after 0.5 s when one is `slow`, and OK otherwise (kernel only:
//! the Python process is on loopback).
//!
//! Cases: descriptors from each route action kind and the virtual host's `rate_limits`
//! (`include_vh_rate_limits`, OVERRIDE, `vh_rate_limits: IGNORE`), a missing header
//! dropping the descriptor (no call), OK with the service's request and response
//! headers and draft-03 `x-ratelimit-*`, OVER_LIMIT as 429 with `x-envoy-ratelimited`
//! and the service's body (or `rate_limited_status` without the header), a slow
//! service timing out (allowed, or `status_on_error` with `failure_mode_deny`); on
//! both backends: the service down with and without `failure_mode_deny` (500, flag
//! RLSE), a route that disables the filter, and `cluster.<route cluster>.ratelimit.*`.

use std::sync::mpsc::Receiver;
use std::time::Duration;

use sluice_e2e::backend::{Backend, Net};
use sluice_e2e::config::ClusterAt;
use sluice_e2e::grpc_service::{descriptor_set, GrpcService, Script};
use sluice_e2e::http_origin::HttpOrigin;
use sluice_e2e::http_proxy::HttpProxy;
use sluice_e2e::on_both_backends;

const PY_RLS: &str = r#"
import json, sys, time
from concurrent import futures
import grpc
from google.protobuf import descriptor_pool, descriptor_pb2, message_factory

fds = descriptor_pb2.FileDescriptorSet.FromString(open(sys.argv[1], "rb").read())
pool = descriptor_pool.DescriptorPool()
for f in fds.file:
    pool.Add(f)
cls = lambda n: message_factory.GetMessageClass(pool.FindMessageTypeByName(n))
Req = cls("envoy.service.ratelimit.v3.RateLimitRequest")
Resp = cls("envoy.service.ratelimit.v3.RateLimitResponse")

def limit(raw, ctx):
    req = Req.FromString(raw)
    ds = [[[e.key, e.value] for e in d.entries] for d in req.descriptors]
    print(json.dumps({"domain": req.domain, "descriptors": ds}), flush=True)
    values = [e[1] for d in ds for e in d]
    if "slow" in values:
        time.sleep(0.5)
    r = Resp()
    s = r.statuses.add()
    if "over" in values:
        r.overall_code = 2
        r.raw_body = b"too many requests, says the service"
        h = r.response_headers_to_add.add()
        h.key, h.value = "x-rl-note", "over"
        s.code = 2
        s.current_limit.requests_per_unit, s.current_limit.unit, s.current_limit.name = 10, 2, "per-user"
        s.limit_remaining = 0
        s.duration_until_reset.seconds = 30
    else:
        r.overall_code = 1
        h = r.request_headers_to_add.add()
        h.key, h.value = "x-rl-seen", "yes"
        h = r.response_headers_to_add.add()
        h.key, h.value = "x-rl-note", "ok"
        s.code = 1
        s.current_limit.requests_per_unit, s.current_limit.unit = 100, 1
        s.limit_remaining = 99
        s.duration_until_reset.seconds = 1
    return r.SerializeToString()

h = grpc.method_handlers_generic_handler("envoy.service.ratelimit.v3.RateLimitService",
                                         {"ShouldRateLimit": grpc.unary_unary_rpc_method_handler(limit)})
server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
server.add_generic_rpc_handlers((h,))
port = server.add_insecure_port("127.0.0.1:0")
server.start()
print(port, flush=True)
server.wait_for_termination()
"#;

/// A child process killed (by PID) and reaped on drop.
/// The grpcio rate limit service, its request lines in `lines`.
fn rate_limit_service(dir: &std::path::Path) -> GrpcService {
    let set = descriptor_set("ratelimit_protos", "envoy/service/ratelimit/v3/rls.proto", &dir.join("rls.pb"));
    GrpcService::start(Script::Inline(PY_RLS), &[set.to_str().unwrap()])
}

const H2_UPSTREAM: &str = r#"    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config:
          http2_protocol_options: {}
"#;

fn filter(extra: &str) -> String {
    format!(
        r#"- name: envoy.filters.http.ratelimit
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.filters.http.ratelimit.v3.RateLimit
    domain: edge
    rate_limit_service:
      grpc_service: {{ envoy_grpc: {{ cluster_name: rls }} }}
      transport_api_version: V3
{extra}"#
    )
}

const VHOSTS: &str = r#"- name: app
  domains: ["*"]
  rate_limits:
  - actions: [{ generic_key: { descriptor_value: vh } }]
  routes:
  - match: { prefix: "/all" }
    route:
      cluster: web
      include_vh_rate_limits: true
      rate_limits:
      - actions:
        - destination_cluster: {}
        - remote_address: {}
        - request_headers: { header_name: x-user, descriptor_key: user }
        - header_value_match: { descriptor_value: get, headers: [{ name: ":method", string_match: { exact: GET } }] }
  - match: { prefix: "/needs-user" }
    route:
      cluster: web
      rate_limits:
      - actions: [{ request_headers: { header_name: x-user, descriptor_key: user } }]
  - match: { prefix: "/ignore-vh" }
    route: { cluster: web }
    typed_per_filter_config:
      envoy.filters.http.ratelimit:
        "@type": type.googleapis.com/envoy.extensions.filters.http.ratelimit.v3.RateLimitPerRoute
        vh_rate_limits: IGNORE
  - match: { prefix: "/off" }
    route: { cluster: web }
    typed_per_filter_config:
      envoy.filters.http.ratelimit:
        "@type": type.googleapis.com/envoy.config.route.v3.FilterConfig
        disabled: true
  - match: { prefix: "/" }
    route: { cluster: web }
"#;

fn next(lines: &Receiver<String>) -> String {
    lines.recv_timeout(Duration::from_secs(5)).expect("the request the service saw")
}

/// Descriptors from every action kind, OK and OVER_LIMIT, and the cases that make no
/// call.
#[test]
fn descriptors_ok_and_over_limit() {
    let dir = tempfile::tempdir().unwrap();
    let server = rate_limit_service(dir.path());
    let (port, lines) = (server.port, &server.lines);
    let net = Net::new(Backend::Kernel);
    let origin = HttpOrigin::serve(net.listen(), "web");
    let (web, rls) = ([origin.addr], [sluice_e2e::localhost(port)]);
    let clusters = [
        ClusterAt { name: "web", endpoints: &web, extra: "" },
        ClusterAt { name: "rls", endpoints: &rls, extra: H2_UPSTREAM },
    ];
    let f = filter("    timeout: 2s\n    enable_x_ratelimit_headers: DRAFT_VERSION_03\n");
    let p = HttpProxy::start(&net, VHOSTS, &clusters, "", &f, 1);
    let mut c = p.client();

    let r = c.request("GET", "/all/x", &[("x-user", "bob")], b"");
    assert_eq!(r.status, 200, "{}", r.text());
    let line = next(lines);
    let want = r#"{"domain": "edge", "descriptors": [[["destination_cluster", "web"], ["remote_address", "127.0.0.1"], ["user", "bob"], ["header_match", "get"]], [["generic_key", "vh"]]]}"#;
    assert_eq!(line, want, "the route's descriptor, then the virtual host's (include_vh_rate_limits)");
    assert_eq!(origin.seen()[0].header("x-rl-seen"), Some("yes"), "request_headers_to_add");
    assert_eq!(r.header("x-rl-note"), Some("ok"), "response_headers_to_add");
    assert_eq!(r.header("x-ratelimit-limit"), Some("100, 100;w=1"));
    assert_eq!(r.header("x-ratelimit-remaining"), Some("99"));
    assert_eq!(r.header("x-ratelimit-reset"), Some("1"));
    assert_eq!(r.header("x-envoy-ratelimited"), None);

    // A POST does not match the header_value_match action: the route's descriptor is
    // dropped, the virtual host's stays.
    let r = c.request("POST", "/all/x", &[("x-user", "bob")], b"p");
    assert_eq!(r.status, 200);
    assert_eq!(next(lines), r#"{"domain": "edge", "descriptors": [[["generic_key", "vh"]]]}"#);

    let r = c.request("GET", "/all/x", &[("x-user", "over")], b"");
    assert_eq!(r.status, 429, "{}", r.text());
    assert_eq!(r.text(), "too many requests, says the service");
    assert_eq!(r.header("x-envoy-ratelimited"), Some("true"));
    assert_eq!(r.header("x-rl-note"), Some("over"));
    assert_eq!(r.header("x-ratelimit-limit"), Some("10, 10;w=60;name=\"per-user\""));
    assert_eq!(r.header("x-ratelimit-remaining"), Some("0"));
    assert_eq!(r.header("x-ratelimit-reset"), Some("30"));
    assert_eq!(origin.requests(), 2, "an over-limit request never reaches the origin");
    let _ = next(lines);

    // The virtual host's rate_limits apply to a route without any (OVERRIDE).
    assert_eq!(c.get("/plain").status, 200);
    assert_eq!(next(lines), r#"{"domain": "edge", "descriptors": [[["generic_key", "vh"]]]}"#);
    // No call: a missing header drops the only descriptor; IGNORE; a disabled filter.
    assert_eq!(c.get("/needs-user").status, 200);
    assert_eq!(c.get("/ignore-vh").status, 200);
    assert_eq!(c.get("/off").status, 200);
    assert!(lines.recv_timeout(Duration::from_millis(300)).is_err(), "no more calls");
    assert_eq!(origin.requests(), 6);
    assert_eq!(p.counter("cluster.web.ratelimit.ok"), 3);
    assert_eq!(p.counter("cluster.web.ratelimit.over_limit"), 1);
    assert_eq!(p.counter("cluster.web.ratelimit.error"), 0);
    assert_eq!(p.counter("cluster.rls.upstream_cx_http2_total"), 1, "one HTTP/2 connection for every call");
    drop(c);
    drop(p);

    // rate_limited_status, without x-envoy-ratelimited.
    let f = filter(
        "    timeout: 2s\n    rate_limited_status: { code: 503 }\n    disable_x_envoy_ratelimited_header: true\n",
    );
    let p = HttpProxy::start(&net, VHOSTS, &clusters, "", &f, 1);
    let r = p.client().request("GET", "/needs-user", &[("x-user", "over")], b"");
    assert_eq!(r.status, 503);
    assert_eq!(r.header("x-envoy-ratelimited"), None);
    assert_eq!(r.header("x-rl-note"), Some("over"));
    assert_eq!(next(lines), r#"{"domain": "edge", "descriptors": [[["user", "over"]]]}"#);
}

/// A service slower than `timeout` is an error: the request goes on, or with
/// `failure_mode_deny` gets `status_on_error`.
#[test]
fn slow_service_times_out() {
    let dir = tempfile::tempdir().unwrap();
    let server = rate_limit_service(dir.path());
    let port = server.port;
    let net = Net::new(Backend::Kernel);
    let origin = HttpOrigin::serve(net.listen(), "web");
    let (web, rls) = ([origin.addr], [sluice_e2e::localhost(port)]);
    let clusters = [
        ClusterAt { name: "web", endpoints: &web, extra: "" },
        ClusterAt { name: "rls", endpoints: &rls, extra: H2_UPSTREAM },
    ];
    let p = HttpProxy::start(&net, VHOSTS, &clusters, "", &filter("    timeout: 0.1s\n"), 1);
    let t = std::time::Instant::now();
    let r = p.client().request("GET", "/needs-user", &[("x-user", "slow")], b"");
    assert_eq!(r.status, 200);
    assert!(t.elapsed() < Duration::from_millis(450), "{:?}", t.elapsed());
    assert_eq!(origin.seen()[0].header("x-rl-seen"), None);
    assert_eq!(p.counter("cluster.web.ratelimit.error"), 1);
    assert_eq!(p.counter("cluster.web.ratelimit.failure_mode_allowed"), 1);
    drop(p);
    let f = filter("    timeout: 0.1s\n    failure_mode_deny: true\n    status_on_error: { code: 503 }\n");
    let p = HttpProxy::start(&net, VHOSTS, &clusters, "", &f, 1);
    let r = p.client().request("GET", "/needs-user", &[("x-user", "slow")], b"");
    assert_eq!(r.status, 503);
    assert_eq!(origin.requests(), 1);
    assert_eq!(p.counter("cluster.web.ratelimit.failure_mode_allowed"), 0);
}

/// The service's cluster refuses connections: the request goes on
/// (`failure_mode_allowed`), or with `failure_mode_deny` is a 500; a route that
/// disables the filter makes no call; an HTTP/1 cluster for the service is refused.
fn service_down(backend: Backend) {
    let net = Net::new(backend);
    let origin = HttpOrigin::serve(net.listen(), "web");
    let (web, rls) = ([origin.addr], [net.refused_addr()]);
    let clusters = [
        ClusterAt { name: "web", endpoints: &web, extra: "" },
        ClusterAt { name: "rls", endpoints: &rls, extra: H2_UPSTREAM },
    ];
    let p = HttpProxy::start(&net, VHOSTS, &clusters, "", &filter("    timeout: 1s\n"), 1);
    let mut c = p.client();
    assert_eq!(c.get("/x").status, 200);
    assert_eq!(p.counter("cluster.web.ratelimit.error"), 1);
    assert_eq!(p.counter("cluster.web.ratelimit.failure_mode_allowed"), 1);
    drop(c);
    drop(p);

    let p = HttpProxy::start(&net, VHOSTS, &clusters, "", &filter("    timeout: 1s\n    failure_mode_deny: true\n"), 1);
    let mut c = p.client();
    let r = c.get("/x");
    assert_eq!(r.status, 500, "{}", r.text());
    assert_eq!(origin.requests(), 1);
    assert_eq!(c.get("/off/x").status, 200, "the route disables the filter");
    assert_eq!(origin.requests(), 2);
    assert_eq!(p.counter("cluster.web.ratelimit.error"), 1);
    assert_eq!(p.counter("cluster.web.ratelimit.failure_mode_allowed"), 0);
    drop(c);
    drop(p);

    let h1 =
        [ClusterAt { name: "web", endpoints: &web, extra: "" }, ClusterAt { name: "rls", endpoints: &rls, extra: "" }];
    let yaml = sluice_e2e::config::http_at(net.proxy_listen_addr(), VHOSTS, &h1, "", &filter(""));
    let err = net.try_start_proxy(&yaml, 1).err().expect("an HTTP/1 cluster for gRPC is refused");
    assert!(err.contains("rate_limit_service.grpc_service.envoy_grpc.cluster_name") && err.contains("HTTP/2"), "{err}");
}

on_both_backends!(service_down);

// Over HTTP/2 as well (prior knowledge; the origins stay HTTP/1.1).
sluice_e2e::over_http2!(service_down,);
