//! OTLP/HTTP protobuf: `ExportTraceServiceRequest` (opentelemetry-proto
//! `collector/trace/v1/trace_service.proto`, `trace/v1/trace.proto`,
//! `common/v1/common.proto`, `resource/v1/resource.proto`), the messages sluice sends,
//! derived with prost with the protos' field numbers. One request carries one resource
//! (the proxy: `service.name` and the detected attributes) and one scope (`envoy`).

use prost::Message;

use crate::trace::span::FinishedSpan;
#[cfg(test)]
use crate::trace::span::SpanKind;

#[derive(Clone, PartialEq, Message)]
pub struct ExportTraceServiceRequest {
    #[prost(message, repeated, tag = "1")]
    pub resource_spans: Vec<ResourceSpans>,
}

#[derive(Clone, PartialEq, Message)]
pub struct ResourceSpans {
    #[prost(message, optional, tag = "1")]
    pub resource: Option<Resource>,
    #[prost(message, repeated, tag = "2")]
    pub scope_spans: Vec<ScopeSpans>,
    #[prost(string, tag = "3")]
    pub schema_url: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct Resource {
    #[prost(message, repeated, tag = "1")]
    pub attributes: Vec<KeyValue>,
    #[prost(uint32, tag = "2")]
    pub dropped_attributes_count: u32,
}

#[derive(Clone, PartialEq, Message)]
pub struct ScopeSpans {
    #[prost(message, optional, tag = "1")]
    pub scope: Option<InstrumentationScope>,
    #[prost(message, repeated, tag = "2")]
    pub spans: Vec<Span>,
    #[prost(string, tag = "3")]
    pub schema_url: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct InstrumentationScope {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub version: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct KeyValue {
    #[prost(string, tag = "1")]
    pub key: String,
    #[prost(message, optional, tag = "2")]
    pub value: Option<AnyValue>,
}

#[derive(Clone, PartialEq, Message)]
pub struct AnyValue {
    /// `string_value` of the `value` oneof (the only kind sluice writes).
    #[prost(string, optional, tag = "1")]
    pub string_value: Option<String>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Span {
    #[prost(bytes = "vec", tag = "1")]
    pub trace_id: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    pub span_id: Vec<u8>,
    #[prost(string, tag = "3")]
    pub trace_state: String,
    #[prost(bytes = "vec", tag = "4")]
    pub parent_span_id: Vec<u8>,
    #[prost(string, tag = "5")]
    pub name: String,
    /// `SpanKind`: 2 = SERVER.
    #[prost(int32, tag = "6")]
    pub kind: i32,
    #[prost(fixed64, tag = "7")]
    pub start_time_unix_nano: u64,
    #[prost(fixed64, tag = "8")]
    pub end_time_unix_nano: u64,
    #[prost(message, repeated, tag = "9")]
    pub attributes: Vec<KeyValue>,
    #[prost(message, repeated, tag = "11")]
    pub events: Vec<Event>,
    #[prost(message, optional, tag = "15")]
    pub status: Option<Status>,
}

/// `Span.Event`: a timed log (the `verbose` logs; no attributes).
#[derive(Clone, PartialEq, Message)]
pub struct Event {
    #[prost(fixed64, tag = "1")]
    pub time_unix_nano: u64,
    #[prost(string, tag = "2")]
    pub name: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct Status {
    #[prost(string, tag = "2")]
    pub message: String,
    /// `StatusCode`: 0 UNSET, 1 OK, 2 ERROR.
    #[prost(int32, tag = "3")]
    pub code: i32,
}

#[cfg(test)]
const SPAN_KIND_SERVER: i32 = 2;
#[cfg(test)]
const SPAN_KIND_CLIENT: i32 = 3;
#[cfg(test)]
const STATUS_ERROR: i32 = 2;

pub fn key_value(key: &str, value: &str) -> KeyValue {
    KeyValue { key: key.to_string(), value: Some(AnyValue { string_value: Some(value.to_string()) }) }
}

/// The resource attributes: `service.name`, Envoy's SDK attributes, and
/// `OTEL_RESOURCE_ATTRIBUTES` (`key=value,...`) when the environment detector is on.
pub fn resource_attributes(service_name: &str, environment: Option<&str>) -> Vec<KeyValue> {
    let mut attrs = vec![
        key_value("service.name", service_name),
        key_value("telemetry.sdk.language", "rust"),
        key_value("telemetry.sdk.name", "envoy"),
        key_value("telemetry.sdk.version", env!("CARGO_PKG_VERSION")),
    ];
    for pair in environment.unwrap_or("").split(',') {
        if let Some((k, v)) = pair.split_once('=') {
            let (k, v) = (k.trim(), v.trim());
            if !k.is_empty() {
                attrs.retain(|a| a.key != k);
                attrs.push(key_value(k, v));
            }
        }
    }
    attrs
}

/// The protobuf body of one export (written directly: [`crate::trace::otlp_wire`]).
pub fn encode(spans: &[FinishedSpan], resource: &[KeyValue]) -> Vec<u8> {
    crate::trace::otlp_wire::encode(spans, resource)
}

/// [`encode`] through the prost messages: what the direct encoder must match.
#[cfg(test)]
pub fn encode_with_prost(spans: &[FinishedSpan], resource: &[KeyValue]) -> Vec<u8> {
    let spans = spans
        .iter()
        .map(|s| {
            let c = &s.context;
            let start = s.start_us.saturating_mul(1000);
            Span {
                trace_id: c.trace_id.to_be_bytes().to_vec(),
                span_id: c.span_id.to_be_bytes().to_vec(),
                trace_state: s.trace_state.clone().unwrap_or_default(),
                parent_span_id: if c.parent_id != 0 { c.parent_id.to_be_bytes().to_vec() } else { Vec::new() },
                name: s.name.clone(),
                kind: match s.kind {
                    SpanKind::Server => SPAN_KIND_SERVER,
                    SpanKind::Client => SPAN_KIND_CLIENT,
                },
                start_time_unix_nano: start,
                end_time_unix_nano: start.saturating_add(s.duration_us.saturating_mul(1000)),
                attributes: s.tags.iter().map(|(k, v)| key_value(k, v)).collect(),
                events: s
                    .logs
                    .iter()
                    .map(|l| Event { time_unix_nano: l.unix_nanos, name: l.event.to_string() })
                    .collect(),
                status: s.error.then(|| Status { message: String::new(), code: STATUS_ERROR }),
            }
        })
        .collect();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource { attributes: resource.to_vec(), dropped_attributes_count: 0 }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope { name: "envoy".into(), version: env!("CARGO_PKG_VERSION").into() }),
                spans,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
    .encode_to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::context::SpanContext;
    use crate::trace::timing::SpanLog;

    #[test]
    fn round_trip_and_resource() {
        let span = FinishedSpan {
            context: SpanContext { trace_id: 1 << 70 | 5, span_id: 7, parent_id: 9, sampled: true },
            kind: SpanKind::Server,
            name: "ingress".into(),
            shared: false,
            trace_state: Some("k=v".into()),
            start_us: 1_000,
            duration_us: 2,
            tags: vec![("http.status_code".into(), "503".into())],
            error: true,
            logs: vec![SpanLog { unix_nanos: 1_000_500, event: "first_upstream_tx_byte_sent" }],
        };
        let res = resource_attributes("front", Some("deployment.environment=prod, service.name=other"));
        assert!(res.iter().any(|a| a.key == "deployment.environment"));
        assert_eq!(res.iter().filter(|a| a.key == "service.name").count(), 1);
        let body = encode(&[span], &res);
        let back = ExportTraceServiceRequest::decode(&body[..]).unwrap();
        let s = &back.resource_spans[0].scope_spans[0].spans[0];
        assert_eq!(s.trace_id, (1u128 << 70 | 5).to_be_bytes().to_vec());
        assert_eq!(s.parent_span_id, 9u64.to_be_bytes().to_vec());
        assert_eq!((s.start_time_unix_nano, s.end_time_unix_nano), (1_000_000, 1_002_000));
        assert_eq!(s.trace_state, "k=v");
        assert_eq!(s.events, [Event { time_unix_nano: 1_000_500, name: "first_upstream_tx_byte_sent".into() }]);
        assert_eq!(s.status.as_ref().map(|s| s.code), Some(2));
    }
}
