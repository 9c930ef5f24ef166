//! Per-worker timers: one structure that sets the poll timeout.
//!
//! Timers are lazy: an owner (a connection) schedules "wake me at `t`" and, when woken,
//! re-checks its own deadlines (idle, connect, drain ...) against `now` and schedules
//! the next one. Activity therefore never touches the heap; a deadline that moved later
//! simply finds nothing to do when the old entry fires, and an owner that is gone (or
//! whose slot was reused: keys carry a generation) is skipped. Cancelling is implicit
//! and precise.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

/// Identifies a timer owner: a slot index plus the slot's generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TimerKey {
    pub index: u32,
    pub generation: u32,
}

#[derive(Debug, Default)]
pub struct Timers {
    heap: BinaryHeap<Reverse<(Instant, TimerKey)>>,
}

impl Timers {
    pub fn new() -> Timers {
        Timers::default()
    }

    /// Wake `key` at `at` (or at its next poll, if `at` is already past).
    pub fn schedule(&mut self, key: TimerKey, at: Instant) {
        self.heap.push(Reverse((at, key)));
    }

    /// How long the worker may sleep: until the earliest timer, `None` if there is none.
    pub fn timeout(&self, now: Instant) -> Option<Duration> {
        self.heap.peek().map(|Reverse((at, _))| at.saturating_duration_since(now))
    }

    /// The next due timer, if any is due at `now`.
    pub fn pop_due(&mut self, now: Instant) -> Option<(Instant, TimerKey)> {
        match self.heap.peek() {
            Some(Reverse((at, _))) if *at <= now => self.heap.pop().map(|Reverse(e)| e),
            _ => None,
        }
    }

    pub fn len(&self) -> usize {
        self.heap.len()
    }

    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

/// The earliest of several optional deadlines.
pub fn earliest(deadlines: impl IntoIterator<Item = Option<Instant>>) -> Option<Instant> {
    deadlines.into_iter().flatten().min()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_in_order_and_timeout() {
        let t0 = Instant::now();
        let mut t = Timers::new();
        let a = TimerKey { index: 1, generation: 0 };
        let b = TimerKey { index: 2, generation: 0 };
        t.schedule(b, t0 + Duration::from_millis(20));
        t.schedule(a, t0 + Duration::from_millis(10));
        assert_eq!(t.timeout(t0), Some(Duration::from_millis(10)));
        assert_eq!(t.pop_due(t0), None);
        assert_eq!(t.pop_due(t0 + Duration::from_millis(15)).map(|e| e.1), Some(a));
        assert_eq!(t.pop_due(t0 + Duration::from_millis(15)), None);
        assert_eq!(t.pop_due(t0 + Duration::from_millis(25)).map(|e| e.1), Some(b));
        assert!(t.is_empty());
        assert_eq!(t.timeout(t0), None);
    }

    #[test]
    fn earliest_skips_none() {
        let t0 = Instant::now();
        assert_eq!(earliest([None, Some(t0 + Duration::from_secs(2)), Some(t0)]), Some(t0));
        assert_eq!(earliest([None, None]), None);
    }
}
