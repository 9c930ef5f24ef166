//! Upstream hosts and the host sets that clusters publish to workers.
//!
//! A [`Host`] is shared by every worker (`Arc`): its address and weight are immutable,
//! its health is a set of atomic flags written by the health checker and the outlier
//! detector and read lock-free by load balancers. A [`HostSet`] is an immutable
//! snapshot of a cluster's hosts; a refresh (DNS, health) publishes a new one and
//! workers pick it up on their next pick without a lock.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

/// Health flags, as in Envoy's `Host::HealthFlag`.
pub mod health_flag {
    /// Failed active health checking.
    pub const FAILED_ACTIVE_HC: u32 = 1;
    /// Ejected by outlier detection.
    pub const FAILED_OUTLIER_CHECK: u32 = 2;
    /// Not yet health checked (Envoy starts hosts as unhealthy until the first check).
    pub const PENDING_ACTIVE_HC: u32 = 4;
}

#[derive(Debug)]
pub struct Host {
    pub address: SocketAddr,
    /// `endpoint.hostname`, or the DNS name it was resolved from.
    pub hostname: String,
    pub weight: u32,
    pub priority: u32,
    /// Port used for active health checks (`health_check_config.port_value`).
    pub health_check_address: SocketAddr,
    flags: AtomicU32,
    /// Connections open to this host across all workers (per-host circuit breaker).
    pub cx_active: AtomicU32,
    /// Requests in flight to this host across all workers (least request, /clusters).
    pub rq_active: AtomicU32,
    /// Requests answered with an error (for /clusters).
    pub rq_error: AtomicU64,
    pub rq_success: AtomicU64,
}

impl Host {
    pub fn new(
        address: SocketAddr,
        hostname: String,
        weight: u32,
        priority: u32,
        hc_port: Option<u16>,
    ) -> Host {
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
            rq_error: AtomicU64::new(0),
            rq_success: AtomicU64::new(0),
        }
    }

    pub fn healthy(&self) -> bool {
        self.flags.load(Ordering::Relaxed) == 0
    }

    pub fn flags(&self) -> u32 {
        self.flags.load(Ordering::Relaxed)
    }

    pub fn set_flag(&self, flag: u32) {
        self.flags.fetch_or(flag, Ordering::Relaxed);
    }

    pub fn clear_flag(&self, flag: u32) {
        self.flags.fetch_and(!flag, Ordering::Relaxed);
    }

    pub fn has_flag(&self, flag: u32) -> bool {
        self.flags.load(Ordering::Relaxed) & flag != 0
    }
}

/// An immutable snapshot of a cluster's hosts, in priority order.
#[derive(Debug, Default)]
pub struct HostSet {
    pub hosts: Vec<Arc<Host>>,
}

impl HostSet {
    pub fn new(mut hosts: Vec<Arc<Host>>) -> HostSet {
        hosts.sort_by_key(|h| h.priority);
        HostSet { hosts }
    }

    pub fn len(&self) -> usize {
        self.hosts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
    }
}
