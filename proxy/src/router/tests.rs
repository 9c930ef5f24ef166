//! The route table against Envoy's documented semantics.

use std::time::{Duration, UNIX_EPOCH};

use sluice_config::decode::{Decode, Decoder};
use sluice_config::node::parse;
use sluice_config::route::{IdleTimeout, MirrorTarget, RetryOn, RouteConfiguration};

use super::*;
use crate::http::{RequestHead, ResponseHead};

fn table(yaml: &str) -> RouteTable {
    let n = parse(yaml).unwrap();
    let mut d = Decoder::new();
    let rc = RouteConfiguration::decode(&mut d, &n, "");
    assert!(d.errors.is_empty(), "{:?}", d.errors);
    RouteTable::new(&rc.unwrap())
}

/// One virtual host on `*` with these routes.
fn routes(r: &str) -> RouteTable {
    table(&format!("virtual_hosts:\n- name: vh\n  domains: ['*']\n  routes:\n{r}"))
}

fn req(authority: &str, path: &str) -> RequestHead {
    let mut r = RequestHead {
        method: "GET".into(),
        scheme: "http".into(),
        authority: authority.into(),
        path: path.into(),
        ..Default::default()
    };
    r.headers.append(b"x-forwarded-proto", b"http");
    r
}

fn with(mut r: RequestHead, headers: &[(&str, &str)]) -> RequestHead {
    for (k, v) in headers {
        r.headers.append(k.as_bytes(), v.as_bytes());
    }
    r
}

fn cluster(t: &RouteTable, r: &RequestHead) -> Option<String> {
    t.route(r, 0).map(|m| m.cluster_name().to_string())
}

fn info() -> StreamInfo<'static> {
    StreamInfo {
        downstream_remote: Some("127.0.0.1:40000".parse().unwrap()),
        ..StreamInfo::new(UNIX_EPOCH + Duration::from_secs(1_700_000_000))
    }
}

/// Route and finalize the request; returns (path, authority, the request).
fn finalized(t: &RouteTable, mut r: RequestHead, keep: bool) -> RequestHead {
    let m = t.route(&r, 0).expect("route");
    let m = m.clone();
    m.finalize_request_headers(&mut r, &info(), keep);
    r
}

fn h<'a>(r: &'a RequestHead, name: &'a str) -> Vec<&'a str> {
    r.headers.get_all(name.as_bytes()).map(|v| std::str::from_utf8(v).unwrap()).collect()
}

#[test]
fn first_match_wins_and_no_route() {
    let t = routes("  - match: {prefix: /api}\n    route: {cluster: api}\n  - match: {prefix: /api/v2}\n    route: {cluster: never}\n  - match: {path: /exact}\n    route: {cluster: exact}\n");
    assert_eq!(cluster(&t, &req("x", "/api/v2/users")).as_deref(), Some("api"));
    assert_eq!(cluster(&t, &req("x", "/exact")).as_deref(), Some("exact"));
    assert_eq!(cluster(&t, &req("x", "/exact/more")), None);
    assert_eq!(cluster(&t, &req("x", "/other")), None);
}

#[test]
fn case_sensitivity() {
    let t = routes("  - match: {prefix: /Api, case_sensitive: false}\n    route: {cluster: ci}\n  - match: {path: /Foo}\n    route: {cluster: cs}\n  - match: {safe_regex: {regex: '/[a-z]+'}, case_sensitive: false}\n    route: {cluster: re}\n");
    assert_eq!(cluster(&t, &req("x", "/aPI/x")).as_deref(), Some("ci"));
    assert_eq!(cluster(&t, &req("x", "/Foo")).as_deref(), Some("cs"));
    assert_eq!(cluster(&t, &req("x", "/foo")).as_deref(), Some("re"));
    // case_sensitive has no effect on safe_regex.
    assert_eq!(cluster(&t, &req("x", "/FOO")), None);
}

#[test]
fn paths_ignore_the_query_and_regex_matches_the_whole_path() {
    let t = routes("  - match: {path: /a}\n    route: {cluster: a}\n  - match: {safe_regex: {regex: '/b/\\d+'}}\n    route: {cluster: b}\n");
    assert_eq!(cluster(&t, &req("x", "/a?x=1")).as_deref(), Some("a"));
    assert_eq!(cluster(&t, &req("x", "/a#frag")).as_deref(), Some("a"));
    assert_eq!(cluster(&t, &req("x", "/b/12?y")).as_deref(), Some("b"));
    assert_eq!(cluster(&t, &req("x", "/b/12/c")), None);
    assert_eq!(cluster(&t, &req("x", "/x/b/12")), None);
}

#[test]
fn path_separated_prefix() {
    let t = routes("  - match: {path_separated_prefix: /api}\n    route: {cluster: api}\n");
    assert_eq!(cluster(&t, &req("x", "/api")).as_deref(), Some("api"));
    assert_eq!(cluster(&t, &req("x", "/api/v1")).as_deref(), Some("api"));
    assert_eq!(cluster(&t, &req("x", "/api?q")).as_deref(), Some("api"));
    assert_eq!(cluster(&t, &req("x", "/apix")), None);
}

#[test]
fn header_matchers() {
    let t = routes(concat!(
        "  - match: {prefix: /, headers: [{name: ':method', string_match: {exact: POST}}]}\n    route: {cluster: post}\n",
        "  - match: {prefix: /, headers: [{name: x-ver, range_match: {start: 1, end: 3}}]}\n    route: {cluster: range}\n",
        "  - match: {prefix: /, headers: [{name: x-debug, present_match: true}]}\n    route: {cluster: debug}\n",
        "  - match: {prefix: /, headers: [{name: x-env, string_match: {exact: prod}, invert_match: true}]}\n    route: {cluster: notprod}\n",
        "  - match: {prefix: /, headers: [{name: ':authority', string_match: {suffix: '.internal'}}]}\n    route: {cluster: internal}\n",
        "  - match: {prefix: /}\n    route: {cluster: default}\n",
    ));
    let r = |h: &[(&str, &str)]| cluster(&t, &with(req("a.com", "/"), h)).unwrap();
    let mut post = req("a.com", "/");
    post.method = "POST".into();
    assert_eq!(cluster(&t, &post).unwrap(), "post");
    assert_eq!(r(&[("x-ver", "2")]), "range");
    assert_eq!(r(&[("x-ver", "3"), ("x-env", "prod")]), "default");
    assert_eq!(r(&[("x-debug", "")]), "debug");
    assert_eq!(r(&[("x-env", "dev")]), "notprod");
    // invert_match on a value matcher: a missing header does not match.
    assert_eq!(r(&[]), "default");
    assert_eq!(cluster(&t, &with(req("db.internal", "/"), &[("x-env", "prod")])).unwrap(), "internal");
    // A repeated header is matched as its values joined with `,`.
    let t2 = routes(
        "  - match: {prefix: /, headers: [{name: x-a, string_match: {exact: '1,2'}}]}\n    route: {cluster: joined}\n",
    );
    assert_eq!(cluster(&t2, &with(req("x", "/"), &[("x-a", "1"), ("x-a", "2")])).as_deref(), Some("joined"));
    assert_eq!(cluster(&t2, &with(req("x", "/"), &[("x-a", "1")])), None);
}

#[test]
fn missing_headers() {
    let t = routes(concat!(
        "  - match: {prefix: /a, headers: [{name: x-h, string_match: {exact: ''}, treat_missing_header_as_empty: true}]}\n    route: {cluster: empty}\n",
        "  - match: {prefix: /b, headers: [{name: x-h, present_match: false}]}\n    route: {cluster: absent}\n",
        "  - match: {prefix: /c, headers: [{name: x-h, present_match: true, invert_match: true}]}\n    route: {cluster: inv}\n",
    ));
    assert_eq!(cluster(&t, &req("x", "/a")).as_deref(), Some("empty"));
    assert_eq!(cluster(&t, &req("x", "/b")).as_deref(), Some("absent"));
    assert_eq!(cluster(&t, &with(req("x", "/b"), &[("x-h", "1")])), None);
    assert_eq!(cluster(&t, &req("x", "/c")).as_deref(), Some("inv"));
}

#[test]
fn query_parameters_and_grpc() {
    let t = routes(concat!(
        "  - match: {prefix: /, query_parameters: [{name: debug, string_match: {exact: '1'}}]}\n    route: {cluster: debug}\n",
        "  - match: {prefix: /, query_parameters: [{name: flag}]}\n    route: {cluster: flag}\n",
        "  - match: {prefix: /, query_parameters: [{name: off, present_match: false}], grpc: {}}\n    route: {cluster: grpc}\n",
    ));
    assert_eq!(cluster(&t, &req("x", "/p?a=b&debug=1")).as_deref(), Some("debug"));
    // Only the first value of a repeated key counts; values are not decoded.
    assert_eq!(cluster(&t, &req("x", "/p?debug=2&debug=1")), None);
    assert_eq!(cluster(&t, &req("x", "/p?debug=%31")), None);
    assert_eq!(cluster(&t, &req("x", "/p?flag")).as_deref(), Some("flag"));
    assert_eq!(cluster(&t, &req("x", "/p?flag=")).as_deref(), Some("flag"));
    let grpc = with(req("x", "/svc/M"), &[("content-type", "application/grpc+proto")]);
    assert_eq!(cluster(&t, &grpc).as_deref(), Some("grpc"));
    let not_grpc = with(req("x", "/svc/M"), &[("content-type", "application/grpcx")]);
    assert_eq!(cluster(&t, &not_grpc), None);
    assert_eq!(cluster(&t, &with(req("x", "/svc/M?off"), &[("content-type", "application/grpc")])), None);
}

#[test]
fn virtual_host_selection() {
    let t = table(concat!(
        "virtual_hosts:\n",
        "- {name: exact, domains: [api.example.com], routes: [{match: {prefix: /}, route: {cluster: exact}}]}\n",
        "- {name: suffix, domains: ['*.example.com'], routes: [{match: {prefix: /}, route: {cluster: suffix}}]}\n",
        "- {name: prefix, domains: ['api.*'], routes: [{match: {prefix: /}, route: {cluster: prefix}}]}\n",
        "- {name: any, domains: ['*'], routes: [{match: {prefix: /}, route: {cluster: any}}]}\n",
    ));
    let vh = |a: &str| t.route(&req(a, "/"), 0).unwrap().virtual_host().name.clone();
    assert_eq!(vh("API.example.com"), "exact");
    assert_eq!(vh("www.example.com"), "suffix");
    assert_eq!(vh("api.example.org"), "prefix");
    assert_eq!(vh("other"), "any");
    // The port is part of the host unless ignore_port_in_host_matching: with it,
    // `*.example.com` no longer matches and `api.*` does.
    assert_eq!(vh("api.example.com:8080"), "prefix");
    assert_eq!(t.virtual_host("api.example.com").unwrap().name, "exact");
}

#[test]
fn require_tls() {
    let t = table("virtual_hosts:\n- {name: all, domains: [a.com], require_tls: ALL, routes: [{match: {prefix: /}, route: {cluster: c}}]}\n- {name: ext, domains: [b.com], require_tls: EXTERNAL_ONLY, routes: [{match: {prefix: /}, route: {cluster: c}}]}\n");
    let m = t.route(&req("a.com", "/p?q=1"), 0).unwrap();
    assert!(matches!(m.kind(), RouteKind::SslRedirect));
    let r = req("a.com", "/p?q=1");
    assert_eq!(m.new_uri(&r).as_deref(), Some("https://a.com/p?q=1"));
    assert_eq!(m.direct_response_status(), Some(301));
    let mut https = req("a.com", "/p");
    https.headers.set(b"x-forwarded-proto", b"https");
    assert_eq!(cluster(&t, &https).as_deref(), Some("c"));
    assert!(t.route(&req("b.com", "/"), 0).unwrap().is_direct_response());
    assert_eq!(cluster(&t, &with(req("b.com", "/"), &[("x-envoy-internal", "true")])).as_deref(), Some("c"));
    // No x-forwarded-proto and no :scheme: Envoy finds no route.
    let mut bare = req("a.com", "/");
    bare.headers.clear();
    bare.scheme.clear();
    assert!(t.route(&bare, 0).is_none());
}

#[test]
fn weighted_clusters_and_cluster_header() {
    let t = routes(concat!(
        "  - match: {prefix: /w}\n    route: {weighted_clusters: {header_name: x-rand, clusters: [{name: a, weight: 10}, {name: b, weight: 0}, {name: c, weight: 30}]}}\n",
        "  - match: {prefix: /h}\n    route: {cluster_header: x-cluster}\n",
    ));
    let pick =
        |rv: u64, hdr: &[(&str, &str)]| t.route(&with(req("x", "/w"), hdr), rv).unwrap().cluster_name().to_string();
    assert_eq!(pick(0, &[]), "a");
    assert_eq!(pick(9, &[]), "a");
    assert_eq!(pick(10, &[]), "c");
    assert_eq!(pick(39, &[]), "c");
    assert_eq!(pick(45, &[]), "a");
    // header_name overrides the random value when present once and numeric.
    assert_eq!(pick(0, &[("x-rand", "15")]), "c");
    assert_eq!(pick(0, &[("x-rand", "nan")]), "a");
    assert_eq!(pick(0, &[("x-rand", "15"), ("x-rand", "16")]), "a");
    let m = t.route(&with(req("x", "/h"), &[("x-cluster", "blue"), ("x-cluster", "green")]), 0).unwrap();
    assert_eq!(m.cluster_name(), "blue");
    let m = t.route(&req("x", "/h"), 0).unwrap();
    assert_eq!(m.cluster_name(), "");
    assert_eq!(m.cluster_not_found_response_code(), 503);
}

#[test]
fn prefix_and_regex_rewrites() {
    let t = routes(concat!(
        "  - match: {prefix: /Old, case_sensitive: false}\n    route: {cluster: c, prefix_rewrite: /new}\n",
        "  - match: {path: /exact}\n    route: {cluster: c, prefix_rewrite: /replaced}\n",
        "  - match: {safe_regex: {regex: '/re/.*'}}\n    route: {cluster: c, prefix_rewrite: /whole}\n",
        "  - match: {prefix: /svc}\n    route: {cluster: c, regex_rewrite: {pattern: {regex: '^/svc/([^/]+)/(.*)$'}, substitution: '/\\2/\\1'}}\n",
        "  - match: {prefix: /empty}\n    route: {cluster: c, regex_rewrite: {pattern: {regex: '.*'}, substitution: ''}}\n",
    ));
    let r = finalized(&t, req("x", "/oLD/a/b?q=1&r=2"), true);
    assert_eq!(r.path, "/new/a/b?q=1&r=2");
    assert_eq!(h(&r, "x-envoy-original-path"), vec!["/oLD/a/b?q=1&r=2"]);
    let r = finalized(&t, req("x", "/exact?z"), false);
    assert_eq!(r.path, "/replaced?z");
    assert!(h(&r, "x-envoy-original-path").is_empty());
    assert_eq!(finalized(&t, req("x", "/re/x/y?k"), true).path, "/whole?k");
    assert_eq!(finalized(&t, req("x", "/svc/foo/bar/baz?k=v"), true).path, "/bar/baz/foo?k=v");
    // A rewrite to an empty path is not applied.
    let r = finalized(&t, req("x", "/empty/x"), true);
    assert_eq!(r.path, "/empty/x");
    assert!(h(&r, "x-envoy-original-path").is_empty());
}

#[test]
fn host_rewrites() {
    let t = routes(concat!(
        "  - match: {prefix: /lit}\n    route: {cluster: c, host_rewrite_literal: new.host, append_x_forwarded_host: true}\n",
        "  - match: {prefix: /hdr}\n    route: {cluster: c, host_rewrite_header: x-host}\n",
        "  - match: {prefix: /re}\n    route: {cluster: c, host_rewrite_path_regex: {pattern: {regex: '^/re/([^/]+).*$'}, substitution: '\\1.svc'}}\n",
        "  - match: {prefix: /auto}\n    route: {cluster: c, auto_host_rewrite: true}\n",
    ));
    let r = finalized(&t, req("orig.host:8080", "/lit"), true);
    assert_eq!(r.authority, "new.host");
    assert_eq!(h(&r, "x-forwarded-host"), vec!["orig.host:8080"]);
    let r = finalized(&t, with(req("a", "/hdr"), &[("x-host", "from.header")]), true);
    assert_eq!(r.authority, "from.header");
    assert_eq!(finalized(&t, req("a", "/hdr"), true).authority, "a");
    assert_eq!(finalized(&t, req("a", "/re/users/1?x"), true).authority, "users.svc");
    let m = t.route(&req("a", "/auto"), 0).unwrap();
    assert!(m.auto_host_rewrite());
    assert_eq!(finalized(&t, req("a", "/auto"), true).authority, "a");
}

fn redirect(t: &RouteTable, mut r: RequestHead) -> (u16, String, RequestHead) {
    let m = t.route(&r, 0).unwrap();
    let mut resp = ResponseHead::default();
    let body = m.local_reply(&mut r, &info(), true, &mut resp).unwrap();
    assert!(body.is_empty());
    let loc = resp.headers.get_str(b"location").unwrap().to_string();
    (resp.status, loc, r)
}

#[test]
fn redirects() {
    let t = routes(concat!(
        "  - match: {prefix: /https}\n    redirect: {https_redirect: true}\n",
        "  - match: {prefix: /host}\n    redirect: {host_redirect: new.com, response_code: FOUND}\n",
        "  - match: {prefix: /port}\n    redirect: {port_redirect: 8443, scheme_redirect: https}\n",
        "  - match: {prefix: /path}\n    redirect: {path_redirect: /elsewhere, response_code: SEE_OTHER}\n",
        "  - match: {prefix: /pq}\n    redirect: {path_redirect: '/new?a=b', strip_query: true}\n",
        "  - match: {prefix: /strip}\n    redirect: {strip_query: true, response_code: TEMPORARY_REDIRECT}\n",
        "  - match: {prefix: /pre}\n    redirect: {prefix_rewrite: /post, response_code: PERMANENT_REDIRECT}\n",
        "  - match: {prefix: /rx}\n    redirect: {regex_rewrite: {pattern: {regex: '^/rx/(\\w+)$'}, substitution: '/v2/\\1'}}\n",
        "  - match: {prefix: /rel}\n    redirect: {path_redirect: relative}\n",
        "  - match: {prefix: /tohttp}\n    redirect: {scheme_redirect: http}\n",
    ));
    assert_eq!(redirect(&t, req("a.com", "/https?x=1")).0, 301);
    assert_eq!(redirect(&t, req("a.com", "/https?x=1")).1, "https://a.com/https?x=1");
    // Scheme change drops the default port of the old scheme (judged on x-forwarded-proto).
    assert_eq!(redirect(&t, req("a.com:80", "/https")).1, "https://a.com/https");
    assert_eq!(redirect(&t, req("a.com:8080", "/https")).1, "https://a.com:8080/https");
    assert_eq!(redirect(&t, req("[::1]:80", "/https")).1, "https://[::1]/https");
    let (code, loc, _) = redirect(&t, req("a.com:8080", "/host/x"));
    assert_eq!((code, loc.as_str()), (302, "http://new.com/host/x"));
    assert_eq!(redirect(&t, req("a.com:8080", "/port")).1, "https://a.com:8443/port");
    let (code, loc, _) = redirect(&t, req("a.com", "/path/x?keep=1"));
    assert_eq!((code, loc.as_str()), (303, "http://a.com/elsewhere?keep=1"));
    // A path_redirect with its own query wins, and strip_query does not strip it.
    assert_eq!(redirect(&t, req("a.com", "/pq?old=1")).1, "http://a.com/new?a=b");
    let (code, loc, _) = redirect(&t, req("a.com", "/strip?x=1"));
    assert_eq!((code, loc.as_str()), (307, "http://a.com/strip"));
    let (code, loc, r) = redirect(&t, req("a.com", "/pre/fix?q"));
    assert_eq!((code, loc.as_str()), (308, "http://a.com/post/fix?q"));
    assert_eq!(r.path, "/post/fix?q");
    assert_eq!(h(&r, "x-envoy-original-path"), vec!["/pre/fix?q"]);
    assert_eq!(redirect(&t, req("a.com", "/rx/abc?z=9")).1, "http://a.com/v2/abc?z=9");
    assert_eq!(redirect(&t, req("a.com", "/rel")).1, "http://a.com/relative");
    // https in, redirect to http: the https default port is dropped, others kept.
    let https = |authority: &str| {
        let mut s = req(authority, "/tohttp");
        s.scheme = "https".into();
        s.headers.set(b"x-forwarded-proto", b"https");
        s
    };
    assert_eq!(redirect(&t, https("a.com:443")).1, "http://a.com/tohttp");
    assert_eq!(redirect(&t, https("a.com:80")).1, "http://a.com:80/tohttp");
    // Same scheme: the port stays.
    assert_eq!(redirect(&t, req("a.com:80", "/tohttp")).1, "http://a.com:80/tohttp");
}

#[test]
fn direct_responses() {
    let t = table(concat!(
        "response_headers_to_add: [{header: {key: x-rc, value: rc}}]\n",
        "virtual_hosts:\n- name: vh\n  domains: ['*']\n  routes:\n",
        "  - match: {prefix: /body}\n    direct_response: {status: 503, body: {inline_string: maintenance}}\n",
        "  - match: {prefix: /empty}\n    direct_response: {status: 204}\n",
        "  - match: {prefix: /typed}\n    direct_response: {status: 200, body: {inline_string: '{}'}}\n    response_headers_to_add: [{header: {key: content-type, value: application/json}}]\n",
        "  - match: {prefix: /moved}\n    direct_response: {status: 301}\n",
    ));
    let reply = |path: &str| {
        let mut r = req("a.com", path);
        let m = t.route(&r, 0).unwrap();
        let mut resp = ResponseHead::default();
        let body = m.local_reply(&mut r, &info(), true, &mut resp).unwrap().to_vec();
        (resp, body, m.new_uri(&r).unwrap())
    };
    let (resp, body, uri) = reply("/body?x");
    assert_eq!(resp.status, 503);
    assert_eq!(body, b"maintenance");
    assert_eq!(resp.headers.get_str(b"content-length"), Some("11"));
    assert_eq!(resp.headers.get_str(b"content-type"), Some("text/plain"));
    assert_eq!(resp.headers.get_str(b"x-rc"), Some("rc"));
    assert_eq!(resp.headers.get(b"location"), None);
    // route-check's path_redirect of a plain direct response is its own URL.
    assert_eq!(uri, "http://a.com/body?x");
    let (resp, body, _) = reply("/empty");
    assert_eq!((resp.status, body.len()), (204, 0));
    assert!(!resp.headers.contains(b"content-length") && !resp.headers.contains(b"content-type"));
    let (resp, _, _) = reply("/typed");
    assert_eq!(resp.headers.get_all(b"content-type").count(), 1);
    assert_eq!(resp.headers.get_str(b"content-type"), Some("application/json"));
    let (resp, _, _) = reply("/moved");
    assert_eq!(resp.headers.get_str(b"location"), Some("http://a.com/moved"));
    // A forwarding route has no local reply.
    let f = routes("  - match: {prefix: /}\n    route: {cluster: c}\n");
    let mut r = req("a", "/");
    let mut resp = ResponseHead::default();
    assert!(f.route(&r.clone(), 0).unwrap().local_reply(&mut r, &info(), true, &mut resp).is_none());
    assert_eq!(resp.status, 0);
}

#[test]
fn append_actions() {
    let t = routes(concat!(
        "  - match: {prefix: /}\n    route: {cluster: c}\n    request_headers_to_remove: [x-drop]\n    request_headers_to_add:\n",
        "    - {header: {key: x-append, value: new}}\n",
        "    - {header: {key: x-absent, value: new}, append_action: ADD_IF_ABSENT}\n",
        "    - {header: {key: x-present, value: new}, append_action: ADD_IF_ABSENT}\n",
        "    - {header: {key: x-over, value: new}, append_action: OVERWRITE_IF_EXISTS_OR_ADD}\n",
        "    - {header: {key: x-over-missing, value: new}, append_action: OVERWRITE_IF_EXISTS_OR_ADD}\n",
        "    - {header: {key: x-only-if, value: new}, append_action: OVERWRITE_IF_EXISTS}\n",
        "    - {header: {key: x-only-if-missing, value: new}, append_action: OVERWRITE_IF_EXISTS}\n",
        "    - {header: {key: x-empty, value: ''}}\n",
        "    - {header: {key: x-kept, value: ''}, keep_empty_value: true}\n",
        "    - {header: {key: x-drop, value: readded}, append: true}\n",
        "    - {header: {key: x-legacy, value: new}, append: false}\n",
    ));
    let r = with(
        req("a", "/"),
        &[
            ("x-append", "old"),
            ("x-present", "old"),
            ("x-over", "old1"),
            ("x-over", "old2"),
            ("x-only-if", "old"),
            ("x-drop", "gone"),
            ("x-legacy", "old"),
        ],
    );
    let r = finalized(&t, r, true);
    assert_eq!(h(&r, "x-append"), vec!["old", "new"]);
    assert_eq!(h(&r, "x-absent"), vec!["new"]);
    assert_eq!(h(&r, "x-present"), vec!["old"]);
    assert_eq!(h(&r, "x-over"), vec!["new"]);
    assert_eq!(h(&r, "x-over-missing"), vec!["new"]);
    assert_eq!(h(&r, "x-only-if"), vec!["new"]);
    assert!(h(&r, "x-only-if-missing").is_empty());
    assert!(h(&r, "x-empty").is_empty());
    assert_eq!(h(&r, "x-kept"), vec![""]);
    // Removal happens before additions.
    assert_eq!(h(&r, "x-drop"), vec!["readded"]);
    assert_eq!(h(&r, "x-legacy"), vec!["new"]);
}

#[test]
fn mutation_levels_and_specificity() {
    let yaml = |most_specific: bool| {
        format!(
            concat!(
                "most_specific_header_mutations_wins: {}\n",
                "request_headers_to_add: [{{header: {{key: x-level, value: rc}}, append_action: OVERWRITE_IF_EXISTS_OR_ADD}}]\n",
                "response_headers_to_add: [{{header: {{key: x-level, value: rc}}, append_action: OVERWRITE_IF_EXISTS_OR_ADD}}]\n",
                "virtual_hosts:\n- name: vh\n  domains: ['*']\n",
                "  request_headers_to_add: [{{header: {{key: x-level, value: vh}}, append_action: OVERWRITE_IF_EXISTS_OR_ADD}}]\n",
                "  routes:\n  - match: {{prefix: /}}\n    route: {{cluster: c}}\n",
                "    request_headers_to_add: [{{header: {{key: x-level, value: route}}, append_action: OVERWRITE_IF_EXISTS_OR_ADD}}, {{header: {{key: x-all, value: r}}}}]\n",
                "    response_headers_to_add: [{{header: {{key: x-level, value: route}}, append_action: OVERWRITE_IF_EXISTS_OR_ADD}}]\n",
            ),
            most_specific
        )
    };
    // Default: route, then virtual host, then route config; the last applied wins.
    let t = table(&yaml(false));
    let r = finalized(&t, req("a", "/"), true);
    assert_eq!(h(&r, "x-level"), vec!["rc"]);
    let t2 = table(&yaml(true));
    let r = finalized(&t2, req("a", "/"), true);
    assert_eq!(h(&r, "x-level"), vec!["route"]);
    assert_eq!(h(&r, "x-all"), vec!["r"]);
    for (t, want) in [(&t, "rc"), (&t2, "route")] {
        let r = req("a", "/");
        let m = t.route(&r, 0).unwrap();
        let mut resp = ResponseHead { status: 200, ..Default::default() };
        m.finalize_response_headers(&mut resp, &r, &info());
        assert_eq!(resp.headers.get_str(b"x-level"), Some(want));
    }
}

#[test]
fn formatted_values_and_weighted_level() {
    let t = routes(concat!(
        "  - match: {prefix: /}\n    route:\n      weighted_clusters:\n        clusters:\n",
        "        - {name: blue, weight: 1, request_headers_to_add: [{header: {key: x-color, value: blue}}], host_rewrite_literal: blue.svc, response_headers_to_add: [{header: {key: x-served, value: '%UPSTREAM_CLUSTER%'}}]}\n",
        "    request_headers_to_add:\n",
        "    - {header: {key: x-client, value: '%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%'}}\n",
        "    - {header: {key: x-copy, value: '%REQ(x-color)%|%REQ(:path)%|%ROUTE_NAME%'}}\n",
        "    - {header: {key: x-start, value: '%START_TIME(%s)%'}}\n",
        "    - {header: {key: x-none, value: '%UPSTREAM_REMOTE_ADDRESS%'}}\n",
    ));
    let r = finalized(&t, req("a", "/p"), true);
    assert_eq!(h(&r, "x-color"), vec!["blue"]);
    assert_eq!(r.authority, "blue.svc");
    assert_eq!(h(&r, "x-client"), vec!["127.0.0.1"]);
    // Formatters see the weighted level's additions (applied first).
    assert_eq!(h(&r, "x-copy"), vec!["blue|/p|"]);
    assert_eq!(h(&r, "x-start"), vec!["1700000000"]);
    assert!(h(&r, "x-none").is_empty());
    let m = t.route(&r, 0).unwrap();
    let mut resp = ResponseHead { status: 200, ..Default::default() };
    m.finalize_response_headers(&mut resp, &r, &info());
    assert_eq!(resp.headers.get_str(b"x-served"), Some("blue"));
}

#[test]
fn policies_for_the_router_filter() {
    let t = table(concat!(
        "request_mirror_policies: [{cluster: rc-mirror}]\n",
        "virtual_hosts:\n- name: vh\n  domains: ['*']\n  retry_policy: {retry_on: 5xx, num_retries: 2}\n  routes:\n",
        "  - match: {prefix: /own}\n    route: {cluster: c, timeout: 3s, idle_timeout: 1s, retry_policy: {retry_on: reset}, request_mirror_policies: [{cluster: m}], hash_policy: [{header: {header_name: x-u}}]}\n",
        "  - match: {prefix: /}\n    route: {cluster: c}\n",
        "- name: vh2\n  domains: [v2]\n  request_mirror_policies: [{cluster: vh-mirror}]\n  routes: [{match: {prefix: /}, route: {cluster: c}}]\n",
    ));
    let own = t.route(&req("a", "/own"), 0).unwrap();
    assert_eq!(own.timeout(), Some(Duration::from_secs(3)));
    assert_eq!(own.idle_timeout(), IdleTimeout::After(Duration::from_secs(1)));
    assert_eq!(own.retry_policy().unwrap().retry_on, RetryOn::RESET);
    assert_eq!(own.mirror_policies()[0].target, MirrorTarget::Cluster("m".into()));
    assert_eq!(own.hash_policy().len(), 1);
    let inherited = t.route(&req("a", "/x"), 0).unwrap();
    assert_eq!(inherited.timeout(), Some(Duration::from_secs(15)));
    assert_eq!(inherited.idle_timeout(), IdleTimeout::Inherit);
    let p = inherited.retry_policy().unwrap();
    assert_eq!((p.retry_on, p.num_retries), (RetryOn::FIVE_XX, 2));
    assert_eq!(inherited.mirror_policies()[0].target, MirrorTarget::Cluster("rc-mirror".into()));
    let vh2 = t.route(&req("v2", "/"), 0).unwrap();
    assert_eq!(vh2.mirror_policies()[0].target, MirrorTarget::Cluster("vh-mirror".into()));
    assert!(vh2.retry_policy().is_none());
}

#[test]
fn virtual_clusters_for_route_check() {
    let t = table("virtual_hosts:\n- name: vh\n  domains: ['*']\n  virtual_clusters: [{name: writes, headers: [{name: ':method', string_match: {exact: POST}}]}]\n  routes: [{match: {prefix: /}, route: {cluster: c}}]\n- name: plain\n  domains: [p]\n  routes: [{match: {prefix: /}, route: {cluster: c}}]\n");
    let mut post = req("a", "/");
    post.method = "POST".into();
    assert_eq!(t.route(&post, 0).unwrap().virtual_cluster_name(&post), "writes");
    let get = req("a", "/");
    assert_eq!(t.route(&get, 0).unwrap().virtual_cluster_name(&get), "other");
    let p = req("p", "/");
    assert_eq!(t.route(&p, 0).unwrap().virtual_cluster_name(&p), "");
}
