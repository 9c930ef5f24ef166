//! Router details Envoy users rely on, end to end on both datapaths:
//! `respect_expected_rq_timeout` (an egress Envoy's `x-envoy-expected-rq-timeout-ms`
//! becomes the route timeout), the request headers `x-envoy-retriable-status-codes`
//! and `x-envoy-retriable-header-names` (consumed, never sent upstream), hedging on
//! per-try timeouts (`hedge_policy`, `x-envoy-hedge-on-per-try-timeout`), retry budgets
//! (`circuit_breakers.thresholds[].retry_budget`), and `http.<stat_prefix>.rq_total`.
//!
//! Envoy's control headers count only on internal requests: the proxy here trusts the
//! client's network (`use_remote_address` with `internal_address_config`).

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use std::io::{Read, Write};

use sluice_e2e::backend::{Backend, Net};
use sluice_e2e::config::{forward_all, http_at, ClusterAt};
use sluice_e2e::conn::Acceptor;
use sluice_e2e::http_client::{Client, Response};
use sluice_e2e::http_origin::HttpOrigin;
use sluice_e2e::inproc::InProcessProxy;
use sluice_e2e::on_both_backends;

struct Proxy<'n> {
    net: &'n Net,
    proxy: InProcessProxy,
    listen: SocketAddr,
}

impl Proxy<'_> {
    fn request(&self, path: &str, headers: &[(&str, &str)]) -> Response {
        let conn = self.net.connect(self.proxy.target(self.listen)).expect("connect to the proxy");
        Client::over(conn).request("GET", path, headers, b"")
    }

    fn counter(&self, name: &str) -> i64 {
        self.proxy.stats().get(name).unwrap_or_else(|| panic!("no stat named {name}"))
    }
}

/// The client's own network as an internal range.
fn client_net(net: &Net) -> (String, u8) {
    match net.client_ip() {
        IpAddr::V4(ip) if ip.is_loopback() => ("127.0.0.0".into(), 8),
        ip => (ip.to_string(), 32),
    }
}

/// A one-worker proxy forwarding to `hosts` (cluster `web`) with `router` fields on the
/// router filter (e.g. `respect_expected_rq_timeout: true`); requests from the client's
/// network are internal.
fn start<'n>(net: &'n Net, hosts: &[SocketAddr], router: &str) -> Proxy<'n> {
    start_with(net, hosts, router, &forward_all("web"), "")
}

/// [`start`] with its own virtual hosts and extra fields of cluster `web`.
fn start_with<'n>(net: &'n Net, hosts: &[SocketAddr], router: &str, vhosts: &str, cluster_extra: &str) -> Proxy<'n> {
    let listen = net.proxy_listen_addr();
    let (prefix, len) = client_net(net);
    let hcm = format!(
        "use_remote_address: true\ninternal_address_config: {{ cidr_ranges: [{{ address_prefix: {prefix}, prefix_len: {len} }}] }}\n"
    );
    let clusters = [ClusterAt { name: "web", endpoints: hosts, extra: cluster_extra }];
    let mut yaml = http_at(listen, vhosts, &clusters, &hcm, "");
    if !router.is_empty() {
        let plain = "router.v3.Router }";
        assert!(yaml.contains(plain));
        yaml = yaml.replace(plain, &format!("router.v3.Router, {router} }}"));
    }
    Proxy { net, proxy: net.start_proxy(&yaml, 1), listen }
}

fn respect_expected_rq_timeout_makes_the_egress_timeout_the_route_timeout(backend: Backend) {
    let net = Net::new(backend);
    let origin = HttpOrigin::serve(net.listen(), "o");
    let expected = [("x-envoy-expected-rq-timeout-ms", "300")];
    let p = start(&net, &[origin.addr], "respect_expected_rq_timeout: true");
    let started = Instant::now();
    let r = p.request("/delay/3000/x", &expected);
    assert_eq!(r.status, 504, "{}", r.text());
    assert!(started.elapsed() < Duration::from_millis(2500), "timed out after {:?}", started.elapsed());
    assert_eq!(origin.seen()[0].header("x-envoy-expected-rq-timeout-ms"), Some("300"), "kept as it came");
    // Without it the header is Envoy's own: the route timeout (15 s by default) counts.
    let p = start(&net, &[origin.addr], "");
    let r = p.request("/delay/600/y", &expected);
    assert_eq!(r.status, 200);
    assert_eq!(origin.seen()[1].header("x-envoy-expected-rq-timeout-ms"), Some("15000"));
}

fn retriable_status_codes_and_header_names_come_from_request_headers(backend: Backend) {
    let net = Net::new(backend);
    let origin = HttpOrigin::serve(net.listen(), "o");
    let p = start(&net, &[origin.addr], "");
    // One retry at most; each case is answered by the one host, so the origin's request
    // count tells whether the proxy retried.
    let tries = |path: &str, headers: &[(&str, &str)]| {
        let before = origin.requests();
        let mut all = vec![("x-envoy-max-retries", "1")];
        all.extend_from_slice(headers);
        let r = p.request(path, &all);
        (r.status, origin.requests() - before)
    };
    let codes = ("x-envoy-retry-on", "retriable-status-codes");
    assert_eq!(tries("/status/418", &[codes, ("x-envoy-retriable-status-codes", "500, 418")]), (418, 2));
    assert_eq!(origin.seen().last().unwrap().header("x-envoy-retriable-status-codes"), None, "consumed");
    assert_eq!(tries("/status/418", &[codes]), (418, 1), "no codes given: not retried");
    assert_eq!(tries("/status/418", &[codes, ("x-envoy-retriable-status-codes", "419")]), (418, 1));
    // A response carrying a named header is retried (every answer has x-origin).
    let names = ("x-envoy-retry-on", "retriable-headers");
    assert_eq!(tries("/", &[names, ("x-envoy-retriable-header-names", "x-nothing, X-Origin")]), (200, 2));
    assert_eq!(origin.seen().last().unwrap().header("x-envoy-retriable-header-names"), None, "consumed");
    assert_eq!(tries("/", &[names, ("x-envoy-retriable-header-names", "x-nothing")]), (200, 1));
    assert_eq!(tries("/", &[names]), (200, 1), "no header names: not retried");
    assert_eq!(p.counter("cluster.web.upstream_rq_retry"), 2);
}

fn rq_total_counts_every_request_the_router_decodes(backend: Backend) {
    let net = Net::new(backend);
    let origin = HttpOrigin::serve(net.listen(), "o");
    let p = start(&net, &[origin.addr], "");
    for i in 0..5 {
        assert_eq!(p.request(&format!("/{i}"), &[]).status, 200);
    }
    assert_eq!(p.counter("http.ingress.rq_total"), 5);
    assert_eq!(p.counter("http.ingress.downstream_rq_total"), 5);
}

/// Four requests fail at the same moment and each may retry once, after a long
/// back-off: `(retries, retries refused by the circuit breaker)`.
fn concurrent_failures(backend: Backend, cluster_extra: &str) -> (i64, i64) {
    let net = Net::new(backend);
    let origin = HttpOrigin::serve(net.listen(), "o");
    let vhosts = "- name: all\n  domains: [\"*\"]\n  routes:\n  - match: { prefix: \"/\" }\n    route:\n      cluster: web\n      retry_policy: { retry_on: 5xx, num_retries: 1, retry_back_off: { base_interval: 2s, max_interval: 4s } }\n";
    let p = start_with(&net, &[origin.addr], "", vhosts, cluster_extra);
    let barrier = std::sync::Barrier::new(4);
    std::thread::scope(|s| {
        for i in 0..4 {
            let (p, barrier) = (&p, &barrier);
            s.spawn(move || {
                barrier.wait();
                assert_eq!(p.request(&format!("/delay/300/status/503?{i}"), &[]).status, 503);
            });
        }
    });
    (p.counter("cluster.web.upstream_rq_retry"), p.counter("cluster.web.upstream_rq_retry_overflow"))
}

fn a_retry_budget_limits_concurrent_retries(backend: Backend) {
    // Without a budget, max_retries (3 by default, here 10) lets every request retry.
    let cb = |budget: &str| format!("    circuit_breakers: {{ thresholds: [{{ max_retries: 10{budget} }}] }}\n");
    assert_eq!(concurrent_failures(backend, &cb("")), (4, 0));
    // 25 % of the 4 active requests is 1 retry at a time (min_retry_concurrency 1): the
    // others are refused while the first waits out its back-off.
    let (retries, overflow) = concurrent_failures(
        backend,
        &cb(", retry_budget: { budget_percent: { value: 25.0 }, min_retry_concurrency: 1 }"),
    );
    assert!(retries <= 2 && overflow >= 2, "{retries} retries, {overflow} refused");
    assert_eq!(retries + overflow, 4);
    // min_retry_concurrency is a floor under the percentage.
    let (retries, overflow) = concurrent_failures(
        backend,
        &cb(", retry_budget: { budget_percent: { value: 0.0 }, min_retry_concurrency: 4 }"),
    );
    assert_eq!((retries, overflow), (4, 0));
}

/// An origin whose first connection answers `first` after `first_ms` and later ones
/// `second` after `later_ms`.
fn two_speeds(net: &Net, first_ms: u64, later_ms: u64) -> Acceptor {
    Acceptor::start(net.listen(), move |mut c, id| {
        let _ = c.set_read_timeout(Some(Duration::from_secs(10)));
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while !got.windows(4).any(|w| w == b"\r\n\r\n") {
            match c.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
        let (wait, body) = if id == 0 { (first_ms, "first") } else { (later_ms, "second") };
        std::thread::sleep(Duration::from_millis(wait));
        let _ = c.write_all(format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}", body.len()).as_bytes());
        while matches!(c.read(&mut buf), Ok(n) if n > 0) {}
    })
}

/// One request to a route with a 200 ms per-try timeout and one retry (`hedge`: the
/// route's hedge_policy): the status and body that won, how long it took and the
/// per-try timeouts counted.
fn hedged_request(backend: Backend, hedge: &str, headers: &[(&str, &str)]) -> (u16, String, Duration, i64) {
    hedged_request_to(backend, (600, 2000), "per_try_timeout: 0.2s", hedge, headers)
}

fn hedged_request_to(
    backend: Backend,
    (first_ms, later_ms): (u64, u64),
    try_timeout: &str,
    hedge: &str,
    headers: &[(&str, &str)],
) -> (u16, String, Duration, i64) {
    let net = Net::new(backend);
    let origin = two_speeds(&net, first_ms, later_ms);
    let vhosts = format!(
        "- name: all\n  domains: [\"*\"]\n  routes:\n  - match: {{ prefix: \"/\" }}\n    route:\n      cluster: web\n      retry_policy: {{ retry_on: 5xx, num_retries: 1, {try_timeout} }}\n{hedge}"
    );
    let p = start_with(&net, &[origin.addr], "", &vhosts, "");
    let started = Instant::now();
    let r = p.request("/", headers);
    let took = started.elapsed();
    assert_eq!(p.counter("cluster.web.upstream_rq_retry"), 1);
    (r.status, r.text(), took, p.counter("cluster.web.upstream_rq_per_try_timeout"))
}

fn a_hedged_per_try_timeout_keeps_the_first_try_and_the_first_answer_wins(backend: Backend) {
    let hedge = "      hedge_policy: { hedge_on_per_try_timeout: true }\n";
    let (status, body, took, per_try_timeouts) = hedged_request(backend, hedge, &[]);
    assert_eq!((status, body.as_str()), (200, "first"), "the first try was not cancelled at its per-try timeout");
    assert!(took < Duration::from_millis(1500), "answered after {took:?}");
    assert_eq!(per_try_timeouts, 0, "soft timeouts");
    // Without hedging each try is reset at its per-try timeout: 504 after two tries.
    let (status, _, took, per_try_timeouts) = hedged_request(backend, "", &[]);
    assert_eq!(status, 504);
    assert!(took < Duration::from_millis(1000), "answered after {took:?}");
    assert_eq!(per_try_timeouts, 2);
    // The request header turns hedging on (and off).
    let (status, body, _, _) = hedged_request(backend, "", &[("x-envoy-hedge-on-per-try-timeout", "true")]);
    assert_eq!((status, body.as_str()), (200, "first"));
    let (status, _, _, _) = hedged_request(backend, hedge, &[("x-envoy-hedge-on-per-try-timeout", "false")]);
    assert_eq!(status, 504);
    // The hedged try answers first when it is the faster one.
    let (status, body, took, _) = hedged_request_to(backend, (3000, 100), "per_try_timeout: 0.2s", hedge, &[]);
    assert_eq!((status, body.as_str()), (200, "second"));
    assert!(took < Duration::from_millis(1500), "answered after {took:?}");
    // A per-try idle timeout is soft too.
    let (status, body, _, _) = hedged_request_to(backend, (600, 2000), "per_try_idle_timeout: 0.2s", hedge, &[]);
    assert_eq!((status, body.as_str()), (200, "first"));
}

on_both_backends!(
    a_hedged_per_try_timeout_keeps_the_first_try_and_the_first_answer_wins,
    a_retry_budget_limits_concurrent_retries,
    respect_expected_rq_timeout_makes_the_egress_timeout_the_route_timeout,
    retriable_status_codes_and_header_names_come_from_request_headers,
    rq_total_counts_every_request_the_router_decodes,
);

// Over HTTP/2 as well (prior knowledge; the origins stay HTTP/1.1).
sluice_e2e::over_http2!(
    a_hedged_per_try_timeout_keeps_the_first_try_and_the_first_answer_wins,
    a_retry_budget_limits_concurrent_retries,
    respect_expected_rq_timeout_makes_the_egress_timeout_the_route_timeout,
    retriable_status_codes_and_header_names_come_from_request_headers,
    rq_total_counts_every_request_the_router_decodes,
);
