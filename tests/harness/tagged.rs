//! A TCP origin that names itself: on every connection it first writes `TAG\n`, then
//! echoes what it reads until EOF. A test routing each filter chain (or listener) to
//! its own tagged origin learns from the first line which one served the connection.
//! It binds any address (inside a network namespace when started on a thread that
//! entered one) and records every byte it received.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

pub struct TaggedEcho {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    accepted: Arc<AtomicUsize>,
    received: Arc<Mutex<Vec<u8>>>,
    thread: Option<JoinHandle<()>>,
}

impl TaggedEcho {
    /// On an ephemeral loopback port.
    pub fn start(tag: &str) -> TaggedEcho {
        Self::start_on("127.0.0.1:0", tag)
    }

    pub fn start_on(bind: &str, tag: &str) -> TaggedEcho {
        let listener = TcpListener::bind(bind).unwrap_or_else(|e| panic!("bind {bind}: {e}"));
        let addr = listener.local_addr().unwrap();
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(AtomicUsize::new(0));
        let received = Arc::new(Mutex::new(Vec::new()));
        let (s, a, r, tag) = (Arc::clone(&stop), Arc::clone(&accepted), Arc::clone(&received), format!("{tag}\n"));
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((c, _)) => {
                        a.fetch_add(1, Ordering::Relaxed);
                        let (r, tag) = (Arc::clone(&r), tag.clone());
                        std::thread::spawn(move || serve(c, &tag, &r));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        TaggedEcho { addr, stop, accepted, received, thread: Some(thread) }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::Relaxed)
    }

    /// Every byte received so far, all connections.
    pub fn received(&self) -> Vec<u8> {
        self.received.lock().unwrap().clone()
    }
}

fn serve(mut c: TcpStream, tag: &str, received: &Mutex<Vec<u8>>) {
    let _ = c.set_nonblocking(false);
    let _ = c.set_read_timeout(Some(Duration::from_secs(30)));
    if c.write_all(tag.as_bytes()).is_err() {
        return;
    }
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match c.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                received.lock().unwrap().extend_from_slice(&buf[..n]);
                if c.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = c.shutdown(Shutdown::Write);
}

impl Drop for TaggedEcho {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
