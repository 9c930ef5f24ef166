//! Zipkin v2 spans, as `POST /api/v2/spans` takes them: JSON (`collector_endpoint_version:
//! HTTP_JSON`), an array with Envoy's fields (`traceId`, `parentId`, `id`, `kind:
//! SERVER`, `name`, `timestamp`/`duration` in microseconds, `localEndpoint` with the
//! node's cluster as `serviceName`, `annotations` (the `verbose` logs), `tags`, `shared`), or protobuf (`HTTP_PROTO`,
//! zipkin-api `zipkin.proto3` `ListOfSpans`, the same fields).

use std::collections::BTreeMap;
use std::net::IpAddr;

use prost::Message;

use crate::trace::span::{FinishedSpan, SpanKind};

/// The local endpoint of every span.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalEndpoint {
    pub service_name: String,
    pub address: IpAddr,
}

/// Whether one of the 8 bytes of `w` needs an escape in a JSON string (below 0x20,
/// `"` or `\\`): the word-at-a-time tests "has a byte less than n" and "has a zero
/// byte", exact as to whether such a byte exists.
fn needs_escape(w: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    let below_space = w.wrapping_sub(ONES * 0x20) & !w & HIGH;
    (below_space | zero(w ^ (ONES * b'"' as u64)) | zero(w ^ (ONES * b'\\' as u64))) != 0
}

fn escape(out: &mut Vec<u8>, b: u8) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    match b {
        b'"' => out.extend_from_slice(b"\\\""),
        b'\\' => out.extend_from_slice(b"\\\\"),
        b'\n' => out.extend_from_slice(b"\\n"),
        b'\r' => out.extend_from_slice(b"\\r"),
        b'\t' => out.extend_from_slice(b"\\t"),
        b => out.extend_from_slice(&[b'\\', b'u', b'0', b'0', DIGITS[(b >> 4) as usize], DIGITS[(b & 0xf) as usize]]),
    }
}

/// Append `s` as a JSON string: scanned 8 bytes at a time, runs without escapes
/// copied whole.
fn json_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let b = s.as_bytes();
    let (mut run, mut i) = (0, 0);
    while i < b.len() {
        if let Some(chunk) = b.get(i..i + 8) {
            let mut w = [0u8; 8];
            w.copy_from_slice(chunk);
            if !needs_escape(u64::from_le_bytes(w)) {
                i += 8;
                continue;
            }
        }
        let c = b[i];
        if c < 0x20 || c == b'"' || c == b'\\' {
            out.extend_from_slice(&b[run..i]);
            escape(out, c);
            run = i + 1;
        }
        i += 1;
    }
    out.extend_from_slice(&b[run..]);
    out.push(b'"');
}

/// Append `v` as 16 lower-case hex digits.
fn hex16(out: &mut Vec<u8>, v: u64) {
    let mut buf = [0u8; 16];
    crate::trace::context::hex_into(&mut buf, v);
    out.extend_from_slice(&buf);
}

/// Append `v` in decimal.
fn decimal(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(crate::http::local_reply::decimal_digits(v, &mut [0u8; 20]).as_bytes());
}

/// The JSON array of `spans`: one buffer, sized up front, written byte by byte
/// (no formatting machinery, no intermediate strings).
pub fn encode(spans: &[FinishedSpan], local: &LocalEndpoint) -> Vec<u8> {
    // The same local endpoint on every span: written once.
    let mut endpoint = b",\"localEndpoint\":{\"serviceName\":".to_vec();
    json_str(&mut endpoint, &local.service_name);
    let address = local.address.to_string();
    endpoint.extend_from_slice(if local.address.is_ipv4() { b",\"ipv4\":\"" } else { b",\"ipv6\":\"" });
    endpoint.extend_from_slice(address.as_bytes());
    endpoint.extend_from_slice(b"\"}");
    let size: usize = spans
        .iter()
        .map(|s| {
            let tags: usize = s.tags.iter().map(|(k, v)| k.len() + v.len() + 6).sum();
            200 + endpoint.len() + s.name.len() + tags + 80 * s.logs.len()
        })
        .sum();
    let mut out = Vec::with_capacity(size + 2);
    out.push(b'[');
    for (i, s) in spans.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let c = &s.context;
        out.extend_from_slice(b"{\"traceId\":\"");
        if c.trace_id >> 64 != 0 {
            hex16(&mut out, (c.trace_id >> 64) as u64);
        }
        hex16(&mut out, c.trace_id as u64);
        out.extend_from_slice(b"\",");
        if c.parent_id != 0 {
            out.extend_from_slice(b"\"parentId\":\"");
            hex16(&mut out, c.parent_id);
            out.extend_from_slice(b"\",");
        }
        out.extend_from_slice(b"\"id\":\"");
        hex16(&mut out, c.span_id);
        out.extend_from_slice(match s.kind {
            SpanKind::Server => b"\",\"kind\":\"SERVER\",\"name\":",
            SpanKind::Client => b"\",\"kind\":\"CLIENT\",\"name\":",
        });
        json_str(&mut out, &s.name);
        out.extend_from_slice(b",\"timestamp\":");
        decimal(&mut out, s.start_us);
        out.extend_from_slice(b",\"duration\":");
        decimal(&mut out, s.duration_us);
        out.extend_from_slice(&endpoint);
        if !s.logs.is_empty() {
            out.extend_from_slice(b",\"annotations\":[");
            for (k, l) in s.logs.iter().enumerate() {
                if k > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(b"{\"timestamp\":");
                decimal(&mut out, l.unix_nanos / 1000);
                out.extend_from_slice(b",\"value\":");
                json_str(&mut out, l.event);
                out.push(b'}');
            }
            out.push(b']');
        }
        out.extend_from_slice(b",\"tags\":{");
        for (k, (name, value)) in s.tags.iter().enumerate() {
            if k > 0 {
                out.push(b',');
            }
            json_str(&mut out, name);
            out.push(b':');
            json_str(&mut out, value);
        }
        out.push(b'}');
        if s.shared {
            out.extend_from_slice(b",\"shared\":true");
        }
        out.push(b'}');
    }
    out.push(b']');
    out
}

/// `zipkin.proto3` `ListOfSpans`.
#[derive(Clone, PartialEq, Message)]
pub struct ListOfSpans {
    #[prost(message, repeated, tag = "1")]
    pub spans: Vec<ProtoSpan>,
}

/// `zipkin.proto3` `Span`.
#[derive(Clone, PartialEq, Message)]
pub struct ProtoSpan {
    #[prost(bytes = "vec", tag = "1")]
    pub trace_id: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    pub parent_id: Vec<u8>,
    #[prost(bytes = "vec", tag = "3")]
    pub id: Vec<u8>,
    /// `Kind`: 2 = SERVER.
    #[prost(int32, tag = "4")]
    pub kind: i32,
    #[prost(string, tag = "5")]
    pub name: String,
    #[prost(fixed64, tag = "6")]
    pub timestamp: u64,
    #[prost(uint64, tag = "7")]
    pub duration: u64,
    #[prost(message, optional, tag = "8")]
    pub local_endpoint: Option<Endpoint>,
    #[prost(message, repeated, tag = "10")]
    pub annotations: Vec<Annotation>,
    #[prost(btree_map = "string, string", tag = "11")]
    pub tags: BTreeMap<String, String>,
    #[prost(bool, tag = "13")]
    pub shared: bool,
}

/// `zipkin.proto3` `Annotation`: a timed event (`verbose` logs).
#[derive(Clone, PartialEq, Message)]
pub struct Annotation {
    /// Microseconds since the Unix epoch.
    #[prost(fixed64, tag = "1")]
    pub timestamp: u64,
    #[prost(string, tag = "2")]
    pub value: String,
}

/// `zipkin.proto3` `Endpoint`.
#[derive(Clone, PartialEq, Message)]
pub struct Endpoint {
    #[prost(string, tag = "1")]
    pub service_name: String,
    #[prost(bytes = "vec", tag = "2")]
    pub ipv4: Vec<u8>,
    #[prost(bytes = "vec", tag = "3")]
    pub ipv6: Vec<u8>,
    #[prost(int32, tag = "4")]
    pub port: i32,
}

/// The protobuf body of `spans` (`HTTP_PROTO`).
pub fn encode_proto(spans: &[FinishedSpan], local: &LocalEndpoint) -> Vec<u8> {
    let endpoint = Endpoint {
        service_name: local.service_name.clone(),
        ipv4: match local.address {
            IpAddr::V4(a) => a.octets().to_vec(),
            IpAddr::V6(_) => Vec::new(),
        },
        ipv6: match local.address {
            IpAddr::V6(a) => a.octets().to_vec(),
            IpAddr::V4(_) => Vec::new(),
        },
        port: 0,
    };
    let spans = spans
        .iter()
        .map(|s| {
            let c = &s.context;
            ProtoSpan {
                trace_id: if c.trace_id >> 64 == 0 {
                    (c.trace_id as u64).to_be_bytes().to_vec()
                } else {
                    c.trace_id.to_be_bytes().to_vec()
                },
                parent_id: if c.parent_id != 0 { c.parent_id.to_be_bytes().to_vec() } else { Vec::new() },
                id: c.span_id.to_be_bytes().to_vec(),
                kind: match s.kind {
                    SpanKind::Client => 1,
                    SpanKind::Server => 2,
                },
                name: s.name.clone(),
                timestamp: s.start_us,
                duration: s.duration_us,
                local_endpoint: Some(endpoint.clone()),
                annotations: s
                    .logs
                    .iter()
                    .map(|l| Annotation { timestamp: l.unix_nanos / 1000, value: l.event.to_string() })
                    .collect(),
                tags: s.tags.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
                shared: s.shared,
            }
        })
        .collect();
    ListOfSpans { spans }.encode_to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::context::SpanContext;
    use crate::trace::timing::SpanLog;

    /// The word-at-a-time scan escapes exactly what a byte-by-byte one does, whatever
    /// the escaped byte's place in the 8-byte words.
    #[test]
    fn json_str_escapes_as_byte_by_byte() {
        fn naive(s: &str) -> Vec<u8> {
            let mut out = vec![b'"'];
            for &b in s.as_bytes() {
                if b < 0x20 || b == b'"' || b == b'\\' {
                    escape(&mut out, b);
                } else {
                    out.push(b);
                }
            }
            out.push(b'"');
            out
        }
        let mut cases: Vec<String> = vec![String::new(), "é\u{1f600}/ok".into(), "x".repeat(64)];
        for special in ['"', '\\', '\n', '\r', '\t', '\u{1}', '\u{1f}', ' ', '!', '#', '[', ']', '\u{7f}', 'ÿ'] {
            for len in 1..20 {
                for at in 0..len {
                    let mut t: String = (0..len).map(|i| (b'a' + (i % 26) as u8) as char).collect();
                    t.replace_range(at..at + 1, &special.to_string());
                    cases.push(t);
                }
            }
        }
        for c in cases {
            let mut out = Vec::new();
            json_str(&mut out, &c);
            assert_eq!(out, naive(&c), "{c:?}");
        }
    }

    #[test]
    fn json_v2() {
        let span = FinishedSpan {
            context: SpanContext { trace_id: 0xab, span_id: 0xcd, parent_id: 0xef, sampled: true },
            kind: SpanKind::Server,
            name: "a\"b".into(),
            shared: true,
            trace_state: None,
            start_us: 10,
            duration_us: 20,
            tags: vec![("http.method".into(), "GET".into()), ("x".into(), "\n".into())],
            error: false,
            logs: vec![SpanLog { unix_nanos: 15_999, event: "last_downstream_rx_byte_received" }],
        };
        let local = LocalEndpoint { service_name: "front".into(), address: "10.0.0.1".parse().unwrap() };
        let json = String::from_utf8(encode(std::slice::from_ref(&span), &local)).unwrap();
        let proto = ListOfSpans::decode(&encode_proto(std::slice::from_ref(&span), &local)[..]).unwrap();
        let p = &proto.spans[0];
        assert_eq!(
            (p.trace_id.len(), &p.id[..], &p.parent_id[..]),
            (8, &0xcdu64.to_be_bytes()[..], &0xefu64.to_be_bytes()[..])
        );
        assert_eq!((p.kind, p.timestamp, p.duration, p.shared), (2, 10, 20, true));
        assert_eq!(p.tags.get("http.method").map(String::as_str), Some("GET"));
        assert_eq!(p.annotations, [Annotation { timestamp: 15, value: "last_downstream_rx_byte_received".into() }]);
        assert_eq!(p.local_endpoint.as_ref().map(|e| e.ipv4.clone()), Some(vec![10, 0, 0, 1]));
        assert_eq!(
            json,
            r#"[{"traceId":"00000000000000ab","parentId":"00000000000000ef","id":"00000000000000cd","kind":"SERVER","name":"a\"b","timestamp":10,"duration":20,"localEndpoint":{"serviceName":"front","ipv4":"10.0.0.1"},"annotations":[{"timestamp":15,"value":"last_downstream_rx_byte_received"}],"tags":{"http.method":"GET","x":"\n"},"shared":true}]"#
        );
    }
}
