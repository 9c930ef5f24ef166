//! Downstream HTTP/2 end to end, to HTTP/1.1 origins.
//!
//! On both datapaths (the test's own `h2` client over the backend's connections): h2c
//! with prior knowledge on an AUTO listener, request and response bodies byte-exact
//! (flow control both ways), concurrent streams on one connection, HTTP/1.1 on the same
//! listener, `codec_type` HTTP1/HTTP2, a slow reader pausing its upstream, local
//! replies, stream resets, GOAWAY on drain with the in-flight stream completing, stream
//! and connection idle timeouts, `max_concurrent_streams`, malformed requests.
//! On loopback only (real clients): curl `--http2-prior-knowledge` and h2load.

use std::process::Command;
use std::time::{Duration, Instant};

use sluice_e2e::backend::{Backend, Net};
use sluice_e2e::config::ClusterAt;
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
    // 8 MiB up and back on one stream, byte-exact.
    let big = sluice_e2e::payload(8 << 20, 7);
    let r = c.request("POST", "/echo-big", &[], &big).expect("8 MiB POST");
    assert_eq!(r.status, 200);
    assert!(r.body.ends_with(&big), "8 MiB echoed intact");
    let r = c.get("/bytes/3000000");
    assert_eq!(r.body.len(), 3_000_000);
    assert!(r.body == pattern(3_000_000), "response body byte-exact");
    let r = c.get("/chunked/100000");
    assert!(r.body == pattern(100_000));

    assert_eq!(p.counter("http.ingress.downstream_cx_http2_total"), 1);
    assert_eq!(p.counter("http.ingress.downstream_cx_http2_active"), 1);
    assert_eq!(p.counter("http.ingress.downstream_rq_http2_total"), 6);
    assert_eq!(p.counter("http.ingress.downstream_rq_2xx"), 6);
    assert_eq!(p.counter("http.ingress.downstream_cx_http1_total"), 0);
}

fn concurrent_streams_share_one_connection(backend: Backend) {
    let net = Net::new(backend);
    let origin = HttpOrigin::serve(net.listen(), "web");
    let p = HttpProxy::to(&net, &origin, "", 1);
    let mut c = h2(&net, &p);
    let started = Instant::now();
    let pending: Vec<_> = (0..100).map(|i| c.start("GET", &format!("/delay/300/s{i}"), &[], b"")).collect();
    for (i, pend) in pending.into_iter().enumerate() {
        let r = c.finish(pend).expect("response");
        assert_eq!(r.status, 200);
        assert!(r.text().starts_with(&format!("GET /delay/300/s{i}")), "stream {i} got {}", r.text());
    }
    // Serially the 100 requests would take 30 s: each stream had its own upstream request.
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
    assert_eq!(origin.requests(), 100);
    assert!(origin.connections() >= 50, "upstream connections: {}", origin.connections());
    assert_eq!(p.counter("http.ingress.downstream_cx_http2_total"), 1);
    assert_eq!(p.counter("http.ingress.downstream_rq_http2_total"), 100);
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

fn stream_timeouts_and_client_resets_end_one_stream(backend: Backend) {
    let net = Net::new(backend);
    let origin = HttpOrigin::serve(net.listen(), "web");
    let p = HttpProxy::to(&net, &origin, "stream_idle_timeout: 0.4s\n", 1);
    let mut c = h2(&net, &p);
    let started = Instant::now();
    let slow = c.start("GET", "/delay/3000/slow", &[], b"");
    let r = c.finish(slow).expect("a local reply on the stream");
    assert_eq!((r.status, r.text().as_str()), (408, "stream timeout"));
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    assert_eq!(p.counter("http.ingress.downstream_rq_idle_timeout"), 1);

    // The client resets a stream in flight (dropping it sends RST_STREAM CANCEL).
    let gone = c.start("GET", "/delay/3000/gone", &[], b"");
    c.flush();
    drop(gone);
    c.flush();
    let until = Instant::now() + Duration::from_secs(2);
    while p.counter("http.ingress.http2.rx_reset") == 0 && Instant::now() < until {
        c.flush();
    }
    assert_eq!(p.counter("http.ingress.http2.rx_reset"), 1);
    assert_eq!(p.counter("http.ingress.downstream_rq_rx_reset"), 1);
    assert_eq!(p.counter("cluster.web.upstream_rq_tx_reset"), 2, "both upstream requests were reset");
    assert_eq!(c.get("/fine").status, 200, "the connection serves on");
    assert_eq!(p.counter("http.ingress.downstream_cx_http2_total"), 1);
}

fn reader_that_never_opens_its_window_is_reset(backend: Backend) {
    let net = Net::new(backend);
    let origin = HttpOrigin::serve(net.listen(), "web");
    let p = HttpProxy::to(&net, &origin, "stream_idle_timeout: 0.5s\n", 1);
    let mut c = h2(&net, &p);
    // Smaller than the buffer limit: the whole response is queued in sluice.
    let pend = c.start("GET", "/bytes/500000", &[], b"");
    let (status, mut recv) = c.head_only(pend).expect("head");
    assert_eq!(status, 200);
    // Never read: the 64 KiB window stays closed, the stream goes idle.
    let until = Instant::now() + Duration::from_secs(5);
    while p.counter("http.ingress.downstream_rq_idle_timeout") == 0 && Instant::now() < until {
        c.flush();
    }
    assert_eq!(p.counter("http.ingress.downstream_rq_idle_timeout"), 1);
    assert!(c.read_body(&mut recv).is_err(), "the stream was reset");
    assert_eq!(c.get("/fine").status, 200, "the connection serves on");
}

fn idle_connection_gets_goaway(backend: Backend) {
    let net = Net::new(backend);
    let origin = HttpOrigin::serve(net.listen(), "web");
    let p = HttpProxy::to(&net, &origin, "common_http_protocol_options: { idle_timeout: 0.3s }\n", 1);
    let mut c = h2(&net, &p);
    assert_eq!(c.get("/once").status, 200);
    let started = Instant::now();
    assert!(c.run_to_close().is_ok(), "a graceful GOAWAY, then the close");
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    assert_eq!(p.counter("http.ingress.downstream_cx_idle_timeout"), 1);
    assert_eq!(p.counter("http.ingress.http2.goaway_sent"), 1);
}

fn stalled_handshake_is_closed_by_idle_timeout(backend: Backend) {
    let net = Net::new(backend);
    let origin = HttpOrigin::serve(net.listen(), "web");
    let hcm = "codec_type: HTTP2\ncommon_http_protocol_options: { idle_timeout: 0.3s }\n";
    let p = HttpProxy::to(&net, &origin, hcm, 1);
    let mut c = p.client();
    c.send(b"PRI * HTTP/2.0\r\n");
    // The server's SETTINGS, then the close.
    let started = Instant::now();
    c.stream.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let mut got = Vec::new();
    let end = std::io::Read::read_to_end(&mut c.stream, &mut got);
    assert!(end.is_ok() && started.elapsed() < Duration::from_secs(3), "{end:?}: a half preface holds the connection");
    assert_eq!(p.counter("http.ingress.downstream_cx_idle_timeout"), 1);
    let until = Instant::now() + Duration::from_secs(2);
    while p.counter("http.ingress.downstream_cx_active") != 0 && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(p.counter("http.ingress.downstream_cx_active"), 0);
}

fn max_requests_per_connection_ends_with_goaway(backend: Backend) {
    let net = Net::new(backend);
    let origin = HttpOrigin::serve(net.listen(), "web");
    let p = HttpProxy::to(&net, &origin, "common_http_protocol_options: { max_requests_per_connection: 2 }\n", 1);
    let mut c = h2(&net, &p);
    assert_eq!(c.get("/1").status, 200);
    assert_eq!(c.get("/2").status, 200, "the last request is served");
    assert!(c.run_to_close().is_ok(), "then GOAWAY and the close");
    assert_eq!(p.counter("http.ingress.downstream_cx_max_requests_reached"), 1);
    assert_eq!(h2(&net, &p).get("/3").status, 200, "a new connection is served");
}

/// Read HTTP/2 frames off a raw connection until `done` says so: (type, flags, stream,
/// payload) of each.
fn read_frames(
    c: &mut sluice_e2e::http_client::Client,
    mut done: impl FnMut(&[(u8, u8, u32, Vec<u8>)]) -> bool,
) -> Vec<(u8, u8, u32, Vec<u8>)> {
    use std::io::Read;
    c.stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let (mut buf, mut frames, mut chunk) = (Vec::new(), Vec::new(), [0u8; 16384]);
    while !done(&frames) {
        let n = c.stream.read(&mut chunk).expect("frames");
        assert!(n > 0, "closed after {frames:?}");
        buf.extend_from_slice(&chunk[..n]);
        while buf.len() >= 9 {
            let len = ((buf[0] as usize) << 16) | ((buf[1] as usize) << 8) | buf[2] as usize;
            if buf.len() < 9 + len {
                break;
            }
            let stream = u32::from_be_bytes([buf[5], buf[6], buf[7], buf[8]]) & 0x7fff_ffff;
            frames.push((buf[3], buf[4], stream, buf[9..9 + len].to_vec()));
            buf.drain(..9 + len);
        }
    }
    frames
}

/// A HEADERS frame (END_STREAM | END_HEADERS) for `GET path` on `stream` (HPACK:
/// `:method GET`, `:scheme http`, `:path` literal, `:authority t`).
fn raw_get(stream: u32, path: &str, extra: &[u8]) -> Vec<u8> {
    let mut block = vec![0x82, 0x86, 0x04, path.len() as u8];
    block.extend_from_slice(path.as_bytes());
    block.extend_from_slice(&[0x41, 0x01, b't']);
    block.extend_from_slice(extra);
    let mut f = vec![0, (block.len() >> 8) as u8, block.len() as u8, 1, 5];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(&block);
    f
}

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";
const SETTINGS_ACK: &[u8] = &[0, 0, 0, 4, 1, 0, 0, 0, 0];

fn max_concurrent_streams_is_enforced(backend: Backend) {
    let net = Net::new(backend);
    let origin = HttpOrigin::serve(net.listen(), "web");
    let p = HttpProxy::to(&net, &origin, "http2_protocol_options: { max_concurrent_streams: 2 }\n", 1);
    let mut c = p.client();
    c.send(PREFACE);
    let frames = read_frames(&mut c, |f| f.iter().any(|f| f.0 == 4 && f.1 & 1 == 0));
    let settings = &frames.iter().find(|f| f.0 == 4 && f.1 & 1 == 0).unwrap().3;
    // SETTINGS_MAX_CONCURRENT_STREAMS (3) = 2 is advertised.
    assert!(settings.chunks(6).any(|s| s == [0, 3, 0, 0, 0, 2]), "{settings:?}");
    // Acknowledge, then open three streams at once: the third is refused.
    let mut req = SETTINGS_ACK.to_vec();
    for (id, name) in [(1, "a"), (3, "b"), (5, "c")] {
        req.extend_from_slice(&raw_get(id, &format!("/delay/300/{name}"), &[]));
    }
    c.send(&req);
    let frames = read_frames(&mut c, |f| f.iter().filter(|f| f.0 == 0 && f.1 & 1 == 1).count() == 2);
    let refused = frames.iter().find(|f| f.0 == 3).expect("a RST_STREAM");
    assert_eq!((refused.2, refused.3.as_slice()), (5, &[0, 0, 0, 7][..]), "stream 5 REFUSED_STREAM");
    let mut answered: Vec<u32> = frames.iter().filter(|f| f.0 == 1).map(|f| f.2).collect();
    answered.sort();
    assert_eq!(answered, [1, 3]);
    assert_eq!(origin.requests(), 2);
}

fn malformed_requests_are_refused_and_counted(backend: Backend) {
    let net = Net::new(backend);
    let origin = HttpOrigin::serve(net.listen(), "web");
    let p = HttpProxy::to(&net, &origin, "", 1);
    let mut c = p.client();
    c.send(PREFACE);
    read_frames(&mut c, |f| f.iter().any(|f| f.0 == 4 && f.1 & 1 == 0));
    // A content-length that is not a number, then CONNECT (allow_connect is off).
    let mut req = SETTINGS_ACK.to_vec();
    req.extend_from_slice(&raw_get(1, "/bad", &[0x0f, 0x0d, 0x01, b'x']));
    let connect =
        [0x00, 0x07, b':', b'm', b'e', b't', b'h', b'o', b'd', 0x07, b'C', b'O', b'N', b'N', b'E', b'C', b'T'];
    let mut block = connect.to_vec();
    block.extend_from_slice(&[0x41, 0x07]);
    block.extend_from_slice(b"t:443xx"[..7].as_ref());
    let mut f = vec![0, 0, block.len() as u8, 1, 4, 0, 0, 0, 3];
    f.extend_from_slice(&block);
    req.extend_from_slice(&f);
    req.extend_from_slice(&raw_get(5, "/good", &[]));
    c.send(&req);
    let frames = read_frames(&mut c, |f| f.iter().any(|f| f.0 == 0 && f.1 & 1 == 1 && f.2 == 5));
    let resets: Vec<(u32, Vec<u8>)> = frames.iter().filter(|f| f.0 == 3).map(|f| (f.2, f.3.clone())).collect();
    assert!(resets.contains(&(1, vec![0, 0, 0, 1])), "stream 1 PROTOCOL_ERROR: {resets:?}");
    assert!(resets.iter().any(|r| r.0 == 3), "CONNECT stream 3 reset: {resets:?}");
    assert!(frames.iter().any(|f| f.0 == 1 && f.2 == 5), "the connection still serves stream 5");
    assert_eq!(origin.requests(), 1, "only /good reached the origin");
    // CONNECT is refused by sluice and counted; the bad content-length is refused by
    // the h2 codec itself (RST_STREAM PROTOCOL_ERROR above), which reports no event to
    // count.
    assert_eq!(p.counter("http.ingress.http2.rx_messaging_error"), 1);
}

/// The HTTP filter chain runs for HTTP/2 streams as for HTTP/1 ones: RBAC (a decoder
/// filter) denies a POST with its 403 before the origin sees it, and CORS (an encoder
/// filter too) adds its response header to an allowed origin's request.
fn http_filters_run_on_http2_streams(backend: Backend) {
    const FILTERS: &str = r#"- name: envoy.filters.http.rbac
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC
    rules:
      action: ALLOW
      policies:
        readers:
          permissions: [{ header: { name: ":method", string_match: { exact: GET } } }]
          principals: [{ any: true }]
- name: envoy.filters.http.cors
  typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors }
"#;
    const VHOSTS: &str = r#"- name: app
  domains: ["*"]
  typed_per_filter_config:
    envoy.filters.http.cors:
      "@type": type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy
      allow_origin_string_match: [{ exact: "https://www.app.example" }]
  routes:
  - match: { prefix: "/" }
    route: { cluster: web }
"#;
    let net = Net::new(backend);
    let origin = HttpOrigin::serve(net.listen(), "web");
    let endpoints = [origin.addr];
    let clusters = [ClusterAt { name: "web", endpoints: &endpoints, extra: "" }];
    let p = HttpProxy::start(&net, VHOSTS, &clusters, "", FILTERS, 1);
    let mut c = h2(&net, &p);
    let r = c.request("GET", "/page", &[("origin", "https://www.app.example")], b"").expect("GET");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("access-control-allow-origin"), Some("https://www.app.example"));
    let r = c.request("POST", "/data", &[], b"x").expect("POST");
    assert_eq!(r.status, 403);
    assert_eq!(r.text(), "RBAC: access denied");
    assert_eq!(origin.requests(), 1, "the denied request never reached the origin");
    assert_eq!(p.counter("http.ingress.rbac.allowed"), 1);
    assert_eq!(p.counter("http.ingress.rbac.denied"), 1);
    assert_eq!(p.counter("http.ingress.downstream_rq_http2_total"), 2);
}

on_both_backends!(
    http_filters_run_on_http2_streams,
    stream_timeouts_and_client_resets_end_one_stream,
    reader_that_never_opens_its_window_is_reset,
    idle_connection_gets_goaway,
    stalled_handshake_is_closed_by_idle_timeout,
    max_requests_per_connection_ends_with_goaway,
    max_concurrent_streams_is_enforced,
    malformed_requests_are_refused_and_counted,
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
    // h2load's 256 concurrent streams open as many upstream connections at once: more
    // than the test origin's accept backlog (128), so a SYN may be dropped and retried
    // after 1 s. The connect timeout leaves room for that retry.
    let endpoints = [origin.addr];
    let clusters =
        [sluice_e2e::config::ClusterAt { name: "web", endpoints: &endpoints, extra: "    connect_timeout: 5s\n" }];
    let p = HttpProxy::start(&net, &sluice_e2e::config::forward_all("web"), &clusters, "", "", 2);
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
        .args(["120", "h2load", "-n", "10000", "-c", "8", "-m", "32", &url])
        .output()
        .expect("run h2load");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("10000 succeeded, 0 failed, 0 errored"), "{text}");
    assert!(text.contains("10000 2xx"), "{text}");
    assert_eq!(p.counter("http.ingress.downstream_cx_http2_total"), 10);
}
