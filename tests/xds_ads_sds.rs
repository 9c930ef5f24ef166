//! SDS over ADS on the sluice binary (kernel backend), against the real control plane
//! of tests/xds_ads/control_plane.py, state of the world and delta: TLS contexts whose
//! `sds_config` is `ads: {}` have their `Secret`s asked for by name on the ADS stream.
//!
//! A listener whose certificate has not arrived is warming (does not accept, shows
//! `warming_state`); a cluster whose upstream validation context has not arrived is
//! warming too (`dynamic_warming_clusters`; a request routed to it gets the no-cluster
//! 503), as Envoy's cluster init manager waits on its SDS init target. Once the secrets
//! arrive both serve; a new version of the certificate is presented to new handshakes
//! while a connection opened before keeps working; a secret that does not build its TLS
//! context is NACKed with the reason, counted in `sds.<name>.update_rejected`, and the
//! one in force keeps serving.

use std::time::{Duration, Instant};

use serde_json::json;
use sluice_e2e::free_port;
use sluice_e2e::http_client::get;
use sluice_e2e::http_origin::HttpOrigin;
use sluice_e2e::proxy::Proxy;
use sluice_e2e::tls::{self, client_config, http_get, server_config, Leaf, Pki, TlsOrigin};

use crate::xds_ads::{bootstrap, configs, dump, eds_cluster, endpoints, refuses, wait_answer, ControlPlane};
use crate::xds_files::{stat, wait_stat_until as wait_stat};

const LISTENER: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";
const CLUSTER: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
const SECRET: &str = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret";

fn ads_source() -> serde_json::Value {
    json!({"ads": {}, "resource_api_version": "V3"})
}

/// A TLS listener on `port` whose certificate is secret `server_cert` over ADS; `/tls`
/// goes to cluster `secure`, the rest to `web`.
fn tls_listener(port: u16) -> serde_json::Value {
    json!({
        "@type": LISTENER,
        "name": "edge",
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
        "filter_chains": [{
            "filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                "stat_prefix": "edge",
                "route_config": {"name": "local", "virtual_hosts": [{"name": "all", "domains": ["*"], "routes": [
                    {"match": {"prefix": "/tls"}, "route": {"cluster": "secure"}},
                    {"match": {"prefix": "/"}, "route": {"cluster": "web"}}]}]},
                "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}]
            }}],
            "transport_socket": {"name": "envoy.transport_sockets.tls", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
                "common_tls_context": {"tls_certificate_sds_secret_configs": [
                    {"name": "server_cert", "sds_config": ads_source()}]}
            }}
        }]
    })
}

/// A cluster to the TLS origin on `port` that trusts the CA of secret `origin_ca` over ADS.
fn secure_cluster(port: u16) -> serde_json::Value {
    json!({
        "@type": CLUSTER,
        "name": "secure",
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {"cluster_name": "secure", "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {
            "socket_address": {"address": "127.0.0.1", "port_value": port}}}}]}]},
        "transport_socket": {"name": "envoy.transport_sockets.tls", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
            "sni": "origin.test",
            "common_tls_context": {"validation_context_sds_secret_config": {"name": "origin_ca", "sds_config": ads_source()}}
        }}
    })
}

/// Secret `server_cert` with `leaf`'s chain and key inline (as a control plane sends them).
fn cert_secret(leaf: &Leaf) -> serde_json::Value {
    let pem = |p: &std::path::Path| std::fs::read_to_string(p).unwrap();
    json!({"@type": SECRET, "name": "server_cert", "tls_certificate": {
        "certificate_chain": {"inline_string": pem(&leaf.chain_path)},
        "private_key": {"inline_string": pem(&leaf.key_path)}}})
}

/// The certificate the server presented on `s`.
fn presented(s: &tls::TlsStream) -> Vec<u8> {
    s.conn.peer_certificates().and_then(|c| c.first()).map(|c| c.to_vec()).unwrap_or_default()
}

fn sds_over_ads(api_type: &str) {
    let web = HttpOrigin::start("web");
    let pki = Pki::new();
    let (edge_ca, origin_ca) = (pki.ca("edge"), pki.ca("origin"));
    let (one, two) =
        (edge_ca.server_cert(&pki, "one", &["proxy.test"]), edge_ca.server_cert(&pki, "two", &["proxy.test"]));
    let origin_cert = origin_ca.server_cert(&pki, "origin", &["origin.test"]);
    let origin = TlsOrigin::http(server_config(&origin_cert, &["http/1.1"]), "tls-origin");
    let client = client_config(&[&edge_ca], &["http/1.1"], None);
    let ca_secret = json!({"@type": SECRET, "name": "origin_ca",
        "validation_context": {"trusted_ca": {"filename": origin_ca.pem_path.display().to_string()}}});

    let mut cp = ControlPlane::start(free_port());
    let (admin, port) = (free_port(), free_port());
    let snap = |v: &str, secrets: Vec<serde_json::Value>| {
        json!({"version": v, "listeners": [tls_listener(port)], "clusters": [eds_cluster("web"), secure_cluster(origin.port())],
               "endpoints": [endpoints("web", web.port())], "secrets": secrets})
    };
    cp.push(&snap("1", vec![]));
    let _p = Proxy::start(&bootstrap(admin, cp.port, api_type), &["--concurrency", "2"]);

    // Listener and cluster accepted; their secrets asked for by name; both warm.
    wait_stat(admin, "listener_manager.lds.update_success", |v| v >= 1);
    wait_stat(admin, "cluster_manager.cds.update_success", |v| v >= 1);
    cp.wait_request("the SDS request for server_cert", |v| {
        v["type_url"] == SECRET && v["names"].as_array().is_some_and(|n| n.contains(&json!("server_cert")))
    });
    std::thread::sleep(Duration::from_millis(300));
    assert!(refuses(port), "a listener waiting for its certificate accepts");
    let d = dump(admin, "");
    let l = &configs(&d, "ListenersConfigDump")["dynamic_listeners"][0];
    assert!(l["warming_state"].is_object(), "{d}");
    let c = configs(&d, "ClustersConfigDump");
    assert_eq!(c["dynamic_warming_clusters"][0]["cluster"]["name"], "secure", "{d}");

    // The certificate arrives: the listener serves with it; `secure` still warms.
    cp.push(&snap("2", vec![cert_secret(&one)]));
    let deadline = Instant::now() + Duration::from_secs(10);
    while refuses(port) {
        assert!(Instant::now() < deadline, "the listener did not open once its certificate arrived");
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut first = tls::connect(([127, 0, 0, 1], port).into(), "proxy.test", &client).expect("TLS handshake");
    assert_eq!(presented(&first), one.der.to_vec());
    let r = http_get(&mut first, "proxy.test", "/web").unwrap();
    assert_eq!((r.status, r.header("x-origin")), (200, Some("web")));
    let mut early = tls::connect(([127, 0, 0, 1], port).into(), "proxy.test", &client).expect("TLS handshake");
    let r = http_get(&mut early, "proxy.test", "/tls/early").unwrap();
    assert_eq!((r.status, r.text().as_str()), (503, ""), "a cluster waiting for its secret is not used");
    assert_eq!(origin.handshakes(), 0);
    wait_stat(admin, "sds.server_cert.update_success", |v| v >= 1);
    assert!(stat(admin, "sds.server_cert.version").is_some_and(|v| v != 0));

    // The CA arrives: the cluster leaves warming and its TLS upstream is used.
    cp.push(&snap("3", vec![cert_secret(&one), ca_secret.clone()]));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut s = tls::connect(([127, 0, 0, 1], port).into(), "proxy.test", &client).expect("TLS handshake");
        let r = http_get(&mut s, "proxy.test", "/tls/x").unwrap();
        if r.status == 200 {
            assert_eq!(r.header("x-origin"), Some("tls-origin"));
            break;
        }
        assert!(Instant::now() < deadline, "the cluster never left warming: {}", r.status);
        std::thread::sleep(Duration::from_millis(50));
    }
    let c = configs(&dump(admin, ""), "ClustersConfigDump");
    assert_eq!(c["dynamic_warming_clusters"], json!([]), "{c}");
    // (A connection stays across a config whose clusters are unchanged: open it now.)
    let mut kept = tls::connect(([127, 0, 0, 1], port).into(), "proxy.test", &client).expect("TLS handshake");
    assert_eq!(http_get(&mut kept, "proxy.test", "/web/before").unwrap().status, 200);

    // A new certificate: new handshakes get it, the connection opened before stays.
    cp.push(&snap("4", vec![cert_secret(&two), ca_secret.clone()]));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = tls::connect(([127, 0, 0, 1], port).into(), "proxy.test", &client).expect("TLS handshake");
        if presented(&s) == two.der.to_vec() {
            break;
        }
        assert!(Instant::now() < deadline, "the new certificate was never presented");
        std::thread::sleep(Duration::from_millis(50));
    }
    let r = http_get(&mut kept, "proxy.test", "/web/after").unwrap();
    assert_eq!((r.status, r.header("x-origin")), (200, Some("web")));
    assert_ne!(r.header("connection"), Some("close"), "the open connection is kept");

    // A certificate that is not one: NACKed with the reason; the one in force serves.
    let mut bad = cert_secret(&two);
    bad["tls_certificate"]["certificate_chain"] = json!({"inline_string": "not a certificate"});
    cp.push(&snap("5", vec![bad, ca_secret]));
    let nack = cp.wait_request("the SDS NACK", |v| v["type_url"] == SECRET && !v["error"].is_null());
    let detail = nack["error"].as_str().unwrap_or_default();
    assert!(detail.contains("certificate"), "error_detail: {detail}");
    if api_type == "GRPC" {
        assert_eq!(nack["version_info"], "4", "a NACK carries the version in force");
    }
    wait_stat(admin, "sds.server_cert.update_rejected", |v| v >= 1);
    let mut fresh = tls::connect(([127, 0, 0, 1], port).into(), "proxy.test", &client).expect("TLS handshake");
    assert_eq!(presented(&fresh), two.der.to_vec(), "the secret in force still serves");
    assert_eq!(http_get(&mut fresh, "proxy.test", "/tls/fresh").unwrap().header("x-origin"), Some("tls-origin"));
    let r = http_get(&mut kept, "proxy.test", "/web/last").unwrap();
    assert_eq!(r.status, 200, "the first connection still works");
    wait_answer(admin, "/ready", 200, |_| true);
    assert!(!get(admin, "/config_dump").text().contains("BEGIN"), "no secret in the dump");
}

#[test]
fn sotw_sds_secrets_warm_listener_and_cluster_rotate_and_nack() {
    sds_over_ads("GRPC");
}

#[test]
fn delta_sds_secrets_warm_listener_and_cluster_rotate_and_nack() {
    sds_over_ads("DELTA_GRPC");
}
