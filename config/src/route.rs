//! `envoy.config.route.v3.RouteConfiguration`: virtual hosts, routes, their matchers and
//! actions, with Envoy's defaults and every check Envoy makes at load.
//!
//! Domain rules (config_impl.cc `RouteMatcher`): domains are lower-cased; a domain may
//! appear once in the whole route configuration; only one virtual host may hold `*`; a
//! wildcard is a leading `*` (suffix form, `*.foo.com` / `*-bar.foo.com`) or a trailing
//! `*` (prefix form, `foo.*` / `foo-*`). sluice also rejects a `*` anywhere else (such a
//! domain could never match in Envoy either). Direct-response bodies are checked against
//! `max_direct_response_body_size_bytes` here.

use crate::core::RuntimeFractionalPercent;
use crate::decode::{index, Decode, Decoder, Fields};
use crate::error::{ErrorKind, Warning};
use crate::filters::cors::CorsPolicy;
use crate::filters::PerFilterConfigs;
use crate::matcher::{FullRegex, HeaderMatcher, MetadataMatcher, QueryParameterMatcher};
use crate::node::Node;
use crate::proto_enum;

mod action;
mod direct_response;
pub mod formatter;
mod headers;
mod internal_redirect;
mod policy;
pub mod rate_limit;
mod redirect;
mod upgrade;
mod weighted;

pub use action::{
    Action, ClusterNotFoundResponseCode, ClusterSpecifier, GrpcTimeoutHeader, HostRewrite, IdleTimeout, RouteAction,
    DEFAULT_ROUTE_TIMEOUT,
};
pub use direct_response::{decode_base64, DirectResponseAction};
pub use formatter::{Command, FormatPiece, FormatString, GrpcStatusFormat, TimeFormat, TimeItem};
pub use headers::{is_modifiable, HeaderMutations, HeaderToAdd};
pub use internal_redirect::{
    InternalRedirectAction, InternalRedirectPolicy, InternalRedirectPredicate, VALID_REDIRECT_CODES,
};
pub use policy::{
    HashPolicy, HashPolicyKind, HedgePolicy, MirrorTarget, RequestMirrorPolicy, RetryBackOff, RetryHostPredicate,
    RetryOn, RetryPolicy,
};
pub use redirect::{PathRedirect, RedirectAction, RedirectResponseCode, SchemeRedirect};
pub(crate) use upgrade::check_upgrade_type;
pub use upgrade::{ConnectConfig, RouteUpgradeConfig};
pub use weighted::{ClusterWeight, WeightedClusters, WeightedTarget};

/// Envoy's default `max_direct_response_body_size_bytes`.
pub const DEFAULT_MAX_DIRECT_RESPONSE_BODY_SIZE: u32 = 4096;

/// Why a non-empty `typed_per_filter_config` is refused where Envoy has none in force.
pub(crate) const PER_FILTER_CONFIG: &str =
    "per-filter configuration on a weighted cluster is not supported; put it on the route";

/// `config.route.v3.RouteConfiguration`.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteConfiguration {
    pub name: String,
    pub virtual_hosts: Vec<VirtualHost>,
    /// `None` when absent: Envoy validates clusters of an inline route config (true) and
    /// not those of one loaded by RDS or by router_check_tool.
    pub validate_clusters: Option<bool>,
    pub request_headers: HeaderMutations,
    pub response_headers: HeaderMutations,
    /// Lower-cased names removed from requests from external clients.
    pub internal_only_headers: Vec<String>,
    pub most_specific_header_mutations_wins: bool,
    pub max_direct_response_body_size_bytes: u32,
    pub ignore_port_in_host_matching: bool,
    /// Inherited by virtual hosts that have none of their own.
    pub request_mirror_policies: Vec<RequestMirrorPolicy>,
    /// Least specific per-filter configs (virtual hosts and routes override them).
    pub typed_per_filter_config: PerFilterConfigs,
    pub line: u32,
}

impl Decode for RouteConfiguration {
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::of(d, node, path)?;
        let line = f.line();
        let name: String = f.or(d, "name", String::new());
        let virtual_hosts: Vec<VirtualHost> = f.list(d, "virtual_hosts");
        let validate_clusters: Option<bool> = f.opt(d, "validate_clusters");
        let request_headers = HeaderMutations::decode(d, &mut f, "request_headers_to_add", "request_headers_to_remove");
        let response_headers =
            HeaderMutations::decode(d, &mut f, "response_headers_to_add", "response_headers_to_remove");
        let internal_only_headers: Vec<String> = match f.take("internal_only_headers") {
            Some(n) => decode_header_names(d, n, &format!("{path}.internal_only_headers")),
            None => Vec::new(),
        };
        let most_specific_header_mutations_wins = f.or(d, "most_specific_header_mutations_wins", false);
        let max_direct_response_body_size_bytes =
            f.or(d, "max_direct_response_body_size_bytes", DEFAULT_MAX_DIRECT_RESPONSE_BODY_SIZE);
        let ignore_port_in_host_matching = f.or(d, "ignore_port_in_host_matching", false);
        let request_mirror_policies = f.list(d, "request_mirror_policies");
        let tpfc_path = f.field_path("typed_per_filter_config");
        let typed_per_filter_config = PerFilterConfigs::decode(d, f.take("typed_per_filter_config"), &tpfc_path);
        f.ignored(d, &["metadata"]);
        f.unsupported(
            d,
            &[
                "vhds",
                "cluster_specifier_plugins",
                "ignore_path_parameters_in_path_matching",
                "vhost_header",
                "request_body_buffer_limit",
            ],
        );
        f.finish(d);
        let rc = RouteConfiguration {
            name,
            virtual_hosts,
            validate_clusters,
            request_headers,
            response_headers,
            internal_only_headers,
            most_specific_header_mutations_wins,
            max_direct_response_body_size_bytes,
            ignore_port_in_host_matching,
            request_mirror_policies,
            typed_per_filter_config,
            line,
        };
        check_domains(d, &rc, path);
        check_body_sizes(d, &rc, path);
        Some(rc)
    }
}

fn decode_header_names(d: &mut Decoder, node: &Node, path: &str) -> Vec<String> {
    let items: Vec<String> = d.decode(node, path).unwrap_or_default();
    let mut out = Vec::with_capacity(items.len());
    for (i, s) in items.into_iter().enumerate() {
        if crate::matcher::is_header_name(&s) {
            out.push(s.to_ascii_lowercase());
        } else {
            d.error(ErrorKind::Invalid, &index(path, i), node.line, format!("`{s}` is not a valid header name"));
        }
    }
    out
}

/// Duplicate domains and more than one `*` are errors (config_impl.cc `RouteMatcher`).
fn check_domains(d: &mut Decoder, rc: &RouteConfiguration, path: &str) {
    let mut seen: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    let mut star: Option<usize> = None;
    for (i, vh) in rc.virtual_hosts.iter().enumerate() {
        for (j, domain) in vh.domains.iter().enumerate() {
            let dpath = format!("{path}.virtual_hosts[{i}].domains[{j}]");
            if domain == "*" {
                if star.is_some() {
                    d.error(
                        ErrorKind::Invalid,
                        &dpath,
                        vh.line,
                        format!("Only a single wildcard domain is permitted in route {}", rc.name),
                    );
                }
                star = Some(i);
                continue;
            }
            if seen.insert(domain.as_str(), i).is_some() {
                d.error(
                    ErrorKind::Invalid,
                    &dpath,
                    vh.line,
                    format!(
                        "Only unique values for domains are permitted. Duplicate entry of domain {domain} in route {}",
                        rc.name
                    ),
                );
            }
        }
    }
}

fn check_body_sizes(d: &mut Decoder, rc: &RouteConfiguration, path: &str) {
    let max = rc.max_direct_response_body_size_bytes as usize;
    for (i, vh) in rc.virtual_hosts.iter().enumerate() {
        for (j, r) in vh.routes.iter().enumerate() {
            if let Action::DirectResponse(DirectResponseAction { body: Some(body), line, .. }) = &r.action {
                if body.len() > max {
                    d.error(
                        ErrorKind::Invalid,
                        &format!("{path}.virtual_hosts[{i}].routes[{j}].direct_response.body"),
                        *line,
                        format!("response body size is {} bytes; maximum is {max}", body.len()),
                    );
                }
            }
        }
    }
}

proto_enum! {
    /// `VirtualHost.TlsRequirementType`.
    pub enum TlsRequirement {
        None = ("NONE", 0),
        ExternalOnly = ("EXTERNAL_ONLY", 1),
        All = ("ALL", 2),
    }
}

/// `config.route.v3.VirtualCluster` (used for naming; sluice keeps no per-virtual-cluster
/// stats).
#[derive(Debug, Clone, PartialEq)]
pub struct VirtualCluster {
    pub name: String,
    pub headers: Vec<HeaderMatcher>,
}

impl Decode for VirtualCluster {
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::of(d, node, path)?;
        let line = f.line();
        let name: Option<String> = f.req(d, "name");
        let headers: Vec<HeaderMatcher> = f.list(d, "headers");
        f.finish(d);
        if headers.is_empty() {
            d.error(ErrorKind::Invalid, &format!("{path}.headers"), line, "virtual clusters must define 'headers'");
            return None;
        }
        Some(VirtualCluster { name: name?, headers })
    }
}

/// `config.route.v3.VirtualHost`.
#[derive(Debug, Clone, PartialEq)]
pub struct VirtualHost {
    pub name: String,
    /// Lower-cased.
    pub domains: Vec<String>,
    pub routes: Vec<Route>,
    pub require_tls: TlsRequirement,
    pub request_headers: HeaderMutations,
    pub response_headers: HeaderMutations,
    pub retry_policy: Option<RetryPolicy>,
    pub hedge_policy: Option<HedgePolicy>,
    /// Inherited by routes that have none of their own.
    pub request_mirror_policies: Vec<RequestMirrorPolicy>,
    pub include_request_attempt_count: bool,
    pub include_attempt_count_in_response: bool,
    pub virtual_clusters: Vec<VirtualCluster>,
    pub typed_per_filter_config: PerFilterConfigs,
    /// The older `cors` field (the CORS filter reads it when no per-filter CORS
    /// policy applies).
    pub cors: Option<CorsPolicy>,
    /// `rate_limits` (the global rate limit filter reads them).
    pub rate_limits: Vec<rate_limit::RateLimit>,
    pub line: u32,
}

impl Decode for VirtualHost {
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::of(d, node, path)?;
        let line = f.line();
        let name: Option<String> = f.req(d, "name");
        let domains: Vec<String> = f.list(d, "domains");
        let routes: Vec<Route> = f.list(d, "routes");
        let require_tls = f.or(d, "require_tls", TlsRequirement::None);
        let request_headers = HeaderMutations::decode(d, &mut f, "request_headers_to_add", "request_headers_to_remove");
        let response_headers =
            HeaderMutations::decode(d, &mut f, "response_headers_to_add", "response_headers_to_remove");
        let retry_policy = f.opt(d, "retry_policy");
        let hedge_policy = f.opt(d, "hedge_policy");
        let request_mirror_policies = f.list(d, "request_mirror_policies");
        let include_request_attempt_count = f.or(d, "include_request_attempt_count", false);
        let include_attempt_count_in_response = f.or(d, "include_attempt_count_in_response", false);
        let vc_line = f.take("virtual_clusters").map(|n| n.line);
        let virtual_clusters: Vec<VirtualCluster> = f.list(d, "virtual_clusters");
        f.ignored(d, &["metadata"]);
        let tpfc_path = f.field_path("typed_per_filter_config");
        let typed_per_filter_config = PerFilterConfigs::decode(d, f.take("typed_per_filter_config"), &tpfc_path);
        let cors = f.opt(d, "cors");
        let rate_limits = f.list(d, "rate_limits");
        f.unsupported_because(
            d,
            "per_request_buffer_limit_bytes",
            "`per_request_buffer_limit_bytes` is not supported: sluice buffers up to the listener's per_connection_buffer_limit_bytes; remove it",
        );
        f.unsupported(
            d,
            &["matcher", "retry_policy_typed_config", "include_is_timeout_retry_header", "request_body_buffer_limit"],
        );
        f.finish(d);
        if let Some(vc_line) = vc_line.filter(|_| !virtual_clusters.is_empty()) {
            d.warnings.push(Warning {
                path: format!("{path}.virtual_clusters"),
                line: vc_line,
                message: "virtual clusters name requests for route-check only; sluice keeps no virtual-cluster stats"
                    .into(),
            });
        }
        let name = name?;
        if name.is_empty() {
            d.error(ErrorKind::Invalid, &format!("{path}.name"), line, "must not be empty");
        }
        if domains.is_empty() {
            d.error(ErrorKind::Invalid, &format!("{path}.domains"), line, "a virtual host needs at least one domain");
        }
        let mut lower = Vec::with_capacity(domains.len());
        for (j, domain) in domains.into_iter().enumerate() {
            match check_domain(&domain) {
                Ok(()) => lower.push(domain.to_ascii_lowercase()),
                Err(e) => d.error(ErrorKind::Invalid, &format!("{path}.domains[{j}]"), line, e),
            }
        }
        Some(VirtualHost {
            name,
            domains: lower,
            routes,
            require_tls,
            request_headers,
            response_headers,
            retry_policy,
            hedge_policy,
            request_mirror_policies,
            include_request_attempt_count,
            include_attempt_count_in_response,
            virtual_clusters,
            typed_per_filter_config,
            cors,
            rate_limits,
            line,
        })
    }
}

/// A domain is `*`, `*suffix`, `prefix*` or an exact name, with no control characters.
fn check_domain(domain: &str) -> Result<(), String> {
    if domain.is_empty() {
        return Err("a domain must not be empty".into());
    }
    if domain.bytes().any(|b| b.is_ascii_control()) {
        return Err(format!("domain `{}` contains a control character", domain.escape_default()));
    }
    if domain == "*" {
        return Ok(());
    }
    let inner = domain.strip_prefix('*').or_else(|| domain.strip_suffix('*')).unwrap_or(domain);
    if inner.contains('*') {
        return Err(format!(
            "invalid domain `{domain}`: a wildcard must be a leading `*` (`*.foo.com`, `*-bar.foo.com`) or a trailing `*` (`foo.*`, `foo-*`), or `*` alone"
        ));
    }
    Ok(())
}

/// `config.route.v3.Route`.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    pub name: String,
    pub r#match: RouteMatch,
    pub action: Action,
    pub request_headers: HeaderMutations,
    pub response_headers: HeaderMutations,
    pub typed_per_filter_config: PerFilterConfigs,
    /// `decorator`: the span's operation name.
    pub decorator: Option<crate::trace::Decorator>,
    /// `tracing`: sampling and tags replacing the connection manager's.
    pub tracing: Option<crate::trace::RouteTracing>,
    /// `metadata.filter_metadata` (read by tracing's route metadata custom tags).
    pub metadata: crate::metadata::Metadata,
    pub line: u32,
}

impl Decode for Route {
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::of(d, node, path)?;
        let line = f.line();
        let name: String = f.or(d, "name", String::new());
        let r#match: Option<RouteMatch> = f.req(d, "match");
        let action = Action::decode_from(d, &mut f);
        let request_headers = HeaderMutations::decode(d, &mut f, "request_headers_to_add", "request_headers_to_remove");
        let response_headers =
            HeaderMutations::decode(d, &mut f, "response_headers_to_add", "response_headers_to_remove");
        let metadata = f.or(d, "metadata", crate::metadata::Metadata::default());
        let decorator = f.opt(d, "decorator");
        let tracing = f.opt(d, "tracing");
        let tpfc_path = f.field_path("typed_per_filter_config");
        let typed_per_filter_config = PerFilterConfigs::decode(d, f.take("typed_per_filter_config"), &tpfc_path);
        f.unsupported_because(
            d,
            "per_request_buffer_limit_bytes",
            "`per_request_buffer_limit_bytes` is not supported: sluice buffers up to the listener's per_connection_buffer_limit_bytes; remove it",
        );
        f.unsupported(d, &["stat_prefix", "request_body_buffer_limit"]);
        f.finish(d);
        Some(Route {
            name,
            r#match: r#match?,
            action: action?,
            request_headers,
            response_headers,
            typed_per_filter_config,
            decorator,
            tracing,
            metadata,
            line,
        })
    }
}

/// The `path_specifier` oneof of a `RouteMatch`.
#[derive(Debug, Clone, PartialEq)]
pub enum PathSpecifier {
    Prefix(String),
    Path(String),
    /// Whole-path match of the path without its query string.
    SafeRegex(FullRegex),
    /// `path_separated_prefix`: the prefix followed by `/` or the end of the path.
    PathSeparatedPrefix(String),
    /// `connect_matcher: {}`: CONNECT requests only (they have no path; no other
    /// path specifier matches them).
    ConnectMatcher,
}

/// `config.route.v3.RouteMatch`.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteMatch {
    pub path: PathSpecifier,
    /// Envoy's default is true; it has no effect on `safe_regex`.
    pub case_sensitive: bool,
    pub headers: Vec<HeaderMatcher>,
    pub query_parameters: Vec<QueryParameterMatcher>,
    /// `grpc: {}`: only gRPC requests (`content-type: application/grpc...`).
    pub grpc: bool,
    /// `runtime_fraction`: the share of requests the route matches, read from the
    /// runtime with the stream's random value.
    pub runtime_fraction: Option<RuntimeFractionalPercent>,
    /// `dynamic_metadata`: every matcher must accept the stream's dynamic metadata.
    pub dynamic_metadata: Vec<MetadataMatcher>,
}

impl Decode for RouteMatch {
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::of(d, node, path)?;
        let line = f.line();
        let mut specs: Vec<Option<PathSpecifier>> = Vec::new();
        if let Some(p) = f.opt::<String>(d, "prefix") {
            specs.push(Some(PathSpecifier::Prefix(p)));
        }
        if let Some(p) = f.opt::<String>(d, "path") {
            specs.push(Some(PathSpecifier::Path(p)));
        }
        if f.has("safe_regex") {
            specs.push(f.opt::<FullRegex>(d, "safe_regex").map(PathSpecifier::SafeRegex));
        }
        if let Some(p) = f.opt::<String>(d, "path_separated_prefix") {
            // route_components.proto: `^[^?#]+[^?#/]$`
            let ok = !p.is_empty() && !p.contains(['?', '#']) && !p.ends_with('/');
            if ok {
                specs.push(Some(PathSpecifier::PathSeparatedPrefix(p)));
            } else {
                d.error(
                    ErrorKind::Invalid,
                    &format!("{path}.path_separated_prefix"),
                    line,
                    format!("`{p}` must be non-empty, hold no `?` or `#`, and not end with `/`"),
                );
                specs.push(None);
            }
        }
        if let Some(n) = f.take("connect_matcher") {
            let c = Fields::of(d, n, &f.field_path("connect_matcher"));
            specs.push(c.map(|c| c.finish(d)).map(|_| PathSpecifier::ConnectMatcher));
        }
        let case_sensitive = f.or(d, "case_sensitive", true);
        let headers = f.list(d, "headers");
        let query_parameters = f.list(d, "query_parameters");
        let grpc = match f.take("grpc") {
            Some(n) => {
                let g = Fields::of(d, n, &f.field_path("grpc"));
                if let Some(g) = g {
                    g.finish(d);
                }
                true
            }
            None => false,
        };
        let runtime_fraction: Option<RuntimeFractionalPercent> = f.opt(d, "runtime_fraction");
        let dynamic_metadata = f.list(d, "dynamic_metadata");
        f.unsupported(d, &["path_match_policy", "tls_context", "filter_state", "cookies"]);
        f.finish(d);
        let path_spec = match specs.len() {
            1 => specs.pop()??,
            0 => {
                d.error(
                    ErrorKind::Missing,
                    path,
                    line,
                    "a route match needs one of `prefix`, `path`, `safe_regex`, `path_separated_prefix`, `connect_matcher`",
                );
                return None;
            }
            _ => {
                d.error(
                    ErrorKind::Invalid,
                    path,
                    line,
                    "set only one of `prefix`, `path`, `safe_regex`, `path_separated_prefix`, `connect_matcher`",
                );
                return None;
            }
        };
        Some(RouteMatch {
            path: path_spec,
            case_sensitive,
            headers,
            query_parameters,
            grpc,
            runtime_fraction,
            dynamic_metadata,
        })
    }
}

#[cfg(test)]
mod tests;
