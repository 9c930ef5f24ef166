//! gRPC-Web and the HTTP/1.1 bridge through a stream's filter manager: what reaches
//! the upstream and what the client gets, event by event.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use sluice_config::filters::grpc::GrpcHttp1Bridge;

use super::*;
use crate::http::filter::StreamContext;
use crate::http::filter_manager::{DataOutcome, Decoded, Encoded, FilterManager};
use crate::http::filters::grpc_http1_bridge::{GrpcHttp1BridgeConfig, GrpcHttp1BridgeFilter};
use crate::http::filters::ActiveFilter;
use crate::http::Version;

fn cx() -> StreamContext<'static> {
    let a: SocketAddr = "127.0.0.1:1".parse().unwrap();
    StreamContext {
        now: Instant::now(),
        remote: a,
        direct_remote: a,
        local: a,
        sni: None,
        peer_principals: &[],
        tls: false,
        cluster: "gw_unit",
        routed: true,
        health_check_failed: false,
        runtime: Box::leak(Box::default()),
    }
}

fn request(content_type: &str, accept: Option<&str>) -> RequestHead {
    let mut h = RequestHead { method: "POST".into(), path: "/pkg.Svc/Call".into(), ..RequestHead::default() };
    h.version = Some(Version::Http11);
    h.headers.append(b"content-type", content_type.as_bytes());
    h.headers.append(b"content-length", b"12");
    if let Some(a) = accept {
        h.headers.append(b"accept", a.as_bytes());
    }
    h
}

fn web() -> FilterManager<ActiveFilter> {
    let mut fm = FilterManager::new(1 << 20);
    fm.start([ActiveFilter::GrpcWeb(GrpcWebFilter::new(Arc::new(GrpcWebConfig)))], 1 << 20);
    fm
}

fn frame(flag: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![flag];
    f.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    f.extend_from_slice(payload);
    f
}

fn grpc_response() -> ResponseHead {
    let mut r = ResponseHead { status: 200, ..ResponseHead::default() };
    r.headers.append(b"content-type", b"application/grpc");
    r
}

fn trailers(status: &str, message: Option<&str>) -> HeaderMap {
    let mut t = HeaderMap::default();
    t.append(b"grpc-status", status.as_bytes());
    if let Some(m) = message {
        t.append(b"grpc-message", m.as_bytes());
    }
    t
}

#[test]
fn request_becomes_grpc_upstream() {
    let mut fm = web();
    let mut head = request("application/grpc-web+proto", None);
    assert_eq!(fm.decode_headers(&mut head, false, &cx(), 1), Decoded::Continue);
    assert_eq!(head.headers.get_str(b"content-type"), Some("application/grpc"));
    assert_eq!(head.headers.get_str(b"te"), Some("trailers"));
    assert_eq!(head.headers.get_str(b"grpc-accept-encoding"), Some("identity,deflate,gzip"));
    assert!(!head.headers.contains(b"content-length"));
    // A binary body passes as it is.
    let body = frame(0, b"hi");
    assert_eq!(fm.decode_data(body.clone(), true, 1), DataOutcome::Continue(body));
    // The client's own grpc-accept-encoding stays; other content types are not touched.
    let mut fm = web();
    let mut head = request("application/grpc-web", None);
    head.headers.append(b"grpc-accept-encoding", b"gzip");
    fm.decode_headers(&mut head, false, &cx(), 1);
    assert_eq!(head.headers.get_str(b"grpc-accept-encoding"), Some("gzip"));
    let mut fm = web();
    let mut head = request("application/grpc-web+json", None);
    fm.decode_headers(&mut head, false, &cx(), 1);
    assert_eq!(head.headers.get_str(b"content-type"), Some("application/grpc-web+json"));
    assert!(head.headers.contains(b"content-length"));
}

#[test]
fn text_request_is_decoded_across_chunks() {
    let mut fm = web();
    let mut head = request("application/grpc-web-text", None);
    fm.decode_headers(&mut head, false, &cx(), 1);
    let encoded = B64.encode(frame(0, b"hello world!"));
    let (a, b) = encoded.as_bytes().split_at(3);
    // Fewer than four characters wait for more.
    assert_eq!(fm.decode_data(a.to_vec(), false, 1), DataOutcome::Held);
    let (b, c) = b.split_at(6);
    let DataOutcome::Continue(first) = fm.decode_data(b.to_vec(), false, 1) else { panic!() };
    let DataOutcome::Continue(rest) = fm.decode_data(c.to_vec(), true, 1) else { panic!() };
    assert_eq!([first, rest].concat(), frame(0, b"hello world!"));
}

#[test]
fn bad_base64_is_a_400() {
    for (body, details) in
        [(&b"AAA"[..], "grpc_base_64_decode_failed_bad_size"), (b"A*AA", "grpc_base_64_decode_failed")]
    {
        let mut fm = web();
        let mut head = request("application/grpc-web-text+proto", None);
        fm.decode_headers(&mut head, false, &cx(), 1);
        let DataOutcome::LocalReply(r) = fm.decode_data(body.to_vec(), true, 1) else { panic!("{body:?}") };
        assert_eq!((r.status, &r.body[..], r.details), (400, BAD_BASE64, details));
    }
}

#[test]
fn binary_response_carries_the_trailers_in_the_body() {
    let mut fm = web();
    let mut head = request("application/grpc-web+proto", None);
    // The counters are process-wide: a cluster name no other test charges.
    let own = StreamContext { cluster: "gw_unit_binary", ..cx() };
    fm.decode_headers(&mut head, false, &own, 1);
    let mut resp = grpc_response();
    resp.headers.append(b"content-length", b"7");
    let out = fm.encode_head(&mut resp, false, 1);
    assert!(out.headers);
    assert_eq!(resp.headers.get_str(b"content-type"), Some("application/grpc-web+proto"));
    assert!(!resp.headers.contains(b"content-length"));
    let msg = frame(0, b"hi");
    assert_eq!(fm.encode_body(&mut resp, msg.clone(), false, 1).data, msg);
    let out = fm.encode_end(&mut resp, trailers("0", None), 1);
    assert_eq!(out.data, frame(0x80, b"grpc-status:0\r\n"));
    assert!(out.end && out.trailers.as_ref().is_some_and(HeaderMap::is_empty));
    let stats = crate::http::grpc_stats::counters();
    let get = |n: &str| stats.iter().find(|(k, _)| k == n).map(|(_, v)| *v);
    assert_eq!(get("cluster.gw_unit_binary.grpc-web.pkg.Svc.Call.success"), Some(1));
    assert_eq!(get("cluster.gw_unit_binary.grpc-web.pkg.Svc.Call.0"), Some(1));
    assert_eq!(get("cluster.gw_unit_binary.grpc-web.pkg.Svc.Call.total"), Some(1));
}

#[test]
fn text_response_encodes_each_frame() {
    let mut fm = web();
    let mut head = request("application/grpc-web-text", Some("application/grpc-web-text"));
    fm.decode_headers(&mut head, false, &cx(), 1);
    let mut resp = grpc_response();
    fm.encode_head(&mut resp, false, 1);
    assert_eq!(resp.headers.get_str(b"content-type"), Some("application/grpc-web-text+proto"));
    let (one, two) = (frame(0, b"first"), frame(0, b"second!"));
    let all = [one.clone(), two.clone()].concat();
    // A frame split over chunks is encoded once whole.
    let out = fm.encode_body(&mut resp, all[..3].to_vec(), false, 1);
    assert!(out.data.is_empty());
    let out = fm.encode_body(&mut resp, all[3..one.len() + 2].to_vec(), false, 1);
    assert_eq!(out.data, B64.encode(&one).into_bytes());
    let out = fm.encode_body(&mut resp, all[one.len() + 2..].to_vec(), false, 1);
    assert_eq!(out.data, B64.encode(&two).into_bytes());
    let out = fm.encode_end(&mut resp, trailers("5", Some("gone")), 1);
    assert_eq!(out.data, B64.encode(frame(0x80, b"grpc-status:5\r\ngrpc-message:gone\r\n")).into_bytes());
}

#[test]
fn non_grpc_response_becomes_a_grpc_status() {
    let mut fm = web();
    let mut head = request("application/grpc-web+proto", None);
    fm.decode_headers(&mut head, false, &cx(), 1);
    let mut resp = ResponseHead { status: 503, ..ResponseHead::default() };
    resp.headers.append(b"content-type", b"text/plain");
    let out = fm.encode_head(&mut resp, false, 1);
    assert!(!out.headers, "the head waits for the body");
    assert_eq!(fm.encode_body(&mut resp, b"no healthy ".to_vec(), false, 1), Encoded::default());
    let out = fm.encode_body(&mut resp, b"upstream\n".to_vec(), true, 1);
    assert!(out.headers && out.headers_end && out.end && out.data.is_empty());
    assert_eq!(resp.headers.get_str(b"grpc-status"), Some("14"));
    assert_eq!(resp.headers.get_str(b"grpc-message"), Some("no healthy upstream%0A"));
    assert_eq!(resp.headers.get_str(b"content-length"), Some("0"));
    assert_eq!(resp.headers.get_str(b"content-type"), Some("application/grpc-web+proto"));
}

fn bridge(options: GrpcHttp1Bridge) -> FilterManager<ActiveFilter> {
    let mut fm = FilterManager::new(1 << 20);
    let c = Arc::new(GrpcHttp1BridgeConfig { options, buffer_limit: 64 });
    fm.start([ActiveFilter::GrpcHttp1Bridge(GrpcHttp1BridgeFilter::new(c))], 1 << 20);
    fm
}

#[test]
fn bridge_moves_the_status_into_the_head() {
    for (status, code, message) in [("0", 200, None), ("7", 503, Some("nope")), ("x", 503, None)] {
        let mut fm = bridge(GrpcHttp1Bridge { ignore_query_parameters: true, ..GrpcHttp1Bridge::default() });
        let mut head = request("application/grpc", None);
        head.path.push_str("?a=b");
        fm.decode_headers(&mut head, false, &cx(), 1);
        assert_eq!(head.path, "/pkg.Svc/Call");
        let mut resp = grpc_response();
        assert!(!fm.encode_head(&mut resp, false, 1).headers, "held for the trailers");
        let body = frame(0, b"reply");
        assert!(fm.encode_body(&mut resp, body.clone(), false, 1).data.is_empty());
        let out = fm.encode_end(&mut resp, trailers(status, message), 1);
        assert!(out.headers && out.end);
        assert_eq!(out.data, body);
        assert_eq!(resp.status, code);
        assert_eq!(resp.headers.get_str(b"grpc-status"), Some(status));
        assert_eq!(resp.headers.get_str(b"grpc-message"), message);
        assert_eq!(resp.headers.get_str(b"content-length"), Some("10"));
    }
    // HTTP/2 clients read trailers: not bridged.
    let mut fm = bridge(GrpcHttp1Bridge::default());
    let mut head = request("application/grpc", None);
    head.version = Some(Version::Http2);
    fm.decode_headers(&mut head, false, &cx(), 1);
    assert!(fm.encode_head(&mut grpc_response(), false, 1).headers);
}

#[test]
fn bridge_frames_protobuf_requests() {
    let mut fm = bridge(GrpcHttp1Bridge { upgrade_protobuf_to_grpc: true, ..GrpcHttp1Bridge::default() });
    let mut head = request("application/x-protobuf", None);
    fm.decode_headers(&mut head, false, &cx(), 1);
    assert_eq!(head.headers.get_str(b"content-type"), Some("application/grpc"));
    assert!(!head.headers.contains(b"content-length"));
    assert_eq!(fm.decode_data(b"hel".to_vec(), false, 1), DataOutcome::Held);
    assert_eq!(fm.decode_data(b"lo".to_vec(), true, 1), DataOutcome::Continue(frame(0, b"hello")));
    let mut resp = grpc_response();
    fm.encode_head(&mut resp, false, 1);
    fm.encode_body(&mut resp, frame(0, b"world"), false, 1);
    let out = fm.encode_end(&mut resp, trailers("0", None), 1);
    assert_eq!((out.data, resp.headers.get_str(b"content-length")), (b"world".to_vec(), Some("5")));
    // Past the buffer limit: 413.
    let mut fm = bridge(GrpcHttp1Bridge { upgrade_protobuf_to_grpc: true, ..GrpcHttp1Bridge::default() });
    let mut head = request("application/x-protobuf", None);
    fm.decode_headers(&mut head, false, &cx(), 1);
    let DataOutcome::LocalReply(r) = fm.decode_data(vec![0; 65], false, 1) else { panic!() };
    assert_eq!(r.status, 413);
}

#[test]
fn grpc_web_in_front_of_the_bridge() {
    // Envoy's order in its examples: grpc_web first. The bridge holds the head of an
    // HTTP/1 request (content-type application/grpc after grpc_web) until grpc_web's
    // trailer frame went into the body.
    let mut fm: FilterManager<ActiveFilter> = FilterManager::new(1 << 20);
    let c = Arc::new(GrpcHttp1BridgeConfig { options: GrpcHttp1Bridge::default(), buffer_limit: 64 });
    fm.start(
        [
            ActiveFilter::GrpcWeb(GrpcWebFilter::new(Arc::new(GrpcWebConfig))),
            ActiveFilter::GrpcHttp1Bridge(GrpcHttp1BridgeFilter::new(c)),
        ],
        1 << 20,
    );
    let mut head = request("application/grpc-web+proto", None);
    fm.decode_headers(&mut head, false, &cx(), 1);
    let mut resp = grpc_response();
    assert!(!fm.encode_head(&mut resp, false, 1).headers);
    fm.encode_body(&mut resp, frame(0, b"m"), false, 1);
    let out = fm.encode_end(&mut resp, trailers("0", None), 1);
    assert!(out.headers);
    // The bridge (first to encode) let the head go at the trailers; grpc_web then
    // dropped its content-length (the body grows by the trailer frame) and added the
    // frame: the client gets a streamed body.
    assert_eq!(out.data, [frame(0, b"m"), frame(0x80, b"grpc-status:0\r\n")].concat());
    assert_eq!(resp.headers.get_str(b"content-type"), Some("application/grpc-web+proto"));
    assert_eq!(resp.headers.get_str(b"content-length"), None);
}
