//! The OTLP export body written straight in protobuf's wire format: the bytes prost
//! would make of [`crate::trace::otlp::ExportTraceServiceRequest`] (same fields, same
//! order, proto3 defaults left out), without building the message first. Building it
//! cost two `String`s per tag and a `Vec` per id for every span (issue 17: the
//! allocator was the exporter's largest cost); here a span costs no allocation, and the
//! body one buffer sized up front.
//!
//! Lengths come first in protobuf, so each message's size is computed ([`span_len`],
//! once per span) before it is written; the two agree by construction and a test checks the result
//! against prost's encoding.

use crate::trace::otlp::KeyValue;
use crate::trace::span::{FinishedSpan, SpanKind};

const SPAN_KIND_SERVER: u64 = 2;
const SPAN_KIND_CLIENT: u64 = 3;
const STATUS_ERROR: u64 = 2;

fn varint_len(v: u64) -> usize {
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A length-delimited field: key byte, length, then `len` bytes the caller writes.
fn delimited(out: &mut Vec<u8>, key: u8, len: usize) {
    out.push(key);
    varint(out, len as u64);
}

fn delimited_len(len: usize) -> usize {
    1 + varint_len(len as u64) + len
}

fn bytes_field(out: &mut Vec<u8>, key: u8, b: &[u8]) {
    delimited(out, key, b.len());
    out.extend_from_slice(b);
}

/// `AnyValue { string_value }` (always present: a oneof member is written even when
/// empty).
fn any_value_len(v: &str) -> usize {
    delimited_len(v.len())
}

/// `KeyValue { key, value }` (the key left out when empty, as proto3 does).
fn key_value_len(k: &str, v: &str) -> usize {
    let key = if k.is_empty() { 0 } else { delimited_len(k.len()) };
    key + delimited_len(any_value_len(v))
}

fn key_value(out: &mut Vec<u8>, field_key: u8, k: &str, v: &str) {
    delimited(out, field_key, key_value_len(k, v));
    if !k.is_empty() {
        bytes_field(out, 0x0a, k.as_bytes());
    }
    delimited(out, 0x12, any_value_len(v));
    bytes_field(out, 0x0a, v.as_bytes());
}

fn times(s: &FinishedSpan) -> (u64, u64) {
    let start = s.start_us.saturating_mul(1000);
    (start, start.saturating_add(s.duration_us.saturating_mul(1000)))
}

fn kind(s: &FinishedSpan) -> u64 {
    match s.kind {
        SpanKind::Server => SPAN_KIND_SERVER,
        SpanKind::Client => SPAN_KIND_CLIENT,
    }
}

/// The encoded size of `s` as a `Span` message (without its own key and length).
fn span_len(s: &FinishedSpan) -> usize {
    let mut n = delimited_len(16) + delimited_len(8);
    if let Some(ts) = s.trace_state.as_deref().filter(|t| !t.is_empty()) {
        n += delimited_len(ts.len());
    }
    if s.context.parent_id != 0 {
        n += delimited_len(8);
    }
    if !s.name.is_empty() {
        n += delimited_len(s.name.len());
    }
    n += 1 + varint_len(kind(s));
    let (start, end) = times(s);
    n += if start != 0 { 9 } else { 0 } + if end != 0 { 9 } else { 0 };
    n += s.tags.iter().map(|(k, v)| delimited_len(key_value_len(k, v))).sum::<usize>();
    n += s.logs.iter().map(|l| delimited_len(event_len(l.unix_nanos, l.event))).sum::<usize>();
    if s.error {
        n += delimited_len(2);
    }
    n
}

/// `Span.Event { time_unix_nano, name }`.
fn event_len(time: u64, name: &str) -> usize {
    (if time != 0 { 9 } else { 0 }) + if name.is_empty() { 0 } else { delimited_len(name.len()) }
}

/// `s` as a `ScopeSpans.spans` field of `len` bytes ([`span_len`], computed once).
fn span(out: &mut Vec<u8>, s: &FinishedSpan, len: usize) {
    let c = &s.context;
    delimited(out, 0x12, len);
    bytes_field(out, 0x0a, &c.trace_id.to_be_bytes());
    bytes_field(out, 0x12, &c.span_id.to_be_bytes());
    if let Some(ts) = s.trace_state.as_deref().filter(|t| !t.is_empty()) {
        bytes_field(out, 0x1a, ts.as_bytes());
    }
    if c.parent_id != 0 {
        bytes_field(out, 0x22, &c.parent_id.to_be_bytes());
    }
    if !s.name.is_empty() {
        bytes_field(out, 0x2a, s.name.as_bytes());
    }
    out.push(0x30);
    varint(out, kind(s));
    let (start, end) = times(s);
    if start != 0 {
        out.push(0x39);
        out.extend_from_slice(&start.to_le_bytes());
    }
    if end != 0 {
        out.push(0x41);
        out.extend_from_slice(&end.to_le_bytes());
    }
    for (k, v) in &s.tags {
        key_value(out, 0x4a, k, v);
    }
    for l in &s.logs {
        delimited(out, 0x5a, event_len(l.unix_nanos, l.event));
        if l.unix_nanos != 0 {
            out.push(0x09);
            out.extend_from_slice(&l.unix_nanos.to_le_bytes());
        }
        if !l.event.is_empty() {
            bytes_field(out, 0x12, l.event.as_bytes());
        }
    }
    if s.error {
        // `Status { code: ERROR }` (field 15).
        delimited(out, 0x7a, 2);
        out.push(0x18);
        varint(out, STATUS_ERROR);
    }
}

/// A resource attribute's key and string value.
fn attr(a: &KeyValue) -> (&str, &str) {
    (a.key.as_str(), a.value.as_ref().and_then(|v| v.string_value.as_deref()).unwrap_or(""))
}

/// The `ExportTraceServiceRequest` of `spans`: one `ResourceSpans` (the proxy's
/// `resource`) with one `ScopeSpans` (scope `envoy`, the crate's version).
pub fn encode(spans: &[FinishedSpan], resource: &[KeyValue]) -> Vec<u8> {
    let resource_len: usize = resource
        .iter()
        .map(|a| {
            let (k, v) = attr(a);
            delimited_len(key_value_len(k, v))
        })
        .sum();
    let version = env!("CARGO_PKG_VERSION");
    let scope_len = delimited_len(5) + if version.is_empty() { 0 } else { delimited_len(version.len()) };
    // Each span's size is needed twice (the enclosing messages' lengths, its own):
    // computed once.
    let lens: Vec<usize> = spans.iter().map(span_len).collect();
    let spans_len: usize = lens.iter().map(|&n| delimited_len(n)).sum();
    let scope_spans_len = delimited_len(scope_len) + spans_len;
    let resource_spans_len = delimited_len(resource_len) + delimited_len(scope_spans_len);
    let mut out = Vec::with_capacity(delimited_len(resource_spans_len));
    // ExportTraceServiceRequest.resource_spans (1)
    delimited(&mut out, 0x0a, resource_spans_len);
    // ResourceSpans.resource (1): Resource.attributes (1)
    delimited(&mut out, 0x0a, resource_len);
    for a in resource {
        let (k, v) = attr(a);
        key_value(&mut out, 0x0a, k, v);
    }
    // ResourceSpans.scope_spans (2)
    delimited(&mut out, 0x12, scope_spans_len);
    // ScopeSpans.scope (1): name (1), version (2)
    delimited(&mut out, 0x0a, scope_len);
    bytes_field(&mut out, 0x0a, b"envoy");
    if !version.is_empty() {
        bytes_field(&mut out, 0x12, version.as_bytes());
    }
    // ScopeSpans.spans (2)
    for (s, &len) in spans.iter().zip(&lens) {
        span(&mut out, s, len);
    }
    out
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;
    use crate::trace::context::SpanContext;
    use crate::trace::otlp::{self, resource_attributes};
    use crate::trace::timing::SpanLog;

    fn span(n: u64) -> FinishedSpan {
        FinishedSpan {
            context: SpanContext { trace_id: (n as u128) << 80 | 5, span_id: n + 1, parent_id: n, sampled: true },
            kind: if n % 2 == 0 { SpanKind::Server } else { SpanKind::Client },
            name: if n == 3 { String::new() } else { format!("op{n}") },
            shared: false,
            trace_state: (n == 1).then(|| "k=v".to_string()),
            start_us: n * 1_000_000,
            duration_us: n * 300,
            tags: vec![
                ("http.url".into(), "x".repeat(200 * n as usize).into()),
                ("".into(), "no key".into()),
                ("empty".into(), "".into()),
            ],
            error: n % 3 == 1,
            logs: (0..n).map(|i| SpanLog { unix_nanos: i * 7, event: "first_upstream_tx_byte_sent" }).collect(),
        }
    }

    #[test]
    fn the_same_bytes_as_prost() {
        let resource = resource_attributes("front", Some("a=b"));
        for n in [0usize, 1, 2, 5] {
            let spans: Vec<FinishedSpan> = (0..n as u64).map(span).collect();
            let ours = encode(&spans, &resource);
            assert_eq!(ours, otlp::encode_with_prost(&spans, &resource), "{n} spans");
            let back = otlp::ExportTraceServiceRequest::decode(&ours[..]).unwrap();
            assert_eq!(back.resource_spans[0].scope_spans[0].spans.len(), n);
        }
    }
}
