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
//!
//! RDS over ADS and warming: a listener whose HCM takes its routes over ADS does not
//! accept until they arrived; a new EDS cluster is not used until its endpoints arrived
//! (a request routed to it meanwhile gets the no-cluster 503 with no body); past
//! `initial_fetch_timeout` the listener serves empty routes (404) and the cluster no
//! hosts (503 "no healthy upstream").

use std::path::PathBuf;
use std::time::{Duration, Instant};

use sluice_e2e::free_port;
use sluice_e2e::grpc_service::{GrpcService, Script};
use sluice_e2e::http_client::get;
use sluice_e2e::http_origin::HttpOrigin;
use sluice_e2e::proxy::Proxy;

use crate::xds_files::{stat, wait_stat_until as wait_stat, ClientLoop};

const LISTENER: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";
const CLUSTER: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
const ENDPOINTS: &str = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment";
const ROUTES: &str = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration";

/// The control plane process (killed by PID and reaped on drop): snapshots in, the
/// requests it saw out.
pub(crate) struct ControlPlane {
    service: GrpcService,
    pub(crate) port: u16,
}

impl ControlPlane {
    pub(crate) fn start(port: u16) -> ControlPlane {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let script = root.join("xds_ads/control_plane.py");
        let descriptors = root.join("../proxy/proto/xds/xds-descriptors.bin");
        let service = GrpcService::start(Script::File(&script), &[descriptors.to_str().unwrap(), &port.to_string()]);
        ControlPlane { port: service.port, service }
    }

    pub(crate) fn push(&mut self, snapshot: &serde_json::Value) {
        self.service.send_line(&snapshot.to_string());
    }

    /// Wait for a request the control plane saw that `want` accepts.
    pub(crate) fn wait_request(&self, what: &str, want: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.service.lines.recv_timeout(left) {
                Ok(line) => match serde_json::from_str(&line) {
                    Ok(v) if want(&v) => return v,
                    _ => {}
                },
                Err(_) => panic!("the control plane never saw {what}"),
            }
        }
    }
}

pub(crate) fn bootstrap(admin: u16, xds_port: u16, api_type: &str) -> String {
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
    listener_on("ingress", port, cluster)
}

/// A listener `name` on `port` whose HCM (stat prefix `name`) sends everything to `cluster`.
pub(crate) fn listener_on(name: &str, port: u16, cluster: &str) -> serde_json::Value {
    serde_json::json!({
        "@type": LISTENER,
        "name": name,
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
        "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
            "stat_prefix": name,
            "route_config": {"name": "local", "virtual_hosts": [{"name": "all", "domains": ["*"],
                "routes": [{"match": {"prefix": "/"}, "route": {"cluster": cluster}}]}]},
            "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}]
        }}]}]
    })
}

pub(crate) fn eds_cluster(name: &str) -> serde_json::Value {
    serde_json::json!({
        "@type": CLUSTER,
        "name": name,
        "type": "EDS",
        "connect_timeout": "1s",
        "eds_cluster_config": {"eds_config": {"ads": {}, "resource_api_version": "V3"}}
    })
}

pub(crate) fn endpoints(name: &str, port: u16) -> serde_json::Value {
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

/// Wait until `port` answers from `origin`.
pub(crate) fn wait_origin(port: u16, origin: &str) {
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
    let load = ClientLoop::start(port, 2, Duration::from_secs(15));
    std::thread::sleep(Duration::from_millis(300));
    cp.push(&snapshot("2", vec![listener(port, "web")], b.port()));
    let before = b.requests();
    let deadline = Instant::now() + Duration::from_secs(10);
    while b.requests() < before + 50 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(load.stop(), 0, "requests failed across the EDS update");
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
    for prefix in ["listener_manager.lds", "cluster_manager.cds"] {
        let n = |what: &str| stat(admin, &format!("{prefix}.{what}")).unwrap_or(-1);
        let (attempt, success, rejected) = (n("update_attempt"), n("update_success"), n("update_rejected"));
        assert!(attempt >= 1 && attempt == success + rejected, "{prefix}: {attempt} {success} {rejected}");
    }
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

/// A listener on `port` whose HCM (stat prefix `name`) takes `route_config_name` over
/// ADS, with `initial_fetch_timeout` when given.
fn rds_listener(name: &str, port: u16, route_config_name: &str, timeout: Option<&str>) -> serde_json::Value {
    let mut source = serde_json::json!({"ads": {}, "resource_api_version": "V3"});
    if let Some(t) = timeout {
        source["initial_fetch_timeout"] = serde_json::json!(t);
    }
    serde_json::json!({
        "@type": LISTENER,
        "name": name,
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
        "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
            "stat_prefix": name,
            "rds": {"config_source": source, "route_config_name": route_config_name},
            "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}]
        }}]}]
    })
}

/// A route configuration: each (prefix, cluster) in order.
fn route_config(name: &str, routes: &[(&str, &str)]) -> serde_json::Value {
    let routes: Vec<_> = routes
        .iter()
        .map(|(prefix, cluster)| serde_json::json!({"match": {"prefix": prefix}, "route": {"cluster": cluster}}))
        .collect();
    serde_json::json!({"@type": ROUTES, "name": name,
        "virtual_hosts": [{"name": "all", "domains": ["*"], "routes": routes}]})
}

/// An EDS cluster over ADS whose initial fetch times out after `timeout`.
fn eds_cluster_timeout(name: &str, timeout: &str) -> serde_json::Value {
    let mut c = eds_cluster(name);
    c["eds_cluster_config"]["eds_config"]["initial_fetch_timeout"] = serde_json::json!(timeout);
    c
}

/// A resource's `version_info` in the dump: state of the world, the version of the
/// update that last changed it (`sotw`); delta, the resource's own version (the control
/// plane's hash).
fn version_is(api_type: &str, got: &serde_json::Value, sotw: &str) {
    if api_type == "GRPC" {
        assert_eq!(got, sotw);
    } else {
        assert!(got.as_str().is_some_and(|v| v.len() == 16), "a delta resource version: {got}");
    }
}

/// `/config_dump` with `query`, parsed.
pub(crate) fn dump(admin: u16, query: &str) -> serde_json::Value {
    let r = get(admin, &format!("/config_dump{query}"));
    assert_eq!(r.status, 200, "{}", r.text());
    serde_json::from_str(&r.text()).expect("the config dump is JSON")
}

/// The config of `envoy.admin.v3.<kind>` in `dump` (null when there is none).
pub(crate) fn configs(dump: &serde_json::Value, kind: &str) -> serde_json::Value {
    let t = format!("type.googleapis.com/envoy.admin.v3.{kind}");
    dump["configs"].as_array().and_then(|c| c.iter().find(|c| c["@type"] == t)).cloned().unwrap_or_default()
}

pub(crate) fn refuses(port: u16) -> bool {
    std::net::TcpStream::connect(("127.0.0.1", port)).is_err()
}

/// Wait until `GET path` on `port` answers `status` with a body that `body` accepts.
pub(crate) fn wait_answer(port: u16, path: &str, status: u16, body: impl Fn(&str) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = std::panic::catch_unwind(|| get(port, path)).ok();
        if r.as_ref().is_some_and(|r| r.status == status && body(&r.text())) {
            return;
        }
        let seen = r.map(|r| (r.status, r.text()));
        assert!(Instant::now() < deadline, "GET {path} on {port}: {seen:?}, want {status}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// RDS over ADS with listener warming, EDS cluster warming, and both ended by
/// `initial_fetch_timeout`.
fn rds_and_warming(api_type: &str) {
    let (a, b) = (HttpOrigin::start("a"), HttpOrigin::start("b"));
    let mut cp = ControlPlane::start(free_port());
    let (admin, port, port2) = (free_port(), free_port(), free_port());
    type Values = Vec<serde_json::Value>;
    let snap = |v: &str, listeners: Values, clusters: Values, endpoints: Values, routes: Values| {
        serde_json::json!({"version": v, "listeners": listeners, "clusters": clusters, "endpoints": endpoints,
                           "routes": routes})
    };
    let web = || endpoints("web", a.port());
    cp.push(&snap(
        "1",
        vec![rds_listener("ingress", port, "routes", None)],
        vec![eds_cluster("web")],
        vec![web()],
        vec![],
    ));
    let _p = Proxy::start(&bootstrap(admin, cp.port, api_type), &["--concurrency", "2"]);

    // The listener is accepted but warms: it asks RDS for its routes and does not accept.
    wait_stat(admin, "listener_manager.lds.update_success", |v| v >= 1);
    let asked =
        cp.wait_request("the RDS request", |v| v["type_url"] == ROUTES && v["names"] == serde_json::json!(["routes"]));
    assert_eq!(asked["names"], serde_json::json!(["routes"]));
    std::thread::sleep(Duration::from_millis(300));
    assert!(refuses(port), "a listener waiting for its routes accepts");
    let d = dump(admin, "");
    let l1 = configs(&d, "ListenersConfigDump")["dynamic_listeners"][0]["warming_state"]["version_info"].clone();
    version_is(api_type, &l1, "1");

    // The routes arrive: the listener accepts. `late` is a new EDS cluster whose endpoints
    // have not come: it warms, and a request routed to it finds no cluster.
    let routes = route_config("routes", &[("/late", "late"), ("/", "web")]);
    let clusters = vec![eds_cluster("web"), eds_cluster("late")];
    cp.push(&snap(
        "2",
        vec![rds_listener("ingress", port, "routes", None)],
        clusters.clone(),
        vec![web()],
        vec![routes.clone()],
    ));
    wait_origin(port, "a");
    wait_stat(admin, "http.ingress.rds.routes.update_success", |v| v >= 1);
    wait_stat(admin, "cluster_manager.cds.update_success", |v| v >= 2);
    let r = get(port, "/late");
    assert_eq!((r.status, r.text().as_str()), (503, ""), "a warming cluster is not used");
    let d = dump(admin, "");
    let listeners = configs(&d, "ListenersConfigDump");
    assert_eq!(listeners["dynamic_listeners"][0]["active_state"]["version_info"], l1, "unchanged since 1: {d}");
    let cdump = configs(&d, "ClustersConfigDump");
    assert_eq!(cdump["version_info"], "2");
    assert_eq!(cdump["dynamic_warming_clusters"][0]["cluster"]["name"], "late", "{d}");
    assert_eq!(cdump["dynamic_active_clusters"][0]["cluster"]["name"], "web", "{d}");
    version_is(api_type, &cdump["dynamic_active_clusters"][0]["version_info"], "1");
    assert!(cdump["dynamic_active_clusters"][0]["last_updated"].as_str().is_some_and(|t| t.starts_with("20")));
    let routes = configs(&d, "RoutesConfigDump");
    version_is(api_type, &routes["dynamic_route_configs"][0]["version_info"], "2");
    assert_eq!(routes["dynamic_route_configs"][0]["route_config"]["name"], "routes", "{d}");
    assert!(configs(&d, "EndpointsConfigDump").is_null(), "EDS only with ?include_eds: {d}");
    let picked = dump(admin, "?resource=dynamic_warming_clusters");
    assert_eq!(picked["configs"][0]["@type"], "type.googleapis.com/envoy.admin.v3.ClustersConfigDump.DynamicCluster");
    assert_eq!(picked["configs"][0]["cluster"]["name"], "late", "{picked}");

    // Its endpoints arrive: the cluster is used.
    let eps = vec![web(), endpoints("late", b.port())];
    cp.push(&snap(
        "3",
        vec![rds_listener("ingress", port, "routes", None)],
        clusters.clone(),
        eps.clone(),
        vec![routes.clone()],
    ));
    let deadline = Instant::now() + Duration::from_secs(10);
    while get(port, "/late").header("x-origin") != Some("b") {
        assert!(Instant::now() < deadline, "the cluster never left warming");
        std::thread::sleep(Duration::from_millis(50));
    }
    let d = dump(admin, "?include_eds");
    let cdump = configs(&d, "ClustersConfigDump");
    assert_eq!(cdump["dynamic_warming_clusters"], serde_json::json!([]), "{d}");
    let late = cdump["dynamic_active_clusters"].as_array().unwrap().iter().find(|c| c["cluster"]["name"] == "late");
    version_is(api_type, &late.map(|c| c["version_info"].clone()).unwrap_or_default(), "2");
    let eds = configs(&d, "EndpointsConfigDump")["dynamic_endpoint_configs"].as_array().cloned().unwrap_or_default();
    let late = eds.iter().find(|e| e["endpoint_config"]["cluster_name"] == "late").expect("late's endpoints");
    version_is(api_type, &late["version_info"], "3");
    let port_b = late["endpoint_config"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]
        ["port_value"]
        .clone();
    assert_eq!(port_b, serde_json::json!(b.port()), "{d}");

    // initial_fetch_timeout (1 s): a listener whose routes never come, a cluster whose
    // endpoints never come. Both warm, then serve as absent: 404, 503 no healthy upstream.
    let listeners =
        vec![rds_listener("ingress", port, "routes", None), rds_listener("slow", port2, "missing", Some("1s"))];
    let mut clusters = clusters;
    clusters.push(eds_cluster_timeout("ghost", "1s"));
    let routes = route_config("routes", &[("/late", "late"), ("/ghost", "ghost"), ("/", "web")]);
    let pushed = Instant::now();
    cp.push(&snap("4", listeners, clusters, eps, vec![routes]));
    wait_answer(port, "/ghost/x", 503, |b| b.is_empty());
    assert!(refuses(port2) || pushed.elapsed() >= Duration::from_secs(1), "the listener did not warm");
    wait_answer(port2, "/any", 404, |_| true);
    wait_answer(port, "/ghost/x", 503, |b| b == "no healthy upstream");
    assert!(pushed.elapsed() >= Duration::from_millis(900), "warming ended before initial_fetch_timeout");
    wait_stat(admin, "http.slow.rds.missing.init_fetch_timeout", |v| v == 1);
    assert_eq!(get(port, "/late").header("x-origin"), Some("b"));
}

#[test]
fn sotw_rds_listener_and_cluster_warming_and_initial_fetch_timeout() {
    rds_and_warming("GRPC");
}

#[test]
fn delta_rds_listener_and_cluster_warming_and_initial_fetch_timeout() {
    rds_and_warming("DELTA_GRPC");
}

/// A listener routing `/slow` to cluster `slow` and the rest to `web`, or everything to
/// `web` when `slow` is false.
fn listener_with_slow(port: u16, slow: bool) -> serde_json::Value {
    let mut l = listener(port, "web");
    if slow {
        let routes =
            &mut l["filter_chains"][0]["filters"][0]["typed_config"]["route_config"]["virtual_hosts"][0]["routes"];
        let slow_route = serde_json::json!({"match": {"prefix": "/delay"}, "route": {"cluster": "slow"}});
        routes.as_array_mut().unwrap().insert(0, slow_route);
    }
    l
}

/// Start `GET path` on `port` and wait until `origin` has it in hand.
fn in_flight(port: u16, path: &'static str, origin: &HttpOrigin) -> std::thread::JoinHandle<(u16, Option<String>)> {
    let t = std::thread::spawn(move || {
        let r = sluice_e2e::http_client::Client::connect(port).get(path);
        (r.status, r.header("x-origin").map(str::to_string))
    });
    let deadline = Instant::now() + Duration::from_secs(5);
    while !origin.seen().iter().any(|s| s.path == path) {
        assert!(Instant::now() < deadline, "{path} never reached the origin");
        std::thread::sleep(Duration::from_millis(10));
    }
    t
}

/// Removal under ADS: a cluster removed with a request in flight lets it complete; a
/// listener removed with a request in flight drains it, then stops accepting.
fn removal(api_type: &str) {
    let (web, slow) = (HttpOrigin::start("web"), HttpOrigin::start("slow"));
    let mut cp = ControlPlane::start(free_port());
    let (admin, port) = (free_port(), free_port());
    let snap = |v: &str, listeners: Vec<serde_json::Value>, with_slow: bool| {
        let mut clusters = vec![eds_cluster("web")];
        let mut eps = vec![endpoints("web", web.port())];
        if with_slow {
            clusters.push(eds_cluster("slow"));
            eps.push(endpoints("slow", slow.port()));
        }
        serde_json::json!({"version": v, "listeners": listeners, "clusters": clusters, "endpoints": eps})
    };
    cp.push(&snap("1", vec![listener_with_slow(port, true)], true));
    let _p = Proxy::start(&bootstrap(admin, cp.port, api_type), &["--concurrency", "2"]);
    wait_origin(port, "web");

    // The cluster goes (and the route to it) while a request to it is in flight.
    let req = in_flight(port, "/delay/1500/cluster", &slow);
    cp.push(&snap("2", vec![listener_with_slow(port, false)], false));
    wait_stat(admin, "cluster_manager.cds.update_success", |v| v >= 2);
    wait_answer(port, "/delay/0/after", 200, |_| true);
    assert_eq!(get(port, "/delay/0/next").header("x-origin"), Some("web"), "the new routes are in force");
    assert_eq!(req.join().unwrap(), (200, Some("slow".to_string())), "the in-flight request to the removed cluster");

    // The listener goes while a request on it is in flight: it completes, then the
    // port is closed.
    let req = in_flight(port, "/delay/1500/listener", &web);
    cp.push(&snap("3", vec![], false));
    wait_stat(admin, "listener_manager.lds.update_success", |v| v >= 3);
    assert_eq!(req.join().unwrap(), (200, Some("web".to_string())), "the in-flight request on the removed listener");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !refuses(port) {
        assert!(Instant::now() < deadline, "the removed listener still accepts");
        std::thread::sleep(Duration::from_millis(50));
    }
    let d = dump(admin, "");
    assert_eq!(configs(&d, "ListenersConfigDump")["dynamic_listeners"], serde_json::json!([]), "{d}");
}

#[test]
fn sotw_removed_cluster_and_listener_finish_their_in_flight_requests() {
    removal("GRPC");
}

#[test]
fn delta_removed_cluster_and_listener_finish_their_in_flight_requests() {
    removal("DELTA_GRPC");
}
