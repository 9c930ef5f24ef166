//! The bare AF_XDP loop: received frames go straight back out of the same socket,
//! ring to ring, without a copy or a token — the baseline the benchmarks hold
//! [`XskDevice`](super::XskDevice) against, and a building block for L2 reflectors.
//!
//! A reflected frame leaves the rx pool through the tx ring; its completion returns it
//! to the rx pool (the completion path routes frames by pool), so reflecting and using
//! the device's tokens on one socket keeps every frame accounted for.

use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::time::Duration;

use super::config::RX_BATCH;
use super::socket::XskSocket;

impl XskSocket {
    /// Move up to one batch of received frames to the tx ring, letting `edit` rewrite
    /// each in place (e.g. the Ethernet addresses), then publish and kick. Returns the
    /// number of frames reflected.
    pub fn reflect(&mut self, mut edit: impl FnMut(&mut [u8])) -> u32 {
        self.recycle_returned();
        let fd = self.as_fd().as_raw_fd();
        // Frames already fetched by the device path go first, through its checks.
        let mut done = 0;
        while self.rx.has_batched() && self.tx.ring.free(1) > 0 {
            let Some(desc) = self.rx.next(&self.umem, fd) else {
                break;
            };
            self.forward(desc, &mut edit);
            done += 1;
        }
        self.rx.refill();
        let n = self.rx.ring.available(RX_BATCH as u32);
        let n = self.tx.ring.free(n);
        for i in 0..n {
            let desc = self.rx.ring.get(i);
            if desc.addr < self.rx.pool_end && self.umem.contains(desc.addr, desc.len) {
                self.rx.stats.rx_packets += 1;
                self.rx.stats.rx_bytes += u64::from(desc.len);
                self.forward(desc, &mut edit);
            } else {
                self.rx.stats.rx_invalid += 1;
                if desc.addr < self.rx.pool_end {
                    self.rx.recycle(self.umem.frame_base(desc.addr));
                }
            }
        }
        if n > 0 {
            self.rx.ring.release(n);
        } else if !self.rx.ring.has_entries() {
            self.rx.idle(fd);
        }
        done += n;
        self.tx.flush();
        done
    }

    fn forward(&mut self, desc: libc::xdp_desc, edit: &mut impl FnMut(&mut [u8])) {
        // SAFETY: the descriptor was checked to lie inside one rx-pool frame that the
        // kernel handed us on the rx ring; nothing else references it until it goes
        // back out on the tx ring below.
        edit(unsafe { self.umem.frame_mut(desc.addr, desc.len) });
        if let Err(desc) = self.tx.ring.push(desc) {
            // Free slots were checked; keep the frame in circulation regardless.
            self.tx.stats.tx_ring_full += 1;
            self.rx.recycle(self.umem.frame_base(desc.addr));
            return;
        }
        self.tx.stats.tx_packets += 1;
        self.tx.stats.tx_bytes += u64::from(desc.len);
    }

    /// Hand rx-pool frames that completed on the tx side back to the rx free list.
    pub(crate) fn recycle_returned(&mut self) {
        while let Some(frame) = self.tx.returned_rx.pop() {
            self.rx.recycle(frame);
        }
    }

    /// Block until the rx ring has entries or `timeout` passes (`poll(2)`).
    pub fn wait_readable(&self, timeout: Duration) -> io::Result<bool> {
        if self.rx.has_pending() {
            return Ok(true);
        }
        let mut pfd = libc::pollfd { fd: self.as_fd().as_raw_fd(), events: libc::POLLIN, revents: 0 };
        let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
        // SAFETY: one live pollfd for the duration of the call.
        let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::Interrupted { Ok(false) } else { Err(e) };
        }
        Ok(rc > 0)
    }
}
