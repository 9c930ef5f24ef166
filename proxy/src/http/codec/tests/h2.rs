//! codec_type AUTO: HTTP/2 preface detection and the HTTP_1_1_REQUIRED answer.

use crate::http::codec::h2_preface::{detect, emit_http_1_1_required, Detected, FrameHeader, CLIENT_PREFACE};

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

#[test]
fn answers_settings_then_goaway_http_1_1_required() {
    let mut out = Vec::new();
    emit_http_1_1_required(&mut out);
    assert_eq!(
        out,
        [
            0, 0, 0, 0x4, 0, 0, 0, 0, 0, // SETTINGS, empty, stream 0
            0, 0, 8, 0x7, 0, 0, 0, 0, 0, // GOAWAY, 8 bytes, stream 0
            0, 0, 0, 0, // last-stream-id 0
            0, 0, 0, 0xd, // HTTP_1_1_REQUIRED
        ]
    );
    let settings = FrameHeader::parse(&out).unwrap();
    assert_eq!(settings, FrameHeader { length: 0, kind: 4, flags: 0, stream_id: 0 });
    let goaway = FrameHeader::parse(&out[9..]).unwrap();
    assert_eq!((goaway.length, goaway.kind), (8, 7));
    assert_eq!(FrameHeader::parse(&out[..8]), None);
}
