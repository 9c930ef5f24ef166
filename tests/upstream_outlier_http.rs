//! Outlier detection fed by HTTP responses, end to end on both datapaths: the router
//! reports every response status and every local-origin result (connect failure,
//! timeout, reset) to the host's outlier monitor, as Envoy's router does
//! (`putHttpResponseCode`, `putResult`). Each detector ejects from HTTP outcomes —
//! consecutive_5xx, consecutive_gateway_failure, success_rate, failure_percentage
//! (external and local origin) — the ejection shows as `/failed_outlier_check` in
//! `/clusters`, and the per-host request counters there move.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use sluice_e2e::backend::{Backend, Net};
use sluice_e2e::config::{forward_all, ClusterAt};
use sluice_e2e::http_client::Client;
use sluice_e2e::http_origin::HttpOrigin;
use sluice_e2e::http_proxy::HttpProxy;
use sluice_e2e::on_both_backends;

/// `n` origins named `o0`, `o1`, ... on the test's network.
fn origins(net: &Net, n: usize) -> Vec<HttpOrigin> {
    (0..n).map(|i| HttpOrigin::serve(net.listen(), &format!("o{i}"))).collect()
}

/// A one-worker proxy to `hosts` (cluster `web`, round robin) with `outlier` detection.
fn proxy<'n>(net: &'n Net, hosts: &[SocketAddr], outlier: &str) -> HttpProxy<'n> {
    proxy_with_routes(net, hosts, outlier, &forward_all("web"))
}

fn proxy_with_routes<'n>(net: &'n Net, hosts: &[SocketAddr], outlier: &str, routes: &str) -> HttpProxy<'n> {
    let extra = if outlier.is_empty() { String::new() } else { format!("    outlier_detection: {outlier}\n") };
    let clusters = [ClusterAt { name: "web", endpoints: hosts, extra: &extra }];
    HttpProxy::start(net, routes, &clusters, "", "", 1)
}

fn addrs(origins: &[HttpOrigin]) -> Vec<SocketAddr> {
    origins.iter().map(|o| o.addr).collect()
}

/// `/clusters`' value of `field` for host `addr` of cluster `web`.
fn host_field(p: &HttpProxy, addr: SocketAddr, field: &str) -> String {
    let prefix = format!("web::{addr}::{field}::");
    let text = p.proxy().clusters();
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {prefix} in /clusters:\n{text}"))
        .to_string()
}

fn host_counter(p: &HttpProxy, addr: SocketAddr, field: &str) -> u64 {
    host_field(p, addr, field).parse().unwrap()
}

fn ejected(p: &HttpProxy, addr: SocketAddr) -> bool {
    host_field(p, addr, "health_flags") == "/failed_outlier_check"
}

/// Wait (at most 5 s) until `addr` shows `/failed_outlier_check`.
fn wait_ejected(p: &HttpProxy, addr: SocketAddr) {
    let start = Instant::now();
    while !ejected(p, addr) {
        assert!(start.elapsed() < Duration::from_secs(5), "{addr} never ejected:\n{}", p.proxy().clusters());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Send `n` GETs on one connection; the statuses with the origin that answered ("" for
/// a local reply).
fn send(p: &HttpProxy, n: usize) -> Vec<(u16, String)> {
    let mut c: Client = p.client();
    (0..n)
        .map(|_| {
            let r = c.get("/");
            (r.status, r.header("x-origin").unwrap_or("").to_string())
        })
        .collect()
}

fn an_origin_answering_503_is_ejected_under_consecutive_5xx(backend: Backend) {
    let net = Net::new(backend);
    let o = origins(&net, 2);
    o[0].force_status(Some(503));
    let hosts = addrs(&o);
    let p = proxy(
        &net,
        &hosts,
        "{ consecutive_5xx: 3, max_ejection_percent: 50, interval: 0.1s, base_ejection_time: 30s }",
    );
    let answers = send(&p, 30);
    let failed = answers.iter().filter(|(s, _)| *s == 503).count();
    // The ejection is decided on the monitor thread; the next round-robin turn may race it.
    assert!((3..=4).contains(&failed), "{failed} 503s before the ejection: {answers:?}");
    assert!(answers[20..].iter().all(|(s, o)| *s == 200 && o == "o1"), "{answers:?}");
    assert!(ejected(&p, hosts[0]), "{}", p.proxy().clusters());
    assert_eq!(host_field(&p, hosts[1], "health_flags"), "healthy");
    assert_eq!(p.counter("cluster.web.outlier_detection.ejections_enforced_consecutive_5xx"), 1);
    assert_eq!(p.counter("cluster.web.outlier_detection.ejections_active"), 1);
    // The per-host counters of /clusters moved with the responses.
    assert_eq!(host_counter(&p, hosts[0], "rq_error"), failed as u64);
    assert_eq!(host_counter(&p, hosts[0], "rq_total"), failed as u64);
    assert_eq!(host_counter(&p, hosts[0], "rq_success"), 0);
    assert_eq!(host_counter(&p, hosts[1], "rq_success"), 30 - failed as u64);
    assert_eq!(host_counter(&p, hosts[1], "rq_total"), 30 - failed as u64);
    assert_eq!(host_counter(&p, hosts[1], "rq_error"), 0);
    assert_eq!(host_counter(&p, hosts[1], "cx_total"), 1, "one pooled connection");
}

fn gateway_failures_eject_where_a_500_does_not(backend: Backend) {
    let net = Net::new(backend);
    let o = origins(&net, 3);
    // o0 answers 500 (a 5xx but no gateway error), o1 502, 503 and 504 in turn.
    o[0].force_status(Some(500));
    let gateway = [502, 503, 504];
    o[1].force_status(Some(gateway[0]));
    let hosts = addrs(&o);
    let p = proxy(
        &net,
        &hosts,
        "{ consecutive_5xx: 1000, consecutive_gateway_failure: 3, enforcing_consecutive_gateway_failure: 100, max_ejection_percent: 50, interval: 0.1s, base_ejection_time: 30s }",
    );
    let mut c = p.client();
    let mut from_o1 = Vec::new();
    for _ in 0..30 {
        let r = c.get("/");
        if r.header("x-origin") == Some("o1") {
            from_o1.push(r.status);
            o[1].force_status(Some(gateway[from_o1.len() % 3]));
        }
    }
    assert!((3..=4).contains(&from_o1.len()), "o1 answered {from_o1:?}");
    assert_eq!(&from_o1[..3], &gateway);
    assert!(ejected(&p, hosts[1]), "{}", p.proxy().clusters());
    assert_eq!(host_field(&p, hosts[0], "health_flags"), "healthy", "500s are not gateway failures");
    assert_eq!(p.counter("cluster.web.outlier_detection.ejections_enforced_consecutive_gateway_failure"), 1);
    assert_eq!(p.counter("cluster.web.outlier_detection.ejections_enforced_consecutive_5xx"), 0);
}

/// Three hosts, `o0` answering 503 to everything: enough requests in one interval for
/// the success-rate window, then wait for the detector's pass.
fn three_hosts_one_failing<'n>(net: &'n Net, o: &[HttpOrigin], outlier: &str) -> HttpProxy<'n> {
    o[0].force_status(Some(503));
    let p = proxy(net, &addrs(o), outlier);
    // Round robin: o0 answers every third request until the detector's pass ejects it.
    let failed = send(&p, 90).iter().filter(|(s, _)| *s == 503).count();
    assert!((10..=30).contains(&failed), "{failed} 503s");
    p
}

fn success_rate_ejects_the_host_far_below_the_mean(backend: Backend) {
    let net = Net::new(backend);
    let o = origins(&net, 3);
    let p = three_hosts_one_failing(
        &net,
        &o,
        "{ consecutive_5xx: 1000, interval: 1s, base_ejection_time: 30s, max_ejection_percent: 50, success_rate_minimum_hosts: 3, success_rate_request_volume: 10, success_rate_stdev_factor: 1000 }",
    );
    wait_ejected(&p, o[0].addr);
    // The pass that ejected o0 (until the next one, 1 s later): rates 0, 100, 100, mean
    // 66.6667, threshold mean − 1.0 × stdev (47.1405).
    let text = p.proxy().clusters();
    assert!(text.contains("web::outlier::success_rate_average::66.6667\n"), "{text}");
    assert!(text.contains("web::outlier::success_rate_ejection_threshold::19.5262\n"), "{text}");
    assert!(text.contains("web::outlier::local_origin_success_rate_average::-1\n"), "{text}");
    assert!(!ejected(&p, o[1].addr) && !ejected(&p, o[2].addr));
    assert_eq!(p.counter("cluster.web.outlier_detection.ejections_enforced_success_rate"), 1);
    assert!(send(&p, 40).iter().all(|(s, _)| *s == 200));
    // /clusters shows the success rate the detector computed for a host with the volume.
    let start = Instant::now();
    while host_field(&p, o[1].addr, "success_rate") != "100" {
        assert!(start.elapsed() < Duration::from_secs(4), "{}", p.proxy().clusters());
        std::thread::sleep(Duration::from_millis(20));
    }
    // o0: 0 in the pass that ejected it, -1 (not scored while ejected) after.
    let bad = host_field(&p, o[0].addr, "success_rate");
    assert!(bad == "0" || bad == "-1", "{bad}");
}

fn failure_percentage_ejects_the_host_above_the_threshold(backend: Backend) {
    let net = Net::new(backend);
    let o = origins(&net, 3);
    let p = three_hosts_one_failing(
        &net,
        &o,
        "{ consecutive_5xx: 1000, interval: 0.5s, base_ejection_time: 30s, max_ejection_percent: 50, failure_percentage_threshold: 50, enforcing_failure_percentage: 100, failure_percentage_minimum_hosts: 3, failure_percentage_request_volume: 10 }",
    );
    wait_ejected(&p, o[0].addr);
    assert!(!ejected(&p, o[1].addr) && !ejected(&p, o[2].addr));
    assert_eq!(p.counter("cluster.web.outlier_detection.ejections_enforced_failure_percentage"), 1);
    assert_eq!(p.counter("cluster.web.outlier_detection.ejections_enforced_success_rate"), 0);
}

fn local_origin_failure_percentage_ejects_a_host_that_refuses(backend: Backend) {
    let net = Net::new(backend);
    let o = origins(&net, 2);
    let dead = net.refused_addr();
    let hosts = [dead, o[0].addr, o[1].addr];
    let p = proxy(
        &net,
        &hosts,
        "{ split_external_local_origin_errors: true, consecutive_local_origin_failure: 1000, interval: 0.5s, base_ejection_time: 30s, max_ejection_percent: 50, failure_percentage_threshold: 50, enforcing_failure_percentage_local_origin: 100, failure_percentage_minimum_hosts: 3, failure_percentage_request_volume: 10 }",
    );
    let failed = send(&p, 90).iter().filter(|(s, _)| *s == 503).count() as u64;
    assert!((10..=30).contains(&failed), "{failed} 503s");
    wait_ejected(&p, dead);
    assert_eq!(p.counter("cluster.web.outlier_detection.ejections_enforced_local_origin_failure_percentage"), 1);
    assert_eq!(p.counter("cluster.web.outlier_detection.ejections_enforced_failure_percentage"), 0);
    assert_eq!(host_counter(&p, dead, "cx_connect_fail"), failed);
    assert_eq!(host_counter(&p, dead, "rq_error"), failed);
    assert_eq!(host_counter(&p, dead, "rq_total"), 0, "no request reached it");
}

fn local_origin_success_rate_ejects_a_host_that_refuses(backend: Backend) {
    let net = Net::new(backend);
    let o = origins(&net, 2);
    let dead = net.refused_addr();
    let hosts = [dead, o[0].addr, o[1].addr];
    let p = proxy(
        &net,
        &hosts,
        "{ split_external_local_origin_errors: true, consecutive_local_origin_failure: 1000, interval: 0.5s, base_ejection_time: 30s, max_ejection_percent: 50, success_rate_minimum_hosts: 3, success_rate_request_volume: 10, success_rate_stdev_factor: 1000 }",
    );
    let failed = send(&p, 90).iter().filter(|(s, _)| *s == 503).count();
    assert!((10..=30).contains(&failed), "{failed} 503s");
    wait_ejected(&p, dead);
    assert_eq!(p.counter("cluster.web.outlier_detection.ejections_enforced_local_origin_success_rate"), 1);
    assert_eq!(
        p.counter("cluster.web.outlier_detection.ejections_enforced_success_rate"),
        0,
        "HTTP answers were all 200"
    );
}

/// Connect failures are 503s to consecutive_5xx without the split, and only local-origin
/// failures with it; an HTTP 503 counts either way.
fn split_external_local_origin_errors_decides_what_consecutive_5xx_sees(backend: Backend) {
    let net = Net::new(backend);
    let o = origins(&net, 1);
    let outlier = |split: bool| {
        format!("{{ split_external_local_origin_errors: {split}, consecutive_5xx: 3, consecutive_local_origin_failure: 1000, max_ejection_percent: 50, interval: 0.1s, base_ejection_time: 30s }}")
    };
    for split in [false, true] {
        let dead = net.refused_addr();
        let p = proxy(&net, &[dead, o[0].addr], &outlier(split));
        let failed = send(&p, 20).iter().filter(|(s, _)| *s == 503).count();
        if split {
            assert_eq!(failed, 10, "with the split, connect failures never reach consecutive_5xx");
            assert!(!ejected(&p, dead));
        } else {
            assert!((3..=4).contains(&failed), "{failed} connect failures before the ejection");
            assert!(ejected(&p, dead));
        }
    }
    // With the split, HTTP 503s still eject under consecutive_5xx.
    let bad = origins(&net, 1);
    bad[0].force_status(Some(503));
    let p = proxy(&net, &[bad[0].addr, o[0].addr], &outlier(true));
    let failed = send(&p, 20).iter().filter(|(s, _)| *s == 503).count();
    assert!((3..=4).contains(&failed), "{failed} 503s before the ejection");
    assert!(ejected(&p, bad[0].addr));
}

fn per_host_counters_count_successes_errors_and_timeouts(backend: Backend) {
    let net = Net::new(backend);
    let o = origins(&net, 1);
    let host = o[0].addr;
    // `/delay/` requests time out after 300 ms.
    let routes = "- name: all\n  domains: [\"*\"]\n  routes:\n  - match: { prefix: \"/delay/\" }\n    route: { cluster: web, timeout: 0.3s }\n  - match: { prefix: \"/\" }\n    route: { cluster: web }\n";
    let p = proxy_with_routes(&net, &[host], "", routes);
    let mut c = p.client();
    for _ in 0..5 {
        assert_eq!(c.get("/").status, 200);
    }
    assert_eq!(c.get("/status/503").status, 503);
    assert_eq!(c.get("/status/404").status, 404);
    assert_eq!(c.get("/delay/3000/x").status, 504);
    assert_eq!(host_counter(&p, host, "rq_success"), 6, "2xx and 4xx are successes");
    assert_eq!(host_counter(&p, host, "rq_error"), 2, "the 503 and the timeout");
    assert_eq!(host_counter(&p, host, "rq_timeout"), 1);
    assert_eq!(host_counter(&p, host, "rq_total"), 8);
    assert_eq!(host_counter(&p, host, "cx_connect_fail"), 0);
    assert_eq!(host_counter(&p, host, "cx_total"), 1, "the timed-out connection is the pooled one");
    assert_eq!(host_counter(&p, host, "rq_active"), 0);
}

on_both_backends!(
    an_origin_answering_503_is_ejected_under_consecutive_5xx,
    gateway_failures_eject_where_a_500_does_not,
    success_rate_ejects_the_host_far_below_the_mean,
    failure_percentage_ejects_the_host_above_the_threshold,
    local_origin_failure_percentage_ejects_a_host_that_refuses,
    local_origin_success_rate_ejects_a_host_that_refuses,
    split_external_local_origin_errors_decides_what_consecutive_5xx_sees,
    per_host_counters_count_successes_errors_and_timeouts,
);

// Over HTTP/2 as well (prior knowledge; the origins stay HTTP/1.1).
sluice_e2e::over_http2!(
    an_origin_answering_503_is_ejected_under_consecutive_5xx,
    gateway_failures_eject_where_a_500_does_not,
    success_rate_ejects_the_host_far_below_the_mean,
    failure_percentage_ejects_the_host_above_the_threshold,
    local_origin_failure_percentage_ejects_a_host_that_refuses,
    local_origin_success_rate_ejects_a_host_that_refuses,
    split_external_local_origin_errors_decides_what_consecutive_5xx_sees,
    per_host_counters_count_successes_errors_and_timeouts,
);
