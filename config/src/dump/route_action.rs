//! Dump of `RouteAction` (forwarding to a cluster) and the policies it carries: weighted
//! clusters, retry (with back-off), request mirroring and hashing.
//!
//! `timeout` is written `0s` when disabled; `idle_timeout` is absent when the HCM's
//! `stream_idle_timeout` applies and `0s` when disabled (`max_stream_duration` likewise); `per_try_timeout` and
//! `per_try_idle_timeout` are absent when unset (each try is then bounded by the route
//! timeout only). The retry back-off and a mirror's `runtime_fraction` are written with
//! Envoy's defaults (25 ms base, 10 x base cap; 100 %) when not configured.

use super::core::with_headers;
use super::{enum_name, list, Dump, Json};
use crate::route::{
    ClusterSpecifier, ClusterWeight, HashPolicy, HashPolicyKind, HedgePolicy, HostRewrite, IdleTimeout,
    InternalRedirectPolicy, InternalRedirectPredicate, MirrorTarget, RequestMirrorPolicy, RetryBackOff, RetryOn,
    RetryPolicy, RouteAction, RouteUpgradeConfig, WeightedClusters, WeightedTarget,
};

impl Dump for RouteAction {
    fn dump(&self) -> Json {
        let j = match &self.cluster {
            ClusterSpecifier::Cluster(c) => Json::obj().with("cluster", c),
            ClusterSpecifier::ClusterHeader(h) => Json::obj().with("cluster_header", h),
            ClusterSpecifier::Weighted(w) => Json::obj().with("weighted_clusters", w.dump()),
        };
        let j = j
            .with("cluster_not_found_response_code", enum_name(self.cluster_not_found_response_code))
            .with_opt("prefix_rewrite", self.prefix_rewrite.as_ref())
            .with_opt("regex_rewrite", self.regex_rewrite.as_ref().map(Dump::dump));
        let j = match &self.host_rewrite {
            HostRewrite::None => j,
            HostRewrite::Literal(h) => j.with("host_rewrite_literal", h),
            HostRewrite::Auto => j.with("auto_host_rewrite", true),
            HostRewrite::Header(h) => j.with("host_rewrite_header", h),
            HostRewrite::PathRegex(r) => j.with("host_rewrite_path_regex", r.dump()),
        };
        let j = j
            .with("append_x_forwarded_host", self.append_x_forwarded_host)
            .with("timeout", self.timeout.unwrap_or_default());
        let j = match self.idle_timeout {
            IdleTimeout::Inherit => j,
            IdleTimeout::Disabled => j.with("idle_timeout", std::time::Duration::ZERO),
            IdleTimeout::After(t) => j.with("idle_timeout", t),
        };
        let msd = match self.max_stream_duration {
            IdleTimeout::Inherit => None,
            IdleTimeout::Disabled => Some(Json::obj().with("max_stream_duration", std::time::Duration::ZERO)),
            IdleTimeout::After(t) => Some(Json::obj().with("max_stream_duration", t)),
        };
        let msd = match (msd, self.grpc_timeout_header) {
            (m, Some(g)) => Some(
                m.unwrap_or_else(Json::obj)
                    .with("grpc_timeout_header_max", g.max)
                    .with_opt("grpc_timeout_header_offset", g.offset),
            ),
            (m, None) => m,
        };
        let j = j.with_opt("max_stream_duration", msd);
        j.with_opt("retry_policy", self.retry_policy.as_ref().map(Dump::dump))
            .with_opt("hedge_policy", self.hedge_policy.as_ref().map(Dump::dump))
            .with("request_mirror_policies", list(&self.request_mirror_policies))
            .with("hash_policy", list(&self.hash_policy))
            .with("upgrade_configs", list(&self.upgrade_configs))
            .with_opt("cors", self.cors.as_ref().map(Dump::dump))
            .with("rate_limits", list(&self.rate_limits))
            .with("include_vh_rate_limits", self.include_vh_rate_limits)
            .with_opt("internal_redirect_policy", self.internal_redirect_policy.as_ref().map(Dump::dump))
    }
}

/// Written as `internal_redirect_policy` also when the deprecated
/// `internal_redirect_action` built it.
impl Dump for InternalRedirectPolicy {
    fn dump(&self) -> Json {
        let predicates: Vec<Json> = self
            .predicates
            .iter()
            .map(|p| {
                let tc = Json::obj().with("@type", format!("type.googleapis.com/{}", p.type_name()));
                let tc = match p {
                    InternalRedirectPredicate::AllowListedRoutes(names) => {
                        tc.with("allowed_route_names", names.clone())
                    }
                    _ => tc,
                };
                Json::obj().with("name", p.name()).with("typed_config", tc)
            })
            .collect();
        Json::obj()
            .with("max_internal_redirects", self.max_internal_redirects)
            .with(
                "redirect_response_codes",
                self.redirect_response_codes.iter().map(|c| u32::from(*c)).collect::<Vec<_>>(),
            )
            .with("predicates", predicates)
            .with("allow_cross_scheme_redirect", self.allow_cross_scheme_redirect)
            .with("response_headers_to_copy", self.response_headers_to_copy.clone())
    }
}

/// `enabled` is always written (default true); `connect_config` only when set.
impl Dump for RouteUpgradeConfig {
    fn dump(&self) -> Json {
        let j = Json::obj().with("upgrade_type", &self.upgrade_type).with("enabled", self.enabled);
        match self.connect_config {
            Some(_) => j.with("connect_config", Json::obj()),
            None => j,
        }
    }
}

/// The weights as configured; Envoy's deprecated `total_weight` is not written (the
/// weights are summed).
impl Dump for WeightedClusters {
    fn dump(&self) -> Json {
        Json::obj()
            .with("clusters", list(&self.clusters))
            .with_opt("header_name", self.header_name.as_ref())
            .with_opt("runtime_key_prefix", self.runtime_key_prefix.as_ref())
    }
}

impl Dump for ClusterWeight {
    fn dump(&self) -> Json {
        let j = match &self.target {
            WeightedTarget::Name(n) => Json::obj().with("name", n),
            WeightedTarget::Header(h) => Json::obj().with("cluster_header", h),
        };
        let j = with_headers(j.with("weight", self.weight), "request", &self.request_headers);
        with_headers(j, "response", &self.response_headers)
            .with_opt("host_rewrite_literal", self.host_rewrite_literal.as_ref())
    }
}

/// `retry_on` as Envoy's comma-separated condition names, in a fixed order.
fn retry_on(flags: RetryOn) -> String {
    let names: Vec<&str> = RetryOn::NAMES.iter().filter(|(_, f)| flags.contains(*f)).map(|(n, _)| *n).collect();
    names.join(",")
}

impl Dump for HedgePolicy {
    fn dump(&self) -> Json {
        Json::obj().with("initial_requests", 1u32).with("hedge_on_per_try_timeout", self.hedge_on_per_try_timeout)
    }
}

impl Dump for RetryPolicy {
    fn dump(&self) -> Json {
        Json::obj()
            .with("retry_on", retry_on(self.retry_on))
            .with("num_retries", self.num_retries)
            .with_opt("per_try_timeout", self.per_try_timeout)
            .with_opt("per_try_idle_timeout", self.per_try_idle_timeout)
            .with("retry_back_off", self.retry_back_off.dump())
            .with(
                "retriable_status_codes",
                self.retriable_status_codes.iter().map(|c| u32::from(*c)).collect::<Vec<_>>(),
            )
            .with("retriable_headers", list(&self.retriable_headers))
            .with("retriable_request_headers", list(&self.retriable_request_headers))
            .with(
                "retry_host_predicate",
                self.retry_host_predicate
                    .iter()
                    .map(|p| {
                        let tc = Json::obj().with("@type", format!("type.googleapis.com/{}", p.type_name()));
                        Json::obj().with("name", p.name()).with("typed_config", tc)
                    })
                    .collect::<Vec<_>>(),
            )
            .with("host_selection_retry_max_attempts", u64::from(self.host_selection_retry_max_attempts))
    }
}

impl Dump for RetryBackOff {
    fn dump(&self) -> Json {
        Json::obj().with("base_interval", self.base_interval).with("max_interval", self.max_interval)
    }
}

impl Dump for RequestMirrorPolicy {
    fn dump(&self) -> Json {
        let j = match &self.target {
            MirrorTarget::Cluster(c) => Json::obj().with("cluster", c),
            MirrorTarget::ClusterHeader(h) => Json::obj().with("cluster_header", h),
        };
        j.with("runtime_fraction", self.fraction.dump())
            .with("disable_shadow_host_suffix_append", self.disable_shadow_host_suffix_append)
            .with_opt("host_rewrite_literal", self.host_rewrite_literal.as_ref())
    }
}

impl Dump for HashPolicy {
    fn dump(&self) -> Json {
        let j = match &self.kind {
            HashPolicyKind::Header { name, regex_rewrite } => Json::obj().with(
                "header",
                Json::obj().with("header_name", name).with_opt("regex_rewrite", regex_rewrite.as_ref().map(Dump::dump)),
            ),
            HashPolicyKind::Cookie { name, ttl, path } => {
                Json::obj().with("cookie", Json::obj().with("name", name).with_opt("ttl", *ttl).with("path", path))
            }
            HashPolicyKind::SourceIp => Json::obj().with("connection_properties", Json::obj().with("source_ip", true)),
            HashPolicyKind::QueryParameter { name } => {
                Json::obj().with("query_parameter", Json::obj().with("name", name))
            }
        };
        j.with("terminal", self.terminal)
    }
}
