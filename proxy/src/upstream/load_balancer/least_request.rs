//! LEAST_REQUEST (Envoy's `LeastRequestLoadBalancer`, N_CHOICES selection).
//!
//! With equal weights it samples `choice_count` hosts uniformly (with replacement) and
//! keeps the one with the fewest active requests, the first sampled winning ties (power
//! of two choices by default). With unequal weights it uses an EDF schedule whose weights
//! are `weight / (active_requests + 1)` (Envoy's default `active_request_bias` of 1.0),
//! re-evaluated each time a host is re-queued. Active requests are the host's
//! cluster-wide `rq_active` counter, shared by all workers.

use std::sync::atomic::Ordering;

use super::edf::Edf;
use super::{first_allowed, weights_equal, LbContext, Pick, PickRng};
use crate::upstream::host::Host;
use crate::upstream::priority::{PrioritySet, Source};

#[derive(Debug)]
pub struct LeastRequest {
    choice_count: u32,
    seed: u64,
    /// Indexed by `priority * Source::COUNT + source`; `None` when weights are equal.
    edf: Vec<Option<Edf>>,
}

/// Envoy's dynamic host weight with `active_request_bias` 1.0.
fn dynamic_weight(host: &Host) -> f64 {
    let active = u64::from(host.rq_active.load(Ordering::Relaxed));
    f64::from(host.weight) / (active + 1) as f64
}

impl LeastRequest {
    pub fn new(choice_count: u32, seed: u64) -> LeastRequest {
        LeastRequest { choice_count: choice_count.max(1), seed, edf: Vec::new() }
    }

    pub fn refresh(&mut self, ps: &PrioritySet) {
        self.edf.clear();
        for level in &ps.levels {
            for source in [Source::All, Source::Healthy, Source::Degraded] {
                let hosts = level.hosts(source);
                let w = |i: u32| dynamic_weight(&ps.hosts.hosts[i as usize]);
                self.edf.push((hosts.len() > 1 && !weights_equal(ps, hosts)).then(|| {
                    let items: Vec<(u32, f64)> = hosts.iter().map(|&i| (i, w(i))).collect();
                    Edf::with_picks(&items, self.seed as u32, w)
                }));
            }
        }
    }

    pub fn choose(&mut self, ps: &PrioritySet, ctx: &LbContext<'_>, rng: &mut PickRng) -> Option<Pick> {
        let choice = ps.choose(rng.next_u64())?;
        let hosts = ps.source_hosts(choice);
        if hosts.is_empty() {
            return None;
        }
        if self.edf.len() < ps.levels.len() * Source::COUNT {
            self.refresh(ps);
        }
        let slot = choice.priority * Source::COUNT + choice.source as usize;
        let index = match &mut self.edf[slot] {
            Some(edf) => {
                let attempts = if ctx.exclude.is_empty() { 1 } else { hosts.len() };
                let mut pick = hosts[0];
                for _ in 0..attempts {
                    pick = edf.pick_and_add(|i| dynamic_weight(&ps.hosts.hosts[i as usize])).unwrap_or(hosts[0]);
                    if ctx.allows(pick) {
                        break;
                    }
                }
                pick
            }
            None => self.n_choices(ps, hosts, ctx, rng),
        };
        Some(Pick { index: index as usize, panic: choice.panic })
    }

    /// Sample `choice_count` hosts and keep the least loaded (Envoy's
    /// `unweightedHostPickNChoices`); an excluded sample is replaced by the next allowed
    /// host of the source.
    fn n_choices(&self, ps: &PrioritySet, hosts: &[u32], ctx: &LbContext<'_>, rng: &mut PickRng) -> u32 {
        let mut best: Option<(u32, u32)> = None;
        for _ in 0..self.choice_count {
            let start = (rng.next_u64() % hosts.len() as u64) as usize;
            let sampled = if ctx.exclude.is_empty() {
                hosts[start]
            } else {
                first_allowed(hosts, start, ctx).unwrap_or(hosts[start])
            };
            let active = ps.hosts.hosts[sampled as usize].rq_active.load(Ordering::Relaxed);
            match best {
                Some((_, a)) if active >= a => {}
                _ => best = Some((sampled, active)),
            }
        }
        best.map_or(hosts[0], |(i, _)| i)
    }
}
