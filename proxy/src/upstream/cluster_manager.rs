//! The cluster manager: cluster-wide state shared by all workers, and each worker's
//! thread-local view of it (Envoy's `ThreadLocalClusterManager`).
//!
//! [`ClusterInfo`] is shared (`Arc`): immutable config, the current host set
//! (republished by DNS refresh and health checking), and the circuit-breaker resource
//! counters, which Envoy keeps cluster-wide across workers. A worker's
//! [`ThreadLocalCluster`] caches the host set and owns its load balancer; it re-reads
//! the shared set only when the published version moved (one relaxed atomic load per
//! pick, no lock on the hot path).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use sluice_config::cluster::{Cluster, DiscoveryType, LbPolicy};

use crate::upstream::host::{Host, HostSet};
use crate::upstream::load_balancer::{LbContext, LoadBalancer, RoundRobin};

/// A cluster as every worker sees it.
#[derive(Debug)]
pub struct ClusterInfo {
    pub index: usize,
    pub config: Arc<Cluster>,
    hosts: Mutex<Arc<HostSet>>,
    version: AtomicU64,
    /// Circuit-breaker resources, counted across workers.
    pub resources: Resources,
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
    counter
        .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |v| {
            if v < max {
                Some(v + 1)
            } else {
                None
            }
        })
        .is_ok()
}

pub fn release(counter: &AtomicU32) {
    let _ = counter.fetch_update(Ordering::AcqRel, Ordering::Relaxed, |v| {
        Some(v.saturating_sub(1))
    });
}

impl ClusterInfo {
    pub fn new(index: usize, config: Cluster, hosts: HostSet) -> ClusterInfo {
        ClusterInfo {
            index,
            config: Arc::new(config),
            hosts: Mutex::new(Arc::new(hosts)),
            version: AtomicU64::new(1),
            resources: Resources::default(),
        }
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// The current host set.
    pub fn hosts(&self) -> Arc<HostSet> {
        Arc::clone(&self.hosts.lock().unwrap_or_else(|e| e.into_inner()))
    }

    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    /// Publish a new host set; workers pick it up on their next pick.
    pub fn publish(&self, hosts: HostSet) {
        *self.hosts.lock().unwrap_or_else(|e| e.into_inner()) = Arc::new(hosts);
        self.version.fetch_add(1, Ordering::AcqRel);
    }

    /// Whether hosts come from the connection's original destination.
    pub fn is_original_dst(&self) -> bool {
        self.config.discovery_type == DiscoveryType::OriginalDst
    }
}

/// All clusters of a config snapshot.
#[derive(Debug, Default)]
pub struct ClusterManager {
    pub clusters: Vec<Arc<ClusterInfo>>,
    by_name: HashMap<String, usize>,
}

impl ClusterManager {
    /// Build from config; `hosts_for` supplies each cluster's initial hosts.
    pub fn new(
        configs: Vec<Cluster>,
        mut hosts_for: impl FnMut(&Cluster) -> Vec<Arc<Host>>,
    ) -> ClusterManager {
        let mut cm = ClusterManager::default();
        for (i, c) in configs.into_iter().enumerate() {
            let hosts = HostSet::new(hosts_for(&c));
            cm.by_name.insert(c.name.clone(), i);
            cm.clusters.push(Arc::new(ClusterInfo::new(i, c, hosts)));
        }
        cm
    }

    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).copied()
    }

    pub fn get(&self, name: &str) -> Option<&Arc<ClusterInfo>> {
        self.index_of(name).map(|i| &self.clusters[i])
    }

    /// A fresh per-worker view.
    pub fn thread_local(&self) -> ThreadLocalClusterManager {
        ThreadLocalClusterManager {
            clusters: self
                .clusters
                .iter()
                .map(|c| ThreadLocalCluster::new(Arc::clone(c)))
                .collect(),
        }
    }
}

/// Hosts given in the config (STATIC), with their endpoint weights and priorities.
pub fn static_hosts(c: &Cluster) -> Vec<Arc<Host>> {
    c.load_assignment
        .hosts()
        .filter_map(|(e, prio)| {
            let addr = e.address.socket_addr()?;
            Some(Arc::new(Host::new(
                addr,
                e.hostname.clone(),
                e.load_balancing_weight,
                prio,
                e.health_check_port,
            )))
        })
        .collect()
}

/// One worker's view of one cluster.
#[derive(Debug)]
pub struct ThreadLocalCluster {
    pub info: Arc<ClusterInfo>,
    hosts: Arc<HostSet>,
    version: u64,
    lb: LoadBalancer,
}

impl ThreadLocalCluster {
    fn new(info: Arc<ClusterInfo>) -> ThreadLocalCluster {
        let lb = match info.config.lb_policy {
            LbPolicy::RoundRobin | LbPolicy::ClusterProvided => {
                LoadBalancer::RoundRobin(RoundRobin::new())
            }
            // Other policies arrive with the load-balancing work; round robin until then
            // is refused at config load, never silently substituted.
            _ => LoadBalancer::RoundRobin(RoundRobin::new()),
        };
        let hosts = info.hosts();
        let version = info.version();
        ThreadLocalCluster {
            info,
            hosts,
            version,
            lb,
        }
    }

    /// The current host set (refreshed if the cluster published a new one).
    pub fn hosts(&mut self) -> &Arc<HostSet> {
        let v = self.info.version();
        if v != self.version {
            self.hosts = self.info.hosts();
            self.version = v;
            self.lb.refresh(&self.hosts);
        }
        &self.hosts
    }

    /// Pick a host. For ORIGINAL_DST clusters the host is the connection's original
    /// destination (with `upstream_port_override`).
    pub fn choose_host(
        &mut self,
        ctx: &LbContext<'_>,
        original_dst: Option<SocketAddr>,
    ) -> Option<(usize, Arc<Host>)> {
        if self.info.is_original_dst() {
            let mut addr = original_dst?;
            if let Some(p) = self
                .info
                .config
                .original_dst_lb_config
                .upstream_port_override
            {
                addr.set_port(p);
            }
            return Some((
                usize::MAX,
                Arc::new(Host::new(addr, String::new(), 1, 0, None)),
            ));
        }
        let threshold = self.info.config.healthy_panic_threshold;
        self.hosts();
        let i = self.lb.choose(&self.hosts, ctx, threshold)?;
        Some((i, Arc::clone(&self.hosts.hosts[i])))
    }
}

/// A worker's clusters, indexed like [`ClusterManager::clusters`].
#[derive(Debug, Default)]
pub struct ThreadLocalClusterManager {
    pub clusters: Vec<ThreadLocalCluster>,
}
