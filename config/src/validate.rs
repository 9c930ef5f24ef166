//! Checks across the whole bootstrap: names that must be unique, references that must
//! resolve, addresses that must not collide.

use std::collections::{HashMap, HashSet};

use crate::bootstrap::Bootstrap;
use crate::decode::Decoder;
use crate::error::ErrorKind;
use crate::listener::NetworkFilterKind;
use crate::route::{Action, ClusterSpecifier, MirrorTarget, RequestMirrorPolicy, RouteConfiguration, WeightedTarget};

/// Check cross-references; errors go to `d`.
pub fn validate(b: &mut Bootstrap, d: &mut Decoder) {
    crate::xds::ads::validate(b, d);
    let mut cluster_names = HashSet::new();
    let h2_clusters: HashSet<&str> = b
        .clusters
        .iter()
        .filter(|c| c.http_protocol_options.protocol.may_use_http2())
        .map(|c| c.name.as_str())
        .collect();
    for (i, c) in b.clusters.iter().enumerate() {
        if !cluster_names.insert(c.name.as_str()) {
            d.error(
                ErrorKind::Reference,
                &format!("static_resources.clusters[{i}].name"),
                c.line,
                format!("duplicate cluster name `{}`", c.name),
            );
        }
    }

    let mut names: HashMap<String, usize> = HashMap::new();
    let mut addresses: HashMap<String, usize> = HashMap::new();
    for (i, l) in b.listeners.iter_mut().enumerate() {
        let path = format!("static_resources.listeners[{i}]");
        if l.name.is_empty() {
            // Envoy allocates a UUID; a stable name is more useful in logs and stats.
            l.name = l.address.to_string();
        }
        if let Some(prev) = names.insert(l.name.clone(), i) {
            d.error(
                ErrorKind::Reference,
                &format!("{path}.name"),
                l.line,
                format!("duplicate listener name `{}` (also static_resources.listeners[{prev}])", l.name),
            );
        }
        if l.address.ip().is_none() {
            d.error(
                ErrorKind::Invalid,
                &format!("{path}.address.socket_address.address"),
                l.address.line,
                format!("`{}` is not an IP address", l.address.address),
            );
        }
        if l.bind_to_port {
            if let Some(prev) = addresses.insert(l.address.to_string(), i) {
                d.error(
                    ErrorKind::Reference,
                    &format!("{path}.address"),
                    l.address.line,
                    format!("listener address {} is already used by static_resources.listeners[{prev}]", l.address),
                );
            }
        }
        let chains = l.filter_chains.iter().enumerate().map(|(j, c)| (format!("{path}.filter_chains[{j}]"), c));
        let default = l.default_filter_chain.iter().map(|c| (format!("{path}.default_filter_chain"), c));
        for (cpath, chain) in chains.chain(default) {
            for (k, filter) in chain.filters.iter().enumerate() {
                let fpath = format!("{cpath}.filters[{k}].typed_config");
                match &filter.kind {
                    NetworkFilterKind::TcpProxy(tp) => {
                        for name in tp.cluster.names() {
                            if !cluster_names.contains(name) {
                                d.error(
                                    ErrorKind::Reference,
                                    &format!("{fpath}.cluster"),
                                    tp.line,
                                    format!("unknown cluster `{name}`"),
                                );
                            }
                        }
                    }
                    NetworkFilterKind::HttpConnectionManager(hcm) => {
                        // Envoy's tracers fail at load when their collector cluster is unknown.
                        if let Some(p) = hcm.tracing.as_ref().and_then(|t| t.provider.as_ref()) {
                            let name = p.collector_cluster();
                            if !cluster_names.contains(name) {
                                d.error(
                                    ErrorKind::Reference,
                                    &format!("{fpath}.tracing.provider"),
                                    hcm.line,
                                    format!("tracing: unknown collector cluster `{name}`"),
                                );
                            }
                        }
                        // Envoy validates the clusters of an inline route config unless
                        // `validate_clusters: false`; those of RDS only with `true`.
                        if hcm.route_config.validate_clusters.unwrap_or(hcm.rds.is_none()) {
                            let rpath = format!("{fpath}.route_config");
                            validate_route_clusters(d, &hcm.route_config, &rpath, &cluster_names);
                        }
                        check_mirror_protocols(d, &hcm.route_config, &format!("{fpath}.route_config"), &h2_clusters);
                    }
                }
            }
        }
    }
}

/// Every cluster a route configuration names must exist ("route: unknown cluster").
/// Clusters named by a request header can only be checked per request.
pub fn validate_route_clusters(d: &mut Decoder, rc: &RouteConfiguration, path: &str, clusters: &HashSet<&str>) {
    check_mirrors(d, &rc.request_mirror_policies, path, clusters);
    for (i, vh) in rc.virtual_hosts.iter().enumerate() {
        let vpath = format!("{path}.virtual_hosts[{i}]");
        check_mirrors(d, &vh.request_mirror_policies, &vpath, clusters);
        for (j, r) in vh.routes.iter().enumerate() {
            let Action::Route(action) = &r.action else {
                continue;
            };
            let apath = format!("{vpath}.routes[{j}].route");
            match &action.cluster {
                ClusterSpecifier::Cluster(c) => {
                    check_cluster(d, c, &format!("{apath}.cluster"), action.line, "", clusters)
                }
                ClusterSpecifier::Weighted(w) => {
                    for (k, cw) in w.clusters.iter().enumerate() {
                        if let WeightedTarget::Name(c) = &cw.target {
                            let at = format!("{apath}.weighted_clusters.clusters[{k}].name");
                            check_cluster(d, c, &at, cw.line, "", clusters);
                        }
                    }
                }
                ClusterSpecifier::ClusterHeader(_) => {}
            }
            check_mirrors(d, &action.request_mirror_policies, &apath, clusters);
        }
    }
}

/// Shadows are written as HTTP/1.1: a mirror policy naming a cluster that may speak
/// HTTP/2 upstream is refused (not sent over the wrong protocol).
fn check_mirror_protocols(d: &mut Decoder, rc: &RouteConfiguration, path: &str, h2: &HashSet<&str>) {
    let mut each = |policies: &[RequestMirrorPolicy], at: &str| {
        for (k, m) in policies.iter().enumerate() {
            if let MirrorTarget::Cluster(c) = &m.target {
                if h2.contains(c.as_str()) {
                    d.error(
                        ErrorKind::Unsupported,
                        &format!("{at}.request_mirror_policies[{k}].cluster"),
                        m.line,
                        format!("mirroring to `{c}` is not supported: it speaks HTTP/2 upstream and shadows are sent as HTTP/1.1"),
                    );
                }
            }
        }
    };
    each(&rc.request_mirror_policies, path);
    for (i, vh) in rc.virtual_hosts.iter().enumerate() {
        let vpath = format!("{path}.virtual_hosts[{i}]");
        each(&vh.request_mirror_policies, &vpath);
        for (j, r) in vh.routes.iter().enumerate() {
            if let Action::Route(action) = &r.action {
                each(&action.request_mirror_policies, &format!("{vpath}.routes[{j}].route"));
            }
        }
    }
}

fn check_mirrors(d: &mut Decoder, policies: &[RequestMirrorPolicy], at: &str, clusters: &HashSet<&str>) {
    for (k, m) in policies.iter().enumerate() {
        if let MirrorTarget::Cluster(c) = &m.target {
            let p = format!("{at}.request_mirror_policies[{k}].cluster");
            check_cluster(d, c, &p, m.line, "shadow ", clusters);
        }
    }
}

fn check_cluster(d: &mut Decoder, name: &str, at: &str, line: u32, what: &str, clusters: &HashSet<&str>) {
    if !clusters.contains(name) {
        d.error(ErrorKind::Reference, at, line, format!("route: unknown {what}cluster '{name}'"));
    }
}
