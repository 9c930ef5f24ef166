//! Zipkin v2 JSON (`collector_endpoint_version: HTTP_JSON`): a batch of spans as the
//! array `POST /api/v2/spans` takes, with Envoy's fields (`traceId`, `parentId`, `id`,
//! `kind: SERVER`, `name`, `timestamp`/`duration` in microseconds, `localEndpoint`
//! with the node's cluster as `serviceName`, `tags`, `shared`).

use std::fmt::Write;
use std::net::IpAddr;

use crate::trace::context::trace_id_hex;
use crate::trace::span::FinishedSpan;

/// The local endpoint of every span.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalEndpoint {
    pub service_name: String,
    pub address: IpAddr,
}

/// Append `s` as a JSON string.
fn json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// The JSON array of `spans`.
pub fn encode(spans: &[FinishedSpan], local: &LocalEndpoint) -> Vec<u8> {
    let mut out = String::with_capacity(512 * spans.len() + 2);
    out.push('[');
    for (i, s) in spans.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let c = &s.context;
        let _ = write!(out, "{{\"traceId\":\"{}\",", trace_id_hex(c.trace_id, true));
        if c.parent_id != 0 {
            let _ = write!(out, "\"parentId\":\"{:016x}\",", c.parent_id);
        }
        let _ = write!(out, "\"id\":\"{:016x}\",\"kind\":\"SERVER\",\"name\":", c.span_id);
        json_str(&mut out, &s.name);
        let _ = write!(
            out,
            ",\"timestamp\":{},\"duration\":{},\"localEndpoint\":{{\"serviceName\":",
            s.start_us, s.duration_us
        );
        json_str(&mut out, &local.service_name);
        match local.address {
            IpAddr::V4(a) => {
                let _ = write!(out, ",\"ipv4\":\"{a}\"}}");
            }
            IpAddr::V6(a) => {
                let _ = write!(out, ",\"ipv6\":\"{a}\"}}");
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::context::SpanContext;

    #[test]
    fn json_v2() {
        let span = FinishedSpan {
            context: SpanContext { trace_id: 0xab, span_id: 0xcd, parent_id: 0xef, sampled: true },
            name: "a\"b".into(),
            shared: true,
            trace_state: None,
            start_us: 10,
            duration_us: 20,
            tags: vec![("http.method".into(), "GET".into()), ("x".into(), "\n".into())],
            error: false,
        };
        let local = LocalEndpoint { service_name: "front".into(), address: "10.0.0.1".parse().unwrap() };
        let json = String::from_utf8(encode(&[span], &local)).unwrap();
        assert_eq!(
            json,
            r#"[{"traceId":"00000000000000ab","parentId":"00000000000000ef","id":"00000000000000cd","kind":"SERVER","name":"a\"b","timestamp":10,"duration":20,"localEndpoint":{"serviceName":"front","ipv4":"10.0.0.1"},"tags":{"http.method":"GET","x":"\n"},"shared":true}]"#
        );
    }
}
