//! Envoy v3 YAML builders for tests.

use std::net::SocketAddr;

/// A cluster: name, endpoint ports on 127.0.0.1, extra cluster fields (YAML, indented
/// by 4 spaces).
pub struct Cluster<'a> {
    pub name: &'a str,
    pub ports: &'a [u16],
    pub extra: &'a str,
}

impl Cluster<'_> {
    pub fn yaml(&self) -> String {
        let endpoints: Vec<SocketAddr> = self.ports.iter().map(|p| crate::localhost(*p)).collect();
        ClusterAt { name: self.name, endpoints: &endpoints, extra: self.extra }.yaml()
    }
}

/// A cluster with endpoints at any addresses (both backends: see `backend::Net`);
/// `extra` holds more cluster fields (indented by 4), `connect_timeout` (1 s) among them.
pub struct ClusterAt<'a> {
    pub name: &'a str,
    pub endpoints: &'a [SocketAddr],
    pub extra: &'a str,
}

impl ClusterAt<'_> {
    pub fn yaml(&self) -> String {
        let endpoints: String = self.endpoints.iter().map(|a| endpoint_at(*a)).collect();
        let endpoints =
            if endpoints.is_empty() { " []\n".to_string() } else { format!("\n      - lb_endpoints:\n{endpoints}") };
        // connect_timeout 1 s unless `extra` sets its own.
        let timeout = if self.extra.contains("connect_timeout:") { "" } else { "    connect_timeout: 1s\n" };
        format!(
            "  - name: {name}\n{timeout}{extra}    load_assignment:\n      cluster_name: {name}\n      endpoints:{endpoints}",
            name = self.name,
            extra = self.extra,
        )
    }
}

/// A bootstrap with one HTTP listener on `port`. `virtual_hosts` is the YAML list under
/// `route_config.virtual_hosts` (items start with `- name:` at column 0); `hcm_extra`
/// and `filters` (YAML list items at column 0, before the router) are indented for you.
pub fn http(port: u16, virtual_hosts: &str, clusters: &[Cluster<'_>], hcm_extra: &str, filters: &str) -> String {
    let clusters: String = clusters.iter().map(Cluster::yaml).collect();
    http_yaml(crate::localhost(port), virtual_hosts, &clusters, hcm_extra, filters)
}

/// [`http`] with the listener at `listen` and clusters at any addresses.
pub fn http_at(
    listen: SocketAddr,
    virtual_hosts: &str,
    clusters: &[ClusterAt<'_>],
    hcm_extra: &str,
    filters: &str,
) -> String {
    let clusters: String = clusters.iter().map(ClusterAt::yaml).collect();
    http_yaml(listen, virtual_hosts, &clusters, hcm_extra, filters)
}

fn http_yaml(listen: SocketAddr, virtual_hosts: &str, clusters: &str, hcm_extra: &str, filters: &str) -> String {
    let hcm = hcm_filter("ingress", virtual_hosts, hcm_extra, filters);
    let (ip, port) = (listen.ip(), listen.port());
    format!(
        r#"static_resources:
  listeners:
  - name: http
    address: {{ socket_address: {{ address: {ip}, port_value: {port} }} }}
    filter_chains:
    - filters:
{hcm}  clusters:
{clusters}"#
    )
}

/// The HTTP connection manager as a network filter item (YAML, the item's `- name:` at
/// column 6): `stat_prefix`, route configuration `local` with `virtual_hosts` (items at
/// column 0), more HCM fields `hcm_extra` and HTTP filters before the router `filters`
/// (both at column 0; indented for you).
pub fn hcm_filter(stat_prefix: &str, virtual_hosts: &str, hcm_extra: &str, filters: &str) -> String {
    let vhosts = indent(virtual_hosts, 12);
    let hcm_extra = indent(hcm_extra, 10);
    let filters = indent(filters, 10);
    format!(
        r#"      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: {stat_prefix}
{hcm_extra}          route_config:
            name: local
            virtual_hosts:
{vhosts}          http_filters:
{filters}          - name: envoy.filters.http.router
            typed_config: {{ "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }}
"#
    )
}

/// A bootstrap with one tcp_proxy listener at `listen` forwarding to cluster `backend`
/// (`upstreams`); `cluster_extra` (indented by 4) and `tcp_extra` (by 10) are spliced in.
pub fn tcp_proxy_at(listen: SocketAddr, upstreams: &[SocketAddr], cluster_extra: &str, tcp_extra: &str) -> String {
    let cluster = ClusterAt { name: "backend", endpoints: upstreams, extra: cluster_extra }.yaml();
    tcp_proxy_listener(listen.ip(), listen.port(), &indent(tcp_extra, 10), &cluster)
}

/// A tcp_proxy listener on 127.0.0.1:`listen` to cluster `backend` (connect_timeout 1 s)
/// whose `lb_endpoints` items are `endpoints` (YAML, e.g. from [`endpoint`]).
/// `cluster_extra` (cluster fields) and `tcp_extra` (TcpProxy fields) are inserted as
/// written, indented by the caller (4 and 10 spaces).
pub fn tcp_proxy(listen: u16, endpoints: &str, cluster_extra: &str, tcp_extra: &str) -> String {
    tcp_proxy_endpoints_at(crate::localhost(listen), endpoints, cluster_extra, tcp_extra)
}

/// [`tcp_proxy`] with the listener at `listen` (both backends: see `backend::Net`).
pub fn tcp_proxy_endpoints_at(listen: SocketAddr, endpoints: &str, cluster_extra: &str, tcp_extra: &str) -> String {
    let cluster = format!(
        "  - name: backend\n    connect_timeout: 1s\n{cluster_extra}\n    load_assignment:\n      cluster_name: backend\n      endpoints:\n      - lb_endpoints:\n{endpoints}"
    );
    tcp_proxy_listener(listen.ip(), listen.port(), tcp_extra, &cluster)
}

/// One `lb_endpoints` item for 127.0.0.1:`port` (YAML, 8 spaces in).
pub fn endpoint(port: u16) -> String {
    endpoint_at(crate::localhost(port))
}

/// One `lb_endpoints` item for `addr` (YAML, 8 spaces in).
pub fn endpoint_at(addr: SocketAddr) -> String {
    format!(
        "        - endpoint: {{ address: {{ socket_address: {{ address: {}, port_value: {} }} }} }}\n",
        addr.ip(),
        addr.port()
    )
}

/// A bootstrap with one tcp_proxy listener at `listen` splitting connections over
/// `clusters` by `weights` (`weighted_clusters`, cluster name and weight).
pub fn tcp_proxy_weighted_at(listen: SocketAddr, weights: &[(&str, u32)], clusters: &[ClusterAt<'_>]) -> String {
    let route: String =
        weights.iter().map(|(name, w)| format!("            - {{ name: {name}, weight: {w} }}\n")).collect();
    let route = format!("          weighted_clusters:\n            clusters:\n{route}");
    let clusters: String = clusters.iter().map(ClusterAt::yaml).collect();
    tcp_proxy_bootstrap(listen.ip(), listen.port(), &route, &clusters)
}

/// The tcp_proxy bootstrap: one listener on `ip:port` to `backend`, then `cluster`.
fn tcp_proxy_listener(ip: std::net::IpAddr, port: u16, tcp_extra: &str, cluster: &str) -> String {
    tcp_proxy_bootstrap(ip, port, &format!("          cluster: backend\n{tcp_extra}"), cluster)
}

/// One tcp_proxy listener on `ip:port` whose TcpProxy fields after `stat_prefix` are
/// `fields` (indented by 10), then the `clusters` list.
fn tcp_proxy_bootstrap(ip: std::net::IpAddr, port: u16, fields: &str, clusters: &str) -> String {
    format!(
        r#"static_resources:
  listeners:
  - name: tcp_in
    address: {{ socket_address: {{ address: {ip}, port_value: {port} }} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: t
{fields}
  clusters:
{clusters}"#
    )
}

/// Indent every non-empty line by `n` spaces.
pub fn indent(text: &str, n: usize) -> String {
    let pad = " ".repeat(n);
    text.lines().filter(|l| !l.trim().is_empty()).map(|l| format!("{pad}{l}\n")).collect()
}

/// A virtual host forwarding everything to `cluster`.
pub fn forward_all(cluster: &str) -> String {
    format!("- name: all\n  domains: [\"*\"]\n  routes:\n  - match: {{ prefix: \"/\" }}\n    route: {{ cluster: {cluster} }}\n")
}
