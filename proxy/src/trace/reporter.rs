//! A tracer's span reporter, shared by the workers (Envoy's Zipkin `ReporterImpl`,
//! OpenTelemetry's `OpenTelemetryHttpTraceExporter` and `OpenTelemetryGrpcTraceExporter`):
//! what a report looks like on the wire, the async client of the collector cluster,
//! the runtime keys of the flush knobs, and the counters, by Envoy's names:
//! `tracing.zipkin.{spans_sent, timer_flushed, reports_sent, reports_dropped,
//! reports_failed}`, `tracing.opentelemetry.{spans_sent, timer_flushed,
//! http_reports_sent, http_reports_success, http_reports_failed}`, plus sluice's
//! `spans_dropped` (spans a full per-worker buffer turned away).
//!
//! The buffering and the flushing are per worker ([`crate::trace::span_buffer`]); a
//! report is one request through the worker's own async client, so the collector is a
//! normal cluster (balancing, pools, circuit breakers, both datapaths). As in Envoy, any
//! HTTP response counts as an answer, the router's own 503 included: Zipkin counts a
//! status other than 202 in `reports_dropped` and a reset or timeout in
//! `reports_failed`; OTLP/HTTP counts 200 in `http_reports_success`, anything else in
//! `http_reports_failed`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::http::async_client::{grpc, AsyncClient, Call, Outcome, Request};
use crate::http::{RequestHead, Version};
use crate::stats::SharedCounter;
use crate::trace::otlp::{self, KeyValue};
use crate::trace::span::FinishedSpan;
use crate::trace::zipkin::{self, LocalEndpoint};

/// The unary method an OTLP/gRPC report calls.
pub const OTLP_GRPC_EXPORT: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// What a report looks like on the wire.
#[derive(Debug)]
pub enum Format {
    /// Zipkin v2 to `endpoint`, `Host: hostname`: JSON, or protobuf when `proto`.
    Zipkin { endpoint: String, hostname: String, local: LocalEndpoint, proto: bool },
    /// OTLP/HTTP protobuf: `POST path`, `Host: host`, with `headers`.
    OtlpHttp { path: String, host: String, headers: Vec<(String, String)>, resource: Vec<KeyValue> },
    /// OTLP/gRPC: a unary `TraceService/Export` call, `:authority` the cluster's name.
    OtlpGrpc { authority: String, resource: Vec<KeyValue> },
}

impl Format {
    /// The stats and runtime prefix.
    pub fn prefix(&self) -> &'static str {
        match self {
            Format::Zipkin { .. } => "tracing.zipkin",
            Format::OtlpHttp { .. } | Format::OtlpGrpc { .. } => "tracing.opentelemetry",
        }
    }

    /// The report of `spans`.
    pub fn request(&self, spans: &[FinishedSpan], timeout: Duration) -> Request {
        let no_headers: &[(String, String)] = &[];
        let (path, host, content_type, extra, body): (&String, &String, &[u8], _, _) = match self {
            Format::Zipkin { endpoint, hostname, local, proto: false } => {
                (endpoint, hostname, b"application/json", no_headers, zipkin::encode(spans, local))
            }
            Format::Zipkin { endpoint, hostname, local, proto: true } => {
                (endpoint, hostname, b"application/x-protobuf", no_headers, zipkin::encode_proto(spans, local))
            }
            Format::OtlpHttp { path, host, headers, resource } => {
                (path, host, b"application/x-protobuf", headers.as_slice(), otlp::encode(spans, resource))
            }
            Format::OtlpGrpc { authority, resource } => {
                return grpc::request(authority, OTLP_GRPC_EXPORT, &otlp::encode(spans, resource), Some(timeout));
            }
        };
        let mut head = RequestHead {
            method: "POST".to_string(),
            scheme: "http".to_string(),
            authority: host.to_string(),
            path: path.to_string(),
            version: Some(Version::Http11),
            ..RequestHead::default()
        };
        head.headers.set(b"content-type", content_type);
        for (k, v) in extra {
            head.headers.append(k.as_bytes(), v.as_bytes());
        }
        Request { head, body, timeout: Some(timeout) }
    }
}

/// A tracer's counters, by Envoy name (registered with the stats store).
#[derive(Debug, Default)]
pub struct ReporterStats {
    pub spans_sent: Arc<SharedCounter>,
    pub timer_flushed: Arc<SharedCounter>,
    /// Zipkin: `reports_sent` (202); OTLP/HTTP: `http_reports_success` (200).
    pub reports_ok: Arc<SharedCounter>,
    /// Zipkin: `reports_dropped` (another status); OTLP/HTTP: `http_reports_failed`.
    pub reports_rejected: Arc<SharedCounter>,
    /// Zipkin: `reports_failed` (reset, timeout); OTLP/HTTP: `http_reports_failed`.
    pub reports_failed: Arc<SharedCounter>,
    /// OTLP/HTTP: `http_reports_sent`.
    pub reports_sent: Arc<SharedCounter>,
    /// Spans a full per-worker buffer turned away (sluice's; Envoy's are unbounded).
    pub spans_dropped: Arc<SharedCounter>,
}

/// Ids that tell the reporters of all configs apart on a worker.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A tracer's reporter (shared by the workers; each keeps its own buffer).
#[derive(Debug)]
pub struct Reporter {
    pub id: u64,
    format: Format,
    client: Arc<AsyncClient>,
    timeout: Duration,
    pub stats: ReporterStats,
    pub min_flush_key: String,
    pub flush_interval_key: String,
}

impl Reporter {
    pub fn new(format: Format, client: Arc<AsyncClient>, timeout: Duration) -> Reporter {
        let prefix = format.prefix();
        Reporter {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            min_flush_key: format!("{prefix}.min_flush_spans"),
            flush_interval_key: format!("{prefix}.flush_interval_ms"),
            format,
            client,
            timeout,
            stats: ReporterStats::default(),
        }
    }

    /// The counters to register, by full name.
    pub fn counters(&self) -> Vec<(String, Arc<SharedCounter>)> {
        let (p, s) = (self.format.prefix(), &self.stats);
        let mut v = vec![
            (format!("{p}.spans_sent"), Arc::clone(&s.spans_sent)),
            (format!("{p}.timer_flushed"), Arc::clone(&s.timer_flushed)),
            (format!("{p}.spans_dropped"), Arc::clone(&s.spans_dropped)),
        ];
        match self.format {
            Format::Zipkin { .. } => {
                v.push((format!("{p}.reports_sent"), Arc::clone(&s.reports_ok)));
                v.push((format!("{p}.reports_dropped"), Arc::clone(&s.reports_rejected)));
                v.push((format!("{p}.reports_failed"), Arc::clone(&s.reports_failed)));
            }
            Format::OtlpHttp { .. } => {
                v.push((format!("{p}.http_reports_success"), Arc::clone(&s.reports_ok)));
                v.push((format!("{p}.http_reports_failed"), Arc::clone(&s.reports_failed)));
                v.push((format!("{p}.http_reports_sent"), Arc::clone(&s.reports_sent)));
            }
            Format::OtlpGrpc { .. } => {}
        }
        v
    }

    /// The report of `batch`, counted as sent.
    pub fn report(&self, batch: &[FinishedSpan]) -> Call {
        self.stats.spans_sent.add(batch.len() as u64);
        if matches!(self.format, Format::OtlpHttp { .. }) {
            self.stats.reports_sent.inc();
        }
        Call { client: Arc::clone(&self.client), request: self.format.request(batch, self.timeout), tag: 0 }
    }

    /// Count a report's outcome.
    pub fn on_complete(&self, outcome: Outcome) {
        let s = &self.stats;
        match (&self.format, outcome) {
            (Format::Zipkin { .. }, Ok(r)) if r.head.status == 202 => s.reports_ok.inc(),
            (Format::Zipkin { .. }, Ok(_)) => s.reports_rejected.inc(),
            (Format::Zipkin { .. }, Err(_)) => s.reports_failed.inc(),
            (Format::OtlpHttp { .. }, Ok(r)) if r.head.status == 200 => s.reports_ok.inc(),
            (Format::OtlpHttp { .. }, _) => s.reports_failed.inc(),
            (Format::OtlpGrpc { .. }, outcome) => {
                if let Err(status) = grpc::response(outcome) {
                    tracing::debug!(code = status.code, "OTLP/gRPC export failed: {}", status.message);
                }
            }
        }
    }
}
