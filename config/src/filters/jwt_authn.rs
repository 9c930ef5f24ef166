//! `extensions.filters.http.jwt_authn.v3.JwtAuthentication` and `PerRouteConfig`:
//! providers (issuer, audiences, where the token is, where its keys are, what to do
//! with a good one), requirement trees (`provider_name`, `provider_and_audiences`,
//! `requires_any`, `requires_all`, `allow_missing`, `allow_missing_or_failed`),
//! path rules and named requirements for routes.
//!
//! Names that must refer to something are checked here, with Envoy's messages:
//! "Required provider ['x'] is not configured." and "Wrong requirement_name: x. It
//! should be one of [a,b]". Keys come from `local_jwks` or `remote_jwks` (`http_uri`
//! `cache_duration` and `retry_policy`; `async_fetch` is rejected); so are the
//! features that need filter state or the route cache
//! (`filter_state_rules`, `clear_route_cache`) and the
//! provider fields whose failure statuses sluice cannot confirm against Envoy
//! (`subjects`, `failed_status_in_metadata`).

use std::time::Duration;

use crate::decode::{Decode, Decoder, Fields};
use crate::dump::Json;
use crate::error::ErrorKind;
use crate::matcher::decode_header_name;
use crate::node::{Node, Value};
use crate::route::RouteMatch;
use crate::tls::DataSource;

pub const JWT_AUTHN_TYPE: &str = "envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication";
pub const JWT_PER_ROUTE_TYPE: &str = "envoy.extensions.filters.http.jwt_authn.v3.PerRouteConfig";

/// `JwtHeader`: a header the token is read from, after `value_prefix`.
#[derive(Debug, Clone, PartialEq)]
pub struct JwtHeader {
    /// Lower-cased.
    pub name: String,
    pub value_prefix: String,
}

impl Decode for JwtHeader {
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::of(d, node, path)?;
        let name = f.take("name").and_then(|n| decode_header_name(d, n, &format!("{path}.name")));
        let value_prefix: String = f.or(d, "value_prefix", String::new());
        let line = f.line();
        f.finish(d);
        let Some(name) = name else {
            d.error(ErrorKind::Missing, &format!("{path}.name"), line, "required field is missing");
            return None;
        };
        Some(JwtHeader { name, value_prefix })
    }
}

/// `JwtClaimToHeader`.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimToHeader {
    /// Lower-cased.
    pub header_name: String,
    /// Dot-separated path into the payload (`claim.nested.key`).
    pub claim_name: String,
}

impl Decode for ClaimToHeader {
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::of(d, node, path)?;
        let line = f.line();
        let header_name = f.take("header_name").and_then(|n| decode_header_name(d, n, &format!("{path}.header_name")));
        let claim_name: Option<String> = f.req(d, "claim_name");
        f.finish(d);
        let Some(header_name) = header_name else {
            d.error(ErrorKind::Missing, &format!("{path}.header_name"), line, "required field is missing");
            return None;
        };
        let claim_name = claim_name?;
        if claim_name.is_empty() {
            d.error(ErrorKind::Invalid, &format!("{path}.claim_name"), line, "must not be empty");
            return None;
        }
        Some(ClaimToHeader { header_name, claim_name })
    }
}

/// `JwtCacheConfig`: a per-worker LRU of verified tokens (0 in the config: Envoy's
/// defaults, 100 entries and 4096-byte tokens).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JwtCacheConfig {
    pub jwt_cache_size: u32,
    /// Longer tokens are verified every time, never cached.
    pub jwt_max_token_size: u32,
}

impl Decode for JwtCacheConfig {
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::of(d, node, path)?;
        let size: u32 = f.or(d, "jwt_cache_size", 0u32);
        let max: u32 = f.or(d, "jwt_max_token_size", 0u32);
        f.finish(d);
        Some(JwtCacheConfig {
            jwt_cache_size: if size == 0 { 100 } else { size },
            jwt_max_token_size: if max == 0 { 4096 } else { max },
        })
    }
}

/// `RemoteJwks`: keys fetched with a GET of `uri` through `cluster`.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteJwksConfig {
    /// `http_uri.uri`.
    pub uri: String,
    /// `http_uri.cluster`.
    pub cluster: String,
    /// `http_uri.timeout`.
    pub timeout: Duration,
    /// `cache_duration` (Envoy's default: 600 s).
    pub cache_duration: Duration,
    /// `retry_policy`: the fetch is retried.
    pub retry_policy: Option<JwksRetryPolicy>,
}

/// `remote_jwks.retry_policy` (`config.core.v3.RetryPolicy`) as Envoy applies it to the
/// fetch (`Http::Utility::convertCoreToRouteRetryPolicy` with `retry_on`
/// "5xx,gateway-error,connect-failure,reset"): `num_retries` (default 1) retries with a
/// fully jittered exponential back-off (`retry_back_off`, default 1 s base and a cap
/// of 10 x base), each try limited to the cap (`per_try_timeout` = `max_interval`),
/// all within `http_uri.timeout`. The core fields that conversion drops (`retry_on`,
/// `retry_priority`, `retry_host_predicate`, `host_selection_retry_max_attempts`)
/// are rejected here.
#[derive(Debug, Clone, PartialEq)]
pub struct JwksRetryPolicy {
    pub num_retries: u32,
    pub back_off: crate::route::RetryBackOff,
}

/// The conditions Envoy retries a JWKS fetch on.
pub const JWKS_RETRY_ON: &str = "5xx,gateway-error,connect-failure,reset";

impl Decode for JwksRetryPolicy {
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::of(d, node, path)?;
        let back_off: Option<crate::route::RetryBackOff> = f.opt(d, "retry_back_off");
        let num_retries = f.or(d, "num_retries", 1u32);
        for name in ["retry_on", "retry_priority", "retry_host_predicate", "host_selection_retry_max_attempts"] {
            f.unsupported_because(
                d,
                name,
                "not applied to the JWKS fetch (Envoy retries it on 5xx, gateway-error, connect-failure and reset)",
            );
        }
        f.finish(d);
        let back_off = back_off.unwrap_or(crate::route::RetryBackOff {
            base_interval: Duration::from_secs(1),
            max_interval: Duration::from_secs(10),
        });
        Some(JwksRetryPolicy { num_retries, back_off })
    }
}

impl JwksRetryPolicy {
    /// The route `retry_policy` the fetch's requests run under (flow YAML).
    pub fn route_retry_policy(&self) -> String {
        let secs = |d: Duration| format!("{}s", d.as_secs_f64());
        format!(
            "retry_policy: {{retry_on: '{JWKS_RETRY_ON}', num_retries: {}, per_try_timeout: {}, \
             retry_back_off: {{base_interval: {}, max_interval: {}}}}}",
            self.num_retries,
            secs(self.back_off.max_interval),
            secs(self.back_off.base_interval),
            secs(self.back_off.max_interval)
        )
    }
}

/// Envoy's `PubkeyCacheExpirationSec`.
pub const DEFAULT_CACHE_DURATION: Duration = Duration::from_secs(600);

impl Decode for RemoteJwksConfig {
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::of(d, node, path)?;
        let line = f.line();
        let uri_path = f.field_path("http_uri");
        let http_uri = f.take("http_uri");
        let cache_duration = f.or(d, "cache_duration", DEFAULT_CACHE_DURATION);
        f.unsupported_because(
            d,
            "async_fetch",
            "fetching the keys before requests need them is not supported: each worker fetches them \
             when a request needs them (remove `async_fetch`)",
        );
        let retry_policy: Option<JwksRetryPolicy> = f.opt(d, "retry_policy");
        f.finish(d);
        let Some(u) = http_uri else {
            d.error(ErrorKind::Missing, &uri_path, line, "required field is missing");
            return None;
        };
        let mut g = Fields::of(d, u, &uri_path)?;
        let uri: Option<String> = g.req(d, "uri");
        let cluster: Option<String> = g.req(d, "cluster");
        let timeout: Option<Duration> = g.req(d, "timeout");
        g.finish(d);
        let (uri, cluster, timeout) = (uri?, cluster?, timeout?);
        if cluster.is_empty() {
            d.error(ErrorKind::Invalid, &format!("{uri_path}.cluster"), line, "must not be empty");
            return None;
        }
        Some(RemoteJwksConfig { uri, cluster, timeout, cache_duration, retry_policy })
    }
}

/// Where a provider's keys come from (`jwks_source_specifier`).
#[derive(Debug, Clone, PartialEq)]
pub enum JwksSource {
    Local(DataSource),
    Remote(RemoteJwksConfig),
}

/// `JwtProvider` (named by its key in `providers`).
#[derive(Debug, Clone, PartialEq)]
pub struct JwtProvider {
    pub name: String,
    /// Empty: any `iss` (and tokens without one).
    pub issuer: String,
    /// Empty: audiences are not checked.
    pub audiences: Vec<String>,
    /// `local_jwks` or `remote_jwks`.
    pub jwks: JwksSource,
    pub forward: bool,
    pub from_headers: Vec<JwtHeader>,
    pub from_params: Vec<String>,
    pub from_cookies: Vec<String>,
    /// Lower-cased; empty: the payload is not forwarded.
    pub forward_payload_header: String,
    pub pad_forward_payload_header: bool,
    pub payload_in_metadata: String,
    pub header_in_metadata: String,
    /// 0: Envoy's default, 60 s.
    pub clock_skew_seconds: u32,
    pub require_expiration: bool,
    pub max_lifetime: Option<Duration>,
    pub claim_to_headers: Vec<ClaimToHeader>,
    /// `normalize_payload_in_metadata.space_delimited_claims`.
    pub space_delimited_claims: Vec<String>,
    /// `jwt_cache_config`; `None`: verified tokens are not cached.
    pub jwt_cache_config: Option<JwtCacheConfig>,
}

impl JwtProvider {
    fn decode(d: &mut Decoder, name: &str, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::of(d, node, path)?;
        let line = f.line();
        let issuer = f.or(d, "issuer", String::new());
        let audiences = f.list(d, "audiences");
        let remote_jwks: Option<RemoteJwksConfig> = f.opt(d, "remote_jwks");
        let local_jwks: Option<DataSource> = f.opt(d, "local_jwks");
        let forward = f.or(d, "forward", false);
        let from_headers = f.list(d, "from_headers");
        let from_params = f.list(d, "from_params");
        let from_cookies = f.list(d, "from_cookies");
        let fph_path = f.field_path("forward_payload_header");
        let forward_payload_header = match f.take("forward_payload_header") {
            Some(n) if !matches!(&n.value, Value::Scalar { text, .. } if text.is_empty()) => {
                decode_header_name(d, n, &fph_path)?
            }
            _ => String::new(),
        };
        let pad_forward_payload_header = f.or(d, "pad_forward_payload_header", false);
        let payload_in_metadata = f.or(d, "payload_in_metadata", String::new());
        let header_in_metadata = f.or(d, "header_in_metadata", String::new());
        let clock_skew_seconds = f.or(d, "clock_skew_seconds", 0u32);
        let require_expiration = f.or(d, "require_expiration", false);
        let max_lifetime: Option<Duration> = f.opt(d, "max_lifetime");
        let claim_to_headers = f.list(d, "claim_to_headers");
        let mut space_delimited_claims = Vec::new();
        if let Some(n) = f.take("normalize_payload_in_metadata") {
            let mut g = Fields::of(d, n, &f.field_path("normalize_payload_in_metadata"))?;
            space_delimited_claims = g.list(d, "space_delimited_claims");
            g.finish(d);
        }
        f.default_only(
            d,
            "clear_route_cache",
            false,
            "the route is chosen before the HTTP filters run in sluice; remove it",
        );
        let jwt_cache_config: Option<JwtCacheConfig> = f.opt(d, "jwt_cache_config");
        f.unsupported(d, &["subjects", "failed_status_in_metadata"]);
        let remote = f.has("remote_jwks");
        f.finish(d);
        let jwks = match (local_jwks, remote_jwks) {
            (Some(l), None) => JwksSource::Local(l),
            (None, Some(r)) => JwksSource::Remote(r),
            (Some(_), Some(_)) => {
                d.error(ErrorKind::Invalid, path, line, "set only one of `local_jwks` and `remote_jwks`");
                return None;
            }
            (None, None) => {
                if !remote {
                    d.error(ErrorKind::Missing, path, line, "one of `local_jwks` or `remote_jwks` is required");
                }
                return None;
            }
        };
        Some(JwtProvider {
            name: name.to_string(),
            issuer,
            audiences,
            jwks,
            forward,
            from_headers,
            from_params,
            from_cookies,
            forward_payload_header,
            pad_forward_payload_header,
            payload_in_metadata,
            header_in_metadata,
            clock_skew_seconds,
            require_expiration,
            max_lifetime,
            claim_to_headers,
            space_delimited_claims,
            jwt_cache_config,
        })
    }
}

/// `JwtRequirement`.
#[derive(Debug, Clone, PartialEq)]
pub enum JwtRequirement {
    /// An empty message: nothing is required.
    AllowAll,
    ProviderName(String),
    /// `provider_and_audiences`: the provider, with these audiences instead of its own.
    ProviderAndAudiences {
        provider_name: String,
        audiences: Vec<String>,
    },
    RequiresAny(Vec<JwtRequirement>),
    RequiresAll(Vec<JwtRequirement>),
    AllowMissingOrFailed,
    AllowMissing,
}

impl Decode for JwtRequirement {
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::of(d, node, path)?;
        let line = f.line();
        let mut set: Vec<Option<JwtRequirement>> = Vec::new();
        if let Some(p) = f.opt::<String>(d, "provider_name") {
            set.push(Some(JwtRequirement::ProviderName(p)));
        }
        if let Some(n) = f.take("provider_and_audiences") {
            let pp = f.field_path("provider_and_audiences");
            set.push(Fields::of(d, n, &pp).map(|mut g| {
                let provider_name = g.or(d, "provider_name", String::new());
                let audiences = g.list(d, "audiences");
                g.finish(d);
                JwtRequirement::ProviderAndAudiences { provider_name, audiences }
            }));
        }
        for (name, any) in [("requires_any", true), ("requires_all", false)] {
            let Some(n) = f.take(name) else { continue };
            let lp = f.field_path(name);
            set.push(decode_list(d, n, &lp).map(|v| {
                if any {
                    JwtRequirement::RequiresAny(v)
                } else {
                    JwtRequirement::RequiresAll(v)
                }
            }));
        }
        for (name, r) in [
            ("allow_missing_or_failed", JwtRequirement::AllowMissingOrFailed),
            ("allow_missing", JwtRequirement::AllowMissing),
        ] {
            let Some(n) = f.take(name) else { continue };
            let e = Fields::of(d, n, &f.field_path(name));
            set.push(e.map(|e| e.finish(d)).map(|_| r));
        }
        f.finish(d);
        match set.len() {
            0 => Some(JwtRequirement::AllowAll),
            1 => set.pop()?,
            _ => {
                d.error(ErrorKind::Invalid, path, line, "set only one field of the `requires_type` oneof");
                None
            }
        }
    }
}

/// `JwtRequirementOrList` / `JwtRequirementAndList` (at least two requirements).
fn decode_list(d: &mut Decoder, node: &Node, path: &str) -> Option<Vec<JwtRequirement>> {
    let mut f = Fields::of(d, node, path)?;
    let line = f.line();
    let requirements: Vec<JwtRequirement> = f.list(d, "requirements");
    f.finish(d);
    if requirements.len() < 2 {
        d.error(ErrorKind::Invalid, &format!("{path}.requirements"), line, "needs at least 2 requirements");
        return None;
    }
    Some(requirements)
}

/// What a rule requires (`requirement_type`).
#[derive(Debug, Clone, PartialEq)]
pub enum RuleRequirement {
    /// Neither `requires` nor `requirement_name`: no verification.
    None,
    Requires(JwtRequirement),
    /// `requirement_name`, an index into `requirement_map`.
    Named(usize),
}

/// `RequirementRule`.
#[derive(Debug, Clone, PartialEq)]
pub struct RequirementRule {
    pub route_match: RouteMatch,
    pub requirement: RuleRequirement,
}

/// `JwtAuthentication`.
#[derive(Debug, Clone, PartialEq)]
pub struct JwtAuthentication {
    /// In config order.
    pub providers: Vec<JwtProvider>,
    pub rules: Vec<RequirementRule>,
    pub bypass_cors_preflight: bool,
    /// In config order.
    pub requirement_map: Vec<(String, JwtRequirement)>,
    pub strip_failure_response: bool,
    /// The message as written (for the config dump).
    pub source: Json,
}

impl JwtAuthentication {
    pub(crate) fn decode_fields(d: &mut Decoder, mut f: Fields<'_>, node: &Node) -> Option<JwtAuthentication> {
        let line = f.line();
        let mut providers = Vec::new();
        if let Some(n) = f.take("providers") {
            let pp = f.field_path("providers");
            for (k, v) in map_entries(d, n, &pp) {
                providers.extend(JwtProvider::decode(d, &k.name, v, &format!("{pp}.{}", k.name)));
            }
        }
        let mut requirement_map = Vec::new();
        if let Some(n) = f.take("requirement_map") {
            let mp = f.field_path("requirement_map");
            for (k, v) in map_entries(d, n, &mp) {
                if let Some(r) = d.decode::<JwtRequirement>(v, &format!("{mp}.{}", k.name)) {
                    requirement_map.push((k.name.clone(), r));
                }
            }
        }
        let rules_path = f.field_path("rules");
        let rule_nodes: Vec<&Node> = match f.take("rules") {
            Some(Node { value: Value::Seq(items), .. }) => items.iter().collect(),
            Some(n) => {
                d.invalid(n, &rules_path, "expected a list");
                Vec::new()
            }
            None => Vec::new(),
        };
        let bypass_cors_preflight = f.or(d, "bypass_cors_preflight", false);
        let strip_failure_response = f.or(d, "strip_failure_response", false);
        f.unsupported_because(
            d,
            "filter_state_rules",
            "requirements chosen through filter state are not supported: no sluice filter sets filter state",
        );
        f.finish(d);
        let mut names: Vec<&str> = requirement_map.iter().map(|(n, _)| n.as_str()).collect();
        names.sort_unstable();
        let all_names = names.join(",");
        let mut rules = Vec::with_capacity(rule_nodes.len());
        for (i, n) in rule_nodes.into_iter().enumerate() {
            let rp = format!("{rules_path}[{i}]");
            if let Some(r) = decode_rule(d, n, &rp, &requirement_map, &all_names) {
                rules.push(r);
            }
        }
        let errors = d.errors.len();
        for (name, r) in &requirement_map {
            check_providers(d, r, &providers, &format!("{}.requirement_map.{name}", f_path(&rules_path)), line);
        }
        for (i, r) in rules.iter().enumerate() {
            if let RuleRequirement::Requires(req) = &r.requirement {
                check_providers(d, req, &providers, &format!("{rules_path}[{i}].requires"), line);
            }
        }
        if d.errors.len() != errors {
            return None;
        }
        Some(JwtAuthentication {
            providers,
            rules,
            bypass_cors_preflight,
            requirement_map,
            strip_failure_response,
            source: Json::from_node(node),
        })
    }
}

/// The parent path of a field path (`a.b.rules` → `a.b`).
fn f_path(path: &str) -> &str {
    path.rsplit_once('.').map_or("", |(p, _)| p)
}

fn map_entries<'n>(d: &mut Decoder, node: &'n Node, path: &str) -> Vec<(&'n crate::node::Key, &'n Node)> {
    match &node.value {
        Value::Map(entries) => entries.iter().map(|(k, v)| (k, v)).collect(),
        Value::Null => Vec::new(),
        _ => {
            d.invalid(node, path, "expected a map");
            Vec::new()
        }
    }
}

fn decode_rule(
    d: &mut Decoder,
    node: &Node,
    path: &str,
    map: &[(String, JwtRequirement)],
    all_names: &str,
) -> Option<RequirementRule> {
    let mut f = Fields::of(d, node, path)?;
    let line = f.line();
    let route_match: Option<RouteMatch> = f.req(d, "match");
    let requires: Option<JwtRequirement> = f.opt(d, "requires");
    let name: Option<String> = f.opt(d, "requirement_name");
    f.finish(d);
    let route_match = route_match?;
    if route_match.grpc || route_match.runtime_fraction.is_some() || !route_match.dynamic_metadata.is_empty() {
        d.error(
            ErrorKind::Unsupported,
            &format!("{path}.match"),
            line,
            "jwt_authn rules match on the path, headers and query parameters only: remove `grpc`, \
             `runtime_fraction` and `dynamic_metadata`",
        );
        return None;
    }
    let requirement = match (requires, name) {
        (Some(_), Some(_)) => {
            d.error(ErrorKind::Invalid, path, line, "set only one of `requires` and `requirement_name`");
            return None;
        }
        (Some(r), None) => RuleRequirement::Requires(r),
        (None, Some(n)) => match map.iter().position(|(k, _)| *k == n) {
            Some(i) => RuleRequirement::Named(i),
            None => {
                d.error(
                    ErrorKind::Invalid,
                    &format!("{path}.requirement_name"),
                    line,
                    format!("Wrong requirement_name: {n}. It should be one of [{all_names}]"),
                );
                return None;
            }
        },
        (None, None) => RuleRequirement::None,
    };
    Some(RequirementRule { route_match, requirement })
}

/// Envoy: "Required provider ['x'] is not configured."
fn check_providers(d: &mut Decoder, r: &JwtRequirement, providers: &[JwtProvider], path: &str, line: u32) {
    let name = match r {
        JwtRequirement::ProviderName(n) => n,
        JwtRequirement::ProviderAndAudiences { provider_name, .. } => provider_name,
        JwtRequirement::RequiresAny(v) | JwtRequirement::RequiresAll(v) => {
            for c in v {
                check_providers(d, c, providers, path, line);
            }
            return;
        }
        _ => return,
    };
    if !providers.iter().any(|p| p.name == *name) {
        d.error(ErrorKind::Invalid, path, line, format!("Required provider ['{name}'] is not configured."));
    }
}

/// `PerRouteConfig`.
#[derive(Debug, Clone, PartialEq)]
pub enum JwtPerRoute {
    /// `disabled: true`: no verification on this route.
    Disabled,
    /// `requirement_name`: a requirement of `requirement_map` (an unknown name gets a 403
    /// on the request, as in Envoy).
    RequirementName(String),
}

impl JwtPerRoute {
    pub(crate) fn decode_fields(d: &mut Decoder, mut f: Fields<'_>) -> Option<JwtPerRoute> {
        let line = f.line();
        let path = f.path().to_string();
        let disabled: Option<bool> = f.opt(d, "disabled");
        let name: Option<String> = f.opt(d, "requirement_name");
        f.finish(d);
        match (disabled, name) {
            (Some(true), None) => Some(JwtPerRoute::Disabled),
            (Some(false), None) => {
                d.error(ErrorKind::Invalid, &format!("{path}.disabled"), line, "must be true");
                None
            }
            (None, Some(n)) if !n.is_empty() => Some(JwtPerRoute::RequirementName(n)),
            (None, Some(_)) => {
                d.error(ErrorKind::Invalid, &format!("{path}.requirement_name"), line, "must not be empty");
                None
            }
            (None, None) => {
                d.error(ErrorKind::Missing, &path, line, "one of `disabled` or `requirement_name` is required");
                None
            }
            (Some(_), Some(_)) => {
                d.error(ErrorKind::Invalid, &path, line, "set only one of `disabled` and `requirement_name`");
                None
            }
        }
    }
}

#[cfg(test)]
#[path = "jwt_authn_tests.rs"]
mod tests;
