//! xdp mode with `--busy-poll`, end to end on a veth (native XDP): the AF_XDP socket
//! carries the busy-poll options (sluice logs them as `getsockopt` reads them back),
//! HTTP flows through it (keep-alive and a new connection per request), and the worker
//! spins on its queue instead of sleeping (CPU time while idle), where without the flag
//! it sleeps.

use crate::xdp_support;

use std::net::SocketAddr;
use std::time::Duration;

use sluice_datapath::testnet;
use sluice_e2e::http_client::Client;
use sluice_e2e::http_origin::HttpOrigin;
use xdp_support::{http_config, XdpNet};

const PROXY_PORT: u16 = 8080;

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = &s[s.rfind(')').unwrap() + 2..];
    let f: Vec<u64> = rest.split_whitespace().skip(11).take(2).map(|v| v.parse().unwrap()).collect();
    f[0] + f[1]
}

#[test]
fn busy_poll_sets_the_socket_options_and_serves() {
    if !testnet::require_root("busy_poll_sets_the_socket_options_and_serves") {
        return;
    }
    let net = XdpNet::new(46, 1);
    let origin = net.in_peer(|| HttpOrigin::start_on(&format!("{}:0", net.peer_ip()), "peer"));
    let proxy_addr = SocketAddr::from((net.sluice_ip(), PROXY_PORT));
    let yaml = http_config(SocketAddr::from(([0, 0, 0, 0], PROXY_PORT)), origin.addr);

    // First without --busy-poll: an idle worker sleeps in poll(2).
    let mut sluice = net.start_sluice(&yaml, &["--concurrency", "1", "--xdp-mode", "drv"]);
    let r = net.in_peer(|| Client::connect_to(proxy_addr).get("/first"));
    assert_eq!(r.status, 200);
    assert!(!sluice.log().contains("busy polling"), "{}", sluice.log());
    let before = cpu_ticks(sluice.pid());
    std::thread::sleep(Duration::from_secs(2));
    let idle = cpu_ticks(sluice.pid()) - before;
    assert!(idle < 10, "an idle sluice without --busy-poll used {idle} ticks in 2 s");
    sluice.signal("TERM");
    assert!(sluice.wait_exit(Duration::from_secs(15)).success(), "{}", sluice.log());
    assert!(net.wait_detached(Duration::from_secs(5)), "XDP program left attached");

    let mut sluice = net.start_sluice(&yaml, &["--concurrency", "1", "--xdp-mode", "drv", "--busy-poll"]);
    sluice.wait_for_log(
        "AF_XDP busy polling: SO_PREFER_BUSY_POLL=1 SO_BUSY_POLL=20 SO_BUSY_POLL_BUDGET=64",
        Duration::from_secs(5),
    );

    net.in_peer(|| {
        let mut c = Client::connect_to(proxy_addr);
        for i in 0..100 {
            let r = c.get(&format!("/ka/{i}"));
            assert_eq!(r.status, 200, "keep-alive request {i}: {}", r.text());
            assert!(r.text().starts_with(&format!("GET /ka/{i}\n")), "{}", r.text());
        }
        for i in 0..20 {
            let r = Client::connect_to(proxy_addr).get(&format!("/new/{i}"));
            assert_eq!(r.status, 200, "request {i} on a new connection");
        }
    });
    assert_eq!(origin.requests(), 121);

    // Idle, the worker keeps polling its queue: sluice burns CPU (a sleeping worker
    // takes next to none: one stats publication a second).
    let before = cpu_ticks(sluice.pid());
    std::thread::sleep(Duration::from_secs(2));
    let spent = cpu_ticks(sluice.pid()) - before;
    assert!(spent >= 10, "an idle busy-polling sluice used only {spent} ticks in 2 s");

    sluice.signal("TERM");
    assert!(sluice.wait_exit(Duration::from_secs(15)).success(), "{}", sluice.log());
    assert!(net.wait_detached(Duration::from_secs(5)), "XDP program left attached");
}
