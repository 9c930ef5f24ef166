//! A listening socket of the smol stack: a pool of LISTEN sockets plus an accept queue.
//!
//! smoltcp has no backlog: one LISTEN socket takes one SYN, and a second SYN in the same
//! poll finds nothing and is reset. A listener here keeps a pool of ready LISTEN sockets
//! (`min(listen_pool, backlog)` of them); the demultiplexer hands each new SYN to one,
//! which becomes an embryonic connection, and the pool is topped up from the stack's
//! socket cache before the next frame is looked at, so a burst of SYNs is never refused.
//! `backlog` bounds the connections pending on the listener (handshaking plus
//! established but not accepted); a SYN beyond it is dropped silently and counted, as
//! Linux drops on a full accept queue, and the client's retransmission tries again.

use std::collections::VecDeque;
use std::net::{SocketAddr, SocketAddrV4};

use smoltcp::iface::SocketSet;
use smoltcp::wire::{IpListenEndpoint, Ipv4Address};

use super::slab::Key;
use crate::{Interest, Token};

pub(crate) struct Listener {
    /// Bound address (`0.0.0.0` for any) and port.
    pub addr: SocketAddrV4,
    pub backlog: usize,
    /// Idle LISTEN sockets, each in its own one-slot set.
    pub pool: Vec<SocketSet<'static>>,
    /// Handshaking plus queued connections.
    pub pending: usize,
    /// Established connections waiting for `accept`, oldest first.
    pub queue: VecDeque<Key>,
    pub reg: Option<(Token, Interest)>,
    pub pending_events: u8,
    pub queued: bool,
}

impl Listener {
    pub fn new(addr: SocketAddrV4, backlog: usize) -> Listener {
        Listener {
            addr,
            backlog,
            pool: Vec::new(),
            pending: 0,
            queue: VecDeque::new(),
            reg: None,
            pending_events: 0,
            queued: false,
        }
    }

    /// The endpoint its LISTEN sockets listen on.
    pub fn endpoint(&self) -> IpListenEndpoint {
        let ip = *self.addr.ip();
        IpListenEndpoint { addr: (!ip.is_unspecified()).then_some(ip.into()), port: self.addr.port() }
    }

    /// The lookup key in the stack's listener map.
    pub fn map_key(&self) -> (Ipv4Address, u16) {
        (*self.addr.ip(), self.addr.port())
    }

    pub fn local_addr(&self) -> SocketAddr {
        SocketAddr::V4(self.addr)
    }

    /// How many LISTEN sockets the pool should hold.
    pub fn pool_target(&self, listen_pool: usize) -> usize {
        listen_pool.clamp(1, self.backlog.max(1))
    }

    pub fn is_full(&self) -> bool {
        self.pending >= self.backlog
    }
}
