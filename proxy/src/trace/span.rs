//! A request's span: started when the connection manager has the request's route
//! (Envoy's `traceRequest`), finished with the stream (`finalizeDownstreamSpan`), and
//! then a [`FinishedSpan`]: plain data with Envoy's tags, handed to the worker's span buffer.

use std::borrow::Cow;

use crate::trace::context::SpanContext;

/// A tag's name or value: most are fixed strings, borrowed rather than allocated.
pub type TagText = Cow<'static, str>;

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
    /// The upstream tries' spans (`spawn_upstream_span`), oldest first.
    pub upstream: Vec<crate::trace::upstream::UpstreamTry>,
    /// The decorator's operation, sent downstream as `x-envoy-decorator-operation`.
    pub propagate_operation: Option<String>,
    /// The stream's timing events (`verbose`, sampled spans only).
    pub timing: Option<crate::trace::timing::StreamTiming>,
}

impl StreamTrace {
    /// Record what `p` shows happened, when the tracer is verbose.
    pub fn observe(&mut self, p: &crate::trace::timing::Progress, now: std::time::Instant) {
        if let Some(t) = self.timing.as_mut() {
            t.observe(p, now);
        }
    }
}

/// Zipkin's `kind`, OpenTelemetry's `SpanKind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpanKind {
    /// The connection manager's span of a downstream request.
    Server,
    /// An upstream request's span (`spawn_upstream_span`).
    Client,
}

/// A span that ended, as the collectors receive it.
#[derive(Debug, Clone, PartialEq)]
pub struct FinishedSpan {
    pub context: SpanContext,
    pub kind: SpanKind,
    pub name: String,
    pub shared: bool,
    pub trace_state: Option<String>,
    /// Microseconds since the Unix epoch.
    pub start_us: u64,
    pub duration_us: u64,
    /// Tags in the order Envoy sets them (a later tag of the same name wins).
    pub tags: Vec<(TagText, TagText)>,
    /// The `error` tag is set (5xx or no response).
    pub error: bool,
    /// Timing logs (`verbose`), in Envoy's order.
    pub logs: Vec<crate::trace::timing::SpanLog>,
}

impl FinishedSpan {
    /// Set `name` to `value`, replacing an earlier value (Envoy's tag map).
    pub fn set_tag(&mut self, name: impl Into<TagText>, value: impl Into<TagText>) {
        let (name, value) = (name.into(), value.into());
        if let Some(t) = self.tags.iter_mut().find(|(n, _)| *n == name) {
            t.1 = value;
        } else {
            self.tags.push((name, value));
        }
    }

    /// Add a tag the span does not have yet (the tracer's own, each set once).
    pub fn push_tag(&mut self, name: &'static str, value: impl Into<TagText>) {
        debug_assert!(self.tag(name).is_none(), "{name} set twice");
        self.tags.push((Cow::Borrowed(name), value.into()));
    }

    pub fn tag(&self, name: &str) -> Option<&str> {
        self.tags.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_ref())
    }
}
