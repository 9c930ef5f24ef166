//! Dump of listeners, filter chains (with their TLS `transport_socket`), listener
//! filters and tcp_proxy.

use super::{any, enum_name, list, Dump, Json};
use crate::listener::{
    FilterChain, FilterChainMatch, Listener, ListenerFilter, ListenerFilterKind, NetworkFilter, NetworkFilterKind,
};
use crate::tcp_proxy::{TcpProxy, TcpProxyCluster};

impl Dump for Listener {
    fn dump(&self) -> Json {
        Json::obj()
            .with("name", &self.name)
            .with("address", self.address.dump())
            .with_opt("stat_prefix", self.stat_prefix.as_ref())
            .with("use_original_dst", self.use_original_dst)
            .with("bind_to_port", self.bind_to_port)
            .with("per_connection_buffer_limit_bytes", self.per_connection_buffer_limit_bytes)
            .with("listener_filters", list(&self.listener_filters))
            .with("listener_filters_timeout", self.listener_filters_timeout)
            .with("continue_on_listener_filters_timeout", self.continue_on_listener_filters_timeout)
            .with_opt("tcp_backlog_size", self.tcp_backlog_size)
            .with("filter_chains", list(&self.filter_chains))
            .with_opt("default_filter_chain", self.default_filter_chain.as_ref().map(Dump::dump))
            .with_opt("ignore_global_conn_limit", self.ignore_global_conn_limit.then_some(true))
            .with_opt("max_connections_to_accept_per_socket_event", self.max_connections_to_accept_per_socket_event)
    }
}

impl Dump for ListenerFilter {
    fn dump(&self) -> Json {
        let (type_name, options) = match self.kind {
            ListenerFilterKind::OriginalDst => {
                ("envoy.extensions.filters.listener.original_dst.v3.OriginalDst", Json::obj())
            }
            ListenerFilterKind::TlsInspector(o) => (
                "envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector",
                Json::obj()
                    .with_opt("max_client_hello_size", o.max_client_hello_size)
                    .with_opt("initial_read_buffer_size", o.initial_read_buffer_size)
                    .with(
                        "close_connection_on_client_hello_parsing_errors",
                        o.close_connection_on_client_hello_parsing_errors,
                    ),
            ),
            ListenerFilterKind::HttpInspector => {
                ("envoy.extensions.filters.listener.http_inspector.v3.HttpInspector", Json::obj())
            }
        };
        Json::obj().with("name", &self.name).with("typed_config", any(type_name, options))
    }
}

impl Dump for FilterChain {
    fn dump(&self) -> Json {
        Json::obj()
            .with("name", &self.name)
            .with("filter_chain_match", self.filter_chain_match.dump())
            .with("filters", list(&self.filters))
            .with_opt("transport_socket", self.transport_socket.as_ref().map(super::tls::downstream))
            .with_opt("transport_socket_connect_timeout", self.transport_socket_connect_timeout)
    }
}

impl Dump for FilterChainMatch {
    fn dump(&self) -> Json {
        Json::obj()
            .with_opt("destination_port", self.destination_port.map(u32::from))
            .with("prefix_ranges", list(&self.prefix_ranges))
            .with("server_names", self.server_names.clone())
            .with("transport_protocol", &self.transport_protocol)
            .with("application_protocols", self.application_protocols.clone())
            .with("direct_source_prefix_ranges", list(&self.direct_source_prefix_ranges))
            .with("source_type", enum_name(self.source_type))
            .with("source_prefix_ranges", list(&self.source_prefix_ranges))
            .with("source_ports", self.source_ports.iter().map(|p| *p as u32).collect::<Vec<_>>())
    }
}

impl Dump for NetworkFilter {
    fn dump(&self) -> Json {
        let typed = match &self.kind {
            NetworkFilterKind::TcpProxy(tp) => any("envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy", tp.dump()),
            NetworkFilterKind::HttpConnectionManager(hcm) => {
                any("envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager", hcm.dump())
            }
        };
        Json::obj().with("name", &self.name).with("typed_config", typed)
    }
}

impl Dump for TcpProxy {
    fn dump(&self) -> Json {
        let j = Json::obj().with("stat_prefix", &self.stat_prefix);
        let j = match &self.cluster {
            TcpProxyCluster::Cluster(c) => j.with("cluster", c),
            TcpProxyCluster::Weighted(w) => j.with(
                "weighted_clusters",
                Json::obj().with(
                    "clusters",
                    Json::Arr(w.iter().map(|c| Json::obj().with("name", &c.name).with("weight", c.weight)).collect()),
                ),
            ),
        };
        j.with("idle_timeout", self.idle_timeout.unwrap_or_default())
            .with("max_connect_attempts", self.max_connect_attempts)
            .with_opt("max_downstream_connection_duration", self.max_downstream_connection_duration)
    }
}
