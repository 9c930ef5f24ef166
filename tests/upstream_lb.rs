//! Load-balancing policies end to end, through tcp_proxy, on both datapaths (kernel
//! sockets on loopback and smol stacks on an in-memory network, see
//! `sluice_e2e::backend`): weighted round robin, least request with long-lived
//! connections, random, the consistent-hash policies (which pick at random without a
//! request hash), and priority levels, all within tolerance.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::Duration;

use sluice_e2e::backend::{Backend, Net};
use sluice_e2e::config::{endpoint_at, tcp_proxy_endpoints_at};
use sluice_e2e::conn::Conn;
use sluice_e2e::inproc::InProcessProxy;
use sluice_e2e::on_both_backends;
use sluice_e2e::origin::{echoes, TcpOrigin};

/// A tcp_proxy with `workers` workers to cluster `backend`, whose `lb_endpoints` items
/// are `endpoints` (YAML) and whose extra fields are `cluster_extra`.
struct LbProxy<'n> {
    net: &'n Net,
    proxy: InProcessProxy,
    listen: SocketAddr,
}

impl<'n> LbProxy<'n> {
    fn start(net: &'n Net, endpoints: &str, cluster_extra: &str, workers: usize) -> LbProxy<'n> {
        let listen = net.proxy_listen_addr();
        let proxy = net.start_proxy(&tcp_proxy_endpoints_at(listen, endpoints, cluster_extra, ""), workers);
        LbProxy { net, proxy, listen }
    }

    /// A connection through the proxy that got `x` echoed, i.e. reached an origin.
    fn hold(&self) -> Conn {
        let mut s = self.net.connect(self.proxy.target(self.listen)).expect("connect to the proxy");
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(b"x").unwrap();
        let mut b = [0u8; 1];
        s.read_exact(&mut b).expect("the origin echoes");
        s
    }

    /// One connection through the proxy that gets a line echoed, then closes.
    fn echo_once(&self) {
        assert!(echoes(self.net.connect(self.proxy.target(self.listen))), "no live upstream answered");
    }
}

fn origins(net: &Net, n: usize) -> Vec<TcpOrigin> {
    (0..n).map(|_| TcpOrigin::echo_on(net.listen())).collect()
}

/// `lb_endpoints` items for `origins` with load-balancing weights.
fn weighted(origins: &[TcpOrigin], weights: &[u32]) -> String {
    origins
        .iter()
        .zip(weights)
        .map(|(o, w)| format!("{}          load_balancing_weight: {w}\n", endpoint_at(o.addr)))
        .collect()
}

fn accepted(origins: &[TcpOrigin]) -> Vec<usize> {
    origins.iter().map(TcpOrigin::accepted).collect()
}

fn weighted_round_robin_is_exact_over_whole_cycles(backend: Backend) {
    let net = Net::new(backend);
    let os = origins(&net, 3);
    let p = LbProxy::start(&net, &weighted(&os, &[1, 2, 3]), "", 1);
    for _ in 0..60 {
        p.echo_once();
    }
    assert_eq!(accepted(&os), vec![10, 20, 30]);
}

fn least_request_balances_long_lived_connections(backend: Backend) {
    let net = Net::new(backend);
    let os = origins(&net, 3);
    let extra = "    lb_policy: LEAST_REQUEST\n    least_request_lb_config: { choice_count: 5 }";
    let p = LbProxy::start(&net, &weighted(&os, &[1, 1, 1]), extra, 2);
    // Thirty connections held open one after the other: each goes to a least-loaded
    // host (a connected tcp_proxy session is an active request on its host).
    let held: Vec<Conn> = (0..30).map(|_| p.hold()).collect();
    let c = accepted(&os);
    assert!(c.iter().all(|n| (8..=12).contains(n)), "{c:?}");
    drop(held);
}

fn random_spreads_connections_uniformly(backend: Backend) {
    let net = Net::new(backend);
    let os = origins(&net, 3);
    let p = LbProxy::start(&net, &weighted(&os, &[1, 1, 1]), "    lb_policy: RANDOM", 2);
    for _ in 0..300 {
        p.echo_once();
    }
    let c = accepted(&os);
    assert!(c.iter().all(|n| (60..=140).contains(n)), "{c:?}");
}

fn consistent_hash_policies_serve_without_a_hash_policy(backend: Backend) {
    for (policy, extra) in [
        ("RING_HASH", "    ring_hash_lb_config: { minimum_ring_size: 256 }"),
        ("MAGLEV", "    maglev_lb_config: { table_size: 1021 }"),
    ] {
        let net = Net::new(backend);
        let os = origins(&net, 3);
        let p = LbProxy::start(&net, &weighted(&os, &[1, 1, 1]), &format!("    lb_policy: {policy}\n{extra}"), 2);
        for _ in 0..150 {
            p.echo_once();
        }
        let c = accepted(&os);
        assert!(c.iter().all(|n| (20..=80).contains(n)), "{policy}: {c:?}");
    }
}

fn a_lower_priority_serves_only_when_the_first_cannot(backend: Backend) {
    let net = Net::new(backend);
    let os = origins(&net, 2);
    let endpoints =
        format!("{}      - priority: 1\n        lb_endpoints:\n{}", endpoint_at(os[0].addr), endpoint_at(os[1].addr));
    let p = LbProxy::start(&net, &endpoints, "", 1);
    for _ in 0..20 {
        p.echo_once();
    }
    assert_eq!(accepted(&os), vec![20, 0]);
}

on_both_backends!(
    weighted_round_robin_is_exact_over_whole_cycles,
    least_request_balances_long_lived_connections,
    random_spreads_connections_uniformly,
    consistent_hash_policies_serve_without_a_hash_policy,
    a_lower_priority_serves_only_when_the_first_cannot,
);
