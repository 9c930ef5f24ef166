//! `/config_dump` with dynamic resources, in Envoy's shape: a `BootstrapConfigDump`
//! holding the bootstrap as written (static resources and `dynamic_resources`), a
//! `ListenersConfigDump` (`static_listeners`, `dynamic_listeners[].active_state` with
//! `version_info` and `last_updated`) and a `ClustersConfigDump` (`static_clusters`,
//! `dynamic_active_clusters` with `version_info` and `last_updated`) and a
//! `RoutesConfigDump` (`static_route_configs`: the inline ones; `dynamic_route_configs`:
//! those of RDS, with `version_info` and `last_updated`). An LDS listener waiting for
//! its routes or secrets shows under `warming_state` instead of `active_state`.

use std::time::SystemTime;

use sluice_config::cluster::Cluster;
use sluice_config::dump::{any, Dump, Json};
use sluice_config::listener::Listener;
use sluice_config::xds::Resources;

use super::rds::RdsSubscription;
use super::FileXds;
use crate::router::formatter::rfc3339;

const LISTENER: &str = "envoy.config.listener.v3.Listener";
const CLUSTER: &str = "envoy.config.cluster.v3.Cluster";
const ROUTE: &str = "envoy.config.route.v3.RouteConfiguration";

/// The dump of what `x` has in force.
pub fn config_dump(x: &FileXds) -> String {
    config_dump_with(x, None, None, &x.rds, SystemTime::now())
}

/// The dump with `lds`/`cds` (and when they were accepted) and `rds` in place of those
/// in force; `now`: when the inline route configurations were loaded.
pub fn config_dump_with(
    x: &FileXds,
    lds: Option<(&Resources<Listener>, SystemTime)>,
    cds: Option<(&Resources<Cluster>, SystemTime)>,
    rds: &[RdsSubscription],
    now: SystemTime,
) -> String {
    let routes: Vec<sluice_config::xds::RdsRoute> = rds.iter().map(RdsSubscription::route).collect();
    let secrets: Vec<_> = x.sds.iter().map(super::sds::SdsSubscription::entry).collect();
    let lds = lds.or_else(|| x.lds.as_ref().map(|s| (&s.active, s.last_updated.unwrap_or(SystemTime::UNIX_EPOCH))));
    let cds = cds.or_else(|| x.cds.as_ref().map(|s| (&s.active, s.last_updated.unwrap_or(SystemTime::UNIX_EPOCH))));
    let b = &x.bootstrap;
    let static_listeners =
        b.listeners.iter().map(|l| Json::obj().with("listener", any(LISTENER, l.dump()))).collect::<Vec<_>>();
    let dynamic_listeners = lds
        .map(|(r, at)| {
            r.items
                .iter()
                .map(|l| {
                    let state = Json::obj()
                        .with("version_info", r.version_info.as_str())
                        .with("listener", any(LISTENER, l.dump()))
                        .with("last_updated", rfc3339(at));
                    let which =
                        if sluice_config::xds::rds_ready(l, &routes) && sluice_config::xds::sds_ready(l, &secrets) {
                            "active_state"
                        } else {
                            "warming_state"
                        };
                    Json::obj().with("name", l.name.as_str()).with(which, state)
                })
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    let static_clusters =
        b.clusters.iter().map(|c| Json::obj().with("cluster", any(CLUSTER, c.dump()))).collect::<Vec<_>>();
    let dynamic_clusters = cds
        .map(|(r, at)| {
            r.items
                .iter()
                .map(|c| {
                    Json::obj()
                        .with("version_info", r.version_info.as_str())
                        .with("cluster", any(CLUSTER, c.dump()))
                        .with("last_updated", rfc3339(at))
                })
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    let listeners = Json::obj()
        .with("version_info", lds.map(|(r, _)| r.version_info.as_str()).unwrap_or_default())
        .with("static_listeners", Json::Arr(static_listeners))
        .with("dynamic_listeners", Json::Arr(dynamic_listeners));
    let clusters = Json::obj()
        .with("version_info", cds.map(|(r, _)| r.version_info.as_str()).unwrap_or_default())
        .with("static_clusters", Json::Arr(static_clusters))
        .with("dynamic_active_clusters", Json::Arr(dynamic_clusters));
    let all_listeners = b.listeners.iter().chain(lds.iter().flat_map(|(r, _)| r.items.iter()));
    let static_routes = all_listeners
        .flat_map(sluice_config::xds::hcms)
        .filter(|h| h.rds.is_none())
        .map(|h| Json::obj().with("route_config", any(ROUTE, h.route_config.dump())).with("last_updated", rfc3339(now)))
        .collect::<Vec<_>>();
    let dynamic_routes = rds
        .iter()
        .filter_map(|s| {
            let rc = s.route_config.as_ref().filter(|_| s.sub.last_updated.is_some())?;
            Some(
                Json::obj()
                    .with("version_info", s.sub.active.version_info.as_str())
                    .with("route_config", any(ROUTE, rc.dump()))
                    .with("last_updated", rfc3339(s.sub.last_updated.unwrap_or(now))),
            )
        })
        .collect::<Vec<_>>();
    let routes = Json::obj()
        .with("static_route_configs", Json::Arr(static_routes))
        .with("dynamic_route_configs", Json::Arr(dynamic_routes));
    Json::obj()
        .with(
            "configs",
            Json::Arr(vec![
                any("envoy.admin.v3.BootstrapConfigDump", Json::obj().with("bootstrap", b.dump())),
                any("envoy.admin.v3.ListenersConfigDump", listeners),
                any("envoy.admin.v3.ClustersConfigDump", clusters),
                any("envoy.admin.v3.RoutesConfigDump", routes),
            ]),
        )
        .render()
}
