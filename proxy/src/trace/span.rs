//! A request's span: started when the connection manager has the request's route
//! (Envoy's `traceRequest`), finished with the stream (`finalizeDownstreamSpan`), and
//! then a [`FinishedSpan`]: plain data with Envoy's tags, handed to the exporter.

use crate::trace::context::SpanContext;

/// The span of a stream in progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveSpan {
    /// This span's ids and sampling decision.
    pub context: SpanContext,
    /// The operation name (the decorator's, or the provider's default).
    pub name: String,
    /// Zipkin's shared span context: the span reuses the client's span id.
    pub shared: bool,
    /// The incoming W3C `tracestate` (OpenTelemetry).
    pub trace_state: Option<String>,
}

/// The trace state of one stream.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StreamTrace {
    /// None: the tracer made no span (no provider, or a malformed incoming context).
    pub span: Option<ActiveSpan>,
    /// The decorator's operation, sent downstream as `x-envoy-decorator-operation`.
    pub propagate_operation: Option<String>,
}

/// A span that ended, as the collectors receive it.
#[derive(Debug, Clone, PartialEq)]
pub struct FinishedSpan {
    pub context: SpanContext,
    pub name: String,
    pub shared: bool,
    pub trace_state: Option<String>,
    /// Microseconds since the Unix epoch.
    pub start_us: u64,
    pub duration_us: u64,
    /// Tags in the order Envoy sets them (a later tag of the same name wins).
    pub tags: Vec<(String, String)>,
    /// The `error` tag is set (5xx or no response).
    pub error: bool,
}

impl FinishedSpan {
    /// Set `name` to `value`, replacing an earlier value (Envoy's tag map).
    pub fn set_tag(&mut self, name: &str, value: impl Into<String>) {
        let value = value.into();
        if let Some(t) = self.tags.iter_mut().find(|(n, _)| n == name) {
            t.1 = value;
        } else {
            self.tags.push((name.to_string(), value));
        }
    }

    pub fn tag(&self, name: &str) -> Option<&str> {
        self.tags.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}
