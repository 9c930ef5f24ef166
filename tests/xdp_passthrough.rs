//! While sluice runs in xdp mode, the host keeps what sluice does not own: ICMP, TCP to
//! the host's own address, and TCP to ports of sluice's address that no listener uses
//! (ssh on a shared host address, say) all reach the kernel, next to sluice's traffic.

use crate::xdp_support;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use sluice_datapath::testnet;
use sluice_e2e::http_client::Client;
use sluice_e2e::http_origin::HttpOrigin;
use xdp_support::{http_config, XdpNet};

/// A kernel "ssh": answers `n` connections with a banner, bounded by a deadline.
fn kernel_banner(listener: TcpListener, n: usize) -> std::io::Result<usize> {
    listener.set_nonblocking(true)?;
    let deadline = Instant::now() + Duration::from_secs(25);
    let mut served = 0;
    while served < n && Instant::now() < deadline {
        match listener.accept() {
            Ok((mut s, peer)) => {
                s.set_nonblocking(false)?;
                writeln!(s, "SSH-2.0-kernel {peer}")?;
                s.shutdown(Shutdown::Write)?;
                served += 1;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => return Err(e),
        }
    }
    Ok(served)
}

fn banner(addr: SocketAddr) -> std::io::Result<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(3))?;
    s.set_read_timeout(Some(Duration::from_secs(3)))?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

#[test]
fn the_kernel_keeps_icmp_and_tcp_sluice_does_not_own() {
    if !testnet::require_root("the_kernel_keeps_icmp_and_tcp_sluice_does_not_own") {
        return;
    }
    let mut net = XdpNet::new(44, 1);
    // The host's own address, and sluice's address shared with the host.
    let host = Ipv4Addr::new(10, 99, 44, 3);
    net.add_kernel_address("10.99.44.3/24");
    net.add_kernel_address("10.99.44.2/24");
    let ssh = net.in_sluice_ns(|| TcpListener::bind("0.0.0.0:2222")).unwrap();
    let kernel = std::thread::spawn(move || kernel_banner(ssh, 2));

    let origin = net.in_peer(|| HttpOrigin::start_on(&format!("{}:0", net.peer_ip()), "peer"));
    let yaml = http_config(SocketAddr::from(([0, 0, 0, 0], 8080)), origin.addr);
    let _sluice = net.start_sluice(&yaml, &["--concurrency", "1", "--xdp-mode", "skb"]);
    assert!(net.xdp_attached());

    let sluice_ip = net.sluice_ip();
    net.in_peer(|| {
        let t = Duration::from_secs(3);
        // The host address first: its ARP request teaches the kernel the peer's MAC (the
        // ARP of sluice's address is sluice's, on the same MAC).
        testnet::ping(host, t).expect("ICMP to the host's address");
        let b = banner(SocketAddr::from((host, 2222))).expect("TCP to the host's address");
        assert!(b.starts_with("SSH-2.0-kernel"), "{b}");
        testnet::ping(sluice_ip, t).expect("ICMP to sluice's address reaches the kernel");
        let b = banner(SocketAddr::from((sluice_ip, 2222))).expect("TCP to a port sluice does not own");
        assert!(b.starts_with("SSH-2.0-kernel"), "{b}");
        // And sluice serves its own port meanwhile.
        let r = Client::connect_to(SocketAddr::from((sluice_ip, 8080))).get("/mine");
        assert_eq!(r.status, 200);
        assert_eq!(r.header("x-origin"), Some("peer"));
    });
    assert_eq!(kernel.join().unwrap().unwrap(), 2, "the kernel served both connections");
    let stats = net.stats_until(Duration::from_secs(3), |s| s.get("xdp.queue_0.rx_packets") > 0);
    assert_eq!(stats.get("http.ingress.downstream_rq_2xx"), 1, "{stats:?}");
}
