//! The peer host's event loop: the only code that touches its `SmolStack`.
//!
//! Application threads send [`Request`]s over a channel and wake the stack; the loop
//! starts each request, keeps the ones that cannot finish yet (a read with nothing to
//! read, an accept with nothing pending, a write that does not fit, a connect still in
//! its handshake) and retries all of them after every poll round, answering each one
//! exactly once: when it completes, fails, or reaches its deadline (`TimedOut`). Every
//! socket is registered, so any change of readiness ends the poll; the poll's timeout is
//! the earliest deadline of a waiting request. When the host stops, waiting requests
//! are dropped unanswered, which their callers see as "peer host stopped".

use std::collections::HashMap;
use std::io;
use std::net::{Shutdown, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::Arc;
use std::time::Instant;

use sluice_datapath::mem::MemPort;
use sluice_stack::smol::{EthernetAddress, Ipv4Address, SmolStack};
use sluice_stack::{Events, Interest, ListenOptions, SocketId, Stack, Token};

/// What a caller asks of the peer host.
pub(super) enum Op {
    /// Open a connection; answered once it is established (or failed).
    Connect {
        addr: SocketAddr,
        deadline: Instant,
    },
    /// A connect whose handshake is under way (the driver's own state of `Connect`).
    Connecting {
        socket: SocketId,
        deadline: Instant,
    },
    Listen {
        addr: SocketAddr,
    },
    /// Answered with the next accepted connection.
    Accept {
        listener: SocketId,
        deadline: Instant,
    },
    /// Answered with at least one byte, or empty at end of stream.
    Read {
        socket: SocketId,
        buf: Vec<u8>,
        max: usize,
        deadline: Instant,
    },
    /// Answered once all of `data` sits in the send buffer.
    Write {
        socket: SocketId,
        data: Vec<u8>,
        written: usize,
        deadline: Instant,
    },
    Shutdown {
        socket: SocketId,
        how: Shutdown,
    },
    /// Reset the connection (RST).
    Abort {
        socket: SocketId,
    },
    /// The last handle went away: close gracefully. Never answered.
    Close {
        socket: SocketId,
    },
    /// A static neighbour entry (`ip` is at `mac`), as `ip neigh add` would make.
    Neighbor {
        ip: Ipv4Address,
        mac: EthernetAddress,
    },
}

/// A successful answer.
pub(super) enum Done {
    Unit,
    Socket { id: SocketId, local: SocketAddr, peer: Option<SocketAddr> },
    Bytes(Vec<u8>),
}

pub(super) type Reply = io::Result<Done>;

pub(super) struct Request {
    pub op: Op,
    /// `None` for requests nobody waits for.
    pub reply: Option<Sender<Reply>>,
}

/// What the caller side has shut down on a socket (the stack only knows about writes).
#[derive(Default)]
struct Closed {
    read: bool,
    write: bool,
}

pub(super) struct Driver {
    pub stack: SmolStack<MemPort>,
    pub requests: Receiver<Request>,
    pub stop: Arc<AtomicBool>,
    waiting: Vec<Request>,
    closed: HashMap<SocketId, Closed>,
    next_token: usize,
}

/// Progress of one attempt at a request.
enum Step {
    Finished(Reply),
    Wait,
}

impl Driver {
    pub fn new(stack: SmolStack<MemPort>, requests: Receiver<Request>, stop: Arc<AtomicBool>) -> Driver {
        Driver { stack, requests, stop, waiting: Vec::new(), closed: HashMap::new(), next_token: 0 }
    }

    /// Serve requests until stopped. A stack error ends the loop with that error.
    pub fn run(mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        loop {
            while let Ok(request) = self.requests.try_recv() {
                self.start(request);
            }
            self.retry();
            if self.stop.load(Ordering::Acquire) {
                return Ok(());
            }
            let now = Instant::now();
            let timeout =
                self.waiting.iter().filter_map(|r| deadline(&r.op)).min().map(|d| d.saturating_duration_since(now));
            self.stack.poll(&mut events, timeout)?;
        }
    }

    fn register(&mut self, socket: SocketId, interest: Interest) -> io::Result<()> {
        self.next_token += 1;
        self.stack.register(socket, Token(self.next_token), interest)
    }

    /// First attempt at a fresh request; immediate operations finish here.
    fn start(&mut self, mut request: Request) {
        let reply = match request.op {
            Op::Connect { addr, deadline } => match self.stack.connect(addr) {
                Ok(socket) => match self.register(socket, Interest::BOTH) {
                    Ok(()) => {
                        request.op = Op::Connecting { socket, deadline };
                        self.waiting.push(request);
                        return;
                    }
                    Err(e) => {
                        self.stack.abort(socket);
                        Err(e)
                    }
                },
                Err(e) => Err(e),
            },
            Op::Listen { addr } => {
                let opts = ListenOptions { reuse_port: false, ..ListenOptions::default() };
                self.stack.listen(addr, &opts).and_then(|id| {
                    self.register(id, Interest::READABLE)?;
                    Ok(Done::Socket { id, local: self.stack.local_addr(id)?, peer: None })
                })
            }
            Op::Shutdown { socket, how } => self.shutdown(socket, how),
            Op::Abort { socket } => {
                self.stack.abort(socket);
                self.forget(socket, io::ErrorKind::ConnectionAborted);
                Ok(Done::Unit)
            }
            Op::Close { socket } => {
                self.stack.close(socket);
                self.forget(socket, io::ErrorKind::NotConnected);
                Ok(Done::Unit)
            }
            Op::Neighbor { ip, mac } => self.stack.add_neighbor(ip, mac).map(|()| Done::Unit),
            Op::Connecting { .. } | Op::Accept { .. } | Op::Read { .. } | Op::Write { .. } => {
                self.waiting.push(request);
                return;
            }
        };
        answer(request.reply, reply);
    }

    /// Retry every waiting request once, answering those that are done.
    fn retry(&mut self) {
        let now = Instant::now();
        let mut waiting = std::mem::take(&mut self.waiting);
        waiting.retain_mut(|request| match self.attempt(&mut request.op, now) {
            Step::Wait => true,
            Step::Finished(reply) => {
                answer(request.reply.take(), reply);
                false
            }
        });
        // Requests started while retrying (none today) would be in `self.waiting`.
        waiting.append(&mut self.waiting);
        self.waiting = waiting;
    }

    fn attempt(&mut self, op: &mut Op, now: Instant) -> Step {
        let step = match op {
            Op::Connecting { socket, .. } => match self.stack.connect_result(*socket) {
                Ok(()) => Step::Finished(self.stack.local_addr(*socket).and_then(|local| {
                    Ok(Done::Socket { id: *socket, local, peer: Some(self.stack.peer_addr(*socket)?) })
                })),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => Step::Wait,
                Err(e) => {
                    self.stack.abort(*socket);
                    Step::Finished(Err(e))
                }
            },
            Op::Accept { listener, .. } => match self.stack.accept(*listener) {
                Ok(a) => match self.register(a.socket, Interest::BOTH) {
                    Ok(()) => Step::Finished(Ok(Done::Socket { id: a.socket, local: a.local, peer: Some(a.peer) })),
                    Err(e) => {
                        self.stack.abort(a.socket);
                        Step::Finished(Err(e))
                    }
                },
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => Step::Wait,
                Err(e) => Step::Finished(Err(e)),
            },
            Op::Read { socket, buf, max, .. } => {
                if self.closed.get(socket).is_some_and(|c| c.read) {
                    buf.clear();
                    return Step::Finished(Ok(Done::Bytes(std::mem::take(buf))));
                }
                buf.resize(*max, 0);
                match self.stack.read(*socket, buf) {
                    Ok(n) => {
                        buf.truncate(n);
                        Step::Finished(Ok(Done::Bytes(std::mem::take(buf))))
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => Step::Wait,
                    Err(e) => Step::Finished(Err(e)),
                }
            }
            Op::Write { socket, data, written, .. } => {
                if self.closed.get(socket).is_some_and(|c| c.write) {
                    return Step::Finished(Err(io::Error::new(io::ErrorKind::BrokenPipe, "shut down for writing")));
                }
                loop {
                    if *written == data.len() {
                        break Step::Finished(Ok(Done::Unit));
                    }
                    match self.stack.write(*socket, &data[*written..]) {
                        Ok(n) => *written += n,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break Step::Wait,
                        Err(e) => break Step::Finished(Err(e)),
                    }
                }
            }
            // Immediate operations never wait (see `start`).
            Op::Connect { .. }
            | Op::Listen { .. }
            | Op::Shutdown { .. }
            | Op::Abort { .. }
            | Op::Close { .. }
            | Op::Neighbor { .. } => Step::Finished(Ok(Done::Unit)),
        };
        match step {
            Step::Wait if deadline(op).is_some_and(|d| now >= d) => {
                if let Op::Connecting { socket, .. } = op {
                    self.stack.abort(*socket);
                }
                Step::Finished(Err(io::Error::new(io::ErrorKind::TimedOut, "peer host: operation timed out")))
            }
            step => step,
        }
    }

    fn shutdown(&mut self, socket: SocketId, how: Shutdown) -> Reply {
        if how != Shutdown::Read {
            self.stack.shutdown_write(socket)?;
        }
        let closed = self.closed.entry(socket).or_default();
        closed.read |= how != Shutdown::Write;
        closed.write |= how != Shutdown::Read;
        // Waiting reads see end of stream and waiting writes a broken pipe at once.
        self.retry();
        Ok(Done::Unit)
    }

    /// The socket is gone: fail whatever still waits on it.
    fn forget(&mut self, socket: SocketId, kind: io::ErrorKind) {
        self.closed.remove(&socket);
        self.waiting.retain_mut(|r| {
            if op_socket(&r.op) != Some(socket) {
                return true;
            }
            answer(r.reply.take(), Err(io::Error::new(kind, "the socket was closed")));
            false
        });
    }
}

fn deadline(op: &Op) -> Option<Instant> {
    match op {
        Op::Connect { deadline, .. }
        | Op::Connecting { deadline, .. }
        | Op::Accept { deadline, .. }
        | Op::Read { deadline, .. }
        | Op::Write { deadline, .. } => Some(*deadline),
        Op::Listen { .. } | Op::Shutdown { .. } | Op::Abort { .. } | Op::Close { .. } | Op::Neighbor { .. } => None,
    }
}

fn op_socket(op: &Op) -> Option<SocketId> {
    match op {
        Op::Accept { listener: s, .. }
        | Op::Read { socket: s, .. }
        | Op::Write { socket: s, .. }
        | Op::Shutdown { socket: s, .. }
        | Op::Abort { socket: s }
        | Op::Close { socket: s }
        | Op::Connecting { socket: s, .. } => Some(*s),
        Op::Connect { .. } | Op::Listen { .. } | Op::Neighbor { .. } => None,
    }
}

fn answer(reply: Option<Sender<Reply>>, value: Reply) {
    if let Some(tx) = reply {
        // The caller may have given up (its thread panicked): nothing to do then.
        let _ = tx.send(value);
    }
}
