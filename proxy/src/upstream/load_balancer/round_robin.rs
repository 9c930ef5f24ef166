//! ROUND_ROBIN (Envoy's `RoundRobinLoadBalancer` over `EdfLoadBalancerBase`).
//!
//! Per host source (priority level × all/healthy/degraded) the worker keeps a rotation
//! index that starts at the balancer's seed (so workers and proxies do not march in
//! lock step) and survives host-set refreshes, as Envoy's `rr_indexes_` do. When the
//! source's hosts have unequal weights it uses an EDF schedule with deadlines
//! `1 / weight`, rebuilt on every refresh as if `seed` picks had been made.

use super::edf::Edf;
use super::{weights_equal, LbContext, Pick, PickRng};
use crate::upstream::priority::{PrioritySet, Source};

#[derive(Debug, Default)]
struct SourceState {
    index: u64,
    edf: Option<Edf>,
}

#[derive(Debug, Default)]
pub struct RoundRobin {
    seed: u64,
    /// Indexed by `priority * Source::COUNT + source`.
    sources: Vec<SourceState>,
}

impl RoundRobin {
    pub fn new(seed: u64) -> RoundRobin {
        RoundRobin { seed, sources: Vec::new() }
    }

    /// Rebuild EDF schedules for a new priority set; rotation indices are kept.
    pub fn refresh(&mut self, ps: &PrioritySet) {
        let seed = self.seed;
        self.sources.resize_with(ps.levels.len() * Source::COUNT, || SourceState { index: seed, edf: None });
        for (p, level) in ps.levels.iter().enumerate() {
            for source in [Source::All, Source::Healthy, Source::Degraded] {
                let hosts = level.hosts(source);
                let state = &mut self.sources[p * Source::COUNT + source as usize];
                state.edf = (hosts.len() > 1 && !weights_equal(ps, hosts)).then(|| {
                    let items: Vec<(u32, f64)> =
                        hosts.iter().map(|&i| (i, f64::from(ps.hosts.hosts[i as usize].weight))).collect();
                    Edf::with_picks(&items, seed as u32, |i| f64::from(ps.hosts.hosts[i as usize].weight))
                });
            }
        }
    }

    pub fn choose(&mut self, ps: &PrioritySet, ctx: &LbContext<'_>, rng: &mut PickRng) -> Option<Pick> {
        let choice = ps.choose(rng.next_u64())?;
        let hosts = ps.source_hosts(choice);
        if hosts.is_empty() {
            return None;
        }
        if self.sources.len() < ps.levels.len() * Source::COUNT {
            self.refresh(ps);
        }
        let state = &mut self.sources[choice.priority * Source::COUNT + choice.source as usize];
        // Excluded hosts are skipped by advancing the rotation (at most once around).
        let attempts = if ctx.exclude.is_empty() { 1 } else { hosts.len() };
        let mut pick = hosts[0];
        for _ in 0..attempts {
            pick = match &mut state.edf {
                Some(edf) => edf.pick_and_add(|i| f64::from(ps.hosts.hosts[i as usize].weight)).unwrap_or(hosts[0]),
                None => {
                    let p = hosts[(state.index % hosts.len() as u64) as usize];
                    state.index = state.index.wrapping_add(1);
                    p
                }
            };
            if ctx.allows(pick) {
                break;
            }
        }
        Some(Pick { index: pick as usize, panic: choice.panic })
    }
}
