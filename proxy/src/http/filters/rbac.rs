//! The RBAC filter (`envoy.extensions.filters.http.rbac.v3.RBAC`), as Envoy's
//! rbac_filter.cc and rbac engine: a policy matches a request when one of its
//! permissions and one of its principals match; an ALLOW engine allows a request some
//! policy matches, a DENY engine one no policy matches, a LOG engine every request.
//!
//! `shadow_rules` are evaluated first and only counted (`rbac.<shadow_rules_stat_prefix>
//! shadow_allowed` / `shadow_denied`); `rules` decide: `rbac.<rules_stat_prefix>allowed`,
//! or `denied` and 403 `RBAC: access denied`. No `rules` allows everything. A route's
//! `RBACPerRoute` replaces the engines (without `rbac` it turns the filter off there).
//! Stats live under `http.<stat_prefix>.`.

use std::sync::Arc;

use sluice_config::filters::rbac::{Permission, Principal, Rbac, RbacAction, RbacEngine, RbacPerRoute, RbacRules};
use sluice_config::filters::rbac_matcher::{Predicate, RbacMatcher};

use crate::http::filter::{FilterCallbacks, HeadersStatus, StreamContext, StreamFilter};
use crate::http::filters::per_route::{PerRouteFilter, RouteView};
use crate::http::filters::CounterSet;
use crate::http::RequestHead;
use crate::router::route_match::request_header_value;
use crate::stats::SharedCounter;

/// The enforced and shadow engines of one config (`None`: none configured).
#[derive(Debug, Default)]
pub struct RbacEngines {
    rules: Option<RbacEngine>,
    shadow: Option<RbacEngine>,
}

impl RbacEngines {
    pub fn new(c: &Rbac) -> RbacEngines {
        RbacEngines { rules: c.rules.clone(), shadow: c.shadow_rules.clone() }
    }

    /// A route's `RBACPerRoute` (no `rbac`: no engines, every request allowed).
    pub fn per_route(c: &RbacPerRoute) -> RbacEngines {
        c.rbac.as_ref().map(RbacEngines::new).unwrap_or_default()
    }
}

/// The filter's engines and stats.
#[derive(Debug)]
pub struct RbacConfig {
    engines: Arc<RbacEngines>,
    allowed: Arc<SharedCounter>,
    denied: Arc<SharedCounter>,
    shadow_allowed: Arc<SharedCounter>,
    shadow_denied: Arc<SharedCounter>,
}

impl RbacConfig {
    pub fn new(c: &Rbac, prefix: &str, counters: &mut CounterSet) -> RbacConfig {
        let (r, s) = (&c.rules_stat_prefix, &c.shadow_rules_stat_prefix);
        RbacConfig {
            engines: Arc::new(RbacEngines::new(c)),
            allowed: counters.counter(format!("{prefix}rbac.{r}allowed")),
            denied: counters.counter(format!("{prefix}rbac.{r}denied")),
            shadow_allowed: counters.counter(format!("{prefix}rbac.{s}shadow_allowed")),
            shadow_denied: counters.counter(format!("{prefix}rbac.{s}shadow_denied")),
        }
    }
}

/// What an engine decided, and the policy (or matcher action) that decided it.
fn evaluate<'r>(engine: &'r RbacEngine, head: &RequestHead, cx: &StreamContext<'_>) -> (bool, Option<&'r str>) {
    match engine {
        RbacEngine::Rules(r) => evaluate_rules(r, head, cx),
        RbacEngine::Matcher(m) => evaluate_matcher(m, head),
    }
}

/// The first matching entry's action, else `on_no_match`'s, else deny (Envoy).
fn evaluate_matcher<'r>(m: &'r RbacMatcher, head: &RequestHead) -> (bool, Option<&'r str>) {
    let action = m.matchers.iter().find(|f| predicate(&f.predicate, head)).map(|f| &f.on_match);
    match action.or(m.on_no_match.as_ref()) {
        Some(a) => (a.action != RbacAction::Deny, Some(a.name.as_str())),
        None => (false, None),
    }
}

fn predicate(p: &Predicate, head: &RequestHead) -> bool {
    match p {
        Predicate::Header { name, value } => request_header_value(head, name).is_some_and(|v| value.matches(&v)),
        Predicate::Or(v) => v.iter().any(|p| predicate(p, head)),
        Predicate::And(v) => v.iter().all(|p| predicate(p, head)),
        Predicate::Not(p) => !predicate(p, head),
    }
}

fn evaluate_rules<'r>(rules: &'r RbacRules, head: &RequestHead, cx: &StreamContext<'_>) -> (bool, Option<&'r str>) {
    let matched = rules.policies.iter().find(|p| {
        p.permissions.iter().any(|m| permission(m, head, cx)) && p.principals.iter().any(|m| principal(m, head, cx))
    });
    let name = matched.map(|p| p.name.as_str());
    match rules.action {
        RbacAction::Allow => (matched.is_some(), name),
        RbacAction::Deny => (matched.is_none(), name),
        RbacAction::Log => (true, name),
    }
}

/// The path without query or fragment (Envoy's `PathMatcher`).
fn path_only(head: &RequestHead) -> &[u8] {
    crate::router::route_match::path_only(&head.path).as_bytes()
}

fn permission(p: &Permission, head: &RequestHead, cx: &StreamContext<'_>) -> bool {
    match p {
        Permission::And(v) => v.iter().all(|p| permission(p, head, cx)),
        Permission::Or(v) => v.iter().any(|p| permission(p, head, cx)),
        Permission::Any => true,
        Permission::Header(m) => m.matches(request_header_value(head, &m.name).as_deref()),
        Permission::UrlPath(m) => m.matches(path_only(head)),
        Permission::DestinationIp(c) => c.contains(cx.local.ip()),
        Permission::DestinationPort(port) => cx.local.port() as u32 == *port,
        Permission::DestinationPortRange(start, end) => (*start..*end).contains(&(cx.local.port() as u32)),
        Permission::Not(p) => !permission(p, head, cx),
        Permission::RequestedServerName(m) => m.matches(cx.sni.unwrap_or("").as_bytes()),
    }
}

fn principal(p: &Principal, head: &RequestHead, cx: &StreamContext<'_>) -> bool {
    match p {
        Principal::And(v) => v.iter().all(|p| principal(p, head, cx)),
        Principal::Or(v) => v.iter().any(|p| principal(p, head, cx)),
        Principal::Any => true,
        // Envoy: any TLS connection is authenticated; a name must be one of the client
        // certificate's URI SANs, DNS SANs or its subject.
        Principal::Authenticated(None) => cx.tls,
        Principal::Authenticated(Some(m)) => {
            cx.tls && (cx.peer_principals.iter().any(|n| m.matches(n.as_bytes())) || m.matches(b""))
        }
        Principal::DirectRemoteIp(c) => c.contains(cx.direct_remote.ip()),
        Principal::RemoteIp(c) => c.contains(cx.remote.ip()),
        Principal::Header(m) => m.matches(request_header_value(head, &m.name).as_deref()),
        Principal::UrlPath(m) => m.matches(path_only(head)),
        Principal::Not(p) => !principal(p, head, cx),
    }
}

/// The RBAC filter on one stream.
#[derive(Debug)]
pub struct RbacFilter {
    config: Arc<RbacConfig>,
    /// The route's `RBACPerRoute` engines (`None`: the filter's own).
    route_engines: Option<Arc<RbacEngines>>,
}

impl RbacFilter {
    pub fn new(config: Arc<RbacConfig>, route: &RouteView<'_>, k: usize) -> RbacFilter {
        let route_engines = match route.most_specific(k) {
            Some(PerRouteFilter::Rbac(e)) => Some(Arc::clone(e)),
            _ => None,
        };
        RbacFilter { config, route_engines }
    }

    fn engines(&self) -> &RbacEngines {
        self.route_engines.as_deref().unwrap_or(&self.config.engines)
    }
}

impl StreamFilter for RbacFilter {
    fn decode_headers(
        &mut self,
        head: &mut RequestHead,
        _end_stream: bool,
        cx: &StreamContext<'_>,
        cb: &mut FilterCallbacks,
    ) -> HeadersStatus {
        let engines = self.engines();
        if let Some(shadow) = &engines.shadow {
            if evaluate(shadow, head, cx).0 {
                self.config.shadow_allowed.inc();
            } else {
                self.config.shadow_denied.inc();
            }
        }
        let Some(rules) = &engines.rules else {
            return HeadersStatus::Continue;
        };
        let (allowed, policy) = evaluate(rules, head, cx);
        if allowed {
            self.config.allowed.inc();
            return HeadersStatus::Continue;
        }
        self.config.denied.inc();
        tracing::debug!(policy = policy.unwrap_or("none"), "rbac: access denied");
        cb.send_local_reply(403, b"RBAC: access denied", Vec::new(), "rbac_access_denied_matched_policy");
        HeadersStatus::StopIteration
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_config::address::CidrRange;
    use sluice_config::matcher::StringMatcher;
    use std::net::SocketAddr;
    use std::time::Instant;

    fn cx<'a>(principals: &'a [String], sni: Option<&'a str>, tls: bool) -> StreamContext<'a> {
        let a = |s: &str| s.parse::<SocketAddr>().unwrap();
        StreamContext {
            now: Instant::now(),
            remote: a("203.0.113.7:1000"),
            direct_remote: a("10.0.0.2:2000"),
            local: a("192.0.2.1:8443"),
            sni,
            peer_principals: principals,
            tls,
            cluster: "c",
            routed: true,
            health_check_failed: false,
            runtime: Box::leak(Box::default()),
        }
    }

    fn exact(s: &str) -> StringMatcher {
        StringMatcher::Exact { value: s.into(), ignore_case: false }
    }

    #[test]
    fn connection_permissions_and_principals() {
        let head = RequestHead { path: "/api/x?y=1".into(), method: "GET".into(), ..RequestHead::default() };
        let names = vec!["spiffe://cluster.local/ns/a/sa/web".to_string(), "CN=web".to_string()];
        let c = cx(&names, Some("api.example"), true);
        let cidr = |s: &str| s.parse::<CidrRange>().unwrap();
        assert!(permission(&Permission::DestinationPort(8443), &head, &c));
        assert!(permission(&Permission::DestinationPortRange(8000, 9000), &head, &c));
        assert!(!permission(&Permission::DestinationPortRange(8000, 8443), &head, &c), "end is exclusive");
        assert!(permission(&Permission::DestinationIp(cidr("192.0.2.0/24")), &head, &c));
        assert!(permission(&Permission::RequestedServerName(exact("api.example")), &head, &c));
        assert!(permission(&Permission::UrlPath(exact("/api/x")), &head, &c), "the query is not part of the path");
        assert!(principal(&Principal::RemoteIp(cidr("203.0.113.0/24")), &head, &c), "the XFF client");
        assert!(!principal(&Principal::RemoteIp(cidr("10.0.0.0/8")), &head, &c));
        assert!(principal(&Principal::DirectRemoteIp(cidr("10.0.0.0/8")), &head, &c), "the peer");
        let spiffe = Principal::Authenticated(Some(exact("spiffe://cluster.local/ns/a/sa/web")));
        assert!(principal(&spiffe, &head, &c));
        assert!(principal(&Principal::Authenticated(Some(exact("CN=web"))), &head, &c), "the subject");
        assert!(!principal(&Principal::Authenticated(Some(exact("CN=other"))), &head, &c));
        let plain = cx(&[], None, false);
        assert!(!principal(&spiffe, &head, &plain), "no TLS, no principal");
        assert!(!principal(&Principal::Authenticated(None), &head, &plain));
        assert!(principal(&Principal::Not(Box::new(Principal::Authenticated(None))), &head, &plain));
    }

    #[test]
    fn deny_and_log_engines() {
        use sluice_config::filters::rbac::Policy;
        let head = RequestHead::default();
        let c = cx(&[], None, false);
        let any = Policy { name: "all".into(), permissions: vec![Permission::Any], principals: vec![Principal::Any] };
        let deny = RbacEngine::Rules(RbacRules { action: RbacAction::Deny, policies: vec![any.clone()] });
        assert_eq!(evaluate(&deny, &head, &c), (false, Some("all")));
        let log = RbacEngine::Rules(RbacRules { action: RbacAction::Log, policies: vec![any] });
        assert!(evaluate(&log, &head, &c).0);
        let empty_allow = RbacEngine::Rules(RbacRules { action: RbacAction::Allow, policies: vec![] });
        assert!(!evaluate(&empty_allow, &head, &c).0, "ALLOW with no policy denies everything");
    }
}
