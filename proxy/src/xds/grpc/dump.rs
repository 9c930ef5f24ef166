//! `/config_dump` under ADS, in Envoy's shape, from what the client has in force:
//! `dynamic_listeners` (`active_state`, or `warming_state` while its routes or secrets
//! have not arrived), `dynamic_active_clusters` and `dynamic_warming_clusters` (a CDS
//! cluster waiting for its endpoints or secrets), `dynamic_route_configs` (RDS), each with the
//! `version_info` of the update that last changed it and `last_updated` (a state of
//! the world update that leaves a resource as it was keeps its version and time, as
//! Envoy's listener and cluster managers skip an unchanged resource), and an
//! `EndpointsConfigDump` (`static_endpoint_configs` for static clusters,
//! `dynamic_endpoint_configs` for CDS ones) that the admin handler shows with
//! `?include_eds`. The pieces are the file-based dump's ([`crate::xds::dump`]).

use std::time::SystemTime;

use sluice_config::cluster::ClusterLoadAssignment;
use sluice_config::dump::{Dump, Json};
use sluice_config::listener::Listener;

use super::{AdsXds, Sub};
use crate::xds::dump::{
    dump, dynamic_cluster, dynamic_endpoint_config, dynamic_listener, dynamic_route_config, endpoints_dump,
    static_endpoint_config, statics, Parts,
};

impl<T> Sub<T> {
    /// The version and time shown for resource `name` (the update that last changed it).
    fn shown(&self, name: &str, now: SystemTime) -> (&str, SystemTime) {
        self.shown.get(name).map(|(v, at)| (v.as_str(), *at)).unwrap_or((self.version_info.as_str(), now))
    }
}

impl AdsXds {
    /// The `/config_dump` body for what is in force (`now`: when inline route
    /// configurations count as loaded), and its `EndpointsConfigDump` (for
    /// `?include_eds`).
    pub fn config_dump(&self, now: SystemTime) -> (String, String) {
        let listeners: Vec<Listener> = self.lds.as_ref().map(Sub::active).unwrap_or_default();
        let clusters = self.cds.as_ref().map(Sub::active).unwrap_or_default();
        let endpoints = self.eds.active();
        let routes = self.rds_routes(&listeners, &self.rds.active());
        let secrets = self.sds_secrets(&listeners, &clusters, &self.sds.active());
        let warming = self.warming_clusters(&clusters, &endpoints, &secrets);
        let b = &self.bootstrap;

        let (static_listeners, static_clusters, static_routes) = statics(b, listeners.iter(), now);
        let dynamic_listeners: Vec<Json> = self
            .lds
            .iter()
            .flat_map(|s| s.items.iter().map(move |(n, (_, l))| (s, n, l)))
            .map(|(s, n, l)| {
                let (v, at) = s.shown(n, now);
                let ready = sluice_config::xds::rds_ready(l, &routes) && sluice_config::xds::sds_ready(l, &secrets);
                dynamic_listener(l, v, at, !ready)
            })
            .collect();
        let (mut active, mut warm) = (Vec::new(), Vec::new());
        let mut dynamic_endpoints = Vec::new();
        if let Some(s) = &self.cds {
            for (n, (_, c)) in &s.items {
                let (v, at) = s.shown(n, now);
                if warming.contains(&c.name.as_str()) {
                    warm.push(dynamic_cluster(c, v, at));
                    continue;
                }
                active.push(dynamic_cluster(c, v, at));
                dynamic_endpoints.push(self.endpoint_config(c, &endpoints, now));
            }
        }
        let static_endpoints: Vec<Json> = b
            .clusters
            .iter()
            .map(|c| match super::eds_name(c) {
                Some(name) => {
                    let empty = ClusterLoadAssignment { cluster_name: name.clone(), endpoints: Vec::new() };
                    static_endpoint_config(endpoints.iter().find(|e| e.cluster_name == name).unwrap_or(&empty))
                }
                None => static_endpoint_config(&c.load_assignment),
            })
            .collect();
        let dynamic_routes: Vec<Json> = self
            .rds
            .items
            .iter()
            .filter(|(n, _)| self.rds.names.contains(n))
            .map(|(n, (_, rc))| {
                let (v, at) = self.rds.shown(n, now);
                dynamic_route_config(rc, v, at)
            })
            .collect();

        let version = |s: Option<&str>| Json::from(s.unwrap_or_default());
        let main = dump(Parts {
            bootstrap: b.dump(),
            listeners: Json::obj()
                .with("version_info", version(self.lds.as_ref().map(|s| s.version_info.as_str())))
                .with("static_listeners", Json::Arr(static_listeners))
                .with("dynamic_listeners", Json::Arr(dynamic_listeners)),
            clusters: Json::obj()
                .with("version_info", version(self.cds.as_ref().map(|s| s.version_info.as_str())))
                .with("static_clusters", Json::Arr(static_clusters))
                .with("dynamic_active_clusters", Json::Arr(active))
                .with("dynamic_warming_clusters", Json::Arr(warm)),
            routes: Json::obj()
                .with("static_route_configs", Json::Arr(static_routes))
                .with("dynamic_route_configs", Json::Arr(dynamic_routes)),
        });
        (main, endpoints_dump(static_endpoints, dynamic_endpoints))
    }

    /// The endpoints of `c` as its dump entry: over ADS the assignment in force (with
    /// its version and time; none yet: empty), otherwise its own.
    fn endpoint_config(
        &self,
        c: &sluice_config::cluster::Cluster,
        endpoints: &[ClusterLoadAssignment],
        now: SystemTime,
    ) -> Json {
        match super::eds_name(c) {
            Some(name) => {
                let empty = ClusterLoadAssignment { cluster_name: name.clone(), endpoints: Vec::new() };
                let cla = endpoints.iter().find(|e| e.cluster_name == name).unwrap_or(&empty);
                let (v, at) = self.eds.shown(&name, now);
                dynamic_endpoint_config(cla, v, at)
            }
            None => static_endpoint_config(&c.load_assignment),
        }
    }
}
