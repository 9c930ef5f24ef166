//! RDS from files: the route configuration named by an HCM's `rds.route_config_name`,
//! from the `DiscoveryResponse` file of its `rds.config_source` (Envoy's
//! `RdsRouteConfigSubscription` over a filesystem subscription).
//!
//! One subscription per (file, name), shared by every HCM that names both; its stats
//! are registered under `http.<stat_prefix>.rds.<route_config_name>.` of each (`:` in
//! the name becomes `_`). As Envoy: a file must hold exactly one resource, named
//! `route_config_name` (another count or name is `update_rejected`); a file with no
//! resources counts `update_empty` and keeps the routes in force; `config_reload`
//! counts the updates that changed the routes.
//!
//! Warming: until its routes arrive, a listener whose HCM uses RDS is left out of the
//! effective config (not opened; in `/config_dump` under `warming_state`). Envoy's own
//! file subscription ends the wait at the first read whatever it finds; sluice waits
//! while the file does not exist, up to `initial_fetch_timeout` (15 s by default; `0s`:
//! no limit), then serves the listener with an empty route configuration (404 for every
//! request, as Envoy once initialisation gave up). A file that exists but is bad ends
//! the wait the same way, as in Envoy.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use sluice_config::hcm::Rds;
use sluice_config::listener::Listener;
use sluice_config::route::RouteConfiguration;
use sluice_config::xds::{self, RdsRoute, Resources};

use super::Subscription;
use crate::stats::SubscriptionStats;

/// Envoy's default `initial_fetch_timeout`.
const DEFAULT_INITIAL_FETCH_TIMEOUT: Duration = Duration::from_secs(15);

/// One RDS file subscription.
#[derive(Clone)]
pub struct RdsSubscription {
    pub sub: Subscription<RouteConfiguration>,
    pub route_config_name: String,
    /// The routes in force; None while warming.
    pub route_config: Option<RouteConfiguration>,
    /// When warming gives up and serves empty routes (None: never).
    fetch_deadline: Option<Instant>,
}

/// What a read of the file gave.
pub enum RdsRead {
    /// The one route configuration of the file, with its `version_info`.
    Routes(Resources<RouteConfiguration>),
    /// No resources (`update_empty`).
    Empty,
    /// No file yet.
    Missing,
    /// Unreadable or refused (counted; the errors were logged).
    Refused,
}

impl RdsSubscription {
    /// A subscription for `rds`, its file read now (`now`: for the fetch deadline).
    pub fn start(rds: &Rds, now: Instant, wall: SystemTime) -> RdsSubscription {
        let stats = Arc::new(SubscriptionStats::rds());
        let timeout = rds.config_source.initial_fetch_timeout.unwrap_or(DEFAULT_INITIAL_FETCH_TIMEOUT);
        let mut s = RdsSubscription {
            sub: Subscription::new(&rds.config_source, xds::ROUTE_TYPE, stats),
            route_config_name: rds.route_config_name.clone(),
            route_config: None,
            fetch_deadline: (!timeout.is_zero()).then(|| now + timeout),
        };
        match s.read() {
            RdsRead::Routes(r) => s.accept(r, wall),
            RdsRead::Empty | RdsRead::Refused => s.give_up_warming(),
            RdsRead::Missing => {
                tracing::info!(file = %s.sub.source.path, name = %s.route_config_name, "rds: no file yet; listeners using it are warming");
            }
        }
        s
    }

    /// Whether this subscription serves `rds`.
    pub fn serves(&self, rds: &Rds) -> bool {
        self.sub.source.path == rds.config_source.path && self.route_config_name == rds.route_config_name
    }

    /// Read the file and check it holds our route configuration, counting as Envoy.
    pub fn read(&self) -> RdsRead {
        if !Path::new(&self.sub.source.path).exists() {
            self.sub.stats.update_attempt.inc();
            self.sub.stats.update_failure.inc();
            return RdsRead::Missing;
        }
        let r = match self.sub.read() {
            Ok(r) => r,
            Err(errors) => {
                super::log_refused("RDS", &errors);
                return RdsRead::Refused;
            }
        };
        let path = &self.sub.source.path;
        match r.items.as_slice() {
            [] => {
                tracing::info!(file = %path, name = %self.route_config_name, "rds: no route configuration in the file");
                self.sub.stats.update_empty.inc();
                self.sub.stats.update_success.inc();
                RdsRead::Empty
            }
            [rc] if rc.name == self.route_config_name => RdsRead::Routes(r),
            [rc] => {
                self.sub.stats.update_rejected.inc();
                super::log_refused(
                    "RDS",
                    &[format!(
                        "{path}: resources[0].name: Unexpected RDS configuration (expecting {}): {}",
                        self.route_config_name, rc.name
                    )],
                );
                RdsRead::Refused
            }
            many => {
                self.sub.stats.update_rejected.inc();
                super::log_refused(
                    "RDS",
                    &[format!("{path}: resources: Unexpected RDS resource length: {} (expecting 1)", many.len())],
                );
                RdsRead::Refused
            }
        }
    }

    /// Put `r` (one route configuration) in force.
    pub fn accept(&mut self, mut r: Resources<RouteConfiguration>, wall: SystemTime) {
        let rc = r.items.pop();
        if rc.is_some() && rc != self.route_config {
            self.sub.stats.config_reload.inc();
        }
        self.route_config = rc.clone();
        r.items = rc.into_iter().collect();
        self.sub.accept(r, wall);
    }

    /// End warming without routes: an empty route configuration of our name.
    fn give_up_warming(&mut self) {
        if self.route_config.is_none() {
            self.route_config = Some(RouteConfiguration::empty(&self.route_config_name));
        }
    }

    /// Whether warming timed out at `now` (and so ended now).
    pub fn fetch_timed_out(&mut self, now: Instant) -> bool {
        if self.route_config.is_some() || self.fetch_deadline.is_none_or(|d| now < d) {
            return false;
        }
        tracing::warn!(file = %self.sub.source.path, name = %self.route_config_name, "rds: initial fetch timed out; serving empty routes");
        self.sub.stats.init_fetch_timeout.inc();
        self.give_up_warming();
        true
    }

    /// An empty update arrived: warming ends.
    pub fn empty_update(&mut self) -> bool {
        let was_warming = self.route_config.is_none();
        self.give_up_warming();
        was_warming
    }

    pub fn route(&self) -> RdsRoute {
        RdsRoute {
            path: self.sub.source.path.clone(),
            route_config_name: self.route_config_name.clone(),
            route_config: self.route_config.clone(),
        }
    }
}

/// The RDS uses of `listeners`: each HCM's `rds` with its stat prefix.
pub fn uses(listeners: &[Listener]) -> Vec<(String, Rds)> {
    listeners
        .iter()
        .flat_map(xds::hcms)
        .filter_map(|h| h.rds.as_ref().map(|r| (h.stat_prefix.clone(), r.clone())))
        .collect()
}

/// `http.<stat_prefix>.rds.<route_config_name>` (`:` → `_`, as Envoy).
pub fn stat_prefix(hcm_prefix: &str, rds: &Rds) -> String {
    format!("http.{hcm_prefix}.rds.{}", rds.route_config_name.replace(':', "_"))
}
