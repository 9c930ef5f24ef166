//! Unknown fields in dynamic resources, as Envoy's dynamic validation treats them: a
//! field that is not part of its message in an xDS file is warned, skipped and counted
//! in `server.dynamic_unknown_fields`, and the resource is served; with
//! `--reject-unknown-dynamic-fields` the update is refused (`update_rejected`) and the
//! resources in force keep serving. Over ADS (SotW and delta, against the real control
//! plane of tests/xds_ads/control_plane.py) a field number the resource's message does
//! not have takes the same two ways: warned, counted and ACKed, or NACKed naming it.

use std::path::Path;
use std::time::{Duration, Instant};

use sluice_e2e::config::{forward_all, hcm_filter, Cluster};
use sluice_e2e::free_port;
use sluice_e2e::http_client::get;
use sluice_e2e::http_origin::HttpOrigin;
use sluice_e2e::proxy::Proxy;

use crate::xds_files::{move_into_place, resources, stat, wait_stat};

const LISTENER: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";

/// Admin, static cluster `a`, listeners from `dir`/lds.yaml.
fn bootstrap(admin: u16, dir: &Path, a: u16) -> String {
    let ca = Cluster { name: "a", ports: &[a], extra: "" }.yaml();
    format!(
        "admin:\n  address: {{ socket_address: {{ address: 127.0.0.1, port_value: {admin} }} }}\ndynamic_resources:\n  lds_config: {{ path: {}/lds.yaml }}\nstatic_resources:\n  clusters:\n{ca}",
        dir.display()
    )
}

/// A listener resource on `port` to cluster `a`; `extra`: more listener fields (column 2).
fn listener(name: &str, port: u16, extra: &str) -> String {
    let hcm = hcm_filter(name, &forward_all("a"), "", "");
    format!(
        "- \"@type\": {LISTENER}\n  name: {name}\n{extra}  address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }}\n  filter_chains:\n  - filters:\n{}",
        hcm.lines().map(|l| format!("{}\n", &l[2..])).collect::<String>()
    )
}

fn wait_open(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the listener on {port} never opened");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn an_unknown_field_in_an_xds_file_is_warned_counted_and_the_resource_served() {
    let a = HttpOrigin::start("a");
    let dir = tempfile::tempdir().unwrap();
    let (admin, port, port2) = (free_port(), free_port(), free_port());
    move_into_place(dir.path(), "lds.yaml", &resources("l1", &[listener("dyn", port, "  not_a_listener_field: 1\n")]));
    let p = Proxy::start(&bootstrap(admin, dir.path(), a.port()), &["--concurrency", "1"]);
    assert_eq!(get(port, "/x").header("x-origin"), Some("a"));
    assert_eq!(stat(admin, "listener_manager.lds.update_success"), Some(1));
    assert_eq!(stat(admin, "server.dynamic_unknown_fields"), Some(1));
    // An update with two more (one inside a filter's typed_config) is served as well.
    let inner = listener("dyn2", port2, "  also_unknown: x\n")
        .replace("stat_prefix: dyn2", "stat_prefix: dyn2\n        nope_not_hcm: true");
    move_into_place(dir.path(), "lds.yaml", &resources("l2", &[listener("dyn", port, ""), inner]));
    wait_stat(admin, "listener_manager.lds.update_success", 2);
    wait_open(port2);
    assert_eq!(get(port2, "/y").header("x-origin"), Some("a"));
    assert_eq!(stat(admin, "server.dynamic_unknown_fields"), Some(3));
    assert!(p.log().contains("not_a_listener_field"), "the unknown field is logged");
}

#[test]
fn with_reject_unknown_dynamic_fields_an_xds_file_with_an_unknown_field_is_refused() {
    let a = HttpOrigin::start("a");
    let dir = tempfile::tempdir().unwrap();
    let (admin, port, port2) = (free_port(), free_port(), free_port());
    move_into_place(dir.path(), "lds.yaml", &resources("l1", &[listener("dyn", port, "")]));
    let _p = Proxy::start(
        &bootstrap(admin, dir.path(), a.port()),
        &["--concurrency", "1", "--reject-unknown-dynamic-fields"],
    );
    assert_eq!(get(port, "/x").header("x-origin"), Some("a"));
    let bad = [listener("dyn", port, ""), listener("dyn2", port2, "  not_a_listener_field: 1\n")];
    move_into_place(dir.path(), "lds.yaml", &resources("l2", &bad));
    wait_stat(admin, "listener_manager.lds.update_rejected", 1);
    assert_eq!(stat(admin, "listener_manager.lds.update_success"), Some(1));
    assert_eq!(stat(admin, "server.dynamic_unknown_fields"), Some(0));
    assert!(std::net::TcpStream::connect(("127.0.0.1", port2)).is_err(), "the refused listener is not opened");
    assert_eq!(get(port, "/still").header("x-origin"), Some("a"), "the listener in force keeps serving");
    // The same resources without the field are accepted.
    move_into_place(
        dir.path(),
        "lds.yaml",
        &resources("l3", &[listener("dyn", port, ""), listener("dyn2", port2, "")]),
    );
    wait_stat(admin, "listener_manager.lds.update_success", 2);
    wait_open(port2);
}

// ---- over ADS ----

/// Unknown fields in an ADS response (a field number the Listener message does not
/// have, appended to the resource's wire bytes by the control plane): by default the
/// listener is served, the field warned and counted, the update ACKed; with
/// `--reject-unknown-dynamic-fields` the update is NACKed naming the field and the
/// listener in force keeps serving.
fn ads_unknown_field(api_type: &str, reject: bool) {
    use crate::xds_ads::{bootstrap, eds_cluster, endpoints, listener_on, refuses, wait_origin, ControlPlane};
    let a = HttpOrigin::start("a");
    let mut cp = ControlPlane::start(free_port());
    let (admin, port, port2) = (free_port(), free_port(), free_port());
    let snap = |v: &str, listeners: Vec<serde_json::Value>| {
        serde_json::json!({"version": v, "listeners": listeners, "clusters": [eds_cluster("web")],
                           "endpoints": [endpoints("web", a.port())]})
    };
    cp.push(&snap("1", vec![listener_on("good", port, "web")]));
    let flags: &[&str] =
        if reject { &["--concurrency", "1", "--reject-unknown-dynamic-fields"] } else { &["--concurrency", "1"] };
    let p = Proxy::start(&bootstrap(admin, cp.port, api_type), flags);
    wait_origin(port, "a");

    let mut odd = listener_on("odd", port2, "web");
    odd["@unknown_field"] = serde_json::json!(999);
    cp.push(&snap("2", vec![listener_on("good", port, "web"), odd]));
    if reject {
        let nack = cp.wait_request("the LDS NACK", |v| v["type_url"] == LISTENER && !v["error"].is_null());
        let detail = nack["error"].as_str().unwrap_or_default();
        assert!(
            detail.contains("unknown field number 999") && detail.contains("--reject-unknown-dynamic-fields"),
            "{detail}"
        );
        wait_stat(admin, "listener_manager.lds.update_rejected", 1);
        assert_eq!(stat(admin, "server.dynamic_unknown_fields"), Some(0));
        assert!(refuses(port2), "the refused listener is not opened");
        assert_eq!(get(port, "/still").header("x-origin"), Some("a"), "the listener in force keeps serving");
    } else {
        wait_origin(port2, "a");
        assert_eq!(stat(admin, "server.dynamic_unknown_fields"), Some(1));
        assert_eq!(stat(admin, "listener_manager.lds.update_rejected"), Some(0));
        assert!(p.log().contains("unknown field number 999"), "the unknown field is logged");
    }
}

#[test]
fn sotw_an_unknown_field_over_ads_is_warned_counted_and_served() {
    ads_unknown_field("GRPC", false);
}

#[test]
fn delta_an_unknown_field_over_ads_is_warned_counted_and_served() {
    ads_unknown_field("DELTA_GRPC", false);
}

#[test]
fn sotw_with_reject_unknown_dynamic_fields_an_ads_update_with_an_unknown_field_is_nacked() {
    ads_unknown_field("GRPC", true);
}

#[test]
fn delta_with_reject_unknown_dynamic_fields_an_ads_update_with_an_unknown_field_is_nacked() {
    ads_unknown_field("DELTA_GRPC", true);
}
