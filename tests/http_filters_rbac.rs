//! The RBAC filter end to end on both backends: an ALLOW policy over methods (the
//! `:method` header), paths and the client's address; a denied request gets 403
//! `RBAC: access denied` and never reaches the origin; shadow rules only count; a
//! route's RBACPerRoute without rules turns the filter off; `http.<prefix>.rbac.*`; a
//! disabled filter enabled per route; mTLS principals and SNI (kernel, the binary).

use sluice_e2e::backend::{Backend, Net};
use sluice_e2e::config::ClusterAt;
use sluice_e2e::http_origin::HttpOrigin;
use sluice_e2e::http_proxy::HttpProxy;
use sluice_e2e::on_both_backends;

/// GET anywhere, or anything under /admin/ with `x-role: admin`, from 127/8 or
/// 10.99/16 (the test clients); shadow: a DENY of everything with `x-shadow`.
const FILTERS: &str = r#"- name: envoy.filters.http.rbac
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC
    rules:
      action: ALLOW
      policies:
        readers:
          permissions: [{ header: { name: ":method", string_match: { exact: GET } } }]
          principals:
          - or_ids: { ids: [{ direct_remote_ip: { address_prefix: 127.0.0.0, prefix_len: 8 } }, { direct_remote_ip: { address_prefix: 10.99.0.0, prefix_len: 16 } }] }
        admins:
          permissions:
          - and_rules: { rules: [{ url_path: { path: { prefix: "/admin/" } } }, { not_rule: { header: { name: ":method", string_match: { exact: DELETE } } } }] }
          principals: [{ header: { name: x-role, string_match: { exact: admin } } }]
    shadow_rules:
      action: DENY
      policies:
        flagged:
          permissions: [{ any: true }]
          principals: [{ header: { name: x-shadow, present_match: true } }]
"#;

const VHOSTS: &str = r#"- name: app
  domains: ["*"]
  routes:
  - match: { prefix: "/open" }
    route: { cluster: web }
    typed_per_filter_config:
      envoy.filters.http.rbac: { "@type": type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBACPerRoute }
  - match: { prefix: "/" }
    route: { cluster: web }
"#;

fn policies_allow_and_deny(backend: Backend) {
    let net = Net::new(backend);
    let origin = HttpOrigin::serve(net.listen(), "web");
    let endpoints = [origin.addr];
    let clusters = [ClusterAt { name: "web", endpoints: &endpoints, extra: "" }];
    let p = HttpProxy::start(&net, VHOSTS, &clusters, "", FILTERS, 1);
    let mut c = p.client();
    assert_eq!(c.get("/any").status, 200, "GET from a test client");
    let r = c.request("POST", "/data", &[], b"x");
    assert_eq!(r.status, 403);
    assert_eq!(r.text(), "RBAC: access denied");
    assert_eq!(c.request("POST", "/admin/users", &[("x-role", "admin")], b"x").status, 200);
    assert_eq!(c.request("DELETE", "/admin/users", &[("x-role", "admin")], b"").status, 403, "not_rule");
    assert_eq!(c.request("POST", "/admin/users", &[("x-role", "guest")], b"x").status, 403);
    assert_eq!(c.request("GET", "/x", &[("x-shadow", "1")], b"").status, 200, "shadow rules never deny");
    assert_eq!(c.request("POST", "/open/x", &[], b"x").status, 200, "RBACPerRoute without rules");
    assert_eq!(origin.requests(), 4);
    assert_eq!(p.counter("http.ingress.rbac.allowed"), 3);
    assert_eq!(p.counter("http.ingress.rbac.denied"), 3);
    assert_eq!(p.counter("http.ingress.rbac.shadow_denied"), 1);
    assert_eq!(p.counter("http.ingress.rbac.shadow_allowed"), 5);
}

/// The connection manager lists the filter `disabled`: it runs only where a route
/// enables it (an empty `FilterConfig.config`), or with the route's own RBACPerRoute
/// inside a `FilterConfig`.
fn a_disabled_filter_runs_where_a_route_enables_it(backend: Backend) {
    let net = Net::new(backend);
    let origin = HttpOrigin::serve(net.listen(), "web");
    let endpoints = [origin.addr];
    let clusters = [ClusterAt { name: "web", endpoints: &endpoints, extra: "" }];
    let filters =
        FILTERS.replacen("- name: envoy.filters.http.rbac\n", "- name: envoy.filters.http.rbac\n  disabled: true\n", 1);
    let vhosts = r#"- name: app
  domains: ["*"]
  routes:
  - match: { prefix: "/guarded" }
    route: { cluster: web }
    typed_per_filter_config:
      envoy.filters.http.rbac: { "@type": type.googleapis.com/envoy.config.route.v3.FilterConfig, config: {} }
  - match: { prefix: "/own" }
    route: { cluster: web }
    typed_per_filter_config:
      envoy.filters.http.rbac:
        "@type": type.googleapis.com/envoy.config.route.v3.FilterConfig
        config:
          "@type": type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBACPerRoute
          rbac: { rules: { action: DENY, policies: { all: { permissions: [{ any: true }], principals: [{ any: true }] } } } }
  - match: { prefix: "/" }
    route: { cluster: web }
"#;
    let p = HttpProxy::start(&net, vhosts, &clusters, "", &filters, 1);
    let mut c = p.client();
    assert_eq!(c.request("POST", "/elsewhere", &[], b"x").status, 200, "off unless a route enables it");
    assert_eq!(c.request("POST", "/guarded", &[], b"x").status, 403, "enabled with the filter's own rules");
    assert_eq!(c.get("/guarded").status, 200);
    assert_eq!(c.get("/own").status, 403, "the route's DENY-all rules");
    assert_eq!(p.counter("http.ingress.rbac.denied"), 2);
}

on_both_backends!(policies_allow_and_deny, a_disabled_filter_runs_where_a_route_enables_it);

// Over HTTP/2 as well (prior knowledge; the origins stay HTTP/1.1).
sluice_e2e::over_http2!(policies_allow_and_deny, a_disabled_filter_runs_where_a_route_enables_it,);

/// mTLS identities (kernel sockets, the binary): `authenticated.principal_name` matches
/// the client certificate's URI SAN, `requested_server_name` the SNI; a client
/// without a certificate, or with another identity, is denied.
#[test]
fn mtls_principal_and_sni() {
    use sluice_e2e::config::{forward_all, hcm_filter, Cluster};
    use sluice_e2e::proxy::Proxy;
    use sluice_e2e::tls::{self, client_config, downstream_tls_yaml, http_get, Pki};
    use sluice_e2e::{free_port, localhost};

    let pki = Pki::new();
    let server_ca = pki.ca("server");
    let client_ca = pki.ca("clients");
    let cert = server_ca.server_cert(&pki, "edge", &["proxy.test"]);
    let alice =
        client_ca.client_cert_with_uris(&pki, "alice", &["alice.clients.test"], &["spiffe://clients.test/alice"]);
    let bob = client_ca.client_cert_with_uris(&pki, "bob", &["bob.clients.test"], &["spiffe://clients.test/bob"]);
    let origin = HttpOrigin::start("origin");
    let port = free_port();
    let tls = downstream_tls_yaml(&cert, &["http/1.1"], Some(&client_ca.pem_path), false);
    let filters = r#"- name: envoy.filters.http.rbac
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC
    rules:
      policies:
        alice:
          permissions: [{ requested_server_name: { exact: proxy.test } }]
          principals: [{ authenticated: { principal_name: { exact: "spiffe://clients.test/alice" } } }]
"#;
    let hcm = hcm_filter("edge", &forward_all("app"), "", filters);
    let clusters = Cluster { name: "app", ports: &[origin.port()], extra: "" }.yaml();
    let yaml = format!(
        "static_resources:\n  listeners:\n  - name: edge\n    address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }}\n    filter_chains:\n    - filters:\n{hcm}      transport_socket: {tls}\n  clusters:\n{clusters}"
    );
    let _p = Proxy::start(&yaml, &[]);
    let status = |cert| {
        let config = client_config(&[&server_ca], &["http/1.1"], cert);
        let mut s = tls::connect(localhost(port), "proxy.test", &config).expect("handshake");
        http_get(&mut s, "proxy.test", "/").expect("response")
    };
    let r = status(Some(&alice));
    assert_eq!(r.status, 200);
    let r = status(Some(&bob));
    assert_eq!((r.status, r.text()), (403, "RBAC: access denied".to_string()));
    assert_eq!(status(None).status, 403, "no client certificate");
    assert_eq!(origin.requests(), 1);
}
