//! Span export, off the request path (Envoy's Zipkin `ReporterImpl` and OpenTelemetry
//! `OpenTelemetryHttpTraceExporter`).
//!
//! Workers hand finished, sampled spans to a bounded lock-free queue and never wait:
//! a full queue drops the span and counts it (`spans_dropped`). One exporter thread
//! per tracer (started with its first span) drains the queue with Envoy's flush
//! semantics: as soon as `min_flush_spans` are waiting (runtime
//! `tracing.<tracer>.min_flush_spans`, default 5) and every flush interval
//! (`tracing.<tracer>.flush_interval_ms`, default 5000; counted in `timer_flushed`),
//! and POSTs the batch over HTTP/1.1 to a healthy host of the collector cluster (kernel
//! sockets, keep-alive, bounded by the request timeout), like the health checker does
//! from its own thread. A slow or dead collector costs spans and counters, never request
//! latency or memory beyond the queue. Stats keep Envoy's names:
//! `tracing.zipkin.{spans_sent, timer_flushed, reports_sent, reports_dropped,
//! reports_failed, reports_skipped_no_cluster}` and
//! `tracing.opentelemetry.{spans_sent, timer_flushed, http_reports_sent,
//! http_reports_success, http_reports_failed}`, plus sluice's `spans_dropped`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::Thread;
use std::time::{Duration, Instant};

use crossbeam_queue::ArrayQueue;

use crate::stats::Counter;
use crate::trace::otlp::{self, KeyValue};
use crate::trace::span::FinishedSpan;
use crate::trace::zipkin::{self, LocalEndpoint};
use crate::upstream::cluster_manager::ClusterInfo;
use crate::upstream::health::http::ResponseParser;

/// Spans a tracer holds before dropping new ones.
pub const QUEUE_CAPACITY: usize = 8192;
/// Largest batch of one report.
const MAX_BATCH: usize = 1024;

/// What a report looks like on the wire.
#[derive(Debug)]
pub enum Format {
    /// Zipkin v2 to `endpoint`, `Host: hostname`: JSON, or protobuf when `proto`.
    ZipkinJson { endpoint: String, hostname: String, local: LocalEndpoint, proto: bool },
    /// OTLP/HTTP protobuf.
    Otlp { path: String, host: String, headers: Vec<(String, String)>, resource: Vec<KeyValue> },
}

impl Format {
    fn prefix(&self) -> &'static str {
        match self {
            Format::ZipkinJson { .. } => "tracing.zipkin",
            Format::Otlp { .. } => "tracing.opentelemetry",
        }
    }

    fn request(&self, spans: &[FinishedSpan]) -> Vec<u8> {
        let no_headers: &[(String, String)] = &[];
        let (path, host, content_type, extra, body) = match self {
            Format::ZipkinJson { endpoint, hostname, local, proto: false } => {
                (endpoint, hostname, "application/json", no_headers, zipkin::encode(spans, local))
            }
            Format::ZipkinJson { endpoint, hostname, local, proto: true } => {
                (endpoint, hostname, "application/x-protobuf", no_headers, zipkin::encode_proto(spans, local))
            }
            Format::Otlp { path, host, headers, resource } => {
                (path, host, "application/x-protobuf", headers.as_slice(), otlp::encode(spans, resource))
            }
        };
        let mut out = format!("POST {path} HTTP/1.1\r\nhost: {host}\r\ncontent-type: {content_type}\r\n");
        for (k, v) in extra {
            out.push_str(&format!("{k}: {v}\r\n"));
        }
        out.push_str(&format!("content-length: {}\r\n\r\n", body.len()));
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(&body);
        bytes
    }
}

/// A tracer's counters, by Envoy name (registered with the stats store).
#[derive(Debug, Default)]
pub struct ExporterStats {
    pub spans_sent: Arc<Counter>,
    pub timer_flushed: Arc<Counter>,
    /// Zipkin: `reports_sent` (202); OpenTelemetry: `http_reports_success` (200).
    pub reports_ok: Arc<Counter>,
    /// Zipkin: `reports_dropped` (another status); OpenTelemetry: `http_reports_failed`.
    pub reports_rejected: Arc<Counter>,
    /// Zipkin: `reports_failed` (no answer); OpenTelemetry: `http_reports_failed`.
    pub reports_failed: Arc<Counter>,
    /// OpenTelemetry: `http_reports_sent`; Zipkin: `reports_skipped_no_cluster`.
    pub reports_other: Arc<Counter>,
    /// Spans the full queue turned away (sluice's; Envoy's buffers are unbounded).
    pub spans_dropped: Arc<Counter>,
}

impl ExporterStats {
    fn named(&self, format: &Format) -> Vec<(String, Arc<Counter>)> {
        let p = format.prefix();
        let mut v = vec![
            (format!("{p}.spans_sent"), Arc::clone(&self.spans_sent)),
            (format!("{p}.timer_flushed"), Arc::clone(&self.timer_flushed)),
            (format!("{p}.spans_dropped"), Arc::clone(&self.spans_dropped)),
        ];
        match format {
            Format::ZipkinJson { .. } => {
                v.push((format!("{p}.reports_sent"), Arc::clone(&self.reports_ok)));
                v.push((format!("{p}.reports_dropped"), Arc::clone(&self.reports_rejected)));
                v.push((format!("{p}.reports_failed"), Arc::clone(&self.reports_failed)));
                v.push((format!("{p}.reports_skipped_no_cluster"), Arc::clone(&self.reports_other)));
            }
            Format::Otlp { .. } => {
                v.push((format!("{p}.http_reports_success"), Arc::clone(&self.reports_ok)));
                v.push((format!("{p}.http_reports_failed"), Arc::clone(&self.reports_failed)));
                v.push((format!("{p}.http_reports_sent"), Arc::clone(&self.reports_other)));
            }
        }
        v
    }
}

struct Shared {
    queue: ArrayQueue<FinishedSpan>,
    stop: AtomicBool,
    /// Spans turned away since the exporter last counted them (many writers).
    dropped: AtomicU64,
    min_flush_spans: AtomicUsize,
    flush_interval_ms: AtomicU64,
    format: Format,
    cluster: Arc<ClusterInfo>,
    timeout: Duration,
    stats: ExporterStats,
}

/// A tracer's span queue and its exporter thread.
pub struct Exporter {
    shared: Arc<Shared>,
    thread: OnceLock<Option<Thread>>,
}

impl std::fmt::Debug for Exporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exporter").field("format", &self.shared.format).finish()
    }
}

impl Exporter {
    pub fn new(format: Format, cluster: Arc<ClusterInfo>, timeout: Duration) -> Exporter {
        Exporter {
            shared: Arc::new(Shared {
                queue: ArrayQueue::new(QUEUE_CAPACITY),
                stop: AtomicBool::new(false),
                dropped: AtomicU64::new(0),
                min_flush_spans: AtomicUsize::new(5),
                flush_interval_ms: AtomicU64::new(5000),
                format,
                cluster,
                timeout,
                stats: ExporterStats::default(),
            }),
            thread: OnceLock::new(),
        }
    }

    /// The counters to register, by full name.
    pub fn counters(&self) -> Vec<(String, Arc<Counter>)> {
        self.shared.stats.named(&self.shared.format)
    }

    /// The runtime prefix of this tracer's flush knobs (`tracing.zipkin`, ...).
    pub fn runtime_prefix(&self) -> &'static str {
        self.shared.format.prefix()
    }

    /// Queue a finished span (never blocks; a full queue drops it). `min_flush_spans`
    /// and `flush_interval_ms` are the runtime's values for this tracer.
    pub fn push(&self, span: FinishedSpan, min_flush_spans: u64, flush_interval_ms: u64) {
        let s = &self.shared;
        s.min_flush_spans.store(min_flush_spans.max(1) as usize, Ordering::Relaxed);
        s.flush_interval_ms.store(flush_interval_ms.max(1), Ordering::Relaxed);
        let full = s.queue.push(span).is_err();
        if full {
            s.dropped.fetch_add(1, Ordering::Relaxed);
        }
        let thread = self.thread.get_or_init(|| {
            let shared = Arc::clone(&self.shared);
            std::thread::Builder::new()
                .name("sluice-tracer".into())
                .spawn(move || run(&shared))
                .map(|h| h.thread().clone())
                .map_err(|e| tracing::warn!("cannot start the span exporter thread: {e}"))
                .ok()
        });
        if full || s.queue.len() >= s.min_flush_spans.load(Ordering::Relaxed) {
            if let Some(t) = thread {
                t.unpark();
            }
        }
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(Some(t)) = self.thread.get() {
            t.unpark();
        }
    }
}

/// The exporter thread: flush when enough spans wait, on the interval, and at stop.
fn run(s: &Shared) {
    let mut conn: Option<(TcpStream, SocketAddr)> = None;
    let mut next_host = 0usize;
    let mut next_timer = Instant::now() + Duration::from_millis(s.flush_interval_ms.load(Ordering::Relaxed));
    loop {
        let dropped = s.dropped.swap(0, Ordering::Relaxed);
        if dropped > 0 {
            s.stats.spans_dropped.add(dropped);
        }
        let stop = s.stop.load(Ordering::Relaxed);
        let now = Instant::now();
        let timer = now >= next_timer;
        if timer {
            s.stats.timer_flushed.inc();
            next_timer = now + Duration::from_millis(s.flush_interval_ms.load(Ordering::Relaxed));
        }
        let due = stop || timer || dropped > 0 || s.queue.len() >= s.min_flush_spans.load(Ordering::Relaxed);
        if due && !s.queue.is_empty() {
            let mut batch = Vec::with_capacity(s.queue.len().min(MAX_BATCH));
            while batch.len() < MAX_BATCH {
                match s.queue.pop() {
                    Some(span) => batch.push(span),
                    None => break,
                }
            }
            report(s, &batch, &mut conn, &mut next_host);
            continue;
        }
        if stop {
            return;
        }
        std::thread::park_timeout(next_timer.saturating_duration_since(Instant::now()));
    }
}

/// Send one batch and count the outcome.
fn report(s: &Shared, batch: &[FinishedSpan], conn: &mut Option<(TcpStream, SocketAddr)>, next_host: &mut usize) {
    let st = &s.stats;
    let otlp = matches!(s.format, Format::Otlp { .. });
    st.spans_sent.add(batch.len() as u64);
    let hosts = s.cluster.hosts();
    let healthy: Vec<SocketAddr> = hosts.hosts.iter().filter(|h| h.healthy()).map(|h| h.address).collect();
    if healthy.is_empty() && conn.is_none() {
        if otlp {
            st.reports_other.inc();
            st.reports_failed.inc();
        } else {
            st.reports_failed.inc();
        }
        return;
    }
    if otlp {
        st.reports_other.inc();
    }
    let request = s.format.request(batch);
    let deadline = Instant::now() + s.timeout;
    // A kept connection may have been closed by the collector: one fresh try then.
    for attempt in 0..2 {
        if conn.is_none() {
            if healthy.is_empty() {
                break;
            }
            let addr = healthy[*next_host % healthy.len()];
            *next_host = next_host.wrapping_add(1);
            match TcpStream::connect_timeout(&addr, s.cluster.config.connect_timeout.min(s.timeout)) {
                Ok(c) => {
                    let _ = c.set_nodelay(true);
                    *conn = Some((c, addr));
                }
                Err(e) => {
                    tracing::debug!(%addr, "span collector connect failed: {e}");
                    break;
                }
            }
        }
        let Some((c, _)) = conn.as_mut() else { break };
        match exchange(c, &request, deadline) {
            Ok((status, close)) => {
                if close {
                    *conn = None;
                }
                let ok = if otlp { status == 200 } else { status == 202 };
                if ok {
                    st.reports_ok.inc();
                } else if otlp {
                    st.reports_failed.inc();
                } else {
                    st.reports_rejected.inc();
                }
                return;
            }
            Err(reused_and_closed) => {
                *conn = None;
                if !(reused_and_closed && attempt == 0) {
                    break;
                }
            }
        }
    }
    st.reports_failed.inc();
}

/// Write the request and read the response head and body. `Err(true)`: the
/// connection was closed before any answer (retry on a fresh one).
fn exchange(c: &mut TcpStream, request: &[u8], deadline: Instant) -> Result<(u16, bool), bool> {
    let left = |d: Instant| d.saturating_duration_since(Instant::now()).max(Duration::from_millis(1));
    c.set_write_timeout(Some(left(deadline))).map_err(|_| false)?;
    if c.write_all(request).is_err() {
        return Err(true);
    }
    let mut parser = ResponseParser::new(false);
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let mut got_any = false;
    loop {
        if Instant::now() >= deadline {
            return Err(false);
        }
        c.set_read_timeout(Some(left(deadline))).map_err(|_| false)?;
        match c.read(&mut chunk) {
            Ok(0) => {
                return match parser.on_eof() {
                    Ok(r) => Ok((r.status, true)),
                    Err(_) => Err(!got_any),
                }
            }
            Ok(n) => {
                got_any = true;
                buf.extend_from_slice(&chunk[..n]);
                match parser.feed(&mut buf) {
                    Ok(Some(r)) => return Ok((r.status, r.close)),
                    Ok(None) => {}
                    Err(_) => return Err(false),
                }
            }
            Err(_) => return Err(false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::context::SpanContext;
    use crate::trace::span::SpanKind;
    use crate::upstream::cluster_manager::{static_hosts, ClusterManager};

    fn span() -> FinishedSpan {
        FinishedSpan {
            context: SpanContext { trace_id: 1, span_id: 1, parent_id: 0, sampled: true },
            kind: SpanKind::Server,
            name: "n".into(),
            shared: false,
            trace_state: None,
            start_us: 0,
            duration_us: 0,
            tags: Vec::new(),
            error: false,
        }
    }

    /// A dead collector: every span is either sent (and the report fails) or dropped at
    /// the full queue, and the queue never holds more than its capacity.
    #[test]
    fn a_full_queue_drops_and_counts() {
        let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let yaml = format!(
            "static_resources:\n  clusters:\n  - name: c\n    connect_timeout: 0.2s\n    load_assignment: {{cluster_name: c, endpoints: [{{lb_endpoints: [{{endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {}}}}}}}}}]}}]}}\n",
            dead.port()
        );
        let b = sluice_config::load_str(&yaml).unwrap_or_else(|e| panic!("{e}")).bootstrap;
        let cm = ClusterManager::new(b.clusters, static_hosts);
        let local = LocalEndpoint { service_name: String::new(), address: "127.0.0.1".parse().unwrap() };
        let format = Format::ZipkinJson { endpoint: "/api/v2/spans".into(), hostname: "c".into(), local, proto: false };
        let exporter = Exporter::new(format, Arc::clone(cm.get("c").unwrap()), Duration::from_secs(1));
        let counters = exporter.counters();
        let get = |name: &str| counters.iter().find(|(n, _)| n.ends_with(name)).map_or(0, |(_, c)| c.get());
        let pushed = QUEUE_CAPACITY as u64 + 500;
        for _ in 0..pushed {
            // No flush by count or timer: only a full queue wakes the exporter.
            exporter.push(span(), u64::MAX, 3_600_000);
            assert!(exporter.shared.queue.len() <= QUEUE_CAPACITY);
        }
        drop(exporter);
        let deadline = Instant::now() + Duration::from_secs(10);
        while get("spans_sent") + get("spans_dropped") < pushed && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(get("spans_sent") + get("spans_dropped"), pushed);
        assert!(get("spans_dropped") > 0);
        assert!(get("reports_failed") >= 1);
        assert_eq!(get("reports_sent"), 0);
    }
}
