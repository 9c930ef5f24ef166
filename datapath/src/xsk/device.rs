//! `XskDevice`: one AF_XDP queue as a smoltcp `phy::Device` and a [`Datapath`].
//!
//! The rx token lends the received UMEM frame to the stack and returns it to the rx pool
//! when it is consumed (or dropped); the tx token hands the stack a tx-pool frame to
//! write into and queues it on the tx ring. No packet is copied and nothing is allocated
//! per packet. Transmissions are published and the kernel kicked in batches: by
//! [`Datapath::flush`] once per poll round, or early when a batch fills up.
//!
//! The medium is Ethernet. Checksums are computed and verified in software (copy mode,
//! which veth and SKB mode use, offers no offload), and the MTU is the interface's,
//! bounded by what one UMEM frame holds.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::sync::Arc;
use std::time::Duration;

use smoltcp::phy::{self, ChecksumCapabilities, DeviceCapabilities, Medium};
use smoltcp::time::Instant;

use super::config::{XskConfig, ETHERNET_HEADER};
use super::program::XdpProgram;
use super::rx::RxHalf;
use super::socket::{FrameAccounting, XskSocket};
use super::stats::XskStats;
use super::tx::TxHalf;
use super::umem::Umem;
use super::waker::EventFd;
use crate::error::XdpError;
use crate::iface::InterfaceInfo;
use crate::{Datapath, DatapathWaker};

/// One AF_XDP queue as a smoltcp device.
#[derive(Debug)]
pub struct XskDevice {
    socket: XskSocket,
    waker: Arc<EventFd>,
    caps: DeviceCapabilities,
    mac: [u8; 6],
    /// Keeps the XDP program (and so the redirect into this queue) alive.
    program: Option<Arc<XdpProgram>>,
}

impl XskDevice {
    /// Open queue `queue` of the interface `program` is attached to, and register it in
    /// the program's XSKMAP so that the program's traffic for this queue reaches it.
    pub fn open(program: &Arc<XdpProgram>, queue: u32, cfg: &XskConfig) -> Result<XskDevice, XdpError> {
        let iface = program.interface();
        if cfg.bind == super::BindMode::ZeroCopy && program.mode() == crate::AttachMode::Skb {
            return Err(XdpError::ZeroCopyUnsupported {
                interface: iface.name.clone(),
                driver: iface.driver.clone(),
                reason: "zero-copy needs the program in native mode (--xdp-mode drv)",
            });
        }
        let socket = XskSocket::open(iface, queue, cfg)?;
        program.register(queue, socket.as_fd())?;
        let mut dev = XskDevice::from_socket(socket, iface)?;
        dev.program = Some(Arc::clone(program));
        Ok(dev)
    }

    /// A device over an already bound socket (no XDP program of ours redirects to it:
    /// useful for transmit-only generators and for sockets steered by another program).
    pub fn from_socket(socket: XskSocket, iface: &InterfaceInfo) -> Result<XskDevice, XdpError> {
        let waker = Arc::new(EventFd::new().map_err(|e| XdpError::io("eventfd", e))?);
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = (iface.mtu + ETHERNET_HEADER).min(socket.max_frame()) as usize;
        caps.checksum = ChecksumCapabilities::default();
        Ok(XskDevice { socket, waker, caps, mac: iface.mac, program: None })
    }

    /// The interface's MAC address (the stack's hardware address).
    pub fn mac(&self) -> [u8; 6] {
        self.mac
    }

    /// The interface's IP MTU as the stack sees it.
    pub fn ip_mtu(&self) -> usize {
        self.caps.max_transmission_unit - ETHERNET_HEADER as usize
    }

    pub fn queue(&self) -> u32 {
        self.socket.queue()
    }

    pub fn zero_copy(&self) -> bool {
        self.socket.zero_copy()
    }

    /// The socket's busy-poll settings as the kernel reports them (`getsockopt`).
    pub fn busy_poll(&self) -> io::Result<super::BusyPoll> {
        self.socket.busy_poll()
    }

    /// Counters of this queue, userspace and kernel merged.
    pub fn stats(&self) -> io::Result<XskStats> {
        self.socket.stats()
    }

    /// Where this queue's frames are (tests, diagnostics).
    pub fn frame_accounting(&self) -> FrameAccounting {
        self.socket.frame_accounting()
    }

    /// The underlying socket.
    pub fn socket_mut(&mut self) -> &mut XskSocket {
        &mut self.socket
    }
}

impl AsFd for XskDevice {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }
}

/// A received frame, lent from the UMEM until consumed.
pub struct XskRxToken<'a> {
    umem: &'a Umem,
    rx: &'a mut RxHalf,
    desc: libc::xdp_desc,
}

/// The right to send one frame from the tx pool.
pub struct XskTxToken<'a> {
    umem: &'a Umem,
    tx: &'a mut TxHalf,
}

impl phy::RxToken for XskRxToken<'_> {
    fn consume<R, F>(self, f: F) -> R
    where
        F: FnOnce(&[u8]) -> R,
    {
        // SAFETY: the descriptor came off the rx ring and was checked to lie inside one
        // rx-pool frame; that frame is ours (the kernel wrote it before publishing the
        // descriptor) until `Drop` below returns it to the free list.
        let data = unsafe { self.umem.frame(self.desc.addr, self.desc.len) };
        f(data)
    }
}

impl Drop for XskRxToken<'_> {
    fn drop(&mut self) {
        self.rx.recycle(self.umem.frame_base(self.desc.addr));
    }
}

impl phy::TxToken for XskTxToken<'_> {
    fn consume<R, F>(self, len: usize, f: F) -> R
    where
        F: FnOnce(&mut [u8]) -> R,
    {
        let fits = len <= self.umem.frame_size() as usize;
        match self.tx.reserve() {
            Some(addr) if fits => {
                // SAFETY: `addr` came off the tx free list, so no ring and no other token
                // holds that frame; `len` fits in it (checked above).
                let buf = unsafe { self.umem.frame_mut(addr, len as u32) };
                let r = f(buf);
                self.tx.send(addr, len as u32);
                r
            }
            reserved => {
                if let Some(addr) = reserved {
                    // Larger than a frame: the stack ignored our MTU. Drop, keep the frame.
                    let _ = self.tx.free.push(addr);
                    self.tx.stats.tx_invalid += 1;
                } else {
                    self.tx.stats.tx_ring_full += 1;
                }
                if self.tx.scratch.len() < len {
                    self.tx.scratch.resize(len, 0);
                }
                f(&mut self.tx.scratch[..len])
            }
        }
    }
}

impl phy::Device for XskDevice {
    type RxToken<'a> = XskRxToken<'a>;
    type TxToken<'a> = XskTxToken<'a>;

    fn receive(&mut self, _timestamp: Instant) -> Option<(XskRxToken<'_>, XskTxToken<'_>)> {
        let fd = self.socket.as_fd().as_raw_fd();
        let s = &mut self.socket;
        let desc = s.rx.next(&s.umem, fd)?;
        Some((XskRxToken { umem: &s.umem, rx: &mut s.rx, desc }, XskTxToken { umem: &s.umem, tx: &mut s.tx }))
    }

    fn transmit(&mut self, _timestamp: Instant) -> Option<XskTxToken<'_>> {
        let s = &mut self.socket;
        // Only promise a token that can really send.
        let addr = s.tx.reserve()?;
        let _ = s.tx.free.push(addr);
        Some(XskTxToken { umem: &s.umem, tx: &mut s.tx })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        self.caps.clone()
    }
}

impl Datapath for XskDevice {
    fn wait(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        if self.socket.rx.has_pending() {
            return Ok(());
        }
        let timeout_ms = match timeout {
            // Busy polling (a dedicated core): never sleep. A zero-timeout poll runs one
            // busy-poll round of the driver's NAPI (xsk_poll) and checks the waker.
            _ if self.socket.rx.busy_poll => 0,
            None => -1,
            Some(d) => {
                // Round up so that a short timeout does not become a busy loop.
                let ms = d.as_nanos().div_ceil(1_000_000);
                i32::try_from(ms).unwrap_or(i32::MAX)
            }
        };
        let mut fds = [
            libc::pollfd { fd: self.socket.as_fd().as_raw_fd(), events: libc::POLLIN, revents: 0 },
            libc::pollfd { fd: self.waker.as_fd().as_raw_fd(), events: libc::POLLIN, revents: 0 },
        ];
        // SAFETY: `fds` is a live array of two pollfds for the duration of the call.
        let rc = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::Interrupted { Ok(()) } else { Err(e) };
        }
        if fds[1].revents != 0 {
            self.waker.drain();
        }
        Ok(())
    }

    fn waker(&self) -> io::Result<Arc<dyn DatapathWaker>> {
        Ok(self.waker.clone())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.socket.tx.flush();
        self.socket.recycle_returned();
        self.socket.rx.refill();
        Ok(())
    }
}
