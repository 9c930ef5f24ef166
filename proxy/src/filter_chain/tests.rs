use sluice_config::listener::{ConnectionSourceType, FilterChain, FilterChainMatch};

use super::*;

fn chain(name: &str, m: FilterChainMatch) -> FilterChain {
    FilterChain {
        name: name.into(),
        filter_chain_match: m,
        filters: Vec::new(),
        transport_socket: None,
        transport_socket_connect_timeout: None,
        line: 0,
    }
}

fn cidrs(v: &[&str]) -> Vec<sluice_config::address::CidrRange> {
    v.iter().map(|c| c.parse().unwrap()).collect()
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// A connection from 10.0.0.9:5555 to `local`, plaintext.
fn conn(local: &str) -> ConnectionInfo<'static> {
    ConnectionInfo {
        local: local.parse().unwrap(),
        remote: "10.0.0.9:5555".parse().unwrap(),
        direct_remote: "10.0.0.9:5555".parse().unwrap(),
        server_name: None,
        transport_protocol: "raw_buffer",
        application_protocols: &[],
    }
}

fn tls(local: &str, sni: &'static str) -> ConnectionInfo<'static> {
    ConnectionInfo { server_name: Some(sni), transport_protocol: "tls", ..conn(local) }
}

fn manager(chains: Vec<FilterChain>) -> FilterChainManager {
    FilterChainManager::new(&chains, None).unwrap()
}

fn pick(m: &FilterChainManager, info: ConnectionInfo<'_>) -> Option<usize> {
    match m.select(&info) {
        Some(Selected::Chain(i)) => Some(i),
        Some(Selected::Default) => Some(usize::MAX),
        None => None,
    }
}

#[test]
fn destination_port_exact_then_any_without_fallback() {
    let m = manager(vec![
        chain("any", FilterChainMatch::default()),
        chain("80", FilterChainMatch { destination_port: Some(80), ..Default::default() }),
        chain(
            "80-tls",
            FilterChainMatch { destination_port: Some(443), transport_protocol: "tls".into(), ..Default::default() },
        ),
    ]);
    assert_eq!(pick(&m, conn("10.1.2.3:80")), Some(1));
    assert_eq!(pick(&m, conn("10.1.2.3:81")), Some(0));
    assert_eq!(pick(&m, tls("10.1.2.3:443", "a")), Some(2));
    // Port 443 has its own branch: a plaintext connection finds nothing there and does
    // not fall back to the port-less chain.
    assert_eq!(pick(&m, conn("10.1.2.3:443")), None);
}

#[test]
fn destination_ip_longest_prefix() {
    let m = manager(vec![
        chain("none", FilterChainMatch::default()),
        chain("/16", FilterChainMatch { prefix_ranges: cidrs(&["10.1.0.0/16"]), ..Default::default() }),
        chain("/32", FilterChainMatch { prefix_ranges: cidrs(&["10.1.2.3/32", "192.0.2.0/24"]), ..Default::default() }),
        chain("v6", FilterChainMatch { prefix_ranges: cidrs(&["2001:db8::/32"]), ..Default::default() }),
    ]);
    assert_eq!(pick(&m, conn("10.1.2.3:80")), Some(2));
    assert_eq!(pick(&m, conn("192.0.2.77:80")), Some(2));
    assert_eq!(pick(&m, conn("10.1.9.9:80")), Some(1));
    assert_eq!(pick(&m, conn("10.2.0.1:80")), Some(0));
    assert_eq!(pick(&m, conn("[2001:db8::1]:80")), Some(3));
    assert_eq!(pick(&m, conn("[2001:db9::1]:80")), Some(0));
    assert_eq!(pick(&m, conn("[::ffff:10.1.2.3]:80")), Some(2), "IPv4-mapped");
}

#[test]
fn server_names_exact_then_longest_wildcard_then_none() {
    let m = manager(vec![
        chain("exact", FilterChainMatch { server_names: strings(&["www.example.com"]), ..Default::default() }),
        chain("wild", FilterChainMatch { server_names: strings(&["*.example.com"]), ..Default::default() }),
        chain("deeper", FilterChainMatch { server_names: strings(&["*.api.example.com"]), ..Default::default() }),
        chain("tld", FilterChainMatch { server_names: strings(&["*.com"]), ..Default::default() }),
        chain("none", FilterChainMatch::default()),
    ]);
    assert_eq!(pick(&m, tls("1.1.1.1:443", "www.example.com")), Some(0));
    assert_eq!(pick(&m, tls("1.1.1.1:443", "WWW.Example.COM")), Some(0), "case-insensitive");
    assert_eq!(pick(&m, tls("1.1.1.1:443", "foo.example.com")), Some(1));
    // Multi-level: `*.example.com` covers any depth, the longer wildcard wins.
    assert_eq!(pick(&m, tls("1.1.1.1:443", "a.b.example.com")), Some(1));
    assert_eq!(pick(&m, tls("1.1.1.1:443", "v1.api.example.com")), Some(2));
    assert_eq!(pick(&m, tls("1.1.1.1:443", "example.com")), Some(3), "`*.com` covers example.com");
    assert_eq!(pick(&m, tls("1.1.1.1:443", "example.org")), Some(4));
    assert_eq!(pick(&m, conn("1.1.1.1:443")), Some(4), "no SNI");
    let m = manager(vec![chain(
        "wild",
        FilterChainMatch { server_names: strings(&["*.example.com"]), ..Default::default() },
    )]);
    assert_eq!(pick(&m, tls("1.1.1.1:443", "example.com")), None, "the wildcard needs a label before the suffix");
    assert_eq!(pick(&m, conn("1.1.1.1:443")), None);
    // Names too long to lower-case on the stack take the slower comparison.
    let long: &'static str = Box::leak(format!("{}.Example.COM", "a".repeat(300)).into_boxed_str());
    assert_eq!(pick(&m, tls("1.1.1.1:443", long)), Some(0));
    let m =
        manager(vec![chain("exact", FilterChainMatch { server_names: vec![long.to_string()], ..Default::default() })]);
    assert_eq!(pick(&m, tls("1.1.1.1:443", long)), Some(0));
    assert_eq!(pick(&m, tls("1.1.1.1:443", &long[1..])), None);
}

#[test]
fn no_backtracking_after_the_most_specific_branch() {
    let m = manager(vec![
        chain(
            "exact-tls",
            FilterChainMatch {
                server_names: strings(&["a.example.com"]),
                transport_protocol: "tls".into(),
                ..Default::default()
            },
        ),
        chain("catch-all", FilterChainMatch::default()),
    ]);
    // The server name picks the exact branch; its transport protocol fails there, and
    // Envoy does not go back to the catch-all.
    let info = ConnectionInfo { server_name: Some("a.example.com"), ..conn("1.1.1.1:443") };
    assert_eq!(pick(&m, info), None);
    let d = chain("default", FilterChainMatch::default());
    let chains = vec![chain(
        "exact-tls",
        FilterChainMatch {
            server_names: strings(&["a.example.com"]),
            transport_protocol: "tls".into(),
            ..Default::default()
        },
    )];
    let m = FilterChainManager::new(&chains, Some(&d)).unwrap();
    assert_eq!(m.select(&info), Some(Selected::Default));
    assert_eq!(m.select(&tls("1.1.1.1:443", "a.example.com")), Some(Selected::Chain(0)));
}

#[test]
fn transport_protocol_exact_or_any() {
    let m = manager(vec![
        chain("tls", FilterChainMatch { transport_protocol: "tls".into(), ..Default::default() }),
        chain("raw", FilterChainMatch { transport_protocol: "raw_buffer".into(), ..Default::default() }),
    ]);
    assert_eq!(pick(&m, tls("1.1.1.1:443", "x")), Some(0));
    assert_eq!(pick(&m, conn("1.1.1.1:443")), Some(1));
    let unset = ConnectionInfo { transport_protocol: "", ..conn("1.1.1.1:443") };
    assert_eq!(pick(&m, unset), Some(1), "unset counts as raw_buffer");
    let m = manager(vec![chain("tls", FilterChainMatch { transport_protocol: "tls".into(), ..Default::default() })]);
    assert_eq!(pick(&m, conn("1.1.1.1:443")), None);
}

#[test]
fn application_protocols_follow_the_clients_order() {
    let m = manager(vec![
        chain(
            "h1",
            FilterChainMatch { application_protocols: strings(&["http/1.1", "http/1.0"]), ..Default::default() },
        ),
        chain("h2", FilterChainMatch { application_protocols: strings(&["h2"]), ..Default::default() }),
        chain("other", FilterChainMatch::default()),
    ]);
    let with = |alpn: &'static [&'static str]| ConnectionInfo { application_protocols: alpn, ..conn("1.1.1.1:80") };
    assert_eq!(pick(&m, with(&["h2", "http/1.1"])), Some(1));
    assert_eq!(pick(&m, with(&["http/1.1", "h2"])), Some(0));
    assert_eq!(pick(&m, with(&["http/1.0"])), Some(0));
    assert_eq!(pick(&m, with(&["spdy/3", "h2"])), Some(1));
    assert_eq!(pick(&m, with(&["h2c"])), Some(2));
    assert_eq!(pick(&m, with(&[])), Some(2));
}

#[test]
fn source_addresses_ports_and_types() {
    let m = manager(vec![
        chain(
            "direct",
            FilterChainMatch { direct_source_prefix_ranges: cidrs(&["172.16.0.0/12"]), ..Default::default() },
        ),
        chain("src", FilterChainMatch { source_prefix_ranges: cidrs(&["10.0.0.0/8"]), ..Default::default() }),
        chain(
            "src-port",
            FilterChainMatch {
                source_prefix_ranges: cidrs(&["10.0.0.0/8"]),
                source_ports: vec![5555, 6666],
                ..Default::default()
            },
        ),
        chain("rest", FilterChainMatch::default()),
    ]);
    let from = |remote: &str, direct: &str| ConnectionInfo {
        remote: remote.parse().unwrap(),
        direct_remote: direct.parse().unwrap(),
        ..conn("192.0.2.1:80")
    };
    assert_eq!(pick(&m, from("10.0.0.9:5555", "10.0.0.9:5555")), Some(2));
    assert_eq!(pick(&m, from("10.0.0.9:7777", "10.0.0.9:7777")), Some(1));
    assert_eq!(pick(&m, from("11.0.0.9:5555", "11.0.0.9:5555")), Some(3));
    // The direct source (the TCP peer) is matched before the (PROXY-protocol) source.
    assert_eq!(pick(&m, from("10.0.0.9:5555", "172.20.0.1:5555")), Some(0));
}

#[test]
fn source_type_local_external_any() {
    let by_type = |t| FilterChainMatch { source_type: t, ..Default::default() };
    let m = manager(vec![
        chain("local", by_type(ConnectionSourceType::SameIpOrLoopback)),
        chain("external", by_type(ConnectionSourceType::External)),
        chain("any", FilterChainMatch { source_ports: vec![1], ..Default::default() }),
    ]);
    let from = |local: &str, remote: &str| ConnectionInfo {
        remote: remote.parse().unwrap(),
        direct_remote: remote.parse().unwrap(),
        ..conn(local)
    };
    assert_eq!(pick(&m, from("10.0.0.1:80", "127.0.0.1:5000")), Some(0));
    assert_eq!(pick(&m, from("[::1]:80", "[::1]:5000")), Some(0));
    assert_eq!(pick(&m, from("10.0.0.1:80", "10.0.0.1:5000")), Some(0), "same IP");
    assert_eq!(pick(&m, from("10.0.0.1:80", "10.0.0.2:5000")), Some(1));
    // Only a local chain: an external connection falls through to ANY.
    let m = manager(vec![
        chain("local", by_type(ConnectionSourceType::SameIpOrLoopback)),
        chain("any", FilterChainMatch::default()),
    ]);
    assert_eq!(pick(&m, from("10.0.0.1:80", "10.0.0.2:5000")), Some(1));
    assert_eq!(pick(&m, from("10.0.0.1:80", "127.0.0.5:5000")), Some(0));
}

#[test]
fn default_chain_or_close() {
    let chains = vec![chain("80", FilterChainMatch { destination_port: Some(80), ..Default::default() })];
    let m = FilterChainManager::new(&chains, None).unwrap();
    assert_eq!(m.select(&conn("1.2.3.4:81")), None);
    let d = chain("default", FilterChainMatch::default());
    let m = FilterChainManager::new(&chains, Some(&d)).unwrap();
    assert_eq!(m.select(&conn("1.2.3.4:81")), Some(Selected::Default));
    assert_eq!(m.select(&conn("1.2.3.4:80")), Some(Selected::Chain(0)));
    let m = FilterChainManager::new(&[], Some(&d)).unwrap();
    assert_eq!(m.select(&conn("1.2.3.4:80")), Some(Selected::Default));
}

#[test]
fn identical_and_overlapping_rules_are_errors() {
    let e = FilterChainManager::new(
        &[chain("a", FilterChainMatch::default()), chain("b", FilterChainMatch::default())],
        None,
    )
    .unwrap_err();
    assert!(e.contains("'b' (filter_chains[1]) has the same matching rules defined as 'a' (filter_chains[0])"), "{e}");
    let names = |n: &[&str]| FilterChainMatch { server_names: strings(n), ..Default::default() };
    let e = FilterChainManager::new(&[chain("a", names(&["x.com", "y.com"])), chain("b", names(&["y.com"]))], None)
        .unwrap_err();
    assert!(e.contains("multiple filter chains with overlapping matching rules are defined"), "{e}");
    // The same set in another order is an overlap, not an identical message.
    let e = FilterChainManager::new(
        &[chain("a", names(&["x.com", "y.com"])), chain("b", names(&["y.com", "x.com"]))],
        None,
    )
    .unwrap_err();
    assert!(e.contains("overlapping"), "{e}");
    // Case does not make names distinct.
    assert!(FilterChainManager::new(&[chain("a", names(&["X.com"])), chain("b", names(&["x.COM"]))], None).is_err());
    // Same name, different transport protocol: distinct.
    let tls_names = FilterChainMatch { transport_protocol: "tls".into(), ..names(&["x.com"]) };
    assert!(FilterChainManager::new(&[chain("a", names(&["x.com"])), chain("b", tls_names)], None).is_ok());
    let e = FilterChainManager::new(&[chain("a", names(&["www*.example.com"]))], None).unwrap_err();
    assert!(e.contains("partial wildcards"), "{e}");
}

#[test]
fn many_destination_chains() {
    // An Istio-like outbound listener: one chain per service IP and port.
    let mut chains = Vec::new();
    for i in 0..200u32 {
        let ip = format!("10.96.{}.{}/32", i / 250, i % 250);
        chains.push(chain(
            &format!("svc{i}"),
            FilterChainMatch { destination_port: Some(8080), prefix_ranges: cidrs(&[&ip]), ..Default::default() },
        ));
    }
    chains.push(chain("passthrough", FilterChainMatch { destination_port: Some(8080), ..Default::default() }));
    let m = manager(chains);
    for i in [0u32, 1, 137, 199] {
        let local = format!("10.96.{}.{}:8080", i / 250, i % 250);
        assert_eq!(pick(&m, conn(&local)), Some(i as usize));
    }
    assert_eq!(pick(&m, conn("10.96.1.1:8080")), Some(200));
    assert_eq!(pick(&m, conn("10.96.0.1:9090")), None);
}
