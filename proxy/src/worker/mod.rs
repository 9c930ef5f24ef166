//! A worker: one event loop on one core, sharing nothing with the others.
//!
//! Each worker owns its stack (its epoll, or its userspace TCP/IP stack), its listening
//! sockets (one per listener, `SO_REUSEPORT`), its connections, its timers, its
//! load-balancer state, its upstream pools and its stats blocks. It reads config
//! snapshots through `Arc`s and the control flags through atomics. One loop iteration:
//! poll (bounded by the earliest timer, or not at all when connections still have
//! budgeted work), serve the events, give budget-limited connections another round,
//! fire due timers, adopt a newly published config.

pub mod background;
pub mod drain;
mod generation;
mod upstream_slots;

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use sluice_stack::{Events, Interest, SocketId, Stack, Token};

use crate::access_log::AccessLogBuffer;
use crate::conn_table::ConnTable;
use crate::filter_chain::Selected;
use crate::http::async_client::detached::decode_detached_key;
use crate::http::conn_manager::{Accepted, HttpConnection};
use crate::http::date::DateCache;
use crate::listener::active_socket::{ActiveSocket, Outcome};
use crate::listener::manager::{NetworkFilter, Snapshot};
use crate::overload::OverloadState;
use crate::rng::Rng;
use crate::stats::{HttpStats, Store, TcpProxyStats};
use crate::tcp_proxy::{CloseReason, Status, TcpProxySession};
use crate::timer::{TimerKey, Timers};
use crate::transport::TransportSocket;
use crate::worker_ctx::{
    decode_pool_timer_key, decode_pool_token, token, Ctx, DOWNSTREAM_SUB, MAX_GENERATIONS, POOL_SUB, POOL_TIMER_BIT,
};
use sluice_config::overload::ActionKind;

use self::drain::{Drain, DrainStrategy};
use self::generation::{listener_unchanged, Generation};

/// Token of the worker's waker.
const WAKER: Token = Token(usize::MAX);
/// Tokens at or above this are listeners (`LISTENER_BASE + listener index`).
const LISTENER_BASE: usize = usize::MAX / 2;
/// Accepts per listener per round before other work gets a turn (unless the listener
/// sets `max_connections_to_accept_per_socket_event`).
const ACCEPT_BUDGET: usize = 64;
/// At a drain, the most connections taken from a listener's backlog before it closes
/// (a backlog holds at most `somaxconn`, 4096 by default).
const DRAIN_BACKLOG_MAX: usize = 4096;
/// How soon a listener whose accept failed (out of descriptors: EMFILE, ENFILE,
/// ENOBUFS, ENOMEM) is tried again. Its backlog stays pending in the kernel and an
/// edge-triggered listener reports nothing new for it, so a timer must.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);
/// At most one accept-failure log line per listener per this period.
const ACCEPT_ERROR_LOG_PERIOD: Duration = Duration::from_secs(1);
/// Timer key of the accept retry (an index no connection and no pool slot uses).
const ACCEPT_RETRY_TIMER: TimerKey = TimerKey { index: POOL_TIMER_BIT - 1, generation: 0 };
/// How long a stopping worker keeps polling so that the resets of aborted connections
/// reach their peers (userspace stacks only; see [`Worker::linger`]).
const ABORT_LINGER: Duration = Duration::from_millis(100);
/// Poll step while lingering.
const LINGER_STEP: Duration = Duration::from_millis(5);

/// Flags and the config the main thread hands the workers.
#[derive(Debug, Default)]
pub struct Control {
    /// Stop accepting, finish open connections, then exit.
    pub draining: AtomicBool,
    /// Exit now (drain deadline passed or second signal).
    pub stop: AtomicBool,
    /// Close the listeners (admin `/drain_listeners`); keep serving open connections.
    pub listeners_drained: AtomicBool,
    /// With `listeners_drained`: also drain open HTTP connections (`?graceful`).
    pub graceful: AtomicBool,
    /// `--drain-strategy immediate` (else gradual).
    drain_immediate: AtomicBool,
    /// Admin `/healthcheck/fail` (until `/healthcheck/ok`): the health_check filter
    /// answers 503.
    pub health_check_failed: AtomicBool,
    /// The overload manager's action states and the global connection count.
    pub overload: Arc<OverloadState>,
    /// The config to serve (replaced on reload) and its version.
    snapshot: Mutex<Option<Arc<Snapshot>>>,
    version: AtomicU64,
    /// The latest runtime snapshot (adopted at the next loop boundary, no reload).
    pub runtime: Arc<crate::runtime::Published>,
}

impl Control {
    /// Control flags for workers under the overload manager's `overload` state.
    pub fn with_overload(overload: Arc<OverloadState>) -> Control {
        Control { overload, ..Control::default() }
    }

    /// `/drain_listeners`: stop accepting; with `graceful`, HTTP connections also get
    /// `connection: close` on their next response.
    pub fn drain_listeners(&self, graceful: bool) {
        if graceful {
            self.graceful.store(true, Ordering::Relaxed);
        }
        self.listeners_drained.store(true, Ordering::Relaxed);
    }

    /// Envoy's `--drain-strategy`, for every later drain.
    pub fn set_drain_strategy(&self, strategy: DrainStrategy) {
        self.drain_immediate.store(strategy == DrainStrategy::Immediate, Ordering::Relaxed);
    }

    fn drain_strategy(&self) -> DrainStrategy {
        if self.drain_immediate.load(Ordering::Relaxed) {
            DrainStrategy::Immediate
        } else {
            DrainStrategy::Gradual
        }
    }

    /// Publish a new config; workers adopt it on their next round (wake them).
    pub fn publish(&self, snapshot: Arc<Snapshot>) {
        *self.snapshot.lock().unwrap_or_else(|e| e.into_inner()) = Some(snapshot);
        self.version.fetch_add(1, Ordering::AcqRel);
    }

    fn published(&self) -> (u64, Option<Arc<Snapshot>>) {
        let version = self.version.load(Ordering::Acquire);
        (version, self.snapshot.lock().unwrap_or_else(|e| e.into_inner()).clone())
    }
}

/// What a worker was given at start.
pub struct WorkerSetup<S: Stack> {
    pub id: usize,
    pub stack: S,
    pub snapshot: Arc<Snapshot>,
    /// Listening sockets already opened on `stack`, by listener index.
    pub listen_sockets: Vec<Option<SocketId>>,
    pub stats: Arc<Store>,
    pub control: Arc<Control>,
    /// How long draining may take before open connections are cut.
    pub drain_time: Duration,
}

enum Conn {
    Pending(ActiveSocket),
    TcpProxy(TcpProxySession),
    Http(Box<HttpConnection>),
}

/// A connection and what it is bound to.
struct Entry {
    /// The generation whose config serves it.
    gen: u8,
    /// Index in that generation's snapshot of the listener that accepted it, and once
    /// its filter chain is chosen, of the listener that serves it (they differ after an
    /// original-destination hand-off).
    listener: usize,
    /// The filter chain serving it, once chosen (an RDS update finds its HCM by it).
    chain: Option<Selected>,
    conn: Conn,
}

pub struct Worker<S: Stack> {
    id: usize,
    stack: S,
    /// Live generations by slot; `current` serves new connections.
    generations: Vec<Option<Generation>>,
    current: u8,
    /// Listening sockets of the current generation, by listener index.
    listen_sockets: Vec<Option<SocketId>>,
    tcp_stats: HashMap<String, Arc<TcpProxyStats>>,
    http_stats: HashMap<String, Arc<HttpStats>>,
    date: DateCache,
    access_log: AccessLogBuffer,
    store: Arc<Store>,
    conns: ConnTable<Entry>,
    timers: Timers,
    ready: Vec<TimerKey>,
    ready_listeners: Vec<usize>,
    /// Reused buffer of due timers.
    due: Vec<(Instant, TimerKey)>,
    scratch: Box<[u8]>,
    rng: Rng,
    control: Arc<Control>,
    /// The config version adopted last.
    version: u64,
    /// The runtime snapshot in force and its version.
    runtime: Arc<crate::runtime::Snapshot>,
    runtime_version: u64,
    drain_time: Duration,
    drain_deadline: Option<Instant>,
    /// A drained worker's last tracing reports must be done by then (`background`).
    exit_flush_deadline: Option<Instant>,
    /// Stopping (second signal, `/quitquitquit`, drain time over): connections
    /// aborted, the tracing reports flushing (`background`).
    stopping: bool,
    /// The drain in progress (SIGTERM or `/drain_listeners?graceful`).
    drain: Option<Drain>,
    /// Listeners waiting to accept again: after a failed accept (until the retry
    /// timer), or while `stop_accepting_connections` holds.
    accept_blocked: Vec<usize>,
    accept_retry_at: Option<Instant>,
    /// The `reduce_timeouts` state the HTTP connections' armed idle timers were
    /// computed with.
    timer_scale: f32,
    /// Accept failures since the last log line, and when that line was written.
    accept_errors_unlogged: u64,
    accept_error_logged_at: Option<Instant>,
}

impl<S: Stack> Worker<S> {
    pub fn new(setup: WorkerSetup<S>) -> io::Result<Worker<S>> {
        let WorkerSetup { id, mut stack, snapshot, listen_sockets, stats, control, drain_time } = setup;
        for (i, s) in listen_sockets.iter().enumerate() {
            if let Some(s) = s {
                stack.register(*s, Token(LISTENER_BASE + i), Interest::READABLE)?;
            }
        }
        let mut generations: Vec<Option<Generation>> = (0..MAX_GENERATIONS).map(|_| None).collect();
        generations[0] = Some(Generation::new(0, snapshot, &stats, id));
        let version = control.version.load(Ordering::Acquire);
        let (runtime_version, runtime) = control.runtime.current();
        Ok(Worker {
            id,
            stack,
            generations,
            current: 0,
            listen_sockets,
            tcp_stats: HashMap::new(),
            http_stats: HashMap::new(),
            date: DateCache::default(),
            access_log: AccessLogBuffer::default(),
            store: stats,
            conns: ConnTable::default(),
            timers: Timers::new(),
            ready: Vec::new(),
            ready_listeners: Vec::new(),
            due: Vec::new(),
            scratch: vec![0u8; 64 * 1024].into_boxed_slice(),
            rng: Rng::from_entropy(id as u64),
            control,
            version,
            runtime,
            runtime_version,
            drain_time,
            drain_deadline: None,
            exit_flush_deadline: None,
            stopping: false,
            drain: None,
            accept_blocked: Vec::new(),
            accept_retry_at: None,
            timer_scale: 0.0,
            accept_errors_unlogged: 0,
            accept_error_logged_at: None,
        })
    }

    fn gen(&self, g: u8) -> &Generation {
        self.generations[g as usize].as_ref().expect("live generation")
    }

    fn current_snapshot(&self) -> Arc<Snapshot> {
        Arc::clone(&self.gen(self.current).snapshot)
    }

    fn tcp_stats_for(&mut self, prefix: &str) -> Arc<TcpProxyStats> {
        if let Some(s) = self.tcp_stats.get(prefix) {
            return Arc::clone(s);
        }
        let s = Arc::clone(&self.store.tcp.scope(prefix)[self.id]);
        self.tcp_stats.insert(prefix.to_string(), Arc::clone(&s));
        s
    }

    fn http_stats_for(&mut self, prefix: &str) -> Arc<HttpStats> {
        if let Some(s) = self.http_stats.get(prefix) {
            return Arc::clone(s);
        }
        let s = Arc::clone(&self.store.http.scope(prefix)[self.id]);
        self.http_stats.insert(prefix.to_string(), Arc::clone(&s));
        s
    }

    /// A handle that wakes this worker's poll from another thread.
    pub fn waker(&mut self) -> io::Result<Arc<dyn sluice_stack::Wake>> {
        self.stack.waker(WAKER)
    }

    /// Run until drained or stopped.
    pub fn run(mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        loop {
            if let Some(deadline) = self.turn(&mut events)? {
                self.access_log.flush();
                return self.linger(&mut events, deadline);
            }
        }
    }

    /// One round of the event loop. `Some(deadline)`: the worker is done and lingers
    /// until `deadline` (see [`Worker::linger`]).
    fn turn(&mut self, events: &mut Events) -> io::Result<Option<Instant>> {
        self.turn_with_clock(events, &Instant::now)
    }

    /// [`Worker::turn`] reading the time from `clock` (the fuzzing harness runs the
    /// worker on a virtual clock).
    pub(crate) fn turn_with_clock(
        &mut self,
        events: &mut Events,
        clock: &dyn Fn() -> Instant,
    ) -> io::Result<Option<Instant>> {
        let now = clock();
        let mut timeout = self.timers.timeout(now);
        if !self.ready.is_empty() || !self.ready_listeners.is_empty() {
            timeout = Some(Duration::ZERO);
        }
        // A drained worker flushing its spans waits for them, not for the drain time.
        if let Some(d) = self.exit_flush_deadline.or(self.drain_deadline) {
            let left = d.saturating_duration_since(now);
            timeout = Some(timeout.map_or(left, |t| t.min(left)));
        }
        self.stack.poll(events, timeout)?;
        // A runtime snapshot published before this poll returned applies to every
        // event of this round (no reload: just the new values).
        if self.control.runtime.version() != self.runtime_version {
            (self.runtime_version, self.runtime) = self.control.runtime.current();
        }
        let now = clock();
        for ev in events.iter() {
            let t = ev.token();
            // The peer's FIN or RST is in: no further event will come for it.
            let peer_closed = ev.is_read_closed() || ev.is_error();
            if t == WAKER {
                continue;
            } else if t.0 >= LISTENER_BASE {
                self.accept(t.0 - LISTENER_BASE, now);
            } else if t.0 & 3 == POOL_SUB {
                let (gen, index) = decode_pool_token(t);
                self.on_pool_event(gen, index, peer_closed, now);
            } else {
                self.on_conn_event(t.0 >> 2, t.0 & 3, peer_closed, now);
            }
        }
        self.resume_accepting(now);
        self.rescale_timers(now);
        self.run_ready(now);
        self.run_timers(now);
        self.end_batch();
        self.access_log.flush();
        if self.control.version.load(Ordering::Acquire) != self.version {
            self.adopt_published(now);
        }

        self.retire_generations(now);
        if self.stopping || self.control.stop.load(Ordering::Relaxed) {
            return Ok(self.stop(clock));
        }
        if self.control.listeners_drained.load(Ordering::Relaxed) && self.listen_sockets.iter().any(Option::is_some) {
            self.close_listeners();
            if self.control.graceful.load(Ordering::Relaxed) {
                self.close_old_idle_slots(now);
                self.start_connection_drains(now);
            }
        }
        if self.control.draining.load(Ordering::Relaxed) {
            if self.drain_deadline.is_none() {
                self.start_drain(now);
            }
            if self.conns.is_empty() {
                if !self.flush_before_exit(now) {
                    return Ok(None);
                }
                tracing::debug!(worker = self.id, "drained");
                return Ok(Some(self.drain_deadline.unwrap_or(now).max(now + ABORT_LINGER)));
            }
            if self.drain_deadline.is_some_and(|d| clock() >= d) {
                tracing::warn!(worker = self.id, open = self.conns.len(), "drain time over: closing open connections");
                return Ok(self.stop(clock));
            }
        }
        Ok(None)
    }

    /// Open connections, and the bytes of buffer the largest HTTP connection among
    /// them holds (the fuzzing harness's memory bound).
    pub(crate) fn connections(&self) -> (usize, usize) {
        let mut largest = 0;
        for k in self.conns.keys() {
            if let Some(Entry { conn: Conn::Http(h), .. }) = self.conns.get(k) {
                largest = largest.max(h.buffered_capacity());
            }
        }
        (self.conns.len(), largest)
    }

    /// Connections or listeners wait for another round without a new event.
    pub(crate) fn has_ready_work(&self) -> bool {
        !self.ready.is_empty() || !self.ready_listeners.is_empty()
    }

    /// After an event batch: slots freed during it (connections, and the upstream pool
    /// slots of every generation) become reusable. Without this a pool's table grows
    /// by one slot per upstream connection ever opened (issue 22: ~268 bytes per
    /// failed connect).
    fn end_batch(&mut self) {
        self.conns.recycle();
        for g in self.generations.iter_mut().flatten() {
            g.pool.recycle();
        }
    }

    /// Before the stack is dropped: poll it until it has delivered what the closed
    /// connections still owe their peers (queued data, FIN, RST; see
    /// [`Stack::closing`]), or until `deadline`. A no-op on the kernel backend, which
    /// finishes closed sockets by itself.
    fn linger(&mut self, events: &mut Events, deadline: Instant) -> io::Result<()> {
        loop {
            let owed = self.stack.closing();
            let now = Instant::now();
            if owed == 0 {
                return Ok(());
            }
            if now >= deadline {
                tracing::debug!(worker = self.id, owed, "exiting with connections still closing");
                return Ok(());
            }
            // Closing connections are not registered: poll in short steps to recount.
            self.stack.poll(events, Some(deadline.saturating_duration_since(now).min(LINGER_STEP)))?;
        }
    }

    /// Adopt the config the main thread published: a new generation for new
    /// connections; listening sockets of unchanged addresses carried over, others
    /// opened or closed; old HTTP connections whose config changed told to close after
    /// their current response.
    fn adopt_published(&mut self, now: Instant) {
        let (version, snapshot) = self.control.published();
        self.version = version;
        let Some(snapshot) = snapshot else { return };
        let Some(slot) = self.free_generation_slot(now) else {
            tracing::error!(worker = self.id, "no free config generation slot; keeping the old config");
            return;
        };
        let old = self.current;
        let old_snapshot = self.current_snapshot();
        // Listening sockets: keep those whose address stays, open new ones.
        let mut by_addr: HashMap<SocketAddr, SocketId> = HashMap::new();
        for (i, s) in self.listen_sockets.drain(..).enumerate() {
            if let Some(s) = s {
                by_addr.insert(old_snapshot.listeners[i].address, s);
            }
        }
        let accepting = !self.control.listeners_drained.load(Ordering::Relaxed) && self.drain_deadline.is_none();
        let mut sockets = Vec::with_capacity(snapshot.listeners.len());
        for (i, l) in snapshot.listeners.iter().enumerate() {
            if !l.bind_to_port || !accepting {
                sockets.push(None);
                continue;
            }
            let sock = match by_addr.remove(&l.address) {
                Some(s) => Some(s),
                None => {
                    let opts = l.listen_options();
                    match self.stack.listen(l.address, &opts) {
                        Ok(s) => Some(s),
                        Err(e) => {
                            tracing::error!(worker = self.id, listener = %l.name, address = %l.address, "cannot open listener: {e}");
                            None
                        }
                    }
                }
            };
            if let Some(s) = sock {
                let registered = self
                    .stack
                    .reregister(s, Token(LISTENER_BASE + i), Interest::READABLE)
                    .or_else(|_| self.stack.register(s, Token(LISTENER_BASE + i), Interest::READABLE));
                if let Err(e) = registered {
                    tracing::error!(worker = self.id, "cannot register listener {}: {e}", l.name);
                }
            }
            sockets.push(sock);
        }
        for (_, s) in by_addr {
            self.stack.close(s);
        }
        self.listen_sockets = sockets;
        self.ready_listeners.clear();
        self.accept_blocked.clear();
        if self.accept_retry_at.is_some() {
            self.accept_blocked.extend(0..self.listen_sockets.len());
        }
        self.generations[slot as usize] = Some(Generation::new(slot, Arc::clone(&snapshot), &self.store, self.id));
        self.current = slot;
        // Changed clusters: the old generation keeps no idle upstream connections (those
        // of unchanged clusters move to the new pool, the others close), and streams
        // waiting for capacity try again (and wake its pool's other waiters as
        // connections go). Unchanged clusters: the old generation's remaining
        // connections keep reusing them until they end, then they move (see
        // `retire_generations`); with none left they move now.
        if old_snapshot.clusters_fingerprint == snapshot.clusters_fingerprint && self.gen(old).conns == 0 {
            self.carry_idle_slots(old, now);
        }
        if old_snapshot.clusters_fingerprint != snapshot.clusters_fingerprint {
            self.carry_idle_slots(old, now);
            let waiting =
                self.generations[old as usize].as_mut().map(|g| g.pool.take_all_waiting()).unwrap_or_default();
            self.ready.extend(waiting);
        }
        self.drain_connections(now, true, |gen, entry| gen != slot && !listener_unchanged(entry.0, entry.1, &snapshot));
        self.update_routes(slot, &snapshot);
        tracing::info!(worker = self.id, generation = slot, "new config adopted");
    }

    /// RDS: the HTTP connections kept across a new config (their listener unchanged)
    /// whose HCM's routes changed take the new routes for their next request; they stay
    /// in their generation, whose clusters are the new config's (an unchanged listener
    /// implies unchanged clusters, see [`listener_unchanged`]).
    fn update_routes(&mut self, slot: u8, new: &Snapshot) {
        for key in self.conns.keys() {
            let Some(e) = self.conns.get_key_mut(key) else { continue };
            let (Conn::Http(h), Some(chain)) = (&mut e.conn, e.chain) else { continue };
            if e.gen == slot {
                continue;
            }
            let Some(old) = self.generations[e.gen as usize].as_ref().map(|g| &g.snapshot.listeners[e.listener]) else {
                continue;
            };
            let Some(l) = new.listeners.iter().find(|n| n.name == old.name && n.fingerprint == old.fingerprint) else {
                continue;
            };
            if let Some(cfg) = l.hcm(chain).filter(|c| c.routes.config() != h.cfg().routes.config()) {
                h.update_routes(Arc::clone(cfg));
            }
        }
    }

    /// A generation slot for a new config; if all are taken, the oldest generation's
    /// connections are closed to free one.
    fn free_generation_slot(&mut self, now: Instant) -> Option<u8> {
        if let Some(i) = self.generations.iter().position(Option::is_none) {
            return Some(i as u8);
        }
        let victim = (1..MAX_GENERATIONS).map(|d| (self.current as usize + d) % MAX_GENERATIONS).next()? as u8;
        tracing::warn!(
            worker = self.id,
            generation = victim,
            "too many live configs: closing the oldest one's connections"
        );
        for key in self.conns.keys() {
            if self.conns.get_key_mut(key).is_some_and(|e| e.gen == victim) {
                let status = self.with_conn(key, now, |conn, ctx| abort(conn, ctx));
                self.finish(key, status);
            }
        }
        self.cancel_background(victim, now);
        self.close_pool(victim, now);
        self.generations[victim as usize] = None;
        Some(victim)
    }

    /// Drop generations nothing depends on any more (idle upstream connections of an
    /// old generation move to the current one, or close, with its last downstream
    /// connection).
    fn retire_generations(&mut self, now: Instant) {
        for g in 0..MAX_GENERATIONS {
            if g as u8 == self.current {
                continue;
            }
            if self.generations[g].as_ref().is_some_and(|g| g.conns == 0 && g.pool.idle_count() > 0) {
                self.carry_idle_slots(g as u8, now);
            }
            self.flush_old_generation(g as u8, now);
            if self.generations[g].as_ref().is_some_and(Generation::retired) {
                self.generations[g] = None;
                tracing::debug!(worker = self.id, generation = g, "old config retired");
            }
        }
    }

    fn close_listeners(&mut self) {
        for s in self.listen_sockets.iter_mut() {
            if let Some(sock) = s.take() {
                self.stack.close(sock);
            }
        }
        self.ready_listeners.clear();
        self.accept_blocked.clear();
    }

    fn start_drain(&mut self, now: Instant) {
        self.drain_deadline = Some(now + self.drain_time);
        // Closing a listening socket resets the connections still in its backlog: the
        // kernel completed their handshakes and their clients may have sent a request.
        // Take them first; they are drained with the others below (`connection: close`
        // on their response).
        for l in 0..self.listen_sockets.len() {
            self.accept_up_to(l, now, DRAIN_BACKLOG_MAX);
        }
        self.close_listeners();
        tracing::info!(worker = self.id, open = self.conns.len(), "draining: listeners closed");
        for g in 0..MAX_GENERATIONS as u8 {
            if self.generations[g as usize].is_some() {
                self.close_idle_slots(g, now);
            }
        }
        self.start_connection_drains(now);
    }

    /// Start the drain (once): each HTTP connection begins its drain sequence when
    /// the strategy says (see [`drain`]); requests already on the wire are served.
    fn start_connection_drains(&mut self, now: Instant) {
        if self.drain.is_some() {
            return;
        }
        let drain = Drain { strategy: self.control.drain_strategy(), started: now, time: self.drain_time };
        self.drain = Some(drain);
        let keys: Vec<TimerKey> = self
            .conns
            .keys()
            .into_iter()
            .filter(|k| self.conns.get_key_mut(*k).is_some_and(|e| matches!(e.conn, Conn::Http(_))))
            .collect();
        let n = keys.len();
        for (i, key) in keys.into_iter().enumerate() {
            let at = drain.start_of(i, n);
            let status = self.with_conn(key, now, |conn, ctx| match conn {
                Conn::Http(h) => h.drain_at(ctx, at),
                _ => Status::Open,
            });
            self.finish(key, status);
        }
    }

    /// Whether a response now should close its connection (Envoy's `drainClose()`).
    fn drain_close(&mut self, now: Instant) -> bool {
        match self.drain {
            Some(d) => d.close_now(now, &mut self.rng),
            None => false,
        }
    }

    /// Close the idle upstream connections of every generation but the current one.
    fn close_old_idle_slots(&mut self, now: Instant) {
        for g in 0..MAX_GENERATIONS as u8 {
            if g != self.current && self.generations[g as usize].is_some() {
                self.close_idle_slots(g, now);
            }
        }
    }

    /// HTTP connections for which `which(generation, (snapshot, listener))` holds close
    /// when idle (with `grace`: after the HCM's drain_timeout idle), or after their
    /// current response.
    fn drain_connections(&mut self, now: Instant, grace: bool, which: impl Fn(u8, (&Snapshot, usize)) -> bool) {
        for key in self.conns.keys() {
            let Some(e) = self.conns.get_key_mut(key) else { continue };
            let (gen, listener) = (e.gen, e.listener);
            if !matches!(e.conn, Conn::Http(_)) {
                continue;
            }
            let snapshot = Arc::clone(&self.gen(gen).snapshot);
            if !which(gen, (&snapshot, listener)) {
                continue;
            }
            let status = self.with_conn(key, now, |conn, ctx| match conn {
                Conn::Http(h) => h.drain(ctx, grace),
                _ => Status::Open,
            });
            self.finish(key, status);
        }
    }

    fn abort_all(&mut self, now: Instant) {
        self.abort_connections(now);
        for g in 0..MAX_GENERATIONS as u8 {
            if self.generations[g as usize].is_some() {
                self.cancel_background(g, now);
                self.close_pool(g, now);
            }
        }
        self.end_batch();
    }

    /// Reset every downstream connection (the pools and the background requests stay).
    fn abort_connections(&mut self, now: Instant) {
        for key in self.conns.keys() {
            let status = self.with_conn(key, now, |conn, ctx| abort(conn, ctx));
            self.finish(key, status);
        }
    }

    fn accept(&mut self, listener: usize, now: Instant) {
        let gen = self.current;
        let lcfg = &self.gen(gen).snapshot.listeners[listener];
        let budget = lcfg.max_connections_to_accept_per_socket_event.map_or(ACCEPT_BUDGET, |n| n as usize);
        if self.accept_up_to(listener, now, budget) {
            self.ready_listeners.push(listener);
        }
    }

    /// Accept at most `budget` connections from `listener`'s backlog; true when the
    /// budget ran out before the backlog did.
    fn accept_up_to(&mut self, listener: usize, now: Instant, budget: usize) -> bool {
        let Some(Some(lsock)) = self.listen_sockets.get(listener).copied() else {
            return false;
        };
        let overload = Arc::clone(&self.control.overload);
        if overload.saturated(ActionKind::StopAcceptingConnections) || self.accept_retry_at.is_some() {
            // Left in the kernel's backlog until the action ends (the overload manager
            // wakes the workers) or the retry timer fires.
            if !self.accept_blocked.contains(&listener) {
                self.accept_blocked.push(listener);
            }
            return false;
        }
        let gen = self.current;
        let lcfg = Arc::clone(&self.gen(gen).snapshot.listeners[listener]);
        for _ in 0..budget {
            let acc = match self.stack.accept(lsock) {
                Ok(a) => a,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                Err(e) => {
                    self.accept_failed(listener, &e, now);
                    return false;
                }
            };
            let stats = Arc::clone(&self.gen(gen).listener_stats[listener]);
            // Envoy's TcpListenerImpl: the global limit, then reject_incoming_connections,
            // both before any listener filter runs.
            let enforce = !lcfg.ignore_global_conn_limit;
            if crate::runtime::listener_limit::over_global_limit(&overload, &self.runtime, enforce)
                || !overload.try_allocate_connection(enforce)
            {
                tracing::trace!(worker = self.id, peer = %acc.peer, "closing: global connection limit reached");
                stats.downstream_global_cx_overflow.inc();
                self.stack.close(acc.socket);
                continue;
            }
            if overload.fires(ActionKind::RejectIncomingConnections, self.rng.next_u64()) {
                overload.release_connection();
                stats.downstream_cx_overload_reject.inc();
                self.stack.close(acc.socket);
                continue;
            }
            // ActiveTcpListener::onAccept: the listener's runtime connection limit.
            if !lcfg.connection_limit.try_open(&self.runtime) {
                tracing::trace!(worker = self.id, peer = %acc.peer, listener = %lcfg.name, "closing: listener connection limit reached");
                overload.release_connection();
                stats.downstream_cx_overflow.inc();
                self.stack.close(acc.socket);
                continue;
            }
            // Counted as a connection (downstream_cx_*) only once its filter chain is
            // chosen, on the listener that serves it (the original-destination target),
            // as Envoy's ActiveTcpConnection does; until then it is a pre-connection.
            stats.downstream_pre_cx_active.inc();
            tracing::debug!(worker = self.id, peer = %acc.peer, local = %acc.local, "accepted");
            let pending = ActiveSocket::new(acc.socket, listener, acc.peer, acc.local);
            let key = self.conns.insert(Entry { gen, listener, chain: None, conn: Conn::Pending(pending) });
            if let Some(g) = self.generations[gen as usize].as_mut() {
                g.conns += 1;
            }
            if let Err(e) = self.stack.register(acc.socket, token(key, DOWNSTREAM_SUB), Interest::BOTH) {
                tracing::warn!("cannot register accepted socket: {e}");
                self.stack.close(acc.socket);
                self.finish(key, Status::Closed(CloseReason::Done));
                continue;
            }
            self.advance_pending(key, now);
        }
        true
    }

    /// An accept failed for another reason than an empty backlog: almost always out of
    /// descriptors (EMFILE, ENFILE) or kernel memory. Count it
    /// (`listener.<name>.downstream_cx_accept_error`), log at most once a second, keep
    /// serving the open connections, and try this listener again in [`ACCEPT_RETRY`]:
    /// the pending connections stay in the kernel's backlog, and an edge-triggered
    /// listener reports no new readiness for them.
    fn accept_failed(&mut self, listener: usize, e: &io::Error, now: Instant) {
        self.gen(self.current).listener_stats[listener].downstream_cx_accept_error.inc();
        self.accept_errors_unlogged += 1;
        if self.accept_error_logged_at.is_none_or(|t| now >= t + ACCEPT_ERROR_LOG_PERIOD) {
            let name = &self.gen(self.current).snapshot.listeners[listener].name;
            tracing::warn!(
                worker = self.id,
                listener = %name,
                failures = self.accept_errors_unlogged,
                open = self.conns.len(),
                "accept failed: {e}; serving open connections, retrying every {} ms",
                ACCEPT_RETRY.as_millis()
            );
            self.accept_errors_unlogged = 0;
            self.accept_error_logged_at = Some(now);
        }
        if !self.accept_blocked.contains(&listener) {
            self.accept_blocked.push(listener);
        }
        if self.accept_retry_at.is_none() {
            let at = now + ACCEPT_RETRY;
            self.accept_retry_at = Some(at);
            self.timers.schedule(ACCEPT_RETRY_TIMER, at);
        }
    }

    /// Give blocked listeners another round once nothing blocks them any more.
    fn resume_accepting(&mut self, now: Instant) {
        if self.accept_blocked.is_empty() {
            return;
        }
        if self.accept_retry_at.is_some_and(|at| now >= at) {
            self.accept_retry_at = None;
        }
        if self.accept_retry_at.is_some() || self.control.overload.saturated(ActionKind::StopAcceptingConnections) {
            return;
        }
        for l in std::mem::take(&mut self.accept_blocked) {
            if !self.ready_listeners.contains(&l) {
                self.ready_listeners.push(l);
            }
        }
    }

    /// When `reduce_timeouts` changed, every HTTP connection re-evaluates its idle
    /// deadlines at once (Envoy's scaled range timers follow the scale factor): a timer
    /// armed with the full timeout would otherwise hold an idle connection for its
    /// whole length under pressure, which is when it matters most.
    fn rescale_timers(&mut self, now: Instant) {
        let scale = self.control.overload.scale(ActionKind::ReduceTimeouts);
        if scale == self.timer_scale {
            return;
        }
        self.timer_scale = scale;
        for key in self.conns.keys() {
            if !self.conns.get_key_mut(key).is_some_and(|e| matches!(e.conn, Conn::Http(_))) {
                continue;
            }
            let status = self.with_conn(key, now, |conn, ctx| match conn {
                Conn::Http(h) => h.on_timer(ctx, now),
                _ => Status::Open,
            });
            self.finish(key, status);
        }
    }

    /// Run listener filters; move the connection to its network filter when done.
    fn advance_pending(&mut self, key: TimerKey, now: Instant) {
        let Some(e) = self.conns.get_key_mut(key) else { return };
        let gen = e.gen;
        let Conn::Pending(p) = &mut e.conn else { return };
        let g = self.generations[gen as usize].as_ref().expect("live generation");
        let snapshot = Arc::clone(&g.snapshot);
        let stats = Arc::clone(&g.listener_stats[p.listener]);
        let outcome = p.run(&mut self.stack, &snapshot, &mut self.scratch, &stats);
        self.after_filters(key, outcome, now);
    }

    fn after_filters(&mut self, key: TimerKey, outcome: Outcome, now: Instant) {
        let Some(e) = self.conns.get_key_mut(key) else { return };
        let (gen, recv_listener) = (e.gen, e.listener);
        let Conn::Pending(p) = &mut e.conn else { return };
        let snapshot = Arc::clone(&self.generations[gen as usize].as_ref().expect("live generation").snapshot);
        match outcome {
            Outcome::Wait => {
                let l = &snapshot.listeners[p.listener];
                if p.deadline.is_none() {
                    p.deadline = l.listener_filters_timeout.map(|t| now + t);
                    if let Some(d) = p.deadline {
                        p.timer_at = Some(d);
                        self.timers.schedule(key, d);
                    }
                }
            }
            Outcome::Close(why) => {
                tracing::debug!(peer = %p.peer, "closing: {why}");
                if why == "no matching filter chain" {
                    if let Some(g) = self.generations[gen as usize].as_ref() {
                        g.listener_stats[recv_listener].no_filter_chain_match.inc();
                    }
                }
                let sock = p.socket;
                self.stack.close(sock);
                self.finish(key, Status::Closed(CloseReason::Done));
            }
            Outcome::Chain { listener, selected } => {
                let lcfg = Arc::clone(&snapshot.listeners[listener]);
                let (socket, peer, local, restored) = (p.socket, p.peer, p.local, p.restored);
                let original_dst = restored.then_some(local);
                let chain = lcfg.chain(selected);
                let terminal = chain.and_then(|c| c.terminal.as_ref());
                let Some(terminal) = terminal else {
                    // An empty filter chain closes the connection (Envoy).
                    self.stack.close(socket);
                    self.finish(key, Status::Closed(CloseReason::Done));
                    return;
                };
                {
                    let g = self.gen(gen);
                    g.listener_stats[recv_listener].downstream_pre_cx_active.dec();
                    g.listener_stats[listener].downstream_cx_total.inc();
                    g.listener_stats[listener].downstream_cx_active.inc();
                }
                if let Some(e) = self.conns.get_key_mut(key) {
                    // From now on the connection belongs to the listener that serves it
                    // (stats, and reload decisions about its config).
                    e.listener = listener;
                    e.chain = Some(selected);
                }
                let transport = match chain.and_then(|c| c.tls.as_ref()) {
                    Some(ctx) => TransportSocket::tls_server(ctx, Arc::clone(&self.gen(gen).listener_stats[listener]))
                        .with_connect_deadline(chain.and_then(|c| c.transport_socket_connect_timeout).map(|t| now + t)),
                    None => TransportSocket::Raw,
                };
                match terminal {
                    NetworkFilter::TcpProxy(tp) => {
                        let tp = Arc::clone(tp);
                        let stats = self.tcp_stats_for(&tp.stat_prefix);
                        let limit = lcfg.per_connection_buffer_limit_bytes;
                        let base = token(key, DOWNSTREAM_SUB).0;
                        let (session, status) = self.with_ctx(gen, key, now, |ctx| {
                            TcpProxySession::start(ctx, tp, stats, socket, transport, limit, original_dst, base)
                        });
                        if let Some(e) = self.conns.get_key_mut(key) {
                            e.conn = Conn::TcpProxy(session);
                        }
                        self.finish(key, status);
                    }
                    NetworkFilter::HttpConnectionManager(hcm) => {
                        let hcm = Arc::clone(hcm);
                        let stats = self.http_stats_for(&hcm.stat_prefix);
                        let accepted = Accepted { socket, peer, local, original_dst, transport };
                        let conn = Conn::Http(Box::new(HttpConnection::new(hcm, stats, accepted, now)));
                        if let Some(e) = self.conns.get_key_mut(key) {
                            e.conn = conn;
                        }
                        // Serve what already arrived.
                        let status = self.with_conn(key, now, |conn, ctx| match conn {
                            Conn::Http(h) => h.on_event(ctx, false),
                            _ => Status::Open,
                        });
                        self.finish(key, status);
                    }
                }
            }
        }
    }

    /// Run `f` with a context of generation `gen` on behalf of `key`.
    fn with_ctx<R>(&mut self, gen: u8, key: TimerKey, now: Instant, f: impl FnOnce(&mut Ctx<'_, S>) -> R) -> R {
        let draining = self.drain_close(now);
        let g = self.generations[gen as usize].as_mut().expect("live generation");
        let mut ctx = Ctx {
            stack: &mut self.stack,
            timers: &mut self.timers,
            clusters: &mut g.clusters,
            cluster_stats: &g.cluster_stats,
            scratch: &mut self.scratch,
            ready: &mut self.ready,
            rng: &mut self.rng,
            pool: &mut g.pool,
            date: &mut self.date,
            access_log: &mut self.access_log,
            now,
            wall: SystemTime::now(),
            key,
            draining,
            overload: &self.control.overload,
            runtime: &self.runtime,
            health_check_failed: self.control.health_check_failed.load(Ordering::Relaxed),
            background: &mut g.background,
        };
        f(&mut ctx)
    }

    /// Run `f` on connection `key` with a context of its generation.
    fn with_conn(
        &mut self,
        key: TimerKey,
        now: Instant,
        f: impl FnOnce(&mut Conn, &mut Ctx<'_, S>) -> Status,
    ) -> Status {
        let draining = self.drain_close(now);
        let Some(e) = self.conns.get_key_mut(key) else { return Status::Open };
        let g = self.generations[e.gen as usize].as_mut().expect("live generation");
        let mut ctx = Ctx {
            stack: &mut self.stack,
            timers: &mut self.timers,
            clusters: &mut g.clusters,
            cluster_stats: &g.cluster_stats,
            scratch: &mut self.scratch,
            ready: &mut self.ready,
            rng: &mut self.rng,
            pool: &mut g.pool,
            date: &mut self.date,
            access_log: &mut self.access_log,
            now,
            wall: SystemTime::now(),
            key,
            draining,
            overload: &self.control.overload,
            runtime: &self.runtime,
            health_check_failed: self.control.health_check_failed.load(Ordering::Relaxed),
            background: &mut g.background,
        };
        f(&mut e.conn, &mut ctx)
    }

    fn on_conn_event(&mut self, index: usize, sub: usize, peer_closed: bool, now: Instant) {
        let Some((key, e)) = self.conns.get_mut(index) else { return };
        if let Conn::Pending(_) = e.conn {
            self.advance_pending(key, now);
            return;
        }
        let base = token(key, DOWNSTREAM_SUB).0;
        let status = self.with_conn(key, now, |conn, ctx| match conn {
            Conn::TcpProxy(s) => s.on_event(ctx, sub, base),
            Conn::Http(h) => h.on_event(ctx, peer_closed),
            Conn::Pending(_) => Status::Open,
        });
        self.finish(key, status);
    }

    fn run_ready(&mut self, now: Instant) {
        if !self.ready.is_empty() {
            let ready = std::mem::take(&mut self.ready);
            for key in ready {
                if let Some(gen) = decode_detached_key(key) {
                    self.run_background(gen, now, None);
                    continue;
                }
                let status = self.with_conn(key, now, |conn, ctx| match conn {
                    Conn::TcpProxy(s) => s.resume(ctx),
                    Conn::Http(h) => h.resume(ctx),
                    Conn::Pending(_) => Status::Open,
                });
                self.finish(key, status);
            }
        }
        if !self.ready_listeners.is_empty() {
            let listeners = std::mem::take(&mut self.ready_listeners);
            for l in listeners {
                self.accept(l, now);
            }
        }
    }

    fn run_timers(&mut self, now: Instant) {
        // Timers armed while handling these fire in the next round, never in this loop:
        // a handler that re-arms a due deadline cannot spin the worker.
        let mut due = std::mem::take(&mut self.due);
        while let Some(t) = self.timers.pop_due(now) {
            due.push(t);
        }
        for (fired, key) in due.drain(..) {
            if key == ACCEPT_RETRY_TIMER {
                self.resume_accepting(now);
                continue;
            }
            if let Some((gen, slot)) = decode_pool_timer_key(key) {
                self.on_pool_timer(gen, slot, now);
                continue;
            }
            if let Some(gen) = decode_detached_key(key) {
                self.run_background(gen, now, None);
                continue;
            }
            let Some(e) = self.conns.get_key_mut(key) else { continue };
            match &mut e.conn {
                Conn::Pending(p) => {
                    if p.deadline.is_some_and(|d| now >= d) {
                        let snapshot = Arc::clone(&self.generations[e.gen as usize].as_ref().expect("live").snapshot);
                        let (gen, listener) = (e.gen, e.listener);
                        let Conn::Pending(p) = &mut self.conns.get_key_mut(key).expect("checked").conn else {
                            continue;
                        };
                        let outcome = p.timed_out(&snapshot);
                        if matches!(outcome, Outcome::Close(_)) {
                            self.gen(gen).listener_stats[listener].downstream_pre_cx_timeout.inc();
                        }
                        self.after_filters(key, outcome, now);
                    }
                }
                Conn::TcpProxy(_) | Conn::Http(_) => {
                    let base = token(key, DOWNSTREAM_SUB).0;
                    let status = self.with_conn(key, now, |conn, ctx| match conn {
                        Conn::TcpProxy(s) => s.on_timer(ctx, fired, base),
                        Conn::Http(h) => h.on_timer(ctx, fired),
                        Conn::Pending(_) => Status::Open,
                    });
                    self.finish(key, status);
                }
            }
        }
        self.due = due;
    }

    /// Account for a connection that closed.
    fn finish(&mut self, key: TimerKey, status: Status) {
        if let Status::Closed(_) = status {
            if let Some(e) = self.conns.remove(key) {
                self.control.overload.release_connection();
                if let Some(g) = self.generations[e.gen as usize].as_mut() {
                    g.snapshot.listeners[e.listener].connection_limit.close();
                    g.conns = g.conns.saturating_sub(1);
                    let stats = &g.listener_stats[e.listener];
                    if matches!(e.conn, Conn::Pending(_)) {
                        stats.downstream_pre_cx_active.dec();
                    } else {
                        stats.downstream_cx_active.dec();
                        stats.downstream_cx_destroy.inc();
                    }
                }
            }
        }
    }
}

/// Close a connection at once (drain deadline, stop, generation eviction).
fn abort<S: Stack>(conn: &mut Conn, ctx: &mut Ctx<'_, S>) -> Status {
    match conn {
        Conn::Pending(p) => {
            ctx.stack.close(p.socket);
            Status::Closed(CloseReason::Drained)
        }
        Conn::TcpProxy(s) => s.abort(ctx),
        Conn::Http(h) => h.abort(ctx),
    }
}

/// Whether the given flag is set (for tests and the server).
pub fn flag(f: &AtomicBool) -> bool {
    f.load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests;
