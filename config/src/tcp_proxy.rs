//! `envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy`.

use std::time::Duration;

use crate::decode::{Decode, Decoder, Fields};
use crate::error::ErrorKind;
use crate::node::Node;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpProxy {
    pub stat_prefix: String,
    pub cluster: TcpProxyCluster,
    /// `None` when `0s` disables it; Envoy's default is 1h.
    pub idle_timeout: Option<Duration>,
    /// At least 1; Envoy's default is 1.
    pub max_connect_attempts: u32,
    pub max_downstream_connection_duration: Option<Duration>,
    pub line: u32,
}

/// `cluster` or `weighted_clusters` (the `cluster_specifier` oneof).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TcpProxyCluster {
    Cluster(String),
    Weighted(Vec<WeightedCluster>),
}

impl TcpProxyCluster {
    pub fn names(&self) -> Vec<&str> {
        match self {
            TcpProxyCluster::Cluster(c) => vec![c.as_str()],
            TcpProxyCluster::Weighted(w) => w.iter().map(|c| c.name.as_str()).collect(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeightedCluster {
    pub name: String,
    pub weight: u32,
}

impl Decode for WeightedCluster {
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::of(d, node, path)?;
        let name: Option<String> = f.req(d, "name");
        let weight: Option<u32> = f.req(d, "weight");
        f.ignored(d, &["metadata_match"]);
        f.finish(d);
        let weight = weight?;
        if weight == 0 {
            d.invalid(node, &format!("{path}.weight"), "weight must be at least 1");
        }
        Some(WeightedCluster { name: name?, weight })
    }
}

impl TcpProxy {
    pub(crate) fn decode_fields(d: &mut Decoder, mut f: Fields<'_>) -> Option<TcpProxy> {
        let line = f.line();
        let stat_prefix: Option<String> = f.req(d, "stat_prefix");
        let cluster: Option<String> = f.opt(d, "cluster");
        let weighted = match f.take("weighted_clusters") {
            Some(node) => {
                let wpath = f.field_path("weighted_clusters");
                let mut wf = Fields::of(d, node, &wpath)?;
                let clusters: Vec<WeightedCluster> = wf.list(d, "clusters");
                wf.finish(d);
                if clusters.is_empty() {
                    d.invalid(node, &wpath, "weighted_clusters needs at least one cluster");
                }
                Some(clusters)
            }
            None => None,
        };
        let idle_timeout: Duration = f.or(d, "idle_timeout", Duration::from_secs(3600));
        let max_connect_attempts: u32 = f.or(d, "max_connect_attempts", 1);
        let max_downstream_connection_duration = f.opt(d, "max_downstream_connection_duration");
        f.ignored(d, &["metadata_match"]);
        f.empty_only(d, "access_log", "tcp_proxy access logs are not supported yet; remove them");
        f.empty_only(d, "access_log_options", "tcp_proxy access logs are not supported yet; remove them");
        f.empty_only(
            d,
            "hash_policy",
            "tcp_proxy hash policies are not supported; ring hash and Maglev then hash nothing (random host)",
        );
        f.unsupported(
            d,
            &[
                "on_demand",
                "tunneling_config",
                "upstream_filters",
                "backoff_options",
                "proxy_protocol_tlvs",
                "max_early_data_bytes",
                "idle_timeout_jitter",
                "access_log_flush_interval",
                "flush_access_log_on_connected",
            ],
        );
        let path = f.path().to_string();
        f.finish(d);
        let cluster = match (cluster, weighted) {
            (Some(c), None) => TcpProxyCluster::Cluster(c),
            (None, Some(w)) => TcpProxyCluster::Weighted(w),
            (Some(_), Some(_)) => {
                d.error(ErrorKind::Invalid, &path, line, "set only one of `cluster` and `weighted_clusters`");
                return None;
            }
            (None, None) => {
                d.error(ErrorKind::Missing, &path, line, "tcp_proxy needs `cluster` or `weighted_clusters`");
                return None;
            }
        };
        if max_connect_attempts == 0 {
            d.error(ErrorKind::Invalid, &format!("{path}.max_connect_attempts"), line, "must be at least 1");
        }
        let stat_prefix = stat_prefix?;
        if stat_prefix.is_empty() {
            d.error(ErrorKind::Invalid, &format!("{path}.stat_prefix"), line, "must not be empty");
        }
        Some(TcpProxy {
            stat_prefix,
            cluster,
            idle_timeout: (!idle_timeout.is_zero()).then_some(idle_timeout),
            max_connect_attempts: max_connect_attempts.max(1),
            max_downstream_connection_duration: max_downstream_connection_duration.filter(|d: &Duration| !d.is_zero()),
            line,
        })
    }
}
