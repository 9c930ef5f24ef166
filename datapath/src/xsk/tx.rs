//! The transmit half of a socket: tx ring, completion ring and the tx frame pool.
//!
//! Frames circulate free list → lent to a writer → tx ring → (kernel) → completion ring
//! → free list. Descriptors are published in batches; the kernel is kicked with
//! `sendto` only when the tx ring asks for it (`XDP_RING_NEED_WAKEUP`), and completions
//! are reaped on every flush. Completed addresses are checked before they are trusted.

use std::io;
use std::os::fd::RawFd;

use super::config::TX_BATCH;
use super::frames::FrameStack;
use super::ring::{ConsRing, ProdRing};
use super::stats::XskStats;

/// The transmit half: tx ring, completion ring and tx pool.
#[derive(Debug)]
pub(crate) struct TxHalf {
    pub ring: ProdRing<libc::xdp_desc>,
    pub comp: ConsRing<u64>,
    pub free: FrameStack,
    /// Rx-pool frames that came back through the completion ring (sent by
    /// [`XskSocket::reflect`](super::XskSocket::reflect)); the socket returns them to
    /// the rx half.
    pub returned_rx: FrameStack,
    /// The rx pool is `[0, pool_start)`, the tx pool `[pool_start, pool_end)`.
    pub(crate) pool_start: u64,
    pub(crate) pool_end: u64,
    frame_size: u64,
    fd: RawFd,
    zero_copy: bool,
    /// Without `XDP_USE_NEED_WAKEUP` the flag is never set and every flush must kick.
    need_wakeup: bool,
    /// Frame for packets that cannot be sent (no free frame or slot): the writer still
    /// needs a buffer, and the packet is counted and dropped.
    pub scratch: Vec<u8>,
    pub stats: XskStats,
}

impl TxHalf {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        ring: ProdRing<libc::xdp_desc>,
        comp: ConsRing<u64>,
        free: FrameStack,
        rx_frames: u32,
        frame_size: u32,
        fd: RawFd,
        zero_copy: bool,
        need_wakeup: bool,
    ) -> TxHalf {
        let frame = u64::from(frame_size);
        let pool_start = u64::from(rx_frames) * frame;
        TxHalf {
            pool_end: pool_start + free.capacity() as u64 * frame,
            ring,
            comp,
            free,
            returned_rx: FrameStack::with_capacity(rx_frames as usize),
            pool_start,
            frame_size: frame,
            fd,
            zero_copy,
            need_wakeup,
            scratch: vec![0; frame_size as usize],
            stats: XskStats::default(),
        }
    }

    /// Move completed frames back to their free lists.
    #[inline]
    pub fn reap(&mut self) -> u32 {
        let (start, end, offset_mask) = (self.pool_start, self.pool_end, self.frame_size - 1);
        let free = &mut self.free;
        let returned_rx = &mut self.returned_rx;
        let stats = &mut self.stats;
        self.comp.drain(u32::MAX, |addr| {
            let ok = if addr < start {
                // A forwarded rx frame: its descriptor kept the receive offset.
                returned_rx.push(addr & !offset_mask).is_ok()
            } else {
                // Tokens send from the start of a tx-pool frame.
                addr < end && addr & offset_mask == 0 && free.push(addr).is_ok()
            };
            if !ok {
                stats.tx_invalid += 1;
            }
        })
    }

    /// A free frame with a tx ring slot to send it in, if there is one.
    #[inline]
    pub fn reserve(&mut self) -> Option<u64> {
        if self.free.is_empty() {
            self.reap();
            if self.free.is_empty() && self.ring.unpublished() > 0 {
                self.flush();
            }
        }
        if self.ring.free(1) == 0 {
            return None;
        }
        self.free.pop()
    }

    /// Queue `len` bytes of frame `addr` for transmission (published by `flush`).
    #[inline]
    pub fn send(&mut self, addr: u64, len: u32) {
        match self.ring.push(libc::xdp_desc { addr, len, options: 0 }) {
            Ok(()) => {
                self.stats.tx_packets += 1;
                self.stats.tx_bytes += u64::from(len);
                if self.ring.unpublished() >= TX_BATCH {
                    self.flush();
                }
            }
            Err(desc) => {
                // Cannot happen after `reserve`, but a frame is never lost.
                self.stats.tx_ring_full += 1;
                let _ = self.free.push(desc.addr);
            }
        }
    }

    /// Publish queued descriptors, kick the kernel if it asks for it, reap completions.
    pub fn flush(&mut self) {
        self.ring.submit();
        // Copy mode sends at most 32 frames per kick and answers EAGAIN when more are
        // left; loop while the kernel makes progress, within a bound.
        let mut budget = self.ring.size() / 32 + 2;
        while self.ring.outstanding() > 0 && self.kick_needed() && budget > 0 {
            budget -= 1;
            self.stats.tx_kicks += 1;
            let before = self.ring.outstanding();
            let rc = kick_tx(self.fd);
            if self.zero_copy {
                break;
            }
            self.reap();
            match rc {
                Ok(()) | Err(libc::EAGAIN) | Err(libc::EBUSY) if self.ring.outstanding() < before => continue,
                _ => break,
            }
        }
        self.reap();
    }
}

impl TxHalf {
    #[inline]
    fn kick_needed(&self) -> bool {
        !self.need_wakeup || self.ring.needs_wakeup()
    }
}

/// `sendto(fd, NULL, 0, MSG_DONTWAIT)`: ask the kernel to process the tx ring.
fn kick_tx(fd: RawFd) -> Result<(), i32> {
    // SAFETY: a zero-length send with no buffer and no address on our own socket.
    let rc = unsafe { libc::sendto(fd, std::ptr::null(), 0, libc::MSG_DONTWAIT, std::ptr::null(), 0) };
    if rc < 0 {
        return Err(io::Error::last_os_error().raw_os_error().unwrap_or(0));
    }
    Ok(())
}
