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
//! only when the fill ring's flag asks for it and nothing is waiting on the rx ring —
//! or, with busy polling, whenever the rx ring is empty (the `recvfrom` runs the NAPI
//! poll).

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use super::config::{BindMode, XskConfig, ETHERNET_HEADER};
use super::frames::FrameStack;
use super::ring::{ConsRing, ProdRing, RingLayout};
use super::rx::RxHalf;
use super::stats::XskStats;
use super::tx::TxHalf;
use super::umem::Umem;
use crate::error::XdpError;
use crate::iface::InterfaceInfo;

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
    /// The busy-poll budget set (the kernel cannot report it).
    busy_budget: u32,
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
    let rc = unsafe { libc::getsockopt(fd.as_raw_fd(), libc::SOL_XDP, opt, (out as *mut T).cast(), &mut len) };
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
            return Err(XdpError::QueueMissing { interface: iface.name.clone(), queue, queues: iface.rx_queues });
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
        let umem = Umem::new(cfg.frame_size, rx_frames + tx_frames).map_err(|e| XdpError::io("mapping the UMEM", e))?;
        umem.register(fd.as_fd()).map_err(|e| XdpError::io("setsockopt(XDP_UMEM_REG)", e))?;

        let fill_size = rx_frames;
        let comp_size = tx_frames;
        for (opt, n, what) in [
            (libc::XDP_UMEM_FILL_RING, fill_size, "setsockopt(XDP_UMEM_FILL_RING)"),
            (libc::XDP_UMEM_COMPLETION_RING, comp_size, "setsockopt(XDP_UMEM_COMPLETION_RING)"),
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
        let mut fill =
            ProdRing::<u64>::map(fd.as_fd(), RingLayout::from(off.fr), fill_size, libc::XDP_UMEM_PGOFF_FILL_RING)
                .map_err(map_err)?;
        let comp =
            ConsRing::<u64>::map(fd.as_fd(), RingLayout::from(off.cr), comp_size, libc::XDP_UMEM_PGOFF_COMPLETION_RING)
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
            return Err(bind_error(iface, queue, cfg.bind, io::Error::last_os_error()));
        }

        if let Some(bp) = &cfg.busy_poll {
            bp.apply(fd.as_fd()).map_err(|(what, e)| XdpError::io(what, e))?;
        }

        let mut opts = libc::xdp_options { flags: 0 };
        getsockopt(fd.as_fd(), libc::XDP_OPTIONS, &mut opts).map_err(|e| XdpError::io("getsockopt(XDP_OPTIONS)", e))?;
        let zero_copy = opts.flags & libc::XDP_OPTIONS_ZEROCOPY != 0;

        let raw_fd = fd.as_raw_fd();
        Ok(XskSocket {
            fd,
            rx: RxHalf::new(
                rx_ring,
                fill,
                rx_free,
                u64::from(rx_frames) * u64::from(cfg.frame_size),
                cfg.busy_poll.is_some(),
            ),
            tx: TxHalf::new(tx_ring, comp, tx_free, rx_frames, cfg.frame_size, raw_fd, zero_copy, cfg.need_wakeup),
            umem,
            ifindex: iface.index,
            queue,
            zero_copy,
            max_frame,
            busy_budget: cfg.busy_poll.map_or(0, |b| b.budget),
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

    /// The socket's busy-poll settings as the kernel reports them (the budget as set).
    pub fn busy_poll(&self) -> io::Result<super::BusyPoll> {
        super::BusyPoll::read(self.fd.as_fd(), self.busy_budget)
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
            rx_returned: self.tx.returned_rx.len() as u32,
            tx_pool: ((self.tx.pool_end - self.tx.pool_start) / frame) as u32,
            tx_free: self.tx.free.len() as u32,
            tx_in_tx_ring: self.tx.ring.outstanding() + self.tx.ring.unpublished(),
            tx_in_completion: self.tx.comp.pending(),
        }
    }
}

/// A snapshot of where the frames of one socket are, for tests and diagnostics.
///
/// With no token alive and the kernel idle (copy mode holds frames only in rings; a
/// zero-copy driver also holds fill-ring frames it has taken), the parts add up to the
/// pools: see [`FrameAccounting::balanced`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameAccounting {
    pub rx_pool: u32,
    pub rx_free: u32,
    pub rx_in_fill: u32,
    pub rx_in_rx_ring: u32,
    pub rx_batched: u32,
    /// Reflected rx frames back from the completion ring, not yet on the free list.
    pub rx_returned: u32,
    pub tx_pool: u32,
    pub tx_free: u32,
    pub tx_in_tx_ring: u32,
    pub tx_in_completion: u32,
}

impl FrameAccounting {
    /// Whether every frame of both pools is accounted for.
    pub fn balanced(&self) -> bool {
        self.rx_free + self.rx_in_fill + self.rx_in_rx_ring + self.rx_batched + self.rx_returned == self.rx_pool
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
        Some(libc::EBUSY) => XdpError::QueueBusy { interface: iface.name.clone(), queue },
        Some(libc::ENODEV) => XdpError::InterfaceMissing { interface: iface.name.clone() },
        Some(libc::EOPNOTSUPP) | Some(libc::EPROTONOSUPPORT) if mode == BindMode::ZeroCopy => {
            XdpError::ZeroCopyUnsupported {
                interface: iface.name.clone(),
                driver: iface.driver.clone(),
                reason: "the driver has no AF_XDP zero-copy support",
            }
        }
        Some(libc::EINVAL) if queue >= iface.rx_queues.max(iface.tx_queues) => {
            XdpError::QueueMissing { interface: iface.name.clone(), queue, queues: iface.rx_queues }
        }
        _ => XdpError::io("bind(AF_XDP)", e),
    }
}
