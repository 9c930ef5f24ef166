//! Original destination in xdp mode: connections to addresses that are not sluice's
//! `--address` but are routed to it (`--intercept 10.99.46.0/24`) keep their
//! destination. A `use_original_dst` listener on 15001 (which takes intercepted
//! connections to ports without a listener, as iptables REDIRECT would send them) hands
//! each to the listener of its original destination: the exact `ip:port` one, else the
//! `0.0.0.0:port` one (both `bind_to_port: false`); a port with no listener stays on
//! the 15001 listener's own chain. A reload that would move the 15001 listener is
//! refused and the running config keeps serving.

use crate::xdp_support;

use std::net::SocketAddr;
use std::time::Duration;

use sluice_datapath::testnet;
use sluice_e2e::http_client::Client;
use sluice_e2e::http_origin::HttpOrigin;
use xdp_support::{bootstrap, hcm, listener, tcp_proxy, XdpNet};

#[test]
fn intercepted_connections_reach_the_listener_of_their_original_destination() {
    if !testnet::require_root("intercepted_connections_reach_the_listener_of_their_original_destination") {
        return;
    }
    let net = XdpNet::new(45, 1);
    // The peer routes the intercepted prefix through sluice.
    net.hosts.right.exec("ip", &["route", "add", "10.99.46.0/24", "via", &net.sluice_ip().to_string()]).unwrap();
    let origin = net.in_peer(|| HttpOrigin::start_on(&format!("{}:0", net.peer_ip()), "peer"));
    let listeners = [
        listener(
            "outbound",
            SocketAddr::from(([0, 0, 0, 0], 15001)),
            "    use_original_dst: true\n",
            &tcp_proxy("outbound"),
        ),
        listener("svc", SocketAddr::from(([0, 0, 0, 0], 8080)), "    bind_to_port: false\n", &hcm("svc")),
        listener("exact", SocketAddr::from(([10, 99, 46, 7], 8080)), "    bind_to_port: false\n", &hcm("exact")),
    ]
    .concat();
    let yaml = bootstrap(&listeners, origin.addr);
    let mut sluice =
        net.start_sluice(&yaml, &["--concurrency", "1", "--xdp-mode", "skb", "--intercept", "10.99.46.0/24"]);
    sluice.wait_for_log("use_original_dst listener takes intercepted connections", Duration::from_secs(2));

    net.in_peer(|| {
        // 0.0.0.0:8080 (bind_to_port false) through the hand-off.
        let r = Client::connect_to("10.99.46.5:8080".parse().unwrap()).get("/virtual");
        assert_eq!(r.status, 200, "{}", r.text());
        // The exact ip:port listener wins over 0.0.0.0:8080.
        let r = Client::connect_to("10.99.46.7:8080".parse().unwrap()).get("/exact");
        assert_eq!(r.status, 200, "{}", r.text());
        // No listener for port 7000: the outbound listener's own tcp_proxy chain carries
        // it (to the HTTP origin, byte for byte).
        let r = Client::connect_to("10.99.46.9:7000".parse().unwrap()).get("/passthrough");
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(r.text().starts_with("GET /passthrough\n"), "{}", r.text());
    });
    let stats = net.stats_until(Duration::from_secs(3), |s| s.get("tcp.outbound.downstream_cx_total") == 1);
    assert_eq!(stats.get("http.svc.downstream_rq_2xx"), 1, "{stats:?}");
    assert_eq!(stats.get("http.exact.downstream_rq_2xx"), 1, "{stats:?}");
    assert_eq!(stats.get("tcp.outbound.downstream_cx_total"), 1, "{stats:?}");
    let seen: Vec<String> = origin.seen().iter().map(|s| s.path.clone()).collect();
    assert_eq!(seen, ["/virtual", "/exact", "/passthrough"]);

    // A reload cannot move the listener that takes intercepted connections (the
    // stacks redirect to its socket): refused with the reason, the old config serves on.
    std::fs::write(&sluice.config_path, yaml.replace("port_value: 15001", "port_value: 15006")).unwrap();
    sluice.signal("HUP");
    sluice.wait_for_log("configuration reload rejected", Duration::from_secs(5));
    assert!(sluice.log().contains("(0.0.0.0:15001 -> 0.0.0.0:15006)"), "{}", sluice.log());
    let r = net.in_peer(|| Client::connect_to("10.99.46.5:8080".parse().unwrap()).get("/after-refused-reload"));
    assert_eq!(r.status, 200, "{}", r.text());
}
