//! A host on an in-memory network for clients and origins: a `SmolStack` over a
//! `MemPort`, driven by its own thread, behind a small blocking socket API.
//!
//! [`PeerHost`] owns the thread; [`SmolConn`] and [`SmolListener`] are handles that send
//! requests to it and block for the answer, so test code reads like std sockets:
//! connect, accept, read, write (all of it), shutdown, abort (RST), close (drop).
//!
//! The contract, mirroring `std::net::TcpStream` on Linux:
//! - `read` blocks until at least one byte (`Ok(n)`), end of stream (`Ok(0)`), an error
//!   (`ConnectionReset` after an RST) or the read timeout (`TimedOut`);
//! - `write` queues the whole buffer (blocking while the send buffer is full) or fails
//!   (`BrokenPipe` after our shutdown, `ConnectionReset` after the peer's RST);
//! - `shutdown(Write)` sends FIN after the queued data; `shutdown(Read | Both)` makes
//!   reads return end of stream, `Both` also fails further writes, and either one wakes a
//!   read or write blocked on another handle of the socket (as on Linux);
//! - `try_clone` gives another handle to the same socket, with a shared read timeout;
//!   the socket is closed gracefully when its last handle is dropped.
//!
//! No operation blocks forever: without a timeout every wait ends after
//! [`MAX_WAIT`] with `TimedOut`, so a broken test fails instead of hanging. When the
//! host stops, every call returns an error. Dropping the [`PeerHost`] stops and joins
//! its thread (handles that outlive it only get errors).

mod driver;

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use sluice_datapath::mem::MemPort;
use sluice_stack::smol::{EthernetAddress, Ipv4Address, SmolConfig, SmolStack};
use sluice_stack::{SocketId, Stack, Token, Wake};

use driver::{Done, Driver, Op, Reply, Request};

/// The longest any call waits when no timeout was set.
pub const MAX_WAIT: Duration = Duration::from_secs(60);

/// Largest read handed to the host at once.
const READ_CHUNK: usize = 256 * 1024;

/// The way to the host's thread.
struct Link {
    requests: Sender<Request>,
    waker: Arc<dyn Wake>,
}

impl Link {
    fn send(&self, request: Request) -> io::Result<()> {
        self.requests.send(request).map_err(|_| stopped())?;
        self.waker.wake()
    }
}

fn stopped() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "peer host stopped")
}

/// A host at one address of an in-memory network, serving [`SmolConn`]s and
/// [`SmolListener`]s from its own thread until dropped.
pub struct PeerHost {
    link: Arc<Link>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<io::Result<()>>>,
    address: std::net::Ipv4Addr,
}

impl PeerHost {
    /// Start a host with stack settings `config` on `port`.
    pub fn start(port: MemPort, config: SmolConfig) -> io::Result<PeerHost> {
        let address = config.address.address();
        let mut stack = SmolStack::new(port, config)?;
        let waker = stack.waker(Token(usize::MAX))?;
        let (requests, rx) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let driver = Driver::new(stack, rx, Arc::clone(&stop));
        let thread = std::thread::Builder::new().name("peer-host".into()).spawn(move || driver.run())?;
        Ok(PeerHost { link: Arc::new(Link { requests, waker }), stop, thread: Some(thread), address })
    }

    pub fn ip(&self) -> std::net::Ipv4Addr {
        self.address
    }

    /// Connect to `addr`, waiting at most `timeout` for the handshake.
    pub fn connect(&self, addr: SocketAddr, timeout: Duration) -> io::Result<SmolConn> {
        let mut caller = Caller::new(&self.link);
        let op = Op::Connect { addr, deadline: Instant::now() + timeout };
        match caller.call(op, timeout)? {
            Done::Socket { id, local, peer } => Ok(SmolConn::new(caller, id, local, peer.unwrap_or(addr))),
            _ => Err(io::Error::other("peer host: unexpected answer to connect")),
        }
    }

    /// Listen on `port` of this host (`0`: a free one).
    pub fn listen(&self, port: u16) -> io::Result<SmolListener> {
        let mut caller = Caller::new(&self.link);
        let addr = SocketAddr::from((self.address, port));
        match caller.call(Op::Listen { addr }, MAX_WAIT)? {
            Done::Socket { id, local, .. } => Ok(SmolListener { socket: Socket::new(&self.link, id), local, caller }),
            _ => Err(io::Error::other("peer host: unexpected answer to listen")),
        }
    }

    /// Teach the host that `ip` is at `mac` (a static neighbour entry). smoltcp sends at
    /// most one ARP request per second per interface, so a host that must resolve several
    /// new neighbours at once (one per proxy worker) would otherwise wait a second each.
    pub fn add_neighbor(&self, ip: Ipv4Address, mac: EthernetAddress) -> io::Result<()> {
        Caller::new(&self.link).call(Op::Neighbor { ip, mac }, MAX_WAIT).map(|_| ())
    }

    /// Stop the thread and wait for it; its error, or a panic, comes back as an error.
    fn shut_down(&mut self) -> io::Result<()> {
        self.stop.store(true, Ordering::Release);
        let _ = self.link.waker.wake();
        match self.thread.take().map(JoinHandle::join) {
            None => Ok(()),
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(io::Error::other("the peer host thread panicked")),
        }
    }
}

impl Drop for PeerHost {
    fn drop(&mut self) {
        if let Err(e) = self.shut_down() {
            if !std::thread::panicking() {
                panic!("peer host: {e}");
            }
        }
    }
}

/// One handle's channel for answers (a handle has at most one call in flight).
struct Caller {
    link: Arc<Link>,
    tx: Sender<Reply>,
    rx: Receiver<Reply>,
}

impl Caller {
    fn new(link: &Arc<Link>) -> Caller {
        let (tx, rx) = mpsc::channel();
        Caller { link: Arc::clone(link), tx, rx }
    }

    /// Send `op` and wait for its answer; the host answers by `wait` at the latest.
    fn call(&mut self, op: Op, wait: Duration) -> io::Result<Done> {
        self.link.send(Request { op, reply: Some(self.tx.clone()) })?;
        match self.rx.recv_timeout(wait + Duration::from_secs(10)) {
            Ok(reply) => reply,
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(stopped()),
            Err(mpsc::RecvTimeoutError::Timeout) => Err(io::Error::other("peer host did not answer")),
        }
    }
}

/// A socket id shared by all handles of one socket; the last one closes it.
struct Socket {
    link: Arc<Link>,
    id: SocketId,
    read_timeout: Mutex<Option<Duration>>,
}

impl Socket {
    fn new(link: &Arc<Link>, id: SocketId) -> Arc<Socket> {
        Arc::new(Socket { link: Arc::clone(link), id, read_timeout: Mutex::new(None) })
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        let _ = self.link.send(Request { op: Op::Close { socket: self.id }, reply: None });
    }
}

/// A listening socket on a [`PeerHost`]; closed on drop.
pub struct SmolListener {
    socket: Arc<Socket>,
    local: SocketAddr,
    caller: Caller,
}

impl SmolListener {
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The next connection, waiting at most `timeout` (`TimedOut` then).
    pub fn accept(&mut self, timeout: Duration) -> io::Result<SmolConn> {
        let op = Op::Accept { listener: self.socket.id, deadline: Instant::now() + timeout };
        match self.caller.call(op, timeout)? {
            Done::Socket { id, local, peer: Some(peer) } => {
                Ok(SmolConn::new(Caller::new(&self.caller.link), id, local, peer))
            }
            _ => Err(io::Error::other("peer host: unexpected answer to accept")),
        }
    }
}

/// A connected stream on a [`PeerHost`] (see the module docs for its contract).
pub struct SmolConn {
    socket: Arc<Socket>,
    local: SocketAddr,
    peer: SocketAddr,
    caller: Caller,
    /// Read buffer lent to the host and given back with the bytes.
    buf: Vec<u8>,
}

impl SmolConn {
    fn new(caller: Caller, id: SocketId, local: SocketAddr, peer: SocketAddr) -> SmolConn {
        SmolConn { socket: Socket::new(&caller.link, id), local, peer, caller, buf: Vec::new() }
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    pub fn peer_addr(&self) -> SocketAddr {
        self.peer
    }

    /// Another handle to the same socket.
    pub fn try_clone(&self) -> io::Result<SmolConn> {
        Ok(SmolConn {
            socket: Arc::clone(&self.socket),
            local: self.local,
            peer: self.peer,
            caller: Caller::new(&self.caller.link),
            buf: Vec::new(),
        })
    }

    /// Timeout of reads on every handle of this socket (`None`: [`MAX_WAIT`]).
    pub fn set_read_timeout(&self, timeout: Option<Duration>) {
        *self.socket.read_timeout.lock().unwrap_or_else(|e| e.into_inner()) = timeout;
    }

    pub fn read_timeout(&self) -> Option<Duration> {
        *self.socket.read_timeout.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn shutdown(&mut self, how: Shutdown) -> io::Result<()> {
        self.caller.call(Op::Shutdown { socket: self.socket.id, how }, MAX_WAIT).map(|_| ())
    }

    /// Reset the connection (RST), dropping whatever is queued.
    pub fn abort(&mut self) -> io::Result<()> {
        self.caller.call(Op::Abort { socket: self.socket.id }, MAX_WAIT).map(|_| ())
    }
}

impl Read for SmolConn {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        let wait = self.read_timeout().unwrap_or(MAX_WAIT);
        let buf = std::mem::take(&mut self.buf);
        let op =
            Op::Read { socket: self.socket.id, buf, max: out.len().min(READ_CHUNK), deadline: Instant::now() + wait };
        match self.caller.call(op, wait)? {
            Done::Bytes(bytes) => {
                let n = bytes.len();
                out[..n].copy_from_slice(&bytes);
                self.buf = bytes;
                Ok(n)
            }
            _ => Err(io::Error::other("peer host: unexpected answer to read")),
        }
    }
}

impl Write for SmolConn {
    /// Queues all of `data` (see the module docs), so it never returns a short count.
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if data.is_empty() {
            return Ok(0);
        }
        let op =
            Op::Write { socket: self.socket.id, data: data.to_vec(), written: 0, deadline: Instant::now() + MAX_WAIT };
        self.caller.call(op, MAX_WAIT).map(|_| data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
