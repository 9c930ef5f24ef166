//! Envoy's layered runtime: values that change behaviour without a config reload.
//!
//! The [`Loader`] (main thread) owns the layers configured in `layered_runtime` and
//! builds an immutable [`Snapshot`] whenever one changes: at start, on the admin
//! server's `/runtime_modify`, and when a disk layer's symlink is swapped. It publishes
//! the snapshot ([`Published`]); each worker adopts the latest one at its next loop
//! boundary and reads it lock-free on the request path. Cluster-wide values
//! (circuit-breaker limits, the panic threshold) are pushed into the clusters by the
//! main thread ([`apply_to_clusters`]). The keys read, and where:
//! - route `match.runtime_fraction`, `weighted_clusters.runtime_key_prefix`, request
//!   mirror `runtime_fraction` (router/);
//! - the fault filter's `fault.http.*` keys (http/filters/fault.rs);
//! - `upstream.maintenance_mode.<cluster>` ([`maintenance`]); `upstream.use_retry`
//!   ([`USE_RETRY`], the router's retry decision);
//! - `upstream.healthy_panic_threshold`, `circuit_breakers.<cluster>.default.*` and
//!   `health_check.{min,max}_interval`, the outlier detector's `outlier_detection.*`
//!   keys ([`apply_to_clusters`], upstream/outlier/runtime.rs);
//! - access log `status_code_filter` / `duration_filter` `runtime_key` (access_log/);
//! - `envoy.resource_limits.listener.<name>.connection_limit` and
//!   `overload.global_downstream_max_connections` ([`listener_limit`]).

mod disk;
pub mod listener_limit;
mod loader;
pub mod maintenance;
mod snapshot;

pub use loader::{Loader, Published, NO_ADMIN_LAYER};
pub use snapshot::{Layer, Snapshot};

use crate::upstream::cluster_manager::ClusterManager;

/// `upstream.use_retry`: the percentage of retries the router may make (default 100).
pub const USE_RETRY: &str = "upstream.use_retry";

/// `upstream.healthy_panic_threshold`.
pub const HEALTHY_PANIC_THRESHOLD: &str = "upstream.healthy_panic_threshold";

/// Push the cluster-wide runtime values of `snapshot` into `clusters`: each cluster's
/// circuit-breaker limits, health-check interval bounds and panic threshold (its
/// priority set is rebuilt when the threshold changed).
pub fn apply_to_clusters(snapshot: &Snapshot, clusters: &ClusterManager) {
    for c in &clusters.clusters {
        c.apply_runtime(snapshot);
    }
}
