//! Fuzz the userspace TCP/IP stack's packet path: any sequence of frames, as an AF_XDP
//! queue could deliver them, against a smol stack that listens on port 80, accepts what
//! completes a handshake, and echoes what it reads. Nothing may panic, and the stack
//! must keep answering a real client afterwards.
//!
//! Input: frames as `[len: u16 big-endian][len bytes]`, each sent to the stack's MAC
//! (its first six bytes are overwritten) 100 µs apart on a manual clock; a length
//! with the top bit set also lets 200 ms pass, so timers (retransmissions, handshake
//! and TIME-WAIT expiry) run too.

#![no_main]

use std::net::SocketAddr;
use std::time::Duration as StdDuration;

use libfuzzer_sys::fuzz_target;
use sluice_datapath::mem::{Faults, MemConfig, MemNetwork};
use sluice_stack::smol::{Clock, Ipv4Cidr, ManualClock, SmolConfig, SmolStack};
use sluice_stack::{Events, ListenOptions, SocketId, Stack};
use smoltcp::phy::{Device, TxToken};
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::Ipv4Address;

const SERVER: Ipv4Address = Ipv4Address::new(10, 99, 0, 1);
const CLIENT: Ipv4Address = Ipv4Address::new(10, 99, 0, 2);

fn config(mac: smoltcp::wire::EthernetAddress, ip: Ipv4Address) -> SmolConfig {
    let mut c = SmolConfig::new(mac, Ipv4Cidr::new(ip, 24));
    c.rx_buffer = 4096;
    c.tx_buffer = 4096;
    c.random_seed = u64::from(ip.to_bits());
    c
}

fuzz_target!(|input: &[u8]| {
    let net = MemNetwork::new(MemConfig::default());
    let port = net.attach(Faults::NONE).expect("attach the stack");
    let mut attacker = net.attach(Faults::NONE).expect("attach the attacker");
    let client_port = net.attach(Faults::NONE).expect("attach the client");
    let (mac, client_mac) = (port.mac(), client_port.mac());
    let clock = ManualClock::new(Instant::from_secs(1));
    let mut cfg = config(mac, SERVER);
    cfg.any_ip = true;
    let mut stack = SmolStack::with_clock(port, cfg, clock.clone()).expect("stack");
    let mut client = SmolStack::with_clock(client_port, config(client_mac, CLIENT), clock.clone()).expect("client");
    let listener = stack.listen(SocketAddr::from((SERVER, 80)), &ListenOptions::default()).expect("listen");
    let mut events = Events::with_capacity(256);
    let mut accepted: Vec<SocketId> = Vec::new();
    let mut buf = [0u8; 2048];

    let mut rest = input;
    while rest.len() >= 2 {
        let header = u16::from_be_bytes([rest[0], rest[1]]);
        let len = usize::from(header & 0x7fff).min(rest.len() - 2).min(1514);
        let mut frame = rest[2..2 + len].to_vec();
        rest = &rest[2 + len..];
        if frame.len() >= 6 {
            frame[..6].copy_from_slice(&mac.0);
        }
        if let Some(tx) = attacker.transmit(clock.now()) {
            tx.consume(frame.len(), |b| b.copy_from_slice(&frame));
        }
        clock.advance(if header & 0x8000 != 0 { Duration::from_millis(200) } else { Duration::from_micros(100) });
        stack.poll(&mut events, Some(StdDuration::ZERO)).expect("poll");
        while attacker.receive(clock.now()).is_some() {}
        serve(&mut stack, listener, &mut accepted);
    }

    // Still serving: a real client connects and gets its bytes echoed (within 150 s, so
    // that a backlog the frames filled and a neighbour entry they poisoned expire).
    let c = client.connect(SocketAddr::from((SERVER, 80))).expect("connect");
    let mut got = Vec::new();
    let mut sent = false;
    for _ in 0..15_000 {
        clock.advance(Duration::from_millis(10));
        stack.poll(&mut events, Some(StdDuration::ZERO)).expect("poll");
        client.poll(&mut events, Some(StdDuration::ZERO)).expect("client poll");
        while attacker.receive(clock.now()).is_some() {}
        serve(&mut stack, listener, &mut accepted);
        if !sent && client.connect_result(c).is_ok() {
            sent = client.write(c, b"ping").is_ok();
        }
        if let Ok(n) = client.read(c, &mut buf) {
            got.extend_from_slice(&buf[..n]);
        }
        if got.len() >= 4 {
            break;
        }
    }
    assert_eq!(got, b"ping", "the stack stopped serving after the fuzzed frames");
});

/// Accept what completed a handshake and echo what the accepted connections sent.
fn serve(
    stack: &mut SmolStack<sluice_datapath::mem::MemPort, ManualClock>,
    listener: SocketId,
    accepted: &mut Vec<SocketId>,
) {
    while let Ok(a) = stack.accept(listener) {
        accepted.push(a.socket);
    }
    let mut buf = [0u8; 2048];
    for &s in accepted.iter() {
        if let Ok(n) = stack.read(s, &mut buf) {
            let _ = stack.write(s, &buf[..n]);
        }
    }
}
