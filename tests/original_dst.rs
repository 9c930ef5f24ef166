//! Original destination hand-off end to end (kernel mode), the way a sidecar's
//! `virtualOutbound` works: inside a private network namespace an iptables `nat OUTPUT`
//! rule REDIRECTs every TCP connection to the test subnet 10.99.51.0/24 to sluice's
//! `0.0.0.0:15001` listener (`use_original_dst: true`). sluice reads SO_ORIGINAL_DST and
//! hands the connection to the listener owning the original destination:
//! - `10.99.51.7:8080` → the `0.0.0.0:8080` listener (`bind_to_port: false`, never
//!   bound), whose HCM routes it as HTTP;
//! - `10.99.51.20:8080` → the exact `10.99.51.20:8080` listener (tcp_proxy to a tagged
//!   origin), which beats the wildcard one;
//! - `10.99.51.7:7777` (no listener for the port) → stays on 15001's own chain, a
//!   tcp_proxy to a passthrough origin.
//!
//! sluice, its origins and the clients all run inside the namespace; the namespace and
//! the iptables rule are removed by Drop guards, also when the test fails. Needs root
//! (skipped with a printed reason otherwise); iptables is installed with apt-get when
//! missing.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use sluice_datapath::testnet::{self, Netns};
use sluice_e2e::config::{forward_all, hcm_filter, Cluster};
use sluice_e2e::http_client::{get, Client};
use sluice_e2e::http_origin::HttpOrigin;
use sluice_e2e::proxy::Proxy;
use sluice_e2e::tagged::TaggedEcho;
use sluice_e2e::tls::read_line;

/// Ports inside the private namespace (nothing else lives there).
const OUTBOUND: u16 = 15001;
const HTTP_PORT: u16 = 8080;
const NO_LISTENER_PORT: u16 = 7777;
const ADMIN: u16 = 9901;
const SUBNET: &str = "10.99.51.0/24";

/// A namespace name unique to this process and call (`sxo` prefix).
fn netns_name() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!("sxo{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

/// Make sure `iptables` runs, installing it with apt-get when missing.
fn ensure_iptables() {
    let works = || Command::new("iptables").arg("-V").output().is_ok_and(|o| o.status.success());
    if works() {
        return;
    }
    eprintln!("original_dst: installing iptables with apt-get");
    let install = || {
        Command::new("apt-get")
            .args(["install", "-y", "-q", "--no-install-recommends", "iptables"])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !install() {
        let _ = Command::new("apt-get").args(["update", "-q"]).output();
        assert!(install(), "iptables missing and `apt-get install iptables` failed");
    }
    assert!(works(), "iptables installed but does not run");
}

/// An iptables rule inside a namespace, deleted (`-D`) on drop.
struct IptablesRule<'a> {
    ns: &'a Netns,
    table: &'static str,
    rule: Vec<String>,
}

impl<'a> IptablesRule<'a> {
    fn append(ns: &'a Netns, table: &'static str, rule: &[&str]) -> IptablesRule<'a> {
        let mut args = vec!["-t", table, "-A"];
        args.extend_from_slice(rule);
        ns.exec("iptables", &args).unwrap_or_else(|e| panic!("iptables {args:?}: {e}"));
        IptablesRule { ns, table, rule: rule.iter().map(|s| s.to_string()).collect() }
    }
}

impl Drop for IptablesRule<'_> {
    fn drop(&mut self) {
        let mut args = vec!["-t", self.table, "-D"];
        args.extend(self.rule.iter().map(String::as_str));
        if let Err(e) = self.ns.exec("iptables", &args) {
            eprintln!("original_dst: removing iptables rule: {e}");
        }
    }
}

/// The sidecar-style bootstrap: 15001 with use_original_dst, the wildcard and exact
/// 8080 listeners (not bound), each with its own origin cluster.
fn bootstrap(http_origin: u16, exact_origin: u16, passthrough_origin: u16) -> String {
    let tcp_proxy = |name: &str| {
        format!(
            "      - name: envoy.filters.network.tcp_proxy\n        typed_config: {{ \"@type\": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: {name}, cluster: {name} }}\n"
        )
    };
    let hcm = hcm_filter(&format!("outbound_{HTTP_PORT}"), &forward_all("http_origin"), "", "");
    let clusters: String = [("http_origin", http_origin), ("exact", exact_origin), ("passthrough", passthrough_origin)]
        .iter()
        .map(|(name, port)| Cluster { name, ports: &[*port], extra: "" }.yaml())
        .collect();
    format!(
        r#"admin:
  address: {{ socket_address: {{ address: 127.0.0.1, port_value: {ADMIN} }} }}
static_resources:
  listeners:
  - name: virtualOutbound
    address: {{ socket_address: {{ address: 0.0.0.0, port_value: {OUTBOUND} }} }}
    stat_prefix: virtual_outbound
    use_original_dst: true
    filter_chains:
    - name: passthrough
      filters:
{passthrough}  - name: http_{HTTP_PORT}
    address: {{ socket_address: {{ address: 0.0.0.0, port_value: {HTTP_PORT} }} }}
    stat_prefix: http_{HTTP_PORT}
    bind_to_port: false
    filter_chains:
    - filters:
{hcm}  - name: exact_{HTTP_PORT}
    address: {{ socket_address: {{ address: 10.99.51.20, port_value: {HTTP_PORT} }} }}
    stat_prefix: exact_{HTTP_PORT}
    bind_to_port: false
    filter_chains:
    - filters:
{exact}  clusters:
{clusters}"#,
        passthrough = tcp_proxy("passthrough"),
        exact = tcp_proxy("exact"),
    )
}

/// The counter `name` from the admin endpoint (call inside the namespace).
fn stat(name: &str) -> i64 {
    let text = get(ADMIN, &format!("/stats?filter=^{}$", name.replace('.', "\\."))).text();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")).map(|v| v.trim().parse().unwrap()))
        .unwrap_or_else(|| panic!("no stat {name} in:\n{text}"))
}

/// Connect to `dst`, read the serving origin's tag line and check the echo.
fn tag_of(dst: SocketAddr) -> String {
    let mut s = TcpStream::connect(dst).unwrap_or_else(|e| panic!("connect {dst}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(b"hello through the redirect\n").unwrap();
    let tag = read_line(&mut s).unwrap_or_else(|e| panic!("{dst}: no tag: {e}"));
    let mut echo = [0u8; 27];
    s.read_exact(&mut echo).unwrap();
    assert_eq!(&echo, b"hello through the redirect\n", "{dst}: echo through {tag}");
    tag
}

#[test]
fn redirected_connections_reach_the_listener_owning_their_original_destination() {
    if !testnet::require_root("original_dst hand-off under iptables REDIRECT") {
        return;
    }
    ensure_iptables();
    let ns = Netns::new(&netns_name()).expect("create the namespace");
    // A local address for the client and a route that sends the test subnet somewhere
    // (the REDIRECT rewrites the destination before the packet leaves).
    let _addr = ns.add_address("lo", "10.99.50.1/32").unwrap();
    ns.exec("ip", &["route", "add", SUBNET, "dev", "lo", "src", "10.99.50.1"]).expect("route the test subnet");
    let _redirect = IptablesRule::append(
        &ns,
        "nat",
        &["OUTPUT", "-p", "tcp", "-d", SUBNET, "-j", "REDIRECT", "--to-ports", &OUTBOUND.to_string()],
    );

    // Origins bound on the namespace's loopback.
    let (http_origin, exact, passthrough) = ns
        .run(|| {
            (
                HttpOrigin::start_on("127.0.0.1:0", "http-origin"),
                TaggedEcho::start_on("127.0.0.1:0", "exact"),
                TaggedEcho::start_on("127.0.0.1:0", "passthrough"),
            )
        })
        .unwrap();
    let yaml = bootstrap(http_origin.port(), exact.port(), passthrough.port());
    let proxy = Proxy::start_in_netns(ns.name(), &yaml, &["--concurrency", "2"]);

    ns.run(|| {
        // a.b.c.d:8080 has no exact listener: the 0.0.0.0:8080 one serves it as HTTP.
        for (i, dst) in ["10.99.51.7:8080", "10.99.51.200:8080"].iter().enumerate() {
            let mut c = Client::connect_to(dst.parse().unwrap());
            let r = c.request("GET", &format!("/svc/{i}"), &[("host", "svc.test")], b"");
            assert_eq!(r.status, 200, "{dst}: {}", r.text());
            assert_eq!(r.header("x-origin"), Some("http-origin"), "{dst}");
            // Keep-alive: a second request on the handed-off connection.
            let r = c.get("/again");
            assert_eq!((r.status, r.header("x-origin")), (200, Some("http-origin")), "{dst}");
        }
        let seen = http_origin.seen();
        let paths: Vec<&str> = seen.iter().map(|s| s.path.as_str()).collect();
        assert_eq!(paths, ["/svc/0", "/again", "/svc/1", "/again"]);
        assert!(seen.iter().all(|s| s.header("host").is_some_and(|h| h == "svc.test" || h == "test")));

        // The exact ip:port listener beats 0.0.0.0:8080.
        assert_eq!(tag_of("10.99.51.20:8080".parse().unwrap()), "exact");
        // A port without a listener stays on 15001's chain.
        assert_eq!(tag_of(format!("10.99.51.7:{NO_LISTENER_PORT}").parse().unwrap()), "passthrough");
        assert_eq!(tag_of(format!("10.99.51.20:{NO_LISTENER_PORT}").parse().unwrap()), "passthrough");
        // bind_to_port: false means nothing listens on 8080 itself.
        let direct = TcpStream::connect(("127.0.0.1", HTTP_PORT));
        assert!(direct.is_err(), "the bind_to_port: false listener accepted a direct connection");

        assert_eq!(stat("http.outbound_8080.downstream_rq_total"), 4);
        assert_eq!(stat("tcp.passthrough.downstream_cx_total"), 2);
        assert_eq!(stat("tcp.exact.downstream_cx_total"), 1);
        // As in Envoy, a handed-off connection counts on the listener that serves it;
        // 15001 counts only what stayed on it.
        assert_eq!(stat("listener.virtual_outbound.downstream_cx_total"), 2);
        assert_eq!(stat(&format!("listener.http_{HTTP_PORT}.downstream_cx_total")), 2);
        assert_eq!(stat(&format!("listener.exact_{HTTP_PORT}.downstream_cx_total")), 1);
        assert_eq!(stat("listener.virtual_outbound.downstream_pre_cx_active"), 0);
    })
    .unwrap();
    assert_eq!((exact.accepted(), passthrough.accepted()), (1, 2));
    drop(proxy);
}
