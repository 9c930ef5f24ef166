//! The admin server (`admin.address`): Envoy's operator endpoints on a kernel socket,
//! served by the main thread in both datapaths.
//!
//! Requests are small and answered at once: each connection reads one request head,
//! gets one response and is closed. Mutating endpoints answer only POST, and refuse
//! what a browser could send cross-origin (see `guard`). The server never blocks the
//! main thread (non-blocking sockets on the main thread's poll) and bounds what a
//! client may hold:
//! - 8 KiB of request head;
//! - [`IDLE_TIMEOUT`] (15 s): a connection that has not sent its whole request head,
//!   or whose response makes no progress, for that long is closed;
//! - [`MAX_CONNS`] (64) connections: at the cap, the connection that has waited
//!   longest without a complete request is closed to make room for the new one, so
//!   idle or slow clients can never lock out a fresh `/ready` or `/stats`; only when
//!   every connection is busy being answered does the new one get a 503 at once.
//!
//! Binding a non-loopback address is allowed (Envoy allows it) but logged as a warning:
//! the admin has no authentication.

pub mod clusters;
mod config_dump;
mod guard;
mod handlers;
mod prometheus;
mod runtime;

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Registry, Token};

use crate::listener::manager::Snapshot;
use crate::stats::Store;
use crate::worker::Control;

pub use handlers::Response;

/// What the admin endpoints read and steer.
pub struct AdminState {
    pub stats: Arc<Store>,
    /// The config in force (replaced on reload).
    pub snapshot: Mutex<Arc<Snapshot>>,
    /// The effective config, as JSON, for `/config_dump` (replaced on reload).
    pub config_dump: Mutex<String>,
    /// The `EndpointsConfigDump` (an `Any`, rendered) that `/config_dump?include_eds`
    /// adds; empty: none (only the ADS client keeps one).
    pub config_dump_eds: Mutex<String>,
    pub control: Arc<Control>,
    pub started: Instant,
    pub started_wall: std::time::SystemTime,
    /// Workers are running.
    pub live: AtomicBool,
    /// Set once the workers run and the init manager waits for its targets (ADS's first
    /// LDS/CDS responses): the server state is then INITIALIZING, before PRE_INITIALIZING.
    pub initializing: AtomicBool,
    /// `/healthcheck/fail` was called (and not undone by `/healthcheck/ok`).
    pub health_check_failed: AtomicBool,
    pub concurrency: usize,
    pub config_path: String,
    /// Set by `/quitquitquit`: the main thread stops the process.
    pub quit: AtomicBool,
    /// The runtime's layers (`/runtime`, `/runtime_modify`; disk layers re-read by
    /// the main loop).
    pub runtime: Mutex<crate::runtime::Loader>,
    /// `admin.ignore_global_conn_limit`: admin connections are counted towards the
    /// global downstream connection limit but not refused by it.
    pub ignore_global_conn_limit: bool,
}

impl AdminState {
    /// Envoy's server state (`envoy.admin.v3.ServerInfo.State`): PRE_INITIALIZING,
    /// INITIALIZING, LIVE or DRAINING.
    pub fn state(&self) -> &'static str {
        if !self.live.load(Ordering::Relaxed) {
            if self.initializing.load(Ordering::Relaxed) {
                "INITIALIZING"
            } else {
                "PRE_INITIALIZING"
            }
        } else if self.health_check_failed.load(Ordering::Relaxed) || self.control.draining.load(Ordering::Relaxed) {
            "DRAINING"
        } else {
            "LIVE"
        }
    }
}

const MAX_HEAD: usize = 8 * 1024;
/// Most admin connections open at once.
pub const MAX_CONNS: usize = 64;
/// A connection idle this long (request head incomplete, or response not read) is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(15);

struct AdminConn {
    stream: TcpStream,
    /// The address the client reached (the admin's own origin).
    local: SocketAddr,
    input: Vec<u8>,
    output: Vec<u8>,
    written: usize,
    accepted: Instant,
    /// Closed when reached; moved on by each write that makes progress.
    deadline: Instant,
}

/// The admin listener and its connections, on the main thread's poll.
pub struct AdminServer {
    listener: TcpListener,
    token: Token,
    next: usize,
    conns: HashMap<Token, AdminConn>,
    state: Arc<AdminState>,
    /// The last accept failed with something other than WouldBlock (e.g. EMFILE).
    accept_failed: bool,
    pub local_addr: SocketAddr,
}

impl AdminServer {
    /// Bind the admin address (fails fast, like the listeners).
    pub fn bind(
        addr: SocketAddr,
        state: Arc<AdminState>,
        registry: &Registry,
        token: Token,
    ) -> io::Result<AdminServer> {
        let mut listener = TcpListener::bind(addr)?;
        let local_addr = listener.local_addr()?;
        if !local_addr.ip().to_canonical().is_loopback() {
            tracing::warn!(
                "the admin listener is bound to {local_addr}, which is not a loopback address: anyone who can \
                 reach it can read the configuration and stats and stop or drain sluice (/quitquitquit, \
                 /drain_listeners, /healthcheck/fail), as the admin API has no authentication; bind \
                 admin.address to 127.0.0.1 or ::1, or restrict who can reach {local_addr}"
            );
        }
        registry.register(&mut listener, token, Interest::READABLE)?;
        Ok(AdminServer {
            listener,
            token,
            next: token.0 + 1,
            conns: HashMap::new(),
            state,
            accept_failed: false,
            local_addr,
        })
    }

    /// Whether `token` belongs to the admin server.
    pub fn owns(&self, token: Token) -> bool {
        token == self.token || self.conns.contains_key(&token)
    }

    /// Handle readiness on one of the admin server's tokens.
    pub fn on_event(&mut self, registry: &Registry, token: Token) {
        if token == self.token {
            self.accept(registry);
            return;
        }
        let done = match self.conns.get_mut(&token) {
            Some(c) => serve(c, &self.state),
            None => return,
        };
        if done {
            self.close(registry, token);
        }
    }

    /// Close the connections whose deadline has passed, and retry an accept that failed
    /// (out of descriptors: the edge-triggered listener would not report the waiting
    /// connections again). Called on every main-loop turn.
    pub fn on_tick(&mut self, registry: &Registry, now: Instant) {
        if self.accept_failed {
            self.accept(registry);
        }
        let expired: Vec<Token> = self.conns.iter().filter(|(_, c)| now >= c.deadline).map(|(t, _)| *t).collect();
        for t in expired {
            self.close(registry, t);
        }
    }

    fn close(&mut self, registry: &Registry, token: Token) {
        if let Some(mut c) = self.conns.remove(&token) {
            let _ = registry.deregister(&mut c.stream);
            self.state.control.overload.release_connection();
        }
    }

    fn accept(&mut self, registry: &Registry) {
        loop {
            match self.listener.accept() {
                Ok((mut stream, _)) => {
                    if self.conns.len() >= MAX_CONNS && !self.evict_idlest(registry) {
                        // Every connection is being answered: refuse at once. A fresh
                        // socket takes this small response without blocking.
                        let _ = stream.write(&Response::text(503, "too many admin connections\n").encode());
                        continue;
                    }
                    let Ok(local) = stream.local_addr() else { continue };
                    // As Envoy: the admin's connections count towards the global
                    // downstream limit and are refused beyond it, unless
                    // `ignore_global_conn_limit`.
                    if !self.state.control.overload.try_allocate_connection(!self.state.ignore_global_conn_limit) {
                        tracing::debug!("admin connection over the global connection limit: closed");
                        continue;
                    }
                    let token = Token(self.next);
                    self.next += 1;
                    if registry.register(&mut stream, token, Interest::READABLE | Interest::WRITABLE).is_err() {
                        self.state.control.overload.release_connection();
                    } else {
                        let now = Instant::now();
                        self.conns.insert(
                            token,
                            AdminConn {
                                stream,
                                local,
                                input: Vec::new(),
                                output: Vec::new(),
                                written: 0,
                                accepted: now,
                                deadline: now + IDLE_TIMEOUT,
                            },
                        );
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.accept_failed = false;
                    return;
                }
                Err(e) => {
                    if !self.accept_failed {
                        tracing::warn!("admin listener: accept failed ({e}); retrying every main-loop turn");
                    }
                    self.accept_failed = true;
                    return;
                }
            }
        }
    }

    /// Close the connection that has waited longest without a complete request; false
    /// when there is none (all are being answered).
    fn evict_idlest(&mut self, registry: &Registry) -> bool {
        let idlest = self.conns.iter().filter(|(_, c)| c.output.is_empty()).min_by_key(|(_, c)| c.accepted);
        match idlest.map(|(t, _)| *t) {
            Some(t) => {
                self.close(registry, t);
                true
            }
            None => false,
        }
    }
}

/// Read the request, answer it, write. True when the connection is finished.
fn serve(c: &mut AdminConn, state: &AdminState) -> bool {
    if c.output.is_empty() {
        let mut buf = [0u8; 4096];
        loop {
            match c.stream.read(&mut buf) {
                Ok(0) => return true,
                Ok(n) => {
                    c.input.extend_from_slice(&buf[..n]);
                    if c.input.len() > MAX_HEAD {
                        c.output = Response::text(431, "request head too large\n").encode();
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => return true,
            }
        }
        if c.output.is_empty() {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut req = httparse::Request::new(&mut headers);
            match req.parse(&c.input) {
                Ok(httparse::Status::Complete(_)) => {
                    let method = req.method.unwrap_or("GET");
                    let target = req.path.unwrap_or("/");
                    let path = target.split('?').next().unwrap_or(target);
                    let refused = if method == "POST" && handlers::mutates(path) {
                        guard::check(req.headers, c.local).err()
                    } else {
                        None
                    };
                    c.output = refused.unwrap_or_else(|| handlers::handle(state, method, target)).encode();
                }
                Ok(httparse::Status::Partial) => return false,
                Err(_) => c.output = Response::text(400, "bad request\n").encode(),
            }
        }
    }
    while c.written < c.output.len() {
        match c.stream.write(&c.output[c.written..]) {
            Ok(0) => return true,
            Ok(n) => {
                c.written += n;
                c.deadline = Instant::now() + IDLE_TIMEOUT;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
            Err(_) => return true,
        }
    }
    let _ = c.stream.shutdown(std::net::Shutdown::Write);
    true
}
