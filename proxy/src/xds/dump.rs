//! `/config_dump` with dynamic resources, in Envoy's shape: a `BootstrapConfigDump`
//! holding the bootstrap as written (static resources and `dynamic_resources`), a
//! `ListenersConfigDump` (`static_listeners`, `dynamic_listeners[].active_state` with
//! `version_info` and `last_updated`) and a `ClustersConfigDump` (`static_clusters`,
//! `dynamic_active_clusters` with `version_info` and `last_updated`) and a
//! `RoutesConfigDump` (`static_route_configs`: the inline ones; `dynamic_route_configs`:
//! those of RDS, with `version_info` and `last_updated`). An LDS listener waiting for
//! its routes or secrets shows under `warming_state` instead of `active_state`.
//!
//! The pieces ([`dynamic_listener`], [`dynamic_cluster`], [`dynamic_route_config`],
//! [`dump`]) are shared with the ADS client's dump ([`super::grpc::dump`]).

use std::time::SystemTime;

use sluice_config::cluster::{Cluster, ClusterLoadAssignment};
use sluice_config::dump::{any, Dump, Json};
use sluice_config::listener::Listener;
use sluice_config::route::RouteConfiguration;
use sluice_config::xds::Resources;

use super::rds::RdsSubscription;
use super::FileXds;
use crate::router::formatter::rfc3339;

const LISTENER: &str = "envoy.config.listener.v3.Listener";
const CLUSTER: &str = "envoy.config.cluster.v3.Cluster";
const ROUTE: &str = "envoy.config.route.v3.RouteConfiguration";
const ENDPOINTS: &str = "envoy.config.endpoint.v3.ClusterLoadAssignment";

/// A `ListenersConfigDump.DynamicListener`: `l` under `active_state`, or
/// `warming_state` while it waits for its routes.
pub fn dynamic_listener(l: &Listener, version_info: &str, at: SystemTime, warming: bool) -> Json {
    let state = Json::obj()
        .with("version_info", version_info)
        .with("listener", any(LISTENER, l.dump()))
        .with("last_updated", rfc3339(at));
    Json::obj().with("name", l.name.as_str()).with(if warming { "warming_state" } else { "active_state" }, state)
}

/// A `ClustersConfigDump.DynamicCluster`.
pub fn dynamic_cluster(c: &Cluster, version_info: &str, at: SystemTime) -> Json {
    Json::obj()
        .with("version_info", version_info)
        .with("cluster", any(CLUSTER, c.dump()))
        .with("last_updated", rfc3339(at))
}

/// A `RoutesConfigDump.DynamicRouteConfig`.
pub fn dynamic_route_config(rc: &RouteConfiguration, version_info: &str, at: SystemTime) -> Json {
    Json::obj()
        .with("version_info", version_info)
        .with("route_config", any(ROUTE, rc.dump()))
        .with("last_updated", rfc3339(at))
}

/// An `EndpointsConfigDump.DynamicEndpointConfig`.
pub fn dynamic_endpoint_config(cla: &ClusterLoadAssignment, version_info: &str, at: SystemTime) -> Json {
    Json::obj()
        .with("version_info", version_info)
        .with("endpoint_config", any(ENDPOINTS, cla.dump()))
        .with("last_updated", rfc3339(at))
}

/// An `EndpointsConfigDump.StaticEndpointConfig`.
pub fn static_endpoint_config(cla: &ClusterLoadAssignment) -> Json {
    Json::obj().with("endpoint_config", any(ENDPOINTS, cla.dump()))
}

/// The parts of one dump: the bootstrap as written and each `*ConfigDump`.
pub struct Parts {
    pub bootstrap: Json,
    pub listeners: Json,
    pub clusters: Json,
    pub routes: Json,
}

/// The static listeners and clusters of `b`, and the inline route configurations of
/// `listeners` (loaded at `now`).
pub fn statics<'a>(
    b: &'a sluice_config::Bootstrap,
    listeners: impl Iterator<Item = &'a Listener>,
    now: SystemTime,
) -> (Vec<Json>, Vec<Json>, Vec<Json>) {
    let static_listeners =
        b.listeners.iter().map(|l| Json::obj().with("listener", any(LISTENER, l.dump()))).collect::<Vec<_>>();
    let static_clusters =
        b.clusters.iter().map(|c| Json::obj().with("cluster", any(CLUSTER, c.dump()))).collect::<Vec<_>>();
    let static_routes = b
        .listeners
        .iter()
        .chain(listeners)
        .flat_map(sluice_config::xds::hcms)
        .filter(|h| h.rds.is_none())
        .map(|h| Json::obj().with("route_config", any(ROUTE, h.route_config.dump())).with("last_updated", rfc3339(now)))
        .collect::<Vec<_>>();
    (static_listeners, static_clusters, static_routes)
}

/// The `ConfigDump` of `parts`, rendered.
pub fn dump(parts: Parts) -> String {
    let configs = vec![
        any("envoy.admin.v3.BootstrapConfigDump", Json::obj().with("bootstrap", parts.bootstrap)),
        any("envoy.admin.v3.ListenersConfigDump", parts.listeners),
        any("envoy.admin.v3.ClustersConfigDump", parts.clusters),
        any("envoy.admin.v3.RoutesConfigDump", parts.routes),
    ];
    Json::obj().with("configs", Json::Arr(configs)).render()
}

/// An `EndpointsConfigDump` as the `Any` that `/config_dump?include_eds` adds to the
/// configs, rendered.
pub fn endpoints_dump(static_endpoint_configs: Vec<Json>, dynamic_endpoint_configs: Vec<Json>) -> String {
    let e = Json::obj()
        .with("static_endpoint_configs", Json::Arr(static_endpoint_configs))
        .with("dynamic_endpoint_configs", Json::Arr(dynamic_endpoint_configs));
    any("envoy.admin.v3.EndpointsConfigDump", e).render()
}

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
    let dynamic_listeners = lds
        .map(|(r, at)| {
            r.items
                .iter()
                .map(|l| {
                    let warming =
                        !(sluice_config::xds::rds_ready(l, &routes) && sluice_config::xds::sds_ready(l, &secrets));
                    dynamic_listener(l, &r.version_info, at, warming)
                })
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    let dynamic_clusters = cds
        .map(|(r, at)| r.items.iter().map(|c| dynamic_cluster(c, &r.version_info, at)).collect::<Vec<_>>())
        .unwrap_or_default();
    let (static_listeners, static_clusters, static_routes) =
        statics(b, lds.iter().flat_map(|(r, _)| r.items.iter()), now);
    let listeners = Json::obj()
        .with("version_info", lds.map(|(r, _)| r.version_info.as_str()).unwrap_or_default())
        .with("static_listeners", Json::Arr(static_listeners))
        .with("dynamic_listeners", Json::Arr(dynamic_listeners));
    let clusters = Json::obj()
        .with("version_info", cds.map(|(r, _)| r.version_info.as_str()).unwrap_or_default())
        .with("static_clusters", Json::Arr(static_clusters))
        .with("dynamic_active_clusters", Json::Arr(dynamic_clusters));
    let dynamic_routes = rds
        .iter()
        .filter_map(|s| {
            let rc = s.route_config.as_ref().filter(|_| s.sub.last_updated.is_some())?;
            Some(dynamic_route_config(rc, &s.sub.active.version_info, s.sub.last_updated.unwrap_or(now)))
        })
        .collect::<Vec<_>>();
    let routes = Json::obj()
        .with("static_route_configs", Json::Arr(static_routes))
        .with("dynamic_route_configs", Json::Arr(dynamic_routes));
    dump(Parts { bootstrap: b.dump(), listeners, clusters, routes })
}
