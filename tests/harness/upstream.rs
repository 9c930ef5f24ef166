//! Upstreams that fail on purpose, for load-balancing, health-check and outlier tests.
//!
//! - [`Backend`]: an echo origin on a fixed port that can be killed (connections to
//!   the port are refused) and revived on the same port, counting what it accepted.
//! - [`HealthServer`]: a tiny HTTP/1.1 server answering every request with a status
//!   set on demand (200 or 503), keeping connections alive, counting requests.
//!
//! Both run on plain threads with std sockets and stop on drop.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// A listener thread accepting into `handler` until stopped.
struct Acceptor {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Acceptor {
    fn start(listener: TcpListener, handler: Arc<dyn Fn(TcpStream) + Send + Sync>) -> Acceptor {
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let s = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((c, _)) => {
                        c.set_nonblocking(false).unwrap();
                        let h = Arc::clone(&handler);
                        std::thread::spawn(move || h(c));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(1)),
                }
            }
        });
        Acceptor { stop, thread: Some(thread) }
    }
}

impl Drop for Acceptor {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// An echo origin that can die and come back on the same port.
pub struct Backend {
    pub addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    open: Arc<Mutex<Vec<TcpStream>>>,
    acceptor: Option<Acceptor>,
}

impl Backend {
    /// Start on a free loopback port.
    pub fn start() -> Backend {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut b = Backend {
            addr: l.local_addr().unwrap(),
            accepted: Arc::new(AtomicUsize::new(0)),
            open: Arc::new(Mutex::new(Vec::new())),
            acceptor: None,
        };
        b.serve(l);
        b
    }

    fn serve(&mut self, l: TcpListener) {
        let (accepted, open) = (Arc::clone(&self.accepted), Arc::clone(&self.open));
        self.acceptor = Some(Acceptor::start(
            l,
            Arc::new(move |mut c: TcpStream| {
                accepted.fetch_add(1, Ordering::Relaxed);
                if let Ok(clone) = c.try_clone() {
                    open.lock().unwrap().push(clone);
                }
                crate::origin::echo(&mut c);
                let _ = c.shutdown(Shutdown::Write);
            }),
        ));
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Connections accepted so far (over all lives).
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::Relaxed)
    }

    /// Stop listening (new connections are refused) and reset open connections.
    pub fn kill(&mut self) {
        self.acceptor = None;
        for c in self.open.lock().unwrap().drain(..) {
            let _ = c.shutdown(Shutdown::Both);
        }
    }

    /// Listen again on the same port.
    pub fn revive(&mut self) {
        assert!(self.acceptor.is_none(), "already alive");
        let l = TcpListener::bind(self.addr).expect("rebind the backend's port");
        self.serve(l);
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.kill();
    }
}

/// An HTTP server answering health checks with a status set on demand.
pub struct HealthServer {
    pub addr: SocketAddr,
    status: Arc<AtomicU16>,
    requests: Arc<AtomicUsize>,
    _acceptor: Acceptor,
}

impl HealthServer {
    pub fn start() -> HealthServer {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let status = Arc::new(AtomicU16::new(200));
        let requests = Arc::new(AtomicUsize::new(0));
        let (st, rq) = (Arc::clone(&status), Arc::clone(&requests));
        let acceptor = Acceptor::start(
            l,
            Arc::new(move |mut c: TcpStream| {
                let _ = c.set_read_timeout(Some(Duration::from_secs(10)));
                let mut buf = Vec::new();
                let mut chunk = [0u8; 2048];
                loop {
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        buf.drain(..end + 4);
                        rq.fetch_add(1, Ordering::Relaxed);
                        let s = st.load(Ordering::Relaxed);
                        let resp = format!("HTTP/1.1 {s} Status\r\ncontent-length: 0\r\n\r\n");
                        if c.write_all(resp.as_bytes()).is_err() {
                            return;
                        }
                    }
                    match c.read(&mut chunk) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
            }),
        );
        HealthServer { addr, status, requests, _acceptor: acceptor }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Answer future health checks with `status`.
    pub fn set_status(&self, status: u16) {
        self.status.store(status, Ordering::Relaxed);
    }

    /// Health-check requests answered so far.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::Relaxed)
    }
}

/// [`crate::origin::echoes`] over a new connection to 127.0.0.1:`port`.
pub fn echo_once(port: u16) -> bool {
    crate::origin::echoes(TcpStream::connect(crate::localhost(port)).map(crate::conn::Conn::Kernel))
}
