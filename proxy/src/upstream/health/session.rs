//! One host's health-check session: the socket side of a check, generic over the
//! readiness contract (`sluice_stack::Stack`), never blocking.
//!
//! A session waits for its next check, then connects (or reuses its connection), writes
//! the request (HTTP) or payload (TCP), and reads until the answer decides the check,
//! the connection fails, or `timeout` passes. It reports a [`Verdict`]; the caller
//! applies it to the host's health state and tells the session when to check next. A
//! connection that the host closes between checks is dropped quietly and reopened at
//! the next check, as Envoy does.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use sluice_stack::{Interest, SocketId, Stack, Token};

use super::http::{ResponseParser, MAX_HEAD};
use super::{Checker, FailureType, HostState, Protocol};
use crate::stats::UpstreamStats;
use crate::upstream::host::Host;

/// How a check ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Pass { degraded: bool },
    Fail { failure: FailureType, immediate: bool },
}

impl Verdict {
    fn network() -> Option<Verdict> {
        Some(Verdict::Fail { failure: FailureType::Network, immediate: false })
    }
}

#[derive(Debug)]
struct Conn {
    socket: SocketId,
    connected: bool,
    out: Vec<u8>,
    written: usize,
    input: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// The next check starts at this instant.
    Waiting(Instant),
    /// A check is running and fails at this instant.
    InFlight(Instant),
}

/// Most bytes buffered from a TCP check's answer before it counts as a failure.
const MAX_INPUT: usize = 64 * 1024;

#[derive(Debug)]
pub struct Session {
    pub host: Arc<Host>,
    pub state: HostState,
    address: SocketAddr,
    conn: Option<Conn>,
    parser: Option<ResponseParser>,
    phase: Phase,
}

impl Session {
    /// A session whose first check starts at `first`.
    pub fn new(host: Arc<Host>, first: Instant) -> Session {
        Session {
            address: host.health_check_address,
            host,
            state: HostState::default(),
            conn: None,
            parser: None,
            phase: Phase::Waiting(first),
        }
    }

    /// When the session needs its timer.
    pub fn deadline(&self) -> Instant {
        match self.phase {
            Phase::Waiting(t) | Phase::InFlight(t) => t,
        }
    }

    pub fn in_flight(&self) -> bool {
        matches!(self.phase, Phase::InFlight(_))
    }

    /// Schedule the next check (after a verdict, or to pull an idle wait earlier).
    pub fn wait_until(&mut self, at: Instant) {
        self.phase = Phase::Waiting(at);
    }

    /// The timer fired: start a due check, or fail a check that timed out.
    pub fn on_timer<S: Stack>(
        &mut self,
        stack: &mut S,
        checker: &Checker,
        token: Token,
        stats: &UpstreamStats,
        now: Instant,
    ) -> Option<Verdict> {
        match self.phase {
            Phase::Waiting(at) if now >= at => self.start(stack, checker, token, stats, now),
            Phase::InFlight(at) if now >= at => {
                self.close(stack);
                Some(Verdict::Fail { failure: FailureType::NetworkTimeout, immediate: false })
            }
            _ => None,
        }
    }

    fn start<S: Stack>(
        &mut self,
        stack: &mut S,
        checker: &Checker,
        token: Token,
        stats: &UpstreamStats,
        now: Instant,
    ) -> Option<Verdict> {
        stats.hc_attempt.inc();
        self.phase = Phase::InFlight(now + checker.timeout);
        if self.conn.is_none() {
            let socket = match stack.connect(self.address) {
                Ok(s) => s,
                Err(e) => {
                    tracing::debug!(host = %self.address, "health check connect failed: {e}");
                    return Verdict::network();
                }
            };
            if let Err(e) = stack.register(socket, token, Interest::BOTH) {
                tracing::warn!("cannot register a health-check socket: {e}");
                stack.close(socket);
                return Verdict::network();
            }
            self.conn = Some(Conn { socket, connected: false, out: Vec::new(), written: 0, input: Vec::new() });
        }
        let conn = self.conn.as_mut().expect("connected above");
        conn.input.clear();
        conn.written = 0;
        conn.out.clear();
        match &checker.protocol {
            Protocol::Tcp(t) => conn.out.extend_from_slice(&t.send),
            Protocol::Http(h) => {
                conn.out.extend_from_slice(&h.request);
                self.parser = Some(ResponseParser::new(h.head));
            }
        }
        if conn.connected {
            return self.on_ready(stack, checker, &mut [0u8; 0], now);
        }
        None
    }

    /// Readiness on the session's socket.
    pub fn on_ready<S: Stack>(
        &mut self,
        stack: &mut S,
        checker: &Checker,
        scratch: &mut [u8],
        _now: Instant,
    ) -> Option<Verdict> {
        let in_flight = self.in_flight();
        let conn = self.conn.as_mut()?;
        if !conn.connected {
            match stack.connect_result(conn.socket) {
                Ok(()) => conn.connected = true,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
                Err(e) => {
                    tracing::debug!(host = %self.address, "health check connect failed: {e}");
                    self.close(stack);
                    return if in_flight { Verdict::network() } else { None };
                }
            }
            if let Protocol::Tcp(t) = &checker.protocol {
                if t.connect_only() && in_flight {
                    // A connect-only check passes on connect and closes at once.
                    self.close(stack);
                    return Some(Verdict::Pass { degraded: false });
                }
            }
        }
        // Flush what is left of the request.
        while conn.written < conn.out.len() {
            match stack.write(conn.socket, &conn.out[conn.written..]) {
                Ok(0) => break,
                Ok(n) => conn.written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => {
                    self.close(stack);
                    return if in_flight { Verdict::network() } else { None };
                }
            }
        }
        // Read everything available.
        let mut eof = false;
        loop {
            if scratch.is_empty() {
                break;
            }
            match stack.read(conn.socket, scratch) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(n) if in_flight => conn.input.extend_from_slice(&scratch[..n]),
                // Bytes while no check runs are not an answer to anything: drop them.
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => {
                    self.close(stack);
                    return if in_flight { Verdict::network() } else { None };
                }
            }
        }
        if !in_flight {
            if eof {
                self.close(stack);
            }
            return None;
        }
        let verdict = match &checker.protocol {
            Protocol::Tcp(t) => {
                if t.matches(&conn.input) {
                    conn.input.clear();
                    if !checker.reuse_connection {
                        self.close(stack);
                    }
                    Some(Verdict::Pass { degraded: false })
                } else if eof || conn.input.len() > MAX_INPUT {
                    self.close(stack);
                    Verdict::network()
                } else {
                    None
                }
            }
            Protocol::Http(h) => {
                let parser = self.parser.as_mut()?;
                let parsed = match parser.feed(&mut conn.input) {
                    Ok(None) if eof => parser.on_eof().map(Some),
                    other => other,
                };
                match parsed {
                    Ok(Some(resp)) => {
                        self.parser = None;
                        if resp.close || eof || !checker.reuse_connection {
                            self.close(stack);
                        }
                        Some(if h.expected(resp.status) {
                            Verdict::Pass { degraded: resp.degraded }
                        } else {
                            Verdict::Fail { failure: FailureType::Active, immediate: resp.immediate_fail }
                        })
                    }
                    Ok(None) if conn.input.len() > MAX_HEAD + MAX_INPUT => {
                        self.close(stack);
                        Verdict::network()
                    }
                    Ok(None) => None,
                    Err(e) => {
                        tracing::debug!(host = %self.address, ?e, "health check: bad HTTP response");
                        self.close(stack);
                        Verdict::network()
                    }
                }
            }
        };
        if verdict.is_none() && eof {
            self.close(stack);
            return Verdict::network();
        }
        verdict
    }

    /// Close the connection (if any).
    pub fn close<S: Stack>(&mut self, stack: &mut S) {
        if let Some(c) = self.conn.take() {
            stack.abort(c.socket);
        }
        self.parser = None;
    }
}
