//! TLS transport sockets end to end, against independent rustls peers and certificates
//! made at test time (rcgen):
//! - a filter chain's DownstreamTlsContext terminates TLS, negotiates ALPN `http/1.1`
//!   and serves HTTP through the HCM to a plaintext origin;
//! - with `require_client_certificate` (and a validation context) a client without a
//!   certificate, or with one from another CA, is refused; one with a valid certificate
//!   is served;
//! - a cluster's UpstreamTlsContext (`sni`, `trusted_ca`) validates the origin's
//!   certificate: the right CA is served, a wrong CA fails closed (503, connection
//!   failure, nothing reaches the origin), and with `auto_sni_san_validation` a
//!   certificate for another name fails closed as well;
//! - plaintext on a TLS chain is closed at once, and connections that fail (TLS
//!   protocol errors, resets mid-request) give their sockets back (sluice's open file
//!   descriptors return to the baseline).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use sluice_e2e::config::{forward_all, hcm_filter, Cluster};
use sluice_e2e::http_client::{get, Client};
use sluice_e2e::http_origin::HttpOrigin;
use sluice_e2e::proxy::Proxy;
use sluice_e2e::tls::{
    self, client_config, downstream_tls_yaml, http_get, server_config, upstream_tls_yaml, Ca, Pki, TlsOrigin,
};
use sluice_e2e::{free_port, localhost};

/// A bootstrap with one listener on 127.0.0.1:`port` whose single chain has
/// `transport` (a `transport_socket:` value, or none) and an HCM with `vhosts`.
fn bootstrap(port: u16, admin: u16, transport: Option<&str>, vhosts: &str, clusters: &str) -> String {
    let transport = transport.map(|t| format!("      transport_socket: {t}\n")).unwrap_or_default();
    let hcm = hcm_filter("edge", vhosts, "", "");
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
{hcm}{transport}  clusters:
{clusters}"#
    )
}

/// A TLS-terminating edge for `proxy.test` (ALPN http/1.1, a certificate of CA `edge`)
/// in front of one plain HTTP origin, routing everything to it.
struct Edge {
    proxy: Proxy,
    origin: HttpOrigin,
    ca: Ca,
    pki: Pki,
    port: u16,
    admin: u16,
}

impl Edge {
    /// Start the edge (sluice with `args`) and its origin named `origin`.
    fn start(origin: &str, args: &[&str]) -> Edge {
        let pki = Pki::new();
        let ca = pki.ca("edge");
        let cert = ca.server_cert(&pki, "edge", &["proxy.test"]);
        let origin = HttpOrigin::start(origin);
        let (port, admin) = (free_port(), free_port());
        let tls = downstream_tls_yaml(&cert, &["http/1.1"], None, false);
        let clusters = Cluster { name: "app", ports: &[origin.port()], extra: "" }.yaml();
        let proxy = Proxy::start(&bootstrap(port, admin, Some(&tls), &forward_all("app"), &clusters), args);
        Edge { proxy, origin, ca, pki, port, admin }
    }
}

/// The value of counter `name` from the admin endpoint.
fn stat(admin: u16, name: &str) -> i64 {
    let text = get(admin, &format!("/stats?filter=^{}$", name.replace('.', "\\."))).text();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")).map(|v| v.trim().parse().unwrap()))
        .unwrap_or_else(|| panic!("no stat {name} in:\n{text}"))
}

#[test]
fn termination_negotiates_http11_and_serves_http() {
    let Edge { pki, ca, origin, port, admin, proxy: _p } = Edge::start("plain-origin", &["--concurrency", "2"]);

    // The client offers h2 first; the chain only speaks http/1.1, so that is chosen.
    let config = client_config(&[&ca], &["h2", "http/1.1"], None);
    let mut s = tls::connect(localhost(port), "proxy.test", &config).expect("handshake");
    assert_eq!(s.conn.alpn_protocol(), Some(&b"http/1.1"[..]), "negotiated ALPN");
    for path in ["/first", "/second"] {
        let r = http_get(&mut s, "proxy.test", path).unwrap();
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        assert_eq!(r.header("x-origin"), Some("plain-origin"));
        assert!(r.text().starts_with(&format!("GET {path}\n")), "origin saw {:?}", r.text());
    }
    assert_eq!(origin.connections(), 1, "both requests on one pooled upstream connection");
    assert_eq!(origin.seen().iter().map(|s| s.path.clone()).collect::<Vec<_>>(), ["/first", "/second"]);

    // A client that does not trust the edge CA gives up; nothing is forwarded.
    let other = pki.ca("other");
    assert!(tls::connect(localhost(port), "proxy.test", &client_config(&[&other], &[], None)).is_err());
    // Plaintext HTTP on the TLS chain gets no HTTP answer: the connection is closed
    // at once (a TLS protocol error), not left open.
    let mut plain = Client::connect(port);
    plain.send(b"GET /plain HTTP/1.1\r\nhost: proxy.test\r\n\r\n");
    let start = Instant::now();
    plain.stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut got = Vec::new();
    let end = plain.stream.read_to_end(&mut got);
    assert!(start.elapsed() < Duration::from_secs(5), "still open after {:?}: {end:?}", start.elapsed());
    assert!(!got.starts_with(b"HTTP/"), "plaintext served by a TLS chain: {:?}", String::from_utf8_lossy(&got));
    if !got.is_empty() {
        assert_eq!(got[0], 21, "only a TLS alert record comes back: {got:?}");
    }
    assert_eq!(origin.requests(), 2);
    assert_eq!(stat(admin, "listener.edge.ssl.handshake"), 1);
    // The client's "unknown CA" alert and the plaintext: two connection errors.
    assert_eq!(stat(admin, "listener.edge.ssl.connection_error"), 2);
}

#[test]
fn required_client_certificate_refuses_clients_without_a_valid_one() {
    let pki = Pki::new();
    let server_ca = pki.ca("server");
    let client_ca = pki.ca("clients");
    let rogue_ca = pki.ca("rogue");
    let cert = server_ca.server_cert(&pki, "edge", &["proxy.test"]);
    let good = client_ca.client_cert(&pki, "alice", &["alice.clients.test"]);
    let rogue = rogue_ca.client_cert(&pki, "mallory", &["mallory.clients.test"]);
    let origin = HttpOrigin::start("origin");
    let (port, admin) = (free_port(), free_port());
    let tls = downstream_tls_yaml(&cert, &["http/1.1"], Some(&client_ca.pem_path), true);
    let clusters = Cluster { name: "app", ports: &[origin.port()], extra: "" }.yaml();
    let _p = Proxy::start(&bootstrap(port, admin, Some(&tls), &forward_all("app"), &clusters), &[]);

    // No certificate: the handshake or the first exchange fails (with TLS 1.3 the
    // client finishes before the server has judged its certificate).
    let attempt = |cert| -> Result<u16, String> {
        let config = client_config(&[&server_ca], &["http/1.1"], cert);
        let mut s = tls::connect(localhost(port), "proxy.test", &config).map_err(|e| format!("handshake: {e}"))?;
        http_get(&mut s, "proxy.test", "/mtls").map(|r| r.status).map_err(|e| format!("request: {e}"))
    };
    let refused = attempt(None);
    assert!(refused.is_err(), "a client without a certificate was served: {refused:?}");
    let refused = attempt(Some(&rogue));
    assert!(refused.is_err(), "a client with another CA's certificate was served: {refused:?}");
    assert_eq!(origin.requests(), 0, "nothing reached the origin");

    assert_eq!(attempt(Some(&good)), Ok(200));
    assert_eq!(origin.requests(), 1);
    assert_eq!(stat(admin, "listener.edge.ssl.fail_verify_no_cert"), 1);
    assert_eq!(stat(admin, "listener.edge.ssl.fail_verify_error"), 1);
    assert_eq!(stat(admin, "listener.edge.ssl.connection_error"), 0);
    assert_eq!(stat(admin, "listener.edge.ssl.handshake"), 1);
}

#[test]
fn upstream_tls_validates_the_origin_and_fails_closed() {
    let pki = Pki::new();
    let origin_ca = pki.ca("origin");
    let rogue_ca = pki.ca("rogue");
    let origin_cert = origin_ca.server_cert(&pki, "origin", &["origin.test"]);
    let origin = TlsOrigin::http(server_config(&origin_cert, &["http/1.1"]), "tls-origin");
    let (port, admin) = (free_port(), free_port());
    let cluster = |name: &str, sni: &str, ca: &std::path::Path, auto_san: bool| {
        let extra = format!("    transport_socket: {}\n", upstream_tls_yaml(sni, Some(ca), auto_san));
        Cluster { name, ports: &[origin.port()], extra: &extra }.yaml()
    };
    let clusters = [
        cluster("good", "origin.test", &origin_ca.pem_path, true),
        cluster("wrong_ca", "origin.test", &rogue_ca.pem_path, false),
        cluster("wrong_name", "elsewhere.test", &origin_ca.pem_path, true),
        // Envoy checks names only when asked: a trusted chain for another name passes.
        cluster("chain_only", "elsewhere.test", &origin_ca.pem_path, false),
    ]
    .concat();
    let route = |prefix: &str, cluster: &str| {
        format!("  - match: {{ prefix: \"/{prefix}\" }}\n    route: {{ cluster: {cluster} }}\n")
    };
    let vhosts = format!(
        "- name: all\n  domains: [\"*\"]\n  routes:\n{}{}{}{}",
        route("good", "good"),
        route("wrong-ca", "wrong_ca"),
        route("wrong-name", "wrong_name"),
        route("chain-only", "chain_only"),
    );
    let _p = Proxy::start(&bootstrap(port, admin, None, &vhosts, &clusters), &[]);

    let r = get(port, "/good");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-origin"), Some("tls-origin"));
    assert!(r.text().starts_with("GET /good"), "{}", r.text());
    assert_eq!(origin.handshakes(), 1);

    for path in ["/wrong-ca", "/wrong-name"] {
        let r = get(port, path);
        assert_eq!(r.status, 503, "{path}: {}", r.text());
        assert!(r.text().contains("connection failure"), "{path}: {}", r.text());
    }
    assert_eq!(origin.handshakes(), 1, "no handshake completed with a bad certificate");
    // The origin's thread records a failed handshake after the proxy has already
    // answered 503, so wait for it (a loaded machine delays it by tens of ms).
    let deadline = Instant::now() + Duration::from_secs(5);
    while origin.failed_handshakes() < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(origin.failed_handshakes() >= 2, "the origin saw the aborted handshakes");
    assert_eq!(stat(admin, "cluster.wrong_ca.upstream_cx_connect_fail"), 1);

    let r = get(port, "/chain-only");
    assert_eq!(r.status, 200, "{}", r.text());
    let paths: Vec<String> = origin.requests().iter().map(|h| h.lines().next().unwrap_or("").to_string()).collect();
    assert_eq!(
        paths,
        ["GET /good HTTP/1.1", "GET /chain-only HTTP/1.1"],
        "only validated connections carried requests"
    );
}

#[test]
fn handshake_trickled_one_byte_at_a_time_is_terminated() {
    let Edge { ca, origin, port, proxy: _p, pki: _pki, .. } = Edge::start("origin", &[]);
    let config = client_config(&[&ca], &["http/1.1"], None);
    let mut s = tls::connect_trickled(localhost(port), "proxy.test", &config, Duration::from_millis(1)).unwrap();
    let r = http_get(&mut s, "proxy.test", "/slow").unwrap();
    assert_eq!(r.status, 200);
    // And a client that hangs up mid-handshake leaves the listener serving.
    let mut half = TcpStream::connect(localhost(port)).unwrap();
    half.write_all(&[0x16, 0x03, 0x01, 0x00, 0x40, 0x01]).unwrap();
    drop(half);
    let mut s = tls::connect(localhost(port), "proxy.test", &config).unwrap();
    assert_eq!(http_get(&mut s, "proxy.test", "/after").unwrap().status, 200);
    assert_eq!(origin.requests(), 2);
}

/// Open file descriptors of process `pid`.
fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0)
}

#[test]
fn failed_downstream_connections_release_their_sockets() {
    let Edge { ca, origin, port, proxy: p, pki: _pki, .. } = Edge::start("origin", &["--concurrency", "1"]);
    let config = client_config(&[&ca], &["http/1.1"], None);
    // Warm up (pools, admin) so the baseline is steady.
    let mut s = tls::connect(localhost(port), "proxy.test", &config).unwrap();
    assert_eq!(http_get(&mut s, "proxy.test", "/warm").unwrap().status, 200);
    drop(s);
    std::thread::sleep(Duration::from_millis(200));
    let baseline = fds(p.pid());
    for i in 0..20 {
        if i % 2 == 0 {
            // A TLS protocol error: plaintext on the TLS chain.
            let mut c = TcpStream::connect(localhost(port)).unwrap();
            c.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n").unwrap();
            c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let _ = c.read_to_end(&mut Vec::new());
        } else {
            // A reset after the handshake, mid-request: the read fails.
            let mut s = tls::connect(localhost(port), "proxy.test", &config).unwrap();
            s.write_all(b"GET /partial HTTP/1.1\r\n").unwrap();
            s.flush().unwrap();
            std::thread::sleep(Duration::from_millis(20));
            socket2::SockRef::from(&s.sock).set_linger(Some(Duration::ZERO)).unwrap();
        }
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while fds(p.pid()) > baseline && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(fds(p.pid()) <= baseline, "sluice holds {} fds, {baseline} before 20 failed connections", fds(p.pid()));
    assert_eq!(origin.requests(), 1);
}

/// `transport_socket_connect_timeout` on the TLS chain: connections whose handshake does
/// not finish in time (nothing sent, or a partial ClientHello) are closed, counted in
/// `downstream_cx_transport_socket_connect_timeout`, and give their sockets back; a
/// client that completes its handshake is served.
#[test]
fn half_open_handshakes_are_closed_by_transport_socket_connect_timeout() {
    const HALF_OPEN: usize = 40;
    let pki = Pki::new();
    let ca = pki.ca("edge");
    let cert = ca.server_cert(&pki, "edge", &["proxy.test"]);
    let origin = HttpOrigin::start("origin");
    let (port, admin) = (free_port(), free_port());
    let tls = downstream_tls_yaml(&cert, &["http/1.1"], None, false);
    let transport = format!("{tls}\n      transport_socket_connect_timeout: 0.5s");
    let clusters = Cluster { name: "app", ports: &[origin.port()], extra: "" }.yaml();
    let yaml = bootstrap(port, admin, Some(&transport), &forward_all("app"), &clusters);
    let p = Proxy::start(&yaml, &["--concurrency", "1"]);
    let config = client_config(&[&ca], &["http/1.1"], None);
    let mut s = tls::connect(localhost(port), "proxy.test", &config).unwrap();
    assert_eq!(http_get(&mut s, "proxy.test", "/warm").unwrap().status, 200);
    drop(s);
    std::thread::sleep(Duration::from_millis(200));
    let baseline = fds(p.pid());
    let t = Instant::now();
    let mut half: Vec<TcpStream> = (0..HALF_OPEN)
        .map(|i| {
            let mut c = TcpStream::connect(localhost(port)).unwrap();
            if i % 2 == 1 {
                // The start of a ClientHello record, never finished.
                c.write_all(&[0x16, 0x03, 0x01, 0x00, 0x40, 0x01]).unwrap();
            }
            c
        })
        .collect();
    for (i, c) in half.iter_mut().enumerate() {
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 256];
        let r = c.read(&mut buf);
        assert!(matches!(r, Ok(0) | Err(_)), "connection {i}: {r:?}");
        assert!(
            !matches!(&r, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
            "connection {i} still open after {:?}",
            t.elapsed()
        );
    }
    let took = t.elapsed();
    assert!(took >= Duration::from_millis(450), "closed before the timeout: {took:?}");
    assert!(took < Duration::from_secs(3), "not closed in time: {took:?}");
    assert_eq!(stat(admin, "listener.edge.downstream_cx_transport_socket_connect_timeout"), HALF_OPEN as i64);
    drop(half);
    let mut s = tls::connect(localhost(port), "proxy.test", &config).unwrap();
    assert_eq!(http_get(&mut s, "proxy.test", "/after").unwrap().status, 200);
    drop(s);
    let deadline = Instant::now() + Duration::from_secs(5);
    while fds(p.pid()) > baseline {
        assert!(Instant::now() < deadline, "descriptors: {} > baseline {baseline}", fds(p.pid()));
        std::thread::sleep(Duration::from_millis(20));
    }
}
