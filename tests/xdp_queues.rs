//! Two queues, two workers: on a 2-queue veth in native mode the peer spreads flows over
//! both of sluice's queues, so both workers serve connections; upstream replies that
//! the peer sends to the other queue are handed to the core that owns their port range,
//! and every hand-off shows in /stats.

use crate::xdp_support;

use std::net::SocketAddr;
use std::time::Duration;

use sluice_datapath::testnet;
use sluice_e2e::http_client::Client;
use sluice_e2e::http_origin::HttpOrigin;
use xdp_support::{http_config, Stats, XdpNet};

#[test]
fn two_queues_both_serve_and_hand_offs_are_counted() {
    if !testnet::require_root("two_queues_both_serve_and_hand_offs_are_counted") {
        return;
    }
    let net = XdpNet::new(43, 2);
    let origin = net.in_peer(|| HttpOrigin::start_on(&format!("{}:0", net.peer_ip()), "peer"));
    let yaml = http_config(SocketAddr::from(([0, 0, 0, 0], 8080)), origin.addr);
    let mut sluice = net.start_sluice(&yaml, &["--queues", "0,1", "--xdp-mode", "drv"]);

    // 64 connections of 10 requests: the peer hashes each onto one of its two transmit
    // queues, which are sluice's two receive queues.
    let proxy_addr = SocketAddr::from((net.sluice_ip(), 8080));
    net.in_peer(|| {
        std::thread::scope(|s| {
            for t in 0..64 {
                s.spawn(move || {
                    let mut c = Client::connect_to(proxy_addr);
                    for i in 0..10 {
                        let r = c.get(&format!("/q/{t}/{i}"));
                        assert_eq!(r.status, 200, "client {t} request {i}: {}", r.text());
                    }
                });
            }
        })
    });
    assert_eq!(origin.requests(), 640);

    let sent = |s: &Stats| s.get("xdp.queue_0.handoff_sent") + s.get("xdp.queue_1.handoff_sent");
    let received = |s: &Stats| s.get("xdp.queue_0.handoff_received") + s.get("xdp.queue_1.handoff_received");
    let stats = net.stats_until(Duration::from_secs(5), |s| {
        s.get("http.ingress.downstream_rq_2xx") == 640 && sent(s) > 0 && sent(s) == received(s)
    });
    assert_eq!(stats.get("http.ingress.downstream_rq_2xx"), 640, "{stats:?}");
    for q in 0..2 {
        let rx = stats.get(&format!("xdp.queue_{q}.rx_packets"));
        let tx = stats.get(&format!("xdp.queue_{q}.tx_packets"));
        assert!(rx > 100 && tx > 100, "queue {q} carried traffic (rx {rx}, tx {tx}): {stats:?}");
    }
    assert!(sent(&stats) > 0, "upstream replies on the other queue were handed over: {stats:?}");
    assert_eq!(sent(&stats), received(&stats), "every hand-off arrived: {stats:?}");
    assert_eq!(stats.get("xdp.queue_0.handoff_dropped") + stats.get("xdp.queue_1.handoff_dropped"), 0);
    // Both workers accepted downstream connections (whose SYNs their queues received)
    // and opened upstream ones.
    let (a0, a1) = (stats.get("xdp.queue_0.accepts"), stats.get("xdp.queue_1.accepts"));
    assert!(a0 > 0 && a1 > 0 && a0 + a1 == 64, "accepts per queue: {a0} + {a1}");
    assert!(stats.get("xdp.queue_0.connects") > 0 && stats.get("xdp.queue_1.connects") > 0, "{stats:?}");

    sluice.signal("TERM");
    assert!(sluice.wait_exit(Duration::from_secs(15)).success(), "{}", sluice.log());
    assert!(net.wait_detached(Duration::from_secs(5)));
}
