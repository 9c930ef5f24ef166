//! `extensions.filters.http.rbac.v3.RBAC` and `RBACPerRoute`, over
//! `config.rbac.v3.RBAC` policies: permissions (what is asked) and principals (who
//! asks), each a tree of and/or/not over the request's headers and path, the
//! connection's addresses, SNI and mTLS identity. CEL conditions, metadata and
//! filter-state matchers are rejected; the generic `matcher` API is read in the subset
//! of `rbac_matcher.rs`.

use crate::address::CidrRange;
use crate::decode::{Decode, Decoder, Fields};
use crate::error::ErrorKind;
use crate::matcher::{HeaderMatcher, StringMatcher};
use crate::node::{Node, Value};
use crate::proto_enum;

pub use super::rbac_matcher::RbacMatcher;

pub const RBAC_TYPE: &str = "envoy.extensions.filters.http.rbac.v3.RBAC";
pub const RBAC_PER_ROUTE_TYPE: &str = "envoy.extensions.filters.http.rbac.v3.RBACPerRoute";

proto_enum! {
    /// `config.rbac.v3.RBAC.Action`.
    pub enum RbacAction {
        Allow = ("ALLOW", 0),
        Deny = ("DENY", 1),
        Log = ("LOG", 2),
    }
}

/// `config.rbac.v3.Permission`.
#[derive(Debug, Clone, PartialEq)]
pub enum Permission {
    And(Vec<Permission>),
    Or(Vec<Permission>),
    Any,
    Header(HeaderMatcher),
    UrlPath(StringMatcher),
    DestinationIp(CidrRange),
    DestinationPort(u32),
    /// `[start, end)`.
    DestinationPortRange(u32, u32),
    Not(Box<Permission>),
    RequestedServerName(StringMatcher),
}

/// `config.rbac.v3.Principal`.
#[derive(Debug, Clone, PartialEq)]
pub enum Principal {
    And(Vec<Principal>),
    Or(Vec<Principal>),
    Any,
    /// `authenticated`: `None` matches any mTLS peer.
    Authenticated(Option<StringMatcher>),
    /// `source_ip` (deprecated) and `direct_remote_ip`: the connection's peer.
    DirectRemoteIp(CidrRange),
    /// The client address after XFF processing.
    RemoteIp(CidrRange),
    Header(HeaderMatcher),
    UrlPath(StringMatcher),
    Not(Box<Principal>),
}

/// `config.rbac.v3.Policy`.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub name: String,
    pub permissions: Vec<Permission>,
    pub principals: Vec<Principal>,
}

/// `config.rbac.v3.RBAC`: policies in name order (Envoy's map is ordered by name).
#[derive(Debug, Clone, PartialEq)]
pub struct RbacRules {
    pub action: RbacAction,
    pub policies: Vec<Policy>,
}

/// An engine: policies (`rules`) or the generic matcher API (`matcher`).
#[derive(Debug, Clone, PartialEq)]
pub enum RbacEngine {
    Rules(RbacRules),
    Matcher(RbacMatcher),
}

/// The filter's config.
#[derive(Debug, Clone, PartialEq)]
pub struct Rbac {
    /// `None`: every request is allowed.
    pub rules: Option<RbacEngine>,
    pub shadow_rules: Option<RbacEngine>,
    pub rules_stat_prefix: String,
    pub shadow_rules_stat_prefix: String,
}

impl Rbac {
    pub(crate) fn decode_fields(d: &mut Decoder, mut f: Fields<'_>) -> Option<Rbac> {
        let line = f.line();
        let path = f.path().to_string();
        let rules: Option<RbacRules> = f.opt(d, "rules");
        let matcher: Option<RbacMatcher> = f.opt(d, "matcher");
        let shadow_rules: Option<RbacRules> = f.opt(d, "shadow_rules");
        let shadow_matcher: Option<RbacMatcher> = f.opt(d, "shadow_matcher");
        let rules_stat_prefix = f.or(d, "rules_stat_prefix", String::new());
        let shadow_rules_stat_prefix = f.or(d, "shadow_rules_stat_prefix", String::new());
        f.default_only(d, "track_per_rule_stats", false, "per-rule stats are not supported yet; remove it");
        f.finish(d);
        let mut engine = |r: Option<RbacRules>, m: Option<RbacMatcher>, what: &str| match (r, m) {
            (Some(_), Some(_)) => {
                d.error(ErrorKind::Invalid, &path, line, format!("set only one of `{what}` and its matcher"));
                None
            }
            (Some(r), None) => Some(RbacEngine::Rules(r)),
            (None, Some(m)) => Some(RbacEngine::Matcher(m)),
            (None, None) => None,
        };
        let rules = engine(rules, matcher, "rules");
        let shadow_rules = engine(shadow_rules, shadow_matcher, "shadow_rules");
        Some(Rbac { rules, shadow_rules, rules_stat_prefix, shadow_rules_stat_prefix })
    }
}

/// `RBACPerRoute`: `rbac` absent (or without rules) turns the filter off for the route.
#[derive(Debug, Clone, PartialEq)]
pub struct RbacPerRoute {
    pub rbac: Option<Rbac>,
}

impl RbacPerRoute {
    pub(crate) fn decode_fields(d: &mut Decoder, mut f: Fields<'_>) -> Option<RbacPerRoute> {
        let path = f.field_path("rbac");
        let rbac = match f.take("rbac") {
            Some(n) => {
                let inner = Fields::of(d, n, &path)?;
                Some(Rbac::decode_fields(d, inner)?)
            }
            None => None,
        };
        f.finish(d);
        Some(RbacPerRoute { rbac })
    }
}

impl Decode for RbacRules {
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::of(d, node, path)?;
        let action = f.or(d, "action", RbacAction::Allow);
        let policies_node = f.take("policies");
        let policies_path = f.field_path("policies");
        f.unsupported(d, &["audit_logging_options"]);
        f.finish(d);
        let mut policies = Vec::new();
        if let Some(n) = policies_node {
            let Value::Map(entries) = &n.value else {
                d.invalid(n, &policies_path, "policies must be a map of name to policy");
                return None;
            };
            for (k, v) in entries {
                let p = format!("{policies_path}.{}", k.name);
                let mut pf = Fields::of(d, v, &p)?;
                let permissions: Vec<Permission> = pf.list(d, "permissions");
                let principals: Vec<Principal> = pf.list(d, "principals");
                let has_perm = pf.has("permissions");
                let has_princ = pf.has("principals");
                pf.unsupported(d, &["condition", "checked_condition"]);
                pf.finish(d);
                if !has_perm || !has_princ || permissions.is_empty() || principals.is_empty() {
                    d.error(ErrorKind::Invalid, &p, v.line, "a policy needs at least one permission and one principal");
                    continue;
                }
                policies.push(Policy { name: k.name.clone(), permissions, principals });
            }
        }
        policies.sort_by(|a, b| a.name.cmp(&b.name));
        Some(RbacRules { action, policies })
    }
}

/// `Permission.Set` / `Principal.Set`.
fn set<T: Decode>(d: &mut Decoder, node: &Node, path: &str, field: &'static str) -> Option<Vec<T>> {
    let mut f = Fields::of(d, node, path)?;
    let v = f.list(d, field);
    f.finish(d);
    Some(v)
}

/// `PathMatcher` (`path: StringMatcher`).
fn path_matcher(d: &mut Decoder, node: &Node, path: &str) -> Option<StringMatcher> {
    let mut f = Fields::of(d, node, path)?;
    let m = f.req(d, "path");
    f.finish(d);
    m
}

/// The oneof's single set field, or an error naming the message.
fn one<'n>(
    d: &mut Decoder,
    f: &mut Fields<'n>,
    names: &[&'static str],
    what: &str,
) -> Option<(&'static str, &'n Node)> {
    let mut found = None;
    let line = f.line();
    let path = f.path().to_string();
    for n in names {
        if let Some(v) = f.take(n) {
            if found.is_some() {
                d.error(ErrorKind::Invalid, &path, line, format!("a {what} sets exactly one rule"));
                return None;
            }
            found = Some((*n, v));
        }
    }
    if found.is_none() {
        d.error(ErrorKind::Missing, &path, line, format!("a {what} needs one rule"));
    }
    found
}

impl Decode for Permission {
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::of(d, node, path)?;
        f.unsupported(d, &["metadata", "matcher", "uri_template", "sourced_metadata"]);
        let names = [
            "and_rules",
            "or_rules",
            "any",
            "header",
            "url_path",
            "destination_ip",
            "destination_port",
            "destination_port_range",
            "not_rule",
            "requested_server_name",
        ];
        let found = one(d, &mut f, &names, "permission");
        f.finish(d);
        let (name, v) = found?;
        let p = format!("{path}.{name}");
        Some(match name {
            "and_rules" => Permission::And(set(d, v, &p, "rules")?),
            "or_rules" => Permission::Or(set(d, v, &p, "rules")?),
            "any" => {
                let any: bool = d.decode(v, &p)?;
                if !any {
                    d.invalid(v, &p, "`any` must be true");
                    return None;
                }
                Permission::Any
            }
            "header" => Permission::Header(d.decode(v, &p)?),
            "url_path" => Permission::UrlPath(path_matcher(d, v, &p)?),
            "destination_ip" => Permission::DestinationIp(d.decode(v, &p)?),
            "destination_port" => {
                let port: u32 = d.decode(v, &p)?;
                if port > 65535 {
                    d.invalid(v, &p, "must be at most 65535");
                    return None;
                }
                Permission::DestinationPort(port)
            }
            "destination_port_range" => {
                let mut r = Fields::of(d, v, &p)?;
                let start: u32 = r.or(d, "start", 0);
                let end: u32 = r.or(d, "end", 0);
                r.finish(d);
                Permission::DestinationPortRange(start, end)
            }
            "not_rule" => Permission::Not(Box::new(d.decode(v, &p)?)),
            _ => Permission::RequestedServerName(d.decode(v, &p)?),
        })
    }
}

impl Decode for Principal {
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::of(d, node, path)?;
        f.unsupported(d, &["metadata", "filter_state", "custom", "sourced_metadata"]);
        let names = [
            "and_ids",
            "or_ids",
            "any",
            "authenticated",
            "source_ip",
            "direct_remote_ip",
            "remote_ip",
            "header",
            "url_path",
            "not_id",
        ];
        let found = one(d, &mut f, &names, "principal");
        f.finish(d);
        let (name, v) = found?;
        let p = format!("{path}.{name}");
        Some(match name {
            "and_ids" => Principal::And(set(d, v, &p, "ids")?),
            "or_ids" => Principal::Or(set(d, v, &p, "ids")?),
            "any" => {
                let any: bool = d.decode(v, &p)?;
                if !any {
                    d.invalid(v, &p, "`any` must be true");
                    return None;
                }
                Principal::Any
            }
            "authenticated" => {
                let mut a = Fields::of(d, v, &p)?;
                let m = a.opt(d, "principal_name");
                a.finish(d);
                Principal::Authenticated(m)
            }
            "source_ip" | "direct_remote_ip" => Principal::DirectRemoteIp(d.decode(v, &p)?),
            "remote_ip" => Principal::RemoteIp(d.decode(v, &p)?),
            "header" => Principal::Header(d.decode(v, &p)?),
            "url_path" => Principal::UrlPath(path_matcher(d, v, &p)?),
            _ => Principal::Not(Box::new(d.decode(v, &p)?)),
        })
    }
}
