//! Configs shaped like real deployments, end to end:
//! - a STATIC cluster without `load_assignment` (Istio's BlackHoleCluster) loads, and
//!   traffic routed to it finds no healthy upstream: HTTP gets Envoy's 503 `no healthy
//!   upstream`, tcp_proxy closes the connection (both backends);
//! - X.509 v1 certificates (no extensions, as `openssl x509 -req` makes them) terminate
//!   TLS for a real client (curl) and serve as an upstream client certificate.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use sluice_e2e::backend::{Backend, Net};
use sluice_e2e::config::{forward_all, hcm_filter, http_at, Cluster, ClusterAt};
use sluice_e2e::free_port;
use sluice_e2e::http_client::Client;
use sluice_e2e::http_origin::HttpOrigin;
use sluice_e2e::http_proxy::HttpProxy;
use sluice_e2e::on_both_backends;
use sluice_e2e::origin::TcpOrigin;
use sluice_e2e::proxy::Proxy;

on_both_backends!(
    static_cluster_without_endpoints_answers_no_healthy_upstream,
    tcp_proxy_to_a_cluster_without_endpoints_closes,
    route_max_stream_duration_overrides_the_connection_managers,
    tls_inspector_closes_on_parsing_errors_when_asked,
);

/// Istio's BlackHoleCluster: STATIC, no `load_assignment`.
const BLACK_HOLE: &str = "  - name: BlackHoleCluster\n    type: STATIC\n    connect_timeout: 10s\n";

fn static_cluster_without_endpoints_answers_no_healthy_upstream(backend: Backend) {
    let net = Net::new(backend);
    let listen = net.proxy_listen_addr();
    let yaml = format!("{}{BLACK_HOLE}", http_at(listen, &forward_all("BlackHoleCluster"), &[], "", ""));
    let proxy = net.start_proxy(&yaml, 1);
    let mut c = Client::over(net.connect(proxy.target(listen)).expect("connect to the proxy"));
    for path in ["/", "/anything"] {
        let r = c.get(path);
        assert_eq!(r.status, 503, "{path}: {}", r.text());
        assert_eq!(r.text(), "no healthy upstream");
    }
    assert_eq!(proxy.stats().get("cluster.BlackHoleCluster.upstream_cx_none_healthy"), Some(2));
}

fn tcp_proxy_to_a_cluster_without_endpoints_closes(backend: Backend) {
    let net = Net::new(backend);
    let listen = net.proxy_listen_addr();
    let yaml = format!(
        r#"static_resources:
  listeners:
  - name: tcp
    address: {{ socket_address: {{ address: {}, port_value: {} }} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: tcp
          cluster: BlackHoleCluster
  clusters:
{BLACK_HOLE}"#,
        listen.ip(),
        listen.port()
    );
    let proxy = net.start_proxy(&yaml, 1);
    let mut c = Client::over(net.connect(proxy.target(listen)).expect("connect to the proxy"));
    c.send(b"hello");
    assert!(c.closed_within(Duration::from_secs(5)), "the connection stays open");
    assert_eq!(proxy.stats().get("cluster.BlackHoleCluster.upstream_cx_none_healthy"), Some(1));
}

/// The HCM allows 1 s per stream; route `/short/` cuts that to 0.1 s, route `/long/`
/// disables it (`0s`), other paths keep the HCM's.
fn route_max_stream_duration_overrides_the_connection_managers(backend: Backend) {
    let net = Net::new(backend);
    let origin = HttpOrigin::serve(net.listen(), "slow");
    let endpoints = [origin.addr];
    let clusters = [ClusterAt { name: "web", endpoints: &endpoints, extra: "" }];
    let vhosts = r#"- name: all
  domains: ["*"]
  routes:
  - match: { prefix: "/short/" }
    route: { cluster: web, prefix_rewrite: "/", max_stream_duration: { max_stream_duration: 0.1s } }
  - match: { prefix: "/long/" }
    route: { cluster: web, prefix_rewrite: "/", max_stream_duration: { max_stream_duration: 0s } }
  - match: { prefix: "/" }
    route: { cluster: web }
"#;
    let hcm = "common_http_protocol_options: { max_stream_duration: 1s }\n";
    let p = HttpProxy::start(&net, vhosts, &clusters, hcm, "", 1);
    let timed = |path: &str| {
        let start = std::time::Instant::now();
        let r = p.client().get(path);
        (r.status, start.elapsed())
    };
    let (status, took) = timed("/long/delay/1200");
    assert_eq!(status, 200, "0s on the route disables the HCM's 1 s");
    assert!(took >= Duration::from_millis(1200), "{took:?}");
    let (status, took) = timed("/delay/3000");
    assert_eq!(status, 408, "the HCM's duration applies without an override");
    assert!(took >= Duration::from_secs(1) && took < Duration::from_millis(2500), "{took:?}");
    let (status, took) = timed("/short/delay/2000");
    assert_eq!(status, 408, "the route's shorter duration");
    assert!(took < Duration::from_millis(800), "cut at 0.1 s, not the HCM's 1 s: {took:?}");
}

/// A tcp_proxy listener behind tls_inspector (with `options`, flow YAML fields) whose
/// one plaintext chain echoes: what happens to a client that does not speak TLS.
fn plaintext_through_tls_inspector(net: &Net, options: &str) -> (&'static str, usize) {
    let origin = TcpOrigin::echo_on(net.listen());
    let listen = net.proxy_listen_addr();
    let yaml = format!(
        r#"static_resources:
  listeners:
  - name: tcp
    address: {{ socket_address: {{ address: {}, port_value: {} }} }}
    listener_filters:
    - name: tls_inspector
      typed_config: {{ "@type": type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector{options} }}
    filter_chains:
    - filter_chain_match: {{ transport_protocol: raw_buffer }}
      filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: tcp
          cluster: echo
  clusters:
{}"#,
        listen.ip(),
        listen.port(),
        ClusterAt { name: "echo", endpoints: &[origin.addr], extra: "" }.yaml()
    );
    let proxy = net.start_proxy(&yaml, 1);
    let mut c = Client::over(net.connect(proxy.target(listen)).expect("connect to the proxy"));
    c.send(b"hello, not TLS\n");
    let mut echoed = [0u8; 15];
    let outcome = match std::io::Read::read_exact(&mut c.stream, &mut echoed) {
        Ok(()) if &echoed == b"hello, not TLS\n" => "echoed",
        Ok(()) => "garbled",
        Err(_) if c.closed_within(Duration::from_secs(5)) => "closed",
        Err(_) => "left open",
    };
    (outcome, origin.accepted())
}

fn tls_inspector_closes_on_parsing_errors_when_asked(backend: Backend) {
    let net = Net::new(backend);
    assert_eq!(plaintext_through_tls_inspector(&net, ""), ("echoed", 1), "Envoy's default: plaintext goes on");
    let close = ", close_connection_on_client_hello_parsing_errors: true, max_client_hello_size: 4096, initial_read_buffer_size: 512";
    assert_eq!(plaintext_through_tls_inspector(&net, close), ("closed", 0), "nothing forwarded");
}

/// A self-signed X.509 v1 certificate for `localhost` and its RSA key, in `dir`
/// (`name.pem`, `name.key`), made by the openssl command line.
fn v1_certificate(dir: &Path, name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let (cert, key, csr) = (dir.join(format!("{name}.pem")), dir.join(format!("{name}.key")), dir.join("req.csr"));
    let run = |args: &[&str]| {
        let out = Command::new("openssl").args(args).output().expect("run openssl");
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    let (cert_s, key_s, csr_s) = (cert.to_str().unwrap(), key.to_str().unwrap(), csr.to_str().unwrap());
    run(&["req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", key_s, "-out", csr_s, "-subj", "/CN=localhost"]);
    // `x509 -req` without an extension file makes a version 1 certificate.
    run(&["x509", "-req", "-in", csr_s, "-signkey", key_s, "-out", cert_s, "-days", "2"]);
    let text = Command::new("openssl").args(["x509", "-in", cert_s, "-noout", "-text"]).output().unwrap();
    assert!(String::from_utf8_lossy(&text.stdout).contains("Version: 1 (0x0)"), "not a v1 certificate");
    (cert, key)
}

#[test]
fn x509_v1_certificates_serve_tls_to_curl() {
    let dir = tempfile::tempdir().unwrap();
    let (server_cert, server_key) = v1_certificate(dir.path(), "server");
    let (client_cert, client_key) = v1_certificate(dir.path(), "client");
    let origin = HttpOrigin::start("v1-origin");
    let port = free_port();
    let tls = format!(
        "{{ name: envoy.transport_sockets.tls, typed_config: {{ \"@type\": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext, common_tls_context: {{ tls_certificates: [ {{ certificate_chain: {{ filename: \"{}\" }}, private_key: {{ filename: \"{}\" }} }} ] }} }} }}",
        server_cert.display(),
        server_key.display()
    );
    // The cluster presents a v1 client certificate too (the origin speaks plaintext,
    // so only the context is exercised: it must load).
    let upstream_tls = format!(
        "    transport_socket: {{ name: envoy.transport_sockets.tls, typed_config: {{ \"@type\": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext, common_tls_context: {{ tls_certificates: [ {{ certificate_chain: {{ filename: \"{}\" }}, private_key: {{ filename: \"{}\" }} }} ] }} }} }}\n",
        client_cert.display(),
        client_key.display()
    );
    let clusters = format!(
        "{}{}",
        Cluster { name: "app", ports: &[origin.port()], extra: "" }.yaml(),
        Cluster { name: "mtls", ports: &[origin.port()], extra: &upstream_tls }.yaml()
    );
    let hcm = hcm_filter("edge", &forward_all("app"), "", "");
    let yaml = format!(
        "static_resources:\n  listeners:\n  - name: edge\n    address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }}\n    filter_chains:\n    - transport_socket: {tls}\n      filters:\n{hcm}  clusters:\n{clusters}"
    );
    let _proxy = Proxy::start(&yaml, &[]);
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10", "--cacert", server_cert.to_str().unwrap()])
        .args(["--resolve", &format!("localhost:{port}:127.0.0.1")])
        .arg(format!("https://localhost:{port}/v1"))
        .args(["-w", "\n%{http_code}"])
        .output()
        .expect("run curl");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "curl: {}{stdout}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.ends_with("\n200"), "{stdout}");
    assert!(stdout.starts_with("GET /v1\n"), "the origin's echo: {stdout}");
    assert_eq!(origin.requests(), 1);
}

/// The backlog column (`Send-Q`) of the sockets listening on `port`, as `ss` shows them.
fn listen_backlogs(port: u16) -> Vec<String> {
    let out = Command::new("ss").args(["-Hltn", &format!("sport = :{port}")]).output().expect("run ss");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines().filter_map(|l| l.split_whitespace().nth(2).map(str::to_string)).collect()
}

#[test]
fn tcp_backlog_size_sets_the_listen_backlog() {
    let port = free_port();
    let origin = HttpOrigin::start("backlog");
    let clusters = Cluster { name: "app", ports: &[origin.port()], extra: "" }.yaml();
    let hcm = hcm_filter("edge", &forward_all("app"), "", "");
    let yaml = |backlog: &str| {
        format!(
            "static_resources:\n  listeners:\n  - name: edge\n    address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }}\n{backlog}    filter_chains:\n    - filters:\n{hcm}  clusters:\n{clusters}"
        )
    };
    let proxy = Proxy::start(&yaml("    tcp_backlog_size: 77\n"), &["--concurrency", "2"]);
    assert_eq!(listen_backlogs(port), ["77", "77"], "one socket per worker, each with the configured backlog");
    drop(proxy);
    let _proxy = Proxy::start(&yaml(""), &["--concurrency", "1"]);
    let backlogs = listen_backlogs(port);
    assert_eq!(backlogs.len(), 1);
    assert_ne!(backlogs[0], "77", "without tcp_backlog_size the default applies");
}

/// Envoy's own example configs (tests/envoy_examples, copied unchanged) validate.
#[test]
fn envoy_example_filter_configs_validate() {
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("envoy_examples");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let (code, out) = sluice_e2e::proxy::run(&["-c", path.to_str().unwrap(), "--mode", "validate"], None);
            assert_eq!(code, 0, "{}: {out}", path.display());
            assert!(out.contains("OK"), "{out}");
            checked += 1;
        }
    }
    assert!(checked >= 4, "tests/envoy_examples/*.yaml: {checked} found");
}

/// An example config made runnable here: its listener on `listen`, its admin on a free
/// port, and every `address: <dns name>` endpoint replaced by `origin`'s port.
fn runnable_example(name: &str, listen: u16, service: &str, origin: u16) -> String {
    let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("envoy_examples").join(name);
    let text = std::fs::read_to_string(path).unwrap();
    text.replace("port_value: 10000", &format!("port_value: {listen}"))
        .replace(
            &format!("address: {service}\n                port_value: 8080"),
            &format!("address: 127.0.0.1\n                port_value: {origin}"),
        )
        .replace("port_value: 8001", &format!("port_value: {}", free_port()))
}

/// A request with `headers` through curl; `(status, headers and body, lower-cased)`.
fn curl(port: u16, method: &str, path: &str, headers: &[&str]) -> (u16, String) {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "-i", "--max-time", "10", "-X", method]);
    for h in headers {
        cmd.args(["-H", h]);
    }
    let out = cmd.arg(format!("http://127.0.0.1:{port}{path}")).output().expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout).to_ascii_lowercase();
    assert!(out.status.success(), "curl: {}{text}", String::from_utf8_lossy(&out.stderr));
    let status = text.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, text)
}

/// examples/cors (backend): `/cors/open` allows any origin, `/cors/disabled` turns
/// CORS off, `/cors/restricted` allows only `*.envoyproxy.io`; preflights to an
/// allowed origin are answered by the proxy.
#[test]
fn envoy_cors_example_behaves_as_its_readme() {
    let origin = HttpOrigin::start("backend");
    let port = free_port();
    let _proxy = Proxy::start(&runnable_example("cors-backend.yaml", port, "backend-service", origin.port()), &[]);
    let from = |o: &str| format!("Origin: {o}");
    let (s, t) = curl(port, "GET", "/cors/open", &[&from("http://example.com")]);
    assert_eq!(s, 200);
    assert!(t.contains("\r\naccess-control-allow-origin: http://example.com\r\n"), "{t}");
    let (_, t) = curl(port, "GET", "/cors/disabled", &[&from("http://example.com")]);
    assert!(!t.contains("access-control-allow-origin"), "{t}");
    let (_, t) = curl(port, "GET", "/cors/restricted", &[&from("http://example.com")]);
    assert!(!t.contains("access-control-allow-origin"), "{t}");
    let (_, t) = curl(port, "GET", "/cors/restricted", &[&from("https://www.envoyproxy.io")]);
    assert!(t.contains("\r\naccess-control-allow-origin: https://www.envoyproxy.io\r\n"), "{t}");
    let before = origin.requests();
    let (s, t) =
        curl(port, "OPTIONS", "/cors/open", &[&from("http://example.com"), "Access-Control-Request-Method: GET"]);
    assert_eq!(s, 200);
    assert!(t.contains("\r\naccess-control-allow-methods: get\r\n"), "{t}");
    assert_eq!(origin.requests(), before, "the preflight is answered by the proxy");
}

/// examples/csrf (samesite): the filter is off by default and on for the virtual host;
/// a cross-site POST is refused, `/csrf/disabled` and `/csrf/shadow` let it through,
/// `/csrf/additional_origin` accepts any origin.
#[test]
fn envoy_csrf_example_behaves_as_its_readme() {
    let origin = HttpOrigin::start("service");
    let port = free_port();
    let _proxy = Proxy::start(&runnable_example("csrf-samesite.yaml", port, "service", origin.port()), &[]);
    let evil = "Origin: http://evil.example";
    let (s, t) = curl(port, "POST", "/csrf/enabled", &[evil]);
    assert_eq!(s, 403, "{t}");
    assert!(t.ends_with("invalid origin"), "{t}");
    assert_eq!(curl(port, "POST", "/csrf/disabled", &[evil]).0, 200);
    assert_eq!(curl(port, "POST", "/csrf/shadow", &[evil]).0, 200);
    assert_eq!(curl(port, "POST", "/csrf/additional_origin", &[evil]).0, 200);
    assert_eq!(curl(port, "POST", "/csrf/enabled", &[&format!("Origin: http://127.0.0.1:{port}")]).0, 200);
}

/// examples/local_ratelimit: the stats listener (9902, to the admin's
/// `/stats/prometheus`) allows 2 requests per 5 s and then answers 429 with
/// `x-local-rate-limit: true`; the service listener (10000) counts but does not enforce.
#[test]
fn envoy_local_ratelimit_example_behaves_as_its_readme() {
    let origin = HttpOrigin::start("service");
    let (stats_port, service_port, admin_port) = (free_port(), free_port(), free_port());
    let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("envoy_examples/local_ratelimit.yaml");
    let yaml = std::fs::read_to_string(path)
        .unwrap()
        .replace("port_value: 9902", &format!("port_value: {stats_port}"))
        .replace("port_value: 10000", &format!("port_value: {service_port}"))
        .replace("port_value: 9901", &format!("port_value: {admin_port}"))
        .replace(
            "address: service\n                port_value: 80",
            &format!("address: 127.0.0.1\n                port_value: {}", origin.port()),
        );
    let _proxy = Proxy::start(&yaml, &[]);
    assert_eq!(curl(stats_port, "GET", "/stats/prometheus", &[]).0, 200);
    assert_eq!(curl(stats_port, "GET", "/stats/prometheus", &[]).0, 200);
    let (s, t) = curl(stats_port, "GET", "/stats/prometheus", &[]);
    assert_eq!(s, 429, "{t}");
    assert!(t.contains("\r\nx-local-rate-limit: true\r\n"), "{t}");
    assert!(t.ends_with("local_rate_limited"), "{t}");
    for _ in 0..3 {
        assert_eq!(curl(service_port, "GET", "/", &[]).0, 200, "not enforced on the service listener");
    }
    // Both listeners' filters count under the one stat prefix.
    let (_, stats) = curl(admin_port, "GET", "/stats", &[]);
    assert!(stats.contains("http_local_rate_limiter.http_local_rate_limit.rate_limited: 2"), "{stats}");
    assert!(stats.contains("http_local_rate_limiter.http_local_rate_limit.enforced: 1"), "{stats}");
}

/// examples/brotli: both listeners are TLS; the stats listener (9902, to the admin's
/// `/stats/prometheus`, `text/plain`) answers brotli-compressed to a client that
/// accepts `br` (the README's `curl -sk --compressed -H "Accept-Encoding: br"`), and
/// uncompressed to one that does not. Adjustments, through substitution only: the
/// listener, stats and admin ports, and the `service:8080` endpoint.
#[test]
fn envoy_brotli_example_behaves_as_its_readme() {
    let origin = HttpOrigin::start("service");
    let (stats_port, service_port, admin_port) = (free_port(), free_port(), free_port());
    let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("envoy_examples/brotli.yaml");
    let yaml = std::fs::read_to_string(path)
        .unwrap()
        .replace("port_value: 9902", &format!("port_value: {stats_port}"))
        .replace("port_value: 10000", &format!("port_value: {service_port}"))
        .replace("port_value: 9901", &format!("port_value: {admin_port}"))
        .replace(
            "address: service\n                port_value: 8080",
            &format!("address: 127.0.0.1\n                port_value: {}", origin.port()),
        );
    let _proxy = Proxy::start(&yaml, &[]);
    let fetch = |accept: &str| {
        let out = Command::new("curl")
            .args(["-sSk", "-i", "--max-time", "10", "-H", accept])
            .arg(format!("https://127.0.0.1:{stats_port}/stats/prometheus"))
            .output()
            .expect("run curl");
        assert!(out.status.success(), "curl: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).to_ascii_lowercase()
    };
    let t = fetch("Accept-Encoding: br");
    assert!(t.starts_with("http/1.1 200"), "{t}");
    assert!(t.contains("\r\ncontent-encoding: br\r\n"), "{t}");
    let t = fetch("Accept-Encoding: identity");
    assert!(t.starts_with("http/1.1 200"), "{t}");
    assert!(!t.contains("content-encoding"), "{t}");
    assert!(t.contains("# type"), "plain prometheus text: {t}");
}

/// examples/rbac: a request whose Referer is not Envoy's docs is denied 403 `RBAC:
/// access denied` (the matcher's DENY action); one from the docs passes (on_no_match
/// ALLOW).
#[test]
fn envoy_rbac_example_behaves_as_its_readme() {
    let origin = HttpOrigin::start("backend");
    let (port, admin) = (free_port(), free_port());
    let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("envoy_examples/rbac.yaml");
    let yaml = std::fs::read_to_string(path)
        .unwrap()
        .replace("port_value: 10000", &format!("port_value: {port}"))
        .replace("port_value: 10001", &format!("port_value: {admin}"))
        .replace(
            "address: backend\n                port_value: 80",
            &format!("address: 127.0.0.1\n                port_value: {}", origin.port()),
        );
    let _proxy = Proxy::start(&yaml, &[]);
    let (s, t) = curl(port, "GET", "/", &[]);
    assert_eq!(s, 403, "{t}");
    assert!(t.ends_with("rbac: access denied"), "{t}");
    let (s, t) = curl(port, "GET", "/", &["Referer: https://www.envoyproxy.io/docs/envoy"]);
    assert_eq!(s, 200, "{t}");
    assert_eq!(origin.requests(), 1);
    let (_, stats) = curl(admin, "GET", "/stats", &[]);
    assert!(stats.contains("http.ingress_http.rbac.denied: 1"), "{stats}");
    assert!(stats.contains("http.ingress_http.rbac.allowed: 1"), "{stats}");
}

/// examples/gzip's service (its service.py, in Rust): `/file.json` (application/json)
/// and `/file.txt` (text/plain) answer the same JSON text; `POST /upload` answers `OK`
/// with `transferred-size` (the body bytes it received) and `content-encoding-seen`.
fn gzip_service(conn: sluice_e2e::conn::Conn) {
    use std::io::{BufRead, BufReader, Read, Write};
    let Ok(write) = conn.try_clone() else { return };
    let mut r = BufReader::new(conn);
    let mut head = Vec::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        if line == "\r\n" {
            break;
        }
        head.push(line.trim_end().to_ascii_lowercase());
    }
    let header = |n: &str| head.iter().find_map(|h| h.strip_prefix(&format!("{n}: ")).map(str::to_string));
    let mut body = Vec::new();
    if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        loop {
            let mut size = String::new();
            r.read_line(&mut size).unwrap();
            let n = usize::from_str_radix(size.trim(), 16).unwrap();
            let mut chunk = vec![0; n + 2];
            r.read_exact(&mut chunk).unwrap();
            body.extend_from_slice(&chunk[..n]);
            if n == 0 {
                break;
            }
        }
    } else if let Some(n) = header("content-length").and_then(|v| v.parse::<usize>().ok()) {
        body.resize(n, 0);
        r.read_exact(&mut body).unwrap();
    }
    let path = head[0].split(' ').nth(1).unwrap_or("/").to_string();
    let (ctype, answer, extra) = match path.as_str() {
        "/file.json" => ("application/json", gzip_example_json(), String::new()),
        "/file.txt" => ("text/plain", gzip_example_json(), String::new()),
        _ => (
            "text/plain",
            b"OK".to_vec(),
            format!(
                "transferred-size: {}\r\ncontent-encoding-seen: {}\r\n",
                body.len(),
                header("content-encoding").unwrap_or_else(|| "none".into())
            ),
        ),
    };
    let mut w = write;
    let _ = write!(
        w,
        "HTTP/1.1 200 OK\r\ncontent-type: {ctype}\r\ncontent-length: {}\r\n{extra}connection: close\r\n\r\n",
        answer.len()
    );
    let _ = w.write_all(&answer);
}

/// The example's file.json: JSON text, 200 KiB or so.
fn gzip_example_json() -> Vec<u8> {
    let items: Vec<String> = (0..3000)
        .map(|i| format!("{{\"id\": {i}, \"name\": \"item {i}\", \"tags\": [\"t{}\", \"u{}\"]}}", i % 17, i % 5))
        .collect();
    format!("[{}]", items.join(",\n")).into_bytes()
}

/// examples/gzip (Envoy's gzip-envoy.yaml, kept as tests/envoy_examples/gzip.yaml): on
/// the service listener (10000) `/file.json` comes back gzip-compressed to `Accept-Encoding:
/// gzip` and `/file.txt` (text/plain) does not; a gzip upload (in the decompressor's
/// 9-bit window) reaches the service decompressed; the stats listener (9902) compresses `/stats/prometheus`. Gzip's
/// `memory_level: 3` and `window_bits: 10` shape the stream. Adjustments, through
/// substitution only: the listener, stats and admin ports, and the `service:8080`
/// endpoint.
#[test]
fn envoy_gzip_example_behaves_as_its_readme() {
    use std::io::Read;
    let service = TcpOrigin::start(gzip_service);
    let (port, stats_port, admin_port) = (free_port(), free_port(), free_port());
    let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("envoy_examples/gzip.yaml");
    let yaml = std::fs::read_to_string(path)
        .unwrap()
        .replace("port_value: 10000", &format!("port_value: {port}"))
        .replace("port_value: 9902", &format!("port_value: {stats_port}"))
        .replace("port_value: 9901", &format!("port_value: {admin_port}"))
        .replace(
            "address: service\n                port_value: 8080",
            &format!("address: 127.0.0.1\n                port_value: {}", service.port()),
        );
    let _proxy = Proxy::start(&yaml, &[]);
    let dir = tempfile::tempdir().unwrap();
    // curl -i -H "Accept-Encoding: gzip", the body kept raw.
    let fetch = |port: u16, path: &str, file: &std::path::Path| {
        let out = Command::new("curl")
            .args(["-sS", "-D", "-", "--max-time", "10", "-H", "Accept-Encoding: gzip", "-o"])
            .arg(file)
            .arg(format!("http://127.0.0.1:{port}{path}"))
            .output()
            .expect("run curl");
        assert!(out.status.success(), "curl: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).to_ascii_lowercase()
    };
    let gz = dir.path().join("file.gz");
    let h = fetch(port, "/file.json", &gz);
    assert!(h.starts_with("http/1.1 200"), "{h}");
    assert!(h.contains("\r\ncontent-encoding: gzip\r\n"), "{h}");
    let compressed = std::fs::read(&gz).unwrap();
    let mut back = Vec::new();
    flate2::read::GzDecoder::new(&compressed[..]).read_to_end(&mut back).unwrap();
    assert_eq!(back, gzip_example_json(), "the gzip stream decodes to the file");
    assert!(compressed.len() < back.len() / 4, "{} of {}", compressed.len(), back.len());
    let h = fetch(port, "/file.txt", &dir.path().join("file.txt"));
    assert!(h.starts_with("http/1.1 200") && !h.contains("content-encoding"), "text/plain is not listed: {h}");

    // Upload with decompression: the service gets the file itself. The decompressor's
    // window is 9 bits (512 bytes), smaller than the compressor's 10, so the upload is
    // gzipped with 9 here: zlib (and sluice) stop at the first match reaching further
    // back than the window ("invalid distance too far back").
    let mut z = flate2::Compress::new_gzip(flate2::Compression::new(6), 9);
    let mut upload = Vec::with_capacity(back.len());
    let status = z.compress_vec(&back, &mut upload, flate2::FlushCompress::Finish).unwrap();
    assert_eq!(status, flate2::Status::StreamEnd);
    let up = dir.path().join("upload.gz");
    std::fs::write(&up, &upload).unwrap();
    let out = Command::new("curl")
        .args(["-sS", "-i", "--max-time", "10", "-X", "POST", "-H", "Content-Encoding: gzip", "--data-binary"])
        .arg(format!("@{}", up.display()))
        .arg(format!("http://127.0.0.1:{port}/upload"))
        .output()
        .expect("run curl");
    let t = String::from_utf8_lossy(&out.stdout).to_ascii_lowercase();
    assert!(t.starts_with("http/1.1 200"), "{t}");
    assert!(t.contains(&format!("\r\ntransferred-size: {}\r\n", back.len())), "decompressed upload: {t}");
    assert!(t.contains("\r\ncontent-encoding-seen: none\r\n"), "{t}");

    let h = fetch(stats_port, "/stats/prometheus", &dir.path().join("stats.gz"));
    assert!(h.starts_with("http/1.1 200") && h.contains("\r\ncontent-encoding: gzip\r\n"), "{h}");
    let (_, stats) = curl(admin_port, "GET", "/stats", &[]);
    assert!(stats.contains("http.ingress_http.compressor.text_optimized.gzip.response.compressed: 2"), "{stats}");
    assert!(stats.contains("http.ingress_http.decompressor.upload.gzip.request.decompressed: 1"), "{stats}");
}
