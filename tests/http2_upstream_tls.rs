//! Upstream HTTP/2 over TLS end to end, against nginx (a real HTTP/2 origin over TLS)
//! and an independent rustls HTTP/1.1 origin:
//! - `explicit_http_config.http2_protocol_options` on a TLS cluster speaks h2 to nginx
//!   (ALPN `h2`), every request on one connection;
//! - `auto_config` offers ALPN `h2,http/1.1` and speaks what the origin picks: HTTP/2
//!   to nginx's h2 port, HTTP/1.1 to nginx's HTTP/1.1-only port, and HTTP/1.1 to an
//!   origin that negotiates no ALPN at all (Envoy's mixed pool falls back to HTTP/1);
//!   the connection is kept and reused in either protocol, and counted once in
//!   `upstream_cx_http2_total` or `upstream_cx_http1_total`.
//! - once `auto_config` negotiated h2, an HTTP/2 client's concurrent streams share
//!   that one upstream connection.
//!
//! Loopback only (nginx is a real process); the kernel backend.

use std::io::Read;
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sluice_e2e::backend::{Backend, Net};
use sluice_e2e::config::{forward_all, ClusterAt};
use sluice_e2e::h2_client::H2Client;
use sluice_e2e::http_proxy::HttpProxy;
use sluice_e2e::tls::{server_config, upstream_tls_yaml, Pki, TlsOrigin};
use sluice_e2e::{free_port, localhost};

/// nginx serving TLS on two ports: `h2` (ALPN h2 and http/1.1) and `h1` (http/1.1 only).
/// Each answer carries `x-proto: $server_protocol` and `x-conn: $connection`.
struct Nginx {
    child: Child,
    h2: u16,
    h1: u16,
    _dir: tempfile::TempDir,
}

impl Nginx {
    fn start(cert: &Path, key: &Path) -> Nginx {
        let dir = tempfile::tempdir().expect("temp dir");
        let (h2, h1) = (free_port(), free_port());
        let d = dir.path().display();
        let (cert, key) = (cert.display(), key.display());
        let server = |listen: String| {
            format!(
                "  server {{\n    listen {listen};\n    ssl_certificate {cert};\n    ssl_certificate_key {key};\n    \
                 location / {{\n      add_header x-proto $server_protocol always;\n      add_header x-conn $connection always;\n      \
                 return 200 \"nginx $request_method $uri\\n\";\n    }}\n  }}\n"
            )
        };
        let conf = format!(
            "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
             events {{ worker_connections 64; }}\nhttp {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  \
             proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  \
             scgi_temp_path {d}/scgi;\n{}{}}}\n",
            server(format!("127.0.0.1:{h2} ssl http2")),
            server(format!("127.0.0.1:{h1} ssl")),
        );
        let conf_path = dir.path().join("nginx.conf");
        std::fs::write(&conf_path, conf).expect("write nginx.conf");
        let child = Command::new("nginx")
            .args(["-e", &format!("{d}/error.log"), "-p", &d.to_string(), "-c"])
            .arg(&conf_path)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("nginx runs (Debian package nginx)");
        let mut n = Nginx { child, h2, h1, _dir: dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        while [h2, h1].iter().any(|p| TcpStream::connect(localhost(*p)).is_err()) {
            if let Ok(Some(status)) = n.child.try_wait() {
                let mut err = String::new();
                let _ = n.child.stderr.take().map(|mut e| e.read_to_string(&mut err));
                panic!("nginx exited ({status}): {err}");
            }
            assert!(Instant::now() < deadline, "nginx did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
        n
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const AUTO: &str = r#"    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        auto_config: {}
"#;

const EXPLICIT_H2: &str = r#"    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config:
          http2_protocol_options: {}
"#;

/// A proxy to one TLS origin on `port` trusting `ca`, with the protocol options `protocol`.
fn proxy<'n>(net: &'n Net, port: u16, ca: &Path, protocol: &str) -> HttpProxy<'n> {
    let extra = format!("{protocol}    transport_socket: {}\n", upstream_tls_yaml("origin.test", Some(ca), true));
    let endpoints = [localhost(port)];
    let clusters = [ClusterAt { name: "web", endpoints: &endpoints, extra: &extra }];
    HttpProxy::start(net, &forward_all("web"), &clusters, "", "", 1)
}

/// Three requests through `p`: each 200 from nginx over `proto`, all on one upstream
/// connection.
fn three_from_nginx(p: &HttpProxy<'_>, proto: &str) {
    let mut c = p.client();
    let mut conns = Vec::new();
    for i in 0..3 {
        let r = c.get(&format!("/n{i}"));
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.text(), format!("nginx GET /n{i}\n"));
        assert_eq!(r.header("x-proto"), Some(proto));
        conns.push(r.header("x-conn").map(str::to_string));
    }
    assert!(conns.iter().all(|c| c.is_some() && *c == conns[0]), "one upstream connection: {conns:?}");
}

#[test]
fn http2_over_tls_to_nginx_explicit_and_auto() {
    let pki = Pki::new();
    let ca = pki.ca("origin");
    let cert = ca.server_cert(&pki, "origin", &["origin.test"]);
    let nginx = Nginx::start(&cert.chain_path, &cert.key_path);
    let net = Net::new(Backend::Kernel);
    for protocol in [EXPLICIT_H2, AUTO] {
        let p = proxy(&net, nginx.h2, &ca.pem_path, protocol);
        three_from_nginx(&p, "HTTP/2.0");
        assert_eq!(p.counter("cluster.web.upstream_cx_total"), 1);
        assert_eq!(p.counter("cluster.web.upstream_cx_http2_total"), 1);
        assert_eq!(p.counter("cluster.web.upstream_cx_http1_total"), 0);
        assert_eq!(p.counter("cluster.web.upstream_rq_2xx"), 3);
    }
}

#[test]
fn auto_config_speaks_http1_when_nginx_picks_it() {
    let pki = Pki::new();
    let ca = pki.ca("origin");
    let cert = ca.server_cert(&pki, "origin", &["origin.test"]);
    let nginx = Nginx::start(&cert.chain_path, &cert.key_path);
    let net = Net::new(Backend::Kernel);
    let p = proxy(&net, nginx.h1, &ca.pem_path, AUTO);
    three_from_nginx(&p, "HTTP/1.1");
    assert_eq!(p.counter("cluster.web.upstream_cx_total"), 1);
    assert_eq!(p.counter("cluster.web.upstream_cx_http1_total"), 1);
    assert_eq!(p.counter("cluster.web.upstream_cx_http2_total"), 0);
    assert_eq!(p.counter("cluster.web.upstream_rq_2xx"), 3);
}

#[test]
fn auto_config_speaks_http1_without_alpn() {
    let pki = Pki::new();
    let ca = pki.ca("origin");
    let cert = ca.server_cert(&pki, "origin", &["origin.test"]);
    // A rustls origin that negotiates no ALPN (an old TLS stack, in Envoy's words).
    let origin = TlsOrigin::http(server_config(&cert, &[]), "no-alpn");
    let net = Net::new(Backend::Kernel);
    let p = proxy(&net, origin.port(), &ca.pem_path, AUTO);
    let mut c = p.client();
    for path in ["/a", "/b"] {
        let r = c.get(path);
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.header("x-origin"), Some("no-alpn"));
    }
    let requests = origin.requests();
    assert_eq!(requests.len(), 2, "{requests:?}");
    assert!(requests[0].starts_with("GET /a HTTP/1.1"), "{requests:?}");
    assert_eq!(origin.handshakes(), 1, "the connection was reused");
    assert_eq!(p.counter("cluster.web.upstream_cx_http1_total"), 1);
    assert_eq!(p.counter("cluster.web.upstream_cx_http2_total"), 0);
}

/// An HTTP/2 client's concurrent streams share the one upstream connection that
/// `auto_config` negotiated to h2 (Envoy's mixed pool raises a connection's stream
/// limit once ALPN picked HTTP/2).
#[test]
fn auto_config_multiplexes_downstream_streams_once_h2_is_negotiated() {
    let pki = Pki::new();
    let ca = pki.ca("origin");
    let cert = ca.server_cert(&pki, "origin", &["origin.test"]);
    let nginx = Nginx::start(&cert.chain_path, &cert.key_path);
    let net = Net::new(Backend::Kernel);
    let p = proxy(&net, nginx.h2, &ca.pem_path, AUTO);
    let conn = net.connect(p.proxy().target(p.listen_addr())).expect("connect to the proxy");
    let mut c = H2Client::handshake(conn).expect("HTTP/2 handshake");
    let first = c.get("/first");
    assert_eq!((first.status, first.header("x-proto")), (200, Some("HTTP/2.0")));
    let pending: Vec<_> = (0..20).map(|i| c.start("GET", &format!("/s{i}"), &[], b"")).collect();
    for (i, pend) in pending.into_iter().enumerate() {
        let r = c.finish(pend).expect("response");
        assert_eq!(r.status, 200);
        assert_eq!(r.text(), format!("nginx GET /s{i}\n"));
        assert_eq!(r.header("x-conn"), first.header("x-conn"), "stream {i} on the negotiated connection");
    }
    assert_eq!(p.counter("cluster.web.upstream_cx_total"), 1);
    assert_eq!(p.counter("cluster.web.upstream_cx_http2_total"), 1);
}
