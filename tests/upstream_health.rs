//! Active health checks end to end, through tcp_proxy: a dead host is steered around
//! within two check intervals, and comes back after `healthy_threshold` passes (TCP
//! checks against the traffic port, HTTP checks against a separate health port).
//!
//! These run on the binary only: health checks are sent by the upstream monitor thread
//! over kernel sockets in kernel and xdp mode alike (see `upstream::monitor`), never
//! over a worker's datapath, so a smol-backend variant would test nothing more.

use std::time::{Duration, Instant};

use sluice_e2e::config::{endpoint, tcp_proxy};
use sluice_e2e::free_port;
use sluice_e2e::proxy::Proxy;
use sluice_e2e::upstream::{echo_once, Backend, HealthServer};

/// A tcp_proxy listener on `listen` to cluster `backend` with `endpoints` (YAML list
/// items) and `cluster_extra` (indented cluster fields).
fn config(listen: u16, cluster_extra: &str, endpoints: &str) -> String {
    tcp_proxy(listen, endpoints, cluster_extra, "")
}

fn endpoint_with_hc_port(port: u16, hc_port: u16) -> String {
    format!("        - endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }}, health_check_config: {{ port_value: {hc_port} }} }}\n")
}

/// Connect repeatedly until `n` consecutive connections succeed; returns when the run
/// started. Panics after `limit`.
fn until_all_succeed(port: u16, n: usize, limit: Duration) -> Instant {
    let start = Instant::now();
    let mut run_start = Instant::now();
    let mut run = 0;
    while run < n {
        assert!(start.elapsed() < limit, "connections still failing after {limit:?}");
        if echo_once(port) {
            if run == 0 {
                run_start = Instant::now();
            }
            run += 1;
        } else {
            run = 0;
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    run_start
}

/// Make connections until `backend` has accepted `more` new ones; returns the time.
fn until_backend_serves(port: u16, backend: &Backend, more: usize, limit: Duration) -> Duration {
    let start = Instant::now();
    let target = backend.accepted() + more;
    while backend.accepted() < target {
        assert!(start.elapsed() < limit, "backend not back within {limit:?}");
        echo_once(port);
        std::thread::sleep(Duration::from_millis(5));
    }
    start.elapsed()
}

const INTERVAL_MS: u64 = 300;

#[test]
fn tcp_health_check_steers_around_a_dead_host_and_lets_it_back() {
    let mut a = Backend::start();
    let b = Backend::start();
    let port = free_port();
    let hc = format!(
        "    health_checks:\n    - {{ timeout: 0.2s, interval: {}s, no_traffic_interval: {}s, unhealthy_threshold: 1, healthy_threshold: 2, tcp_health_check: {{}} }}",
        INTERVAL_MS as f64 / 1000.0,
        INTERVAL_MS as f64 / 1000.0,
    );
    let _p = Proxy::start(&config(port, &hc, &(endpoint(a.port()) + &endpoint(b.port()))), &["--concurrency", "2"]);
    // Both hosts passed their first check before the proxy started serving.
    for _ in 0..10 {
        assert!(echo_once(port));
    }
    assert!(a.accepted() > 0 && b.accepted() > 0, "round robin over both");
    // Host A dies. Within two intervals the health checker has failed it (threshold 1)
    // and every connection goes to B.
    a.kill();
    let killed = Instant::now();
    let ok_from = until_all_succeed(port, 30, Duration::from_secs(8));
    let steered = ok_from.saturating_duration_since(killed);
    assert!(steered <= Duration::from_millis(2 * INTERVAL_MS + 400), "took {steered:?} to steer around the dead host");
    // A comes back: after two passing checks it serves again.
    a.revive();
    let revived = Instant::now();
    until_backend_serves(port, &a, 3, Duration::from_secs(8));
    let back = revived.elapsed();
    assert!(back >= Duration::from_millis(INTERVAL_MS / 2), "back after {back:?}: before two checks could pass");
    assert!(back <= Duration::from_millis(4 * INTERVAL_MS + 1000), "back after {back:?}");
}

#[test]
fn http_health_check_follows_the_status_on_a_separate_port() {
    let a = Backend::start();
    let b = Backend::start();
    let (ha, hb) = (HealthServer::start(), HealthServer::start());
    let port = free_port();
    let hc = format!(
        "    health_checks:\n    - timeout: 0.5s\n      interval: {}s\n      no_traffic_interval: {}s\n      unhealthy_threshold: 2\n      healthy_threshold: 2\n      http_health_check: {{ path: /healthz }}",
        INTERVAL_MS as f64 / 1000.0,
        INTERVAL_MS as f64 / 1000.0,
    );
    let endpoints = endpoint_with_hc_port(a.port(), ha.port()) + &endpoint_with_hc_port(b.port(), hb.port());
    let _p = Proxy::start(&config(port, &hc, &endpoints), &["--concurrency", "2"]);
    assert!(ha.requests() >= 1 && hb.requests() >= 1, "checked before serving");
    for _ in 0..10 {
        assert!(echo_once(port));
    }
    assert!(a.accepted() > 0 && b.accepted() > 0);
    // A's health endpoint answers 503: one answer fails it (an active failure does not
    // wait for unhealthy_threshold), so A is out within two intervals.
    ha.set_status(503);
    let flipped = Instant::now();
    let deadline = flipped + Duration::from_millis(2 * INTERVAL_MS + 400);
    std::thread::sleep(deadline.saturating_duration_since(Instant::now()));
    let before = a.accepted();
    for _ in 0..30 {
        assert!(echo_once(port), "B serves everything");
    }
    assert_eq!(a.accepted(), before, "A still got connections while failing checks");
    // 200 again: back after healthy_threshold (2) passes.
    ha.set_status(200);
    let t = until_backend_serves(port, &a, 3, Duration::from_secs(8));
    assert!(t <= Duration::from_millis(4 * INTERVAL_MS + 1000), "back after {t:?}");
}

#[test]
fn a_cluster_without_healthy_hosts_at_start_still_serves_in_panic_mode() {
    // Both hosts fail their checks (health port closed) but the traffic port works:
    // with every host failed the cluster panics and uses them all, as Envoy does.
    let a = Backend::start();
    let dead_hc = free_port();
    let port = free_port();
    let hc = "    health_checks:\n    - { timeout: 0.2s, interval: 0.3s, unhealthy_threshold: 1, healthy_threshold: 1, tcp_health_check: {} }";
    // The first round fails (refused at once), so the proxy starts serving right away.
    let _p = Proxy::start(&config(port, hc, &endpoint_with_hc_port(a.port(), dead_hc)), &["--concurrency", "1"]);
    for _ in 0..5 {
        assert!(echo_once(port), "panic mode routes to the failed host");
    }
    assert_eq!(a.accepted(), 5);
}
