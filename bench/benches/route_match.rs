//! Route lookup cost on a large table: 100 virtual hosts x 10 routes, with prefix,
//! path, regex, path-separated-prefix, header (including regex) and query matchers,
//! weighted clusters, and the header/path finalization the router filter runs.

use std::hint::black_box;
use std::time::{Duration, UNIX_EPOCH};

use criterion::{criterion_group, criterion_main, Criterion};
use sluice::http::RequestHead;
use sluice::router::{RouteTable, StreamInfo};
use sluice_config::decode::{Decode, Decoder};
use sluice_config::route::RouteConfiguration;

const VHOSTS: usize = 100;

fn config() -> String {
    let mut y = String::from("virtual_hosts:\n");
    for i in 0..VHOSTS {
        y.push_str(&format!(
            "- name: svc{i}\n  domains: [svc{i}.example.com, 'svc{i}-alt.example.com', '*.svc{i}.example.org', 'svc{i}.*']\n  routes:\n"
        ));
        y.push_str(&format!(
            concat!(
                "  - match: {{path: /svc{i}/health}}\n    direct_response: {{status: 200, body: {{inline_string: ok}}}}\n",
                "  - match: {{prefix: /v1/, headers: [{{name: x-version, string_match: {{exact: '1'}}}}]}}\n    route: {{cluster: v1-{i}, prefix_rewrite: /}}\n",
                "  - match: {{safe_regex: {{regex: '/users/[0-9]+/orders/[0-9]+'}}}}\n    route: {{cluster: orders-{i}}}\n",
                "  - match: {{prefix: /api/, headers: [{{name: x-tenant, string_match: {{safe_regex: {{regex: 'tenant-[a-f0-9]{{8}}'}}}}}}]}}\n    route: {{cluster: tenant-{i}}}\n",
                "  - match: {{prefix: /search, query_parameters: [{{name: q, string_match: {{prefix: x}}}}]}}\n    route: {{cluster: search-{i}}}\n",
                "  - match: {{path_separated_prefix: /static}}\n    route: {{cluster: static-{i}}}\n",
                "  - match: {{prefix: /Admin, case_sensitive: false}}\n    route: {{cluster: admin-{i}}}\n",
                "  - match: {{prefix: /canary, headers: [{{name: x-canary, present_match: true}}, {{name: user-agent, string_match: {{contains: Mobile}}}}]}}\n    route: {{cluster: canary-{i}}}\n",
                "  - match: {{prefix: /split}}\n    route: {{weighted_clusters: {{clusters: [{{name: a-{i}, weight: 80}}, {{name: b-{i}, weight: 20}}]}}}}\n",
                "  - match: {{prefix: /}}\n    route: {{cluster: web-{i}, prefix_rewrite: /app/}}\n    request_headers_to_add: [{{header: {{key: x-client, value: '%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%'}}}}]\n",
            ),
            i = i
        ));
    }
    y
}

fn table() -> RouteTable {
    let text = config();
    let node = sluice_config::node::parse(&text).unwrap();
    let mut d = Decoder::new();
    let rc = RouteConfiguration::decode(&mut d, &node, "").unwrap();
    assert!(d.errors.is_empty(), "{:?}", d.errors);
    RouteTable::new(&rc)
}

fn req(authority: &str, path: &str, headers: &[(&str, &str)]) -> RequestHead {
    let mut r = RequestHead {
        method: "GET".into(),
        scheme: "http".into(),
        authority: authority.into(),
        path: path.into(),
        ..Default::default()
    };
    r.headers.append(b"x-forwarded-proto", b"http");
    r.headers.append(b"user-agent", b"curl/8.5.0");
    r.headers.append(b"accept", b"*/*");
    for (k, v) in headers {
        r.headers.append(k.as_bytes(), v.as_bytes());
    }
    r
}

fn bench(c: &mut Criterion) {
    let t = table();
    let cases = [
        ("exact_host_first_route", req("svc99.example.com", "/svc99/health", &[])),
        ("exact_host_last_route", req("SVC99.example.com", "/index.html", &[])),
        ("suffix_wildcard_host", req("eu.svc50.example.org", "/index.html", &[])),
        ("prefix_wildcard_host", req("svc42.internal", "/index.html", &[])),
        ("regex_path_route", req("svc10.example.com", "/users/12345/orders/678?x=1", &[])),
        ("regex_header_route", req("svc10.example.com", "/api/items", &[("x-tenant", "tenant-0123abcd")])),
        ("query_route", req("svc10.example.com", "/search?page=2&q=xyz", &[])),
        ("weighted_route", req("svc10.example.com", "/split/x", &[])),
        ("unknown_host", req("nowhere.example.net", "/", &[])),
    ];
    let mut g = c.benchmark_group("route_match");
    for (name, r) in &cases {
        g.bench_function(*name, |b| {
            let mut rnd = 0u64;
            b.iter(|| {
                rnd = rnd.wrapping_add(0x9E37_79B9_7F4A_7C15);
                black_box(t.route(black_box(r), rnd).map(|m| m.route_position()))
            })
        });
    }
    let info = StreamInfo {
        downstream_remote: Some("10.1.2.3:4567".parse().unwrap()),
        ..StreamInfo::new(UNIX_EPOCH + Duration::from_secs(1_700_000_000))
    };
    let base = req("svc99.example.com", "/index.html?x=1", &[]);
    g.bench_function("route_and_finalize_request", |b| {
        let mut r = base.clone();
        b.iter(|| {
            r.clone_from(&base);
            if let Some(m) = t.route(&r, 7) {
                let m = m.clone();
                m.finalize_request_headers(&mut r, &info, true);
            }
            black_box(r.path.len())
        })
    });
    g.finish();
    c.bench_function("compile_100x10", |b| {
        let text = config();
        let node = sluice_config::node::parse(&text).unwrap();
        let mut d = Decoder::new();
        let rc = RouteConfiguration::decode(&mut d, &node, "").unwrap();
        b.iter(|| black_box(RouteTable::new(&rc)))
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = bench
}
criterion_main!(benches);
