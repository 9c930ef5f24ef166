//! HTTP tracing end to end on both datapaths, with real collectors: a Zipkin v2 JSON
//! receiver and an OTLP/HTTP receiver that decodes with the official OpenTelemetry
//! protobuf definitions (the `opentelemetry-proto` Python package, installed with pip
//! when missing), both one Python `http.server` writing each span it receives as a
//! JSON line. The origin echoes what it received, so the context sluice sent upstream
//! is visible next to the span it exported.
//!
//! Cases (issue "Tracing"): a request without trace headers gets a root span and a new
//! context upstream; W3C and B3 parents give the same trace id upstream, a new span id,
//! and an exported span whose parent is the incoming span; a not-sampled parent is
//! propagated as not sampled and nothing is exported; `x-request-id` comes back when
//! `always_set_request_id_in_response`; 5xx answers and upstream resets are tagged as
//! errors; a dead collector leaves requests alone and is counted.
//!
//! Reports go out through the workers' own upstream machinery (the collector is a
//! normal cluster): on the smol backend the collector is reached through a relay on
//! the in-memory network's peer host, as any origin is.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sluice_config::node::{parse, Node, Value};
use sluice_e2e::backend::{Backend, Net};
use sluice_e2e::config::{http_at, ClusterAt};
use sluice_e2e::conn::{Acceptor, Conn};
use sluice_e2e::h2_client::H2Client;
use sluice_e2e::http_client::{Client, Response};
use sluice_e2e::http_origin::{HttpOrigin, Seen};
use sluice_e2e::inproc::InProcessProxy;
use sluice_e2e::on_both_backends;

mod shutdown;
mod verbose;

on_both_backends!(
    zipkin_root_span_and_new_context_upstream,
    zipkin_b3_parent_gives_a_child_span,
    opentelemetry_w3c_parent_and_root,
    opentelemetry_exports_over_grpc,
    not_sampled_parent_is_propagated_and_not_exported,
    request_id_in_the_response_when_configured,
    errors_are_tagged_on_5xx_and_upstream_resets,
    a_dead_collector_leaves_requests_alone_and_is_counted,
    http2_streams_are_traced,
    metadata_custom_tags_read_request_route_cluster_and_host_metadata,
    spawn_upstream_span_makes_a_client_span_per_try,
);

const COLLECTOR: &str = r#"
import json, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest, ExportTraceServiceResponse
out = open(sys.argv[1], 'a', buffering=1)
def dump(req):
    for rs in req.resource_spans:
        res = {kv.key: kv.value.string_value for kv in rs.resource.attributes}
        for ss in rs.scope_spans:
            for sp in ss.spans:
                out.write(json.dumps({'format': 'otlp', 'traceId': sp.trace_id.hex(), 'id': sp.span_id.hex(),
                    'parentId': sp.parent_span_id.hex(), 'name': sp.name, 'kind': sp.kind,
                    'tags': {kv.key: kv.value.string_value for kv in sp.attributes}, 'status': sp.status.code,
                    'resource': res, 'scope': ss.scope.name, 'traceState': sp.trace_state,
                    'events': [{'name': e.name, 'time': e.time_unix_nano} for e in sp.events],
                    'start': sp.start_time_unix_nano,
                    'duration': sp.end_time_unix_nano - sp.start_time_unix_nano}) + '\n')
if sys.argv[2:] == ['grpc']:
    import grpc
    from concurrent import futures
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc
    class Export(trace_service_pb2_grpc.TraceServiceServicer):
        def Export(self, request, context):
            dump(request)
            return ExportTraceServiceResponse()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Export(), server)
    port = server.add_insecure_port('127.0.0.1:0')
    server.start()
    print(port, flush=True)
    server.wait_for_termination()
    sys.exit(0)
class H(BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'
    def log_message(self, *a):
        pass
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get('content-length', 0)))
        if self.path == '/api/v2/spans':
            assert self.headers.get('content-type') == 'application/json'
            for s in json.loads(body):
                s['format'] = 'zipkin'
                out.write(json.dumps(s) + '\n')
            code, resp, ctype = 202, b'', 'text/plain'
        elif self.path == '/v1/traces':
            assert self.headers.get('content-type') == 'application/x-protobuf'
            req = ExportTraceServiceRequest()
            req.ParseFromString(body)
            dump(req)
            code, resp, ctype = 200, ExportTraceServiceResponse().SerializeToString(), 'application/x-protobuf'
        else:
            code, resp, ctype = 404, b'', 'text/plain'
        self.send_response(code)
        self.send_header('content-type', ctype)
        self.send_header('content-length', str(len(resp)))
        self.end_headers()
        self.wfile.write(resp)
srv = ThreadingHTTPServer(('127.0.0.1', 0), H)
print(srv.server_address[1], flush=True)
srv.serve_forever()
"#;

/// Make `import opentelemetry.proto` work, installing it with pip when missing.
fn ensure_otlp_proto() {
    let works = || {
        Command::new("python3")
            .args(["-c", "import opentelemetry.proto.collector.trace.v1.trace_service_pb2_grpc"])
            .status()
            .is_ok_and(|s| s.success())
    };
    if works() {
        return;
    }
    eprintln!("tracing: installing python opentelemetry-proto and grpcio with pip");
    let pip = ["install", "-q", "--break-system-packages", "opentelemetry-proto", "grpcio"];
    let _ = Command::new("pip3").args(pip).status();
    assert!(works(), "python3 `opentelemetry-proto`/`grpcio` missing and `pip3 install` failed");
}

/// A running collector (killed by PID on drop) and the file of spans it received.
struct Collector {
    child: Child,
    addr: SocketAddr,
    spans: PathBuf,
    _dir: tempfile::TempDir,
}

impl Collector {
    fn start() -> Collector {
        Collector::start_mode(&[])
    }

    /// A grpcio OTLP receiver (`TraceService/Export`) instead of the HTTP one.
    fn start_grpc() -> Collector {
        Collector::start_mode(&["grpc"])
    }

    fn start_mode(mode: &[&str]) -> Collector {
        ensure_otlp_proto();
        let dir = tempfile::tempdir().unwrap();
        let spans = dir.path().join("spans.jsonl");
        let mut child = Command::new("python3")
            .args(["-c", COLLECTOR])
            .arg(&spans)
            .args(mode)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let port: u16 = line.trim().parse().unwrap_or_else(|_| panic!("collector port: {line:?}"));
        Collector { child, addr: SocketAddr::from(([127, 0, 0, 1], port)), spans, _dir: dir }
    }

    /// The spans received so far.
    fn spans(&self) -> Vec<Node> {
        let text = std::fs::read_to_string(&self.spans).unwrap_or_default();
        text.lines().map(|l| parse(l).unwrap_or_else(|e| panic!("{e:?}: {l}"))).collect()
    }

    /// Wait (at most 10 s) until `n` spans arrived.
    fn wait_for(&self, n: usize) -> Vec<Node> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let spans = self.spans();
            if spans.len() >= n || Instant::now() > deadline {
                assert_eq!(spans.len(), n, "spans received: {spans:#?}");
                return spans;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A field of a JSON object (`a.b` descends).
fn field(n: &Node, path: &str) -> Option<String> {
    let mut cur = n.clone();
    for part in path.split('.') {
        let Value::Map(fields) = &cur.value else { return None };
        let next = fields.iter().find(|(k, _)| k.name == part).map(|(_, v)| v.clone())?;
        cur = next;
    }
    match cur.value {
        Value::Scalar { text, .. } => Some(text),
        _ => None,
    }
}

fn tag(n: &Node, name: &str) -> Option<String> {
    let Value::Map(fields) = &n.value else { return None };
    let (_, tags) = fields.iter().find(|(k, _)| k.name == "tags")?;
    let Value::Map(tags) = &tags.value else { return None };
    tags.iter().find(|(k, _)| k.name == name).and_then(|(_, v)| match &v.value {
        Value::Scalar { text, .. } => Some(text.clone()),
        _ => None,
    })
}

const ZIPKIN: &str = "tracing:\n  provider:\n    name: envoy.tracers.zipkin\n    typed_config:\n      \"@type\": type.googleapis.com/envoy.config.trace.v3.ZipkinConfig\n      collector_cluster: collector\n      collector_endpoint: /api/v2/spans\n      shared_span_context: false\n";
const OTEL: &str = "tracing:\n  provider:\n    name: envoy.tracers.opentelemetry\n    typed_config:\n      \"@type\": type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig\n      service_name: front-proxy\n      http_service:\n        http_uri: { uri: \"http://collector/v1/traces\", cluster: collector, timeout: 2s }\n";
/// Flush every span at once (Envoy's runtime knobs).
const RUNTIME: &str = "layered_runtime:\n  layers:\n  - name: static\n    static_layer:\n      tracing.zipkin.min_flush_spans: 1\n      tracing.opentelemetry.min_flush_spans: 1\n";
const ROUTES: &str = "- name: all\n  domains: [\"*\"]\n  routes:\n  - match: { prefix: \"/\" }\n    route: { cluster: web }\n    decorator: { operation: checkout }\n";

/// What [`Setup::start_with`] adds to the default set-up.
#[derive(Default)]
struct Extra<'a> {
    routes: &'a str,
    filters: &'a str,
    /// Fields of the `web` cluster (YAML at column 4).
    web: &'a str,
    /// The `metadata` of web's endpoint (flow YAML).
    web_endpoint_metadata: &'a str,
    /// Fields of the `collector` cluster (YAML at column 4).
    collector: &'a str,
    /// The `layered_runtime` (default: flush every span at once).
    runtime: &'a str,
}

struct Setup<'n> {
    net: &'n Net,
    proxy: InProcessProxy,
    listen: SocketAddr,
    origin: HttpOrigin,
    _relay: Option<Acceptor>,
}

/// Copy `from` into `to` until EOF, then half-close `to`.
fn pump(mut from: impl std::io::Read, mut to: Conn) {
    let _ = std::io::copy(&mut from, &mut to);
    let _ = to.shutdown(std::net::Shutdown::Write);
}

/// Where the proxy reaches a collector on the test host: on the smol backend, a relay
/// on the peer host that forwards each connection to it over loopback.
fn reach(net: &Net, collector: SocketAddr) -> (SocketAddr, Option<Acceptor>) {
    if net.backend() == Backend::Kernel || !collector.ip().is_loopback() {
        return (collector, None);
    }
    let relay = Acceptor::start(net.listen(), move |down, _| {
        let Ok(up) = std::net::TcpStream::connect(collector) else { return };
        let (Ok(up2), Ok(down2)) = (up.try_clone(), down.try_clone()) else { return };
        let back = std::thread::spawn(move || pump(up2, down2));
        pump(down, Conn::Kernel(up));
        let _ = back.join();
    });
    (relay.addr, Some(relay))
}

impl<'n> Setup<'n> {
    /// A proxy to an origin, tracing with `hcm_extra`; the collector cluster at `collector`.
    fn start(net: &'n Net, hcm_extra: &str, collector: SocketAddr) -> Setup<'n> {
        Setup::start_with(net, hcm_extra, collector, &Extra::default())
    }

    /// [`Setup::start`] with other routes, HTTP filters, cluster fields of `web`, and
    /// metadata on its endpoint.
    fn start_with(net: &'n Net, hcm_extra: &str, collector: SocketAddr, x: &Extra<'_>) -> Setup<'n> {
        let origin = HttpOrigin::serve(net.listen(), "origin");
        let web = [origin.addr];
        let (collector, relay) = reach(net, collector);
        let col = [collector];
        let clusters = [
            ClusterAt { name: "web", endpoints: &web, extra: x.web },
            ClusterAt { name: "collector", endpoints: &col, extra: x.collector },
        ];
        let listen = net.proxy_listen_addr();
        let routes = if x.routes.is_empty() { ROUTES } else { x.routes };
        let runtime = if x.runtime.is_empty() { RUNTIME } else { x.runtime };
        let mut yaml = format!("{}{runtime}", http_at(listen, routes, &clusters, hcm_extra, x.filters));
        if !x.web_endpoint_metadata.is_empty() {
            let ep = sluice_e2e::config::endpoint_at(origin.addr);
            let with = format!("{ep}          metadata: {}\n", x.web_endpoint_metadata);
            assert!(yaml.contains(&ep), "{yaml}");
            yaml = yaml.replacen(&ep, &with, 1);
        }
        let proxy = net.start_proxy(&yaml, 1);
        Setup { net, proxy, listen, origin, _relay: relay }
    }

    fn client(&self) -> Client {
        Client::over(self.net.connect(self.proxy.target(self.listen)).expect("connect to the proxy"))
    }

    /// Send GET `path` with `headers`; the response and what the origin saw.
    fn send(&self, path: &str, headers: &[(&str, &str)]) -> (Response, Option<Seen>) {
        let before = self.origin.requests();
        let r = self.client().request("GET", path, headers, b"");
        let seen = (self.origin.requests() > before).then(|| self.origin.seen().pop().unwrap());
        (r, seen)
    }

    fn counter(&self, name: &str) -> i64 {
        self.proxy.stats().get(name).unwrap_or_else(|| panic!("no stat named {name}"))
    }
}

fn zipkin_root_span_and_new_context_upstream(backend: Backend) {
    let net = Net::new(backend);
    let collector = Collector::start();
    let s = Setup::start(&net, ZIPKIN, collector.addr);
    let (r, seen) = s.send("/a/b?c=d", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-envoy-decorator-operation"), Some("checkout"));
    let seen = seen.expect("forwarded");
    let trace_id = seen.header("x-b3-traceid").expect("x-b3-traceid upstream").to_string();
    let span_id = seen.header("x-b3-spanid").expect("x-b3-spanid upstream").to_string();
    assert_eq!(seen.header("x-b3-sampled"), Some("1"));
    assert_eq!(seen.header("x-b3-parentspanid"), None, "a root span has no parent");
    let rid = seen.header("x-request-id").expect("x-request-id").to_string();
    assert_eq!(&rid[14..15], "9", "the sampling decision is packed into the request id: {rid}");
    let spans = collector.wait_for(1);
    let span = &spans[0];
    assert_eq!(field(span, "traceId"), Some(trace_id));
    assert_eq!(field(span, "id"), Some(span_id));
    assert_eq!(field(span, "parentId"), None);
    assert_eq!(field(span, "kind").as_deref(), Some("SERVER"));
    assert_eq!(field(span, "name").as_deref(), Some("checkout"));
    assert!(field(span, "timestamp").unwrap().parse::<u64>().unwrap() > 1_600_000_000_000_000);
    assert!(field(span, "duration").is_some());
    assert_eq!(tag(span, "http.method").as_deref(), Some("GET"));
    assert_eq!(tag(span, "http.url").as_deref(), Some("http://test/a/b?c=d"));
    assert_eq!(tag(span, "http.protocol").as_deref(), Some("HTTP/1.1"));
    assert_eq!(tag(span, "http.status_code").as_deref(), Some("200"));
    assert_eq!(tag(span, "upstream_cluster").as_deref(), Some("web"));
    assert_eq!(tag(span, "upstream_address"), Some(s.origin.addr.to_string()));
    assert_eq!(tag(span, "response_flags").as_deref(), Some("-"));
    assert_eq!(tag(span, "component").as_deref(), Some("proxy"));
    assert_eq!(tag(span, "guid:x-request-id"), Some(rid));
    assert_eq!(tag(span, "peer.address"), Some(net.client_ip().to_string()));
    assert_eq!(tag(span, "error"), None);
    assert_eq!(s.counter("tracing.zipkin.spans_sent"), 1);
    // The collector writes the span before it answers: the report counts once the
    // exporter has read the 202.
    let deadline = Instant::now() + Duration::from_secs(5);
    while s.counter("tracing.zipkin.reports_sent") < 1 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(s.counter("tracing.zipkin.reports_sent"), 1);
    assert_eq!(s.counter("http.ingress.tracing.random_sampling"), 1);
}

fn zipkin_b3_parent_gives_a_child_span(backend: Backend) {
    let net = Net::new(backend);
    let collector = Collector::start();
    let s = Setup::start(&net, ZIPKIN, collector.addr);
    let parent = [
        ("x-b3-traceid", "463ac35c9f6413ad48485a3953bb6124"),
        ("x-b3-spanid", "a2fb4a1d1a96d312"),
        ("x-b3-sampled", "1"),
    ];
    let (_, seen) = s.send("/", &parent);
    let seen = seen.unwrap();
    assert_eq!(seen.header("x-b3-traceid"), Some("463ac35c9f6413ad48485a3953bb6124"));
    assert_eq!(seen.header("x-b3-parentspanid"), Some("a2fb4a1d1a96d312"));
    let child = seen.header("x-b3-spanid").unwrap().to_string();
    assert_ne!(child, "a2fb4a1d1a96d312", "a new span id upstream");
    // The single-header form: the same rules, answered in the same form.
    let (_, seen2) = s.send("/", &[("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1")]);
    let seen2 = seen2.unwrap();
    let b3 = seen2.header("b3").unwrap();
    assert!(b3.starts_with("80f198ee56343ba864fe8b2a57d3eff7-") && b3.contains("-1-e457b5a2e4d86bd1"), "{b3}");
    let spans = collector.wait_for(2);
    let span = spans.iter().find(|n| field(n, "id").as_deref() == Some(child.as_str())).expect("the child span");
    assert_eq!(field(span, "traceId").as_deref(), Some("463ac35c9f6413ad48485a3953bb6124"));
    assert_eq!(field(span, "parentId").as_deref(), Some("a2fb4a1d1a96d312"));
}

fn opentelemetry_w3c_parent_and_root(backend: Backend) {
    let net = Net::new(backend);
    let collector = Collector::start();
    let s = Setup::start(&net, OTEL, collector.addr);
    let tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let (r, seen) = s.send("/x", &[("traceparent", tp), ("tracestate", "vendor=1")]);
    assert_eq!(r.status, 200);
    let seen = seen.unwrap();
    let sent = seen.header("traceparent").unwrap().to_string();
    assert!(sent.starts_with("00-0af7651916cd43dd8448eb211c80319c-") && sent.ends_with("-01"), "{sent}");
    let child = sent[36..52].to_string();
    assert_ne!(child, "b7ad6b7169203331");
    assert_eq!(seen.header("tracestate"), Some("vendor=1"));
    let (_, root) = s.send("/y", &[]);
    let root_tp = root.unwrap().header("traceparent").unwrap().to_string();
    let spans = collector.wait_for(2);
    let span = spans.iter().find(|n| field(n, "id").as_deref() == Some(child.as_str())).expect("the child span");
    assert_eq!(field(span, "traceId").as_deref(), Some("0af7651916cd43dd8448eb211c80319c"));
    assert_eq!(field(span, "parentId").as_deref(), Some("b7ad6b7169203331"));
    assert_eq!(field(span, "kind").as_deref(), Some("2"), "SERVER");
    assert_eq!(field(span, "name").as_deref(), Some("checkout"));
    assert_eq!(field(span, "traceState").as_deref(), Some("vendor=1"));
    assert_eq!(field(span, "resource.service.name"), None, "dotted keys are not paths");
    let Value::Map(fields) = &span.value else { panic!() };
    let res = &fields.iter().find(|(k, _)| k.name == "resource").unwrap().1;
    let Value::Map(res) = &res.value else { panic!() };
    assert!(res
        .iter()
        .any(|(k, v)| k.name == "service.name"
            && matches!(&v.value, Value::Scalar { text, .. } if text == "front-proxy")));
    assert_eq!(tag(span, "http.status_code").as_deref(), Some("200"));
    let root = spans.iter().find(|n| field(n, "id").as_deref() == Some(&root_tp[36..52])).expect("the root span");
    assert_eq!(field(root, "traceId").as_deref(), Some(&root_tp[3..35]));
    assert_eq!(field(root, "parentId").as_deref(), Some(""));
    assert_eq!(s.counter("tracing.opentelemetry.spans_sent"), 2);
    assert_eq!(
        s.counter("tracing.opentelemetry.http_reports_success"),
        s.counter("tracing.opentelemetry.http_reports_sent")
    );
}

const OTEL_GRPC: &str = "tracing:\n  provider:\n    name: envoy.tracers.opentelemetry\n    typed_config:\n      \"@type\": type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig\n      service_name: front-proxy\n      grpc_service:\n        envoy_grpc: { cluster_name: collector }\n        timeout: 2s\n";
const H2_CLUSTER: &str = r#"    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config:
          http2_protocol_options: {}
"#;

/// `grpc_service`: the spans go to a grpcio OTLP receiver as unary
/// `TraceService/Export` calls over the HTTP/2 collector cluster.
fn opentelemetry_exports_over_grpc(backend: Backend) {
    let net = Net::new(backend);
    let collector = Collector::start_grpc();
    let s = Setup::start_with(&net, OTEL_GRPC, collector.addr, &Extra { collector: H2_CLUSTER, ..Extra::default() });
    let tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let (r, seen) = s.send("/x", &[("traceparent", tp)]);
    assert_eq!(r.status, 200);
    let sent = seen.unwrap().header("traceparent").unwrap().to_string();
    let (r, _) = s.send("/y", &[]);
    assert_eq!(r.status, 200);
    let spans = collector.wait_for(2);
    let child = spans.iter().find(|n| field(n, "id").as_deref() == Some(&sent[36..52])).expect("the child span");
    assert_eq!(field(child, "traceId").as_deref(), Some("0af7651916cd43dd8448eb211c80319c"));
    assert_eq!(field(child, "parentId").as_deref(), Some("b7ad6b7169203331"));
    assert_eq!(field(child, "name").as_deref(), Some("checkout"));
    assert_eq!(tag(child, "http.url").as_deref(), Some("http://test/x"));
    assert_eq!(s.counter("tracing.opentelemetry.spans_sent"), 2);
    assert!(s.counter("cluster.collector.upstream_rq_total") >= 1);
    assert_eq!(s.counter("cluster.collector.upstream_cx_http2_total"), 1, "one HTTP/2 connection carries them");
}

fn not_sampled_parent_is_propagated_and_not_exported(backend: Backend) {
    let net = Net::new(backend);
    let collector = Collector::start();
    let s = Setup::start(&net, OTEL, collector.addr);
    let (_, seen) = s.send("/", &[("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00")]);
    let sent = seen.unwrap().header("traceparent").unwrap().to_string();
    assert!(sent.starts_with("00-0af7651916cd43dd8448eb211c80319c-") && sent.ends_with("-00"), "{sent}");
    // A sampled request afterwards: once its span is in, the first one would be too.
    let (_, seen) = s.send("/", &[]);
    let sampled = seen.unwrap().header("traceparent").unwrap().to_string();
    let spans = collector.wait_for(1);
    assert_eq!(field(&spans[0], "id").as_deref(), Some(&sampled[36..52]));
    assert_eq!(s.counter("tracing.opentelemetry.spans_sent"), 1);
}

fn request_id_in_the_response_when_configured(backend: Backend) {
    let net = Net::new(backend);
    let collector = Collector::start();
    let s = Setup::start(&net, &format!("{ZIPKIN}always_set_request_id_in_response: true\n"), collector.addr);
    let (r, seen) = s.send("/", &[]);
    let rid = seen.unwrap().header("x-request-id").unwrap().to_string();
    assert_eq!(r.header("x-request-id"), Some(rid.as_str()));
    let off = Setup::start(&net, "", collector.addr);
    let (r, _) = off.send("/", &[]);
    assert_eq!(r.header("x-request-id"), None, "not sent back unless configured");
}

fn errors_are_tagged_on_5xx_and_upstream_resets(backend: Backend) {
    let net = Net::new(backend);
    let collector = Collector::start();
    let s = Setup::start(&net, ZIPKIN, collector.addr);
    let (r, _) = s.send("/status/503", &[]);
    assert_eq!(r.status, 503);
    let (r, _) = s.send("/reset", &[]);
    assert_eq!(r.status, 503);
    let (r, _) = s.send("/status/404", &[]);
    assert_eq!(r.status, 404);
    let spans = collector.wait_for(3);
    let by_url =
        |u: &str| spans.iter().find(|n| tag(n, "http.url").as_deref() == Some(u)).unwrap_or_else(|| panic!("{u}"));
    let five = by_url("http://test/status/503");
    assert_eq!((tag(five, "http.status_code").as_deref(), tag(five, "error").as_deref()), (Some("503"), Some("true")));
    let reset = by_url("http://test/reset");
    assert_eq!(tag(reset, "error").as_deref(), Some("true"));
    assert_eq!(tag(reset, "response_flags").as_deref(), Some("UC"), "upstream connection termination");
    let four = by_url("http://test/status/404");
    assert_eq!(tag(four, "error"), None);
}

fn a_dead_collector_leaves_requests_alone_and_is_counted(backend: Backend) {
    let net = Net::new(backend);
    // A port nobody listens on.
    let dead = net.refused_addr();
    let s = Setup::start(&net, ZIPKIN, dead);
    let started = Instant::now();
    for _ in 0..20 {
        let (r, _) = s.send("/", &[]);
        assert_eq!(r.status, 200);
    }
    assert!(started.elapsed() < Duration::from_secs(5), "requests are not held up: {:?}", started.elapsed());
    let deadline = Instant::now() + Duration::from_secs(10);
    while s.counter("tracing.zipkin.spans_sent") < 20 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(s.counter("tracing.zipkin.spans_sent"), 20);
    // As in Envoy, the router's own 503 (connect refused) is an answer other than 202:
    // `reports_dropped`; the refused connects are the cluster's.
    let deadline = Instant::now() + Duration::from_secs(10);
    while s.counter("tracing.zipkin.reports_dropped") < 1 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(s.counter("tracing.zipkin.reports_dropped") >= 1);
    assert!(s.counter("cluster.collector.upstream_cx_connect_fail") >= 1);
    assert_eq!(s.counter("tracing.zipkin.reports_sent"), 0);
}

fn http2_streams_are_traced(backend: Backend) {
    let net = Net::new(backend);
    let collector = Collector::start();
    let s = Setup::start(&net, OTEL, collector.addr);
    let conn = net.connect(s.proxy.target(s.listen)).expect("connect to the proxy");
    let mut h2 = H2Client::handshake(conn).expect("HTTP/2 handshake");
    let tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let r = h2.request("GET", "/h2", &[("traceparent", tp)], b"").expect("response");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-envoy-decorator-operation"), Some("checkout"));
    let seen = s.origin.seen().pop().expect("forwarded");
    let sent = seen.header("traceparent").unwrap().to_string();
    let spans = collector.wait_for(1);
    assert_eq!(field(&spans[0], "id").as_deref(), Some(&sent[36..52]));
    assert_eq!(field(&spans[0], "parentId").as_deref(), Some("b7ad6b7169203331"));
    assert_eq!(tag(&spans[0], "http.protocol").as_deref(), Some("HTTP/2"));
}

/// `custom_tags` of kind `metadata` (Envoy's `MetadataCustomTag`), on both providers:
/// the stream's dynamic metadata (set by header_to_metadata), the route's, the upstream
/// cluster's and host's; a number as Envoy prints a double, a list as JSON, a missing
/// key (or no upstream host, as for a direct response) gives `default_value`.
fn metadata_custom_tags_read_request_route_cluster_and_host_metadata(backend: Backend) {
    let net = Net::new(backend);
    let collector = Collector::start();
    let routes = "- name: all\n  domains: [\"*\"]\n  routes:\n  - match: { prefix: \"/direct\" }\n    direct_response: { status: 204 }\n    metadata: { filter_metadata: { ns: { team: direct } } }\n  - match: { prefix: \"/\" }\n    route: { cluster: web }\n    metadata: { filter_metadata: { ns: { team: payments } } }\n";
    let filters = "- name: envoy.filters.http.header_to_metadata\n  typed_config:\n    \"@type\": type.googleapis.com/envoy.extensions.filters.http.header_to_metadata.v3.Config\n    request_rules:\n    - header: x-md\n      on_header_present: { metadata_namespace: ns, key: k }\n";
    let tags = "  custom_tags:\n  - { tag: request_k, metadata: { kind: { request: {} }, metadata_key: { key: ns, path: [{ key: k }] }, default_value: none } }\n  - { tag: route_team, metadata: { kind: { route: {} }, metadata_key: { key: ns, path: [{ key: team }] } } }\n  - { tag: cluster_tier, metadata: { kind: { cluster: {} }, metadata_key: { key: ns, path: [{ key: tier }] }, default_value: no-host } }\n  - { tag: cluster_n, metadata: { kind: { cluster: {} }, metadata_key: { key: ns, path: [{ key: n }] } } }\n  - { tag: cluster_list, metadata: { kind: { cluster: {} }, metadata_key: { key: ns, path: [{ key: l }] } } }\n  - { tag: host_zone, metadata: { kind: { host: {} }, metadata_key: { key: ns, path: [{ key: zone }] }, default_value: no-host } }\n  - { tag: missing, metadata: { kind: { host: {} }, metadata_key: { key: ns, path: [{ key: nope }] }, default_value: dflt } }\n  - { tag: missing_no_default, metadata: { kind: { route: {} }, metadata_key: { key: ns, path: [{ key: nope }] } } }\n";
    let extra = Extra {
        routes,
        filters,
        web: "    metadata: { filter_metadata: { ns: { tier: gold, n: 2.5, l: [1, \"x\"] } } }\n",
        web_endpoint_metadata: "{ filter_metadata: { ns: { zone: z1 } } }",
        collector: "",
        runtime: "",
    };
    for provider in [ZIPKIN, OTEL] {
        let s = Setup::start_with(&net, &format!("{provider}{tags}"), collector.addr, &extra);
        let before = collector.spans().len();
        let (r, _) = s.send("/proxied", &[("x-md", "v1")]);
        assert_eq!(r.status, 200);
        let (r, _) = s.send("/direct", &[]);
        assert_eq!(r.status, 204);
        let spans = collector.wait_for(before + 2);
        let by_url = |u: &str| {
            spans[before..].iter().find(|n| tag(n, "http.url").as_deref() == Some(u)).unwrap_or_else(|| panic!("{u}"))
        };
        let proxied = by_url("http://test/proxied");
        assert_eq!(tag(proxied, "request_k").as_deref(), Some("v1"), "{provider}");
        assert_eq!(tag(proxied, "route_team").as_deref(), Some("payments"));
        assert_eq!(tag(proxied, "cluster_tier").as_deref(), Some("gold"));
        assert_eq!(tag(proxied, "cluster_n").as_deref(), Some("2.5"));
        assert_eq!(tag(proxied, "cluster_list").as_deref(), Some(r#"[1,"x"]"#));
        assert_eq!(tag(proxied, "host_zone").as_deref(), Some("z1"));
        assert_eq!(tag(proxied, "missing").as_deref(), Some("dflt"));
        assert_eq!(tag(proxied, "missing_no_default"), None);
        let direct = by_url("http://test/direct");
        assert_eq!(tag(direct, "request_k").as_deref(), Some("none"));
        assert_eq!(tag(direct, "route_team").as_deref(), Some("direct"));
        assert_eq!(tag(direct, "cluster_tier").as_deref(), Some("no-host"));
        assert_eq!(tag(direct, "host_zone").as_deref(), Some("no-host"));
        assert_eq!(tag(direct, "cluster_n"), None);
    }
}

/// `spawn_upstream_span` (and Zipkin's `split_spans_for_request`): each upstream try
/// gets a CLIENT child of the stream's SERVER span, named `router <cluster> egress`,
/// and the upstream request carries the child's context; a retry is a second child with
/// `retry.count`; the try's status and error are its own.
fn spawn_upstream_span_makes_a_client_span_per_try(backend: Backend) {
    let net = Net::new(backend);
    let collector = Collector::start();
    let routes = "- name: all\n  domains: [\"*\"]\n  routes:\n  - match: { prefix: \"/status\" }\n    route: { cluster: web, retry_policy: { retry_on: 5xx, num_retries: 1 } }\n  - match: { prefix: \"/\" }\n    route: { cluster: web }\n";
    let extra = Extra { routes, ..Extra::default() };
    for (provider, client_kind, server_kind, parent_header) in [
        (format!("{ZIPKIN}      split_spans_for_request: true\n"), "CLIENT", "SERVER", "x-b3-parentspanid"),
        (OTEL.to_string(), "3", "2", ""),
    ] {
        let s = Setup::start_with(&net, &format!("{provider}  spawn_upstream_span: true\n"), collector.addr, &extra);
        let before = collector.spans().len();
        let (r, seen) = s.send("/one", &[]);
        assert_eq!(r.status, 200);
        let seen = seen.expect("forwarded");
        let sent_id = match seen.header("traceparent") {
            Some(tp) => tp[36..52].to_string(),
            None => seen.header("x-b3-spanid").expect("x-b3-spanid").to_string(),
        };
        let spans = collector.wait_for(before + 2);
        let new = &spans[before..];
        let client = new.iter().find(|n| field(n, "kind").as_deref() == Some(client_kind)).expect("client span");
        let server = new.iter().find(|n| field(n, "kind").as_deref() == Some(server_kind)).expect("server span");
        assert_eq!(field(client, "id"), Some(sent_id.clone()), "upstream carries the client span's context");
        assert_eq!(field(client, "parentId"), field(server, "id"));
        assert_eq!(field(client, "traceId"), field(server, "traceId"));
        assert_eq!(field(client, "name").as_deref(), Some("router web egress"));
        assert_eq!(tag(client, "upstream_address"), Some(s.origin.addr.to_string()));
        assert_eq!(tag(client, "peer.address"), Some(s.origin.addr.to_string()));
        assert_eq!(tag(client, "upstream_cluster").as_deref(), Some("web"));
        assert_eq!(tag(client, "http.status_code").as_deref(), Some("200"));
        assert_eq!(tag(client, "component").as_deref(), Some("proxy"));
        assert_eq!(tag(client, "error"), None);
        assert_eq!(tag(server, "http.url").as_deref(), Some("http://test/one"));
        if !parent_header.is_empty() {
            assert_eq!(seen.header(parent_header).map(str::to_string), field(server, "id"));
        }
        // A retried 503: two tries, two client spans; the second is the retry.
        let (r, _) = s.send("/status/503", &[]);
        assert_eq!(r.status, 503);
        let spans = collector.wait_for(before + 5);
        let tries: Vec<&Node> =
            spans[before + 2..].iter().filter(|n| field(n, "kind").as_deref() == Some(client_kind)).collect();
        assert_eq!(tries.len(), 2, "{tries:#?}");
        for t in &tries {
            assert_eq!(tag(t, "http.status_code").as_deref(), Some("503"));
            assert_eq!(tag(t, "error").as_deref(), Some("true"));
        }
        assert_eq!(tries.iter().filter(|t| tag(t, "retry.count").as_deref() == Some("1")).count(), 1);
        assert_ne!(field(tries[0], "id"), field(tries[1], "id"));
    }
}
