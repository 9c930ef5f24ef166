//! Outlier detection end to end, through tcp_proxy: a host whose connects fail is
//! ejected after `consecutive_local_origin_failure` (split) or `consecutive_5xx`
//! (connect failures count as 503 without the split) failures, and returns after
//! `base_ejection_time`.

use std::time::{Duration, Instant};

use sluice_e2e::config::{endpoint, tcp_proxy};
use sluice_e2e::free_port;
use sluice_e2e::proxy::Proxy;
use sluice_e2e::upstream::{echo_once, Backend};

fn config(listen: u16, outlier: &str, ports: &[u16]) -> String {
    let endpoints: String = ports.iter().map(|p| endpoint(*p)).collect();
    tcp_proxy(listen, &endpoints, &format!("    outlier_detection: {outlier}"), "")
}

/// Eject a dead host, revive it at once, and measure when it serves again.
fn eject_and_return(outlier: &str, failures_to_eject: usize, base: Duration) {
    let mut a = Backend::start();
    let b = Backend::start();
    a.kill();
    let port = free_port();
    let _p = Proxy::start(&config(port, outlier, &[a.port(), b.port()]), &["--concurrency", "1"]);
    // Round robin alternates: every other connection hits dead A until it is ejected.
    let mut failed = 0;
    let mut ejected_at = None;
    for _ in 0..(4 * failures_to_eject + 20) {
        if echo_once(port) {
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
        assert!(echo_once(port));
    }
    // A is back up, but stays ejected for base_ejection_time (checked on each interval).
    a.revive();
    let start = Instant::now();
    while a.accepted() == 0 {
        assert!(start.elapsed() < base * 4 + Duration::from_secs(2), "A never came back");
        assert!(echo_once(port), "no connection fails once A is back");
        std::thread::sleep(Duration::from_millis(10));
    }
    let back = ejected_at.elapsed();
    assert!(back >= base - Duration::from_millis(50), "back after {back:?}, before {base:?}");
    assert!(back <= base + Duration::from_millis(1500), "back after {back:?}");
}

#[test]
fn local_origin_failures_eject_a_host_until_base_ejection_time() {
    eject_and_return(
        "{ split_external_local_origin_errors: true, consecutive_local_origin_failure: 3, max_ejection_percent: 50, interval: 0.1s, base_ejection_time: 1s }",
        3,
        Duration::from_secs(1),
    );
}

#[test]
fn without_the_split_connect_failures_eject_through_consecutive_5xx() {
    eject_and_return(
        "{ consecutive_5xx: 4, max_ejection_percent: 50, interval: 0.1s, base_ejection_time: 1s }",
        4,
        Duration::from_secs(1),
    );
}

#[test]
fn max_ejection_percent_keeps_the_host_in_rotation() {
    // Default max_ejection_percent (10 %) cannot eject one of two hosts.
    let mut a = Backend::start();
    let b = Backend::start();
    a.kill();
    let port = free_port();
    let _p = Proxy::start(
        &config(port, "{ consecutive_5xx: 2, interval: 0.1s, base_ejection_time: 5s }", &[a.port(), b.port()]),
        &["--concurrency", "1"],
    );
    let failed = (0..20).filter(|_| !echo_once(port)).count();
    assert_eq!(failed, 10, "A keeps getting every other connection");
    drop(b);
}
