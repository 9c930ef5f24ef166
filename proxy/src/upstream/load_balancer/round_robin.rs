//! ROUND_ROBIN: plain rotation for equal weights, earliest-deadline-first scheduling
//! (Envoy's EDF scheduler) when endpoint weights differ.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::{Eligible, LbContext};
use crate::upstream::host::HostSet;

#[derive(Debug, Default)]
pub struct RoundRobin {
    next: usize,
    /// EDF state over the eligible set it was built for.
    edf: Option<Edf>,
}

#[derive(Debug)]
struct Edf {
    eligible: Vec<usize>,
    /// (deadline, tiebreak, host index); deadlines advance by 1/weight.
    heap: BinaryHeap<Reverse<(u64, u64, usize)>>,
    seq: u64,
}

/// Deadlines are kept in fixed point: 1/weight scaled by this.
const SCALE: u64 = 1 << 32;

impl RoundRobin {
    pub fn new() -> RoundRobin {
        RoundRobin::default()
    }

    pub fn refresh(&mut self, _hosts: &HostSet) {
        self.edf = None;
    }

    pub fn choose(
        &mut self,
        hosts: &HostSet,
        eligible: &Eligible,
        ctx: &LbContext<'_>,
    ) -> Option<usize> {
        let idx = &eligible.indices;
        if idx.is_empty() {
            return None;
        }
        let weighted = idx
            .iter()
            .any(|&i| hosts.hosts[i].weight != hosts.hosts[idx[0]].weight);
        // Try a few picks to avoid hosts excluded by earlier attempts.
        let tries = if ctx.exclude.is_empty() { 1 } else { idx.len() };
        let mut pick = None;
        for _ in 0..tries {
            let p = if weighted {
                self.edf_pick(hosts, idx)
            } else {
                self.rotate(idx)
            };
            pick = Some(p);
            if !ctx.exclude.contains(&p) {
                break;
            }
        }
        pick
    }

    fn rotate(&mut self, idx: &[usize]) -> usize {
        let p = idx[self.next % idx.len()];
        self.next = self.next.wrapping_add(1);
        p
    }

    fn edf_pick(&mut self, hosts: &HostSet, idx: &[usize]) -> usize {
        let stale = self.edf.as_ref().is_none_or(|e| e.eligible != idx);
        if stale {
            let mut heap = BinaryHeap::with_capacity(idx.len());
            for (n, &i) in idx.iter().enumerate() {
                heap.push(Reverse((SCALE / hosts.hosts[i].weight as u64, n as u64, i)));
            }
            self.edf = Some(Edf {
                eligible: idx.to_vec(),
                heap,
                seq: idx.len() as u64,
            });
        }
        let edf = self.edf.as_mut().expect("built above");
        let Reverse((deadline, _, i)) = edf.heap.pop().expect("eligible set is not empty");
        edf.seq += 1;
        edf.heap.push(Reverse((
            deadline + SCALE / hosts.hosts[i].weight as u64,
            edf.seq,
            i,
        )));
        i
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::host::Host;
    use std::sync::Arc;

    fn set(weights: &[u32]) -> HostSet {
        HostSet::new(
            weights
                .iter()
                .enumerate()
                .map(|(i, w)| {
                    Arc::new(Host::new(
                        ([10, 0, 0, i as u8 + 1], 80).into(),
                        String::new(),
                        *w,
                        0,
                        None,
                    ))
                })
                .collect(),
        )
    }

    #[test]
    fn equal_weights_rotate() {
        let hosts = set(&[1, 1, 1]);
        let el = Eligible::compute(&hosts, 50.0);
        let mut rr = RoundRobin::new();
        let picks: Vec<usize> = (0..6)
            .map(|_| rr.choose(&hosts, &el, &LbContext::default()).unwrap())
            .collect();
        assert_eq!(picks, vec![0, 1, 2, 0, 1, 2]);
    }

    #[test]
    fn weights_are_respected() {
        let hosts = set(&[1, 3]);
        let el = Eligible::compute(&hosts, 50.0);
        let mut rr = RoundRobin::new();
        let mut counts = [0; 2];
        for _ in 0..400 {
            counts[rr.choose(&hosts, &el, &LbContext::default()).unwrap()] += 1;
        }
        assert_eq!(counts, [100, 300]);
    }

    #[test]
    fn exclusion_moves_to_another_host() {
        let hosts = set(&[1, 1]);
        let el = Eligible::compute(&hosts, 50.0);
        let mut rr = RoundRobin::new();
        for _ in 0..5 {
            let p = rr
                .choose(
                    &hosts,
                    &el,
                    &LbContext {
                        exclude: &[0],
                        ..Default::default()
                    },
                )
                .unwrap();
            assert_eq!(p, 1);
        }
    }

    #[test]
    fn unhealthy_hosts_skipped_until_panic() {
        use crate::upstream::host::health_flag::FAILED_ACTIVE_HC;
        let hosts = set(&[1, 1, 1]);
        hosts.hosts[0].set_flag(FAILED_ACTIVE_HC);
        let el = Eligible::compute(&hosts, 50.0);
        assert_eq!(el.indices, vec![1, 2]);
        hosts.hosts[1].set_flag(FAILED_ACTIVE_HC);
        // 1 of 3 healthy (33 %) is below the 50 % panic threshold: all hosts serve.
        let el = Eligible::compute(&hosts, 50.0);
        assert!(el.panic);
        assert_eq!(el.indices, vec![0, 1, 2]);
    }
}
