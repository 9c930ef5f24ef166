//! Hostile and malformed frames against a serving smol stack, the way a NIC queue in xdp
//! mode can deliver them: random bytes, truncated and bit-flipped headers, bad
//! checksums, IP options and fragments, spoofed SYN floods, stray ACKs, RSTs and FINs
//! for unknown connections, and ARP noise, all from a third host on the wire. The stack
//! must neither panic nor leak: a live connection keeps carrying its bytes exactly, a new
//! connection is still accepted, the junk is counted, and once the spoofed handshakes
//! time out the stack holds only the real connections again.

mod util;

use std::io;
use std::net::SocketAddr;

use sluice_datapath::mem::{Faults, MemPort};
use sluice_stack::{ListenOptions, SocketId, Stack};
use smoltcp::phy::{ChecksumCapabilities, Device, TxToken};
use smoltcp::time::Duration;
use smoltcp::wire::{
    ArpOperation, ArpPacket, ArpRepr, EthernetAddress, EthernetFrame, EthernetProtocol, EthernetRepr, IpAddress,
    IpProtocol, Ipv4Address, Ipv4Packet, Ipv4Repr, TcpControl, TcpPacket, TcpRepr, TcpSeqNumber,
};
use util::{Sim, SERVER_IP};

const FRAMES: usize = 20_000;
/// A chunk over the live connection every this many junk frames.
const CHUNK_EVERY: usize = 200;

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// A well-formed TCP segment from a spoofed host (never the real client, whose
/// neighbour entry and connection must stay intact) to the server, with random ports,
/// flags, numbers, window and payload.
fn tcp_frame(rng: &mut Rng, attacker: EthernetAddress, server: EthernetAddress) -> Vec<u8> {
    let src = Ipv4Address::new(10, 99, 1 + rng.below(200) as u8, 1 + rng.below(250) as u8);
    let len = rng.below(4) as usize * rng.below(400) as usize;
    let payload = rng.bytes(len);
    let control = match rng.below(5) {
        0 => TcpControl::Syn,
        1 => TcpControl::Fin,
        2 => TcpControl::Rst,
        3 => TcpControl::Psh,
        _ => TcpControl::None,
    };
    let tcp = TcpRepr {
        src_port: 1024 + rng.below(60_000) as u16,
        // Mostly the listening port (a SYN flood), else anywhere.
        dst_port: if rng.below(2) == 0 { 80 } else { rng.below(65_536) as u16 },
        control,
        seq_number: TcpSeqNumber(rng.next() as i32),
        ack_number: (rng.below(2) == 0).then(|| TcpSeqNumber(rng.next() as i32)),
        window_len: rng.next() as u16,
        window_scale: (rng.below(3) == 0).then(|| rng.below(16) as u8),
        max_seg_size: (rng.below(3) == 0).then(|| rng.next() as u16),
        sack_permitted: rng.below(2) == 0,
        sack_ranges: [None; 3],
        timestamp: None,
        payload: &payload,
    };
    frame(attacker, server, src, &tcp)
}

/// `tcp` from `src` to the server in an Ethernet frame, checksums right.
fn frame(attacker: EthernetAddress, server: EthernetAddress, src: Ipv4Address, tcp: &TcpRepr) -> Vec<u8> {
    let ip = Ipv4Repr {
        src_addr: src,
        dst_addr: SERVER_IP,
        next_header: IpProtocol::Tcp,
        payload_len: tcp.buffer_len(),
        hop_limit: 64,
    };
    let eth = EthernetRepr { src_addr: attacker, dst_addr: server, ethertype: EthernetProtocol::Ipv4 };
    let mut buf = vec![0u8; 14 + 20 + tcp.buffer_len()];
    let caps = ChecksumCapabilities::default();
    let mut f = EthernetFrame::new_unchecked(&mut buf[..]);
    eth.emit(&mut f);
    let mut p = Ipv4Packet::new_unchecked(f.payload_mut());
    ip.emit(&mut p, &caps);
    let mut t = TcpPacket::new_unchecked(p.payload_mut());
    tcp.emit(&mut t, &IpAddress::Ipv4(src), &IpAddress::Ipv4(SERVER_IP), &caps);
    buf
}

/// A SYN from port 4000 to the listener.
fn syn_to_80() -> TcpRepr<'static> {
    TcpRepr {
        src_port: 4000,
        dst_port: 80,
        control: TcpControl::Syn,
        seq_number: TcpSeqNumber(1),
        ack_number: None,
        window_len: 1000,
        window_scale: None,
        max_seg_size: None,
        sack_permitted: false,
        sack_ranges: [None; 3],
        timestamp: None,
        payload: &[],
    }
}

/// An ARP request or reply with random addresses (none of them the real client's).
fn arp_frame(rng: &mut Rng, attacker: EthernetAddress) -> Vec<u8> {
    let spoofed = Ipv4Address::new(10, 99, 1 + rng.below(200) as u8, 1 + rng.below(250) as u8);
    let target = if rng.below(2) == 0 { SERVER_IP } else { Ipv4Address::from_bits(rng.next() as u32) };
    let repr = ArpRepr::EthernetIpv4 {
        operation: if rng.below(2) == 0 { ArpOperation::Request } else { ArpOperation::Reply },
        source_hardware_addr: attacker,
        source_protocol_addr: spoofed,
        target_hardware_addr: EthernetAddress(rng.bytes(6).try_into().unwrap()),
        target_protocol_addr: target,
    };
    let eth =
        EthernetRepr { src_addr: attacker, dst_addr: EthernetAddress::BROADCAST, ethertype: EthernetProtocol::Arp };
    let mut buf = vec![0u8; 14 + repr.buffer_len()];
    let mut f = EthernetFrame::new_unchecked(&mut buf[..]);
    eth.emit(&mut f);
    repr.emit(&mut ArpPacket::new_unchecked(f.payload_mut()));
    buf
}

/// One junk frame addressed to the server's MAC (or broadcast, for ARP).
fn junk(rng: &mut Rng, attacker: EthernetAddress, server: EthernetAddress) -> Vec<u8> {
    let mut frame = match rng.below(6) {
        // Random bytes behind the server's MAC.
        0 => {
            let len = rng.below(1514) as usize;
            let mut f = rng.bytes(len);
            f.resize(f.len().max(14), 0);
            f
        }
        1 => arp_frame(rng, attacker),
        // A valid segment, later damaged or not.
        _ => tcp_frame(rng, attacker, server),
    };
    match rng.below(5) {
        // Flip bits anywhere past the MACs (checksums, lengths, IHL, flags, offsets).
        0 | 1 => {
            for _ in 0..1 + rng.below(8) {
                let at = 12 + rng.below(frame.len() as u64 - 12) as usize;
                frame[at] ^= 1 << rng.below(8);
            }
        }
        // Truncate or pad.
        2 => frame.truncate(14 + rng.below(frame.len() as u64 - 13) as usize),
        3 => {
            let len = rng.below(64) as usize;
            frame.extend(rng.bytes(len));
        }
        _ => {}
    }
    let dst = if frame[12..14] == [0x08, 0x06] { EthernetAddress::BROADCAST } else { server };
    frame[..6].copy_from_slice(&dst.0);
    frame
}

/// Drop what reached the attacker (SYN-ACKs, RSTs, ARP replies): it never answers.
fn drain(port: &mut MemPort, sim: &Sim) {
    while port.receive(sim.now()).is_some() {}
}

fn send(port: &mut MemPort, frame: &[u8], now: smoltcp::time::Instant) {
    let tx = port.transmit(now).expect("the attacker's port takes a frame");
    tx.consume(frame.len(), |buf| buf.copy_from_slice(frame));
}

/// Move `data` from `from` to `to` over the live connection; panics unless it arrives
/// intact within a simulated second.
fn carry(sim: &mut Sim, client: SocketId, server: SocketId, data: &[u8]) {
    let mut sent = 0;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let done = sim.run_until(Duration::from_secs(1), |s| {
        if sent < data.len() {
            match s.client.write(client, &data[sent..]) {
                Ok(n) => sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => panic!("client write: {e}"),
            }
        }
        loop {
            match s.server.read(server, &mut buf) {
                Ok(0) => panic!("the live connection ended"),
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("server read: {e}"),
            }
        }
        got.len() == data.len()
    });
    assert!(done, "only {} of {} bytes crossed the live connection", got.len(), data.len());
    assert!(got == data, "the live connection's bytes changed");
}

fn connect(sim: &mut Sim, listener: SocketId) -> (SocketId, SocketId) {
    let c = sim.client.connect(SocketAddr::from((SERVER_IP, 80))).unwrap();
    let mut accepted = None;
    assert!(sim.run_until(Duration::from_secs(2), |s| {
        accepted = accepted.or_else(|| s.server.accept(listener).ok().map(|a| a.socket));
        accepted.is_some() && s.client.connect_result(c).is_ok()
    }));
    (c, accepted.unwrap())
}

#[test]
fn junk_frames_neither_panic_nor_leak_nor_disturb_a_live_connection() {
    let mut sim = Sim::new(0x6a72, Faults::NONE, Faults::NONE);
    let mut attacker = sim.net.attach(Faults::NONE).unwrap();
    let (attacker_mac, server_mac) = (attacker.mac(), sim.server.config().hardware_addr);
    let listener = sim.server.listen(SocketAddr::from((SERVER_IP, 80)), &ListenOptions::default()).unwrap();
    let (client, server) = connect(&mut sim, listener);
    let before = sim.server.smol_stats();

    let mut rng = Rng(0x5eed_6a72);
    let mut chunks = 0u8;
    for i in 0..FRAMES {
        let frame = junk(&mut rng, attacker_mac, server_mac);
        send(&mut attacker, &frame, sim.now());
        // A flood: a frame every 50 µs.
        let next = sim.now() + Duration::from_micros(50);
        sim.step_within(Some(next));
        drain(&mut attacker, &sim);
        if i % CHUNK_EVERY == 0 {
            carry(&mut sim, client, server, &[chunks; 1000]);
            chunks = chunks.wrapping_add(1);
        }
    }
    let after = sim.server.smol_stats();
    assert!(after.rx_frames - before.rx_frames >= FRAMES as u64, "{after:?}");
    assert!(after.rx_unmatched > before.rx_unmatched, "segments for no socket are counted: {after:?}");
    assert!(after.connections > 1, "the spoofed SYNs opened embryonic connections: {after:?}");

    // Still serving: a new connection, and the live one carries on.
    let (c2, s2) = connect(&mut sim, listener);
    carry(&mut sim, c2, s2, b"a new connection after the junk");
    carry(&mut sim, client, server, &[0xee; 4000]);

    // The spoofed handshakes time out (their SYN-ACKs go unanswered): only the two real
    // connections remain, on both sides.
    let end = sim.now() + Duration::from_secs(200);
    while sim.now() < end {
        drain(&mut attacker, &sim);
        if !sim.step_within(Some(end)) {
            break;
        }
    }
    let settled = sim.server.smol_stats();
    assert_eq!(settled.connections, 2, "connections left behind by junk: {settled:?}");
    carry(&mut sim, client, server, b"still here");
}

#[test]
fn a_handshake_whose_syn_ack_cannot_be_sent_is_released() {
    // A SYN from an address off the subnet (no gateway: no route) and from one on the
    // subnet that answers no ARP: the SYN-ACK never leaves, the handshake times out, and
    // the RST that smoltcp then owes can never be sent either. The connection and its
    // backlog slot must still go.
    for src in [Ipv4Address::new(10, 99, 5, 77), Ipv4Address::new(10, 99, 0, 77)] {
        let mut sim = Sim::new(0x6a73, Faults::NONE, Faults::NONE);
        let mut attacker = sim.net.attach(Faults::NONE).unwrap();
        let (attacker_mac, server_mac) = (attacker.mac(), sim.server.config().hardware_addr);
        let opts = ListenOptions { backlog: 1, ..ListenOptions::default() };
        let listener = sim.server.listen(SocketAddr::from((SERVER_IP, 80)), &opts).unwrap();
        let syn = syn_to_80();
        send(&mut attacker, &frame(attacker_mac, server_mac, src, &syn), sim.now());
        sim.step_within(Some(sim.now() + Duration::from_millis(1)));
        assert_eq!(sim.server.smol_stats().connections, 1, "{src}: the SYN opened a handshake");
        let start = sim.now();
        let handshake = sim.server.config().handshake_timeout;
        let released = sim.run_until(handshake + Duration::from_secs(10), |s| {
            drain(&mut attacker, s);
            s.server.smol_stats().connections == 0
        });
        let stats = sim.server.smol_stats();
        assert!(released, "{src}: the handshake is still held: {stats:?}");
        assert!(sim.now() - start >= handshake, "{src}: released before the handshake timeout");
        assert_eq!((stats.rst_undelivered, stats.tx_frames), (1, 0), "{src}: {stats:?}");
        // The backlog slot is free again: a real client gets in.
        let (c, s) = connect(&mut sim, listener);
        carry(&mut sim, c, s, b"after the spoofed handshake");
    }
}

#[test]
fn a_neighbour_that_never_answers_does_not_starve_arp_for_the_others() {
    // smoltcp asks for one neighbour a second per interface. A spoofed SYN from an
    // on-link address nobody owns keeps a handshake asking for that address; a real
    // client the server has not resolved yet (it knows the server from elsewhere, so it
    // sends no ARP request the server could learn from) must still be answered at once.
    let mut sim = Sim::new(0x6a74, Faults::NONE, Faults::NONE);
    let mut attacker = sim.net.attach(Faults::NONE).unwrap();
    let (attacker_mac, server_mac) = (attacker.mac(), sim.server.config().hardware_addr);
    sim.client.add_neighbor(SERVER_IP, server_mac).unwrap();
    let listener = sim.server.listen(SocketAddr::from((SERVER_IP, 80)), &ListenOptions::default()).unwrap();
    let syn = syn_to_80();
    send(&mut attacker, &frame(attacker_mac, server_mac, Ipv4Address::new(10, 99, 0, 77), &syn), sim.now());
    sim.run_until(Duration::from_millis(2500), |s| {
        drain(&mut attacker, s);
        false
    });
    let start = sim.now();
    let c = sim.client.connect(SocketAddr::from((SERVER_IP, 80))).unwrap();
    let mut accepted = None;
    let done = sim.run_until(Duration::from_secs(100), |s| {
        drain(&mut attacker, s);
        accepted = accepted.or_else(|| s.server.accept(listener).ok().map(|a| a.socket));
        accepted.is_some() && s.client.connect_result(c).is_ok()
    });
    assert!(done, "the client never got in");
    let took = sim.now() - start;
    assert!(took < Duration::from_millis(500), "the handshake waited {took} for ARP behind a silent neighbour");
    assert!(sim.server.smol_stats().arp_requests >= 3, "{:?}", sim.server.smol_stats());
    carry(&mut sim, c, accepted.unwrap(), b"resolved");
}
