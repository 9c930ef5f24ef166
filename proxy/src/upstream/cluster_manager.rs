//! The cluster manager: cluster-wide state shared by all workers, and each worker's
//! thread-local view of it (Envoy's `ThreadLocalClusterManager`).
//!
//! [`ClusterInfo`] is shared (`Arc`): immutable config, the current [`PrioritySet`]
//! (hosts by priority and health, with loads and shared hash tables), republished
//! whenever membership (DNS) or health (active checks, outlier detection) changes, the
//! circuit-breaker resource counters (cluster-wide across workers, as Envoy keeps them),
//! the outlier [`Reporter`] workers feed, and the cluster-owned stats. A worker's
//! [`ThreadLocalCluster`] caches the priority set and owns its load balancer; it
//! re-reads the shared set only when the published version moved (one acquire load
//! per pick, a lock only on change). Publishing never blocks a pick for long: the set
//! is built outside the slot's lock and swapped in.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use sluice_config::cluster::{Cluster, DiscoveryType};
use sluice_stack::Wake;

use crate::rng::Rng;
use crate::stats::{ClusterStats, UpstreamStats};
use crate::upstream::host::{health_flag, Host, HostSet};
use crate::upstream::load_balancer::{LbConfig, LbContext, LoadBalancer};
use crate::upstream::outlier::{Outcome, Reporter};
use crate::upstream::priority::PrioritySet;

/// A cluster as every worker sees it.
pub struct ClusterInfo {
    pub index: usize,
    pub config: Arc<Cluster>,
    pub lb_config: LbConfig,
    priority_set: Mutex<Arc<PrioritySet>>,
    /// Bumped on every publish (membership or health).
    version: AtomicU64,
    /// Bumped when membership changes.
    membership_version: AtomicU64,
    /// Serializes publishers (DNS refresher, monitor thread).
    update_lock: Mutex<()>,
    /// Circuit-breaker resources, counted across workers.
    pub resources: Resources,
    /// Outlier detection's worker-facing half (`None` without `outlier_detection`).
    pub outlier: Option<Reporter>,
    /// Cluster-owned stats (membership, health checks, outlier detection).
    pub stats: Arc<UpstreamStats>,
    seen_traffic: AtomicBool,
    passive_hc_pending: AtomicBool,
    /// Wakes the upstream monitor thread once it runs.
    monitor: OnceLock<Arc<dyn Wake>>,
    /// TLS origination (`transport_socket` UpstreamTlsContext), if configured.
    pub tls: Option<Arc<crate::tls::ClientTlsContext>>,
    /// `upstream.maintenance_mode.<name>`.
    pub maintenance_key: String,
    /// Runtime values pushed by the main thread ([`ClusterInfo::apply_runtime`]).
    runtime: RuntimeLimits,
}

/// Circuit-breaker limits and the panic threshold as the runtime sets them
/// (`u64::MAX`: not set, the configured value applies). Envoy's `ResourceManagerImpl`
/// reads `circuit_breakers.<cluster>.default.<resource>` on every check; here the main
/// thread stores the runtime's value whenever a snapshot is published.
#[derive(Debug)]
struct RuntimeLimits {
    /// `max_connections`, `max_pending_requests`, `max_requests`, `max_retries`.
    keys: [String; 4],
    values: [AtomicU64; 4],
    panic_threshold: AtomicU64,
    /// `health_check.min_interval` / `health_check.max_interval` (milliseconds).
    hc_min_interval: AtomicU64,
    hc_max_interval: AtomicU64,
}

const NOT_SET: u64 = u64::MAX;

impl RuntimeLimits {
    fn new(cluster: &str) -> RuntimeLimits {
        let key = |r: &str| format!("circuit_breakers.{cluster}.default.{r}");
        RuntimeLimits {
            keys: [key("max_connections"), key("max_pending_requests"), key("max_requests"), key("max_retries")],
            values: Default::default(),
            panic_threshold: AtomicU64::new(NOT_SET),
            hc_min_interval: AtomicU64::new(0),
            hc_max_interval: AtomicU64::new(u64::MAX),
        }
    }

    /// The limit of resource `i`: the runtime's, else `configured`.
    fn limit(&self, i: usize, configured: u32) -> u32 {
        match self.values[i].load(Ordering::Relaxed) {
            NOT_SET => configured,
            v => v.min(u64::from(u32::MAX)) as u32,
        }
    }
}

impl std::fmt::Debug for ClusterInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterInfo")
            .field("index", &self.index)
            .field("name", &self.config.name)
            .field("version", &self.version())
            .finish_non_exhaustive()
    }
}

/// Cluster-wide resource counters checked against the circuit-breaker thresholds.
#[derive(Debug, Default)]
pub struct Resources {
    pub connections: AtomicU32,
    pub pending_requests: AtomicU32,
    pub requests: AtomicU32,
    pub retries: AtomicU32,
}

/// Try to take one unit of a resource capped at `max`; false when at the cap.
pub fn try_acquire(counter: &AtomicU32, max: u32) -> bool {
    counter.fetch_update(Ordering::AcqRel, Ordering::Relaxed, |v| if v < max { Some(v + 1) } else { None }).is_ok()
}

pub fn release(counter: &AtomicU32) {
    let _ = counter.fetch_update(Ordering::AcqRel, Ordering::Relaxed, |v| Some(v.saturating_sub(1)));
}

impl ClusterInfo {
    pub fn new(index: usize, config: Cluster, hosts: HostSet) -> ClusterInfo {
        let health_checked = !config.health_checks.is_empty();
        if health_checked {
            // Envoy starts the hosts of a health-checked cluster as failed until their
            // first check passes.
            for h in &hosts.hosts {
                h.set_flag(health_flag::FAILED_ACTIVE_HC);
            }
        }
        let lb_config = LbConfig::from_cluster(&config);
        let runtime = RuntimeLimits::new(&config.name);
        let maintenance_key = crate::runtime::maintenance::key(&config.name);
        runtime.values.iter().for_each(|v| v.store(NOT_SET, Ordering::Relaxed));
        let outlier = config.outlier_detection.clone().map(Reporter::new);
        let info = ClusterInfo {
            index,
            config: Arc::new(config),
            lb_config,
            priority_set: Mutex::new(Arc::new(PrioritySet::default())),
            version: AtomicU64::new(0),
            membership_version: AtomicU64::new(0),
            update_lock: Mutex::new(()),
            resources: Resources::default(),
            outlier,
            stats: Arc::new(UpstreamStats::default()),
            seen_traffic: AtomicBool::new(false),
            passive_hc_pending: AtomicBool::new(false),
            monitor: OnceLock::new(),
            tls: None,
            maintenance_key,
            runtime,
        };
        info.rebuild(Arc::new(hosts));
        info
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// The current membership.
    pub fn hosts(&self) -> Arc<HostSet> {
        Arc::clone(&self.priority_set().hosts)
    }

    /// The current priority set.
    pub fn priority_set(&self) -> Arc<PrioritySet> {
        Arc::clone(&self.priority_set.lock().unwrap_or_else(|e| e.into_inner()))
    }

    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    pub fn membership_version(&self) -> u64 {
        self.membership_version.load(Ordering::Acquire)
    }

    /// Whether the cluster has active health checks.
    pub fn health_checked(&self) -> bool {
        !self.config.health_checks.is_empty()
    }

    /// Build and swap in the priority set for `hosts` (caller holds `update_lock`, or
    /// is the constructor).
    fn rebuild(&self, hosts: Arc<HostSet>) {
        let ps = match self.runtime.panic_threshold.load(Ordering::Relaxed) {
            NOT_SET => PrioritySet::build(hosts, &self.lb_config),
            t => {
                let mut lb = self.lb_config.clone();
                lb.healthy_panic_threshold = t.min(100) as u32;
                PrioritySet::build(hosts, &lb)
            }
        };
        let ps = Arc::new(ps);
        self.stats.membership_total.set(ps.hosts.len() as i64);
        self.stats.membership_healthy.set(ps.healthy_count() as i64);
        self.stats.membership_degraded.set(ps.degraded_count() as i64);
        self.stats.membership_excluded.set(ps.excluded_count() as i64);
        *self.priority_set.lock().unwrap_or_else(|e| e.into_inner()) = ps;
        self.version.fetch_add(1, Ordering::AcqRel);
    }

    /// Publish a new membership (DNS); workers pick it up on their next pick. New hosts
    /// of a health-checked cluster start failed until checked.
    pub fn publish(&self, hosts: HostSet) {
        let _guard = self.update_lock.lock().unwrap_or_else(|e| e.into_inner());
        if self.health_checked() {
            let old = self.hosts();
            for h in &hosts.hosts {
                if !old.hosts.iter().any(|o| Arc::ptr_eq(o, h)) {
                    h.set_flag(health_flag::FAILED_ACTIVE_HC);
                }
            }
        }
        self.rebuild(Arc::new(hosts));
        self.stats.membership_change.inc();
        self.membership_version.fetch_add(1, Ordering::AcqRel);
        self.wake_monitor();
    }

    /// Host health flags changed: recompute and publish the priority set.
    pub fn refresh_health(&self) {
        let _guard = self.update_lock.lock().unwrap_or_else(|e| e.into_inner());
        let hosts = self.hosts();
        self.rebuild(hosts);
    }

    /// Take this cluster's runtime values from `snapshot`: circuit-breaker limits
    /// (`circuit_breakers.<name>.default.*`), the health-check interval bounds
    /// (`health_check.min_interval`, `health_check.max_interval`) and
    /// `upstream.healthy_panic_threshold`
    /// (Envoy reads it when it recomputes the priority loads; the priority set is
    /// rebuilt here when the value changed).
    pub fn apply_runtime(&self, snapshot: &crate::runtime::Snapshot) {
        for (key, value) in self.runtime.keys.iter().zip(&self.runtime.values) {
            value.store(snapshot.get_integer(key, NOT_SET), Ordering::Relaxed);
        }
        self.runtime.hc_min_interval.store(snapshot.get_integer("health_check.min_interval", 0), Ordering::Relaxed);
        self.runtime
            .hc_max_interval
            .store(snapshot.get_integer("health_check.max_interval", u64::MAX), Ordering::Relaxed);
        if let Some(o) = &self.outlier {
            o.runtime.apply(snapshot);
        }
        let threshold = snapshot.get_integer(crate::runtime::HEALTHY_PANIC_THRESHOLD, NOT_SET);
        if self.runtime.panic_threshold.swap(threshold, Ordering::Relaxed) != threshold {
            self.refresh_health();
        }
    }

    /// A health-check interval bounded as Envoy's `intervalWithJitter` bounds it: at
    /// most `health_check.max_interval`, at least `health_check.min_interval` (runtime
    /// milliseconds) and 1 ms.
    pub fn bound_health_check_interval(&self, d: std::time::Duration) -> std::time::Duration {
        let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let max = self.runtime.hc_max_interval.load(Ordering::Relaxed);
        let min = self.runtime.hc_min_interval.load(Ordering::Relaxed);
        std::time::Duration::from_millis(ms.min(max).max(min).max(1))
    }

    /// The circuit breakers' `max_connections` in force.
    pub fn max_connections(&self) -> u32 {
        self.runtime.limit(0, self.config.circuit_breakers.max_connections)
    }

    /// The DEFAULT-priority limits in force: `max_connections`, `max_pending_requests`,
    /// `max_requests`, `max_retries`.
    pub fn circuit_breaker_limits(&self) -> [u32; 4] {
        let cb = &self.config.circuit_breakers;
        [cb.max_connections, cb.max_pending_requests, cb.max_requests, cb.max_retries]
            .into_iter()
            .enumerate()
            .map(|(i, v)| self.runtime.limit(i, v))
            .collect::<Vec<_>>()
            .try_into()
            .unwrap_or([0; 4])
    }

    /// Whether hosts come from the connection's original destination.
    pub fn is_original_dst(&self) -> bool {
        self.config.discovery_type == DiscoveryType::OriginalDst
    }

    /// Outlier detection: record `outcome` of a connection or request to `host`.
    pub fn put_result(&self, host: &Host, outcome: Outcome) {
        if let Some(r) = &self.outlier {
            if r.put_result(host, outcome, None) {
                self.wake_monitor();
            }
        }
    }

    /// Outlier detection: record `outcome` with the HTTP status it stands for (Envoy's
    /// `putResult(result, code)`: without the split the code is what counts).
    pub fn put_result_code(&self, host: &Host, outcome: Outcome, code: u16) {
        if let Some(r) = &self.outlier {
            if r.put_result(host, outcome, Some(u64::from(code))) {
                self.wake_monitor();
            }
        }
    }

    /// Outlier detection: record the HTTP status `host` answered.
    pub fn put_http_response_code(&self, host: &Host, code: u16) {
        if let Some(r) = &self.outlier {
            if r.put_http_response_code(host, u64::from(code)) {
                self.wake_monitor();
            }
        }
    }

    /// The host answered `x-envoy-immediate-health-check-fail`: exclude it now and
    /// have its active health check fail it (passive failure), as Envoy's router does.
    pub fn report_immediate_health_check_fail(&self, host: &Host) {
        if !self.health_checked() {
            return;
        }
        host.set_flag(health_flag::EXCLUDED_VIA_IMMEDIATE_HC_FAIL);
        host.passive_hc_failure.store(true, Ordering::Release);
        self.passive_hc_pending.store(true, Ordering::Release);
        self.wake_monitor();
    }

    /// Monitor: whether a worker reported a passive health-check failure.
    pub fn take_passive_hc_pending(&self) -> bool {
        self.passive_hc_pending.swap(false, Ordering::AcqRel)
    }

    /// Remember that the cluster carries traffic (health checks leave
    /// `no_traffic_interval`); the first time, wake the monitor so it can bring the
    /// next checks forward.
    pub fn note_traffic(&self) {
        if !self.seen_traffic.load(Ordering::Relaxed) && !self.seen_traffic.swap(true, Ordering::AcqRel) {
            self.wake_monitor();
        }
    }

    pub fn seen_traffic(&self) -> bool {
        self.seen_traffic.load(Ordering::Acquire)
    }

    /// Register the monitor thread's waker (once).
    pub fn set_monitor(&self, waker: Arc<dyn Wake>) {
        let _ = self.monitor.set(waker);
    }

    fn wake_monitor(&self) {
        if let Some(w) = self.monitor.get() {
            if let Err(e) = w.wake() {
                tracing::warn!(cluster = %self.name(), "cannot wake the upstream monitor: {e}");
            }
        }
    }

    /// Circuit breaker: take a connection slot (cluster `max_connections` and the
    /// per-host threshold), counting the host's open connections. False on overflow.
    pub fn try_acquire_connection(&self, host: &Host) -> bool {
        let cb = &self.config.circuit_breakers;
        if let Some(max) = cb.per_host_max_connections {
            if !try_acquire(&host.cx_active, max) {
                return false;
            }
        } else {
            host.cx_active.fetch_add(1, Ordering::Relaxed);
        }
        if try_acquire(&self.resources.connections, self.max_connections()) {
            true
        } else {
            release(&host.cx_active);
            false
        }
    }

    pub fn release_connection(&self, host: &Host) {
        release(&host.cx_active);
        release(&self.resources.connections);
    }

    /// Circuit breaker: a pending (queued) request slot (`max_pending_requests`).
    pub fn try_acquire_pending_request(&self) -> bool {
        try_acquire(
            &self.resources.pending_requests,
            self.runtime.limit(1, self.config.circuit_breakers.max_pending_requests),
        )
    }

    pub fn release_pending_request(&self) {
        release(&self.resources.pending_requests);
    }

    /// Circuit breaker: an active request slot (`max_requests`).
    pub fn try_acquire_request(&self) -> bool {
        try_acquire(&self.resources.requests, self.runtime.limit(2, self.config.circuit_breakers.max_requests))
    }

    pub fn release_request(&self) {
        release(&self.resources.requests);
    }

    /// Circuit breaker: a retry slot (`max_retries`, or with a `retry_budget` its share
    /// of the requests active and pending now, at least `min_retry_concurrency`, as
    /// Envoy's `RetryBudgetImpl::max`).
    pub fn try_acquire_retry(&self) -> bool {
        let cb = &self.config.circuit_breakers;
        let max = match &cb.retry_budget {
            Some(b) => {
                let active = self.resources.requests.load(Ordering::Relaxed)
                    + self.resources.pending_requests.load(Ordering::Relaxed);
                ((b.budget_percent / 100.0 * f64::from(active)) as u32).max(b.min_retry_concurrency)
            }
            None => self.runtime.limit(3, cb.max_retries),
        };
        try_acquire(&self.resources.retries, max)
    }

    pub fn release_retry(&self) {
        release(&self.resources.retries);
    }
}

/// All clusters of a config snapshot.
#[derive(Debug, Default)]
pub struct ClusterManager {
    pub clusters: Vec<Arc<ClusterInfo>>,
    by_name: rustc_hash::FxHashMap<String, usize>,
}

impl ClusterManager {
    /// Build from config; `hosts_for` supplies each cluster's initial hosts.
    pub fn new(configs: Vec<Cluster>, hosts_for: impl FnMut(&Cluster) -> Vec<Arc<Host>>) -> ClusterManager {
        Self::with_tls(configs, hosts_for, |_| None)
    }

    /// Build from config with each cluster's TLS origination context.
    pub fn with_tls(
        configs: Vec<Cluster>,
        mut hosts_for: impl FnMut(&Cluster) -> Vec<Arc<Host>>,
        mut tls_for: impl FnMut(usize) -> Option<Arc<crate::tls::ClientTlsContext>>,
    ) -> ClusterManager {
        let mut cm = ClusterManager::default();
        for (i, c) in configs.into_iter().enumerate() {
            let hosts = HostSet::new(hosts_for(&c));
            cm.by_name.insert(c.name.clone(), i);
            let mut info = ClusterInfo::new(i, c, hosts);
            info.tls = tls_for(i);
            cm.clusters.push(Arc::new(info));
        }
        cm
    }

    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).copied()
    }

    pub fn get(&self, name: &str) -> Option<&Arc<ClusterInfo>> {
        self.index_of(name).map(|i| &self.clusters[i])
    }

    /// A fresh per-worker view, its balancers seeded from the clock.
    pub fn thread_local(&self) -> ThreadLocalClusterManager {
        let mut rng = Rng::from_entropy(self.clusters.len() as u64);
        self.thread_local_seeded(rng.next_u64())
    }

    /// A per-worker view with balancers seeded from `seed` (deterministic, for tests).
    pub fn thread_local_seeded(&self, seed: u64) -> ThreadLocalClusterManager {
        let mut rng = Rng::new(seed);
        ThreadLocalClusterManager {
            clusters: self.clusters.iter().map(|c| ThreadLocalCluster::new(Arc::clone(c), rng.next_u64())).collect(),
        }
    }
}

/// Hosts given in the config (STATIC), with their endpoint weights and priorities.
pub fn static_hosts(c: &Cluster) -> Vec<Arc<Host>> {
    c.load_assignment
        .hosts()
        .filter_map(|(e, prio)| {
            let addr = e.address.socket_addr()?;
            let host = Host::new(addr, e.hostname.clone(), e.load_balancing_weight, prio, e.health_check_port);
            Some(Arc::new(host.with_metadata(&e.metadata)))
        })
        .collect()
}

/// One worker's view of one cluster.
#[derive(Debug)]
pub struct ThreadLocalCluster {
    pub info: Arc<ClusterInfo>,
    priority_set: Arc<PrioritySet>,
    version: u64,
    lb: LoadBalancer,
    stats: Option<Arc<ClusterStats>>,
}

impl ThreadLocalCluster {
    pub fn new(info: Arc<ClusterInfo>, seed: u64) -> ThreadLocalCluster {
        let mut lb = LoadBalancer::new(&info.lb_config, seed);
        let version = info.version();
        let priority_set = info.priority_set();
        lb.refresh(&priority_set);
        ThreadLocalCluster { info, priority_set, version, lb, stats: None }
    }

    /// Count this worker's LB events (`lb_healthy_panic`) in `stats`.
    pub fn bind_stats(&mut self, stats: Arc<ClusterStats>) {
        self.stats = Some(stats);
    }

    /// Re-read the shared priority set if a new one was published.
    fn refresh(&mut self) {
        let v = self.info.version();
        if v != self.version {
            self.priority_set = self.info.priority_set();
            self.version = v;
            self.lb.refresh(&self.priority_set);
        }
    }

    /// The current host set (refreshed if the cluster published a new one).
    pub fn hosts(&mut self) -> &Arc<crate::upstream::host::HostSet> {
        self.refresh();
        &self.priority_set.hosts
    }

    /// The current priority set (refreshed if the cluster published a new one).
    pub fn priority_set(&mut self) -> &Arc<PrioritySet> {
        self.refresh();
        &self.priority_set
    }

    /// Pick a host: `(index in the current host set, host)`. For ORIGINAL_DST clusters
    /// the host is the connection's original destination (with
    /// `upstream_port_override`). `None` when no host can serve (Envoy answers "no
    /// healthy upstream").
    pub fn choose_host(&mut self, ctx: &LbContext<'_>, original_dst: Option<SocketAddr>) -> Option<(usize, Arc<Host>)> {
        self.info.note_traffic();
        if self.info.is_original_dst() {
            let mut addr = original_dst?;
            if let Some(p) = self.info.config.original_dst_lb_config.upstream_port_override {
                addr.set_port(p);
            }
            return Some((usize::MAX, Arc::new(Host::new(addr, String::new(), 1, 0, None))));
        }
        self.refresh();
        let pick = self.lb.choose(&self.priority_set, ctx)?;
        if pick.panic {
            if let Some(s) = &self.stats {
                s.lb_healthy_panic.inc();
            }
        }
        let host = self.priority_set.hosts.hosts.get(pick.index)?;
        Some((pick.index, Arc::clone(host)))
    }
}

/// A worker's clusters, indexed like [`ClusterManager::clusters`].
#[derive(Debug, Default)]
pub struct ThreadLocalClusterManager {
    pub clusters: Vec<ThreadLocalCluster>,
}

impl ThreadLocalClusterManager {
    /// Bind each cluster to this worker's stats block (indexed like the clusters).
    pub fn bind_stats(&mut self, stats: &[Arc<ClusterStats>]) {
        for (c, s) in self.clusters.iter_mut().zip(stats) {
            c.bind_stats(Arc::clone(s));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::load_balancer::LbContext;

    fn manager(extra: &str, ports: &[u16]) -> ClusterManager {
        let endpoints: String = ports
            .iter()
            .map(|p| format!("        - endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {p} }} }} }}\n"))
            .collect();
        let yaml = format!(
            "static_resources:\n  clusters:\n  - name: b\n{extra}\n    load_assignment:\n      cluster_name: b\n      endpoints:\n      - lb_endpoints:\n{endpoints}"
        );
        let b = sluice_config::load_str(&yaml).unwrap().bootstrap;
        ClusterManager::new(b.clusters, static_hosts)
    }

    fn pick(tl: &mut ThreadLocalCluster, r: u64) -> usize {
        let ctx = LbContext { random: r, ..Default::default() };
        tl.choose_host(&ctx, None).unwrap().0
    }

    #[test]
    fn workers_follow_published_health_without_locking_picks() {
        let cm = manager("", &[1, 2, 3]);
        let mut tl = cm.thread_local_seeded(0);
        let stats = Arc::new(ClusterStats::default());
        tl.bind_stats(std::slice::from_ref(&stats));
        let c = &mut tl.clusters[0];
        let info = Arc::clone(&c.info);
        assert!(!info.seen_traffic());
        let mut seen = [0; 3];
        for r in 0..6 {
            seen[pick(c, r)] += 1;
        }
        assert_eq!(seen, [2, 2, 2]);
        assert!(info.seen_traffic(), "a pick is traffic");
        // The authority fails host 1 and publishes: the worker stops picking it.
        info.hosts().hosts[1].set_flag(health_flag::FAILED_ACTIVE_HC);
        let mut seen = [0; 3];
        for r in 0..6 {
            seen[pick(c, r)] += 1;
        }
        assert_eq!(seen[1], 2, "flags alone change nothing until published");
        info.refresh_health();
        let mut seen = [0; 3];
        for r in 0..6 {
            seen[pick(c, r)] += 1;
        }
        assert_eq!(seen, [3, 0, 3]);
        assert_eq!(info.stats.membership_healthy.get(), 2);
        assert_eq!(info.stats.membership_total.get(), 3);
        // Two of three failed: panic, all hosts serve, and the worker counts it.
        info.hosts().hosts[0].set_flag(health_flag::FAILED_OUTLIER_CHECK);
        info.refresh_health();
        let mut seen = [0; 3];
        for r in 0..6 {
            seen[pick(c, r)] += 1;
        }
        assert_eq!(seen, [2, 2, 2]);
        assert_eq!(stats.lb_healthy_panic.get(), 6);
    }

    fn runtime(kv: &[(&str, &str)]) -> crate::runtime::Snapshot {
        crate::runtime::Snapshot::new(vec![Arc::new(crate::runtime::Layer {
            name: "l".into(),
            values: kv.iter().map(|(k, v)| (k.to_string(), sluice_config::runtime::Entry::parse(v))).collect(),
        })])
    }

    #[test]
    fn runtime_panic_threshold_and_circuit_breakers() {
        let cm = manager("    circuit_breakers: { thresholds: [{ max_requests: 5 }] }", &[1, 2]);
        let info = Arc::clone(&cm.clusters[0]);
        let mut tl = cm.thread_local_seeded(0);
        let c = &mut tl.clusters[0];
        // One of two hosts failed: 50 % healthy is not below the default threshold (50).
        info.hosts().hosts[0].set_flag(health_flag::FAILED_ACTIVE_HC);
        info.refresh_health();
        assert!((0..4).all(|r| pick(c, r) == 1));
        // upstream.healthy_panic_threshold 80: 50 % is below it, every host serves again.
        info.apply_runtime(&runtime(&[("upstream.healthy_panic_threshold", "80")]));
        let mut seen = [0; 2];
        for r in 0..4 {
            seen[pick(c, r)] += 1;
        }
        assert_eq!(seen, [2, 2]);
        // Back to the configured threshold when the key goes.
        info.apply_runtime(&runtime(&[]));
        assert!((0..4).all(|r| pick(c, r) == 1));
        // circuit_breakers.<cluster>.default.max_requests overrides the configured 5.
        assert_eq!(info.circuit_breaker_limits(), [1024, 1024, 5, 3]);
        info.apply_runtime(&runtime(&[
            ("circuit_breakers.b.default.max_requests", "1"),
            ("circuit_breakers.b.default.max_connections", "7"),
        ]));
        assert_eq!(info.circuit_breaker_limits(), [7, 1024, 1, 3]);
        assert!(info.try_acquire_request());
        assert!(!info.try_acquire_request(), "the runtime's limit of 1 holds");
        info.release_request();
        info.apply_runtime(&runtime(&[]));
        assert_eq!(info.circuit_breaker_limits(), [1024, 1024, 5, 3]);
        // health_check.{min,max}_interval bound every check interval (ms; at least 1 ms).
        let ms = std::time::Duration::from_millis;
        assert_eq!(info.bound_health_check_interval(ms(0)), ms(1));
        assert_eq!(info.bound_health_check_interval(ms(60_000)), ms(60_000));
        info.apply_runtime(&runtime(&[("health_check.min_interval", "500"), ("health_check.max_interval", "2000")]));
        assert_eq!(info.bound_health_check_interval(ms(10)), ms(500));
        assert_eq!(info.bound_health_check_interval(ms(60_000)), ms(2000));
        assert_eq!(info.bound_health_check_interval(ms(1500)), ms(1500));
    }

    #[test]
    fn health_checked_clusters_start_with_failed_hosts() {
        let cm = manager(
            "    health_checks:\n    - { timeout: 1s, interval: 1s, unhealthy_threshold: 1, healthy_threshold: 1, tcp_health_check: {} }",
            &[1, 2],
        );
        let info = &cm.clusters[0];
        assert!(info.hosts().hosts.iter().all(|h| !h.healthy()));
        assert_eq!(info.stats.membership_healthy.get(), 0);
        // Until the first checks pass, every host serves (panic), as in Envoy.
        let ps = info.priority_set();
        assert_eq!(ps.panic, vec![true]);
    }

    #[test]
    fn every_lb_policy_is_built_as_configured() {
        for (policy, extra) in [
            ("ROUND_ROBIN", ""),
            ("LEAST_REQUEST", "    least_request_lb_config: { choice_count: 3 }"),
            ("RANDOM", ""),
            ("RING_HASH", "    ring_hash_lb_config: { minimum_ring_size: 64 }"),
            ("MAGLEV", "    maglev_lb_config: { table_size: 251 }"),
        ] {
            let cm = manager(&format!("    lb_policy: {policy}\n{extra}"), &[1, 2, 3]);
            let mut tl = cm.thread_local_seeded(1);
            let c = &mut tl.clusters[0];
            let expect = match policy {
                "ROUND_ROBIN" => matches!(c.lb, LoadBalancer::RoundRobin(_)),
                "LEAST_REQUEST" => matches!(c.lb, LoadBalancer::LeastRequest(_)),
                "RANDOM" => matches!(c.lb, LoadBalancer::Random(_)),
                "RING_HASH" => matches!(c.lb, LoadBalancer::RingHash),
                _ => matches!(c.lb, LoadBalancer::Maglev),
            };
            assert!(expect, "{policy}: {:?}", c.lb);
            let mut seen = [false; 3];
            for r in 0..300u64 {
                let ctx = LbContext {
                    random: r.wrapping_mul(0x9E37_79B9_7F4A_7C15),
                    hash: Some(r.wrapping_mul(0xD6E8_FEB8_6659_FD93)),
                    ..Default::default()
                };
                seen[c.choose_host(&ctx, None).unwrap().0] = true;
            }
            assert_eq!(seen, [true; 3], "{policy} reaches every host");
        }
    }

    #[test]
    fn circuit_breaker_helpers_count_cluster_wide_and_per_host() {
        let cm = manager(
            "    circuit_breakers:\n      thresholds: [{ max_connections: 2, max_requests: 1, max_pending_requests: 1, max_retries: 1 }]\n      per_host_thresholds: [{ max_connections: 1 }]",
            &[1, 2],
        );
        let info = &cm.clusters[0];
        let hosts = info.hosts();
        let (a, b) = (&hosts.hosts[0], &hosts.hosts[1]);
        assert!(info.try_acquire_connection(a));
        assert!(!info.try_acquire_connection(a), "per-host cap 1");
        assert!(info.try_acquire_connection(b));
        info.release_connection(a);
        assert!(info.try_acquire_connection(a));
        assert!(!info.try_acquire_connection(b), "cluster cap 2");
        assert!(info.try_acquire_request() && !info.try_acquire_request());
        info.release_request();
        assert!(info.try_acquire_request());
        assert!(info.try_acquire_pending_request() && !info.try_acquire_pending_request());
        assert!(info.try_acquire_retry() && !info.try_acquire_retry());
        info.release_retry();
        assert!(info.try_acquire_retry());
    }
}
