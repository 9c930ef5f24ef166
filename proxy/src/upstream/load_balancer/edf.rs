//! Earliest-deadline-first scheduling for weighted picks (Envoy's `EdfScheduler`).
//!
//! Each entry is due at `current_time + 1 / weight`; a pick takes the entry with the
//! earliest deadline (ties: first queued) and re-queues it with a deadline computed from
//! its weight *now*, so dynamic weights (least request's `weight / (active + 1)`) are
//! honoured at every pick. [`Edf::with_picks`] builds a scheduler as if `picks` picks
//! had already been made (`createWithPicks`), so balancers seeded differently start at
//! different points of the same rotation. Entries are host indices; a pick does not
//! allocate (the heap keeps its capacity).

use std::cmp::Ordering;
use std::collections::BinaryHeap;

#[derive(Debug, Clone, Copy)]
struct Entry {
    deadline: f64,
    order: u64,
    item: u32,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Entry {}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Entry {
    /// Reversed, so that `BinaryHeap` (a max-heap) pops the earliest deadline first.
    fn cmp(&self, other: &Self) -> Ordering {
        other.deadline.total_cmp(&self.deadline).then_with(|| other.order.cmp(&self.order))
    }
}

/// An EDF schedule over `u32` items.
#[derive(Debug, Clone, Default)]
pub struct Edf {
    heap: BinaryHeap<Entry>,
    current_time: f64,
    order: u64,
}

/// Envoy limits emulated picks to `u32::MAX / 10`.
const MAX_PICKS: u32 = 429_496_729;

impl Edf {
    /// Insert `item` due `1 / weight` from now (`weight > 0`).
    pub fn add(&mut self, weight: f64, item: u32) {
        let deadline = self.current_time + 1.0 / weight;
        self.heap.push(Entry { deadline, order: self.order, item });
        self.order += 1;
    }

    /// Take the earliest entry and re-queue it with its current `weight`.
    pub fn pick_and_add(&mut self, weight: impl Fn(u32) -> f64) -> Option<u32> {
        let top = self.heap.pop()?;
        self.current_time = top.deadline;
        self.add(weight(top.item), top.item);
        Some(top.item)
    }

    /// A scheduler over `items` as if `picks` picks had been made from an empty one
    /// filled in order (Envoy's `createWithPicks`, including its epsilon that keeps
    /// weights that are multiples of each other exact).
    pub fn with_picks(items: &[(u32, f64)], picks: u32, weight: impl Fn(u32) -> f64) -> Edf {
        let picks = picks % MAX_PICKS;
        if items.is_empty() {
            return Edf::default();
        }
        let aug = |w: f64| w + 1e-13;
        let sum: f64 = items.iter().map(|&(_, w)| aug(w)).sum();
        let mut heap = Vec::with_capacity(items.len());
        let mut picked: u32 = 0;
        let mut max_pick_time: f64 = 0.0;
        for (i, &(item, w)) in items.iter().enumerate() {
            let w = aug(w);
            let mut floor = (w * f64::from(picks) / sum) as u32;
            if floor > 0 && f64::from(floor) / w >= f64::from(picks) / sum {
                floor -= 1;
            }
            max_pick_time = max_pick_time.max(f64::from(floor) / w);
            heap.push(Entry { deadline: f64::from(floor + 1) / w, order: i as u64, item });
            picked += floor;
        }
        let mut edf = Edf { heap: BinaryHeap::from(heap), current_time: max_pick_time, order: items.len() as u64 };
        while picked < picks {
            edf.pick_and_add(&weight);
            picked += 1;
        }
        edf
    }

    pub fn len(&self) -> usize {
        self.heap.len()
    }

    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn weights(w: &[f64]) -> Vec<(u32, f64)> {
        w.iter().enumerate().map(|(i, w)| (i as u32, *w)).collect()
    }

    #[test]
    fn equal_weights_are_fifo_round_robin() {
        let items = weights(&[1.0, 1.0, 1.0]);
        let mut e = Edf::with_picks(&items, 0, |_| 1.0);
        let picks: Vec<u32> = (0..6).map(|_| e.pick_and_add(|_| 1.0).unwrap()).collect();
        assert_eq!(picks, vec![0, 1, 2, 0, 1, 2]);
    }

    #[test]
    fn picks_follow_weights_exactly_over_a_cycle() {
        let w = [1.0, 2.0, 3.0, 4.0];
        let items = weights(&w);
        let mut e = Edf::with_picks(&items, 0, |i| w[i as usize]);
        let mut counts = [0u32; 4];
        for _ in 0..100 {
            counts[e.pick_and_add(|i| w[i as usize]).unwrap() as usize] += 1;
        }
        assert_eq!(counts, [10, 20, 30, 40]);
    }

    /// `with_picks(n)` continues where an empty scheduler is after `n` picks (Envoy's
    /// epsilon shifts near-ties, so compare per-item counts over the next picks).
    #[test]
    fn with_picks_matches_picking_from_empty() {
        let w = [25.0, 75.0, 10.0, 1.0];
        let items = weights(&w);
        for n in [0u32, 1, 7, 23, 111, 1000] {
            let mut a = Edf::default();
            for &(i, wi) in &items {
                a.add(wi, i);
            }
            for _ in 0..n {
                a.pick_and_add(|i| w[i as usize]);
            }
            let mut b = Edf::with_picks(&items, n, |i| w[i as usize]);
            let (mut ca, mut cb) = ([0i32; 4], [0i32; 4]);
            for _ in 0..333 {
                ca[a.pick_and_add(|i| w[i as usize]).unwrap() as usize] += 1;
                cb[b.pick_and_add(|i| w[i as usize]).unwrap() as usize] += 1;
            }
            for k in 0..4 {
                assert!((ca[k] - cb[k]).abs() <= 1, "after {n} picks: {ca:?} vs {cb:?}");
            }
        }
    }

    #[test]
    fn empty_scheduler_picks_nothing() {
        let mut e = Edf::with_picks(&[], 5, |_| 1.0);
        assert!(e.is_empty());
        assert_eq!(e.pick_and_add(|_| 1.0), None);
    }
}
