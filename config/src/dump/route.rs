//! Dump of the route configuration: virtual hosts, routes, their matches, redirects and
//! direct responses, and header mutations at every level. Route actions (forwarding to a
//! cluster) are in `route_action.rs`.

use super::core::with_headers;
use super::{base64, enum_name, list, Dump, Json};
use crate::route::{
    Action, DirectResponseAction, PathRedirect, PathSpecifier, RedirectAction, Route, RouteConfiguration, RouteMatch,
    SchemeRedirect, VirtualCluster, VirtualHost,
};

/// `validate_clusters` is written as the value in force: an inline route configuration
/// (the only kind sluice has) validates its clusters unless told not to.
impl Dump for RouteConfiguration {
    fn dump(&self) -> Json {
        let j = Json::obj()
            .with("name", &self.name)
            .with("virtual_hosts", list(&self.virtual_hosts))
            .with("validate_clusters", self.validate_clusters.unwrap_or(true));
        let j = with_headers(j, "request", &self.request_headers);
        with_headers(j, "response", &self.response_headers)
            .with("internal_only_headers", self.internal_only_headers.clone())
            .with("most_specific_header_mutations_wins", self.most_specific_header_mutations_wins)
            .with("max_direct_response_body_size_bytes", self.max_direct_response_body_size_bytes)
            .with("ignore_port_in_host_matching", self.ignore_port_in_host_matching)
            .with("request_mirror_policies", list(&self.request_mirror_policies))
            .with("typed_per_filter_config", self.typed_per_filter_config.dump())
    }
}

impl Dump for VirtualHost {
    fn dump(&self) -> Json {
        let j = Json::obj()
            .with("name", &self.name)
            .with("domains", self.domains.clone())
            .with("routes", list(&self.routes))
            .with("require_tls", enum_name(self.require_tls));
        let j = with_headers(j, "request", &self.request_headers);
        with_headers(j, "response", &self.response_headers)
            .with_opt("retry_policy", self.retry_policy.as_ref().map(Dump::dump))
            .with_opt("hedge_policy", self.hedge_policy.as_ref().map(Dump::dump))
            .with("request_mirror_policies", list(&self.request_mirror_policies))
            .with("include_request_attempt_count", self.include_request_attempt_count)
            .with("include_attempt_count_in_response", self.include_attempt_count_in_response)
            .with("virtual_clusters", list(&self.virtual_clusters))
            .with("typed_per_filter_config", self.typed_per_filter_config.dump())
            .with_opt("cors", self.cors.as_ref().map(Dump::dump))
            .with("rate_limits", list(&self.rate_limits))
    }
}

impl Dump for VirtualCluster {
    fn dump(&self) -> Json {
        Json::obj().with("name", &self.name).with("headers", list(&self.headers))
    }
}

impl Dump for Route {
    fn dump(&self) -> Json {
        let j = Json::obj().with("name", &self.name).with("match", self.r#match.dump());
        let j = match &self.action {
            Action::Route(a) => j.with("route", a.dump()),
            Action::Redirect(r) => j.with("redirect", r.dump()),
            Action::DirectResponse(d) => j.with("direct_response", d.dump()),
        };
        let j = with_headers(j, "request", &self.request_headers);
        with_headers(j, "response", &self.response_headers)
            .with("typed_per_filter_config", self.typed_per_filter_config.dump())
            .with_opt("decorator", self.decorator.as_ref().map(Dump::dump))
            .with_opt("tracing", self.tracing.as_ref().map(Dump::dump))
    }
}

impl Dump for RouteMatch {
    fn dump(&self) -> Json {
        let j = match &self.path {
            PathSpecifier::Prefix(p) => Json::obj().with("prefix", p),
            PathSpecifier::Path(p) => Json::obj().with("path", p),
            PathSpecifier::SafeRegex(r) => Json::obj().with("safe_regex", r.dump()),
            PathSpecifier::PathSeparatedPrefix(p) => Json::obj().with("path_separated_prefix", p),
            PathSpecifier::ConnectMatcher => Json::obj().with("connect_matcher", Json::obj()),
        };
        let j = j
            .with("case_sensitive", self.case_sensitive)
            .with("headers", list(&self.headers))
            .with("query_parameters", list(&self.query_parameters))
            .with_opt("runtime_fraction", self.runtime_fraction.as_ref().map(Dump::dump))
            .with("dynamic_metadata", list(&self.dynamic_metadata));
        // `grpc: {}` is a presence flag: the empty message when set, absent otherwise.
        if self.grpc {
            j.with("grpc", Json::obj())
        } else {
            j
        }
    }
}

impl Dump for RedirectAction {
    fn dump(&self) -> Json {
        let j = match &self.scheme {
            SchemeRedirect::Keep => Json::obj(),
            SchemeRedirect::Https => Json::obj().with("https_redirect", true),
            SchemeRedirect::Scheme(s) => Json::obj().with("scheme_redirect", s),
        };
        let j = j
            .with_opt("host_redirect", self.host_redirect.as_ref())
            .with_opt("port_redirect", self.port_redirect.map(u32::from));
        let j = match &self.path {
            PathRedirect::Keep => j,
            PathRedirect::Path(p) => j.with("path_redirect", p),
            PathRedirect::PrefixRewrite(p) => j.with("prefix_rewrite", p),
            PathRedirect::RegexRewrite(r) => j.with("regex_rewrite", r.dump()),
        };
        j.with("response_code", enum_name(self.response_code)).with("strip_query", self.strip_query)
    }
}

/// The body as loaded (a `filename` body was read at load, so it is written inline):
/// `inline_string` when it is UTF-8, else base64 `inline_bytes`.
impl Dump for DirectResponseAction {
    fn dump(&self) -> Json {
        let body = self.body.as_ref().map(|b| match std::str::from_utf8(b) {
            Ok(s) => Json::obj().with("inline_string", s),
            Err(_) => Json::obj().with("inline_bytes", base64(b)),
        });
        Json::obj().with("status", u32::from(self.status)).with_opt("body", body)
    }
}
