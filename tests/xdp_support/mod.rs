//! Shared pieces of the xdp-mode end-to-end tests.
//!
//! Topology (one per test, `tag` in 40..=49 picks both the names and the subnet):
//!
//! ```text
//!  namespace sxm<tag>-l                         namespace sxm<tag>-r
//!  sluice --datapath xdp on sxm<tag>0  ──veth──  sxm<tag>1: 10.99.<tag>.1/24
//!    --address 10.99.<tag>.2/24                  clients and origins (kernel sockets),
//!    admin on 127.0.0.1:9901 (kernel)            offloads off
//! ```
//!
//! Everything (namespaces, veth, sluice) is removed on drop, also when a test panics.
//! Tests need root: without it they print why and return.

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use sluice_datapath::testnet::{Address, TwoHosts};
use sluice_e2e::config::{forward_all, hcm_filter};
use sluice_e2e::proxy::Proxy;

pub const ADMIN_PORT: u16 = 9901;

/// The two namespaces of a test and their addresses.
pub struct XdpNet {
    pub tag: u8,
    // Field order is drop order: addresses, then the namespaces and veth.
    _addrs: Vec<Address>,
    pub hosts: TwoHosts,
}

impl XdpNet {
    /// Namespaces `sxm<tag>-l`/`-r`, a veth with `queues` queues, the peer end at
    /// 10.99.<tag>.1/24 with its offloads off.
    pub fn new(tag: u8, queues: u32) -> XdpNet {
        assert!((40..=49).contains(&tag), "xdp-mode tests own 10.99.40.0/24 ..= 10.99.49.0/24");
        let hosts = TwoHosts::new(&format!("sxm{tag}"), queues).expect("test network");
        let peer = hosts.right.add_address(hosts.veth.b(), &format!("10.99.{tag}.1/24")).unwrap();
        hosts.right.disable_offloads(hosts.veth.b()).unwrap();
        XdpNet { tag, _addrs: vec![peer], hosts }
    }

    pub fn peer_ip(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 99, self.tag, 1)
    }

    pub fn sluice_ip(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 99, self.tag, 2)
    }

    pub fn iface(&self) -> &str {
        self.hosts.veth.a()
    }

    /// Give the kernel of sluice's namespace an address of its own on the interface.
    pub fn add_kernel_address(&mut self, cidr: &str) {
        let a = self.hosts.left.add_address(self.hosts.veth.a(), cidr).unwrap();
        self._addrs.push(a);
    }

    /// Run `f` in the peer namespace (clients, origins).
    pub fn in_peer<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        self.hosts.right.run(f).expect("enter the peer namespace")
    }

    /// Run `f` in sluice's namespace (admin requests).
    pub fn in_sluice_ns<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        self.hosts.left.run(f).expect("enter sluice's namespace")
    }

    /// Start sluice in xdp mode on our veth end with `args` added, and wait until it
    /// serves.
    pub fn start_sluice(&self, yaml: &str, args: &[&str]) -> Proxy {
        let ns = self.hosts.left.name().to_string();
        let cidr = format!("{}/24", self.sluice_ip());
        let mut all = vec!["--datapath", "xdp", "--interface", self.iface(), "--address", &cidr];
        all.extend_from_slice(args);
        Proxy::start_wrapped(&["ip", "netns", "exec", &ns], yaml, &all)
    }

    /// Whether an XDP program is attached to our veth end.
    pub fn xdp_attached(&self) -> bool {
        let d = self.hosts.left.link_details(self.iface()).unwrap_or_default();
        d.contains("prog/xdp") || d.contains(" xdp") || d.contains("xdpgeneric") || d.contains("xdpdrv")
    }

    /// Wait until no XDP program is attached (links are released asynchronously).
    pub fn wait_detached(&self, within: Duration) -> bool {
        let end = Instant::now() + within;
        while Instant::now() < end {
            if !self.xdp_attached() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        !self.xdp_attached()
    }

    /// `ss -ltn` in sluice's namespace.
    pub fn kernel_listeners(&self) -> String {
        self.hosts.left.exec("ss", &["-ltnH"]).unwrap()
    }

    /// Every stat of `/stats`, from inside sluice's namespace.
    pub fn stats(&self) -> Stats {
        let text = self.in_sluice_ns(|| admin_get("/stats")).expect("GET /stats");
        Stats(
            text.lines()
                .filter_map(|l| l.split_once(": "))
                .filter_map(|(k, v)| v.trim().parse::<i64>().ok().map(|v| (k.to_string(), v)))
                .collect(),
        )
    }

    /// Poll `/stats` until `pred` holds (the xdp counters are published once a second).
    pub fn stats_until(&self, within: Duration, pred: impl Fn(&Stats) -> bool) -> Stats {
        let end = Instant::now() + within;
        loop {
            let s = self.stats();
            if pred(&s) || Instant::now() > end {
                return s;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// `/stats` by name; a stat that is not there reads 0 (and `has` tells).
#[derive(Debug, Clone)]
pub struct Stats(pub HashMap<String, i64>);

impl Stats {
    pub fn get(&self, name: &str) -> i64 {
        self.0.get(name).copied().unwrap_or(0)
    }

    pub fn has(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }
}

/// One admin GET on 127.0.0.1:9901 of the calling thread's namespace; the body.
pub fn admin_get(path: &str) -> std::io::Result<String> {
    let mut s = TcpStream::connect_timeout(&SocketAddr::from(([127, 0, 0, 1], ADMIN_PORT)), Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(s, "GET {path} HTTP/1.1\r\nhost: admin\r\nconnection: close\r\n\r\n")?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default())
}

/// A bootstrap: the admin on 127.0.0.1:9901, `listeners` (YAML list items indented by
/// 2 spaces) and one cluster `origin` with one endpoint.
pub fn bootstrap(listeners: &str, origin: SocketAddr) -> String {
    format!(
        r#"admin:
  address: {{ socket_address: {{ address: 127.0.0.1, port_value: {ADMIN_PORT} }} }}
static_resources:
  listeners:
{listeners}  clusters:
  - name: origin
    connect_timeout: 2s
    load_assignment:
      cluster_name: origin
      endpoints:
      - lb_endpoints:
        - endpoint: {{ address: {{ socket_address: {{ address: {ip}, port_value: {port} }} }} }}
"#,
        ip = origin.ip(),
        port = origin.port()
    )
}

/// A listener item named `name` on `listen` whose network filter is `filter` (one of
/// [`hcm`] or [`tcp_proxy`]), with `extra` listener fields (indented by 4 spaces).
pub fn listener(name: &str, listen: SocketAddr, extra: &str, filter: &str) -> String {
    format!(
        r#"  - name: {name}
    address: {{ socket_address: {{ address: {ip}, port_value: {port} }} }}
{extra}    filter_chains:
    - filters:
{filter}"#,
        ip = listen.ip(),
        port = listen.port()
    )
}

/// An HTTP connection manager routing everything to cluster `origin`.
pub fn hcm(stat_prefix: &str) -> String {
    hcm_filter(stat_prefix, &forward_all("origin"), "", "")
}

/// A tcp_proxy to cluster `origin`.
pub fn tcp_proxy(stat_prefix: &str) -> String {
    format!(
        r#"      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: {stat_prefix}
          cluster: origin
"#
    )
}

/// One HTTP listener on `listen` routing everything to `origin`.
pub fn http_config(listen: SocketAddr, origin: SocketAddr) -> String {
    bootstrap(&listener("http", listen, "", &hcm("ingress")), origin)
}
