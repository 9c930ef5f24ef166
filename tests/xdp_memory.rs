//! xdp mode end to end, memory at scale: an idle keep-alive connection holds no receive
//! or send buffer storage. 2,000 clients in the peer namespace each fetch 64 KiB through
//! sluice (one worker, default 128 KiB + 128 KiB buffers) and then stay connected and
//! idle; the stack's `buffer_bytes` gauge reads 0 and sluice's RSS grows by far less
//! per connection than the 64 KiB each one's send buffer carried. With buffers held for
//! a connection's whole life (as before lazy buffers) every idle connection would keep
//! at least the 64 KiB of send ring its response was written through.

use crate::xdp_support;

use std::net::SocketAddr;
use std::time::Duration;

use sluice_datapath::testnet;
use sluice_e2e::http_client::Client;
use sluice_e2e::http_origin::HttpOrigin;
use xdp_support::{http_config, XdpNet};

const PROXY_PORT: u16 = 8080;
const CONNECTIONS: usize = 2000;
const THREADS: usize = 8;
const BODY: usize = 64 * 1024;

/// sluice's resident set, in bytes.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("sluice's /proc status");
    assert!(status.starts_with("Name:\tsluice\n"), "PID {pid} is not sluice:\n{status}");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS");
    kib * 1024
}

/// `n` keep-alive clients, each with one 64 KiB response read, left open.
fn open_and_fetch(net: &XdpNet, proxy: SocketAddr, n: usize) -> Vec<Client> {
    net.in_peer(|| {
        std::thread::scope(|s| {
            let workers: Vec<_> = (0..THREADS)
                .map(|t| {
                    s.spawn(move || {
                        (0..n / THREADS)
                            .map(|i| {
                                let mut c = Client::connect_to(proxy);
                                let r = c.get(&format!("/bytes/{BODY}"));
                                assert_eq!(r.status, 200, "client {t}/{i}");
                                assert_eq!(r.body.len(), BODY, "client {t}/{i}");
                                c
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            workers.into_iter().flat_map(|w| w.join().unwrap()).collect()
        })
    })
}

#[test]
fn idle_keepalive_connections_hold_no_buffers() {
    if !testnet::require_root("idle_keepalive_connections_hold_no_buffers") {
        return;
    }
    let net = XdpNet::new(48, 1);
    let origin = net.in_peer(|| HttpOrigin::start_on(&format!("{}:0", net.peer_ip()), "peer"));
    let proxy = SocketAddr::from((net.sluice_ip(), PROXY_PORT));
    let yaml = http_config(SocketAddr::from(([0, 0, 0, 0], PROXY_PORT)), origin.addr);
    let sluice = net.start_sluice(&yaml, &["--concurrency", "1", "--xdp-mode", "skb"]);

    // Warm-up (a few connections, closed again): the UMEM frames, the upstream pool and
    // the buffers that a handful of transfers in flight use are counted before.
    drop(open_and_fetch(&net, proxy, 10 * THREADS));
    let settled = net.stats_until(Duration::from_secs(20), |s| {
        s.get("http.ingress.downstream_cx_active") == 0 && s.get("xdp.queue_0.buffer_bytes") == 0
    });
    assert_eq!(settled.get("http.ingress.downstream_cx_active"), 0, "{settled:?}");
    let before = rss(sluice.pid());

    let clients = open_and_fetch(&net, proxy, CONNECTIONS);
    let stats = net.stats_until(Duration::from_secs(10), |s| {
        s.get("http.ingress.downstream_cx_active") == CONNECTIONS as i64
            && s.get("xdp.queue_0.connections") >= CONNECTIONS as i64
            && s.get("xdp.queue_0.buffer_bytes") == 0
    });
    assert_eq!(stats.get("http.ingress.downstream_cx_active"), CONNECTIONS as i64, "{stats:?}");
    assert!(stats.get("xdp.queue_0.connections") >= CONNECTIONS as i64, "{stats:?}");
    assert_eq!(stats.get("xdp.queue_0.buffer_bytes"), 0, "idle connections hold buffer storage: {stats:?}");
    assert_eq!(stats.get("xdp.queue_0.rx_no_buffer") + stats.get("xdp.queue_0.tx_no_buffer"), 0, "{stats:?}");
    let after = rss(sluice.pid());
    let per_connection = after.saturating_sub(before) / CONNECTIONS as u64;
    eprintln!("sluice RSS {before} -> {after} bytes: {per_connection} bytes per idle connection");
    assert!(
        per_connection <= 16 * 1024,
        "{per_connection} bytes per idle connection (RSS {before} -> {after}); the target is 16 KiB"
    );
    drop(clients);
}
