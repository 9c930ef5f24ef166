//! SIGTERM under keep-alive load, on the sluice binary: the drain loses no request.
//!
//! Clients keep 32 keep-alive connections busy (a short pause between requests, so that
//! at any instant many connections are idle with the next request about to leave).
//! On SIGTERM sluice stops accepting, answers every request already sent, asks each
//! connection to close with `connection: close` on a response (spread over the first
//! quarter of `--drain-time-s` with `--drain-strategy gradual`, at once with
//! `immediate`), closes an idle connection only after the HCM's `drain_timeout`, and
//! exits 0 as soon as every connection is closed, well before the drain time.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_e2e::config::{forward_all, http, Cluster};
use sluice_e2e::http_origin::HttpOrigin;
use sluice_e2e::proxy::Proxy;
use sluice_e2e::{free_port, localhost};

const CONNECTIONS: usize = 32;
const DRAIN_TIME_S: u64 = 15;

#[derive(Default)]
struct Tally {
    ok: AtomicUsize,
    /// Requests sent whose response never came (reset or EOF first).
    failed: AtomicUsize,
    /// Responses that asked the connection to close.
    closes: AtomicUsize,
    ok_after_term: AtomicUsize,
}

/// Read one response (content-length framed); `Ok(true)` when it says
/// `connection: close`.
fn read_response(s: &mut TcpStream, buf: &mut Vec<u8>) -> io::Result<bool> {
    buf.clear();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            if !head.starts_with("http/1.1 200") {
                return Err(io::Error::other(format!("unexpected response: {head}")));
            }
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .ok_or_else(|| io::Error::other("no content-length"))?;
            while buf.len() < end + 4 + len {
                let n = s.read(&mut chunk)?;
                if n == 0 {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            return Ok(head.contains("\r\nconnection: close"));
        }
        let n = s.read(&mut chunk)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// One client: keep-alive requests until the proxy refuses new connections.
fn client(port: u16, tally: Arc<Tally>, term: Arc<AtomicBool>, id: usize) {
    let mut buf = Vec::new();
    let mut n = 0u64;
    'connections: loop {
        let Ok(mut s) = TcpStream::connect(localhost(port)) else { return };
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        s.set_nodelay(true).unwrap();
        loop {
            n += 1;
            let req = format!("GET /c{id}/{n} HTTP/1.1\r\nhost: t\r\n\r\n");
            let after_term = term.load(Ordering::Relaxed);
            if s.write_all(req.as_bytes()).is_err() {
                tally.failed.fetch_add(1, Ordering::Relaxed);
                continue 'connections;
            }
            match read_response(&mut s, &mut buf) {
                Ok(close) => {
                    tally.ok.fetch_add(1, Ordering::Relaxed);
                    if after_term {
                        tally.ok_after_term.fetch_add(1, Ordering::Relaxed);
                    }
                    if close {
                        tally.closes.fetch_add(1, Ordering::Relaxed);
                        continue 'connections;
                    }
                }
                Err(e) => {
                    eprintln!("client {id}: request {n} lost: {e}");
                    tally.failed.fetch_add(1, Ordering::Relaxed);
                    continue 'connections;
                }
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

fn sigterm_under_keep_alive_load(strategy: &str) {
    let origin = HttpOrigin::start("o");
    let port = free_port();
    let clusters = [Cluster { name: "web", ports: &[origin.port()], extra: "" }];
    let yaml = http(port, &forward_all("web"), &clusters, "", "");
    let drain_time = DRAIN_TIME_S.to_string();
    let args = ["--concurrency", "1", "--drain-time-s", &drain_time, "--drain-strategy", strategy];
    let mut p = Proxy::start(&yaml, &args);
    let tally = Arc::new(Tally::default());
    let term = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..CONNECTIONS)
        .map(|i| {
            let (tally, term) = (Arc::clone(&tally), Arc::clone(&term));
            std::thread::spawn(move || client(port, tally, term, i))
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    while tally.ok.load(Ordering::Relaxed) < 2000 {
        assert!(Instant::now() < deadline, "no load: {} ok", tally.ok.load(Ordering::Relaxed));
        std::thread::sleep(Duration::from_millis(5));
    }
    term.store(true, Ordering::Relaxed);
    let t = Instant::now();
    p.signal("TERM");
    let status = p.wait_exit(Duration::from_secs(DRAIN_TIME_S + 5));
    let took = t.elapsed();
    for c in clients {
        c.join().unwrap();
    }
    let (ok, failed, closes) =
        (tally.ok.load(Ordering::Relaxed), tally.failed.load(Ordering::Relaxed), tally.closes.load(Ordering::Relaxed));
    let after = tally.ok_after_term.load(Ordering::Relaxed);
    eprintln!("{strategy}: exit after {took:?}, {ok} ok ({after} sent after SIGTERM), {failed} failed, {closes} connection: close");
    assert!(status.success(), "exit status {status}:\n{}", p.log());
    assert_eq!(failed, 0, "requests lost across SIGTERM ({ok} ok)");
    assert!(closes >= CONNECTIONS, "every connection was asked to close: {closes}");
    assert!(took < Duration::from_secs(DRAIN_TIME_S / 2), "exit waited for the drain time: {took:?}");
}

#[test]
fn sigterm_gradual_drain_loses_no_keep_alive_request() {
    sigterm_under_keep_alive_load("gradual");
}

#[test]
fn sigterm_immediate_drain_loses_no_keep_alive_request() {
    sigterm_under_keep_alive_load("immediate");
}
