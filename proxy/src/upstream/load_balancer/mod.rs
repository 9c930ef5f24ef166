//! Load balancers: one file per policy behind one small interface.
//!
//! A balancer is per worker (Envoy keeps per-worker LB state, so round-robin order is
//! per worker) and picks an index into the cluster's current [`HostSet`]. Host
//! eligibility follows Envoy: the first priority level that has healthy hosts serves;
//! when fewer than `healthy_panic_threshold` percent of that level's hosts are healthy,
//! the balancer "panics" and uses all of them, healthy or not.

pub mod round_robin;

use crate::upstream::host::HostSet;

pub use round_robin::RoundRobin;

/// What a pick may depend on beyond the balancer's own state.
#[derive(Debug, Clone, Copy, Default)]
pub struct LbContext<'a> {
    /// A hash of the request (route hash_policy or source IP) for consistent hashing.
    pub hash: Option<u64>,
    /// Hosts tried by earlier attempts of this request/connection: avoided when another
    /// eligible host exists.
    pub exclude: &'a [usize],
    /// A uniform random number for randomized policies.
    pub random: u64,
}

/// The per-worker balancer of one cluster (static dispatch).
#[derive(Debug)]
pub enum LoadBalancer {
    RoundRobin(RoundRobin),
}

impl LoadBalancer {
    /// Pick a host index in `hosts`, or `None` when there is no host at all.
    pub fn choose(
        &mut self,
        hosts: &HostSet,
        ctx: &LbContext<'_>,
        panic_threshold: f64,
    ) -> Option<usize> {
        let eligible = Eligible::compute(hosts, panic_threshold);
        match self {
            LoadBalancer::RoundRobin(rr) => rr.choose(hosts, &eligible, ctx),
        }
    }

    /// The host set changed: drop state tied to indices.
    pub fn refresh(&mut self, hosts: &HostSet) {
        match self {
            LoadBalancer::RoundRobin(rr) => rr.refresh(hosts),
        }
    }
}

/// The hosts a pick may choose from, as indices into the host set.
#[derive(Debug, Default)]
pub struct Eligible {
    pub indices: Vec<usize>,
    /// True when health was ignored (panic mode).
    pub panic: bool,
}

impl Eligible {
    pub fn compute(hosts: &HostSet, panic_threshold: f64) -> Eligible {
        let mut out = Eligible::default();
        let mut i = 0;
        while i < hosts.hosts.len() {
            let prio = hosts.hosts[i].priority;
            let level: Vec<usize> = (i..hosts.hosts.len())
                .take_while(|&j| hosts.hosts[j].priority == prio)
                .collect();
            i += level.len();
            let healthy: Vec<usize> = level
                .iter()
                .copied()
                .filter(|&j| hosts.hosts[j].healthy())
                .collect();
            if healthy.is_empty() {
                if out.indices.is_empty() {
                    // Remember the first level in case no level has a healthy host.
                    out.indices = level;
                    out.panic = true;
                }
                continue;
            }
            let pct = 100.0 * healthy.len() as f64 / level.len() as f64;
            if pct < panic_threshold {
                out.indices = level;
                out.panic = true;
            } else {
                out.indices = healthy;
                out.panic = false;
            }
            return out;
        }
        out
    }
}
