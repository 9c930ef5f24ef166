//! Time sources for the smol stack.
//!
//! The stack reads the time once per poll round from a [`Clock`] and hands it down as
//! `now`; nothing below reads a clock. Production uses [`SystemClock`] (a monotonic
//! `std::time::Instant` on smoltcp's process-wide epoch, so every stack and in-memory
//! port in a process agrees on the time). Deterministic tests use [`ManualClock`], which
//! moves only when the test moves it.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use smoltcp::time::{Duration, Instant};

/// Where a stack reads the time.
pub trait Clock {
    fn now(&self) -> Instant;
}

/// The monotonic system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::from(std::time::Instant::now())
    }
}

/// A clock that moves only when told to. Clones share the same time, so one clock can
/// drive every stack of a simulation.
#[derive(Debug, Clone, Default)]
pub struct ManualClock {
    micros: Arc<AtomicI64>,
}

impl ManualClock {
    pub fn new(start: Instant) -> ManualClock {
        ManualClock { micros: Arc::new(AtomicI64::new(start.total_micros())) }
    }

    pub fn advance(&self, by: Duration) {
        self.micros.fetch_add(by.total_micros() as i64, Ordering::Relaxed);
    }

    /// Move to `at`; the clock never goes backwards.
    pub fn set(&self, at: Instant) {
        self.micros.fetch_max(at.total_micros(), Ordering::Relaxed);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        Instant::from_micros(self.micros.load(Ordering::Relaxed))
    }
}

impl<C: Clock + ?Sized> Clock for &C {
    fn now(&self) -> Instant {
        (**self).now()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_is_shared_and_monotonic() {
        let a = ManualClock::new(Instant::from_secs(1));
        let b = a.clone();
        a.advance(Duration::from_millis(5));
        assert_eq!(b.now(), Instant::from_millis(1005));
        b.set(Instant::from_millis(10));
        assert_eq!(a.now(), Instant::from_millis(1005), "never backwards");
        b.set(Instant::from_secs(2));
        assert_eq!(a.now(), Instant::from_secs(2));
    }

    #[test]
    fn system_clock_moves_forward() {
        let c = SystemClock;
        let t0 = c.now();
        std::thread::sleep(std::time::Duration::from_millis(2));
        assert!(c.now() > t0);
    }
}
