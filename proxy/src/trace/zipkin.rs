//! Zipkin v2 spans, as `POST /api/v2/spans` takes them: JSON (`collector_endpoint_version:
//! HTTP_JSON`), an array with Envoy's fields (`traceId`, `parentId`, `id`, `kind:
//! SERVER`, `name`, `timestamp`/`duration` in microseconds, `localEndpoint` with the
//! node's cluster as `serviceName`, `tags`, `shared`), or protobuf (`HTTP_PROTO`,
//! zipkin-api `zipkin.proto3` `ListOfSpans`, the same fields).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::net::IpAddr;

use prost::Message;

use crate::trace::span::{FinishedSpan, SpanKind};

/// The local endpoint of every span.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalEndpoint {
    pub service_name: String,
    pub address: IpAddr,
}

/// Append `s` as a JSON string (runs without escapes are copied whole).
fn json_str(out: &mut String, s: &str) {
    out.push('"');
    let mut rest = s;
    while let Some(i) = rest.bytes().position(|b| b < 0x20 || b == b'"' || b == b'\\') {
        out.push_str(&rest[..i]);
        match rest.as_bytes()[i] {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            b => {
                let _ = write!(out, "\\u{:04x}", b);
            }
        }
        rest = &rest[i + 1..];
    }
    out.push_str(rest);
    out.push('"');
}

/// Append `v` as 16 lower-case hex digits.
fn hex16(out: &mut String, v: u64) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut buf = [0u8; 16];
    for (i, b) in buf.iter_mut().enumerate() {
        *b = DIGITS[((v >> (60 - 4 * i)) & 0xf) as usize];
    }
    out.push_str(std::str::from_utf8(&buf).unwrap_or_default());
}

/// The JSON array of `spans`.
pub fn encode(spans: &[FinishedSpan], local: &LocalEndpoint) -> Vec<u8> {
    // The same local endpoint on every span: written once.
    let mut endpoint = String::from(",\"localEndpoint\":{\"serviceName\":");
    json_str(&mut endpoint, &local.service_name);
    match local.address {
        IpAddr::V4(a) => {
            let _ = write!(endpoint, ",\"ipv4\":\"{a}\"}}");
        }
        IpAddr::V6(a) => {
            let _ = write!(endpoint, ",\"ipv6\":\"{a}\"}}");
        }
    }
    let mut out = String::with_capacity(1024 * spans.len() + 2);
    out.push('[');
    for (i, s) in spans.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let c = &s.context;
        out.push_str("{\"traceId\":\"");
        if c.trace_id >> 64 != 0 {
            hex16(&mut out, (c.trace_id >> 64) as u64);
        }
        hex16(&mut out, c.trace_id as u64);
        out.push_str("\",");
        if c.parent_id != 0 {
            out.push_str("\"parentId\":\"");
            hex16(&mut out, c.parent_id);
            out.push_str("\",");
        }
        out.push_str("\"id\":\"");
        hex16(&mut out, c.span_id);
        out.push_str(match s.kind {
            SpanKind::Server => "\",\"kind\":\"SERVER\",\"name\":",
            SpanKind::Client => "\",\"kind\":\"CLIENT\",\"name\":",
        });
        json_str(&mut out, &s.name);
        let _ = write!(out, ",\"timestamp\":{},\"duration\":{}", s.start_us, s.duration_us);
        out.push_str(&endpoint);
        out.push_str(",\"tags\":{");
        for (k, (name, value)) in s.tags.iter().enumerate() {
            if k > 0 {
                out.push(',');
            }
            json_str(&mut out, name);
            out.push(':');
            json_str(&mut out, value);
        }
        out.push('}');
        if s.shared {
            out.push_str(",\"shared\":true");
        }
        out.push('}');
    }
    out.push(']');
    out.into_bytes()
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
    #[prost(btree_map = "string, string", tag = "11")]
    pub tags: BTreeMap<String, String>,
    #[prost(bool, tag = "13")]
    pub shared: bool,
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
        assert_eq!(p.local_endpoint.as_ref().map(|e| e.ipv4.clone()), Some(vec![10, 0, 0, 1]));
        assert_eq!(
            json,
            r#"[{"traceId":"00000000000000ab","parentId":"00000000000000ef","id":"00000000000000cd","kind":"SERVER","name":"a\"b","timestamp":10,"duration":20,"localEndpoint":{"serviceName":"front","ipv4":"10.0.0.1"},"tags":{"http.method":"GET","x":"\n"},"shared":true}]"#
        );
    }
}
