//! Health-check tests: Envoy's transitions and intervals, the HTTP request and
//! response parser, and the monitor checking real loopback hosts.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sluice_stack::kernel::KernelStack;

use super::http::{ParseError, Response, ResponseParser};
use super::*;
use crate::rng::Rng;
use crate::stats::UpstreamStats;
use crate::upstream::cluster_manager::{static_hosts, ClusterInfo};
use crate::upstream::host::{health_flag, Host, HostSet};
use crate::upstream::monitor::Monitor;

/// A cluster parsed from YAML (`{PORTS}` → endpoints on 127.0.0.1).
fn cluster(extra: &str, ports: &[u16]) -> Arc<ClusterInfo> {
    let endpoints: String = ports
        .iter()
        .map(|p| {
            format!(
                "        - endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {p} }} }} }}\n"
            )
        })
        .collect();
    let yaml = format!(
        "static_resources:\n  clusters:\n  - name: backend\n    connect_timeout: 1s\n{extra}\n    load_assignment:\n      cluster_name: backend\n      endpoints:\n      - lb_endpoints:\n{endpoints}"
    );
    let c = sluice_config::load_str(&yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}")).bootstrap.clusters.remove(0);
    let hosts = HostSet::new(static_hosts(&c));
    Arc::new(ClusterInfo::new(0, c, hosts))
}

fn checker(extra: &str) -> Checker {
    let info = cluster(extra, &[1]);
    Checker::new(&info.config.health_checks[0], "backend")
}

const TCP_HC: &str = "    health_checks:\n    - { timeout: 0.5s, interval: 0.1s, unhealthy_threshold: 2, healthy_threshold: 2, no_traffic_interval: 0.1s, tcp_health_check: {} }";

fn host() -> Host {
    Host::new(SocketAddr::from(([127, 0, 0, 1], 1)), String::new(), 1, 0, None)
}

#[test]
fn first_result_decides_at_once_then_thresholds_apply() {
    let c = checker(TCP_HC);
    let stats = UpstreamStats::default();
    let h = host();
    h.set_flag(health_flag::FAILED_ACTIVE_HC);
    let mut s = HostState::default();
    assert_eq!(s.handle_success(&h, false, &c, &stats), Transition::Changed);
    assert!(h.healthy());
    // Network failures need unhealthy_threshold (2) in a row.
    assert_eq!(s.handle_failure(&h, FailureType::Network, &c, &stats), Transition::ChangePending);
    assert_eq!(s.handle_success(&h, false, &c, &stats), Transition::Unchanged);
    assert_eq!(s.handle_failure(&h, FailureType::NetworkTimeout, &c, &stats), Transition::ChangePending);
    assert_eq!(s.handle_failure(&h, FailureType::NetworkTimeout, &c, &stats), Transition::Changed);
    assert!(h.has_flag(health_flag::FAILED_ACTIVE_HC) && h.has_flag(health_flag::ACTIVE_HC_TIMEOUT));
    // Coming back needs healthy_threshold (2) passes.
    assert_eq!(s.handle_success(&h, false, &c, &stats), Transition::ChangePending);
    assert!(!h.healthy());
    assert_eq!(s.handle_success(&h, false, &c, &stats), Transition::Changed);
    assert!(h.healthy() && !h.has_flag(health_flag::ACTIVE_HC_TIMEOUT));
    // A definite (active) failure is immediate.
    assert_eq!(s.handle_failure(&h, FailureType::Active, &c, &stats), Transition::Changed);
    assert!(!h.healthy());
    assert_eq!(stats.hc_success.get(), 4);
    assert_eq!(stats.hc_failure.get(), 4);
    assert_eq!(stats.hc_network_failure.get(), 3);
    assert_eq!(stats.hc_healthy.get(), 0, "+1 +1 −1 −1");
}

#[test]
fn degraded_answers_mark_the_host_degraded() {
    let c = checker(TCP_HC);
    let stats = UpstreamStats::default();
    let h = host();
    let mut s = HostState::default();
    assert_eq!(s.handle_success(&h, true, &c, &stats), Transition::Changed);
    assert_eq!(h.health(), crate::upstream::host::Health::Degraded);
    assert_eq!(stats.hc_degraded.get(), 1);
    assert_eq!(s.handle_success(&h, true, &c, &stats), Transition::Unchanged);
    assert_eq!(s.handle_success(&h, false, &c, &stats), Transition::Changed);
    assert!(h.healthy());
    assert_eq!(stats.hc_degraded.get(), 0);
}

#[test]
fn intervals_follow_state_edges_and_traffic() {
    let c = checker(
        "    health_checks:\n    - { timeout: 1s, interval: 10s, unhealthy_interval: 20s, unhealthy_edge_interval: 30s, healthy_edge_interval: 40s, no_traffic_interval: 50s, no_traffic_healthy_interval: 60s, unhealthy_threshold: 2, healthy_threshold: 2, tcp_health_check: {} }",
    );
    let mut rng = Rng::new(1);
    let s = |secs| Duration::from_secs(secs);
    assert_eq!(c.next_interval(true, Transition::Unchanged, true, &mut rng), s(10));
    assert_eq!(c.next_interval(false, Transition::Changed, true, &mut rng), s(20));
    assert_eq!(c.next_interval(false, Transition::ChangePending, true, &mut rng), s(30));
    assert_eq!(c.next_interval(true, Transition::ChangePending, true, &mut rng), s(40));
    assert_eq!(c.next_interval(false, Transition::Unchanged, false, &mut rng), s(50));
    assert_eq!(c.next_interval(true, Transition::ChangePending, false, &mut rng), s(50));
    assert_eq!(c.next_interval(true, Transition::Unchanged, false, &mut rng), s(60));
    assert_eq!(c.initial_delay(&mut rng), Duration::ZERO);
}

#[test]
fn jitter_stays_within_its_bounds() {
    let c = checker(
        "    health_checks:\n    - { timeout: 1s, interval: 1s, interval_jitter: 0.2s, interval_jitter_percent: 10, initial_jitter: 0.5s, unhealthy_threshold: 1, healthy_threshold: 1, tcp_health_check: {} }",
    );
    let mut rng = Rng::new(9);
    let (mut lo, mut hi) = (Duration::MAX, Duration::ZERO);
    for _ in 0..2000 {
        let d = c.next_interval(true, Transition::Unchanged, true, &mut rng);
        lo = lo.min(d);
        hi = hi.max(d);
        let first = c.initial_delay(&mut rng);
        assert!(first < Duration::from_millis(500));
    }
    // 1 s + up to 10 % + up to 200 ms.
    assert!(lo >= Duration::from_secs(1) && hi < Duration::from_millis(1300), "{lo:?}..{hi:?}");
    assert!(hi > Duration::from_millis(1200), "jitter used: {hi:?}");
}

#[test]
fn http_request_is_built_once_with_envoys_headers() {
    let info = cluster(
        "    health_checks:\n    - timeout: 1s\n      interval: 1s\n      unhealthy_threshold: 1\n      healthy_threshold: 1\n      http_health_check:\n        path: /healthz\n        request_headers_to_add:\n        - header: { key: x-check, value: a }\n        - header: { key: user-agent, value: probe }\n          append_action: OVERWRITE_IF_EXISTS_OR_ADD\n        - header: { key: x-check, value: b }\n          append_action: ADD_IF_ABSENT",
        &[1],
    );
    let c = Checker::new(&info.config.health_checks[0], info.name());
    let Protocol::Http(h) = &c.protocol else { panic!() };
    assert_eq!(
        std::str::from_utf8(&h.request).unwrap(),
        "GET /healthz HTTP/1.1\r\nhost: backend\r\nx-check: a\r\nuser-agent: probe\r\n\r\n"
    );
    assert!(h.expected(200) && !h.expected(201) && !h.expected(503));
}

fn parse_all(input: &[u8], chunk: usize, head: bool) -> Result<Option<Response>, ParseError> {
    let mut p = ResponseParser::new(head);
    let mut buf = Vec::new();
    for part in input.chunks(chunk.max(1)) {
        buf.extend_from_slice(part);
        if let Some(r) = p.feed(&mut buf)? {
            return Ok(Some(r));
        }
    }
    Ok(None)
}

#[test]
fn response_parser_frames_bodies_split_anywhere() {
    let cases: &[(&[u8], u16, bool)] = &[
        (b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello", 200, false),
        (b"HTTP/1.1 503 Service Unavailable\r\ntransfer-encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\ntrailer: v\r\n\r\n", 503, false),
        (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n", 204, false),
        (b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 0\r\n\r\n", 200, true),
        (b"HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\nok", 200, true),
        (b"HTTP/1.0 200 OK\r\nconnection: keep-alive\r\ncontent-length: 2\r\n\r\nok", 200, false),
    ];
    for (input, status, close) in cases {
        for chunk in [1, 3, 7, 1000] {
            let r = parse_all(input, chunk, false).unwrap().expect("complete");
            assert_eq!((r.status, r.close), (*status, *close), "{}", String::from_utf8_lossy(input));
        }
    }
    // HEAD answers carry no body despite content-length.
    let r = parse_all(b"HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\n", 4, true).unwrap().unwrap();
    assert_eq!(r.status, 200);
    // Envoy's headers of interest.
    let r =
        parse_all(b"HTTP/1.1 200 OK\r\nx-envoy-degraded: 1\r\ncontent-length: 0\r\n\r\n", 5, false).unwrap().unwrap();
    assert!(r.degraded && !r.immediate_fail);
    // Bytes after the response stay for the next one.
    let mut p = ResponseParser::new(false);
    let mut buf = b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\n\r\nxHTTP".to_vec();
    assert!(p.feed(&mut buf).unwrap().is_some());
    assert_eq!(buf, b"HTTP");
}

#[test]
fn response_parser_rejects_garbage_and_handles_close_delimited_bodies() {
    assert_eq!(parse_all(b"SMTP ready\r\n\r\n", 100, false), Err(ParseError::Malformed));
    assert_eq!(
        parse_all(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n", 100, false),
        Err(ParseError::Malformed)
    );
    assert_eq!(
        parse_all(b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\n", 100, false),
        Err(ParseError::Malformed)
    );
    let mut huge = b"HTTP/1.1 200 OK\r\nx: ".to_vec();
    huge.resize(super::http::MAX_HEAD + 10, b'a');
    assert_eq!(parse_all(&huge, 4096, false), Err(ParseError::HeadTooLarge));
    // No length: the body runs until the connection closes.
    let mut p = ResponseParser::new(false);
    let mut buf = b"HTTP/1.1 200 OK\r\n\r\nsome body".to_vec();
    assert_eq!(p.feed(&mut buf), Ok(None));
    assert_eq!(p.on_eof().map(|r| (r.status, r.close)), Ok((200, true)));
    let mut p = ResponseParser::new(false);
    let mut buf = b"HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\nabc".to_vec();
    assert_eq!(p.feed(&mut buf), Ok(None));
    assert_eq!(p.on_eof(), Err(ParseError::Truncated));
}

/// A loopback HTTP origin answering health checks with a settable status.
struct HttpOrigin {
    addr: SocketAddr,
    status: Arc<AtomicU16>,
    degraded: Arc<AtomicBool>,
    requests: Arc<AtomicUsize>,
    last_head: Arc<Mutex<String>>,
    stop: Arc<AtomicBool>,
}

impl HttpOrigin {
    fn start() -> HttpOrigin {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.set_nonblocking(true).unwrap();
        let o = HttpOrigin {
            addr: l.local_addr().unwrap(),
            status: Arc::new(AtomicU16::new(200)),
            degraded: Arc::new(AtomicBool::new(false)),
            requests: Arc::new(AtomicUsize::new(0)),
            last_head: Arc::new(Mutex::new(String::new())),
            stop: Arc::new(AtomicBool::new(false)),
        };
        let (status, degraded, requests, head, stop) = (
            Arc::clone(&o.status),
            Arc::clone(&o.degraded),
            Arc::clone(&o.requests),
            Arc::clone(&o.last_head),
            Arc::clone(&o.stop),
        );
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let Ok((mut c, _)) = l.accept() else {
                    std::thread::sleep(Duration::from_millis(2));
                    continue;
                };
                let (status, degraded, requests, head) =
                    (Arc::clone(&status), Arc::clone(&degraded), Arc::clone(&requests), Arc::clone(&head));
                std::thread::spawn(move || {
                    c.set_nonblocking(false).unwrap();
                    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 1024];
                    loop {
                        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            let req: Vec<u8> = buf.drain(..end + 4).collect();
                            *head.lock().unwrap() = String::from_utf8_lossy(&req).into_owned();
                            requests.fetch_add(1, Ordering::Relaxed);
                            let s = status.load(Ordering::Relaxed);
                            let extra =
                                if degraded.load(Ordering::Relaxed) { "x-envoy-degraded: true\r\n" } else { "" };
                            let resp = format!("HTTP/1.1 {s} X\r\n{extra}content-length: 2\r\n\r\nok");
                            if c.write_all(resp.as_bytes()).is_err() {
                                return;
                            }
                        }
                        match c.read(&mut chunk) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                });
            }
        });
        o
    }
}

impl Drop for HttpOrigin {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn monitor(info: &Arc<ClusterInfo>) -> Monitor<KernelStack> {
    Monitor::new(KernelStack::new().unwrap(), vec![Arc::clone(info)], 5, Instant::now())
}

/// Turn the monitor until `cond` holds; panics after `limit`.
fn run_until(
    m: &mut Monitor<KernelStack>,
    limit: Duration,
    what: &str,
    mut cond: impl FnMut(&Monitor<KernelStack>) -> bool,
) -> Duration {
    let start = Instant::now();
    while !cond(m) {
        assert!(start.elapsed() < limit, "not within {limit:?}: {what}");
        m.turn(Duration::from_millis(20)).unwrap();
    }
    start.elapsed()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[test]
fn tcp_checks_mark_dead_hosts_and_publish_to_workers() {
    let live = TcpListener::bind("127.0.0.1:0").unwrap();
    let live_port = live.local_addr().unwrap().port();
    let dead_port = free_port();
    let info = cluster(TCP_HC, &[live_port, dead_port]);
    let hosts = info.hosts();
    let (a, b) = (Arc::clone(&hosts.hosts[0]), Arc::clone(&hosts.hosts[1]));
    assert!(!a.healthy() && !b.healthy(), "health-checked hosts start failed");
    let v0 = info.version();
    let mut m = monitor(&info);
    run_until(&mut m, Duration::from_secs(5), "first results", |m| m.initialized());
    assert!(a.healthy() && !b.healthy());
    assert!(info.version() > v0, "published");
    assert_eq!(info.priority_set().levels[0].healthy, vec![0]);
    assert_eq!(info.stats.hc_healthy.get(), 1);
    // The live host dies: two network failures (threshold 2) at 0.1 s intervals.
    drop(live);
    let took = run_until(&mut m, Duration::from_secs(3), "dead host marked", |_| !a.healthy());
    assert!(took < Duration::from_millis(1500), "{took:?}");
    assert_eq!(info.priority_set().levels[0].healthy, Vec::<u32>::new());
    assert!(info.stats.hc_network_failure.get() >= 2);
    // It comes back on the same port: two passes (healthy threshold 2).
    let back = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], live_port))).unwrap();
    let before = info.stats.hc_success.get();
    run_until(&mut m, Duration::from_secs(3), "host back", |_| a.healthy());
    assert!(info.stats.hc_success.get() >= before + 2);
    assert_eq!(info.priority_set().levels[0].healthy, vec![0]);
    drop(back);
    m.shutdown();
}

#[test]
fn tcp_payload_checks_time_out_on_silent_hosts() {
    // A host that accepts but never answers the expected payload.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let hc = "    health_checks:\n    - { timeout: 0.2s, interval: 0.1s, unhealthy_threshold: 1, healthy_threshold: 1, no_traffic_interval: 0.1s, tcp_health_check: { send: { text: '50494e47' }, receive: [ { text: '504f4e47' } ] } }";
    let info = cluster(hc, &[port]);
    let h = Arc::clone(&info.hosts().hosts[0]);
    let mut m = monitor(&info);
    let took = run_until(&mut m, Duration::from_secs(3), "timeout", |_| info.stats.hc_failure.get() >= 1);
    assert!(took >= Duration::from_millis(150), "failed before the timeout: {took:?}");
    assert!(h.has_flag(health_flag::FAILED_ACTIVE_HC) && h.has_flag(health_flag::ACTIVE_HC_TIMEOUT));
    // An echo-like host that answers PONG to PING passes.
    let (tx, rx) = std::sync::mpsc::channel();
    let pong = TcpListener::bind("127.0.0.1:0").unwrap();
    let pong_port = pong.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let (mut c, _) = pong.accept().unwrap();
        let mut b = [0u8; 4];
        c.read_exact(&mut b).unwrap();
        tx.send(b).unwrap();
        c.write_all(b"xxPONGxx").unwrap();
        std::thread::sleep(Duration::from_secs(2));
    });
    let info = cluster(hc, &[pong_port]);
    let h = Arc::clone(&info.hosts().hosts[0]);
    let mut m = monitor(&info);
    run_until(&mut m, Duration::from_secs(3), "pong", |_| h.healthy());
    assert_eq!(&rx.recv().unwrap(), b"PING");
    drop(silent);
}

#[test]
fn http_checks_follow_the_status_and_reuse_the_connection() {
    let origin = HttpOrigin::start();
    let hc = "    health_checks:\n    - { timeout: 0.5s, interval: 0.05s, unhealthy_threshold: 3, healthy_threshold: 2, no_traffic_interval: 0.05s, http_health_check: { path: /health } }";
    let info = cluster(hc, &[origin.addr.port()]);
    let h = Arc::clone(&info.hosts().hosts[0]);
    let mut m = monitor(&info);
    run_until(&mut m, Duration::from_secs(3), "healthy", |_| h.healthy());
    let head = origin.last_head.lock().unwrap().clone();
    assert!(head.starts_with("GET /health HTTP/1.1\r\nhost: backend\r\nuser-agent: Envoy/HC\r\n"), "{head}");
    // A 503 fails the host at once (an active failure ignores unhealthy_threshold).
    origin.status.store(503, Ordering::Relaxed);
    let fails = info.stats.hc_failure.get();
    run_until(&mut m, Duration::from_secs(3), "503 seen", |_| info.stats.hc_failure.get() > fails);
    assert!(!h.healthy(), "one 503 is enough");
    // Degraded answers.
    origin.status.store(200, Ordering::Relaxed);
    origin.degraded.store(true, Ordering::Relaxed);
    run_until(&mut m, Duration::from_secs(3), "degraded", |_| {
        h.has_flag(health_flag::DEGRADED_ACTIVE_HC) && !h.has_flag(health_flag::FAILED_ACTIVE_HC)
    });
    assert_eq!(info.priority_set().levels[0].degraded, vec![0]);
    let n = origin.requests.load(Ordering::Relaxed);
    run_until(&mut m, Duration::from_secs(3), "more checks", |_| origin.requests.load(Ordering::Relaxed) >= n + 5);
    assert!(info.stats.hc_attempt.get() as usize >= n + 5);
    m.shutdown();
}

#[test]
fn worker_reports_reach_the_authority() {
    let a = TcpListener::bind("127.0.0.1:0").unwrap();
    let b = TcpListener::bind("127.0.0.1:0").unwrap();
    let ports = [a.local_addr().unwrap().port(), b.local_addr().unwrap().port()];
    let extra = format!(
        "{TCP_HC}\n    outlier_detection: {{ consecutive_5xx: 3, max_ejection_percent: 50, interval: 0.1s, base_ejection_time: 0.3s }}"
    );
    let info = cluster(&extra, &ports);
    let h = Arc::clone(&info.hosts().hosts[1]);
    let mut m = monitor(&info);
    run_until(&mut m, Duration::from_secs(3), "first round", |m| m.initialized());
    // A worker reports three 503s: the authority ejects and republishes.
    for _ in 0..3 {
        info.put_http_response_code(&h, 503);
    }
    run_until(&mut m, Duration::from_secs(1), "ejected", |_| h.has_flag(health_flag::FAILED_OUTLIER_CHECK));
    assert_eq!(info.priority_set().levels[0].healthy, vec![0]);
    assert_eq!(info.stats.od_ejections_enforced_consecutive_5xx.get(), 1);
    // The next passing active check unejects it (successful_active_health_check_uneject_host).
    run_until(&mut m, Duration::from_secs(1), "unejected", |_| !h.has_flag(health_flag::FAILED_OUTLIER_CHECK));
    assert_eq!(m.detector(0).unwrap().num_ejections(&h), 1);
    // A passive failure report fails the host through its health checker.
    info.report_immediate_health_check_fail(&h);
    run_until(&mut m, Duration::from_secs(1), "passive", |_| info.stats.hc_passive_failure.get() == 1);
    assert!(h.has_flag(health_flag::FAILED_ACTIVE_HC));
    drop((a, b));
}

#[test]
fn dns_membership_changes_start_and_stop_sessions() {
    let a = TcpListener::bind("127.0.0.1:0").unwrap();
    let b = TcpListener::bind("127.0.0.1:0").unwrap();
    let (pa, pb) = (a.local_addr().unwrap().port(), b.local_addr().unwrap().port());
    let info = cluster(TCP_HC, &[pa]);
    let mut m = monitor(&info);
    run_until(&mut m, Duration::from_secs(3), "first", |m| m.initialized());
    let old = info.hosts();
    let newcomer = Arc::new(Host::new(SocketAddr::from(([127, 0, 0, 1], pb)), String::new(), 1, 0, None));
    info.publish(HostSet::new(vec![Arc::clone(&old.hosts[0]), Arc::clone(&newcomer)]));
    assert!(newcomer.has_flag(health_flag::FAILED_ACTIVE_HC), "new hosts start failed");
    assert!(old.hosts[0].healthy(), "known hosts keep their state");
    run_until(&mut m, Duration::from_secs(3), "newcomer checked", |_| newcomer.healthy());
    assert_eq!(info.priority_set().levels[0].healthy, vec![0, 1]);
    info.publish(HostSet::new(vec![Arc::clone(&newcomer)]));
    let attempts = info.stats.hc_attempt.get();
    run_until(&mut m, Duration::from_secs(3), "checks go on", |_| info.stats.hc_attempt.get() >= attempts + 3);
    assert_eq!(info.stats.hc_healthy.get(), 1, "the removed host left the gauge");
    drop((a, b));
}

#[test]
fn first_traffic_brings_long_no_traffic_checks_forward() {
    let a = TcpListener::bind("127.0.0.1:0").unwrap();
    let hc = "    health_checks:\n    - { timeout: 0.5s, interval: 0.1s, unhealthy_threshold: 1, healthy_threshold: 1, tcp_health_check: {} }";
    let info = cluster(hc, &[a.local_addr().unwrap().port()]);
    let mut m = monitor(&info);
    run_until(&mut m, Duration::from_secs(3), "first", |m| m.initialized());
    let attempts = info.stats.hc_attempt.get();
    // Without traffic the next check is 60 s away (no_traffic_interval)...
    for _ in 0..10 {
        m.turn(Duration::from_millis(20)).unwrap();
    }
    assert_eq!(info.stats.hc_attempt.get(), attempts);
    // ... until the cluster sees traffic.
    info.note_traffic();
    run_until(&mut m, Duration::from_secs(2), "checked at interval", |_| info.stats.hc_attempt.get() >= attempts + 2);
    drop(a);
}

#[test]
fn refused_hosts_stay_failed_and_keep_being_checked() {
    let info = cluster(TCP_HC, &[free_port()]);
    let mut m = monitor(&info);
    run_until(&mut m, Duration::from_secs(3), "first", |m| m.initialized());
    // The host refused: network failure, still failed, and the session keeps going.
    let h = Arc::clone(&info.hosts().hosts[0]);
    assert!(!h.healthy());
    let n = info.stats.hc_attempt.get();
    run_until(&mut m, Duration::from_secs(3), "retries", |_| info.stats.hc_attempt.get() >= n + 3);
    assert!(!h.healthy());
    assert_eq!(info.stats.hc_success.get(), 0);
    assert!(info.stats.hc_network_failure.get() >= n + 2);
}
