//! A virtual zero-copy NIC: two [`RingPort`]s joined by lock-free frame rings, for a
//! stack on one thread and its peer on another.
//!
//! Each direction is a pair of bounded `ArrayQueue`s, as an AF_XDP queue's fill/rx and
//! tx/completion rings are: the sender takes a free frame buffer, fills it in place and
//! moves it (a pointer, never the bytes) onto the frame ring; the receiver lends it to
//! the stack and moves it back onto the free ring. Buffers are allocated once, at full
//! frame size, and never resized or zeroed again, so a frame costs no copy, allocation,
//! lock or syscall: what a zero-copy NIC with checksum offload would cost a stack is what
//! is left, which is what the virtual-NIC benchmark measures.
//!
//! - Frames sent wake a parked peer once per `flush` (one poll round), not per frame.
//! - A full frame ring refuses the transmit token (smoltcp retries on a later poll), as
//!   an exhausted tx ring does; `tx_full` counts the refusals.
//! - `wait` spins for `spin` (a busy-polling core; `Duration::MAX`: never parks), then
//!   parks the thread until a frame arrives, a waker fires or the timeout passes. The
//!   time spent spinning is counted in `idle_spin_ns`, so a benchmark can tell a busy
//!   core's work from its polling.
//! - `checksums: false` models checksum offload (smoltcp neither computes nor checks).
//!
//! The ports are `Send`; each is used from one thread at a time. Nothing here panics on
//! a frame's content.

use std::cell::Cell;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::Thread;
use std::time::{Duration, Instant as StdInstant};

use crossbeam_queue::ArrayQueue;
use smoltcp::phy::{self, ChecksumCapabilities, DeviceCapabilities, Medium};
use smoltcp::time::Instant;
use smoltcp::wire::EthernetAddress;

use crate::{Datapath, DatapathWaker};

/// Settings of a ring pair.
#[derive(Debug, Clone)]
pub struct RingConfig {
    /// Frames each direction's ring holds (and buffers each direction owns).
    pub frames: usize,
    /// IP MTU; frames are 14 octets longer (Ethernet).
    pub mtu: usize,
    /// Software checksums (as on AF_XDP); `false` models a NIC's checksum offload.
    pub checksums: bool,
    /// How long `wait` spins before it parks the thread.
    pub spin: Duration,
}

impl Default for RingConfig {
    fn default() -> Self {
        RingConfig { frames: 4096, mtu: 1500, checksums: true, spin: Duration::from_micros(50) }
    }
}

/// A frame buffer (full frame size) and the length of the frame in it.
struct Frame {
    buf: Box<[u8]>,
    len: usize,
}

/// One direction: filled frames, and the buffers to fill.
struct Lane {
    frames: ArrayQueue<Frame>,
    free: ArrayQueue<Box<[u8]>>,
}

/// What the receiving side of a lane shares with its sender and its wakers.
struct Wakeup {
    /// The receiver's thread, known once it has waited.
    thread: OnceLock<Thread>,
    parked: AtomicBool,
    woken: AtomicBool,
}

impl Wakeup {
    fn new() -> Self {
        Wakeup { thread: OnceLock::new(), parked: AtomicBool::new(false), woken: AtomicBool::new(false) }
    }

    fn unpark(&self) {
        if self.parked.load(Ordering::SeqCst) {
            if let Some(t) = self.thread.get() {
                t.unpark();
            }
        }
    }
}

/// Counters of one port.
#[derive(Debug, Default)]
pub struct RingStats {
    pub tx_frames: AtomicU64,
    pub rx_frames: AtomicU64,
    /// Transmit tokens refused because the peer's ring was full.
    pub tx_full: AtomicU64,
    /// Nanoseconds `wait` spent spinning (polling an empty ring).
    pub idle_spin_ns: AtomicU64,
    /// Times `wait` parked the thread.
    pub parks: AtomicU64,
}

/// One end of a virtual NIC: a smoltcp `phy::Device` and a [`Datapath`].
pub struct RingPort {
    rx: Arc<Lane>,
    tx: Arc<Lane>,
    me: Arc<Wakeup>,
    peer: Arc<Wakeup>,
    mac: EthernetAddress,
    caps: DeviceCapabilities,
    spin: Duration,
    stats: Arc<RingStats>,
    /// Frames went out since the last `flush`: the peer may need waking.
    kick: Cell<bool>,
}

/// Two ports joined back to back (MACs `02:00:00:00:01:01` and `02:00:00:00:01:02`).
pub fn ring_pair(config: &RingConfig) -> io::Result<(RingPort, RingPort)> {
    if config.mtu < 576 || config.mtu > 9000 || config.frames == 0 {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "ring: mtu must lie in 576..=9000, frames above 0"));
    }
    let frame_len = config.mtu + 14;
    let lane = || {
        let free = ArrayQueue::new(config.frames);
        for _ in 0..config.frames {
            // Cannot fail: the queue holds exactly `frames`.
            let _ = free.push(vec![0u8; frame_len].into_boxed_slice());
        }
        Arc::new(Lane { frames: ArrayQueue::new(config.frames), free })
    };
    let (ab, ba) = (lane(), lane());
    let (wa, wb) = (Arc::new(Wakeup::new()), Arc::new(Wakeup::new()));
    let port = |rx: &Arc<Lane>, tx: &Arc<Lane>, me: &Arc<Wakeup>, peer: &Arc<Wakeup>, last: u8| {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = frame_len;
        if !config.checksums {
            caps.checksum = ChecksumCapabilities::ignored();
        }
        RingPort {
            rx: Arc::clone(rx),
            tx: Arc::clone(tx),
            me: Arc::clone(me),
            peer: Arc::clone(peer),
            mac: EthernetAddress([0x02, 0, 0, 0, 1, last]),
            caps,
            spin: config.spin,
            stats: Arc::new(RingStats::default()),
            kick: Cell::new(false),
        }
    };
    Ok((port(&ba, &ab, &wa, &wb, 1), port(&ab, &ba, &wb, &wa, 2)))
}

impl RingPort {
    /// The port's MAC address (use it as the stack's hardware address).
    pub fn mac(&self) -> EthernetAddress {
        self.mac
    }

    /// Counters, readable from any thread.
    pub fn stats(&self) -> Arc<RingStats> {
        Arc::clone(&self.stats)
    }

    fn has_work(&self) -> bool {
        !self.rx.frames.is_empty() || self.me.woken.load(Ordering::Acquire)
    }
}

/// Receive token: lends the frame, then returns its buffer to the sender's free ring.
pub struct RingRxToken<'a> {
    lane: &'a Lane,
    frame: Frame,
}

impl phy::RxToken for RingRxToken<'_> {
    fn consume<R, F>(self, f: F) -> R
    where
        F: FnOnce(&[u8]) -> R,
    {
        let r = f(self.frame.buf.get(..self.frame.len).unwrap_or(&[]));
        // Cannot fail: as many buffers exist as the free ring holds.
        let _ = self.lane.free.push(self.frame.buf);
        r
    }
}

/// Transmit token: fills a free buffer in place and moves it onto the peer's ring.
pub struct RingTxToken<'a> {
    port: &'a RingPort,
}

impl phy::TxToken for RingTxToken<'_> {
    fn consume<R, F>(self, len: usize, f: F) -> R
    where
        F: FnOnce(&mut [u8]) -> R,
    {
        let port = self.port;
        let frame_len = port.caps.max_transmission_unit;
        // `transmit` saw a free buffer; only this thread takes them. Should a caller
        // overstep, the frame is built in a spare buffer and dropped.
        let mut buf = port.tx.free.pop().unwrap_or_else(|| vec![0u8; frame_len].into_boxed_slice());
        let len = len.min(buf.len());
        let r = f(&mut buf[..len]);
        match port.tx.frames.push(Frame { buf, len }) {
            Ok(()) => {
                port.stats.tx_frames.fetch_add(1, Ordering::Relaxed);
                port.kick.set(true);
            }
            Err(frame) => {
                port.stats.tx_full.fetch_add(1, Ordering::Relaxed);
                let _ = port.tx.free.push(frame.buf);
            }
        }
        r
    }
}

impl phy::Device for RingPort {
    type RxToken<'a>
        = RingRxToken<'a>
    where
        Self: 'a;
    type TxToken<'a>
        = RingTxToken<'a>
    where
        Self: 'a;

    fn receive(&mut self, _timestamp: Instant) -> Option<(RingRxToken<'_>, RingTxToken<'_>)> {
        if self.tx.free.is_empty() {
            // No buffer to answer with: leave the frame on the ring (back-pressure).
            return None;
        }
        let frame = self.rx.frames.pop()?;
        self.stats.rx_frames.fetch_add(1, Ordering::Relaxed);
        Some((RingRxToken { lane: &self.rx, frame }, RingTxToken { port: self }))
    }

    fn transmit(&mut self, _timestamp: Instant) -> Option<RingTxToken<'_>> {
        if self.tx.free.is_empty() || self.tx.frames.is_full() {
            self.stats.tx_full.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        Some(RingTxToken { port: self })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        self.caps.clone()
    }
}

struct RingWaker(Arc<Wakeup>);

impl DatapathWaker for RingWaker {
    fn wake(&self) -> io::Result<()> {
        self.0.woken.store(true, Ordering::Release);
        if let Some(t) = self.0.thread.get() {
            t.unpark();
        }
        Ok(())
    }
}

impl Datapath for RingPort {
    fn wait(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        let start = StdInstant::now();
        let spin = timeout.map_or(self.spin, |t| t.min(self.spin));
        while !self.has_work() {
            let spun = start.elapsed();
            if spun >= spin {
                break;
            }
            std::hint::spin_loop();
        }
        let spun = start.elapsed();
        self.stats.idle_spin_ns.fetch_add(spun.as_nanos() as u64, Ordering::Relaxed);
        if !self.has_work() && timeout.is_none_or(|t| t > spun) {
            let _ = self.me.thread.set(std::thread::current());
            self.me.parked.store(true, Ordering::SeqCst);
            // A frame pushed before `parked` was visible finds no one to unpark: look again.
            if !self.has_work() {
                self.stats.parks.fetch_add(1, Ordering::Relaxed);
                match timeout {
                    Some(t) => std::thread::park_timeout(t - spun),
                    None => std::thread::park(),
                }
            }
            self.me.parked.store(false, Ordering::SeqCst);
        }
        self.me.woken.store(false, Ordering::Release);
        Ok(())
    }

    fn waker(&self) -> io::Result<Arc<dyn DatapathWaker>> {
        Ok(Arc::new(RingWaker(Arc::clone(&self.me))))
    }

    /// One kick per poll round: a parked peer is woken once for all the frames the
    /// round sent (a futex wake-up per frame would be a syscall per packet).
    fn flush(&mut self) -> io::Result<()> {
        if self.kick.replace(false) {
            self.peer.unpark();
        }
        Ok(())
    }
}

/// Pin the calling thread to core `cpu`, as a NIC queue's thread is (benchmarks run a
/// ring port's stack on a core of its own).
pub fn pin_thread(cpu: usize) -> io::Result<()> {
    if cpu >= libc::CPU_SETSIZE as usize {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("no core {cpu}")));
    }
    // SAFETY: `set` is a plain bit mask owned by this frame, zeroed as `cpu_set_t` may
    // be; `CPU_SET` writes a bit below `CPU_SETSIZE` and the call only reads the mask.
    let rc = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)
    };
    if rc != 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(e.kind(), format!("cannot pin the thread to core {cpu}: {e}")));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
