//! Sockets that work on both backends, and the accept loop that origins share.
//!
//! [`Conn`] is a connected stream: a kernel `TcpStream` on loopback, or a [`SmolConn`] on
//! a peer host of an in-memory network. It offers the slice of `TcpStream`'s API the
//! tests use (`Read`, `Write`, `shutdown`, `try_clone`, read timeouts, addresses) plus
//! [`Conn::reset`] (close with RST), with the same semantics on both.
//! [`Listener`] is the matching listening socket.
//!
//! [`Acceptor`] runs a handler on its own thread for every accepted connection; the
//! connection is closed when the handler returns (the acceptor holds a second handle
//! until then). On drop it stops accepting, shuts down the connections whose handlers
//! still run (which wakes a handler blocked in a read or write) and joins all its
//! threads, also when a test panics.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::memnet::{SmolConn, SmolListener};

/// A connected stream on either backend.
pub enum Conn {
    Kernel(TcpStream),
    Smol(SmolConn),
}

impl Conn {
    pub fn try_clone(&self) -> io::Result<Conn> {
        match self {
            Conn::Kernel(s) => s.try_clone().map(Conn::Kernel),
            Conn::Smol(s) => s.try_clone().map(Conn::Smol),
        }
    }

    pub fn shutdown(&mut self, how: Shutdown) -> io::Result<()> {
        match self {
            Conn::Kernel(s) => s.shutdown(how),
            Conn::Smol(s) => s.shutdown(how),
        }
    }

    /// Close with a reset (RST) instead of a FIN, dropping queued data.
    pub fn reset(self) {
        match self {
            Conn::Kernel(s) => {
                let _ = socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO));
            }
            Conn::Smol(mut s) => {
                let _ = s.abort();
            }
        }
    }

    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        match self {
            Conn::Kernel(s) => s.set_read_timeout(timeout),
            Conn::Smol(s) => {
                s.set_read_timeout(timeout);
                Ok(())
            }
        }
    }

    /// Disable Nagle (the smol stack always runs without it).
    pub fn set_nodelay(&self, on: bool) -> io::Result<()> {
        match self {
            Conn::Kernel(s) => s.set_nodelay(on),
            Conn::Smol(_) => Ok(()),
        }
    }

    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        match self {
            Conn::Kernel(s) => s.peer_addr(),
            Conn::Smol(s) => Ok(s.peer_addr()),
        }
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        match self {
            Conn::Kernel(s) => s.local_addr(),
            Conn::Smol(s) => Ok(s.local_addr()),
        }
    }
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Conn::Kernel(s) => s.read(buf),
            Conn::Smol(s) => s.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Conn::Kernel(s) => s.write(buf),
            Conn::Smol(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Conn::Kernel(s) => s.flush(),
            Conn::Smol(s) => s.flush(),
        }
    }
}

/// A listening socket on either backend.
pub enum Listener {
    Kernel(TcpListener),
    Smol(SmolListener),
}

impl Listener {
    /// A kernel listener on `addr` (e.g. `127.0.0.1:0`).
    pub fn bind(addr: &str) -> io::Result<Listener> {
        let l = TcpListener::bind(addr)?;
        l.set_nonblocking(true)?;
        Ok(Listener::Kernel(l))
    }

    pub fn local_addr(&self) -> SocketAddr {
        match self {
            Listener::Kernel(l) => l.local_addr().expect("a bound listener has an address"),
            Listener::Smol(l) => l.local_addr(),
        }
    }

    /// The next connection (blocking, without timeouts or Nagle's delay on the kernel),
    /// or `Ok(None)` when none arrived within `wait`.
    pub fn accept(&mut self, wait: Duration) -> io::Result<Option<Conn>> {
        match self {
            Listener::Kernel(l) => {
                l.set_nonblocking(true)?;
                let deadline = Instant::now() + wait;
                loop {
                    match l.accept() {
                        Ok((c, _)) => {
                            c.set_nonblocking(false)?;
                            return Ok(Some(Conn::Kernel(c)));
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            if Instant::now() >= deadline {
                                return Ok(None);
                            }
                            std::thread::sleep(Duration::from_millis(1));
                        }
                        Err(e) => return Err(e),
                    }
                }
            }
            Listener::Smol(l) => match l.accept(wait) {
                Ok(c) => Ok(Some(Conn::Smol(c))),
                Err(e) if e.kind() == io::ErrorKind::TimedOut => Ok(None),
                Err(e) => Err(e),
            },
        }
    }
}

/// Connections an [`Acceptor`] handed out, so that it can wake and join their threads.
#[derive(Default)]
struct Served {
    threads: Vec<JoinHandle<()>>,
    /// A second handle of each connection whose handler runs, to shut it down on stop.
    conns: HashMap<usize, Conn>,
}

/// Accepts on a [`Listener`] from its own thread and runs `handler` on a thread per
/// connection; stops and joins everything on drop.
pub struct Acceptor {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    accepted: Arc<AtomicUsize>,
    served: Arc<Mutex<Served>>,
    thread: Option<JoinHandle<()>>,
}

impl Acceptor {
    /// Serve `listener`; `handler` gets each connection and its index (accept order).
    pub fn start(mut listener: Listener, handler: impl Fn(Conn, usize) + Send + Sync + 'static) -> Acceptor {
        let addr = listener.local_addr();
        let stop = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(AtomicUsize::new(0));
        let served = Arc::new(Mutex::new(Served::default()));
        let handler = Arc::new(handler);
        let (s, a, sv) = (Arc::clone(&stop), Arc::clone(&accepted), Arc::clone(&served));
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match listener.accept(Duration::from_millis(20)) {
                    Ok(Some(c)) => {
                        let index = a.fetch_add(1, Ordering::Relaxed);
                        let (h, sv2) = (Arc::clone(&handler), Arc::clone(&sv));
                        let mut served = lock(&sv);
                        if let Ok(second) = c.try_clone() {
                            served.conns.insert(index, second);
                        }
                        served.threads.push(std::thread::spawn(move || {
                            h(c, index);
                            // The last handle: the connection closes now.
                            let second = lock(&sv2).conns.remove(&index);
                            drop(second);
                        }));
                    }
                    Ok(None) => {}
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        Acceptor { addr, stop, accepted, served, thread: Some(thread) }
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::Relaxed)
    }

    /// Whether the acceptor is stopping (handlers that wait may check it).
    pub fn stop_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.stop)
    }
}

impl Drop for Acceptor {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let threads = {
            let mut served = lock(&self.served);
            for c in served.conns.values_mut() {
                let _ = c.shutdown(Shutdown::Both);
            }
            std::mem::take(&mut served.threads)
        };
        for t in threads {
            // A handler's panic already failed its assertion's test, or was a peer gone.
            let _ = t.join();
        }
    }
}

fn lock(served: &Mutex<Served>) -> std::sync::MutexGuard<'_, Served> {
    // A handler that panicked holding the lock left plain data behind: keep going.
    served.lock().unwrap_or_else(|e| e.into_inner())
}
