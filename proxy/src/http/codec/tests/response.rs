//! Client side: response heads, framing rules, interim responses, keep-alive.

use crate::http::codec::{BodyFraming, Interim, ResponseError, ResponseMeta, ResponseParser, Status};
use crate::http::{ResponseHead, Version};

fn parse_resp(wire: &[u8], head_request: bool) -> Result<(ResponseHead, ResponseMeta), ResponseError> {
    let mut p = ResponseParser::new(100);
    let mut head = ResponseHead::default();
    match p.parse(wire, head_request, &mut head)? {
        Status::Complete(meta) => Ok((head, meta)),
        Status::Partial => panic!("partial: {:?}", String::from_utf8_lossy(wire)),
    }
}

fn framing(wire: &[u8]) -> BodyFraming {
    parse_resp(wire, false).unwrap().1.framing
}

#[test]
fn status_line_and_headers() {
    let wire = b"HTTP/1.1 404 Not Here\r\nContent-Length: 3\r\nX-A: b\r\n\r\nabc";
    let (head, meta) = parse_resp(wire, false).unwrap();
    assert_eq!(head.status, 404);
    assert_eq!(head.reason, "Not Here");
    assert_eq!(head.version, Some(Version::Http11));
    assert_eq!(head.headers.get(b"x-a"), Some(&b"b"[..]));
    assert_eq!(meta.head_len, wire.len() - 3);
    assert_eq!(meta.framing, BodyFraming::Length(3));
    assert!(meta.keep_alive);
    assert_eq!(meta.interim, None);
    // An empty reason, with or without the space.
    assert_eq!(parse_resp(b"HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n", false).unwrap().0.status, 200);
    assert_eq!(parse_resp(b"HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n", false).unwrap().0.reason, "");
}

#[test]
fn framing_rules() {
    assert_eq!(framing(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"), BodyFraming::Chunked);
    assert_eq!(framing(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"), BodyFraming::None);
    assert_eq!(framing(b"HTTP/1.1 200 OK\r\n\r\n"), BodyFraming::UntilClose);
    assert_eq!(framing(b"HTTP/1.1 204 No Content\r\n\r\n"), BodyFraming::None);
    assert_eq!(framing(b"HTTP/1.1 304 Not Modified\r\nContent-Length: 100\r\n\r\n"), BodyFraming::None);
    // A response to HEAD has no body, whatever its headers say.
    let (head, meta) = parse_resp(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n", true).unwrap();
    assert_eq!(meta.framing, BodyFraming::None);
    assert_eq!(head.headers.get(b"content-length"), Some(&b"100"[..]), "kept for the downstream HEAD response");
    assert!(meta.keep_alive);
}

#[test]
fn keep_alive_by_version_and_connection() {
    let ka = |wire: &[u8]| parse_resp(wire, false).unwrap().1.keep_alive;
    assert!(ka(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n"));
    assert!(!ka(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nConnection: close\r\n\r\n"));
    assert!(!ka(b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n"));
    assert!(ka(b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\nConnection: keep-alive\r\n\r\n"));
    assert!(!ka(b"HTTP/1.1 200 OK\r\n\r\n"), "a read-until-close body ends the connection");
}

#[test]
fn interim_responses() {
    let wire = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 199 Odd\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
    let mut p = ResponseParser::new(100);
    let mut head = ResponseHead::default();
    let mut pos = 0;
    let mut seen = Vec::new();
    loop {
        let Ok(Status::Complete(meta)) = p.parse(&wire[pos..], false, &mut head) else { panic!("at {pos}") };
        pos += meta.head_len;
        seen.push((head.status, meta.interim));
        if meta.interim.is_none() {
            break;
        }
    }
    assert_eq!(
        seen,
        [(100, Some(Interim::Continue)), (103, Some(Interim::Forward)), (199, Some(Interim::Ignore)), (200, None)]
    );
    assert_eq!(pos, wire.len());
}

#[test]
fn protocol_errors() {
    let err = |wire: &[u8]| parse_resp(wire, false).unwrap_err();
    assert_eq!(
        err(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"),
        ResponseError::ChunkedContentLength
    );
    assert_eq!(err(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n"), ResponseError::InvalidTransferEncoding);
    assert_eq!(
        err(b"HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n"),
        ResponseError::TransferEncodingNotAllowed
    );
    assert_eq!(err(b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n"), ResponseError::ContentLengthNotAllowed);
    assert_eq!(err(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n"), ResponseError::CodecError);
    assert_eq!(err(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n"), ResponseError::CodecError);
    assert_eq!(err(b"HTTP/1.1 101 Switching Protocols\r\n\r\n"), ResponseError::UnexpectedUpgrade);
    assert_eq!(err(b"HTTP/1.1 20 OK\r\n\r\n"), ResponseError::CodecError);
    assert_eq!(err(b"HTTP/1.1 099 OK\r\n\r\n"), ResponseError::CodecError);
    assert_eq!(err(b"HTTP/1.1 200 OK\nX: y\r\n\r\n"), ResponseError::CodecError);
    assert_eq!(err(b"ICY 200 OK\r\n\r\n"), ResponseError::CodecError);
    assert_eq!(err(b"HTTP/1.1 200 OK\r\nX: a\x00\r\n\r\n"), ResponseError::InvalidCharacters);
    assert_eq!(ResponseError::ContentLengthNotAllowed.details(), "http1.content_length_not_allowed");
    // A zero Content-Length on a 204 is papered over, as Envoy does.
    let (head, meta) = parse_resp(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n", false).unwrap();
    assert!(!head.headers.contains(b"content-length"));
    assert_eq!(meta.framing, BodyFraming::None);
}

#[test]
fn limits() {
    let mut p = ResponseParser::new(2);
    let mut head = ResponseHead::default();
    let wire = b"HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
    assert_eq!(p.parse(wire, false, &mut head), Err(ResponseError::TooManyHeaders));
    let mut big = b"HTTP/1.1 200 OK\r\nX: ".to_vec();
    big.extend(std::iter::repeat_n(b'a', 81 * 1024));
    assert_eq!(ResponseParser::new(100).parse(&big, false, &mut head), Err(ResponseError::HeadersTooLarge));
}

#[test]
fn partial_response_heads() {
    let wire = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    let mut p = ResponseParser::new(100);
    let mut head = ResponseHead::default();
    for n in 0..wire.len() - 2 {
        assert_eq!(p.parse(&wire[..n], false, &mut head), Ok(Status::Partial), "at {n}");
    }
    assert!(matches!(p.parse(wire, false, &mut head), Ok(Status::Complete(_))));
}
