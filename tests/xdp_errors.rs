//! xdp mode refuses to start, with exit status 1 and an explanation that names the
//! fix, when: it lacks the privileges (root without capabilities here), the interface
//! does not exist, a `--queues` entry is not a queue of the interface, zero-copy is
//! asked of a driver without it, or the interface already has an XDP program (a second
//! sluice on it). The first sluice keeps serving throughout.

use crate::xdp_support;

use std::net::SocketAddr;
use std::time::Duration;

use sluice_datapath::testnet;
use sluice_e2e::http_client::Client;
use sluice_e2e::http_origin::HttpOrigin;
use sluice_e2e::proxy::Proxy;
use xdp_support::{http_config, XdpNet};

/// Run sluice in xdp mode in sluice's namespace through `wrapper` (after `ip netns
/// exec NS`); it must exit 1 within a few seconds. Returns its log.
fn refused(net: &XdpNet, yaml: &str, wrapper: &[&str], args: &[&str]) -> String {
    let ns = net.hosts.left.name().to_string();
    let mut full = vec!["ip", "netns", "exec", &ns];
    full.extend_from_slice(wrapper);
    let mut p = sluice_e2e::proxy::spawn_wrapped(&full, yaml, &[&["--datapath", "xdp"], args].concat());
    let status = p.wait_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(1), "{args:?} should be refused:\n{}", p.log());
    p.log()
}

#[test]
fn setup_errors_are_clear() {
    if !testnet::require_root("setup_errors_are_clear") {
        return;
    }
    let net = XdpNet::new(47, 1);
    let origin = net.in_peer(|| HttpOrigin::start_on(&format!("{}:0", net.peer_ip()), "peer"));
    let yaml = http_config(SocketAddr::from(([0, 0, 0, 0], 8080)), origin.addr);
    let cidr = format!("{}/24", net.sluice_ip());
    let iface = net.iface().to_string();
    let on_iface = ["--interface", iface.as_str(), "--address", cidr.as_str()];

    // Root without capabilities: the first bpf(2) call is refused.
    let log = refused(&net, &yaml, &["setpriv", "--bounding-set", "-all", "--inh-caps", "-all"], &on_iface);
    assert!(log.contains("operation not permitted") && log.contains("needs root"), "{log}");
    assert!(log.contains("--datapath kernel"), "the alternative is named: {log}");

    let log = refused(&net, &yaml, &[], &["--interface", "sxm47nope", "--address", &cidr]);
    assert!(log.contains("\"sxm47nope\" does not exist") && log.contains("ip link show"), "{log}");

    let log = refused(&net, &yaml, &[], &[&on_iface[..], &["--queues", "0,3"]].concat());
    assert!(log.contains(&format!("{iface} has no rx queue 3: it has 1")), "{log}");
    assert!(log.contains(&format!("ethtool -L {iface} combined N")), "{log}");

    let log = refused(&net, &yaml, &[], &[&on_iface[..], &["--zero-copy"]].concat());
    assert!(log.contains("zero-copy AF_XDP is not available") && log.contains("drop --zero-copy"), "{log}");

    // Nothing was left attached by the refused starts.
    assert!(!net.xdp_attached(), "a refused start left an XDP program behind");

    // A second sluice on an interface that already has one: attach refused, with the
    // reason and the fix; the first keeps serving.
    let ns = net.hosts.left.name().to_string();
    let mut first =
        Proxy::start_wrapped(&["ip", "netns", "exec", &ns], &yaml, &[&["--datapath", "xdp"], &on_iface[..]].concat());
    for mode in ["skb", "drv"] {
        let log = refused(&net, &yaml, &[], &[&on_iface[..], &["--xdp-mode", mode]].concat());
        assert!(log.contains(&format!("attaching the XDP program to {iface} in {mode} mode failed")), "{log}");
        assert!(log.contains("another XDP program is already attached"), "{log}");
        assert!(log.contains(&format!("ip link set dev {iface} xdp off")), "{log}");
    }
    let r = net.in_peer(|| Client::connect_to(SocketAddr::from((net.sluice_ip(), 8080))).get("/still"));
    assert_eq!(r.status, 200, "the first sluice still serves");
    first.signal("TERM");
    assert!(first.wait_exit(Duration::from_secs(15)).success(), "{}", first.log());
    assert!(net.wait_detached(Duration::from_secs(5)));
}
