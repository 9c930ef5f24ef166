//! An HTTP/2 request head as the connection manager's [`RequestHead`]: `:method`,
//! `:scheme`, `:authority` (or `host`) and `:path` become the head's fields, the other
//! headers carry over, split `cookie` fields are joined with `; ` (RFC 9113 §8.2.3) for
//! HTTP/1.1 upstreams.
//!
//! `h2` has already refused what RFC 9113 §8 calls malformed (missing or unknown
//! pseudo-headers, connection-specific headers, `te` other than `trailers`); what is
//! left here is Envoy's own checks: CONNECT needs `allow_connect`, and
//! `headers_with_underscores_action`.

use http::request::Parts;
use sluice_config::cluster::HeadersWithUnderscoresAction;

use crate::http::codec::{BodyFraming, Http1Settings, RequestMeta};
use crate::http::{RequestHead, Version};

/// Fill `head` from `parts`; the body's framing for an HTTP/1.1 upstream follows
/// `content-length` (chunked without one). `Err`: the stream is reset, with why.
pub fn convert(
    parts: &Parts,
    end_stream: bool,
    tls: bool,
    settings: &Http1Settings,
    head: &mut RequestHead,
) -> Result<RequestMeta, &'static str> {
    head.clear();
    let method = parts.method.as_str();
    if parts.method == http::Method::CONNECT {
        return Err("CONNECT needs http2_protocol_options.allow_connect");
    }
    head.method.push_str(method);
    head.version = Some(Version::Http2);
    match parts.uri.scheme_str() {
        Some(s) => head.scheme.push_str(s),
        None => head.scheme.push_str(if tls { "https" } else { "http" }),
    }
    if let Some(a) = parts.uri.authority() {
        head.authority.push_str(a.as_str());
    } else if let Some(h) = parts.headers.get(http::header::HOST).and_then(|h| h.to_str().ok()) {
        head.authority.push_str(h);
    }
    match parts.uri.path_and_query() {
        Some(p) => head.path.push_str(p.as_str()),
        None => head.path.push('/'),
    }
    let mut cookies: Option<Vec<u8>> = None;
    let mut length: Option<u64> = None;
    if parts.headers.len() > settings.max_headers_count as usize {
        return Err("too many headers");
    }
    for (name, value) in &parts.headers {
        let n = name.as_str().as_bytes();
        if n == b"host" {
            continue;
        }
        if n.contains(&b'_') {
            match settings.headers_with_underscores_action {
                HeadersWithUnderscoresAction::Allow => {}
                HeadersWithUnderscoresAction::DropHeader => continue,
                HeadersWithUnderscoresAction::RejectRequest => return Err("header name with an underscore"),
            }
        }
        if n == b"cookie" {
            let c = cookies.get_or_insert_with(Vec::new);
            if !c.is_empty() {
                c.extend_from_slice(b"; ");
            }
            c.extend_from_slice(value.as_bytes());
            continue;
        }
        if n == b"content-length" {
            let v = std::str::from_utf8(value.as_bytes()).ok().and_then(|v| v.trim().parse::<u64>().ok());
            match (v, length) {
                (None, _) => return Err("invalid content-length"),
                (Some(v), Some(l)) if v != l => return Err("conflicting content-length"),
                (Some(v), _) => length = Some(v),
            }
        }
        head.headers.append(n, value.as_bytes());
    }
    if let Some(c) = cookies {
        head.headers.append(b"cookie", &c);
    }
    let framing = if end_stream {
        if length.is_some_and(|l| l > 0) {
            return Err("content-length without a body");
        }
        BodyFraming::None
    } else {
        match length {
            Some(0) => BodyFraming::None,
            Some(n) => BodyFraming::Length(n),
            None => BodyFraming::Chunked,
        }
    };
    let expect_continue =
        parts.headers.get(http::header::EXPECT).is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    Ok(RequestMeta {
        head_len: 0,
        framing,
        keep_alive: true,
        expect_continue,
        is_head: parts.method == http::Method::HEAD,
        is_connect: false,
        upgrade: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(req: http::Request<()>) -> Parts {
        req.into_parts().0
    }

    #[test]
    fn pseudo_headers_become_the_head() {
        let p = parts(
            http::Request::builder()
                .method("POST")
                .uri("https://example.com/a?b=1")
                .header("cookie", "a=1")
                .header("cookie", "b=2")
                .header("content-length", "5")
                .body(())
                .unwrap(),
        );
        let mut head = RequestHead::default();
        let meta = convert(&p, false, true, &Http1Settings::default(), &mut head).unwrap();
        assert_eq!((head.method.as_str(), head.scheme.as_str()), ("POST", "https"));
        assert_eq!((head.authority.as_str(), head.path.as_str()), ("example.com", "/a?b=1"));
        assert_eq!(head.headers.get(b"cookie"), Some(&b"a=1; b=2"[..]));
        assert_eq!(meta.framing, BodyFraming::Length(5));
        assert_eq!(head.version, Some(Version::Http2));
    }

    #[test]
    fn body_without_length_is_chunked_upstream() {
        let p = parts(http::Request::builder().uri("http://h/").body(()).unwrap());
        let mut head = RequestHead::default();
        let meta = convert(&p, false, false, &Http1Settings::default(), &mut head).unwrap();
        assert_eq!(meta.framing, BodyFraming::Chunked);
        let meta = convert(&p, true, false, &Http1Settings::default(), &mut head).unwrap();
        assert_eq!(meta.framing, BodyFraming::None);
    }

    #[test]
    fn refusals() {
        let mut head = RequestHead::default();
        let s = Http1Settings::default();
        let p = parts(http::Request::builder().method("CONNECT").uri("h:443").body(()).unwrap());
        assert!(convert(&p, false, false, &s, &mut head).is_err());
        let p = parts(http::Request::builder().uri("http://h/").header("content-length", "x").body(()).unwrap());
        assert!(convert(&p, false, false, &s, &mut head).is_err());
        let s = Http1Settings {
            headers_with_underscores_action: HeadersWithUnderscoresAction::RejectRequest,
            ..Http1Settings::default()
        };
        let p = parts(http::Request::builder().uri("http://h/").header("a_b", "1").body(()).unwrap());
        assert!(convert(&p, true, false, &s, &mut head).is_err());
    }
}
