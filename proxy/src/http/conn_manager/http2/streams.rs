//! The open streams of one HTTP/2 connection, and which of them have work to do.
//!
//! A turn of the connection visits only the streams that are ready, not every open
//! stream (with `-m 32` per client that scan, and polling `h2`'s handles of streams
//! with nothing to do, was a tenth of the proxy's CPU). A stream is ready when:
//! - `h2` woke its task: every stream slot has its own [`Waker`] (request DATA, window
//!   capacity, a reset by the client all wake the task that polled for them), which
//!   records the slot in the ready set and raises the connection's turn flag;
//! - an upstream event of its router or of one of its filters' async calls arrived
//!   (the upstream slot is mapped to the stream that owns it: [`StreamSet::upstream_owner`]);
//! - one of its deadlines passed: each stream's earliest deadline sits in a lazy
//!   min-heap (an entry is valid while it is the stream's armed one; a later deadline
//!   is found when the armed one fires, as the worker's timers do), and the connection
//!   arms the worker's timer at the heap's top;
//! - it is new, or it made progress in its last visit (it is visited once more, as the
//!   loop until nothing moves did before);
//! - an event names the connection, not a stream (a pool with room for a waiting
//!   request, another round after the budget ran out): then every stream is visited.
//!
//! Stale wake-ups (a slot reused by a newer stream) only cost a visit with nothing to
//! do. Everything here stays on the worker; the mutex only makes the waker `Send`.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::{Arc, Mutex};
use std::task::{Wake, Waker};
use std::time::Instant;

use rustc_hash::FxHashMap;

use super::io::TurnFlag;
use crate::timer::TimerKey;

/// Slots woken since the last turn, shared with the wakers.
#[derive(Debug)]
struct ReadySet {
    turn: Arc<TurnFlag>,
    slots: Mutex<Vec<u32>>,
}

impl ReadySet {
    fn push(&self, slot: u32) {
        self.slots.lock().unwrap_or_else(|e| e.into_inner()).push(slot);
    }
}

/// The waker of one stream slot.
#[derive(Debug)]
struct SlotWaker {
    slot: u32,
    set: Arc<ReadySet>,
}

impl Wake for SlotWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.set.push(self.slot);
        self.set.turn.raise();
    }
}

#[derive(Debug)]
struct Entry<T> {
    value: T,
    generation: u32,
    /// The deadline of this stream's valid heap entry.
    armed: Option<Instant>,
}

/// The streams of a connection by slot, with their readiness and deadlines.
#[derive(Debug)]
pub struct StreamSet<T> {
    slots: Vec<Option<Entry<T>>>,
    free: Vec<u32>,
    len: usize,
    next_generation: u32,
    wakers: Vec<Waker>,
    ready: Arc<ReadySet>,
    all: bool,
    deadlines: BinaryHeap<Reverse<(Instant, u32, u32)>>,
    upstream: FxHashMap<TimerKey, u32>,
}

impl<T> StreamSet<T> {
    /// An empty set whose wakers raise `turn`.
    pub fn new(turn: &Arc<TurnFlag>) -> StreamSet<T> {
        StreamSet {
            slots: Vec::new(),
            free: Vec::new(),
            len: 0,
            next_generation: 0,
            wakers: Vec::new(),
            ready: Arc::new(ReadySet { turn: Arc::clone(turn), slots: Mutex::new(Vec::new()) }),
            all: false,
            deadlines: BinaryHeap::new(),
            upstream: FxHashMap::default(),
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Add a stream; it is ready (its first visit). Returns its slot.
    pub fn insert(&mut self, value: T) -> usize {
        let generation = self.next_generation;
        self.next_generation = self.next_generation.wrapping_add(1);
        let entry = Entry { value, generation, armed: None };
        let slot = match self.free.pop() {
            Some(s) => {
                self.slots[s as usize] = Some(entry);
                s as usize
            }
            None => {
                self.slots.push(Some(entry));
                self.slots.len() - 1
            }
        };
        while self.wakers.len() <= slot {
            let waker = Arc::new(SlotWaker { slot: self.wakers.len() as u32, set: Arc::clone(&self.ready) });
            self.wakers.push(Waker::from(waker));
        }
        self.len += 1;
        self.mark(slot);
        slot
    }

    /// Remove the stream in `slot`.
    pub fn remove(&mut self, slot: usize) -> Option<T> {
        let entry = self.slots.get_mut(slot)?.take()?;
        self.free.push(slot as u32);
        self.len -= 1;
        // Entries of gone streams leave the heap when due; keep it within bounds.
        if self.deadlines.len() > 2 * self.len + 64 {
            let slots = &self.slots;
            self.deadlines.retain(|Reverse((at, s, g))| valid(slots, *at, *s, *g));
        }
        if self.upstream.len() > 2 * self.len + 64 {
            self.upstream.clear();
        }
        Some(entry.value)
    }

    pub fn get_mut(&mut self, slot: usize) -> Option<&mut T> {
        self.slots.get_mut(slot)?.as_mut().map(|e| &mut e.value)
    }

    /// The stream in `slot` and the waker its `h2` handles are polled with.
    pub fn get_with_waker(&mut self, slot: usize) -> Option<(&mut T, &Waker)> {
        let e = self.slots.get_mut(slot)?.as_mut()?;
        Some((&mut e.value, &self.wakers[slot]))
    }

    /// Every stream, in slot order.
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.slots.iter().filter_map(|e| e.as_ref().map(|e| &e.value))
    }

    /// Call `f` on every stream; those for which it answers true become ready.
    pub fn for_each_marking(&mut self, mut f: impl FnMut(&mut T) -> bool) -> Option<usize> {
        let mut last = None;
        for (slot, e) in self.slots.iter_mut().enumerate() {
            if let Some(e) = e {
                if f(&mut e.value) {
                    self.ready.push(slot as u32);
                    last = Some(slot);
                }
            }
        }
        last
    }

    /// Take every stream out.
    pub fn drain(&mut self) -> Vec<T> {
        self.free.clear();
        self.len = 0;
        self.deadlines.clear();
        self.upstream.clear();
        self.slots.drain(..).flatten().map(|e| e.value).collect()
    }

    /// Visit `slot` in the next turn.
    pub fn mark(&self, slot: usize) {
        self.ready.push(slot as u32);
    }

    /// Visit every stream in the next turn.
    pub fn mark_all(&mut self) {
        self.all = true;
    }

    /// The slots to visit this turn (sorted, each once), into `out`; the set empties.
    pub fn take_ready(&mut self, out: &mut Vec<usize>) {
        out.clear();
        let mut woken = self.ready.slots.lock().unwrap_or_else(|e| e.into_inner());
        if std::mem::take(&mut self.all) {
            woken.clear();
            drop(woken);
            out.extend(self.slots.iter().enumerate().filter(|(_, e)| e.is_some()).map(|(s, _)| s));
            return;
        }
        out.extend(woken.drain(..).map(|s| s as usize));
        drop(woken);
        out.sort_unstable();
        out.dedup();
    }

    /// The stream in `slot` must be looked at by `deadline` (its earliest one).
    pub fn arm(&mut self, slot: usize, deadline: Option<Instant>) {
        let Some(d) = deadline else { return };
        let Some(e) = self.slots.get_mut(slot).and_then(|e| e.as_mut()) else { return };
        if e.armed.is_none_or(|a| d < a) {
            e.armed = Some(d);
            self.deadlines.push(Reverse((d, slot as u32, e.generation)));
        }
    }

    /// The earliest armed deadline (perhaps one that moved later: it then finds
    /// nothing to do).
    pub fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.peek().map(|Reverse((at, _, _))| *at)
    }

    /// A stream whose armed deadline is due at `now` (its deadline is then disarmed:
    /// the visit arms the next one).
    pub fn pop_due(&mut self, now: Instant) -> Option<usize> {
        while let Some(Reverse((at, slot, generation))) = self.deadlines.peek().copied() {
            if at > now {
                return None;
            }
            self.deadlines.pop();
            if valid(&self.slots, at, slot, generation) {
                if let Some(Some(e)) = self.slots.get_mut(slot as usize) {
                    e.armed = None;
                }
                return Some(slot as usize);
            }
        }
        None
    }

    /// The stream that last owned upstream `slot`, if known.
    pub fn upstream_owner(&self, slot: TimerKey) -> Option<usize> {
        self.upstream.get(&slot).map(|&s| s as usize)
    }

    /// Remember that the stream in `stream` owns upstream `slot`.
    pub fn learn_upstream(&mut self, slot: TimerKey, stream: usize) {
        self.upstream.insert(slot, stream as u32);
    }
}

fn valid<T>(slots: &[Option<Entry<T>>], at: Instant, slot: u32, generation: u32) -> bool {
    matches!(slots.get(slot as usize), Some(Some(e)) if e.generation == generation && e.armed == Some(at))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn ready(set: &mut StreamSet<u8>) -> Vec<usize> {
        let mut v = Vec::new();
        set.take_ready(&mut v);
        v
    }

    #[test]
    fn only_woken_streams_are_visited() {
        let turn = Arc::new(TurnFlag::default());
        let mut set = StreamSet::new(&turn);
        let a = set.insert(1u8);
        let b = set.insert(2u8);
        let c = set.insert(3u8);
        assert_eq!(ready(&mut set), vec![a, b, c], "new streams are ready");
        assert!(ready(&mut set).is_empty());
        let (_, w) = set.get_with_waker(c).unwrap();
        let w = w.clone();
        w.wake_by_ref();
        w.wake_by_ref();
        assert!(turn.take(), "a stream's wake-up gives the connection a turn");
        assert_eq!(ready(&mut set), vec![c], "once, however often woken");
        set.mark_all();
        assert_eq!(ready(&mut set), vec![a, b, c]);
        assert_eq!(set.remove(b), Some(2));
        assert_eq!(set.insert(4), b, "slots are reused");
        assert_eq!(set.len(), 3);
        assert_eq!(set.iter().copied().collect::<Vec<_>>(), vec![1, 4, 3]);
    }

    #[test]
    fn deadlines_fire_once_per_armed_stream() {
        let turn = Arc::new(TurnFlag::default());
        let mut set = StreamSet::new(&turn);
        let t0 = Instant::now();
        let a = set.insert(1u8);
        let b = set.insert(2u8);
        set.arm(a, Some(t0 + Duration::from_secs(5)));
        set.arm(a, Some(t0 + Duration::from_secs(9)));
        set.arm(b, Some(t0 + Duration::from_secs(3)));
        set.arm(a, Some(t0 + Duration::from_secs(2)));
        assert_eq!(set.next_deadline(), Some(t0 + Duration::from_secs(2)));
        assert_eq!(set.pop_due(t0 + Duration::from_secs(1)), None);
        assert_eq!(set.pop_due(t0 + Duration::from_secs(6)), Some(a));
        assert_eq!(set.pop_due(t0 + Duration::from_secs(6)), Some(b));
        assert_eq!(set.pop_due(t0 + Duration::from_secs(6)), None, "a's later entry was replaced");
        set.arm(b, Some(t0 + Duration::from_secs(7)));
        set.remove(b);
        let c = set.insert(3u8);
        assert_eq!(c, b);
        assert_eq!(set.pop_due(t0 + Duration::from_secs(8)), None, "a gone stream's deadline is dropped");
    }

    #[test]
    fn heap_and_upstream_map_stay_bounded() {
        let turn = Arc::new(TurnFlag::default());
        let mut set = StreamSet::new(&turn);
        let t0 = Instant::now();
        for i in 0..1000u32 {
            let s = set.insert(0u8);
            set.arm(s, Some(t0 + Duration::from_secs(60)));
            set.learn_upstream(TimerKey { index: i, generation: 0 }, s);
            set.remove(s);
        }
        assert!(set.deadlines.len() <= 65 && set.upstream.len() <= 65);
        let s = set.insert(0u8);
        set.learn_upstream(TimerKey { index: 7, generation: 1 }, s);
        assert_eq!(set.upstream_owner(TimerKey { index: 7, generation: 1 }), Some(s));
        assert_eq!(set.for_each_marking(|v| *v == 0), Some(s));
        assert_eq!(ready(&mut set), vec![s]);
    }
}
