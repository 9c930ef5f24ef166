//! Frames through the tx path: the bare reflect loop sends every received frame back
//! out (a second socket on the peer, steered by an intercept prefix, counts them), the
//! completion ring returns every frame to its pool, and the waker interrupts `wait`.

mod common;

use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::thread;
use std::time::{Duration, Instant as StdInstant};

use sluice_datapath::testnet::{self, TwoHosts};
use sluice_datapath::{AttachMode, BindMode, Datapath, SteeringConfig, XdpError, XdpProgram, XskConfig, XskDevice};
use smoltcp::phy::{Device, RxToken, TxToken};
use smoltcp::time::Instant;
use smoltcp::wire::Ipv4Cidr;

const FRAMES: u32 = 3000;

fn copy() -> XskConfig {
    XskConfig { bind: BindMode::Copy, ..XskConfig::default() }
}

/// A TCP frame to 10.99.16.2 carrying `seq` in the TCP sequence number.
fn frame(dst: [u8; 6], src: [u8; 6], seq: u32) -> [u8; 60] {
    let mut f = [0u8; 60];
    f[..6].copy_from_slice(&dst);
    f[6..12].copy_from_slice(&src);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    f[14..34].copy_from_slice(&[0x45, 0, 0, 40, 0, 1, 0x40, 0, 64, 6, 0, 0, 10, 99, 16, 1, 10, 99, 16, 2]);
    f[34..38].copy_from_slice(&[0x9c, 0x40, 0x1b, 0x58]);
    f[38..42].copy_from_slice(&seq.to_be_bytes());
    f[46] = 0x50;
    f
}

#[test]
fn reflect_sends_every_frame_back_and_keeps_the_books() {
    if !testnet::require_root("reflect_sends_every_frame_back_and_keeps_the_books") {
        return;
    }
    let net = TwoHosts::new("sxw", 1).expect("test network");
    let (ours_prog, mut ours) = net
        .left
        .run(|| {
            let steering = SteeringConfig { owned: vec![Ipv4Addr::new(10, 99, 16, 2)], ..Default::default() };
            let p = XdpProgram::attach(net.veth.a(), AttachMode::Skb, &steering)?;
            let d = XskDevice::open(&p, 0, &copy())?;
            Ok::<_, XdpError>((p, d))
        })
        .unwrap()
        .unwrap_or_else(|e| panic!("{e}"));
    // The peer takes back TCP to 10.99.16.2 through an intercept prefix.
    let (peer_prog, mut peer) = net
        .right
        .run(|| {
            let steering = SteeringConfig {
                intercept: vec![Ipv4Cidr::new(Ipv4Addr::new(10, 99, 16, 2), 32)],
                ..Default::default()
            };
            let p = XdpProgram::attach(net.veth.b(), AttachMode::Skb, &steering)?;
            let d = XskDevice::open(&p, 0, &copy())?;
            Ok::<_, XdpError>((p, d))
        })
        .unwrap()
        .unwrap_or_else(|e| panic!("{e}"));
    let (our_mac, peer_mac) = (ours.mac(), peer.mac());

    let mut seen = HashSet::new();
    let (mut sent, mut reflected) = (0u32, 0u32);
    let deadline = StdInstant::now() + Duration::from_secs(20);
    while seen.len() < FRAMES as usize {
        assert!(StdInstant::now() < deadline, "sent {sent}, reflected {reflected}, back {}", seen.len());
        // Keep at most 512 frames in flight so that no ring overflows.
        while sent < FRAMES && sent - seen.len() as u32 <= 512 {
            let Some(tx) = peer.transmit(Instant::now()) else {
                break;
            };
            tx.consume(60, |b| b.copy_from_slice(&frame(our_mac, peer_mac, sent)));
            sent += 1;
        }
        peer.flush().unwrap();
        reflected += ours.socket_mut().reflect(|f| {
            f[..6].copy_from_slice(&peer_mac);
            f[6..12].copy_from_slice(&our_mac);
        });
        while let Some((rx, _tx)) = peer.receive(Instant::now()) {
            let seq = rx.consume(|f| {
                assert_eq!(f.len(), 60);
                assert_eq!(f[..6], peer_mac, "reflected to the peer");
                u32::from_be_bytes([f[38], f[39], f[40], f[41]])
            });
            assert!(seen.insert(seq), "frame {seq} came back twice");
        }
    }
    assert_eq!(reflected, FRAMES);
    assert!(seen.iter().all(|s| *s < FRAMES));

    ours.flush().unwrap();
    thread::sleep(Duration::from_millis(50));
    ours.flush().unwrap();
    let stats = ours.stats().unwrap();
    assert_eq!((stats.rx_packets, stats.tx_packets), (FRAMES.into(), FRAMES.into()), "{stats:?}");
    assert_eq!(stats.drops(), 0, "{stats:?}");
    let frames = ours.frame_accounting();
    assert!(frames.balanced(), "{frames:?}");
    assert_eq!(frames.rx_free + frames.rx_in_fill, frames.rx_pool, "reflected frames came home: {frames:?}");
    assert_eq!(frames.tx_free, frames.tx_pool, "{frames:?}");
    drop((ours, ours_prog, peer, peer_prog));
}

#[test]
fn waker_interrupts_wait() {
    if !testnet::require_root("waker_interrupts_wait") {
        return;
    }
    let net = TwoHosts::new("sxv", 1).expect("test network");
    let (program, mut dev) = net
        .left
        .run(|| {
            let steering = SteeringConfig { owned: vec![Ipv4Addr::new(10, 99, 17, 2)], ..Default::default() };
            let p = XdpProgram::attach(net.veth.a(), AttachMode::Skb, &steering)?;
            let d = XskDevice::open(&p, 0, &copy())?;
            Ok::<_, XdpError>((p, d))
        })
        .unwrap()
        .unwrap_or_else(|e| panic!("{e}"));

    // Nothing arrives: a timeout is honoured.
    let start = StdInstant::now();
    dev.wait(Some(Duration::from_millis(100))).unwrap();
    assert!(start.elapsed() >= Duration::from_millis(90), "{:?}", start.elapsed());

    // A wake from another thread ends an unbounded wait.
    let waker = dev.waker().unwrap();
    let start = StdInstant::now();
    let t = thread::spawn(move || {
        thread::sleep(Duration::from_millis(100));
        waker.wake().unwrap();
    });
    dev.wait(Some(Duration::from_secs(10))).unwrap();
    let waited = start.elapsed();
    t.join().unwrap();
    assert!(waited >= Duration::from_millis(90) && waited < Duration::from_secs(5), "{waited:?}");

    // The wake was consumed: the next wait sleeps again.
    let start = StdInstant::now();
    dev.wait(Some(Duration::from_millis(50))).unwrap();
    assert!(start.elapsed() >= Duration::from_millis(40));
    drop((dev, program));
}
