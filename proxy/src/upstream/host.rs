//! Upstream hosts and the host sets that clusters publish to workers.
//!
//! A [`Host`] is shared by every worker (`Arc`): its address and weight are immutable,
//! its health is a set of atomic flags written by the upstream monitor thread (active
//! health checking, outlier detection; a worker only ever adds the
//! EXCLUDED_VIA_IMMEDIATE_HC_FAIL mark, as Envoy's router does) and read by whoever
//! rebuilds the cluster's [`PrioritySet`](crate::upstream::priority::PrioritySet).
//! Workers never read the flags on the hot path: they pick from the published
//! priority set. The host also
//! carries the lock-free counters workers write (active requests and connections, the
//! outlier detector's per-host monitor). A [`HostSet`] is an immutable snapshot of a
//! cluster's membership, sorted by priority.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use crate::upstream::outlier::HostMonitor;

/// Health flags, as in Envoy's `Host::HealthFlag`.
pub mod health_flag {
    /// Failed active health checking (hosts of a health-checked cluster start with it).
    pub const FAILED_ACTIVE_HC: u32 = 1 << 0;
    /// Ejected by outlier detection.
    pub const FAILED_OUTLIER_CHECK: u32 = 1 << 1;
    /// The last HTTP health check answered `x-envoy-degraded`.
    pub const DEGRADED_ACTIVE_HC: u32 = 1 << 2;
    /// The last failed active health check timed out (informational, with FAILED_ACTIVE_HC).
    pub const ACTIVE_HC_TIMEOUT: u32 = 1 << 3;
    /// The host answered `x-envoy-immediate-health-check-fail`: excluded from the
    /// priority-load computation until a health check passes again.
    pub const EXCLUDED_VIA_IMMEDIATE_HC_FAIL: u32 = 1 << 4;

    /// Flags that make a host unhealthy.
    pub const UNHEALTHY: u32 = FAILED_ACTIVE_HC | FAILED_OUTLIER_CHECK;
}

/// Envoy's coarse health of a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    Unhealthy,
    Degraded,
    Healthy,
}

#[derive(Debug)]
pub struct Host {
    pub address: SocketAddr,
    /// `endpoint.hostname`, or the DNS name it was resolved from.
    pub hostname: String,
    pub weight: u32,
    pub priority: u32,
    /// Address used for active health checks (`health_check_config.port_value`).
    pub health_check_address: SocketAddr,
    flags: AtomicU32,
    /// Connections open to this host across all workers (per-host circuit breaker).
    pub cx_active: AtomicU32,
    /// Requests in flight to this host across all workers (LEAST_REQUEST reads it). A
    /// tcp_proxy session counts as one request while it is connected, as Envoy's TCP
    /// connection pool does.
    pub rq_active: AtomicU32,
    /// Per-host counters of Envoy's `HostStats`, shown by `/clusters`: connections
    /// opened and failed, requests sent (every try), answered with an error (a 5xx, a
    /// reset, a timeout, a retried try) or with success, and tries that timed out.
    pub cx_total: AtomicU64,
    pub cx_connect_fail: AtomicU64,
    pub rq_total: AtomicU64,
    pub rq_error: AtomicU64,
    pub rq_success: AtomicU64,
    pub rq_timeout: AtomicU64,
    /// The outlier detector's per-host monitor (written by workers, lock-free).
    pub outlier: HostMonitor,
    /// A worker saw `x-envoy-immediate-health-check-fail` from this host; the health
    /// checker fails it (passive failure) on its thread.
    pub passive_hc_failure: AtomicBool,
    /// Its `lb_endpoints[].metadata` (None: none configured); tracing's host metadata
    /// custom tags read it.
    pub metadata: Option<Arc<sluice_config::metadata::Metadata>>,
}

impl Host {
    pub fn new(address: SocketAddr, hostname: String, weight: u32, priority: u32, hc_port: Option<u16>) -> Host {
        let mut health_check_address = address;
        if let Some(p) = hc_port {
            health_check_address.set_port(p);
        }
        Host {
            address,
            hostname,
            weight: weight.max(1),
            priority,
            health_check_address,
            flags: AtomicU32::new(0),
            cx_active: AtomicU32::new(0),
            rq_active: AtomicU32::new(0),
            cx_total: AtomicU64::new(0),
            cx_connect_fail: AtomicU64::new(0),
            rq_total: AtomicU64::new(0),
            rq_error: AtomicU64::new(0),
            rq_success: AtomicU64::new(0),
            rq_timeout: AtomicU64::new(0),
            outlier: HostMonitor::default(),
            passive_hc_failure: AtomicBool::new(false),
            metadata: None,
        }
    }

    /// The host with its endpoint's metadata (kept only when there is some).
    pub fn with_metadata(mut self, metadata: &sluice_config::metadata::Metadata) -> Host {
        self.metadata = (!metadata.is_empty()).then(|| Arc::new(metadata.clone()));
        self
    }

    /// Envoy's `coarseHealth()`: failed checks make a host unhealthy, a degraded answer
    /// degraded.
    pub fn health(&self) -> Health {
        let f = self.flags();
        if f & health_flag::UNHEALTHY != 0 {
            Health::Unhealthy
        } else if f & health_flag::DEGRADED_ACTIVE_HC != 0 {
            Health::Degraded
        } else {
            Health::Healthy
        }
    }

    pub fn healthy(&self) -> bool {
        self.health() == Health::Healthy
    }

    /// Excluded from the priority-load computation (Envoy's `excludeBasedOnHealthFlag`).
    pub fn excluded(&self) -> bool {
        self.has_flag(health_flag::EXCLUDED_VIA_IMMEDIATE_HC_FAIL)
    }

    pub fn flags(&self) -> u32 {
        self.flags.load(Ordering::Acquire)
    }

    /// Set `flag`; true when it was not set before.
    pub fn set_flag(&self, flag: u32) -> bool {
        self.flags.fetch_or(flag, Ordering::AcqRel) & flag != flag
    }

    /// Clear `flag`; true when it was set before.
    pub fn clear_flag(&self, flag: u32) -> bool {
        self.flags.fetch_and(!flag, Ordering::AcqRel) & flag != 0
    }

    pub fn has_flag(&self, flag: u32) -> bool {
        self.flags() & flag != 0
    }

    /// Count one on a per-host counter (relaxed: statistics only).
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// An immutable snapshot of a cluster's hosts, in priority order.
#[derive(Debug, Default)]
pub struct HostSet {
    pub hosts: Vec<Arc<Host>>,
}

impl HostSet {
    pub fn new(mut hosts: Vec<Arc<Host>>) -> HostSet {
        // Stable: hosts of one priority keep their config order.
        hosts.sort_by_key(|h| h.priority);
        HostSet { hosts }
    }

    pub fn len(&self) -> usize {
        self.hosts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
    }

    /// The highest priority number present (levels are `0..=max_priority`).
    pub fn max_priority(&self) -> Option<u32> {
        self.hosts.last().map(|h| h.priority)
    }
}
