//! `upstream.maintenance_mode.<cluster>`: the share of a cluster's requests the router
//! answers itself, as Envoy's router does before it picks a host.
//!
//! The value is an integer percent (`featureEnabled(key, 0)`: absent means never; 100
//! or more means always). A request in maintenance gets 503 `maintenance mode` with
//! `x-envoy-overloaded: true` (unless `suppress_envoy_headers`), response flag `UO`,
//! and counts `cluster.<name>.upstream_rq_maintenance_mode` (and, as Envoy's
//! `chargeUpstreamCode`, `upstream_rq_5xx` and `upstream_rq_completed`).

use crate::http::filters::router::LocalReply;
use crate::http::response_flags::ResponseFlags;
use crate::stats::ClusterStats;

use super::Snapshot;

/// The local reply's body.
pub const BODY: &str = "maintenance mode";

/// The runtime key of a cluster.
pub fn key(cluster_name: &str) -> String {
    format!("upstream.maintenance_mode.{cluster_name}")
}

/// The reply for a request to a cluster in maintenance, if this one is (`random`: a
/// uniform random value).
pub fn check(
    runtime: &Snapshot,
    key: &str,
    random: u64,
    stats: &ClusterStats,
    suppress_envoy_headers: bool,
) -> Option<LocalReply> {
    if !runtime.feature_enabled(key, 0, random) {
        return None;
    }
    stats.upstream_rq_maintenance_mode.inc();
    stats.upstream_rq_5xx.inc();
    stats.upstream_rq_completed.inc();
    Some(LocalReply {
        status: 503,
        body: BODY,
        flags: ResponseFlags::UPSTREAM_OVERFLOW,
        overloaded: !suppress_envoy_headers,
    })
}
