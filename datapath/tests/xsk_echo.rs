//! A kernel TCP client in one namespace talks to a smoltcp stack running over an
//! AF_XDP socket (copy mode, SKB attach) on the other end of a veth pair: 1 MiB echoed
//! byte-exact, ARP answered by the userspace stack, every UMEM frame accounted for.

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use common::{echo_client, payload, EchoServer};
use sluice_datapath::testnet::{self, TwoHosts};
use sluice_datapath::{AttachMode, BindMode, SteeringConfig, XdpProgram, XskConfig, XskDevice};

const OURS: Ipv4Addr = Ipv4Addr::new(10, 99, 10, 2);

#[test]
fn echo_one_mebibyte_through_smoltcp_over_xsk() {
    if !testnet::require_root("echo_one_mebibyte_through_smoltcp_over_xsk") {
        return;
    }
    let net = TwoHosts::new("sxe", 1).expect("test network");
    let _peer_addr = net.right.add_address(net.veth.b(), "10.99.10.1/24").unwrap();
    net.right.disable_offloads(net.veth.b()).unwrap();

    let (program, device) = net
        .left
        .run(|| {
            let steering = SteeringConfig { owned: vec![OURS], ..Default::default() };
            let program = XdpProgram::attach(net.veth.a(), AttachMode::Skb, &steering)?;
            let cfg = XskConfig { bind: BindMode::Copy, ..XskConfig::default() };
            let device = XskDevice::open(&program, 0, &cfg)?;
            Ok::<_, sluice_datapath::XdpError>((program, device))
        })
        .unwrap()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!device.zero_copy(), "veth binds in copy mode");
    assert_eq!(device.ip_mtu(), 1500);
    let mac = device.mac();
    let details = net.left.link_details(net.veth.a()).unwrap();
    assert!(details.contains(&format!("prog/xdp id {}", program.id().unwrap())), "program attached: {details}");

    let server = EchoServer::spawn(device, OURS, 24, 7000, 1, Duration::from_secs(60));
    let data = payload(1 << 20);
    let back = net
        .right
        .run(|| echo_client(SocketAddr::from((OURS, 7000)), &data, Duration::from_secs(30)))
        .unwrap()
        .expect("echo client");
    assert_eq!(back.len(), data.len(), "echoed length");
    assert!(back == data, "echoed bytes differ");

    let report = server.join().expect("echo server");
    assert_eq!(report.connections, 1);
    assert_eq!(report.bytes, 1 << 20);

    // The peer resolved our address with ARP, answered by the userspace stack.
    let neigh = net.right.exec("ip", &["neigh", "show", "10.99.10.2"]).unwrap();
    let mac_text = mac.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":");
    assert!(neigh.contains(&mac_text), "peer's neighbour entry {neigh:?} has our MAC {mac_text}");

    let stats = report.device.stats().unwrap();
    assert!(stats.rx_packets > 700 && stats.tx_packets > 700, "{stats:?}");
    assert!(stats.rx_bytes > 1 << 20 && stats.tx_bytes > 1 << 20, "{stats:?}");
    assert_eq!(stats.rx_invalid + stats.tx_invalid + stats.tx_ring_full, 0, "{stats:?}");
    let frames = report.device.frame_accounting();
    assert!(frames.balanced(), "every frame accounted for: {frames:?}");
    assert_eq!(frames.rx_in_fill + frames.rx_free, frames.rx_pool, "idle: rx pool posted or free");
    assert_eq!(frames.tx_free, frames.tx_pool, "idle: all tx frames completed");
    drop(report);
    drop(program);
}
