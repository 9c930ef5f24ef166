//! The per-poll and per-packet work of the smol stack does not grow with the number of
//! idle connections: counted deterministically (connection visits), not timed.

mod util;

use std::io;
use std::net::SocketAddr;

use sluice_datapath::mem::Faults;
use sluice_stack::{ListenOptions, SocketId, Stack};
use smoltcp::time::Duration;
use util::{Sim, SERVER_IP};

/// Establish `idle` connections and leave them idle; return the simulation and one
/// more (active) connection pair.
fn with_idle(idle: usize) -> (Sim, SocketId, SocketId) {
    let mut sim = Sim::with(21, Faults::NONE, Faults::NONE, |c| c.rx_buffer = 4096, |c| c.tx_buffer = 4096);
    let addr = SocketAddr::from((SERVER_IP, 80));
    let l = sim.server.listen(addr, &ListenOptions { backlog: 4096, ..ListenOptions::default() }).unwrap();
    let mut clients: Vec<_> = (0..idle).map(|_| sim.client.connect(addr).unwrap()).collect();
    let mut accepted = Vec::new();
    assert!(sim.run_until(Duration::from_secs(30), |s| {
        while let Ok(a) = s.server.accept(l) {
            accepted.push(a.socket);
        }
        accepted.len() == idle
    }));
    let active = sim.client.connect(addr).unwrap();
    let mut server = None;
    assert!(sim.run_until(Duration::from_secs(5), |s| {
        server = server.or_else(|| s.server.accept(l).ok().map(|a| a.socket));
        server.is_some() && s.client.connect_result(active).is_ok()
    }));
    // Let delayed ACKs and every other timer run out.
    sim.settle(Duration::from_secs(1));
    clients.clear();
    (sim, active, server.unwrap())
}

/// Connection visits (both stacks) for 100 idle polls, then for one request/response.
fn visits(idle: usize) -> (u64, u64) {
    let (mut sim, c, s) = with_idle(idle);
    let total = |sim: &Sim| sim.client.smol_stats().visits + sim.server.smol_stats().visits;
    let v0 = total(&sim);
    for _ in 0..100 {
        sim.step();
    }
    let idle_polls = total(&sim) - v0;

    let v1 = total(&sim);
    sim.client.write(c, b"ping").unwrap();
    let mut buf = [0u8; 16];
    let mut answered = false;
    let mut got = Vec::new();
    assert!(sim.run_until(Duration::from_secs(1), |sm| {
        if !answered {
            if let Ok(n) = sm.server.read(s, &mut buf) {
                assert_eq!(&buf[..n], b"ping");
                sm.server.write(s, b"pong").unwrap();
                answered = true;
            }
        }
        match sm.client.read(c, &mut buf) {
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => panic!("{e}"),
        }
        got == b"pong"
    }));
    sim.settle(Duration::from_secs(1));
    (idle_polls, total(&sim) - v1)
}

#[test]
fn idle_connections_cost_nothing_per_poll_or_per_packet() {
    let (idle_1, rr_1) = visits(1);
    let (idle_n, rr_n) = visits(2000);
    assert_eq!(idle_1, 0, "idle polls visit no connection");
    assert_eq!(idle_n, 0, "idle polls visit no connection, 2000 idle ones either");
    assert_eq!(rr_1, rr_n, "a request/response visits the same connections however many are idle");
    assert!(rr_n <= 8, "only the active pair is visited: {rr_n}");
}
