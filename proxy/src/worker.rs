//! A worker: one event loop on one core, sharing nothing with the others.
//!
//! Each worker owns its stack (its epoll, or its userspace TCP/IP stack), its listening
//! sockets (one per listener, `SO_REUSEPORT`), its connections, its timers, its
//! load-balancer state and its stats blocks. It reads the config snapshot through an
//! `Arc` and the control flags through atomics. One loop iteration: poll (bounded by
//! the earliest timer, or not at all when connections still have budgeted work), serve
//! the events, give budget-limited connections another round, fire due timers.

use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use sluice_stack::{Events, Interest, SocketId, Stack, Token};

use crate::conn_table::ConnTable;
use crate::http::conn_manager::{Accepted, HttpConnection};
use crate::http::date::DateCache;
use crate::listener::active_socket::{ActiveSocket, Outcome};
use crate::listener::manager::{NetworkFilter, Snapshot};
use crate::rng::Rng;
use crate::router::shadow::ShadowState;
use crate::stats::{ClusterStats, HttpStats, ListenerStats, Store, TcpProxyStats};
use crate::tcp_proxy::{CloseReason, Status, TcpProxySession};
use crate::timer::{TimerKey, Timers};
use crate::transport::TransportSocket;
use crate::upstream::cluster_manager::ThreadLocalClusterManager;
use crate::upstream::conn_pool::{close_client, rest, ConnPool, UpstreamSlot};
use crate::worker_ctx::{token, Ctx, DOWNSTREAM_SUB, POOL_SUB, POOL_TIMER_BIT};

/// Token of the worker's waker.
const WAKER: Token = Token(usize::MAX);
/// Tokens at or above this are listeners (`LISTENER_BASE + listener index`).
const LISTENER_BASE: usize = usize::MAX / 2;
/// Accepts per listener per round before other work gets a turn.
const ACCEPT_BUDGET: usize = 64;

/// Flags the main thread sets to steer the workers.
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
}

impl Control {
    /// `/drain_listeners`: stop accepting; with `graceful`, HTTP connections also get
    /// `connection: close` on their next response.
    pub fn drain_listeners(&self, graceful: bool) {
        if graceful {
            self.graceful.store(true, Ordering::Relaxed);
        }
        self.listeners_drained.store(true, Ordering::Relaxed);
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

pub struct Worker<S: Stack> {
    id: usize,
    stack: S,
    snapshot: Arc<Snapshot>,
    listen_sockets: Vec<Option<SocketId>>,
    listener_stats: Vec<Arc<ListenerStats>>,
    cluster_stats: Vec<Arc<ClusterStats>>,
    tcp_stats: HashMap<String, Arc<TcpProxyStats>>,
    http_stats: HashMap<String, Arc<HttpStats>>,
    pool: ConnPool,
    date: DateCache,
    store: Arc<Store>,
    clusters: ThreadLocalClusterManager,
    conns: ConnTable<(usize, Conn)>,
    timers: Timers,
    ready: Vec<TimerKey>,
    ready_listeners: Vec<usize>,
    /// Reused buffer of due timers.
    due: Vec<(Instant, TimerKey)>,
    scratch: Box<[u8]>,
    rng: Rng,
    control: Arc<Control>,
    drain_time: Duration,
    drain_deadline: Option<Instant>,
}

impl<S: Stack> Worker<S> {
    pub fn new(setup: WorkerSetup<S>) -> io::Result<Worker<S>> {
        let WorkerSetup { id, mut stack, snapshot, listen_sockets, stats, control, drain_time } = setup;
        for (i, s) in listen_sockets.iter().enumerate() {
            if let Some(s) = s {
                stack.register(*s, Token(LISTENER_BASE + i), Interest::READABLE)?;
            }
        }
        let mut w = Worker {
            id,
            stack,
            clusters: snapshot.cluster_manager.thread_local(),
            snapshot,
            listen_sockets,
            listener_stats: Vec::new(),
            cluster_stats: Vec::new(),
            tcp_stats: HashMap::new(),
            http_stats: HashMap::new(),
            pool: ConnPool::default(),
            date: DateCache::default(),
            store: stats,
            conns: ConnTable::default(),
            timers: Timers::new(),
            ready: Vec::new(),
            ready_listeners: Vec::new(),
            due: Vec::new(),
            scratch: vec![0u8; 64 * 1024].into_boxed_slice(),
            rng: Rng::from_entropy(id as u64),
            control,
            drain_time,
            drain_deadline: None,
        };
        w.bind_stats();
        w.pool = ConnPool::new(w.snapshot.cluster_manager.clusters.len());
        Ok(w)
    }

    fn bind_stats(&mut self) {
        let id = self.id;
        self.listener_stats =
            self.snapshot.listeners.iter().map(|l| Arc::clone(&self.store.listeners.scope(&l.stat_name)[id])).collect();
        self.cluster_stats = self
            .snapshot
            .cluster_manager
            .clusters
            .iter()
            .map(|c| Arc::clone(&self.store.clusters.scope(c.config.stat_name())[id]))
            .collect();
        self.clusters.bind_stats(&self.cluster_stats);
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
            let now = Instant::now();
            let mut timeout = self.timers.timeout(now);
            if !self.ready.is_empty() || !self.ready_listeners.is_empty() {
                timeout = Some(Duration::ZERO);
            }
            if let Some(d) = self.drain_deadline {
                let left = d.saturating_duration_since(now);
                timeout = Some(timeout.map_or(left, |t| t.min(left)));
            }
            self.stack.poll(&mut events, timeout)?;
            let now = Instant::now();
            for ev in events.iter() {
                let t = ev.token().0;
                if ev.token() == WAKER {
                    continue;
                } else if t >= LISTENER_BASE {
                    self.accept(t - LISTENER_BASE, now);
                } else if t & 3 == POOL_SUB {
                    self.on_pool_event(t >> 2, now);
                } else {
                    self.on_conn_event(t >> 2, t & 3, now);
                }
            }
            self.run_ready(now);
            self.run_timers(now);
            self.conns.recycle();
            if self.control.stop.load(Ordering::Relaxed) {
                self.abort_all(Instant::now());
                return Ok(());
            }
            if self.control.listeners_drained.load(Ordering::Relaxed) && self.listen_sockets.iter().any(Option::is_some)
            {
                self.close_listeners();
                if self.control.graceful.load(Ordering::Relaxed) {
                    self.drain_connections(now);
                }
            }
            if self.control.draining.load(Ordering::Relaxed) {
                if self.drain_deadline.is_none() {
                    self.start_drain(now);
                }
                if self.conns.is_empty() {
                    tracing::debug!(worker = self.id, "drained");
                    return Ok(());
                }
                if self.drain_deadline.is_some_and(|d| Instant::now() >= d) {
                    tracing::warn!(
                        worker = self.id,
                        open = self.conns.len(),
                        "drain time over: closing open connections"
                    );
                    self.abort_all(Instant::now());
                    return Ok(());
                }
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
    }

    fn start_drain(&mut self, now: Instant) {
        tracing::info!(worker = self.id, open = self.conns.len(), "draining: listeners closed");
        self.drain_deadline = Some(now + self.drain_time);
        self.close_listeners();
        self.drain_connections(now);
    }

    /// Close idle upstream connections; HTTP connections close when idle or after
    /// their current response.
    fn drain_connections(&mut self, now: Instant) {
        for slot in self.pool.idle_keys() {
            self.close_idle_slot(slot, now);
        }
        for key in self.conns.keys() {
            let status = self.with_conn(key, now, |conn, ctx, _| match conn {
                Conn::Http(h) => h.drain(ctx),
                _ => Status::Open,
            });
            self.finish(key, status);
        }
    }

    fn abort_all(&mut self, now: Instant) {
        for key in self.conns.keys() {
            let status = self.with_conn(key, now, |conn, ctx, _| match conn {
                Conn::Pending(p) => {
                    ctx.stack.close(p.socket);
                    Status::Closed(CloseReason::Drained)
                }
                Conn::TcpProxy(s) => s.abort(ctx),
                Conn::Http(h) => h.abort(ctx),
            });
            self.finish(key, status);
        }
        for slot in self.pool.idle_keys() {
            self.close_idle_slot(slot, now);
        }
        for slot in self.pool.shadow_keys() {
            if let Some(mut s) = self.pool.take_shadow(slot) {
                self.pool.remove(slot);
                self.with_ctx(slot, now, |ctx| {
                    s.finish(ctx);
                    s.close(ctx);
                });
            }
        }
        self.conns.recycle();
    }

    fn accept(&mut self, listener: usize, now: Instant) {
        let Some(Some(lsock)) = self.listen_sockets.get(listener).copied() else {
            return;
        };
        for _ in 0..ACCEPT_BUDGET {
            let acc = match self.stack.accept(lsock) {
                Ok(a) => a,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    // EMFILE and friends: log, let other work proceed, retry next round.
                    tracing::warn!(worker = self.id, "accept failed: {e}");
                    return;
                }
            };
            let stats = &self.listener_stats[listener];
            stats.downstream_cx_total.inc();
            stats.downstream_cx_active.inc();
            stats.downstream_pre_cx_active.inc();
            tracing::debug!(worker = self.id, peer = %acc.peer, local = %acc.local, "accepted");
            let pending = ActiveSocket::new(acc.socket, listener, acc.peer, acc.local);
            let key = self.conns.insert((listener, Conn::Pending(pending)));
            if let Err(e) = self.stack.register(acc.socket, token(key, DOWNSTREAM_SUB), Interest::BOTH) {
                tracing::warn!("cannot register accepted socket: {e}");
                self.stack.close(acc.socket);
                self.finish(key, Status::Closed(CloseReason::Done));
                continue;
            }
            self.advance_pending(key, now);
        }
        self.ready_listeners.push(listener);
    }

    /// Run listener filters; move the connection to its network filter when done.
    fn advance_pending(&mut self, key: TimerKey, now: Instant) {
        let snapshot = Arc::clone(&self.snapshot);
        let Some((_, Conn::Pending(p))) = self.conns.get_key_mut(key) else {
            return;
        };
        let stats = Arc::clone(&self.listener_stats[p.listener]);
        let outcome = p.run(&mut self.stack, &snapshot, &mut self.scratch, &stats);
        self.after_filters(key, outcome, now);
    }

    fn after_filters(&mut self, key: TimerKey, outcome: Outcome, now: Instant) {
        let snapshot = Arc::clone(&self.snapshot);
        match outcome {
            Outcome::Wait => {
                let Some((_, Conn::Pending(p))) = self.conns.get_key_mut(key) else {
                    return;
                };
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
                let Some((listener, Conn::Pending(p))) = self.conns.get_key_mut(key) else {
                    return;
                };
                tracing::debug!(peer = %p.peer, "closing: {why}");
                if why == "no matching filter chain" {
                    self.listener_stats[*listener].no_filter_chain_match.inc();
                }
                let sock = p.socket;
                self.stack.close(sock);
                self.finish(key, Status::Closed(CloseReason::Done));
            }
            Outcome::Chain { listener, selected } => {
                let lcfg = Arc::clone(&snapshot.listeners[listener]);
                let Some((recv_listener, Conn::Pending(p))) = self.conns.get_key_mut(key) else {
                    return;
                };
                let recv_listener = *recv_listener;
                let (socket, peer, local, restored) = (p.socket, p.peer, p.local, p.restored);
                let original_dst = restored.then_some(local);
                let chain = lcfg.chain(selected);
                let terminal = chain.and_then(|c| c.terminal.as_ref());
                let transport = match chain.and_then(|c| c.tls.as_ref()) {
                    Some(ctx) => TransportSocket::tls_server(ctx),
                    None => TransportSocket::Raw,
                };
                if terminal.is_some() {
                    self.listener_stats[recv_listener].downstream_pre_cx_active.dec();
                }
                let conn = match terminal {
                    None => {
                        // An empty filter chain closes the connection (Envoy).
                        self.stack.close(socket);
                        self.finish(key, Status::Closed(CloseReason::Done));
                        return;
                    }
                    Some(NetworkFilter::TcpProxy(tp)) => {
                        let tp = Arc::clone(tp);
                        let stats = self.tcp_stats_for(&tp.stat_prefix);
                        let limit = lcfg.per_connection_buffer_limit_bytes;
                        let base = token(key, DOWNSTREAM_SUB).0;
                        let (session, status) = self.with_ctx(key, now, |ctx| {
                            TcpProxySession::start(ctx, tp, stats, socket, transport, limit, original_dst, base)
                        });
                        if let Some((_, c)) = self.conns.get_key_mut(key) {
                            *c = Conn::TcpProxy(session);
                        }
                        self.finish(key, status);
                        return;
                    }
                    Some(NetworkFilter::HttpConnectionManager(hcm)) => {
                        let hcm = Arc::clone(hcm);
                        let stats = self.http_stats_for(&hcm.stat_prefix);
                        let accepted = Accepted { socket, peer, local, original_dst, transport };
                        Conn::Http(Box::new(HttpConnection::new(hcm, stats, accepted, now)))
                    }
                };
                if let Some((_, c)) = self.conns.get_key_mut(key) {
                    *c = conn;
                }
                // Serve what already arrived.
                let status = self.with_conn(key, now, |conn, ctx, _| match conn {
                    Conn::Http(h) => h.on_event(ctx),
                    _ => Status::Open,
                });
                self.finish(key, status);
            }
        }
    }

    /// Run `f` with a context for connection `key` (not borrowing the table).
    fn with_ctx<R>(&mut self, key: TimerKey, now: Instant, f: impl FnOnce(&mut Ctx<'_, S>) -> R) -> R {
        let draining = self.drain_deadline.is_some();
        let mut ctx = Ctx {
            stack: &mut self.stack,
            timers: &mut self.timers,
            clusters: &mut self.clusters,
            cluster_stats: &self.cluster_stats,
            scratch: &mut self.scratch,
            ready: &mut self.ready,
            rng: &mut self.rng,
            pool: &mut self.pool,
            date: &mut self.date,
            now,
            wall: SystemTime::now(),
            key,
            draining,
        };
        f(&mut ctx)
    }

    /// Run `f` on connection `key` with a context.
    fn with_conn(
        &mut self,
        key: TimerKey,
        now: Instant,
        f: impl FnOnce(&mut Conn, &mut Ctx<'_, S>, &Snapshot) -> Status,
    ) -> Status {
        let draining = self.drain_deadline.is_some();
        let Some((_, conn)) = self.conns.get_key_mut(key) else {
            return Status::Open;
        };
        let mut ctx = Ctx {
            stack: &mut self.stack,
            timers: &mut self.timers,
            clusters: &mut self.clusters,
            cluster_stats: &self.cluster_stats,
            scratch: &mut self.scratch,
            ready: &mut self.ready,
            rng: &mut self.rng,
            pool: &mut self.pool,
            date: &mut self.date,
            now,
            wall: SystemTime::now(),
            key,
            draining,
        };
        f(conn, &mut ctx, &self.snapshot)
    }

    fn on_conn_event(&mut self, index: usize, sub: usize, now: Instant) {
        let Some((key, (_, conn))) = self.conns.get_mut(index) else {
            return;
        };
        if let Conn::Pending(_) = conn {
            self.advance_pending(key, now);
            return;
        }
        let base = token(key, DOWNSTREAM_SUB).0;
        let status = self.with_conn(key, now, |conn, ctx, _| match conn {
            Conn::TcpProxy(s) => s.on_event(ctx, sub, base),
            Conn::Http(h) => h.on_event(ctx),
            Conn::Pending(_) => Status::Open,
        });
        self.finish(key, status);
    }

    /// An event on an upstream pool connection: to its stream, or (idle) a close check.
    fn on_pool_event(&mut self, index: usize, now: Instant) {
        let Some((slot, state)) = self.pool.slots.get_mut(index) else {
            return;
        };
        match state {
            UpstreamSlot::Busy { owner } => {
                let owner = *owner;
                let status = self.with_conn(owner, now, |conn, ctx, _| match conn {
                    Conn::Http(h) => h.on_upstream_event(ctx, slot),
                    _ => Status::Open,
                });
                self.finish(owner, status);
            }
            UpstreamSlot::Shadow(_) => self.drive_shadow(slot, now, true),
            UpstreamSlot::Idle(client) => {
                // An idle connection has nothing to say: data or a close ends it.
                let mut probe = [0u8; 1];
                match self.stack.peek(client.socket, &mut probe) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    _ => {
                        if let Some(s) = self.cluster_stats.get(client.cluster) {
                            s.upstream_cx_destroy_remote.inc();
                        }
                        self.close_idle_slot(slot, now);
                    }
                }
            }
        }
    }

    /// Advance a mirrored request; on completion pool or close its connection.
    fn drive_shadow(&mut self, slot: TimerKey, now: Instant, event: bool) {
        let Some(mut shadow) = self.pool.take_shadow(slot) else {
            return;
        };
        let state = self.with_ctx(slot, now, |ctx| shadow.drive(ctx, event));
        match state {
            ShadowState::Running => {
                let mut s = *shadow;
                // One pending timer entry per shadow: re-arm only when it fired or
                // the next deadline is earlier.
                let next = s.next_deadline();
                if s.client.timer_at.is_none_or(|at| at <= now || next < at) {
                    s.client.timer_at = Some(next);
                    self.timers.schedule(crate::worker_ctx::pool_timer_key(slot), next);
                }
                self.pool.set_shadow(slot, s);
            }
            ShadowState::Done { reusable } => {
                let mut s = *shadow;
                self.with_ctx(slot, now, |ctx| s.finish(ctx));
                if reusable && self.drain_deadline.is_none() {
                    let client = s.client;
                    self.with_ctx(slot, now, |ctx| rest(ctx, slot, client));
                } else {
                    self.pool.remove(slot);
                    self.with_ctx(slot, now, |ctx| s.close(ctx));
                }
            }
        }
    }

    fn close_idle_slot(&mut self, slot: TimerKey, now: Instant) {
        if let Some(UpstreamSlot::Idle(mut client)) = self.pool.remove(slot) {
            self.with_ctx(slot, now, |ctx| close_client(ctx, &mut client));
        }
    }

    fn run_ready(&mut self, now: Instant) {
        if !self.ready.is_empty() {
            let ready = std::mem::take(&mut self.ready);
            for key in ready {
                let status = self.with_conn(key, now, |conn, ctx, _| match conn {
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
            if key.index & POOL_TIMER_BIT != 0 {
                self.on_pool_timer(TimerKey { index: key.index & !POOL_TIMER_BIT, generation: key.generation }, now);
                continue;
            }
            let Some((_, conn)) = self.conns.get_key_mut(key) else {
                continue;
            };
            match conn {
                Conn::Pending(p) => {
                    if p.deadline.is_some_and(|d| now >= d) {
                        let snapshot = Arc::clone(&self.snapshot);
                        let listener = p.listener;
                        let outcome = p.timed_out(&snapshot);
                        if matches!(outcome, Outcome::Close(_)) {
                            self.listener_stats[listener].downstream_pre_cx_timeout.inc();
                        }
                        self.after_filters(key, outcome, now);
                    }
                }
                Conn::TcpProxy(_) | Conn::Http(_) => {
                    let base = token(key, DOWNSTREAM_SUB).0;
                    let status = self.with_conn(key, now, |conn, ctx, _| match conn {
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

    /// An idle upstream connection's timer: close it once its idle timeout passed.
    fn on_pool_timer(&mut self, slot: TimerKey, now: Instant) {
        if let Some(UpstreamSlot::Shadow(_)) = self.pool.slots.get_key_mut(slot) {
            self.drive_shadow(slot, now, false);
            return;
        }
        let Some(UpstreamSlot::Idle(client)) = self.pool.slots.get_key_mut(slot) else {
            return;
        };
        let idle = self
            .clusters
            .clusters
            .get(client.cluster)
            .and_then(|c| c.info.config.http_protocol_options.common.idle_timeout);
        match idle {
            Some(t) if now >= client.idle_since + t => {
                if let Some(s) = self.cluster_stats.get(client.cluster) {
                    s.upstream_cx_idle_timeout.inc();
                }
                self.close_idle_slot(slot, now);
            }
            Some(t) => {
                let at = client.idle_since + t;
                client.timer_at = Some(at);
                self.timers.schedule(crate::worker_ctx::pool_timer_key(slot), at);
            }
            None => {}
        }
    }

    /// Account for a connection that closed.
    fn finish(&mut self, key: TimerKey, status: Status) {
        if let Status::Closed(_) = status {
            if let Some((listener, conn)) = self.conns.remove(key) {
                let stats = &self.listener_stats[listener];
                stats.downstream_cx_active.dec();
                stats.downstream_cx_destroy.inc();
                if matches!(conn, Conn::Pending(_)) {
                    stats.downstream_pre_cx_active.dec();
                }
            }
        }
    }
}

/// Whether the given flag is set (for tests and the server).
pub fn flag(f: &AtomicBool) -> bool {
    f.load(Ordering::Relaxed)
}
