//! Upstream spans (`HttpConnectionManager.Tracing.spawn_upstream_span`): as Envoy's
//! router does for each upstream request (`UpstreamRequest` with `spawnUpstreamSpan()`),
//! every try gets a CLIENT child span of the stream's span, named
//! `router <cluster> egress`, tagged `retry.count` on a retry, and its context is what
//! goes upstream (`injectContext` of the child, not of the stream's span). When the
//! stream ends each try's span is finished as Envoy's `finalizeUpstreamSpan`:
//! `http.protocol` and `upstream_address`/`peer.address` of the try, `component`,
//! `upstream_cluster(.name)`, the try's `http.status_code` (0 without a response),
//! `response_flags` of its failure, `error` on a reset or 5xx, and the custom tags. A
//! try ends where the next one starts, or with the stream.
//!
//! Only the router calls in here, and only when the stream has a span and the tracer
//! spawns upstream spans: a tracer without `spawn_upstream_span` pays a branch.

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use crate::router::retry::ResetReason;
use crate::trace::span::{ActiveSpan, StreamTrace};

/// One try's span, until the stream ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamTry {
    pub span: ActiveSpan,
    pub start_time: SystemTime,
    pub start: Instant,
    /// When the next try started (None: it lasted until the stream's end).
    pub end: Option<Instant>,
    pub cluster: String,
    pub host: SocketAddr,
    /// 1 for the first try.
    pub attempt: u32,
    pub http2: bool,
    /// The upstream's response status, once its head came.
    pub status: Option<u16>,
    pub reset: Option<ResetReason>,
}

impl UpstreamTry {
    /// How long the try lasted, `stream_end` being the stream's end.
    pub fn duration(&self, stream_end: Instant) -> Duration {
        self.end.unwrap_or(stream_end).saturating_duration_since(self.start)
    }

    /// The try's response flags (Envoy sets them on the upstream stream info).
    pub fn response_flags(&self) -> &'static str {
        match self.reset {
            None => "-",
            Some(ResetReason::ConnectFailure) => "UF",
            Some(ResetReason::Reset) => "UC",
            Some(ResetReason::PerTryTimeout) | Some(ResetReason::PerTryIdleTimeout) => "UT",
        }
    }
}

/// Where a try starts, as the router knows it.
#[derive(Debug, Clone, Copy)]
pub struct TryStart<'a> {
    pub cluster: &'a str,
    pub host: SocketAddr,
    pub attempt: u32,
    pub http2: bool,
    pub now: Instant,
    pub wall: SystemTime,
}

impl StreamTrace {
    /// The upstream status of the current try.
    pub fn on_upstream_status(&mut self, status: u16) {
        if let Some(t) = self.upstream.last_mut() {
            t.status = Some(status);
        }
    }

    /// The current try failed without a response.
    pub fn on_upstream_reset(&mut self, reason: ResetReason) {
        if let Some(t) = self.upstream.last_mut() {
            if t.status.is_none() {
                t.reset = Some(reason);
            }
        }
    }

    /// A try starts with `child` as its span: the previous try ends.
    pub(crate) fn on_try_start(&mut self, s: &TryStart<'_>, child: ActiveSpan) {
        if let Some(prev) = self.upstream.last_mut() {
            prev.end.get_or_insert(s.now);
        }
        self.upstream.push(UpstreamTry {
            span: child,
            start_time: s.wall,
            start: s.now,
            end: None,
            cluster: s.cluster.to_string(),
            host: s.host,
            attempt: s.attempt,
            http2: s.http2,
            status: None,
            reset: None,
        });
    }
}
