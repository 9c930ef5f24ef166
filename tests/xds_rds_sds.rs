//! RDS from files on the sluice binary (kernel backend): an HCM's routes come from a
//! `RouteConfiguration` file; an update moved into place swaps them for new requests
//! while open connections stay open and a request in flight keeps its route; bad
//! updates are refused and counted under `http.<stat_prefix>.rds.<name>.`; a listener
//! whose routes have not arrived is warming (not accepting) until they do, or until
//! `initial_fetch_timeout` passes.
//!
//! SDS from files: a TLS listener's certificate is a `Secret` from a secrets file; a
//! new secret moved into place, or the secret's certificate files rotated, serve new
//! handshakes while a keep-alive connection opened before keeps working; bad secrets
//! are refused (`sds.<name>.update_rejected`) with the previous one serving; a listener
//! whose secret has not arrived is warming.

use std::path::Path;
use std::time::{Duration, Instant};

use sluice_e2e::config::Cluster;
use sluice_e2e::free_port;
use sluice_e2e::http_client::{get, Client};
use sluice_e2e::http_origin::HttpOrigin;
use sluice_e2e::proxy::Proxy;
use sluice_e2e::tls::{self, client_config, http_get, Pki};

use crate::xds_files::{move_into_place, resources, stat, wait_stat};

const ROUTE: &str = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration";
const LISTENER: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";

/// An HCM (as a filter list item at column `indent`) taking route configuration `name`
/// from `file`; `source_extra`: more config source fields.
fn rds_hcm(stat_prefix: &str, name: &str, file: &Path, source_extra: &str, indent: usize) -> String {
    let pad = " ".repeat(indent);
    format!(
        r#"- name: envoy.filters.network.http_connection_manager
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
    stat_prefix: {stat_prefix}
    rds:
      route_config_name: {name}
      config_source: {{ path_config_source: {{ path: {file} }}{source_extra} }}
    http_filters:
    - name: envoy.filters.http.router
      typed_config: {{ "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }}
"#,
        file = file.display()
    )
    .lines()
    .map(|l| format!("{pad}{l}\n"))
    .collect()
}

/// A route configuration resource `name`: `/` to `cluster`; `extra`: more fields (at
/// column 2).
fn route_config(name: &str, cluster: &str, extra: &str) -> String {
    format!(
        "- \"@type\": {ROUTE}\n  name: {name}\n{extra}  virtual_hosts:\n  - name: all\n    domains: [\"*\"]\n    routes:\n    - match: {{ prefix: \"/\" }}\n      route: {{ cluster: {cluster} }}\n"
    )
}

/// Admin, clusters `a` and `b`, and a static listener on `port` whose routes come from
/// `dir`/rds.yaml (`local`).
fn static_rds_bootstrap(admin: u16, port: u16, dir: &Path, a: u16, b: u16) -> String {
    let (ca, cb) =
        (Cluster { name: "a", ports: &[a], extra: "" }.yaml(), Cluster { name: "b", ports: &[b], extra: "" }.yaml());
    format!(
        r#"admin:
  address: {{ socket_address: {{ address: 127.0.0.1, port_value: {admin} }} }}
static_resources:
  listeners:
  - name: ingress
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }}
    filter_chains:
    - filters:
{hcm}  clusters:
{ca}{cb}"#,
        hcm = rds_hcm("ingress", "local", &dir.join("rds.yaml"), "", 6)
    )
}

const RDS: &str = "http.ingress.rds.local";

#[test]
fn rds_routes_are_served_and_an_update_swaps_them_without_dropping_connections() {
    let (a, b) = (HttpOrigin::start("a"), HttpOrigin::start("b"));
    let dir = tempfile::tempdir().unwrap();
    let (admin, port) = (free_port(), free_port());
    move_into_place(dir.path(), "rds.yaml", &resources("r1", &[route_config("local", "a", "")]));
    let _p = Proxy::start(&static_rds_bootstrap(admin, port, dir.path(), a.port(), b.port()), &["--concurrency", "2"]);
    assert_eq!(get(port, "/first").header("x-origin"), Some("a"));
    assert_eq!(stat(admin, &format!("{RDS}.update_success")), Some(1));
    assert_eq!(stat(admin, &format!("{RDS}.config_reload")), Some(1));
    assert!(stat(admin, &format!("{RDS}.version")).is_some_and(|v| v != 0));
    // A keep-alive connection and a slow request in flight across the update.
    let mut c = Client::connect(port);
    assert_eq!(c.get("/before").header("x-origin"), Some("a"));
    let in_flight = std::thread::spawn(move || Client::connect(port).get("/delay/1500/slow"));
    let deadline = Instant::now() + Duration::from_secs(5);
    while !a.seen().iter().any(|s| s.path.contains("/slow")) {
        assert!(Instant::now() < deadline, "the slow request never reached a");
        std::thread::sleep(Duration::from_millis(10));
    }
    let connections = stat(admin, "http.ingress.downstream_cx_total");
    move_into_place(dir.path(), "rds.yaml", &resources("r2", &[route_config("local", "b", "")]));
    wait_stat(admin, &format!("{RDS}.update_success"), 2);
    let r = c.get("/after");
    assert_eq!(r.header("x-origin"), Some("b"), "the open connection takes the new routes");
    assert_ne!(r.header("connection"), Some("close"), "the open connection is kept");
    assert_eq!(c.get("/again").header("x-origin"), Some("b"));
    assert_eq!(stat(admin, "http.ingress.downstream_cx_total"), connections, "no new connection was needed");
    let slow = in_flight.join().unwrap();
    assert_eq!((slow.status, slow.header("x-origin")), (200, Some("a")), "the request in flight kept its route");
    assert_eq!(stat(admin, &format!("{RDS}.config_reload")), Some(2));
    let flat: String = get(admin, "/config_dump").text().split_whitespace().collect();
    assert!(flat.contains(r#""dynamic_route_configs":[{"version_info":"r2","route_config":{"@type":"type.googleapis.com/envoy.config.route.v3.RouteConfiguration","name":"local""#), "{flat}");
    assert!(flat.contains(r#""rds":{"config_source":{"path_config_source""#), "{flat}");

    // Refused: two resources, another name, an unknown cluster with validate_clusters.
    let two = resources("r3", &[route_config("local", "a", ""), route_config("other", "a", "")]);
    move_into_place(dir.path(), "rds.yaml", &two);
    wait_stat(admin, &format!("{RDS}.update_rejected"), 1);
    move_into_place(dir.path(), "rds.yaml", &resources("r4", &[route_config("other", "a", "")]));
    wait_stat(admin, &format!("{RDS}.update_rejected"), 2);
    let strict = route_config("local", "nope", "  validate_clusters: true\n");
    move_into_place(dir.path(), "rds.yaml", &resources("r5", &[strict]));
    wait_stat(admin, &format!("{RDS}.update_rejected"), 3);
    // Empty: counted, the routes in force stay.
    move_into_place(dir.path(), "rds.yaml", &resources("r6", &[]));
    wait_stat(admin, &format!("{RDS}.update_empty"), 1);
    assert_eq!(c.get("/still").header("x-origin"), Some("b"));
    assert_eq!(get(port, "/new").header("x-origin"), Some("b"));
    assert_eq!(stat(admin, &format!("{RDS}.update_success")), Some(3), "only the empty update succeeded");
    assert_eq!(stat(admin, &format!("{RDS}.config_reload")), Some(2));
}

/// An LDS listener resource `name` on `port` with an RDS HCM.
fn rds_listener(name: &str, port: u16, file: &Path, source_extra: &str) -> String {
    format!(
        "- \"@type\": {LISTENER}\n  name: {name}\n  address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }}\n  filter_chains:\n  - filters:\n{}",
        rds_hcm(name, "local", file, source_extra, 4)
    )
}

fn accepts(port: u16) -> bool {
    std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
}

#[test]
fn a_listener_warms_until_its_routes_arrive_or_its_initial_fetch_times_out() {
    let a = HttpOrigin::start("a");
    let dir = tempfile::tempdir().unwrap();
    let (admin, port, port2) = (free_port(), free_port(), free_port());
    let (waits, times_out) = (dir.path().join("waits.yaml"), dir.path().join("never.yaml"));
    let listeners = [
        rds_listener("waits", port, &waits, ", initial_fetch_timeout: 0s"),
        rds_listener("gives_up", port2, &times_out, ", initial_fetch_timeout: 1s"),
    ];
    move_into_place(dir.path(), "lds.yaml", &resources("l1", &listeners));
    let ca = Cluster { name: "a", ports: &[a.port()], extra: "" }.yaml();
    let boot = format!(
        "admin:\n  address: {{ socket_address: {{ address: 127.0.0.1, port_value: {admin} }} }}\ndynamic_resources:\n  lds_config: {{ path: {}/lds.yaml }}\nstatic_resources:\n  clusters:\n{ca}",
        dir.path().display()
    );
    let _p = Proxy::start(&boot, &["--concurrency", "1"]);
    assert!(!accepts(port) && !accepts(port2), "warming listeners do not accept");
    let flat: String = get(admin, "/config_dump").text().split_whitespace().collect();
    assert!(flat.contains(r#"{"name":"waits","warming_state":{"version_info":"l1""#), "{flat}");
    // After its initial_fetch_timeout, `gives_up` serves with no routes: 404.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !accepts(port2) {
        assert!(Instant::now() < deadline, "the listener never stopped warming");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(get(port2, "/x").status, 404);
    assert_eq!(stat(admin, "http.gives_up.rds.local.init_fetch_timeout"), Some(1));
    assert!(!accepts(port), "no timeout: still warming");
    // Its routes arrive: it opens and serves them.
    move_into_place(dir.path(), "waits.yaml", &resources("r1", &[route_config("local", "a", "")]));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !accepts(port) {
        assert!(Instant::now() < deadline, "the listener did not open once its routes arrived");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(get(port, "/y").header("x-origin"), Some("a"));
    assert_eq!(stat(admin, "http.waits.rds.local.update_success"), Some(1));
    let flat: String = get(admin, "/config_dump").text().split_whitespace().collect();
    assert!(flat.contains(r#"{"name":"waits","active_state""#), "{flat}");
}

// ---- SDS from files ----

const SECRET: &str = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret";

/// A `Secret` resource `name` holding the certificate `cert` (a [`tls::Leaf`]'s YAML).
fn cert_secret(name: &str, cert: &str) -> String {
    format!("- \"@type\": {SECRET}\n  name: {name}\n  tls_certificate: {cert}\n")
}

/// Admin, cluster `a`, and a TLS listener `edge` on `port` whose certificate is secret
/// `server_cert` from `sds` (a secrets file).
fn sds_bootstrap(admin: u16, port: u16, sds: &Path, a: u16) -> String {
    let ca = Cluster { name: "a", ports: &[a], extra: "" }.yaml();
    let hcm = sluice_e2e::config::hcm_filter("edge", &sluice_e2e::config::forward_all("a"), "", "");
    format!(
        r#"admin:
  address: {{ socket_address: {{ address: 127.0.0.1, port_value: {admin} }} }}
static_resources:
  listeners:
  - name: edge
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }}
    filter_chains:
    - filters:
{hcm}      transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
          common_tls_context:
            tls_certificate_sds_secret_configs:
            - name: server_cert
              sds_config: {{ path_config_source: {{ path: "{sds}" }} }}
  clusters:
{ca}"#,
        sds = sds.display()
    )
}

/// The certificate the server presented on `s`.
fn presented(s: &tls::TlsStream) -> Vec<u8> {
    s.conn.peer_certificates().and_then(|c| c.first()).map(|c| c.to_vec()).unwrap_or_default()
}

/// A new TLS connection to `port` for `proxy.test`.
fn tls_connect(port: u16, config: &std::sync::Arc<rustls::ClientConfig>) -> tls::TlsStream {
    tls::connect(([127, 0, 0, 1], port).into(), "proxy.test", config).expect("TLS handshake")
}

/// Wait until a new connection is presented `want`.
fn wait_presented(port: u16, config: &std::sync::Arc<rustls::ClientConfig>, want: &[u8]) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while presented(&tls_connect(port, config)) != want {
        assert!(Instant::now() < deadline, "the new certificate was never presented");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn an_sds_certificate_from_a_file_rotates_without_dropping_connections() {
    let a = HttpOrigin::start("a");
    let (pki, dir) = (Pki::new(), tempfile::tempdir().unwrap());
    let ca = pki.ca("edge");
    let (one, two, three) = (
        ca.server_cert(&pki, "one", &["proxy.test"]),
        ca.server_cert(&pki, "two", &["proxy.test"]),
        ca.server_cert(&pki, "three", &["proxy.test"]),
    );
    let client = client_config(&[&ca], &["http/1.1"], None);
    let (admin, port) = (free_port(), free_port());
    move_into_place(dir.path(), "sds.yaml", &resources("s1", &[cert_secret("server_cert", &one.yaml())]));
    let _p = Proxy::start(&sds_bootstrap(admin, port, &dir.path().join("sds.yaml"), a.port()), &["--concurrency", "2"]);
    let mut kept = tls_connect(port, &client);
    assert_eq!(presented(&kept), one.der.to_vec());
    assert_eq!(http_get(&mut kept, "proxy.test", "/before").unwrap().header("x-origin"), Some("a"));
    assert_eq!(stat(admin, "sds.server_cert.update_success"), Some(1));
    assert!(stat(admin, "sds.server_cert.version").is_some_and(|v| v != 0));

    // A new secret moved into place: new handshakes get it, the open connection stays.
    move_into_place(dir.path(), "sds.yaml", &resources("s2", &[cert_secret("server_cert", &two.yaml())]));
    wait_stat(admin, "sds.server_cert.update_success", 2);
    wait_presented(port, &client, &two.der);
    let r = http_get(&mut kept, "proxy.test", "/after").unwrap();
    assert_eq!((r.status, r.header("x-origin")), (200, Some("a")));
    assert_ne!(r.header("connection"), Some("close"), "the open connection is kept");

    // The secret's own files rotated (moved into place): read again, no new secret.
    for (from, to) in [(&three.chain_path, &two.chain_path), (&three.key_path, &two.key_path)] {
        let tmp = to.with_extension("tmp");
        std::fs::copy(from, &tmp).unwrap();
        std::fs::rename(&tmp, to).unwrap();
    }
    wait_presented(port, &client, &three.der);
    assert_eq!(stat(admin, "sds.server_cert.update_success"), Some(2));
    // (Counted when a poll caught the certificate moved but not yet its key.)
    assert!(stat(admin, "sds.server_cert.key_rotation_failed").is_some());

    // Refused: another name, two secrets, a certificate that is not PEM; the secret in
    // force keeps serving.
    move_into_place(dir.path(), "sds.yaml", &resources("s3", &[cert_secret("other", &one.yaml())]));
    wait_stat(admin, "sds.server_cert.update_rejected", 1);
    let two_secrets = [cert_secret("server_cert", &one.yaml()), cert_secret("server_cert", &one.yaml())];
    move_into_place(dir.path(), "sds.yaml", &resources("s4", &two_secrets));
    wait_stat(admin, "sds.server_cert.update_rejected", 2);
    let garbage = format!(
        "{{ certificate_chain: {{ inline_string: \"not a certificate\" }}, private_key: {{ filename: \"{}\" }} }}",
        one.key_path.display()
    );
    move_into_place(dir.path(), "sds.yaml", &resources("s5", &[cert_secret("server_cert", &garbage)]));
    wait_stat(admin, "sds.server_cert.update_rejected", 3);
    let mut fresh = tls_connect(port, &client);
    assert_eq!(presented(&fresh), three.der.to_vec(), "the secret in force still serves");
    assert_eq!(http_get(&mut fresh, "proxy.test", "/fresh").unwrap().status, 200);
    assert_eq!(http_get(&mut kept, "proxy.test", "/last").unwrap().status, 200, "the first connection still works");
    assert_eq!(stat(admin, "sds.server_cert.update_success"), Some(2));
    let flat: String = get(admin, "/config_dump").text().split_whitespace().collect();
    assert!(
        flat.contains(
            r#""tls_certificate_sds_secret_configs":[{"name":"server_cert","sds_config":{"path_config_source""#
        ),
        "{flat}"
    );
    assert!(!flat.contains("BEGIN"), "no secret in the dump: {flat}");
}

#[test]
fn a_listener_warms_until_its_sds_secret_arrives() {
    let a = HttpOrigin::start("a");
    let (pki, dir) = (Pki::new(), tempfile::tempdir().unwrap());
    let ca = pki.ca("edge");
    let leaf = ca.server_cert(&pki, "leaf", &["proxy.test"]);
    let (admin, port) = (free_port(), free_port());
    let _p = Proxy::start(&sds_bootstrap(admin, port, &dir.path().join("sds.yaml"), a.port()), &["--concurrency", "1"]);
    // The admin server answers, the listener does not: it waits for its secret.
    assert_eq!(stat(admin, "sds.server_cert.update_success"), Some(0));
    assert!(!accepts(port), "a listener without its secret is warming");
    move_into_place(dir.path(), "sds.yaml", &resources("s1", &[cert_secret("server_cert", &leaf.yaml())]));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !accepts(port) {
        assert!(Instant::now() < deadline, "the listener did not open once its secret arrived");
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut s = tls_connect(port, &client_config(&[&ca], &["http/1.1"], None));
    assert_eq!(presented(&s), leaf.der.to_vec());
    assert_eq!(http_get(&mut s, "proxy.test", "/x").unwrap().header("x-origin"), Some("a"));
}
