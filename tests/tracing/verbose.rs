//! `tracing.verbose`: the request's span carries Envoy's timing logs, in
//! `annotateVerbose`'s order and at times inside the span, as OTLP span events and as
//! Zipkin annotations; without `verbose` it carries none.

use sluice_config::node::{Node, Value};
use sluice_e2e::backend::{Backend, Net};
use sluice_e2e::on_both_backends;

use super::{field, Collector, Setup, OTEL, ZIPKIN};

on_both_backends!(verbose_spans_log_the_stream_timing_events);

const EVENTS: [&str; 7] = [
    "last_downstream_rx_byte_received",
    "first_upstream_tx_byte_sent",
    "last_upstream_tx_byte_sent",
    "first_upstream_rx_byte_received",
    "last_upstream_rx_byte_received",
    "first_downstream_tx_byte_sent",
    "last_downstream_tx_byte_sent",
];

/// The span's logs as (name, time): OTLP `events` (`name`, `time` in ns) or Zipkin
/// `annotations` (`value`, `timestamp` in us), times in ns.
fn logs(span: &Node) -> Vec<(String, u64)> {
    let Value::Map(fields) = &span.value else { panic!("a span is an object") };
    let zipkin = field(span, "format").as_deref() == Some("zipkin");
    let (list, name, time, scale) =
        if zipkin { ("annotations", "value", "timestamp", 1000) } else { ("events", "name", "time", 1) };
    let Some((_, items)) = fields.iter().find(|(k, _)| k.name == list) else { return Vec::new() };
    let Value::Seq(items) = &items.value else { return Vec::new() };
    items.iter().map(|i| (field(i, name).unwrap(), field(i, time).unwrap().parse::<u64>().unwrap() * scale)).collect()
}

/// The span's start and end in ns.
fn bounds(span: &Node) -> (u64, u64) {
    let num = |f: &str| field(span, f).unwrap().parse::<u64>().unwrap();
    if field(span, "format").as_deref() == Some("zipkin") {
        (num("timestamp") * 1000, (num("timestamp") + num("duration")) * 1000)
    } else {
        (num("start"), num("start") + num("duration"))
    }
}

fn verbose_spans_log_the_stream_timing_events(backend: Backend) {
    let net = Net::new(backend);
    let collector = Collector::start();
    for provider in [ZIPKIN, OTEL] {
        for verbose in [true, false] {
            let before = collector.spans().len();
            let s = Setup::start(&net, &format!("{provider}  verbose: {verbose}\n"), collector.addr);
            let (r, _) = s.send("/a", &[]);
            assert_eq!(r.status, 200);
            let spans = collector.wait_for(before + 1);
            let span = &spans[before];
            let logs = logs(span);
            if !verbose {
                assert_eq!(logs, [], "no logs without verbose");
                continue;
            }
            let names: Vec<&str> = logs.iter().map(|(n, _)| n.as_str()).collect();
            assert_eq!(names, EVENTS, "{span:#?}");
            let (start, end) = bounds(span);
            // The span's start and duration are whole microseconds (each rounded down).
            let slack = 2_000;
            for (n, t) in &logs {
                assert!(*t + slack >= start && *t <= end + slack, "{n} at {t} outside {start}..{end}");
            }
            let at = |name: &str| logs.iter().find(|(n, _)| n == name).unwrap().1;
            for chain in [
                &EVENTS[0..4],
                &["first_upstream_rx_byte_received", "first_downstream_tx_byte_sent", "last_downstream_tx_byte_sent"],
                &["first_upstream_rx_byte_received", "last_upstream_rx_byte_received", "last_downstream_tx_byte_sent"],
            ] {
                for w in chain.windows(2) {
                    assert!(at(w[0]) <= at(w[1]), "{} after {}: {logs:?}", w[0], w[1]);
                }
            }
        }
    }
}
