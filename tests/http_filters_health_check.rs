//! The health check filter end to end (the binary, kernel sockets, its admin): checks
//! answered by the proxy with 200, then 503 after admin `/healthcheck/fail` (other
//! responses then carry `x-envoy-immediate-health-check-fail: true`), back to 200 after
//! `/healthcheck/ok`; in pass-through mode checks reach the origin unless failing.

use sluice_e2e::config::{forward_all, hcm_filter, Cluster};
use sluice_e2e::free_port;
use sluice_e2e::http_client::{get, Client};
use sluice_e2e::http_origin::HttpOrigin;
use sluice_e2e::proxy::Proxy;

fn filter(pass_through: bool) -> String {
    format!(
        "- name: envoy.filters.http.health_check\n  typed_config:\n    \"@type\": type.googleapis.com/envoy.extensions.filters.http.health_check.v3.HealthCheck\n    pass_through_mode: {pass_through}\n    headers: [{{ name: \":path\", string_match: {{ exact: /healthz }} }}]\n"
    )
}

fn start(origin: &HttpOrigin, pass_through: bool) -> (Proxy, u16, u16) {
    let (port, admin) = (free_port(), free_port());
    let hcm = hcm_filter("edge", &forward_all("app"), "", &filter(pass_through));
    let clusters = Cluster { name: "app", ports: &[origin.port()], extra: "" }.yaml();
    let yaml = format!(
        "admin:\n  address: {{ socket_address: {{ address: 127.0.0.1, port_value: {admin} }} }}\nstatic_resources:\n  listeners:\n  - name: edge\n    address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }}\n    filter_chains:\n    - filters:\n{hcm}  clusters:\n{clusters}"
    );
    (Proxy::start(&yaml, &[]), port, admin)
}

fn admin_post(admin: u16, path: &str) {
    assert_eq!(Client::connect(admin).request("POST", path, &[], b"").status, 200, "{path}");
}

#[test]
fn answered_by_the_proxy_and_failed_by_the_admin() {
    let origin = HttpOrigin::start("app");
    let (_p, port, admin) = start(&origin, false);
    let r = get(port, "/healthz");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-envoy-upstream-healthchecked-cluster"), Some(""));
    assert_eq!(origin.requests(), 0, "a check never reaches the origin");
    assert_eq!(get(port, "/other").status, 200);
    admin_post(admin, "/healthcheck/fail");
    assert_eq!(get(port, "/healthz").status, 503);
    let r = get(port, "/other");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-envoy-immediate-health-check-fail"), Some("true"));
    admin_post(admin, "/healthcheck/ok");
    assert_eq!(get(port, "/healthz").status, 200);
    assert_eq!(get(port, "/other").header("x-envoy-immediate-health-check-fail"), None);
    assert_eq!(origin.requests(), 3);
}

#[test]
fn pass_through_goes_upstream_unless_failing() {
    let origin = HttpOrigin::start("app");
    let (_p, port, admin) = start(&origin, true);
    assert_eq!(get(port, "/healthz").status, 200);
    assert_eq!(origin.requests(), 1, "passed through");
    admin_post(admin, "/healthcheck/fail");
    assert_eq!(get(port, "/healthz").status, 503);
    assert_eq!(origin.requests(), 1, "a failing server answers the check itself");
}
