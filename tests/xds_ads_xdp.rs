//! xDS over ADS on the xdp datapath (AF_XDP + the per-core smoltcp stacks): sluice in
//! xdp mode on a veth (tests/xdp_support), its listeners, clients, origins and EDS
//! endpoints all on the datapath, state of the world and delta.
//!
//! The control plane (tests/xds_ads/control_plane.py) runs in sluice's namespace on
//! 127.0.0.1, and the ADS stream reaches it from the main thread over a kernel socket,
//! as the admin server does: the management network, not the datapath. A listener added
//! over ADS serves on the userspace stack (no kernel socket listens on its port: the
//! XDP program's port filter follows LDS, as it follows a SIGHUP reload); an EDS change
//! under a client loop in the peer namespace moves traffic to the new endpoint with no
//! failed request; a second listener added by a later LDS update serves on its new port.

use crate::xdp_support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use sluice_datapath::testnet;
use sluice_e2e::http_client::Client;
use sluice_e2e::http_origin::HttpOrigin;
use xdp_support::XdpNet;

use crate::xds_ads::{eds_cluster, endpoints, listener_on, ControlPlane};

const PORT: u16 = 8080;
const SECOND_PORT: u16 = 8081;

/// The ADS bootstrap of tests/xds_ads.rs with the admin on xdp_support's port.
fn bootstrap(xds_port: u16, api_type: &str) -> String {
    crate::xds_ads::bootstrap(xdp_support::ADMIN_PORT, xds_port, api_type)
}

/// A listener on `0.0.0.0:port` (every address the datapath owns) to cluster `web`.
fn listener(name: &str, port: u16) -> serde_json::Value {
    let mut l = listener_on(name, port, "web");
    l["address"]["socket_address"]["address"] = json!("0.0.0.0");
    l
}

/// `web`'s endpoint: `origin` (in the peer namespace).
fn web_at(origin: SocketAddr) -> serde_json::Value {
    let mut e = endpoints("web", origin.port());
    e["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]["address"] =
        json!(origin.ip().to_string());
    e
}

/// GET `path` from the peer namespace until `origin` answers.
fn wait_origin(net: &XdpNet, addr: SocketAddr, origin: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let got = net.in_peer(|| {
            let s = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(500));
            s.ok().and_then(|_| {
                std::panic::catch_unwind(|| {
                    Client::connect_to(addr).get("/probe").header("x-origin").map(str::to_string)
                })
                .ok()
                .flatten()
            })
        });
        if got.as_deref() == Some(origin) {
            return;
        }
        assert!(Instant::now() < deadline, "{addr} never answered from {origin} (last: {got:?})");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn ads_on_xdp(api_type: &str, tag: u8) {
    let net = XdpNet::new(tag, 1);
    let (a, b) = net.in_peer(|| {
        let ip = net.peer_ip();
        (HttpOrigin::start_on(&format!("{ip}:0"), "a"), HttpOrigin::start_on(&format!("{ip}:0"), "b"))
    });
    let mut cp = net.in_sluice_ns(|| ControlPlane::start(sluice_e2e::free_port()));
    let snap = |v: &str, listeners: Vec<serde_json::Value>, origin: SocketAddr| json!({"version": v, "listeners": listeners, "clusters": [eds_cluster("web")], "endpoints": [web_at(origin)]});
    cp.push(&snap("1", vec![listener("ingress", PORT)], a.addr));
    let _sluice = net.start_sluice(&bootstrap(cp.port, api_type), &["--concurrency", "1", "--xdp-mode", "skb"]);

    // The listener from LDS serves on the datapath; no kernel socket listens on its port.
    let addr = SocketAddr::from((net.sluice_ip(), PORT));
    wait_origin(&net, addr, "a");
    let ss = net.kernel_listeners();
    assert!(!ss.contains(&format!(":{PORT} ")), "the kernel listens on the LDS port:\n{ss}");
    let stats = net.stats();
    assert_eq!(stats.get("control_plane.connected_state"), 1, "{stats:?}");
    assert!(stats.get("listener_manager.lds.update_success") >= 1, "{stats:?}");

    // An EDS change under a client loop: traffic moves to b, no request fails.
    let (stop, failed, done) = (AtomicBool::new(false), AtomicUsize::new(0), AtomicUsize::new(0));
    std::thread::scope(|s| {
        s.spawn(|| {
            net.in_peer(|| {
                while !stop.load(Ordering::Relaxed) {
                    let ok = std::panic::catch_unwind(|| Client::connect_to(addr).get("/loop").status == 200);
                    if !matches!(ok, Ok(true)) {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        });
        std::thread::sleep(Duration::from_millis(300));
        cp.push(&snap("2", vec![listener("ingress", PORT)], b.addr));
        let deadline = Instant::now() + Duration::from_secs(15);
        while b.requests() < 20 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        stop.store(true, Ordering::Relaxed);
    });
    assert!(b.requests() >= 20, "b got {} requests after the EDS update", b.requests());
    assert_eq!(failed.load(Ordering::Relaxed), 0, "of {} requests across the EDS update", done.load(Ordering::Relaxed));

    // A second listener over LDS: the port filter takes its port, the stack serves it.
    cp.push(&snap("3", vec![listener("ingress", PORT), listener("second", SECOND_PORT)], b.addr));
    wait_origin(&net, SocketAddr::from((net.sluice_ip(), SECOND_PORT)), "b");
    assert!(!net.kernel_listeners().contains(&format!(":{SECOND_PORT} ")), "the new listener is a kernel socket");
    let stats = net.stats_until(Duration::from_secs(3), |s| s.get("http.second.downstream_rq_2xx") >= 1);
    assert!(stats.get("http.second.downstream_rq_2xx") >= 1, "{stats:?}");
}

/// Both protocols in turn, on the one test network this module owns (10.99.49.0/24).
#[test]
fn ads_listener_and_eds_change_on_the_xdp_datapath_sotw_and_delta() {
    if !testnet::require_root("ads_listener_and_eds_change_on_the_xdp_datapath_sotw_and_delta") {
        return;
    }
    ads_on_xdp("GRPC", 49);
    ads_on_xdp("DELTA_GRPC", 49);
}
