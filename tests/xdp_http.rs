//! xdp mode end to end, HTTP: sluice on an AF_XDP queue of a veth, clients and the
//! origin in the peer namespace. Keep-alive (200 requests on one connection), 32
//! parallel clients × 20 requests, no kernel socket listening on the proxy port, the
//! datapath counters in /stats, a SIGHUP reload that adds a listener on a new port, a
//! clean drain on SIGTERM
//! and the XDP program gone after a normal exit and after SIGKILL.

use crate::xdp_support;

use std::net::SocketAddr;
use std::time::Duration;

use sluice_datapath::testnet;
use sluice_e2e::http_client::Client;
use sluice_e2e::http_origin::HttpOrigin;
use xdp_support::{bootstrap, hcm, http_config, listener, XdpNet};

const PROXY_PORT: u16 = 8080;
const SECOND_PORT: u16 = 8081;

#[test]
fn http_through_xdp_mode() {
    if !testnet::require_root("http_through_xdp_mode") {
        return;
    }
    let net = XdpNet::new(40, 1);
    let origin = net.in_peer(|| HttpOrigin::start_on(&format!("{}:0", net.peer_ip()), "peer"));
    let proxy_addr = SocketAddr::from((net.sluice_ip(), PROXY_PORT));
    let yaml = http_config(SocketAddr::from(([0, 0, 0, 0], PROXY_PORT)), origin.addr);
    let mut sluice = net.start_sluice(&yaml, &["--concurrency", "1", "--xdp-mode", "skb"]);
    assert!(net.xdp_attached(), "XDP program attached while sluice runs");

    // Keep-alive: 200 sequential requests on one connection.
    net.in_peer(|| {
        let mut c = Client::connect_to(proxy_addr);
        for i in 0..200 {
            let r = c.get(&format!("/seq/{i}"));
            assert_eq!(r.status, 200, "request {i}: {}", r.text());
            assert_eq!(r.header("x-origin"), Some("peer"));
            assert!(r.text().starts_with(&format!("GET /seq/{i}\n")), "{}", r.text());
        }
    });

    // 32 parallel clients, 20 requests each, each on its own connection.
    net.in_peer(|| {
        std::thread::scope(|s| {
            for t in 0..32 {
                s.spawn(move || {
                    let mut c = Client::connect_to(proxy_addr);
                    for i in 0..20 {
                        let r = c.get(&format!("/par/{t}/{i}"));
                        assert_eq!(r.status, 200, "client {t} request {i}");
                        assert!(r.text().contains(&format!("/par/{t}/{i}")));
                    }
                });
            }
        })
    });
    assert_eq!(origin.requests(), 200 + 32 * 20);

    // No kernel socket serves the proxy port: only the admin listens in the kernel.
    let ss = net.kernel_listeners();
    assert!(!ss.contains(&format!(":{PROXY_PORT} ")), "kernel listens on the proxy port:\n{ss}");
    assert!(ss.contains("127.0.0.1:9901"), "the admin is a kernel socket:\n{ss}");

    // The datapath counters reach /stats.
    let stats = net.stats_until(Duration::from_secs(5), |s| {
        s.get("http.ingress.downstream_rq_2xx") == 840 && s.get("xdp.queue_0.tx_packets") > 840
    });
    assert_eq!(stats.get("http.ingress.downstream_rq_2xx"), 840, "{stats:?}");
    let rx = stats.get("xdp.queue_0.rx_packets");
    assert!(rx > 840 && stats.get("xdp.queue_0.rx_bytes") > rx * 54, "{stats:?}");
    assert!(stats.get("xdp.queue_0.tx_packets") > 840, "{stats:?}");
    assert!(stats.has("xdp.queue_0.rx_invalid"), "{stats:?}");
    assert_eq!(stats.get("xdp.queue_0.rx_invalid"), 0);
    assert_eq!(stats.get("xdp.queue_0.handoff_sent"), 0, "one queue hands nothing off");
    let prom = net.in_sluice_ns(|| xdp_support::admin_get("/stats/prometheus")).expect("GET /stats/prometheus");
    assert!(prom.contains("# TYPE envoy_xdp_rx_packets counter\n"), "{prom}");
    let line = prom.lines().find(|l| l.starts_with("envoy_xdp_rx_packets{envoy_xdp_queue=\"queue_0\"} ")).expect(&prom);
    let value: i64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(value >= rx, "prometheus rx_packets {value} vs /stats {rx}");

    // SIGHUP with a second listener on port 8081: the workers open it on their stacks
    // and the XDP program's port filter takes the new port (without it the kernel
    // would answer the SYN with a reset); the first listener keeps serving.
    let second = listener("second", SocketAddr::from(([0, 0, 0, 0], SECOND_PORT)), "", &hcm("second"));
    let reloaded = bootstrap(
        &(listener("http", SocketAddr::from(([0, 0, 0, 0], PROXY_PORT)), "", &hcm("ingress")) + &second),
        origin.addr,
    );
    std::fs::write(&sluice.config_path, reloaded).unwrap();
    sluice.signal("HUP");
    sluice.wait_for_log("configuration reloaded", Duration::from_secs(5));
    let second_addr = SocketAddr::from((net.sluice_ip(), SECOND_PORT));
    let (r1, r2) = net
        .in_peer(|| (Client::connect_to(proxy_addr).get("/after-hup"), Client::connect_to(second_addr).get("/second")));
    assert_eq!(r1.status, 200, "{}", r1.text());
    assert_eq!(r2.status, 200, "{}", r2.text());
    assert!(r2.text().starts_with("GET /second\n"), "{}", r2.text());
    let stats = net.stats_until(Duration::from_secs(3), |s| s.get("http.second.downstream_rq_2xx") == 1);
    assert_eq!(stats.get("http.second.downstream_rq_2xx"), 1, "{stats:?}");
    assert!(!net.kernel_listeners().contains(&format!(":{SECOND_PORT} ")), "the new listener is not a kernel socket");

    // SIGTERM: drain, exit 0, and the program is detached.
    sluice.signal("TERM");
    let status = sluice.wait_exit(Duration::from_secs(15));
    assert!(status.success(), "exit status {status}:\n{}", sluice.log());
    let log = sluice.log();
    assert!(
        log.lines().any(|l| l.contains("xdp queue totals") && l.contains("rx_packets")),
        "the queue's totals are logged at exit:\n{log}"
    );
    assert!(net.wait_detached(Duration::from_secs(5)), "XDP program left behind after a clean exit");
}

#[test]
fn xdp_program_is_gone_after_sigkill() {
    if !testnet::require_root("xdp_program_is_gone_after_sigkill") {
        return;
    }
    let net = XdpNet::new(41, 1);
    let origin = net.in_peer(|| HttpOrigin::start_on(&format!("{}:0", net.peer_ip()), "peer"));
    let yaml = http_config(SocketAddr::from((net.sluice_ip(), PROXY_PORT)), origin.addr);
    let mut sluice = net.start_sluice(&yaml, &["--concurrency", "1"]);
    let proxy_addr = SocketAddr::from((net.sluice_ip(), PROXY_PORT));
    let r = net.in_peer(|| Client::connect_to(proxy_addr).get("/before-kill"));
    assert_eq!(r.status, 200);
    assert!(net.xdp_attached());
    sluice.signal("KILL");
    let status = sluice.wait_exit(Duration::from_secs(10));
    assert!(!status.success());
    assert!(net.wait_detached(Duration::from_secs(5)), "XDP program left behind after SIGKILL");
    // The interface is the kernel's again: nothing answers for sluice's address.
    let refused = net.in_peer(|| std::net::TcpStream::connect_timeout(&proxy_addr, Duration::from_millis(500)));
    assert!(refused.is_err(), "a connection succeeded after sluice died");
}
