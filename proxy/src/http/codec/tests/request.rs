//! Server side: request heads, Envoy's rules, pipelining, partial input, allocation reuse.

use std::sync::Arc;

use sluice_config::cluster::HeadersWithUnderscoresAction;

use super::{assert_rejected, assert_rejected_with, parse, parse_with};
use crate::http::codec::{BodyFraming, Http1Settings, RequestError, RequestParser, Status};
use crate::http::{RequestHead, Version};

fn http10() -> Http1Settings {
    Http1Settings { accept_http_10: true, ..Http1Settings::default() }
}

#[test]
fn simple_get() {
    let wire = b"GET /a/b?x=1 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: t\r\nAccept: */*\r\n\r\n";
    let (head, meta) = parse(wire).unwrap();
    assert_eq!(head.method, "GET");
    assert_eq!(head.path, "/a/b?x=1");
    assert_eq!(head.authority, "example.com");
    assert_eq!(head.scheme, "", "origin form: the connection manager decides the scheme");
    assert_eq!(head.version, Some(Version::Http11));
    assert_eq!(head.headers.get(b"user-agent"), Some(&b"t"[..]));
    assert!(!head.headers.contains(b"host"), "host lives in authority");
    assert_eq!(head.headers.len(), 2);
    assert_eq!(meta.head_len, wire.len());
    assert_eq!(meta.framing, BodyFraming::None);
    assert!(meta.keep_alive);
    assert!(!meta.expect_continue && !meta.is_head && !meta.is_connect && !meta.upgrade);
}

#[test]
fn names_lowercased_values_trimmed_order_kept() {
    let (head, _) = parse(b"GET / HTTP/1.1\r\nHost: h\r\nX-B:   two  \r\nx-a:\t1\r\nX-B: three\r\n\r\n").unwrap();
    let all: Vec<_> = head.headers.iter().collect();
    assert_eq!(all, vec![(&b"x-b"[..], &b"two"[..]), (&b"x-a"[..], &b"1"[..]), (&b"x-b"[..], &b"three"[..])]);
}

#[test]
fn tls_connection_sets_https_scheme_of_connect() {
    let mut p = RequestParser::new(Arc::new(Http1Settings::default()), true);
    let mut head = RequestHead::default();
    p.parse(b"CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n", &mut head).unwrap();
    assert_eq!(head.scheme, "https");
}

#[test]
fn leading_empty_lines_are_skipped() {
    let wire = b"\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n";
    let (head, meta) = parse(wire).unwrap();
    assert_eq!(head.path, "/");
    assert_eq!(meta.head_len, wire.len());
}

#[test]
fn partial_heads_need_more_at_every_split() {
    let wire = b"POST /upload HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello";
    let head_len = wire.len() - 5;
    for cut in 0..head_len {
        let mut p = RequestParser::new(Arc::new(Http1Settings::default()), false);
        let mut head = RequestHead::default();
        // Feed the head in two steps: a prefix, then the rest.
        assert_eq!(p.parse(&wire[..cut], &mut head), Ok(Status::Partial), "cut {cut}");
        match p.parse(wire, &mut head) {
            Ok(Status::Complete(meta)) => {
                assert_eq!(meta.head_len, head_len);
                assert_eq!(meta.framing, BodyFraming::Length(5));
            }
            other => panic!("cut {cut}: {other:?}"),
        }
    }
}

#[test]
fn byte_at_a_time_trickle() {
    let wire = b"GET /x HTTP/1.1\r\nHost: h\r\nA: b\r\n\r\n";
    let mut p = RequestParser::new(Arc::new(Http1Settings::default()), false);
    let mut head = RequestHead::default();
    for n in 1..wire.len() {
        assert_eq!(p.parse(&wire[..n], &mut head), Ok(Status::Partial), "at {n}");
    }
    assert!(matches!(p.parse(wire, &mut head), Ok(Status::Complete(_))));
    assert_eq!(head.path, "/x");
}

#[test]
fn pipelined_requests_parse_one_after_another() {
    let wire = b"GET /1 HTTP/1.1\r\nHost: h\r\n\r\nPOST /2 HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabcGET /3 HTTP/1.1\r\nHost: h\r\n\r\n";
    let mut p = RequestParser::new(Arc::new(Http1Settings::default()), false);
    let mut head = RequestHead::default();
    let mut pos = 0;
    let mut paths = Vec::new();
    while pos < wire.len() {
        let Ok(Status::Complete(meta)) = p.parse(&wire[pos..], &mut head) else { panic!("at {pos}") };
        paths.push(head.path.clone());
        pos += meta.head_len;
        let mut body = p.body_decoder(&meta);
        loop {
            let d = body.decode(&wire[pos..]).unwrap();
            pos += d.consumed;
            if d.end {
                break;
            }
        }
    }
    assert_eq!(paths, ["/1", "/2", "/3"]);
}

#[test]
fn http10_rejected_with_426_by_default() {
    assert_rejected(b"GET / HTTP/1.0\r\nHost: h\r\n\r\n", 426, "low_version");
    assert_eq!(RequestError::LowVersion.body(), "Upgrade Required");
}

#[test]
fn http09_rejected_with_426() {
    assert_rejected(b"GET /\r\n\r\n", 426, "low_version");
}

#[test]
fn other_versions_are_treated_as_http10() {
    assert_rejected(b"GET / HTTP/1.2\r\nHost: h\r\n\r\n", 426, "low_version");
    assert_rejected(b"GET / HTTP/2.0\r\nHost: h\r\n\r\n", 426, "low_version");
    let (head, meta) = parse_with(http10(), b"GET / HTTP/1.3\r\nHost: h\r\n\r\n").unwrap();
    assert_eq!(head.version, Some(Version::Http10));
    assert!(!meta.keep_alive);
}

#[test]
fn http10_accepted_with_default_host() {
    let s = Http1Settings { default_host_for_http_10: "default.example".into(), ..http10() };
    let (head, meta) = parse_with(s.clone(), b"GET / HTTP/1.0\r\n\r\n").unwrap();
    assert_eq!(head.authority, "default.example");
    assert_eq!(head.version, Some(Version::Http10));
    assert!(!meta.keep_alive, "HTTP/1.0 closes by default");
    let (head, meta) = parse_with(s, b"GET / HTTP/1.0\r\nHost: given\r\nConnection: Keep-Alive\r\n\r\n").unwrap();
    assert_eq!(head.authority, "given");
    assert!(meta.keep_alive);
    // Without a default host an HTTP/1.0 request still needs one.
    assert_rejected_with(http10(), b"GET / HTTP/1.0\r\n\r\n", 400, "missing_host_header");
    // HTTP/0.9 is accepted as 1.0.
    let (head, _) = parse_with(http10(), b"GET /old\r\nHost: h\r\n\r\n").unwrap();
    assert_eq!(head.version, Some(Version::Http09));
}

#[test]
fn missing_host_is_400() {
    assert_rejected(b"GET / HTTP/1.1\r\nAccept: */*\r\n\r\n", 400, "missing_host_header");
    assert!(!RequestError::MissingHost.is_connection_error());
    assert_eq!(RequestError::MissingHost.body(), "");
}

#[test]
fn invalid_host_is_400_invalid_authority() {
    assert_rejected(b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400, "http.invalid_authority");
    assert_rejected(b"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400, "http.invalid_authority");
    assert_rejected(b"GET / HTTP/1.1\r\nHost: caf\xc3\xa9\r\n\r\n", 400, "http.invalid_authority");
    let (head, _) = parse(b"GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n").unwrap();
    assert_eq!(head.authority, "[::1]:8080");
}

#[test]
fn repeated_host_headers_join_with_comma() {
    let (head, _) = parse(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n").unwrap();
    assert_eq!(head.authority, "a,b");
}

#[test]
fn content_length_and_transfer_encoding_is_400() {
    let wire = b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n";
    assert_rejected(wire, 400, "http1.content_length_and_chunked_not_allowed");
    // Not chunked: still 400 first (Envoy checks CL+TE before the coding).
    assert_rejected(
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: gzip\r\n\r\n",
        400,
        "http1.content_length_and_chunked_not_allowed",
    );
}

#[test]
fn allow_chunked_length_drops_content_length() {
    let s = Http1Settings { allow_chunked_length: true, ..Http1Settings::default() };
    let wire = b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n";
    let (head, meta) = parse_with(s.clone(), wire).unwrap();
    assert_eq!(meta.framing, BodyFraming::Chunked);
    assert!(!head.headers.contains(b"content-length"));
    // Only for chunked.
    assert_rejected_with(
        s,
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\nContent-Length: 5\r\n\r\n",
        400,
        "http1.content_length_and_chunked_not_allowed",
    );
}

#[test]
fn transfer_encoding_other_than_chunked_is_501() {
    for te in ["gzip", "gzip, chunked", "chunked, gzip", "identity", ""] {
        let wire = format!("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: {te}\r\n\r\n");
        assert_rejected(wire.as_bytes(), 501, "http1.invalid_transfer_encoding");
    }
    // Two headers are a list, not `chunked`.
    assert_rejected(
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
        501,
        "http1.invalid_transfer_encoding",
    );
    let (_, meta) = parse(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: ChUnKeD\r\n\r\n").unwrap();
    assert_eq!(meta.framing, BodyFraming::Chunked);
}

#[test]
fn bad_content_length_is_400() {
    for cl in ["abc", "-1", "+5", "5, 5", "1 2", "", "0x10", "18446744073709551616"] {
        let wire = format!("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: {cl}\r\n\r\n");
        assert_rejected(wire.as_bytes(), 400, "http1.codec_error");
    }
    // Duplicates are refused even when equal (Envoy: disallow_multiple_content_length).
    assert_rejected(
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
        400,
        "http1.codec_error",
    );
    assert_rejected(
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
        400,
        "http1.codec_error",
    );
    let (_, meta) = parse(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 18446744073709551615\r\n\r\n").unwrap();
    assert_eq!(meta.framing, BodyFraming::Length(u64::MAX));
    let (_, meta) = parse(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length:  0 \r\n\r\n").unwrap();
    assert_eq!(meta.framing, BodyFraming::None);
}

#[test]
fn header_section_over_limit_is_431() {
    let mut wire = b"GET / HTTP/1.1\r\nHost: h\r\nX-Big: ".to_vec();
    wire.extend(std::iter::repeat_n(b'a', 70 * 1024));
    wire.extend_from_slice(b"\r\n\r\n");
    assert_rejected(&wire, 431, "http1.headers_too_large");
    // Detected while still partial: no need to wait for the end.
    let mut p = RequestParser::new(Arc::new(Http1Settings::default()), false);
    let err = p.parse(&wire[..61 * 1024], &mut RequestHead::default()).unwrap_err();
    assert_eq!(err, RequestError::HeadersTooLarge);
    // Configurable; exactly at the limit is fine.
    let s = Http1Settings { max_request_headers_kb: 1, ..Http1Settings::default() };
    let base = b"GET / HTTP/1.1\r\nHost: h\r\nX: \r\n\r\n".len();
    let fill = "a".repeat(1024 - base);
    let exact = format!("GET / HTTP/1.1\r\nHost: h\r\nX: {fill}\r\n\r\n");
    assert_eq!(exact.len(), 1024);
    assert!(parse_with(s.clone(), exact.as_bytes()).is_ok());
    let over = format!("GET / HTTP/1.1\r\nHost: h\r\nX: a{fill}\r\n\r\n");
    assert_rejected_with(s, over.as_bytes(), 431, "http1.headers_too_large");
}

fn with_headers(n: usize) -> Vec<u8> {
    let mut wire = b"GET / HTTP/1.1\r\nHost: h\r\n".to_vec();
    for i in 1..n {
        wire.extend_from_slice(format!("x-h{i}: v\r\n").as_bytes());
    }
    wire.extend_from_slice(b"\r\n");
    wire
}

#[test]
fn more_than_max_headers_count_is_431() {
    assert!(parse(&with_headers(100)).is_ok());
    assert_rejected(&with_headers(101), 431, "http1.too_many_headers");
    let s = Http1Settings { max_headers_count: 5, ..Http1Settings::default() };
    assert!(parse_with(s.clone(), &with_headers(5)).is_ok());
    assert_rejected_with(s, &with_headers(6), 431, "http1.too_many_headers");
}

#[test]
fn invalid_header_names_and_values_are_400() {
    assert_rejected(b"GET / HTTP/1.1\r\nHost: h\r\nBad Name: v\r\n\r\n", 400, "http1.codec_error");
    assert_rejected(b"GET / HTTP/1.1\r\nHost: h\r\nBad(name): v\r\n\r\n", 400, "http1.codec_error");
    assert_rejected(b"GET / HTTP/1.1\r\nHost: h\r\n: v\r\n\r\n", 400, "http1.codec_error");
    assert_rejected(b"GET / HTTP/1.1\r\nHost: h\r\nNoColon\r\n\r\n", 400, "http1.codec_error");
    assert_rejected(b"GET / HTTP/1.1\r\nHost: h\r\nX: a\x00b\r\n\r\n", 400, "http1.invalid_characters");
    assert_rejected(b"GET / HTTP/1.1\r\nHost: h\r\nX: a\x7fb\r\n\r\n", 400, "http1.invalid_characters");
    assert_rejected(b"GET / HTTP/1.1\r\nHost: h\r\nX: a\x01b\r\n\r\n", 400, "http1.invalid_characters");
    // obs-text is allowed in values.
    let (head, _) = parse(b"GET / HTTP/1.1\r\nHost: h\r\nX: caf\xc3\xa9\r\n\r\n").unwrap();
    assert_eq!(head.headers.get(b"x"), Some(&b"caf\xc3\xa9"[..]));
}

#[test]
fn bare_cr_and_lf_are_400() {
    assert_rejected(b"GET / HTTP/1.1\nHost: h\r\n\r\n", 400, "http1.codec_error");
    assert_rejected(b"GET / HTTP/1.1\r\nHost: h\n\r\n", 400, "http1.codec_error");
    assert_rejected(b"GET / HTTP/1.1\r\nHost: h\r\n\n", 400, "http1.codec_error");
    assert_rejected(b"GET / HTTP/1.1\r\nHost: h\r\nX: a\rb\r\n\r\n", 400, "http1.invalid_characters");
    assert_rejected(b"GET /\r HTTP/1.1\r\nHost: h\r\n\r\n", 400, "http1.codec_error");
    // A bare LF is refused as soon as it arrives, even in a partial head.
    let mut p = RequestParser::new(Arc::new(Http1Settings::default()), false);
    assert_eq!(p.parse(b"GET / HTTP/1.1\n", &mut RequestHead::default()), Err(RequestError::CodecError));
}

#[test]
fn obs_fold_is_400() {
    assert_rejected(b"GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n  folded\r\n\r\n", 400, "http1.codec_error");
    assert_rejected(b"GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n\tfolded\r\n\r\n", 400, "http1.codec_error");
}

#[test]
fn malformed_request_lines_are_400() {
    for wire in [
        &b"get / HTTP/1.1\r\nHost: h\r\n\r\n"[..],
        b"FOO / HTTP/1.1\r\nHost: h\r\n\r\n",
        b"GET  / HTTP/1.1\r\nHost: h\r\n\r\n",
        b"GET / HTTP/1.1 \r\nHost: h\r\n\r\n",
        b"GET / HTTPS/1.1\r\nHost: h\r\n\r\n",
        b"GET / HTTP/11\r\nHost: h\r\n\r\n",
        b"GET /a\x80 HTTP/1.1\r\nHost: h\r\n\r\n",
        b"GET /a\tb HTTP/1.1\r\nHost: h\r\n\r\n",
        b"GET\r\nHost: h\r\n\r\n",
        b" GET / HTTP/1.1\r\nHost: h\r\n\r\n",
        b"GET relative HTTP/1.1\r\nHost: h\r\n\r\n",
    ] {
        assert_rejected(wire, 400, "http1.codec_error");
    }
}

#[test]
fn custom_methods_when_allowed() {
    let s = Http1Settings { allow_custom_methods: true, ..Http1Settings::default() };
    let (head, _) = parse_with(s.clone(), b"FROB / HTTP/1.1\r\nHost: h\r\n\r\n").unwrap();
    assert_eq!(head.method, "FROB");
    assert_rejected_with(s, b"FR(B / HTTP/1.1\r\nHost: h\r\n\r\n", 400, "http1.codec_error");
}

#[test]
fn every_envoy_method_is_accepted() {
    for m in ["ACL", "DELETE", "GET", "HEAD", "MSEARCH", "OPTIONS", "PATCH", "POST", "PUT", "TRACE", "UNSUBSCRIBE"] {
        let wire = format!("{m} / HTTP/1.1\r\nHost: h\r\n\r\n");
        assert_eq!(parse(wire.as_bytes()).unwrap().0.method, m);
    }
}

#[test]
fn absolute_form_takes_authority_from_url() {
    let (head, _) = parse(b"GET http://Example.com:8080/p?q=1 HTTP/1.1\r\nHost: ignored\r\n\r\n").unwrap();
    assert_eq!(
        (head.scheme.as_str(), head.authority.as_str(), head.path.as_str()),
        ("http", "Example.com:8080", "/p?q=1")
    );
    let (head, _) = parse(b"GET HTTPS://user:pw@h.example HTTP/1.1\r\n\r\n").unwrap();
    assert_eq!((head.scheme.as_str(), head.authority.as_str(), head.path.as_str()), ("https", "h.example", "/"));
    let (head, _) = parse(b"GET http://[::1]:80/?x HTTP/1.1\r\n\r\n").unwrap();
    assert_eq!((head.authority.as_str(), head.path.as_str()), ("[::1]:80", "/?x"));
    // A query right after the authority: the empty path is `/` (GURL's PathForRequest).
    let (head, _) = parse(b"GET http://h.test?x=1 HTTP/1.1\r\n\r\n").unwrap();
    assert_eq!((head.authority.as_str(), head.path.as_str()), ("h.test", "/?x=1"));
}

#[test]
fn absolute_form_errors() {
    assert_rejected(b"GET ftp://h/p HTTP/1.1\r\nHost: h\r\n\r\n", 400, "http1.invalid_scheme");
    assert_rejected(b"GET http:///p HTTP/1.1\r\nHost: h\r\n\r\n", 400, "http1.invalid_url");
    assert_rejected(b"GET http://h:99999/ HTTP/1.1\r\nHost: h\r\n\r\n", 400, "http1.invalid_url");
    assert_rejected(b"GET http://h:/ HTTP/1.1\r\nHost: h\r\n\r\n", 400, "http1.invalid_url");
    let s = Http1Settings { validate_scheme: true, ..Http1Settings::default() };
    assert_rejected_with(s.clone(), b"GET https://h/ HTTP/1.1\r\n\r\n", 403, "http1.https_url_on_plaintext_connection");
    assert!(parse_with(s, b"GET http://h/ HTTP/1.1\r\n\r\n").is_ok());
}

#[test]
fn absolute_form_without_allow_absolute_url_is_404() {
    let s = Http1Settings { allow_absolute_url: false, ..Http1Settings::default() };
    assert_rejected_with(s, b"GET http://h/p HTTP/1.1\r\nHost: h\r\n\r\n", 404, "absolute_path_rejected");
    assert_rejected(b"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n", 404, "absolute_path_rejected");
}

#[test]
fn underscores_allow_reject_drop() {
    let wire = b"GET / HTTP/1.1\r\nHost: h\r\nX_Foo: 1\r\nX-Bar: 2\r\n\r\n";
    let (head, _) = parse(wire).unwrap();
    assert_eq!(head.headers.get(b"x_foo"), Some(&b"1"[..]));
    let reject = Http1Settings {
        headers_with_underscores_action: HeadersWithUnderscoresAction::RejectRequest,
        ..Http1Settings::default()
    };
    assert_rejected_with(reject, wire, 400, "http1.unexpected_underscore");
    let drop = Http1Settings {
        headers_with_underscores_action: HeadersWithUnderscoresAction::DropHeader,
        max_headers_count: 2,
        ..Http1Settings::default()
    };
    let (head, _) = parse_with(drop, wire).unwrap();
    assert!(!head.headers.contains(b"x_foo"));
    assert_eq!(head.headers.get(b"x-bar"), Some(&b"2"[..]));
}

#[test]
fn keep_alive_decisions() {
    let ka = |wire: &[u8]| parse_with(http10(), wire).unwrap().1.keep_alive;
    assert!(ka(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"));
    assert!(!ka(b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"));
    assert!(!ka(b"GET / HTTP/1.1\r\nHost: h\r\nConnection: foo, Close\r\n\r\n"));
    assert!(!ka(b"GET / HTTP/1.1\r\nHost: h\r\nProxy-Connection: close\r\n\r\n"));
    assert!(!ka(b"GET / HTTP/1.0\r\nHost: h\r\n\r\n"));
    assert!(ka(b"GET / HTTP/1.0\r\nHost: h\r\nConnection: keep-alive\r\n\r\n"));
    assert!(!ka(b"GET / HTTP/1.0\r\nHost: h\r\nConnection: keep-alive\r\nProxy-Connection: close\r\n\r\n"));
}

#[test]
fn expect_100_continue_detected() {
    let (_, meta) = parse(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nExpect: 100-Continue\r\n\r\n").unwrap();
    assert!(meta.expect_continue);
    let (_, meta) = parse(b"POST / HTTP/1.1\r\nHost: h\r\nExpect: something\r\n\r\n").unwrap();
    assert!(!meta.expect_continue);
    let (_, meta) = parse_with(http10(), b"POST / HTTP/1.0\r\nHost: h\r\nExpect: 100-continue\r\n\r\n").unwrap();
    assert!(!meta.expect_continue, "ignored for HTTP/1.0");
}

#[test]
fn body_framing_of_requests() {
    let (_, m) = parse(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 42\r\n\r\n").unwrap();
    assert_eq!(m.framing, BodyFraming::Length(42));
    let (_, m) = parse(b"POST / HTTP/1.1\r\nHost: h\r\n\r\n").unwrap();
    assert_eq!(m.framing, BodyFraming::None, "no framing headers: no body");
    let (_, m) = parse(b"HEAD / HTTP/1.1\r\nHost: h\r\n\r\n").unwrap();
    assert!(m.is_head);
}

#[test]
fn connect_rules() {
    let (head, meta) = parse(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n").unwrap();
    assert!(meta.is_connect);
    assert_eq!((head.authority.as_str(), head.path.as_str()), ("example.com:443", ""));
    let (head, _) = parse(b"CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\nContent-Length: 0\r\n\r\n").unwrap();
    assert!(!head.headers.contains(b"content-length"), "CONNECT's zero length is dropped");
    assert_rejected(b"CONNECT h:443 HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\n", 400, "http1.body_disallowed");
    assert_rejected(
        b"CONNECT h:443 HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n",
        501,
        "http1.invalid_transfer_encoding",
    );
}

#[test]
fn connection_header_sanitization() {
    let (head, _) =
        parse(b"GET / HTTP/1.1\r\nHost: h\r\nConnection: X-Secret, keep-alive\r\nX-Secret: 1\r\nX-Other: 2\r\n\r\n")
            .unwrap();
    assert!(!head.headers.contains(b"x-secret"), "nominated header removed");
    assert!(head.headers.contains(b"x-other"));
    let (head, _) = parse(b"GET / HTTP/1.1\r\nHost: h\r\nConnection: te\r\nTE: gzip, trailers\r\n\r\n").unwrap();
    assert_eq!(head.headers.get(b"te"), Some(&b"trailers"[..]));
    let (head, _) = parse(b"GET / HTTP/1.1\r\nHost: h\r\nConnection: te\r\nTE: gzip\r\n\r\n").unwrap();
    assert!(!head.headers.contains(b"te"));
    for bad in ["x-forwarded-for", "X-Forwarded-Proto", "x-forwarded-host", ":path", "a,b,c,d,e,f,g,h,i,j"] {
        let wire = format!("GET / HTTP/1.1\r\nHost: h\r\nConnection: {bad}\r\n\r\n");
        assert_rejected(wire.as_bytes(), 400, "http1.connection_header_rejected");
    }
}

#[test]
fn upgrade_and_h2c() {
    let (_, meta) = parse(b"GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n").unwrap();
    assert!(meta.upgrade);
    let (head, meta) = parse(
        b"GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n",
    )
    .unwrap();
    assert!(!meta.upgrade, "h2c upgrades are ignored");
    assert!(!head.headers.contains(b"upgrade") && !head.headers.contains(b"http2-settings"));
}

#[test]
fn request_errors_carry_envoy_bodies() {
    assert_eq!(RequestError::CodecError.body(), "Bad Request");
    assert_eq!(RequestError::HeadersTooLarge.body(), "Request Header Fields Too Large");
    assert_eq!(RequestError::InvalidTransferEncoding.body(), "Not Implemented");
    assert!(RequestError::CodecError.is_connection_error());
    assert_eq!(RequestError::TooManyHeaders.to_string(), "431 http1.too_many_headers");
}

#[test]
fn parser_reuses_allocations() {
    let mut p = RequestParser::new(Arc::new(Http1Settings::default()), false);
    let mut head = RequestHead::default();
    let wire = with_headers(20);
    p.parse(&wire, &mut head).unwrap();
    let scratch_ptr = p.scratch_ptr();
    let (path_cap, method_cap) = (head.path.capacity(), head.method.capacity());
    for _ in 0..10 {
        p.parse(&wire, &mut head).unwrap();
        assert_eq!(p.scratch_ptr(), scratch_ptr, "httparse header array is reused in place");
        assert_eq!((head.path.capacity(), head.method.capacity()), (path_cap, method_cap));
    }
}

#[test]
fn nominated_headers_no_longer_count() {
    let wire = b"POST / HTTP/1.1\r\nHost: h\r\nConnection: expect, proxy-connection\r\nExpect: 100-continue\r\nProxy-Connection: close\r\n\r\n";
    let (head, meta) = parse(wire).unwrap();
    assert!(!head.headers.contains(b"expect") && !head.headers.contains(b"proxy-connection"));
    assert!(!meta.expect_continue);
    assert!(meta.keep_alive);
}

#[test]
fn public_keep_alive_and_body_helpers() {
    use crate::http::codec::{request_should_have_no_body, should_close_connection};
    use crate::http::HeaderMap;
    let mut h = HeaderMap::new();
    assert!(!should_close_connection(Version::Http11, &h));
    assert!(should_close_connection(Version::Http10, &h));
    h.append(b"Connection", b"Keep-Alive");
    assert!(!should_close_connection(Version::Http10, &h));
    h.append(b"proxy-connection", b"close");
    assert!(should_close_connection(Version::Http10, &h));
    assert!(request_should_have_no_body("GET") && request_should_have_no_body("HEAD"));
    assert!(!request_should_have_no_body("POST"));
}
