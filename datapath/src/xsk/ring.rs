//! Single-producer/single-consumer rings shared with the kernel: the fill and completion
//! rings (frame addresses) and the rx and tx rings (descriptors).
//!
//! Each ring is a power-of-two array plus free-running `u32` producer and consumer
//! indices in shared memory. The side that writes entries publishes them with a
//! `Release` store of its index after writing them; the other side reads that index with
//! `Acquire` before reading the entries, and gives slots back with a `Release` store of
//! its own index after it is done with them. Both sides cache the peer's index and
//! reload it only when the cached view says the ring is full (producer) or empty
//! (consumer), so a batch costs one shared-memory round trip, not one per entry.
//!
//! Index arithmetic wraps and every slot access is masked, so no value the kernel writes
//! into the shared indices can make us read or write outside the ring.

use std::io;
use std::marker::PhantomData;
use std::os::fd::BorrowedFd;
use std::sync::atomic::{fence, AtomicU32, Ordering};

use super::frames::FrameStack;
use crate::mmap::Mmap;

/// The shared part of one ring and our cached view of it.
#[derive(Debug)]
struct Ring<T> {
    _map: Mmap,
    producer: *const AtomicU32,
    consumer: *const AtomicU32,
    flags: *const AtomicU32,
    descs: *mut T,
    size: u32,
    mask: u32,
    /// Our producer position (producer rings: entries written so far, published or not;
    /// consumer rings: the last producer index we loaded).
    cached_prod: u32,
    /// Our consumer position (consumer rings: entries read so far; producer rings: the
    /// last consumer index we loaded).
    cached_cons: u32,
    _entries: PhantomData<T>,
}

// SAFETY: the ring's memory is owned by `_map`, which moves with it; the kernel side is
// synchronised through the atomic indices. A ring has one user-space owner at a time.
unsafe impl<T: Send> Send for Ring<T> {}

/// Where the indices and entries lie inside a ring mapping (`struct xdp_ring_offset`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct RingLayout {
    pub producer: u64,
    pub consumer: u64,
    pub desc: u64,
    pub flags: u64,
}

impl From<libc::xdp_ring_offset> for RingLayout {
    fn from(o: libc::xdp_ring_offset) -> RingLayout {
        RingLayout { producer: o.producer, consumer: o.consumer, desc: o.desc, flags: o.flags }
    }
}

impl<T: Copy> Ring<T> {
    fn from_map(map: Mmap, layout: RingLayout, size: u32) -> io::Result<Ring<T>> {
        let entries_end = layout.desc as usize + size as usize * std::mem::size_of::<T>();
        let index_end = layout.producer.max(layout.consumer).max(layout.flags) as usize + 4;
        if !size.is_power_of_two() || map.len() < entries_end.max(index_end) {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "ring layout out of bounds"));
        }
        let base = map.as_ptr();
        // SAFETY: all offsets were checked to lie inside the mapping; the kernel aligns
        // them for their types (indices on cache lines, entries after them).
        let (producer, consumer, flags, descs) = unsafe {
            (
                base.add(layout.producer as usize) as *const AtomicU32,
                base.add(layout.consumer as usize) as *const AtomicU32,
                base.add(layout.flags as usize) as *const AtomicU32,
                base.add(layout.desc as usize) as *mut T,
            )
        };
        let mut ring = Ring {
            _map: map,
            producer,
            consumer,
            flags,
            descs,
            size,
            mask: size - 1,
            cached_prod: 0,
            cached_cons: 0,
            _entries: PhantomData,
        };
        ring.cached_prod = ring.producer().load(Ordering::Acquire);
        ring.cached_cons = ring.consumer().load(Ordering::Acquire);
        Ok(ring)
    }

    /// Map a kernel ring of `size` entries from `fd` at page offset `pgoff`.
    fn map(fd: BorrowedFd<'_>, layout: RingLayout, size: u32, pgoff: u64) -> io::Result<Ring<T>> {
        let len = layout.desc as usize + size as usize * std::mem::size_of::<T>();
        let map = Mmap::shared(fd, len, pgoff)?;
        Ring::from_map(map, layout, size)
    }

    /// A ring in anonymous memory whose indices start at `start`, for unit tests that
    /// play the kernel's part.
    #[cfg(test)]
    fn anonymous(size: u32, start: u32) -> Ring<T> {
        let layout = RingLayout { producer: 0, consumer: 64, flags: 128, desc: 192 };
        let len = 192 + size as usize * std::mem::size_of::<T>();
        let map = Mmap::anonymous(len, false).unwrap();
        // SAFETY: fresh private memory, large enough for both indices (checked layout).
        unsafe {
            (*(map.as_ptr() as *const AtomicU32)).store(start, Ordering::Relaxed);
            (*(map.as_ptr().add(64) as *const AtomicU32)).store(start, Ordering::Relaxed);
        }
        Ring::from_map(map, layout, size).unwrap()
    }

    #[inline]
    fn producer(&self) -> &AtomicU32 {
        // SAFETY: points into `_map`, which lives as long as `self`; properly aligned.
        unsafe { &*self.producer }
    }

    #[inline]
    fn consumer(&self) -> &AtomicU32 {
        // SAFETY: as for `producer`.
        unsafe { &*self.consumer }
    }

    #[inline]
    fn flags(&self) -> &AtomicU32 {
        // SAFETY: as for `producer`.
        unsafe { &*self.flags }
    }

    #[inline]
    fn slot(&self, index: u32) -> *mut T {
        // SAFETY: `index & mask < size`, and the mapping holds `size` entries at `descs`.
        unsafe { self.descs.add((index & self.mask) as usize) }
    }
}

/// A ring userspace produces into (fill, tx).
#[derive(Debug)]
pub struct ProdRing<T> {
    ring: Ring<T>,
    /// Producer index last published to the kernel.
    published: u32,
}

/// A ring userspace consumes from (rx, completion).
#[derive(Debug)]
pub struct ConsRing<T> {
    ring: Ring<T>,
}

impl<T: Copy> ProdRing<T> {
    pub(crate) fn map(fd: BorrowedFd<'_>, layout: RingLayout, size: u32, pgoff: u64) -> io::Result<ProdRing<T>> {
        let ring = Ring::map(fd, layout, size, pgoff)?;
        Ok(ProdRing { published: ring.cached_prod, ring })
    }

    #[cfg(test)]
    pub(crate) fn anonymous(size: u32, start: u32) -> ProdRing<T> {
        ProdRing { ring: Ring::anonymous(size, start), published: start }
    }

    pub fn size(&self) -> u32 {
        self.ring.size
    }

    /// How many entries (up to `want`) can be written now. Reloads the consumer index
    /// only when the cached view has fewer than `want` free slots.
    #[inline]
    pub fn free(&mut self, want: u32) -> u32 {
        let r = &mut self.ring;
        let mut free = r.size - r.cached_prod.wrapping_sub(r.cached_cons).min(r.size);
        if free < want {
            r.cached_cons = r.consumer().load(Ordering::Acquire);
            free = r.size - r.cached_prod.wrapping_sub(r.cached_cons).min(r.size);
        }
        free.min(want)
    }

    /// Write one entry (not yet visible to the kernel; see [`ProdRing::submit`]).
    /// `Err(item)` when the ring is full — the item is handed back, never lost.
    #[inline]
    pub fn push(&mut self, item: T) -> Result<(), T> {
        if self.free(1) == 0 {
            return Err(item);
        }
        let r = &mut self.ring;
        // SAFETY: the slot is free (the kernel consumed it), in bounds, and only we write it.
        unsafe { r.slot(r.cached_prod).write(item) };
        r.cached_prod = r.cached_prod.wrapping_add(1);
        Ok(())
    }

    /// Publish every entry written so far.
    #[inline]
    pub fn submit(&mut self) {
        if self.published != self.ring.cached_prod {
            self.ring.producer().store(self.ring.cached_prod, Ordering::Release);
            self.published = self.ring.cached_prod;
        }
    }

    /// Entries written but not yet published.
    #[inline]
    pub fn unpublished(&self) -> u32 {
        self.ring.cached_prod.wrapping_sub(self.published)
    }

    /// Entries published but not yet consumed by the kernel.
    #[inline]
    pub fn outstanding(&self) -> u32 {
        self.published.wrapping_sub(self.ring.consumer().load(Ordering::Acquire))
    }

    /// Whether the kernel asks to be woken (`XDP_RING_NEED_WAKEUP`) to consume this
    /// ring. The full fence orders our producer store before the flag load: the kernel
    /// sets the flag and then re-checks the producer index, so one of us sees the other.
    #[inline]
    pub fn needs_wakeup(&self) -> bool {
        fence(Ordering::SeqCst);
        self.ring.flags().load(Ordering::Relaxed) & libc::XDP_RING_NEED_WAKEUP != 0
    }
}

impl ProdRing<u64> {
    /// Move up to `max` frames from `frames` into the ring and publish them. Exactly as
    /// many frames leave `frames` as slots were reserved: when the ring has less room
    /// than `frames` holds, the rest stay in `frames`.
    pub fn produce_from(&mut self, frames: &mut FrameStack, max: u32) -> u32 {
        let want = max.min(frames.len() as u32);
        let n = self.free(want);
        for _ in 0..n {
            let Some(addr) = frames.pop() else { break };
            let r = &mut self.ring;
            // SAFETY: `n` slots were reserved by `free`; each is in bounds and ours.
            unsafe { r.slot(r.cached_prod).write(addr) };
            r.cached_prod = r.cached_prod.wrapping_add(1);
        }
        self.submit();
        n
    }
}

impl<T: Copy> ConsRing<T> {
    pub(crate) fn map(fd: BorrowedFd<'_>, layout: RingLayout, size: u32, pgoff: u64) -> io::Result<ConsRing<T>> {
        Ok(ConsRing { ring: Ring::map(fd, layout, size, pgoff)? })
    }

    #[cfg(test)]
    pub(crate) fn anonymous(size: u32, start: u32) -> ConsRing<T> {
        ConsRing { ring: Ring::anonymous(size, start) }
    }

    pub fn size(&self) -> u32 {
        self.ring.size
    }

    /// How many entries (up to `want`) are ready to read. Reloads the producer index
    /// only when the cached view has fewer than `want`.
    #[inline]
    pub fn available(&mut self, want: u32) -> u32 {
        let r = &mut self.ring;
        let mut avail = r.cached_prod.wrapping_sub(r.cached_cons).min(r.size);
        if avail < want {
            r.cached_prod = r.producer().load(Ordering::Acquire);
            avail = r.cached_prod.wrapping_sub(r.cached_cons).min(r.size);
        }
        avail.min(want)
    }

    /// Entries the kernel has published that we have not released.
    #[inline]
    pub fn pending(&self) -> u32 {
        self.ring.producer().load(Ordering::Acquire).wrapping_sub(self.ring.cached_cons)
    }

    /// Whether the kernel has published entries we have not read (a cheap check for
    /// sleeping decisions; no entries are read).
    #[inline]
    pub fn has_entries(&self) -> bool {
        self.ring.producer().load(Ordering::Acquire) != self.ring.cached_cons
    }

    /// Read the `i`-th ready entry. `i` must be below what [`ConsRing::available`]
    /// returned and not yet released.
    #[inline]
    pub fn get(&self, i: u32) -> T {
        let r = &self.ring;
        // SAFETY: in bounds (masked); the kernel published this entry (Acquire in
        // `available`) and will not rewrite it until we release it.
        unsafe { r.slot(r.cached_cons.wrapping_add(i)).read() }
    }

    /// Give `n` read entries back to the kernel.
    #[inline]
    pub fn release(&mut self, n: u32) {
        let r = &mut self.ring;
        r.cached_cons = r.cached_cons.wrapping_add(n);
        r.consumer().store(r.cached_cons, Ordering::Release);
    }

    /// Read up to `max` entries, hand each to `f`, and release them. Returns the count.
    #[inline]
    pub fn drain(&mut self, max: u32, mut f: impl FnMut(T)) -> u32 {
        let n = self.available(max);
        for i in 0..n {
            f(self.get(i));
        }
        if n > 0 {
            self.release(n);
        }
        n
    }
}

/// The kernel's side of a ring, for unit tests.
#[cfg(test)]
pub(crate) mod peer {
    use super::*;

    /// Consume up to `max` entries of a producer ring, as the kernel would.
    pub(crate) fn consume<T: Copy>(ring: &ProdRing<T>, max: u32) -> Vec<T> {
        let r = &ring.ring;
        let prod = r.producer().load(Ordering::Acquire);
        let cons = r.consumer().load(Ordering::Relaxed);
        let n = prod.wrapping_sub(cons).min(max);
        let out = (0..n)
            // SAFETY: in bounds (masked) and published by the producer (Acquire above).
            .map(|i| unsafe { r.slot(cons.wrapping_add(i)).read() })
            .collect();
        r.consumer().store(cons.wrapping_add(n), Ordering::Release);
        out
    }

    /// Produce entries into a consumer ring, as the kernel would; returns how many fit.
    pub(crate) fn produce<T: Copy>(ring: &ConsRing<T>, items: &[T]) -> usize {
        let r = &ring.ring;
        let prod = r.producer().load(Ordering::Relaxed);
        let cons = r.consumer().load(Ordering::Acquire);
        let free = r.size - prod.wrapping_sub(cons);
        let n = items.len().min(free as usize);
        for (i, item) in items[..n].iter().enumerate() {
            // SAFETY: in bounds (masked) and free: the consumer released it (Acquire above).
            unsafe { r.slot(prod.wrapping_add(i as u32)).write(*item) };
        }
        r.producer().store(prod.wrapping_add(n as u32), Ordering::Release);
        n
    }

    /// Set or clear the ring's need-wakeup flag.
    pub(crate) fn set_need_wakeup<T: Copy>(ring: &ProdRing<T>, on: bool) {
        let v = if on { libc::XDP_RING_NEED_WAKEUP } else { 0 };
        ring.ring.flags().store(v, Ordering::Release);
    }
}

#[cfg(test)]
#[path = "ring_tests.rs"]
mod tests;
