//! `RouteAction.weighted_clusters`: the clusters, their weights (summed; the total must
//! be > 0 and fit a uint32, as Envoy checks) and per-cluster header mutations.

use crate::decode::{Decode, Decoder, Fields};
use crate::error::ErrorKind;
use crate::matcher::decode_header_name;
use crate::node::Node;

use super::headers::HeaderMutations;

/// `RouteAction.weighted_clusters`.
#[derive(Debug, Clone, PartialEq)]
pub struct WeightedClusters {
    pub clusters: Vec<ClusterWeight>,
    /// Sum of the weights (always > 0).
    pub total_weight: u64,
    /// `header_name`: a request header whose (single, integer) value replaces the
    /// random value of the pick.
    pub header_name: Option<String>,
    /// `runtime_key_prefix`: each cluster's weight is read from the runtime key
    /// `<prefix>.<cluster name>` (see [`ClusterWeight::runtime_key`]).
    pub runtime_key_prefix: Option<String>,
}

/// Which cluster a weighted entry names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WeightedTarget {
    Name(String),
    /// `cluster_header`
    Header(String),
}

/// `WeightedCluster.ClusterWeight`.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterWeight {
    pub target: WeightedTarget,
    pub weight: u32,
    pub request_headers: HeaderMutations,
    pub response_headers: HeaderMutations,
    pub host_rewrite_literal: Option<String>,
    pub line: u32,
    /// `<runtime_key_prefix>.<name>` when the clusters have a runtime key prefix: the
    /// runtime value there replaces `weight`.
    pub runtime_key: Option<String>,
}

impl Decode for ClusterWeight {
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::of(d, node, path)?;
        let line = f.line();
        let name: String = f.or(d, "name", String::new());
        let header = match f.take("cluster_header") {
            Some(n) => decode_header_name(d, n, &f.field_path("cluster_header")),
            None => None,
        };
        let weight: u32 = f.or(d, "weight", 0);
        let request_headers = HeaderMutations::decode(d, &mut f, "request_headers_to_add", "request_headers_to_remove");
        let response_headers =
            HeaderMutations::decode(d, &mut f, "response_headers_to_add", "response_headers_to_remove");
        let host_rewrite_literal: String = f.or(d, "host_rewrite_literal", String::new());
        f.ignored(d, &["metadata_match"]);
        f.empty_only(d, "typed_per_filter_config", crate::route::PER_FILTER_CONFIG);
        f.finish(d);
        let target = match (name.is_empty(), header) {
            (false, None) => WeightedTarget::Name(name),
            (true, Some(h)) => WeightedTarget::Header(h),
            _ => {
                d.error(ErrorKind::Invalid, path, line, "set exactly one of `name` and `cluster_header`");
                return None;
            }
        };
        Some(ClusterWeight {
            target,
            weight,
            request_headers,
            response_headers,
            host_rewrite_literal: (!host_rewrite_literal.is_empty()).then_some(host_rewrite_literal),
            line,
            runtime_key: None,
        })
    }
}

impl Decode for WeightedClusters {
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::of(d, node, path)?;
        let line = f.line();
        let mut clusters: Vec<ClusterWeight> = f.list(d, "clusters");
        let runtime_key_prefix: String = f.or(d, "runtime_key_prefix", String::new());
        let header_name = match f.take("header_name") {
            Some(n) => decode_header_name(d, n, &f.field_path("header_name")),
            None => None,
        };
        f.ignored(d, &["total_weight"]);
        f.unsupported(d, &["random_value_specifier"]);
        f.finish(d);
        if clusters.is_empty() {
            d.error(
                ErrorKind::Invalid,
                &format!("{path}.clusters"),
                line,
                "weighted_clusters needs at least one cluster",
            );
            return None;
        }
        let total_weight: u64 = clusters.iter().map(|c| u64::from(c.weight)).sum();
        if total_weight == 0 {
            d.error(ErrorKind::Invalid, path, line, "Sum of weights in the weighted_cluster must be greater than 0.");
            return None;
        }
        if total_weight > u64::from(u32::MAX) {
            d.error(
                ErrorKind::Invalid,
                path,
                line,
                format!("The sum of weights of all weighted clusters exceeds {}", u32::MAX),
            );
            return None;
        }
        let runtime_key_prefix = (!runtime_key_prefix.is_empty()).then_some(runtime_key_prefix);
        if let Some(prefix) = &runtime_key_prefix {
            // Envoy: `runtime_key_prefix + "." + name` (a `cluster_header` entry has
            // an empty name).
            for c in &mut clusters {
                let name = match &c.target {
                    WeightedTarget::Name(n) => n.as_str(),
                    WeightedTarget::Header(_) => "",
                };
                c.runtime_key = Some(format!("{prefix}.{name}"));
            }
        }
        Some(WeightedClusters { clusters, total_weight, header_name, runtime_key_prefix })
    }
}
