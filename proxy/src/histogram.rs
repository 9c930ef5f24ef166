//! Latency histograms: fixed buckets (Envoy's default bucket bounds, in ms), one per
//! worker per stat, written by that worker only (relaxed load + store, no lock, no
//! allocation) and merged on read.

use std::sync::atomic::{AtomicU64, Ordering};

/// Envoy's default histogram bucket upper bounds (`stats_config.histogram_bucket_settings`).
pub const BUCKETS: [f64; 19] = [
    0.5, 1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0, 30000.0, 60000.0, 300000.0,
    600000.0, 1800000.0, 3600000.0,
];

/// One worker's histogram.
#[derive(Debug)]
pub struct Histogram {
    /// counts[i]: samples <= BUCKETS[i] (and > BUCKETS[i-1]); the last slot is +Inf.
    counts: [AtomicU64; BUCKETS.len() + 1],
    /// Sum of samples in microseconds (exact enough for the mean and Prometheus `_sum`).
    sum_us: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram { counts: std::array::from_fn(|_| AtomicU64::new(0)), sum_us: AtomicU64::new(0) }
    }
}

fn bump(a: &AtomicU64, n: u64) {
    a.store(a.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
}

impl Histogram {
    /// Record a duration in microseconds.
    #[inline]
    pub fn record_us(&self, us: u64) {
        let ms = us as f64 / 1000.0;
        let i = BUCKETS.iter().position(|b| ms <= *b).unwrap_or(BUCKETS.len());
        bump(&self.counts[i], 1);
        bump(&self.sum_us, us);
    }

    pub fn record(&self, d: std::time::Duration) {
        self.record_us(d.as_micros().min(u64::MAX as u128) as u64);
    }

    /// Add this worker's counts into a merged view.
    pub fn merge_into(&self, into: &mut Snapshot) {
        for (i, c) in self.counts.iter().enumerate() {
            into.counts[i] += c.load(Ordering::Relaxed);
        }
        into.sum_us += self.sum_us.load(Ordering::Relaxed);
    }
}

/// A merged, plain view of a histogram.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    pub counts: [u64; BUCKETS.len() + 1],
    pub sum_us: u64,
}

impl Snapshot {
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Sum in milliseconds.
    pub fn sum_ms(&self) -> f64 {
        self.sum_us as f64 / 1000.0
    }

    /// Cumulative counts per bucket bound (Prometheus `le`), then +Inf.
    pub fn cumulative(&self) -> Vec<(f64, u64)> {
        let mut acc = 0;
        let mut out = Vec::with_capacity(BUCKETS.len() + 1);
        for (i, c) in self.counts.iter().enumerate() {
            acc += c;
            out.push((BUCKETS.get(i).copied().unwrap_or(f64::INFINITY), acc));
        }
        out
    }

    /// The `q` quantile (0..=1) by linear interpolation within its bucket, or `None`
    /// without samples.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let rank = q * total as f64;
        let mut acc = 0u64;
        for (i, c) in self.counts.iter().enumerate() {
            if *c == 0 {
                continue;
            }
            if (acc + c) as f64 >= rank {
                let lo = if i == 0 { 0.0 } else { BUCKETS[i - 1] };
                let hi = BUCKETS.get(i).copied().unwrap_or(lo * 2.0);
                let within = ((rank - acc as f64) / *c as f64).clamp(0.0, 1.0);
                return Some(lo + (hi - lo) * within);
            }
            acc += c;
        }
        Some(BUCKETS[BUCKETS.len() - 1])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_and_quantiles() {
        let h = Histogram::default();
        for ms in [1u64, 2, 3, 4, 40] {
            h.record_us(ms * 1000);
        }
        let mut s = Snapshot::default();
        h.merge_into(&mut s);
        assert_eq!(s.count(), 5);
        assert_eq!(s.sum_ms(), 50.0);
        let cum = s.cumulative();
        assert_eq!(cum[1], (1.0, 1), "1 ms lands in the <=1 bucket");
        assert_eq!(cum[2], (5.0, 4));
        assert_eq!(cum[5], (50.0, 5));
        assert_eq!(cum.last().unwrap().1, 5);
        let p50 = s.quantile(0.5).unwrap();
        assert!((1.0..=5.0).contains(&p50), "{p50}");
        assert!(s.quantile(1.0).unwrap() <= 50.0);
        assert_eq!(Snapshot::default().quantile(0.5), None);
    }
}
