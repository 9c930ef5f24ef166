//! A scriptable HTTP/1.1 origin for tests (threads and std sockets).
//!
//! The path picks the behaviour:
//! - `/status/N` answers status N;
//! - `/delay/MS/...` waits MS milliseconds first;
//! - `/bytes/N` answers N bytes (content-length); `/chunked/N` the same, chunked;
//! - `/reset` closes the connection without answering; `/reset-after-headers` sends a
//!   head promising a body and resets;
//! - `/close` answers with `connection: close`;
//! - `/redirect/N?to=URL` answers status N with `location: URL`;
//! - anything else echoes: a body listing the request line and headers, then the body.
//!
//! Every response carries `x-origin: NAME`. The origin records each request (method,
//! path, headers, body length) and counts connections. It runs on either backend (see
//! [`crate::conn`]) and stops, joining its threads, on drop.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::conn::{Acceptor, Conn, Listener};

/// A request as the origin saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    /// Lower-cased names.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Which connection (0-based, in accept order) carried it.
    pub connection: usize,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

struct Shared {
    name: String,
    seen: Mutex<Vec<Seen>>,
    /// Set on drop: cuts `/delay/` waits short.
    stop: AtomicBool,
    /// When set, every request gets this status (health flips in tests).
    forced_status: Mutex<Option<u16>>,
}

pub struct HttpOrigin {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Acceptor,
}

impl HttpOrigin {
    pub fn start(name: &str) -> HttpOrigin {
        Self::start_on("127.0.0.1:0", name)
    }

    pub fn start_on(bind: &str, name: &str) -> HttpOrigin {
        Self::serve(Listener::bind(bind).unwrap(), name)
    }

    /// An origin on `listener` (e.g. from `backend::Net::listen`).
    pub fn serve(listener: Listener, name: &str) -> HttpOrigin {
        let shared = Arc::new(Shared {
            name: name.to_string(),
            seen: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
            forced_status: Mutex::new(None),
        });
        let sh = Arc::clone(&shared);
        let acceptor = Acceptor::start(listener, move |c, id| {
            c.set_nodelay(true).unwrap();
            serve(c, id, Arc::clone(&sh));
        });
        HttpOrigin { addr: acceptor.addr, shared, acceptor }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Requests seen so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.shared.seen.lock().unwrap().clone()
    }

    pub fn requests(&self) -> usize {
        self.shared.seen.lock().unwrap().len()
    }

    pub fn connections(&self) -> usize {
        self.acceptor.accepted()
    }

    /// Answer every request with `status` (None: normal behaviour).
    pub fn force_status(&self, status: Option<u16>) {
        *self.shared.forced_status.lock().unwrap() = status;
    }
}

impl Drop for HttpOrigin {
    fn drop(&mut self) {
        // The acceptor, dropped after this, wakes and joins the connection threads.
        self.shared.stop.store(true, Ordering::Relaxed);
    }
}

fn serve(stream: Conn, conn_id: usize, sh: Arc<Shared>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let parts: Vec<&str> = line.trim_end().splitn(3, ' ').collect();
        if parts.len() < 3 {
            return;
        }
        let (method, path) = (parts[0].to_string(), parts[1].to_string());
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((n, v)) = h.split_once(':') {
                headers.push((n.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
        let get = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
        let mut body = Vec::new();
        if get("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
            loop {
                let mut size = String::new();
                reader.read_line(&mut size).unwrap();
                let n = usize::from_str_radix(size.trim().split(';').next().unwrap(), 16).unwrap();
                if n == 0 {
                    let mut end = String::new();
                    reader.read_line(&mut end).unwrap();
                    break;
                }
                let mut chunk = vec![0; n + 2];
                reader.read_exact(&mut chunk).unwrap();
                body.extend_from_slice(&chunk[..n]);
            }
        } else if let Some(cl) = get("content-length") {
            let n: usize = cl.parse().unwrap();
            body.resize(n, 0);
            reader.read_exact(&mut body).unwrap();
        }
        let keep_alive = !get("connection").is_some_and(|v| v.eq_ignore_ascii_case("close"));
        sh.seen.lock().unwrap().push(Seen {
            method: method.clone(),
            path: path.clone(),
            headers: headers.clone(),
            body: body.clone(),
            connection: conn_id,
        });
        let mut p = path.as_str();
        if let Some(rest) = p.strip_prefix("/delay/") {
            let (ms, tail) = rest.split_once('/').unwrap_or((rest, ""));
            sleep_unless_stopped(Duration::from_millis(ms.parse().unwrap_or(0)), &sh.stop);
            p = if tail.is_empty() { "/" } else { &path[path.len() - tail.len() - 1..] };
        }
        let name = sh.name.clone();
        let head = method == "HEAD";
        let forced = *sh.forced_status.lock().unwrap();
        let result = if let Some(status) = forced {
            respond(&mut writer, status, &name, b"forced", keep_alive)
        } else if let Some(s) = p.strip_prefix("/status/") {
            let status: u16 = s.split(['/', '?']).next().unwrap().parse().unwrap_or(500);
            respond(&mut writer, status, &name, format!("status {status}").as_bytes(), keep_alive)
        } else if let Some(rest) = p.strip_prefix("/redirect/") {
            let (code, to) = rest.split_once("?to=").unwrap_or((rest, ""));
            let status: u16 = code.parse().unwrap_or(302);
            let body = format!("redirect to {to}");
            let conn = if keep_alive { "" } else { "connection: close\r\n" };
            let head = format!(
                "HTTP/1.1 {status} X\r\ncontent-length: {}\r\nlocation: {to}\r\nx-origin: {name}\r\n{conn}\r\n",
                body.len()
            );
            writer.write_all(head.as_bytes()).and_then(|_| writer.write_all(body.as_bytes()))
        } else if let Some(n) = p.strip_prefix("/bytes/") {
            let n: usize = n.split('?').next().unwrap().parse().unwrap();
            respond(&mut writer, 200, &name, &pattern(n), keep_alive)
        } else if let Some(n) = p.strip_prefix("/chunked/") {
            let n: usize = n.split('?').next().unwrap().parse().unwrap();
            respond_chunked(&mut writer, &name, &pattern(n), keep_alive)
        } else if p.starts_with("/reset-after-headers") {
            let _ = writer.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\npartial");
            writer.reset();
            return;
        } else if p.starts_with("/reset") {
            writer.reset();
            return;
        } else if p.starts_with("/close") {
            let r = respond(&mut writer, 200, &name, b"closing", false);
            let _ = writer.shutdown(Shutdown::Both);
            let _ = r;
            return;
        } else {
            let mut echo = format!("{method} {path}\n");
            for (n, v) in &headers {
                echo.push_str(&format!("{n}: {v}\n"));
            }
            echo.push('\n');
            let mut out = echo.into_bytes();
            out.extend_from_slice(&body);
            respond_to(&mut writer, 200, &name, &out, keep_alive, head)
        };
        if result.is_err() || !keep_alive {
            let _ = writer.shutdown(Shutdown::Both);
            return;
        }
    }
}

/// Sleep for `d`, or less once `stop` is set.
fn sleep_unless_stopped(d: Duration, stop: &AtomicBool) {
    let deadline = Instant::now() + d;
    while !stop.load(Ordering::Relaxed) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        std::thread::sleep(left.min(Duration::from_millis(10)));
    }
}

/// Deterministic body bytes.
pub fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| b"0123456789abcdefghijklmnopqrstuvwxyz"[i % 36]).collect()
}

fn respond(w: &mut impl Write, status: u16, name: &str, body: &[u8], keep_alive: bool) -> std::io::Result<()> {
    respond_to(w, status, name, body, keep_alive, false)
}

fn respond_to(
    w: &mut impl Write,
    status: u16,
    name: &str,
    body: &[u8],
    keep_alive: bool,
    head: bool,
) -> std::io::Result<()> {
    let conn = if keep_alive { "" } else { "connection: close\r\n" };
    let head_text = format!("HTTP/1.1 {status} X\r\ncontent-length: {}\r\nx-origin: {name}\r\n{conn}\r\n", body.len());
    w.write_all(head_text.as_bytes())?;
    if head || status == 204 || status == 304 || status < 200 {
        return Ok(());
    }
    w.write_all(body)
}

fn respond_chunked(w: &mut impl Write, name: &str, body: &[u8], keep_alive: bool) -> std::io::Result<()> {
    let conn = if keep_alive { "" } else { "connection: close\r\n" };
    let head = format!("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nx-origin: {name}\r\n{conn}\r\n");
    w.write_all(head.as_bytes())?;
    for chunk in body.chunks(10_000) {
        w.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())?;
        w.write_all(chunk)?;
        w.write_all(b"\r\n")?;
    }
    w.write_all(b"0\r\n\r\n")
}
