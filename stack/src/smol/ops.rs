//! The application's operations on a smol stack, with the kernel backend's semantics:
//! `WouldBlock` instead of blocking, `Ok(0)` at end of stream, sticky errors after a
//! reset (`ConnectionReset`), a refused connect (`ConnectionRefused`) or a timeout
//! (reads return the bytes received before it first),
//! `BrokenPipe` for writes after our own shutdown, `NotFound` for stale ids.
//!
//! Operations only touch the connection they name and put it on the dirty list; the
//! segments they cause go out in the next poll round.

use std::io::{self, IoSlice};
use std::net::{SocketAddr, SocketAddrV4};

use smoltcp::socket::tcp::{self, RecvError, State};
use smoltcp::time::Instant;
use smoltcp::wire::{IpEndpoint, IpListenEndpoint};

use super::conn::{Conn, Phase};
use super::core::{Core, Handle};
use super::flow::{Flow, FlowKey};
use super::listener::Listener;
use super::slab::Key;
use crate::{Accepted, Event, Interest, ListenOptions, SocketId, Token};

fn err(kind: io::ErrorKind, what: &'static str) -> io::Error {
    io::Error::new(kind, what)
}

fn v4_only() -> io::Error {
    err(io::ErrorKind::Unsupported, "the smol stack speaks IPv4 only")
}

impl Core {
    fn handle(&self, id: SocketId) -> io::Result<Handle> {
        self.users.get(id).copied()
    }

    fn conn_key(&self, id: SocketId) -> io::Result<Key> {
        match self.handle(id)? {
            Handle::Conn(key) => Ok(key),
            Handle::Listener(_) => Err(err(io::ErrorKind::InvalidInput, "socket is not a stream")),
        }
    }

    fn conn(&self, id: SocketId) -> io::Result<&Conn> {
        let key = self.conn_key(id)?;
        self.conns.get(key).ok_or_else(|| err(io::ErrorKind::NotFound, "stale socket handle"))
    }

    fn conn_mut(&mut self, id: SocketId) -> io::Result<(Key, &mut Conn)> {
        let key = self.conn_key(id)?;
        let c = self.conns.get_mut(key).ok_or_else(|| err(io::ErrorKind::NotFound, "stale socket handle"))?;
        Ok((key, c))
    }

    pub fn listen(&mut self, addr: SocketAddr, opts: &ListenOptions) -> io::Result<SocketId> {
        let addr = match addr {
            SocketAddr::V4(addr) => addr,
            // A dual-stack `::` listener takes the IPv4 half of its traffic (Envoy's
            // `ipv4_compat`); connections carry plain IPv4 addresses.
            SocketAddr::V6(v6) if v6.ip().is_unspecified() && opts.ipv4_compat => {
                SocketAddrV4::new(std::net::Ipv4Addr::UNSPECIFIED, v6.port())
            }
            SocketAddr::V6(_) => return Err(v4_only()),
        };
        let ip = *addr.ip();
        if !ip.is_unspecified() && !self.cfg.any_ip && ip != self.cfg.address.address() {
            return Err(err(io::ErrorKind::AddrNotAvailable, "address is not this stack's (any_ip is off)"));
        }
        let port = match addr.port() {
            0 => self.ports.pick_listen().ok_or_else(|| err(io::ErrorKind::AddrInUse, "no free port"))?,
            p => p,
        };
        if self.listen_map.contains_key(&(ip, port)) {
            return Err(err(io::ErrorKind::AddrInUse, "address already in use"));
        }
        let backlog = (opts.backlog.max(1) as usize).min(self.cfg.max_connections);
        let lkey = self.listeners.insert(Listener::new(SocketAddrV4::new(ip, port), backlog));
        let id = self.users.insert(Handle::Listener(lkey));
        self.listen_map.insert((ip, port), lkey);
        self.ports.listen(port);
        self.refill_pool(lkey);
        Ok(id)
    }

    pub fn accept(&mut self, listener: SocketId) -> io::Result<Accepted> {
        let Handle::Listener(lkey) = self.handle(listener)? else {
            return Err(err(io::ErrorKind::InvalidInput, "socket is not a listener"));
        };
        let l = self.listeners.get_mut(lkey).ok_or_else(|| err(io::ErrorKind::NotFound, "stale socket handle"))?;
        let key = l.queue.pop_front().ok_or(io::ErrorKind::WouldBlock)?;
        l.pending = l.pending.saturating_sub(1);
        let id = self.users.insert(Handle::Conn(key));
        let Some(c) = self.conns.get_mut(key) else {
            self.users.remove(id);
            return Err(io::ErrorKind::WouldBlock.into());
        };
        c.phase = Phase::User(id);
        c.settle();
        self.stats.accepts += 1;
        Ok(Accepted { socket: id, peer: c.flow.remote_addr(), local: c.flow.local_addr() })
    }

    pub fn connect(&mut self, addr: SocketAddr, now: Instant) -> io::Result<SocketId> {
        let SocketAddr::V4(remote) = addr else {
            return Err(v4_only());
        };
        let rip = *remote.ip();
        if remote.port() == 0 || rip.is_unspecified() || rip.is_broadcast() || rip.is_multicast() {
            return Err(err(io::ErrorKind::InvalidInput, "not a unicast destination"));
        }
        if !self.cfg.address.contains_addr(&rip) && self.cfg.gateway.is_none() {
            return Err(err(io::ErrorKind::NetworkUnreachable, "no route to the destination"));
        }
        if self.conns.len() >= self.cfg.max_connections {
            self.stats.connect_exhausted += 1;
            return Err(err(io::ErrorKind::AddrNotAvailable, "connection limit reached"));
        }
        let local = self.cfg.address.address();
        let flow_at = |port| FlowKey { local, remote: rip, local_port: port, remote_port: remote.port() };
        let reuse_before = now + self.cfg.time_wait - self.cfg.time_wait_reuse;
        let flows = &self.flows;
        let picked = self.ports.pick(|port| match flows.get(&flow_at(port)) {
            None => true,
            Some(Flow::TimeWait { expires }) => *expires <= reuse_before,
            Some(Flow::Conn(_)) => false,
        });
        let Some(port) = picked else {
            self.stats.connect_exhausted += 1;
            return Err(err(io::ErrorKind::AddrNotAvailable, "no free local port in this core's range"));
        };
        let flow = flow_at(port);
        if let Some(Flow::TimeWait { .. }) = self.flows.remove(&flow) {
            self.time_wait.forget();
            self.stats.time_wait_reused += 1;
        }
        let mut set = self.take_socket();
        let s = set.get_mut::<tcp::Socket>(super::conn::handle());
        let ep = IpEndpoint::new(rip.into(), remote.port());
        let lep = IpListenEndpoint { addr: Some(local.into()), port };
        if s.connect(self.iface.context(), ep, lep).is_err() {
            self.recycle(set);
            return Err(err(io::ErrorKind::InvalidInput, "cannot connect to that endpoint"));
        }
        s.set_timeout(Some(self.cfg.handshake_timeout));
        let key = self.conns.insert(Conn::new(set, flow, Phase::Orphan));
        let id = self.users.insert(Handle::Conn(key));
        if let Some(c) = self.conns.get_mut(key) {
            c.phase = Phase::User(id);
        }
        self.flows.insert(flow, Flow::Conn(key));
        self.mark_dirty(key);
        self.stats.connects += 1;
        Ok(id)
    }

    pub fn connect_result(&self, id: SocketId) -> io::Result<()> {
        let c = self.conn(id)?;
        if let Some(kind) = c.error {
            return Err(kind.into());
        }
        match c.state() {
            State::SynSent | State::SynReceived => Err(io::ErrorKind::WouldBlock.into()),
            _ => Ok(()),
        }
    }

    pub fn read(&mut self, id: SocketId, buf: &mut [u8], peek: bool) -> io::Result<usize> {
        let (key, c) = self.conn_mut(id)?;
        if let Some(kind) = c.error {
            // Bytes that arrived before the reset or timeout are still the reader's; the
            // error comes once they are drained (as Linux's `tcp_recvmsg` drains the
            // receive queue before it reports `sk_err`).
            if buf.is_empty() || c.sock().recv_queue() == 0 {
                return Err(kind.into());
            }
            let s = c.sock_mut();
            let n = if peek { s.peek_slice(buf) } else { s.recv_slice(buf) }.unwrap_or(0);
            c.settle();
            return if n > 0 { Ok(n) } else { Err(kind.into()) };
        }
        if buf.is_empty() {
            return Ok(0);
        }
        let s = c.sock_mut();
        let got = if peek { Ok(s.peek_slice(buf).unwrap_or(0)) } else { s.recv_slice(buf) };
        let result = match got {
            Ok(n) if n > 0 => Ok(n),
            Ok(_) | Err(RecvError::InvalidState) => match s.state() {
                State::Listen | State::SynSent | State::SynReceived => Err(io::ErrorKind::WouldBlock.into()),
                _ if s.may_recv() => Err(io::ErrorKind::WouldBlock.into()),
                _ => Ok(0),
            },
            Err(RecvError::Finished) => Ok(0),
        };
        c.settle();
        if !peek && matches!(result, Ok(n) if n > 0) {
            // The window opened: smoltcp may want to advertise it.
            self.mark_dirty(key);
        }
        result
    }

    pub fn write(&mut self, id: SocketId, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let key = self.conn_key(id)?;
        let c = self.conns.get_mut(key).ok_or_else(|| err(io::ErrorKind::NotFound, "stale socket handle"))?;
        if let Some(kind) = c.error {
            return Err(kind.into());
        }
        let s = c.sock_mut();
        match s.state() {
            State::SynSent | State::SynReceived => return Err(io::ErrorKind::WouldBlock.into()),
            _ if !s.may_send() => return Err(err(io::ErrorKind::BrokenPipe, "the socket is shut down for writing")),
            _ => {}
        }
        let offered: usize = bufs.iter().map(|b| b.len()).sum();
        if offered > 0 && !self.buffers.attach_tx(s) {
            self.stats.tx_no_buffer += 1;
            c.write_blocked = true;
            if !c.buffer_waiting {
                c.buffer_waiting = true;
                self.buffers.waiters.push(key);
            }
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let mut total = 0;
        for b in bufs.iter().filter(|b| !b.is_empty()) {
            let n = s.send_slice(b).unwrap_or(0);
            total += n;
            if n < b.len() {
                break;
            }
        }
        if total < offered {
            c.write_blocked = true;
        }
        c.settle();
        if total > 0 {
            self.mark_dirty(key);
            Ok(total)
        } else if offered == 0 {
            Ok(0)
        } else {
            Err(io::ErrorKind::WouldBlock.into())
        }
    }

    pub fn shutdown_write(&mut self, id: SocketId) -> io::Result<()> {
        let (key, c) = self.conn_mut(id)?;
        if c.error.is_some() {
            return Ok(());
        }
        match c.state() {
            State::SynSent => Err(err(io::ErrorKind::NotConnected, "the socket is not connected")),
            State::SynReceived | State::Established | State::CloseWait => {
                c.sock_mut().close();
                c.settle();
                self.mark_dirty(key);
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Let go of an id: a connection finishes in the background (graceful) or resets.
    pub fn release(&mut self, id: SocketId, reset: bool, now: Instant) {
        let Some(handle) = self.users.remove(id) else {
            return;
        };
        let key = match handle {
            Handle::Listener(lkey) => return self.close_listener(lkey),
            Handle::Conn(key) => key,
        };
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        c.phase = Phase::Orphan;
        c.reg = None;
        c.pending = 0;
        if c.is_quiet() {
            return self.free_conn(key);
        }
        if c.state() == State::TimeWait {
            return if reset { self.free_conn(key) } else { self.enter_time_wait(key, now) };
        }
        if reset {
            c.aborted = true;
            c.sock_mut().abort();
        } else {
            let s = c.sock_mut();
            s.close();
            s.set_timeout(Some(self.cfg.fin_timeout));
        }
        self.mark_dirty(key);
    }

    /// Released connections that still owe their peer data, a FIN or an RST (see
    /// `Stack::closing`). O(connections): for shutdown, not for the poll loop.
    pub fn closing(&self) -> usize {
        self.conns
            .iter()
            .filter(|(_, c)| {
                c.phase == Phase::Orphan
                    && match c.state() {
                        State::FinWait1 | State::Closing | State::LastAck => true,
                        // Aborted: the RST is still to be sent while the peer is known.
                        State::Closed => !c.is_quiet(),
                        _ => false,
                    }
            })
            .count()
    }

    fn close_listener(&mut self, lkey: Key) {
        let Some(l) = self.listeners.remove(lkey) else {
            return;
        };
        self.listen_map.remove(&l.map_key());
        self.ports.unlisten(l.addr.port());
        for set in l.pool {
            self.recycle(set);
        }
        // Connections nobody accepted are reset, as the kernel does.
        for key in l.queue {
            if let Some(c) = self.conns.get_mut(key) {
                c.phase = Phase::Orphan;
                c.aborted = true;
                c.sock_mut().abort();
                self.mark_dirty(key);
            }
        }
    }

    /// Check that `id` names a live stream.
    pub fn stream(&self, id: SocketId) -> io::Result<()> {
        self.conn(id).map(|_| ())
    }

    pub fn local_addr(&self, id: SocketId) -> io::Result<SocketAddr> {
        match self.handle(id)? {
            Handle::Listener(lkey) => self.listeners.get(lkey).map(Listener::local_addr),
            Handle::Conn(key) => self.conns.get(key).map(|c| c.flow.local_addr()),
        }
        .ok_or_else(|| err(io::ErrorKind::NotFound, "stale socket handle"))
    }

    pub fn peer_addr(&self, id: SocketId) -> io::Result<SocketAddr> {
        let c = self.conn(id)?;
        match c.state() {
            State::SynSent if c.error.is_none() => Err(err(io::ErrorKind::NotConnected, "not connected yet")),
            _ => Ok(c.flow.remote_addr()),
        }
    }

    pub fn register(&mut self, id: SocketId, token: Token, interest: Interest, first: bool) -> io::Result<()> {
        match self.handle(id)? {
            Handle::Conn(key) => {
                let c = self.conns.get_mut(key).ok_or_else(|| err(io::ErrorKind::NotFound, "stale socket handle"))?;
                check_registration(c.reg.is_some(), first)?;
                c.reg = Some((token, interest));
                c.settle();
                // Ready now: one event, as epoll reports on EPOLL_CTL_ADD/MOD.
                let level = c.level;
                self.emit_conn(key, level);
            }
            Handle::Listener(lkey) => {
                let l =
                    self.listeners.get_mut(lkey).ok_or_else(|| err(io::ErrorKind::NotFound, "stale socket handle"))?;
                check_registration(l.reg.is_some(), first)?;
                l.reg = Some((token, interest));
                let ready = if l.queue.is_empty() { 0 } else { Event::READABLE };
                self.emit_listener(lkey, ready);
            }
        }
        Ok(())
    }

    pub fn deregister(&mut self, id: SocketId) -> io::Result<()> {
        let missing = || err(io::ErrorKind::NotFound, "socket is not registered");
        match self.handle(id)? {
            Handle::Conn(key) => {
                let c = self.conns.get_mut(key).ok_or_else(missing)?;
                c.reg.take().ok_or_else(missing)?;
                c.pending = 0;
            }
            Handle::Listener(lkey) => {
                let l = self.listeners.get_mut(lkey).ok_or_else(missing)?;
                l.reg.take().ok_or_else(missing)?;
                l.pending_events = 0;
            }
        }
        Ok(())
    }
}

/// epoll's rules: ADD of a registered socket is `AlreadyExists`, MOD of an unregistered
/// one `NotFound`.
fn check_registration(registered: bool, first: bool) -> io::Result<()> {
    match (registered, first) {
        (true, true) => Err(err(io::ErrorKind::AlreadyExists, "socket is already registered")),
        (false, false) => Err(err(io::ErrorKind::NotFound, "socket is not registered")),
        _ => Ok(()),
    }
}
