//! Downstream HTTP/2 end to end, to HTTP/1.1 origins.
//!
//! On both datapaths (the test's own `h2` client over the backend's connections): h2c
//! with prior knowledge on an AUTO listener, request and response bodies byte-exact
//! (flow control both ways), concurrent streams on one connection, HTTP/1.1 on the same
//! listener, `codec_type` HTTP1/HTTP2, a slow reader pausing its upstream, local
//! replies, stream resets, GOAWAY on drain with the in-flight stream completing.
//! On loopback only (real clients): curl `--http2-prior-knowledge` and h2load.

use std::process::Command;
use std::time::{Duration, Instant};

use sluice_e2e::backend::{Backend, Net};
use sluice_e2e::h2_client::H2Client;
use sluice_e2e::http_origin::{pattern, HttpOrigin};
use sluice_e2e::http_proxy::HttpProxy;
use sluice_e2e::on_both_backends;

fn h2(net: &Net, p: &HttpProxy<'_>) -> H2Client {
    let conn = net.connect(p.proxy().target(p.listen_addr())).expect("connect to the proxy");
    H2Client::handshake(conn).expect("HTTP/2 handshake")
}

fn prior_knowledge_get_and_bodies_both_ways(backend: Backend) {
    let net = Net::new(backend);
    let origin = HttpOrigin::serve(net.listen(), "web");
    let p = HttpProxy::to(&net, &origin, "", 1);
    let mut c = h2(&net, &p);
    let r = c.get("/hello");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-origin"), Some("web"));
    assert!(r.text().starts_with("GET /hello"), "{}", r.text());
    assert!(r.header("connection").is_none());
    let seen = origin.seen();
    assert_eq!(seen[0].header("host"), Some("sluice.test"), ":authority becomes host");
    assert_eq!(seen[0].header("x-forwarded-proto"), Some("http"));

    // 1 MiB up (no content-length: chunked to the origin), 3 MB down.
    let body = pattern(1 << 20);
    let r = c.request("POST", "/echo", &[], &body).expect("POST");
    assert_eq!(r.status, 200);
    assert!(r.body.ends_with(&body), "the origin echoes the request body intact");
    assert_eq!(origin.seen()[1].body.len(), 1 << 20);
    let r = c.request("PUT", "/echo", &[("content-length", "1000")], &pattern(1000)).expect("PUT");
    assert_eq!(r.status, 200);
    assert_eq!(origin.seen()[2].header("content-length"), Some("1000"));
    let r = c.get("/bytes/3000000");
    assert_eq!(r.body.len(), 3_000_000);
    assert!(r.body == pattern(3_000_000), "response body byte-exact");
    let r = c.get("/chunked/100000");
    assert!(r.body == pattern(100_000));

    assert_eq!(p.counter("http.ingress.downstream_cx_http2_total"), 1);
    assert_eq!(p.counter("http.ingress.downstream_cx_http2_active"), 1);
    assert_eq!(p.counter("http.ingress.downstream_rq_http2_total"), 5);
    assert_eq!(p.counter("http.ingress.downstream_rq_2xx"), 5);
    assert_eq!(p.counter("http.ingress.downstream_cx_http1_total"), 0);
}

fn concurrent_streams_share_one_connection(backend: Backend) {
    let net = Net::new(backend);
    let origin = HttpOrigin::serve(net.listen(), "web");
    let p = HttpProxy::to(&net, &origin, "", 1);
    let mut c = h2(&net, &p);
    let started = Instant::now();
    let pending: Vec<_> = (0..20).map(|i| c.start("GET", &format!("/delay/300/s{i}"), &[], b"")).collect();
    for (i, pend) in pending.into_iter().enumerate() {
        let r = c.finish(pend).expect("response");
        assert_eq!(r.status, 200);
        assert!(r.text().starts_with(&format!("GET /delay/300/s{i}")), "stream {i} got {}", r.text());
    }
    // Serially the 20 requests would take 6 s: each stream had its own upstream request.
    assert!(started.elapsed() < Duration::from_secs(4), "took {:?}", started.elapsed());
    assert_eq!(origin.requests(), 20);
    assert!(origin.connections() >= 10, "upstream connections: {}", origin.connections());
    assert_eq!(p.counter("http.ingress.downstream_cx_http2_total"), 1);
    assert_eq!(p.counter("http.ingress.downstream_rq_http2_total"), 20);
}

fn http1_is_still_served_on_an_auto_listener(backend: Backend) {
    let net = Net::new(backend);
    let origin = HttpOrigin::serve(net.listen(), "web");
    let p = HttpProxy::to(&net, &origin, "", 1);
    assert_eq!(p.client().get("/one").status, 200);
    assert_eq!(h2(&net, &p).get("/two").status, 200);
    assert_eq!(p.counter("http.ingress.downstream_cx_http1_total"), 1);
    assert_eq!(p.counter("http.ingress.downstream_cx_http2_total"), 1);
    assert_eq!(p.counter("http.ingress.downstream_rq_http1_total"), 1);
    assert_eq!(p.counter("http.ingress.downstream_rq_http2_total"), 1);
}

fn codec_type_http1_and_http2_mean_what_envoy_means(backend: Backend) {
    let net = Net::new(backend);
    let origin = HttpOrigin::serve(net.listen(), "web");
    {
        // HTTP2 only: an HTTP/1.1 request gets no HTTP/1 answer; h2 is served.
        let p = HttpProxy::to(&net, &origin, "codec_type: HTTP2\n", 1);
        let mut c = p.client();
        c.send(b"GET /h1 HTTP/1.1\r\nhost: t\r\n\r\n");
        assert!(c.read_response(false).is_err(), "no HTTP/1 response on an HTTP2 listener");
        assert_eq!(h2(&net, &p).get("/h2").status, 200);
    }
    {
        // HTTP1 only: the HTTP/2 preface is a malformed HTTP/1 request.
        let p = HttpProxy::to(&net, &origin, "codec_type: HTTP1\n", 1);
        let conn = net.connect(p.proxy().target(p.listen_addr())).unwrap();
        assert!(H2Client::handshake(conn).and_then(|mut c| c.request("GET", "/x", &[], b"")).is_err());
        assert_eq!(p.client().get("/h1").status, 200);
        assert_eq!(p.counter("http.ingress.downstream_cx_http2_total"), 0);
    }
    let paths: Vec<String> = origin.seen().iter().map(|s| s.path.clone()).collect();
    assert_eq!(paths, ["/h2", "/h1"]);
}

fn slow_reader_pauses_the_upstream_and_gets_every_byte(backend: Backend) {
    let net = Net::new(backend);
    let origin = HttpOrigin::serve(net.listen(), "web");
    let p = HttpProxy::to(&net, &origin, "", 1);
    let mut c = h2(&net, &p);
    let len = 8 << 20;
    let pend = c.start("GET", &format!("/bytes/{len}"), &[], b"");
    // The head only: the client's 64 KiB window closes and stays closed a while.
    let (status, mut recv) = c.head_only(pend).expect("head");
    assert_eq!(status, 200);
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        p.counter("cluster.web.upstream_flow_control_paused_reading_total") >= 1,
        "the upstream read paused at the buffer limit"
    );
    let body = c.read_body(&mut recv).expect("body");
    assert_eq!(body.len(), len);
    assert!(body == pattern(len), "8 MiB byte-exact");
    assert_eq!(c.get("/after").status, 200);
}

fn local_replies_and_upstream_failures(backend: Backend) {
    let net = Net::new(backend);
    let origin = HttpOrigin::serve(net.listen(), "web");
    let vhosts = r#"- name: all
  domains: ["*"]
  routes:
  - match: { prefix: "/direct" }
    direct_response: { status: 201, body: { inline_string: "made here" } }
  - match: { prefix: "/" }
    route: { cluster: web }
"#;
    let endpoints = [origin.addr];
    let clusters = [sluice_e2e::config::ClusterAt { name: "web", endpoints: &endpoints, extra: "" }];
    let p = HttpProxy::start(&net, vhosts, &clusters, "", "", 1);
    let mut c = h2(&net, &p);
    let r = c.get("/direct");
    assert_eq!((r.status, r.text().as_str()), (201, "made here"));
    assert_eq!(r.header("content-length"), Some("9"));
    let r = c.request("HEAD", "/direct", &[], b"").unwrap();
    assert_eq!((r.status, r.body.len()), (201, 0));
    // The origin closes without answering: 503 as a local reply on the stream.
    let r = c.get("/reset");
    assert_eq!(r.status, 503);
    // The origin resets after the head: the stream is reset (RST_STREAM), the
    // connection stays usable.
    assert!(c.request("GET", "/reset-after-headers", &[], b"").is_err(), "the stream is reset");
    assert_eq!(c.get("/still").status, 200);
    assert!(p.counter("http.ingress.http2.tx_reset") >= 1);
    assert_eq!(p.counter("http.ingress.downstream_cx_http2_total"), 1);
}

fn drain_sends_goaway_and_lets_the_stream_finish(backend: Backend) {
    let net = Net::new(backend);
    let origin = HttpOrigin::serve(net.listen(), "web");
    let p = HttpProxy::to(&net, &origin, "", 1);
    let mut c = h2(&net, &p);
    assert_eq!(c.get("/before").status, 200);
    let pend = c.start("GET", "/delay/500/in-flight", &[], b"");
    c.flush();
    std::thread::sleep(Duration::from_millis(100));
    p.proxy().drain();
    let r = c.finish(pend).expect("the in-flight stream completes");
    assert_eq!(r.status, 200);
    assert!(r.text().starts_with("GET /delay/500/in-flight"));
    assert!(c.run_to_close().is_ok(), "a graceful GOAWAY, then the close");
    assert!(p.counter("http.ingress.http2.goaway_sent") >= 1);
    // The client may see the final GOAWAY before the proxy closed its side.
    let until = Instant::now() + Duration::from_secs(3);
    while p.counter("http.ingress.downstream_cx_http2_active") != 0 && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(p.counter("http.ingress.downstream_cx_http2_active"), 0, "the connection closed");
}

on_both_backends!(
    prior_knowledge_get_and_bodies_both_ways,
    concurrent_streams_share_one_connection,
    http1_is_still_served_on_an_auto_listener,
    codec_type_http1_and_http2_mean_what_envoy_means,
    slow_reader_pauses_the_upstream_and_gets_every_byte,
    local_replies_and_upstream_failures,
    drain_sends_goaway_and_lets_the_stream_finish,
);

/// Whether `tool` runs here (curl and h2load come from Debian packages).
fn have(tool: &str) -> bool {
    Command::new(tool).arg("--version").output().is_ok_and(|o| o.status.success())
}

#[test]
fn curl_prior_knowledge_and_h2load() {
    assert!(have("curl") && have("h2load"), "curl and h2load (nghttp2-client) are needed");
    let net = Net::new(Backend::Kernel);
    let origin = HttpOrigin::serve(net.listen(), "web");
    let p = HttpProxy::to(&net, &origin, "", 2);
    let url = format!("http://{}/curl", p.proxy().target(p.listen_addr()));
    let out = Command::new("curl")
        .args(["-s", "--http2-prior-knowledge", "-o", "/dev/null", "-w", "%{http_version} %{http_code}", &url])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "2 200");
    let out = Command::new("curl")
        .args(["-s", "--http2-prior-knowledge", "--data-binary", "@-", "-o", "/dev/null", "-w", "%{http_code}", &url])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "200");

    let url = format!("http://{}/load", p.proxy().target(p.listen_addr()));
    let out = Command::new("timeout")
        .args(["60", "h2load", "-n", "1000", "-c", "4", "-m", "10", &url])
        .output()
        .expect("run h2load");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("1000 succeeded, 0 failed, 0 errored"), "{text}");
    assert!(text.contains("1000 2xx"), "{text}");
    assert_eq!(p.counter("http.ingress.downstream_cx_http2_total"), 6);
}
