//! Envoy's layered runtime end to end: values that change routing, maintenance mode,
//! faults and connection limits without a reload.
//!
//! The cases in [`on_both_backends!`] run in-process on the kernel and smol stacks;
//! `InProcessProxy::runtime_modify` / `poll_runtime_disk` are what the binary's
//! `/runtime_modify` and main loop call. The `binary_*` tests run the binary with its
//! admin server: `GET /runtime`, `POST /runtime_modify`, a disk layer swapped under
//! the running process, `/config_dump`.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use sluice_e2e::backend::{Backend, Net};
use sluice_e2e::config::{http, http_at, Cluster, ClusterAt};
use sluice_e2e::free_port;
use sluice_e2e::http_client::{get, Client};
use sluice_e2e::http_origin::HttpOrigin;
use sluice_e2e::inproc::InProcessProxy;
use sluice_e2e::on_both_backends;
use sluice_e2e::proxy::Proxy;

/// `/flip` goes to `a` for the share `routing.flip` gives it (default 0 %), else
/// falls through to `b`.
const FLIP_ROUTES: &str = r#"- name: all
  domains: ["*"]
  routes:
  - match:
      prefix: "/flip"
      runtime_fraction: { default_value: { numerator: 0 }, runtime_key: routing.flip }
    route: { cluster: a }
  - match: { prefix: "/" }
    route: { cluster: b }
"#;

struct Setup {
    net: Net,
    a: HttpOrigin,
    b: HttpOrigin,
}

impl Setup {
    fn new(backend: Backend) -> Setup {
        let net = Net::new(backend);
        let a = HttpOrigin::serve(net.listen(), "a");
        let b = HttpOrigin::serve(net.listen(), "b");
        Setup { net, a, b }
    }

    /// The bootstrap: `runtime` (YAML under `layered_runtime:`, at column 0), routes,
    /// clusters `a` and `b`, HCM fields and filters.
    fn start(&self, runtime: &str, routes: &str, hcm_extra: &str, filters: &str) -> (InProcessProxy, SocketAddr) {
        let listen = self.net.proxy_listen_addr();
        let (ea, eb) = ([self.a.addr], [self.b.addr]);
        let clusters =
            [ClusterAt { name: "a", endpoints: &ea, extra: "" }, ClusterAt { name: "b", endpoints: &eb, extra: "" }];
        let yaml = format!(
            "layered_runtime:\n{}{}",
            indent(runtime, 2),
            http_at(listen, routes, &clusters, hcm_extra, filters)
        );
        (self.net.start_proxy(&yaml, 2), listen)
    }

    fn client(&self, p: &InProcessProxy, listen: SocketAddr) -> Client {
        Client::over(self.net.connect(p.target(listen)).expect("connect to the proxy"))
    }
}

fn indent(text: &str, n: usize) -> String {
    text.lines().map(|l| format!("{}{l}\n", " ".repeat(n))).collect()
}

/// Send `n` requests to `path`; how many each origin got.
fn spread(s: &Setup, c: &mut Client, path: &str, n: usize) -> (usize, usize) {
    let (a0, b0) = (s.a.requests(), s.b.requests());
    for _ in 0..n {
        assert_eq!(c.get(path).status, 200);
    }
    (s.a.requests() - a0, s.b.requests() - b0)
}

/// Wait (bounded) until `f` holds.
fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

const ADMIN_LAYER: &str = "layers:\n- name: base\n  static_layer: {}\n- name: admin\n  admin_layer: {}\n";

fn runtime_fraction_flips_without_reload(backend: Backend) {
    let s = Setup::new(backend);
    let (p, listen) = s.start(ADMIN_LAYER, FLIP_ROUTES, "", "");
    let mut c = s.client(&p, listen);
    assert_eq!(spread(&s, &mut c, "/flip", 20), (0, 20), "default_value 0 %: never matches");
    p.runtime_modify(&[("routing.flip", "100")]).unwrap();
    // Workers adopt the snapshot at their next loop boundary: the next request sees it.
    assert_eq!(spread(&s, &mut c, "/flip", 20), (20, 0), "runtime 100 %: always matches");
    p.runtime_modify(&[("routing.flip", "{numerator: 50, denominator: HUNDRED}")]).unwrap();
    let (na, nb) = spread(&s, &mut c, "/flip", 400);
    // 50 % of 400, sd 10: allow ±5 sd.
    assert!((150..=250).contains(&na), "a got {na}, b got {nb}");
    p.runtime_modify(&[("routing.flip", "")]).unwrap();
    assert_eq!(spread(&s, &mut c, "/flip", 20), (0, 20), "an empty value removes the override");
    assert_eq!(p.runtime_modify(&[]), Ok(()));
}

fn runtime_fraction_flips_on_a_disk_layer_swap(backend: Backend) {
    let s = Setup::new(backend);
    let dir = tempfile::tempdir().unwrap();
    write_layer(dir.path(), "v1", "0");
    write_layer(dir.path(), "v2", "100");
    let root = dir.path().join("current");
    std::os::unix::fs::symlink(dir.path().join("v1"), &root).unwrap();
    let runtime =
        format!("layers:\n- name: disk\n  disk_layer: {{ symlink_root: {}, subdirectory: envoy }}\n", root.display());
    let (p, listen) = s.start(&runtime, FLIP_ROUTES, "", "");
    let mut c = s.client(&p, listen);
    assert_eq!(spread(&s, &mut c, "/flip", 10), (0, 10));
    swap(dir.path(), "v2");
    assert!(p.poll_runtime_disk(), "the swap is seen");
    assert_eq!(spread(&s, &mut c, "/flip", 10), (10, 0));
    swap(dir.path(), "v1");
    assert!(p.poll_runtime_disk());
    assert_eq!(spread(&s, &mut c, "/flip", 10), (0, 10));
}

/// `<dir>/<version>/envoy/routing/flip` holding `value`.
fn write_layer(dir: &Path, version: &str, value: &str) {
    let d = dir.join(version).join("envoy").join("routing");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("flip"), format!("# percent of /flip to a\n{value}\n")).unwrap();
}

/// Point `<dir>/current` at `<dir>/<version>` atomically (a rename, as deploy tools do).
fn swap(dir: &Path, version: &str) {
    let tmp = dir.join("next");
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(dir.join(version), &tmp).unwrap();
    std::fs::rename(&tmp, dir.join("current")).unwrap();
}

fn maintenance_mode_answers_503_with_uo(backend: Backend) {
    let s = Setup::new(backend);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let access_log = format!(
        "access_log:\n- name: f\n  typed_config:\n    \"@type\": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog\n    path: {}\n    log_format: {{ text_format: \"%RESPONSE_CODE% %RESPONSE_FLAGS%\\n\" }}\n",
        log.display()
    );
    let runtime = "layers:\n- name: base\n  static_layer:\n    upstream: { maintenance_mode: { b: 100 } }\n- name: admin\n  admin_layer: {}\n";
    let (p, listen) = s.start(runtime, FLIP_ROUTES, &access_log, "");
    let mut c = s.client(&p, listen);
    let r = c.get("/");
    assert_eq!(r.status, 503);
    assert_eq!(r.text(), "maintenance mode");
    assert_eq!(r.header("x-envoy-overloaded"), Some("true"));
    assert_eq!(s.b.requests(), 0, "a cluster in maintenance gets no request");
    assert_eq!(p.stats().get("cluster.b.upstream_rq_maintenance_mode"), Some(1));
    assert_eq!(p.stats().get("cluster.b.upstream_rq_5xx"), Some(1));
    // The admin layer takes the cluster out of maintenance, without a reload.
    p.runtime_modify(&[("upstream.maintenance_mode.b", "0")]).unwrap();
    assert_eq!(c.get("/").status, 200);
    assert_eq!(s.b.requests(), 1);
    wait_until("two access log lines", || std::fs::read_to_string(&log).is_ok_and(|t| t.lines().count() >= 2));
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines, ["503 UO", "200 -"], "{text}");
}

fn fault_percent_and_status_from_runtime(backend: Backend) {
    let s = Setup::new(backend);
    let filters = r#"- name: envoy.filters.http.fault
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault
    abort: { http_status: 503, percentage: { numerator: 0 } }
    delay_percent_runtime: my.delay_percent
    delay: { fixed_delay: 10s, percentage: { numerator: 0 } }
"#;
    let (p, listen) = s.start(ADMIN_LAYER, FLIP_ROUTES, "", filters);
    let mut c = s.client(&p, listen);
    assert_eq!(c.get("/").status, 200, "configured 0 %: no fault");
    p.runtime_modify(&[("fault.http.abort.abort_percent", "100"), ("fault.http.abort.http_status", "418")]).unwrap();
    let r = c.get("/");
    assert_eq!((r.status, r.text().as_str()), (418, "fault filter abort"));
    // A configured `*_runtime` key replaces the default key; the runtime's duration
    // replaces the configured 10 s.
    p.runtime_modify(&[
        ("my.delay_percent", "100"),
        ("fault.http.delay.fixed_duration_ms", "300"),
        ("fault.http.abort.abort_percent", "0"),
    ])
    .unwrap();
    let t = Instant::now();
    assert_eq!(c.get("/").status, 200);
    let took = t.elapsed();
    assert!(took >= Duration::from_millis(300) && took < Duration::from_secs(5), "delayed {took:?}");
    // With `delay_percent_runtime` set, the default key is not read (else: 10 s).
    p.runtime_modify(&[
        ("fault.http.delay.fixed_delay_percent", "100"),
        ("my.delay_percent", "0"),
        ("fault.http.delay.fixed_duration_ms", ""),
    ])
    .unwrap();
    let t = Instant::now();
    assert_eq!(c.get("/").status, 200);
    assert!(t.elapsed() < Duration::from_millis(300), "no delay: {:?}", t.elapsed());
}

fn listener_connection_limit_from_runtime(backend: Backend) {
    let s = Setup::new(backend);
    let runtime = "layers:\n- name: base\n  static_layer:\n    envoy.resource_limits.listener.http.connection_limit: 2\n- name: admin\n  admin_layer: {}\n";
    let (p, listen) = s.start(runtime, FLIP_ROUTES, "", "");
    let mut held: Vec<Client> = (0..2).map(|_| s.client(&p, listen)).collect();
    for c in &mut held {
        assert_eq!(c.get("/").status, 200);
    }
    let mut third = s.client(&p, listen);
    third.send(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n");
    assert!(third.closed_within(Duration::from_secs(3)), "over the limit: closed at once");
    let stat = format!("listener.{}_{}.downstream_cx_overflow", listen.ip(), listen.port());
    wait_until("downstream_cx_overflow", || p.stats().get(&stat) == Some(1));
    // Raising the limit at runtime lets new connections in.
    p.runtime_modify(&[("envoy.resource_limits.listener.http.connection_limit", "3")]).unwrap();
    let mut fourth = s.client(&p, listen);
    assert_eq!(fourth.get("/").status, 200);
    drop(held);
}

fn weighted_clusters_read_runtime_weights(backend: Backend) {
    let s = Setup::new(backend);
    let routes = r#"- name: all
  domains: ["*"]
  routes:
  - match: { prefix: "/" }
    route:
      weighted_clusters:
        runtime_key_prefix: routing.split
        clusters:
        - { name: a, weight: 100 }
        - { name: b, weight: 0 }
"#;
    let (p, listen) = s.start(ADMIN_LAYER, routes, "", "");
    let mut c = s.client(&p, listen);
    assert_eq!(spread(&s, &mut c, "/", 10), (10, 0));
    p.runtime_modify(&[("routing.split.a", "0"), ("routing.split.b", "5")]).unwrap();
    assert_eq!(spread(&s, &mut c, "/", 10), (0, 10), "the runtime's weights replace the configured ones");
    // Runtime weights that sum to 0: no route (404 NR), as Envoy.
    p.runtime_modify(&[("routing.split.b", "0")]).unwrap();
    assert_eq!(c.get("/").status, 404);
}

fn global_connection_limit_from_runtime(backend: Backend) {
    let s = Setup::new(backend);
    let runtime = "layers:\n- name: base\n  static_layer:\n    overload.global_downstream_max_connections: 1\n";
    let (p, listen) = s.start(runtime, FLIP_ROUTES, "", "");
    let mut held = s.client(&p, listen);
    assert_eq!(held.get("/").status, 200);
    let mut second = s.client(&p, listen);
    second.send(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n");
    assert!(second.closed_within(Duration::from_secs(3)), "over the global limit: closed at once");
    let stat = format!("listener.{}_{}.downstream_global_cx_overflow", listen.ip(), listen.port());
    wait_until("downstream_global_cx_overflow", || p.stats().get(&stat) == Some(1));
    drop(held);
}

fn circuit_breaker_limits_from_runtime(backend: Backend) {
    let s = Setup::new(backend);
    let (p, listen) = s.start(ADMIN_LAYER, FLIP_ROUTES, "", "");
    let mut c = s.client(&p, listen);
    assert_eq!(c.get("/").status, 200);
    p.runtime_modify(&[("circuit_breakers.b.default.max_requests", "0")]).unwrap();
    let r = c.get("/");
    assert_eq!(r.status, 503);
    assert_eq!(r.header("x-envoy-overloaded"), Some("true"));
    assert_eq!(p.stats().get("cluster.b.upstream_rq_pending_overflow"), Some(1));
    p.runtime_modify(&[("circuit_breakers.b.default.max_requests", "")]).unwrap();
    assert_eq!(c.get("/").status, 200, "the configured limit again");
}

fn upstream_use_retry_gates_retries(backend: Backend) {
    let s = Setup::new(backend);
    let routes = r#"- name: all
  domains: ["*"]
  routes:
  - match: { prefix: "/" }
    route: { cluster: b, retry_policy: { retry_on: 5xx, num_retries: 2, retry_back_off: { base_interval: 0.001s } } }
"#;
    let (p, listen) = s.start(ADMIN_LAYER, routes, "", "");
    s.b.force_status(Some(503));
    let mut c = s.client(&p, listen);
    assert_eq!(c.get("/").status, 503);
    assert_eq!(s.b.requests(), 3, "the first try and two retries");
    p.runtime_modify(&[("upstream.use_retry", "0")]).unwrap();
    assert_eq!(c.get("/").status, 503);
    assert_eq!(s.b.requests(), 4, "upstream.use_retry 0: no retry");
    assert_eq!(p.stats().get("cluster.b.upstream_rq_retry"), Some(2));
}

on_both_backends!(
    upstream_use_retry_gates_retries,
    weighted_clusters_read_runtime_weights,
    global_connection_limit_from_runtime,
    circuit_breaker_limits_from_runtime,
    runtime_fraction_flips_without_reload,
    runtime_fraction_flips_on_a_disk_layer_swap,
    maintenance_mode_answers_503_with_uo,
    fault_percent_and_status_from_runtime,
    listener_connection_limit_from_runtime,
);

// Over HTTP/2 as well (prior knowledge; the origins stay HTTP/1.1). Not over HTTP/2:
// the two connection-limit cases (they hold connections open with raw HTTP/1.1 bytes).
sluice_e2e::over_http2!(
    upstream_use_retry_gates_retries,
    weighted_clusters_read_runtime_weights,
    circuit_breaker_limits_from_runtime,
    runtime_fraction_flips_without_reload,
    runtime_fraction_flips_on_a_disk_layer_swap,
    maintenance_mode_answers_503_with_uo,
    fault_percent_and_status_from_runtime,
);

/// The binary with an admin server on `admin`, `runtime` under `layered_runtime:`,
/// FLIP_ROUTES to origins `a` and `b`.
fn binary_config(port: u16, admin: u16, a: u16, b: u16, runtime: &str) -> String {
    format!(
        "admin:\n  address: {{ socket_address: {{ address: 127.0.0.1, port_value: {admin} }} }}\n{}{}",
        if runtime.is_empty() { String::new() } else { format!("layered_runtime:\n{}", indent(runtime, 2)) },
        http(
            port,
            FLIP_ROUTES,
            &[Cluster { name: "a", ports: &[a], extra: "" }, Cluster { name: "b", ports: &[b], extra: "" }],
            "",
            ""
        )
    )
}

fn post(admin: u16, target: &str) -> (u16, String) {
    let mut c = Client::connect(admin);
    let r = c.request("POST", target, &[], b"");
    (r.status, r.text())
}

#[test]
fn binary_runtime_endpoints_and_modify() {
    let (a, b) = (HttpOrigin::start("a"), HttpOrigin::start("b"));
    let (port, admin) = (free_port(), free_port());
    let runtime = "layers:\n- name: base\n  static_layer: { routing: { flip: 0 }, x: { y: 'text' } }\n- name: admin\n  admin_layer: {}\n";
    let mut proxy = Proxy::start(&binary_config(port, admin, a.port(), b.port(), runtime), &[]);
    proxy.wait_for_log("sluice started", Duration::from_secs(10));
    let r = get(port, "/flip");
    assert_eq!((r.status, b.requests()), (200, 1));
    let shown = get(admin, "/runtime").text();
    assert_eq!(
        shown,
        "{\n \"entries\": {\n  \"routing.flip\": {\n   \"final_value\": \"0\",\n   \"layer_values\": [\"0\", \"\"]\n  },\n  \"x.y\": {\n   \"final_value\": \"text\",\n   \"layer_values\": [\"text\", \"\"]\n  }\n },\n \"layers\": [\"base\", \"admin\"]\n}\n"
    );
    // Mutating: POST only.
    assert_eq!(Client::connect(admin).request("GET", "/runtime_modify?routing.flip=100", &[], b"").status, 405);
    assert_eq!(post(admin, "/runtime_modify?routing.flip=100"), (200, "OK\n".to_string()));
    let r = get(port, "/flip");
    assert_eq!((r.status, a.requests()), (200, 1), "the route flipped without a reload");
    let shown = get(admin, "/runtime").text();
    assert!(shown.contains("\"final_value\": \"100\",\n   \"layer_values\": [\"0\", \"100\"]"), "{shown}");
    // Envoy's runtime stats.
    let stats = get(admin, "/stats?filter=^runtime\\.").text();
    for line in [
        "runtime.admin_overrides_active: 1",
        "runtime.load_error: 0",
        "runtime.load_success: 2",
        "runtime.num_keys: 2",
        "runtime.num_layers: 2",
    ] {
        assert!(stats.lines().any(|l| l == line), "no `{line}` in:\n{stats}");
    }
    assert_eq!(post(admin, "/runtime_modify").0, 400);
    // Circuit-breaker limits from the runtime show in /clusters.
    assert_eq!(post(admin, "/runtime_modify?circuit_breakers.a.default.max_connections=7").0, 200);
    wait_until("the runtime limit in /clusters", || {
        get(admin, "/clusters").text().contains("a::default_priority::max_connections::7\n")
    });
    // /config_dump shows the layers as configured.
    let dump = get(admin, "/config_dump").text();
    assert!(dump.contains("\"layered_runtime\""), "{dump}");
    assert!(dump.contains("\"admin_layer\": {}"), "{dump}");
    assert!(dump.contains("\"flip\": 0"), "{dump}");
}

#[test]
fn binary_without_an_admin_layer_refuses_modify() {
    let (a, b) = (HttpOrigin::start("a"), HttpOrigin::start("b"));
    let (port, admin) = (free_port(), free_port());
    let mut proxy = Proxy::start(&binary_config(port, admin, a.port(), b.port(), ""), &[]);
    proxy.wait_for_log("sluice started", Duration::from_secs(10));
    assert_eq!(post(admin, "/runtime_modify?routing.flip=100"), (503, "No admin layer specified".to_string()));
    assert_eq!(get(admin, "/runtime").text(), "{\n \"entries\": {},\n \"layers\": []\n}\n");
}

#[test]
fn binary_reads_a_swapped_disk_layer() {
    let (a, b) = (HttpOrigin::start("a"), HttpOrigin::start("b"));
    let (port, admin) = (free_port(), free_port());
    let dir = tempfile::tempdir().unwrap();
    write_layer(dir.path(), "v1", "0");
    write_layer(dir.path(), "v2", "100");
    let root = dir.path().join("current");
    std::os::unix::fs::symlink(dir.path().join("v1"), &root).unwrap();
    let runtime =
        format!("layers:\n- name: disk\n  disk_layer: {{ symlink_root: {}, subdirectory: envoy }}\n", root.display());
    let mut proxy = Proxy::start(&binary_config(port, admin, a.port(), b.port(), &runtime), &[]);
    proxy.wait_for_log("sluice started", Duration::from_secs(10));
    assert_eq!(get(port, "/flip").status, 200);
    assert_eq!((a.requests(), b.requests()), (0, 1));
    swap(dir.path(), "v2");
    // The main loop notices the swap within a round (100 ms).
    wait_until("the swapped layer", || get(admin, "/runtime").text().contains("\"final_value\": \"100\""));
    assert_eq!(get(port, "/flip").status, 200);
    assert_eq!((a.requests(), b.requests()), (1, 1));
}

#[test]
fn binary_reload_keeps_the_running_layers_and_says_so() {
    let (a, b) = (HttpOrigin::start("a"), HttpOrigin::start("b"));
    let (port, admin) = (free_port(), free_port());
    let layers = |v: u32| {
        format!("layers:\n- name: base\n  static_layer: {{ routing: {{ flip: {v} }} }}\n- name: admin\n  admin_layer: {{}}\n")
    };
    let mut proxy = Proxy::start(&binary_config(port, admin, a.port(), b.port(), &layers(0)), &[]);
    proxy.wait_for_log("sluice started", Duration::from_secs(10));
    assert_eq!(post(admin, "/runtime_modify?other=1").0, 200);
    std::fs::write(&proxy.config_path, binary_config(port, admin, a.port(), b.port(), &layers(100))).unwrap();
    proxy.signal("HUP");
    proxy.wait_for_log("configuration reloaded", Duration::from_secs(10));
    assert!(proxy.log().contains("`layered_runtime` changed in the file"), "no warning:\n{}", proxy.log());
    // The layers (and the admin layer's values) stay as they were: bootstrap-only, as in Envoy.
    let shown = get(admin, "/runtime").text();
    assert!(shown.contains("\"routing.flip\": {\n   \"final_value\": \"0\""), "{shown}");
    assert!(shown.contains("\"other\": {\n   \"final_value\": \"1\""), "{shown}");
    assert_eq!(get(port, "/flip").status, 200);
    assert_eq!((a.requests(), b.requests()), (0, 1));
}
