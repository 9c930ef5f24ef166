//! Dump of the HTTP filters' configs (cors, csrf, local_ratelimit, rbac) and of
//! `typed_per_filter_config`, in the form they decode from.

use super::{any, enum_name, list, Dump, Json};
use crate::core::RuntimeFractionalPercent;
use crate::filters::cors::{CorsPolicy, CORS_POLICY_TYPE};
use crate::filters::csrf::{CsrfPolicy, CSRF_TYPE};
use crate::filters::header_to_metadata::{HeaderToMetadata, KeyValuePair, Rule, Selector, HEADER_TO_METADATA_TYPE};
use crate::filters::health_check::HealthCheck;
use crate::filters::jwt_authn::{JwtAuthentication, JwtPerRoute, JWT_PER_ROUTE_TYPE};
use crate::filters::local_ratelimit::{LocalRateLimit, TokenBucket, LOCAL_RATE_LIMIT_TYPE};
use crate::filters::rbac::{
    Permission, Policy, Principal, Rbac, RbacEngine, RbacPerRoute, RbacRules, RBAC_PER_ROUTE_TYPE,
};
use crate::filters::rbac_matcher::{MatcherAction, Predicate, RbacMatcher};
use crate::filters::{PerFilterConfigs, PerRouteConfig};

fn runtime_percent(p: &RuntimeFractionalPercent) -> Json {
    p.dump()
}

impl Dump for CorsPolicy {
    fn dump(&self) -> Json {
        Json::obj()
            .with("allow_origin_string_match", list(&self.allow_origin_string_match))
            .with("allow_methods", &self.allow_methods)
            .with("allow_headers", &self.allow_headers)
            .with("expose_headers", &self.expose_headers)
            .with("max_age", &self.max_age)
            .with_opt("allow_credentials", self.allow_credentials)
            .with_opt("allow_private_network_access", self.allow_private_network_access)
            .with_opt("forward_not_matching_preflights", self.forward_not_matching_preflights)
            .with_opt("filter_enabled", self.filter_enabled.as_ref().map(runtime_percent))
            .with_opt("shadow_enabled", self.shadow_enabled.as_ref().map(runtime_percent))
    }
}

impl Dump for CsrfPolicy {
    fn dump(&self) -> Json {
        Json::obj()
            .with("filter_enabled", runtime_percent(&self.filter_enabled))
            .with_opt("shadow_enabled", self.shadow_enabled.as_ref().map(runtime_percent))
            .with("additional_origins", list(&self.additional_origins))
    }
}

impl Dump for HeaderToMetadata {
    fn dump(&self) -> Json {
        Json::obj()
            .with("request_rules", list(&self.request_rules))
            .with("response_rules", list(&self.response_rules))
            .with("stat_prefix", &self.stat_prefix)
    }
}

impl Dump for Rule {
    fn dump(&self) -> Json {
        let j = match &self.selector {
            Selector::Header(h) => Json::obj().with("header", h),
            Selector::Cookie(c) => Json::obj().with("cookie", c),
        };
        j.with_opt("on_header_present", self.on_header_present.as_ref().map(Dump::dump))
            .with_opt("on_header_missing", self.on_header_missing.as_ref().map(Dump::dump))
            .with("remove", self.remove)
    }
}

impl Dump for KeyValuePair {
    fn dump(&self) -> Json {
        Json::obj()
            .with("metadata_namespace", &self.metadata_namespace)
            .with("key", &self.key)
            .with("value", &self.value)
            .with_opt("regex_value_rewrite", self.regex_value_rewrite.as_ref().map(Dump::dump))
            .with("type", enum_name(self.r#type))
            .with("encode", enum_name(self.encode))
    }
}

impl Dump for HealthCheck {
    fn dump(&self) -> Json {
        Json::obj().with("pass_through_mode", self.pass_through_mode).with("headers", list(&self.headers))
    }
}

impl Dump for TokenBucket {
    fn dump(&self) -> Json {
        Json::obj()
            .with("max_tokens", self.max_tokens)
            .with("tokens_per_fill", self.tokens_per_fill)
            .with("fill_interval", self.fill_interval)
    }
}

impl Dump for LocalRateLimit {
    fn dump(&self) -> Json {
        Json::obj()
            .with("stat_prefix", &self.stat_prefix)
            .with("status", Json::obj().with("code", self.status as u32))
            .with_opt("token_bucket", self.token_bucket.as_ref().map(Dump::dump))
            .with_opt("filter_enabled", self.filter_enabled.as_ref().map(runtime_percent))
            .with_opt("filter_enforced", self.filter_enforced.as_ref().map(runtime_percent))
            .with("request_headers_to_add_when_not_enforced", list(&self.request_headers_to_add_when_not_enforced))
            .with("response_headers_to_add", list(&self.response_headers_to_add))
            .with("enable_x_ratelimit_headers", enum_name(self.enable_x_ratelimit_headers))
    }
}

impl Dump for Permission {
    fn dump(&self) -> Json {
        let j = Json::obj();
        match self {
            Permission::And(r) => j.with("and_rules", Json::obj().with("rules", list(r))),
            Permission::Or(r) => j.with("or_rules", Json::obj().with("rules", list(r))),
            Permission::Any => j.with("any", true),
            Permission::Header(h) => j.with("header", h.dump()),
            Permission::UrlPath(m) => j.with("url_path", Json::obj().with("path", m.dump())),
            Permission::DestinationIp(c) => j.with("destination_ip", c.dump()),
            Permission::DestinationPort(p) => j.with("destination_port", *p),
            Permission::DestinationPortRange(s, e) => {
                j.with("destination_port_range", Json::obj().with("start", *s).with("end", *e))
            }
            Permission::Not(p) => j.with("not_rule", p.dump()),
            Permission::RequestedServerName(m) => j.with("requested_server_name", m.dump()),
        }
    }
}

impl Dump for Principal {
    fn dump(&self) -> Json {
        let j = Json::obj();
        match self {
            Principal::And(r) => j.with("and_ids", Json::obj().with("ids", list(r))),
            Principal::Or(r) => j.with("or_ids", Json::obj().with("ids", list(r))),
            Principal::Any => j.with("any", true),
            Principal::Authenticated(m) => {
                j.with("authenticated", Json::obj().with_opt("principal_name", m.as_ref().map(Dump::dump)))
            }
            Principal::DirectRemoteIp(c) => j.with("direct_remote_ip", c.dump()),
            Principal::RemoteIp(c) => j.with("remote_ip", c.dump()),
            Principal::Header(h) => j.with("header", h.dump()),
            Principal::UrlPath(m) => j.with("url_path", Json::obj().with("path", m.dump())),
            Principal::Not(p) => j.with("not_id", p.dump()),
        }
    }
}

impl Dump for Policy {
    fn dump(&self) -> Json {
        Json::obj().with("permissions", list(&self.permissions)).with("principals", list(&self.principals))
    }
}

impl Dump for RbacRules {
    fn dump(&self) -> Json {
        let policies = Json::Obj(self.policies.iter().map(|p| (p.name.clone(), p.dump())).collect());
        Json::obj().with("action", enum_name(self.action)).with("policies", policies)
    }
}

fn predicate(p: &Predicate) -> Json {
    match p {
        Predicate::Header { name, value } => {
            let input = any(
                "envoy.type.matcher.v3.HttpRequestHeaderMatchInput",
                Json::obj().with("header_name", name.as_str()),
            );
            Json::obj().with(
                "single_predicate",
                Json::obj()
                    .with("input", Json::obj().with("name", "request-headers").with("typed_config", input))
                    .with("value_match", value.dump()),
            )
        }
        Predicate::Or(v) => {
            Json::obj().with("or_matcher", Json::obj().with("predicate", Json::Arr(v.iter().map(predicate).collect())))
        }
        Predicate::And(v) => {
            Json::obj().with("and_matcher", Json::obj().with("predicate", Json::Arr(v.iter().map(predicate).collect())))
        }
        Predicate::Not(p) => Json::obj().with("not_matcher", predicate(p)),
    }
}

fn matcher_action(a: &MatcherAction) -> Json {
    let action = any(
        "envoy.config.rbac.v3.Action",
        Json::obj().with("name", a.name.as_str()).with("action", enum_name(a.action)),
    );
    Json::obj().with("action", Json::obj().with("name", "action").with("typed_config", action))
}

impl Dump for RbacMatcher {
    fn dump(&self) -> Json {
        let matchers: Vec<Json> = self
            .matchers
            .iter()
            .map(|m| {
                Json::obj().with("predicate", predicate(&m.predicate)).with("on_match", matcher_action(&m.on_match))
            })
            .collect();
        Json::obj()
            .with("matcher_list", Json::obj().with("matchers", Json::Arr(matchers)))
            .with_opt("on_no_match", self.on_no_match.as_ref().map(matcher_action))
    }
}

/// `rules` or `matcher` (and the shadow pair), as configured.
fn with_engine(j: Json, rules: &str, matcher: &str, e: Option<&RbacEngine>) -> Json {
    match e {
        Some(RbacEngine::Rules(r)) => j.with(rules, r.dump()),
        Some(RbacEngine::Matcher(m)) => j.with(matcher, m.dump()),
        None => j,
    }
}

impl Dump for Rbac {
    fn dump(&self) -> Json {
        let j = with_engine(Json::obj(), "rules", "matcher", self.rules.as_ref());
        with_engine(j, "shadow_rules", "shadow_matcher", self.shadow_rules.as_ref())
            .with("rules_stat_prefix", &self.rules_stat_prefix)
            .with("shadow_rules_stat_prefix", &self.shadow_rules_stat_prefix)
    }
}

impl Dump for RbacPerRoute {
    fn dump(&self) -> Json {
        Json::obj().with_opt("rbac", self.rbac.as_ref().map(Dump::dump))
    }
}

/// Each entry as a `FilterConfig` (which says `disabled` and holds the config).
impl Dump for PerFilterConfigs {
    fn dump(&self) -> Json {
        Json::Obj(
            self.0
                .iter()
                .map(|e| {
                    let config = match &e.config {
                        Some(PerRouteConfig::Buffer(c)) => any(crate::filters::buffer::BUFFER_PER_ROUTE_TYPE, c.dump()),
                        Some(PerRouteConfig::Compressor(c)) => {
                            any(crate::filters::compressor::COMPRESSOR_PER_ROUTE_TYPE, c.dump())
                        }
                        Some(PerRouteConfig::Cors(c)) => any(CORS_POLICY_TYPE, c.dump()),
                        Some(PerRouteConfig::Csrf(c)) => any(CSRF_TYPE, c.dump()),
                        Some(PerRouteConfig::ExtAuthz(c)) => {
                            any(crate::filters::ext_authz::EXT_AUTHZ_PER_ROUTE_TYPE, c.dump())
                        }
                        Some(PerRouteConfig::HeaderToMetadata(c)) => any(HEADER_TO_METADATA_TYPE, c.dump()),
                        Some(PerRouteConfig::LocalRateLimit(c)) => any(LOCAL_RATE_LIMIT_TYPE, c.dump()),
                        Some(PerRouteConfig::Rbac(c)) => any(RBAC_PER_ROUTE_TYPE, c.dump()),
                        Some(PerRouteConfig::JwtAuthn(c)) => any(JWT_PER_ROUTE_TYPE, c.dump()),
                        Some(PerRouteConfig::Lua(c)) => any(crate::filters::lua::LUA_PER_ROUTE_TYPE, c.dump()),
                        Some(PerRouteConfig::RateLimit(c)) => {
                            any(crate::filters::ratelimit::RATE_LIMIT_PER_ROUTE_TYPE, c.dump())
                        }
                        None => Json::obj(),
                    };
                    let fc = Json::obj().with("disabled", e.disabled);
                    let fc = if e.disabled { fc } else { fc.with("config", config) };
                    (e.name.clone(), any("envoy.config.route.v3.FilterConfig", fc))
                })
                .collect(),
        )
    }
}

/// The message as written, without its `@type` (every field sluice accepts changes
/// behaviour, so the written form is the effective one).
impl Dump for JwtAuthentication {
    fn dump(&self) -> Json {
        match &self.source {
            Json::Obj(fields) => Json::Obj(fields.iter().filter(|(k, _)| k != "@type").cloned().collect()),
            other => other.clone(),
        }
    }
}

impl Dump for JwtPerRoute {
    fn dump(&self) -> Json {
        match self {
            JwtPerRoute::Disabled => Json::obj().with("disabled", true),
            JwtPerRoute::RequirementName(n) => Json::obj().with("requirement_name", n.as_str()),
        }
    }
}
