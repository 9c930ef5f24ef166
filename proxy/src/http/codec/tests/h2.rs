//! codec_type AUTO: HTTP/2 preface detection.

use crate::http::codec::h2_preface::{detect, Detected, CLIENT_PREFACE};

#[test]
fn detects_full_preface_and_partial_prefixes() {
    assert_eq!(detect(CLIENT_PREFACE), Detected::Http2);
    let mut with_settings = CLIENT_PREFACE.to_vec();
    with_settings.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]);
    assert_eq!(detect(&with_settings), Detected::Http2);
    for n in 0..CLIENT_PREFACE.len() {
        assert_eq!(detect(&CLIENT_PREFACE[..n]), Detected::NeedMore, "prefix of {n}");
    }
    assert_eq!(detect(b"GET / HTTP/1.1\r\n"), Detected::Http1);
    assert_eq!(detect(b"P"), Detected::NeedMore);
    assert_eq!(detect(b"POST / HTTP/1.1\r\n"), Detected::Http1);
    assert_eq!(detect(b"PRI * HTTP/2.0\r\n\r\nXX"), Detected::Http1);
}
