//! Downstream stream-ID exhaustion on both datapaths (RFC 9113 §5.1.1). A client whose
//! stream IDs reach 2^31-1 is served on that last stream; it cannot open another one
//! on the connection: a HEADERS frame on any further stream ID (which can only be
//! lower) is a connection error, and the proxy ends the connection with GOAWAY
//! PROTOCOL_ERROR naming 2^31-1 as the last stream it processed, as Envoy's codec
//! (nghttp2: "request HEADERS: invalid stream_id") does, counted as Envoy counts a
//! codec protocol error (`downstream_cx_protocol_error`). Other clients on the worker
//! are served meanwhile, and the client is served again on a new connection.
//!
//! Upstream, sluice's HTTP/2 client never gets near the end of the ID space: a
//! connection takes at most `min(max_requests_per_connection, 2^29)` streams (Envoy's
//! `DEFAULT_MAX_STREAMS`; the 2^29 cap is unit-tested in `upstream/h2_client.rs`), then
//! drains while its streams finish and the pool opens a new one. The same budget at a
//! small configured value shows it end to end: concurrent streams spread over fresh
//! connections and none fails.

use std::io::Read;
use std::time::{Duration, Instant};

use sluice_e2e::backend::{Backend, Net};
use sluice_e2e::config::{forward_all, ClusterAt};
use sluice_e2e::h2_client::H2Client;
use sluice_e2e::h2_origin::H2Origin;
use sluice_e2e::http_client::Client;
use sluice_e2e::http_origin::HttpOrigin;
use sluice_e2e::http_proxy::HttpProxy;
use sluice_e2e::on_both_backends;

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";
const SETTINGS_ACK: &[u8] = &[0, 0, 0, 4, 1, 0, 0, 0, 0];
const LAST_STREAM_ID: u32 = 0x7fff_ffff;
const PROTOCOL_ERROR: u32 = 1;

/// A frame read off the wire: type, flags, stream, payload.
type Frame = (u8, u8, u32, Vec<u8>);

/// A HEADERS frame (END_STREAM | END_HEADERS) for `GET path` on `stream` (HPACK:
/// `:method GET`, `:scheme http`, `:path` literal, `:authority t`).
fn raw_get(stream: u32, path: &str) -> Vec<u8> {
    let mut block = vec![0x82, 0x86, 0x04, path.len() as u8];
    block.extend_from_slice(path.as_bytes());
    block.extend_from_slice(&[0x41, 0x01, b't']);
    let mut f = vec![0, 0, block.len() as u8, 1, 5];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(&block);
    f
}

/// Frames read off `c`: (type, flags, stream, payload), until `done` holds or the
/// proxy closes the connection (then `true` is returned with them) or 10 s pass.
fn read_frames(c: &mut Client, mut done: impl FnMut(&[Frame]) -> bool) -> (Vec<Frame>, bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    c.stream.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let (mut buf, mut frames, mut chunk) = (Vec::new(), Vec::new(), [0u8; 16384]);
    while !done(&frames) {
        assert!(Instant::now() < deadline, "timed out; frames so far: {frames:?}");
        match c.stream.read(&mut chunk) {
            Ok(0) => return (frames, true),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => continue,
            Err(_) => return (frames, true),
        }
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
    (frames, false)
}

/// Whether `frames` hold a DATA frame with END_STREAM on `stream`.
fn ended(frames: &[Frame], stream: u32) -> bool {
    frames.iter().any(|f| f.0 == 0 && f.1 & 1 == 1 && f.2 == stream)
}

fn the_last_stream_id_is_served_and_the_next_stream_is_goaway(backend: Backend) {
    let net = Net::new(backend);
    let origin = HttpOrigin::serve(net.listen(), "web");
    let p = HttpProxy::to(&net, &origin, "", 1);
    let conn = net.connect(p.proxy().target(p.listen_addr())).expect("connect to the proxy");
    let mut good = H2Client::handshake(conn).expect("HTTP/2 handshake");
    assert_eq!(good.get("/before").status, 200);

    let mut c = p.client();
    c.send(PREFACE);
    c.send(SETTINGS_ACK);
    // Stream 1, then a jump to the last stream ID a client may use (IDs need only grow).
    c.send(&raw_get(1, "/first"));
    c.send(&raw_get(LAST_STREAM_ID, "/last"));
    let (frames, closed) = read_frames(&mut c, |f| ended(f, 1) && ended(f, LAST_STREAM_ID));
    assert!(!closed, "closed before both answers: {frames:?}");
    for stream in [1, LAST_STREAM_ID] {
        let headers = frames.iter().find(|f| f.0 == 1 && f.2 == stream).expect("response headers");
        // HPACK static index 8: `:status 200`.
        assert_eq!(headers.3.first(), Some(&0x88), "stream {stream}: {headers:?}");
    }
    let paths: Vec<String> = origin.seen().iter().map(|s| s.path.clone()).collect();
    assert!(["/first", "/last"].iter().all(|p| paths.iter().any(|s| s == p)), "{paths:?}");
    assert_eq!(p.counter("http.ingress.downstream_cx_protocol_error"), 0);

    // The IDs are used up: any further stream is a connection error.
    c.send(&raw_get(3, "/no-id-left"));
    let (frames, closed) = read_frames(&mut c, |_| false);
    assert!(closed, "the connection stays open: {frames:?}");
    let goaway = frames.iter().find(|f| f.0 == 7).expect("a GOAWAY");
    let last = u32::from_be_bytes([goaway.3[0], goaway.3[1], goaway.3[2], goaway.3[3]]) & 0x7fff_ffff;
    let code = u32::from_be_bytes([goaway.3[4], goaway.3[5], goaway.3[6], goaway.3[7]]);
    assert_eq!((last, code), (LAST_STREAM_ID, PROTOCOL_ERROR), "GOAWAY {goaway:?}");
    assert!(!origin.seen().iter().any(|s| s.path == "/no-id-left"), "the refused stream reached the origin");
    assert_eq!(p.counter("http.ingress.downstream_cx_protocol_error"), 1);
    assert_eq!(p.counter("http.ingress.http2.rx_messaging_error"), 0, "no header or messaging error");

    // Others were not disturbed, and the client is served on a new connection.
    assert_eq!(good.get("/after").status, 200);
    let conn = net.connect(p.proxy().target(p.listen_addr())).expect("connect to the proxy");
    let mut again = H2Client::handshake(conn).expect("HTTP/2 handshake");
    assert_eq!(again.get("/new-connection").status, 200);
}

/// An HTTP/2 cluster whose connections take 3 streams each: 10 concurrent streams from
/// one client all get 200 over 4 upstream connections, each drained after its third
/// stream while that stream was still in flight.
fn an_upstream_connection_out_of_streams_is_drained_for_a_new_one(backend: Backend) {
    let net = Net::new(backend);
    let origin = H2Origin::serve(net.listen(), "web", None);
    let extra = r#"    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        common_http_protocol_options: { max_requests_per_connection: 3 }
        explicit_http_config:
          http2_protocol_options: {}
"#;
    let endpoints = [origin.addr];
    let clusters = [ClusterAt { name: "web", endpoints: &endpoints, extra }];
    let p = HttpProxy::start(&net, &forward_all("web"), &clusters, "", "", 1);
    let conn = net.connect(p.proxy().target(p.listen_addr())).expect("connect to the proxy");
    let mut c = H2Client::handshake(conn).expect("HTTP/2 handshake");
    let pending: Vec<_> = (0..10).map(|i| c.start("GET", &format!("/delay/200/s{i}"), &[], b"")).collect();
    for (i, pend) in pending.into_iter().enumerate() {
        let r = c.finish(pend).unwrap_or_else(|e| panic!("stream {i}: {e}"));
        assert_eq!(r.status, 200, "stream {i}: {}", r.text());
    }
    assert_eq!(origin.connections(), 4, "3 streams per upstream connection");
    let mut per_connection = [0usize; 4];
    for seen in origin.seen() {
        per_connection[seen.connection] += 1;
    }
    per_connection.sort();
    assert_eq!(per_connection, [1, 3, 3, 3]);
    assert_eq!(p.counter("cluster.web.upstream_rq_2xx"), 10);
    assert_eq!(p.counter("cluster.web.upstream_cx_http2_total"), 4);
}

on_both_backends!(
    the_last_stream_id_is_served_and_the_next_stream_is_goaway,
    an_upstream_connection_out_of_streams_is_drained_for_a_new_one,
);
