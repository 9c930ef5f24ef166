//! Load balancers: one file per policy behind one enum (static dispatch).
//!
//! A balancer is per worker (Envoy keeps per-worker LB state, so round-robin order and
//! EDF schedules are per worker) and picks an index into the cluster's published
//! [`PrioritySet`]. Every policy first chooses a priority level and the hosts to draw
//! from with Envoy's priority-load and panic rules ([`PrioritySet::choose`]), then
//! picks among them:
//!
//! - ROUND_ROBIN: rotation from a per-worker random start; EDF when weights differ;
//! - LEAST_REQUEST: power of `choice_count` choices on active requests; EDF with
//!   `weight / (active + 1)` when weights differ;
//! - RANDOM: uniform (weights ignored, as Envoy does);
//! - RING_HASH / MAGLEV: the request hash (random without one) looked up in tables
//!   built once per host-set change and shared by all workers.
//!
//! A pick never allocates and never locks; hosts excluded by earlier attempts
//! (`LbContext::exclude`) are avoided when another host of the chosen level exists.

pub mod edf;
pub mod hash_policy;
pub mod least_request;
pub mod maglev;
pub mod random;
pub mod ring_hash;
pub mod round_robin;

#[cfg(test)]
mod tests;

use sluice_config::cluster::{Cluster, LbPolicy, RingHashLbConfig};

use crate::upstream::priority::PrioritySet;

pub use least_request::LeastRequest;
pub use maglev::Maglev;
pub use random::RandomLb;
pub use ring_hash::Ring;
pub use round_robin::RoundRobin;

/// What a pick may depend on beyond the balancer's own state.
#[derive(Debug, Clone, Copy, Default)]
pub struct LbContext<'a> {
    /// A hash of the request (route hash_policy or source IP) for consistent hashing.
    pub hash: Option<u64>,
    /// Host indices (into the cluster's current host set) tried by earlier attempts of
    /// this request/connection: avoided when another eligible host exists.
    pub exclude: &'a [usize],
    /// A uniform random number; randomized policies derive what they need from it.
    pub random: u64,
}

impl LbContext<'_> {
    fn allows(&self, index: u32) -> bool {
        !self.exclude.contains(&(index as usize))
    }
}

/// The balancing settings of a cluster, resolved at config load.
#[derive(Debug, Clone)]
pub struct LbConfig {
    pub policy: LbPolicy,
    /// `common_lb_config.healthy_panic_threshold`, rounded to an integer percent.
    pub healthy_panic_threshold: u32,
    pub ring_hash: RingHashLbConfig,
    pub maglev_table_size: u64,
    pub choice_count: u32,
}

impl LbConfig {
    pub fn from_cluster(c: &Cluster) -> LbConfig {
        LbConfig {
            policy: c.lb_policy,
            healthy_panic_threshold: c.healthy_panic_threshold.round().clamp(0.0, 100.0) as u32,
            ring_hash: c.ring_hash_lb_config,
            maglev_table_size: c.maglev_table_size,
            choice_count: c.least_request_choice_count.max(1),
        }
    }
}

impl Default for LbConfig {
    fn default() -> Self {
        LbConfig {
            policy: LbPolicy::RoundRobin,
            healthy_panic_threshold: 50,
            ring_hash: RingHashLbConfig::default(),
            maglev_table_size: 65537,
            choice_count: 2,
        }
    }
}

/// A chosen host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pick {
    /// Index into the priority set's hosts.
    pub index: usize,
    /// The level was in panic (health ignored): counts `lb_healthy_panic`.
    pub panic: bool,
}

/// The per-worker balancer of one cluster.
#[derive(Debug)]
pub enum LoadBalancer {
    RoundRobin(RoundRobin),
    LeastRequest(LeastRequest),
    Random(RandomLb),
    RingHash,
    Maglev,
}

impl LoadBalancer {
    /// A balancer for `config`; `seed` desynchronizes workers (Envoy's per-LB seed).
    pub fn new(config: &LbConfig, seed: u64) -> LoadBalancer {
        match config.policy {
            LbPolicy::RoundRobin => LoadBalancer::RoundRobin(RoundRobin::new(seed)),
            LbPolicy::LeastRequest => LoadBalancer::LeastRequest(LeastRequest::new(config.choice_count, seed)),
            LbPolicy::Random => LoadBalancer::Random(RandomLb),
            LbPolicy::RingHash => LoadBalancer::RingHash,
            LbPolicy::Maglev => LoadBalancer::Maglev,
            // ORIGINAL_DST clusters pick the connection's destination and never consult
            // a balancer; LOAD_BALANCING_POLICY_CONFIG is refused at config load.
            LbPolicy::ClusterProvided | LbPolicy::LoadBalancingPolicyConfig => {
                LoadBalancer::RoundRobin(RoundRobin::new(seed))
            }
        }
    }

    /// The published priority set changed: rebuild per-worker schedules.
    pub fn refresh(&mut self, ps: &PrioritySet) {
        match self {
            LoadBalancer::RoundRobin(lb) => lb.refresh(ps),
            LoadBalancer::LeastRequest(lb) => lb.refresh(ps),
            LoadBalancer::Random(_) | LoadBalancer::RingHash | LoadBalancer::Maglev => {}
        }
    }

    /// Pick a host, or `None` when the chosen level has no host to offer.
    pub fn choose(&mut self, ps: &PrioritySet, ctx: &LbContext<'_>) -> Option<Pick> {
        let mut rng = PickRng::new(ctx.random);
        match self {
            LoadBalancer::RoundRobin(lb) => lb.choose(ps, ctx, &mut rng),
            LoadBalancer::LeastRequest(lb) => lb.choose(ps, ctx, &mut rng),
            LoadBalancer::Random(lb) => lb.choose(ps, ctx, &mut rng),
            LoadBalancer::RingHash | LoadBalancer::Maglev => choose_hashed(ps, ctx, &mut rng),
        }
    }
}

/// Thread-aware pick (Envoy's `ThreadAwareLoadBalancerBase::LoadBalancerImpl`): the
/// hash (random without one) chooses the level and is looked up in its shared table;
/// later attempts walk the table as Envoy's retry host predicates do.
fn choose_hashed(ps: &PrioritySet, ctx: &LbContext<'_>, rng: &mut PickRng) -> Option<Pick> {
    let h = ctx.hash.unwrap_or_else(|| rng.next_u64());
    let choice = ps.choose(h)?;
    let table = ps.hash_tables.get(choice.priority)?;
    let attempts = if ctx.exclude.is_empty() { 1 } else { MAX_HASH_ATTEMPTS };
    let mut pick = None;
    for attempt in 0..attempts {
        let index = table.choose(h, attempt)?;
        pick = Some(index);
        if ctx.allows(index) {
            break;
        }
    }
    pick.map(|index| Pick { index: index as usize, panic: choice.panic })
}

/// How far a hashing balancer walks to avoid excluded hosts before giving up.
const MAX_HASH_ATTEMPTS: u32 = 64;

/// A level's consistent-hash lookup structure (shared, immutable).
#[derive(Debug, Default)]
pub enum HashTable {
    #[default]
    Empty,
    Ring(Ring),
    Maglev(Maglev),
}

impl HashTable {
    /// Build one table per level of `ps` for a hashing policy (none otherwise): over
    /// the level's healthy hosts, or all of them when it panics, with weights
    /// normalized to sum to 1 (Envoy's `normalizeWeights`).
    pub fn build_all(ps: &PrioritySet, lb: &LbConfig) -> Vec<HashTable> {
        if !matches!(lb.policy, LbPolicy::RingHash | LbPolicy::Maglev) {
            return Vec::new();
        }
        ps.levels
            .iter()
            .enumerate()
            .map(|(p, level)| {
                let members = if ps.panic[p] { &level.all } else { &level.healthy };
                let sum: u64 = members.iter().map(|&i| u64::from(ps.hosts.hosts[i as usize].weight)).sum();
                if members.is_empty() || sum == 0 {
                    return HashTable::Empty;
                }
                let weighted: Vec<WeightedHost> = members
                    .iter()
                    .map(|&i| {
                        let h = &ps.hosts.hosts[i as usize];
                        WeightedHost { index: i, key: h.address.to_string(), weight: f64::from(h.weight) / sum as f64 }
                    })
                    .collect();
                match lb.policy {
                    LbPolicy::RingHash => HashTable::Ring(Ring::build(
                        &weighted,
                        lb.ring_hash.minimum_ring_size,
                        lb.ring_hash.maximum_ring_size,
                    )),
                    _ => HashTable::Maglev(Maglev::build(&weighted, lb.maglev_table_size)),
                }
            })
            .collect()
    }

    /// The host for `hash` on attempt `attempt` (0 first), `None` when empty.
    pub fn choose(&self, hash: u64, attempt: u32) -> Option<u32> {
        match self {
            HashTable::Empty => None,
            HashTable::Ring(r) => r.choose(hash, attempt),
            HashTable::Maglev(m) => m.choose(hash, attempt),
        }
    }
}

/// A host entering a hash table: its index, hash key (`ip:port`, as Envoy's
/// `address()->asString()`) and normalized weight.
#[derive(Debug, Clone)]
pub struct WeightedHost {
    pub index: u32,
    pub key: String,
    pub weight: f64,
}

/// Random numbers for one pick, derived from `LbContext::random` (SplitMix64), so that a
/// pick needing several draws (least request) stays allocation- and lock-free.
#[derive(Debug, Clone)]
pub struct PickRng(u64);

impl PickRng {
    pub fn new(seed: u64) -> PickRng {
        PickRng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// The first host of `hosts` at or after position `start` (wrapping) that `ctx`
/// allows, or `None` when every host is excluded.
fn first_allowed(hosts: &[u32], start: usize, ctx: &LbContext<'_>) -> Option<u32> {
    (0..hosts.len()).map(|k| hosts[(start + k) % hosts.len()]).find(|&i| ctx.allows(i))
}

/// Whether every host in `hosts` has the same weight (Envoy skips EDF then).
fn weights_equal(ps: &PrioritySet, hosts: &[u32]) -> bool {
    let mut it = hosts.iter().map(|&i| ps.hosts.hosts[i as usize].weight);
    match it.next() {
        Some(w) => it.all(|x| x == w),
        None => true,
    }
}
