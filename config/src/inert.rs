//! The one list of Envoy fields sluice accepts without acting on them, by design.
//!
//! A field sluice accepts either behaves as Envoy documents it, or is here: a field that
//! changes nothing a client or an upstream can see (identity for a management server,
//! opaque metadata, stats and logging of the proxy itself, knobs of features that are
//! rejected elsewhere, or that Envoy itself does not implement). Such a field is
//! accepted with a warning that gives its reason, once per field. Every other field is
//! implemented, accepted only at the value that changes nothing
//! ([`crate::decode::Fields::default_only`], [`crate::decode::Fields::empty_only`]), or
//! rejected as unsupported. A unit test pins this list so that it cannot grow silently.

/// `(field name, why it changes nothing in sluice)`.
pub const INERT: &[(&str, &str)] = &[
    ("node", "identifies the proxy to a management server; only id, cluster and locality.zone are read: sent over ADS (with sluice's user agent), and used for runtime keys and trace spans"),
    ("node_context_params", "xDS-TP resource-name parameters; sluice refuses xDS-TP locators"),
    (
        "metadata",
        "opaque data for filters and xDS; sluice reads it only on routes, clusters and lb_endpoints (tracing's metadata custom tags)",
    ),
    (
        "typed_filter_metadata",
        "typed metadata for filters; nothing in sluice reads it (metadata custom tags read filter_metadata, as Envoy's metadataValue)",
    ),
    (
        "traffic_direction",
        "a label for Windows original-destination and egress spans; sluice names every span as ingress",
    ),
    ("stats_flush_interval", "how often stats go to sinks; sluice has none (stats_sinks is rejected)"),
    ("stats_config", "stat tag extraction and matching: names in the stats output only"),
    ("enable_dispatcher_stats", "event-loop latency histograms: stats only"),
    ("application_log_config", "the format of the proxy's own log"),
    ("profile_path", "where the admin CPU profiler writes; sluice has no profiler"),
    ("track_cluster_stats", "extra per-cluster stats"),
    ("track_timeout_budgets", "extra per-cluster stats"),
    ("dynamic_stats", "extra router stats"),
    ("disable_downstream_cluster_stats", "fault filter stats by downstream cluster"),
    ("total_weight", "deprecated: Envoy now uses the sum of the weights, as sluice does"),
    (
        "response_rate_limit_percent_runtime",
        "the runtime key of response rate-limit faults, which are rejected (response_rate_limit)",
    ),
    ("metadata_match", "selects a subset of lb_subset_config, which is rejected: without subsets Envoy ignores it too"),
    ("locality", "used only by locality-weighted and zone-aware balancing, which are rejected (common_lb_config)"),
    ("proximity", "not implemented by Envoy either"),
    ("alt_port", "not implemented by Envoy either"),
    ("event_log_path", "the health checker's event log: logging only"),
    ("event_logger", "the health checker's event log: logging only"),
    ("event_service", "not implemented by Envoy either"),
    ("always_log_health_check_success", "the health checker's event log: logging only"),
    ("enable_ja3_fingerprinting", "adds a fingerprint for access logs only"),
    ("enable_ja4_fingerprinting", "adds a fingerprint for access logs only"),
    ("max_program_size", "a deprecated RE2 limit; sluice's regex engine bounds programs itself"),
    ("content_type", "the content type of a formatted local reply; a file access log has none"),
    ("accept_http_10", "a server-side option: an upstream connection receives no requests"),
    ("default_host_for_http_10", "a server-side option: an upstream connection receives no requests"),
];

/// Fields warned and ignored where sluice behaves as one of their settings and not yet
/// as the other (none today).
pub const PENDING: &[(&str, &str)] = &[];

/// Why an ignored field changes nothing, if it is on either list.
pub fn reason(name: &str) -> Option<&'static str> {
    INERT.iter().chain(PENDING).find(|(n, _)| *n == name).map(|(_, r)| *r)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The by-design list, pinned: adding a field here is a decision to review, not a
    /// way to make a config load.
    #[test]
    fn the_inert_list_is_pinned() {
        let names: Vec<&str> = INERT.iter().map(|(n, _)| *n).collect();
        assert_eq!(
            names,
            [
                "node",
                "node_context_params",
                "metadata",
                "typed_filter_metadata",
                "traffic_direction",
                "stats_flush_interval",
                "stats_config",
                "enable_dispatcher_stats",
                "application_log_config",
                "profile_path",
                "track_cluster_stats",
                "track_timeout_budgets",
                "dynamic_stats",
                "disable_downstream_cluster_stats",
                "total_weight",
                "response_rate_limit_percent_runtime",
                "metadata_match",
                "locality",
                "proximity",
                "alt_port",
                "event_log_path",
                "event_logger",
                "event_service",
                "always_log_health_check_success",
                "enable_ja3_fingerprinting",
                "enable_ja4_fingerprinting",
                "max_program_size",
                "content_type",
                "accept_http_10",
                "default_host_for_http_10",
            ]
        );
        let pending: Vec<&str> = PENDING.iter().map(|(n, _)| *n).collect();
        assert!(pending.is_empty(), "{pending:?}");
        for (name, reason) in INERT.iter().chain(PENDING) {
            assert!(!reason.is_empty() && !reason.contains('\n'), "{name}: one-line reason");
        }
    }

    /// Every `ignored(...)` call in the config crate names only listed fields: a field
    /// cannot be warned-and-ignored without a reason here.
    #[test]
    fn every_ignored_call_names_a_listed_field() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = vec![root];
        let mut seen = 0;
        while let Some(path) = files.pop() {
            if path.is_dir() {
                files.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") || path.ends_with("inert.rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let mut rest = text.as_str();
            while let Some(at) = rest.find(".ignored(") {
                rest = &rest[at + ".ignored(".len()..];
                let call = &rest[..rest.find(']').expect("ignored(d, &[...]) call")];
                for name in call.split('"').skip(1).step_by(2) {
                    seen += 1;
                    assert!(reason(name).is_some(), "{}: `{name}` is ignored but not listed", path.display());
                }
            }
        }
        assert!(seen > 10, "found only {seen} ignored fields: is the scan still finding the calls?");
    }
}
