//! tls_inspector end to end: a real sluice whose listener runs tls_inspector in front of
//! chains matched by SNI (exact, wildcard), transport protocol `tls` (catch-all) and
//! `raw_buffer` (plaintext). Each chain terminates TLS (if any) and tcp_proxies to its
//! own tagged echo origin, so the first line a client reads names the chain that
//! served it. Clients are rustls with their own CA; the ClientHello is also sent one
//! byte per segment. Stalled and garbage first bytes are closed: by
//! `listener_filters_timeout`, or at once when no chain matches.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use sluice_e2e::config::Cluster;
use sluice_e2e::http_client::get;
use sluice_e2e::proxy::Proxy;
use sluice_e2e::tagged::TaggedEcho;
use sluice_e2e::tls::{self, client_config, downstream_tls_yaml, read_line, Ca, Leaf, Pki};
use sluice_e2e::{free_port, localhost};

/// The names the server certificate covers (and the client asks for).
const CERT_NAMES: [&str; 5] = ["exact.test", "pinned.wild.test", "*.wild.test", "unknown.test", "127.0.0.1"];

struct Setup {
    _pki: Pki,
    ca: Ca,
    cert: Leaf,
    exact: TaggedEcho,
    wildcard: TaggedEcho,
    tls_any: TaggedEcho,
    plain: TaggedEcho,
}

impl Setup {
    fn new() -> Setup {
        let pki = Pki::new();
        let ca = pki.ca("inspector");
        let cert = ca.server_cert(&pki, "server", &CERT_NAMES);
        Setup {
            _pki: pki,
            ca,
            cert,
            exact: TaggedEcho::start("exact"),
            wildcard: TaggedEcho::start("wildcard"),
            tls_any: TaggedEcho::start("tls_any"),
            plain: TaggedEcho::start("plain"),
        }
    }

    /// A listener on `port` with tls_inspector and the four chains (`with_plain`: the
    /// raw_buffer chain too), admin on `admin`. `listener_extra` lines go under the
    /// listener (2-space YAML indentation inside it).
    fn yaml(&self, port: u16, admin: u16, with_plain: bool, listener_extra: &str) -> String {
        let tls = downstream_tls_yaml(&self.cert, &[], None, false);
        let chain = |name: &str, matcher: &str, tls: Option<&str>| {
            let transport = tls.map(|t| format!("      transport_socket: {t}\n")).unwrap_or_default();
            format!(
                "    - name: {name}\n      filter_chain_match: {matcher}\n{transport}      filters:\n      - name: envoy.filters.network.tcp_proxy\n        typed_config: {{ \"@type\": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: {name}, cluster: {name} }}\n"
            )
        };
        let mut chains = chain("exact", r#"{ server_names: ["exact.test", "pinned.wild.test"] }"#, Some(&tls));
        chains.push_str(&chain("wildcard", r#"{ server_names: ["*.wild.test"] }"#, Some(&tls)));
        chains.push_str(&chain("tls_any", "{ transport_protocol: tls }", Some(&tls)));
        if with_plain {
            chains.push_str(&chain("plain", "{ transport_protocol: raw_buffer }", None));
        }
        let clusters: String =
            [("exact", &self.exact), ("wildcard", &self.wildcard), ("tls_any", &self.tls_any), ("plain", &self.plain)]
                .iter()
                .map(|(name, o)| Cluster { name, ports: &[o.port()], extra: "" }.yaml())
                .collect();
        format!(
            r#"admin:
  address: {{ socket_address: {{ address: 127.0.0.1, port_value: {admin} }} }}
static_resources:
  listeners:
  - name: sni
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }}
    stat_prefix: sni
{listener_extra}    listener_filters:
    - name: envoy.filters.listener.tls_inspector
      typed_config: {{ "@type": type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector }}
    filter_chains:
{chains}  clusters:
{clusters}"#
        )
    }

    fn accepted(&self) -> [usize; 4] {
        [self.exact.accepted(), self.wildcard.accepted(), self.tls_any.accepted(), self.plain.accepted()]
    }
}

fn stat(admin: u16, name: &str) -> i64 {
    let text = get(admin, &format!("/stats?filter=^{}$", name.replace('.', "\\."))).text();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")).map(|v| v.trim().parse().unwrap()))
        .unwrap_or_else(|| panic!("no stat {name} in:\n{text}"))
}

/// A TLS connection asking for `name`: the chain's tag, after checking the echo.
fn tls_chain(stream: &mut tls::TlsStream) -> String {
    let tag = read_line(stream).expect("the chain's tag");
    stream.write_all(b"ping over tls\n").unwrap();
    assert_eq!(read_line(stream).unwrap(), "ping over tls", "echo through the {tag} chain");
    tag
}

fn tls_chain_for(port: u16, name: &str, ca: &Ca) -> String {
    let config = client_config(&[ca], &[], None);
    let mut s = tls::connect(localhost(port), name, &config).unwrap_or_else(|e| panic!("handshake for {name}: {e}"));
    tls_chain(&mut s)
}

/// A plaintext connection: writes first (the inspector waits for bytes), returns the tag.
fn plain_chain(port: u16, first: &[u8]) -> String {
    let mut s = TcpStream::connect(localhost(port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(first).unwrap();
    let tag = read_line(&mut s).unwrap();
    let mut echo = vec![0u8; first.len()];
    s.read_exact(&mut echo).unwrap();
    assert_eq!(echo, first, "echo through the {tag} chain");
    tag
}

/// Time until the peer closes (EOF or reset); any byte read first is a failure.
fn time_to_close(s: &mut TcpStream, limit: Duration) -> Duration {
    let start = Instant::now();
    s.set_read_timeout(Some(limit)).unwrap();
    let mut buf = [0u8; 256];
    match s.read(&mut buf) {
        Ok(0) => start.elapsed(),
        Ok(n) => panic!("unexpected {n} bytes: {:?}", &buf[..n]),
        Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
            panic!("still open after {limit:?}")
        }
        Err(_) => start.elapsed(),
    }
}

#[test]
fn sni_exact_wildcard_catch_all_and_plaintext_each_reach_their_chain() {
    let s = Setup::new();
    let (port, admin) = (free_port(), free_port());
    let _p = Proxy::start(&s.yaml(port, admin, true, ""), &["--concurrency", "2"]);

    assert_eq!(tls_chain_for(port, "exact.test", &s.ca), "exact");
    // An exact name beats a wildcard covering it.
    assert_eq!(tls_chain_for(port, "pinned.wild.test", &s.ca), "exact");
    assert_eq!(tls_chain_for(port, "api.wild.test", &s.ca), "wildcard");
    // SNI is case-insensitive.
    assert_eq!(tls_chain_for(port, "API.Wild.Test", &s.ca), "wildcard");
    assert_eq!(tls_chain_for(port, "unknown.test", &s.ca), "tls_any");
    // An IP address as the name: rustls sends no SNI at all.
    assert_eq!(tls_chain_for(port, "127.0.0.1", &s.ca), "tls_any");
    assert_eq!(plain_chain(port, b"hello, plaintext\n"), "plain");
    // Bytes that are not TLS at all are plaintext too (Envoy's tls_not_found).
    assert_eq!(plain_chain(port, b"\x00\x01\x02garbage that is no ClientHello\xff"), "plain");

    assert_eq!(s.accepted(), [2, 2, 2, 2]);
    assert_eq!(stat(admin, "listener.sni.tls_inspector.tls_found"), 6);
    assert_eq!(stat(admin, "listener.sni.tls_inspector.sni_found"), 5);
    assert_eq!(stat(admin, "listener.sni.tls_inspector.sni_not_found"), 1);
    assert_eq!(stat(admin, "listener.sni.tls_inspector.tls_not_found"), 2);
    assert_eq!(stat(admin, "listener.sni.no_filter_chain_match"), 0);
}

#[test]
fn client_hello_in_one_byte_segments_is_still_matched() {
    let s = Setup::new();
    let (port, admin) = (free_port(), free_port());
    let _p = Proxy::start(&s.yaml(port, admin, true, "    listener_filters_timeout: 15s\n"), &[]);
    let config = client_config(&[&s.ca], &["http/1.1"], None);
    for (name, want) in [("api.wild.test", "wildcard"), ("exact.test", "exact")] {
        let mut stream = tls::connect_trickled(localhost(port), name, &config, Duration::from_millis(1))
            .unwrap_or_else(|e| panic!("trickled handshake for {name}: {e}"));
        assert_eq!(tls_chain(&mut stream), want, "{name}");
    }
    assert_eq!(s.accepted(), [1, 1, 0, 0]);
    assert_eq!(stat(admin, "listener.sni.tls_inspector.sni_found"), 2);
    assert_eq!(stat(admin, "listener.sni.tls_inspector.alpn_found"), 2);
}

#[test]
fn stalled_client_hello_and_silence_are_closed_at_listener_filters_timeout() {
    let s = Setup::new();
    let (port, admin) = (free_port(), free_port());
    let _p = Proxy::start(&s.yaml(port, admin, true, "    listener_filters_timeout: 1s\n"), &[]);
    // A TLS record header announcing 512 bytes of handshake, and a ClientHello header:
    // the inspector needs the rest, which never comes.
    let mut stalled = TcpStream::connect(localhost(port)).unwrap();
    stalled.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03]).unwrap();
    let mut silent = TcpStream::connect(localhost(port)).unwrap();
    let t = time_to_close(&mut stalled, Duration::from_secs(10));
    assert!(t >= Duration::from_millis(800) && t < Duration::from_secs(6), "stalled ClientHello closed after {t:?}");
    let t2 = time_to_close(&mut silent, Duration::from_secs(10));
    assert!(t2 < Duration::from_secs(6), "silent connection closed {t2:?} after the first");
    assert_eq!(s.accepted(), [0, 0, 0, 0], "no chain served them");
    assert_eq!(stat(admin, "listener.sni.downstream_pre_cx_timeout"), 2);
    // The listener still serves.
    assert_eq!(tls_chain_for(port, "exact.test", &s.ca), "exact");
}

#[test]
fn garbage_on_a_listener_without_a_plaintext_chain_is_closed_at_once() {
    let s = Setup::new();
    let (port, admin) = (free_port(), free_port());
    let _p = Proxy::start(&s.yaml(port, admin, false, "    listener_filters_timeout: 10s\n"), &[]);
    let mut c = TcpStream::connect(localhost(port)).unwrap();
    c.write_all(b"\x00\xffnot a ClientHello, not anything\r\n\r\n").unwrap();
    let t = time_to_close(&mut c, Duration::from_secs(8));
    assert!(t < Duration::from_secs(3), "closed after {t:?}, long before the 10 s listener_filters_timeout");
    // A TLS record of the wrong content type (application data) is not a ClientHello.
    let mut c = TcpStream::connect(localhost(port)).unwrap();
    c.write_all(&[0x17, 0x03, 0x03, 0x00, 0x05, 1, 2, 3, 4, 5]).unwrap();
    let t = time_to_close(&mut c, Duration::from_secs(8));
    assert!(t < Duration::from_secs(3), "closed after {t:?}");
    assert_eq!(s.accepted(), [0, 0, 0, 0]);
    assert_eq!(stat(admin, "listener.sni.no_filter_chain_match"), 2);
    assert_eq!(stat(admin, "listener.sni.tls_inspector.tls_not_found"), 2);
    assert_eq!(stat(admin, "listener.sni.downstream_pre_cx_timeout"), 0);
}

#[test]
fn continue_on_listener_filters_timeout_serves_the_plaintext_chain() {
    let s = Setup::new();
    let (port, admin) = (free_port(), free_port());
    let extra = "    listener_filters_timeout: 1s\n    continue_on_listener_filters_timeout: true\n";
    let _p = Proxy::start(&s.yaml(port, admin, true, extra), &[]);
    let mut c = TcpStream::connect(localhost(port)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let start = Instant::now();
    // The start of a TLS record header: not enough to decide.
    c.write_all(&[0x16, 0x03]).unwrap();
    let tag = read_line(&mut c).unwrap();
    let waited = start.elapsed();
    assert_eq!(tag, "plain", "undecided after the timeout: the raw_buffer chain");
    assert!(waited >= Duration::from_millis(800), "chosen after {waited:?}, before the timeout");
    // The peeked bytes were not consumed: the origin got them, then the rest.
    c.write_all(b"rest").unwrap();
    let mut echo = [0u8; 6];
    c.read_exact(&mut echo).unwrap();
    assert_eq!(&echo, b"\x16\x03rest");
    assert_eq!(s.plain.received(), b"\x16\x03rest");
    assert_eq!(stat(admin, "listener.sni.downstream_pre_cx_timeout"), 0);
}
