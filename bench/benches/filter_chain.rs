//! Filter-chain selection per connection: a small mixed listener (SNI, transport and
//! application protocols) and an Istio-style outbound listener with a chain per
//! service address. Times are CPU time per operation (see `sluice_bench::cpu_time`).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use sluice::filter_chain::{ConnectionInfo, FilterChainManager, Selected};
use sluice_bench::cpu_time::CpuTime;
use sluice_config::address::CidrRange;
use sluice_config::listener::{FilterChain, FilterChainMatch};

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

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn mixed() -> FilterChainManager {
    let mut chains = vec![
        chain(
            "h2",
            FilterChainMatch {
                server_names: strings(&["api.example.com"]),
                transport_protocol: "tls".into(),
                application_protocols: strings(&["h2"]),
                ..Default::default()
            },
        ),
        chain(
            "wild",
            FilterChainMatch {
                server_names: strings(&["*.example.com"]),
                transport_protocol: "tls".into(),
                ..Default::default()
            },
        ),
        chain("tls", FilterChainMatch { transport_protocol: "tls".into(), ..Default::default() }),
        chain(
            "http",
            FilterChainMatch { application_protocols: strings(&["http/1.1", "http/1.0"]), ..Default::default() },
        ),
        chain("raw", FilterChainMatch::default()),
    ];
    for i in 0..50 {
        chains.push(chain(
            &format!("svc{i}"),
            FilterChainMatch {
                server_names: vec![format!("svc{i}.internal.example.org")],
                transport_protocol: "tls".into(),
                ..Default::default()
            },
        ));
    }
    FilterChainManager::new(&chains, None).expect("valid chains")
}

fn outbound(services: u32) -> FilterChainManager {
    let mut chains = Vec::new();
    for i in 0..services {
        let prefix: CidrRange = format!("10.96.{}.{}/32", i / 250, i % 250).parse().expect("cidr");
        chains.push(chain(
            &format!("svc{i}"),
            FilterChainMatch { destination_port: Some(8080), prefix_ranges: vec![prefix], ..Default::default() },
        ));
    }
    chains.push(chain("passthrough", FilterChainMatch::default()));
    FilterChainManager::new(&chains, None).expect("valid chains")
}

fn bench(c: &mut Criterion<CpuTime>) {
    let m = mixed();
    let base = ConnectionInfo {
        local: "10.0.0.1:443".parse().expect("addr"),
        remote: "192.0.2.7:51000".parse().expect("addr"),
        direct_remote: "192.0.2.7:51000".parse().expect("addr"),
        server_name: Some("www.Example.com"),
        transport_protocol: "tls",
        application_protocols: &["h2", "http/1.1"],
    };
    let mut group = c.benchmark_group("filter_chain");
    group.bench_function("sni_wildcard_55_chains", |b| {
        b.iter(|| assert_eq!(m.select(black_box(&base)), Some(Selected::Chain(1))))
    });
    let exact = ConnectionInfo { server_name: Some("svc42.internal.example.org"), ..base };
    group.bench_function("sni_exact_55_chains", |b| b.iter(|| black_box(m.select(black_box(&exact)))));
    let plain = ConnectionInfo {
        server_name: None,
        transport_protocol: "raw_buffer",
        application_protocols: &["http/1.1"],
        ..base
    };
    group.bench_function("plaintext_alpn_55_chains", |b| {
        b.iter(|| assert_eq!(m.select(black_box(&plain)), Some(Selected::Chain(3))))
    });
    let o = outbound(1000);
    let svc = ConnectionInfo { local: "10.96.2.137:8080".parse().expect("addr"), ..plain };
    group.bench_function("destination_ip_1001_chains", |b| {
        b.iter(|| assert_eq!(o.select(black_box(&svc)), Some(Selected::Chain(637))))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().with_measurement(CpuTime);
    targets = bench
}
criterion_main!(benches);
