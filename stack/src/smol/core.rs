//! The engine of a smol stack: its tables, and the egress, timer and readiness passes of
//! a poll round.
//!
//! Work is driven by three lists, never by a scan of all connections: the *dirty* list
//! (connections that had ingress, an application operation or a due timer; each is
//! visited once per round: egress, next deadline, lifecycle, readiness edges), the timer
//! heap, and the *ready* queue of registrations with events to report. A visit polls the
//! interface with the connection's own one-socket set, so its cost does not depend on
//! how many other connections exist.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use smoltcp::iface::{Interface, PollResult, SocketSet};
use smoltcp::phy::{Device, DeviceCapabilities};
use smoltcp::socket::tcp::{self, State};
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::Ipv4Address;

use super::buffers::Buffers;
use super::config::SmolConfig;
use super::conn::{handle, mask, Conn, Phase};
use super::device::Egress;
use super::flow::{Flow, FlowKey};
use super::listener::Listener;
use super::ports::Ports;
use super::redirect::Redirect;
use super::slab::{Key, Slab};
use super::stats::SmolStats;
use super::steer::FlowSteering;
use super::time_wait::TimeWait;
use super::timers::Timers;
use crate::socket::SocketTable;
use crate::{Event, Events, Token};

/// How long a CLOSED connection may keep trying to send its final RST (smoltcp retries
/// neighbour discovery once a second: three tries, as Linux's ARP resolution).
pub(crate) const UNDELIVERED_RST_LIMIT: Duration = Duration::from_secs(3);

/// What an application's socket id stands for.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Handle {
    Conn(Key),
    Listener(Key),
}

/// A registration with events to report.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Ready {
    Conn(Key),
    Listener(Key),
}

/// Why a connection changed state.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Cause {
    Ingress { rst: bool },
    Timer,
}

pub(crate) struct Core {
    pub iface: Interface,
    pub cfg: SmolConfig,
    pub caps: DeviceCapabilities,
    pub conns: Slab<Conn>,
    pub listeners: Slab<Listener>,
    pub users: SocketTable<Handle>,
    pub flows: HashMap<FlowKey, Flow>,
    pub listen_map: HashMap<(Ipv4Address, u16), Key>,
    pub ports: Ports,
    pub timers: Timers,
    pub time_wait: TimeWait,
    pub dirty: Vec<Key>,
    scratch: Vec<Key>,
    pub ready: VecDeque<Ready>,
    pub neighbor_wait: Vec<Key>,
    /// When this stack last asked for each neighbour (see `neighbor::solicit`).
    pub solicited: HashMap<Ipv4Address, Instant>,
    pub cache: Vec<SocketSet<'static>>,
    /// Receive and send storage, lent while data needs it.
    pub buffers: Buffers,
    pub empty: SocketSet<'static>,
    pub wakers: Vec<(Token, Arc<AtomicBool>)>,
    pub stats: SmolStats,
    pub more_ingress: bool,
    /// Flow steering between cores (multi-queue xdp mode), when set.
    pub steer: Option<FlowSteering>,
    /// Intercepted destinations without a listener of their own.
    pub redirect: Option<Redirect>,
}

impl Core {
    pub fn new(iface: Interface, cfg: SmolConfig, caps: DeviceCapabilities) -> Core {
        let ports = Ports::new(cfg.ephemeral_ports, cfg.random_seed);
        let buffers = Buffers::new(cfg.rx_buffer, cfg.tx_buffer, cfg.buffer_memory, cfg.buffer_keep);
        Core {
            iface,
            cfg,
            caps,
            conns: Slab::default(),
            listeners: Slab::default(),
            users: SocketTable::default(),
            flows: HashMap::new(),
            listen_map: HashMap::new(),
            ports,
            timers: Timers::default(),
            time_wait: TimeWait::default(),
            dirty: Vec::new(),
            scratch: Vec::new(),
            ready: VecDeque::new(),
            neighbor_wait: Vec::new(),
            solicited: HashMap::new(),
            cache: Vec::new(),
            buffers,
            empty: SocketSet::new(Vec::new()),
            wakers: Vec::new(),
            stats: SmolStats::default(),
            more_ingress: false,
            steer: None,
            redirect: None,
        }
    }

    /// A closed socket with this stack's options, from the cache or freshly allocated.
    pub fn take_socket(&mut self) -> SocketSet<'static> {
        let mut set = match self.cache.pop() {
            Some(mut set) => {
                // Re-adding resets smoltcp's per-socket metadata (neighbour back-off).
                let socket = set.remove(handle());
                set.add(socket);
                set
            }
            None => {
                let mut set = SocketSet::new(Vec::with_capacity(1));
                set.add(self.buffers.socket());
                set
            }
        };
        let s = set.get_mut::<tcp::Socket>(handle());
        s.set_nagle_enabled(false);
        s.set_ack_delay(self.cfg.ack_delay);
        s.set_keep_alive(self.cfg.keep_alive);
        s.set_timeout(None);
        s.set_hop_limit(None);
        s.set_congestion_control(self.cfg.congestion);
        set
    }

    /// Keep a socket for reuse (or free it when the cache is full), without storage.
    pub fn recycle(&mut self, mut set: SocketSet<'static>) {
        let s = set.get_mut::<tcp::Socket>(handle());
        if s.is_open() {
            s.abort();
        }
        if self.buffers.reclaim(s) {
            self.wake_buffer_waiters();
        }
        if self.cache.len() < self.cfg.socket_cache {
            self.cache.push(set);
        }
    }

    /// Take back the storage a connection no longer needs. An orphan's unread bytes
    /// have no reader any more: they are discarded.
    fn shed(&mut self, key: Key) {
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        let freed =
            if c.phase == Phase::Orphan { self.buffers.reclaim(c.sock_mut()) } else { self.buffers.shed(c.sock_mut()) };
        if freed {
            self.wake_buffer_waiters();
        }
    }

    /// Storage came back: let the writers that found none try again.
    fn wake_buffer_waiters(&mut self) {
        for key in std::mem::take(&mut self.buffers.waiters) {
            if let Some(c) = self.conns.get_mut(key) {
                c.buffer_waiting = false;
            }
            self.mark_dirty(key);
        }
    }

    pub fn mark_dirty(&mut self, key: Key) {
        if let Some(c) = self.conns.get_mut(key) {
            if !c.dirty {
                c.dirty = true;
                self.dirty.push(key);
            }
        }
    }

    pub fn arm(&mut self, key: Key, at: Instant) {
        if let Some(c) = self.conns.get_mut(key) {
            self.timers.arm(key, at, &mut c.armed);
        }
    }

    /// Queue edge `flags` for a connection's registration.
    pub fn emit_conn(&mut self, key: Key, flags: u8) {
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        if flags == 0 || c.reg.is_none() {
            return;
        }
        c.pending |= flags;
        if !c.queued {
            c.queued = true;
            self.ready.push_back(Ready::Conn(key));
        }
    }

    pub fn emit_listener(&mut self, key: Key, flags: u8) {
        let Some(l) = self.listeners.get_mut(key) else {
            return;
        };
        if flags == 0 || l.reg.is_none() {
            return;
        }
        l.pending_events |= flags;
        if !l.queued {
            l.queued = true;
            self.ready.push_back(Ready::Listener(key));
        }
    }

    /// Record what a state change means: the error it reports, a finished handshake.
    pub fn transition(&mut self, key: Key, before: State, after: State, cause: Cause) {
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        if after == State::Closed && c.error.is_none() && !c.aborted {
            c.error = match cause {
                Cause::Ingress { rst: true } if before == State::SynSent => Some(io::ErrorKind::ConnectionRefused),
                // Both FINs were exchanged and acknowledged: the streams are complete and
                // a late reset (the peer, already CLOSED, answering a duplicate segment)
                // takes nothing away (RFC 1337; Linux's socket is CLOSED by then and
                // ignores it). The reader still gets its unread bytes, then end of stream.
                Cause::Ingress { rst: true } if before == State::TimeWait => None,
                Cause::Ingress { rst: true } => Some(io::ErrorKind::ConnectionReset),
                // LAST-ACK acknowledged: a clean end.
                Cause::Ingress { rst: false } => None,
                Cause::Timer if before == State::TimeWait => None,
                Cause::Timer => Some(io::ErrorKind::TimedOut),
            };
        }
        let handshaken = !matches!(after, State::Closed | State::Listen | State::SynSent | State::SynReceived);
        if handshaken && !c.established {
            c.established = true;
            if c.phase != Phase::Orphan {
                c.sock_mut().set_timeout(None);
            }
            if let Phase::Embryonic(l) = c.phase {
                self.promote(key, l);
            }
        }
        if after == State::Listen {
            // RST during the handshake: smoltcp put the socket back to LISTEN.
            self.discard_embryo(key);
        }
    }

    /// A handshake finished: queue the connection on its listener.
    fn promote(&mut self, key: Key, listener: Key) {
        let Some(l) = self.listeners.get_mut(listener) else {
            // The listener closed meanwhile: refuse the connection.
            if let Some(c) = self.conns.get_mut(key) {
                c.phase = Phase::Orphan;
                c.aborted = true;
                c.sock_mut().abort();
            }
            return;
        };
        l.queue.push_back(key);
        if let Some(c) = self.conns.get_mut(key) {
            c.phase = Phase::Queued(listener);
        }
        self.emit_listener(listener, Event::READABLE);
    }

    /// An embryonic connection fell back to LISTEN (or died): give its socket back.
    fn discard_embryo(&mut self, key: Key) {
        let Some(Phase::Embryonic(l)) = self.conns.get(key).map(|c| c.phase) else {
            return;
        };
        let Some(conn) = self.conns.remove(key) else {
            return;
        };
        self.forget_flow(key, &conn);
        match self.listeners.get_mut(l) {
            Some(listener) => {
                listener.pending = listener.pending.saturating_sub(1);
                // A redirected SYN's socket listens on the original port, not the
                // listener's: it never joins the pool.
                let own_port = conn.flow.local_port == listener.addr.port();
                if own_port
                    && conn.state() == State::Listen
                    && listener.pool.len() < listener.pool_target(self.cfg.listen_pool)
                {
                    // Back to LISTEN (smoltcp emptied its buffers): no storage in pools.
                    let mut set = conn.set;
                    if self.buffers.shed(set.get_mut::<tcp::Socket>(handle())) {
                        self.wake_buffer_waiters();
                    }
                    let Some(listener) = self.listeners.get_mut(l) else {
                        return self.recycle(set);
                    };
                    listener.pool.push(set);
                } else {
                    self.recycle(conn.set);
                }
            }
            None => self.recycle(conn.set),
        }
    }

    fn forget_flow(&mut self, key: Key, conn: &Conn) {
        if self.flows.get(&conn.flow) == Some(&Flow::Conn(key)) {
            self.flows.remove(&conn.flow);
        }
    }

    /// Drop a connection and recycle its socket.
    pub fn free_conn(&mut self, key: Key) {
        if let Some(conn) = self.conns.remove(key) {
            self.forget_flow(key, &conn);
            self.recycle(conn.set);
        }
    }

    /// Replace a connection in TIME-WAIT by a record (see `time_wait`).
    pub fn enter_time_wait(&mut self, key: Key, now: Instant) {
        let Some(conn) = self.conns.remove(key) else {
            return;
        };
        let expires = now + self.cfg.time_wait;
        self.stats.time_wait_evicted +=
            self.time_wait.insert(&mut self.flows, conn.flow, expires, self.cfg.max_time_wait);
        self.recycle(conn.set);
    }

    /// After a visit: return drained storage, release what is finished, report what
    /// changed.
    fn settle(&mut self, key: Key, now: Instant) {
        self.shed(key);
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        match c.phase {
            Phase::Orphan if c.is_quiet() => self.free_conn(key),
            Phase::Orphan if c.state() == State::TimeWait => self.enter_time_wait(key, now),
            Phase::Embryonic(_) if c.is_quiet() => self.discard_embryo(key),
            // CLOSED with its RST unsent: smoltcp retries for as long as the peer has no
            // route or no ARP answer, so a spoofed SYN's handshake or a vanished host's
            // connection would be held for ever. Give up as Linux drops the packets
            // queued for a neighbour that never answers.
            Phase::Orphan | Phase::Embryonic(_) if c.state() == State::Closed => {
                let since = *c.closed_at.get_or_insert(now);
                if now >= since + UNDELIVERED_RST_LIMIT {
                    self.stats.rst_undelivered += 1;
                    if matches!(c.phase, Phase::Embryonic(_)) {
                        self.discard_embryo(key);
                    } else {
                        self.free_conn(key);
                    }
                }
            }
            Phase::User(_) => {
                let edge = c.refresh();
                self.emit_conn(key, edge);
            }
            _ => {}
        }
    }

    /// Pop due timers onto the dirty list.
    pub fn expire_timers(&mut self, now: Instant) {
        while let Some((key, at)) = self.timers.pop_due(now) {
            if let Some(c) = self.conns.get_mut(key) {
                if c.armed == Some(at) {
                    c.armed = None;
                    self.mark_dirty(key);
                }
            }
        }
        if self.timers.needs_compaction(self.conns.len()) {
            let live = self.conns.iter().filter_map(|(k, c)| c.armed.map(|at| (k, at)));
            self.timers.rebuild(live);
        }
        self.time_wait.expire(now, &mut self.flows);
    }

    /// A neighbour (ARP) answer arrived: retry the connections that waited for one.
    pub fn wake_neighbor_waiters(&mut self) {
        while let Some(key) = self.neighbor_wait.pop() {
            if let Some(c) = self.conns.get_mut(key) {
                c.neighbor_waiting = false;
            }
            self.mark_dirty(key);
        }
    }

    /// Visit every dirty connection once.
    pub fn egress<D: Device>(&mut self, dev: &mut D, now: Instant) {
        let mut batch = std::mem::take(&mut self.scratch);
        std::mem::swap(&mut batch, &mut self.dirty);
        for key in batch.drain(..) {
            self.visit(dev, key, now);
        }
        self.scratch = batch;
    }

    fn visit<D: Device>(&mut self, dev: &mut D, key: Key, now: Instant) {
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        c.dirty = false;
        self.stats.visits += 1;
        let before = c.state();
        let wants = self.iface.poll_at(now, &c.set).is_some_and(|t| t <= now);
        let mut eg = Egress::new(dev, &self.caps);
        if wants {
            while self.iface.poll_egress(now, &mut eg, &mut c.set) == PollResult::SocketStateChanged {}
        }
        let count = eg.count;
        let after = c.state();
        let next = self.iface.poll_at(now, &c.set);
        self.stats.tx_frames += u64::from(count.ip_frames);
        if before != after {
            self.transition(key, before, after, Cause::Timer);
        }
        match next {
            Some(t) if t <= now && count.exhausted => self.mark_dirty(key),
            // Nothing more went out although smoltcp says "now": back off a little.
            Some(t) if t <= now => self.arm(key, now + Duration::from_millis(1)),
            Some(t) => self.arm(key, t),
            // No deadline left: whatever the heap still holds for it is stale.
            None => {
                if let Some(c) = self.conns.get_mut(key) {
                    c.armed = None;
                }
            }
        }
        if wants && count.ip_frames == 0 && !count.exhausted && after != State::Closed {
            // Nothing sent although due: waiting for ARP. Ask for the neighbour (smoltcp
            // asks once a second per interface, which one silent neighbour can take for
            // ever); retried when an answer comes.
            if let Some(c) = self.conns.get_mut(key) {
                let remote = c.flow.remote;
                if !c.neighbor_waiting {
                    c.neighbor_waiting = true;
                    self.neighbor_wait.push(key);
                }
                self.solicit(dev, remote, now);
            }
        }
        self.settle(key, now);
    }

    /// Move pending events into `events` (wakers first), up to its capacity.
    pub fn collect(&mut self, events: &mut Events) {
        for (token, flag) in &self.wakers {
            if events.is_full() {
                return;
            }
            if flag.swap(false, Ordering::AcqRel) {
                events.push(Event::new(*token, Event::READABLE));
            }
        }
        while !events.is_full() {
            let Some(ready) = self.ready.pop_front() else {
                break;
            };
            let (reg, flags) = match ready {
                Ready::Conn(key) => match self.conns.get_mut(key) {
                    Some(c) => {
                        c.queued = false;
                        (c.reg, std::mem::take(&mut c.pending))
                    }
                    None => continue,
                },
                Ready::Listener(key) => match self.listeners.get_mut(key) {
                    Some(l) => {
                        l.queued = false;
                        (l.reg, std::mem::take(&mut l.pending_events))
                    }
                    None => continue,
                },
            };
            if let Some((token, interest)) = reg {
                let flags = mask(flags, interest);
                if flags != 0 {
                    events.push(Event::new(token, flags));
                }
            }
        }
    }

    /// How long the stack may sleep before it has work (`Some(ZERO)`: none at all).
    /// Stale timer entries at the top of the heap are dropped first, so they do not cut
    /// a sleep short.
    pub fn next_wakeup(&mut self, now: Instant) -> Option<Duration> {
        while let Some((key, at)) = self.timers.peek() {
            match self.conns.get(key) {
                Some(c) if c.armed == Some(at) => break,
                _ => {
                    self.timers.pop();
                }
            }
        }
        let busy = !self.ready.is_empty()
            || !self.dirty.is_empty()
            || self.more_ingress
            || self.steer.as_ref().is_some_and(FlowSteering::has_pending)
            || self.wakers.iter().any(|(_, f)| f.load(Ordering::Acquire));
        if busy {
            return Some(Duration::ZERO);
        }
        self.timers.next().map(|t| if t <= now { Duration::ZERO } else { t - now })
    }

    pub fn snapshot_stats(&self) -> SmolStats {
        let mut s = self.stats;
        s.connections = self.conns.len() as u64;
        s.time_wait = self.time_wait.len() as u64;
        let pooled: usize = self.listeners.iter().map(|(_, l)| l.pool.len()).sum();
        s.idle_sockets = (self.cache.len() + pooled) as u64;
        s.buffer_bytes = self.buffers.attached as u64;
        s.idle_buffers = self.buffers.idle() as u64;
        s
    }
}
