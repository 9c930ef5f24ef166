//! `envoy.config.listener.v3.Listener`, its filter chains and listener filters.

use std::time::Duration;

use crate::address::{CidrRange, SocketAddress};
use crate::decode::{typed_config, Decode, Decoder, Fields};
use crate::error::ErrorKind;
use crate::hcm::HttpConnectionManager;
use crate::node::Node;
use crate::proto_enum;
use crate::tcp_proxy::TcpProxy;
use crate::tls::{decode_downstream_transport_socket, DownstreamTlsContext};

/// Envoy's default `per_connection_buffer_limit_bytes` (1 MiB).
pub const DEFAULT_BUFFER_LIMIT: u32 = 1024 * 1024;

#[derive(Debug, Clone, PartialEq)]
pub struct Listener {
    pub name: String,
    pub address: SocketAddress,
    /// `stat_prefix`; Envoy's default is `<address>_<port>` under `listener.`.
    pub stat_prefix: Option<String>,
    pub use_original_dst: bool,
    pub bind_to_port: bool,
    pub per_connection_buffer_limit_bytes: u32,
    pub listener_filters: Vec<ListenerFilter>,
    pub listener_filters_timeout: Duration,
    pub continue_on_listener_filters_timeout: bool,
    /// The listen backlog; `None`: sluice's default (1024, capped by the kernel's
    /// net.core.somaxconn).
    pub tcp_backlog_size: Option<u32>,
    pub filter_chains: Vec<FilterChain>,
    pub default_filter_chain: Option<FilterChain>,
    /// Exempt from the overload manager's global connection limit (still counted).
    pub ignore_global_conn_limit: bool,
    /// Connections accepted per socket event; `None`: every pending one.
    pub max_connections_to_accept_per_socket_event: Option<u32>,
    pub line: u32,
}

impl Listener {
    /// The stat scope Envoy uses: `listener.<stat_prefix or address_port>`.
    pub fn stat_name(&self) -> String {
        match &self.stat_prefix {
            Some(p) if !p.is_empty() => p.clone(),
            _ => format!("{}_{}", self.address.address, self.address.port_value),
        }
    }
}

impl Decode for Listener {
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::of(d, node, path)?;
        let name: String = f.or(d, "name", String::new());
        let address: Option<SocketAddress> = f.req(d, "address");
        let stat_prefix = f.opt(d, "stat_prefix");
        let use_original_dst = f.or(d, "use_original_dst", false);
        let bind_to_port = f.or(d, "bind_to_port", true);
        let per_connection_buffer_limit_bytes = f.or(d, "per_connection_buffer_limit_bytes", DEFAULT_BUFFER_LIMIT);
        let listener_filters = f.list(d, "listener_filters");
        let listener_filters_timeout = f.or(d, "listener_filters_timeout", Duration::from_secs(15));
        let continue_on_listener_filters_timeout = f.or(d, "continue_on_listener_filters_timeout", false);
        let filter_chains: Vec<FilterChain> = f.list(d, "filter_chains");
        let default_filter_chain = f.opt(d, "default_filter_chain");
        let ignore_global_conn_limit = f.or(d, "ignore_global_conn_limit", false);
        let max_accept_path = f.field_path("max_connections_to_accept_per_socket_event");
        let max_connections_to_accept_per_socket_event: Option<u32> =
            f.opt(d, "max_connections_to_accept_per_socket_event");
        let outbound = f.take("traffic_direction").map(|n| {
            let reason = crate::inert::reason("traffic_direction").unwrap_or_default();
            d.warn_inert(&f.field_path("traffic_direction"), n.line, reason);
            (n.line, matches!(&n.value, crate::node::Value::Scalar { text, .. } if text == "OUTBOUND" || text == "2"))
        });
        if let Some((line, true)) = outbound {
            let traced = filter_chains
                .iter()
                .chain(&default_filter_chain)
                .flat_map(|c| &c.filters)
                .any(|f| matches!(&f.kind, NetworkFilterKind::HttpConnectionManager(h) if h.tracing.is_some()));
            if traced {
                d.error(
                    ErrorKind::Unsupported,
                    &f.field_path("traffic_direction"),
                    line,
                    "an OUTBOUND listener's connection managers make egress spans, which sluice does not; \
                     remove `traffic_direction` or the connection manager's `tracing`",
                );
            }
        }
        f.ignored(d, &["metadata"]);
        f.default_only(
            d,
            "transparent",
            false,
            "IP_TRANSPARENT listeners (TPROXY) are not supported; use iptables REDIRECT with use_original_dst",
        );
        f.default_only(d, "freebind", false, "IP_FREEBIND listeners are not supported; remove it");
        f.empty_only(
            d,
            "access_log",
            "listener access logs are not supported; log from the http_connection_manager instead",
        );
        let tcp_backlog_size: Option<u32> = f.opt(d, "tcp_backlog_size");
        f.unsupported(
            d,
            &[
                "additional_addresses",
                "socket_options",
                "udp_listener_config",
                "api_listener",
                "connection_balance_config",
                "reuse_port",
                "enable_reuse_port",
                "internal_listener",
                "listener_specifier",
                "filter_chain_matcher",
                "drain_type",
                "tcp_fast_open_queue_length",
                "enable_mptcp",
                "bypass_overload_manager",
            ],
        );
        let line = f.line();
        f.finish(d);
        if max_connections_to_accept_per_socket_event == Some(0) {
            d.error(
                ErrorKind::Invalid,
                &max_accept_path,
                line,
                "max_connections_to_accept_per_socket_event must be greater than 0",
            );
        }
        if filter_chains.is_empty() && default_filter_chain.is_none() {
            d.error(
                ErrorKind::Invalid,
                path,
                line,
                "a listener needs at least one filter chain (filter_chains or default_filter_chain)",
            );
        }
        Some(Listener {
            name,
            address: address?,
            stat_prefix,
            use_original_dst,
            bind_to_port,
            per_connection_buffer_limit_bytes,
            listener_filters,
            listener_filters_timeout,
            continue_on_listener_filters_timeout,
            tcp_backlog_size,
            filter_chains,
            default_filter_chain,
            ignore_global_conn_limit,
            max_connections_to_accept_per_socket_event,
            line,
        })
    }
}

/// `envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector`; `None` is Envoy's
/// default (64 KiB, and the first read as large as the maximum).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TlsInspectorOptions {
    pub max_client_hello_size: Option<u32>,
    pub initial_read_buffer_size: Option<u32>,
    pub close_connection_on_client_hello_parsing_errors: bool,
}

/// Envoy's `TLS_MAX_CLIENT_HELLO`: the largest `max_client_hello_size`.
pub const TLS_MAX_CLIENT_HELLO: u32 = 64 * 1024;

impl TlsInspectorOptions {
    fn decode_fields(d: &mut Decoder, f: &mut Fields<'_>) -> TlsInspectorOptions {
        let line = f.line();
        let max_client_hello_size: Option<u32> = f.opt(d, "max_client_hello_size");
        let initial_read_buffer_size: Option<u32> = f.opt(d, "initial_read_buffer_size");
        let close = f.or(d, "close_connection_on_client_hello_parsing_errors", false);
        f.ignored(d, &["enable_ja3_fingerprinting", "enable_ja4_fingerprinting"]);
        if let Some(max) = max_client_hello_size.filter(|m| *m > TLS_MAX_CLIENT_HELLO) {
            d.error(
                ErrorKind::Invalid,
                &f.field_path("max_client_hello_size"),
                line,
                format!("max_client_hello_size of {max} is greater than maximum of {TLS_MAX_CLIENT_HELLO}."),
            );
        }
        // tls_inspector.proto: initial_read_buffer_size in (255, 65537).
        if let Some(size) = initial_read_buffer_size.filter(|s| !(256..=65536).contains(s)) {
            d.error(
                ErrorKind::Invalid,
                &f.field_path("initial_read_buffer_size"),
                line,
                format!("initial_read_buffer_size {size} must be in 256..=65536"),
            );
        }
        TlsInspectorOptions {
            max_client_hello_size,
            initial_read_buffer_size,
            close_connection_on_client_hello_parsing_errors: close,
        }
    }
}

/// A listener filter, selected by `typed_config."@type"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerFilter {
    pub name: String,
    pub kind: ListenerFilterKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenerFilterKind {
    /// `envoy.extensions.filters.listener.original_dst.v3.OriginalDst`
    OriginalDst,
    /// `envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector`
    TlsInspector(TlsInspectorOptions),
    /// `envoy.extensions.filters.listener.http_inspector.v3.HttpInspector`
    HttpInspector,
}

impl Decode for ListenerFilter {
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::of(d, node, path)?;
        let name: String = f.or(d, "name", String::new());
        f.unsupported_because(
            d,
            "filter_disabled",
            "`filter_disabled` is not supported: a listener filter always runs; remove it",
        );
        f.unsupported(d, &["config_discovery"]);
        let tc_path = f.field_path("typed_config");
        let tc = f.take("typed_config");
        let line = f.line();
        f.finish(d);
        let Some(tc) = tc else {
            d.error(ErrorKind::Missing, &tc_path, line, "a listener filter needs a typed_config with an `@type`");
            return None;
        };
        let mut t = typed_config(d, tc, &tc_path)?;
        let kind = match t.type_name.as_str() {
            "envoy.extensions.filters.listener.original_dst.v3.OriginalDst" => {
                t.fields.ignored(d, &["traffic_direction"]);
                ListenerFilterKind::OriginalDst
            }
            "envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector" => {
                ListenerFilterKind::TlsInspector(TlsInspectorOptions::decode_fields(d, &mut t.fields))
            }
            "envoy.extensions.filters.listener.http_inspector.v3.HttpInspector" => ListenerFilterKind::HttpInspector,
            other => {
                d.error(
                    ErrorKind::Unsupported,
                    &format!("{tc_path}.@type"),
                    tc.line,
                    format!("unsupported listener filter type `{other}`"),
                );
                return None;
            }
        };
        t.fields.finish(d);
        Some(ListenerFilter { name, kind })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct FilterChain {
    pub name: String,
    pub filter_chain_match: FilterChainMatch,
    pub filters: Vec<NetworkFilter>,
    /// TLS termination (`DownstreamTlsContext`); `None` is plaintext.
    pub transport_socket: Option<DownstreamTlsContext>,
    /// How long a connection may take to finish its transport handshake before it is
    /// closed; `None` (absent or 0): no limit.
    pub transport_socket_connect_timeout: Option<Duration>,
    pub line: u32,
}

impl Decode for FilterChain {
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::of(d, node, path)?;
        let name = f.or(d, "name", String::new());
        let filter_chain_match = f.or(d, "filter_chain_match", FilterChainMatch::default());
        let filters = f.list(d, "filters");
        let ts_path = f.field_path("transport_socket");
        let transport_socket =
            f.take("transport_socket").and_then(|n| decode_downstream_transport_socket(d, n, &ts_path)).flatten();
        f.ignored(d, &["metadata"]);
        let transport_socket_connect_timeout: Option<Duration> =
            f.opt::<Duration>(d, "transport_socket_connect_timeout").filter(|t| !t.is_zero());
        f.unsupported(d, &["on_demand_configuration"]);
        f.unsupported(d, &["use_proxy_proto"]);
        let line = f.line();
        f.finish(d);
        Some(FilterChain {
            name,
            filter_chain_match,
            filters,
            transport_socket,
            transport_socket_connect_timeout,
            line,
        })
    }
}

proto_enum! {
    /// `FilterChainMatch.ConnectionSourceType`.
    pub enum ConnectionSourceType {
        Any = ("ANY", 0),
        SameIpOrLoopback = ("SAME_IP_OR_LOOPBACK", 1),
        External = ("EXTERNAL", 2),
    }
}

/// `listener.v3.FilterChainMatch`: every criterion; absent = matches anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterChainMatch {
    pub destination_port: Option<u16>,
    pub prefix_ranges: Vec<CidrRange>,
    pub server_names: Vec<String>,
    pub transport_protocol: String,
    pub application_protocols: Vec<String>,
    pub direct_source_prefix_ranges: Vec<CidrRange>,
    pub source_type: ConnectionSourceType,
    pub source_prefix_ranges: Vec<CidrRange>,
    pub source_ports: Vec<u16>,
}

impl Default for FilterChainMatch {
    fn default() -> Self {
        FilterChainMatch {
            destination_port: None,
            prefix_ranges: Vec::new(),
            server_names: Vec::new(),
            transport_protocol: String::new(),
            application_protocols: Vec::new(),
            direct_source_prefix_ranges: Vec::new(),
            source_type: ConnectionSourceType::Any,
            source_prefix_ranges: Vec::new(),
            source_ports: Vec::new(),
        }
    }
}

fn port_in_range(d: &mut Decoder, node: &Node, path: &str, v: u32) -> Option<u16> {
    if (1..=65535).contains(&v) {
        Some(v as u16)
    } else {
        d.invalid(node, path, format!("port {v} is not in 1..=65535"));
        None
    }
}

impl Decode for FilterChainMatch {
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::of(d, node, path)?;
        let destination_port = match f.opt::<u32>(d, "destination_port") {
            Some(p) => port_in_range(d, node, &f.field_path("destination_port"), p),
            None => None,
        };
        let prefix_ranges = f.list(d, "prefix_ranges");
        let server_names: Vec<String> = f.list(d, "server_names");
        let transport_protocol = f.or(d, "transport_protocol", String::new());
        let application_protocols = f.list(d, "application_protocols");
        let direct_source_prefix_ranges = f.list(d, "direct_source_prefix_ranges");
        let source_type = f.or(d, "source_type", ConnectionSourceType::Any);
        let source_prefix_ranges = f.list(d, "source_prefix_ranges");
        let ports: Vec<u32> = f.list(d, "source_ports");
        let sp_path = f.field_path("source_ports");
        let source_ports = ports.into_iter().filter_map(|p| port_in_range(d, node, &sp_path, p)).collect();
        f.unsupported(d, &["address_suffix", "suffix_len"]);
        let sn_path = f.field_path("server_names");
        f.finish(d);
        for name in &server_names {
            // Envoy: a bare `*` is not a valid server name; wildcards only as `*.suffix`.
            if name == "*" || name.is_empty() || (name.contains('*') && !name.starts_with("*.")) {
                d.invalid(node, &sn_path, format!("invalid server name `{name}` (wildcards must be `*.suffix`)"));
            }
        }
        Some(FilterChainMatch {
            destination_port,
            prefix_ranges,
            server_names,
            transport_protocol,
            application_protocols,
            direct_source_prefix_ranges,
            source_type,
            source_prefix_ranges,
            source_ports,
        })
    }
}

/// A network filter, selected by `typed_config."@type"`.
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkFilter {
    pub name: String,
    pub kind: NetworkFilterKind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum NetworkFilterKind {
    TcpProxy(TcpProxy),
    HttpConnectionManager(Box<HttpConnectionManager>),
}

impl Decode for NetworkFilter {
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::of(d, node, path)?;
        let name: String = f.or(d, "name", String::new());
        f.unsupported(d, &["config_discovery"]);
        let tc_path = f.field_path("typed_config");
        let tc = f.take("typed_config");
        let line = f.line();
        f.finish(d);
        let Some(tc) = tc else {
            d.error(ErrorKind::Missing, &tc_path, line, "a network filter needs a typed_config with an `@type`");
            return None;
        };
        let t = typed_config(d, tc, &tc_path)?;
        let kind = match t.type_name.as_str() {
            "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy" => {
                NetworkFilterKind::TcpProxy(TcpProxy::decode_fields(d, t.fields)?)
            }
            "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager" => {
                NetworkFilterKind::HttpConnectionManager(Box::new(HttpConnectionManager::decode_fields(d, t.fields)?))
            }
            other => {
                d.error(
                    ErrorKind::Unsupported,
                    &format!("{tc_path}.@type"),
                    tc.line,
                    format!("unsupported network filter type `{other}`"),
                );
                return None;
            }
        };
        Some(NetworkFilter { name, kind })
    }
}
