//! Hand-off rings between per-core stacks: how a frame that arrived on one core's queue
//! reaches the core that owns its flow.
//!
//! Every core has one inbox, a bounded lock-free queue (crossbeam's `ArrayQueue`) that
//! any core may push to and only its owner pops. A frame is copied into a buffer taken
//! from a pool shared by all cores; the pool is filled once, when the fabric is built,
//! and buffers only circulate (pool → inbox → owner → pool), so the steady path never
//! allocates. A full inbox, an empty pool or a frame larger than a buffer drops the
//! frame and counts it: TCP retransmits, as it would after a NIC ring overflow.
//!
//! Wake-ups cost a system call, so they are batched and skipped when useless: a sender
//! notes each target it fed and, at the end of its poll round ([`Handoff::flush_wakes`]),
//! wakes those that are asleep. A core announces its sleep with [`Handoff::park`] and
//! re-checks its inbox after doing so; the sender re-checks the flag after pushing. Both
//! sides fence, so one of them always sees the other (no lost wake-up), and busy cores
//! exchange frames without any system call.

use std::sync::atomic::{fence, AtomicBool, Ordering};
use std::sync::Arc;

use crossbeam_queue::ArrayQueue;
use sluice_datapath::DatapathWaker;

/// Sizes of a hand-off fabric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HandoffConfig {
    /// Frames each core's inbox holds; the shared pool holds this many per core.
    pub inbox: usize,
    /// Largest frame (Ethernet header included) a buffer carries.
    pub frame_size: usize,
}

impl Default for HandoffConfig {
    fn default() -> HandoffConfig {
        HandoffConfig { inbox: 1024, frame_size: 1514 }
    }
}

/// What a handed-over frame is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParcelKind {
    /// A segment of a flow the receiver may own: process it as if received.
    Flow,
    /// A copy of an ARP frame: learn the sender's address, answer nothing.
    Neighbor,
}

/// One handed-over frame in a pool buffer.
#[derive(Debug)]
pub struct Parcel {
    buf: Box<[u8]>,
    len: u16,
    /// Cores that looked the frame up before the receiver (1 for a first hand-off).
    pub hops: u8,
    pub kind: ParcelKind,
}

impl Parcel {
    /// The frame's bytes.
    pub fn frame(&self) -> &[u8] {
        &self.buf[..usize::from(self.len)]
    }
}

/// Counters of one core's side of the fabric.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HandoffStats {
    /// Frames this core handed to another core.
    pub sent: u64,
    /// Frames this core took from its inbox.
    pub received: u64,
    /// Frames not handed over: the target's inbox was full.
    pub dropped_full: u64,
    /// Frames not handed over: no free buffer in the pool, or the frame was larger
    /// than a buffer.
    pub dropped_no_buffer: u64,
    /// Wake-ups this core sent to sleeping cores.
    pub wakeups: u64,
}

impl HandoffStats {
    pub fn dropped(&self) -> u64 {
        self.dropped_full + self.dropped_no_buffer
    }
}

struct Inbox {
    queue: ArrayQueue<Parcel>,
    parked: AtomicBool,
    waker: Arc<dyn DatapathWaker>,
}

struct Shared {
    inboxes: Box<[Inbox]>,
    pool: ArrayQueue<Box<[u8]>>,
}

/// One core's end of the fabric: its inbox, and the way into every other core's.
pub struct Handoff {
    core: usize,
    shared: Arc<Shared>,
    /// Targets fed since the last `flush_wakes`, and a mark per core to list each once.
    fed: Vec<usize>,
    fed_mark: Vec<bool>,
    stats: HandoffStats,
}

impl std::fmt::Debug for Handoff {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handoff").field("core", &self.core).field("stats", &self.stats).finish_non_exhaustive()
    }
}

impl Handoff {
    /// Build the fabric for one core per waker (`wakers[i]` interrupts core `i`'s wait);
    /// the ends come back in core order. All buffers are allocated here.
    pub fn fabric(wakers: Vec<Arc<dyn DatapathWaker>>, cfg: &HandoffConfig) -> Vec<Handoff> {
        let cores = wakers.len();
        let inbox = cfg.inbox.max(1);
        let pool = ArrayQueue::new((inbox * cores).max(1));
        for _ in 0..inbox * cores {
            // Cannot fail: the pool was sized for exactly these buffers.
            let _ = pool.push(vec![0u8; cfg.frame_size].into_boxed_slice());
        }
        let inboxes = wakers
            .into_iter()
            .map(|waker| Inbox { queue: ArrayQueue::new(inbox), parked: AtomicBool::new(false), waker })
            .collect();
        let shared = Arc::new(Shared { inboxes, pool });
        (0..cores)
            .map(|core| Handoff {
                core,
                shared: Arc::clone(&shared),
                fed: Vec::with_capacity(cores),
                fed_mark: vec![false; cores],
                stats: HandoffStats::default(),
            })
            .collect()
    }

    /// This end's core index.
    pub fn core(&self) -> usize {
        self.core
    }

    /// Cores on the fabric.
    pub fn cores(&self) -> usize {
        self.shared.inboxes.len()
    }

    pub fn stats(&self) -> HandoffStats {
        self.stats
    }

    /// Copy `frame` into core `to`'s inbox. False (and counted) when it was dropped.
    pub fn send(&mut self, to: usize, frame: &[u8], hops: u8, kind: ParcelKind) -> bool {
        let Some(inbox) = self.shared.inboxes.get(to) else {
            return false;
        };
        let Ok(len) = u16::try_from(frame.len()) else {
            self.stats.dropped_no_buffer += 1;
            return false;
        };
        let Some(mut buf) = self.shared.pool.pop() else {
            self.stats.dropped_no_buffer += 1;
            return false;
        };
        let Some(dst) = buf.get_mut(..frame.len()) else {
            let _ = self.shared.pool.push(buf);
            self.stats.dropped_no_buffer += 1;
            return false;
        };
        dst.copy_from_slice(frame);
        if let Err(parcel) = inbox.queue.push(Parcel { buf, len, hops, kind }) {
            // Cannot fail: the pool holds at most what was taken from it.
            let _ = self.shared.pool.push(parcel.buf);
            self.stats.dropped_full += 1;
            return false;
        }
        self.stats.sent += 1;
        if !self.fed_mark[to] {
            self.fed_mark[to] = true;
            self.fed.push(to);
        }
        true
    }

    /// Take the next frame handed to this core.
    pub fn recv(&mut self) -> Option<Parcel> {
        let parcel = self.shared.inboxes[self.core].queue.pop()?;
        self.stats.received += 1;
        Some(parcel)
    }

    /// Give a parcel's buffer back to the pool.
    pub fn recycle(&mut self, parcel: Parcel) {
        // Cannot fail: the pool holds at most what was taken from it.
        let _ = self.shared.pool.push(parcel.buf);
    }

    /// Whether frames wait in this core's inbox.
    pub fn has_pending(&self) -> bool {
        !self.shared.inboxes[self.core].queue.is_empty()
    }

    /// Wake every core fed since the last call that is asleep (or about to be).
    pub fn flush_wakes(&mut self) {
        if self.fed.is_empty() {
            return;
        }
        // Pairs with the fence in `park`: either the target sees our frames after
        // parking, or we see it parked here.
        fence(Ordering::SeqCst);
        for &to in &self.fed {
            self.fed_mark[to] = false;
            let inbox = &self.shared.inboxes[to];
            if inbox.parked.load(Ordering::Relaxed) {
                self.stats.wakeups += 1;
                // A failed wake-up (eventfd saturated) means the target is awake anyway.
                let _ = inbox.waker.wake();
            }
        }
        self.fed.clear();
    }

    /// Announce that this core is about to sleep. False when frames already wait: do
    /// not sleep then (the core is unparked again).
    pub fn park(&self) -> bool {
        let inbox = &self.shared.inboxes[self.core];
        inbox.parked.store(true, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        if inbox.queue.is_empty() {
            return true;
        }
        inbox.parked.store(false, Ordering::Relaxed);
        false
    }

    /// This core is awake again.
    pub fn unpark(&self) {
        self.shared.inboxes[self.core].parked.store(false, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;
    use std::sync::atomic::AtomicUsize;

    #[derive(Default)]
    struct CountingWaker(AtomicUsize);

    impl DatapathWaker for CountingWaker {
        fn wake(&self) -> io::Result<()> {
            self.0.fetch_add(1, Ordering::Relaxed);
            Ok(())
        }
    }

    fn fabric(cores: usize, inbox: usize) -> (Vec<Handoff>, Vec<Arc<CountingWaker>>) {
        let wakers: Vec<Arc<CountingWaker>> = (0..cores).map(|_| Arc::default()).collect();
        let dyn_wakers = wakers.iter().map(|w| Arc::clone(w) as Arc<dyn DatapathWaker>).collect();
        (Handoff::fabric(dyn_wakers, &HandoffConfig { inbox, frame_size: 64 }), wakers)
    }

    #[test]
    fn frames_arrive_intact_and_in_order() {
        let (mut ends, _) = fabric(2, 4);
        let (a, b) = ends.split_at_mut(1);
        assert!(a[0].send(1, b"first", 1, ParcelKind::Flow));
        assert!(a[0].send(1, b"second", 2, ParcelKind::Neighbor));
        assert!(b[0].has_pending());
        let p = b[0].recv().unwrap();
        assert_eq!((p.frame(), p.hops, p.kind), (&b"first"[..], 1, ParcelKind::Flow));
        b[0].recycle(p);
        let p = b[0].recv().unwrap();
        assert_eq!((p.frame(), p.hops, p.kind), (&b"second"[..], 2, ParcelKind::Neighbor));
        b[0].recycle(p);
        assert!(b[0].recv().is_none());
        assert_eq!(a[0].stats().sent, 2);
        assert_eq!(b[0].stats().received, 2);
    }

    #[test]
    fn overflow_is_dropped_and_counted_and_buffers_come_back() {
        let (mut ends, _) = fabric(2, 2);
        let (a, b) = ends.split_at_mut(1);
        // Inbox of core 1 holds 2; the pool holds 4 in all.
        assert!(a[0].send(1, b"x", 1, ParcelKind::Flow));
        assert!(a[0].send(1, b"y", 1, ParcelKind::Flow));
        assert!(!a[0].send(1, b"z", 1, ParcelKind::Flow));
        assert_eq!(a[0].stats().dropped_full, 1);
        assert!(!a[0].send(1, &[0u8; 65], 1, ParcelKind::Flow), "larger than a buffer");
        assert!(!a[0].send(7, b"x", 1, ParcelKind::Flow), "no such core");
        assert_eq!(a[0].stats().dropped_no_buffer, 1);
        // Drain and refill many times: nothing leaks, nothing is allocated.
        for round in 0..100u8 {
            while let Some(p) = b[0].recv() {
                b[0].recycle(p);
            }
            assert!(a[0].send(1, &[round], 1, ParcelKind::Flow));
            assert!(a[0].send(1, &[round, round], 1, ParcelKind::Flow));
        }
        assert_eq!(a[0].stats().dropped(), 2);
    }

    #[test]
    fn only_sleeping_targets_are_woken_once_per_flush() {
        let (mut ends, wakers) = fabric(2, 8);
        let (a, b) = ends.split_at_mut(1);
        // Awake target: no wake-up.
        a[0].send(1, b"1", 1, ParcelKind::Flow);
        a[0].flush_wakes();
        assert_eq!(wakers[1].0.load(Ordering::Relaxed), 0);
        // Frames waiting: parking is refused.
        assert!(!b[0].park());
        while let Some(p) = b[0].recv() {
            b[0].recycle(p);
        }
        assert!(b[0].park());
        a[0].send(1, b"2", 1, ParcelKind::Flow);
        a[0].send(1, b"3", 1, ParcelKind::Flow);
        a[0].flush_wakes();
        assert_eq!(wakers[1].0.load(Ordering::Relaxed), 1, "one wake-up for a batch");
        assert_eq!(a[0].stats().wakeups, 1);
        a[0].flush_wakes();
        assert_eq!(wakers[1].0.load(Ordering::Relaxed), 1, "nothing new fed");
        b[0].unpark();
        assert_eq!(wakers[0].0.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn concurrent_senders_lose_nothing_they_did_not_count() {
        let (ends, _) = fabric(3, 64);
        let mut ends = ends.into_iter();
        let mut sink = ends.next().unwrap();
        let senders: Vec<Handoff> = ends.collect();
        let stop = Arc::new(AtomicBool::new(false));
        let received = std::thread::scope(|s| {
            let handles: Vec<_> = senders
                .into_iter()
                .map(|mut h| {
                    s.spawn(move || {
                        for i in 0..20_000u32 {
                            h.send(0, &i.to_le_bytes(), 1, ParcelKind::Flow);
                        }
                        h.stats()
                    })
                })
                .collect();
            let stop2 = Arc::clone(&stop);
            let drain = s.spawn(move || {
                let mut n = 0u64;
                loop {
                    match sink.recv() {
                        Some(p) => {
                            assert_eq!(p.frame().len(), 4);
                            sink.recycle(p);
                            n += 1;
                        }
                        None if stop2.load(Ordering::Acquire) => {
                            while let Some(p) = sink.recv() {
                                sink.recycle(p);
                                n += 1;
                            }
                            return n;
                        }
                        None => std::hint::spin_loop(),
                    }
                }
            });
            let stats: Vec<HandoffStats> = handles.into_iter().map(|h| h.join().unwrap()).collect();
            stop.store(true, Ordering::Release);
            let n = drain.join().unwrap();
            let sent: u64 = stats.iter().map(|s| s.sent).sum();
            let dropped: u64 = stats.iter().map(|s| s.dropped()).sum();
            assert_eq!(sent + dropped, 40_000);
            assert_eq!(n, sent);
            n
        });
        assert!(received > 0);
    }
}
