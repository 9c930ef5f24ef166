//! HTTP/2 over TLS, chosen by ALPN, on the sluice binary: a listener whose
//! DownstreamTlsContext lists `alpn_protocols: [h2, http/1.1]` (a common config) serves
//! curl's `--http2` as HTTP/2 and an HTTP/1.1-only client as HTTP/1.1, both to a plain
//! HTTP/1.1 origin.

use std::process::Command;

use sluice_e2e::config::{forward_all, hcm_filter, Cluster};
use sluice_e2e::http_client::get;
use sluice_e2e::http_origin::HttpOrigin;
use sluice_e2e::proxy::Proxy;
use sluice_e2e::tls::{self, client_config, downstream_tls_yaml, http_get, Pki};
use sluice_e2e::{free_port, localhost};

fn bootstrap(port: u16, admin: u16, transport: &str, clusters: &str) -> String {
    let hcm = hcm_filter("edge", &forward_all("app"), "", "");
    format!(
        r#"admin:
  address: {{ socket_address: {{ address: 127.0.0.1, port_value: {admin} }} }}
static_resources:
  listeners:
  - name: edge
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }}
    stat_prefix: edge
    filter_chains:
    - filters:
{hcm}      transport_socket: {transport}
  clusters:
{clusters}"#
    )
}

fn stat(admin: u16, name: &str) -> i64 {
    let text = get(admin, &format!("/stats?filter=^{}$", name.replace('.', "\\."))).text();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")).map(|v| v.trim().parse().unwrap()))
        .unwrap_or_else(|| panic!("no stat {name} in:\n{text}"))
}

#[test]
fn alpn_h2_is_served_as_http2_and_http11_still_works() {
    let pki = Pki::new();
    let ca = pki.ca("edge");
    let cert = ca.server_cert(&pki, "edge", &["proxy.test"]);
    let origin = HttpOrigin::start("web");
    let (port, admin) = (free_port(), free_port());
    let tls = downstream_tls_yaml(&cert, &["h2", "http/1.1"], None, false);
    let clusters = Cluster { name: "app", ports: &[origin.port()], extra: "" }.yaml();
    let _proxy = Proxy::start(&bootstrap(port, admin, &tls, &clusters), &["--concurrency", "1"]);

    let url = format!("https://proxy.test:{port}/over-h2");
    let resolve = format!("proxy.test:{port}:127.0.0.1");
    let out = Command::new("curl")
        .args(["-s", "--http2", "--cacert"])
        .arg(&ca.pem_path)
        .args(["--resolve", &resolve, "-w", "\n%{http_version} %{http_code}", &url])
        .output()
        .expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "curl failed: {text} {}", String::from_utf8_lossy(&out.stderr));
    assert!(text.ends_with("\n2 200"), "{text}");
    assert!(text.starts_with("GET /over-h2"), "the origin's echo: {text}");
    assert_eq!(origin.seen()[0].header("x-forwarded-proto"), Some("https"));

    // A client offering only http/1.1 on the same listener.
    let config = client_config(&[&ca], &["http/1.1"], None);
    let mut s = tls::connect(localhost(port), "proxy.test", &config).expect("handshake");
    assert_eq!(s.conn.alpn_protocol(), Some(&b"http/1.1"[..]));
    let r = http_get(&mut s, "proxy.test", "/over-h1").unwrap();
    assert_eq!(r.status, 200);

    assert_eq!(stat(admin, "http.edge.downstream_cx_http2_total"), 1);
    assert_eq!(stat(admin, "http.edge.downstream_rq_http2_total"), 1);
    assert_eq!(stat(admin, "http.edge.downstream_cx_http1_total"), 1);
}
