//! Router resilience end to end with origins that fail on purpose: retries, back-off,
//! timeouts, mirroring, fault injection, circuit breakers.

use std::time::{Duration, Instant};

use sluice_e2e::config::{http, Cluster};
use sluice_e2e::free_port;
use sluice_e2e::http_client::Client;
use sluice_e2e::http_origin::HttpOrigin;
use sluice_e2e::proxy::Proxy;

fn route(extra: &str) -> String {
    format!("- name: m\n  domains: [\"*\"]\n  routes:\n  - match: {{ prefix: \"/\" }}\n    route:\n      cluster: web\n{extra}")
}

fn start(routes: &str, clusters: &[Cluster<'_>], filters: &str) -> (u16, Proxy) {
    let port = free_port();
    let p = Proxy::start(&http(port, routes, clusters, "", filters), &["--concurrency", "1"]);
    (port, p)
}

#[test]
fn retry_to_success_on_another_host() {
    let bad = HttpOrigin::start("bad");
    let good = HttpOrigin::start("good");
    bad.force_status(Some(503));
    let routes = route("      retry_policy: { retry_on: \"5xx\", num_retries: 2 }\n");
    let (port, _p) = start(&routes, &[Cluster { name: "web", ports: &[bad.port(), good.port()], extra: "" }], "");
    let mut c = Client::connect(port);
    for i in 0..6 {
        let r = c.get(&format!("/r/{i}"));
        assert_eq!(r.status, 200, "request {i} must be retried to the good host");
        assert_eq!(r.header("x-origin"), Some("good"));
    }
    // Retries consume round-robin picks too, so first tries may keep landing on the bad
    // host; what matters is that every retry went to the other host, never the same one.
    assert_eq!(good.requests(), 6);
    assert!(bad.requests() <= 6, "a retry went back to the failing host: {}", bad.requests());
}

#[test]
fn retries_exhausted_return_the_last_response() {
    let bad = HttpOrigin::start("bad");
    bad.force_status(Some(503));
    let routes =
        route("      retry_policy: { retry_on: \"5xx\", num_retries: 2, retry_back_off: { base_interval: 0.01s } }\n");
    let (port, _p) = start(&routes, &[Cluster { name: "web", ports: &[bad.port()], extra: "" }], "");
    let r = Client::connect(port).get("/");
    assert_eq!(r.status, 503);
    assert_eq!(r.text(), "forced", "the upstream's last response is forwarded");
    assert_eq!(bad.requests(), 3, "1 try + 2 retries");
}

#[test]
fn connect_failures_are_retried_per_header_policy() {
    let good = HttpOrigin::start("good");
    let dead = free_port();
    let routes = route("");
    let (port, _p) = start(&routes, &[Cluster { name: "web", ports: &[dead, good.port()], extra: "" }], "");
    let mut c = Client::connect(port);
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

#[test]
fn backoff_timing_is_jittered_within_bounds() {
    let bad = HttpOrigin::start("bad");
    bad.force_status(Some(503));
    // base 100 ms: retry 1 waits < 100 ms, retry 2 < 300 ms, retry 3 < 700 ms (max 1 s).
    let routes = route("      retry_policy: { retry_on: \"5xx\", num_retries: 3, retry_back_off: { base_interval: 0.1s, max_interval: 1s } }\n");
    let (port, _p) = start(&routes, &[Cluster { name: "web", ports: &[bad.port()], extra: "" }], "");
    let mut c = Client::connect(port);
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

#[test]
fn route_timeout_gives_504_and_alt_response_204() {
    let slow = HttpOrigin::start("slow");
    let routes = route("      timeout: 0.3s\n");
    let (port, _p) = start(&routes, &[Cluster { name: "web", ports: &[slow.port()], extra: "" }], "");
    let mut c = Client::connect(port);
    let t = Instant::now();
    let r = c.get("/delay/2000/x");
    let took = t.elapsed();
    assert_eq!(r.status, 504);
    assert_eq!(r.text(), "upstream request timeout");
    assert!(took >= Duration::from_millis(280) && took < Duration::from_millis(1500), "504 after {took:?}");
    let r = Client::connect(port).request(
        "GET",
        "/delay/2000/y",
        &[("x-envoy-upstream-rq-timeout-alt-response", "1")],
        b"",
    );
    assert_eq!(r.status, 204);
    // The header is consumed, not forwarded.
    assert!(slow.seen().iter().all(|s| s.header("x-envoy-upstream-rq-timeout-alt-response").is_none()));
    // The request header overrides the route timeout.
    let t = Instant::now();
    let r = Client::connect(port).request("GET", "/delay/2000/z", &[("x-envoy-upstream-rq-timeout-ms", "100")], b"");
    assert_eq!(r.status, 504);
    assert!(t.elapsed() < Duration::from_millis(280), "header timeout not honoured: {:?}", t.elapsed());
}

#[test]
fn per_try_timeouts_bound_total_time() {
    let slow = HttpOrigin::start("slow");
    let routes = route("      timeout: 5s\n      retry_policy: { retry_on: \"5xx\", num_retries: 2, per_try_timeout: 0.2s, retry_back_off: { base_interval: 0.01s } }\n");
    let (port, _p) = start(&routes, &[Cluster { name: "web", ports: &[slow.port()], extra: "" }], "");
    let t = Instant::now();
    let r = Client::connect(port).get("/delay/3000/x");
    let took = t.elapsed();
    assert_eq!(r.status, 504);
    // 3 tries × 200 ms plus back-off: well under the 5 s route timeout.
    assert!(took >= Duration::from_millis(550) && took < Duration::from_millis(2000), "took {took:?}");
    assert_eq!(slow.requests(), 3);
}

#[test]
fn mirror_gets_a_shadow_host_and_a_dead_shadow_changes_nothing() {
    let primary = HttpOrigin::start("primary");
    let mirror = HttpOrigin::start("mirror");
    let dead = free_port();
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
    let clusters = [
        Cluster { name: "web", ports: &[primary.port()], extra: "" },
        Cluster { name: "shadow", ports: &[mirror.port()], extra: "" },
        Cluster { name: "deadshadow", ports: &[dead], extra: "" },
    ];
    let (port, _p) = start(routes, &clusters, "");
    let mut c = Client::connect(port);
    let r = c.request("POST", "/mirrored", &[("host", "api.example:8080")], b"payload");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-origin"), Some("primary"));
    let deadline = Instant::now() + Duration::from_secs(5);
    while mirror.requests() == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
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

#[test]
fn fault_abort_and_delay_with_header_matchers() {
    let origin = HttpOrigin::start("web");
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
    let (port, _p) = start(&route(""), &[Cluster { name: "web", ports: &[origin.port()], extra: "" }], filters);
    let mut c = Client::connect(port);
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
}

#[test]
fn circuit_breaker_overflow_is_503_with_x_envoy_overloaded() {
    let slow = HttpOrigin::start("slow");
    let extra = "    circuit_breakers: { thresholds: [{ max_connections: 1, max_pending_requests: 1 }] }\n";
    let (port, _p) = start(&route(""), &[Cluster { name: "web", ports: &[slow.port()], extra }], "");
    // One request holds the only connection, one waits as pending, the third overflows.
    let hold = std::thread::spawn(move || Client::connect(port).get("/delay/800/a").status);
    std::thread::sleep(Duration::from_millis(150));
    let pending = std::thread::spawn(move || Client::connect(port).get("/delay/10/b").status);
    std::thread::sleep(Duration::from_millis(150));
    let r = Client::connect(port).get("/c");
    assert_eq!(r.status, 503);
    assert_eq!(r.header("x-envoy-overloaded"), Some("true"));
    assert_eq!(hold.join().unwrap(), 200);
    assert_eq!(pending.join().unwrap(), 200, "the pending request is served once the connection frees");
}
