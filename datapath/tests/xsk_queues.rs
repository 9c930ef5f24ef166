//! A two-queue veth: both queues bind, and in native (DRV) mode flows that the peer
//! hashes onto different tx queues arrive on different AF_XDP sockets.

mod common;

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant as StdInstant};

use sluice_datapath::testnet::{self, TwoHosts};
use sluice_datapath::{AttachMode, BindMode, SteeringConfig, XdpError, XdpProgram, XskConfig, XskDevice};
use smoltcp::phy::{Device, RxToken};
use smoltcp::time::Instant;

const OURS: Ipv4Addr = Ipv4Addr::new(10, 99, 13, 2);

/// Receive for `window` and count TCP SYNs to port 7000.
fn count_syns(dev: &mut XskDevice, window: Duration) -> usize {
    let end = StdInstant::now() + window;
    let mut syns = 0;
    while StdInstant::now() < end {
        while let Some((rx, _tx)) = dev.receive(Instant::now()) {
            let syn = rx.consume(|f| {
                f.len() >= 54
                    && f[12..14] == [0x08, 0x00]
                    && f[23] == 6
                    && f[36..38] == 7000u16.to_be_bytes()
                    && f[47] & 0x02 != 0
            });
            syns += usize::from(syn);
        }
        thread::sleep(Duration::from_millis(5));
    }
    syns
}

#[test]
fn two_queue_veth_binds_and_receives_on_both_queues() {
    if !testnet::require_root("two_queue_veth_binds_and_receives_on_both_queues") {
        return;
    }
    let net = TwoHosts::new("sxq", 2).expect("test network");
    let _peer = net.right.add_address(net.veth.b(), "10.99.13.1/24").unwrap();
    net.right.disable_offloads(net.veth.b()).unwrap();

    let (program, mut devices, missing) = net
        .left
        .run(|| {
            let steering = SteeringConfig { owned: vec![OURS], ..Default::default() };
            let program = XdpProgram::attach(net.veth.a(), AttachMode::Drv, &steering)?;
            assert_eq!(program.interface().rx_queues, 2);
            let cfg = XskConfig { bind: BindMode::Copy, ..XskConfig::default() };
            let devices = (0..2).map(|q| XskDevice::open(&program, q, &cfg)).collect::<Result<Vec<_>, _>>()?;
            let missing = XskDevice::open(&program, 2, &cfg).map(drop);
            Ok::<_, XdpError>((program, devices, missing))
        })
        .unwrap()
        .unwrap_or_else(|e| panic!("{e}"));
    let err = missing.expect_err("queue 2 does not exist");
    assert!(matches!(err, XdpError::QueueMissing { queue: 2, queues: 2, .. }), "{err}");
    assert_eq!(devices[0].queue(), 0);
    assert_eq!(devices[1].queue(), 1);

    // No stack answers here: give the peer our MAC, then open connections whose SYNs
    // the peer spreads over its two tx queues (= our two rx queues in DRV mode).
    let mac = devices[0].mac().iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":");
    net.right.exec("ip", &["neigh", "replace", "10.99.13.2", "lladdr", &mac, "dev", net.veth.b()]).unwrap();
    net.right
        .run(|| {
            thread::scope(|s| {
                for _ in 0..32 {
                    s.spawn(|| {
                        let to = SocketAddr::from((OURS, 7000));
                        let _ = TcpStream::connect_timeout(&to, Duration::from_millis(300));
                    });
                }
            })
        })
        .unwrap();
    let (d0, d1) = devices.split_at_mut(1);
    let (q0, q1) = thread::scope(|s| {
        let a = s.spawn(|| count_syns(&mut d0[0], Duration::from_millis(300)));
        let b = s.spawn(|| count_syns(&mut d1[0], Duration::from_millis(300)));
        (a.join().unwrap(), b.join().unwrap())
    });
    assert!(q0 + q1 >= 32, "every connection's SYN reached an AF_XDP socket: {q0} + {q1}");
    assert!(q0 > 0 && q1 > 0, "both queues carried traffic: queue 0 {q0}, queue 1 {q1}");
    let s0 = devices[0].stats().unwrap();
    let s1 = devices[1].stats().unwrap();
    assert_eq!(s0.rx_packets as usize, q0, "{s0:?}");
    assert_eq!(s1.rx_packets as usize, q1, "{s1:?}");
    drop(devices);
    drop(program);
}
