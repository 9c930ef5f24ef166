//! The cost of the HTTP filters Envoy users put in front of the router: one request's
//! decode path (route match, the chain's filters created from the route, their
//! `decode_headers`, the router's header finalization) through cors + local_ratelimit +
//! rbac + jwt_authn (local JWKS, an RS256 token, `jwt_cache_config`: verified once per
//! worker, then a cache hit) + router, against the router alone, in the same run, the
//! chain without jwt_authn, and the chain with jwt_authn verifying the signature on every
//! request (no `jwt_cache_config`). Times are CPU time per request
//! (see `sluice_bench::cpu_time`). The connection's addresses are `SocketAddr`s made
//! once, as a worker has them from `accept`; the request head is cloned from a template
//! each time, standing in for the codec that parses one per request.

use std::hint::black_box;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, UNIX_EPOCH};

use criterion::{criterion_group, criterion_main, Criterion};
use sluice::http::conn_manager::config::HcmConfig;
use sluice::http::filter::StreamContext;
use sluice::http::filter_manager::{Decoded, FilterManager};
use sluice::http::filters::ActiveFilter;
use sluice::http::RequestHead;
use sluice::router::StreamInfo;
use sluice::upstream::cluster_manager::ClusterManager;
use sluice_bench::cpu_time::CpuTime;
use sluice_config::listener::NetworkFilterKind;

/// An RS256 key's JWKS and a token it signed (iss https://issuer.example, aud api,
/// exp 2100-01-01), minted once with openssl for this benchmark.
const JWKS: &str = r#"{"keys":[{"kty":"RSA","kid":"bench","alg":"RS256","n":"j5UwiWVro7yhH9bYCztF9N-gRVYu79zrDTnbpg6IscKvL4ZnEzja3N1wP-b9B1RZX_uWlMPY3-dBO_-9-SwQXs6wAgm5uz5OGHkp1jCH44qFnomNdPNpGtTO_7PEcce61zgRbAYLPauMuMyU0QqNMLwduN3Ut9PQcbT-7-O9zb-S_nqg5J7ivK_7UMCE3TDMHRFR2h-gfnGC_WwNMHZoGizMu_oY8bLf2gtsaYQ_va6JAinS85EBgPTHTjaj5Q3nCTwAX8q44aCsqNGlISaLVIJ7jY3MQ7Plntx8ab2Lv6ha3JTKTplGoojXu7dZb_RuDvVtMoPYBigZtmojGu-k3w","e":"AQAB"}]}"#;
const TOKEN: &str = "eyJhbGciOiJSUzI1NiIsImtpZCI6ImJlbmNoIiwidHlwIjoiSldUIn0.eyJpc3MiOiJodHRwczovL2lzc3Vlci5leGFtcGxlIiwic3ViIjoiYWxpY2UiLCJhdWQiOiJhcGkiLCJleHAiOjQxMDI0NDQ4MDB9.BjeFQdMefpR_KEsYgXYjrka5O_ZKl1VfSqxYzd-ZhrWLtl_ZLh9Bd-yJE5IPk1QCtp2VuyF8UUKg2ryG30AeE3EMyu_ZnrwLAGTtoqZsQyGUJ2CZmhjq0xZandmqi0zlbz7kVBJpiHKhUcB5TDTAXk4y-1mKT8OnwqJWW27aE25mJMpif-8Cat1JUtXJk4dOsjhpMuTQXAoMpWMOAXt1D9jptUSGMPfnT3BDsfwNgS1A-trnso3ujeKoczMCGMgVWjspKMRy2iUJZcGWJOrSOn_Us9XclIdzSDbcIs6iU5btt_0u6C7r3Z4TTpMmtJJEPohbvqwv2cVmpzXdBbMeEQ";

fn filters() -> String {
    format!(
        r#"
          - name: envoy.filters.http.cors
            typed_config: {{ "@type": type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors }}
          - name: envoy.filters.http.local_ratelimit
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit
              stat_prefix: http_local_rate_limiter
              token_bucket: {{ max_tokens: 1000000000, tokens_per_fill: 1000000000, fill_interval: 1s }}
              filter_enabled: {{ default_value: {{ numerator: 100 }} }}
              filter_enforced: {{ default_value: {{ numerator: 100 }} }}
          - name: envoy.filters.http.rbac
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC
              rules:
                action: ALLOW
                policies:
                  api:
                    permissions: [{{ and_rules: {{ rules: [{{ url_path: {{ path: {{ prefix: /api/ }} }} }}, {{ header: {{ name: ":method", string_match: {{ exact: GET }} }} }}] }} }}]
                    principals: [{{ remote_ip: {{ address_prefix: 10.0.0.0, prefix_len: 8 }} }}]
          - name: envoy.filters.http.jwt_authn
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication
              providers:
                p:
                  issuer: https://issuer.example
                  audiences: [api]
                  local_jwks: {{ inline_string: '{JWKS}' }}
                  forward: true
                  jwt_cache_config: {{ jwt_cache_size: 100 }}
              rules: [{{ match: {{ prefix: / }}, requires: {{ provider_name: p }} }}]
"#
    )
}

fn bootstrap(filters: &str) -> String {
    format!(
        r#"static_resources:
  clusters:
  - name: web
    load_assignment: {{ cluster_name: web, endpoints: [{{ lb_endpoints: [{{ endpoint: {{ address: {{ socket_address: {{ address: 10.0.0.9, port_value: 80 }} }} }} }}] }}] }}
  listeners:
  - name: l
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: 8080 }} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress
          route_config:
            virtual_hosts:
            - name: api
              domains: ["*"]
              typed_per_filter_config:
                envoy.filters.http.cors:
                  "@type": type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy
                  allow_origin_string_match: [{{ exact: "https://app.example" }}]
                  allow_methods: GET,POST
              routes:
              - match: {{ prefix: /api/ }}
                route: {{ cluster: web }}
          http_filters:{filters}
          - name: envoy.filters.http.router
            typed_config: {{ "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }}
"#
    )
}

fn hcm(filters: &str) -> HcmConfig {
    let loaded = sluice_config::load_str(&bootstrap(filters)).unwrap_or_else(|e| panic!("{e}"));
    let NetworkFilterKind::HttpConnectionManager(h) = &loaded.bootstrap.listeners[0].filter_chains[0].filters[0].kind
    else {
        panic!("no HCM")
    };
    let clusters = Arc::new(ClusterManager::new(loaded.bootstrap.clusters.clone(), |_| Vec::new()));
    HcmConfig::new(h, clusters, 1 << 20, "bench").unwrap_or_else(|e| panic!("{e}"))
}

fn request() -> RequestHead {
    let mut r = RequestHead {
        method: "GET".into(),
        scheme: "http".into(),
        authority: "api.example".into(),
        path: "/api/orders?id=7".into(),
        ..Default::default()
    };
    r.headers.append(b"user-agent", b"curl/8.5.0");
    r.headers.append(b"accept", b"*/*");
    r.headers.append(b"origin", b"https://app.example");
    r.headers.append(b"authorization", format!("Bearer {TOKEN}").as_bytes());
    r
}

/// The downstream connection's addresses, as a worker has them (socket addresses from
/// `accept`, not text).
#[derive(Clone, Copy)]
struct Peer {
    remote: SocketAddr,
    local: SocketAddr,
}

/// One request's decode path; panics unless every filter lets it through.
fn decode(
    cfg: &HcmConfig,
    fm: &mut FilterManager<ActiveFilter>,
    head: &mut RequestHead,
    info: &StreamInfo,
    runtime: &sluice::runtime::Snapshot,
    peer: Peer,
    rnd: u64,
) {
    let Peer { remote, local } = peer;
    let Some(matched) = cfg.routes.route(head, rnd) else { panic!("no route") };
    let pos = matched.route_position().map(|(i, j)| (i, Some(j)));
    let view = cfg.route_filters.view(pos);
    fm.start(cfg.filters.iter().enumerate().filter_map(|(k, f)| f.create(k, &view)), cfg.buffer_limit);
    let cx = StreamContext {
        now: Instant::now(),
        remote,
        direct_remote: remote,
        local,
        sni: None,
        peer_principals: &[],
        tls: false,
        cluster: "web",
        routed: true,
        health_check_failed: false,
        runtime,
    };
    let out = fm.decode_headers(head, true, &cx, rnd);
    assert!(matches!(out, Decoded::Continue), "{out:?}");
    matched.clone().finalize_request_headers(head, info, true);
    fm.destroy();
}

fn bench(c: &mut Criterion<CpuTime>) {
    let info = StreamInfo {
        downstream_remote: Some("10.1.2.3:45678".parse().unwrap()),
        ..StreamInfo::new(UNIX_EPOCH + Duration::from_secs(1_700_000_000))
    };
    let peer = Peer { remote: "10.1.2.3:45678".parse().unwrap(), local: "10.0.0.1:8080".parse().unwrap() };
    let base = request();
    let runtime = sluice::runtime::Snapshot::default();
    let mut g = c.benchmark_group("http_filters");
    let all = filters();
    // The same chain without jwt_authn, to show what the token's verification costs.
    let without_jwt = &all[..all.find("          - name: envoy.filters.http.jwt_authn").expect("jwt_authn entry")];
    let uncached = all.replace("                  jwt_cache_config: { jwt_cache_size: 100 }\n", "");
    assert_ne!(uncached, all);
    let cases = [
        ("router_alone", hcm("")),
        ("cors_lrl_rbac_router", hcm(without_jwt)),
        ("cors_lrl_rbac_jwt_router", hcm(&all)),
        ("cors_lrl_rbac_jwt_uncached_router", hcm(&uncached)),
    ];
    for (name, cfg) in cases {
        let mut fm = FilterManager::new(cfg.buffer_limit);
        g.bench_function(name, |b| {
            let mut head = base.clone();
            let mut rnd = 0u64;
            b.iter(|| {
                rnd = rnd.wrapping_add(0x9E37_79B9_7F4A_7C15);
                head.clone_from(&base);
                decode(&cfg, &mut fm, &mut head, &info, &runtime, peer, rnd);
                black_box(head.headers.len())
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().with_measurement(CpuTime);
    targets = bench
}
criterion_main!(benches);
