//! gRPC end to end with grpcio (Python) client and server, through sluice: h2c from the
//! client, HTTP/2 to the server (`explicit_http_config.http2_protocol_options`).
//!
//! Unary, server-streaming, client-streaming and bidirectional calls; a server error's
//! code and message reach the client; a client deadline ends a slow call with
//! DEADLINE_EXCEEDED and the proxy keeps serving. Kernel datapath (the Python
//! processes use loopback sockets); grpcio is installed with pip when missing.
//! Local replies to gRPC requests are trailers-only gRPC responses (HTTP 200,
//! `grpc-status` mapped from the HTTP status, `grpc-message`), on both backends with
//! the test's `h2` client and with grpcio. `retry_on` gRPC conditions (and
//! `x-envoy-retry-grpc-on`) retry trailers-only responses by their `grpc-status`;
//! `grpc-timeout` under route `max_stream_duration.grpc_timeout_header_max`/`_offset`
//! bounds the stream (DEADLINE_EXCEEDED).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sluice_e2e::backend::{Backend, Net};
use sluice_e2e::config::{forward_all, ClusterAt};
use sluice_e2e::h2_client::H2Client;
use sluice_e2e::h2_origin::H2Origin;
use sluice_e2e::http_proxy::HttpProxy;
use sluice_e2e::on_both_backends;

/// Make `import grpc` work, installing grpcio with pip when missing.
pub(crate) fn ensure_grpcio() {
    let works = || Command::new("python3").args(["-c", "import grpc"]).status().is_ok_and(|s| s.success());
    if works() {
        return;
    }
    eprintln!("grpc: installing python grpcio with pip");
    let _ = Command::new("pip3").args(["install", "-q", "--break-system-packages", "grpcio"]).status();
    assert!(works(), "python3 `grpc` missing and `pip3 install grpcio` failed");
}

/// A generic (raw bytes) service `test.Echo`.
const PY_SERVER: &str = r#"
import sys, time
from concurrent import futures
import grpc

def unary(req, ctx):
    md = dict(ctx.invocation_metadata())
    return b"echo:" + req + b":" + md.get("x-forwarded-proto", "").encode()

def server_stream(req, ctx):
    for i in range(int(req)):
        yield b"item-%d" % i

def client_stream(it, ctx):
    return b"|".join(it)

def bidi(it, ctx):
    for m in it:
        yield m.upper()

def fail(req, ctx):
    ctx.abort(grpc.StatusCode.NOT_FOUND, "no such thing: " + req.decode())

def slow(req, ctx):
    time.sleep(3)
    return b"late"

h = grpc.method_handlers_generic_handler("test.Echo", {
    "Unary": grpc.unary_unary_rpc_method_handler(unary),
    "ServerStream": grpc.unary_stream_rpc_method_handler(server_stream),
    "ClientStream": grpc.stream_unary_rpc_method_handler(client_stream),
    "Bidi": grpc.stream_stream_rpc_method_handler(bidi),
    "Fail": grpc.unary_unary_rpc_method_handler(fail),
    "Slow": grpc.unary_unary_rpc_method_handler(slow),
})
server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
server.add_generic_rpc_handlers((h,))
port = server.add_insecure_port("127.0.0.1:0")
server.start()
print(port, flush=True)
server.wait_for_termination()
"#;

const PY_CLIENT: &str = r#"
import sys, time
import grpc

ch = grpc.insecure_channel(sys.argv[1], options=[("grpc.enable_http_proxy", 0)])
print("unary", ch.unary_unary("/test.Echo/Unary")(b"hi", timeout=10).decode(), flush=True)
print("server-stream", ",".join(m.decode() for m in ch.unary_stream("/test.Echo/ServerStream")(b"5", timeout=10)), flush=True)
print("client-stream", ch.stream_unary("/test.Echo/ClientStream")(iter([b"a", b"b", b"c"]), timeout=10).decode(), flush=True)
print("bidi", ",".join(m.decode() for m in ch.stream_stream("/test.Echo/Bidi")(iter([b"x", b"y", b"z"]), timeout=10)), flush=True)
big = bytes(range(256)) * 4096
got = ch.unary_unary("/test.Echo/Unary")(big, timeout=10)
print("big", len(got), got[5:5 + len(big)] == big, flush=True)
try:
    ch.unary_unary("/test.Echo/Fail")(b"thing", timeout=10)
    print("fail no-error", flush=True)
except grpc.RpcError as e:
    print("fail", e.code().name, e.details(), flush=True)
t = time.time()
try:
    ch.unary_unary("/test.Echo/Slow")(b"x", timeout=0.5)
    print("slow no-error", flush=True)
except grpc.RpcError as e:
    print("slow", e.code().name, round(time.time() - t, 1) < 2.5, flush=True)
print("after", ch.unary_unary("/test.Echo/Unary")(b"again", timeout=10).decode(), flush=True)
"#;

/// A child process killed (by PID) and reaped on drop.
pub(crate) struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub(crate) const H2_UPSTREAM: &str = r#"    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config:
          http2_protocol_options: {}
"#;

/// Start the grpcio server; its port.
pub(crate) fn grpc_server() -> (Killed, u16) {
    let mut server = Killed(
        Command::new("python3")
            .args(["-c", PY_SERVER])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the grpcio server"),
    );
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = server.0.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx.recv_timeout(Duration::from_secs(30)).expect("the grpcio server's port");
    (server, line.trim().parse().expect("a port"))
}

#[test]
fn grpcio_calls_of_every_kind_through_sluice() {
    ensure_grpcio();
    let net = Net::new(Backend::Kernel);
    let (_server, port) = grpc_server();
    let endpoints = [sluice_e2e::localhost(port)];
    let clusters = [ClusterAt { name: "grpc", endpoints: &endpoints, extra: H2_UPSTREAM }];
    let p = HttpProxy::start(&net, &forward_all("grpc"), &clusters, "", "", 1);
    let target = p.proxy().target(p.listen_addr()).to_string();
    let out = Command::new("timeout")
        .args(["60", "python3", "-c", PY_CLIENT, &target])
        .stderr(Stdio::inherit())
        .output()
        .expect("run the grpcio client");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines,
        [
            "unary echo:hi:http",
            "server-stream item-0,item-1,item-2,item-3,item-4",
            "client-stream a|b|c",
            "bidi X,Y,Z",
            "big 1048586 True",
            "fail NOT_FOUND no such thing: thing",
            "slow DEADLINE_EXCEEDED True",
            "after echo:again:http",
        ],
        "grpcio client output:\n{text}"
    );
    assert!(out.status.success());
    assert_eq!(p.counter("cluster.grpc.upstream_cx_http2_total"), 1, "one multiplexed upstream connection");
    assert!(p.counter("http.ingress.downstream_rq_http2_total") >= 8);
}

/// Routes `/test.Echo/` to cluster `dead` (nothing listens), anything else nowhere.
fn dead_routes() -> &'static str {
    "- name: all\n  domains: [\"*\"]\n  routes:\n  - match: { prefix: \"/test.Echo/\" }\n    route: { cluster: dead }\n"
}

fn local_replies_to_grpc_requests_are_trailers_only(backend: Backend) {
    let net = Net::new(backend);
    let endpoints = [net.refused_addr()];
    let clusters = [ClusterAt { name: "dead", endpoints: &endpoints, extra: H2_UPSTREAM }];
    let p = HttpProxy::start(&net, dead_routes(), &clusters, "", "", 1);
    let conn = net.connect(p.proxy().target(p.listen_addr())).expect("connect");
    let mut c = H2Client::handshake(conn).expect("handshake");
    let grpc = [("content-type", "application/grpc"), ("te", "trailers")];
    let r = c.request("POST", "/test.Echo/Unary", &grpc, b"\0\0\0\0\0").expect("response");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/grpc"));
    assert_eq!(r.header("grpc-status"), Some("14"), "503 is UNAVAILABLE");
    assert_eq!(
        r.header("grpc-message"),
        Some("upstream connect error or disconnect/reset before headers. reset reason: connection failure")
    );
    assert!(r.body.is_empty() && r.header("content-length").is_none(), "trailers-only");
    let r = c.request("POST", "/other.Svc/Call", &grpc, b"").expect("response");
    assert_eq!((r.status, r.header("grpc-status")), (200, Some("12")), "no route (404) is UNIMPLEMENTED");
    // Not gRPC: the plain local reply.
    let r = c.request("GET", "/other", &[], b"").expect("response");
    assert_eq!(r.status, 404);
    assert!(r.header("grpc-status").is_none());
}

fn retry_on_grpc_status_codes(backend: Backend) {
    let net = Net::new(backend);
    let origin = H2Origin::serve(net.listen(), "web", None);
    let endpoints = [origin.addr];
    let clusters = [ClusterAt { name: "web", endpoints: &endpoints, extra: H2_UPSTREAM }];
    let vhosts = "- name: all\n  domains: [\"*\"]\n  routes:\n  - match: { prefix: \"/\" }\n    route:\n      cluster: web\n      retry_policy: { retry_on: \"unavailable,cancelled\", num_retries: 2 }\n";
    // Loopback and 10.99/16 clients are internal: their x-envoy-* headers count.
    let internal = "use_remote_address: true\ninternal_address_config: { cidr_ranges: [{ address_prefix: 127.0.0.0, prefix_len: 8 }, { address_prefix: 10.99.0.0, prefix_len: 16 }] }\n";
    let p = HttpProxy::start(&net, vhosts, &clusters, internal, "", 1);
    let conn = net.connect(p.proxy().target(p.listen_addr())).expect("connect");
    let mut c = H2Client::handshake(conn).expect("handshake");
    let grpc = [("content-type", "application/grpc"), ("te", "trailers")];
    // UNAVAILABLE (14) is retried; the second try answers.
    let r = c.request("POST", "/grpc-fail-once/14/a", &grpc, b"m").expect("response");
    assert_eq!((r.status, r.header("grpc-status")), (200, None));
    assert_eq!(r.text(), "POST /grpc-fail-once/14/a\nm");
    // INTERNAL (13) is not in retry_on: the client gets it.
    let r = c.request("POST", "/grpc-fail-once/13/b", &grpc, b"m").expect("response");
    assert_eq!(r.header("grpc-status"), Some("13"));
    // ... unless the request asks with x-envoy-retry-grpc-on.
    let h = [("content-type", "application/grpc"), ("x-envoy-retry-grpc-on", "internal")];
    let r = c.request("POST", "/grpc-fail-once/13/c", &h, b"m").expect("response");
    assert_eq!((r.status, r.header("grpc-status")), (200, None));
    let paths: Vec<String> = origin.seen().iter().map(|s| s.path.clone()).collect();
    assert_eq!(paths.iter().filter(|p| p.ends_with("/a")).count(), 2);
    assert_eq!(paths.iter().filter(|p| p.ends_with("/b")).count(), 1);
    assert_eq!(paths.iter().filter(|p| p.ends_with("/c")).count(), 2);
    assert_eq!(p.counter("cluster.web.upstream_rq_retry"), 2);
}

fn grpc_timeout_header_bounds_the_stream(backend: Backend) {
    let net = Net::new(backend);
    let origin = H2Origin::serve(net.listen(), "web", None);
    let endpoints = [origin.addr];
    let clusters = [ClusterAt { name: "web", endpoints: &endpoints, extra: H2_UPSTREAM }];
    let vhosts = "- name: all\n  domains: [\"*\"]\n  routes:\n  - match: { prefix: \"/\", headers: [{ name: x-case, string_match: { exact: capped } }] }\n    route: { cluster: web, max_stream_duration: { grpc_timeout_header_max: 0.3s } }\n  - match: { prefix: \"/\", headers: [{ name: x-case, string_match: { exact: header } }] }\n    route: { cluster: web, max_stream_duration: { grpc_timeout_header_max: 0s, grpc_timeout_header_offset: 0.1s } }\n  - match: { prefix: \"/\" }\n    route: { cluster: web }\n";
    let p = HttpProxy::start(&net, vhosts, &clusters, "", "", 1);
    let conn = net.connect(p.proxy().target(p.listen_addr())).expect("connect");
    let mut c = H2Client::handshake(conn).expect("handshake");
    let call = |c: &mut H2Client, case: &str, path: &str, timeout: &str| {
        let h = [("content-type", "application/grpc"), ("x-case", case), ("grpc-timeout", timeout)];
        let started = Instant::now();
        let r = c.request("POST", path, &h, b"m").expect("response");
        (r, started.elapsed())
    };
    // The header's 400 ms less the 100 ms offset: DEADLINE_EXCEEDED after ~300 ms.
    let (r, took) = call(&mut c, "header", "/delay/3000/a", "400m");
    assert_eq!((r.status, r.header("grpc-status")), (200, Some("4")), "DEADLINE_EXCEEDED");
    assert!(took >= Duration::from_millis(250) && took < Duration::from_millis(2000), "took {took:?}");
    // A 10 s header capped at 300 ms.
    let (r, took) = call(&mut c, "capped", "/delay/3000/b", "10S");
    assert_eq!(r.header("grpc-status"), Some("4"));
    assert!(took < Duration::from_millis(2000), "took {took:?}");
    // Without the route option the header is only the origin's business.
    let (r, took) = call(&mut c, "plain", "/delay/600/c", "100m");
    assert_eq!((r.status, r.header("grpc-status")), (200, None));
    assert!(took >= Duration::from_millis(550), "took {took:?}");
    assert_eq!(p.counter("http.ingress.downstream_rq_max_duration_reached"), 2);
}

fn access_log_grpc_status(backend: Backend) {
    let net = Net::new(backend);
    let origin = H2Origin::serve(net.listen(), "web", None);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("access.log");
    let endpoints = [origin.addr];
    let dead = [net.refused_addr()];
    let clusters = [
        ClusterAt { name: "web", endpoints: &endpoints, extra: H2_UPSTREAM },
        ClusterAt { name: "dead", endpoints: &dead, extra: H2_UPSTREAM },
    ];
    let vhosts = "- name: all\n  domains: [\"*\"]\n  routes:\n  - match: { prefix: \"/dead\" }\n    route: { cluster: dead }\n  - match: { prefix: \"/\" }\n    route: { cluster: web }\n";
    let log = format!(
        "access_log:\n- name: file\n  typed_config:\n    \"@type\": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog\n    path: {}\n    log_format: {{ text_format_source: {{ inline_string: \"%REQ(:PATH)% %GRPC_STATUS% %GRPC_STATUS(NUMBER)% %GRPC_STATUS(SNAKE_STRING)%\\n\" }} }}\n",
        path.display()
    );
    let p = HttpProxy::start(&net, vhosts, &clusters, &log, "", 1);
    let conn = net.connect(p.proxy().target(p.listen_addr())).expect("connect");
    let mut c = H2Client::handshake(conn).expect("handshake");
    let grpc = [("content-type", "application/grpc")];
    c.request("POST", "/trailers", &grpc, b"m").expect("trailers");
    c.request("POST", "/grpc-fail-once/5/x", &grpc, b"m").expect("trailers-only");
    c.request("POST", "/dead", &grpc, b"m").expect("local reply");
    c.request("GET", "/plain", &[], b"").expect("not gRPC");
    let deadline = Instant::now() + Duration::from_secs(5);
    let text = loop {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        if text.lines().count() >= 4 || Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines,
        [
            "/trailers OK 0 OK",
            "/grpc-fail-once/5/x NotFound 5 NOT_FOUND",
            "/dead Unavailable 14 UNAVAILABLE",
            "/plain Unknown 2 UNKNOWN",
        ]
    );
}

on_both_backends!(
    access_log_grpc_status,
    local_replies_to_grpc_requests_are_trailers_only,
    retry_on_grpc_status_codes,
    grpc_timeout_header_bounds_the_stream
);

const PY_UNAVAILABLE: &str = r#"
import sys
import grpc
ch = grpc.insecure_channel(sys.argv[1], options=[("grpc.enable_http_proxy", 0)])
for m in ["/test.Echo/Unary", "/nope.Svc/Call"]:
    try:
        ch.unary_unary(m)(b"x", timeout=10)
        print("no-error", flush=True)
    except grpc.RpcError as e:
        print(e.code().name, e.details(), flush=True)
"#;

#[test]
fn grpcio_sees_local_replies_as_grpc_status() {
    ensure_grpcio();
    let net = Net::new(Backend::Kernel);
    let endpoints = [net.refused_addr()];
    let clusters = [ClusterAt { name: "dead", endpoints: &endpoints, extra: H2_UPSTREAM }];
    let p = HttpProxy::start(&net, dead_routes(), &clusters, "", "", 1);
    let target = p.proxy().target(p.listen_addr()).to_string();
    let out = Command::new("timeout")
        .args(["60", "python3", "-c", PY_UNAVAILABLE, &target])
        .stderr(Stdio::inherit())
        .output()
        .expect("run the grpcio client");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines,
        [
            "UNAVAILABLE upstream connect error or disconnect/reset before headers. reset reason: connection failure",
            "UNIMPLEMENTED ",
        ],
        "{text}"
    );
}
