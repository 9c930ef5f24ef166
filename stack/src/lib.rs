//! The readiness layer: one small, epoll-like contract that every datapath implements,
//! so the proxy core above it is written once.
//!
//! The vocabulary is mio's: a socket is registered with a [`Token`] and an [`Interest`];
//! [`Stack::poll`] fills [`Events`] with the tokens that became ready. The contract:
//!
//! - **Edge-triggered.** An event says "something changed"; it is not repeated while the
//!   condition persists. After a readable event, read until `WouldBlock` (or EOF/error);
//!   after a writable event, write until `WouldBlock` or until there is nothing left to
//!   write. A socket that is ready when it is registered reports one event.
//! - **Spurious events happen.** An event may fire with nothing to do; an operation that
//!   cannot make progress returns `io::ErrorKind::WouldBlock`, never blocks.
//! - **Closed sockets say so.** End of stream is `Ok(0)` from [`Stack::read`] (plus
//!   `read_closed` on the event); a reset is an `Err` from read (once the bytes received
//!   before it are read, as on Linux) and write (`ConnectionReset`), and `error` on the
//!   event.
//! - **Connect completes with a writable event.** Then [`Stack::connect_result`] says
//!   `Ok(())` (established), `WouldBlock` (still in progress: a spurious event) or the
//!   error that failed it.
//! - **Handles, not descriptors.** A socket is a [`SocketId`]: no file descriptor, no
//!   smoltcp handle and no platform type crosses this API. A stale id (its socket closed)
//!   is refused with `io::ErrorKind::NotFound`; it never reaches another socket.
//! - **Time is explicit.** `poll` blocks at most `timeout`; the caller computes it from
//!   its own timers.
//!
//! Backends: [`kernel::KernelStack`] (kernel sockets and epoll, through mio) and the
//! userspace smoltcp stack, one per core.

#![forbid(unsafe_code)]

pub mod event;
pub mod interest;
pub mod kernel;
pub mod smol;
pub mod socket;

use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

pub use event::{Event, Events};
pub use interest::Interest;
pub use socket::SocketId;

/// Associates readiness events with a registered socket (mio's `Token`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Token(pub usize);

/// Options for a listening socket.
#[derive(Debug, Clone)]
pub struct ListenOptions {
    /// Pending-connection backlog (kernel `listen(2)` backlog; smol LISTEN-socket pool).
    pub backlog: u32,
    /// `SO_REUSEPORT`: one listening socket per worker on the same address.
    pub reuse_port: bool,
    /// For `::` listeners: also accept IPv4 (Envoy's `ipv4_compat`).
    pub ipv4_compat: bool,
}

impl Default for ListenOptions {
    fn default() -> Self {
        ListenOptions { backlog: 1024, reuse_port: true, ipv4_compat: false }
    }
}

/// A connection taken from a listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accepted {
    pub socket: SocketId,
    /// The downstream peer.
    pub peer: SocketAddr,
    /// The address the connection was accepted on. For the smol stack (any_ip) this is
    /// the original destination.
    pub local: SocketAddr,
}

/// Wakes a stack's `poll` from another thread; the wake is reported as an event with
/// the token given to [`Stack::waker`].
pub trait Wake: Send + Sync {
    fn wake(&self) -> io::Result<()>;
}

/// Per-stack counters a backend keeps, read by the worker for stats.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StackStats {
    pub accepts: u64,
    pub connects: u64,
    /// Connection attempts refused because no port or socket was free.
    pub connect_exhausted: u64,
}

/// The readiness contract. See the crate documentation for the rules.
pub trait Stack {
    /// Wait until at least one registered socket is ready, a waker fires, or `timeout`
    /// passes (`None` = no limit), then fill `events` (cleared first).
    fn poll(&mut self, events: &mut Events, timeout: Option<Duration>) -> io::Result<()>;

    /// A handle that wakes `poll` from another thread with an event for `token`.
    fn waker(&mut self, token: Token) -> io::Result<Arc<dyn Wake>>;

    /// Open a listening socket (bound now: errors such as `AddrInUse` surface here).
    fn listen(&mut self, addr: SocketAddr, opts: &ListenOptions) -> io::Result<SocketId>;

    /// Take one pending connection, or `WouldBlock`.
    fn accept(&mut self, listener: SocketId) -> io::Result<Accepted>;

    /// Start a non-blocking connect; completion is a writable event (see
    /// [`Stack::connect_result`]). Stream sockets have Nagle disabled.
    fn connect(&mut self, addr: SocketAddr) -> io::Result<SocketId>;

    /// After a writable event on a connecting socket: `Ok(())` once established,
    /// `WouldBlock` while still in progress, or the error that failed the connect.
    fn connect_result(&mut self, socket: SocketId) -> io::Result<()>;

    /// Read into `buf`: `Ok(0)` at end of stream, `WouldBlock` when drained.
    fn read(&mut self, socket: SocketId, buf: &mut [u8]) -> io::Result<usize>;

    /// Like [`Stack::read`] but leaves the bytes queued (listener filters sniff with it).
    fn peek(&mut self, socket: SocketId, buf: &mut [u8]) -> io::Result<usize>;

    /// Write from `buf`; `WouldBlock` when the send buffer is full.
    fn write(&mut self, socket: SocketId, buf: &[u8]) -> io::Result<usize>;

    /// Gathering write; the default writes the first non-empty slice.
    fn write_vectored(&mut self, socket: SocketId, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match bufs.iter().find(|b| !b.is_empty()) {
            Some(b) => self.write(socket, b),
            None => Ok(0),
        }
    }

    /// Send FIN once queued data is out; reading stays possible (half-close).
    fn shutdown_write(&mut self, socket: SocketId) -> io::Result<()>;

    /// Close gracefully: queued data is still delivered, then FIN. The id is dead after.
    fn close(&mut self, socket: SocketId);

    /// Close with a reset (RST), dropping queued data. The id is dead after.
    fn abort(&mut self, socket: SocketId);

    fn local_addr(&self, socket: SocketId) -> io::Result<SocketAddr>;

    fn peer_addr(&self, socket: SocketId) -> io::Result<SocketAddr>;

    /// The destination before a NAT redirect (`SO_ORIGINAL_DST`), when there was one.
    /// The smol stack accepts any destination, so its local address already is it.
    fn original_dst(&self, socket: SocketId) -> io::Result<Option<SocketAddr>>;

    fn register(&mut self, socket: SocketId, token: Token, interest: Interest) -> io::Result<()>;

    fn reregister(&mut self, socket: SocketId, token: Token, interest: Interest) -> io::Result<()>;

    fn deregister(&mut self, socket: SocketId) -> io::Result<()>;

    /// Connections closed or aborted by their owner for which this stack still owes
    /// the peer something: queued data, a FIN not yet acknowledged, or an RST not yet
    /// sent. A userspace stack delivers those only while it is polled, so an owner about
    /// to drop the stack keeps polling until this is zero or its own deadline passes.
    /// The kernel finishes such connections by itself, even after the process exits:
    /// the default is 0.
    fn closing(&self) -> usize {
        0
    }

    /// Counters kept by the backend.
    fn stats(&self) -> StackStats {
        StackStats::default()
    }
}
