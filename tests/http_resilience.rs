//! Router resilience end to end with origins that fail on purpose: retries, back-off,
//! timeouts, mirroring, fault injection, circuit breakers. Every case runs on both
//! datapaths: sluice's workers over kernel sockets on loopback and over smol stacks on
//! an in-memory network (see `sluice_e2e::backend`), with the same test body.
//!
//! Timing bounds are meant to hold on a loaded machine: a lower bound sits just under
//! what the config promises (timers never fire early), an upper bound adds hundreds of
//! milliseconds of slack, and steps that depend on the proxy's state (a request held,
//! one pending) wait for that state instead of sleeping.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use sluice_e2e::backend::{Backend, Net};
use sluice_e2e::config::ClusterAt;
use sluice_e2e::http_origin::HttpOrigin;
use sluice_e2e::http_proxy::HttpProxy;
use sluice_e2e::on_both_backends;

/// One virtual host sending everything to cluster `web`; `extra` adds route fields.
fn route(extra: &str) -> String {
    format!("- name: m\n  domains: [\"*\"]\n  routes:\n  - match: {{ prefix: \"/\" }}\n    route:\n      cluster: web\n{extra}")
}

/// The test clients (loopback, or the in-memory peer host) are internal, so the
/// `x-envoy-*` control headers they send count, as from a trusted service.
const CLIENTS_INTERNAL: &str = "use_remote_address: true\ninternal_address_config: { cidr_ranges: [{ address_prefix: 127.0.0.0, prefix_len: 8 }, { address_prefix: 10.99.0.0, prefix_len: 16 }] }\n";

/// A one-worker proxy with the routes of [`route`]`(route_extra)` to cluster `web` at
/// `endpoints` (with `cluster_extra` fields), and `filters` before the router.
fn web<'n>(
    net: &'n Net,
    route_extra: &str,
    endpoints: &[SocketAddr],
    cluster_extra: &str,
    filters: &str,
) -> HttpProxy<'n> {
    let clusters = [ClusterAt { name: "web", endpoints, extra: cluster_extra }];
    HttpProxy::start(net, &route(route_extra), &clusters, CLIENTS_INTERNAL, filters, 1)
}

/// Poll `done` until it holds; panics with `what` after 10 s.
fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn retry_to_success_on_another_host(backend: Backend) {
    let net = Net::new(backend);
    let bad = HttpOrigin::serve(net.listen(), "bad");
    let good = HttpOrigin::serve(net.listen(), "good");
    bad.force_status(Some(503));
    let p = web(&net, "      retry_policy: { retry_on: \"5xx\", num_retries: 2 }\n", &[bad.addr, good.addr], "", "");
    let mut c = p.client();
    for i in 0..6 {
        let r = c.get(&format!("/r/{i}"));
        assert_eq!(r.status, 200, "request {i} must be retried to the good host");
        assert_eq!(r.header("x-origin"), Some("good"));
    }
    // Retries consume round-robin picks too, so first tries may keep landing on the bad
    // host; what matters is that every retry went to the other host, never the same one.
    assert_eq!(good.requests(), 6);
    assert!(bad.requests() <= 6, "a retry went back to the failing host: {}", bad.requests());
    assert_eq!(p.counter("cluster.web.upstream_rq_retry") as usize, bad.requests(), "one retry per 503");
}

fn retries_exhausted_return_the_last_response(backend: Backend) {
    let net = Net::new(backend);
    let bad = HttpOrigin::serve(net.listen(), "bad");
    bad.force_status(Some(503));
    let policy =
        "      retry_policy: { retry_on: \"5xx\", num_retries: 2, retry_back_off: { base_interval: 0.01s } }\n";
    let p = web(&net, policy, &[bad.addr], "", "");
    let r = p.client().get("/");
    assert_eq!(r.status, 503);
    assert_eq!(r.text(), "forced", "the upstream's last response is forwarded");
    assert_eq!(bad.requests(), 3, "1 try + 2 retries");
}

fn connect_failures_are_retried_per_header_policy(backend: Backend) {
    let net = Net::new(backend);
    let good = HttpOrigin::serve(net.listen(), "good");
    let p = web(&net, "", &[net.refused_addr(), good.addr], "", "");
    let mut c = p.client();
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(
            c.request("GET", "/", &[("x-envoy-retry-on", "connect-failure"), ("x-envoy-max-retries", "1")], b"").status,
        );
    }
    assert_eq!(statuses, vec![200; 4]);
    // Without a retry policy the failure is answered as Envoy does.
    let mut saw_503 = false;
    for _ in 0..4 {
        let r = c.get("/");
        if r.status == 503 {
            assert_eq!(
                r.text(),
                "upstream connect error or disconnect/reset before headers. reset reason: connection failure"
            );
            saw_503 = true;
        }
    }
    assert!(saw_503);
}

fn backoff_timing_is_jittered_within_bounds(backend: Backend) {
    let net = Net::new(backend);
    let bad = HttpOrigin::serve(net.listen(), "bad");
    bad.force_status(Some(503));
    // base 100 ms: retry 1 waits < 100 ms, retry 2 < 300 ms, retry 3 < 700 ms (max 1 s).
    let policy = "      retry_policy: { retry_on: \"5xx\", num_retries: 3, retry_back_off: { base_interval: 0.1s, max_interval: 1s } }\n";
    let p = web(&net, policy, &[bad.addr], "", "");
    let mut c = p.client();
    let mut total = Duration::ZERO;
    for _ in 0..5 {
        let t = Instant::now();
        assert_eq!(c.get("/").status, 503);
        let took = t.elapsed();
        assert!(took < Duration::from_millis(1100 + 500), "took {took:?}: back-off above its bounds");
        total += took;
    }
    // Fully jittered: the mean wait of 3 retries is ~550 ms, never near 0 on average.
    assert!(total > Duration::from_millis(5 * 100), "back-off too short on average: {total:?}");
    assert_eq!(bad.requests(), 20);
}

fn route_timeout_gives_504_and_alt_response_204(backend: Backend) {
    let net = Net::new(backend);
    let slow = HttpOrigin::serve(net.listen(), "slow");
    let p = web(&net, "      timeout: 0.3s\n", &[slow.addr], "", "");
    let mut c = p.client();
    let t = Instant::now();
    let r = c.get("/delay/2000/x");
    let took = t.elapsed();
    assert_eq!(r.status, 504);
    assert_eq!(r.text(), "upstream request timeout");
    assert!(took >= Duration::from_millis(280) && took < Duration::from_millis(1500), "504 after {took:?}");
    let r = p.client().request("GET", "/delay/2000/y", &[("x-envoy-upstream-rq-timeout-alt-response", "1")], b"");
    assert_eq!(r.status, 204);
    // The header is consumed, not forwarded.
    assert!(slow.seen().iter().all(|s| s.header("x-envoy-upstream-rq-timeout-alt-response").is_none()));
    // The request header overrides the route timeout.
    let mut c = p.client();
    let t = Instant::now();
    let r = c.request("GET", "/delay/2000/z", &[("x-envoy-upstream-rq-timeout-ms", "100")], b"");
    assert_eq!(r.status, 504);
    assert!(t.elapsed() < Duration::from_millis(280), "header timeout not honoured: {:?}", t.elapsed());
}

fn per_try_timeouts_bound_total_time(backend: Backend) {
    let net = Net::new(backend);
    let slow = HttpOrigin::serve(net.listen(), "slow");
    let policy = "      timeout: 5s\n      retry_policy: { retry_on: \"5xx\", num_retries: 2, per_try_timeout: 0.2s, retry_back_off: { base_interval: 0.01s } }\n";
    let p = web(&net, policy, &[slow.addr], "", "");
    let mut c = p.client();
    let t = Instant::now();
    let r = c.get("/delay/3000/x");
    let took = t.elapsed();
    assert_eq!(r.status, 504);
    // 3 tries × 200 ms plus back-off: well under the 5 s route timeout.
    assert!(took >= Duration::from_millis(550) && took < Duration::from_millis(2000), "took {took:?}");
    assert_eq!(slow.requests(), 3);
}

fn mirror_gets_a_shadow_host_and_a_dead_shadow_changes_nothing(backend: Backend) {
    let net = Net::new(backend);
    let primary = HttpOrigin::serve(net.listen(), "primary");
    let mirror = HttpOrigin::serve(net.listen(), "mirror");
    let routes = r#"- name: m
  domains: ["*"]
  routes:
  - match: { prefix: "/mirrored" }
    route:
      cluster: web
      request_mirror_policies:
      - cluster: shadow
  - match: { prefix: "/dead-mirror" }
    route:
      cluster: web
      request_mirror_policies:
      - cluster: deadshadow
"#;
    let (web, shadow, dead) = ([primary.addr], [mirror.addr], [net.refused_addr()]);
    let clusters = [
        ClusterAt { name: "web", endpoints: &web, extra: "" },
        ClusterAt { name: "shadow", endpoints: &shadow, extra: "" },
        ClusterAt { name: "deadshadow", endpoints: &dead, extra: "" },
    ];
    let p = HttpProxy::start(&net, routes, &clusters, "", "", 1);
    let mut c = p.client();
    let r = c.request("POST", "/mirrored", &[("host", "api.example:8080")], b"payload");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-origin"), Some("primary"));
    wait_until("the shadow request arrives", || mirror.requests() > 0);
    let seen = mirror.seen();
    assert_eq!(seen.len(), 1, "one shadow request");
    assert_eq!(seen[0].header("host"), Some("api.example-shadow:8080"));
    assert_eq!(seen[0].body, b"payload");
    assert_eq!(seen[0].method, "POST");
    // A dead shadow cluster never delays or changes the primary response.
    let t = Instant::now();
    for _ in 0..5 {
        let r = c.get("/dead-mirror");
        assert_eq!(r.status, 200);
        assert_eq!(r.header("x-origin"), Some("primary"));
    }
    assert!(t.elapsed() < Duration::from_millis(900), "primary delayed by its shadow: {:?}", t.elapsed());
}

fn fault_abort_and_delay_with_header_matchers(backend: Backend) {
    let net = Net::new(backend);
    let origin = HttpOrigin::serve(net.listen(), "web");
    let filters = r#"- name: envoy.filters.http.fault
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault
    abort: { http_status: 418, percentage: { numerator: 100, denominator: HUNDRED } }
    headers: [{ name: x-fault, string_match: { exact: abort } }]
- name: delay-fault
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault
    delay: { fixed_delay: 0.3s, percentage: { numerator: 1000000, denominator: MILLION } }
    headers: [{ name: x-fault, string_match: { exact: delay } }]
- name: header-fault
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault
    abort: { header_abort: {}, percentage: { numerator: 100 } }
"#;
    let p = web(&net, "", &[origin.addr], "", filters);
    let mut c = p.client();
    let r = c.request("GET", "/", &[("x-fault", "abort")], b"");
    assert_eq!(r.status, 418);
    assert_eq!(r.text(), "fault filter abort");
    assert_eq!(origin.requests(), 0, "aborted requests never reach the upstream");
    let t = Instant::now();
    let r = c.request("GET", "/", &[("x-fault", "delay")], b"");
    assert_eq!(r.status, 200);
    assert!(t.elapsed() >= Duration::from_millis(280), "delay not injected: {:?}", t.elapsed());
    let t = Instant::now();
    assert_eq!(c.get("/").status, 200);
    assert!(t.elapsed() < Duration::from_millis(250), "no fault without the header");
    let r = c.request("GET", "/", &[("x-envoy-fault-abort-request", "503")], b"");
    assert_eq!(r.status, 503, "header-controlled abort");
    assert_eq!(origin.requests(), 2);
    assert_eq!(p.counter("http.ingress.fault.aborts_injected"), 2);
    assert_eq!(p.counter("http.ingress.fault.delays_injected"), 1);
    assert_eq!(p.counter("http.ingress.fault.faults_overflow"), 0);
}

fn circuit_breaker_overflow_is_503_with_x_envoy_overloaded(backend: Backend) {
    let net = Net::new(backend);
    let slow = HttpOrigin::serve(net.listen(), "slow");
    let extra = "    circuit_breakers: { thresholds: [{ max_connections: 1, max_pending_requests: 1 }] }\n";
    let p = web(&net, "", &[slow.addr], extra, "");
    // One request holds the only connection, one waits as pending, the third overflows.
    // Each step waits until the proxy is in the state the next one needs.
    let mut hold = p.client();
    let hold = std::thread::spawn(move || hold.get("/delay/800/a").status);
    wait_until("the first request holds the connection", || slow.requests() == 1);
    let mut pending = p.client();
    let pending = std::thread::spawn(move || pending.get("/delay/10/b").status);
    wait_until("the second request is pending", || p.counter("cluster.web.upstream_rq_pending_active") == 1);
    let r = p.client().get("/c");
    assert_eq!(r.status, 503);
    assert_eq!(r.header("x-envoy-overloaded"), Some("true"));
    assert_eq!(p.counter("cluster.web.upstream_rq_pending_overflow"), 1);
    assert_eq!(hold.join().unwrap(), 200);
    assert_eq!(pending.join().unwrap(), 200, "the pending request is served once the connection frees");
    assert_eq!(slow.connections(), 1, "the pending request reused the one connection");
}

on_both_backends!(
    retry_to_success_on_another_host,
    retries_exhausted_return_the_last_response,
    connect_failures_are_retried_per_header_policy,
    backoff_timing_is_jittered_within_bounds,
    route_timeout_gives_504_and_alt_response_204,
    per_try_timeouts_bound_total_time,
    mirror_gets_a_shadow_host_and_a_dead_shadow_changes_nothing,
    fault_abort_and_delay_with_header_matchers,
    circuit_breaker_overflow_is_503_with_x_envoy_overloaded,
);

// Over HTTP/2 as well (prior knowledge; the origins stay HTTP/1.1).
sluice_e2e::over_http2!(
    retry_to_success_on_another_host,
    retries_exhausted_return_the_last_response,
    connect_failures_are_retried_per_header_policy,
    backoff_timing_is_jittered_within_bounds,
    route_timeout_gives_504_and_alt_response_204,
    per_try_timeouts_bound_total_time,
    mirror_gets_a_shadow_host_and_a_dead_shadow_changes_nothing,
    fault_abort_and_delay_with_header_matchers,
    circuit_breaker_overflow_is_503_with_x_envoy_overloaded,
);
