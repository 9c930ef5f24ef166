//! A matched route remembered by position, so a stream can hold on to its route for
//! its whole life (across rewrites, retries and the response) without borrowing the
//! route table, and get the same [`Matched`] back in O(1).

use std::borrow::Cow;

use super::config::RouteTable;
use super::matched::{ClusterChoice, Matched, Target};

/// The position of a [`Matched`] route in its table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteRef {
    vhost: usize,
    /// `None`: the virtual host's `require_tls` redirect.
    route: Option<usize>,
    /// The weighted-cluster entry picked, if any.
    weighted: Option<usize>,
    /// The cluster named by a `cluster_header` (the only case that is not in the
    /// config), or `None`.
    header_cluster: Option<String>,
    /// Whether the route had a cluster choice at all.
    has_cluster: bool,
}

impl Matched<'_> {
    /// Remember this match.
    pub fn route_ref(&self) -> RouteRef {
        let (route, cluster) = match &self.target {
            Target::SslRedirect => (None, None),
            Target::Entry { entry, cluster } => {
                let j = self.vhost.routes.iter().position(|r| std::ptr::eq(r, *entry));
                (j, cluster.as_ref())
            }
        };
        let weighted = cluster.and_then(|c| c.weighted).and_then(|w| {
            let list = match self.route_action().map(|a| &a.cluster) {
                Some(sluice_config::route::ClusterSpecifier::Weighted(wc)) => &wc.clusters,
                _ => return None,
            };
            list.iter().position(|x| std::ptr::eq(x, w))
        });
        let header_cluster = match cluster.map(|c| &c.name) {
            Some(Cow::Owned(name)) => Some(name.clone()),
            _ => None,
        };
        RouteRef { vhost: self.vhost_index, route, weighted, header_cluster, has_cluster: cluster.is_some() }
    }
}

impl RouteTable {
    /// The match a [`RouteRef`] remembers (`None` if it is not from this table).
    pub fn get(&self, r: &RouteRef) -> Option<Matched<'_>> {
        let vhost = self.config.virtual_hosts.get(r.vhost)?;
        let target = match r.route {
            None => Target::SslRedirect,
            Some(j) => {
                let entry = vhost.routes.get(j)?;
                let cluster = if r.has_cluster {
                    use sluice_config::route::{Action, ClusterSpecifier, WeightedTarget};
                    let Action::Route(a) = &entry.action else {
                        return None;
                    };
                    let weighted = match &a.cluster {
                        ClusterSpecifier::Weighted(wc) => Some(wc.clusters.get(r.weighted?)?),
                        _ => None,
                    };
                    let name: Cow<'_, str> = match (&r.header_cluster, &a.cluster, weighted) {
                        (Some(h), _, _) => Cow::Owned(h.clone()),
                        (None, ClusterSpecifier::Cluster(n), _) => Cow::Borrowed(n.as_str()),
                        (None, _, Some(w)) => match &w.target {
                            WeightedTarget::Name(n) => Cow::Borrowed(n.as_str()),
                            WeightedTarget::Header(_) => Cow::Borrowed(""),
                        },
                        (None, _, None) => Cow::Borrowed(""),
                    };
                    Some(ClusterChoice { name, weighted })
                } else {
                    None
                };
                Target::Entry { entry, cluster }
            }
        };
        Some(Matched { table: self, vhost, vhost_index: r.vhost, target })
    }
}
