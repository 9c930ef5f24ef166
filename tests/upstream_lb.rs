//! Load-balancing policies end to end, through tcp_proxy: weighted round robin,
//! least request with long-lived connections, random, and the consistent-hash
//! policies (which pick at random without a request hash), all within tolerance.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use sluice_e2e::config::{endpoint, tcp_proxy};
use sluice_e2e::proxy::Proxy;
use sluice_e2e::upstream::{echo_once, Backend};
use sluice_e2e::{free_port, localhost};

fn config(listen: u16, cluster_extra: &str, backends: &[(&Backend, u32)]) -> String {
    let endpoints: String =
        backends.iter().map(|(b, w)| format!("{}          load_balancing_weight: {w}\n", endpoint(b.port()))).collect();
    tcp_proxy(listen, &endpoints, cluster_extra, "")
}

fn backends(n: usize) -> Vec<Backend> {
    (0..n).map(|_| Backend::start()).collect()
}

fn accepted(bs: &[Backend]) -> Vec<usize> {
    bs.iter().map(Backend::accepted).collect()
}

#[test]
fn weighted_round_robin_is_exact_over_whole_cycles() {
    let bs = backends(3);
    let port = free_port();
    let weighted: Vec<(&Backend, u32)> = bs.iter().zip([1, 2, 3]).collect();
    let _p = Proxy::start(&config(port, "", &weighted), &["--concurrency", "1"]);
    for _ in 0..60 {
        assert!(echo_once(port));
    }
    assert_eq!(accepted(&bs), vec![10, 20, 30]);
}

#[test]
fn least_request_balances_long_lived_connections() {
    let bs = backends(3);
    let port = free_port();
    let equal: Vec<(&Backend, u32)> = bs.iter().map(|b| (b, 1)).collect();
    let _p = Proxy::start(
        &config(port, "    lb_policy: LEAST_REQUEST\n    least_request_lb_config: { choice_count: 5 }", &equal),
        &["--concurrency", "2"],
    );
    // Thirty connections held open one after the other: each goes to a least-loaded
    // host (a connected tcp_proxy session is an active request on its host).
    let mut held = Vec::new();
    for _ in 0..30 {
        let mut s = TcpStream::connect(localhost(port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(b"x").unwrap();
        let mut b = [0u8; 1];
        s.read_exact(&mut b).unwrap();
        held.push(s);
    }
    let c = accepted(&bs);
    assert!(c.iter().all(|n| (8..=12).contains(n)), "{c:?}");
    drop(held);
}

#[test]
fn random_spreads_connections_uniformly() {
    let bs = backends(3);
    let port = free_port();
    let equal: Vec<(&Backend, u32)> = bs.iter().map(|b| (b, 1)).collect();
    let _p = Proxy::start(&config(port, "    lb_policy: RANDOM", &equal), &["--concurrency", "2"]);
    for _ in 0..300 {
        assert!(echo_once(port));
    }
    let c = accepted(&bs);
    assert!(c.iter().all(|n| (60..=140).contains(n)), "{c:?}");
}

#[test]
fn consistent_hash_policies_serve_without_a_hash_policy() {
    for (policy, extra) in [
        ("RING_HASH", "    ring_hash_lb_config: { minimum_ring_size: 256 }"),
        ("MAGLEV", "    maglev_lb_config: { table_size: 1021 }"),
    ] {
        let bs = backends(3);
        let port = free_port();
        let equal: Vec<(&Backend, u32)> = bs.iter().map(|b| (b, 1)).collect();
        let _p =
            Proxy::start(&config(port, &format!("    lb_policy: {policy}\n{extra}"), &equal), &["--concurrency", "2"]);
        for _ in 0..150 {
            assert!(echo_once(port));
        }
        let c = accepted(&bs);
        assert!(c.iter().all(|n| (20..=80).contains(n)), "{policy}: {c:?}");
    }
}

#[test]
fn a_lower_priority_serves_only_when_the_first_cannot() {
    let bs = backends(2);
    let port = free_port();
    let endpoints = format!(
        "        - endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {} }} }} }}\n      - priority: 1\n        lb_endpoints:\n        - endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {} }} }} }}\n",
        bs[0].port(),
        bs[1].port()
    );
    let yaml = config(port, "", &[]).replace("      - lb_endpoints:\n", &format!("      - lb_endpoints:\n{endpoints}"));
    let _p = Proxy::start(&yaml, &["--concurrency", "1"]);
    for _ in 0..20 {
        assert!(echo_once(port));
    }
    assert_eq!(accepted(&bs), vec![20, 0]);
}
