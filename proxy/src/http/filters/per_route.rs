//! `typed_per_filter_config` compiled per route, virtual host and route configuration,
//! and how a stream's route resolves it (Envoy's `PerFilterConfigs`):
//!
//! - a filter is off for a route when the most specific level that names it says
//!   `disabled: true`, on when that level names it otherwise (which is how a route
//!   enables a filter the connection manager lists as `disabled`), and as the
//!   connection manager's list says when no level names it;
//! - a filter's per-route config is the most specific one (route, then virtual host,
//!   then route configuration); CORS reads every level, route first.
//!
//! Compiled once per config; entries for names no filter has are validated and unused,
//! as in Envoy. A config of another filter's type under a filter's name is unused too
//! (Envoy's typed lookup finds nothing).

use std::sync::Arc;

use sluice_config::filters::cors::CorsPolicy;
use sluice_config::filters::{PerFilterConfigs, PerRouteConfig};
use sluice_config::route::{Action, RouteConfiguration};

use super::local_ratelimit::LocalRateLimitConfig;
use super::ratelimit::descriptors::RateLimitPolicy;
use super::rbac::RbacEngines;
use super::{CounterSet, HttpFilterConfig};

/// A per-route config, compiled.
#[derive(Debug, Clone)]
pub enum PerRouteFilter {
    Buffer(sluice_config::filters::buffer::BufferPerRoute),
    Compressor(Arc<crate::http::filters::compressor::CompressorOverrides>),
    Cors(Arc<CorsPolicy>),
    Csrf(Arc<sluice_config::filters::csrf::CsrfPolicy>),
    ExtAuthz(Arc<sluice_config::filters::ext_authz::ExtAuthzPerRoute>),
    HeaderToMetadata(Arc<crate::http::filters::header_to_metadata::HeaderToMetadataConfig>),
    LocalRateLimit(Arc<LocalRateLimitConfig>),
    Rbac(Arc<RbacEngines>),
    JwtAuthn(super::jwt_authn::JwtRoute),
    Lua(super::lua::LuaRoute),
    RateLimit(sluice_config::filters::ratelimit::RateLimitPerRoute),
}

/// One level's word on one filter.
#[derive(Debug, Clone)]
pub struct PerRoute {
    pub disabled: bool,
    /// `None`: enabled without a config of its own here.
    pub config: Option<PerRouteFilter>,
}

/// One level: an entry per filter of the chain (by index), `None` where it names none.
type Level = Vec<Option<PerRoute>>;

#[derive(Debug, Default)]
struct VhostFilters {
    own: Level,
    routes: Vec<Level>,
    /// The older `cors` fields: the virtual host's and each route's.
    cors: Option<Arc<CorsPolicy>>,
    route_cors: Vec<Option<Arc<CorsPolicy>>>,
    /// Each route's `metadata` (the Lua filter's `metadata()`).
    route_metadata: Vec<sluice_config::metadata::Metadata>,
    /// `rate_limits`: the virtual host's, and each forwarding route's with its
    /// `include_vh_rate_limits` (`None`: a route without a route entry).
    rate_limits: Arc<RateLimitPolicy>,
    route_rate_limits: Vec<Option<(Arc<RateLimitPolicy>, bool)>>,
}

/// The `rate_limits` a stream's route entry sees.
#[derive(Debug, Clone, Copy)]
pub struct RouteRateLimits<'a> {
    pub route: &'a Arc<RateLimitPolicy>,
    pub vhost: &'a Arc<RateLimitPolicy>,
    pub include_vh_rate_limits: bool,
}

/// Every level's per-filter configs of one route configuration.
#[derive(Debug, Default)]
pub struct RouteFilterTable {
    rc: Level,
    vhosts: Vec<VhostFilters>,
}

/// Where a stream's route sits: virtual host, and route within it (`None` for the
/// `require_tls` redirect).
pub type RoutePos = (usize, Option<usize>);

impl RouteFilterTable {
    /// Compile; errors name the config path (`path` is the route configuration's).
    pub fn new(
        rc: &RouteConfiguration,
        filters: &[HttpFilterConfig],
        counters: &mut CounterSet,
        path: &str,
    ) -> Result<RouteFilterTable, String> {
        let rc_level =
            level(&rc.typed_per_filter_config, filters, counters, &format!("{path}.typed_per_filter_config"))?;
        let mut vhosts = Vec::with_capacity(rc.virtual_hosts.len());
        for (i, vh) in rc.virtual_hosts.iter().enumerate() {
            let vp = format!("{path}.virtual_hosts[{i}]");
            let own = level(&vh.typed_per_filter_config, filters, counters, &format!("{vp}.typed_per_filter_config"))?;
            let mut routes = Vec::with_capacity(vh.routes.len());
            let mut route_cors = Vec::with_capacity(vh.routes.len());
            let mut route_rate_limits = Vec::with_capacity(vh.routes.len());
            for (j, r) in vh.routes.iter().enumerate() {
                route_rate_limits.push(match &r.action {
                    Action::Route(a) => {
                        Some((Arc::new(RateLimitPolicy::new(&a.rate_limits)), a.include_vh_rate_limits))
                    }
                    _ => None,
                });
                let rp = format!("{vp}.routes[{j}].typed_per_filter_config");
                routes.push(level(&r.typed_per_filter_config, filters, counters, &rp)?);
                route_cors.push(match &r.action {
                    Action::Route(a) => a.cors.clone().map(Arc::new),
                    _ => None,
                });
            }
            let route_metadata = vh.routes.iter().map(|r| r.metadata.clone()).collect();
            vhosts.push(VhostFilters {
                own,
                routes,
                cors: vh.cors.clone().map(Arc::new),
                route_cors,
                route_metadata,
                rate_limits: Arc::new(RateLimitPolicy::new(&vh.rate_limits)),
                route_rate_limits,
            });
        }
        Ok(RouteFilterTable { rc: rc_level, vhosts })
    }

    /// The view of a stream's route (`None`: no route matched).
    pub fn view(&self, pos: Option<RoutePos>) -> RouteView<'_> {
        RouteView { table: self, pos }
    }
}

fn level(
    configs: &PerFilterConfigs,
    filters: &[HttpFilterConfig],
    counters: &mut CounterSet,
    path: &str,
) -> Result<Level, String> {
    if configs.is_empty() {
        return Ok(Vec::new());
    }
    let mut out: Level = vec![None; filters.len()];
    for e in &configs.0 {
        let Some(k) = filters.iter().position(|f| f.name == e.name) else {
            continue;
        };
        let p = format!("{path}.{}", e.name);
        let config = match &e.config {
            None => None,
            Some(PerRouteConfig::Buffer(c)) => Some(PerRouteFilter::Buffer(*c)),
            Some(PerRouteConfig::Compressor(c)) => match c {
                sluice_config::filters::compressor::CompressorPerRoute::Disabled => {
                    out[k] = Some(PerRoute { disabled: true, config: None });
                    continue;
                }
                sluice_config::filters::compressor::CompressorPerRoute::Overrides {
                    remove_accept_encoding_header,
                    compressor_library,
                } => {
                    Some(PerRouteFilter::Compressor(Arc::new(crate::http::filters::compressor::CompressorOverrides {
                        remove_accept_encoding_header: *remove_accept_encoding_header,
                        library: compressor_library.as_ref().map(|l| l.kind.clone()),
                    })))
                }
            },
            Some(PerRouteConfig::Cors(c)) => Some(PerRouteFilter::Cors(Arc::new(c.clone()))),
            Some(PerRouteConfig::Csrf(c)) => Some(PerRouteFilter::Csrf(Arc::new(c.clone()))),
            Some(PerRouteConfig::ExtAuthz(c)) => Some(PerRouteFilter::ExtAuthz(Arc::new(c.clone()))),
            Some(PerRouteConfig::HeaderToMetadata(c)) => Some(PerRouteFilter::HeaderToMetadata(Arc::new(
                crate::http::filters::header_to_metadata::HeaderToMetadataConfig::new(c, counters),
            ))),
            Some(PerRouteConfig::LocalRateLimit(c)) => Some(PerRouteFilter::LocalRateLimit(Arc::new(
                LocalRateLimitConfig::new(c, counters).map_err(|e| format!("{p}: {e}"))?,
            ))),
            Some(PerRouteConfig::Rbac(c)) => Some(PerRouteFilter::Rbac(Arc::new(RbacEngines::per_route(c)))),
            Some(PerRouteConfig::Lua(c)) => match c {
                sluice_config::filters::lua::LuaPerRoute::Disabled => {
                    out[k] = Some(PerRoute { disabled: true, config: None });
                    continue;
                }
                sluice_config::filters::lua::LuaPerRoute::Name(n) => {
                    let super::FilterFactory::Lua(lc) = &filters[k].factory else { continue };
                    let code = lc
                        .named(n)
                        .ok_or_else(|| format!("{p}.name: no source code named '{n}' in the filter's source_codes"))?;
                    Some(PerRouteFilter::Lua(Arc::clone(code)))
                }
                sluice_config::filters::lua::LuaPerRoute::SourceCode(s) => {
                    if !matches!(filters[k].factory, super::FilterFactory::Lua(_)) {
                        continue;
                    }
                    let code = super::lua::LuaConfig::compile_route(s).map_err(|e| format!("{}: {e}", s.path))?;
                    Some(PerRouteFilter::Lua(code))
                }
            },
            Some(PerRouteConfig::RateLimit(c)) => Some(PerRouteFilter::RateLimit(*c)),
            Some(PerRouteConfig::JwtAuthn(c)) => {
                Some(PerRouteFilter::JwtAuthn(super::jwt_authn::JwtRoute::new(c, &filters[k].factory)))
            }
        };
        out[k] = Some(PerRoute { disabled: e.disabled, config });
    }
    Ok(out)
}

/// A stream's route, as the filters see it.
#[derive(Debug, Clone, Copy)]
pub struct RouteView<'a> {
    table: &'a RouteFilterTable,
    pos: Option<RoutePos>,
}

impl<'a> RouteView<'a> {
    /// Route, virtual host, route configuration: the levels' entries for filter `k`.
    fn levels(&self, k: usize) -> [Option<&'a PerRoute>; 3] {
        let t = self.table;
        let at = |l: &'a Level| l.get(k).and_then(Option::as_ref);
        let vh = self.pos.and_then(|(i, _)| t.vhosts.get(i));
        let route = self.pos.and_then(|(_, j)| j).and_then(|j| vh.and_then(|v| v.routes.get(j)));
        [route.and_then(at), vh.and_then(|v| at(&v.own)), at(&t.rc)]
    }

    /// Whether the route turns filter `k` off (`Some(true)`) or on (`Some(false)`).
    pub fn disabled(&self, k: usize) -> Option<bool> {
        self.pos?;
        self.levels(k).into_iter().flatten().next().map(|e| e.disabled)
    }

    /// The most specific per-route config of filter `k`.
    pub fn most_specific(&self, k: usize) -> Option<&'a PerRouteFilter> {
        self.pos?;
        self.levels(k).into_iter().flatten().find_map(|e| e.config.as_ref())
    }

    /// Every level's config of filter `k`, the route's first.
    pub fn all(&self, k: usize) -> impl Iterator<Item = &'a PerRouteFilter> {
        let levels = if self.pos.is_some() { self.levels(k) } else { [None; 3] };
        levels.into_iter().flatten().filter_map(|e| e.config.as_ref())
    }

    /// The route's `metadata` (`None`: no route, or the `require_tls` redirect).
    pub fn route_metadata(&self) -> Option<&'a sluice_config::metadata::Metadata> {
        let (i, j) = self.pos?;
        self.table.vhosts.get(i)?.route_metadata.get(j?)
    }

    /// The older `cors` fields: the route's, then the virtual host's.
    pub fn cors_fields(&self) -> [Option<&'a Arc<CorsPolicy>>; 2] {
        let Some((i, j)) = self.pos else {
            return [None, None];
        };
        let Some(vh) = self.table.vhosts.get(i) else {
            return [None, None];
        };
        let route = j.and_then(|j| vh.route_cors.get(j)).and_then(Option::as_ref);
        [route, vh.cors.as_ref()]
    }

    /// The route entry's `rate_limits` and its virtual host's (`None`: no route, or a
    /// route without a route entry: a redirect or a direct response).
    pub fn rate_limits(&self) -> Option<RouteRateLimits<'a>> {
        let (i, j) = self.pos?;
        let vh = self.table.vhosts.get(i)?;
        let (route, include) = vh.route_rate_limits.get(j?)?.as_ref()?;
        Some(RouteRateLimits { route, vhost: &vh.rate_limits, include_vh_rate_limits: *include })
    }
}
