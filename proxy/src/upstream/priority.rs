//! A cluster's hosts split by priority and health, with Envoy's priority-load math.
//!
//! A [`PrioritySet`] is computed once per membership or health change by whoever made
//! the change (the health-check/outlier thread, the DNS refresher, the main thread at
//! load) and published to every worker through an `Arc`; workers only read it. It
//! holds, per priority level, the host indices that are healthy, degraded or merely
//! present, and the per-level load and panic flags of Envoy's `LoadBalancerBase`
//! (`recalculatePerPriorityState`, `recalculatePerPriorityPanic`,
//! `recalculateLoadInTotalPanic`, `choosePriority`):
//!
//! - a level's availability is `min(100, 1.4 × healthy / (hosts − excluded))` percent
//!   (overprovisioning factor 140, host counts, not weights), likewise for degraded
//!   hosts;
//! - load is poured into levels in priority order by availability scaled to the
//!   normalized total (capped at 100); healthy first, then degraded, rounding remainder
//!   to the first available level;
//! - a level panics (serves all its hosts) when the normalized total is below 100 and
//!   its healthy + degraded share is below `healthy_panic_threshold`; when every level
//!   panics, load follows host counts.
//!
//! Consistent-hash tables (RING_HASH, MAGLEV) are built here too, once per change and
//! shared by all workers, as Envoy's thread-aware balancers do.

use std::sync::Arc;

use crate::upstream::host::{Health, HostSet};
use crate::upstream::load_balancer::{HashTable, LbConfig};

/// Envoy's default overprovisioning factor, in percent.
pub const OVERPROVISIONING_FACTOR: u64 = 140;

/// Which hosts of a level a pick draws from (Envoy's `HostsSource::SourceType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    /// Every host of the level (panic mode).
    All = 0,
    Healthy = 1,
    Degraded = 2,
}

impl Source {
    pub const COUNT: usize = 3;
}

/// One priority level: indices into [`PrioritySet::hosts`].
#[derive(Debug, Default, Clone)]
pub struct Level {
    pub all: Vec<u32>,
    pub healthy: Vec<u32>,
    pub degraded: Vec<u32>,
    /// Hosts excluded from the availability computation.
    pub excluded: usize,
}

impl Level {
    pub fn hosts(&self, source: Source) -> &[u32] {
        match source {
            Source::All => &self.all,
            Source::Healthy => &self.healthy,
            Source::Degraded => &self.degraded,
        }
    }

    /// Healthy + degraded share of the level, in percent (`isHostSetInPanic`).
    fn available_percent(&self) -> f64 {
        let count = self.all.len().saturating_sub(self.excluded);
        if count == 0 {
            return 0.0;
        }
        100.0 * (self.healthy.len() + self.degraded.len()) as f64 / count as f64
    }
}

/// Where a pick goes: a level, the hosts it draws from, and whether that is panic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Choice {
    pub priority: usize,
    pub source: Source,
    pub panic: bool,
}

/// A cluster's hosts by priority and health, with per-level loads. Immutable.
#[derive(Debug, Default)]
pub struct PrioritySet {
    pub hosts: Arc<HostSet>,
    pub levels: Vec<Level>,
    /// Per-level availability (percent, capped at 100) of healthy and degraded hosts.
    pub health: Vec<u32>,
    pub degraded: Vec<u32>,
    /// Per-level share of picks (percent; healthy and degraded loads sum to 100).
    pub healthy_load: Vec<u32>,
    pub degraded_load: Vec<u32>,
    /// Per-level panic flag.
    pub panic: Vec<bool>,
    /// Per-level consistent-hash table (empty unless the policy hashes).
    pub hash_tables: Vec<HashTable>,
}

impl PrioritySet {
    /// Split `hosts` by priority and current health flags and compute the loads.
    pub fn build(hosts: Arc<HostSet>, lb: &LbConfig) -> PrioritySet {
        let nlevels = hosts.max_priority().map_or(0, |p| p as usize + 1);
        let mut levels = vec![Level::default(); nlevels];
        for (i, h) in hosts.hosts.iter().enumerate() {
            let level = &mut levels[h.priority as usize];
            let i = i as u32;
            level.all.push(i);
            if h.excluded() {
                level.excluded += 1;
                continue;
            }
            match h.health() {
                Health::Healthy => level.healthy.push(i),
                Health::Degraded => level.degraded.push(i),
                Health::Unhealthy => {}
            }
        }
        let mut ps = PrioritySet {
            hosts,
            health: vec![0; nlevels],
            degraded: vec![0; nlevels],
            healthy_load: vec![0; nlevels],
            degraded_load: vec![0; nlevels],
            panic: vec![false; nlevels],
            levels,
            hash_tables: Vec::new(),
        };
        ps.compute_loads(lb.healthy_panic_threshold);
        ps.hash_tables = HashTable::build_all(&ps, lb);
        ps
    }

    fn compute_loads(&mut self, panic_threshold: u32) {
        let n = self.levels.len();
        if n == 0 {
            return;
        }
        for (p, level) in self.levels.iter().enumerate() {
            let count = level.all.len().saturating_sub(level.excluded) as u64;
            let share =
                |n: usize| (OVERPROVISIONING_FACTOR * n as u64).checked_div(count).map_or(0, |v| v.min(100) as u32);
            self.health[p] = share(level.healthy.len());
            self.degraded[p] = share(level.degraded.len());
        }
        let total = self.normalized_total_availability();
        if total > 0 {
            let (first_healthy, left) = distribute(&mut self.healthy_load, &self.health, 100, total);
            let (first_degraded, left) = distribute(&mut self.degraded_load, &self.degraded, left, total);
            if left > 0 {
                match (first_healthy, first_degraded) {
                    (Some(p), _) => self.healthy_load[p] += left,
                    (None, Some(p)) => self.degraded_load[p] += left,
                    (None, None) => self.healthy_load[0] += left,
                }
            }
        }
        let threshold = panic_threshold.min(100);
        if threshold == 0 && total == 0 {
            // Panic disabled and nothing available: P0 takes all load (and finds no host).
            self.healthy_load[0] = 100;
            return;
        }
        let mut total_panic = true;
        for p in 0..n {
            self.panic[p] = total != 100 && self.levels[p].available_percent() < f64::from(threshold);
            total_panic &= self.panic[p];
        }
        if total_panic {
            self.load_in_total_panic();
        }
    }

    /// Sum of all levels' availability, capped at 100.
    pub fn normalized_total_availability(&self) -> u32 {
        let sum: u32 = self.health.iter().chain(&self.degraded).sum();
        sum.min(100)
    }

    /// Every level panics: distribute load by host count, regardless of health.
    fn load_in_total_panic(&mut self) {
        let total_hosts: usize = self.levels.iter().map(|l| l.all.len()).sum();
        self.degraded_load.iter_mut().for_each(|l| *l = 0);
        if total_hosts == 0 {
            self.healthy_load.iter_mut().for_each(|l| *l = 0);
            self.healthy_load[0] = 100;
            return;
        }
        let mut left = 100u32;
        let mut first_nonempty = None;
        for (p, level) in self.levels.iter().enumerate() {
            if first_nonempty.is_none() && !level.all.is_empty() {
                first_nonempty = Some(p);
            }
            let load = (100 * level.all.len() / total_hosts) as u32;
            self.healthy_load[p] = load;
            left -= load;
        }
        self.healthy_load[first_nonempty.unwrap_or(0)] += left;
    }

    /// Envoy's `choosePriority` + `hostSourceToUse`: pick a level with `hash` (1..=100
    /// against the cumulative loads) and the hosts to draw from. `None` without hosts.
    pub fn choose(&self, hash: u64) -> Option<Choice> {
        if self.levels.is_empty() {
            return None;
        }
        let h = (hash % 100 + 1) as u32;
        let mut acc = 0;
        let mut chosen = None;
        for (p, load) in self.healthy_load.iter().enumerate() {
            acc += load;
            if h <= acc {
                chosen = Some((p, Source::Healthy));
                break;
            }
        }
        if chosen.is_none() {
            for (p, load) in self.degraded_load.iter().enumerate() {
                acc += load;
                if h <= acc {
                    chosen = Some((p, Source::Degraded));
                    break;
                }
            }
        }
        let (priority, source) = chosen.unwrap_or((0, Source::Healthy));
        let panic = self.panic[priority];
        Some(Choice { priority, source: if panic { Source::All } else { source }, panic })
    }

    /// The host indices a choice draws from.
    pub fn source_hosts(&self, c: Choice) -> &[u32] {
        self.levels[c.priority].hosts(c.source)
    }

    pub fn healthy_count(&self) -> usize {
        self.levels.iter().map(|l| l.healthy.len()).sum()
    }

    pub fn degraded_count(&self) -> usize {
        self.levels.iter().map(|l| l.degraded.len()).sum()
    }

    pub fn excluded_count(&self) -> usize {
        self.levels.iter().map(|l| l.excluded).sum()
    }
}

/// Envoy's `distributeLoad`: give each level `availability × 100 / total` of what is
/// left, in order. Returns the first level with availability and the load left over.
fn distribute(load: &mut [u32], availability: &[u32], mut left: u32, total: u32) -> (Option<usize>, u32) {
    let mut first = None;
    for (p, a) in availability.iter().enumerate() {
        if first.is_none() && *a > 0 {
            first = Some(p);
        }
        load[p] = left.min(a * 100 / total);
        left -= load[p];
    }
    (first, left)
}
