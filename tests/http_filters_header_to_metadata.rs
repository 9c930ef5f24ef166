//! The header_to_metadata filter end to end on both backends: request headers (and a
//! cookie, and a missing header's default) and a response header become dynamic
//! metadata that the access log
//! prints with `%DYNAMIC_METADATA(ns:key)%`; `remove` keeps a header from the origin;
//! a route's per-filter config replaces the filter's rules; the filter's
//! `http_filter_name.<stat_prefix>.*` counters. As in Envoy, the filter does not clear
//! the route cache: a route whose `match.dynamic_metadata` wants what the filter sets
//! is not selected (the route was chosen before the filter ran).

use std::time::{Duration, Instant};

use sluice_e2e::backend::{Backend, Net};
use sluice_e2e::config::ClusterAt;
use sluice_e2e::http_origin::HttpOrigin;
use sluice_e2e::http_proxy::HttpProxy;
use sluice_e2e::on_both_backends;

const FILTERS: &str = r#"- name: envoy.filters.http.header_to_metadata
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.filters.http.header_to_metadata.v3.Config
    stat_prefix: h2m
    request_rules:
    - header: x-tenant
      on_header_present: { metadata_namespace: app, key: tenant }
      on_header_missing: { metadata_namespace: app, key: tenant, value: none }
      remove: true
    - header: x-version
      on_header_present: { metadata_namespace: app, key: version, type: NUMBER }
    - cookie: session
      on_header_present: { metadata_namespace: app, key: session }
    response_rules:
    - header: x-origin
      on_header_present: { metadata_namespace: resp, key: origin }
      remove: true
"#;

const VHOSTS: &str = r#"- name: app
  domains: ["*"]
  routes:
  - match:
      prefix: "/"
      dynamic_metadata:
      - filter: app
        path: [{ key: tenant }]
        value: { string_match: { exact: acme } }
    route: { cluster: never }
  - match: { prefix: "/per-route" }
    route: { cluster: web }
    typed_per_filter_config:
      envoy.filters.http.header_to_metadata:
        "@type": type.googleapis.com/envoy.extensions.filters.http.header_to_metadata.v3.Config
        request_rules:
        - header: x-tenant
          on_header_present: { metadata_namespace: app, key: tenant, value: from-route }
  - match: { prefix: "/" }
    route: { cluster: web }
"#;

fn lines(path: &std::path::Path, n: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<String> = text.lines().map(str::to_string).collect();
        if lines.len() >= n || Instant::now() > deadline {
            return lines;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn headers_become_dynamic_metadata(backend: Backend) {
    let net = Net::new(backend);
    let web = HttpOrigin::serve(net.listen(), "web");
    let never = HttpOrigin::serve(net.listen(), "never");
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let access_log = format!(
        "access_log:\n- name: file\n  typed_config:\n    \"@type\": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog\n    path: {}\n    log_format:\n      text_format_source:\n        inline_string: \"%REQ(:PATH)% %DYNAMIC_METADATA(app:tenant)% %DYNAMIC_METADATA(app:version)% %DYNAMIC_METADATA(app:session)% %DYNAMIC_METADATA(resp:origin)% %UPSTREAM_CLUSTER%\\n\"\n",
        log.to_string_lossy()
    );
    let (we, ne) = ([web.addr], [never.addr]);
    let clusters =
        [ClusterAt { name: "web", endpoints: &we, extra: "" }, ClusterAt { name: "never", endpoints: &ne, extra: "" }];
    let p = HttpProxy::start(&net, VHOSTS, &clusters, &access_log, FILTERS, 1);
    let mut c = p.client();
    let r = c.request("GET", "/a", &[("x-tenant", "acme"), ("x-version", " 2.5 "), ("cookie", "x=1; session=s1")], b"");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-origin"), None, "a response rule's remove: the client never sees it");
    assert_eq!(web.seen().last().unwrap().header("x-tenant"), None, "remove: the origin never sees it");
    assert_eq!(never.requests(), 0, "the route was chosen before the filter set app.tenant");
    assert_eq!(c.request("GET", "/b", &[], b"").status, 200);
    assert_eq!(c.request("GET", "/per-route", &[("x-tenant", "acme")], b"").status, 200);
    assert_eq!(
        web.seen().last().unwrap().header("x-tenant"),
        Some("acme"),
        "the route's rules replace the filter's (no remove there)"
    );
    let got = lines(&log, 3);
    // The route's config has no response rules: x-origin stays, no resp.origin.
    assert_eq!(got, ["/a acme 2.5 s1 web web", "/b none - - web web", "/per-route from-route - - - web"]);
    assert_eq!(p.counter("http_filter_name.h2m.request_rules_processed"), 6);
    assert_eq!(p.counter("http_filter_name.h2m.request_metadata_added"), 4);
    assert_eq!(p.counter("http_filter_name.h2m.request_header_not_found"), 1);
    assert_eq!(p.counter("http_filter_name.h2m.response_rules_processed"), 2);
    assert_eq!(p.counter("http_filter_name.h2m.response_metadata_added"), 2);
}

on_both_backends!(headers_become_dynamic_metadata);

// Over HTTP/2 as well (prior knowledge; the origins stay HTTP/1.1).
sluice_e2e::over_http2!(headers_become_dynamic_metadata,);
