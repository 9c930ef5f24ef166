//! Overload protection end to end, against the binary (the overload manager's thread
//! and the admin server live in the binary's main thread set-up): the global
//! connection limit, running out of file descriptors, and the overload actions.
//! Each scenario prints the proxy's descriptor count (and RSS) before and after.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use sluice_e2e::config::{http, Cluster};
use sluice_e2e::free_port;
use sluice_e2e::http_client::{get, Client};
use sluice_e2e::http_origin::HttpOrigin;
use sluice_e2e::proxy::{run, Proxy};

const ROUTES: &str = r#"- name: all
  domains: ["*"]
  routes:
  - match: { prefix: "/" }
    route: { cluster: web }
"#;

/// The bootstrap: admin on `admin` (exempt from the global connection limit, so that
/// the tests can read stats at the limit), `overload` (YAML at column 0, under
/// `overload_manager:`), one HTTP listener on `port` to `web`, HCM fields `hcm_extra`.
fn config(port: u16, admin: u16, web: u16, overload: &str, hcm_extra: &str) -> String {
    let overload = overload.lines().map(|l| format!("  {l}\n")).collect::<String>();
    format!(
        "admin:\n  address: {{ socket_address: {{ address: 127.0.0.1, port_value: {admin} }} }}\n  ignore_global_conn_limit: true\noverload_manager:\n{overload}{}",
        http(port, ROUTES, &[Cluster { name: "web", ports: &[web], extra: "" }], hcm_extra, "")
    )
}

/// A counter or gauge from the admin. Read to EOF: the admin closes each connection
/// after its response and releases its place in the global connection count before
/// the close, so when this returns the admin connection no longer counts (a client
/// that stopped at Content-Length could race the next connection against it).
fn stat(admin: u16, name: &str) -> i64 {
    let path = format!("/stats?filter=^{}$", name.replace('.', "\\."));
    let mut s = TcpStream::connect(("127.0.0.1", admin)).expect("admin");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nhost: admin\r\nconnection: close\r\n\r\n").as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("admin response to EOF");
    let raw = String::from_utf8_lossy(&raw);
    let text = raw.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("").to_string();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")).map(|v| v.trim().parse().unwrap()))
        .unwrap_or_else(|| panic!("no stat {name} in:\n{text}"))
}

/// Admin connections count towards the global connection limit even with
/// `ignore_global_conn_limit` (they are only exempt from refusal), and the admin keeps
/// a connection until the client's FIN after its response: give the last `stat()`
/// connection time to leave the count before a test fills the limit again.
fn admin_settles() {
    std::thread::sleep(Duration::from_millis(200));
}

/// Wait (bounded) until `f` holds.
fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Open descriptors and resident set of process `pid`.
fn usage(pid: u32) -> (usize, u64) {
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss_kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    (fds, rss_kb)
}

const FIXED_HEAP_1B: &str = r#"refresh_interval: 0.05s
resource_monitors:
- name: envoy.resource_monitors.fixed_heap
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.resource_monitors.fixed_heap.v3.FixedHeapConfig
    max_heap_size_bytes: 1
"#;

/// An action triggered by the fixed-heap monitor at `threshold` (a 1-byte "heap" is
/// always over it: the action saturates on the first refresh).
fn heap_action(name: &str, threshold: f64) -> String {
    format!(
        "{FIXED_HEAP_1B}actions:\n- name: envoy.overload_actions.{name}\n  triggers:\n  - name: envoy.resource_monitors.fixed_heap\n    threshold: {{ value: {threshold} }}\n"
    )
}

#[test]
fn global_connection_limit_holds_and_recovers() {
    const LIMIT: usize = 6;
    let web = HttpOrigin::start("web");
    let (port, admin) = (free_port(), free_port());
    let overload = format!(
        r#"resource_monitors:
- name: envoy.resource_monitors.global_downstream_max_connections
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.resource_monitors.downstream_connections.v3.DownstreamConnectionsConfig
    max_active_downstream_connections: {LIMIT}
"#
    );
    // Two workers: the limit is global, not per worker.
    let p = Proxy::start(&config(port, admin, web.port(), &overload, ""), &["--concurrency", "2"]);
    let before = usage(p.pid());
    admin_settles();
    let mut held: Vec<Client> = (0..LIMIT).map(|_| Client::connect(port)).collect();
    for c in &mut held {
        assert_eq!(c.get("/").status, 200);
    }
    // Beyond the limit: closed at accept, before any byte is read.
    let overflow = 5;
    for _ in 0..overflow {
        let mut c = Client::connect(port);
        c.send(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n");
        assert!(c.closed_within(Duration::from_secs(5)), "a connection over the global limit was served");
    }
    let listener = format!("listener.127.0.0.1_{port}");
    assert_eq!(stat(admin, &format!("{listener}.downstream_global_cx_overflow")), overflow);
    assert_eq!(stat(admin, &format!("{listener}.downstream_cx_active")), LIMIT as i64);
    // The ones inside the limit are still served.
    for c in &mut held {
        assert_eq!(c.get("/").status, 200);
    }
    let during = usage(p.pid());
    // One closes: a new connection gets its place.
    drop(held.pop());
    wait_until("the closed connection to be released", Duration::from_secs(5), || {
        stat(admin, &format!("{listener}.downstream_cx_active")) == LIMIT as i64 - 1
    });
    admin_settles();
    let mut c = Client::connect(port);
    assert_eq!(c.get("/").status, 200);
    held.push(c);
    // All close: the count returns to zero (no leaked slot of the global limit).
    held.clear();
    wait_until("every connection to be released", Duration::from_secs(5), || {
        stat(admin, &format!("{listener}.downstream_cx_active")) == 0
    });
    admin_settles();
    for _ in 0..LIMIT {
        held.push(Client::connect(port));
    }
    for c in &mut held {
        assert_eq!(c.get("/").status, 200, "the whole limit is available again");
    }
    assert_eq!(stat(admin, &format!("{listener}.downstream_global_cx_overflow")), overflow);
    let after = usage(p.pid());
    eprintln!("proxy fds/RSS kB: before {before:?}, at the limit {during:?}, after {after:?}");
}

/// As Envoy: admin connections count towards the global connection limit and are
/// refused beyond it, unless `admin.ignore_global_conn_limit`.
#[test]
fn admin_connections_count_towards_the_global_limit_unless_ignored() {
    let web = HttpOrigin::start("web");
    let overload = r#"resource_monitors:
- name: envoy.resource_monitors.global_downstream_max_connections
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.resource_monitors.downstream_connections.v3.DownstreamConnectionsConfig
    max_active_downstream_connections: 2
"#;
    for ignore in [false, true] {
        let (port, admin) = (free_port(), free_port());
        let yaml = config(port, admin, web.port(), overload, "").replacen(
            "  ignore_global_conn_limit: true\n",
            &format!("  ignore_global_conn_limit: {ignore}\n"),
            1,
        );
        let _p = Proxy::start(&yaml, &[]);
        // Below the limit the admin answers, and its connection counts.
        assert_eq!(get(admin, "/ready").status, 200);
        admin_settles();
        let mut held: Vec<Client> = (0..2).map(|_| Client::connect(port)).collect();
        for c in &mut held {
            assert_eq!(c.get("/").status, 200);
        }
        // At the limit: refused (closed at accept), or answered when exempt.
        let mut c = Client::connect(admin);
        c.send(b"GET /ready HTTP/1.1\r\nhost: x\r\n\r\n");
        if ignore {
            assert_eq!(c.read_response(false).expect("the exempt admin answers").status, 200);
        } else {
            assert!(c.closed_within(Duration::from_secs(5)), "the admin answered over the global limit");
        }
        // One client leaves: the admin answers again either way.
        drop(held.pop());
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(get(admin, "/ready").status, 200);
    }
}

#[test]
fn out_of_descriptors_recovers_and_leaves_no_backlog() {
    let web = HttpOrigin::start("web");
    let (port, admin) = (free_port(), free_port());
    let mut p = Proxy::start(&config(port, admin, web.port(), "{}", ""), &["--concurrency", "1"]);
    let pid = p.pid().to_string();
    // Two keep-alive clients, each with a pooled upstream connection: 4 descriptors.
    let mut held: Vec<Client> = (0..2).map(|_| Client::connect(port)).collect();
    for c in &mut held {
        assert_eq!(c.get("/").status, 200);
    }
    let (fds, rss) = usage(p.pid());
    eprintln!("proxy before: {fds} fds, {rss} kB");
    // No descriptor left for anything new: the soft limit goes one below the count in
    // use (a descriptor some thread holds for an instant when it is counted would
    // otherwise be a spare: one waiting connection accepted with it borrows the pooled
    // upstream connection, and a held client's request then needs a new one).
    let limit = format!("--nofile={}:", fds - 1);
    let ok = std::process::Command::new("prlimit").args(["--pid", &pid, &limit]).status().unwrap();
    assert!(ok.success(), "prlimit failed");
    const WAITING: usize = 8;
    let mut waiting: Vec<TcpStream> = (0..WAITING)
        .map(|_| {
            let mut s = TcpStream::connect(("127.0.0.1", port)).expect("the kernel completes the handshake");
            s.write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").unwrap();
            s
        })
        .collect();
    p.wait_for_log("accept failed", Duration::from_secs(10));
    // What is open keeps being served.
    for c in &mut held {
        let r = c.get("/");
        assert_eq!(r.status, 200, "an open connection was not served while out of descriptors: {r:?}\n{}", p.log());
    }
    let (fds_during, _) = usage(p.pid());
    // Rate-limited: one line a second at most, however many accepts failed.
    std::thread::sleep(Duration::from_millis(500));
    let lines = p.log().lines().filter(|l| l.contains("accept failed")).count();
    assert!(lines <= 2, "{lines} accept-failure lines in half a second");
    // Descriptors come back (the held clients leave; the limit is raised again): the
    // waiting connections are accepted and answered with no new connection arriving.
    // The limit is raised before the held clients leave: were it the other way round,
    // the two descriptors they free could go to two waiting connections whose upstream
    // connects then fail for want of a descriptor (a 503, correctly, but not this test).
    let ok = std::process::Command::new("prlimit").args(["--pid", &pid, "--nofile=4096:"]).status().unwrap();
    assert!(ok.success(), "prlimit failed");
    held.clear();
    for (i, s) in waiting.iter_mut().enumerate() {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        let text = String::from_utf8_lossy(&out);
        assert!(text.starts_with("HTTP/1.1 200"), "connection {i} waiting in the backlog got {text:?}");
    }
    assert!(stat(admin, &format!("listener.127.0.0.1_{port}.downstream_cx_accept_error")) >= 1);
    let (fds_after, rss_after) = usage(p.pid());
    eprintln!("proxy during: {fds_during} fds; after: {fds_after} fds, {rss_after} kB");
}

#[test]
fn admin_answers_again_after_running_out_of_descriptors() {
    let web = HttpOrigin::start("web");
    let (port, admin) = (free_port(), free_port());
    let p = Proxy::start(&config(port, admin, web.port(), "{}", ""), &["--concurrency", "1"]);
    let pid = p.pid().to_string();
    let (fds, _) = usage(p.pid());
    let ok = std::process::Command::new("prlimit").args(["--pid", &pid, &format!("--nofile={fds}:")]).status().unwrap();
    assert!(ok.success());
    // The admin needs a descriptor too: this request waits in the admin's backlog.
    let mut s = TcpStream::connect(("127.0.0.1", admin)).unwrap();
    s.write_all(b"GET /ready HTTP/1.1\r\nhost: x\r\n\r\n").unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let ok = std::process::Command::new("prlimit").args(["--pid", &pid, "--nofile=4096:"]).status().unwrap();
    assert!(ok.success());
    // Answered without another connection arriving (before: stuck for good).
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 200"), "admin answered {text:?}");
}

#[test]
fn stop_accepting_requests_answers_503_envoy_overloaded() {
    let web = HttpOrigin::start("web");
    let (port, admin) = (free_port(), free_port());
    let _p = Proxy::start(&config(port, admin, web.port(), &heap_action("stop_accepting_requests", 0.5), ""), &[]);
    let action = "overload.envoy.overload_actions.stop_accepting_requests";
    wait_until("the action to saturate", Duration::from_secs(5), || stat(admin, &format!("{action}.active")) == 1);
    assert_eq!(stat(admin, &format!("{action}.scale_percent")), 100);
    assert!(stat(admin, "overload.envoy.resource_monitors.fixed_heap.pressure") > 100);
    let mut c = Client::connect(port);
    let r = c.get("/");
    assert_eq!(r.status, 503);
    assert_eq!(r.text(), "envoy overloaded");
    assert_eq!(r.header("content-type"), Some("text/plain"));
    assert_eq!(r.header("server"), Some("envoy"));
    assert_eq!(web.requests(), 0, "the request reached the origin");
    assert_eq!(stat(admin, "http.ingress.downstream_rq_overload_close"), 1);
}

#[test]
fn actions_stay_inactive_under_their_threshold() {
    let web = HttpOrigin::start("web");
    let (port, admin) = (free_port(), free_port());
    // 1 TiB: far above this process.
    let overload = heap_action("stop_accepting_requests", 0.5)
        .replace("max_heap_size_bytes: 1\n", "max_heap_size_bytes: 1099511627776\n");
    let _p = Proxy::start(&config(port, admin, web.port(), &overload, ""), &[]);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(stat(admin, "overload.envoy.overload_actions.stop_accepting_requests.active"), 0);
    let mut c = Client::connect(port);
    assert_eq!(c.get("/").status, 200);
    assert_eq!(c.get("/").status, 200, "keep-alive");
}

#[test]
fn disable_http_keepalive_closes_after_the_response() {
    let web = HttpOrigin::start("web");
    let (port, admin) = (free_port(), free_port());
    let _p = Proxy::start(&config(port, admin, web.port(), &heap_action("disable_http_keepalive", 0.5), ""), &[]);
    wait_until("the action to saturate", Duration::from_secs(5), || {
        stat(admin, "overload.envoy.overload_actions.disable_http_keepalive.active") == 1
    });
    let mut c = Client::connect(port);
    let r = c.get("/");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("connection"), Some("close"));
    assert!(c.closed_within(Duration::from_secs(5)), "the connection stayed open");
    assert_eq!(stat(admin, "http.ingress.downstream_cx_overload_disable_keepalive"), 1);
}

#[test]
fn reject_incoming_connections_closes_at_accept() {
    let web = HttpOrigin::start("web");
    let (port, admin) = (free_port(), free_port());
    let _p = Proxy::start(&config(port, admin, web.port(), &heap_action("reject_incoming_connections", 0.5), ""), &[]);
    wait_until("the action to saturate", Duration::from_secs(5), || {
        stat(admin, "overload.envoy.overload_actions.reject_incoming_connections.active") == 1
    });
    let mut c = Client::connect(port);
    c.send(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n");
    assert!(c.closed_within(Duration::from_secs(5)));
    assert_eq!(stat(admin, &format!("listener.127.0.0.1_{port}.downstream_cx_overload_reject")), 1);
    assert_eq!(web.requests(), 0);
}

#[test]
fn reduce_timeouts_shortens_the_idle_timeout() {
    let web = HttpOrigin::start("web");
    let (port, admin) = (free_port(), free_port());
    let overload = format!(
        r#"{FIXED_HEAP_1B}actions:
- name: envoy.overload_actions.reduce_timeouts
  triggers:
  - name: envoy.resource_monitors.fixed_heap
    scaled: {{ scaling_threshold: 0.5, saturation_threshold: 0.9 }}
  typed_config:
    "@type": type.googleapis.com/envoy.config.overload.v3.ScaleTimersOverloadActionConfig
    timer_scale_factors:
    - timer: HTTP_DOWNSTREAM_CONNECTION_IDLE
      min_timeout: 0.2s
"#
    );
    let hcm = "common_http_protocol_options: { idle_timeout: 60s }\n";
    let _p = Proxy::start(&config(port, admin, web.port(), &overload, hcm), &[]);
    wait_until("the action to saturate", Duration::from_secs(5), || {
        stat(admin, "overload.envoy.overload_actions.reduce_timeouts.scale_percent") == 100
    });
    let mut c = Client::connect(port);
    assert_eq!(c.get("/").status, 200);
    let idle = Instant::now();
    assert!(c.closed_within(Duration::from_secs(5)), "idle connection kept past the reduced timeout");
    assert!(idle.elapsed() < Duration::from_secs(3), "closed after {:?}", idle.elapsed());
    assert_eq!(stat(admin, "http.ingress.downstream_cx_idle_timeout"), 1);
}

/// A connection whose idle timer was armed before `reduce_timeouts` scaled up closes
/// by the reduced timeout, without an event of its own (Envoy's scaled timers follow
/// the scale factor). The action is driven by the connection count: two more
/// connections saturate it.
#[test]
fn reduce_timeouts_pulls_in_idle_timers_already_armed() {
    let web = HttpOrigin::start("web");
    let (port, admin) = (free_port(), free_port());
    let overload = r#"refresh_interval: 0.05s
resource_monitors:
- name: envoy.resource_monitors.global_downstream_max_connections
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.resource_monitors.downstream_connections.v3.DownstreamConnectionsConfig
    max_active_downstream_connections: 4
actions:
- name: envoy.overload_actions.reduce_timeouts
  triggers:
  - name: envoy.resource_monitors.global_downstream_max_connections
    scaled: { scaling_threshold: 0.5, saturation_threshold: 0.75 }
  typed_config:
    "@type": type.googleapis.com/envoy.config.overload.v3.ScaleTimersOverloadActionConfig
    timer_scale_factors:
    - timer: HTTP_DOWNSTREAM_CONNECTION_IDLE
      min_timeout: 0.3s
"#;
    let hcm = "common_http_protocol_options: { idle_timeout: 60s }\n";
    let _p = Proxy::start(&config(port, admin, web.port(), overload, hcm), &[]);
    let mut first = Client::connect(port);
    assert_eq!(first.get("/").status, 200);
    // Armed now with the full 60 s.
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(stat(admin, "overload.envoy.overload_actions.reduce_timeouts.scale_percent"), 0);
    let mut others: Vec<Client> = (0..2).map(|_| Client::connect(port)).collect();
    for c in &mut others {
        assert_eq!(c.get("/").status, 200);
    }
    let pressed = Instant::now();
    assert!(first.closed_within(Duration::from_secs(5)), "the idle connection kept its 60 s timer");
    assert!(pressed.elapsed() < Duration::from_secs(3), "closed after {:?}", pressed.elapsed());
    assert!(stat(admin, "http.ingress.downstream_cx_idle_timeout") >= 1);
}

#[test]
fn unknown_monitors_and_actions_are_rejected_with_their_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yaml");
    let overload = r#"resource_monitors:
- name: envoy.resource_monitors.fixed_heap
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.resource_monitors.fixed_heap.v3.FixedHeapConfig
    max_heap_size_bytes: 1000
actions:
- name: envoy.overload_actions.stop_everything
  triggers:
  - name: envoy.resource_monitors.fixed_heap
    threshold: { value: 0.9 }
"#;
    std::fs::write(&path, config(free_port(), free_port(), free_port(), overload, "")).unwrap();
    let (code, out) = run(&["--mode", "validate", "-c", path.to_str().unwrap()], None);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("overload_manager.actions[0].name"), "{out}");
}

#[test]
fn stop_accepting_connections_leaves_new_ones_in_the_backlog() {
    let web = HttpOrigin::start("web");
    let (port, admin) = (free_port(), free_port());
    let _p = Proxy::start(&config(port, admin, web.port(), &heap_action("stop_accepting_connections", 0.5), ""), &[]);
    wait_until("the action to saturate", Duration::from_secs(5), || {
        stat(admin, "overload.envoy.overload_actions.stop_accepting_connections.active") == 1
    });
    // The kernel completes the handshake; sluice neither accepts nor closes it.
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n").unwrap();
    s.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    let mut b = [0u8; 1];
    let r = s.read(&mut b);
    assert!(
        matches!(&r, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut),
        "expected no answer and no close, got {r:?}"
    );
    assert_eq!(stat(admin, &format!("listener.127.0.0.1_{port}.downstream_cx_total")), 0);
    assert_eq!(stat(admin, &format!("listener.127.0.0.1_{port}.downstream_pre_cx_active")), 0);
    assert_eq!(web.requests(), 0);
}

#[test]
fn a_reload_keeps_the_running_overload_manager_and_says_so() {
    let web = HttpOrigin::start("web");
    let (port, admin) = (free_port(), free_port());
    let monitor = |max: u32| {
        format!(
            "resource_monitors:\n- name: envoy.resource_monitors.global_downstream_max_connections\n  typed_config:\n    \"@type\": type.googleapis.com/envoy.extensions.resource_monitors.downstream_connections.v3.DownstreamConnectionsConfig\n    max_active_downstream_connections: {max}\n"
        )
    };
    let mut p = Proxy::start(&config(port, admin, web.port(), &monitor(2), ""), &["--concurrency", "1"]);
    // The file now asks for another limit and adds a response header (which does reload).
    let changed: String = config(port, admin, web.port(), &monitor(1000), "")
        .lines()
        .map(|l| match l.trim_start().strip_prefix("route: { cluster: web }") {
            Some(_) => {
                let indent = &l[..l.len() - l.trim_start().len()];
                format!("{l}\n{indent}response_headers_to_add: [{{ header: {{ key: x-reloaded, value: \"1\" }} }}]\n")
            }
            None => format!("{l}\n"),
        })
        .collect();
    assert!(changed.contains("x-reloaded"), "the route edit applies");
    std::fs::write(&p.config_path, changed).unwrap();
    p.signal("HUP");
    p.wait_for_log("configuration reloaded", Duration::from_secs(10));
    // The main thread publishes; the worker adopts at its next loop boundary (a
    // connection accepted before that is served by the old config).
    p.wait_for_log("new config adopted", Duration::from_secs(10));
    assert!(p.log().contains("`overload_manager` changed in the file"), "no warning:\n{}", p.log());
    let dump = get(admin, "/config_dump").text();
    assert!(dump.contains("\"max_active_downstream_connections\": \"2\""), "the dump shows the running limit:\n{dump}");
    // The running limit (2) still holds; the rest of the file was applied.
    let mut held: Vec<Client> = (0..2).map(|_| Client::connect(port)).collect();
    for c in &mut held {
        let r = c.get("/");
        assert_eq!(r.status, 200);
        assert_eq!(r.header("x-reloaded"), Some("1"), "the route change was applied");
    }
    let mut c = Client::connect(port);
    c.send(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n");
    assert!(c.closed_within(Duration::from_secs(5)), "the limit from the file was applied by a reload");
}
