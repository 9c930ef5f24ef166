//! Shared test helpers: a deterministic two-stack simulation on the in-memory datapath
//! ([`Sim`]), and [`Pair`], one harness over which the readiness-contract cases run
//! against both backends (kernel sockets on loopback, smol stacks in memory).

#![allow(dead_code)]

use std::io;
use std::net::SocketAddr;
use std::time::Duration as StdDuration;

use sluice_datapath::mem::{Faults, MemConfig, MemNetwork, MemPort};
use sluice_stack::kernel::KernelStack;
use sluice_stack::smol::{Clock, ManualClock, SmolConfig, SmolStack};
use sluice_stack::{Event, Events, SocketId, Stack, Token};
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{Ipv4Address, Ipv4Cidr};

pub type Smol = SmolStack<MemPort, ManualClock>;

pub const SERVER_IP: Ipv4Address = Ipv4Address::new(10, 99, 0, 1);
pub const CLIENT_IP: Ipv4Address = Ipv4Address::new(10, 99, 0, 2);

/// The default config for a stack on `port` at `ip`/24.
pub fn config(port: &MemPort, ip: Ipv4Address, any_ip: bool) -> SmolConfig {
    let mut c = SmolConfig::new(port.mac(), Ipv4Cidr::new(ip, 24));
    c.any_ip = any_ip;
    c.random_seed = u64::from(ip.to_bits());
    c
}

/// Read what is there now (no waiting) into `out`: `Ok(true)` at end of stream,
/// `Ok(false)` when drained, or the read's error.
pub fn read_available(stack: &mut Smol, id: SocketId, out: &mut Vec<u8>) -> io::Result<bool> {
    let mut buf = [0u8; 16 * 1024];
    loop {
        match stack.read(id, &mut buf) {
            Ok(0) => return Ok(true),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) => return Err(e),
        }
    }
}

/// Two smol stacks on one in-memory network, driven in one thread by a manual clock:
/// the server (10.99.0.1, any_ip) and the client (10.99.0.2).
pub struct Sim {
    pub clock: ManualClock,
    pub net: MemNetwork,
    pub server: Smol,
    pub client: Smol,
    pub server_events: Vec<Event>,
    pub client_events: Vec<Event>,
    scratch: Events,
}

impl Sim {
    pub fn new(seed: u64, server_faults: Faults, client_faults: Faults) -> Sim {
        Sim::with(seed, server_faults, client_faults, |_| {}, |_| {})
    }

    /// A simulation whose stack configs are adjusted by `server_cfg` and `client_cfg`.
    pub fn with(
        seed: u64,
        server_faults: Faults,
        client_faults: Faults,
        server_cfg: impl FnOnce(&mut SmolConfig),
        client_cfg: impl FnOnce(&mut SmolConfig),
    ) -> Sim {
        let net = MemNetwork::new(MemConfig { seed, ..MemConfig::default() });
        let sp = net.attach(server_faults).unwrap();
        let cp = net.attach(client_faults).unwrap();
        let clock = ManualClock::new(Instant::from_secs(1));
        let mut sc = config(&sp, SERVER_IP, true);
        server_cfg(&mut sc);
        let mut cc = config(&cp, CLIENT_IP, false);
        client_cfg(&mut cc);
        Sim {
            server: SmolStack::with_clock(sp, sc, clock.clone()).unwrap(),
            client: SmolStack::with_clock(cp, cc, clock.clone()).unwrap(),
            clock,
            net,
            server_events: Vec::new(),
            client_events: Vec::new(),
            scratch: Events::with_capacity(1024),
        }
    }

    pub fn now(&self) -> Instant {
        self.clock.now()
    }

    /// Poll both stacks once at the current time. Then, when neither has work now and no
    /// frame is due, move the clock to the earliest deadline. False when nothing can
    /// ever happen again (no deadline, nothing on the wire).
    pub fn step(&mut self) -> bool {
        self.step_within(None)
    }

    /// [`Sim::step`], never moving the clock past `cap`.
    pub fn step_within(&mut self, cap: Option<Instant>) -> bool {
        self.server.poll(&mut self.scratch, Some(StdDuration::ZERO)).unwrap();
        self.server_events.extend(self.scratch.iter().copied());
        self.client.poll(&mut self.scratch, Some(StdDuration::ZERO)).unwrap();
        self.client_events.extend(self.scratch.iter().copied());
        let now = self.clock.now();
        let next = [self.server.next_deadline(), self.client.next_deadline(), self.net.next_delivery()]
            .into_iter()
            .flatten()
            .min();
        match next {
            Some(t) if t <= now => true,
            Some(t) => match cap {
                Some(cap) if t > cap => {
                    self.clock.set(cap.max(now + Duration::from_micros(1)));
                    true
                }
                _ => {
                    self.clock.set(t);
                    true
                }
            },
            None => false,
        }
    }

    /// Step until `done` holds (checked after every step), for at most `limit` of
    /// simulated time. Returns whether `done` held.
    pub fn run_until(&mut self, limit: Duration, mut done: impl FnMut(&mut Sim) -> bool) -> bool {
        let end = self.clock.now() + limit;
        for _ in 0..50_000_000u64 {
            if done(self) {
                return true;
            }
            if self.clock.now() > end {
                return false;
            }
            if !self.step_within(Some(end + Duration::from_micros(1))) {
                return done(self);
            }
        }
        panic!("simulation did not settle");
    }

    /// Run until both stacks are idle (no deadline, nothing in flight) or `limit` passes.
    pub fn settle(&mut self, limit: Duration) {
        let end = self.clock.now() + limit;
        while self.clock.now() < end && self.step_within(Some(end)) {}
    }
}

/// One of the two stacks of a [`Pair`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Server,
    Client,
}

/// Two stacks that can reach each other, for contract cases that run on both backends.
pub trait Pair {
    type S: Stack;
    fn stack(&mut self, side: Side) -> &mut Self::S;
    /// Let both stacks run a little; their events land in the pending lists.
    fn turn(&mut self);
    fn pending(&mut self, side: Side) -> &mut Vec<Event>;
    /// An address the server can listen on (port 0: any free port).
    fn listen_addr(&self) -> SocketAddr;
    /// A server address where nobody listens.
    fn closed_addr(&mut self) -> SocketAddr;
    /// Turns to give up after while waiting for something.
    fn patience(&self) -> usize;
}

/// Kernel sockets on loopback: two `KernelStack`s, each with its own epoll.
pub struct KernelPair {
    server: KernelStack,
    client: KernelStack,
    server_events: Vec<Event>,
    client_events: Vec<Event>,
    scratch: Events,
}

impl KernelPair {
    pub fn new() -> KernelPair {
        KernelPair {
            server: KernelStack::new().unwrap(),
            client: KernelStack::new().unwrap(),
            server_events: Vec::new(),
            client_events: Vec::new(),
            scratch: Events::with_capacity(256),
        }
    }
}

impl Pair for KernelPair {
    type S = KernelStack;

    fn stack(&mut self, side: Side) -> &mut KernelStack {
        match side {
            Side::Server => &mut self.server,
            Side::Client => &mut self.client,
        }
    }

    fn turn(&mut self) {
        let t = Some(StdDuration::from_millis(1));
        self.server.poll(&mut self.scratch, t).unwrap();
        self.server_events.extend(self.scratch.iter().copied());
        self.client.poll(&mut self.scratch, t).unwrap();
        self.client_events.extend(self.scratch.iter().copied());
    }

    fn pending(&mut self, side: Side) -> &mut Vec<Event> {
        match side {
            Side::Server => &mut self.server_events,
            Side::Client => &mut self.client_events,
        }
    }

    fn listen_addr(&self) -> SocketAddr {
        "127.0.0.1:0".parse().unwrap()
    }

    fn closed_addr(&mut self) -> SocketAddr {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    }

    fn patience(&self) -> usize {
        3000
    }
}

/// Smol stacks on the in-memory datapath, on a manual clock.
pub struct SmolPair {
    pub sim: Sim,
}

impl SmolPair {
    pub fn new() -> SmolPair {
        SmolPair { sim: Sim::new(1, Faults::NONE, Faults::NONE) }
    }
}

impl Pair for SmolPair {
    type S = Smol;

    fn stack(&mut self, side: Side) -> &mut Smol {
        match side {
            Side::Server => &mut self.sim.server,
            Side::Client => &mut self.sim.client,
        }
    }

    fn turn(&mut self) {
        self.sim.step();
    }

    fn pending(&mut self, side: Side) -> &mut Vec<Event> {
        match side {
            Side::Server => &mut self.sim.server_events,
            Side::Client => &mut self.sim.client_events,
        }
    }

    fn listen_addr(&self) -> SocketAddr {
        SocketAddr::from((SERVER_IP, 0))
    }

    fn closed_addr(&mut self) -> SocketAddr {
        SocketAddr::from((SERVER_IP, 9))
    }

    fn patience(&self) -> usize {
        100_000
    }
}

/// Wait for the next event for `token` on `side` (events for other tokens stay pending).
pub fn wait_for<P: Pair>(p: &mut P, side: Side, token: Token) -> Event {
    for _ in 0..p.patience() {
        if let Some(i) = p.pending(side).iter().position(|e| e.token() == token) {
            return p.pending(side).remove(i);
        }
        p.turn();
    }
    panic!("no event for {token:?} on {side:?}");
}

/// Run `turns` turns and return how many events `token` got meanwhile (consumed).
pub fn count_events<P: Pair>(p: &mut P, side: Side, token: Token, turns: usize) -> usize {
    for _ in 0..turns {
        p.turn();
    }
    let pending = p.pending(side);
    let n = pending.iter().filter(|e| e.token() == token).count();
    pending.retain(|e| e.token() != token);
    n
}

/// Turn until `f` returns `Some`.
pub fn until<P: Pair, T>(p: &mut P, mut f: impl FnMut(&mut P) -> Option<T>) -> T {
    for _ in 0..p.patience() {
        if let Some(v) = f(p) {
            return v;
        }
        p.turn();
    }
    panic!("condition never held");
}

/// Read from `socket` until end of stream, turning while it would block.
pub fn read_to_end<P: Pair>(p: &mut P, side: Side, socket: SocketId) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    for _ in 0..p.patience() {
        match p.stack(side).read(socket, &mut buf) {
            Ok(0) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => p.turn(),
            Err(e) => panic!("read: {e}"),
        }
    }
    panic!("no end of stream");
}

/// Read exactly `n` bytes from `socket`, turning while it would block.
pub fn read_exact<P: Pair>(p: &mut P, side: Side, socket: SocketId, n: usize) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = vec![0u8; n.max(1)];
    for _ in 0..p.patience() {
        if got.len() == n {
            return got;
        }
        match p.stack(side).read(socket, &mut buf[..n - got.len()]) {
            Ok(0) => panic!("end of stream after {} of {n} bytes", got.len()),
            Ok(k) => got.extend_from_slice(&buf[..k]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => p.turn(),
            Err(e) => panic!("read: {e}"),
        }
    }
    panic!("only {} of {n} bytes", got.len());
}

/// An established connection: the listener, the client end and the accepted end.
pub struct Established {
    pub listener: SocketId,
    pub addr: SocketAddr,
    pub client: SocketId,
    pub server: SocketId,
}

/// Listen, connect and accept; nothing is left registered.
pub fn establish<P: Pair>(p: &mut P) -> Established {
    let listen_at = p.listen_addr();
    let listener = p.stack(Side::Server).listen(listen_at, &Default::default()).unwrap();
    let addr = p.stack(Side::Server).local_addr(listener).unwrap();
    let client = p.stack(Side::Client).connect(addr).unwrap();
    let server = until(p, |p| p.stack(Side::Server).accept(listener).ok()).socket;
    until(p, |p| p.stack(Side::Client).connect_result(client).ok());
    Established { listener, addr, client, server }
}

/// A deterministic byte pattern.
pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u32).wrapping_mul(2_654_435_761).to_be_bytes()[0] ^ seed).collect()
}
