//! One TCP connection of the smol stack and its readiness.
//!
//! A connection owns a one-slot smoltcp `SocketSet` holding its `tcp::Socket`: the
//! interface is only ever polled with the one set a frame or a timer belongs to, which is
//! what keeps smoltcp's linear scans at length one. Readiness is kept the way epoll keeps
//! it in edge-triggered mode:
//!
//! - `level` is what is true now (readable, writable, read/write closed, error);
//! - an *edge* is a level bit turning on, new bytes arriving while readable (as epoll
//!   re-arms on every arrival, which `peek`-based sniffers need), or room coming back after
//!   a write hit a full buffer;
//! - reads and writes update `level` without producing events of their own.
//!
//! Writable means at least a quarter of the send buffer is free, so a writer woken after
//! `WouldBlock` can make real progress. Errors are sticky: once reset, refused or timed
//! out, reads and writes return that error.

use std::io;

use smoltcp::iface::{SocketHandle, SocketSet};
use smoltcp::socket::tcp::{self, State};
use smoltcp::time::Instant;

use super::flow::FlowKey;
use super::slab::Key;
use crate::{Event, Interest, SocketId, Token};

const R: u8 = Event::READABLE;
const W: u8 = Event::WRITABLE;
const RC: u8 = Event::READ_CLOSED;
const WC: u8 = Event::WRITE_CLOSED;
const ERR: u8 = Event::ERROR;

/// The handle of the only socket in a connection's set.
pub(crate) fn handle() -> SocketHandle {
    SocketHandle::default()
}

/// Who a connection belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Handshake in progress on behalf of a listener.
    Embryonic(Key),
    /// Established, waiting in the listener's accept queue.
    Queued(Key),
    /// Held by the application under this id.
    User(SocketId),
    /// Closed by the application; finishing its FIN exchange or RST.
    Orphan,
}

pub(crate) struct Conn {
    pub set: SocketSet<'static>,
    pub flow: FlowKey,
    pub phase: Phase,
    pub error: Option<io::ErrorKind>,
    /// Aborted by the application: reaching CLOSED is not an error to report.
    pub aborted: bool,
    /// The handshake completed (its timeout has been lifted).
    pub established: bool,
    pub reg: Option<(Token, Interest)>,
    pub level: u8,
    pub pending: u8,
    /// In the stack's ready queue.
    pub queued: bool,
    /// In the stack's dirty list (egress and readiness to be looked at).
    pub dirty: bool,
    pub rx_known: usize,
    pub write_blocked: bool,
    /// Earliest wake-up this connection has in the timer heap.
    pub armed: Option<Instant>,
    /// Since when the connection is CLOSED with its final RST still unsent.
    pub closed_at: Option<Instant>,
    /// Listed in `neighbor_wait` (an ARP answer will retry it).
    pub neighbor_waiting: bool,
    /// Listed in `buffers.waiters` (returned storage will retry its write).
    pub buffer_waiting: bool,
}

impl Conn {
    pub fn new(set: SocketSet<'static>, flow: FlowKey, phase: Phase) -> Conn {
        Conn {
            set,
            flow,
            phase,
            error: None,
            aborted: false,
            established: false,
            reg: None,
            level: 0,
            pending: 0,
            queued: false,
            dirty: false,
            rx_known: 0,
            write_blocked: false,
            armed: None,
            closed_at: None,
            neighbor_waiting: false,
            buffer_waiting: false,
        }
    }

    pub fn sock(&self) -> &tcp::Socket<'static> {
        self.set.get(handle())
    }

    pub fn sock_mut(&mut self) -> &mut tcp::Socket<'static> {
        self.set.get_mut(handle())
    }

    pub fn state(&self) -> State {
        self.sock().state()
    }

    /// CLOSED with nothing left to send (no RST pending): the socket can be recycled.
    pub fn is_quiet(&self) -> bool {
        let s = self.sock();
        s.state() == State::Closed && s.remote_endpoint().is_none()
    }

    /// What is true now.
    pub fn compute_level(&self) -> u8 {
        if self.error.is_some() {
            return R | W | RC | WC | ERR;
        }
        let s = self.sock();
        let readable = if s.can_recv() { R } else { 0 };
        let free = s.send_capacity() - s.send_queue();
        let writable = if s.may_send() && free >= (s.send_capacity() / 4).max(1) { W } else { 0 };
        match s.state() {
            State::Listen | State::SynSent | State::SynReceived => 0,
            State::Established => readable | writable,
            State::CloseWait => R | RC | writable,
            State::FinWait1 | State::FinWait2 => readable | WC,
            State::Closing | State::LastAck | State::TimeWait | State::Closed => R | RC | WC,
        }
    }

    /// Recompute the level; return the edge flags to report (0: nothing new).
    pub fn refresh(&mut self) -> u8 {
        let level = self.compute_level();
        let rx = self.sock().recv_queue();
        let mut edge = level & !self.level;
        if level & R != 0 && rx > self.rx_known {
            edge |= R;
        }
        if level & W != 0 && self.write_blocked {
            edge |= W;
            self.write_blocked = false;
        }
        self.level = level;
        self.rx_known = rx;
        if edge == 0 {
            0
        } else {
            edge | (level & (RC | WC | ERR))
        }
    }

    /// Recompute the level after the application's own read or write: no edges.
    pub fn settle(&mut self) {
        self.level = self.compute_level();
        self.rx_known = self.sock().recv_queue();
    }
}

/// The flags of `flags` that a registration with `interest` reports, or 0 if it reports
/// none. Errors and full hang-ups are reported whatever the interest (as epoll reports
/// `EPOLLERR` and `EPOLLHUP`).
pub(crate) fn mask(flags: u8, interest: Interest) -> u8 {
    let mut wanted = flags & ERR;
    if flags & (RC | WC) == RC | WC {
        wanted |= RC | WC;
    }
    if interest.is_readable() {
        wanted |= flags & (R | RC);
    }
    if interest.is_writable() {
        wanted |= flags & W;
    }
    if wanted == 0 {
        0
    } else {
        wanted | (flags & (RC | WC | ERR))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interest_filters_but_errors_always_pass() {
        assert_eq!(mask(R, Interest::WRITABLE), 0);
        assert_eq!(mask(R, Interest::READABLE), R);
        assert_eq!(mask(W | WC, Interest::READABLE), 0);
        assert_eq!(mask(R | RC, Interest::WRITABLE), 0, "a FIN is not a writer's business");
        assert_eq!(mask(R | W | RC | WC | ERR, Interest::WRITABLE), W | RC | WC | ERR);
        assert_eq!(mask(RC | WC, Interest::WRITABLE), RC | WC, "hang-up always reported");
    }
}
