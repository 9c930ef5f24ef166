//! An in-memory [`Stack`] whose connections are byte pipes, for driving a whole
//! [`Worker`](crate::worker::Worker) from one thread without sockets: the fuzz targets
//! and their deterministic counterparts.
//!
//! No TCP: a connection is two bounded byte queues, one per direction, between the
//! worker's side (a [`SocketId`] of this stack) and the test's side (a [`ConnId`] of
//! the shared [`PipeNet`]). The test connects to the worker's listeners and reads and
//! writes as a client; it also plays the origin for every connection the worker opens
//! ([`PipeNet::take_upstream`]). The readiness contract holds as for the real backends:
//! events are edge-triggered (a side's change marks the other side for one event; a
//! registration reports once), spurious events happen, EOF is `Ok(0)`, a reset is an
//! error once the bytes before it are read. `poll` never blocks: time is the caller's.

use std::collections::{HashMap, VecDeque};
use std::io::{self, ErrorKind};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use sluice_stack::socket::SocketTable;
use sluice_stack::{Accepted, Event, Events, Interest, ListenOptions, SocketId, Stack, Token, Wake};

/// Bytes one direction of a pipe holds before writes stop (a socket buffer).
pub const PIPE_CAPACITY: usize = 64 * 1024;

/// The test's handle on one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnId(usize);

/// One connection: what each side sent and did.
#[derive(Debug, Default)]
struct Pipe {
    /// Bytes from the test to the worker.
    to_worker: VecDeque<u8>,
    /// Bytes from the worker to the test.
    to_test: VecDeque<u8>,
    /// The test sent FIN / reset the connection.
    test_fin: bool,
    test_reset: bool,
    /// The worker sent FIN (shutdown or close) / reset (abort) / let go of its socket.
    worker_fin: bool,
    worker_reset: bool,
    worker_closed: bool,
    /// The worker's socket has news for one event.
    dirty: bool,
}

enum Sock {
    Listener { addr: SocketAddr, backlog: VecDeque<usize>, token: Option<Token>, dirty: bool },
    Conn { pipe: usize, local: SocketAddr, peer: SocketAddr, token: Option<(Token, Interest)> },
}

#[derive(Default)]
struct Net {
    sockets: SocketTable<Sock>,
    listeners: HashMap<SocketAddr, SocketId>,
    pipes: Vec<Pipe>,
    /// Connections the worker opened, not yet taken by the test (pipe, destination).
    upstream: VecDeque<(usize, SocketAddr)>,
    next_port: u16,
    wakers: Vec<(Token, Arc<AtomicBool>)>,
}

/// The test's side of the network, shared with the stack.
#[derive(Clone, Default)]
pub struct PipeNet(Arc<Mutex<Net>>);

/// The worker's side.
pub struct PipeStack(Arc<Mutex<Net>>);

fn lock(net: &Arc<Mutex<Net>>) -> MutexGuard<'_, Net> {
    net.lock().unwrap_or_else(|e| e.into_inner())
}

impl PipeNet {
    pub fn new() -> PipeNet {
        PipeNet::default()
    }

    /// The stack a worker runs on.
    pub fn stack(&self) -> PipeStack {
        PipeStack(Arc::clone(&self.0))
    }

    /// Connect to the listener on `addr` (a refused connect: `None`).
    pub fn connect(&self, addr: SocketAddr) -> Option<ConnId> {
        let mut net = lock(&self.0);
        let id = *net.listeners.get(&addr)?;
        let pipe = net.pipes.len();
        net.pipes.push(Pipe::default());
        if let Ok(Sock::Listener { backlog, dirty, .. }) = net.sockets.get_mut(id) {
            backlog.push_back(pipe);
            *dirty = true;
        }
        Some(ConnId(pipe))
    }

    /// The next connection the worker opened, with where it was going.
    pub fn take_upstream(&self) -> Option<(ConnId, SocketAddr)> {
        lock(&self.0).upstream.pop_front().map(|(p, a)| (ConnId(p), a))
    }

    /// Send `data` to the worker (as much as the pipe takes).
    pub fn write(&self, c: ConnId, data: &[u8]) -> usize {
        let mut net = lock(&self.0);
        let p = &mut net.pipes[c.0];
        if p.test_fin || p.test_reset || p.worker_reset || p.worker_closed {
            return 0;
        }
        let n = PIPE_CAPACITY.saturating_sub(p.to_worker.len()).min(data.len());
        p.to_worker.extend(&data[..n]);
        p.dirty |= n > 0;
        n
    }

    /// Take what the worker sent (at most `max` bytes) into `into`.
    pub fn read(&self, c: ConnId, into: &mut Vec<u8>, max: usize) -> usize {
        let mut net = lock(&self.0);
        let p = &mut net.pipes[c.0];
        let n = p.to_test.len().min(max);
        into.extend(p.to_test.drain(..n));
        // Room again for the worker's writes.
        p.dirty |= n > 0;
        n
    }

    /// Bytes the worker sent that the test has not read.
    pub fn unread(&self, c: ConnId) -> usize {
        lock(&self.0).pipes[c.0].to_test.len()
    }

    /// Send FIN.
    pub fn shutdown(&self, c: ConnId) {
        let mut net = lock(&self.0);
        let p = &mut net.pipes[c.0];
        p.test_fin = true;
        p.dirty = true;
    }

    /// Reset the connection (what the test had not read is lost).
    pub fn reset(&self, c: ConnId) {
        let mut net = lock(&self.0);
        let p = &mut net.pipes[c.0];
        p.test_reset = true;
        p.to_test.clear();
        p.dirty = true;
    }

    /// The worker will send nothing more: it sent FIN, reset or closed the connection.
    pub fn worker_done(&self, c: ConnId) -> bool {
        let net = lock(&self.0);
        let p = &net.pipes[c.0];
        p.worker_fin || p.worker_reset || p.worker_closed
    }

    /// The worker reset the connection.
    pub fn worker_reset(&self, c: ConnId) -> bool {
        lock(&self.0).pipes[c.0].worker_reset
    }

    /// Sockets the worker holds open (listeners included).
    pub fn open_sockets(&self) -> usize {
        lock(&self.0).sockets.len()
    }
}

impl Net {
    fn conn(&mut self, s: SocketId) -> io::Result<(&mut Pipe, SocketAddr, SocketAddr)> {
        match self.sockets.get_mut(s)? {
            Sock::Conn { pipe, local, peer, .. } => Ok((&mut self.pipes[*pipe], *local, *peer)),
            Sock::Listener { .. } => Err(io::Error::new(ErrorKind::InvalidInput, "a listener")),
        }
    }

    fn new_conn(&mut self, pipe: usize, local: SocketAddr, peer: SocketAddr) -> SocketId {
        self.sockets.insert(Sock::Conn { pipe, local, peer, token: None })
    }
}

struct PipeWaker(Arc<AtomicBool>);

impl Wake for PipeWaker {
    fn wake(&self) -> io::Result<()> {
        self.0.store(true, Ordering::Relaxed);
        Ok(())
    }
}

fn would_block() -> io::Error {
    io::Error::from(ErrorKind::WouldBlock)
}

impl Stack for PipeStack {
    fn poll(&mut self, events: &mut Events, _timeout: Option<Duration>) -> io::Result<()> {
        events.clear();
        let mut guard = lock(&self.0);
        let net = &mut *guard;
        for (token, flag) in &net.wakers {
            if flag.swap(false, Ordering::Relaxed) {
                events.push(Event::new(*token, Event::READABLE));
            }
        }
        let ids: Vec<SocketId> = net.sockets.iter().map(|(id, _)| id).collect();
        for id in ids {
            let Ok(sock) = net.sockets.get_mut(id) else { continue };
            match sock {
                Sock::Listener { backlog, token, dirty, .. } => {
                    if let (Some(t), true) = (*token, *dirty && !backlog.is_empty()) {
                        if !events.push(Event::new(t, Event::READABLE)) {
                            return Ok(());
                        }
                        *dirty = false;
                    }
                }
                Sock::Conn { pipe, token: Some((t, interest)), .. } => {
                    let p = &mut net.pipes[*pipe];
                    if !p.dirty {
                        continue;
                    }
                    let mut flags = 0;
                    if interest.is_readable() && (!p.to_worker.is_empty() || p.test_fin || p.test_reset) {
                        flags |= Event::READABLE;
                    }
                    if interest.is_writable() && p.to_test.len() < PIPE_CAPACITY {
                        flags |= Event::WRITABLE;
                    }
                    if p.test_fin || p.test_reset {
                        flags |= Event::READ_CLOSED;
                    }
                    if p.test_reset {
                        flags |= Event::ERROR | Event::WRITE_CLOSED;
                    }
                    if flags != 0 && !events.push(Event::new(*t, flags)) {
                        return Ok(());
                    }
                    p.dirty = false;
                }
                Sock::Conn { .. } => {}
            }
        }
        Ok(())
    }

    fn waker(&mut self, token: Token) -> io::Result<Arc<dyn Wake>> {
        let flag = Arc::new(AtomicBool::new(false));
        lock(&self.0).wakers.push((token, Arc::clone(&flag)));
        Ok(Arc::new(PipeWaker(flag)))
    }

    fn listen(&mut self, addr: SocketAddr, _opts: &ListenOptions) -> io::Result<SocketId> {
        let mut net = lock(&self.0);
        if net.listeners.contains_key(&addr) {
            return Err(ErrorKind::AddrInUse.into());
        }
        let id = net.sockets.insert(Sock::Listener { addr, backlog: VecDeque::new(), token: None, dirty: false });
        net.listeners.insert(addr, id);
        Ok(id)
    }

    fn accept(&mut self, listener: SocketId) -> io::Result<Accepted> {
        let mut net = lock(&self.0);
        let (pipe, local) = match net.sockets.get_mut(listener)? {
            Sock::Listener { addr, backlog, .. } => (backlog.pop_front().ok_or_else(would_block)?, *addr),
            Sock::Conn { .. } => return Err(ErrorKind::InvalidInput.into()),
        };
        let peer = SocketAddr::from(([10, 98, 0, 2], 10_000 + (pipe % 50_000) as u16));
        net.pipes[pipe].dirty = true;
        let socket = net.new_conn(pipe, local, peer);
        Ok(Accepted { socket, peer, local })
    }

    fn connect(&mut self, addr: SocketAddr) -> io::Result<SocketId> {
        let mut net = lock(&self.0);
        let pipe = net.pipes.len();
        net.pipes.push(Pipe { dirty: true, ..Pipe::default() });
        net.next_port = net.next_port.wrapping_add(1);
        let local = SocketAddr::from(([10, 98, 0, 1], 20_000 + net.next_port % 40_000));
        net.upstream.push_back((pipe, addr));
        Ok(net.new_conn(pipe, local, addr))
    }

    fn connect_result(&mut self, socket: SocketId) -> io::Result<()> {
        let mut net = lock(&self.0);
        let (p, _, _) = net.conn(socket)?;
        if p.test_reset {
            return Err(ErrorKind::ConnectionRefused.into());
        }
        Ok(())
    }

    fn read(&mut self, socket: SocketId, buf: &mut [u8]) -> io::Result<usize> {
        let mut net = lock(&self.0);
        let (p, _, _) = net.conn(socket)?;
        if p.to_worker.is_empty() {
            return if p.test_reset {
                Err(ErrorKind::ConnectionReset.into())
            } else if p.test_fin {
                Ok(0)
            } else {
                Err(would_block())
            };
        }
        let n = p.to_worker.len().min(buf.len());
        for (dst, src) in buf.iter_mut().zip(p.to_worker.drain(..n)) {
            *dst = src;
        }
        Ok(n)
    }

    fn peek(&mut self, socket: SocketId, buf: &mut [u8]) -> io::Result<usize> {
        let mut net = lock(&self.0);
        let (p, _, _) = net.conn(socket)?;
        if p.to_worker.is_empty() {
            return if p.test_reset || p.test_fin { Ok(0) } else { Err(would_block()) };
        }
        let n = p.to_worker.len().min(buf.len());
        for (dst, src) in buf.iter_mut().zip(p.to_worker.iter()) {
            *dst = *src;
        }
        Ok(n)
    }

    fn write(&mut self, socket: SocketId, buf: &[u8]) -> io::Result<usize> {
        let mut net = lock(&self.0);
        let (p, _, _) = net.conn(socket)?;
        if p.test_reset {
            return Err(ErrorKind::ConnectionReset.into());
        }
        if p.worker_fin {
            return Err(ErrorKind::BrokenPipe.into());
        }
        let n = PIPE_CAPACITY.saturating_sub(p.to_test.len()).min(buf.len());
        if n == 0 && !buf.is_empty() {
            return Err(would_block());
        }
        p.to_test.extend(&buf[..n]);
        Ok(n)
    }

    fn shutdown_write(&mut self, socket: SocketId) -> io::Result<()> {
        let mut net = lock(&self.0);
        net.conn(socket)?.0.worker_fin = true;
        Ok(())
    }

    fn close(&mut self, socket: SocketId) {
        let mut net = lock(&self.0);
        if let Some(sock) = net.sockets.remove(socket) {
            match sock {
                Sock::Conn { pipe, .. } => {
                    net.pipes[pipe].worker_closed = true;
                    net.pipes[pipe].worker_fin = true;
                }
                Sock::Listener { addr, .. } => {
                    net.listeners.remove(&addr);
                }
            }
        }
    }

    fn abort(&mut self, socket: SocketId) {
        let mut net = lock(&self.0);
        if let Some(sock) = net.sockets.remove(socket) {
            match sock {
                Sock::Conn { pipe, .. } => {
                    let p = &mut net.pipes[pipe];
                    p.worker_closed = true;
                    p.worker_reset = true;
                    p.to_test.clear();
                }
                Sock::Listener { addr, .. } => {
                    net.listeners.remove(&addr);
                }
            }
        }
    }

    fn local_addr(&self, socket: SocketId) -> io::Result<SocketAddr> {
        match lock(&self.0).sockets.get(socket)? {
            Sock::Conn { local, .. } => Ok(*local),
            Sock::Listener { addr, .. } => Ok(*addr),
        }
    }

    fn peer_addr(&self, socket: SocketId) -> io::Result<SocketAddr> {
        match lock(&self.0).sockets.get(socket)? {
            Sock::Conn { peer, .. } => Ok(*peer),
            Sock::Listener { .. } => Err(ErrorKind::NotConnected.into()),
        }
    }

    fn original_dst(&self, _socket: SocketId) -> io::Result<Option<SocketAddr>> {
        Ok(None)
    }

    fn register(&mut self, socket: SocketId, token: Token, interest: Interest) -> io::Result<()> {
        self.reregister(socket, token, interest)
    }

    fn reregister(&mut self, socket: SocketId, t: Token, interest: Interest) -> io::Result<()> {
        let mut guard = lock(&self.0);
        let net = &mut *guard;
        match net.sockets.get_mut(socket)? {
            Sock::Listener { token, dirty, .. } => {
                *token = Some(t);
                *dirty = true;
            }
            Sock::Conn { pipe, token, .. } => {
                *token = Some((t, interest));
                net.pipes[*pipe].dirty = true;
            }
        }
        Ok(())
    }

    fn deregister(&mut self, socket: SocketId) -> io::Result<()> {
        match lock(&self.0).sockets.get_mut(socket)? {
            Sock::Listener { token, .. } => *token = None,
            Sock::Conn { token, .. } => *token = None,
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_cross_both_ways_with_one_event_per_change() {
        let net = PipeNet::new();
        let mut stack = net.stack();
        let addr = SocketAddr::from(([10, 98, 0, 1], 80));
        let l = stack.listen(addr, &ListenOptions::default()).unwrap();
        stack.register(l, Token(7), Interest::READABLE).unwrap();
        let c = net.connect(addr).unwrap();
        let mut events = Events::with_capacity(8);
        stack.poll(&mut events, None).unwrap();
        assert_eq!(events.iter().map(|e| e.token()).collect::<Vec<_>>(), [Token(7)]);
        let a = stack.accept(l).unwrap();
        assert!(stack.accept(l).is_err());
        stack.register(a.socket, Token(1), Interest::BOTH).unwrap();
        assert_eq!(net.write(c, b"hello"), 5);
        stack.poll(&mut events, None).unwrap();
        assert!(events.iter().any(|e| e.token() == Token(1) && e.is_readable()));
        stack.poll(&mut events, None).unwrap();
        assert!(events.is_empty(), "edge-triggered: no news, no event");
        let mut buf = [0u8; 16];
        assert_eq!(stack.read(a.socket, &mut buf).unwrap(), 5);
        assert_eq!(stack.read(a.socket, &mut buf).unwrap_err().kind(), ErrorKind::WouldBlock);
        assert_eq!(stack.write(a.socket, b"world").unwrap(), 5);
        let mut got = Vec::new();
        net.read(c, &mut got, usize::MAX);
        assert_eq!(got, b"world");
        net.shutdown(c);
        assert_eq!(stack.read(a.socket, &mut buf).unwrap(), 0);
        stack.close(a.socket);
        assert!(net.worker_done(c));
        assert!(!net.worker_reset(c));
    }

    #[test]
    fn a_full_pipe_blocks_writes_and_a_reset_fails_them() {
        let net = PipeNet::new();
        let mut stack = net.stack();
        let s = stack.connect(SocketAddr::from(([10, 98, 0, 9], 80))).unwrap();
        let (c, to) = net.take_upstream().unwrap();
        assert_eq!(to.port(), 80);
        let big = vec![0u8; PIPE_CAPACITY + 10];
        assert_eq!(stack.write(s, &big).unwrap(), PIPE_CAPACITY);
        assert_eq!(stack.write(s, b"x").unwrap_err().kind(), ErrorKind::WouldBlock);
        net.reset(c);
        assert_eq!(stack.write(s, b"x").unwrap_err().kind(), ErrorKind::ConnectionReset);
        let mut buf = [0u8; 4];
        assert_eq!(stack.read(s, &mut buf).unwrap_err().kind(), ErrorKind::ConnectionReset);
    }
}
