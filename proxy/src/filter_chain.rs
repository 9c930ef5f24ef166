//! Filter-chain selection: which of a listener's filter chains serves a connection.
//!
//! Envoy's `FilterChainManagerImpl` (filter_chain_manager_impl.cc), compiled at load
//! into a tree with one level per criterion, in Envoy's order: destination port,
//! destination IP, server name, transport protocol, application protocols, direct
//! source IP, source type, source IP, source port. A connection walks down the tree
//! taking, at each level, the single most specific branch that matches it:
//!
//! - destination port: the exact port's branch if any chain names that port, else the
//!   branch of chains without a port (a failure below an exact port does not fall back);
//! - IPs: the longest matching prefix (chains without ranges match as `/0`);
//! - server name (lower-cased): exact, else the longest `*.suffix` wildcard (which
//!   matches any number of labels: `*.example.com` matches `a.b.example.com`), else the
//!   chains without server names;
//! - transport protocol: exact (`raw_buffer` when no listener filter set one), else any;
//! - application protocols: the first protocol *in the client's order* that some chain
//!   names, else the chains without protocols;
//! - source type: `SAME_IP_OR_LOOPBACK` or `EXTERNAL` when a chain asks for the
//!   connection's kind, else `ANY`;
//! - source port: exact, else any.
//!
//! There is no backtracking: if the branch taken at some level has nothing for the
//! connection further down, no chain matches and the `default_filter_chain` (if any)
//! serves it. Two chains whose criteria overlap anywhere in the tree are a load-time
//! error, as in Envoy. Selection allocates nothing and compares no string it could
//! have prepared at load time.

mod build;
mod prefix_table;
#[cfg(test)]
mod tests;

use std::net::{IpAddr, SocketAddr};

use sluice_config::listener::FilterChain;

use prefix_table::{normalize, PrefixTable};

/// What is known about a connection when its filter chain is chosen.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionInfo<'a> {
    /// Destination: the local address, or the restored original destination.
    pub local: SocketAddr,
    /// Source address (the same as `direct_remote` without PROXY protocol).
    pub remote: SocketAddr,
    pub direct_remote: SocketAddr,
    /// SNI from tls_inspector.
    pub server_name: Option<&'a str>,
    /// `raw_buffer` or `tls` (empty when no listener filter set it, which counts as
    /// `raw_buffer`, the default Envoy records before selection).
    pub transport_protocol: &'a str,
    /// ALPN from tls_inspector, or what http_inspector detected, in the client's order.
    pub application_protocols: &'a [&'a str],
}

/// Which chain serves a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Selected {
    /// `filter_chains[i]`
    Chain(usize),
    /// `default_filter_chain`
    Default,
}

/// The compiled selection tree of one listener.
#[derive(Debug, Clone)]
pub struct FilterChainManager {
    /// Chains naming a destination port, sorted by port.
    ports: Vec<(u16, DestinationIps)>,
    /// Chains without a destination port.
    any_port: Option<DestinationIps>,
    has_default: bool,
}

type DestinationIps = PrefixTable<ServerNames>;
type DirectSourceIps = PrefixTable<SourceTypes>;
type SourceIps = PrefixTable<SourcePorts>;

/// Server names, lower-cased and sorted; a wildcard `*.x.com` is stored as `.x.com`.
#[derive(Debug, Clone)]
struct ServerNames {
    names: Vec<(Box<[u8]>, TransportProtocols)>,
    any: Option<TransportProtocols>,
}

#[derive(Debug, Clone)]
struct TransportProtocols {
    exact: Vec<(Box<str>, ApplicationProtocols)>,
    any: Option<ApplicationProtocols>,
}

#[derive(Debug, Clone)]
struct ApplicationProtocols {
    exact: Vec<(Box<str>, DirectSourceIps)>,
    any: Option<DirectSourceIps>,
}

/// Present only for the source types some chain asked for.
#[derive(Debug, Clone)]
struct SourceTypes {
    any: Option<SourceIps>,
    local: Option<SourceIps>,
    external: Option<SourceIps>,
}

#[derive(Debug, Clone)]
struct SourcePorts {
    exact: Vec<(u16, usize)>,
    any: Option<usize>,
}

impl FilterChainManager {
    /// Compile a listener's chains. Two chains with identical or overlapping match
    /// criteria are a config error, as in Envoy.
    pub fn new(chains: &[FilterChain], default: Option<&FilterChain>) -> Result<Self, String> {
        build::compile(chains, default.is_some())
    }

    /// Choose the chain for a connection, or `None` (close it).
    pub fn select(&self, info: &ConnectionInfo<'_>) -> Option<Selected> {
        match self.find(info) {
            Some(i) => Some(Selected::Chain(i)),
            None if self.has_default => Some(Selected::Default),
            None => None,
        }
    }

    fn find(&self, info: &ConnectionInfo<'_>) -> Option<usize> {
        let port = info.local.port();
        let ips = match self.ports.binary_search_by_key(&port, |(p, _)| *p) {
            Ok(i) => &self.ports[i].1,
            Err(_) => self.any_port.as_ref()?,
        };
        ips.longest_match(info.local.ip())?.find(info)
    }
}

/// Longest server name lower-cased on the stack (DNS names are at most 253 bytes;
/// tls_inspector passes at most 255).
const MAX_STACK_NAME: usize = 256;

impl ServerNames {
    fn find(&self, info: &ConnectionInfo<'_>) -> Option<usize> {
        let sent = info.server_name.unwrap_or("").as_bytes();
        if !sent.is_empty() {
            let mut buf = [0u8; MAX_STACK_NAME];
            let next = match buf.get_mut(..sent.len()) {
                Some(lower) => {
                    for (l, s) in lower.iter_mut().zip(sent) {
                        *l = s.to_ascii_lowercase();
                    }
                    self.exact_or_wildcard(lower, |stored, name| stored.cmp(name))
                }
                None => self.exact_or_wildcard(sent, |stored, name| {
                    stored.iter().copied().cmp(name.iter().map(u8::to_ascii_lowercase))
                }),
            };
            if let Some(next) = next {
                return next.find(info);
            }
        }
        self.any.as_ref()?.find(info)
    }

    /// The exact name, else the wildcards from the most specific: `.b.example.com`,
    /// `.example.com`, `.com`. `cmp` orders a stored (lower-case) name against `name`.
    fn exact_or_wildcard(
        &self,
        name: &[u8],
        cmp: impl Fn(&[u8], &[u8]) -> std::cmp::Ordering,
    ) -> Option<&TransportProtocols> {
        let lookup = |key: &[u8]| {
            let i = self.names.binary_search_by(|(stored, _)| cmp(stored, key)).ok()?;
            Some(&self.names[i].1)
        };
        if let Some(next) = lookup(name) {
            return Some(next);
        }
        let mut pos = 1;
        while let Some(dot) = name.get(pos..).and_then(|rest| rest.iter().position(|&b| b == b'.')) {
            let at = pos + dot;
            if at >= name.len() - 1 {
                break;
            }
            if let Some(next) = lookup(&name[at..]) {
                return Some(next);
            }
            pos = at + 1;
        }
        None
    }
}

impl TransportProtocols {
    fn find(&self, info: &ConnectionInfo<'_>) -> Option<usize> {
        let detected = match info.transport_protocol {
            "" => "raw_buffer",
            t => t,
        };
        match self.exact.iter().find(|(t, _)| **t == *detected) {
            Some((_, next)) => next.find(info),
            None => self.any.as_ref()?.find(info),
        }
    }
}

impl ApplicationProtocols {
    fn find(&self, info: &ConnectionInfo<'_>) -> Option<usize> {
        for requested in info.application_protocols {
            if let Some((_, next)) = self.exact.iter().find(|(p, _)| **p == **requested) {
                return next.longest_match(info.direct_remote.ip())?.find(info);
            }
        }
        self.any.as_ref()?.longest_match(info.direct_remote.ip())?.find(info)
    }
}

impl SourceTypes {
    fn find(&self, info: &ConnectionInfo<'_>) -> Option<usize> {
        if self.local.is_some() || self.external.is_some() {
            let typed = if is_same_ip_or_loopback(info) { &self.local } else { &self.external };
            if let Some(ips) = typed {
                return ips.longest_match(info.remote.ip())?.find(info.remote.port());
            }
        }
        self.any.as_ref()?.longest_match(info.remote.ip())?.find(info.remote.port())
    }
}

impl SourcePorts {
    fn find(&self, port: u16) -> Option<usize> {
        match self.exact.binary_search_by_key(&port, |(p, _)| *p) {
            Ok(i) => Some(self.exact[i].1),
            Err(_) => self.any,
        }
    }
}

/// Envoy's `Utility::isSameIpOrLoopback`: a loopback peer, or the peer's address
/// equal to the local one.
fn is_same_ip_or_loopback(info: &ConnectionInfo<'_>) -> bool {
    let remote = normalize(info.remote.ip());
    let is_loopback = match remote {
        IpAddr::V4(a) => a.is_loopback(),
        IpAddr::V6(a) => a.is_loopback(),
    };
    is_loopback || remote == normalize(info.local.ip())
}
