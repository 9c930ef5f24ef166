//! While the steering program is attached, everything sluice does not own still reaches
//! the kernel: ICMP (even to sluice's own address), TCP to an address sluice does not
//! own, and TCP to a port outside sluice's port filter. The filtered port itself is
//! served by the userspace stack.

mod common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::time::{Duration, Instant};

use common::{echo_client, payload, EchoServer};
use sluice_datapath::testnet::{self, TwoHosts};
use sluice_datapath::{AttachMode, BindMode, PortFilter, SteeringConfig, XdpProgram, XskConfig, XskDevice};

const OURS: Ipv4Addr = Ipv4Addr::new(10, 99, 11, 2);
const KERNEL_ONLY: Ipv4Addr = Ipv4Addr::new(10, 99, 11, 3);

/// A kernel echo server that serves `n` connections, then returns how many it served
/// (bounded by a deadline).
fn kernel_echo(listener: TcpListener, n: usize) -> std::io::Result<usize> {
    listener.set_nonblocking(true)?;
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut served = 0;
    while served < n && Instant::now() < deadline {
        match listener.accept() {
            Ok((mut s, _)) => {
                s.set_nonblocking(false)?;
                s.set_read_timeout(Some(Duration::from_secs(10)))?;
                let mut buf = Vec::new();
                s.read_to_end(&mut buf)?;
                s.write_all(&buf)?;
                served += 1;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => return Err(e),
        }
    }
    Ok(served)
}

#[test]
fn kernel_keeps_traffic_sluice_does_not_own() {
    if !testnet::require_root("kernel_keeps_traffic_sluice_does_not_own") {
        return;
    }
    let net = TwoHosts::new("sxk", 1).expect("test network");
    let _peer = net.right.add_address(net.veth.b(), "10.99.11.1/24").unwrap();
    net.right.disable_offloads(net.veth.b()).unwrap();
    // The host itself also has both addresses, as a machine whose IP sluice shares.
    let _k1 = net.left.add_address(net.veth.a(), "10.99.11.2/24").unwrap();
    let _k2 = net.left.add_address(net.veth.a(), "10.99.11.3/24").unwrap();

    let (program, device) = net
        .left
        .run(|| {
            let steering = SteeringConfig {
                owned: vec![OURS],
                intercept: vec![],
                tcp_ports: Some(PortFilter { ports: vec![7000], ephemeral: 50000..=50999 }),
            };
            let program = XdpProgram::attach(net.veth.a(), AttachMode::Skb, &steering)?;
            let cfg = XskConfig { bind: BindMode::Copy, ..XskConfig::default() };
            let device = XskDevice::open(&program, 0, &cfg)?;
            Ok::<_, sluice_datapath::XdpError>((program, device))
        })
        .unwrap()
        .unwrap_or_else(|e| panic!("{e}"));

    // Bound inside the namespace before any client connects.
    let listener = net.left.run(|| TcpListener::bind("0.0.0.0:7001")).unwrap().unwrap();
    let kernel = std::thread::spawn(move || kernel_echo(listener, 2));
    let server = EchoServer::spawn(device, OURS, 24, 7000, 1, Duration::from_secs(60));
    let msg = payload(16 * 1024);

    net.right
        .run(|| {
            let t = Duration::from_secs(5);
            testnet::ping(KERNEL_ONLY, t).expect("ICMP to a kernel-only address");
            testnet::ping(OURS, t).expect("ICMP to sluice's address reaches the kernel");
            let back = echo_client(SocketAddr::from((KERNEL_ONLY, 7001)), &msg, t)
                .expect("TCP to an address sluice does not own");
            assert!(back == msg);
            let back = echo_client(SocketAddr::from((OURS, 7001)), &msg, t)
                .expect("TCP to a port outside the filter reaches the kernel");
            assert!(back == msg);
            let back =
                echo_client(SocketAddr::from((OURS, 7000)), &msg, t).expect("TCP to the filtered port reaches sluice");
            assert!(back == msg);
        })
        .unwrap();

    assert_eq!(kernel.join().unwrap().unwrap(), 2, "kernel served both");
    let report = server.join().expect("echo server");
    assert_eq!(report.connections, 1);
    assert_eq!(report.bytes, msg.len() as u64, "sluice saw only its own connection");
    drop(report);
    drop(program);
}
