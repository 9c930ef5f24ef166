//! The userspace backend: one smoltcp `Interface` per core behind the readiness
//! contract, with the kernel backend's semantics (see the crate docs).
//!
//! # Why not smoltcp's `poll`
//!
//! smoltcp's `Interface::poll` walks its whole `SocketSet` for every received packet
//! (to find the socket that accepts it), again for egress (to ask every socket whether
//! it has something to send) and again for `poll_at`; a proxy core with 10 000 idle
//! connections would pay 10 000 socket visits per packet. The maintainers keep it that
//! way on purpose (smoltcp-rs/smoltcp#934, #386): small, embedded socket counts.
//!
//! This backend therefore never hands smoltcp more than one socket. Every connection
//! owns a one-slot `SocketSet`, and the stack drives the interface's fine-grained entry
//! points itself:
//!
//! - **ingress** (`ingress.rs`): each frame is classified and its 4-tuple looked up in a
//!   hash table; `poll_ingress_single` then runs against that connection's set (or a
//!   listener's LISTEN socket for a new SYN, or an empty set for strays, which smoltcp
//!   answers with RST or ARP replies exactly as before);
//! - **egress** (`core.rs`): only connections on the dirty list (ingress, an application
//!   operation, a due timer) are visited; `poll_egress` and `poll_at` see one socket;
//! - **timers**: a heap of per-connection deadlines taken from smoltcp's `poll_at`, so an
//!   idle connection costs nothing per poll, and `poll`'s sleep is the earliest deadline
//!   capped by the caller's timeout.
//!
//! No change to smoltcp is needed, so there is no vendored fork. The price is that
//! smoltcp's per-socket neighbour back-off lives in the one-slot set and is reset when a
//! socket is reused; connections stalled on ARP are retried when an ARP frame arrives.
//!
//! # Addresses and neighbours
//!
//! With `any_ip` (the default) the stack accepts segments for any destination that
//! reaches its MAC, so an accepted connection's local address is the original
//! destination. It answers ARP only for its own address unless `proxy_arp` is set (then
//! for the whole prefix, so on-link clients reach virtual addresses directly). Per-core
//! stacks that share an address see an ARP reply on one queue only: hand a resolved
//! neighbour (the gateway) to the others with [`SmolStack::add_neighbor`].
//!
//! # Around the TCP state machine
//!
//! Listen backlog (`listener.rs`), per-core ephemeral ports (`ports.rs`), TIME-WAIT as a
//! record instead of a socket (`time_wait.rs`), a socket cache so churn does not allocate,
//! and edge-triggered readiness (`conn.rs`). IPv4 only. Time comes from a [`Clock`]:
//! [`SystemClock`] in production, [`ManualClock`] for deterministic tests.
//!
//! # Example
//!
//! A stack per core over any [`Datapath`]; here the in-memory one, with a peer stack
//! for clients and origins on the other port:
//!
//! ```
//! use sluice_datapath::mem::{Faults, MemConfig, MemNetwork};
//! use sluice_stack::smol::{Ipv4Address, Ipv4Cidr, SmolConfig, SmolStack};
//! use sluice_stack::{ListenOptions, Stack};
//!
//! let (proxy_port, peer_port) = MemNetwork::pair(MemConfig::default(), Faults::NONE, Faults::NONE)?;
//! let mut cfg = SmolConfig::new(proxy_port.mac(), Ipv4Cidr::new(Ipv4Address::new(10, 99, 0, 1), 24));
//! cfg.gateway = Some(Ipv4Address::new(10, 99, 0, 254));
//! cfg.ephemeral_ports = (40_000, 44_095); // this core's share of the port space
//! let mut proxy = SmolStack::new(proxy_port, cfg)?;
//! let listener = proxy.listen("0.0.0.0:80".parse().unwrap(), &ListenOptions::default())?;
//!
//! let mut peer_cfg = SmolConfig::new(peer_port.mac(), Ipv4Cidr::new(Ipv4Address::new(10, 99, 0, 2), 24));
//! peer_cfg.any_ip = false; // a plain host
//! let mut peer = SmolStack::new(peer_port, peer_cfg)?;
//! let client = peer.connect("10.99.0.1:80".parse().unwrap())?;
//! # let _ = (listener, client);
//! # Ok::<(), std::io::Error>(())
//! ```

mod buffers;
mod clock;
mod config;
mod conn;
mod core;
mod device;
mod flow;
mod handoff;
mod ingress;
mod listener;
mod neighbor;
mod ops;
mod ports;
mod redirect;
mod slab;
mod stats;
mod steer;
mod time_wait;
mod timers;

pub use clock::{Clock, ManualClock, SystemClock};
pub use config::SmolConfig;
pub use handoff::{Handoff, HandoffConfig, HandoffStats, Parcel, ParcelKind};
pub use smoltcp::socket::tcp::CongestionControl;
pub use smoltcp::time::{Duration as SmolDuration, Instant as SmolInstant};
pub use smoltcp::wire::{EthernetAddress, Ipv4Address, Ipv4Cidr};
pub use stats::SmolStats;
pub use steer::{FlowSteering, SteeringStats};

use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use sluice_datapath::{Datapath, DatapathWaker};
use smoltcp::iface::{Config, Interface};
use smoltcp::phy::Medium;
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{HardwareAddress, IpCidr};

use self::core::Core;
use crate::{Accepted, Events, Interest, ListenOptions, SocketId, Stack, StackStats, Token, Wake};

/// A per-core userspace TCP/IP stack over a [`Datapath`].
pub struct SmolStack<D: Datapath, C: Clock = SystemClock> {
    device: D,
    clock: C,
    core: Core,
}

impl<D: Datapath> SmolStack<D, SystemClock> {
    /// A stack on `device` with the system clock.
    pub fn new(device: D, config: SmolConfig) -> io::Result<Self> {
        Self::with_clock(device, config, SystemClock)
    }
}

impl<D: Datapath, C: Clock> SmolStack<D, C> {
    /// A stack on `device` reading time from `clock`.
    pub fn with_clock(mut device: D, config: SmolConfig, clock: C) -> io::Result<Self> {
        config.validate()?;
        let caps = device.capabilities();
        #[allow(unreachable_patterns)]
        let hardware_addr = match caps.medium {
            Medium::Ethernet => HardwareAddress::Ethernet(config.hardware_addr),
            Medium::Ip => HardwareAddress::Ip,
            _ => return Err(io::Error::new(io::ErrorKind::Unsupported, "datapath medium is neither Ethernet nor IP")),
        };
        if caps.max_transmission_unit < 576 {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "datapath MTU below 576"));
        }
        let mut iface_config = Config::new(hardware_addr);
        iface_config.random_seed = config.random_seed;
        let mut iface = Interface::new(iface_config, &mut device, clock.now());
        iface.update_ip_addrs(|addrs| {
            // Cannot fail: the list is empty and holds at least one address.
            let _ = addrs.push(IpCidr::Ipv4(config.address));
        });
        if let Some(gateway) = config.gateway {
            iface
                .routes_mut()
                .add_default_ipv4_route(gateway)
                .map_err(|_| io::Error::new(io::ErrorKind::OutOfMemory, "route table full"))?;
        }
        iface.set_any_ip(config.any_ip);
        Ok(SmolStack { device, clock, core: Core::new(iface, config, caps) })
    }

    pub fn config(&self) -> &SmolConfig {
        &self.core.cfg
    }

    pub fn device(&self) -> &D {
        &self.device
    }

    pub fn device_mut(&mut self) -> &mut D {
        &mut self.device
    }

    pub fn clock(&self) -> &C {
        &self.clock
    }

    /// Counters and gauges of this stack.
    pub fn smol_stats(&self) -> SmolStats {
        self.core.snapshot_stats()
    }

    /// Teach the stack that on-link `ip` is at `mac` (e.g. the gateway, resolved by
    /// another core, whose ARP reply this core's queue never sees). Connections waiting
    /// for that neighbour are retried. No-op on `Medium::Ip`.
    pub fn add_neighbor(&mut self, ip: Ipv4Address, mac: EthernetAddress) -> io::Result<()> {
        let now = self.clock.now();
        self.core.add_neighbor(ip, mac, now)
    }

    /// Serve flows together with the stacks of other cores (one per queue of a NIC):
    /// frames of flows another core owns are handed to it, and frames handed here are
    /// served (see the `steer` module). The steering's range for this core must be the
    /// configured `ephemeral_ports`, or return traffic would be sent to the wrong core.
    pub fn set_steering(&mut self, steering: FlowSteering) -> io::Result<()> {
        if steering.own_range() != self.core.cfg.ephemeral_ports {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "flow steering: this core's range differs from its ephemeral_ports",
            ));
        }
        self.core.steer = Some(steering);
        Ok(())
    }

    /// Counters of flow steering (zero without it).
    pub fn steering_stats(&self) -> SteeringStats {
        self.core.steer.as_ref().map(FlowSteering::stats).unwrap_or_default()
    }

    /// Accept connections to destinations inside `prefixes` that no listener takes on
    /// `listener`'s behalf, keeping their original destination as the local address
    /// (iptables `REDIRECT` for those prefixes; see the `redirect` module). An empty
    /// list turns redirection off.
    pub fn redirect(&mut self, prefixes: Vec<Ipv4Cidr>, listener: SocketId) -> io::Result<()> {
        let target = (!prefixes.is_empty()).then_some((prefixes, listener));
        self.core.set_redirect(target)
    }

    /// When this stack next has work of its own (a timer, pending egress or events), for
    /// simulation drivers that advance a [`ManualClock`]; `None` when only a received
    /// frame or an application call can give it work.
    pub fn next_deadline(&mut self) -> Option<Instant> {
        let now = self.clock.now();
        self.core.next_wakeup(now).map(|d| now + d)
    }

    /// One poll round at `now`: ingress (bounded), timers, egress, flush.
    fn turn(&mut self, now: Instant) -> io::Result<()> {
        let core = &mut self.core;
        let mut budget = core.cfg.ingress_budget;
        if core.steer.is_some() {
            // Frames other cores handed over first: they have waited longest.
            budget -= core.handoff_ingress(&mut self.device, now, budget);
        }
        while budget > 0 {
            let Some((rx, tx)) = self.device.receive(now) else {
                break;
            };
            smoltcp::phy::RxToken::consume(rx, |frame| core.ingress(frame, tx, now));
            budget -= 1;
        }
        core.more_ingress = budget == 0;
        core.expire_timers(now);
        core.egress(&mut self.device, now);
        let flushed = self.device.flush();
        if let Some(steer) = core.steer.as_mut() {
            steer.flush_wakes();
        }
        flushed
    }
}

/// The stack's waker: flags its token, then interrupts the datapath's wait.
struct SmolWaker {
    flag: Arc<AtomicBool>,
    datapath: Arc<dyn DatapathWaker>,
}

impl Wake for SmolWaker {
    fn wake(&self) -> io::Result<()> {
        self.flag.store(true, std::sync::atomic::Ordering::Release);
        self.datapath.wake()
    }
}

impl<D: Datapath, C: Clock> Stack for SmolStack<D, C> {
    fn poll(&mut self, events: &mut Events, timeout: Option<StdDuration>) -> io::Result<()> {
        events.clear();
        let start = self.clock.now();
        let deadline = timeout.map(|t| start + Duration::from(t));
        let mut now = start;
        let mut stalls = 0;
        loop {
            self.turn(now)?;
            self.core.collect(events);
            if !events.is_empty() {
                return Ok(());
            }
            let remaining = match deadline {
                Some(d) if d <= now => return Ok(()),
                Some(d) => Some(d - now),
                None => None,
            };
            let wait = match (remaining, self.core.next_wakeup(now)) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            if wait != Some(Duration::ZERO) {
                // Other cores wake a parked core only; a refused park means frames
                // were handed over meanwhile.
                if self.core.steer.as_ref().is_none_or(FlowSteering::park) {
                    let slept = self.device.wait(wait.map(StdDuration::from));
                    if let Some(steer) = &self.core.steer {
                        steer.unpark();
                    }
                    slept?;
                }
            }
            let later = self.clock.now();
            if later <= now {
                // A manual clock: waiting does not move it, so do not wait for it.
                stalls += 1;
                if stalls > 8 || wait != Some(Duration::ZERO) {
                    self.turn(later)?;
                    self.core.collect(events);
                    return Ok(());
                }
            }
            now = later;
        }
    }

    fn waker(&mut self, token: Token) -> io::Result<Arc<dyn Wake>> {
        let flag = Arc::new(AtomicBool::new(false));
        self.core.wakers.push((token, Arc::clone(&flag)));
        Ok(Arc::new(SmolWaker { flag, datapath: self.device.waker()? }))
    }

    fn listen(&mut self, addr: SocketAddr, opts: &ListenOptions) -> io::Result<SocketId> {
        self.core.listen(addr, opts)
    }

    fn accept(&mut self, listener: SocketId) -> io::Result<Accepted> {
        self.core.accept(listener)
    }

    fn connect(&mut self, addr: SocketAddr) -> io::Result<SocketId> {
        let now = self.clock.now();
        self.core.connect(addr, now)
    }

    fn connect_result(&mut self, socket: SocketId) -> io::Result<()> {
        self.core.connect_result(socket)
    }

    fn read(&mut self, socket: SocketId, buf: &mut [u8]) -> io::Result<usize> {
        self.core.read(socket, buf, false)
    }

    fn peek(&mut self, socket: SocketId, buf: &mut [u8]) -> io::Result<usize> {
        self.core.read(socket, buf, true)
    }

    fn write(&mut self, socket: SocketId, buf: &[u8]) -> io::Result<usize> {
        self.core.write(socket, &[IoSlice::new(buf)])
    }

    fn write_vectored(&mut self, socket: SocketId, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.core.write(socket, bufs)
    }

    fn shutdown_write(&mut self, socket: SocketId) -> io::Result<()> {
        self.core.shutdown_write(socket)
    }

    fn close(&mut self, socket: SocketId) {
        let now = self.clock.now();
        self.core.release(socket, false, now);
    }

    fn abort(&mut self, socket: SocketId) {
        let now = self.clock.now();
        self.core.release(socket, true, now);
    }

    fn local_addr(&self, socket: SocketId) -> io::Result<SocketAddr> {
        self.core.local_addr(socket)
    }

    fn peer_addr(&self, socket: SocketId) -> io::Result<SocketAddr> {
        self.core.peer_addr(socket)
    }

    fn original_dst(&self, socket: SocketId) -> io::Result<Option<SocketAddr>> {
        // any_ip: the local address already is the original destination.
        self.core.stream(socket).map(|_| None)
    }

    fn register(&mut self, socket: SocketId, token: Token, interest: Interest) -> io::Result<()> {
        self.core.register(socket, token, interest, true)
    }

    fn reregister(&mut self, socket: SocketId, token: Token, interest: Interest) -> io::Result<()> {
        self.core.register(socket, token, interest, false)
    }

    fn deregister(&mut self, socket: SocketId) -> io::Result<()> {
        self.core.deregister(socket)
    }

    fn closing(&self) -> usize {
        self.core.closing()
    }

    fn stats(&self) -> StackStats {
        let s = &self.core.stats;
        StackStats { accepts: s.accepts, connects: s.connects, connect_exhausted: s.connect_exhausted }
    }
}
