//! One AF_XDP socket bound to one interface queue, with its own UMEM and four rings.
//!
//! Frames are split into two pools for the socket's life: the rx pool circulates
//! free list → fill ring → (kernel) → rx ring → lent to the reader → free list, the tx
//! pool circulates free list → lent to a writer → tx ring → (kernel) → completion ring →
//! free list. The pools are sized so that neither direction can starve the other: the
//! fill ring can hold the whole rx pool, the completion ring the whole tx pool. Every
//! frame address coming back from the kernel is checked against its pool before it is
//! trusted; a bad one is counted and dropped, never written through.
//!
//! Wakeups follow `XDP_USE_NEED_WAKEUP`: tx is kicked with `sendto` only when the tx
//! ring's flag asks for it, and the driver is woken for the fill ring with `recvfrom`
//! only when the fill ring's flag asks for it and nothing is waiting on the rx ring.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use super::frames::FrameStack;
use super::ring::{ConsRing, ProdRing, RingLayout};
use super::stats::XskStats;
use super::umem::{Umem, XDP_PACKET_HEADROOM};
use crate::error::XdpError;
use crate::iface::InterfaceInfo;

/// Ethernet header length, on top of the IP MTU.
pub const ETHERNET_HEADER: u32 = 14;
/// Descriptors fetched from the rx ring per batch.
pub const RX_BATCH: usize = 64;
/// Unpublished tx descriptors that trigger an early flush.
pub const TX_BATCH: u32 = 64;

/// How the socket binds (`XDP_COPY` / `XDP_ZEROCOPY`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BindMode {
    /// Let the kernel choose: zero-copy where the driver supports it, else copy.
    #[default]
    Auto,
    /// Force copy mode (`XDP_COPY`); works with every driver and with SKB attach.
    Copy,
    /// Force zero-copy (`XDP_ZEROCOPY`); fails unless the driver supports it (DRV only).
    ZeroCopy,
}

/// Geometry and options of one AF_XDP socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XskConfig {
    pub bind: BindMode,
    /// UMEM frame size: a power of two in 2048..=page size. Bounds the MTU (received
    /// data starts 256 bytes into the frame).
    pub frame_size: u32,
    /// rx ring entries (power of two). The rx pool has twice as many frames and the
    /// fill ring holds all of them.
    pub rx_ring: u32,
    /// tx ring entries (power of two); also the tx pool and completion ring size.
    pub tx_ring: u32,
    /// Use `XDP_USE_NEED_WAKEUP` (saves syscalls; leave on).
    pub need_wakeup: bool,
}

impl Default for XskConfig {
    fn default() -> XskConfig {
        XskConfig {
            bind: BindMode::Auto,
            frame_size: 4096,
            rx_ring: 2048,
            tx_ring: 2048,
            need_wakeup: true,
        }
    }
}

impl XskConfig {
    /// Frames in the rx pool.
    pub fn rx_frames(&self) -> u32 {
        self.rx_ring * 2
    }

    /// Frames in the tx pool.
    pub fn tx_frames(&self) -> u32 {
        self.tx_ring
    }

    /// Largest frame (Ethernet header included) that fits both directions.
    pub fn max_frame(&self) -> u32 {
        self.frame_size - XDP_PACKET_HEADROOM
    }

    fn validate(&self) -> Result<(), XdpError> {
        let bad = |what: String| Err(XdpError::InvalidConfig { what });
        if !self.frame_size.is_power_of_two() || !(2048..=4096).contains(&self.frame_size) {
            return bad(format!(
                "frame size {} must be 2048 or 4096",
                self.frame_size
            ));
        }
        for (name, n) in [("rx ring", self.rx_ring), ("tx ring", self.tx_ring)] {
            if !n.is_power_of_two() || !(64..=32768).contains(&n) {
                return bad(format!(
                    "{name} size {n} must be a power of two in 64..=32768"
                ));
            }
        }
        Ok(())
    }
}

/// The receive half: rx ring, fill ring, rx pool and a batch of fetched descriptors.
#[derive(Debug)]
pub(crate) struct RxHalf {
    pub ring: ConsRing<libc::xdp_desc>,
    pub fill: ProdRing<u64>,
    pub free: FrameStack,
    /// Rx pool address range `[0, pool_end)`.
    pool_end: u64,
    batch: [libc::xdp_desc; RX_BATCH],
    batch_len: usize,
    batch_pos: usize,
    pub stats: XskStats,
}

/// The transmit half: tx ring, completion ring and tx pool.
#[derive(Debug)]
pub(crate) struct TxHalf {
    pub ring: ProdRing<libc::xdp_desc>,
    pub comp: ConsRing<u64>,
    pub free: FrameStack,
    /// Tx pool address range `[pool_start, pool_end)`.
    pool_start: u64,
    pool_end: u64,
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

/// An AF_XDP socket bound to `(interface, queue)`.
#[derive(Debug)]
pub struct XskSocket {
    // Field order is drop order: close the socket before unmapping what it used.
    fd: OwnedFd,
    pub(crate) rx: RxHalf,
    pub(crate) tx: TxHalf,
    pub(crate) umem: Umem,
    ifindex: u32,
    queue: u32,
    zero_copy: bool,
    max_frame: u32,
}

fn setsockopt_u32(fd: BorrowedFd<'_>, opt: libc::c_int, value: u32) -> io::Result<()> {
    // SAFETY: passes a live u32 of the stated size; the kernel only reads it.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_XDP,
            opt,
            (&value as *const u32).cast(),
            std::mem::size_of::<u32>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `getsockopt(SOL_XDP, opt)` into a plain-old-data `T`; returns the length written.
fn getsockopt<T>(fd: BorrowedFd<'_>, opt: libc::c_int, out: &mut T) -> io::Result<usize> {
    let mut len = std::mem::size_of::<T>() as libc::socklen_t;
    // SAFETY: `out` is writable for `len` bytes; the kernel writes at most `len`.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_XDP,
            opt,
            (out as *mut T).cast(),
            &mut len,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(len as usize)
}

impl XskSocket {
    /// Create, map and bind a socket to queue `queue` of `iface`.
    pub fn open(iface: &InterfaceInfo, queue: u32, cfg: &XskConfig) -> Result<XskSocket, XdpError> {
        cfg.validate()?;
        if queue >= iface.rx_queues {
            return Err(XdpError::QueueMissing {
                interface: iface.name.clone(),
                queue,
                queues: iface.rx_queues,
            });
        }
        let max_frame = cfg.max_frame();
        if iface.mtu + ETHERNET_HEADER > max_frame {
            return Err(XdpError::MtuTooLarge {
                interface: iface.name.clone(),
                mtu: iface.mtu,
                max: max_frame - ETHERNET_HEADER,
            });
        }

        // SAFETY: plain socket(2) call; the result is checked before being owned.
        let raw = unsafe { libc::socket(libc::AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if raw < 0 {
            return Err(XdpError::io("socket(AF_XDP)", io::Error::last_os_error()));
        }
        // SAFETY: `raw` is a fresh descriptor owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };

        let (rx_frames, tx_frames) = (cfg.rx_frames(), cfg.tx_frames());
        let umem = Umem::new(cfg.frame_size, rx_frames + tx_frames)
            .map_err(|e| XdpError::io("mapping the UMEM", e))?;
        umem.register(fd.as_fd())
            .map_err(|e| XdpError::io("setsockopt(XDP_UMEM_REG)", e))?;

        let fill_size = rx_frames;
        let comp_size = tx_frames;
        for (opt, n, what) in [
            (
                libc::XDP_UMEM_FILL_RING,
                fill_size,
                "setsockopt(XDP_UMEM_FILL_RING)",
            ),
            (
                libc::XDP_UMEM_COMPLETION_RING,
                comp_size,
                "setsockopt(XDP_UMEM_COMPLETION_RING)",
            ),
            (libc::XDP_RX_RING, cfg.rx_ring, "setsockopt(XDP_RX_RING)"),
            (libc::XDP_TX_RING, cfg.tx_ring, "setsockopt(XDP_TX_RING)"),
        ] {
            setsockopt_u32(fd.as_fd(), opt, n).map_err(|e| XdpError::io(what, e))?;
        }

        // SAFETY: `xdp_mmap_offsets` is plain old data; all-zero is a valid value.
        let mut off: libc::xdp_mmap_offsets = unsafe { std::mem::zeroed() };
        let len = getsockopt(fd.as_fd(), libc::XDP_MMAP_OFFSETS, &mut off)
            .map_err(|e| XdpError::io("getsockopt(XDP_MMAP_OFFSETS)", e))?;
        if len < std::mem::size_of::<libc::xdp_mmap_offsets>() {
            return Err(XdpError::InvalidConfig {
                what: "kernel too old: AF_XDP rings without a flags word (need Linux 5.4+)".into(),
            });
        }
        let map_err = |e| XdpError::io("mmap of an AF_XDP ring", e);
        let mut fill = ProdRing::<u64>::map(
            fd.as_fd(),
            RingLayout::from(off.fr),
            fill_size,
            libc::XDP_UMEM_PGOFF_FILL_RING,
        )
        .map_err(map_err)?;
        let comp = ConsRing::<u64>::map(
            fd.as_fd(),
            RingLayout::from(off.cr),
            comp_size,
            libc::XDP_UMEM_PGOFF_COMPLETION_RING,
        )
        .map_err(map_err)?;
        let rx_ring = ConsRing::<libc::xdp_desc>::map(
            fd.as_fd(),
            RingLayout::from(off.rx),
            cfg.rx_ring,
            libc::XDP_PGOFF_RX_RING as u64,
        )
        .map_err(map_err)?;
        let tx_ring = ProdRing::<libc::xdp_desc>::map(
            fd.as_fd(),
            RingLayout::from(off.tx),
            cfg.tx_ring,
            libc::XDP_PGOFF_TX_RING as u64,
        )
        .map_err(map_err)?;

        // Post the whole rx pool before binding, so the first packet finds a frame.
        let mut rx_free = FrameStack::range(0, rx_frames, cfg.frame_size);
        fill.produce_from(&mut rx_free, u32::MAX);
        let tx_free = FrameStack::range(rx_frames, tx_frames, cfg.frame_size);

        let mut flags = match cfg.bind {
            BindMode::Auto => 0,
            BindMode::Copy => libc::XDP_COPY,
            BindMode::ZeroCopy => libc::XDP_ZEROCOPY,
        };
        if cfg.need_wakeup {
            flags |= libc::XDP_USE_NEED_WAKEUP;
        }
        let sxdp = libc::sockaddr_xdp {
            sxdp_family: libc::AF_XDP as u16,
            sxdp_flags: flags,
            sxdp_ifindex: iface.index,
            sxdp_queue_id: queue,
            sxdp_shared_umem_fd: 0,
        };
        // SAFETY: `sxdp` is a valid `sockaddr_xdp` of the stated size for the call.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&sxdp as *const libc::sockaddr_xdp).cast(),
                std::mem::size_of::<libc::sockaddr_xdp>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(bind_error(
                iface,
                queue,
                cfg.bind,
                io::Error::last_os_error(),
            ));
        }

        let mut opts = libc::xdp_options { flags: 0 };
        getsockopt(fd.as_fd(), libc::XDP_OPTIONS, &mut opts)
            .map_err(|e| XdpError::io("getsockopt(XDP_OPTIONS)", e))?;
        let zero_copy = opts.flags & libc::XDP_OPTIONS_ZEROCOPY != 0;

        let frame = u64::from(cfg.frame_size);
        let rx_end = u64::from(rx_frames) * frame;
        let raw_fd = fd.as_raw_fd();
        let empty = libc::xdp_desc {
            addr: 0,
            len: 0,
            options: 0,
        };
        Ok(XskSocket {
            fd,
            rx: RxHalf {
                ring: rx_ring,
                fill,
                free: rx_free,
                pool_end: rx_end,
                batch: [empty; RX_BATCH],
                batch_len: 0,
                batch_pos: 0,
                stats: XskStats::default(),
            },
            tx: TxHalf {
                ring: tx_ring,
                comp,
                free: tx_free,
                pool_start: rx_end,
                pool_end: rx_end + u64::from(tx_frames) * frame,
                frame_size: frame,
                fd: raw_fd,
                zero_copy,
                need_wakeup: cfg.need_wakeup,
                scratch: vec![0; cfg.frame_size as usize],
                stats: XskStats::default(),
            },
            umem,
            ifindex: iface.index,
            queue,
            zero_copy,
            max_frame,
        })
    }

    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    pub fn queue(&self) -> u32 {
        self.queue
    }

    /// Whether the kernel bound in zero-copy mode.
    pub fn zero_copy(&self) -> bool {
        self.zero_copy
    }

    /// Largest frame (Ethernet header included) one UMEM frame carries.
    pub fn max_frame(&self) -> u32 {
        self.max_frame
    }

    /// Userspace counters merged with the kernel's `XDP_STATISTICS`.
    pub fn stats(&self) -> io::Result<XskStats> {
        // SAFETY: `xdp_statistics` is plain old data; all-zero is a valid value.
        let mut k: libc::xdp_statistics = unsafe { std::mem::zeroed() };
        getsockopt(self.fd.as_fd(), libc::XDP_STATISTICS, &mut k)?;
        let mut s = self.rx.stats;
        s += self.tx.stats;
        Ok(s.with_kernel(&k))
    }

    /// Where every frame is right now, from the free lists and ring indices.
    pub fn frame_accounting(&self) -> FrameAccounting {
        let frame = u64::from(self.umem.frame_size());
        FrameAccounting {
            rx_pool: (self.rx.pool_end / frame) as u32,
            rx_free: self.rx.free.len() as u32,
            rx_in_fill: self.rx.fill.outstanding() + self.rx.fill.unpublished(),
            rx_in_rx_ring: self.rx.ring.pending(),
            rx_batched: (self.rx.batch_len - self.rx.batch_pos) as u32,
            tx_pool: ((self.tx.pool_end - self.tx.pool_start) / frame) as u32,
            tx_free: self.tx.free.len() as u32,
            tx_in_tx_ring: self.tx.ring.outstanding() + self.tx.ring.unpublished(),
            tx_in_completion: self.tx.comp.pending(),
        }
    }
}

/// A snapshot of where the frames of one socket are, for tests and diagnostics.
///
/// With no token alive and the kernel idle (copy mode holds frames only in rings), the
/// parts add up to the pools: see [`FrameAccounting::balanced`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameAccounting {
    pub rx_pool: u32,
    pub rx_free: u32,
    pub rx_in_fill: u32,
    pub rx_in_rx_ring: u32,
    pub rx_batched: u32,
    pub tx_pool: u32,
    pub tx_free: u32,
    pub tx_in_tx_ring: u32,
    pub tx_in_completion: u32,
}

impl FrameAccounting {
    /// Whether every frame of both pools is accounted for.
    pub fn balanced(&self) -> bool {
        self.rx_free + self.rx_in_fill + self.rx_in_rx_ring + self.rx_batched == self.rx_pool
            && self.tx_free + self.tx_in_tx_ring + self.tx_in_completion == self.tx_pool
    }
}

impl AsFd for XskSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

fn bind_error(iface: &InterfaceInfo, queue: u32, mode: BindMode, e: io::Error) -> XdpError {
    match e.raw_os_error() {
        Some(libc::EBUSY) => XdpError::QueueBusy {
            interface: iface.name.clone(),
            queue,
        },
        Some(libc::ENODEV) => XdpError::InterfaceMissing {
            interface: iface.name.clone(),
        },
        Some(libc::EOPNOTSUPP) | Some(libc::EPROTONOSUPPORT) if mode == BindMode::ZeroCopy => {
            XdpError::ZeroCopyUnsupported {
                interface: iface.name.clone(),
                driver: iface.driver.clone(),
                reason: "the driver has no AF_XDP zero-copy support",
            }
        }
        Some(libc::EINVAL) if queue >= iface.rx_queues.max(iface.tx_queues) => {
            XdpError::QueueMissing {
                interface: iface.name.clone(),
                queue,
                queues: iface.rx_queues,
            }
        }
        _ => XdpError::io("bind(AF_XDP)", e),
    }
}

impl RxHalf {
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

    fn fetch(&mut self, fd: RawFd) -> bool {
        self.refill();
        let n = self.ring.available(RX_BATCH as u32);
        if n == 0 {
            // Nothing received: in zero-copy mode the driver may be waiting for us to
            // say that the fill ring has frames again.
            if self.fill.needs_wakeup() {
                self.stats.rx_wakeups += 1;
                wake_rx(fd);
            }
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

impl TxHalf {
    /// Move completed frames back to the free list.
    #[inline]
    pub fn reap(&mut self) -> u32 {
        let (start, end, offset_mask) = (self.pool_start, self.pool_end, self.frame_size - 1);
        let free = &mut self.free;
        let stats = &mut self.stats;
        self.comp.drain(u32::MAX, |addr| {
            // We only ever send from the start of a tx-pool frame.
            if addr < start || addr >= end || addr & offset_mask != 0 || free.push(addr).is_err() {
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
        match self.ring.push(libc::xdp_desc {
            addr,
            len,
            options: 0,
        }) {
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
                Ok(()) | Err(libc::EAGAIN) | Err(libc::EBUSY)
                    if self.ring.outstanding() < before =>
                {
                    continue
                }
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
    let rc = unsafe {
        libc::sendto(
            fd,
            std::ptr::null(),
            0,
            libc::MSG_DONTWAIT,
            std::ptr::null(),
            0,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error().raw_os_error().unwrap_or(0));
    }
    Ok(())
}

/// `recvfrom(fd, NULL, 0, MSG_DONTWAIT)`: ask the driver to look at the fill ring.
fn wake_rx(fd: RawFd) {
    // SAFETY: a zero-length receive with no buffer and no address on our own socket.
    unsafe {
        libc::recvfrom(
            fd,
            std::ptr::null_mut(),
            0,
            libc::MSG_DONTWAIT,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        )
    };
}
