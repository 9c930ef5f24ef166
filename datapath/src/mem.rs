//! The in-memory datapath: stacks joined by frame queues, with seeded faults.
//!
//! A [`MemNetwork`] is a switch; each [`MemPort`] attached to it is a smoltcp
//! `phy::Device` and a [`Datapath`](crate::Datapath), so a per-core stack runs on it exactly as it runs on
//! an AF_XDP queue. An Ethernet frame goes to the port whose MAC it names (broadcast,
//! multicast and unknown unicast go to every other port); on `Medium::Ip` every frame goes
//! to every other port. A port's egress can lose, duplicate, reorder and delay frames
//! ([`Faults`]), decided by a generator seeded per port, so one thread driving two stacks
//! with a manual clock replays the same run for the same seed.
//!
//! Ports may live on different threads: [`Datapath::wait`](crate::Datapath::wait) sleeps on a condition variable
//! until a frame is due, the timeout passes or a waker fires. Frames are `Vec<u8>`
//! buffers recycled through a per-port cache and a shared pool, so the steady state does
//! not allocate per frame. Each receive queue is bounded (`queue_limit`); overflow is
//! dropped and counted, like a full NIC ring. Nothing here panics on a frame's content.

pub mod counting;
mod fault;
mod port;

pub use fault::Faults;
pub use port::{MemPort, MemRxToken, MemTxToken};

use std::cell::RefCell;
use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::io;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use smoltcp::phy::{ChecksumCapabilities, DeviceCapabilities, Medium};
use smoltcp::time::Instant;
use smoltcp::wire::EthernetAddress;

use fault::Injector;

/// Buffers a port keeps for itself before handing a batch back to the shared pool.
const CACHE_HIGH: usize = 256;
/// Buffers moved between a port cache and the shared pool at once.
const CACHE_BATCH: usize = 64;

/// Settings of one in-memory network.
#[derive(Debug, Clone)]
pub struct MemConfig {
    /// `Medium::Ethernet` (ARP, MAC delivery: what AF_XDP carries) or `Medium::Ip`.
    pub medium: Medium,
    /// IP MTU; Ethernet frames are 14 octets longer.
    pub mtu: usize,
    /// Seed of every port's fault generator.
    pub seed: u64,
    /// Frames a port's receive queue holds before it drops.
    pub queue_limit: usize,
    /// Compute and verify checksums in software (as on AF_XDP). Off only for benchmarks
    /// that want to leave checksum cost out.
    pub checksums: bool,
    /// Frame buffers allocated up front, like a UMEM: traffic bursts up to this many
    /// frames in flight never allocate. More are allocated on demand (and kept).
    pub frames: usize,
}

impl Default for MemConfig {
    fn default() -> Self {
        MemConfig {
            medium: Medium::Ethernet,
            mtu: 1500,
            seed: 0x5eed,
            queue_limit: 4096,
            checksums: true,
            frames: 2048,
        }
    }
}

/// Counters of one port.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PortStats {
    pub tx_frames: u64,
    pub rx_frames: u64,
    /// Dropped by the loss fault.
    pub lost: u64,
    pub duplicated: u64,
    pub reordered: u64,
    /// Dropped because a receive queue was full.
    pub overflowed: u64,
}

/// A frame on the wire, ordered by when it may be received.
struct InFlight {
    due: Instant,
    seq: u64,
    frame: Vec<u8>,
}

impl PartialEq for InFlight {
    fn eq(&self, other: &Self) -> bool {
        (self.due, self.seq) == (other.due, other.seq)
    }
}
impl Eq for InFlight {}
impl PartialOrd for InFlight {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for InFlight {
    // Reversed: `BinaryHeap` is a max-heap and the earliest frame must come out first.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.due, other.seq).cmp(&(self.due, self.seq))
    }
}

struct PortState {
    mac: EthernetAddress,
    queue: BinaryHeap<InFlight>,
    injector: Injector,
    signal: Arc<Condvar>,
    waiting: bool,
    woken: bool,
    /// The stack's clock at its last empty receive, and the real time then when a
    /// delayed frame was held back: `wait` estimates the stack's "now" from them to
    /// sleep until a delayed frame is due. With nothing queued the real clock is not
    /// read (a clock read costs as much as a tenth of a segment's trip through the
    /// stack, `bench/benches/smol_stack.rs`); a frame that arrives between that receive
    /// and `wait` is then timed from the receive's timestamp alone, which can make
    /// the sleep longer by the microseconds in between, never shorter.
    last_ts: Instant,
    last_real: Option<std::time::Instant>,
    stats: PortStats,
}

struct NetState {
    ports: Vec<PortState>,
    pool: Vec<Vec<u8>>,
    seq: u64,
}

struct Shared {
    config: MemConfig,
    state: Mutex<NetState>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, NetState> {
        // A panic elsewhere while holding the lock leaves plain queues behind: keep going.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A switch joining any number of [`MemPort`]s. Cheap to clone (shared).
#[derive(Clone)]
pub struct MemNetwork {
    shared: Arc<Shared>,
}

impl MemNetwork {
    pub fn new(config: MemConfig) -> MemNetwork {
        let frame_len = config.mtu + 14;
        let pool = (0..config.frames).map(|_| Vec::with_capacity(frame_len)).collect();
        let state = NetState { ports: Vec::new(), pool, seq: 0 };
        MemNetwork { shared: Arc::new(Shared { config, state: Mutex::new(state) }) }
    }

    /// Two ports on a fresh network: `a_faults` impair what `a` sends, `b_faults` what
    /// `b` sends.
    pub fn pair(config: MemConfig, a_faults: Faults, b_faults: Faults) -> io::Result<(MemPort, MemPort)> {
        let net = MemNetwork::new(config);
        Ok((net.attach(a_faults)?, net.attach(b_faults)?))
    }

    /// Plug a new port in. Its MAC is `02:00:00:00:xx:yy`, `xxyy` being its index + 1.
    pub fn attach(&self, faults: Faults) -> io::Result<MemPort> {
        faults.validate().map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let config = &self.shared.config;
        if config.mtu < 576 || config.mtu > 65_535 {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "mtu must lie in 576..=65535"));
        }
        let mut st = self.shared.lock();
        let index = st.ports.len();
        if index >= 0xffff {
            return Err(io::Error::new(io::ErrorKind::OutOfMemory, "too many ports"));
        }
        let id = index + 1;
        let mac = EthernetAddress([0x02, 0, 0, 0, (id >> 8) as u8, id as u8]);
        let signal = Arc::new(Condvar::new());
        st.ports.push(PortState {
            mac,
            queue: BinaryHeap::with_capacity(config.queue_limit.min(1 << 16)),
            injector: Injector::new(faults, config.seed, index),
            signal: Arc::clone(&signal),
            waiting: false,
            woken: false,
            last_ts: Instant::ZERO,
            last_real: None,
            stats: PortStats::default(),
        });
        let mut caps = DeviceCapabilities::default();
        caps.medium = config.medium;
        let header = if config.medium == Medium::Ethernet { 14 } else { 0 };
        caps.max_transmission_unit = config.mtu + header;
        if !config.checksums {
            caps.checksum = ChecksumCapabilities::ignored();
        }
        Ok(MemPort { shared: Arc::clone(&self.shared), index, mac, signal, cache: RefCell::new(Vec::new()), caps })
    }

    /// Change what a port's egress does from now on.
    pub fn set_faults(&self, port: usize, faults: Faults) -> io::Result<()> {
        faults.validate().map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let mut st = self.shared.lock();
        let p = st.ports.get_mut(port).ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no such port"))?;
        p.injector.faults = faults;
        Ok(())
    }

    /// The earliest time a queued frame becomes receivable (`Instant::ZERO` for "now"),
    /// for simulation drivers that advance a manual clock.
    pub fn next_delivery(&self) -> Option<Instant> {
        self.shared.lock().ports.iter().filter_map(|p| p.queue.peek().map(|f| f.due)).min()
    }

    /// Frames queued on the wire, all ports together.
    pub fn in_flight(&self) -> usize {
        self.shared.lock().ports.iter().map(|p| p.queue.len()).sum()
    }

    pub fn stats(&self, port: usize) -> Option<PortStats> {
        self.shared.lock().ports.get(port).map(|p| p.stats)
    }
}

#[cfg(test)]
mod tests;
