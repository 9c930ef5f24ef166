//! Lazy connection buffers: an idle connection holds no receive or send storage, storage
//! is taken when bytes arrive or are written and given back once they are read or
//! acknowledged, and running out of it (`buffer_memory`) delays data instead of losing
//! or corrupting it.

mod util;

use std::io;
use std::net::SocketAddr;

use sluice_datapath::mem::Faults;
use sluice_stack::{ListenOptions, SocketId, Stack};
use smoltcp::time::Duration;
use util::{read_available, Sim, SERVER_IP};

/// `n` established connections: (client ids, server ids), in matching order.
fn open(sim: &mut Sim, n: usize) -> (Vec<SocketId>, Vec<SocketId>) {
    let addr = SocketAddr::from((SERVER_IP, 80));
    let l = sim.server.listen(addr, &ListenOptions { backlog: 4096, ..ListenOptions::default() }).unwrap();
    let clients: Vec<_> = (0..n).map(|_| sim.client.connect(addr).unwrap()).collect();
    let mut accepted = Vec::new();
    assert!(sim.run_until(Duration::from_secs(30), |s| {
        while let Ok(a) = s.server.accept(l) {
            accepted.push(a);
        }
        accepted.len() == n
    }));
    // Match by the client's local port.
    let mut servers = Vec::new();
    for &c in &clients {
        let port = sim.client.local_addr(c).unwrap().port();
        servers.push(accepted.iter().find(|a| a.peer.port() == port).unwrap().socket);
    }
    (clients, servers)
}

/// 4 KiB buffers, and storage for `memory` bytes of them (half a direction).
fn small(memory: usize) -> impl FnOnce(&mut sluice_stack::smol::SmolConfig) {
    move |c| {
        c.rx_buffer = 4096;
        c.tx_buffer = 4096;
        c.buffer_memory = memory;
    }
}

fn bytes(sim: &Sim) -> (u64, u64) {
    (sim.server.smol_stats().buffer_bytes, sim.client.smol_stats().buffer_bytes)
}

#[test]
fn idle_connections_hold_no_storage_and_drained_ones_give_it_back() {
    let mut sim = Sim::new(5, Faults::NONE, Faults::NONE);
    let (clients, servers) = open(&mut sim, 200);
    sim.settle(Duration::from_secs(1));
    assert_eq!(bytes(&sim), (0, 0), "200 established idle connections hold no buffer storage");

    // One request and response on each: storage is taken while bytes are queued.
    for &c in &clients {
        sim.client.write(c, b"GET / HTTP/1.1\r\n\r\n").unwrap();
    }
    assert!(sim.client.smol_stats().buffer_bytes >= 200 * 128 * 1024, "send storage while unacknowledged");
    let mut got = vec![Vec::new(); servers.len()];
    assert!(sim.run_until(Duration::from_secs(5), |s| {
        for (i, &id) in servers.iter().enumerate() {
            read_available(&mut s.server, id, &mut got[i]).unwrap();
        }
        got.iter().all(|g| g.len() == 18)
    }));
    for &s in &servers {
        sim.server.write(s, b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").unwrap();
    }
    let mut got = vec![Vec::new(); clients.len()];
    assert!(sim.run_until(Duration::from_secs(5), |s| {
        for (i, &id) in clients.iter().enumerate() {
            read_available(&mut s.client, id, &mut got[i]).unwrap();
        }
        got.iter().all(|g| g.len() == 38)
    }));
    sim.settle(Duration::from_secs(1));
    assert_eq!(bytes(&sim), (0, 0), "read and acknowledged: all storage given back");
    let st = sim.server.smol_stats();
    assert_eq!(st.idle_buffers, 400, "drained buffers kept for reuse (200 a direction, under buffer_keep)");
    assert_eq!((st.rx_no_buffer, st.tx_no_buffer), (0, 0));

    // Unread bytes keep their storage; closing returns it.
    sim.client.write(clients[0], b"unread").unwrap();
    sim.settle(Duration::from_secs(1));
    assert_eq!(bytes(&sim), (128 * 1024, 0));
    sim.server.close(servers[0]);
    sim.settle(Duration::from_secs(1));
    assert_eq!(bytes(&sim), (0, 0));
}

#[test]
fn exhausted_storage_delays_data_but_never_loses_it() {
    // Room for one receive buffer on the server and one send buffer on the client.
    let mut sim = Sim::with(9, Faults::NONE, Faults::NONE, small(8192), small(8192));
    let (clients, servers) = open(&mut sim, 3);
    let payload = |i: usize| -> Vec<u8> { (0..20_000).map(|k| (k * 7 + i * 13) as u8).collect() };
    let mut sent = [0usize; 3];
    let mut got = vec![Vec::new(); 3];
    assert!(sim.run_until(Duration::from_secs(120), |s| {
        for i in 0..3 {
            let p = payload(i);
            while sent[i] < p.len() {
                match s.client.write(clients[i], &p[sent[i]..]) {
                    Ok(n) => sent[i] += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => panic!("{e}"),
                }
            }
            read_available(&mut s.server, servers[i], &mut got[i]).unwrap();
        }
        (0..3).all(|i| got[i].len() == 20_000)
    }));
    for (i, g) in got.iter().enumerate() {
        assert_eq!(*g, payload(i), "connection {i} intact");
    }
    let ct = sim.client.smol_stats();
    assert!(ct.tx_no_buffer > 0, "writers waited for send storage");
    sim.settle(Duration::from_secs(2));
    assert_eq!(bytes(&sim), (0, 0));
}

#[test]
fn payload_without_free_receive_storage_is_dropped_and_retransmitted() {
    let mut sim = Sim::with(11, Faults::NONE, Faults::NONE, small(8192), |_| {});
    let (clients, servers) = open(&mut sim, 2);
    // The first connection's unread bytes hold the only receive buffer.
    sim.client.write(clients[0], b"first").unwrap();
    sim.settle(Duration::from_millis(100));
    assert_eq!(sim.server.smol_stats().buffer_bytes, 4096);
    sim.client.write(clients[1], b"second").unwrap();
    sim.settle(Duration::from_millis(100));
    assert!(sim.server.smol_stats().rx_no_buffer >= 1, "dropped for want of storage");
    let mut a = Vec::new();
    read_available(&mut sim.server, servers[0], &mut a).unwrap();
    assert_eq!(a, b"first");
    let mut b = Vec::new();
    assert!(sim.run_until(Duration::from_secs(10), |s| {
        read_available(&mut s.server, servers[1], &mut b).unwrap();
        b.len() == 6
    }));
    assert_eq!(b, b"second", "the retransmission was taken once storage was free");
}
