//! tcp_proxy end to end: real clients, a real sluice process, real origins (loopback).

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use sluice_e2e::config::{endpoint, tcp_proxy};
use sluice_e2e::origin::TcpOrigin;
use sluice_e2e::proxy::{self, Proxy};
use sluice_e2e::{free_port, localhost, payload};

fn config(listen: u16, upstreams: &[u16], cluster_extra: &str, tcp_extra: &str) -> String {
    let endpoints: String = upstreams.iter().map(|p| endpoint(*p)).collect();
    tcp_proxy(listen, &endpoints, cluster_extra, tcp_extra)
}

fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect(localhost(port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s
}

/// Send `data`, half-close, and read everything back until EOF.
fn round_trip(port: u16, data: &[u8]) -> Vec<u8> {
    let mut s = connect(port);
    let mut reader = s.try_clone().unwrap();
    let rx = std::thread::spawn(move || {
        let mut got = Vec::new();
        reader.read_to_end(&mut got).map(|_| got)
    });
    s.write_all(data).unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    rx.join().unwrap().expect("read until EOF")
}

#[test]
fn eight_mib_byte_exact_client_half_closes_first() {
    let origin = TcpOrigin::echo();
    let port = free_port();
    let _p = Proxy::start(&config(port, &[origin.port()], "", ""), &["--concurrency", "2"]);
    let data = payload(8 << 20, 1);
    let got = round_trip(port, &data);
    assert_eq!(got.len(), data.len());
    assert!(got == data, "relayed bytes differ");
}

#[test]
fn eight_mib_byte_exact_origin_half_closes_first() {
    // The origin sends 8 MiB and its FIN first, then keeps reading the client's 8 MiB.
    let (tx, rx) = mpsc::channel();
    let origin = TcpOrigin::start(move |mut c| {
        c.write_all(&payload(8 << 20, 2)).unwrap();
        c.shutdown(Shutdown::Write).unwrap();
        let mut got = Vec::new();
        c.read_to_end(&mut got).unwrap();
        tx.send(got).unwrap();
    });
    let port = free_port();
    let _p = Proxy::start(&config(port, &[origin.port()], "", ""), &["--concurrency", "1"]);
    let mut s = connect(port);
    let mut down = Vec::new();
    s.read_to_end(&mut down).unwrap();
    assert!(down == payload(8 << 20, 2), "downstream got {} bytes, not the origin's 8 MiB", down.len());
    // Our side is still open for writing after the origin's FIN.
    let up = payload(8 << 20, 3);
    s.write_all(&up).unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    let got = rx.recv_timeout(Duration::from_secs(20)).unwrap();
    assert!(got == up, "origin got {} bytes", got.len());
}

#[test]
fn sixty_four_concurrent_connections_byte_exact() {
    let origin = TcpOrigin::echo();
    let port = free_port();
    let _p = Proxy::start(&config(port, &[origin.port()], "", ""), &["--concurrency", "2"]);
    let handles: Vec<_> = (0..64u8)
        .map(|i| {
            std::thread::spawn(move || {
                let data = payload(256 * 1024, i);
                let got = round_trip(port, &data);
                assert!(got == data, "connection {i}: {} bytes back", got.len());
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(origin.accepted(), 64);
}

#[test]
fn refused_upstream_closes_downstream_at_once() {
    let dead = free_port();
    let port = free_port();
    let _p = Proxy::start(&config(port, &[dead], "", ""), &["--concurrency", "1"]);
    let started = Instant::now();
    let mut s = connect(port);
    let mut buf = [0u8; 16];
    let r = s.read(&mut buf);
    assert!(matches!(r, Ok(0) | Err(_)), "expected the downstream to be closed, got {r:?}");
    assert!(started.elapsed() < Duration::from_millis(900), "took {:?}", started.elapsed());
}

#[test]
fn unanswered_upstream_closes_downstream_within_connect_timeout() {
    // A listener whose accept queue is full drops further SYNs: connects hang.
    let blackhole = socket_with_full_backlog();
    let port = free_port();
    let _p = Proxy::start(&config(port, &[blackhole.0], "", ""), &["--concurrency", "1"]);
    let started = Instant::now();
    let mut s = connect(port);
    let mut buf = [0u8; 16];
    let r = s.read(&mut buf);
    let took = started.elapsed();
    assert!(matches!(r, Ok(0) | Err(_)), "expected the downstream to be closed, got {r:?}");
    assert!(took >= Duration::from_millis(900), "closed before connect_timeout: {took:?}");
    assert!(took < Duration::from_millis(2500), "not closed within connect_timeout (1s): {took:?}");
    drop(blackhole);
}

/// A listening socket with backlog 1 whose queue is filled by our own connections.
fn socket_with_full_backlog() -> (u16, std::net::TcpListener, Vec<TcpStream>) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    // std listens with backlog 128; re-listen with 0 via a fresh socket is not
    // possible without socket2, so fill the queue instead.
    let mut fillers = Vec::new();
    for _ in 0..300 {
        match TcpStream::connect_timeout(&localhost(port), Duration::from_millis(100)) {
            Ok(s) => fillers.push(s),
            Err(_) => break,
        }
    }
    (port, l, fillers)
}

#[test]
fn next_host_is_tried_up_to_max_connect_attempts() {
    let origin = TcpOrigin::echo();
    let dead = free_port();
    let port = free_port();
    let cfg = config(port, &[dead, origin.port()], "", "          max_connect_attempts: 2");
    let _p = Proxy::start(&cfg, &["--concurrency", "1"]);
    for i in 0..4u8 {
        let data = payload(1000, i);
        assert_eq!(round_trip(port, &data), data, "connection {i}");
    }
}

#[test]
fn taken_port_fails_at_start_with_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let mut p = proxy::spawn(&config(port, &[1], "", ""), &["--concurrency", "2"]);
    let status = p.wait_exit(Duration::from_secs(10));
    assert!(!status.success());
    let log = p.log();
    assert!(log.contains("cannot bind listener 'tcp_in'") && log.contains(&format!("127.0.0.1:{port}")), "{log}");
    assert!(log.to_lowercase().contains("address already in use") || log.contains("AddrInUse"), "{log}");
}

#[test]
fn sigterm_drains_open_transfers_then_exits_zero() {
    let origin = TcpOrigin::echo();
    let port = free_port();
    let mut p = Proxy::start(&config(port, &[origin.port()], "", ""), &["--concurrency", "2"]);
    let (started_tx, started_rx) = mpsc::channel();
    let transfers: Vec<_> = (0..8u8)
        .map(|i| {
            let started_tx = started_tx.clone();
            std::thread::spawn(move || {
                let data = payload(1 << 20, i);
                let mut s = connect(port);
                let mut reader = s.try_clone().unwrap();
                let rx = std::thread::spawn(move || {
                    let mut got = Vec::new();
                    reader.read_to_end(&mut got).map(|_| got)
                });
                // Slow writer: 64 chunks, 20 ms apart (about 1.3 s per transfer).
                for (n, chunk) in data.chunks(16 * 1024).enumerate() {
                    s.write_all(chunk).unwrap();
                    if n == 4 {
                        started_tx.send(()).unwrap();
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                s.shutdown(Shutdown::Write).unwrap();
                let got = rx.join().unwrap().unwrap();
                assert!(got == data, "transfer {i}: {} of {} bytes", got.len(), data.len());
            })
        })
        .collect();
    for _ in 0..8 {
        started_rx.recv_timeout(Duration::from_secs(10)).unwrap();
    }
    p.signal("TERM");
    // No new connections once draining: both workers closed their listening sockets.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while p.log().matches("draining: listeners closed").count() < 2 {
        assert!(std::time::Instant::now() < deadline, "workers did not close their listeners:\n{}", p.log());
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(TcpStream::connect(localhost(port)).is_err(), "listener still accepting during drain");
    for t in transfers {
        t.join().unwrap();
    }
    let status = p.wait_exit(Duration::from_secs(10));
    assert!(status.success(), "exit status {status}");
}
