//! Connection timers: a min-heap of (deadline, connection) wake-ups.
//!
//! A connection records the earliest wake-up it has in the heap (`armed`). Arming a
//! later deadline than the one already armed pushes nothing: when the earlier one fires
//! the connection is visited and re-armed at its real deadline (one early wake-up, e.g.
//! per retransmission timeout while ACKs keep pushing it out). Arming an earlier one
//! pushes a new entry; the older entry goes stale, as does the entry of a connection left
//! with no deadline (`armed = None`). Stale entries are skipped when they surface (the
//! caller compares them with `armed`), so each connection has O(1) live entries, a poll
//! looks only at the heap top, and the heap is rebuilt from the live deadlines when stale
//! entries outnumber the connections.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use smoltcp::time::Instant;

use super::slab::Key;

#[derive(Default)]
pub(crate) struct Timers {
    heap: BinaryHeap<Reverse<(Instant, Key)>>,
}

impl Timers {
    /// Arm a wake-up for `key` at `at`, given the one it already has (`armed`).
    pub fn arm(&mut self, key: Key, at: Instant, armed: &mut Option<Instant>) {
        if armed.is_none_or(|current| at < current) {
            *armed = Some(at);
            self.heap.push(Reverse((at, key)));
        }
    }

    /// The earliest wake-up, possibly stale.
    pub fn next(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((at, _))| *at)
    }

    /// The earliest wake-up and its connection, possibly stale.
    pub fn peek(&self) -> Option<(Key, Instant)> {
        self.heap.peek().map(|Reverse((at, key))| (*key, *at))
    }

    /// Drop the earliest wake-up.
    pub fn pop(&mut self) {
        self.heap.pop();
    }

    /// Pop one wake-up due at `now`.
    pub fn pop_due(&mut self, now: Instant) -> Option<(Key, Instant)> {
        match self.heap.peek() {
            Some(Reverse((at, _))) if *at <= now => self.heap.pop().map(|Reverse((at, key))| (key, at)),
            _ => None,
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// Whether stale entries dominate (`live` armed connections).
    pub fn needs_compaction(&self, live: usize) -> bool {
        self.heap.len() > 2 * live + 1024
    }

    /// Replace the heap by exactly the given live wake-ups.
    pub fn rebuild(&mut self, live: impl Iterator<Item = (Key, Instant)>) {
        let mut entries = std::mem::take(&mut self.heap).into_vec();
        entries.clear();
        entries.extend(live.map(|(key, at)| Reverse((at, key))));
        self.heap = BinaryHeap::from(entries);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smol::slab::Slab;

    #[test]
    fn earlier_deadlines_replace_later_ones_lazily() {
        let mut slab = Slab::default();
        let a = slab.insert(());
        let mut t = Timers::default();
        let mut armed = None;
        t.arm(a, Instant::from_millis(100), &mut armed);
        t.arm(a, Instant::from_millis(200), &mut armed);
        assert_eq!(t.len(), 1, "a later deadline pushes nothing");
        t.arm(a, Instant::from_millis(50), &mut armed);
        assert_eq!(armed, Some(Instant::from_millis(50)));
        assert_eq!(t.next(), Some(Instant::from_millis(50)));
        assert_eq!(t.pop_due(Instant::from_millis(49)), None);
        assert_eq!(t.pop_due(Instant::from_millis(60)), Some((a, Instant::from_millis(50))));
        // The 100 ms entry is stale: the caller sees it differs from `armed` (cleared
        // when the 50 ms one fired) and skips it.
        assert_eq!(t.pop_due(Instant::from_millis(150)), Some((a, Instant::from_millis(100))));
        t.rebuild(std::iter::once((a, Instant::from_millis(300))));
        assert_eq!(t.len(), 1);
        assert!(!t.needs_compaction(0));
    }
}
