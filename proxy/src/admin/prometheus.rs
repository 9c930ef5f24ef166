//! `/stats/prometheus`: the Prometheus text exposition format (version 0.0.4), with
//! Envoy's metric names and tags: `cluster.<name>.X` becomes
//! `envoy_cluster_X{envoy_cluster_name="<name>"}`, and likewise for listeners
//! (`envoy_listener_address`), HTTP connection managers
//! (`envoy_http_conn_manager_prefix`), tcp_proxy (`envoy_tcp_prefix`) and, in xdp
//! mode, AF_XDP queues (`xdp.queue_0.rx_packets` becomes
//! `envoy_xdp_rx_packets{envoy_xdp_queue="queue_0"}`). Counters,
//! gauges and histograms (`_bucket`/`_sum`/`_count`) each get one `# TYPE` line.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::histogram::Snapshot;
use crate::stats::{Registry, Scope, StatKind, Store};

/// One metric family: its type and its samples (label, value).
#[derive(Default)]
struct Family {
    kind: &'static str,
    samples: Vec<String>,
}

/// Prometheus metric names: `[a-zA-Z_:][a-zA-Z0-9_:]*`.
fn sanitize(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == ':' { c } else { '_' }).collect()
}

/// A label value with `\`, `"` and newlines escaped.
fn label_value(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn collect<S: Scope>(reg: &Registry<S>, tag: &str, families: &mut BTreeMap<String, Family>) {
    reg.visit(&mut |scope, stat, kind, v| {
        let name = sanitize(&format!("envoy_{}_{stat}", S::KIND));
        let fam = families.entry(name.clone()).or_default();
        fam.kind = match kind {
            StatKind::Counter => "counter",
            StatKind::Gauge => "gauge",
        };
        fam.samples.push(format!("{name}{{{tag}=\"{}\"}} {v}", label_value(scope)));
    });
    reg.visit_histograms(&mut |scope, stat, h: &Snapshot| {
        let name = sanitize(&format!("envoy_{}_{stat}", S::KIND));
        let fam = families.entry(name.clone()).or_default();
        fam.kind = "histogram";
        let label = format!("{tag}=\"{}\"", label_value(scope));
        for (le, count) in h.cumulative() {
            let le = if le.is_infinite() { "+Inf".to_string() } else { format!("{le}") };
            fam.samples.push(format!("{name}_bucket{{{label},le=\"{le}\"}} {count}"));
        }
        fam.samples.push(format!("{name}_sum{{{label}}} {}", h.sum_ms()));
        fam.samples.push(format!("{name}_count{{{label}}} {}", h.count()));
    });
}

/// Render every stat of the process.
pub fn render(store: &Store) -> String {
    let mut families: BTreeMap<String, Family> = BTreeMap::new();
    collect(&store.clusters, "envoy_cluster_name", &mut families);
    collect(&store.listeners, "envoy_listener_address", &mut families);
    collect(&store.http, "envoy_http_conn_manager_prefix", &mut families);
    collect(&store.tcp, "envoy_tcp_prefix", &mut families);
    collect(&store.xdp, "envoy_xdp_queue", &mut families);
    for (stat, v) in crate::access_log::sink::counters() {
        let name = sanitize(&format!("envoy_{stat}"));
        let fam = families.entry(name.clone()).or_default();
        fam.kind = "counter";
        fam.samples.push(format!("{name} {v}"));
    }
    let mut out = String::new();
    for (name, fam) in families {
        let _ = writeln!(out, "# TYPE {name} {}", fam.kind);
        for s in fam.samples {
            out.push_str(&s);
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_with_tags() {
        let store = Store::new(1);
        store.clusters.scope("web.prod")[0].upstream_cx_total.add(3);
        store.clusters.scope("web.prod")[0].upstream_rq_time.record_us(2000);
        let text = render(&store);
        assert!(text.contains("# TYPE envoy_cluster_upstream_cx_total counter\n"), "{text}");
        assert!(text.contains("envoy_cluster_upstream_cx_total{envoy_cluster_name=\"web.prod\"} 3\n"), "{text}");
        assert!(text.contains("# TYPE envoy_cluster_upstream_rq_time histogram\n"));
        assert!(
            text.contains("envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"web.prod\",le=\"5\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("envoy_cluster_upstream_rq_time_count{envoy_cluster_name=\"web.prod\"} 1\n"));
        assert!(text.contains("envoy_cluster_upstream_cx_active{envoy_cluster_name=\"web.prod\"} 0\n"));
        assert_eq!(text.matches("# TYPE envoy_cluster_upstream_cx_total ").count(), 1);
    }

    #[test]
    fn xdp_queues_are_tagged() {
        let store = Store::new(1);
        store.xdp.scope("queue_1")[0].handoff_sent.add(7);
        let text = render(&store);
        assert!(text.contains("# TYPE envoy_xdp_handoff_sent counter\n"), "{text}");
        assert!(text.contains("envoy_xdp_handoff_sent{envoy_xdp_queue=\"queue_1\"} 7\n"), "{text}");
        assert_eq!(store.get("xdp.queue_1.handoff_sent"), Some(7));
    }
}
