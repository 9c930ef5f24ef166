//! Dump of the bootstrap, admin and addresses.

use super::{list, Dump, Json};
use crate::address::{CidrRange, SocketAddress};
use crate::bootstrap::{Admin, Bootstrap};

impl Dump for Bootstrap {
    fn dump(&self) -> Json {
        Json::obj()
            .with_opt("admin", self.admin.as_ref().map(Dump::dump))
            .with(
                "static_resources",
                Json::obj().with("listeners", list(&self.listeners)).with("clusters", list(&self.clusters)),
            )
            .with_opt("overload_manager", self.overload_manager.as_ref().map(Dump::dump))
    }
}

impl Dump for Admin {
    fn dump(&self) -> Json {
        Json::obj().with("address", self.address.dump())
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
