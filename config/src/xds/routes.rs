//! RDS in the effective config: each HCM with `rds` gets the route configuration of its
//! (file, `route_config_name`) from the RDS subscriptions in force; a listener with an
//! HCM whose routes have not arrived is warming and left out of the effective config
//! (Envoy's listener warming: it does not accept until its routes arrived).

use crate::hcm::HttpConnectionManager;
use crate::listener::{Listener, NetworkFilterKind};
use crate::route::RouteConfiguration;

/// The route configuration one RDS subscription holds.
#[derive(Debug, Clone, PartialEq)]
pub struct RdsRoute {
    /// The file (`config_source`'s path).
    pub path: String,
    pub route_config_name: String,
    /// None: nothing arrived yet and the initial fetch has not timed out (warming).
    pub route_config: Option<RouteConfiguration>,
}

/// The HCMs of `l` (every filter chain, the default one included).
pub fn hcms_mut(l: &mut Listener) -> impl Iterator<Item = &mut HttpConnectionManager> {
    l.filter_chains.iter_mut().chain(l.default_filter_chain.iter_mut()).flat_map(|c| {
        c.filters.iter_mut().filter_map(|f| match &mut f.kind {
            NetworkFilterKind::HttpConnectionManager(h) => Some(&mut **h),
            _ => None,
        })
    })
}

/// The HCMs of `l`.
pub fn hcms(l: &Listener) -> impl Iterator<Item = &HttpConnectionManager> {
    l.filter_chains.iter().chain(l.default_filter_chain.iter()).flat_map(|c| {
        c.filters.iter().filter_map(|f| match &f.kind {
            NetworkFilterKind::HttpConnectionManager(h) => Some(&**h),
            _ => None,
        })
    })
}

fn find<'r>(routes: &'r [RdsRoute], hcm: &HttpConnectionManager) -> Option<&'r RouteConfiguration> {
    let rds = hcm.rds.as_ref()?;
    routes
        .iter()
        .find(|r| r.path == rds.config_source.path && r.route_config_name == rds.route_config_name)
        .and_then(|r| r.route_config.as_ref())
}

/// Whether every RDS HCM of `l` has its routes (a listener without RDS always has).
pub fn rds_ready(l: &Listener, routes: &[RdsRoute]) -> bool {
    hcms(l).all(|h| h.rds.is_none() || find(routes, h).is_some())
}

/// Put the RDS route configurations into `l`'s HCMs (those still warming keep their
/// empty one).
pub fn assign_routes(l: &mut Listener, routes: &[RdsRoute]) {
    for h in hcms_mut(l) {
        if let Some(rc) = find(routes, h) {
            h.route_config = rc.clone();
        }
    }
}
