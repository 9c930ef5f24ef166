//! Serialization: exact bytes, hop-by-hop removal, framing choices, and round trips
//! through the parsers and the body decoder.

use std::sync::Arc;

use crate::http::codec::{
    encode_request_head, encode_response_head, reason_phrase, BodyDecoder, BodyEncoder, BodyFraming, EncodeError,
    Http1Settings, OutgoingBody, RequestParser, ResponseContext, ResponseParser, Status, CONTINUE_RESPONSE,
};
use crate::http::{RequestHead, ResponseHead, Version};

fn request(method: &str, path: &str) -> RequestHead {
    let mut h = RequestHead::default();
    h.method.push_str(method);
    h.path.push_str(path);
    h.authority.push_str("origin.example:8080");
    h.scheme.push_str("http");
    h.version = Some(Version::Http11);
    h
}

fn ctx11() -> ResponseContext {
    ResponseContext { request_version: Version::Http11, head_request: false, keep_alive: true }
}

#[test]
fn request_head_exact_bytes_and_hop_by_hop_removed() {
    let mut h = request("GET", "/a?b=1");
    for (n, v) in [
        ("x-keep", "1"),
        ("connection", "keep-alive, x-keep"),
        ("keep-alive", "timeout=5"),
        ("proxy-connection", "keep-alive"),
        ("transfer-encoding", "chunked"),
        ("te", "trailers"),
        ("upgrade", "websocket"),
        ("content-length", "99"),
        ("accept", "*/*"),
    ] {
        h.headers.append(n.as_bytes(), v.as_bytes());
    }
    let mut out = Vec::new();
    let enc = encode_request_head(&h, OutgoingBody::Empty, false, &mut out);
    assert_eq!(enc, BodyEncoder::None);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "GET /a?b=1 HTTP/1.1\r\nhost: origin.example:8080\r\nx-keep: 1\r\naccept: */*\r\n\r\n"
    );
}

#[test]
fn request_framing_choices() {
    let mut out = Vec::new();
    let enc = encode_request_head(&request("POST", "/"), OutgoingBody::Empty, false, &mut out);
    assert_eq!(enc, BodyEncoder::None);
    assert!(out.ends_with(b"content-length: 0\r\n\r\n"), "POST without body says so");
    out.clear();
    let enc = encode_request_head(&request("PUT", "/"), OutgoingBody::Length(12), false, &mut out);
    assert_eq!(enc, BodyEncoder::Length { remaining: 12 });
    assert!(out.ends_with(b"content-length: 12\r\n\r\n"));
    out.clear();
    let enc = encode_request_head(&request("POST", "/"), OutgoingBody::Streaming, false, &mut out);
    assert_eq!(enc, BodyEncoder::Chunked);
    assert!(out.ends_with(b"transfer-encoding: chunked\r\n\r\n"));
    out.clear();
    let mut up = request("GET", "/ws");
    up.headers.append(b"upgrade", b"websocket");
    encode_request_head(&up, OutgoingBody::Empty, true, &mut out);
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("upgrade: websocket\r\n") && text.contains("connection: upgrade\r\n"), "{text}");
}

#[test]
fn response_head_exact_bytes() {
    let mut h = ResponseHead { status: 200, ..ResponseHead::default() };
    h.reason.push_str("Whatever The Origin Said");
    h.headers.append(b"content-type", b"text/plain");
    h.headers.append(b"connection", b"keep-alive");
    h.headers.append(b"transfer-encoding", b"chunked");
    h.headers.append(b"content-length", b"5");
    let mut out = Vec::new();
    let enc = encode_response_head(&h, OutgoingBody::Length(5), ctx11(), &mut out);
    assert_eq!(enc, BodyEncoder::Length { remaining: 5 });
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 5\r\n\r\n"
    );
}

#[test]
fn response_framing_choices() {
    let head = |status| ResponseHead { status, ..ResponseHead::default() };
    let enc = |h: &ResponseHead, body, ctx| {
        let mut out = Vec::new();
        let e = encode_response_head(h, body, ctx, &mut out);
        (e, String::from_utf8(out).unwrap())
    };
    let (e, t) = enc(&head(200), OutgoingBody::Streaming, ctx11());
    assert_eq!((e, t.as_str()), (BodyEncoder::Chunked, "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"));
    let (e, t) = enc(&head(404), OutgoingBody::Empty, ctx11());
    assert_eq!((e, t.as_str()), (BodyEncoder::None, "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n"));
    let (e, t) = enc(&head(204), OutgoingBody::Streaming, ctx11());
    assert_eq!((e, t.as_str()), (BodyEncoder::None, "HTTP/1.1 204 No Content\r\n\r\n"));
    let (_, t) = enc(&head(100), OutgoingBody::Empty, ctx11());
    assert_eq!(t.as_bytes(), CONTINUE_RESPONSE);
    let mut h304 = head(304);
    h304.headers.append(b"content-length", b"42");
    let (e, t) = enc(&h304, OutgoingBody::Empty, ctx11());
    assert_eq!((e, t.as_str()), (BodyEncoder::None, "HTTP/1.1 304 Not Modified\r\ncontent-length: 42\r\n\r\n"));
    // HEAD: the origin's length passes, no body.
    let mut h = head(200);
    h.headers.append(b"content-length", b"1000");
    let head_ctx = ResponseContext { head_request: true, ..ctx11() };
    let (e, t) = enc(&h, OutgoingBody::Length(1000), head_ctx);
    assert_eq!((e, t.as_str()), (BodyEncoder::None, "HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n"));
    // HTTP/1.0 clients: 1.0 status line, no chunking (close-delimited), keep-alive said.
    let ctx10 = ResponseContext { request_version: Version::Http10, head_request: false, keep_alive: true };
    let (e, t) = enc(&head(200), OutgoingBody::Streaming, ctx10);
    assert_eq!((e, t.as_str()), (BodyEncoder::UntilClose, "HTTP/1.0 200 OK\r\nconnection: close\r\n\r\n"));
    let (_, t) = enc(&head(200), OutgoingBody::Length(2), ctx10);
    assert_eq!(t, "HTTP/1.0 200 OK\r\ncontent-length: 2\r\nconnection: keep-alive\r\n\r\n");
    // Closing after the response.
    let closing = ResponseContext { keep_alive: false, ..ctx11() };
    let (_, t) = enc(&head(400), OutgoingBody::Length(11), closing);
    assert_eq!(t, "HTTP/1.1 400 Bad Request\r\ncontent-length: 11\r\nconnection: close\r\n\r\n");
    // Unknown codes get Envoy's "Unknown".
    let (_, t) = enc(&head(299), OutgoingBody::Empty, ctx11());
    assert!(t.starts_with("HTTP/1.1 299 Unknown\r\n"));
    assert_eq!(reason_phrase(431), "Request Header Fields Too Large");
}

#[test]
fn body_encoders() {
    let mut out = Vec::new();
    let mut c = BodyEncoder::Chunked;
    c.encode(b"hello world!", &mut out).unwrap();
    c.encode(b"", &mut out).unwrap();
    c.finish(&mut out).unwrap();
    assert_eq!(out, b"c\r\nhello world!\r\n0\r\n\r\n");
    let mut l = BodyEncoder::Length { remaining: 3 };
    out.clear();
    l.encode(b"ab", &mut out).unwrap();
    assert_eq!(l.encode(b"cd", &mut out), Err(EncodeError::TooLong));
    assert_eq!(l.finish(&mut out), Err(EncodeError::TooShort));
    l.encode(b"c", &mut out).unwrap();
    l.finish(&mut out).unwrap();
    assert_eq!(out, b"abc");
    assert_eq!(BodyEncoder::None.encode(b"x", &mut out), Err(EncodeError::TooLong));
    // Vectored use: prefix, data elsewhere, suffix.
    out.clear();
    let mut c = BodyEncoder::Chunked;
    c.encode_prefix(300, &mut out).unwrap();
    c.encode_suffix(300, &mut out);
    assert_eq!(out, b"12c\r\n\r\n");
}

#[test]
fn request_round_trip_through_parser_and_decoder() {
    let mut h = request("POST", "/submit?x=%20y");
    h.headers.append(b"content-type", b"application/json");
    h.headers.append(b"x-multi", b"1");
    h.headers.append(b"x-multi", b"2");
    let payload: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
    for body in [OutgoingBody::Length(payload.len() as u64), OutgoingBody::Streaming] {
        let mut wire = Vec::new();
        let mut enc = encode_request_head(&h, body, false, &mut wire);
        for piece in payload.chunks(777) {
            enc.encode(piece, &mut wire).unwrap();
        }
        enc.finish(&mut wire).unwrap();

        let mut parser = RequestParser::new(Arc::new(Http1Settings::default()), false);
        let mut parsed = RequestHead::default();
        let Ok(Status::Complete(meta)) = parser.parse(&wire, &mut parsed) else { panic!() };
        assert_eq!((parsed.method.as_str(), parsed.path.as_str()), ("POST", "/submit?x=%20y"));
        assert_eq!(parsed.authority, h.authority);
        assert_eq!(parsed.headers.get_all(b"x-multi").collect::<Vec<_>>(), [&b"1"[..], &b"2"[..]]);
        let mut dec = parser.body_decoder(&meta);
        let mut pos = meta.head_len;
        let mut got = Vec::new();
        loop {
            let d = dec.decode(&wire[pos..]).unwrap();
            got.extend_from_slice(&wire[pos..][d.data]);
            pos += d.consumed;
            if d.end {
                break;
            }
        }
        assert_eq!(got, payload);
        assert_eq!(pos, wire.len());
    }
}

#[test]
fn response_round_trip_through_parser_and_decoder() {
    let mut h = ResponseHead { status: 503, ..ResponseHead::default() };
    h.headers.append(b"server", b"envoy");
    let payload = b"no healthy upstream";
    for body in [OutgoingBody::Length(payload.len() as u64), OutgoingBody::Streaming] {
        let mut wire = Vec::new();
        let mut enc = encode_response_head(&h, body, ctx11(), &mut wire);
        enc.encode(payload, &mut wire).unwrap();
        enc.finish(&mut wire).unwrap();
        let mut p = ResponseParser::new(100);
        let mut parsed = ResponseHead::default();
        let Ok(Status::Complete(meta)) = p.parse(&wire, false, &mut parsed) else { panic!() };
        assert_eq!((parsed.status, parsed.reason.as_str()), (503, "Service Unavailable"));
        assert_eq!(parsed.headers.get(b"server"), Some(&b"envoy"[..]));
        assert!(meta.keep_alive);
        let mut dec: BodyDecoder = p.body_decoder(&meta);
        let rest = &wire[meta.head_len..];
        let mut got = Vec::new();
        let mut pos = 0;
        while !dec.is_done() {
            let d = dec.decode(&rest[pos..]).unwrap();
            got.extend_from_slice(&rest[pos..][d.data]);
            pos += d.consumed;
        }
        assert_eq!(got, payload);
        assert_eq!(pos, rest.len());
        assert_ne!(meta.framing, BodyFraming::UntilClose);
    }
}
