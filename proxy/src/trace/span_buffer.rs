//! A worker's finished spans, per reporter (Envoy's per-thread `SpanBuffer` and its
//! flush timer), and when they go out.
//!
//! Contract:
//! - Each buffer is bounded ([`BUFFER_CAPACITY`]): a span that finds it full is
//!   dropped and counted (`spans_dropped`); memory never grows with a slow collector.
//! - At most one report per reporter is in flight on a worker, at most [`MAX_BATCH`]
//!   spans each. A buffer is flushed once it holds `min_flush_spans` (runtime
//!   `tracing.<tracer>.min_flush_spans`, default 5) and when its flush timer fires
//!   (`tracing.<tracer>.flush_interval_ms`, default 5000; each firing counted in
//!   `timer_flushed`); spans that arrive while a report is in flight wait for its end.
//! - When the worker stops (a drain's end) or an old config generation has no
//!   connection left, [`SpanBuffers::take_remaining`] sends what waits without
//!   waiting for `min_flush_spans` or the timer.
//! - Nothing here reads the clock (`now` is a parameter) or sends anything itself: the
//!   worker asks [`SpanBuffers::take_due`] for the reports to start and hands their
//!   outcomes back ([`SpanBuffers::on_complete`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::http::async_client::{Call, Outcome};
use crate::runtime::Snapshot;
use crate::trace::reporter::Reporter;
use crate::trace::span::FinishedSpan;

/// Spans a worker holds per reporter before dropping new ones.
pub const BUFFER_CAPACITY: usize = 4096;
/// Largest batch of one report.
pub const MAX_BATCH: usize = 1024;

#[derive(Debug)]
struct Buffer {
    reporter: Arc<Reporter>,
    spans: Vec<FinishedSpan>,
    in_flight: bool,
    /// When the flush timer fires next (armed while spans wait).
    flush_at: Option<Instant>,
    min_flush: usize,
    interval: Duration,
}

/// What the worker must do after [`SpanBuffers::push`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// Nothing new.
    None,
    /// A flush is due: run the worker's background round soon.
    Now,
    /// Wake the background at this time (the flush timer).
    At(Instant),
}

/// One worker generation's span buffers.
#[derive(Debug, Default)]
pub struct SpanBuffers {
    buffers: Vec<Buffer>,
}

impl SpanBuffers {
    /// No span waits and no report is in flight.
    pub fn is_idle(&self) -> bool {
        self.buffers.iter().all(|b| b.spans.is_empty() && !b.in_flight)
    }

    /// Buffer a finished span of `reporter`.
    pub fn push(&mut self, reporter: &Arc<Reporter>, span: FinishedSpan, now: Instant, runtime: &Snapshot) -> Wake {
        let i = match self.buffers.iter().position(|b| b.reporter.id == reporter.id) {
            Some(i) => i,
            None => {
                self.buffers.push(Buffer {
                    reporter: Arc::clone(reporter),
                    spans: Vec::new(),
                    in_flight: false,
                    flush_at: None,
                    min_flush: 5,
                    interval: Duration::from_millis(5000),
                });
                self.buffers.len() - 1
            }
        };
        let b = &mut self.buffers[i];
        if b.spans.len() >= BUFFER_CAPACITY {
            b.reporter.stats.spans_dropped.inc();
            return Wake::None;
        }
        b.min_flush = runtime.get_integer(&reporter.min_flush_key, 5).clamp(1, MAX_BATCH as u64) as usize;
        b.interval = Duration::from_millis(runtime.get_integer(&reporter.flush_interval_key, 5000).max(1));
        b.spans.push(span);
        if !b.in_flight && b.spans.len() >= b.min_flush {
            return Wake::Now;
        }
        if b.flush_at.is_none() {
            let at = now + b.interval;
            b.flush_at = Some(at);
            return Wake::At(at);
        }
        Wake::None
    }

    /// The reports to start now (each counted as sent), by reporter id.
    pub fn take_due(&mut self, now: Instant) -> Vec<(u64, Call)> {
        let mut out = Vec::new();
        for b in &mut self.buffers {
            let timer = b.flush_at.is_some_and(|at| now >= at);
            if timer {
                b.flush_at = None;
                b.reporter.stats.timer_flushed.inc();
            }
            if !b.in_flight && !b.spans.is_empty() && (timer || b.spans.len() >= b.min_flush) {
                let n = b.spans.len().min(MAX_BATCH);
                let call = b.reporter.report(&b.spans[..n]);
                b.spans.drain(..n);
                b.in_flight = true;
                out.push((b.reporter.id, call));
            }
            if !b.spans.is_empty() && b.flush_at.is_none() {
                b.flush_at = Some(now + b.interval);
            }
        }
        out
    }

    /// Spans wait with no report of theirs in flight.
    pub fn has_waiting(&self) -> bool {
        self.buffers.iter().any(|b| !b.spans.is_empty() && !b.in_flight)
    }

    /// The worker (or its generation) stops: every waiting span is due now, whatever
    /// `min_flush_spans` and the flush timer say (still one report in flight per
    /// reporter, at most [`MAX_BATCH`] spans each).
    pub fn take_remaining(&mut self) -> Vec<(u64, Call)> {
        let mut out = Vec::new();
        for b in &mut self.buffers {
            if !b.in_flight && !b.spans.is_empty() {
                let n = b.spans.len().min(MAX_BATCH);
                let call = b.reporter.report(&b.spans[..n]);
                b.spans.drain(..n);
                b.in_flight = true;
                b.flush_at = None;
                out.push((b.reporter.id, call));
            }
        }
        out
    }

    /// The report of `reporter` ended.
    pub fn on_complete(&mut self, reporter: u64, outcome: Outcome) {
        if let Some(b) = self.buffers.iter_mut().find(|b| b.reporter.id == reporter) {
            b.in_flight = false;
            b.reporter.on_complete(outcome);
        }
    }

    /// The earliest flush timer.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.buffers.iter().filter_map(|b| b.flush_at).min()
    }

    /// Forget every report in flight (their requests were cancelled).
    pub fn cancelled(&mut self) {
        for b in &mut self.buffers {
            if b.in_flight {
                b.in_flight = false;
                b.reporter.stats.reports_failed.inc();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::async_client::{AsyncClient, Failure, Response};
    use crate::trace::context::SpanContext;
    use crate::trace::reporter::Format;
    use crate::trace::span::SpanKind;
    use crate::trace::zipkin::LocalEndpoint;
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
            logs: Vec::new(),
        }
    }

    fn reporter() -> Arc<Reporter> {
        let yaml = "static_resources:\n  clusters:\n  - name: c\n    load_assignment: {cluster_name: c, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 9}}}}]}]}\n";
        let b = sluice_config::load_str(yaml).unwrap_or_else(|e| panic!("{e}")).bootstrap;
        let cm = Arc::new(ClusterManager::new(b.clusters, static_hosts));
        let client = AsyncClient::new("c", &cm).unwrap();
        let local = LocalEndpoint { service_name: String::new(), address: "127.0.0.1".parse().unwrap() };
        let format = Format::Zipkin { endpoint: "/api/v2/spans".into(), hostname: "c".into(), local, proto: false };
        Arc::new(Reporter::new(format, client, Duration::from_secs(5)))
    }

    fn accepted() -> Outcome {
        let mut r = Response::default();
        r.head.status = 202;
        Ok(r)
    }

    /// `min_flush_spans` (default 5) starts a report; spans that come while it is in
    /// flight wait for its end; the outcome is counted with Envoy's names.
    #[test]
    fn flushes_at_min_flush_spans_one_report_at_a_time() {
        let (r, rt, now) = (reporter(), Snapshot::default(), Instant::now());
        let mut b = SpanBuffers::default();
        for _ in 0..4 {
            assert!(matches!(b.push(&r, span(), now, &rt), Wake::None | Wake::At(_)));
        }
        assert!(b.take_due(now).is_empty(), "4 < 5 and the timer has not fired");
        assert_eq!(b.push(&r, span(), now, &rt), Wake::Now);
        let due = b.take_due(now);
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].1.request.head.path, "/api/v2/spans");
        assert_eq!(r.stats.spans_sent.get(), 5);
        for _ in 0..5 {
            b.push(&r, span(), now, &rt);
        }
        assert!(b.take_due(now).is_empty(), "one report in flight");
        b.on_complete(r.id, accepted());
        assert_eq!(r.stats.reports_ok.get(), 1);
        assert_eq!(b.take_due(now).len(), 1);
        b.on_complete(r.id, Err(Failure::Timeout));
        assert_eq!(r.stats.reports_failed.get(), 1);
        assert!(b.is_idle());
    }

    /// The flush interval sends what waits and counts `timer_flushed`.
    #[test]
    fn the_timer_flushes_what_waits() {
        let (r, rt, now) = (reporter(), Snapshot::default(), Instant::now());
        let mut b = SpanBuffers::default();
        let Wake::At(at) = b.push(&r, span(), now, &rt) else { panic!("the timer is armed") };
        assert_eq!(at, now + Duration::from_millis(5000));
        assert_eq!(b.next_deadline(), Some(at));
        assert!(b.take_due(at - Duration::from_millis(1)).is_empty());
        assert_eq!(b.take_due(at).len(), 1);
        assert_eq!(r.stats.timer_flushed.get(), 1);
        assert_eq!(b.next_deadline(), None, "nothing waits");
    }

    /// A dead collector: the buffer stops at its capacity and counts the drops.
    #[test]
    fn a_full_buffer_drops_and_counts() {
        let (r, rt, now) = (reporter(), Snapshot::default(), Instant::now());
        let mut b = SpanBuffers::default();
        for _ in 0..5 {
            b.push(&r, span(), now, &rt);
        }
        assert_eq!(b.take_due(now).len(), 1, "then never answered");
        for _ in 0..BUFFER_CAPACITY + 100 {
            b.push(&r, span(), now, &rt);
        }
        assert_eq!(r.stats.spans_dropped.get(), 100);
        assert_eq!(b.buffers[0].spans.len(), BUFFER_CAPACITY);
        b.cancelled();
        assert_eq!(r.stats.reports_failed.get(), 1);
    }
}
