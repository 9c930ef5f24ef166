//! http_inspector end to end: one plaintext listener whose http_inspector sets the
//! application protocol, and three chains picked by it: `http/1.1`/`http/1.0` → an
//! HCM (routed to an HTTP origin), `h2c` → a tcp_proxy to a tagged echo origin, and
//! the catch-all (no application protocol: binary or other text) → a tcp_proxy to
//! another tagged echo origin. The first line a tcp_proxy client reads names the
//! origin (and so the chain); the HCM answers with the HTTP origin's `x-origin`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use sluice_e2e::config::{forward_all, hcm_filter, Cluster};
use sluice_e2e::http_client::{get, Client};
use sluice_e2e::http_origin::HttpOrigin;
use sluice_e2e::proxy::Proxy;
use sluice_e2e::tagged::TaggedEcho;
use sluice_e2e::tls::read_line;
use sluice_e2e::{free_port, localhost};

struct Setup {
    http: HttpOrigin,
    h2c: TaggedEcho,
    binary: TaggedEcho,
    port: u16,
    admin: u16,
    _proxy: Proxy,
}

impl Setup {
    fn start() -> Setup {
        let http = HttpOrigin::start("http-origin");
        let h2c = TaggedEcho::start("h2c");
        let binary = TaggedEcho::start("binary");
        let (port, admin) = (free_port(), free_port());
        let tcp_proxy = |name: &str| {
            format!(
                "      - name: envoy.filters.network.tcp_proxy\n        typed_config: {{ \"@type\": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: {name}, cluster: {name} }}\n"
            )
        };
        let hcm = hcm_filter("sniffed", &forward_all("http"), "", "");
        let clusters: String = [("http", http.port()), ("h2c", h2c.port()), ("binary", binary.port())]
            .iter()
            .map(|(name, port)| Cluster { name, ports: &[*port], extra: "" }.yaml())
            .collect();
        let yaml = format!(
            r#"admin:
  address: {{ socket_address: {{ address: 127.0.0.1, port_value: {admin} }} }}
static_resources:
  listeners:
  - name: sniff
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }}
    stat_prefix: sniff
    listener_filters_timeout: 10s
    listener_filters:
    - name: envoy.filters.listener.http_inspector
      typed_config: {{ "@type": type.googleapis.com/envoy.extensions.filters.listener.http_inspector.v3.HttpInspector }}
    filter_chains:
    - name: hcm
      filter_chain_match: {{ application_protocols: ["http/1.1", "http/1.0"] }}
      filters:
{hcm}    - name: h2c
      filter_chain_match: {{ application_protocols: ["h2c"] }}
      filters:
{h2c}    - name: binary
      filters:
{binary}  clusters:
{clusters}"#,
            h2c = tcp_proxy("h2c"),
            binary = tcp_proxy("binary"),
        );
        let proxy = Proxy::start(&yaml, &["--concurrency", "2"]);
        Setup { http, h2c, binary, port, admin, _proxy: proxy }
    }

    fn stat(&self, name: &str) -> i64 {
        let text = get(self.admin, &format!("/stats?filter=^{}$", name.replace('.', "\\."))).text();
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")).map(|v| v.trim().parse().unwrap()))
            .unwrap_or_else(|| panic!("no stat {name} in:\n{text}"))
    }

    /// Write `first` in one go: the tag of the tcp_proxy chain that served it (after
    /// checking the echo) and how long the decision took.
    fn tcp_chain(&self, first: &[u8]) -> (String, Duration) {
        let mut s = TcpStream::connect(localhost(self.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let start = Instant::now();
        s.write_all(first).unwrap();
        let tag = read_line(&mut s).unwrap_or_else(|e| panic!("no tag for {first:?}: {e}"));
        let waited = start.elapsed();
        let mut echo = vec![0u8; first.len()];
        s.read_exact(&mut echo).unwrap();
        assert_eq!(echo, first, "the peeked bytes reach the {tag} origin unchanged");
        (tag, waited)
    }
}

#[test]
fn http1_goes_to_the_hcm_chain_and_binary_to_tcp_proxy() {
    let s = Setup::start();

    // HTTP/1.1, two requests on one connection, routed by the HCM.
    let mut c = Client::connect(s.port);
    for path in ["/one", "/two"] {
        let r = c.get(path);
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        assert_eq!(r.header("x-origin"), Some("http-origin"));
        assert!(r.text().starts_with(&format!("GET {path}\n")), "{}", r.text());
    }
    // HTTP/1.0 goes to the HCM chain too, whose codec answers it as Envoy does by
    // default (`accept_http_10: false`): 426, from the HCM, not from an origin.
    let mut c10 = Client::connect(s.port);
    c10.send(b"GET /ten HTTP/1.0\r\nhost: test\r\n\r\n");
    let r = c10.read_response(false).unwrap();
    assert_eq!((r.status, r.header("x-origin")), (426, None), "{}", r.text());

    // Binary bytes (no newline: decided by the first bytes, not a timeout).
    let (tag, waited) = s.tcp_chain(b"\x00\x01\x02\x03\xff\xfe binary frame");
    assert_eq!(tag, "binary");
    assert!(waited < Duration::from_secs(5), "binary decided after {waited:?}");
    // Text that is not an HTTP request line.
    assert_eq!(s.tcp_chain(b"HELO mail.test\r\n").0, "binary");
    // A known method with a bad version is not HTTP either.
    assert_eq!(s.tcp_chain(b"GET / SPDY/3\r\n\r\n").0, "binary");
    // The HTTP/2 prior-knowledge preface is h2c.
    assert_eq!(s.tcp_chain(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").0, "h2c");

    let paths: Vec<String> = s.http.seen().iter().map(|r| r.path.clone()).collect();
    assert_eq!(paths, ["/one", "/two"]);
    assert_eq!((s.h2c.accepted(), s.binary.accepted()), (1, 3));
    assert_eq!(s.stat("listener.sniff.http_inspector.http11_found"), 1);
    assert_eq!(s.stat("listener.sniff.http_inspector.http10_found"), 1);
    assert_eq!(s.stat("listener.sniff.http_inspector.http2_found"), 1);
    assert_eq!(s.stat("listener.sniff.http_inspector.http_not_found"), 3);
    assert_eq!(s.stat("http.sniffed.downstream_cx_total"), 2);
    assert_eq!(s.stat("tcp.binary.downstream_cx_total"), 3);
}

#[test]
fn a_request_line_trickled_byte_by_byte_is_still_http() {
    let s = Setup::start();
    let mut c = Client::connect(s.port);
    c.stream.set_nodelay(true).unwrap();
    for b in b"GET /slow HTTP/1.1\r\n" {
        c.send(std::slice::from_ref(b));
        std::thread::sleep(Duration::from_millis(2));
    }
    c.send(b"host: test\r\n\r\n");
    let r = c.read_response(false).unwrap();
    assert_eq!((r.status, r.header("x-origin")), (200, Some("http-origin")));
    // Binary split the same way still goes to the binary chain.
    let mut b = TcpStream::connect(localhost(s.port)).unwrap();
    b.set_nodelay(true).unwrap();
    b.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    for byte in b"GE\x00T" {
        b.write_all(std::slice::from_ref(byte)).unwrap();
        std::thread::sleep(Duration::from_millis(2));
    }
    assert_eq!(read_line(&mut b).unwrap(), "binary");
    assert_eq!(s.http.requests(), 1);
    assert_eq!(s.stat("listener.sniff.http_inspector.http11_found"), 1);
    assert_eq!(s.stat("listener.sniff.http_inspector.http_not_found"), 1);
}
