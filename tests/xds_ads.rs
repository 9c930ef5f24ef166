//! xDS over gRPC (ADS) on the sluice binary (kernel backend), against a real control
//! plane: grpcio serving Envoy's AggregatedDiscoveryService from versioned snapshots as
//! go-control-plane's snapshot cache does (tests/xds_ads/control_plane.py), its
//! messages encoded by protobuf's json_format with the descriptors of Envoy's protos
//! that sluice reads (proxy/proto/xds/xds-descriptors.bin).
//!
//! State of the world and delta: the initial LDS/CDS/EDS are served and the node is
//! identified; an EDS change under a bounded client loop moves traffic with no failed
//! request; an invalid listener is NACKed with the validator's message as
//! `error_detail` while the previous config keeps serving; the control plane restarted
//! mid-run → sluice keeps serving, reconnects with the versions it has, and takes the
//! next snapshot.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_e2e::free_port;
use sluice_e2e::http_client::{get, Client};
use sluice_e2e::http_origin::HttpOrigin;
use sluice_e2e::proxy::Proxy;

const LISTENER: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";
const CLUSTER: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
const ENDPOINTS: &str = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment";

/// The control plane process (killed by PID and reaped on drop), its snapshot input and
/// the requests it saw.
struct ControlPlane {
    child: Child,
    stdin: ChildStdin,
    port: u16,
    seen: Receiver<serde_json::Value>,
}

impl ControlPlane {
    fn start(port: u16) -> ControlPlane {
        let works =
            || Command::new("python3").args(["-c", "import grpc, google.protobuf"]).status().is_ok_and(|s| s.success());
        if !works() {
            let _ =
                Command::new("pip3").args(["install", "-q", "--break-system-packages", "grpcio", "protobuf"]).status();
            assert!(works(), "python3 `grpc`/`protobuf` missing and `pip3 install grpcio protobuf` failed");
        }
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let script = root.join("xds_ads/control_plane.py");
        let descriptors = root.join("../proxy/proto/xds/xds-descriptors.bin");
        let mut child = Command::new("python3")
            .arg(script)
            .arg(descriptors)
            .arg(port.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the control plane");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        let (port_tx, port_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(p)) = lines.next() {
                let _ = port_tx.send(p);
            }
            for line in lines {
                let Ok(line) = line else { return };
                let Ok(v) = serde_json::from_str(&line) else { continue };
                if tx.send(v).is_err() {
                    return;
                }
            }
        });
        let mut cp = ControlPlane { child, stdin, port: 0, seen: rx };
        let p = port_rx.recv_timeout(Duration::from_secs(30)).expect("the control plane's port");
        cp.port = p.trim().parse().expect("a port");
        assert_ne!(cp.port, 0, "the control plane could not bind");
        cp
    }

    fn push(&mut self, snapshot: &serde_json::Value) {
        writeln!(self.stdin, "{snapshot}").expect("write a snapshot");
        self.stdin.flush().unwrap();
    }

    /// Wait for a request the control plane saw that `want` accepts.
    fn wait_request(&self, what: &str, want: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.seen.recv_timeout(left) {
                Ok(v) if want(&v) => return v,
                Ok(_) => {}
                Err(_) => panic!("the control plane never saw {what}"),
            }
        }
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn bootstrap(admin: u16, xds_port: u16, api_type: &str) -> String {
    format!(
        r#"node: {{ id: test-node, cluster: test-cluster }}
admin:
  address: {{ socket_address: {{ address: 127.0.0.1, port_value: {admin} }} }}
dynamic_resources:
  ads_config:
    api_type: {api_type}
    transport_api_version: V3
    grpc_services:
    - envoy_grpc: {{ cluster_name: xds_cluster }}
  lds_config: {{ ads: {{}}, resource_api_version: V3 }}
  cds_config: {{ ads: {{}}, resource_api_version: V3 }}
static_resources:
  clusters:
  - name: xds_cluster
    type: STATIC
    connect_timeout: 1s
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: {{ http2_protocol_options: {{}} }}
    load_assignment:
      cluster_name: xds_cluster
      endpoints:
      - lb_endpoints:
        - endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {xds_port} }} }} }}
"#
    )
}

fn listener(port: u16, cluster: &str) -> serde_json::Value {
    serde_json::json!({
        "@type": LISTENER,
        "name": "ingress",
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
        "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
            "stat_prefix": "ingress",
            "route_config": {"name": "local", "virtual_hosts": [{"name": "all", "domains": ["*"],
                "routes": [{"match": {"prefix": "/"}, "route": {"cluster": cluster}}]}]},
            "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}]
        }}]}]
    })
}

fn eds_cluster(name: &str) -> serde_json::Value {
    serde_json::json!({
        "@type": CLUSTER,
        "name": name,
        "type": "EDS",
        "connect_timeout": "1s",
        "eds_cluster_config": {"eds_config": {"ads": {}, "resource_api_version": "V3"}}
    })
}

fn endpoints(name: &str, port: u16) -> serde_json::Value {
    serde_json::json!({
        "@type": ENDPOINTS,
        "cluster_name": name,
        "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {"socket_address": {
            "address": "127.0.0.1", "port_value": port}}}}]}]
    })
}

fn snapshot(version: &str, listeners: Vec<serde_json::Value>, origin_port: u16) -> serde_json::Value {
    serde_json::json!({
        "version": version,
        "listeners": listeners,
        "clusters": [eds_cluster("web")],
        "endpoints": [endpoints("web", origin_port)],
    })
}

fn stat(admin: u16, name: &str) -> Option<i64> {
    let body = get(admin, "/stats").text();
    body.lines().find_map(|l| l.strip_prefix(&format!("{name}: ")).and_then(|v| v.trim().parse().ok()))
}

fn wait_stat(admin: u16, name: &str, want: impl Fn(i64) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !stat(admin, name).is_some_and(&want) {
        assert!(Instant::now() < deadline, "{name} = {:?}", stat(admin, name));
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Wait until `port` answers from `origin`.
fn wait_origin(port: u16, origin: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let ok = std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
            && std::panic::catch_unwind(|| get(port, "/probe").header("x-origin").map(str::to_string))
                .ok()
                .flatten()
                .as_deref()
                == Some(origin);
        if ok {
            return;
        }
        assert!(Instant::now() < deadline, "port {port} never answered from {origin}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The whole life of one ADS client: initial config, EDS change under load, NACK,
/// control plane restart.
fn ads_lifecycle(api_type: &str) {
    let (a, b) = (HttpOrigin::start("a"), HttpOrigin::start("b"));
    let xds_port = free_port();
    let mut cp = ControlPlane::start(xds_port);
    let (admin, port) = (free_port(), free_port());
    cp.push(&snapshot("1", vec![listener(port, "web")], a.port()));
    let mut p = Proxy::start(&bootstrap(admin, cp.port, api_type), &["--concurrency", "2"]);

    // Initial LDS/CDS/EDS served; the node identified; the version ACKed.
    wait_origin(port, "a");
    let first = cp.wait_request("a request with the node", |v| v["node"]["id"] == "test-node");
    assert_eq!(first["node"]["cluster"], "test-cluster");
    assert_eq!(first["node"]["user_agent_name"], "sluice");
    assert!(first["node"]["user_agent_build_version"]["version"].is_object(), "{first}");
    wait_stat(admin, "control_plane.connected_state", |v| v == 1);
    wait_stat(admin, "listener_manager.lds.update_success", |v| v >= 1);
    wait_stat(admin, "cluster_manager.cds.update_success", |v| v >= 1);
    wait_stat(admin, "cluster.web.update_success", |v| v >= 1);
    if api_type == "GRPC" {
        cp.wait_request("the LDS ACK of version 1", |v| {
            v["type_url"] == LISTENER && v["version_info"] == "1" && v["error"].is_null()
        });
    }

    // An EDS change under a bounded client loop: no request fails.
    let stop = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..2)
        .map(|i| {
            let (stop, errors) = (Arc::clone(&stop), Arc::clone(&errors));
            std::thread::spawn(move || {
                let deadline = Instant::now() + Duration::from_secs(15);
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
    std::thread::sleep(Duration::from_millis(300));
    cp.push(&snapshot("2", vec![listener(port, "web")], b.port()));
    let before = b.requests();
    let deadline = Instant::now() + Duration::from_secs(10);
    while b.requests() < before + 50 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().unwrap();
    }
    assert_eq!(errors.load(Ordering::Relaxed), 0, "requests failed across the EDS update");
    assert!(b.requests() >= before + 50, "b got {} requests after the update", b.requests() - before);
    assert_eq!(get(port, "/after").header("x-origin"), Some("b"));

    // An invalid listener (a route to a cluster that does not exist): NACKed with the
    // validator's message; the previous config keeps serving.
    cp.push(&snapshot("3", vec![listener(port, "nope")], b.port()));
    let nack = cp.wait_request("the LDS NACK", |v| v["type_url"] == LISTENER && !v["error"].is_null());
    let detail = nack["error"].as_str().unwrap_or_default();
    assert!(detail.contains("nope") && detail.contains("filter_chains[0]"), "error_detail: {detail}");
    if api_type == "GRPC" {
        assert_eq!(nack["version_info"], "2", "a NACK carries the version in force");
    }
    wait_stat(admin, "listener_manager.lds.update_rejected", |v| v >= 1);
    assert_eq!(get(port, "/still").header("x-origin"), Some("b"));

    // The control plane restarted mid-run: sluice keeps serving and reconnects.
    drop(cp);
    wait_stat(admin, "control_plane.connected_state", |v| v == 0);
    assert_eq!(get(port, "/alone").header("x-origin"), Some("b"));
    let mut cp = ControlPlane::start(xds_port);
    cp.push(&snapshot("4", vec![listener(port, "web")], a.port()));
    let again = cp.wait_request("a request on the new stream", |v| v["node"]["id"] == "test-node");
    if api_type == "GRPC" {
        // It resumes with the versions it has (CDS: 3, accepted with the NACKed LDS).
        assert_eq!(again["version_info"], "3", "{again}");
    } else {
        assert!(again["initial"].as_object().is_some_and(|m| !m.is_empty()), "{again}");
    }
    wait_stat(admin, "control_plane.connected_state", |v| v == 1);
    wait_origin(port, "a");
    p.wait_for_log("ADS stream closed", Duration::from_secs(1));
}

#[test]
fn sotw_initial_eds_change_nack_and_control_plane_restart() {
    ads_lifecycle("GRPC");
}

#[test]
fn delta_initial_eds_change_nack_and_control_plane_restart() {
    ads_lifecycle("DELTA_GRPC");
}
