//! Spans buffered when a worker stops reach the collector: a drain (what SIGTERM does
//! to the binary) and a stop (what a second signal or admin `/quitquitquit` does) send
//! every waiting span before the worker exits, although neither `min_flush_spans` nor
//! the flush timer asked for a report yet. The flush is bounded: a collector that never
//! answers holds the exit for [`EXIT_FLUSH`] at most, and its report counts as failed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_e2e::backend::{Backend, Net};
use sluice_e2e::config::{http, Cluster};
use sluice_e2e::conn::Acceptor;
use sluice_e2e::free_port;
use sluice_e2e::http_client::{get, Client};
use sluice_e2e::on_both_backends;
use sluice_e2e::proxy::Proxy;

use super::{Collector, Extra, Setup, OTEL, ZIPKIN};

on_both_backends!(
    a_drained_worker_flushes_its_buffered_spans,
    a_stopped_worker_flushes_its_buffered_spans,
    a_stopped_worker_waits_for_a_silent_collector_2s_at_most,
);

/// How long a stopping worker waits for its last reports (sluice's `EXIT_FLUSH_TIME`).
const EXIT_FLUSH: Duration = Duration::from_secs(2);

/// Reports only at 100 spans or after a minute.
const HOLD: &str = "layered_runtime:\n  layers:\n  - name: static\n    static_layer:\n      tracing.zipkin.min_flush_spans: 100\n      tracing.zipkin.flush_interval_ms: 60000\n      tracing.opentelemetry.min_flush_spans: 100\n      tracing.opentelemetry.flush_interval_ms: 60000\n";

/// A proxy whose worker has served 3 traced requests and holds their spans (`HOLD`):
/// none has reached the collector yet.
fn three_buffered_spans<'n>(net: &'n Net, provider: &str, collector: &Collector) -> Setup<'n> {
    let before = collector.spans().len();
    let s = Setup::start_with(net, provider, collector.addr, &Extra { runtime: HOLD, ..Extra::default() });
    for _ in 0..3 {
        let (r, _) = s.send("/", &[]);
        assert_eq!(r.status, 200);
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(collector.spans().len(), before, "the spans wait in the worker's buffer");
    s
}

fn a_drained_worker_flushes_its_buffered_spans(backend: Backend) {
    let net = Net::new(backend);
    let collector = Collector::start();
    for (provider, stat) in [(ZIPKIN, "tracing.zipkin.spans_sent"), (OTEL, "tracing.opentelemetry.spans_sent")] {
        let before = collector.spans().len();
        let s = three_buffered_spans(&net, provider, &collector);
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

/// A second SIGTERM/SIGINT or `/quitquitquit` (`Control::stop`): the connections are
/// reset at once, and the buffered spans still go out before the workers exit.
fn a_stopped_worker_flushes_its_buffered_spans(backend: Backend) {
    let net = Net::new(backend);
    let collector = Collector::start();
    for (provider, stat, answered) in [
        (ZIPKIN, "tracing.zipkin.spans_sent", "tracing.zipkin.reports_sent"),
        (OTEL, "tracing.opentelemetry.spans_sent", "tracing.opentelemetry.http_reports_success"),
    ] {
        let before = collector.spans().len();
        let s = three_buffered_spans(&net, provider, &collector);
        let Setup { proxy, origin, _relay, .. } = s;
        let stats = Arc::clone(proxy.stats());
        let started = Instant::now();
        proxy.stop();
        proxy.join(Duration::from_secs(10)).expect("the workers exit when stopped");
        assert!(started.elapsed() < EXIT_FLUSH + Duration::from_secs(1), "bounded: {:?}", started.elapsed());
        let spans = collector.wait_for(before + 3);
        assert_eq!(spans.len(), before + 3);
        assert_eq!(stats.get(stat), Some(3));
        assert_eq!(stats.get(answered), Some(1), "the worker waited for the collector's answer");
        drop((origin, _relay));
    }
}

/// A collector that takes the report and never answers: the stopped worker exits
/// after [`EXIT_FLUSH`], not at the report's 5 s timeout, and the report is counted
/// in `reports_failed`.
fn a_stopped_worker_waits_for_a_silent_collector_2s_at_most(backend: Backend) {
    let net = Net::new(backend);
    let silent = Acceptor::start(net.listen(), |mut c, _| {
        let _ = std::io::copy(&mut c, &mut std::io::sink());
    });
    let s = Setup::start_with(&net, ZIPKIN, silent.addr, &Extra { runtime: HOLD, ..Extra::default() });
    for _ in 0..3 {
        let (r, _) = s.send("/", &[]);
        assert_eq!(r.status, 200);
    }
    let Setup { proxy, origin, _relay, .. } = s;
    let stats = Arc::clone(proxy.stats());
    let started = Instant::now();
    proxy.stop();
    proxy.join(Duration::from_secs(10)).expect("the workers exit when stopped");
    let took = started.elapsed();
    assert!(took >= EXIT_FLUSH - Duration::from_millis(100), "the report had its time: {took:?}");
    assert!(took < EXIT_FLUSH + Duration::from_secs(1), "bounded: {took:?}");
    assert!(silent.accepted() >= 1, "the report reached the collector");
    assert_eq!(stats.get("tracing.zipkin.spans_sent"), Some(3));
    assert_eq!(stats.get("tracing.zipkin.reports_failed"), Some(1));
    assert_eq!(stats.get("tracing.zipkin.reports_sent"), Some(0));
    drop((origin, _relay, silent));
}

/// The binary: admin `/quitquitquit`, and a second SIGTERM while a drain waits for an
/// unfinished request, both still send the buffered spans before the process exits.
#[test]
fn the_binary_flushes_on_quitquitquit_and_on_a_second_sigterm() {
    let collector = Collector::start();
    let routes = "- name: all\n  domains: [\"*\"]\n  routes:\n  - match: { prefix: \"/\" }\n    direct_response: { status: 200 }\n";
    let clusters = [Cluster { name: "collector", ports: &[collector.addr.port()], extra: "" }];
    for how in ["/quitquitquit", "second SIGTERM"] {
        let before = collector.spans().len();
        let (port, admin) = (free_port(), free_port());
        let yaml = format!(
            "admin:\n  address: {{ socket_address: {{ address: 127.0.0.1, port_value: {admin} }} }}\n{}{HOLD}",
            http(port, routes, &clusters, ZIPKIN, "")
        );
        let mut p = Proxy::start(&yaml, &["--concurrency", "1", "--drain-time-s", "30"]);
        for _ in 0..3 {
            assert_eq!(get(port, "/").status, 200);
        }
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(collector.spans().len(), before, "{how}: the spans wait in the worker's buffer");
        let started = Instant::now();
        if how == "/quitquitquit" {
            assert_eq!(Client::connect(admin).request("POST", "/quitquitquit", &[], b"").status, 200);
        } else {
            // A request that never ends holds the drain for its 30 s.
            let mut held = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
            std::io::Write::write_all(&mut held, b"GET / HTTP/1.1\r\nhost: x\r\n").unwrap();
            std::thread::sleep(Duration::from_millis(200));
            p.signal("TERM");
            p.wait_for_log("shutting down", Duration::from_secs(5));
            std::thread::sleep(Duration::from_millis(300));
            p.signal("TERM");
        }
        assert!(p.wait_exit(Duration::from_secs(10)).success(), "{how}: {}", p.log());
        assert!(started.elapsed() < Duration::from_secs(5), "{how}: bounded: {:?}", started.elapsed());
        let spans = collector.wait_for(before + 3);
        assert_eq!(spans.len(), before + 3, "{how}");
    }
}
