//! `envoy.config.bootstrap.v3.Bootstrap`: admin, static resources and file-based
//! `dynamic_resources`.

use crate::address::SocketAddress;
use crate::cluster::Cluster;
use crate::decode::{Decode, Decoder, Fields};
use crate::error::ErrorKind;
use crate::listener::Listener;
use crate::node::Node;
use crate::overload::OverloadManager;
use crate::runtime;

#[derive(Debug, Clone, PartialEq)]
pub struct Bootstrap {
    pub admin: Option<Admin>,
    pub listeners: Vec<Listener>,
    pub clusters: Vec<Cluster>,
    /// `overload_manager` (absent: no monitors, no actions, no global connection limit).
    pub overload_manager: Option<OverloadManager>,
    /// `layered_runtime` (absent: a runtime with no layers).
    pub layered_runtime: Option<runtime::LayeredRuntime>,
    /// `node.id`, `node.cluster`, `node.locality.zone` (the rest of `node` is inert).
    pub node: NodeIdentity,
    /// `dynamic_resources`: listeners and clusters read from files (see [`crate::xds`]).
    pub dynamic_resources: Option<crate::xds::DynamicResources>,
}

/// What the proxy's traces say about it: the node's id and cluster (Zipkin's service
/// name) and its zone (Envoy's `LocalInfo`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NodeIdentity {
    pub id: String,
    pub cluster: String,
    pub zone: String,
}

impl NodeIdentity {
    /// Read from the document's `node` (scalars only; anything else reads as empty).
    fn of(root: &Node) -> NodeIdentity {
        use crate::node::Value;
        let field = |n: &Node, name: &str| -> Option<Node> {
            let Value::Map(fields) = &n.value else { return None };
            fields.iter().find(|(k, _)| k.name == name).map(|(_, v)| v.clone())
        };
        let text = |n: Option<Node>| match n.map(|n| n.value) {
            Some(Value::Scalar { text, .. }) => text,
            _ => String::new(),
        };
        let Some(node) = field(root, "node") else { return NodeIdentity::default() };
        NodeIdentity {
            id: text(field(&node, "id")),
            cluster: text(field(&node, "cluster")),
            zone: text(field(&node, "locality").and_then(|l| field(&l, "zone"))),
        }
    }
}

/// `bootstrap.v3.Admin`: where the admin server listens (absent = no admin server).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admin {
    pub address: SocketAddress,
    /// Admin connections do not count towards the global downstream connection limit.
    pub ignore_global_conn_limit: bool,
}

impl Decode for Admin {
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::of(d, node, path)?;
        let address: Option<SocketAddress> = f.opt(d, "address");
        let ignore_global_conn_limit = f.or(d, "ignore_global_conn_limit", false);
        f.ignored(d, &["profile_path"]);
        f.empty_only(d, "access_log", "the admin server keeps no access log; remove it");
        if let Some(n) = f.take("access_log_path") {
            let p = f.field_path("access_log_path");
            if let Some(v) = d.decode::<String>(n, &p) {
                if !v.is_empty() && v != "/dev/null" {
                    d.error(
                        ErrorKind::Unsupported,
                        &p,
                        n.line,
                        "`access_log_path` is not supported: the admin server keeps no access log; remove it or use /dev/null",
                    );
                }
            }
        }
        f.empty_only(d, "socket_options", "socket options are not supported on the admin listener; remove them");
        f.finish(d);
        // An admin block without an address starts no admin server, as in Envoy.
        Some(Admin { address: address?, ignore_global_conn_limit })
    }
}

impl Decode for Bootstrap {
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        let identity = NodeIdentity::of(node);
        let mut f = Fields::of(d, node, path)?;
        let admin = f.opt(d, "admin");
        let overload_manager = f.opt(d, "overload_manager");
        let dynamic_resources = f.opt(d, "dynamic_resources");
        let mut listeners = Vec::new();
        let mut clusters = Vec::new();
        if let Some(sr) = f.take("static_resources") {
            let mut s = Fields::of(d, sr, &f.field_path("static_resources"))?;
            listeners = s.list(d, "listeners");
            clusters = s.list(d, "clusters");
            s.unsupported(d, &["secrets"]);
            s.finish(d);
        }
        f.ignored(
            d,
            &[
                "node",
                "stats_flush_interval",
                "stats_config",
                "node_context_params",
                "enable_dispatcher_stats",
                "application_log_config",
            ],
        );
        let layered_runtime = match f.take("layered_runtime") {
            Some(n) => {
                runtime::decode_layered_runtime(d, n, &f.field_path("layered_runtime"), &runtime::service_cluster(node))
            }
            None => None,
        };
        f.empty_only(
            d,
            "cluster_manager",
            "cluster manager options (local cluster, upstream bind, load reports) are not supported; remove them",
        );
        f.empty_only(d, "watchdog", "the watchdog is not supported; remove it");
        f.empty_only(d, "watchdogs", "the watchdog is not supported; remove it");
        f.empty_only(d, "stats_sinks", "stats sinks are not supported; read the admin server's /stats instead");
        f.empty_only(d, "fatal_actions", "fatal actions are not supported; remove them");
        f.default_only(d, "header_prefix", String::new(), "sluice's headers always start with x-envoy-; remove it");
        f.default_only(
            d,
            "use_tcp_for_dns_lookups",
            false,
            "sluice resolves names with the system resolver; remove it",
        );
        f.unsupported(
            d,
            &[
                "hds_config",
                "flags_path",
                "stats_server_version_override",
                "default_socket_interface",
                "bootstrap_extensions",
                "config_sources",
                "default_config_source",
                "certificate_provider_instances",
                "inline_headers",
                "perf_tracing_file_path",
                "default_regex_engine",
                "xds_delegate_extension",
                "xds_config_tracker_extension",
                "listener_manager",
                "typed_dns_resolver_config",
                "dns_resolution_config",
            ],
        );
        f.unsupported_because(
            d,
            "tracing",
            "the bootstrap's tracing provider is not supported; set it in the connection manager's `tracing.provider`",
        );
        f.finish(d);
        Some(Bootstrap {
            admin,
            listeners,
            clusters,
            overload_manager,
            layered_runtime,
            node: identity,
            dynamic_resources,
        })
    }
}
