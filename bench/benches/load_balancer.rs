//! Nanoseconds per host pick for every load-balancing policy, with 10 and 100 hosts.
//!
//! `pick/<policy>/<hosts>` measures a worker's balancer choosing from a published
//! priority set (priority choice + policy pick, no allocation, no lock);
//! `choose_host/round_robin/<hosts>` adds the worker's cluster view around it (the
//! version check and the host `Arc` clone a connection takes).

use std::hint::black_box;
use std::net::SocketAddr;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use sluice::upstream::host::{Host, HostSet};
use sluice::upstream::load_balancer::{LbConfig, LbContext, LoadBalancer};
use sluice::upstream::priority::PrioritySet;
use sluice_config::cluster::LbPolicy;

fn hosts(n: usize, weighted: bool) -> Arc<HostSet> {
    Arc::new(HostSet::new(
        (0..n)
            .map(|i| {
                let addr = SocketAddr::from(([10, 99, (i / 250) as u8, (i % 250) as u8 + 1], 8080));
                let w = if weighted { 1 + (i % 5) as u32 } else { 1 };
                Arc::new(Host::new(addr, String::new(), w, 0, None))
            })
            .collect(),
    ))
}

fn picks(c: &mut Criterion) {
    let mut g = c.benchmark_group("pick");
    let policies = [
        ("round_robin", LbPolicy::RoundRobin, false),
        ("round_robin_weighted", LbPolicy::RoundRobin, true),
        ("least_request", LbPolicy::LeastRequest, false),
        ("least_request_weighted", LbPolicy::LeastRequest, true),
        ("random", LbPolicy::Random, false),
        ("ring_hash", LbPolicy::RingHash, false),
        ("maglev", LbPolicy::Maglev, false),
    ];
    for (name, policy, weighted) in policies {
        for n in [10usize, 100] {
            let cfg = LbConfig { policy, ..LbConfig::default() };
            let ps = PrioritySet::build(hosts(n, weighted), &cfg);
            let mut lb = LoadBalancer::new(&cfg, 42);
            lb.refresh(&ps);
            let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
            g.bench_with_input(BenchmarkId::new(name, n), &n, |b, _| {
                b.iter(|| {
                    x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    let ctx = LbContext { random: x, hash: Some(x.rotate_left(17)), exclude: &[] };
                    black_box(lb.choose(&ps, &ctx))
                })
            });
        }
    }
    g.finish();
}

fn choose_host(c: &mut Criterion) {
    let mut g = c.benchmark_group("choose_host");
    for n in [10usize, 100] {
        let endpoints: String = (0..n)
            .map(|i| format!("        - endpoint: {{ address: {{ socket_address: {{ address: 10.99.{}.{}, port_value: 8080 }} }} }}\n", i / 250, i % 250 + 1))
            .collect();
        let yaml = format!(
            "static_resources:\n  clusters:\n  - name: b\n    load_assignment:\n      cluster_name: b\n      endpoints:\n      - lb_endpoints:\n{endpoints}"
        );
        let clusters = sluice_config::load_str(&yaml).unwrap().bootstrap.clusters;
        let cm = sluice::upstream::cluster_manager::ClusterManager::new(
            clusters,
            sluice::upstream::cluster_manager::static_hosts,
        );
        let mut tl = cm.thread_local_seeded(1);
        let mut x: u64 = 1;
        g.bench_with_input(BenchmarkId::new("round_robin", n), &n, |b, _| {
            b.iter(|| {
                x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
                let ctx = LbContext { random: x, ..Default::default() };
                black_box(tl.clusters[0].choose_host(&ctx, None))
            })
        });
    }
    g.finish();
}

criterion_group!(benches, picks, choose_host);
criterion_main!(benches);
