//! Fuzz route matching: arbitrary requests against route tables that use every match
//! kind, action and header mutation. The proxy must never panic on a request, the
//! route lookup must be deterministic, and virtual-host selection must agree with a
//! straightforward reference implementation of Envoy's domain rules.
//!
//! Input: 8 bytes of random value (for the weighted pick), then `\n`-separated
//! fields: authority, path, method, scheme, then `name: value` header lines.

#![no_main]

use std::sync::OnceLock;
use std::time::{Duration, UNIX_EPOCH};

use libfuzzer_sys::fuzz_target;
use sluice::http::{RequestHead, ResponseHead};
use sluice::router::{RouteTable, StreamInfo};
use sluice_config::decode::{Decode, Decoder};
use sluice_config::route::RouteConfiguration;

const ROUTES: &str = r#"
request_headers_to_add:
- header: {key: x-client, value: "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT% %REQ(x-a?x-b):3% %START_TIME(%s.%3f)%"}
response_headers_to_add:
- header: {key: x-resp, value: "%RESP(content-type)% %PROTOCOL%"}
  append_action: OVERWRITE_IF_EXISTS_OR_ADD
virtual_hosts:
- name: exact
  domains: [a.example.com, "b.example.com:8080", "[::1]"]
  routes:
  - match: {prefix: /p, case_sensitive: false}
    route: {cluster: c1, prefix_rewrite: /q}
  - match: {path: /exact}
    route: {cluster: c2, regex_rewrite: {pattern: {regex: "e(x)"}, substitution: "\\1\\0"}}
  - match: {safe_regex: {regex: "/r/[a-z]+/.*"}}
    route: {cluster: c3, prefix_rewrite: /whole, host_rewrite_path_regex: {pattern: {regex: "^/r/([a-z]+).*"}, substitution: "\\1.svc"}}
  - match: {path_separated_prefix: /sep}
    route: {cluster_header: x-cluster, host_rewrite_header: x-host, append_x_forwarded_host: true}
  - match:
      prefix: /h
      headers:
      - {name: x-a, string_match: {exact: v, ignore_case: true}}
      - {name: x-b, range_match: {start: -5, end: 5}, invert_match: true}
      - {name: x-c, present_match: false}
      - {name: ":method", string_match: {safe_regex: {regex: "GET|HEAD"}}}
      query_parameters: [{name: q, string_match: {contains: z}}, {name: f}]
    route:
      weighted_clusters:
        header_name: x-rand
        clusters:
        - {name: w1, weight: 3, request_headers_to_add: [{header: {key: x-w, value: one}}], host_rewrite_literal: w1.internal}
        - {name: w0, weight: 0}
        - {cluster_header: x-wc, weight: 7}
  - match: {prefix: /redir}
    redirect: {https_redirect: true, port_redirect: 8443, prefix_rewrite: /moved, strip_query: true, response_code: FOUND}
  - match: {prefix: /rx}
    redirect: {regex_rewrite: {pattern: {regex: "x*"}, substitution: "-"}, host_redirect: h.example}
  - match: {prefix: /d, grpc: {}}
    direct_response: {status: 503, body: {inline_string: unavailable}}
  - match: {prefix: /}
    direct_response: {status: 302}
- name: suffix
  domains: ["*.example.com", "*-api.example.com"]
  require_tls: EXTERNAL_ONLY
  routes:
  - match: {prefix: /}
    route: {cluster: s}
- name: prefix
  domains: ["www.*", "www.example.*"]
  require_tls: ALL
  routes:
  - match: {prefix: /}
    redirect: {path_redirect: "/x?y=z", scheme_redirect: ftp}
- name: default
  domains: ["*"]
  routes:
  - match: {prefix: /}
    route: {cluster: d}
"#;

fn compile(text: &str) -> (RouteTable, Vec<Vec<String>>, bool) {
    let node = sluice_config::node::parse(text).expect("fixture parses");
    let mut d = Decoder::new();
    let rc = RouteConfiguration::decode(&mut d, &node, "").expect("fixture decodes");
    assert!(d.errors.is_empty(), "{:?}", d.errors);
    let domains = rc.virtual_hosts.iter().map(|v| v.domains.clone()).collect();
    (
        RouteTable::new(&rc),
        domains,
        rc.ignore_port_in_host_matching,
    )
}

fn tables() -> &'static [(RouteTable, Vec<Vec<String>>, bool)] {
    static T: OnceLock<Vec<(RouteTable, Vec<Vec<String>>, bool)>> = OnceLock::new();
    T.get_or_init(|| {
        vec![
            compile(ROUTES),
            compile(&format!("ignore_port_in_host_matching: true\nmost_specific_header_mutations_wins: true\n{ROUTES}")),
            compile("virtual_hosts: [{name: only, domains: ['*'], routes: [{match: {prefix: /}, route: {cluster: c}}]}]"),
        ]
    })
}

/// Envoy's domain rules, written the obvious way.
fn reference_vhost(domains: &[Vec<String>], authority: &str, ignore_port: bool) -> Option<usize> {
    let all = || {
        domains
            .iter()
            .enumerate()
            .flat_map(|(i, ds)| ds.iter().map(move |d| (i, d.as_str())))
    };
    let default = all().find(|(_, d)| *d == "*").map(|(i, _)| i);
    if all().all(|(_, d)| d == "*") {
        return default;
    }
    if authority.is_empty() {
        return None;
    }
    let mut host = authority;
    if ignore_port {
        if let Some(i) = sluice::router::vhost::port_start(host) {
            host = &host[..i];
        }
    }
    let host = host.to_ascii_lowercase();
    if let Some((i, _)) = all().find(|(_, d)| *d == host) {
        return Some(i);
    }
    let best = |pick: &dyn Fn(&str) -> Option<usize>| {
        all()
            .filter_map(|(i, d)| pick(d).map(|len| (len, i)))
            .max_by_key(|(len, _)| *len)
            .map(|(_, i)| i)
    };
    let suffix = best(&|d: &str| {
        if d == "*" {
            return None;
        }
        let s = d.strip_prefix('*')?;
        (s.len() < host.len() && host.ends_with(s)).then_some(s.len())
    });
    if suffix.is_some() {
        return suffix;
    }
    let prefix = best(&|d: &str| {
        if d == "*" || d.starts_with('*') {
            return None;
        }
        let p = d.strip_suffix('*')?;
        (p.len() < host.len() && host.starts_with(p)).then_some(p.len())
    });
    prefix.or(default)
}

fn request(data: &[u8]) -> (u64, RequestHead) {
    let (rand, rest) = if data.len() >= 8 {
        (
            u64::from_le_bytes(data[..8].try_into().unwrap()),
            &data[8..],
        )
    } else {
        (0, data)
    };
    let text = String::from_utf8_lossy(rest);
    let mut lines = text.split('\n');
    let mut req = RequestHead {
        authority: lines.next().unwrap_or("").to_string(),
        path: lines.next().unwrap_or("/").to_string(),
        method: lines.next().unwrap_or("GET").to_string(),
        scheme: lines.next().unwrap_or("http").to_string(),
        ..RequestHead::default()
    };
    for line in lines {
        if let Some((name, value)) = line.split_once(':') {
            req.headers
                .append(name.trim().as_bytes(), value.trim_start().as_bytes());
        }
    }
    (rand, req)
}

fuzz_target!(|data: &[u8]| {
    let (rand, req) = request(data);
    let info = StreamInfo {
        downstream_remote: Some("10.0.0.1:1234".parse().unwrap()),
        ..StreamInfo::new(UNIX_EPOCH + Duration::from_secs(1_700_000_000))
    };
    for (table, domains, ignore_port) in tables() {
        // Virtual host selection agrees with the reference.
        let got = table.virtual_host(&req.authority).map(|v| v.name.clone());
        let want = reference_vhost(domains, &req.authority, *ignore_port)
            .map(|i| table.config().virtual_hosts[i].name.clone());
        assert_eq!(got, want, "authority {:?}", req.authority);

        let Some(m) = table.route(&req, rand) else {
            continue;
        };
        // Deterministic for the same request and random value.
        let again = table.route(&req, rand).expect("same route");
        assert_eq!(m.route_position(), again.route_position());
        assert_eq!(m.cluster_name(), again.cluster_name());
        if let Some(c) = m.cluster() {
            if let Some(w) = c.weighted {
                assert!(w.weight > 0, "a zero-weight cluster was picked");
            }
        }
        let mut r = req.clone();
        let mut resp = ResponseHead::default();
        if m.is_direct_response() {
            let body = m
                .local_reply(&mut r, &info, true, &mut resp)
                .expect("direct response");
            assert!((200..600).contains(&resp.status));
            let uri = m.new_uri(&r).expect("uri");
            assert!(uri.contains("://"));
            if !body.is_empty() {
                assert_eq!(
                    resp.headers.get_str(b"content-length"),
                    Some(body.len().to_string().as_str())
                );
            }
        } else {
            m.finalize_request_headers(&mut r, &info, true);
            resp.status = 200;
            resp.headers.append(b"content-type", b"text/html");
            m.finalize_response_headers(&mut resp, &r, &info);
            let _ = m.virtual_cluster_name(&r);
        }
    }
});
