//! The HTTP connection manager's HTTP/1.1 behaviour end to end, on both datapaths: each
//! case runs against sluice's workers over kernel sockets on loopback and over smol
//! stacks on an in-memory network (see `sluice_e2e::backend`), with the same test body.
//!
//! Routing by host and path to two origins, upstream connection reuse, large and chunked
//! bodies, pipelining, the HTTP/2 preface, Envoy's rejections (and that none of them
//! reaches the upstream), HTTP/1.0 when accepted, an upstream reset after headers (the
//! client is reset too), Connection: close both ways, `Expect: 100-continue`, a request body
//! whose chunked framing breaks mid-stream, and survival after garbage.

use std::io::{Read, Write};
use std::time::Duration;

use sluice_datapath::mem::Faults;
use sluice_e2e::backend::{Backend, Net, SmolOptions};
use sluice_e2e::config::{forward_all, ClusterAt};
use sluice_e2e::h2_client::H2Client;
use sluice_e2e::http_client::Protocol;
use sluice_e2e::http_origin::{pattern, HttpOrigin};
use sluice_e2e::http_proxy::HttpProxy;
use sluice_e2e::on_both_backends;
use sluice_stack::smol::SmolDuration;

fn routes_by_host_and_path_to_two_origins(backend: Backend) {
    let net = Net::new(backend);
    let a = HttpOrigin::serve(net.listen(), "a");
    let b = HttpOrigin::serve(net.listen(), "b");
    let vhosts = r#"- name: api
  domains: ["api.example.com"]
  routes:
  - match: { prefix: "/b/" }
    route: { cluster: b }
  - match: { prefix: "/" }
    route: { cluster: a }
- name: rest
  domains: ["*"]
  routes:
  - match: { prefix: "/" }
    route: { cluster: b }
"#;
    let (ea, eb) = ([a.addr], [b.addr]);
    let clusters =
        [ClusterAt { name: "a", endpoints: &ea, extra: "" }, ClusterAt { name: "b", endpoints: &eb, extra: "" }];
    let p = HttpProxy::start(&net, vhosts, &clusters, "", "", 2);
    let mut c = p.client();
    let mut via = |host: &str, path: &str| {
        let r = c.request("GET", path, &[("host", host)], b"");
        assert_eq!(r.status, 200, "{host}{path}");
        r.header("x-origin").map(str::to_string)
    };
    assert_eq!(via("api.example.com", "/x"), Some("a".into()));
    assert_eq!(via("api.example.com", "/b/x"), Some("b".into()), "path prefix picks the route");
    assert_eq!(via("other.example.com", "/x"), Some("b".into()), "the host picks the virtual host");
    assert_eq!(via("API.example.com", "/"), Some("a".into()), "domains match case-insensitively");
    assert_eq!((a.requests(), b.requests()), (2, 2));
    let seen = a.seen();
    assert_eq!(seen[0].path, "/x");
    assert_eq!(seen[0].header("host"), Some("api.example.com"));
}

fn keep_alive_requests_share_one_upstream_connection_per_worker(backend: Backend) {
    let net = Net::new(backend);
    let origin = HttpOrigin::serve(net.listen(), "web");
    let p = HttpProxy::to(&net, &origin, "", 2);
    let mut c = p.client();
    for i in 0..200 {
        let r = c.get(&format!("/seq/{i}"));
        assert_eq!(r.status, 200, "request {i}");
    }
    assert_eq!(origin.requests(), 200);
    // One downstream connection lives on one worker: one upstream connection.
    assert_eq!(origin.connections(), 1, "upstream connections: {}", origin.connections());
}

fn one_mib_request_and_three_mb_response_intact(backend: Backend) {
    bodies_arrive_intact(&Net::new(backend), "");
}

/// A 1 MiB request body, a 3 MB response and a 2.5 MB chunked response through the
/// proxy on `net`, each checked byte for byte; `cluster_extra`: more fields of the
/// origin's cluster.
fn bodies_arrive_intact(net: &Net, cluster_extra: &str) {
    let origin = HttpOrigin::serve(net.listen(), "web");
    let endpoints = [origin.addr];
    let clusters = [ClusterAt { name: "web", endpoints: &endpoints, extra: cluster_extra }];
    let p = HttpProxy::start(net, &forward_all("web"), &clusters, "", "", 1);
    let mut c = p.client();
    let body = pattern(1 << 20);
    let r = c.request("POST", "/upload", &[], &body);
    assert_eq!(r.status, 200);
    assert!(origin.seen().last().unwrap().body == body, "request body intact");
    let r = c.get("/bytes/3000000");
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), 3_000_000);
    assert!(r.body == pattern(3_000_000), "response body intact");
    let r = c.get("/chunked/2500000");
    // Over HTTP/2 the framing header is dropped (RFC 9113 §8.2.2): DATA frames carry it.
    let framing = (c.protocol() == Protocol::Http1).then_some("chunked");
    assert_eq!(r.header("transfer-encoding"), framing);
    assert!(r.body == pattern(2_500_000), "chunked response intact");
    // Keep-alive requests on the same connections after the large ones.
    for i in 0..50 {
        assert_eq!(c.get(&format!("/seq/{i}")).status, 200, "request {i}");
    }
    assert_eq!(origin.connections(), 1, "one upstream connection for one downstream connection");
}

/// The same bodies over a wire that loses 1 % of the frames both ways, reorders 1 %
/// and duplicates 0.1 % (smol backend only: the kernel's loopback is perfect). A loss
/// that fast retransmit cannot repair costs a retransmission timeout, at least 200 ms
/// (third_party/smoltcp/SLUICE.md): about 6 s in all, 35 s with smoltcp's own 1 s.
#[test]
fn smol_bodies_intact_under_loss_reordering_and_duplication() {
    let faults = Faults {
        loss: 0.01,
        duplicate: 0.001,
        reorder: 0.01,
        reorder_delay: SmolDuration::from_millis(1),
        delay: SmolDuration::ZERO,
    };
    let net = Net::smol(SmolOptions { seed: 0x4770, proxy_faults: faults, peer_faults: faults });
    // A lost SYN or SYN-ACK is sent again after the initial RTO, 1 s (RFC 6298, as
    // Linux): Envoy's default connect timeout, not the tests' 1 s.
    bodies_arrive_intact(&net, "    connect_timeout: 5s\n");
    let wire = net.peer_port_stats().unwrap();
    assert!(wire.lost > 0 && wire.duplicated > 0 && wire.reordered > 0, "the wire was not impaired: {wire:?}");
}

fn chunked_request_body_is_streamed(backend: Backend) {
    let net = Net::new(backend);
    let origin = HttpOrigin::serve(net.listen(), "web");
    let p = HttpProxy::to(&net, &origin, "", 1);
    let mut c = p.client();
    c.send(b"POST /chunked-up HTTP/1.1\r\nhost: t\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n");
    std::thread::sleep(Duration::from_millis(50));
    c.send(b"6;ext=1\r\n world\r\n0\r\n\r\n");
    let r = c.read_response(false).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(origin.seen().last().unwrap().body, b"hello world");
}

fn pipelined_requests_are_answered_in_order(backend: Backend) {
    let net = Net::new(backend);
    let origin = HttpOrigin::serve(net.listen(), "web");
    let p = HttpProxy::to(&net, &origin, "", 1);
    let mut c = p.client();
    let mut batch = Vec::new();
    for i in 0..10 {
        // Slow first request: later ones must still come back after it.
        let path = if i == 0 { "/delay/200/first".to_string() } else { format!("/p/{i}") };
        batch.extend_from_slice(format!("GET {path} HTTP/1.1\r\nhost: t\r\n\r\n").as_bytes());
    }
    c.send(&batch);
    for i in 0..10 {
        let r = c.read_response(false).unwrap();
        assert_eq!(r.status, 200);
        let first_line = r.text().lines().next().unwrap().to_string();
        let want = if i == 0 { "GET /delay/200/first".to_string() } else { format!("GET /p/{i}") };
        assert!(first_line.starts_with(&want), "response {i} was for `{first_line}`");
    }
}

fn http2_preface_is_served_as_http2(backend: Backend) {
    let net = Net::new(backend);
    let origin = HttpOrigin::serve(net.listen(), "web");
    let p = HttpProxy::to(&net, &origin, "", 1);
    let mut c = p.client();
    c.stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    // Preface, empty SETTINGS, then HEADERS (END_STREAM | END_HEADERS) on stream 1:
    // HPACK `:method GET`, `:scheme http`, `:path /`, `:authority t`.
    let mut req = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00".to_vec();
    req.extend_from_slice(&[0, 0, 6, 1, 5, 0, 0, 0, 1, 0x82, 0x86, 0x84, 0x41, 0x01, b't']);
    c.send(&req);
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    // Read frames until the response HEADERS on stream 1.
    let status_block = loop {
        let n = c.stream.read(&mut buf).expect("a response");
        assert!(n > 0, "closed before a response: {got:?}");
        got.extend_from_slice(&buf[..n]);
        assert!(!got.starts_with(b"HTTP/"), "never an HTTP/1 response");
        let mut i = 0;
        let mut found = None;
        while i + 9 <= got.len() {
            let len = ((got[i] as usize) << 16) | ((got[i + 1] as usize) << 8) | got[i + 2] as usize;
            let stream = u32::from_be_bytes([got[i + 5], got[i + 6], got[i + 7], got[i + 8]]);
            if got[i + 3] == 7 {
                panic!("GOAWAY instead of a response: {got:?}");
            }
            if got[i + 3] == 1 && stream == 1 && i + 9 < got.len() {
                found = Some(got[i + 9]);
            }
            i += 9 + len;
        }
        if let Some(b) = found {
            break b;
        }
    };
    assert_eq!(got[3], 0x4, "first frame is SETTINGS");
    assert_eq!(status_block, 0x88, "`:status 200` (HPACK static index 8)");
    assert_eq!(origin.requests(), 1);
    assert_eq!(p.counter("http.ingress.downstream_rq_http2_total"), 1);
}

fn envoys_rejections_reach_no_upstream(backend: Backend) {
    let net = Net::new(backend);
    let origin = HttpOrigin::serve(net.listen(), "web");
    let p = HttpProxy::to(&net, &origin, "", 1);
    let many_headers = {
        let mut r = b"GET / HTTP/1.1\r\nhost: t\r\n".to_vec();
        for i in 0..101 {
            r.extend_from_slice(format!("x-h{i}: v\r\n").as_bytes());
        }
        r.extend_from_slice(b"\r\n");
        r
    };
    let cases: Vec<(Vec<u8>, u16)> = vec![
        (
            b"POST / HTTP/1.1\r\nhost: t\r\ncontent-length: 3\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n".to_vec(),
            400,
        ),
        (b"POST / HTTP/1.1\r\nhost: t\r\ntransfer-encoding: gzip\r\n\r\n".to_vec(), 501),
        (b"POST / HTTP/1.1\r\nhost: t\r\ncontent-length: 3\r\ncontent-length: 4\r\n\r\nabcd".to_vec(), 400),
        (b"POST / HTTP/1.1\r\nhost: t\r\ncontent-length: -3\r\n\r\n".to_vec(), 400),
        (b"GET / HTTP/1.0\r\nhost: t\r\n\r\n".to_vec(), 426),
        (b"GET /\r\n\r\n".to_vec(), 426),
        (b"GET / HTTP/1.1\r\nhost: t\r\nbad header: x\r\n\r\n".to_vec(), 400),
        (b"GET / HTTP/1.1\r\nhost: t\r\nx-fold: a\r\n b\r\n\r\n".to_vec(), 400),
        (b"GET / HTTP/1.1\r\nhost: t\nx: y\r\n\r\n".to_vec(), 400),
        (format!("GET / HTTP/1.1\r\nhost: t\r\nx-big: {}\r\n\r\n", "a".repeat(70 * 1024)).into_bytes(), 431),
        (many_headers, 431),
    ];
    for (raw, status) in cases {
        let what = String::from_utf8_lossy(&raw[..40.min(raw.len())]).into_owned();
        let mut c = p.client();
        c.send(&raw);
        let r = c.read_response(false).unwrap_or_else(|e| panic!("no response to {what:?}: {e}"));
        assert_eq!(r.status, status, "for {what:?}");
        assert!(c.closed_within(Duration::from_secs(3)), "the connection closes after an error response");
    }
    assert_eq!(origin.requests(), 0, "nothing of a rejected request reached the upstream");
    assert_eq!(p.client().get("/ok").status, 200, "still serving");
}

fn http10_is_served_when_accepted(backend: Backend) {
    let net = Net::new(backend);
    let origin = HttpOrigin::serve(net.listen(), "web");
    let p = HttpProxy::to(
        &net,
        &origin,
        "http_protocol_options: { accept_http_10: true, default_host_for_http_10: dflt }",
        1,
    );
    let mut c = p.client();
    c.send(b"GET /ten HTTP/1.0\r\n\r\n");
    let r = c.read_response(false).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.version, "HTTP/1.0");
    assert_eq!(origin.seen().last().unwrap().header("host"), Some("dflt"));
    assert!(c.closed_within(Duration::from_secs(3)), "HTTP/1.0 without keep-alive closes");
}

fn upstream_reset_after_headers_resets_the_downstream(backend: Backend) {
    let net = Net::new(backend);
    let origin = HttpOrigin::serve(net.listen(), "web");
    let p = HttpProxy::to(&net, &origin, "", 1);
    if Protocol::current() == Protocol::Http2 {
        // The stream is reset (RST_STREAM), not the connection.
        let conn = net.connect(p.proxy().target(p.listen_addr())).expect("connect to the proxy");
        let mut h2 = H2Client::handshake(conn).expect("HTTP/2 handshake");
        let r = h2.request("GET", "/reset-after-headers", &[], b"");
        assert!(r.is_err(), "the client must see its stream reset, got {r:?}");
        assert_eq!(h2.get("/same-connection").status, 200, "the connection still serves");
    } else {
        let mut c = p.client();
        c.send(b"GET /reset-after-headers HTTP/1.1\r\nhost: t\r\n\r\n");
        let r = c.read_response(false);
        assert!(r.is_err(), "the client must see a truncated response, got {r:?}");
        let kind = r.unwrap_err().kind();
        assert_eq!(kind, std::io::ErrorKind::ConnectionReset, "the downstream is reset");
    }
    // Reset because the upstream's reset was seen, not by the route timeout (15 s) that
    // would end the stream the same way had the proxy missed it.
    assert_eq!(p.counter("cluster.web.upstream_rq_rx_reset"), 1);
    assert_eq!(p.counter("cluster.web.upstream_rq_timeout"), 0);
    let r = p.client().get("/reset");
    assert_eq!(r.status, 503);
    assert_eq!(
        r.text(),
        "upstream connect error or disconnect/reset before headers. reset reason: connection termination"
    );
    assert_eq!(p.client().get("/fine").status, 200);
}

fn connection_close_both_ways(backend: Backend) {
    let net = Net::new(backend);
    let origin = HttpOrigin::serve(net.listen(), "web");
    let p = HttpProxy::to(&net, &origin, "", 1);
    // A client's `connection: close` is HTTP/1 only (RFC 9113 §8.2.2).
    if Protocol::current() == Protocol::Http1 {
        let mut c = p.client();
        let r = c.request("GET", "/x", &[("connection", "close")], b"");
        assert_eq!(r.status, 200);
        assert_eq!(r.header("connection"), Some("close"));
        assert!(c.closed_within(Duration::from_secs(3)));
    }
    // The origin closing its connection does not close the client's.
    let mut c = p.client();
    assert_eq!(c.get("/close").status, 200);
    assert_eq!(c.get("/after").status, 200);
    let seen = origin.seen();
    let (closed, after) = (&seen[seen.len() - 2], &seen[seen.len() - 1]);
    assert_ne!(closed.connection, after.connection, "a connection the origin closed is not reused");
}

fn expect_100_continue_is_answered_by_the_proxy(backend: Backend) {
    let net = Net::new(backend);
    let origin = HttpOrigin::serve(net.listen(), "web");
    let p = HttpProxy::to(&net, &origin, "", 1);
    let mut c = p.client();
    c.send(b"POST /up HTTP/1.1\r\nhost: t\r\ncontent-length: 5\r\nexpect: 100-continue\r\n\r\n");
    let interim = c.read_response(false).unwrap();
    assert_eq!(interim.status, 100);
    c.send(b"hello");
    let r = c.read_response(false).unwrap();
    assert_eq!(r.status, 200);
    let seen = origin.seen();
    assert_eq!(seen.last().unwrap().body, b"hello");
    assert_eq!(seen.last().unwrap().header("expect"), None);
}

fn garbage_never_takes_the_proxy_down(backend: Backend) {
    let net = Net::new(backend);
    let origin = HttpOrigin::serve(net.listen(), "web");
    let p = HttpProxy::to(&net, &origin, "", 1);
    let inputs: Vec<Vec<u8>> = vec![
        vec![0u8; 5000],
        (0..=255u8).cycle().take(100_000).collect(),
        b"\r\n\r\n\r\n".to_vec(),
        b"GET / HTTP/1.1\r\nhost: t\r\ncontent-length: 99999999999999999999999\r\n\r\n".to_vec(),
        b"POST / HTTP/1.1\r\nhost: t\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n".to_vec(),
        b"GET / HTTP/9.9\r\nhost: t\r\n\r\n".to_vec(),
        b"G\x00T / HTTP/1.1\r\n\r\n".to_vec(),
    ];
    for raw in inputs {
        let mut c = p.client();
        // The proxy may reject and close before it has read everything: a failed write
        // is fine here, a proxy that stops serving is not.
        let _ = c.stream.write_all(&raw);
        let _ = c.closed_within(Duration::from_millis(500));
    }
    let mut c = p.client();
    assert_eq!(c.get("/still-here").status, 200);
}

fn rejected_body_framing_mid_stream_closes_cleanly(backend: Backend) {
    let net = Net::new(backend);
    let origin = HttpOrigin::serve(net.listen(), "web");
    let p = HttpProxy::to(&net, &origin, "", 1);
    let mut c = p.client();
    c.send(b"POST / HTTP/1.1\r\nhost: t\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhelloXX\r\n");
    let r = c.read_response(false);
    if let Ok(r) = r {
        assert!(r.status >= 400, "{r:?}");
    }
    assert!(c.closed_within(Duration::from_secs(3)));
    assert_eq!(p.client().get("/ok").status, 200);
}

on_both_backends!(
    routes_by_host_and_path_to_two_origins,
    keep_alive_requests_share_one_upstream_connection_per_worker,
    one_mib_request_and_three_mb_response_intact,
    chunked_request_body_is_streamed,
    pipelined_requests_are_answered_in_order,
    http2_preface_is_served_as_http2,
    envoys_rejections_reach_no_upstream,
    http10_is_served_when_accepted,
    upstream_reset_after_headers_resets_the_downstream,
    connection_close_both_ways,
    expect_100_continue_is_answered_by_the_proxy,
    garbage_never_takes_the_proxy_down,
    rejected_body_framing_mid_stream_closes_cleanly,
);

// Over HTTP/2 as well (prior knowledge; the origins stay HTTP/1.1). Not over HTTP/2,
// being HTTP/1.1 wire behaviour sent as raw bytes: chunked_request_body_is_streamed,
// pipelined_requests_are_answered_in_order, http2_preface_is_served_as_http2 (it is the
// HTTP/2 case), envoys_rejections_reach_no_upstream, http10_is_served_when_accepted,
// expect_100_continue_is_answered_by_the_proxy, garbage_never_takes_the_proxy_down,
// rejected_body_framing_mid_stream_closes_cleanly (tests/http2.rs covers HTTP/2's own
// malformed requests and tests/http2_attacks.rs its garbage).
sluice_e2e::over_http2!(
    routes_by_host_and_path_to_two_origins,
    keep_alive_requests_share_one_upstream_connection_per_worker,
    one_mib_request_and_three_mb_response_intact,
    upstream_reset_after_headers_resets_the_downstream,
    connection_close_both_ways,
);
