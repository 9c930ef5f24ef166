//! `RouteAction` (forward to a cluster) with Envoy's defaults and load-time checks, and
//! the route's `action` oneof (`route` | `redirect` | `direct_response`).

use std::time::Duration;

use crate::decode::{Decode, Decoder, Fields};
use crate::error::ErrorKind;
use crate::matcher::{decode_header_name, RegexRewrite};
use crate::node::Node;
use crate::proto_enum;

use super::direct_response::DirectResponseAction;
use super::internal_redirect::{decode_route_policy, InternalRedirectPolicy};
use super::policy::{HashPolicy, HedgePolicy, RequestMirrorPolicy, RetryPolicy};
use super::redirect::RedirectAction;
use super::upgrade::{check_route_upgrades, RouteUpgradeConfig};
use super::weighted::WeightedClusters;

/// Envoy's route timeout when `timeout` is absent.
pub const DEFAULT_ROUTE_TIMEOUT: Duration = Duration::from_secs(15);

proto_enum! {
    /// `RouteAction.ClusterNotFoundResponseCode`.
    pub enum ClusterNotFoundResponseCode {
        ServiceUnavailable = ("SERVICE_UNAVAILABLE", 0),
        NotFound = ("NOT_FOUND", 1),
        InternalServerError = ("INTERNAL_SERVER_ERROR", 2),
    }
}

impl ClusterNotFoundResponseCode {
    pub fn status(self) -> u16 {
        match self {
            ClusterNotFoundResponseCode::ServiceUnavailable => 503,
            ClusterNotFoundResponseCode::NotFound => 404,
            ClusterNotFoundResponseCode::InternalServerError => 500,
        }
    }
}

/// The `cluster_specifier` oneof.
#[derive(Debug, Clone, PartialEq)]
pub enum ClusterSpecifier {
    Cluster(String),
    /// The first value of this (lower-cased) request header names the cluster.
    ClusterHeader(String),
    Weighted(WeightedClusters),
}

/// How the upstream `host` is rewritten.
#[derive(Debug, Clone, PartialEq)]
pub enum HostRewrite {
    None,
    /// `host_rewrite_literal`
    Literal(String),
    /// `auto_host_rewrite`: the selected upstream host's hostname (done by the router
    /// filter once the host is known).
    Auto,
    /// `host_rewrite_header`: the first value of this request header.
    Header(String),
    /// `host_rewrite_path_regex`: the path (without query) rewritten.
    PathRegex(RegexRewrite),
}

/// `RouteAction.idle_timeout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdleTimeout {
    /// Absent: the HCM's `stream_idle_timeout` applies.
    Inherit,
    /// `0s`
    Disabled,
    After(Duration),
}

/// `config.route.v3.RouteAction`.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteAction {
    pub cluster: ClusterSpecifier,
    /// The older per-route `cors` field (see the CORS filter).
    pub cors: Option<crate::filters::cors::CorsPolicy>,
    pub cluster_not_found_response_code: ClusterNotFoundResponseCode,
    pub prefix_rewrite: Option<String>,
    pub regex_rewrite: Option<RegexRewrite>,
    pub host_rewrite: HostRewrite,
    pub append_x_forwarded_host: bool,
    /// `None` when `0s` disables it; Envoy's default is 15 s.
    pub timeout: Option<Duration>,
    pub idle_timeout: IdleTimeout,
    /// `max_stream_duration.max_stream_duration`, with the same three cases: absent, the
    /// HCM's `common_http_protocol_options.max_stream_duration` applies; `0s` disables it.
    pub max_stream_duration: IdleTimeout,
    /// `max_stream_duration.grpc_timeout_header_max` / `_offset`: a gRPC request's
    /// `grpc-timeout` header sets the stream's maximum duration.
    pub grpc_timeout_header: Option<GrpcTimeoutHeader>,
    /// Route-level policy; when absent the virtual host's applies (no merging).
    pub retry_policy: Option<RetryPolicy>,
    pub hedge_policy: Option<HedgePolicy>,
    pub request_mirror_policies: Vec<RequestMirrorPolicy>,
    pub hash_policy: Vec<HashPolicy>,
    /// Per-route upgrade overrides and CONNECT termination.
    pub upgrade_configs: Vec<RouteUpgradeConfig>,
    /// `internal_redirect_policy`, or the one the deprecated `internal_redirect_action:
    /// HANDLE_INTERNAL_REDIRECT` builds; `None`: redirects pass to the client.
    pub internal_redirect_policy: Option<InternalRedirectPolicy>,
    /// `rate_limits` (the global rate limit filter reads them).
    pub rate_limits: Vec<super::rate_limit::RateLimit>,
    /// `include_vh_rate_limits`: the virtual host's `rate_limits` apply too.
    pub include_vh_rate_limits: bool,
    pub line: u32,
}

impl Decode for RouteAction {
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::of(d, node, path)?;
        let line = f.line();
        let cluster: Option<String> = f.opt(d, "cluster");
        let cluster_header_path = f.field_path("cluster_header");
        let cluster_header = f.take("cluster_header").map(|n| decode_header_name(d, n, &cluster_header_path));
        let has_weighted = f.has("weighted_clusters");
        let weighted: Option<WeightedClusters> = f.opt(d, "weighted_clusters");
        let cluster_not_found_response_code =
            f.or(d, "cluster_not_found_response_code", ClusterNotFoundResponseCode::ServiceUnavailable);
        let prefix_rewrite: String = f.or(d, "prefix_rewrite", String::new());
        let has_regex_rewrite = f.has("regex_rewrite");
        let regex_rewrite: Option<RegexRewrite> = f.opt(d, "regex_rewrite");
        let host_literal: String = f.or(d, "host_rewrite_literal", String::new());
        let auto_host: Option<bool> = f.opt(d, "auto_host_rewrite");
        let host_header_path = f.field_path("host_rewrite_header");
        let host_header = f.take("host_rewrite_header").map(|n| decode_header_name(d, n, &host_header_path));
        let has_host_regex = f.has("host_rewrite_path_regex");
        let host_regex: Option<RegexRewrite> = f.opt(d, "host_rewrite_path_regex");
        let append_x_forwarded_host = f.or(d, "append_x_forwarded_host", false);
        let timeout: Duration = f.or(d, "timeout", DEFAULT_ROUTE_TIMEOUT);
        let idle: Option<Duration> = f.opt(d, "idle_timeout");
        let retry_policy: Option<RetryPolicy> = f.opt(d, "retry_policy");
        let hedge_policy: Option<HedgePolicy> = f.opt(d, "hedge_policy");
        let request_mirror_policies = f.list(d, "request_mirror_policies");
        let hash_policy = f.list(d, "hash_policy");
        let upgrade_configs: Vec<RouteUpgradeConfig> = f.list(d, "upgrade_configs");
        let cors = f.opt(d, "cors");
        check_route_upgrades(d, &upgrade_configs, &f.field_path("upgrade_configs"), line);
        let (max_stream_duration, grpc_timeout_header) = match f.take("max_stream_duration") {
            Some(n) => decode_max_stream_duration(d, n, &f.field_path("max_stream_duration")),
            None => (IdleTimeout::Inherit, None),
        };
        f.ignored(d, &["metadata_match"]);
        f.default_only(
            d,
            "priority",
            crate::cluster::RoutingPriority::Default,
            "only DEFAULT: sluice's connection pools and circuit breakers have one priority; remove it",
        );
        let internal_redirect_policy = decode_route_policy(d, &mut f);
        let rate_limits = f.list(d, "rate_limits");
        let include_vh_rate_limits = f.or(d, "include_vh_rate_limits", false);
        f.unsupported(
            d,
            &[
                "cluster_specifier_plugin",
                "inline_cluster_specifier_plugin",
                "path_rewrite_policy",
                "path_rewrite",
                "host_rewrite",
                "flush_timeout",
                "early_data_policy",
                "retry_policy_typed_config",
                "max_grpc_timeout",
                "grpc_timeout_offset",
            ],
        );
        f.finish(d);

        let mut specifiers = Vec::new();
        if let Some(c) = cluster {
            if c.is_empty() {
                d.error(ErrorKind::Invalid, &format!("{path}.cluster"), line, "must not be empty");
                return None;
            }
            specifiers.push(Some(ClusterSpecifier::Cluster(c)));
        }
        if let Some(h) = cluster_header {
            specifiers.push(h.map(ClusterSpecifier::ClusterHeader));
        }
        if has_weighted {
            specifiers.push(weighted.map(ClusterSpecifier::Weighted));
        }
        let cluster = match specifiers.len() {
            1 => specifiers.pop()??,
            0 => {
                d.error(
                    ErrorKind::Missing,
                    path,
                    line,
                    "a route action needs one of `cluster`, `cluster_header`, `weighted_clusters`",
                );
                return None;
            }
            _ => {
                d.error(
                    ErrorKind::Invalid,
                    path,
                    line,
                    "set only one of `cluster`, `cluster_header`, `weighted_clusters`",
                );
                return None;
            }
        };
        if !prefix_rewrite.is_empty() && has_regex_rewrite {
            d.error(
                ErrorKind::Invalid,
                path,
                line,
                "Specify only one of prefix_rewrite, regex_rewrite or path_rewrite_policy",
            );
            return None;
        }
        let mut host_rewrites = Vec::new();
        if !host_literal.is_empty() {
            host_rewrites.push(Some(HostRewrite::Literal(host_literal)));
        }
        if auto_host == Some(true) {
            host_rewrites.push(Some(HostRewrite::Auto));
        }
        if let Some(h) = host_header {
            host_rewrites.push(h.map(HostRewrite::Header));
        }
        if has_host_regex {
            host_rewrites.push(host_regex.map(HostRewrite::PathRegex));
        }
        let host_rewrite = match host_rewrites.len() {
            0 => HostRewrite::None,
            1 => host_rewrites.pop()??,
            _ => {
                d.error(
                    ErrorKind::Invalid,
                    path,
                    line,
                    "set only one of host_rewrite_literal, auto_host_rewrite, host_rewrite_header, host_rewrite_path_regex",
                );
                return None;
            }
        };
        let idle_timeout = match idle {
            None => IdleTimeout::Inherit,
            Some(t) if t.is_zero() => IdleTimeout::Disabled,
            Some(t) => IdleTimeout::After(t),
        };
        Some(RouteAction {
            cluster,
            cors,
            cluster_not_found_response_code,
            prefix_rewrite: (!prefix_rewrite.is_empty()).then_some(prefix_rewrite),
            regex_rewrite: if has_regex_rewrite { Some(regex_rewrite?) } else { None },
            host_rewrite,
            append_x_forwarded_host,
            timeout: (!timeout.is_zero()).then_some(timeout),
            idle_timeout,
            max_stream_duration,
            grpc_timeout_header,
            retry_policy,
            hedge_policy,
            request_mirror_policies,
            hash_policy,
            upgrade_configs,
            internal_redirect_policy,
            rate_limits,
            include_vh_rate_limits,
            line,
        })
    }
}

/// `RouteAction.MaxStreamDuration.grpc_timeout_header_max` / `_offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GrpcTimeoutHeader {
    /// Cap on the header's value; zero: no cap.
    pub max: Duration,
    /// Subtracted from the header's value (after the cap).
    pub offset: Option<Duration>,
}

/// `RouteAction.MaxStreamDuration`: the duration override, and whether a gRPC
/// request's `grpc-timeout` header replaces it (`grpc_timeout_header_max` set; the
/// offset applies only then, as in Envoy).
fn decode_max_stream_duration(d: &mut Decoder, node: &Node, path: &str) -> (IdleTimeout, Option<GrpcTimeoutHeader>) {
    let Some(mut f) = Fields::of(d, node, path) else { return (IdleTimeout::Inherit, None) };
    let t: Option<Duration> = f.opt(d, "max_stream_duration");
    let max: Option<Duration> = f.opt(d, "grpc_timeout_header_max");
    let offset: Option<Duration> = f.opt(d, "grpc_timeout_header_offset");
    f.finish(d);
    let grpc = max.map(|max| GrpcTimeoutHeader { max, offset });
    let t = match t {
        None => IdleTimeout::Inherit,
        Some(t) if t.is_zero() => IdleTimeout::Disabled,
        Some(t) => IdleTimeout::After(t),
    };
    (t, grpc)
}

/// The `action` oneof of a `Route`.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Route(Box<RouteAction>),
    Redirect(RedirectAction),
    DirectResponse(DirectResponseAction),
}

impl Action {
    /// Decode the oneof from a route's fields.
    pub(crate) fn decode_from(d: &mut Decoder, f: &mut Fields<'_>) -> Option<Action> {
        let mut found: Vec<Option<Action>> = Vec::new();
        let line = f.line();
        let path = f.path().to_string();
        if f.has("route") {
            found.push(f.opt::<RouteAction>(d, "route").map(|r| Action::Route(Box::new(r))));
        } else {
            f.take("route");
        }
        if f.has("redirect") {
            found.push(f.opt::<RedirectAction>(d, "redirect").map(Action::Redirect));
        } else {
            f.take("redirect");
        }
        if f.has("direct_response") {
            found.push(f.opt::<DirectResponseAction>(d, "direct_response").map(Action::DirectResponse));
        } else {
            f.take("direct_response");
        }
        f.unsupported(d, &["filter_action", "non_forwarding_action"]);
        match found.len() {
            1 => found.pop()?,
            0 => {
                d.error(ErrorKind::Missing, &path, line, "a route needs one of `route`, `redirect`, `direct_response`");
                None
            }
            _ => {
                d.error(ErrorKind::Invalid, &path, line, "set only one of `route`, `redirect`, `direct_response`");
                None
            }
        }
    }
}
