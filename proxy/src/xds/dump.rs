//! `/config_dump` with dynamic resources, in Envoy's shape: a `BootstrapConfigDump`
//! holding the bootstrap as written (static resources and `dynamic_resources`), a
//! `ListenersConfigDump` (`static_listeners`, `dynamic_listeners[].active_state` with
//! `version_info` and `last_updated`) and a `ClustersConfigDump` (`static_clusters`,
//! `dynamic_active_clusters` with `version_info` and `last_updated`).

use std::time::SystemTime;

use sluice_config::cluster::Cluster;
use sluice_config::dump::{any, Dump, Json};
use sluice_config::listener::Listener;
use sluice_config::xds::Resources;

use super::FileXds;
use crate::router::formatter::rfc3339;

const LISTENER: &str = "envoy.config.listener.v3.Listener";
const CLUSTER: &str = "envoy.config.cluster.v3.Cluster";

/// The dump of what `x` has in force.
pub fn config_dump(x: &FileXds) -> String {
    config_dump_with(x, None, None)
}

/// The dump with `lds`/`cds` (and when they were accepted) in place of those in force.
pub fn config_dump_with(
    x: &FileXds,
    lds: Option<(&Resources<Listener>, SystemTime)>,
    cds: Option<(&Resources<Cluster>, SystemTime)>,
) -> String {
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
                    Json::obj().with("name", l.name.as_str()).with("active_state", state)
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
    Json::obj()
        .with(
            "configs",
            Json::Arr(vec![
                any("envoy.admin.v3.BootstrapConfigDump", Json::obj().with("bootstrap", b.dump())),
                any("envoy.admin.v3.ListenersConfigDump", listeners),
                any("envoy.admin.v3.ClustersConfigDump", clusters),
            ]),
        )
        .render()
}
