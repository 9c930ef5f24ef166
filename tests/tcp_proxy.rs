//! tcp_proxy end to end. On both datapaths, the same cases against sluice's workers over
//! kernel sockets on loopback and over smol stacks on an in-memory network (see
//! `sluice_e2e::backend`), plus the byte-exact relay over a lossy, reordering wire; and
//! on the sluice binary (real process, real clients and origins on loopback): a taken
//! port fails at start with a clear error, SIGTERM lets open transfers finish.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use sluice_datapath::mem::Faults;
use sluice_e2e::backend::{Backend, Net, SmolOptions};
use sluice_e2e::config::{endpoint, tcp_proxy, tcp_proxy_at, tcp_proxy_weighted_at, ClusterAt};
use sluice_e2e::inproc::InProcessProxy;
use sluice_e2e::origin::{echo, TcpOrigin};
use sluice_e2e::proxy::{self, Proxy};
use sluice_e2e::{free_port, localhost, on_both_backends, payload};
use sluice_stack::smol::SmolDuration;

/// A proxy with `workers` workers forwarding its one listener to `upstreams`; returns
/// the proxy and its listener address.
fn proxy(net: &Net, upstreams: &[SocketAddr], tcp_extra: &str, workers: usize) -> (InProcessProxy, SocketAddr) {
    let listen = net.proxy_listen_addr();
    (net.start_proxy(&tcp_proxy_at(listen, upstreams, "", tcp_extra), workers), listen)
}

/// Send `data`, half-close, and read everything back until EOF.
fn round_trip(net: &Net, to: SocketAddr, data: &[u8]) -> Vec<u8> {
    let mut s = net.connect(to).expect("connect to the proxy");
    let mut reader = s.try_clone().unwrap();
    let rx = std::thread::spawn(move || {
        let mut got = Vec::new();
        reader.read_to_end(&mut got).map(|_| got)
    });
    s.write_all(data).unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    rx.join().unwrap().expect("read until EOF")
}

fn eight_mib_byte_exact_client_half_closes_first(backend: Backend) {
    let net = Net::new(backend);
    let origin = TcpOrigin::echo_on(net.listen());
    let (p, listen) = proxy(&net, &[origin.addr], "", 2);
    let data = payload(8 << 20, 1);
    let got = round_trip(&net, p.target(listen), &data);
    assert_eq!(got.len(), data.len());
    assert!(got == data, "relayed bytes differ");
}

fn eight_mib_byte_exact_origin_half_closes_first(backend: Backend) {
    origin_sends_then_client_sends(&Net::new(backend), 8 << 20);
}

/// The origin sends `len` bytes and its FIN first, then reads the client's `len` bytes
/// until the client's FIN: one direction at a time, each byte-exact.
fn origin_sends_then_client_sends(net: &Net, len: usize) {
    let (tx, rx) = mpsc::channel();
    let origin = TcpOrigin::serve(net.listen(), move |mut c| {
        c.write_all(&payload(len, 2)).unwrap();
        c.shutdown(Shutdown::Write).unwrap();
        let mut got = Vec::new();
        c.read_to_end(&mut got).unwrap();
        tx.send(got).unwrap();
    });
    let (p, listen) = proxy(net, &[origin.addr], "", 1);
    let mut s = net.connect(p.target(listen)).unwrap();
    let mut down = Vec::new();
    s.read_to_end(&mut down).unwrap();
    assert!(down == payload(len, 2), "downstream got {} bytes, not the origin's {len}", down.len());
    // Our side is still open for writing after the origin's FIN.
    let up = payload(len, 3);
    s.write_all(&up).unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    // Generous: over a lossy wire on a loaded machine, each unrepaired loss costs a
    // retransmission timeout (1 s, doubling) in real time.
    let got = rx.recv_timeout(Duration::from_secs(60)).expect("the origin got the client's bytes and FIN");
    assert!(got == up, "origin got {} bytes", got.len());
}

fn sixty_four_concurrent_connections_byte_exact(backend: Backend) {
    let net = Net::new(backend);
    let origin = TcpOrigin::echo_on(net.listen());
    let (p, listen) = proxy(&net, &[origin.addr], "", 2);
    std::thread::scope(|scope| {
        for i in 0..64u8 {
            let (net, to) = (&net, p.target(listen));
            scope.spawn(move || {
                let data = payload(256 * 1024, i);
                let got = round_trip(net, to, &data);
                assert!(got == data, "connection {i}: {} bytes back", got.len());
            });
        }
    });
    assert_eq!(origin.accepted(), 64);
}

fn refused_upstream_closes_downstream_at_once(backend: Backend) {
    let net = Net::new(backend);
    let (p, listen) = proxy(&net, &[net.refused_addr()], "", 1);
    let started = Instant::now();
    let mut s = net.connect(p.target(listen)).unwrap();
    let mut buf = [0u8; 16];
    let r = s.read(&mut buf);
    assert!(matches!(r, Ok(0) | Err(_)), "expected the downstream to be closed, got {r:?}");
    assert!(!matches!(&r, Err(e) if e.kind() == std::io::ErrorKind::TimedOut), "not closed: {r:?}");
    assert!(started.elapsed() < Duration::from_millis(900), "took {:?}", started.elapsed());
}

fn unanswered_upstream_closes_downstream_within_connect_timeout(backend: Backend) {
    let net = Net::new(backend);
    let blackhole = net.blackhole();
    let (p, listen) = proxy(&net, &[blackhole.addr], "", 1);
    let started = Instant::now();
    let mut s = net.connect(p.target(listen)).unwrap();
    let mut buf = [0u8; 16];
    let r = s.read(&mut buf);
    let took = started.elapsed();
    assert!(matches!(r, Ok(0) | Err(_)), "expected the downstream to be closed, got {r:?}");
    assert!(took >= Duration::from_millis(900), "closed before connect_timeout: {took:?}");
    assert!(took < Duration::from_millis(2500), "not closed within connect_timeout (1s): {took:?}");
}

fn next_host_is_tried_up_to_max_connect_attempts(backend: Backend) {
    let net = Net::new(backend);
    let origin = TcpOrigin::echo_on(net.listen());
    let (p, listen) = proxy(&net, &[net.refused_addr(), origin.addr], "max_connect_attempts: 2", 1);
    for i in 0..4u8 {
        let data = payload(1000, i);
        assert_eq!(round_trip(&net, p.target(listen), &data), data, "connection {i}");
    }
    assert_eq!(origin.accepted(), 4);
}

fn drain_finishes_open_transfers_and_refuses_new_ones(backend: Backend) {
    // What SIGTERM does to the binary, without the signal: stop accepting, let open
    // connections finish, then the workers exit.
    let net = Net::new(backend);
    let origin = TcpOrigin::echo_on(net.listen());
    let (p, listen) = proxy(&net, &[origin.addr], "", 2);
    let (started_tx, started_rx) = mpsc::channel();
    std::thread::scope(|scope| {
        for i in 0..4u8 {
            let (net, to, started_tx) = (&net, p.target(listen), started_tx.clone());
            scope.spawn(move || {
                let data = payload(256 * 1024, i);
                let mut s = net.connect(to).unwrap();
                let mut reader = s.try_clone().unwrap();
                let rx = std::thread::spawn(move || {
                    let mut got = Vec::new();
                    reader.read_to_end(&mut got).map(|_| got)
                });
                // Slow writer: 32 chunks, 20 ms apart.
                for (n, chunk) in data.chunks(8 * 1024).enumerate() {
                    s.write_all(chunk).unwrap();
                    if n == 2 {
                        started_tx.send(()).unwrap();
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                s.shutdown(Shutdown::Write).unwrap();
                let got = rx.join().unwrap().unwrap();
                assert!(got == data, "transfer {i}: {} of {} bytes", got.len(), data.len());
            });
        }
        for _ in 0..4 {
            started_rx.recv_timeout(Duration::from_secs(10)).unwrap();
        }
        p.drain();
        std::thread::sleep(Duration::from_millis(100));
        assert!(net.connect(p.target(listen)).is_err(), "listener still accepting during drain");
    });
    p.join(Duration::from_secs(10)).unwrap();
}

fn idle_connection_is_closed_both_ways_after_idle_timeout(backend: Backend) {
    let net = Net::new(backend);
    let (eof_tx, eof_rx) = mpsc::channel();
    // Echo until the proxy closes the upstream side, then report when that was.
    let origin = TcpOrigin::serve(net.listen(), move |mut c| {
        echo(&mut c);
        let _ = eof_tx.send(Instant::now());
    });
    let (p, listen) = proxy(&net, &[origin.addr], "idle_timeout: 0.5s", 1);
    let mut s = net.connect(p.target(listen)).unwrap();
    // Activity keeps the session alive past one idle period.
    let mut last_write = Instant::now();
    for i in 0..4u8 {
        last_write = Instant::now();
        s.write_all(&[i; 100]).unwrap();
        let mut got = [0u8; 100];
        s.read_exact(&mut got).unwrap();
        assert_eq!(got, [i; 100]);
        std::thread::sleep(Duration::from_millis(200));
    }
    let idle_since = Instant::now();
    let mut buf = [0u8; 16];
    let r = s.read(&mut buf);
    let took = idle_since.elapsed();
    assert!(matches!(r, Ok(0)), "expected end of stream after the idle timeout, got {r:?}");
    // The proxy's last activity (forwarding the echo) came after our last write, so the
    // 0.5 s timeout cannot end the session earlier than 0.5 s after that write. (Counting
    // from our read instead charged the echo's delivery delay, tens of ms on a loaded
    // machine, to the proxy.)
    let since_write = last_write.elapsed();
    assert!(
        since_write >= Duration::from_millis(490),
        "closed before the idle timeout: {since_write:?} after the last write"
    );
    assert!(took < Duration::from_millis(2500), "not closed within the idle timeout (0.5s): {took:?}");
    let origin_eof = eof_rx.recv_timeout(Duration::from_secs(5)).expect("the upstream side was closed too");
    assert!(origin_eof.saturating_duration_since(idle_since) < Duration::from_millis(2500));
}

fn weighted_clusters_split_connections_by_weight(backend: Backend) {
    let net = Net::new(backend);
    let a = TcpOrigin::echo_on(net.listen());
    let b = TcpOrigin::echo_on(net.listen());
    let listen = net.proxy_listen_addr();
    let (ea, eb) = ([a.addr], [b.addr]);
    let clusters =
        [ClusterAt { name: "a", endpoints: &ea, extra: "" }, ClusterAt { name: "b", endpoints: &eb, extra: "" }];
    let yaml = tcp_proxy_weighted_at(listen, &[("a", 1), ("b", 3)], &clusters);
    let p = net.start_proxy(&yaml, 2);
    const N: usize = 200;
    for i in 0..N {
        let data = payload(100, i as u8);
        assert_eq!(round_trip(&net, p.target(listen), &data), data, "connection {i}");
    }
    let (na, nb) = (a.accepted(), b.accepted());
    assert_eq!(na + nb, N);
    // 25 % of 200 = 50, sd ~6.1: allow about ±4 sd.
    assert!((25..=75).contains(&na), "a got {na} connections, b got {nb}");
}

/// The upstream dies (a reset, as a killed process with unread data sends) while the
/// proxy has stopped reading the downstream because the upstream was not reading: the
/// session ends at once (the downstream is closed, reset as it has unread data), not
/// at the idle timeout, and no connection stays active.
fn upstream_death_while_downstream_is_paused_ends_the_session(backend: Backend) {
    let net = Net::new(backend);
    let (conn_tx, conn_rx) = mpsc::channel();
    let conn_tx = std::sync::Mutex::new(conn_tx);
    // Accept and never read; hand the connection to the test to kill it.
    let origin = TcpOrigin::serve(net.listen(), move |c| {
        let (done_tx, done_rx) = mpsc::channel::<()>();
        conn_tx.lock().unwrap().send((c, done_tx)).unwrap();
        let _ = done_rx.recv_timeout(Duration::from_secs(30));
    });
    let (p, listen) = proxy(&net, &[origin.addr], "", 1);
    let active = format!("listener.{}_{}.downstream_cx_active", listen.ip(), listen.port());
    let s = net.connect(p.target(listen)).unwrap();
    let mut writer = s.try_clone().unwrap();
    // Far more than the socket buffers and the proxy's 1 MiB queue hold.
    let sender = std::thread::spawn(move || writer.write_all(&payload(16 << 20, 9)).is_err());
    let (upstream, done) = conn_rx.recv_timeout(Duration::from_secs(10)).expect("the proxy connected upstream");
    let paused = "tcp.t.downstream_flow_control_paused_reading_total";
    let deadline = Instant::now() + Duration::from_secs(10);
    while p.stats().get(paused).unwrap_or(0) == 0 {
        assert!(Instant::now() < deadline, "the proxy never paused reading the downstream");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(p.stats().get(&active), Some(1));
    let killed = Instant::now();
    upstream.reset();
    drop(done); // the origin's handler returns: its last handle goes, the reset leaves
    let deadline = Instant::now() + Duration::from_secs(3);
    while p.stats().get(&active) != Some(0) {
        assert!(Instant::now() < deadline, "session still active {:?} after the upstream died", killed.elapsed());
        std::thread::sleep(Duration::from_millis(5));
    }
    eprintln!("session ended {:?} after the upstream died", killed.elapsed());
    // The client learns it too: its blocked write fails, its read ends.
    assert!(sender.join().unwrap(), "the client's write never failed");
    eprintln!("client write failed {:?} after the upstream died", killed.elapsed());
    assert!(killed.elapsed() < Duration::from_secs(2), "the client was left writing: {:?}", killed.elapsed());
    let mut s = s;
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let mut buf = [0u8; 16];
    let r = s.read(&mut buf);
    assert!(matches!(r, Ok(0) | Err(_)), "{r:?}");
    let timed_out =
        |e: &std::io::Error| matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut);
    assert!(!matches!(&r, Err(e) if timed_out(e)), "{r:?}");
}

// The binary's own cases: start-up errors and SIGTERM.

/// The binary's config: a tcp_proxy on 127.0.0.1:`listen` to `upstreams` on loopback.
fn binary_config(listen: u16, upstreams: &[u16]) -> String {
    let endpoints: String = upstreams.iter().map(|p| endpoint(*p)).collect();
    tcp_proxy(listen, &endpoints, "", "")
}

#[test]
fn taken_port_fails_at_start_with_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let mut p = proxy::spawn(&binary_config(port, &[1]), &["--concurrency", "2"]);
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
    let mut p = Proxy::start(&binary_config(port, &[origin.port()]), &["--concurrency", "2"]);
    let (started_tx, started_rx) = mpsc::channel();
    let transfers: Vec<_> = (0..8u8)
        .map(|i| {
            let started_tx = started_tx.clone();
            std::thread::spawn(move || {
                let data = payload(1 << 20, i);
                let mut s = TcpStream::connect(localhost(port)).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
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

on_both_backends!(
    eight_mib_byte_exact_client_half_closes_first,
    eight_mib_byte_exact_origin_half_closes_first,
    sixty_four_concurrent_connections_byte_exact,
    refused_upstream_closes_downstream_at_once,
    unanswered_upstream_closes_downstream_within_connect_timeout,
    next_host_is_tried_up_to_max_connect_attempts,
    drain_finishes_open_transfers_and_refuses_new_ones,
    idle_connection_is_closed_both_ways_after_idle_timeout,
    weighted_clusters_split_connections_by_weight,
    upstream_death_while_downstream_is_paused_ends_the_session,
);

/// The smol backend only: the wire loses, duplicates and reorders frames that the proxy
/// and the peer send (fixed seed); tcp_proxy still relays 8 MiB each way byte for byte.
///
/// The loss rate is low because every loss that fast retransmit does not repair costs a
/// 1 s retransmission timeout in real time (smoltcp: RFC 6298's 1 s floor, no SACK); at
/// 1 % loss this relay takes about a minute (see the harness report).
///
/// Duplicated and reordered segments also exercise late resets: a side whose FIN was
/// acknowledged is CLOSED and answers a duplicate or late segment with RST, which reaches
/// the other side in TIME-WAIT, possibly with bytes still unread there (the proxy's
/// downstream, the origin); they are read all the same, then end of stream (see
/// stack/tests/smol_reset.rs).
#[test]
fn smol_eight_mib_byte_exact_under_loss_and_reordering() {
    let faults = Faults {
        loss: 0.001,
        duplicate: 0.001,
        reorder: 0.01,
        reorder_delay: SmolDuration::from_millis(1),
        delay: SmolDuration::ZERO,
    };
    let net = Net::smol(SmolOptions { seed: 0x1055, proxy_faults: faults, peer_faults: faults });
    origin_sends_then_client_sends(&net, 8 << 20);
    let wire = net.peer_port_stats().unwrap();
    assert!(wire.lost > 0 && wire.duplicated > 0 && wire.reordered > 0, "the wire was not impaired: {wire:?}");
}
