//! The receive half of a socket: rx ring, fill ring and the rx frame pool.
//!
//! Frames circulate free list → fill ring → (kernel) → rx ring → lent to the reader →
//! free list. The fill ring is refilled before every rx batch is fetched, so the kernel
//! finds a frame for every packet as long as the reader keeps up; descriptors that do
//! not name a frame of the rx pool are counted and skipped, never dereferenced.

use std::os::fd::RawFd;

use super::config::RX_BATCH;
use super::frames::FrameStack;
use super::ring::{ConsRing, ProdRing};
use super::stats::XskStats;
use super::umem::Umem;

/// The receive half: rx ring, fill ring, rx pool and a batch of fetched descriptors.
#[derive(Debug)]
pub(crate) struct RxHalf {
    pub ring: ConsRing<libc::xdp_desc>,
    pub fill: ProdRing<u64>,
    pub free: FrameStack,
    /// Rx pool address range `[0, pool_end)`.
    pub(crate) pool_end: u64,
    pub(crate) batch: [libc::xdp_desc; RX_BATCH],
    pub(crate) batch_len: usize,
    pub(crate) batch_pos: usize,
    pub stats: XskStats,
    /// Busy polling: enter the kernel whenever the rx ring is empty.
    pub(crate) busy_poll: bool,
}

impl RxHalf {
    pub(crate) fn new(
        ring: ConsRing<libc::xdp_desc>,
        fill: ProdRing<u64>,
        free: FrameStack,
        pool_end: u64,
        busy_poll: bool,
    ) -> RxHalf {
        let empty = libc::xdp_desc { addr: 0, len: 0, options: 0 };
        RxHalf {
            ring,
            fill,
            free,
            pool_end,
            batch: [empty; RX_BATCH],
            batch_len: 0,
            batch_pos: 0,
            stats: XskStats::default(),
            busy_poll,
        }
    }

    /// Post every free rx frame to the fill ring (keeping it full).
    #[inline]
    pub fn refill(&mut self) -> u32 {
        if self.free.is_empty() {
            return 0;
        }
        self.fill.produce_from(&mut self.free, u32::MAX)
    }

    /// Take the next received descriptor, fetching a new batch from the rx ring when the
    /// current one is used up (refilling the fill ring first). Descriptors that do not
    /// describe a frame of the rx pool are counted and skipped.
    #[inline]
    pub fn next(&mut self, umem: &Umem, fd: RawFd) -> Option<libc::xdp_desc> {
        loop {
            if self.batch_pos == self.batch_len && !self.fetch(fd) {
                return None;
            }
            let desc = self.batch[self.batch_pos];
            self.batch_pos += 1;
            if desc.addr < self.pool_end && umem.contains(desc.addr, desc.len) {
                self.stats.rx_packets += 1;
                self.stats.rx_bytes += u64::from(desc.len);
                return Some(desc);
            }
            self.stats.rx_invalid += 1;
            if desc.addr < self.pool_end {
                // The frame is ours even if the length is not: keep it in circulation.
                self.recycle(umem.frame_base(desc.addr));
            }
        }
    }

    pub(crate) fn fetch(&mut self, fd: RawFd) -> bool {
        self.refill();
        let n = self.ring.available(RX_BATCH as u32);
        if n == 0 {
            self.idle(fd);
            return false;
        }
        for i in 0..n {
            self.batch[i as usize] = self.ring.get(i);
        }
        // The descriptors are copied out; the frames stay ours until recycled.
        self.ring.release(n);
        self.batch_len = n as usize;
        self.batch_pos = 0;
        true
    }

    /// The rx ring is empty: in zero-copy mode the driver may be waiting for us to say
    /// that the fill ring has frames again; with busy polling the syscall runs the
    /// driver's NAPI poll for us.
    #[inline]
    pub(crate) fn idle(&mut self, fd: RawFd) {
        if self.busy_poll || self.fill.needs_wakeup() {
            self.stats.rx_wakeups += 1;
            wake_rx(fd);
        }
    }

    /// Whether fetched descriptors are waiting in the batch.
    #[inline]
    pub fn has_batched(&self) -> bool {
        self.batch_pos < self.batch_len
    }

    /// Whether a received frame is waiting (in the batch or on the ring).
    #[inline]
    pub fn has_pending(&self) -> bool {
        self.batch_pos < self.batch_len || self.ring.has_entries()
    }

    /// Return a frame of the rx pool to the free list.
    #[inline]
    pub fn recycle(&mut self, frame: u64) {
        if self.free.push(frame).is_err() {
            self.stats.rx_invalid += 1;
        }
    }
}

/// `recvfrom(fd, NULL, 0, MSG_DONTWAIT)`: ask the driver to look at the fill ring.
fn wake_rx(fd: RawFd) {
    // SAFETY: a zero-length receive with no buffer and no address on our own socket.
    unsafe {
        libc::recvfrom(fd, std::ptr::null_mut(), 0, libc::MSG_DONTWAIT, std::ptr::null_mut(), std::ptr::null_mut())
    };
}
