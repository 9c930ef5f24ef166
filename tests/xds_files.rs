//! File-based xDS on the sluice binary (kernel backend): listeners from an LDS file and
//! clusters from a CDS file next to static resources; updates moved into place (a
//! rename, as Envoy documents) are applied, bad ones are refused and counted while the
//! previous config keeps serving, and a listener removed from the file drains.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_e2e::config::{forward_all, hcm_filter, Cluster};
use sluice_e2e::free_port;
use sluice_e2e::http_client::{get, Client};
use sluice_e2e::http_origin::HttpOrigin;
use sluice_e2e::proxy::Proxy;

const LISTENER: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";
const CLUSTER: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";

/// The bootstrap: an admin server, one static cluster `static_a`, LDS and CDS files in `dir`.
fn bootstrap(admin: u16, dir: &Path, static_port: u16) -> String {
    let a = Cluster { name: "static_a", ports: &[static_port], extra: "" }.yaml();
    format!(
        r#"admin:
  address: {{ socket_address: {{ address: 127.0.0.1, port_value: {admin} }} }}
dynamic_resources:
  lds_config:
    path_config_source:
      path: {dir}/lds.yaml
      watched_directory: {{ path: {dir} }}
  cds_config:
    path: {dir}/cds.yaml
static_resources:
  clusters:
{a}"#,
        dir = dir.display()
    )
}

/// An HTTP listener resource on `port` routing everything to `cluster`.
fn http_listener(name: &str, port: u16, cluster: &str) -> String {
    let hcm = hcm_filter(name, &forward_all(cluster), "", "");
    format!(
        "- \"@type\": {LISTENER}\n  name: {name}\n  address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }}\n  filter_chains:\n  - filters:\n{}",
        hcm.lines().map(|l| format!("{}\n", &l[2..])).collect::<String>()
    )
}

/// A cluster resource `name` with endpoints on 127.0.0.1 `ports`.
fn cluster(name: &str, ports: &[u16]) -> String {
    let yaml = Cluster { name, ports, extra: "" }.yaml();
    // `  - name: x` items at column 2 → resources at column 0 with their @type.
    let body: String = yaml.lines().map(|l| format!("{}\n", &l[2..])).collect();
    format!("- \"@type\": {CLUSTER}\n {}", &body[1..])
}

pub(crate) fn resources(version: &str, items: &[String]) -> String {
    format!("version_info: \"{version}\"\nresources:\n{}", items.concat())
}

/// Write `text` next to `name` in `dir` and move it into place (rename).
pub(crate) fn move_into_place(dir: &Path, name: &str, text: &str) {
    let tmp: PathBuf = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, dir.join(name)).unwrap();
}

pub(crate) fn stat(admin: u16, name: &str) -> Option<i64> {
    let body = get(admin, "/stats").text();
    body.lines().find_map(|l| l.strip_prefix(&format!("{name}: ")).and_then(|v| v.trim().parse().ok()))
}

pub(crate) fn wait_stat(admin: u16, name: &str, want: i64) {
    wait_stat_until(admin, name, |v| v == want);
}

/// Wait (15 s at most) until stat `name` is present and `want` accepts it.
pub(crate) fn wait_stat_until(admin: u16, name: &str, want: impl Fn(i64) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !stat(admin, name).is_some_and(&want) {
        assert!(Instant::now() < deadline, "{name} = {:?}", stat(admin, name));
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A bounded load loop: `clients` keep-alive clients on `port`, each at most 5 000
/// requests and `limit`, reconnecting after `connection: close` or a failure, counting
/// failed requests (not 200, or no answer).
pub(crate) struct ClientLoop {
    stop: Arc<AtomicBool>,
    errors: Arc<AtomicUsize>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl ClientLoop {
    pub(crate) fn start(port: u16, clients: usize, limit: Duration) -> ClientLoop {
        let stop = Arc::new(AtomicBool::new(false));
        let errors = Arc::new(AtomicUsize::new(0));
        let threads = (0..clients)
            .map(|i| {
                let (stop, errors) = (Arc::clone(&stop), Arc::clone(&errors));
                std::thread::spawn(move || {
                    let deadline = Instant::now() + limit;
                    let mut c = Client::connect(port);
                    let mut n = 0;
                    while !stop.load(Ordering::Relaxed) && n < 5_000 && Instant::now() < deadline {
                        n += 1;
                        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| c.get(&format!("/c{i}/{n}"))));
                        let closed = match r {
                            Ok(r) if r.status == 200 => r.header("connection") == Some("close"),
                            _ => {
                                errors.fetch_add(1, Ordering::Relaxed);
                                true
                            }
                        };
                        if closed {
                            c = Client::connect(port);
                        }
                    }
                })
            })
            .collect();
        ClientLoop { stop, errors, threads }
    }

    /// Stop the clients; the number of failed requests.
    pub(crate) fn stop(self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            t.join().unwrap();
        }
        self.errors.load(Ordering::Relaxed)
    }
}

struct Setup {
    dir: tempfile::TempDir,
    admin: u16,
    port: u16,
    a: HttpOrigin,
    b: HttpOrigin,
    s: HttpOrigin,
    p: Proxy,
}

/// LDS: listener `dyn` on `port` to cluster `a`; CDS: clusters `a` and `b`.
fn start(concurrency: &str) -> Setup {
    let (a, b, s) = (HttpOrigin::start("a"), HttpOrigin::start("b"), HttpOrigin::start("static"));
    let dir = tempfile::tempdir().unwrap();
    let (admin, port) = (free_port(), free_port());
    move_into_place(dir.path(), "cds.yaml", &resources("c1", &[cluster("a", &[a.port()]), cluster("b", &[b.port()])]));
    move_into_place(dir.path(), "lds.yaml", &resources("l1", &[http_listener("dyn", port, "a")]));
    let p = Proxy::start(&bootstrap(admin, dir.path(), s.port()), &["--concurrency", concurrency]);
    Setup { dir, admin, port, a, b, s, p }
}

#[test]
fn initial_lds_and_cds_files_are_served_counted_and_dumped() {
    let t = start("1");
    assert_eq!(get(t.port, "/x").header("x-origin"), Some("a"));
    assert_eq!(stat(t.admin, "listener_manager.lds.update_success"), Some(1));
    assert_eq!(stat(t.admin, "cluster_manager.cds.update_success"), Some(1));
    assert_eq!(stat(t.admin, "listener_manager.lds.update_rejected"), Some(0));
    assert!(stat(t.admin, "listener_manager.lds.version").is_some_and(|v| v != 0));
    let dump = get(t.admin, "/config_dump").text();
    let flat: String = dump.split_whitespace().collect();
    assert!(flat.contains(r#""dynamic_listeners":[{"name":"dyn","active_state":{"version_info":"l1""#), "{dump}");
    assert!(flat.contains(r#""dynamic_active_clusters":[{"version_info":"c1""#), "{dump}");
    assert!(flat.contains(r#""last_updated":"20"#), "{dump}");
    // The static cluster coexists with the dynamic ones: a dynamic listener may use it.
    let both = resources("l2", &[http_listener("dyn", t.port, "a"), http_listener("dyn2", free_port(), "static_a")]);
    let port2 = both.split("port_value: ").nth(2).and_then(|s| s.split(' ').next()).unwrap().parse::<u16>().unwrap();
    move_into_place(t.dir.path(), "lds.yaml", &both);
    wait_stat(t.admin, "listener_manager.lds.update_success", 2);
    // The update is counted when accepted; the workers open the new listener after it.
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port2)).is_err() {
        assert!(Instant::now() < deadline, "the new listener on {port2} never opened");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(get(port2, "/y").header("x-origin"), Some("static"));
    assert_eq!(t.s.requests(), 1);
}

#[test]
fn a_cds_change_moved_into_place_under_load_moves_traffic_with_no_failed_request() {
    let t = start("2");
    let port = t.port;
    let load = ClientLoop::start(port, 4, Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(300));
    assert!(t.a.requests() > 0);
    // Cluster `a` now has b's endpoint.
    let moved = resources("c2", &[cluster("a", &[t.b.port()]), cluster("b", &[t.b.port()])]);
    move_into_place(t.dir.path(), "cds.yaml", &moved);
    wait_stat(t.admin, "cluster_manager.cds.update_success", 2);
    let before = t.b.requests();
    let deadline = Instant::now() + Duration::from_secs(5);
    while t.b.requests() < before + 100 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(load.stop(), 0, "requests failed across the update");
    assert!(t.b.requests() >= before + 100, "b got {} requests after the update", t.b.requests() - before);
    let a_now = t.a.requests();
    assert_eq!(get(port, "/after").header("x-origin"), Some("b"));
    assert_eq!(t.a.requests(), a_now);
}

#[test]
fn an_invalid_update_is_refused_counted_and_the_previous_config_keeps_serving() {
    let mut t = start("1");
    let mut c = Client::connect(t.port);
    assert_eq!(c.get("/1").header("x-origin"), Some("a"));
    // A typo in the listener: refused with its path and line.
    let bad = resources("l2", &[http_listener("dyn", t.port, "b").replace("  address:", "  adress:")]);
    move_into_place(t.dir.path(), "lds.yaml", &bad);
    wait_stat(t.admin, "listener_manager.lds.update_rejected", 1);
    t.p.wait_for_log("resources[0].adress (line 5): unknown field `adress`", Duration::from_secs(2));
    // A listener naming a cluster that does not exist: refused by the whole-config check.
    let unknown = resources("l3", &[http_listener("dyn", t.port, "nope")]);
    move_into_place(t.dir.path(), "lds.yaml", &unknown);
    wait_stat(t.admin, "listener_manager.lds.update_rejected", 2);
    t.p.wait_for_log("lds.yaml: resources[0].filter_chains[0]", Duration::from_secs(2));
    // A CDS file that is not YAML: a failure, also refused.
    move_into_place(t.dir.path(), "cds.yaml", "resources: [ {");
    wait_stat(t.admin, "cluster_manager.cds.update_failure", 1);
    assert_eq!(stat(t.admin, "listener_manager.lds.update_success"), Some(1));
    assert_eq!(c.get("/2").header("x-origin"), Some("a"), "the open connection still works");
    assert_eq!(get(t.port, "/3").header("x-origin"), Some("a"), "new connections: the previous config");
    let flat: String = get(t.admin, "/config_dump").text().split_whitespace().collect();
    assert!(flat.contains(r#""version_info":"l1""#) && !flat.contains(r#""version_info":"l3""#));
    assert_eq!(t.b.requests(), 0);
}

#[test]
fn a_listener_removed_from_the_lds_file_drains_its_in_flight_requests() {
    let t = start("1");
    assert_eq!(get(t.port, "/warm").status, 200);
    let port = t.port;
    let in_flight = std::thread::spawn(move || Client::connect(port).get("/delay/1500/slow"));
    let deadline = Instant::now() + Duration::from_secs(5);
    while !t.a.seen().iter().any(|s| s.path.contains("/slow")) {
        assert!(Instant::now() < deadline, "the slow request never reached the origin");
        std::thread::sleep(Duration::from_millis(10));
    }
    move_into_place(t.dir.path(), "lds.yaml", &resources("l2", &[]));
    wait_stat(t.admin, "listener_manager.lds.update_success", 2);
    let r = in_flight.join().unwrap();
    assert_eq!(r.status, 200, "the in-flight request was answered");
    assert_eq!(r.header("x-origin"), Some("a"));
    // The listener is gone: new connections are refused.
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
        assert!(Instant::now() < deadline, "the removed listener still accepts");
        std::thread::sleep(Duration::from_millis(50));
    }
    let flat: String = get(t.admin, "/config_dump").text().split_whitespace().collect();
    assert!(flat.contains(r#""dynamic_listeners":[]"#), "{flat}");
    let _ = &t.s;
}

/// An EDS cluster resource `name` whose endpoints are `service` in `dir`/eds.yaml.
fn eds_cluster(name: &str, dir: &Path, service: &str) -> String {
    format!(
        "- \"@type\": {CLUSTER}\n  name: {name}\n  connect_timeout: 1s\n  type: EDS\n  eds_cluster_config:\n    service_name: {service}\n    eds_config: {{ path_config_source: {{ path: {}/eds.yaml }} }}\n",
        dir.display()
    )
}

/// An EDS file: `service` at 127.0.0.1 `port`.
fn assignment(version: &str, service: &str, port: u16) -> String {
    format!(
        "version_info: \"{version}\"\nresources:\n- \"@type\": type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment\n  cluster_name: {service}\n  endpoints:\n  - lb_endpoints:\n    - endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }} }}\n"
    )
}

#[test]
fn an_eds_change_under_load_moves_traffic_with_no_failed_request() {
    let (a, b, s) = (HttpOrigin::start("a"), HttpOrigin::start("b"), HttpOrigin::start("static"));
    let dir = tempfile::tempdir().unwrap();
    let (admin, port) = (free_port(), free_port());
    move_into_place(dir.path(), "eds.yaml", &assignment("e1", "svc", a.port()));
    move_into_place(dir.path(), "cds.yaml", &resources("c1", &[eds_cluster("e", dir.path(), "svc")]));
    move_into_place(dir.path(), "lds.yaml", &resources("l1", &[http_listener("dyn", port, "e")]));
    let _p = Proxy::start(&bootstrap(admin, dir.path(), s.port()), &["--concurrency", "2"]);
    assert_eq!(get(port, "/first").header("x-origin"), Some("a"));
    assert_eq!(stat(admin, "cluster.e.update_success"), Some(1));
    let load = ClientLoop::start(port, 4, Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(300));
    move_into_place(dir.path(), "eds.yaml", &assignment("e2", "svc", b.port()));
    wait_stat(admin, "cluster.e.update_success", 2);
    let before = b.requests();
    let deadline = Instant::now() + Duration::from_secs(5);
    while b.requests() < before + 100 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(load.stop(), 0, "requests failed across the EDS update");
    assert!(b.requests() >= before + 100, "b got {} requests after the update", b.requests() - before);
    let a_now = a.requests();
    assert_eq!(get(port, "/after").header("x-origin"), Some("b"));
    assert_eq!(a.requests(), a_now);
    // A bad assignment (a host name) is refused and counted; b keeps serving.
    let bad = assignment("e3", "svc", b.port()).replace("address: 127.0.0.1", "address: localhost");
    move_into_place(dir.path(), "eds.yaml", &bad);
    wait_stat(admin, "cluster.e.update_rejected", 1);
    assert_eq!(get(port, "/still").header("x-origin"), Some("b"));
}
