//! What a matched route does: `RouteAction` (forward to a cluster), `RedirectAction`
//! and `DirectResponseAction`, with Envoy's defaults and load-time checks.

use std::time::Duration;

use crate::decode::{Decode, Decoder, Fields};
use crate::error::ErrorKind;
use crate::matcher::{decode_header_name, RegexRewrite};
use crate::node::Node;
use crate::proto_enum;

use super::headers::HeaderMutations;
use super::policy::{HashPolicy, RequestMirrorPolicy, RetryPolicy};

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

/// `RouteAction.weighted_clusters`.
#[derive(Debug, Clone, PartialEq)]
pub struct WeightedClusters {
    pub clusters: Vec<ClusterWeight>,
    /// Sum of the weights (always > 0).
    pub total_weight: u64,
    /// `header_name`: a request header whose (single, integer) value replaces the
    /// random value of the pick.
    pub header_name: Option<String>,
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
        let request_headers = HeaderMutations::decode(
            d,
            &mut f,
            "request_headers_to_add",
            "request_headers_to_remove",
        );
        let response_headers = HeaderMutations::decode(
            d,
            &mut f,
            "response_headers_to_add",
            "response_headers_to_remove",
        );
        let host_rewrite_literal: String = f.or(d, "host_rewrite_literal", String::new());
        f.ignored(d, &["metadata_match", "typed_per_filter_config"]);
        f.finish(d);
        let target = match (name.is_empty(), header) {
            (false, None) => WeightedTarget::Name(name),
            (true, Some(h)) => WeightedTarget::Header(h),
            _ => {
                d.error(
                    ErrorKind::Invalid,
                    path,
                    line,
                    "set exactly one of `name` and `cluster_header`",
                );
                return None;
            }
        };
        Some(ClusterWeight {
            target,
            weight,
            request_headers,
            response_headers,
            host_rewrite_literal: (!host_rewrite_literal.is_empty())
                .then_some(host_rewrite_literal),
            line,
        })
    }
}

impl Decode for WeightedClusters {
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::of(d, node, path)?;
        let line = f.line();
        let clusters: Vec<ClusterWeight> = f.list(d, "clusters");
        let header_name = match f.take("header_name") {
            Some(n) => decode_header_name(d, n, &f.field_path("header_name")),
            None => None,
        };
        // Deprecated: Envoy now always sums the weights.
        f.ignored(d, &["total_weight", "runtime_key_prefix"]);
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
            d.error(
                ErrorKind::Invalid,
                path,
                line,
                "Sum of weights in the weighted_cluster must be greater than 0.",
            );
            return None;
        }
        if total_weight > u64::from(u32::MAX) {
            d.error(
                ErrorKind::Invalid,
                path,
                line,
                format!(
                    "The sum of weights of all weighted clusters exceeds {}",
                    u32::MAX
                ),
            );
            return None;
        }
        Some(WeightedClusters {
            clusters,
            total_weight,
            header_name,
        })
    }
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
    pub cluster_not_found_response_code: ClusterNotFoundResponseCode,
    pub prefix_rewrite: Option<String>,
    pub regex_rewrite: Option<RegexRewrite>,
    pub host_rewrite: HostRewrite,
    pub append_x_forwarded_host: bool,
    /// `None` when `0s` disables it; Envoy's default is 15 s.
    pub timeout: Option<Duration>,
    pub idle_timeout: IdleTimeout,
    /// Route-level policy; when absent the virtual host's applies (no merging).
    pub retry_policy: Option<RetryPolicy>,
    pub request_mirror_policies: Vec<RequestMirrorPolicy>,
    pub hash_policy: Vec<HashPolicy>,
    pub line: u32,
}

impl Decode for RouteAction {
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::of(d, node, path)?;
        let line = f.line();
        let cluster: Option<String> = f.opt(d, "cluster");
        let cluster_header_path = f.field_path("cluster_header");
        let cluster_header = f
            .take("cluster_header")
            .map(|n| decode_header_name(d, n, &cluster_header_path));
        let has_weighted = f.has("weighted_clusters");
        let weighted: Option<WeightedClusters> = f.opt(d, "weighted_clusters");
        let cluster_not_found_response_code = f.or(
            d,
            "cluster_not_found_response_code",
            ClusterNotFoundResponseCode::ServiceUnavailable,
        );
        let prefix_rewrite: String = f.or(d, "prefix_rewrite", String::new());
        let has_regex_rewrite = f.has("regex_rewrite");
        let regex_rewrite: Option<RegexRewrite> = f.opt(d, "regex_rewrite");
        let host_literal: String = f.or(d, "host_rewrite_literal", String::new());
        let auto_host: Option<bool> = f.opt(d, "auto_host_rewrite");
        let host_header_path = f.field_path("host_rewrite_header");
        let host_header = f
            .take("host_rewrite_header")
            .map(|n| decode_header_name(d, n, &host_header_path));
        let has_host_regex = f.has("host_rewrite_path_regex");
        let host_regex: Option<RegexRewrite> = f.opt(d, "host_rewrite_path_regex");
        let append_x_forwarded_host = f.or(d, "append_x_forwarded_host", false);
        let timeout: Duration = f.or(d, "timeout", DEFAULT_ROUTE_TIMEOUT);
        let idle: Option<Duration> = f.opt(d, "idle_timeout");
        let retry_policy: Option<RetryPolicy> = f.opt(d, "retry_policy");
        let request_mirror_policies = f.list(d, "request_mirror_policies");
        let hash_policy = f.list(d, "hash_policy");
        f.ignored(
            d,
            &[
                "priority",
                "max_stream_duration",
                "internal_redirect_policy",
                "metadata_match",
            ],
        );
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
                "rate_limits",
                "include_vh_rate_limits",
                "cors",
                "max_grpc_timeout",
                "grpc_timeout_offset",
                "upgrade_configs",
                "internal_redirect_action",
                "max_internal_redirects",
                "hedge_policy",
            ],
        );
        f.finish(d);

        let mut specifiers = Vec::new();
        if let Some(c) = cluster {
            if c.is_empty() {
                d.error(
                    ErrorKind::Invalid,
                    &format!("{path}.cluster"),
                    line,
                    "must not be empty",
                );
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
            cluster_not_found_response_code,
            prefix_rewrite: (!prefix_rewrite.is_empty()).then_some(prefix_rewrite),
            regex_rewrite: if has_regex_rewrite {
                Some(regex_rewrite?)
            } else {
                None
            },
            host_rewrite,
            append_x_forwarded_host,
            timeout: (!timeout.is_zero()).then_some(timeout),
            idle_timeout,
            retry_policy,
            request_mirror_policies,
            hash_policy,
            line,
        })
    }
}

proto_enum! {
    /// `RedirectAction.RedirectResponseCode`.
    pub enum RedirectResponseCode {
        MovedPermanently = ("MOVED_PERMANENTLY", 0),
        Found = ("FOUND", 1),
        SeeOther = ("SEE_OTHER", 2),
        TemporaryRedirect = ("TEMPORARY_REDIRECT", 3),
        PermanentRedirect = ("PERMANENT_REDIRECT", 4),
    }
}

impl RedirectResponseCode {
    pub fn status(self) -> u16 {
        match self {
            RedirectResponseCode::MovedPermanently => 301,
            RedirectResponseCode::Found => 302,
            RedirectResponseCode::SeeOther => 303,
            RedirectResponseCode::TemporaryRedirect => 307,
            RedirectResponseCode::PermanentRedirect => 308,
        }
    }
}

/// The scheme of the redirect URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SchemeRedirect {
    /// The request's `:scheme`.
    Keep,
    /// `https_redirect: true`
    Https,
    /// `scheme_redirect`
    Scheme(String),
}

/// The path of the redirect URL.
#[derive(Debug, Clone, PartialEq)]
pub enum PathRedirect {
    Keep,
    /// `path_redirect` (may carry its own query, which then wins and is never stripped).
    Path(String),
    /// `prefix_rewrite`: the matched prefix replaced.
    PrefixRewrite(String),
    RegexRewrite(RegexRewrite),
}

/// `config.route.v3.RedirectAction`.
#[derive(Debug, Clone, PartialEq)]
pub struct RedirectAction {
    pub scheme: SchemeRedirect,
    pub host_redirect: Option<String>,
    pub port_redirect: Option<u16>,
    pub path: PathRedirect,
    pub response_code: RedirectResponseCode,
    pub strip_query: bool,
}

impl Decode for RedirectAction {
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::of(d, node, path)?;
        let line = f.line();
        let https = f.or(d, "https_redirect", false);
        let scheme_redirect: String = f.or(d, "scheme_redirect", String::new());
        let host_redirect: String = f.or(d, "host_redirect", String::new());
        let port: u32 = f.or(d, "port_redirect", 0);
        let path_redirect: String = f.or(d, "path_redirect", String::new());
        let prefix_rewrite: String = f.or(d, "prefix_rewrite", String::new());
        let has_regex = f.has("regex_rewrite");
        let regex_rewrite: Option<RegexRewrite> = f.opt(d, "regex_rewrite");
        let response_code = f.or(d, "response_code", RedirectResponseCode::MovedPermanently);
        let strip_query = f.or(d, "strip_query", false);
        f.finish(d);
        let scheme = match (https, scheme_redirect.is_empty()) {
            (true, false) => {
                d.error(
                    ErrorKind::Invalid,
                    path,
                    line,
                    "set only one of `https_redirect` and `scheme_redirect`",
                );
                return None;
            }
            (true, true) => SchemeRedirect::Https,
            (false, false) => SchemeRedirect::Scheme(scheme_redirect),
            (false, true) => SchemeRedirect::Keep,
        };
        if port > 65535 {
            d.error(
                ErrorKind::Invalid,
                &format!("{path}.port_redirect"),
                line,
                format!("port {port} is not in 0..=65535"),
            );
            return None;
        }
        for (name, v) in [
            ("host_redirect", &host_redirect),
            ("path_redirect", &path_redirect),
            ("prefix_rewrite", &prefix_rewrite),
        ] {
            if v.bytes().any(|b| b.is_ascii_control()) {
                d.error(
                    ErrorKind::Invalid,
                    &format!("{path}.{name}"),
                    line,
                    "may not contain control characters",
                );
                return None;
            }
        }
        let set = [
            !path_redirect.is_empty(),
            !prefix_rewrite.is_empty(),
            has_regex,
        ]
        .iter()
        .filter(|b| **b)
        .count();
        if set > 1 {
            d.error(
                ErrorKind::Invalid,
                path,
                line,
                "set only one of `path_redirect`, `prefix_rewrite`, `regex_rewrite`",
            );
            return None;
        }
        let path_kind = if !path_redirect.is_empty() {
            PathRedirect::Path(path_redirect)
        } else if !prefix_rewrite.is_empty() {
            PathRedirect::PrefixRewrite(prefix_rewrite)
        } else if has_regex {
            PathRedirect::RegexRewrite(regex_rewrite?)
        } else {
            PathRedirect::Keep
        };
        Some(RedirectAction {
            scheme,
            host_redirect: (!host_redirect.is_empty()).then_some(host_redirect),
            port_redirect: (port != 0).then_some(port as u16),
            path: path_kind,
            response_code,
            strip_query,
        })
    }
}

/// `config.route.v3.DirectResponseAction`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectResponseAction {
    /// 200..=599
    pub status: u16,
    /// `None` when no body is configured.
    pub body: Option<Vec<u8>>,
    pub line: u32,
}

impl Decode for DirectResponseAction {
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::of(d, node, path)?;
        let line = f.line();
        let status: Option<u32> = f.req(d, "status");
        let body = match f.take("body") {
            Some(n) => decode_data_source(d, n, &f.field_path("body")),
            None => None,
        };
        f.unsupported(d, &["body_format"]);
        f.finish(d);
        let status = status?;
        if !(200..600).contains(&status) {
            d.error(
                ErrorKind::Invalid,
                &format!("{path}.status"),
                line,
                format!("status {status} is not in 200..=599"),
            );
            return None;
        }
        Some(DirectResponseAction {
            status: status as u16,
            body,
            line,
        })
    }
}

/// `core.v3.DataSource`: `inline_string`, `inline_bytes` (base64) or `filename` (read
/// now, at load).
fn decode_data_source(d: &mut Decoder, node: &Node, path: &str) -> Option<Vec<u8>> {
    let mut f = Fields::of(d, node, path)?;
    let line = f.line();
    let inline_string: Option<String> = f.opt(d, "inline_string");
    let inline_bytes: Option<String> = f.opt(d, "inline_bytes");
    let filename: Option<String> = f.opt(d, "filename");
    f.unsupported(d, &["environment_variable", "watched_directory"]);
    f.finish(d);
    let count = [
        inline_string.is_some(),
        inline_bytes.is_some(),
        filename.is_some(),
    ]
    .iter()
    .filter(|b| **b)
    .count();
    if count != 1 {
        d.error(
            ErrorKind::Invalid,
            path,
            line,
            "set exactly one of `inline_string`, `inline_bytes`, `filename`",
        );
        return None;
    }
    if let Some(s) = inline_string {
        return Some(s.into_bytes());
    }
    if let Some(b) = inline_bytes {
        return match decode_base64(&b) {
            Some(v) => Some(v),
            None => {
                d.error(
                    ErrorKind::Invalid,
                    &format!("{path}.inline_bytes"),
                    line,
                    "not valid base64",
                );
                None
            }
        };
    }
    let name = filename?;
    if name.is_empty() {
        d.error(
            ErrorKind::Invalid,
            &format!("{path}.filename"),
            line,
            "must not be empty",
        );
        return None;
    }
    match std::fs::read(&name) {
        Ok(v) => Some(v),
        Err(e) => {
            d.error(
                ErrorKind::Invalid,
                &format!("{path}.filename"),
                line,
                format!("cannot read `{name}`: {e}"),
            );
            None
        }
    }
}

/// proto3 JSON `bytes`: standard or URL-safe base64, padding optional.
pub fn decode_base64(s: &str) -> Option<Vec<u8>> {
    let s = s.trim_end_matches('=');
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for b in s.bytes() {
        let v = match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    // A single leftover 6-bit group cannot encode a byte.
    if bits >= 6 {
        return None;
    }
    Some(out)
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
            found.push(
                f.opt::<RouteAction>(d, "route")
                    .map(|r| Action::Route(Box::new(r))),
            );
        } else {
            f.take("route");
        }
        if f.has("redirect") {
            found.push(f.opt::<RedirectAction>(d, "redirect").map(Action::Redirect));
        } else {
            f.take("redirect");
        }
        if f.has("direct_response") {
            found.push(
                f.opt::<DirectResponseAction>(d, "direct_response")
                    .map(Action::DirectResponse),
            );
        } else {
            f.take("direct_response");
        }
        f.unsupported(d, &["filter_action", "non_forwarding_action"]);
        match found.len() {
            1 => found.pop()?,
            0 => {
                d.error(
                    ErrorKind::Missing,
                    &path,
                    line,
                    "a route needs one of `route`, `redirect`, `direct_response`",
                );
                None
            }
            _ => {
                d.error(
                    ErrorKind::Invalid,
                    &path,
                    line,
                    "set only one of `route`, `redirect`, `direct_response`",
                );
                None
            }
        }
    }
}
