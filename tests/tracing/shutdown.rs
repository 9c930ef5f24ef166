//! Spans buffered when a worker stops reach the collector: a drain (what SIGTERM does
//! to the binary) sends every waiting span before the worker exits, although neither
//! `min_flush_spans` nor the flush timer asked for a report yet.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_e2e::backend::{Backend, Net};
use sluice_e2e::on_both_backends;

use super::{Collector, Extra, Setup, OTEL, ZIPKIN};

on_both_backends!(a_drained_worker_flushes_its_buffered_spans);

/// Reports only at 100 spans or after a minute.
const HOLD: &str = "layered_runtime:\n  layers:\n  - name: static\n    static_layer:\n      tracing.zipkin.min_flush_spans: 100\n      tracing.zipkin.flush_interval_ms: 60000\n      tracing.opentelemetry.min_flush_spans: 100\n      tracing.opentelemetry.flush_interval_ms: 60000\n";

fn a_drained_worker_flushes_its_buffered_spans(backend: Backend) {
    let net = Net::new(backend);
    let collector = Collector::start();
    for (provider, stat) in [(ZIPKIN, "tracing.zipkin.spans_sent"), (OTEL, "tracing.opentelemetry.spans_sent")] {
        let before = collector.spans().len();
        let s = Setup::start_with(&net, provider, collector.addr, &Extra { runtime: HOLD, ..Extra::default() });
        for _ in 0..3 {
            let (r, _) = s.send("/", &[]);
            assert_eq!(r.status, 200);
        }
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(collector.spans().len(), before, "the spans wait in the worker's buffer");
        let Setup { proxy, origin, _relay, .. } = s;
        let stats = Arc::clone(proxy.stats());
        let started = Instant::now();
        proxy.drain();
        proxy.join(Duration::from_secs(10)).expect("the workers exit after the drain");
        assert!(started.elapsed() < Duration::from_secs(5), "bounded: {:?}", started.elapsed());
        let spans = collector.wait_for(before + 3);
        assert_eq!(spans.len(), before + 3);
        assert_eq!(stats.get(stat), Some(3));
        drop((origin, _relay));
    }
}
