//! TCP behaviour of the smol stack on the in-memory datapath, deterministic (manual
//! clock, seeded network): handshake, FIN and RST both ways, half-close, refused and
//! unanswered connects, listen backlog, many connections, original destination and
//! gateway routing, ephemeral ports and TIME-WAIT, and a SYN on the tuple of a CLOSED
//! connection not yet released.

mod util;

use std::io;
use std::net::SocketAddr;

use sluice_datapath::mem::Faults;
use sluice_stack::{Interest, ListenOptions, Stack, Token};
use smoltcp::time::Duration;
use smoltcp::wire::Ipv4Address;
use util::{pattern, Sim, SERVER_IP};

fn at(ip: Ipv4Address, port: u16) -> SocketAddr {
    SocketAddr::from((ip, port))
}

fn sim() -> Sim {
    Sim::new(11, Faults::NONE, Faults::NONE)
}

/// A client connection to `addr` accepted by `listener`: (client id, server id).
fn connect(
    sim: &mut Sim,
    listener: sluice_stack::SocketId,
    addr: SocketAddr,
) -> (sluice_stack::SocketId, sluice_stack::SocketId) {
    let c = sim.client.connect(addr).unwrap();
    let mut accepted = None;
    assert!(sim.run_until(Duration::from_secs(10), |s| {
        if accepted.is_none() {
            accepted = s.server.accept(listener).ok();
        }
        accepted.is_some() && s.client.connect_result(c).is_ok()
    }));
    (c, accepted.unwrap().socket)
}

#[test]
fn handshake_resolves_arp_then_completes_at_once() {
    let mut sim = sim();
    let l = sim.server.listen(at(SERVER_IP, 80), &ListenOptions::default()).unwrap();
    sim.server.register(l, Token(1), Interest::READABLE).unwrap();
    let start = sim.now();
    let c = sim.client.connect(at(SERVER_IP, 80)).unwrap();
    sim.client.register(c, Token(2), Interest::BOTH).unwrap();
    assert_eq!(sim.client.connect_result(c).unwrap_err().kind(), io::ErrorKind::WouldBlock);
    let mut acc = None;
    assert!(sim.run_until(Duration::from_secs(5), |s| {
        acc = acc.or_else(|| s.server.accept(l).ok());
        acc.is_some() && s.client.connect_result(c).is_ok()
    }));
    assert!(sim.now() - start < Duration::from_millis(100), "no retransmission or ARP back-off was needed");
    // SYN and ACK from the client, SYN-ACK from the server; ARP is not counted.
    assert_eq!(sim.client.smol_stats().tx_frames, 2);
    assert_eq!(sim.server.smol_stats().tx_frames, 1);
    assert!(sim.client_events.iter().any(|e| e.token() == Token(2) && e.is_writable()));
    assert!(sim.server_events.iter().any(|e| e.token() == Token(1) && e.is_readable()));
    let acc = acc.unwrap();
    assert_eq!(acc.local, at(SERVER_IP, 80));
    assert_eq!(acc.peer, sim.client.local_addr(c).unwrap());
    let port = acc.peer.port();
    let (lo, hi) = sim.client.config().ephemeral_ports;
    assert!((lo..=hi).contains(&port), "{port} outside {lo}..={hi}");
}

#[test]
fn client_closes_first_server_sees_fin_client_keeps_time_wait() {
    let mut sim = sim();
    let l = sim.server.listen(at(SERVER_IP, 80), &ListenOptions::default()).unwrap();
    let (c, s) = connect(&mut sim, l, at(SERVER_IP, 80));
    sim.server.register(s, Token(3), Interest::READABLE).unwrap();
    sim.client.write(c, b"last words").unwrap();
    sim.client.close(c);
    let mut got = Vec::new();
    assert!(sim.run_until(Duration::from_secs(5), |s_| util::read_available(&mut s_.server, s, &mut got).unwrap()));
    assert_eq!(got, b"last words");
    assert!(sim.server_events.iter().any(|e| e.token() == Token(3) && e.is_read_closed()));
    sim.server.close(s);
    sim.settle(Duration::from_secs(5));
    let (cs, ss) = (sim.client.smol_stats(), sim.server.smol_stats());
    assert_eq!((cs.connections, ss.connections), (0, 0), "both sockets released");
    assert_eq!((cs.time_wait, ss.time_wait), (1, 0), "the active closer keeps TIME-WAIT");
    assert!(cs.idle_sockets >= 1, "the socket went back to the cache");
    // TIME-WAIT expires.
    sim.clock.advance(Duration::from_secs(61));
    sim.step();
    assert_eq!(sim.client.smol_stats().time_wait, 0);
}

#[test]
fn server_closes_first_client_sees_eof() {
    let mut sim = sim();
    let l = sim.server.listen(at(SERVER_IP, 80), &ListenOptions::default()).unwrap();
    let (c, s) = connect(&mut sim, l, at(SERVER_IP, 80));
    let body = pattern(200_000, 3);
    let mut off = 0;
    let mut got = Vec::new();
    assert!(sim.run_until(Duration::from_secs(30), |sm| {
        if off < body.len() {
            off += sm.server.write(s, &body[off..]).unwrap_or(0);
            if off == body.len() {
                sm.server.close(s);
            }
        }
        util::read_available(&mut sm.client, c, &mut got).unwrap()
    }));
    assert_eq!(got, body, "queued data delivered before the FIN");
    sim.client.close(c);
    sim.settle(Duration::from_secs(5));
    assert_eq!(sim.server.smol_stats().time_wait, 1);
    assert_eq!(sim.client.smol_stats().connections, 0);
}

#[test]
fn reset_both_ways() {
    let mut sim = sim();
    let l = sim.server.listen(at(SERVER_IP, 80), &ListenOptions::default()).unwrap();
    let mut buf = [0u8; 8];

    // Client resets: the server's reads and writes fail with ConnectionReset.
    let (c, s) = connect(&mut sim, l, at(SERVER_IP, 80));
    sim.server.register(s, Token(3), Interest::READABLE).unwrap();
    sim.client.write(c, b"unread").unwrap();
    sim.client.abort(c);
    assert!(sim.run_until(Duration::from_secs(5), |sm| sm.server_events.iter().any(|e| e.is_error())));
    assert_eq!(sim.server.read(s, &mut buf).unwrap_err().kind(), io::ErrorKind::ConnectionReset);
    assert_eq!(sim.server.write(s, b"x").unwrap_err().kind(), io::ErrorKind::ConnectionReset);
    assert_eq!(sim.server.local_addr(s).unwrap(), at(SERVER_IP, 80), "addresses survive the reset");
    sim.server.close(s);

    // Server resets: the client's reads and writes fail with ConnectionReset.
    let (c, s) = connect(&mut sim, l, at(SERVER_IP, 80));
    sim.client.register(c, Token(4), Interest::READABLE).unwrap();
    sim.server.abort(s);
    assert!(sim.run_until(Duration::from_secs(5), |sm| sm
        .client_events
        .iter()
        .any(|e| e.token() == Token(4) && e.is_error())));
    assert_eq!(sim.client.read(c, &mut buf).unwrap_err().kind(), io::ErrorKind::ConnectionReset);
    assert_eq!(sim.client.write(c, b"x").unwrap_err().kind(), io::ErrorKind::ConnectionReset);
    sim.client.close(c);
    sim.settle(Duration::from_secs(5));
    assert_eq!(sim.client.smol_stats().connections, 0);
    assert_eq!(sim.server.smol_stats().connections, 0);
    assert_eq!(sim.client.smol_stats().time_wait + sim.server.smol_stats().time_wait, 0, "no TIME-WAIT after a reset");
}

#[test]
fn half_close_keeps_the_other_direction_open() {
    let mut sim = sim();
    let l = sim.server.listen(at(SERVER_IP, 80), &ListenOptions::default()).unwrap();
    let (c, s) = connect(&mut sim, l, at(SERVER_IP, 80));
    sim.client.write(c, b"request").unwrap();
    sim.client.shutdown_write(c).unwrap();
    let mut req = Vec::new();
    assert!(sim.run_until(Duration::from_secs(5), |sm| util::read_available(&mut sm.server, s, &mut req).unwrap()));
    assert_eq!(req, b"request");
    // The server answers at length on the half-open connection.
    let body = pattern(500_000, 9);
    let mut off = 0;
    let mut got = Vec::new();
    assert!(sim.run_until(Duration::from_secs(30), |sm| {
        if off < body.len() {
            off += sm.server.write(s, &body[off..]).unwrap_or(0);
            if off == body.len() {
                sm.server.shutdown_write(s).unwrap();
            }
        }
        util::read_available(&mut sm.client, c, &mut got).unwrap()
    }));
    assert_eq!(got, body);
}

#[test]
fn connect_to_a_closed_port_is_refused_and_to_nobody_times_out() {
    // The server does not answer ARP for addresses it does not own (any_ip off).
    let mut sim = Sim::with(
        5,
        Faults::NONE,
        Faults::NONE,
        |s| s.any_ip = false,
        |c| c.handshake_timeout = Duration::from_secs(5),
    );
    let failed = |s: &mut Sim, c| matches!(s.client.connect_result(c), Err(e) if e.kind() != io::ErrorKind::WouldBlock);
    let c = sim.client.connect(at(SERVER_IP, 81)).unwrap();
    assert!(sim.run_until(Duration::from_secs(5), |s| failed(s, c)));
    assert_eq!(sim.client.connect_result(c).unwrap_err().kind(), io::ErrorKind::ConnectionRefused);

    // Nobody answers ARP for 10.99.0.77: the handshake timeout fails the connect.
    let c = sim.client.connect(at(Ipv4Address::new(10, 99, 0, 77), 80)).unwrap();
    sim.client.register(c, Token(5), Interest::BOTH).unwrap();
    let start = sim.now();
    assert!(sim.run_until(Duration::from_secs(30), |s| failed(s, c)));
    assert_eq!(sim.client.connect_result(c).unwrap_err().kind(), io::ErrorKind::TimedOut);
    assert!(sim.now() - start >= Duration::from_secs(5));
    assert!(sim.client_events.iter().any(|e| e.token() == Token(5) && e.is_error()));
    // Unroutable destinations are refused at once.
    let far = at(Ipv4Address::new(10, 99, 200, 1), 80);
    assert_eq!(sim.client.connect(far).unwrap_err().kind(), io::ErrorKind::NetworkUnreachable);
}

#[test]
fn a_burst_of_256_syns_is_all_accepted() {
    let mut sim = sim();
    let opts = ListenOptions { backlog: 256, ..ListenOptions::default() };
    let l = sim.server.listen(at(SERVER_IP, 80), &opts).unwrap();
    let clients: Vec<_> = (0..256).map(|_| sim.client.connect(at(SERVER_IP, 80)).unwrap()).collect();
    let start = sim.now();
    let mut accepted = Vec::new();
    assert!(sim.run_until(Duration::from_secs(10), |s| {
        while let Ok(a) = s.server.accept(l) {
            accepted.push(a);
        }
        accepted.len() == 256
    }));
    assert!(sim.now() - start < Duration::from_millis(500), "no SYN had to be retransmitted");
    for c in &clients {
        sim.client.connect_result(*c).unwrap();
    }
    let stats = sim.server.smol_stats();
    assert_eq!(stats.accepts, 256);
    assert_eq!(stats.listen_overflows, 0);
    assert_eq!(stats.rx_unmatched, 0, "no SYN was answered with RST");
}

#[test]
fn a_full_backlog_drops_syns_and_counts_them_then_catches_up() {
    let mut sim = sim();
    let opts = ListenOptions { backlog: 8, ..ListenOptions::default() };
    let l = sim.server.listen(at(SERVER_IP, 80), &opts).unwrap();
    let clients: Vec<_> = (0..32).map(|_| sim.client.connect(at(SERVER_IP, 80)).unwrap()).collect();
    // Without accepting, only the backlog gets through.
    sim.run_until(Duration::from_millis(100), |_| false);
    assert!(sim.server.smol_stats().listen_overflows >= 24);
    assert_eq!(clients.iter().filter(|c| sim.client.connect_result(**c).is_ok()).count(), 8);
    // Accepting frees the backlog; retransmitted SYNs get in.
    let mut n = 0;
    assert!(sim.run_until(Duration::from_secs(60), |s| {
        while s.server.accept(l).is_ok() {
            n += 1;
        }
        n == 32
    }));
    assert!(clients.iter().all(|c| sim.client.connect_result(*c).is_ok()));
}

#[test]
fn a_thousand_concurrent_connections_each_get_their_answer() {
    let mut sim = sim();
    let l = sim.server.listen(at(SERVER_IP, 80), &ListenOptions::default()).unwrap();
    let clients: Vec<_> = (0..1000).map(|_| sim.client.connect(at(SERVER_IP, 80)).unwrap()).collect();
    let mut servers = Vec::new();
    let mut sent = vec![false; 1000];
    let mut answered = 0;
    let mut replies: Vec<Vec<u8>> = vec![Vec::new(); 1000];
    assert!(sim.run_until(Duration::from_secs(30), |s| {
        while let Ok(a) = s.server.accept(l) {
            servers.push((a.socket, Vec::new(), false));
        }
        for (i, c) in clients.iter().enumerate() {
            if !sent[i] && s.client.connect_result(*c).is_ok() {
                s.client.write(*c, format!("req-{i};").as_bytes()).unwrap();
                sent[i] = true;
            }
        }
        for (id, buf, done) in servers.iter_mut() {
            if !*done {
                util::read_available(&mut s.server, *id, buf).unwrap();
                if buf.ends_with(b";") {
                    let req = String::from_utf8(buf.clone()).unwrap();
                    let n: usize = req.trim_start_matches("req-").trim_end_matches(';').parse().unwrap();
                    s.server.write(*id, format!("resp-{n}").as_bytes()).unwrap();
                    s.server.close(*id);
                    *done = true;
                }
            }
        }
        for (i, c) in clients.iter().enumerate() {
            if sent[i]
                && !replies[i].ends_with(b"$")
                && util::read_available(&mut s.client, *c, &mut replies[i]).unwrap()
            {
                replies[i].push(b'$');
                answered += 1;
            }
        }
        answered == 1000
    }));
    for (i, r) in replies.iter().enumerate() {
        assert_eq!(r, format!("resp-{i}$").as_bytes());
    }
    assert_eq!(sim.server.smol_stats().accepts, 1000);
    for c in clients {
        sim.client.close(c);
    }
    sim.settle(Duration::from_secs(10));
    assert_eq!(sim.server.smol_stats().connections, 0);
    assert_eq!(sim.client.smol_stats().connections, 0);
}

#[test]
fn any_ip_accepts_the_original_destination_exact_listener_first() {
    // Proxy ARP: on-link clients reach virtual addresses directly.
    let mut sim = Sim::with(11, Faults::NONE, Faults::NONE, |s| s.proxy_arp = true, |_| {});
    let wildcard = sim.server.listen(at(Ipv4Address::UNSPECIFIED, 80), &ListenOptions::default()).unwrap();
    let vip = Ipv4Address::new(10, 99, 0, 50);
    let exact = sim.server.listen(at(vip, 80), &ListenOptions::default()).unwrap();
    // To a virtual address the server does not own: any_ip takes it, the exact listener wins.
    let (c, s) = connect(&mut sim, exact, at(vip, 80));
    assert_eq!(sim.server.local_addr(s).unwrap(), at(vip, 80));
    assert_eq!(sim.server.original_dst(s).unwrap(), None, "local address already is the destination");
    assert_eq!(sim.client.peer_addr(c).unwrap(), at(vip, 80));
    // Another virtual address falls back to 0.0.0.0:80.
    let other = Ipv4Address::new(10, 99, 0, 51);
    let (_, s2) = connect(&mut sim, wildcard, at(other, 80));
    assert_eq!(sim.server.local_addr(s2).unwrap(), at(other, 80));
}

#[test]
fn a_gateway_routes_off_link_destinations() {
    let mut sim = Sim::with(3, Faults::NONE, Faults::NONE, |_| {}, |c| c.gateway = Some(SERVER_IP));
    let l = sim.server.listen(at(Ipv4Address::UNSPECIFIED, 443), &ListenOptions::default()).unwrap();
    let far = at(Ipv4Address::new(10, 99, 7, 7), 443);
    let (_, s) = connect(&mut sim, l, far);
    assert_eq!(
        sim.server.local_addr(s).unwrap(),
        far,
        "sent to the gateway's MAC, accepted as the original destination"
    );
}

#[test]
fn time_wait_never_exhausts_ports() {
    let mut sim = Sim::with(9, Faults::NONE, Faults::NONE, |_| {}, |c| c.ephemeral_ports = (40000, 40003));
    let l = sim.server.listen(at(SERVER_IP, 80), &ListenOptions::default()).unwrap();
    let start = sim.now();
    for round in 0..4 {
        let (c, s) = connect(&mut sim, l, at(SERVER_IP, 80));
        let port = sim.client.local_addr(c).unwrap().port();
        assert!((40000..=40003).contains(&port));
        sim.client.close(c);
        sim.server.close(s);
        assert!(sim.run_until(Duration::from_millis(200), |s| s.client.smol_stats().time_wait == round + 1));
    }
    assert!(sim.now() - start < Duration::from_secs(1));
    // All four tuples are young TIME-WAIT records: the range is exhausted, and counted.
    let err = sim.client.connect(at(SERVER_IP, 80)).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::AddrNotAvailable);
    assert_eq!(sim.client.smol_stats().connect_exhausted, 1);
    // Another destination port is another 4-tuple: ports are shared across destinations.
    let l2 = sim.server.listen(at(SERVER_IP, 81), &ListenOptions::default()).unwrap();
    let (c2, _) = connect(&mut sim, l2, at(SERVER_IP, 81));
    sim.client.abort(c2);
    // After `time_wait_reuse` the oldest tuples may be reused.
    sim.clock.advance(Duration::from_secs(1));
    let (c, s) = connect(&mut sim, l, at(SERVER_IP, 80));
    assert_eq!(sim.client.smol_stats().time_wait_reused, 1);
    sim.client.write(c, b"ping").unwrap();
    let mut got = Vec::new();
    assert!(sim.run_until(Duration::from_secs(2), |sm| {
        let _ = util::read_available(&mut sm.server, s, &mut got);
        got == b"ping"
    }));
    // Sockets were recycled, not leaked: only live ones remain.
    assert_eq!(sim.client.smol_stats().connections, 1);
}

#[test]
fn time_wait_answers_a_retransmitted_fin() {
    let mut sim = sim();
    let l = sim.server.listen(at(SERVER_IP, 80), &ListenOptions::default()).unwrap();
    let (c, s) = connect(&mut sim, l, at(SERVER_IP, 80));
    sim.client.close(c);
    let mut rest = Vec::new();
    assert!(sim.run_until(Duration::from_secs(5), |sm| util::read_available(&mut sm.server, s, &mut rest).unwrap()));
    sim.settle(Duration::from_millis(100));
    // The client's last ACK will be lost: the server stays in LAST-ACK and retransmits.
    let client_port = sim.client.device().index();
    sim.net.set_faults(client_port, Faults { loss: 1.0, ..Faults::NONE }).unwrap();
    sim.server.close(s);
    assert!(sim.run_until(Duration::from_secs(5), |sm| sm.client.smol_stats().time_wait == 1));
    sim.net.set_faults(client_port, Faults::NONE).unwrap();
    assert_eq!(sim.server.smol_stats().connections, 1, "server still in LAST-ACK");
    assert!(sim.run_until(Duration::from_secs(10), |sm| sm.server.smol_stats().connections == 0));
    assert!(sim.client.smol_stats().time_wait_acks >= 1);
}

#[test]
fn ephemeral_ports_come_from_the_configured_range() {
    let mut sim = Sim::with(4, Faults::NONE, Faults::NONE, |_| {}, |c| c.ephemeral_ports = (50000, 50009));
    let l = sim.server.listen(at(SERVER_IP, 80), &ListenOptions::default()).unwrap();
    let mut ports = Vec::new();
    for _ in 0..10 {
        let (c, _) = connect(&mut sim, l, at(SERVER_IP, 80));
        ports.push(sim.client.local_addr(c).unwrap().port());
    }
    ports.sort_unstable();
    assert_eq!(ports, (50000..50010).collect::<Vec<_>>());
    // An 11th live connection to the same destination has no port left.
    assert_eq!(sim.client.connect(at(SERVER_IP, 80)).unwrap_err().kind(), io::ErrorKind::AddrNotAvailable);
}

#[test]
fn ipv6_is_refused_cleanly() {
    let mut sim = sim();
    let v6: SocketAddr = "[fd00::1]:80".parse().unwrap();
    assert_eq!(sim.client.connect(v6).unwrap_err().kind(), io::ErrorKind::Unsupported);
    assert_eq!(sim.server.listen(v6, &ListenOptions::default()).unwrap_err().kind(), io::ErrorKind::Unsupported);
    // A dual-stack `::` listener (Envoy's ipv4_compat) serves IPv4.
    let any6: SocketAddr = "[::]:8443".parse().unwrap();
    let only6 = ListenOptions { ipv4_compat: false, ..ListenOptions::default() };
    assert_eq!(sim.server.listen(any6, &only6).unwrap_err().kind(), io::ErrorKind::Unsupported);
    let compat = ListenOptions { ipv4_compat: true, ..ListenOptions::default() };
    let l = sim.server.listen(any6, &compat).unwrap();
    let (_, s) = connect(&mut sim, l, at(SERVER_IP, 8443));
    assert_eq!(sim.server.local_addr(s).unwrap(), at(SERVER_IP, 8443));
}

#[test]
fn a_neighbour_can_be_taught_without_arp() {
    let mut sim = sim();
    let server_mac = sim.server.device().mac();
    let l = sim.server.listen(at(SERVER_IP, 80), &ListenOptions::default()).unwrap();
    sim.client.add_neighbor(SERVER_IP, server_mac).unwrap();
    let c = sim.client.connect(at(SERVER_IP, 80)).unwrap();
    sim.step();
    let client_port = sim.net.stats(sim.client.device().index()).unwrap();
    assert_eq!(client_port.tx_frames, 1, "the SYN went out at once, no ARP request first");
    let mut accepted = false;
    assert!(sim.run_until(Duration::from_secs(1), |s| {
        accepted |= s.server.accept(l).is_ok();
        accepted && s.client.connect_result(c).is_ok()
    }));
    let bad = sim.client.add_neighbor(Ipv4Address::new(10, 99, 9, 9), server_mac).unwrap_err();
    assert_eq!(bad.kind(), io::ErrorKind::InvalidInput, "not on-link");
}

#[test]
fn any_ip_does_not_hijack_other_hosts_on_the_link() {
    use sluice_datapath::mem::{MemConfig, MemNetwork};
    use sluice_stack::smol::{ManualClock, SmolStack};
    use sluice_stack::Events;
    use smoltcp::time::Instant;

    // Proxy (any_ip, no proxy ARP), client and origin on one switch.
    let net = MemNetwork::new(MemConfig::default());
    let clock = ManualClock::new(Instant::from_secs(1));
    let mut hosts: Vec<util::Smol> = [(1, true), (2, false), (3, false)]
        .into_iter()
        .map(|(last, any_ip)| {
            let port = net.attach(Faults::NONE).unwrap();
            let cfg = util::config(&port, Ipv4Address::new(10, 99, 0, last), any_ip);
            SmolStack::with_clock(port, cfg, clock.clone()).unwrap()
        })
        .collect();
    let origin = Ipv4Address::new(10, 99, 0, 3);
    let l = hosts[2].listen(at(origin, 80), &ListenOptions::default()).unwrap();
    let c = hosts[1].connect(at(origin, 80)).unwrap();
    let mut events = Events::with_capacity(16);
    let mut accepted = None;
    for _ in 0..100 {
        for h in hosts.iter_mut() {
            h.poll(&mut events, Some(std::time::Duration::ZERO)).unwrap();
        }
        accepted = accepted.or_else(|| hosts[2].accept(l).ok());
        if accepted.is_some() && hosts[1].connect_result(c).is_ok() {
            break;
        }
    }
    assert!(accepted.is_some(), "the origin, not the proxy, got the connection");
    assert_eq!(hosts[0].smol_stats().rx_unmatched, 0, "the proxy saw no SYN");
}

#[test]
fn closing_counts_released_connections_until_their_fin_or_rst_is_delivered() {
    let mut sim = sim();
    let l = sim.server.listen(at(SERVER_IP, 80), &ListenOptions::default()).unwrap();
    let (c1, s1) = connect(&mut sim, l, at(SERVER_IP, 80));
    let (c2, s2) = connect(&mut sim, l, at(SERVER_IP, 80));
    assert_eq!(sim.server.closing(), 0, "open connections owe nothing yet");
    // Graceful: queued data, then FIN; owed until the peer acknowledged the FIN.
    assert_eq!(sim.server.write(s1, &pattern(100_000, 1)).unwrap(), 100_000);
    sim.server.close(s1);
    // Abort: the RST is owed until it was sent.
    sim.server.abort(s2);
    assert_eq!(sim.server.closing(), 2);
    let mut got = Vec::new();
    assert!(sim.run_until(Duration::from_secs(10), |s| {
        util::read_available(&mut s.client, c1, &mut got).unwrap() && s.server.closing() == 0
    }));
    assert_eq!(got.len(), 100_000, "the data went out before the FIN");
    let mut buf = [0u8; 8];
    assert_eq!(sim.client.read(c2, &mut buf).unwrap_err().kind(), io::ErrorKind::ConnectionReset);
    // Waiting for the peer's FIN (FIN-WAIT-2) owes nothing.
    assert_eq!(sim.server.closing(), 0);
}

#[test]
fn a_syn_on_the_tuple_of_an_unreleased_closed_connection_opens_a_new_one() {
    // One client port, so the second connect reuses the 4-tuple of the first.
    let mut sim = Sim::with(5, Faults::NONE, Faults::NONE, |_| {}, |c| c.ephemeral_ports = (40000, 40000));
    let l = sim.server.listen(at(SERVER_IP, 80), &ListenOptions::default()).unwrap();
    let (c, s) = connect(&mut sim, l, at(SERVER_IP, 80));
    sim.server.register(s, Token(3), Interest::READABLE).unwrap();
    // The client resets; the server's connection is CLOSED but its owner keeps it.
    sim.client.abort(c);
    assert!(sim.run_until(Duration::from_secs(5), |sm| sm.server_events.iter().any(|e| e.is_error())));
    assert_eq!(sim.server.smol_stats().connections, 1);

    // Same 4-tuple again: a new connection, not a reset.
    let (c2, s2) = connect(&mut sim, l, at(SERVER_IP, 80));
    assert_eq!(sim.client.local_addr(c2).unwrap().port(), 40000);
    assert_eq!(sim.server.smol_stats().syn_took_closed_tuple, 1);
    let mut buf = [0u8; 8];
    assert_eq!(sim.server.read(s, &mut buf).unwrap_err().kind(), io::ErrorKind::ConnectionReset, "the old one");
    sim.client.write(c2, b"again").unwrap();
    let mut got = Vec::new();
    assert!(sim.run_until(Duration::from_secs(2), |sm| {
        let _ = util::read_available(&mut sm.server, s2, &mut got);
        got == b"again"
    }));

    // Releasing the old connection leaves the new one's tuple alone.
    sim.server.close(s);
    sim.settle(Duration::from_millis(100));
    sim.client.write(c2, b"!").unwrap();
    got.clear();
    assert!(sim.run_until(Duration::from_secs(2), |sm| {
        let _ = util::read_available(&mut sm.server, s2, &mut got);
        got == b"!"
    }));
    assert_eq!(sim.server.smol_stats().connections, 1);
}
