//! The listener manager: a config snapshot compiled for the workers.
//!
//! [`Snapshot`] is what every worker reads (through an `Arc`): listeners with their
//! listener filters, filter-chain selection tables and compiled network filter chains,
//! plus the cluster manager. It is built once per config load, validated completely
//! (so `--mode validate` reports everything a start would), and never mutated.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use sluice_config::dump::Dump;
use sluice_config::listener::{FilterChain, Listener, ListenerFilterKind, NetworkFilterKind};
use sluice_config::tcp_proxy::TcpProxyCluster;
use sluice_config::Bootstrap;
use sluice_stack::ListenOptions;

use crate::filter_chain::{FilterChainManager, Selected};
use crate::http::conn_manager::config::HcmConfig;
use crate::tcp_proxy::TcpProxyConfig;
use crate::tls::{ClientTlsContext, ServerTlsContext};
use crate::upstream::cluster_manager::{static_hosts, ClusterManager};
use crate::upstream::dns;

/// A compiled network filter.
#[derive(Debug)]
pub enum NetworkFilter {
    TcpProxy(Arc<TcpProxyConfig>),
    HttpConnectionManager(Arc<HcmConfig>),
}

/// A compiled filter chain. No filters means "close the connection" (Envoy).
#[derive(Debug)]
pub struct NetworkFilterChain {
    pub name: String,
    /// The terminal filter that serves the connection.
    pub terminal: Option<NetworkFilter>,
    /// TLS termination (`transport_socket` DownstreamTlsContext), if configured.
    pub tls: Option<Arc<ServerTlsContext>>,
    /// `transport_socket_connect_timeout`: the TLS handshake must finish within it.
    pub transport_socket_connect_timeout: Option<Duration>,
}

/// A compiled listener.
#[derive(Debug)]
pub struct ListenerConfig {
    pub index: usize,
    /// The listener's effective config as text: equal fingerprints, equal listeners.
    pub fingerprint: String,
    pub name: String,
    pub address: SocketAddr,
    pub stat_name: String,
    pub bind_to_port: bool,
    pub use_original_dst: bool,
    pub ipv4_compat: bool,
    /// `tcp_backlog_size`, if configured.
    pub backlog: Option<u32>,
    pub per_connection_buffer_limit_bytes: usize,
    /// Listener filters in order (original_dst first when `use_original_dst` adds it).
    pub listener_filters: Vec<ListenerFilterKind>,
    pub listener_filters_timeout: Option<Duration>,
    pub continue_on_listener_filters_timeout: bool,
    pub filter_chain_manager: FilterChainManager,
    /// Exempt from the global connection limit (its connections still count).
    pub ignore_global_conn_limit: bool,
    /// `max_connections_to_accept_per_socket_event` (`None`: all pending ones).
    pub max_connections_to_accept_per_socket_event: Option<u32>,
    /// Open connections against `envoy.resource_limits.listener.<name>.connection_limit`.
    pub connection_limit: crate::runtime::listener_limit::ListenerLimit,
    chains: Vec<NetworkFilterChain>,
    default_chain: Option<NetworkFilterChain>,
}

impl ListenerConfig {
    /// The compiled chain a selection points at.
    pub fn chain(&self, selected: Selected) -> Option<&NetworkFilterChain> {
        match selected {
            Selected::Chain(i) => self.chains.get(i),
            Selected::Default => self.default_chain.as_ref(),
        }
    }

    /// The HCM of the chain a selection points at, if it is one.
    pub fn hcm(&self, selected: Selected) -> Option<&Arc<HcmConfig>> {
        match self.chain(selected)?.terminal.as_ref()? {
            NetworkFilter::HttpConnectionManager(h) => Some(h),
            NetworkFilter::TcpProxy(_) => None,
        }
    }

    /// How to open this listener's socket: Envoy's `ipv4_compat` and `tcp_backlog_size`.
    pub fn listen_options(&self) -> ListenOptions {
        let default = ListenOptions::default();
        ListenOptions { ipv4_compat: self.ipv4_compat, backlog: self.backlog.unwrap_or(default.backlog), ..default }
    }

    /// Whether any listener filter needs to see the connection's first bytes.
    pub fn needs_data(&self) -> bool {
        self.listener_filters.iter().any(|f| !matches!(f, ListenerFilterKind::OriginalDst))
    }
}

/// Whether building a snapshot resolves its DNS clusters' names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dns {
    Resolve,
    Skip,
}

/// Everything the workers need from one config.
#[derive(Debug)]
pub struct Snapshot {
    pub listeners: Vec<Arc<ListenerConfig>>,
    pub cluster_manager: Arc<ClusterManager>,
    /// Every cluster's effective config as text (reload compares them).
    pub clusters_fingerprint: String,
    /// Each cluster's effective config as text, by cluster index (a reload carries the
    /// pooled connections of a cluster whose text did not change).
    pub cluster_fingerprints: Vec<String>,
    /// `ip:port` → listener index, for original-destination hand-off.
    by_address: HashMap<SocketAddr, usize>,
}

impl Snapshot {
    /// The HTTP filters' counters of every connection manager, by full name.
    pub fn filter_counters(&self) -> Vec<(String, Arc<crate::stats::SharedCounter>)> {
        let mut out = Vec::new();
        for l in &self.listeners {
            for c in l.chains.iter().chain(l.default_chain.as_ref()) {
                if let Some(NetworkFilter::HttpConnectionManager(h)) = &c.terminal {
                    out.extend(h.filter_counters.iter().cloned());
                }
            }
        }
        out
    }

    /// Compile a decoded bootstrap. DNS clusters are resolved once, now, so that the
    /// proxy starts with hosts (Envoy waits for cluster warming before serving).
    pub fn build(bootstrap: &Bootstrap) -> Result<Snapshot, Vec<String>> {
        Self::build_with(bootstrap, Dns::Resolve)
    }

    /// Compile a decoded bootstrap; with [`Dns::Skip`] (`--mode validate`, which like
    /// Envoy's touches no network) DNS clusters start without hosts.
    pub fn build_with(bootstrap: &Bootstrap, dns_mode: Dns) -> Result<Snapshot, Vec<String>> {
        let mut errors = Vec::new();
        // TLS origination contexts (certificates and CAs are read now: a bad file is a
        // config error, as in Envoy).
        let mut upstream_tls = Vec::with_capacity(bootstrap.clusters.len());
        for (i, c) in bootstrap.clusters.iter().enumerate() {
            upstream_tls.push(match &c.transport_socket {
                Some(t) => match ClientTlsContext::new(t) {
                    Ok(ctx) => Some(ctx),
                    Err(e) => {
                        errors.push(format!("static_resources.clusters[{i}].transport_socket: {e}"));
                        None
                    }
                },
                None => None,
            });
        }
        let cluster_manager = Arc::new(ClusterManager::with_tls(
            bootstrap.clusters.clone(),
            |c| match dns_mode {
                Dns::Resolve if dns::is_dns(c) => dns::resolve_cluster(c, &Default::default()),
                Dns::Skip if dns::is_dns(c) => Vec::new(),
                _ => static_hosts(c),
            },
            |i| upstream_tls[i].clone(),
        ));
        let mut listeners = Vec::new();
        let mut by_address = HashMap::new();
        for (i, l) in bootstrap.listeners.iter().enumerate() {
            match compile_listener(i, l, &cluster_manager) {
                Ok(c) => {
                    by_address.insert(c.address, i);
                    listeners.push(Arc::new(c));
                }
                Err(mut e) => errors.append(&mut e),
            }
        }
        if errors.is_empty() {
            // An EDS cluster's dump names its source, not its endpoints: the
            // fingerprints add the endpoints it has now, so that an EDS update counts as
            // a change of that cluster.
            let fingerprint = |c: &sluice_config::cluster::Cluster| match &c.eds_cluster_config {
                Some(_) => c.dump().render() + &c.load_assignment.dump().render(),
                None => c.dump().render(),
            };
            let cluster_fingerprints: Vec<String> = bootstrap.clusters.iter().map(fingerprint).collect();
            let clusters_fingerprint = cluster_fingerprints.concat();
            Ok(Snapshot { listeners, cluster_manager, clusters_fingerprint, cluster_fingerprints, by_address })
        } else {
            Err(errors)
        }
    }

    /// The listener that owns a restored original destination: exact `ip:port`, else
    /// the wildcard address of the same family and port (Envoy's
    /// `getBalancedHandlerByAddress`).
    pub fn listener_for_original_dst(&self, dst: SocketAddr) -> Option<usize> {
        if let Some(&i) = self.by_address.get(&dst) {
            return Some(i);
        }
        let any: IpAddr = match dst.ip() {
            IpAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
            IpAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
        };
        self.by_address.get(&SocketAddr::new(any, dst.port())).copied()
    }
}

fn compile_listener(index: usize, l: &Listener, cm: &Arc<ClusterManager>) -> Result<ListenerConfig, Vec<String>> {
    let buffer_limit = l.per_connection_buffer_limit_bytes.max(1) as usize;
    let path = format!("static_resources.listeners[{index}]");
    let mut errors = Vec::new();
    let address = l.address.socket_addr().ok_or_else(|| vec![format!("{path}.address: not an IP address")])?;
    let filter_chain_manager = FilterChainManager::new(&l.filter_chains, l.default_filter_chain.as_ref())
        .map_err(|e| vec![format!("{path}: {e}")])?;
    let mut chains = Vec::new();
    for (j, c) in l.filter_chains.iter().enumerate() {
        match compile_chain(c, cm, buffer_limit, &format!("{path}.filter_chains[{j}]")) {
            Ok(c) => chains.push(c),
            Err(e) => errors.push(e),
        }
    }
    let default_chain = match &l.default_filter_chain {
        Some(c) => match compile_chain(c, cm, buffer_limit, &format!("{path}.default_filter_chain")) {
            Ok(c) => Some(c),
            Err(e) => {
                errors.push(e);
                None
            }
        },
        None => None,
    };
    let mut listener_filters: Vec<ListenerFilterKind> = l.listener_filters.iter().map(|f| f.kind.clone()).collect();
    // listener_impl.cc buildOriginalDstListenerFilter: use_original_dst adds the filter.
    if l.use_original_dst && !listener_filters.contains(&ListenerFilterKind::OriginalDst) {
        listener_filters.insert(0, ListenerFilterKind::OriginalDst);
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(ListenerConfig {
        index,
        fingerprint: l.dump().render(),
        name: l.name.clone(),
        address,
        stat_name: l.stat_name(),
        bind_to_port: l.bind_to_port,
        use_original_dst: l.use_original_dst,
        ipv4_compat: l.address.ipv4_compat,
        backlog: l.tcp_backlog_size,
        per_connection_buffer_limit_bytes: l.per_connection_buffer_limit_bytes.max(1) as usize,
        listener_filters,
        listener_filters_timeout: (!l.listener_filters_timeout.is_zero()).then_some(l.listener_filters_timeout),
        continue_on_listener_filters_timeout: l.continue_on_listener_filters_timeout,
        filter_chain_manager,
        ignore_global_conn_limit: l.ignore_global_conn_limit,
        max_connections_to_accept_per_socket_event: l.max_connections_to_accept_per_socket_event,
        connection_limit: crate::runtime::listener_limit::ListenerLimit::new(&l.name),
        chains,
        default_chain,
    })
}

fn compile_chain(
    c: &FilterChain,
    cm: &Arc<ClusterManager>,
    buffer_limit: usize,
    path: &str,
) -> Result<NetworkFilterChain, String> {
    let mut terminal = None;
    for (k, f) in c.filters.iter().enumerate() {
        if terminal.is_some() {
            return Err(format!(
                "{path}.filters[{k}]: the terminal filter `{}` must be the last filter in a network filter chain",
                c.filters[k - 1].name
            ));
        }
        terminal = Some(match &f.kind {
            NetworkFilterKind::TcpProxy(tp) => {
                let clusters = match &tp.cluster {
                    TcpProxyCluster::Cluster(name) => vec![(lookup(cm, name, path)?, 1)],
                    TcpProxyCluster::Weighted(w) => {
                        w.iter().map(|c| Ok((lookup(cm, &c.name, path)?, c.weight))).collect::<Result<_, String>>()?
                    }
                };
                NetworkFilter::TcpProxy(Arc::new(TcpProxyConfig::new(tp, clusters)))
            }
            NetworkFilterKind::HttpConnectionManager(hcm) => {
                let cfg =
                    HcmConfig::new(hcm, Arc::clone(cm), buffer_limit, &format!("{path}.filters[{k}].typed_config"))?;
                NetworkFilter::HttpConnectionManager(Arc::new(cfg))
            }
        });
    }
    let tls = match &c.transport_socket {
        Some(t) => Some(ServerTlsContext::new(t).map_err(|e| format!("{path}.transport_socket: {e}"))?),
        None => None,
    };
    Ok(NetworkFilterChain {
        name: c.name.clone(),
        terminal,
        tls,
        transport_socket_connect_timeout: c.transport_socket_connect_timeout,
    })
}

fn lookup(cm: &ClusterManager, name: &str, path: &str) -> Result<usize, String> {
    cm.index_of(name).ok_or_else(|| format!("{path}: unknown cluster `{name}`"))
}
