//! Dump of the bootstrap, admin and addresses.

use super::{list, Dump, Json};
use crate::address::{CidrRange, SocketAddress};
use crate::bootstrap::{Admin, Bootstrap};
use crate::runtime::{LayerKind, LayeredRuntime};

impl Dump for Bootstrap {
    fn dump(&self) -> Json {
        Json::obj()
            .with_opt("admin", self.admin.as_ref().map(Dump::dump))
            .with(
                "static_resources",
                Json::obj().with("listeners", list(&self.listeners)).with("clusters", list(&self.clusters)),
            )
            .with_opt("dynamic_resources", self.dynamic_resources.as_ref().map(Dump::dump))
            .with_opt("overload_manager", self.overload_manager.as_ref().map(Dump::dump))
            .with_opt("layered_runtime", self.layered_runtime.as_ref().map(Dump::dump))
    }
}

/// The layers as configured: a static layer's struct as written, a disk layer's
/// settings, an empty admin layer.
impl Dump for LayeredRuntime {
    fn dump(&self) -> Json {
        let layers = self
            .layers
            .iter()
            .map(|l| {
                let j = Json::obj().with("name", l.name.as_str());
                match &l.kind {
                    LayerKind::Static { config, .. } => j.with("static_layer", config.clone()),
                    LayerKind::Disk(d) => j.with(
                        "disk_layer",
                        Json::obj()
                            .with("symlink_root", d.symlink_root.as_str())
                            .with("subdirectory", d.subdirectory.as_str())
                            .with("append_service_cluster", d.append_service_cluster),
                    ),
                    LayerKind::Admin => j.with("admin_layer", Json::obj()),
                }
            })
            .collect::<Vec<_>>();
        Json::obj().with("layers", Json::Arr(layers))
    }
}

impl Dump for Admin {
    fn dump(&self) -> Json {
        Json::obj().with("address", self.address.dump()).with("ignore_global_conn_limit", self.ignore_global_conn_limit)
    }
}

/// A `core.v3.Address` holding a `socket_address`.
impl Dump for SocketAddress {
    fn dump(&self) -> Json {
        Json::obj().with(
            "socket_address",
            Json::obj()
                .with("address", &self.address)
                .with("port_value", self.port_value as u32)
                .with("protocol", "TCP")
                .with("ipv4_compat", self.ipv4_compat),
        )
    }
}

impl Dump for CidrRange {
    fn dump(&self) -> Json {
        Json::obj().with("address_prefix", self.address.to_string()).with("prefix_len", self.prefix_len as u32)
    }
}

impl Dump for crate::xds::DynamicResources {
    fn dump(&self) -> Json {
        Json::obj()
            .with_opt("lds_config", self.lds_config.as_ref().map(Dump::dump))
            .with_opt("cds_config", self.cds_config.as_ref().map(Dump::dump))
            .with_opt("ads_config", self.ads_config.as_ref().map(Dump::dump))
    }
}

impl Dump for crate::xds::ads::AdsConfig {
    fn dump(&self) -> Json {
        let api_type = match self.api_type {
            crate::xds::ads::ApiType::Grpc => "GRPC",
            crate::xds::ads::ApiType::DeltaGrpc => "DELTA_GRPC",
        };
        let service = Json::obj().with("envoy_grpc", Json::obj().with("cluster_name", self.cluster_name.as_str()));
        Json::obj()
            .with("api_type", api_type)
            .with("transport_api_version", "V3")
            .with("grpc_services", vec![service])
            .with("set_node_on_first_message_only", self.set_node_on_first_message_only)
    }
}

impl Dump for crate::xds::ConfigSource {
    fn dump(&self) -> Json {
        if self.ads {
            return Json::obj().with("ads", Json::obj()).with("resource_api_version", "V3");
        }
        let source = Json::obj()
            .with("path", self.path.as_str())
            .with_opt("watched_directory", self.watched_directory.as_deref().map(|w| Json::obj().with("path", w)));
        Json::obj()
            .with("path_config_source", source)
            .with("resource_api_version", "V3")
            .with_opt("initial_fetch_timeout", self.initial_fetch_timeout)
    }
}
