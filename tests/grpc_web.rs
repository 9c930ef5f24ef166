//! gRPC-Web and the gRPC HTTP/1.1 bridge end to end: HTTP/1.1 clients speaking the
//! gRPC-Web wire format (framed by hand here, as a browser's grpc-web library sends
//! it) through sluice to gRPC servers over HTTP/2.
//!
//! On both backends against the test's HTTP/2 origin (`/grpc/N/...` answers as a gRPC
//! server with `grpc-status: N`): binary and base64 text bodies, the trailers as the
//! last (0x80) frame of the body, error statuses, bad base64, a non-gRPC answer turned
//! into `grpc-status`/`grpc-message`, what the upstream sees, and the
//! `cluster.<c>.grpc-web.<service>.<method>.*` stats; the bridge's status and
//! `grpc-status` headers, `ignore_query_parameters` and `upgrade_protobuf_to_grpc`;
//! a browser's CORS preflight, then its gRPC-Web call, under the CORS policy of
//! Envoy's grpc-web example.
//! On the kernel backend against a real grpcio server: unary, server-streaming and
//! failing calls over gRPC-Web (binary and text) and over the bridge.

use base64::Engine;
use sluice_e2e::backend::{Backend, Net};
use sluice_e2e::config::{forward_all, ClusterAt};
use sluice_e2e::h2_origin::H2Origin;
use sluice_e2e::http_client::Response;
use sluice_e2e::http_proxy::HttpProxy;
use sluice_e2e::on_both_backends;

use crate::grpc::{ensure_grpcio, grpc_server, H2_UPSTREAM};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

const GRPC_WEB: &str = r#"- name: envoy.filters.http.grpc_web
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.filters.http.grpc_web.v3.GrpcWeb
"#;

fn bridge(options: &str) -> String {
    format!(
        "- name: envoy.filters.http.grpc_http1_bridge\n  typed_config:\n    \"@type\": type.googleapis.com/envoy.extensions.filters.http.grpc_http1_bridge.v3.Config\n{options}"
    )
}

/// A gRPC (and gRPC-Web data) frame.
fn frame(flag: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![flag];
    f.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// Split a gRPC-Web body into its frames (flag, payload); panics on a torn frame.
fn frames(mut body: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    while !body.is_empty() {
        assert!(body.len() >= 5, "torn frame header: {body:?}");
        let len = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
        assert!(body.len() >= 5 + len, "torn frame: {body:?}");
        out.push((body[0], body[5..5 + len].to_vec()));
        body = &body[5 + len..];
    }
    out
}

/// A gRPC-Web-text body: concatenated padded base64 groups, one per frame.
fn decode_text(body: &[u8]) -> Vec<u8> {
    let text = std::str::from_utf8(body).expect("text body");
    let mut out = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        // Each frame's group ends at its padding or where the next group begins.
        let end =
            rest.find('=').map(|i| rest[i..].find(|c| c != '=').map_or(rest.len(), |j| i + j)).unwrap_or(rest.len());
        out.extend_from_slice(&B64.decode(&rest[..end]).expect("base64"));
        rest = &rest[end..];
    }
    out
}

fn grpc_web_call(p: &HttpProxy<'_>, path: &str, content_type: &str, accept: Option<&str>, body: &[u8]) -> Response {
    let mut c = p.client();
    let mut h = vec![("host", "app.example"), ("content-type", content_type), ("x-grpc-web", "1")];
    if let Some(a) = accept {
        h.push(("accept", a));
    }
    c.request("POST", path, &h, body)
}

fn cluster_name(backend: Backend) -> String {
    format!("gw_{}", format!("{backend:?}").to_lowercase())
}

/// `/ok.Svc/...` and `/bad.Svc/...` reach the origin's gRPC answers (status 0 and 7)
/// under their own names (the stats use the path the client sent).
fn grpc_routes(cluster: &str) -> String {
    format!(
        "- name: all\n  domains: [\"*\"]\n  routes:\n  - match: {{ prefix: \"/ok.Svc/\" }}\n    route: {{ cluster: {cluster}, prefix_rewrite: \"/grpc/0/ok.Svc/\" }}\n  - match: {{ prefix: \"/bad.Svc/\" }}\n    route: {{ cluster: {cluster}, prefix_rewrite: \"/grpc/7/bad.Svc/\" }}\n  - match: {{ prefix: \"/\" }}\n    route: {{ cluster: {cluster} }}\n"
    )
}

fn grpc_web_to_an_h2_origin(backend: Backend) {
    let net = Net::new(backend);
    let origin = H2Origin::serve(net.listen(), "grpc", None);
    let endpoints = [origin.addr];
    let cluster = cluster_name(backend);
    let clusters = [ClusterAt { name: &cluster, endpoints: &endpoints, extra: H2_UPSTREAM }];
    let p = HttpProxy::start(&net, &grpc_routes(&cluster), &clusters, "", GRPC_WEB, 1);

    // Binary: the message comes back, then the trailers as the 0x80 frame.
    let msg = frame(0, b"hello");
    let r = grpc_web_call(&p, "/ok.Svc/Call", "application/grpc-web+proto", None, &msg);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/grpc-web+proto"));
    assert_eq!(frames(&r.body), [(0, b"hello".to_vec()), (0x80, b"grpc-status:0\r\n".to_vec())]);
    let seen = origin.seen().pop().expect("the origin saw the call");
    let h = |n: &str| seen.headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    assert_eq!(h("content-type").as_deref(), Some("application/grpc"));
    assert_eq!(h("te").as_deref(), Some("trailers"));
    assert_eq!(h("grpc-accept-encoding").as_deref(), Some("identity,deflate,gzip"));
    assert_eq!(h("content-length"), None);
    assert_eq!(seen.body, msg);

    // An error status reaches the client in the trailer frame.
    let r = grpc_web_call(&p, "/bad.Svc/Call", "application/grpc-web", None, &msg);
    assert_eq!(r.status, 200);
    let f = frames(&r.body);
    assert_eq!(f.last(), Some(&(0x80, b"grpc-status:7\r\ngrpc-message:failed 7\r\n".to_vec())));

    // Text both ways: the request is base64 (split mid-quad by nothing but the wire),
    // the response is base64 frame by frame.
    let text = B64.encode(frame(0, b"text message"));
    let r = grpc_web_call(
        &p,
        "/ok.Svc/Call",
        "application/grpc-web-text",
        Some("application/grpc-web-text"),
        text.as_bytes(),
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/grpc-web-text+proto"));
    assert_eq!(frames(&decode_text(&r.body)), [(0, b"text message".to_vec()), (0x80, b"grpc-status:0\r\n".to_vec())]);
    assert_eq!(origin.seen().pop().expect("seen").body, frame(0, b"text message"));

    // Bad base64: a gRPC local reply (trailers-only) as gRPC-Web.
    let before = origin.seen().len();
    let r = grpc_web_call(&p, "/ok.Svc/Text", "application/grpc-web-text", None, b"AAA");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("grpc-status"), Some("13"));
    assert_eq!(r.header("grpc-message"), Some("Bad gRPC-web request, invalid base64 data."));
    assert_eq!(r.header("content-type"), Some("application/grpc-web+proto"));
    assert!(r.body.is_empty());
    assert!(origin.seen().len() <= before + 1, "at most the aborted call reached the origin");

    // A non-gRPC answer: its status stays, its body becomes grpc-message.
    let r = grpc_web_call(&p, "/status/503", "application/grpc-web+proto", None, b"");
    assert_eq!(r.status, 503);
    assert_eq!(r.header("grpc-status"), Some("14"));
    assert_eq!(r.header("grpc-message"), Some("POST /status/503%0A"));
    assert_eq!(r.header("content-length"), Some("0"));
    assert!(r.body.is_empty());

    // Not gRPC-Web: untouched.
    let mut c = p.client();
    let r = c.request("POST", "/plain", &[("host", "app.example"), ("content-type", "text/plain")], b"x");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "POST /plain\nx");

    let stat = |svc: &str, s: &str| p.counter(&format!("cluster.{cluster}.grpc-web.{svc}.Svc.Call.{s}"));
    assert_eq!(stat("ok", "0"), 2);
    assert_eq!(stat("ok", "success"), 2);
    assert_eq!(stat("ok", "total"), 2);
    assert_eq!(stat("bad", "7"), 1);
    assert_eq!(stat("bad", "failure"), 1);
    assert_eq!(stat("bad", "total"), 1);
    // The bad-base64 call was answered locally with grpc-status 13 in its head.
    assert_eq!(p.counter(&format!("cluster.{cluster}.grpc-web.ok.Svc.Text.13")), 1);
}

fn grpc_web_over_http2_downstream(backend: Backend) {
    let net = Net::new(backend);
    let origin = H2Origin::serve(net.listen(), "grpc", None);
    let endpoints = [origin.addr];
    let clusters = [ClusterAt { name: "grpc", endpoints: &endpoints, extra: H2_UPSTREAM }];
    let p = HttpProxy::start(&net, &forward_all("grpc"), &clusters, "", GRPC_WEB, 1);
    let conn = net.connect(p.proxy().target(p.listen_addr())).expect("connect");
    let mut c = sluice_e2e::h2_client::H2Client::handshake(conn).expect("handshake");
    let h = [("content-type", "application/grpc-web+proto")];
    let r = c.request("POST", "/grpc/5/pkg.Svc/Call", &h, &frame(0, b"h2")).expect("response");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/grpc-web+proto"));
    assert_eq!(frames(&r.body), [(0, b"h2".to_vec()), (0x80, b"grpc-status:5\r\ngrpc-message:failed 5\r\n".to_vec())]);
}

fn http1_bridge_to_an_h2_origin(backend: Backend) {
    let net = Net::new(backend);
    let origin = H2Origin::serve(net.listen(), "grpc", None);
    let endpoints = [origin.addr];
    let clusters = [ClusterAt { name: "grpc", endpoints: &endpoints, extra: H2_UPSTREAM }];
    let filters = bridge("    ignore_query_parameters: true\n    upgrade_protobuf_to_grpc: true\n");
    let p = HttpProxy::start(&net, &forward_all("grpc"), &clusters, "", &filters, 1);
    let call = |path: &str, ct: &str, body: &[u8]| {
        let mut c = p.client();
        c.request("POST", path, &[("host", "app.example"), ("content-type", ct)], body)
    };
    let msg = frame(0, b"bridged");
    let r = call("/grpc/0/pkg.Svc/Call?debug=1", "application/grpc", &msg);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("grpc-status"), Some("0"));
    assert_eq!(r.header("content-length"), Some(msg.len().to_string().as_str()));
    assert_eq!(r.body, msg);
    assert_eq!(origin.seen().pop().expect("seen").path, "/grpc/0/pkg.Svc/Call", "the query is dropped");

    let r = call("/grpc/9/pkg.Svc/Call", "application/grpc", &msg);
    assert_eq!(r.status, 503);
    assert_eq!(r.header("grpc-status"), Some("9"));
    assert_eq!(r.header("grpc-message"), Some("failed 9"));
    assert_eq!(r.body, msg);

    // application/x-protobuf: framed as one gRPC message on the way up, unframed back.
    let r = call("/grpc/0/pkg.Svc/Call", "application/x-protobuf", b"raw proto");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"raw proto");
    assert_eq!(r.header("content-length"), Some("9"));
    let seen = origin.seen().pop().expect("seen");
    assert_eq!(seen.body, frame(0, b"raw proto"));
    assert!(seen.headers.iter().any(|(k, v)| k == "content-type" && v == "application/grpc"));
}

/// The CORS policy of Envoy's grpc-web example (envoyproxy/examples, Apache-2.0): what
/// a browser's grpc-web client needs to send its headers and read the status.
const CORS_ROUTES: &str = r#"- name: app
  domains: ["*"]
  typed_per_filter_config:
    envoy.filters.http.cors:
      "@type": type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy
      allow_origin_string_match: [{ prefix: "*" }]
      allow_methods: GET, PUT, DELETE, POST, OPTIONS
      allow_headers: keep-alive,user-agent,cache-control,content-type,content-transfer-encoding,custom-header-1,x-accept-content-transfer-encoding,x-accept-response-streaming,x-user-agent,x-grpc-web,grpc-timeout
      max_age: "1728000"
      expose_headers: custom-header-1,grpc-status,grpc-message
  routes:
  - match: { prefix: "/" }
    route: { cluster: grpc, prefix_rewrite: "/grpc/0/" }
"#;

const CORS: &str = "- name: envoy.filters.http.cors\n  typed_config: { \"@type\": type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors }\n";

fn browser_preflight_then_grpc_web_call(backend: Backend) {
    let net = Net::new(backend);
    let origin = H2Origin::serve(net.listen(), "grpc", None);
    let endpoints = [origin.addr];
    let clusters = [ClusterAt { name: "grpc", endpoints: &endpoints, extra: H2_UPSTREAM }];
    let filters = format!("{GRPC_WEB}{CORS}");
    let p = HttpProxy::start(&net, CORS_ROUTES, &clusters, "", &filters, 1);
    let mut c = p.client();
    let page = "https://page.example";
    let r = c.request(
        "OPTIONS",
        "/pkg.Svc/Call",
        &[
            ("host", "api.example"),
            ("origin", page),
            ("access-control-request-method", "POST"),
            ("access-control-request-headers", "content-type,x-grpc-web,x-user-agent"),
        ],
        b"",
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("access-control-allow-origin"), Some(page));
    assert!(r.header("access-control-allow-headers").is_some_and(|h| h.contains("x-grpc-web")));
    assert!(origin.seen().is_empty(), "the proxy answers the preflight");
    let h = [
        ("host", "api.example"),
        ("origin", page),
        ("content-type", "application/grpc-web-text"),
        ("accept", "application/grpc-web-text"),
        ("x-grpc-web", "1"),
        ("x-user-agent", "grpc-web-javascript/0.1"),
    ];
    let r = c.request("POST", "/pkg.Svc/Call", &h, B64.encode(frame(0, b"from the page")).as_bytes());
    assert_eq!(r.status, 200);
    assert_eq!(r.header("access-control-allow-origin"), Some(page));
    assert_eq!(r.header("access-control-expose-headers"), Some("custom-header-1,grpc-status,grpc-message"));
    assert_eq!(r.header("content-type"), Some("application/grpc-web-text+proto"));
    assert_eq!(frames(&decode_text(&r.body)), [(0, b"from the page".to_vec()), (0x80, b"grpc-status:0\r\n".to_vec())]);
}

on_both_backends!(
    grpc_web_to_an_h2_origin,
    grpc_web_over_http2_downstream,
    http1_bridge_to_an_h2_origin,
    browser_preflight_then_grpc_web_call
);

/// gRPC-Web and bridged calls to the grpcio server of `grpc.rs` (`test.Echo`).
#[test]
fn grpc_web_and_bridge_to_a_grpcio_server() {
    ensure_grpcio();
    let net = Net::new(Backend::Kernel);
    let (_server, port) = grpc_server();
    let endpoints = [sluice_e2e::localhost(port)];
    let clusters = [ClusterAt { name: "grpcio_web", endpoints: &endpoints, extra: H2_UPSTREAM }];
    let p = HttpProxy::start(&net, &forward_all("grpcio_web"), &clusters, "", GRPC_WEB, 1);

    let r = grpc_web_call(&p, "/test.Echo/Unary", "application/grpc-web+proto", None, &frame(0, b"hi"));
    assert_eq!(r.status, 200, "{r:?}");
    let f = frames(&r.body);
    assert_eq!(f[0], (0, b"echo:hi:http".to_vec()));
    let trailer = String::from_utf8_lossy(&f[1].1).into_owned();
    assert_eq!(f[1].0, 0x80);
    assert!(trailer.contains("grpc-status:0\r\n"), "{trailer:?}");

    // Server streaming, text both ways.
    let body = B64.encode(frame(0, b"4"));
    let r = grpc_web_call(
        &p,
        "/test.Echo/ServerStream",
        "application/grpc-web-text",
        Some("application/grpc-web-text"),
        body.as_bytes(),
    );
    assert_eq!(r.status, 200);
    let f = frames(&decode_text(&r.body));
    let items: Vec<&[u8]> = f.iter().filter(|(flag, _)| *flag == 0).map(|(_, m)| &m[..]).collect();
    assert_eq!(items, [&b"item-0"[..], b"item-1", b"item-2", b"item-3"]);
    assert_eq!(f.last().map(|(flag, _)| *flag), Some(0x80));

    // A failing call: grpcio answers trailers-only (no message), which gRPC-Web
    // carries as the response head.
    let r = grpc_web_call(&p, "/test.Echo/Fail", "application/grpc-web+proto", None, &frame(0, b"thing"));
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/grpc-web+proto"));
    assert_eq!(r.header("grpc-status"), Some("5"));
    assert_eq!(r.header("grpc-message"), Some("no such thing: thing"));
    assert!(r.body.is_empty());

    assert_eq!(p.counter("cluster.grpcio_web.grpc-web.test.Echo.Unary.success"), 1);
    assert_eq!(p.counter("cluster.grpcio_web.grpc-web.test.Echo.Fail.failure"), 1);

    // The bridge (a proxy of its own: after grpc_web it would bridge gRPC-Web calls
    // too, as in Envoy): plain gRPC over HTTP/1.1, the status in the head.
    let p = HttpProxy::start(&net, &forward_all("grpcio_web"), &clusters, "", &bridge(""), 1);
    let mut c = p.client();
    // gRPC servers want `te: trailers` (an HTTP/1.1 request may carry it; sluice
    // forwards it as Envoy does).
    let h = [("host", "app.example"), ("content-type", "application/grpc"), ("te", "trailers")];
    let r = c.request("POST", "/test.Echo/Unary", &h, &frame(0, b"bridge"));
    assert_eq!(r.status, 200);
    assert_eq!(r.header("grpc-status"), Some("0"), "{:?}", r.header("grpc-message"));
    assert_eq!(frames(&r.body), [(0, b"echo:bridge:http".to_vec())]);
    // A trailers-only failure ends with its head: it passes as it is (Envoy's
    // end_stream rule), the status already in the head.
    let r = c.request("POST", "/test.Echo/Fail", &h, &frame(0, b"x"));
    assert_eq!(r.status, 200);
    assert_eq!(r.header("grpc-status"), Some("5"));
    assert_eq!(r.header("grpc-message"), Some("no such thing: x"));
}
