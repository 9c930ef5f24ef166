//! Outlier detection end to end, through tcp_proxy, on both datapaths (kernel sockets
//! on loopback and smol stacks on an in-memory network, see `sluice_e2e::backend`): a
//! host whose connects fail is ejected after `consecutive_local_origin_failure` (split)
//! or `consecutive_5xx` (connect failures count as 503 without the split) failures, and
//! returns after `base_ejection_time`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use sluice_e2e::backend::{Backend, Net};
use sluice_e2e::config::{endpoint_at, tcp_proxy_endpoints_at};
use sluice_e2e::inproc::InProcessProxy;
use sluice_e2e::on_both_backends;
use sluice_e2e::origin::{echoes, TcpOrigin};

/// A one-worker tcp_proxy to hosts `a` and `b` (round robin) with `outlier` detection.
fn start(net: &Net, outlier: &str, a: SocketAddr, b: SocketAddr) -> (InProcessProxy, SocketAddr) {
    let listen = net.proxy_listen_addr();
    let endpoints = endpoint_at(a) + &endpoint_at(b);
    let yaml = tcp_proxy_endpoints_at(listen, &endpoints, &format!("    outlier_detection: {outlier}"), "");
    (net.start_proxy(&yaml, 1), listen)
}

/// One connection through the proxy: true when it reached a live upstream.
fn echo_once(net: &Net, p: &InProcessProxy, listen: SocketAddr) -> bool {
    echoes(net.connect(p.target(listen)))
}

/// Eject a dead host, bring it up, and measure when it serves again.
fn eject_and_return(backend: Backend, outlier: &str, failures_to_eject: usize, base: Duration) {
    let net = Net::new(backend);
    let a_addr = net.refused_addr();
    let b = TcpOrigin::echo_on(net.listen());
    let (p, listen) = start(&net, outlier, a_addr, b.addr);
    // Round robin alternates: every other connection hits dead A until it is ejected.
    let mut failed = 0;
    let mut ejected_at = None;
    for _ in 0..(4 * failures_to_eject + 20) {
        if echo_once(&net, &p, listen) {
            continue;
        }
        failed += 1;
        ejected_at = Some(Instant::now());
    }
    // The ejection is decided on the monitor thread as soon as the threshold is hit;
    // allow one more failure should the next round-robin turn to A race it.
    assert!(
        (failures_to_eject..=failures_to_eject + 1).contains(&failed),
        "{failed} failures before the ejection (threshold {failures_to_eject})"
    );
    let ejected_at = ejected_at.unwrap();
    // Every connection now goes to B.
    for _ in 0..20 {
        assert!(echo_once(&net, &p, listen));
    }
    // A is up now, but stays ejected for base_ejection_time (checked on each interval).
    let a = TcpOrigin::echo_on(net.relisten(a_addr));
    let start = Instant::now();
    while a.accepted() == 0 {
        assert!(start.elapsed() < base * 4 + Duration::from_secs(2), "A never came back");
        assert!(echo_once(&net, &p, listen), "no connection fails once A is back");
        std::thread::sleep(Duration::from_millis(10));
    }
    let back = ejected_at.elapsed();
    assert!(back >= base - Duration::from_millis(50), "back after {back:?}, before {base:?}");
    assert!(back <= base + Duration::from_millis(1500), "back after {back:?}");
}

fn local_origin_failures_eject_a_host_until_base_ejection_time(backend: Backend) {
    eject_and_return(
        backend,
        "{ split_external_local_origin_errors: true, consecutive_local_origin_failure: 3, max_ejection_percent: 50, interval: 0.1s, base_ejection_time: 1s }",
        3,
        Duration::from_secs(1),
    );
}

fn without_the_split_connect_failures_eject_through_consecutive_5xx(backend: Backend) {
    eject_and_return(
        backend,
        "{ consecutive_5xx: 4, max_ejection_percent: 50, interval: 0.1s, base_ejection_time: 1s }",
        4,
        Duration::from_secs(1),
    );
}

fn max_ejection_percent_keeps_the_host_in_rotation(backend: Backend) {
    // Default max_ejection_percent (10 %) cannot eject one of two hosts.
    let net = Net::new(backend);
    let b = TcpOrigin::echo_on(net.listen());
    let outlier = "{ consecutive_5xx: 2, interval: 0.1s, base_ejection_time: 5s }";
    let (p, listen) = start(&net, outlier, net.refused_addr(), b.addr);
    let failed = (0..20).filter(|_| !echo_once(&net, &p, listen)).count();
    assert_eq!(failed, 10, "A keeps getting every other connection");
    assert_eq!(b.accepted(), 10);
}

on_both_backends!(
    local_origin_failures_eject_a_host_until_base_ejection_time,
    without_the_split_connect_failures_eject_through_consecutive_5xx,
    max_ejection_percent_keeps_the_host_in_rotation,
);
