//! Stats with Envoy's names: per-worker, lock-free, merged on read.
//!
//! Each worker owns its own block of counters for every scope (a listener, a cluster, a
//! tcp_proxy or HTTP connection manager `stat_prefix`). Only that worker writes them, so
//! recording is a relaxed load and store: no lock, no read-modify-write, no allocation.
//! Readers (the admin server, logs) sum the blocks of all workers. Scopes are keyed by
//! their Envoy stat name so that a config reload keeps the counters of unchanged
//! scopes.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// A monotonically increasing count, written by one worker.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub const fn new() -> Counter {
        Counter(AtomicU64::new(0))
    }

    #[inline]
    pub fn inc(&self) {
        self.add(1);
    }

    #[inline]
    pub fn add(&self, n: u64) {
        // Single writer: load + store is enough and compiles to plain moves.
        self.0.store(self.0.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A counter written by several threads at once: the HTTP filters' and tracers' stats
/// (owned by the compiled config, which all workers share, as Envoy's are) and the
/// process-wide ones. [`Counter`]'s load-and-store would lose increments here.
#[derive(Debug, Default)]
pub struct SharedCounter(AtomicU64);

impl SharedCounter {
    pub const fn new() -> SharedCounter {
        SharedCounter(AtomicU64::new(0))
    }

    #[inline]
    pub fn inc(&self) {
        self.add(1);
    }

    #[inline]
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A level that goes up and down, written by one worker (summed across workers).
#[derive(Debug, Default)]
pub struct Gauge(AtomicI64);

impl Gauge {
    #[inline]
    pub fn inc(&self) {
        self.add(1);
    }

    #[inline]
    pub fn dec(&self) {
        self.add(-1);
    }

    #[inline]
    pub fn add(&self, n: i64) {
        self.0.store(self.0.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
    }

    /// Set the level (gauges that mirror a state, e.g. `membership_healthy`).
    #[inline]
    pub fn set(&self, v: i64) {
        self.0.store(v, Ordering::Relaxed);
    }

    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Whether a stat is a counter or a gauge (for the Prometheus `# TYPE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatKind {
    Counter,
    Gauge,
}

/// A scope's stats, enumerable by name.
pub trait Scope: Default + Send + Sync + 'static {
    /// The Envoy prefix of the scope kind, e.g. `listener` or `cluster`.
    const KIND: &'static str;
    fn for_each(&self, f: &mut dyn FnMut(&'static str, StatKind, i64));
    /// Every histogram of the scope.
    fn for_each_histogram(&self, f: &mut dyn FnMut(&'static str, &crate::histogram::Histogram));
}

/// Declare a scope struct of counters, gauges and histograms. A field may name its
/// stat explicitly (`field = "dotted.name": Counter`) when Envoy's name is not an
/// identifier.
#[macro_export]
macro_rules! stats_scope {
    ($(#[$meta:meta])* pub struct $name:ident ($kind:literal) { $($field:ident $(= $stat:literal)? : $ty:ident),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Default)]
        pub struct $name { $(pub $field: $crate::stats_scope!(@type $ty)),* }
        impl $crate::stats::Scope for $name {
            const KIND: &'static str = $kind;
            fn for_each(&self, f: &mut dyn FnMut(&'static str, $crate::stats::StatKind, i64)) {
                $( $crate::stats_scope!(@visit $ty, f, $crate::stats_scope!(@name $field $($stat)?), &self.$field); )*
            }
            #[allow(unused_variables)]
            fn for_each_histogram(&self, f: &mut dyn FnMut(&'static str, &$crate::histogram::Histogram)) {
                $( $crate::stats_scope!(@hvisit $ty, f, $crate::stats_scope!(@name $field $($stat)?), &self.$field); )*
            }
        }
    };
    (@name $field:ident $stat:literal) => { $stat };
    (@name $field:ident) => { stringify!($field) };
    (@type Counter) => { $crate::stats::Counter };
    (@type Gauge) => { $crate::stats::Gauge };
    (@type Histogram) => { $crate::histogram::Histogram };
    (@visit Counter, $f:ident, $n:expr, $v:expr) => { $f($n, $crate::stats::StatKind::Counter, $v.get() as i64) };
    (@visit Gauge, $f:ident, $n:expr, $v:expr) => { $f($n, $crate::stats::StatKind::Gauge, $v.get()) };
    (@visit Histogram, $f:ident, $n:expr, $v:expr) => { let _ = $v; };
    (@hvisit Histogram, $f:ident, $n:expr, $v:expr) => { $f($n, $v) };
    (@hvisit $other:ident, $f:ident, $n:expr, $v:expr) => { let _ = $v; };
}

stats_scope! {
    /// `listener.<address or stat_prefix>.*`
    pub struct ListenerStats ("listener") {
        downstream_cx_total: Counter,
        downstream_cx_active: Gauge,
        downstream_cx_destroy: Counter,
        downstream_cx_transport_socket_connect_timeout: Counter,
        downstream_pre_cx_timeout: Counter,
        downstream_pre_cx_active: Gauge,
        no_filter_chain_match: Counter,
        downstream_cx_overflow: Counter,
        downstream_global_cx_overflow: Counter,
        downstream_cx_overload_reject: Counter,
        downstream_cx_accept_error: Counter,
        tls_found = "tls_inspector.tls_found": Counter,
        tls_not_found = "tls_inspector.tls_not_found": Counter,
        tls_sni_found = "tls_inspector.sni_found": Counter,
        tls_sni_not_found = "tls_inspector.sni_not_found": Counter,
        tls_alpn_found = "tls_inspector.alpn_found": Counter,
        tls_alpn_not_found = "tls_inspector.alpn_not_found": Counter,
        tls_client_hello_too_large = "tls_inspector.client_hello_too_large": Counter,
        http10_found = "http_inspector.http10_found": Counter,
        http11_found = "http_inspector.http11_found": Counter,
        http2_found = "http_inspector.http2_found": Counter,
        http_not_found = "http_inspector.http_not_found": Counter,
        downstream_cx_ssl_handshake_error = "ssl.connection_error": Counter,
        downstream_cx_ssl_handshake = "ssl.handshake": Counter,
        ssl_fail_verify_no_cert = "ssl.fail_verify_no_cert": Counter,
        ssl_fail_verify_error = "ssl.fail_verify_error": Counter,
        ssl_fail_verify_san = "ssl.fail_verify_san": Counter,
    }
}

stats_scope! {
    /// `cluster.<name>.*`
    pub struct ClusterStats ("cluster") {
        upstream_cx_total: Counter,
        upstream_cx_active: Gauge,
        upstream_cx_connect_fail: Counter,
        upstream_cx_connect_timeout: Counter,
        upstream_cx_connect_attempts_exceeded: Counter,
        upstream_cx_destroy: Counter,
        upstream_cx_destroy_local: Counter,
        upstream_cx_destroy_remote: Counter,
        upstream_cx_none_healthy: Counter,
        upstream_cx_overflow: Counter,
        upstream_cx_idle_timeout: Counter,
        upstream_cx_rx_bytes_total: Counter,
        upstream_cx_tx_bytes_total: Counter,
        upstream_rq_total: Counter,
        upstream_rq_active: Gauge,
        upstream_rq_time: Histogram,
        upstream_rq_pending_total: Counter,
        upstream_rq_pending_active: Gauge,
        upstream_rq_pending_overflow: Counter,
        upstream_rq_1xx: Counter,
        upstream_rq_2xx: Counter,
        upstream_rq_3xx: Counter,
        upstream_rq_4xx: Counter,
        upstream_rq_5xx: Counter,
        upstream_rq_completed: Counter,
        upstream_rq_timeout: Counter,
        upstream_rq_per_try_timeout: Counter,
        upstream_rq_rx_reset: Counter,
        upstream_rq_tx_reset: Counter,
        upstream_rq_retry: Counter,
        upstream_rq_retry_success: Counter,
        upstream_rq_retry_overflow: Counter,
        upstream_rq_retry_limit_exceeded: Counter,
        upstream_rq_maintenance_mode: Counter,
        upstream_internal_redirect_succeeded_total: Counter,
        upstream_internal_redirect_failed_total: Counter,
        upstream_cx_http1_total: Counter,
        upstream_cx_http2_total: Counter,
        upstream_cx_pool_overflow: Counter,
        upstream_rq_overflow: Counter,
        lb_healthy_panic: Counter,
        upstream_flow_control_paused_reading_total: Counter,
        upstream_flow_control_resumed_reading_total: Counter,
    }
}

stats_scope! {
    /// `cluster.<name>.*` stats kept by the cluster itself rather than by a worker:
    /// membership gauges (written under the cluster's update lock by whoever publishes
    /// a host-set change) and the active health checker's and outlier detector's
    /// counters (written only by the upstream monitor thread). One writer at a time, so
    /// the same relaxed load/store recording as worker stats is exact.
    /// `health_check.verify_cluster` counts service-name verifications in Envoy;
    /// `service_name_matcher` is refused at config load, so it stays 0.
    pub struct UpstreamStats ("cluster") {
        membership_change: Counter,
        membership_total: Gauge,
        membership_healthy: Gauge,
        membership_degraded: Gauge,
        membership_excluded: Gauge,
        hc_attempt = "health_check.attempt": Counter,
        hc_success = "health_check.success": Counter,
        hc_failure = "health_check.failure": Counter,
        hc_network_failure = "health_check.network_failure": Counter,
        hc_passive_failure = "health_check.passive_failure": Counter,
        hc_verify_cluster = "health_check.verify_cluster": Counter,
        hc_healthy = "health_check.healthy": Gauge,
        hc_degraded = "health_check.degraded": Gauge,
        od_ejections_active = "outlier_detection.ejections_active": Gauge,
        od_ejections_overflow = "outlier_detection.ejections_overflow": Counter,
        od_ejections_total = "outlier_detection.ejections_total": Counter,
        od_ejections_consecutive_5xx = "outlier_detection.ejections_consecutive_5xx": Counter,
        od_ejections_success_rate = "outlier_detection.ejections_success_rate": Counter,
        od_ejections_enforced_total = "outlier_detection.ejections_enforced_total": Counter,
        od_ejections_detected_consecutive_5xx = "outlier_detection.ejections_detected_consecutive_5xx": Counter,
        od_ejections_enforced_consecutive_5xx = "outlier_detection.ejections_enforced_consecutive_5xx": Counter,
        od_ejections_detected_success_rate = "outlier_detection.ejections_detected_success_rate": Counter,
        od_ejections_enforced_success_rate = "outlier_detection.ejections_enforced_success_rate": Counter,
        od_ejections_detected_consecutive_gateway_failure = "outlier_detection.ejections_detected_consecutive_gateway_failure": Counter,
        od_ejections_enforced_consecutive_gateway_failure = "outlier_detection.ejections_enforced_consecutive_gateway_failure": Counter,
        od_ejections_detected_consecutive_local_origin_failure = "outlier_detection.ejections_detected_consecutive_local_origin_failure": Counter,
        od_ejections_enforced_consecutive_local_origin_failure = "outlier_detection.ejections_enforced_consecutive_local_origin_failure": Counter,
        od_ejections_detected_local_origin_success_rate = "outlier_detection.ejections_detected_local_origin_success_rate": Counter,
        od_ejections_enforced_local_origin_success_rate = "outlier_detection.ejections_enforced_local_origin_success_rate": Counter,
        od_ejections_detected_failure_percentage = "outlier_detection.ejections_detected_failure_percentage": Counter,
        od_ejections_enforced_failure_percentage = "outlier_detection.ejections_enforced_failure_percentage": Counter,
        od_ejections_detected_local_origin_failure_percentage = "outlier_detection.ejections_detected_local_origin_failure_percentage": Counter,
        od_ejections_enforced_local_origin_failure_percentage = "outlier_detection.ejections_enforced_local_origin_failure_percentage": Counter,
    }
}

stats_scope! {
    /// `tcp.<stat_prefix>.*` (tcp_proxy)
    pub struct TcpProxyStats ("tcp") {
        downstream_cx_total: Counter,
        downstream_cx_no_route: Counter,
        downstream_cx_rx_bytes_total: Counter,
        downstream_cx_tx_bytes_total: Counter,
        downstream_flow_control_paused_reading_total: Counter,
        downstream_flow_control_resumed_reading_total: Counter,
        idle_timeout: Counter,
        max_downstream_connection_duration: Counter,
        upstream_flush_total: Counter,
    }
}

stats_scope! {
    /// `http.<stat_prefix>.*` (HTTP connection manager)
    pub struct HttpStats ("http") {
        downstream_cx_total: Counter,
        downstream_cx_active: Gauge,
        downstream_cx_http1_total: Counter,
        downstream_cx_http1_active: Gauge,
        downstream_cx_http2_total: Counter,
        downstream_cx_http2_active: Gauge,
        downstream_cx_protocol_error: Counter,
        downstream_cx_idle_timeout: Counter,
        downstream_cx_max_duration_reached: Counter,
        downstream_cx_max_requests_reached: Counter,
        downstream_cx_drain_close: Counter,
        downstream_cx_overload_disable_keepalive: Counter,
        downstream_rq_overload_close: Counter,
        downstream_cx_destroy_remote_active_rq: Counter,
        downstream_cx_rx_bytes_total: Counter,
        downstream_cx_tx_bytes_total: Counter,
        downstream_flow_control_paused_reading_total: Counter,
        downstream_flow_control_resumed_reading_total: Counter,
        downstream_cx_upgrades_total: Counter,
        downstream_cx_upgrades_active: Gauge,
        downstream_rq_ws_on_non_ws_route: Counter,
        downstream_rq_total: Counter,
        downstream_rq_http1_total: Counter,
        downstream_rq_http2_total: Counter,
        downstream_rq_active: Gauge,
        downstream_rq_time: Histogram,
        downstream_rq_1xx: Counter,
        downstream_rq_2xx: Counter,
        downstream_rq_3xx: Counter,
        downstream_rq_4xx: Counter,
        downstream_rq_5xx: Counter,
        downstream_rq_completed: Counter,
        downstream_rq_timeout: Counter,
        downstream_rq_idle_timeout: Counter,
        downstream_rq_header_timeout: Counter,
        downstream_rq_max_duration_reached: Counter,
        downstream_rq_rx_reset: Counter,
        downstream_rq_tx_reset: Counter,
        downstream_rq_non_relative_path: Counter,
        downstream_rq_failed_path_normalization: Counter,
        downstream_rq_redirected_with_normalized_path: Counter,
        downstream_rq_too_large: Counter,
        downstream_rq_response_before_rq_complete: Counter,
        downstream_rq_rejected_via_ip_detection: Counter,
        downstream_rq_too_many_premature_resets: Counter,
        no_route: Counter,
        no_cluster: Counter,
        rq_direct_response: Counter,
        rq_redirect: Counter,
        rq_total: Counter,
        passthrough_internal_redirect_bad_location: Counter,
        passthrough_internal_redirect_unsafe_scheme: Counter,
        passthrough_internal_redirect_too_many_redirects: Counter,
        passthrough_internal_redirect_no_route: Counter,
        passthrough_internal_redirect_predicate: Counter,
        http2_rx_reset = "http2.rx_reset": Counter,
        http2_tx_reset = "http2.tx_reset": Counter,
        http2_rx_messaging_error = "http2.rx_messaging_error": Counter,
        http2_goaway_sent = "http2.goaway_sent": Counter,
        tracing_random_sampling = "tracing.random_sampling": Counter,
        tracing_service_forced = "tracing.service_forced": Counter,
        tracing_client_enabled = "tracing.client_enabled": Counter,
        tracing_not_traceable = "tracing.not_traceable": Counter,
        http2_header_overflow = "http2.header_overflow": Counter,
        http2_inbound_empty_frames_flood = "http2.inbound_empty_frames_flood": Counter,
        http2_inbound_window_update_frames_flood = "http2.inbound_window_update_frames_flood": Counter,
        http2_inbound_priority_frames_flood = "http2.inbound_priority_frames_flood": Counter,
        http2_outbound_flood = "http2.outbound_flood": Counter,
        http2_outbound_control_flood = "http2.outbound_control_flood": Counter,
    }
}

stats_scope! {
    /// `xdp.queue_<n>.*` (xdp mode): one AF_XDP queue, its stack and its core's flow
    /// steering. Written by the queue's worker from the datapath's own counters about
    /// once a second (never on the packet path), so they lag by up to that much.
    pub struct XdpQueueStats ("xdp") {
        rx_packets: Counter,
        rx_bytes: Counter,
        tx_packets: Counter,
        tx_bytes: Counter,
        rx_fill_ring_empty: Counter,
        rx_ring_full: Counter,
        rx_dropped: Counter,
        rx_invalid: Counter,
        rx_no_socket: Counter,
        tx_ring_full: Counter,
        tx_invalid: Counter,
        tx_kicks: Counter,
        rx_wakeups: Counter,
        handoff_sent: Counter,
        handoff_received: Counter,
        handoff_dropped: Counter,
        handoff_wakeups: Counter,
        neighbors_shared: Counter,
        neighbors_learned: Counter,
        accepts: Counter,
        connects: Counter,
        connect_exhausted: Counter,
        listen_overflows: Counter,
        syn_dropped_no_slot: Counter,
        syn_took_closed_tuple: Counter,
        rst_undelivered: Counter,
        arp_requests: Counter,
        time_wait_evicted: Counter,
        rx_no_buffer: Counter,
        tx_no_buffer: Counter,
        connections: Gauge,
        time_wait: Gauge,
        buffer_bytes: Gauge,
    }
}

/// Every worker's block of one scope kind, by scope name.
pub struct Registry<S: Scope> {
    scopes: Mutex<BTreeMap<String, Vec<Arc<S>>>>,
    workers: usize,
}

impl<S: Scope> Registry<S> {
    pub fn new(workers: usize) -> Registry<S> {
        Registry { scopes: Mutex::new(BTreeMap::new()), workers }
    }

    /// The blocks of scope `name`, one per worker (created on first use, kept after).
    pub fn scope(&self, name: &str) -> Vec<Arc<S>> {
        let mut scopes = self.scopes.lock().unwrap_or_else(|e| e.into_inner());
        scopes
            .entry(name.to_string())
            .or_insert_with(|| (0..self.workers).map(|_| Arc::new(S::default())).collect())
            .clone()
    }

    /// Register blocks created elsewhere under `name` (stats owned by a cluster rather
    /// than by the workers), replacing any previous blocks of that name.
    pub fn insert(&self, name: &str, blocks: Vec<Arc<S>>) {
        let mut scopes = self.scopes.lock().unwrap_or_else(|e| e.into_inner());
        scopes.insert(name.to_string(), blocks);
    }

    /// Sum every scope over all workers: `(full name, kind, value)`, sorted by name.
    pub fn collect(&self, out: &mut Vec<(String, StatKind, i64)>) {
        self.visit(&mut |name, stat, kind, v| out.push((format!("{}.{}.{}", S::KIND, name, stat), kind, v)));
    }

    /// Visit every scope's merged values: `(scope name, stat, kind, value)`.
    pub fn visit(&self, f: &mut dyn FnMut(&str, &'static str, StatKind, i64)) {
        let scopes = self.scopes.lock().unwrap_or_else(|e| e.into_inner());
        for (name, blocks) in scopes.iter() {
            let mut merged: Vec<(&'static str, StatKind, i64)> = Vec::new();
            for block in blocks {
                let mut i = 0;
                block.for_each(&mut |stat, kind, v| {
                    if merged.len() <= i {
                        merged.push((stat, kind, 0));
                    }
                    merged[i].2 += v;
                    i += 1;
                });
            }
            for (stat, kind, v) in merged {
                f(name, stat, kind, v);
            }
        }
    }

    /// Visit every scope's merged histograms: `(scope name, stat, merged)`.
    pub fn visit_histograms(&self, f: &mut dyn FnMut(&str, &'static str, &crate::histogram::Snapshot)) {
        let scopes = self.scopes.lock().unwrap_or_else(|e| e.into_inner());
        for (name, blocks) in scopes.iter() {
            let mut merged: Vec<(&'static str, crate::histogram::Snapshot)> = Vec::new();
            for block in blocks {
                let mut i = 0;
                block.for_each_histogram(&mut |stat, h| {
                    if merged.len() <= i {
                        merged.push((stat, Default::default()));
                    }
                    h.merge_into(&mut merged[i].1);
                    i += 1;
                });
            }
            for (stat, snap) in &merged {
                f(name, stat, snap);
            }
        }
    }

    /// Merge every histogram over all workers: `(full name, merged)`.
    pub fn collect_histograms(&self, out: &mut Vec<(String, crate::histogram::Snapshot)>) {
        self.visit_histograms(&mut |name, stat, snap| {
            out.push((format!("{}.{}.{}", S::KIND, name, stat), snap.clone()))
        });
    }
}

stats_scope! {
    /// `overload.<action name>.*` (written by the overload manager's thread).
    pub struct OverloadActionStats ("overload") {
        active: Gauge,
        scale_percent: Gauge,
    }
}

stats_scope! {
    /// `overload.<resource monitor name>.*` (written by the overload manager's thread).
    pub struct OverloadMonitorStats ("overload") {
        pressure: Gauge,
        failed_updates: Counter,
        skipped_updates: Counter,
    }
}

/// `runtime.*` (Envoy's `RuntimeStats`), written by the runtime loader on the main
/// thread.
#[derive(Debug, Default)]
pub struct RuntimeStats {
    pub load_success: Counter,
    pub load_error: Counter,
    pub override_dir_exists: Counter,
    pub override_dir_not_exists: Counter,
    pub num_keys: Gauge,
    pub num_layers: Gauge,
    pub admin_overrides_active: Gauge,
}

impl RuntimeStats {
    fn collect(&self, out: &mut Vec<(String, StatKind, i64)>) {
        for (name, v) in [
            ("load_success", &self.load_success),
            ("load_error", &self.load_error),
            ("override_dir_exists", &self.override_dir_exists),
            ("override_dir_not_exists", &self.override_dir_not_exists),
        ] {
            out.push((format!("runtime.{name}"), StatKind::Counter, v.get() as i64));
        }
        for (name, v) in [
            ("num_keys", &self.num_keys),
            ("num_layers", &self.num_layers),
            ("admin_overrides_active", &self.admin_overrides_active),
        ] {
            out.push((format!("runtime.{name}"), StatKind::Gauge, v.get()));
        }
    }
}

/// Counters owned by compiled config objects (HTTP filters' stats, shared by the
/// workers as Envoy's are), by full name. Several objects may own a counter of the same
/// name (two connection managers with one `stat_prefix`): the stat is their sum, as
/// Envoy's one counter of that name would be.
#[derive(Default)]
pub struct NamedCounters(Mutex<BTreeMap<String, Vec<Arc<SharedCounter>>>>);

impl NamedCounters {
    /// The counters of the config now serving, replacing the previous config's.
    pub fn replace(&self, counters: impl IntoIterator<Item = (String, Arc<SharedCounter>)>) {
        let mut map: BTreeMap<String, Vec<Arc<SharedCounter>>> = BTreeMap::new();
        for (name, c) in counters {
            map.entry(name).or_default().push(c);
        }
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = map;
    }

    fn collect(&self, out: &mut Vec<(String, StatKind, i64)>) {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        out.extend(map.iter().map(|(n, cs)| (n.clone(), StatKind::Counter, cs.iter().map(|c| c.get() as i64).sum())));
    }
}

/// One xDS subscription's stats (Envoy's `SubscriptionStats`), under
/// `listener_manager.lds.`, `cluster_manager.cds.` or (EDS) `cluster.<name>.`: written
/// on the main thread.
#[derive(Debug, Default)]
pub struct SubscriptionStats {
    pub update_attempt: Counter,
    pub update_success: Counter,
    /// The file could not be read or parsed.
    pub update_failure: Counter,
    /// The file parsed but its resources were refused.
    pub update_rejected: Counter,
    /// xxHash64 of the `version_info` in force (masked to 63 bits: sluice's gauges are signed).
    pub version: Gauge,
    /// Initial fetches that timed out (RDS; EDS, LDS and CDS over ADS).
    pub init_fetch_timeout: Counter,
    /// RDS only (shown with `rds`): updates that changed the routes, files with no
    /// resources.
    pub config_reload: Counter,
    pub update_empty: Counter,
    rds: bool,
    /// SDS only (shown with `sds`): a rotation of a secret's files that could not be
    /// read or used.
    pub key_rotation_failed: Counter,
    sds: bool,
}

impl SubscriptionStats {
    /// The stats of an RDS subscription (with `config_reload`, `update_empty`).
    pub fn rds() -> SubscriptionStats {
        SubscriptionStats { rds: true, ..SubscriptionStats::default() }
    }

    /// The stats of an SDS subscription (with `key_rotation_failed`), under
    /// `sds.<secret name>.`.
    pub fn sds() -> SubscriptionStats {
        SubscriptionStats { sds: true, ..SubscriptionStats::default() }
    }
}

/// `control_plane.*` (Envoy's `ControlPlaneStats`): the ADS stream's state, written
/// by the main thread.
#[derive(Debug, Default)]
pub struct ControlPlaneStats {
    /// 1 while the stream to the control plane is open.
    pub connected_state: Gauge,
}

/// The subscriptions of the config now serving, by stat prefix.
#[derive(Default)]
pub struct Subscriptions(Mutex<Vec<(String, Arc<SubscriptionStats>)>>);

impl Subscriptions {
    /// The stats of `prefix` (`listener_manager.lds`), created on first use; kept across
    /// reloads, as Envoy's are.
    pub fn scope(&self, prefix: &'static str) -> Arc<SubscriptionStats> {
        let mut list = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, s)) = list.iter().find(|(p, _)| *p == prefix) {
            return Arc::clone(s);
        }
        let s = Arc::new(SubscriptionStats::default());
        list.push((prefix.to_string(), Arc::clone(&s)));
        s
    }

    /// Put `stats` under `prefix` (a config built before the store existed).
    pub fn insert(&self, prefix: &str, stats: Arc<SubscriptionStats>) {
        let mut list = self.0.lock().unwrap_or_else(|e| e.into_inner());
        list.retain(|(p, _)| p != prefix);
        list.push((prefix.to_string(), stats));
    }

    fn collect(&self, out: &mut Vec<(String, StatKind, i64)>) {
        let unknown = crate::xds::DYNAMIC_UNKNOWN_FIELDS.get() as i64;
        out.push(("server.dynamic_unknown_fields".to_string(), StatKind::Counter, unknown));
        for (prefix, s) in self.0.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            for (name, c) in [
                ("update_attempt", &s.update_attempt),
                ("update_success", &s.update_success),
                ("update_failure", &s.update_failure),
                ("update_rejected", &s.update_rejected),
                ("init_fetch_timeout", &s.init_fetch_timeout),
            ] {
                out.push((format!("{prefix}.{name}"), StatKind::Counter, c.get() as i64));
            }
            if s.rds {
                for (name, c) in [("config_reload", &s.config_reload), ("update_empty", &s.update_empty)] {
                    out.push((format!("{prefix}.{name}"), StatKind::Counter, c.get() as i64));
                }
            }
            if s.sds {
                out.push((
                    format!("{prefix}.key_rotation_failed"),
                    StatKind::Counter,
                    s.key_rotation_failed.get() as i64,
                ));
            }
            out.push((format!("{prefix}.version"), StatKind::Gauge, s.version.get()));
        }
    }
}

/// All stats of the process.
pub struct Store {
    pub listeners: Registry<ListenerStats>,
    pub clusters: Registry<ClusterStats>,
    pub tcp: Registry<TcpProxyStats>,
    pub http: Registry<HttpStats>,
    /// Cluster-owned stats (one block per cluster, see [`UpstreamStats`]).
    pub upstream: Registry<UpstreamStats>,
    /// AF_XDP queues (xdp mode; one block per queue, written by its worker).
    pub xdp: Registry<XdpQueueStats>,
    /// The overload manager's actions and monitors (one block each).
    pub overload_actions: Registry<OverloadActionStats>,
    pub overload_monitors: Registry<OverloadMonitorStats>,
    pub runtime: Arc<RuntimeStats>,
    /// HTTP filters' counters (`http.<prefix>.cors.*`, `<prefix>.http_local_rate_limit.*`, ...).
    pub filters: NamedCounters,
    /// File-based xDS subscriptions (`listener_manager.lds.*`, `cluster_manager.cds.*`).
    pub subscriptions: Subscriptions,
    /// The ADS stream's stats (set once an `ads_config` is served).
    pub control_plane: std::sync::OnceLock<Arc<ControlPlaneStats>>,
}

impl Store {
    pub fn new(workers: usize) -> Store {
        Store {
            listeners: Registry::new(workers),
            clusters: Registry::new(workers),
            tcp: Registry::new(workers),
            http: Registry::new(workers),
            upstream: Registry::new(1),
            xdp: Registry::new(1),
            overload_actions: Registry::new(1),
            overload_monitors: Registry::new(1),
            runtime: Arc::default(),
            filters: NamedCounters::default(),
            subscriptions: Subscriptions::default(),
            control_plane: std::sync::OnceLock::new(),
        }
    }

    /// The `control_plane.*` stats, created on first use.
    pub fn control_plane(&self) -> Arc<ControlPlaneStats> {
        Arc::clone(self.control_plane.get_or_init(Arc::default))
    }

    /// Every stat, merged across workers, sorted by name.
    pub fn collect(&self) -> Vec<(String, StatKind, i64)> {
        let mut out = Vec::new();
        self.listeners.collect(&mut out);
        self.clusters.collect(&mut out);
        self.tcp.collect(&mut out);
        self.http.collect(&mut out);
        self.upstream.collect(&mut out);
        self.xdp.collect(&mut out);
        self.overload_actions.collect(&mut out);
        self.overload_monitors.collect(&mut out);
        self.runtime.collect(&mut out);
        self.filters.collect(&mut out);
        self.subscriptions.collect(&mut out);
        if let Some(cp) = self.control_plane.get() {
            out.push(("control_plane.connected_state".into(), StatKind::Gauge, cp.connected_state.get()));
        }
        for (name, v) in crate::access_log::sink::counters() {
            out.push((name.to_string(), StatKind::Counter, v as i64));
        }
        for (name, v) in crate::http::grpc_stats::counters() {
            out.push((name, StatKind::Counter, v as i64));
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Every histogram, merged across workers, sorted by name.
    pub fn collect_histograms(&self) -> Vec<(String, crate::histogram::Snapshot)> {
        let mut out = Vec::new();
        self.listeners.collect_histograms(&mut out);
        self.clusters.collect_histograms(&mut out);
        self.tcp.collect_histograms(&mut out);
        self.http.collect_histograms(&mut out);
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// One stat by full name (tests and logs).
    pub fn get(&self, name: &str) -> Option<i64> {
        self.collect().into_iter().find(|(n, _, _)| n == name).map(|(_, _, v)| v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shared_counter_keeps_every_increment_of_concurrent_writers() {
        // The tracers' and HTTP filters' counters are written by every worker at once;
        // a load-and-store counter lost increments there (spans_sent one short).
        let c = Arc::new(SharedCounter::new());
        let writers: Vec<_> = (0..2)
            .map(|_| {
                let c = Arc::clone(&c);
                std::thread::spawn(move || (0..200_000).for_each(|_| c.inc()))
            })
            .collect();
        writers.into_iter().for_each(|w| w.join().unwrap());
        assert_eq!(c.get(), 400_000);
    }

    #[test]
    fn merged_across_workers() {
        let store = Store::new(2);
        let blocks = store.clusters.scope("backend");
        blocks[0].upstream_cx_total.inc();
        blocks[1].upstream_cx_total.add(2);
        blocks[1].upstream_cx_active.inc();
        blocks[0].upstream_cx_active.inc();
        blocks[0].upstream_cx_active.dec();
        assert_eq!(store.get("cluster.backend.upstream_cx_total"), Some(3));
        assert_eq!(store.get("cluster.backend.upstream_cx_active"), Some(1));
        // The same scope name yields the same blocks (reload keeps counters).
        store.clusters.scope("backend")[0].upstream_cx_total.inc();
        assert_eq!(store.get("cluster.backend.upstream_cx_total"), Some(4));
    }

    #[test]
    fn cluster_owned_stats_use_envoy_dotted_names() {
        let store = Store::new(2);
        let own = Arc::new(UpstreamStats::default());
        store.upstream.insert("backend", vec![Arc::clone(&own)]);
        own.od_ejections_enforced_total.add(2);
        own.hc_healthy.set(3);
        own.membership_total.set(4);
        assert_eq!(store.get("cluster.backend.outlier_detection.ejections_enforced_total"), Some(2));
        assert_eq!(store.get("cluster.backend.health_check.healthy"), Some(3));
        assert_eq!(store.get("cluster.backend.membership_total"), Some(4));
        // Worker-written and cluster-owned stats of one cluster sit side by side.
        store.clusters.scope("backend")[1].lb_healthy_panic.inc();
        assert_eq!(store.get("cluster.backend.lb_healthy_panic"), Some(1));
    }
}
