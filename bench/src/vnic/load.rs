//! The other side of the virtual NIC: HTTP/1.1 keep-alive clients and the origin they
//! reach through the proxy, all on one userspace smol stack driven by one thread.
//!
//! Each client connection sends `GET /small` and, once the whole response is in (its
//! `content-length` counted), the next request; the origin answers every request with a
//! fixed 200 response of a 6-byte body. Responses that are not `200` are counted as
//! errors, a connection closed under a client as one; a reset connection is counted
//! (`resets`) and the client connects again.

use std::io::{self, ErrorKind};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use sluice_datapath::ring::RingPort;
use sluice_stack::smol::SmolStack;
use sluice_stack::{Events, Interest, ListenOptions, SocketId, Stack, Token};

const REQUEST: &[u8] = b"GET /small HTTP/1.1\r\nhost: vnic\r\n\r\n";
const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\ncontent-type: text/plain\r\n\r\nhello\n";
const LISTENER: usize = 1 << 30;
const ORIGIN: usize = 1 << 31;

/// What the load thread reports, readable from any thread.
#[derive(Debug, Default)]
pub struct LoadCounters {
    /// Complete 200 responses received by the clients.
    pub responses: AtomicU64,
    /// Non-200 responses, unparsable ones, and connections closed under a client.
    pub errors: AtomicU64,
    /// Requests the origin answered.
    pub origin_requests: AtomicU64,
    /// Connections reset under a client or the origin (the client reconnects).
    pub resets: AtomicU64,
}

/// One connection end: bytes read and not yet used, bytes still to write.
struct Conn {
    socket: SocketId,
    input: Vec<u8>,
    output: Vec<u8>,
    connected: bool,
}

impl Conn {
    fn new(socket: SocketId, connected: bool) -> Conn {
        Conn { socket, input: Vec::with_capacity(4096), output: Vec::with_capacity(512), connected }
    }
}

/// The clients and the origin on one stack.
pub struct Load {
    stack: SmolStack<RingPort>,
    clients: Vec<Conn>,
    origins: Vec<Conn>,
    listener: SocketId,
    proxy: SocketAddr,
    buf: Vec<u8>,
}

fn is_reset(e: &io::Error) -> bool {
    matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted | ErrorKind::BrokenPipe)
}

fn context(e: io::Error, what: &str) -> io::Error {
    io::Error::new(e.kind(), format!("{what}: {e}"))
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// `Some((head_len, body_len, status_ok))` once a whole response head is in `input`.
fn response_head(input: &[u8]) -> Option<Option<(usize, usize, bool)>> {
    let end = find(input, b"\r\n\r\n")? + 4;
    let head = std::str::from_utf8(&input[..end]).ok();
    let parsed = head.and_then(|h| {
        let ok = h.starts_with("HTTP/1.1 200 ");
        let len = h.lines().find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.trim().eq_ignore_ascii_case("content-length").then(|| value.trim().parse::<usize>().ok())?
        })?;
        Some((end, len, ok))
    });
    Some(parsed)
}

impl Load {
    /// `clients` connections to `proxy`; the origin listens on `origin`.
    pub fn new(
        mut stack: SmolStack<RingPort>,
        proxy: SocketAddr,
        origin: SocketAddr,
        clients: usize,
    ) -> io::Result<Load> {
        let opts = ListenOptions { backlog: 4096, ..ListenOptions::default() };
        let listener = stack.listen(origin, &opts)?;
        stack.register(listener, Token(LISTENER), Interest::READABLE)?;
        let mut conns = Vec::with_capacity(clients);
        for i in 0..clients {
            let socket = stack.connect(proxy)?;
            stack.register(socket, Token(i), Interest::BOTH)?;
            conns.push(Conn::new(socket, false));
        }
        Ok(Load { stack, clients: conns, origins: Vec::new(), listener, proxy, buf: vec![0u8; 64 * 1024] })
    }

    /// Drive the load until `stop`, publishing progress into `counters`.
    pub fn run(mut self, stop: &AtomicBool, counters: &LoadCounters) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        let (mut responses, mut errors, mut served, mut resets) = (0u64, 0u64, 0u64, 0u64);
        let start = std::time::Instant::now();
        while !stop.load(Ordering::Relaxed) {
            self.stack.poll(&mut events, Some(Duration::from_millis(1)))?;
            for ev in events.iter() {
                let t = ev.token().0;
                if t == LISTENER {
                    while let Ok(a) = self.stack.accept(self.listener) {
                        let token = Token(ORIGIN + self.origins.len());
                        self.stack.register(a.socket, token, Interest::BOTH)?;
                        self.origins.push(Conn::new(a.socket, true));
                    }
                } else if t >= ORIGIN {
                    match self.serve(t - ORIGIN) {
                        Ok(n) => served += n,
                        Err(e) if is_reset(&e) => {
                            resets += 1;
                            if resets == 1 {
                                eprintln!("vnic: origin connection {} reset at {:?}", t - ORIGIN, start.elapsed());
                            }
                            if let Some(c) = self.origins.get_mut(t - ORIGIN) {
                                c.connected = false;
                                self.stack.close(c.socket);
                            }
                        }
                        Err(e) => return Err(context(e, "origin connection")),
                    }
                } else {
                    match self.client(t) {
                        Ok((ok, bad)) => {
                            responses += ok;
                            errors += bad;
                        }
                        Err(e) if is_reset(&e) => {
                            resets += 1;
                            if resets == 1 {
                                eprintln!("vnic: client connection {t} reset at {:?}", start.elapsed());
                            }
                            self.reconnect(t)?;
                        }
                        Err(e) => return Err(context(e, "client connection")),
                    }
                }
            }
            counters.responses.store(responses, Ordering::Relaxed);
            counters.errors.store(errors, Ordering::Relaxed);
            counters.origin_requests.store(served, Ordering::Relaxed);
            counters.resets.store(resets, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Replace client `i`'s reset connection with a new one.
    fn reconnect(&mut self, i: usize) -> io::Result<()> {
        let Some(conn) = self.clients.get_mut(i) else { return Ok(()) };
        self.stack.close(conn.socket);
        let socket = self.stack.connect(self.proxy)?;
        self.stack.register(socket, Token(i), Interest::BOTH)?;
        *conn = Conn::new(socket, false);
        Ok(())
    }

    /// Read what is there into `conn.input`; `false` once the peer has closed.
    fn fill(stack: &mut SmolStack<RingPort>, conn: &mut Conn, buf: &mut [u8]) -> io::Result<bool> {
        loop {
            match stack.read(conn.socket, buf) {
                Ok(0) => return Ok(false),
                Ok(n) => conn.input.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(true),
                Err(e) if e.kind() == ErrorKind::NotConnected => return Ok(true),
                Err(e) => return Err(e),
            }
        }
    }

    /// Write what `conn.output` holds, as far as the stack takes it.
    fn flush(stack: &mut SmolStack<RingPort>, conn: &mut Conn) -> io::Result<()> {
        while !conn.output.is_empty() {
            match stack.write(conn.socket, &conn.output) {
                Ok(0) => break,
                Ok(n) => {
                    conn.output.drain(..n);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// A client's event: (complete 200 responses, errors).
    fn client(&mut self, i: usize) -> io::Result<(u64, u64)> {
        let Some(conn) = self.clients.get_mut(i) else { return Ok((0, 0)) };
        if !conn.connected {
            match self.stack.connect_result(conn.socket) {
                Ok(()) => {
                    conn.connected = true;
                    conn.output.extend_from_slice(REQUEST);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::NotConnected => {
                    return Ok((0, 0))
                }
                Err(e) => return Err(e),
            }
        }
        let open = Self::fill(&mut self.stack, conn, &mut self.buf)?;
        let (mut ok, mut bad) = (0, 0);
        while let Some(head) = response_head(&conn.input) {
            let Some((head_len, body_len, status_ok)) = head else {
                bad += 1;
                conn.input.clear();
                break;
            };
            if conn.input.len() < head_len + body_len {
                break;
            }
            conn.input.drain(..head_len + body_len);
            if status_ok {
                ok += 1;
            } else {
                bad += 1;
            }
            conn.output.extend_from_slice(REQUEST);
        }
        Self::flush(&mut self.stack, conn)?;
        if !open {
            bad += 1;
        }
        Ok((ok, bad))
    }

    /// An origin connection's event: requests answered.
    fn serve(&mut self, j: usize) -> io::Result<u64> {
        let Some(conn) = self.origins.get_mut(j).filter(|c| c.connected) else { return Ok(0) };
        let open = Self::fill(&mut self.stack, conn, &mut self.buf)?;
        let mut served = 0;
        while let Some(end) = find(&conn.input, b"\r\n\r\n") {
            conn.input.drain(..end + 4);
            conn.output.extend_from_slice(RESPONSE);
            served += 1;
        }
        Self::flush(&mut self.stack, conn)?;
        if !open {
            conn.connected = false;
            self.stack.close(conn.socket);
        }
        Ok(served)
    }
}

#[cfg(test)]
mod tests {
    use super::response_head;

    #[test]
    fn a_response_head_is_parsed_once_whole() {
        assert_eq!(response_head(b"HTTP/1.1 200 OK\r\ncontent-len"), None);
        let r = b"HTTP/1.1 200 OK\r\nserver: x\r\nContent-Length: 6\r\n\r\nhello\n";
        assert_eq!(response_head(r), Some(Some((r.len() - 6, 6, true))));
        let r = b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 19\r\n\r\n";
        assert_eq!(response_head(r), Some(Some((r.len(), 19, false))));
        assert_eq!(response_head(b"HTTP/1.1 200 OK\r\n\r\n"), Some(None));
    }
}
