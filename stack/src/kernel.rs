//! The kernel backend: ordinary kernel sockets behind epoll (through mio).
//!
//! Listening sockets are opened with `SO_REUSEPORT` so that every worker owns one per
//! listener and the kernel spreads connections across them; streams have `TCP_NODELAY`.
//! The original destination of a redirected connection comes from `SO_ORIGINAL_DST`
//! (IPv4) or `IP6T_SO_ORIGINAL_DST` (IPv6).

use std::io::{self, IoSlice, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use mio::net::{TcpListener, TcpStream};
use socket2::{Domain, SockRef, Socket, Type};

use crate::socket::SocketTable;
use crate::{Accepted, Event, Events, Interest, ListenOptions, SocketId, Stack, StackStats, Token, Wake};

enum KernelSocket {
    /// A listener and, when it is bound to a specific address, that address (accepted
    /// connections then need no `getsockname`).
    Listener(TcpListener, Option<SocketAddr>),
    Stream(TcpStream),
}

/// Kernel sockets and one epoll instance, owned by one worker.
pub struct KernelStack {
    poll: mio::Poll,
    mio_events: mio::Events,
    sockets: SocketTable<KernelSocket>,
    stats: StackStats,
}

struct MioWaker(mio::Waker);

impl Wake for MioWaker {
    fn wake(&self) -> io::Result<()> {
        self.0.wake()
    }
}

fn not_a(kind: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, format!("socket is not a {kind}"))
}

fn mio_interest(i: Interest) -> mio::Interest {
    match (i.is_readable(), i.is_writable()) {
        (true, true) => mio::Interest::READABLE | mio::Interest::WRITABLE,
        (false, true) => mio::Interest::WRITABLE,
        _ => mio::Interest::READABLE,
    }
}

impl KernelStack {
    pub fn new() -> io::Result<KernelStack> {
        Ok(KernelStack {
            poll: mio::Poll::new()?,
            mio_events: mio::Events::with_capacity(1024),
            sockets: SocketTable::default(),
            stats: StackStats::default(),
        })
    }

    fn stream(&self, id: SocketId) -> io::Result<&TcpStream> {
        match self.sockets.get(id)? {
            KernelSocket::Stream(s) => Ok(s),
            KernelSocket::Listener(..) => Err(not_a("stream")),
        }
    }

    fn stream_mut(&mut self, id: SocketId) -> io::Result<&mut TcpStream> {
        match self.sockets.get_mut(id)? {
            KernelSocket::Stream(s) => Ok(s),
            KernelSocket::Listener(..) => Err(not_a("stream")),
        }
    }

    /// Number of open sockets (listeners and streams).
    pub fn open_sockets(&self) -> usize {
        self.sockets.len()
    }
}

impl Stack for KernelStack {
    fn poll(&mut self, events: &mut Events, timeout: Option<Duration>) -> io::Result<()> {
        events.clear();
        match self.poll.poll(&mut self.mio_events, timeout) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(()),
            Err(e) => return Err(e),
        }
        for ev in self.mio_events.iter() {
            let mut flags = 0;
            if ev.is_readable() {
                flags |= Event::READABLE;
            }
            if ev.is_writable() {
                flags |= Event::WRITABLE;
            }
            if ev.is_read_closed() {
                flags |= Event::READ_CLOSED;
            }
            if ev.is_write_closed() {
                flags |= Event::WRITE_CLOSED;
            }
            if ev.is_error() {
                flags |= Event::ERROR;
            }
            if !events.push(Event::new(Token(ev.token().0), flags)) {
                break;
            }
        }
        Ok(())
    }

    fn waker(&mut self, token: Token) -> io::Result<Arc<dyn Wake>> {
        Ok(Arc::new(MioWaker(mio::Waker::new(self.poll.registry(), mio::Token(token.0))?)))
    }

    fn listen(&mut self, addr: SocketAddr, opts: &ListenOptions) -> io::Result<SocketId> {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM.nonblocking(), None)?;
        socket.set_reuse_address(true)?;
        if opts.reuse_port {
            socket.set_reuse_port(true)?;
        }
        if addr.is_ipv6() {
            socket.set_only_v6(!opts.ipv4_compat)?;
        }
        // Accepted sockets inherit TCP_NODELAY from the listener: no setsockopt per accept.
        socket.set_tcp_nodelay(true)?;
        socket.bind(&addr.into())?;
        socket.listen(opts.backlog.min(i32::MAX as u32) as i32)?;
        let listener = TcpListener::from_std(socket.into());
        let specific = if addr.ip().is_unspecified() { None } else { Some(listener.local_addr()?) };
        Ok(self.sockets.insert(KernelSocket::Listener(listener, specific)))
    }

    fn accept(&mut self, listener: SocketId) -> io::Result<Accepted> {
        let KernelSocket::Listener(l, specific) = self.sockets.get(listener)? else {
            return Err(not_a("listener"));
        };
        let (stream, peer) = l.accept()?;
        let local = match specific {
            Some(addr) => *addr,
            None => stream.local_addr()?,
        };
        self.stats.accepts += 1;
        let socket = self.sockets.insert(KernelSocket::Stream(stream));
        Ok(Accepted { socket, peer, local })
    }

    fn connect(&mut self, addr: SocketAddr) -> io::Result<SocketId> {
        let stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        self.stats.connects += 1;
        Ok(self.sockets.insert(KernelSocket::Stream(stream)))
    }

    fn connect_result(&mut self, socket: SocketId) -> io::Result<()> {
        let s = self.stream(socket)?;
        if let Some(e) = s.take_error()? {
            return Err(e);
        }
        match s.peer_addr() {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Err(io::ErrorKind::WouldBlock.into()),
            Err(e) => Err(e),
        }
    }

    fn read(&mut self, socket: SocketId, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.stream_mut(socket)?.read(buf) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                r => return r,
            }
        }
    }

    fn peek(&mut self, socket: SocketId, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.stream(socket)?.peek(buf) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                r => return r,
            }
        }
    }

    fn write(&mut self, socket: SocketId, buf: &[u8]) -> io::Result<usize> {
        loop {
            match self.stream_mut(socket)?.write(buf) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                r => return r,
            }
        }
    }

    fn write_vectored(&mut self, socket: SocketId, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        loop {
            match self.stream_mut(socket)?.write_vectored(bufs) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                r => return r,
            }
        }
    }

    fn shutdown_write(&mut self, socket: SocketId) -> io::Result<()> {
        match self.stream(socket)?.shutdown(Shutdown::Write) {
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(()),
            r => r,
        }
    }

    fn close(&mut self, socket: SocketId) {
        if let Some(s) = self.sockets.remove(socket) {
            // Dropping the fd removes it from epoll; the kernel still delivers queued data.
            drop(s);
        }
    }

    fn abort(&mut self, socket: SocketId) {
        if let Some(KernelSocket::Stream(s)) = self.sockets.remove(socket) {
            // SO_LINGER 0: close() sends RST and drops queued data.
            let _ = SockRef::from(&s).set_linger(Some(Duration::ZERO));
            drop(s);
        }
    }

    fn local_addr(&self, socket: SocketId) -> io::Result<SocketAddr> {
        match self.sockets.get(socket)? {
            KernelSocket::Listener(l, _) => l.local_addr(),
            KernelSocket::Stream(s) => s.local_addr(),
        }
    }

    fn peer_addr(&self, socket: SocketId) -> io::Result<SocketAddr> {
        self.stream(socket)?.peer_addr()
    }

    fn original_dst(&self, socket: SocketId) -> io::Result<Option<SocketAddr>> {
        let s = self.stream(socket)?;
        let local = s.local_addr()?;
        let sock = SockRef::from(s);
        let dst = if local.is_ipv4() { sock.original_dst_v4() } else { sock.original_dst_v6() };
        match dst {
            Ok(addr) => Ok(addr.as_socket()),
            // ENOENT: no conntrack entry (not redirected); ENOPROTOOPT: no netfilter.
            Err(e) if matches!(e.raw_os_error(), Some(2) | Some(92)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn register(&mut self, socket: SocketId, token: Token, interest: Interest) -> io::Result<()> {
        let registry = self.poll.registry();
        match self.sockets.get_mut(socket)? {
            KernelSocket::Listener(l, _) => registry.register(l, mio::Token(token.0), mio_interest(interest)),
            KernelSocket::Stream(s) => registry.register(s, mio::Token(token.0), mio_interest(interest)),
        }
    }

    fn reregister(&mut self, socket: SocketId, token: Token, interest: Interest) -> io::Result<()> {
        let registry = self.poll.registry();
        match self.sockets.get_mut(socket)? {
            KernelSocket::Listener(l, _) => registry.reregister(l, mio::Token(token.0), mio_interest(interest)),
            KernelSocket::Stream(s) => registry.reregister(s, mio::Token(token.0), mio_interest(interest)),
        }
    }

    fn deregister(&mut self, socket: SocketId) -> io::Result<()> {
        let registry = self.poll.registry();
        match self.sockets.get_mut(socket)? {
            KernelSocket::Listener(l, _) => registry.deregister(l),
            KernelSocket::Stream(s) => registry.deregister(s),
        }
    }

    fn stats(&self) -> StackStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    /// Events are edge-triggered: keep the ones for other tokens for later waits.
    fn wait_for(stack: &mut KernelStack, pending: &mut Vec<Event>, token: Token) -> Event {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut events = Events::with_capacity(64);
        loop {
            if let Some(i) = pending.iter().position(|e| e.token() == token) {
                return pending.remove(i);
            }
            stack.poll(&mut events, Some(Duration::from_millis(100))).unwrap();
            pending.extend(events.iter().copied());
            assert!(Instant::now() < deadline, "no event for {token:?}");
        }
    }

    #[test]
    fn connect_accept_echo_half_close() {
        let mut stack = KernelStack::new().unwrap();
        let mut events = Vec::new();
        let l = stack.listen("127.0.0.1:0".parse().unwrap(), &ListenOptions::default()).unwrap();
        let addr = stack.local_addr(l).unwrap();
        stack.register(l, Token(1), Interest::READABLE).unwrap();
        let c = stack.connect(addr).unwrap();
        stack.register(c, Token(2), Interest::BOTH).unwrap();
        wait_for(&mut stack, &mut events, Token(1));
        let acc = stack.accept(l).unwrap();
        assert_eq!(acc.local, addr);
        let KernelSocket::Stream(s) = stack.sockets.get(acc.socket).unwrap() else { panic!() };
        assert!(s.nodelay().unwrap(), "accepted sockets inherit TCP_NODELAY from the listener");
        assert_eq!(stack.accept(l).unwrap_err().kind(), io::ErrorKind::WouldBlock);
        stack.register(acc.socket, Token(3), Interest::READABLE).unwrap();
        let ev = wait_for(&mut stack, &mut events, Token(2));
        assert!(ev.is_writable());
        stack.connect_result(c).unwrap();
        assert_eq!(stack.write(c, b"hello").unwrap(), 5);
        stack.shutdown_write(c).unwrap();
        wait_for(&mut stack, &mut events, Token(3));
        let mut buf = [0u8; 16];
        let mut got = Vec::new();
        loop {
            match stack.read(acc.socket, &mut buf) {
                Ok(0) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    wait_for(&mut stack, &mut events, Token(3));
                }
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(got, b"hello");
        // Half-closed: the accepted side can still answer.
        assert_eq!(stack.write(acc.socket, b"bye").unwrap(), 3);
        stack.close(acc.socket);
        assert!(stack.read(acc.socket, &mut buf).is_err(), "closed id is stale");
        assert_eq!(stack.original_dst(c).unwrap(), None);
    }

    #[test]
    fn port_in_use_is_reported_at_listen() {
        let mut stack = KernelStack::new().unwrap();
        let std_l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = std_l.local_addr().unwrap();
        let err = stack.listen(addr, &ListenOptions::default()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
    }

    #[test]
    fn refused_connect_reports_error() {
        let mut stack = KernelStack::new().unwrap();
        let mut events = Vec::new();
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let c = stack.connect(SocketAddr::from(([127, 0, 0, 1], port))).unwrap();
        stack.register(c, Token(7), Interest::BOTH).unwrap();
        wait_for(&mut stack, &mut events, Token(7));
        let err = stack.connect_result(c).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
    }

    #[test]
    fn waker_wakes_poll() {
        let mut stack = KernelStack::new().unwrap();
        let mut events = Vec::new();
        let w = stack.waker(Token(99)).unwrap();
        let remote = Arc::clone(&w);
        std::thread::spawn(move || remote.wake().unwrap()).join().unwrap();
        wait_for(&mut stack, &mut events, Token(99));
    }
}
