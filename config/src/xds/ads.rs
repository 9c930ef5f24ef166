//! xDS over gRPC: `dynamic_resources.ads_config` (Envoy's `ApiConfigSource` with
//! `api_type: GRPC` or `DELTA_GRPC`) and the config sources that name it (`ads: {}`).
//!
//! One aggregated stream to one control plane: `grpc_services` holds exactly one
//! `envoy_grpc` whose `cluster_name` is a static cluster that speaks HTTP/2 (gRPC needs
//! it; the cluster is resolved before any dynamic resource exists, as Envoy requires).
//! `google_grpc` (Envoy's Google C++ gRPC client) is refused with its path, and so is
//! every field sluice does not implement: `rate_limit_settings`, the REST-only fields
//! (`cluster_names`, `refresh_delay`, `request_timeout`), `config_validators`, a
//! per-call `timeout`, `initial_metadata`, `retry_policy` and `authority`.
//! `transport_api_version` may only be V3. A config source `ads: {}` without an
//! `ads_config` is refused, as Envoy refuses it.

use crate::bootstrap::Bootstrap;
use crate::decode::{join, Decode, Decoder, Fields};
use crate::error::ErrorKind;
use crate::node::{Node, Value};
use crate::proto_enum;
use crate::upstream_http::{UpstreamCodec, UpstreamProtocol};

proto_enum! {
    /// `ApiConfigSource.ApiType` (the ones sluice speaks).
    pub enum ApiType {
        /// State of the world: every response holds all resources of its type.
        Grpc = ("GRPC", 2),
        /// Incremental: responses hold the changed and the removed resources.
        DeltaGrpc = ("DELTA_GRPC", 3),
    }
}

/// `dynamic_resources.ads_config`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdsConfig {
    pub api_type: ApiType,
    /// `grpc_services[0].envoy_grpc.cluster_name`: the static cluster of the control plane.
    pub cluster_name: String,
    /// `set_node_on_first_message_only`: the node goes in the stream's first request only.
    pub set_node_on_first_message_only: bool,
    pub line: u32,
}

impl Decode for AdsConfig {
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::of(d, node, path)?;
        let line = f.line();
        let api_type = match f.take("api_type") {
            Some(n) => decode_api_type(d, n, &join(path, "api_type"))?,
            None => {
                d.error(
                    ErrorKind::Missing,
                    &join(path, "api_type"),
                    line,
                    "required field is missing: `GRPC` (state of the world) or `DELTA_GRPC` (incremental)",
                );
                return None;
            }
        };
        if let Some(n) = f.take("transport_api_version") {
            let v = d.decode::<String>(n, &join(path, "transport_api_version"));
            if v.is_some_and(|v| !v.eq_ignore_ascii_case("V3") && v != "2") {
                d.invalid(n, &join(path, "transport_api_version"), "only V3 is supported");
            }
        }
        let set_node_on_first_message_only = f.or(d, "set_node_on_first_message_only", false);
        let services_path = join(path, "grpc_services");
        let cluster_name = match f.take("grpc_services") {
            Some(Node { value: Value::Seq(items), .. }) if items.len() == 1 => {
                grpc_service(d, &items[0], &format!("{services_path}[0]"))
            }
            Some(n) => {
                d.invalid(n, &services_path, "exactly one gRPC service (the control plane) is supported");
                None
            }
            None => {
                d.error(
                    ErrorKind::Missing,
                    &services_path,
                    line,
                    "required field is missing: the control plane's `envoy_grpc`",
                );
                None
            }
        };
        f.unsupported_because(
            d,
            "rate_limit_settings",
            "`rate_limit_settings` is not supported: sluice does not rate-limit discovery requests; remove it",
        );
        for name in ["cluster_names", "refresh_delay", "request_timeout"] {
            f.unsupported_because(
                d,
                name,
                &format!("`{name}` applies to REST subscriptions, which sluice does not speak"),
            );
        }
        f.unsupported(d, &["config_validators"]);
        f.finish(d);
        Some(AdsConfig { api_type, cluster_name: cluster_name?, set_node_on_first_message_only, line })
    }
}

fn decode_api_type(d: &mut Decoder, n: &Node, path: &str) -> Option<ApiType> {
    if let Value::Scalar { text, .. } = &n.value {
        if ["REST", "AGGREGATED_GRPC", "AGGREGATED_DELTA_GRPC", "UNSUPPORTED_REST_LEGACY"]
            .iter()
            .any(|t| t.eq_ignore_ascii_case(text))
        {
            d.error(
                ErrorKind::Unsupported,
                path,
                n.line,
                format!(
                    "api_type `{text}` is not supported: use GRPC (state of the world) or DELTA_GRPC (incremental)"
                ),
            );
            return None;
        }
    }
    d.decode(n, path)
}

/// `config.core.v3.GrpcService` with `envoy_grpc`: its cluster's name.
fn grpc_service(d: &mut Decoder, node: &Node, path: &str) -> Option<String> {
    let mut f = Fields::of(d, node, path)?;
    let line = f.line();
    f.unsupported_because(
        d,
        "google_grpc",
        "`google_grpc` (the Google C++ gRPC client) is not supported: use `envoy_grpc` with a static HTTP/2 cluster",
    );
    let mut cluster = None;
    if let Some(n) = f.take("envoy_grpc") {
        let p = join(path, "envoy_grpc");
        let mut e = Fields::of(d, n, &p)?;
        cluster = e.req::<String>(d, "cluster_name");
        e.empty_only(d, "authority", "the control plane is reached with its cluster's name as `:authority`");
        e.unsupported(d, &["retry_policy", "max_receive_message_length", "skip_envoy_headers"]);
        e.finish(d);
    } else if d.errors.iter().all(|e| !e.path.starts_with(path)) {
        d.error(ErrorKind::Missing, &join(path, "envoy_grpc"), line, "required field is missing");
    }
    f.unsupported(d, &["timeout", "initial_metadata", "retry_policy"]);
    f.finish(d);
    cluster
}

/// The whole-config checks of ADS: the control plane's cluster is a static cluster
/// that speaks HTTP/2, and `ads: {}` sources have an `ads_config`.
pub fn validate(b: &Bootstrap, d: &mut Decoder) {
    let no_dynamic = super::DynamicResources::default();
    let dr = b.dynamic_resources.as_ref().unwrap_or(&no_dynamic);
    let uses_ads = dr.lds_config.iter().chain(&dr.cds_config).any(|s| s.ads)
        || b.clusters.iter().any(|c| c.eds_cluster_config.as_ref().is_some_and(|e| e.eds_config.ads))
        || b.listeners.iter().flat_map(super::hcms).any(|h| h.rds.as_ref().is_some_and(|r| r.config_source.ads))
        || sds_references(b).iter().any(|(_, _, c)| c.sds_config.ads);
    let Some(ads) = &dr.ads_config else {
        if uses_ads {
            d.error(
                ErrorKind::Invalid,
                "dynamic_resources",
                0,
                "a config source says `ads: {}` but `dynamic_resources.ads_config` is not set",
            );
        }
        return;
    };
    for (name, source) in [("lds_config", &dr.lds_config), ("cds_config", &dr.cds_config)] {
        if source.as_ref().is_some_and(|s| !s.ads) {
            d.error(
                ErrorKind::Unsupported,
                &format!("dynamic_resources.{name}"),
                ads.line,
                "a file source next to `ads_config` is not supported: use `ads: {}`",
            );
        }
    }
    for (i, c) in b.clusters.iter().enumerate() {
        if c.eds_cluster_config.as_ref().is_some_and(|e| !e.eds_config.ads) {
            d.error(
                ErrorKind::Unsupported,
                &format!("static_resources.clusters[{i}].eds_cluster_config.eds_config"),
                c.line,
                "an EDS file source next to `ads_config` is not supported: use `ads: {}`",
            );
        }
    }
    for (i, l) in b.listeners.iter().enumerate() {
        if super::hcms(l).any(|h| h.rds.as_ref().is_some_and(|r| !r.config_source.ads)) {
            d.error(
                ErrorKind::Unsupported,
                &format!("static_resources.listeners[{i}]"),
                l.line,
                "an HCM's `rds` from a file next to `ads_config` is not supported: use `config_source: { ads: {} }`",
            );
        }
    }
    for (path, line, c) in sds_references(b) {
        if !c.sds_config.ads {
            d.error(
                ErrorKind::Unsupported,
                &format!("{path}.sds_config"),
                line,
                format!("secret `{}`: an SDS file source next to `ads_config` is not supported: use `sds_config: {{ ads: {{}} }}`", c.name),
            );
        }
    }
    let path = "dynamic_resources.ads_config.grpc_services[0].envoy_grpc.cluster_name";
    match b.clusters.iter().find(|c| c.name == ads.cluster_name) {
        None => d.error(
            ErrorKind::Invalid,
            path,
            ads.line,
            format!("unknown cluster `{}`: the control plane's cluster must be a static resource", ads.cluster_name),
        ),
        Some(c) if c.eds_cluster_config.is_some() => d.error(
            ErrorKind::Invalid,
            path,
            ads.line,
            format!("cluster `{}` is an EDS cluster: the control plane's cluster needs its own endpoints", c.name),
        ),
        Some(c) if c.http_protocol_options.protocol != UpstreamProtocol::Explicit(UpstreamCodec::Http2) => d.error(
            ErrorKind::Invalid,
            path,
            ads.line,
            format!("cluster `{}` must speak HTTP/2 (`http2_protocol_options`) for gRPC", c.name),
        ),
        Some(_) => {}
    }
}

/// Every SDS reference of `b`'s listeners and clusters, with the path and line of the
/// transport socket that makes it.
fn sds_references(b: &Bootstrap) -> Vec<(String, u32, crate::tls::SdsSecretConfig)> {
    let mut out = Vec::new();
    for (i, l) in b.listeners.iter().enumerate() {
        let chains = l.filter_chains.iter().enumerate().map(|(j, c)| (format!("filter_chains[{j}]"), c));
        for (chain, c) in chains.chain(l.default_filter_chain.iter().map(|c| ("default_filter_chain".to_string(), c))) {
            if let Some(t) = &c.transport_socket {
                let path = format!("static_resources.listeners[{i}].{chain}.transport_socket");
                out.extend(t.common_tls_context.sds_configs().map(|s| (path.clone(), t.line, s.clone())));
            }
        }
    }
    for (i, c) in b.clusters.iter().enumerate() {
        if let Some(t) = &c.transport_socket {
            let path = format!("static_resources.clusters[{i}].transport_socket");
            out.extend(t.common_tls_context.sds_configs().map(|s| (path.clone(), t.line, s.clone())));
        }
    }
    out
}
