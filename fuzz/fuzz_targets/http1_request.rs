//! Fuzz the HTTP/1.1 request head parser and the body decoder.
//!
//! Input: two control bytes, then wire bytes. The control bytes pick the codec
//! settings (every Envoy option the parser reads) and how the input is split as it
//! "arrives". The target parses pipelined requests one after another, streams each body
//! through the decoder in slices, checks the invariants every caller relies on (ranges
//! inside the input, progress, exact message ends, only Envoy's statuses), and sends
//! every accepted head through the serializer and back. Any panic is a bug.

#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use sluice::http::codec::{encode_request_head, BodyFraming, Http1Settings, RequestParser, Status};
use sluice::http::RequestHead;
use sluice_config::cluster::HeadersWithUnderscoresAction;

fn settings(ctl: u8, ctl2: u8) -> Http1Settings {
    let small = ctl & 64 != 0;
    Http1Settings {
        accept_http_10: ctl & 1 != 0,
        default_host_for_http_10: if ctl & 2 != 0 {
            "default.host".into()
        } else {
            String::new()
        },
        allow_chunked_length: ctl & 4 != 0,
        allow_absolute_url: ctl & 8 == 0,
        allow_custom_methods: ctl & 16 != 0,
        validate_scheme: ctl & 32 != 0,
        max_request_headers_kb: if small { 1 } else { 60 },
        max_headers_count: if small { 8 } else { 100 },
        headers_with_underscores_action: match ctl2 % 3 {
            0 => HeadersWithUnderscoresAction::Allow,
            1 => HeadersWithUnderscoresAction::RejectRequest,
            _ => HeadersWithUnderscoresAction::DropHeader,
        },
    }
}

/// Serialize an accepted head and parse it again: it must come back the same.
fn round_trip(head: &RequestHead, framing: BodyFraming, allow_custom_methods: bool) {
    let mut wire = Vec::new();
    encode_request_head(head, framing.into(), false, &mut wire);
    let lenient = Http1Settings {
        allow_custom_methods,
        max_request_headers_kb: 256,
        max_headers_count: 10_000,
        ..Http1Settings::default()
    };
    let mut parser = RequestParser::new(Arc::new(lenient), false);
    let mut again = RequestHead::default();
    match parser.parse(&wire, &mut again) {
        Ok(Status::Complete(meta)) => {
            assert_eq!(meta.head_len, wire.len());
            assert_eq!(again.method, head.method);
            assert_eq!(again.path, head.path);
            assert_eq!(again.authority, head.authority);
            assert_eq!(meta.framing, framing);
        }
        other => panic!(
            "re-encoded head {:?} did not parse: {other:?}",
            String::from_utf8_lossy(&wire)
        ),
    }
}

fuzz_target!(|data: &[u8]| {
    let [ctl, ctl2, wire @ ..] = data else { return };
    let settings = settings(*ctl, *ctl2);
    let allow_custom = settings.allow_custom_methods;
    let split = 1 + (*ctl2 as usize >> 2);
    let mut parser = RequestParser::new(Arc::new(settings), ctl2 & 2 != 0);
    let mut head = RequestHead::default();
    let mut pos = 0;
    for _ in 0..8 {
        let rest = &wire[pos..];
        // The head arrives in two reads: a prefix, then everything.
        let first = parser.parse(&rest[..split.min(rest.len())], &mut head);
        let outcome = match first {
            Ok(Status::Partial) => parser.parse(rest, &mut head),
            done => done,
        };
        let meta = match outcome {
            Ok(Status::Complete(meta)) => meta,
            Ok(Status::Partial) => return,
            Err(e) => {
                assert!(matches!(e.status(), 400 | 403 | 404 | 426 | 431 | 501));
                assert!(!e.details().is_empty());
                return;
            }
        };
        assert!(meta.head_len > 0 && meta.head_len <= rest.len());
        assert!(meta.framing != BodyFraming::UntilClose);
        round_trip(&head, meta.framing, allow_custom);

        // Stream the body in slices of `split` bytes.
        pos += meta.head_len;
        let mut body = parser.body_decoder(&meta);
        loop {
            let avail = &wire[pos..];
            let window = &avail[..split.min(avail.len())];
            let d = match body.decode(window) {
                Ok(d) => d,
                Err(e) => {
                    assert!(matches!(e.status(), 400 | 431));
                    return;
                }
            };
            assert!(
                d.data.start <= d.data.end
                    && d.data.end <= d.consumed
                    && d.consumed <= window.len()
            );
            pos += d.consumed;
            if d.end {
                assert!(body.is_done());
                break;
            }
            if d.consumed == 0 && window.is_empty() {
                // Out of input inside the body: the peer closing now truncates it.
                assert!(body.finish_at_eof().is_err());
                return;
            }
            assert!(
                d.consumed > 0 || window.is_empty(),
                "no progress on non-empty input"
            );
        }
    }
});
