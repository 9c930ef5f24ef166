//! Ingress: every received frame goes to exactly one socket, found in O(1).
//!
//! The frame is classified ([`classify`]); a TCP segment is looked up by its 4-tuple in
//! the flow table. A hit is processed by that connection's one-socket set. A SYN for no
//! connection goes to a LISTEN socket from the matching listener's pool (exact address
//! first, then `0.0.0.0`), which then becomes an embryonic connection under the 4-tuple,
//! and the pool is topped up at once. A segment for a TIME-WAIT record is handled by
//! `time_wait`; a SYN whose tuple belongs to a connection that is CLOSED but not yet
//! released starts a new connection. Everything else is processed against an empty set, so smoltcp answers as
//! it would for an unknown port (RST), replies to ARP, and drops the rest.

use smoltcp::phy::TxToken;
use smoltcp::socket::tcp::State;
use smoltcp::time::Instant;
use smoltcp::wire::Ipv4Address;

use super::conn::{handle, Conn, Phase};
use super::core::{Cause, Core};
use super::device::OneShot;
use super::flow::{classify, Classified, Flow, Segment};
use super::slab::Key;
use super::steer::Origin;
use super::time_wait::ack_retransmitted_fin;
use smoltcp::socket::tcp;

impl Core {
    /// Process one frame received on this core's datapath; replies (if any) go out
    /// through `tx`.
    pub fn ingress<T: TxToken>(&mut self, frame: &[u8], tx: T, now: Instant) {
        self.ingress_from(frame, tx, now, Origin::Device);
    }

    /// Process one frame from `origin` (see `steer`: only device frames are handed on).
    pub(crate) fn ingress_from<T: TxToken>(&mut self, frame: &[u8], tx: T, now: Instant, origin: Origin) {
        self.stats.rx_frames += 1;
        match classify(frame, self.caps.medium) {
            Classified::Tcp(seg) => self.ingress_tcp(frame, tx, &seg, now, origin),
            Classified::Arp { request_for: Some(target) }
                if !self.cfg.proxy_arp && target != self.cfg.address.address() =>
            {
                // Someone else's address: with any_ip, smoltcp would claim it.
            }
            Classified::Arp { .. } => {
                self.unmatched(frame, tx, now);
                self.wake_neighbor_waiters();
                self.share_neighbor(frame, origin);
            }
            Classified::Other => self.unmatched(frame, tx, now),
        }
    }

    /// Let the interface handle a frame that belongs to no socket.
    fn unmatched<T: TxToken>(&mut self, frame: &[u8], tx: T, now: Instant) {
        let mut dev = OneShot::new(frame, tx, &self.caps);
        self.iface.poll_ingress_single(now, &mut dev, &mut self.empty);
    }

    fn ingress_tcp<T: TxToken>(&mut self, frame: &[u8], tx: T, seg: &Segment, now: Instant, origin: Origin) {
        let opens = seg.syn && !seg.ack && !seg.rst;
        match self.flows.get(&seg.key).copied() {
            Some(Flow::Conn(key)) if opens && self.conns.get(key).is_some_and(|c| c.state() == State::Closed) => {
                // The tuple's previous connection is over but its owner has not let go
                // of it yet (a closed socket accepts nothing, so smoltcp would answer
                // the SYN with a reset): the SYN opens a new connection, which takes
                // the tuple. The old one keeps its id until released; freeing it then
                // leaves the new mapping alone.
                self.flows.remove(&seg.key);
                self.stats.syn_took_closed_tuple += 1;
                self.ingress_syn(frame, tx, seg, now);
            }
            Some(Flow::Conn(key)) => self.ingress_conn(key, frame, tx, seg, now),
            Some(Flow::TimeWait { .. }) if opens => {
                self.flows.remove(&seg.key);
                self.time_wait.forget();
                self.ingress_syn(frame, tx, seg, now);
            }
            Some(Flow::TimeWait { .. }) => {
                let mac = self.cfg.hardware_addr;
                if ack_retransmitted_fin(tx, frame, seg, self.caps.medium, mac, &self.caps.checksum) {
                    self.stats.time_wait_acks += 1;
                }
            }
            None if opens => self.ingress_syn(frame, tx, seg, now),
            None if self.steer_miss(frame, seg.key.local_port, origin) => {}
            None => {
                self.stats.rx_unmatched += 1;
                self.unmatched(frame, tx, now);
            }
        }
    }

    fn ingress_conn<T: TxToken>(&mut self, key: Key, frame: &[u8], tx: T, seg: &Segment, now: Instant) {
        let Some(c) = self.conns.get_mut(key) else {
            return self.unmatched(frame, tx, now);
        };
        if seg.payload_len > 0 && !self.buffers.attach_rx(c.sock_mut()) {
            // No storage free: smoltcp drops the segment as if lost.
            self.stats.rx_no_buffer += 1;
        }
        let before = c.state();
        let mut dev = OneShot::new(frame, tx, &self.caps);
        self.iface.poll_ingress_single(now, &mut dev, &mut c.set);
        let after = c.state();
        if before != after {
            self.transition(key, before, after, Cause::Ingress { rst: seg.rst });
        }
        self.mark_dirty(key);
    }

    /// A SYN for no connection: hand it to a listener's LISTEN socket (or, for an
    /// intercepted destination without a listener, to the redirect listener).
    fn ingress_syn<T: TxToken>(&mut self, frame: &[u8], tx: T, seg: &Segment, now: Instant) {
        let port = seg.key.local_port;
        let found = self
            .listen_map
            .get(&(seg.key.local, port))
            .or_else(|| self.listen_map.get(&(Ipv4Address::UNSPECIFIED, port)))
            .copied();
        let (lkey, redirected) = match found {
            Some(lkey) => (lkey, false),
            None => match self.redirect_target(seg.key.local) {
                Some(lkey) => (lkey, true),
                None => {
                    self.stats.rx_unmatched += 1;
                    return self.unmatched(frame, tx, now);
                }
            },
        };
        let Some(listener) = self.listeners.get_mut(lkey) else {
            return self.unmatched(frame, tx, now);
        };
        if listener.is_full() {
            self.stats.listen_overflows += 1;
            return;
        }
        if self.conns.len() >= self.cfg.max_connections {
            self.stats.syn_dropped_no_slot += 1;
            return;
        }
        let pooled = if redirected { None } else { listener.pool.pop() };
        let mut set = match pooled {
            Some(set) => set,
            None if redirected => self.redirect_socket(port),
            None => self.listen_socket(lkey),
        };
        let mut dev = OneShot::new(frame, tx, &self.caps);
        self.iface.poll_ingress_single(now, &mut dev, &mut set);
        let state = set.get::<tcp::Socket>(handle()).state();
        if state != State::SynReceived {
            // Not taken (a bad checksum, say): the socket still listens.
            match self.listeners.get_mut(lkey) {
                Some(listener) if !redirected => listener.pool.push(set),
                _ => self.recycle(set),
            }
            return;
        }
        let Some(listener) = self.listeners.get_mut(lkey) else {
            return self.recycle(set);
        };
        listener.pending += 1;
        let key = self.conns.insert(Conn::new(set, seg.key, Phase::Embryonic(lkey)));
        self.flows.insert(seg.key, Flow::Conn(key));
        self.mark_dirty(key);
        self.refill_pool(lkey);
    }

    /// A LISTEN socket for `listener`, with the handshake timeout armed.
    pub fn listen_socket(&mut self, listener: Key) -> smoltcp::iface::SocketSet<'static> {
        let mut set = self.take_socket();
        if let Some(l) = self.listeners.get(listener) {
            let s = set.get_mut::<tcp::Socket>(handle());
            // Cannot fail: the socket is closed and the port is non-zero.
            let _ = s.listen(l.endpoint());
            s.set_timeout(Some(self.cfg.handshake_timeout));
        }
        set
    }

    /// Top a listener's pool up to its target.
    pub fn refill_pool(&mut self, listener: Key) {
        loop {
            let Some(l) = self.listeners.get(listener) else {
                return;
            };
            if l.pool.len() >= l.pool_target(self.cfg.listen_pool) {
                return;
            }
            let set = self.listen_socket(listener);
            if let Some(l) = self.listeners.get_mut(listener) {
                l.pool.push(set);
            }
        }
    }
}
