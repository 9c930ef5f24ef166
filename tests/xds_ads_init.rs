//! The server's initialization under ADS (kernel backend), against the real control
//! plane of tests/xds_ads/control_plane.py, state of the world and delta: as Envoy's
//! init manager, no listener accepts (a static one neither) and `/ready` answers 503
//! until LDS and CDS had their first response; `initial_fetch_timeout` on
//! `lds_config`/`cds_config` bounds that wait: past it initialization goes on (the
//! static listener serves, `/ready` 200) and `init_fetch_timeout` counts it under
//! `listener_manager.lds.` and `cluster_manager.cds.`. The subscriptions go on: a
//! snapshot pushed later is served.

use std::time::{Duration, Instant};

use sluice_e2e::config::{forward_all, hcm_filter, Cluster};
use sluice_e2e::free_port;
use sluice_e2e::http_client::get;
use sluice_e2e::http_origin::HttpOrigin;
use sluice_e2e::proxy::Proxy;

use crate::xds_ads::{bootstrap, eds_cluster, endpoints, refuses, ControlPlane};
use crate::xds_files::{stat, wait_stat_until as wait_stat};

/// `bootstrap` with `initial_fetch_timeout: 1s` on LDS and CDS, a static listener on
/// `port` and its static cluster `a` (at `a`).
fn with_static_listener(admin: u16, xds: u16, api_type: &str, port: u16, a: u16) -> String {
    let b = bootstrap(admin, xds, api_type)
        .replace("resource_api_version: V3 }", "resource_api_version: V3, initial_fetch_timeout: 1s }")
        .replace(
            "static_resources:\n",
            &format!(
                "static_resources:\n  listeners:\n  - name: static\n    address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }}\n    filter_chains:\n    - filters:\n{}",
                hcm_filter("static", &forward_all("a"), "", "")
            ),
        );
    format!("{b}{}", Cluster { name: "a", ports: &[a], extra: "" }.yaml())
}

fn init_times_out(api_type: &str) {
    let (a, b) = (HttpOrigin::start("a"), HttpOrigin::start("b"));
    // A control plane with no snapshot yet: it answers nothing.
    let mut cp = ControlPlane::start(free_port());
    let (admin, port, dyn_port) = (free_port(), free_port(), free_port());
    let started = Instant::now();
    let _p = Proxy::start(&with_static_listener(admin, cp.port, api_type, port, a.port()), &["--concurrency", "2"]);
    cp.wait_request("the LDS request", |v| v["type_url"] == "type.googleapis.com/envoy.config.listener.v3.Listener");
    let r = get(admin, "/ready");
    if started.elapsed() < Duration::from_millis(900) {
        assert_eq!(r.status, 503, "ready while initializing: {}", r.text());
        assert_eq!(r.text().trim(), "INITIALIZING", "Envoy's server state while the init manager waits");
        assert!(refuses(port), "a static listener accepts while LDS and CDS have not answered");
    }
    assert_eq!(stat(admin, "listener_manager.lds.init_fetch_timeout"), Some(0));

    // Past initial_fetch_timeout: initialization goes on without them.
    let deadline = Instant::now() + Duration::from_secs(10);
    while refuses(port) {
        assert!(Instant::now() < deadline, "the static listener never opened");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(started.elapsed() >= Duration::from_millis(900), "opened before initial_fetch_timeout");
    assert_eq!(get(port, "/x").header("x-origin"), Some("a"));
    let r = get(admin, "/ready");
    assert_eq!((r.status, r.text().trim()), (200, "LIVE"));
    assert_eq!(stat(admin, "listener_manager.lds.init_fetch_timeout"), Some(1));
    assert_eq!(stat(admin, "cluster_manager.cds.init_fetch_timeout"), Some(1));
    assert_eq!(stat(admin, "listener_manager.lds.update_success"), Some(0));

    // The subscriptions go on: a snapshot pushed now is served.
    let listener = crate::xds_ads::listener_on("dynamic", dyn_port, "web");
    cp.push(&serde_json::json!({"version": "1", "listeners": [listener], "clusters": [eds_cluster("web")],
                                "endpoints": [endpoints("web", b.port())]}));
    wait_stat(admin, "listener_manager.lds.update_success", |v| v >= 1);
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::panic::catch_unwind(|| get(dyn_port, "/y").header("x-origin").map(str::to_string)).ok().flatten()
        != Some("b".to_string())
    {
        assert!(Instant::now() < deadline, "the dynamic listener never served");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(get(port, "/z").header("x-origin"), Some("a"), "the static listener still serves");
    assert_eq!(stat(admin, "listener_manager.lds.init_fetch_timeout"), Some(1));
}

#[test]
fn sotw_lds_and_cds_initial_fetch_timeout_ends_initialization() {
    init_times_out("GRPC");
}

#[test]
fn delta_lds_and_cds_initial_fetch_timeout_ends_initialization() {
    init_times_out("DELTA_GRPC");
}
