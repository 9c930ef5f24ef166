//! The route table: a `RouteConfiguration` compiled for request-time lookups.
//!
//! Compilation is done once per config (load or reload) and shared read-only by all
//! workers. What is compiled: the domain tables ([`DomainTable`]), and — already in
//! `sluice-config` — every regex, lower-cased header name, parsed header-value template
//! and typed policy. A lookup ([`RouteTable::route`]) walks the selected virtual host's
//! routes in order (first match wins, as in Envoy) and resolves the cluster (including
//! the weighted pick, from the caller's random value) without allocating, except for a
//! `cluster_header` route, whose header value is copied.

use std::borrow::Cow;
use std::sync::LazyLock;

use sluice_config::route::{
    Action, ClusterSpecifier, RequestMirrorPolicy, Route, RouteConfiguration, RouteMatch, TlsRequirement, VirtualHost,
    WeightedTarget,
};

use sluice_config::metadata::Metadata;

use crate::http::RequestHead;
use crate::runtime::Snapshot;

use super::matched::{ClusterChoice, Matched, Target};
use super::route_match::{headers_match, request_header_first, route_matches};
use super::vhost::{DomainTable, VhostIndex};
use super::weighted;

/// A compiled route configuration.
#[derive(Debug, Clone)]
pub struct RouteTable {
    pub(crate) config: RouteConfiguration,
    domains: DomainTable,
    /// Per virtual host: the mirror policies in force when a route has none of its own
    /// (the virtual host's, else the route configuration's).
    vhost_mirrors: Vec<Vec<RequestMirrorPolicy>>,
}

impl RouteTable {
    /// Compile a decoded (and validated) route configuration.
    pub fn new(config: &RouteConfiguration) -> RouteTable {
        let config = config.clone();
        let domains = DomainTable::new(
            config.virtual_hosts.iter().enumerate().map(|(i, vh)| (vh.domains.as_slice(), i)),
            config.ignore_port_in_host_matching,
        );
        let vhost_mirrors = config
            .virtual_hosts
            .iter()
            .map(|vh| {
                if vh.request_mirror_policies.is_empty() {
                    config.request_mirror_policies.clone()
                } else {
                    vh.request_mirror_policies.clone()
                }
            })
            .collect();
        RouteTable { config, domains, vhost_mirrors }
    }

    /// The configuration this table was compiled from.
    pub fn config(&self) -> &RouteConfiguration {
        &self.config
    }

    /// `route_config.name`.
    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// Headers the connection manager strips from requests of external clients.
    pub fn internal_only_headers(&self) -> &[String] {
        &self.config.internal_only_headers
    }

    /// The virtual host serving `authority`, if any.
    pub fn virtual_host(&self, authority: &str) -> Option<&VirtualHost> {
        self.domains.find(authority).map(|i| &self.config.virtual_hosts[i])
    }

    /// Select the route for a request (Envoy's `ConfigImpl::route`): the virtual host by
    /// `:authority`, then the first route whose match accepts the request, then its
    /// cluster. `random_value` drives the weighted-cluster pick (see [`weighted::pick`]).
    ///
    /// `None` means "no route": Envoy answers 404 with response flag `NR`. A virtual
    /// host with `require_tls` answers a plain-HTTP request with a 301 to https (a
    /// [`Matched`] whose action is a redirect). The request's scheme for `require_tls`
    /// is `x-forwarded-proto`, else `:scheme`; with neither, no route.
    pub fn route(&self, req: &RequestHead, random_value: u64) -> Option<Matched<'_>> {
        self.route_in(req, random_value, &NO_RUNTIME, &NO_METADATA)
    }

    /// [`RouteTable::route`] under a runtime snapshot: a route's `runtime_fraction`
    /// and a weighted route's `runtime_key_prefix` read it with the same
    /// `random_value` (Envoy's stream random value); a weighted route whose runtime
    /// weights sum to 0 matches no route. A route's `dynamic_metadata` matchers read
    /// `metadata` (the stream's dynamic metadata).
    pub fn route_in(
        &self,
        req: &RequestHead,
        random_value: u64,
        runtime: &Snapshot,
        metadata: &Metadata,
    ) -> Option<Matched<'_>> {
        let vi = self.domains.find(&req.authority)?;
        let vh = &self.config.virtual_hosts[vi];
        let proto = forwarded_proto(req);
        if proto.is_empty() {
            return None;
        }
        let https = proto.eq_ignore_ascii_case("https");
        let needs_tls = match vh.require_tls {
            TlsRequirement::None => false,
            TlsRequirement::All => !https,
            TlsRequirement::ExternalOnly => !https && !is_internal(req),
        };
        if needs_tls {
            return Some(Matched { table: self, vhost: vh, vhost_index: vi, target: Target::SslRedirect });
        }
        let entry = vh.routes.iter().find(|r| {
            route_matches(&r.r#match, req)
                && metadata_matches(&r.r#match, metadata)
                && runtime_fraction_matches(&r.r#match, runtime, random_value)
        })?;
        let cluster = match cluster_choice(entry, req, random_value, runtime) {
            Choice::Cluster(c) => Some(c),
            Choice::NotForwarding => None,
            Choice::NoWeight => return None,
        };
        Some(Matched { table: self, vhost: vh, vhost_index: vi, target: Target::Entry { entry, cluster } })
    }

    pub(crate) fn vhost_mirrors(&self, vhost_index: VhostIndex) -> &[RequestMirrorPolicy] {
        &self.vhost_mirrors[vhost_index]
    }
}

/// `x-forwarded-proto`, else `:scheme`.
pub(crate) fn forwarded_proto(req: &RequestHead) -> &str {
    match req.headers.get_str(b"x-forwarded-proto") {
        Some(p) if !p.is_empty() => p,
        _ => &req.scheme,
    }
}

/// `HeaderUtility::isEnvoyInternalRequest`: `x-envoy-internal: true`.
pub(crate) fn is_internal(req: &RequestHead) -> bool {
    req.headers.get(b"x-envoy-internal") == Some(b"true")
}

fn header_text<'a>(req: &'a RequestHead, name: &str) -> Cow<'a, str> {
    match request_header_first(req, name) {
        Some(v) => String::from_utf8_lossy(v),
        None => Cow::Borrowed(""),
    }
}

/// No runtime: every key reads its default.
static NO_RUNTIME: LazyLock<Snapshot> = LazyLock::new(Snapshot::default);

/// No dynamic metadata.
static NO_METADATA: LazyLock<Metadata> = LazyLock::new(Metadata::default);

/// `RouteEntryImplBase::matchRoute`: every `dynamic_metadata` matcher accepts the
/// stream's dynamic metadata.
fn metadata_matches(m: &RouteMatch, metadata: &Metadata) -> bool {
    m.dynamic_metadata.iter().all(|dm| dm.matches(metadata))
}

/// Envoy's `RouteEntryImplBase::matchRoute`: `runtime_fraction` through
/// `featureEnabled(runtime_key, default_value, random_value)`.
fn runtime_fraction_matches(m: &RouteMatch, runtime: &Snapshot, random_value: u64) -> bool {
    match &m.runtime_fraction {
        None => true,
        Some(f) => runtime.feature_enabled_fraction(&f.runtime_key, f.default_value, random_value),
    }
}

enum Choice<'t> {
    Cluster(ClusterChoice<'t>),
    NotForwarding,
    /// Weighted clusters whose runtime weights sum to 0.
    NoWeight,
}

/// The cluster of a forwarding route, resolved for this request.
fn cluster_choice<'t>(entry: &'t Route, req: &RequestHead, random_value: u64, runtime: &Snapshot) -> Choice<'t> {
    let Action::Route(action) = &entry.action else {
        return Choice::NotForwarding;
    };
    Choice::Cluster(match &action.cluster {
        ClusterSpecifier::Cluster(name) => ClusterChoice { name: Cow::Borrowed(name), weighted: None },
        // Only the first value of the (untrusted) header is used; missing means "".
        ClusterSpecifier::ClusterHeader(h) => {
            ClusterChoice { name: Cow::Owned(header_text(req, h).into_owned()), weighted: None }
        }
        ClusterSpecifier::Weighted(w) => {
            let Some(cw) = weighted::pick_cluster_in(w, req, random_value, runtime) else {
                return Choice::NoWeight;
            };
            let name = match &cw.target {
                WeightedTarget::Name(n) => Cow::Borrowed(n.as_str()),
                WeightedTarget::Header(h) => Cow::Owned(header_text(req, h).into_owned()),
            };
            ClusterChoice { name, weighted: Some(cw) }
        }
    })
}

/// The virtual cluster a request belongs to (route-check's `virtual_cluster_name`):
/// the first whose header matchers all match, `other` when the virtual host defines
/// some but none matched, `""` when it defines none.
pub fn virtual_cluster_name<'a>(vh: &'a VirtualHost, req: &RequestHead) -> &'a str {
    if vh.virtual_clusters.is_empty() {
        return "";
    }
    vh.virtual_clusters.iter().find(|vc| headers_match(&vc.headers, req)).map(|vc| vc.name.as_str()).unwrap_or("other")
}
