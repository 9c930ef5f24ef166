//! The drain decision of a worker (Envoy's `DrainManagerImpl`).
//!
//! A drain (SIGTERM, `/drain_listeners?graceful`) lasts `--drain-time-s`. With
//! `--drain-strategy immediate` every HTTP connection starts its drain sequence at once
//! and every response asks its connection to close. With `gradual` (Envoy's default)
//! the connections start their drain sequences spread over the first quarter of the
//! drain window, and until then a response asks its connection to close with a
//! probability that grows from 0 to 1 over the drain time (`drainClose()`). A
//! connection's drain sequence: `connection: close` on its next response, and close
//! once it has stayed idle for the HCM's `drain_timeout` (a request may be on its way).

use std::time::{Duration, Instant};

use crate::rng::Rng;

/// Envoy's `--drain-strategy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DrainStrategy {
    /// Encourage connections to close with a probability growing over the drain time.
    #[default]
    Gradual,
    /// Encourage every connection to close as soon as the drain starts.
    Immediate,
}

impl DrainStrategy {
    /// Parse Envoy's flag value.
    pub fn parse(s: &str) -> Option<DrainStrategy> {
        match s {
            "gradual" => Some(DrainStrategy::Gradual),
            "immediate" => Some(DrainStrategy::Immediate),
            _ => None,
        }
    }
}

/// One drain in progress.
#[derive(Debug, Clone, Copy)]
pub struct Drain {
    pub strategy: DrainStrategy,
    pub started: Instant,
    pub time: Duration,
}

impl Drain {
    /// Envoy's `drainClose()`: whether a response now should close its connection.
    pub fn close_now(&self, now: Instant, rng: &mut Rng) -> bool {
        if self.strategy == DrainStrategy::Immediate {
            return true;
        }
        let total = self.time.as_millis() as u64;
        let elapsed = now.saturating_duration_since(self.started).as_millis() as u64;
        total == 0 || elapsed >= total || elapsed > rng.below(total)
    }

    /// When connection `i` of `n` starts its drain sequence: spread over the first
    /// quarter of the drain window (gradual), or at once (immediate).
    pub fn start_of(&self, i: usize, n: usize) -> Instant {
        if self.strategy == DrainStrategy::Immediate || n == 0 {
            return self.started;
        }
        self.started + self.time.mul_f64(i as f64 / 4.0 / n as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gradual_starts_are_spread_over_the_first_quarter() {
        let t0 = Instant::now();
        let d = Drain { strategy: DrainStrategy::Gradual, started: t0, time: Duration::from_secs(40) };
        assert_eq!(d.start_of(0, 4), t0);
        assert_eq!(d.start_of(2, 4), t0 + Duration::from_secs(5));
        assert!(d.start_of(3, 4) < t0 + Duration::from_secs(10));
        let i = Drain { strategy: DrainStrategy::Immediate, ..d };
        assert_eq!(i.start_of(3, 4), t0);
    }

    #[test]
    fn gradual_close_probability_grows_with_elapsed_time() {
        let t0 = Instant::now();
        let d = Drain { strategy: DrainStrategy::Gradual, started: t0, time: Duration::from_secs(10) };
        let mut rng = Rng::new(7);
        let share = |at: Duration, rng: &mut Rng| (0..2000).filter(|_| d.close_now(t0 + at, rng)).count();
        assert_eq!(share(Duration::ZERO, &mut rng), 0);
        let half = share(Duration::from_secs(5), &mut rng);
        assert!((800..1200).contains(&half), "about half at mid-drain: {half}");
        assert_eq!(share(Duration::from_secs(10), &mut rng), 2000);
        let i = Drain { strategy: DrainStrategy::Immediate, ..d };
        assert!(i.close_now(t0, &mut rng));
        assert_eq!(DrainStrategy::parse("immediate"), Some(DrainStrategy::Immediate));
        assert_eq!(DrainStrategy::parse("fast"), None);
    }
}
