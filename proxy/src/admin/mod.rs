//! The admin server (`admin.address`): Envoy's operator endpoints on a kernel socket,
//! served by the main thread in both datapaths.
//!
//! Requests are small and answered at once: each connection reads one request head,
//! gets one response and is closed. Mutating endpoints answer only POST. The server
//! never blocks the main thread (non-blocking sockets on the main thread's poll) and
//! bounds what a client may send (8 KiB of head, 64 connections).

mod clusters;
mod handlers;
mod prometheus;

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

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
    pub control: Arc<Control>,
    pub started: Instant,
    pub started_wall: std::time::SystemTime,
    /// Workers are running.
    pub live: AtomicBool,
    /// `/healthcheck/fail` was called (and not undone by `/healthcheck/ok`).
    pub health_check_failed: AtomicBool,
    pub concurrency: usize,
    pub config_path: String,
    /// Set by `/quitquitquit`: the main thread stops the process.
    pub quit: AtomicBool,
}

impl AdminState {
    /// Envoy's server state: PRE_INITIALIZING, LIVE or DRAINING.
    pub fn state(&self) -> &'static str {
        if !self.live.load(Ordering::Relaxed) {
            "PRE_INITIALIZING"
        } else if self.health_check_failed.load(Ordering::Relaxed) || self.control.draining.load(Ordering::Relaxed) {
            "DRAINING"
        } else {
            "LIVE"
        }
    }
}

const MAX_HEAD: usize = 8 * 1024;
const MAX_CONNS: usize = 64;

struct AdminConn {
    stream: TcpStream,
    input: Vec<u8>,
    output: Vec<u8>,
    written: usize,
}

/// The admin listener and its connections, on the main thread's poll.
pub struct AdminServer {
    listener: TcpListener,
    token: Token,
    next: usize,
    conns: HashMap<Token, AdminConn>,
    state: Arc<AdminState>,
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
        registry.register(&mut listener, token, Interest::READABLE)?;
        Ok(AdminServer { listener, token, next: token.0 + 1, conns: HashMap::new(), state, local_addr })
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
            if let Some(mut c) = self.conns.remove(&token) {
                let _ = registry.deregister(&mut c.stream);
            }
        }
    }

    fn accept(&mut self, registry: &Registry) {
        loop {
            match self.listener.accept() {
                Ok((mut stream, _)) => {
                    if self.conns.len() >= MAX_CONNS {
                        continue;
                    }
                    let token = Token(self.next);
                    self.next += 1;
                    if registry.register(&mut stream, token, Interest::READABLE | Interest::WRITABLE).is_ok() {
                        self.conns
                            .insert(token, AdminConn { stream, input: Vec::new(), output: Vec::new(), written: 0 });
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(_) => return,
            }
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
                    let method = req.method.unwrap_or("GET").to_string();
                    let path = req.path.unwrap_or("/").to_string();
                    c.output = handlers::handle(state, &method, &path).encode();
                }
                Ok(httparse::Status::Partial) => return false,
                Err(_) => c.output = Response::text(400, "bad request\n").encode(),
            }
        }
    }
    while c.written < c.output.len() {
        match c.stream.write(&c.output[c.written..]) {
            Ok(0) => return true,
            Ok(n) => c.written += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
            Err(_) => return true,
        }
    }
    let _ = c.stream.shutdown(std::net::Shutdown::Write);
    true
}
