//! The local rate limit filter end to end on both backends: the bucket empties and
//! the next request gets 429 `local_rate_limited` with `response_headers_to_add` and
//! the x-ratelimit headers, the counters `<stat_prefix>.http_local_rate_limit.*`; the
//! bucket is shared by the workers; a route with its own config has its own bucket; a
//! route can switch the filter off; `filter_enforced` at 0 % only counts.

use sluice_e2e::backend::{Backend, Net};
use sluice_e2e::config::ClusterAt;
use sluice_e2e::http_origin::HttpOrigin;
use sluice_e2e::http_proxy::HttpProxy;
use sluice_e2e::on_both_backends;

fn filter(enforced: u32) -> String {
    format!(
        r#"- name: envoy.filters.http.local_ratelimit
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit
    stat_prefix: http_local_rate_limiter
    token_bucket: {{ max_tokens: 3, tokens_per_fill: 3, fill_interval: 3600s }}
    filter_enabled: {{ runtime_key: e, default_value: {{ numerator: 100, denominator: HUNDRED }} }}
    filter_enforced: {{ runtime_key: f, default_value: {{ numerator: {enforced}, denominator: HUNDRED }} }}
    response_headers_to_add:
    - append_action: OVERWRITE_IF_EXISTS_OR_ADD
      header: {{ key: x-local-rate-limit, value: "true" }}
    request_headers_to_add_when_not_enforced:
    - header: {{ key: x-would-be-limited, value: "yes" }}
    enable_x_ratelimit_headers: DRAFT_VERSION_03
"#
    )
}

const VHOSTS: &str = r#"- name: app
  domains: ["*"]
  routes:
  - match: { prefix: "/own" }
    route: { cluster: web }
    typed_per_filter_config:
      envoy.filters.http.local_ratelimit:
        "@type": type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit
        stat_prefix: own_route
        token_bucket: { max_tokens: 1, fill_interval: 3600s }
        filter_enabled: { default_value: { numerator: 100 } }
        filter_enforced: { default_value: { numerator: 100 } }
  - match: { prefix: "/free" }
    route: { cluster: web }
    typed_per_filter_config:
      envoy.filters.http.local_ratelimit: { "@type": type.googleapis.com/envoy.config.route.v3.FilterConfig, disabled: true }
  - match: { prefix: "/" }
    route: { cluster: web }
"#;

fn start<'n>(net: &'n Net, origin: &HttpOrigin, enforced: u32, workers: usize) -> HttpProxy<'n> {
    let endpoints = [origin.addr];
    let clusters = [ClusterAt { name: "web", endpoints: &endpoints, extra: "" }];
    HttpProxy::start(net, VHOSTS, &clusters, "", &filter(enforced), workers)
}

const STATS: &str = "http_local_rate_limiter.http_local_rate_limit";

fn bucket_empties_to_429(backend: Backend) {
    let net = Net::new(backend);
    let origin = HttpOrigin::serve(net.listen(), "web");
    // Two workers, one client connection each request: the bucket is shared.
    let p = start(&net, &origin, 100, 2);
    for i in 0..3 {
        let r = p.client().get("/");
        assert_eq!(r.status, 200, "request {i}");
        assert_eq!(r.header("x-ratelimit-limit"), Some("3"));
        assert_eq!(r.header("x-ratelimit-remaining"), Some(["2", "1", "0"][i]));
    }
    let r = p.client().get("/");
    assert_eq!(r.status, 429);
    assert_eq!(r.text(), "local_rate_limited");
    assert_eq!(r.header("x-local-rate-limit"), Some("true"));
    assert_eq!(r.header("x-ratelimit-remaining"), Some("0"));
    assert_eq!(r.header("x-ratelimit-reset"), Some("1200"), "one token every 1200 s");
    assert_eq!(origin.requests(), 3);
    assert_eq!(p.counter(&format!("{STATS}.enabled")), 4);
    assert_eq!(p.counter(&format!("{STATS}.ok")), 3);
    assert_eq!(p.counter(&format!("{STATS}.rate_limited")), 1);
    assert_eq!(p.counter(&format!("{STATS}.enforced")), 1);
    // A route with its own config has its own bucket and stats; `/free` is off.
    assert_eq!(p.client().get("/own").status, 200);
    assert_eq!(p.client().get("/own").status, 429);
    assert_eq!(p.counter("own_route.http_local_rate_limit.rate_limited"), 1);
    assert_eq!(p.client().get("/free").status, 200);
    assert_eq!(p.counter(&format!("{STATS}.enabled")), 4, "a disabled route does not count");
}

fn not_enforced_only_counts(backend: Backend) {
    let net = Net::new(backend);
    let origin = HttpOrigin::serve(net.listen(), "web");
    let p = start(&net, &origin, 0, 1);
    let mut c = p.client();
    for _ in 0..5 {
        assert_eq!(c.get("/").status, 200);
    }
    assert_eq!(p.counter(&format!("{STATS}.rate_limited")), 2);
    assert_eq!(p.counter(&format!("{STATS}.enforced")), 0);
    let seen = origin.seen();
    assert_eq!(seen[2].header("x-would-be-limited"), None);
    assert_eq!(seen[3].header("x-would-be-limited"), Some("yes"), "request_headers_to_add_when_not_enforced");
}

on_both_backends!(bucket_empties_to_429, not_enforced_only_counts);

// Over HTTP/2 as well (prior knowledge; the origins stay HTTP/1.1).
sluice_e2e::over_http2!(bucket_empties_to_429, not_enforced_only_counts,);
