//! Entry points for the fuzz targets in `fuzz/` and their deterministic counterparts
//! here (not an API: hidden from the docs, kept as thin as the targets allow).
//!
//! [`Harness`] runs one whole [`Worker`] on a [`PipeStack`] (in-memory byte pipes
//! instead of sockets) and a virtual clock, round by round on the caller's thread:
//! the fuzz input plays the client or the origin through [`PipeNet`], the worker's
//! listeners, connection manager, codecs, router and pools are the production ones.
//! Each target lives in a module of its own with its input format, its seeds and the
//! properties it checks ([`h2_downstream`], [`h2_upstream`]); [`mutate`] feeds them
//! pseudo-random variations of their seeds with a fixed seed, so that CI covers what
//! the fuzzer covers, only less of it.

pub mod h2_downstream;
pub mod h2_upstream;
pub mod mutate;
pub mod pipe_stack;
pub mod wire;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_stack::Events;

use crate::listener::manager::Snapshot;
use crate::stats::Store;
use crate::worker::{Control, Worker, WorkerSetup};

pub use self::pipe_stack::{ConnId, PipeNet, PipeStack};

/// Worker rounds per [`Harness::run`] at most (a round with nothing to do ends it).
const ROUNDS: usize = 64;

/// Compile a bootstrap for [`Harness::new`] (targets compile theirs once).
pub fn snapshot(yaml: &str) -> Arc<Snapshot> {
    let loaded = sluice_config::load_str(yaml).expect("the harness's config loads");
    Arc::new(Snapshot::build(&loaded.bootstrap).expect("the harness's config compiles"))
}

/// One worker on in-memory pipes, driven round by round on a virtual clock.
pub struct Harness {
    pub net: PipeNet,
    worker: Worker<PipeStack>,
    events: Events,
    now: Instant,
    pub stats: Arc<Store>,
    control: Arc<Control>,
}

impl Harness {
    /// A worker serving `snapshot`, its listeners open.
    pub fn new(snapshot: &Arc<Snapshot>) -> Harness {
        let net = PipeNet::new();
        let mut stack = net.stack();
        let listen_sockets = crate::server::open_listeners(&mut stack, snapshot).expect("listeners open");
        let stats = Arc::new(Store::new(1));
        let control = Arc::new(Control::default());
        stats.filters.replace(snapshot.filter_counters());
        let setup = WorkerSetup {
            id: 0,
            stack,
            snapshot: Arc::clone(snapshot),
            listen_sockets,
            stats: Arc::clone(&stats),
            control: Arc::clone(&control),
            drain_time: Duration::from_secs(5),
        };
        let worker = Worker::new(setup).expect("worker");
        Harness { net, worker, events: Events::with_capacity(256), now: Instant::now(), stats, control }
    }

    /// Worker rounds until one finds nothing to do (at most [`ROUNDS`]); `origin` plays
    /// the other ends of the connections between rounds.
    pub fn run(&mut self, origin: &mut dyn FnMut(&PipeNet)) {
        for _ in 0..ROUNDS {
            origin(&self.net);
            let now = self.now;
            let done = self.worker.turn_with_clock(&mut self.events, &move || now).expect("the worker turns");
            assert!(done.is_none(), "the worker stopped");
            if self.events.is_empty() && !self.worker.has_ready_work() {
                origin(&self.net);
                let now = self.now;
                self.worker.turn_with_clock(&mut self.events, &move || now).expect("the worker turns");
                if self.events.is_empty() && !self.worker.has_ready_work() {
                    return;
                }
            }
        }
    }

    /// A new client still gets its answer (`GET /direct`, which `origin` serves).
    pub fn still_serves(&mut self, origin: &mut dyn FnMut(&PipeNet)) {
        let c = self.net.connect(listener(80)).expect("the listener still accepts");
        self.net.write(c, b"GET /direct HTTP/1.1\r\nhost: x\r\n\r\n");
        let mut got = Vec::new();
        for _ in 0..4 {
            self.run(origin);
            self.net.read(c, &mut got, usize::MAX);
            if got.ends_with(b"direct") {
                break;
            }
        }
        let status = wire::http1_status(&got);
        assert_eq!(status, Some(200), "the worker stopped serving: {:?}", String::from_utf8_lossy(&got));
    }

    /// Let `d` pass on the worker's clock.
    pub fn advance(&mut self, d: Duration) {
        self.now += d;
    }

    /// Open downstream connections, and the bytes of buffer the largest HTTP one holds.
    pub fn connections(&self) -> (usize, usize) {
        self.worker.connections()
    }
}

impl Drop for Harness {
    /// The worker stops as the binary's do (`Control::stop`: every connection aborted
    /// and its streams ended), not by being dropped in the middle of its work.
    fn drop(&mut self) {
        self.control.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let now = self.now;
        let _ = self.worker.turn_with_clock(&mut self.events, &move || now);
    }
}

/// The address of a harness listener on port `port` (every target listens on
/// 10.98.0.1).
pub fn listener(port: u16) -> SocketAddr {
    SocketAddr::from(([10, 98, 0, 1], port))
}

/// Split sizes for feeding input "as it arrives": a small xorshift stream from `seed`,
/// each size in `1..=max`.
#[derive(Debug, Clone)]
pub struct Splits {
    state: u32,
    max: usize,
}

impl Splits {
    pub fn new(seed: u8) -> Splits {
        // Sizes from 1 byte (every frame cut everywhere) to whole 4 KiB reads.
        let max = match seed & 3 {
            0 => 1 + usize::from(seed >> 2) % 8,
            1 => 64,
            2 => 512,
            _ => 4096,
        };
        Splits { state: 0x9e37_79b9 ^ u32::from(seed), max }
    }

    pub fn next_len(&mut self) -> usize {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 17;
        self.state ^= self.state << 5;
        1 + self.state as usize % self.max
    }
}

#[cfg(test)]
mod tests;
