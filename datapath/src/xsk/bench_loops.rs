//! The other two loops of the kernel's AF_XDP sample (`xdpsock`), for the packet-path
//! benchmark (bench/packet.sh): rx-drop (take every received frame and give it straight
//! back to the fill ring) and tx-only (send one prepared frame over and over). The
//! third, l2fwd, is [`XskSocket::reflect`].
//!
//! Both work in batches: one rx-ring read and one fill-ring publish per batch of up to
//! [`RX_BATCH`](super::RX_BATCH) frames, one tx-ring publish and at most one kick per batch.

use std::os::fd::{AsFd, AsRawFd};

use super::socket::XskSocket;

impl XskSocket {
    /// rx-drop: release up to one batch of received frames unread, straight back to the
    /// fill ring. Returns the number of frames dropped.
    pub fn rx_drop(&mut self) -> u32 {
        self.recycle_returned();
        let fd = self.as_fd().as_raw_fd();
        let mut done = 0;
        // Frames the device path already fetched go first.
        while self.rx.has_batched() {
            let Some(desc) = self.rx.next(&self.umem, fd) else { break };
            self.rx.recycle(self.umem.frame_base(desc.addr));
            done += 1;
        }
        if !self.rx.fetch(fd) {
            return done;
        }
        while self.rx.has_batched() {
            let Some(desc) = self.rx.next(&self.umem, fd) else { break };
            self.rx.recycle(self.umem.frame_base(desc.addr));
            done += 1;
        }
        self.rx.refill();
        done
    }

    /// Write `frame` at the start of every free tx-pool frame, for [`XskSocket::tx_burst`].
    /// Returns the number of frames written; `0` when `frame` is larger than a frame.
    pub fn tx_prepare(&mut self, frame: &[u8]) -> u32 {
        let Ok(len) = u32::try_from(frame.len()) else { return 0 };
        if len > self.max_frame() {
            return 0;
        }
        self.tx.reap();
        let mut n = 0;
        for &addr in self.tx.free.as_slice() {
            // SAFETY: `addr` is on the tx free list, so neither the kernel nor a token
            // holds that frame, and `len` fits in a frame (checked above).
            unsafe { self.umem.frame_mut(addr, len) }.copy_from_slice(frame);
            n += 1;
        }
        n
    }

    /// tx-only: queue up to `max` frames of `len` bytes from the tx pool (as written by
    /// [`XskSocket::tx_prepare`]), publish them and kick the kernel once if it asks.
    /// Returns the number queued.
    pub fn tx_burst(&mut self, len: u32, max: u32) -> u32 {
        self.tx.reap();
        let n = self.tx.ring.free(max.min(self.tx.free.len() as u32));
        for _ in 0..n {
            let Some(addr) = self.tx.free.pop() else { break };
            self.tx.send(addr, len);
        }
        self.tx.flush();
        n
    }
}
