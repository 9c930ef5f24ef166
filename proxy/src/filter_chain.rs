//! Filter-chain selection: which of a listener's filter chains serves a connection.
//!
//! Envoy's order (listener_components.proto, `FilterChainMatch`): destination port,
//! destination IP, server name, transport protocol, application protocols, direct
//! source IP, source type, source IP, source port. At each step the chains whose
//! criterion matches most specifically survive; a chain that leaves the criterion
//! unspecified survives only when no chain matched it specifically. No survivor means
//! the listener's `default_filter_chain`, else the connection is closed.

use std::net::{IpAddr, SocketAddr};

use sluice_config::address::CidrRange;
use sluice_config::listener::{ConnectionSourceType, FilterChain, FilterChainMatch};

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
    /// `raw_buffer` or `tls` (empty when no listener filter set it).
    pub transport_protocol: &'a str,
    /// ALPN from tls_inspector, or what http_inspector detected.
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

/// The compiled selection table of one listener.
#[derive(Debug, Clone)]
pub struct FilterChainManager {
    matches: Vec<FilterChainMatch>,
    has_default: bool,
}

impl FilterChainManager {
    /// Compile a listener's chains. Two chains with identical match criteria are a
    /// config error, as in Envoy ("multiple filter chains with the same matching rules").
    pub fn new(chains: &[FilterChain], default: Option<&FilterChain>) -> Result<Self, String> {
        for (i, a) in chains.iter().enumerate() {
            for (j, b) in chains.iter().enumerate().skip(i + 1) {
                if same_rules(&a.filter_chain_match, &b.filter_chain_match) {
                    return Err(format!(
                        "multiple filter chains with the same matching rules are defined: filter_chains[{i}] and filter_chains[{j}]"
                    ));
                }
            }
        }
        Ok(FilterChainManager {
            matches: chains
                .iter()
                .map(|c| c.filter_chain_match.clone())
                .collect(),
            has_default: default.is_some(),
        })
    }

    /// Choose the chain for a connection, or `None` (close it).
    pub fn select(&self, info: &ConnectionInfo<'_>) -> Option<Selected> {
        let mut cands: Vec<usize> = (0..self.matches.len()).collect();
        let m = &self.matches;
        narrow(&mut cands, |i| match m[i].destination_port {
            None => Some(0),
            Some(p) if p == info.local.port() => Some(1),
            Some(_) => None,
        });
        narrow(&mut cands, |i| {
            cidr_score(&m[i].prefix_ranges, info.local.ip())
        });
        narrow(&mut cands, |i| {
            server_name_score(&m[i].server_names, info.server_name)
        });
        narrow(&mut cands, |i| match m[i].transport_protocol.as_str() {
            "" => Some(0),
            t if t == info.transport_protocol => Some(1),
            _ => None,
        });
        narrow(&mut cands, |i| {
            let want = &m[i].application_protocols;
            if want.is_empty() {
                Some(0)
            } else if want
                .iter()
                .any(|w| info.application_protocols.contains(&w.as_str()))
            {
                Some(1)
            } else {
                None
            }
        });
        narrow(&mut cands, |i| {
            cidr_score(&m[i].direct_source_prefix_ranges, info.direct_remote.ip())
        });
        narrow(&mut cands, |i| match m[i].source_type {
            ConnectionSourceType::Any => Some(0),
            ConnectionSourceType::SameIpOrLoopback if is_local(info) => Some(1),
            ConnectionSourceType::External if !is_local(info) => Some(1),
            _ => None,
        });
        narrow(&mut cands, |i| {
            cidr_score(&m[i].source_prefix_ranges, info.remote.ip())
        });
        narrow(&mut cands, |i| {
            let ports = &m[i].source_ports;
            if ports.is_empty() {
                Some(0)
            } else if ports.contains(&info.remote.port()) {
                Some(1)
            } else {
                None
            }
        });
        match cands.first() {
            Some(&i) => Some(Selected::Chain(i)),
            None if self.has_default => Some(Selected::Default),
            None => None,
        }
    }
}

fn is_local(info: &ConnectionInfo<'_>) -> bool {
    info.remote.ip().is_loopback() || info.remote.ip() == info.local.ip()
}

/// Keep the candidates with the best (highest) score; `None` = does not match.
fn narrow(cands: &mut Vec<usize>, score: impl Fn(usize) -> Option<u32>) {
    let scored: Vec<(usize, u32)> = cands
        .iter()
        .filter_map(|&i| score(i).map(|s| (i, s)))
        .collect();
    let best = scored.iter().map(|(_, s)| *s).max();
    cands.clear();
    if let Some(best) = best {
        cands.extend(scored.iter().filter(|(_, s)| *s == best).map(|(i, _)| *i));
    }
}

/// Longest matching prefix wins; an empty list matches with the lowest score.
fn cidr_score(ranges: &[CidrRange], ip: IpAddr) -> Option<u32> {
    if ranges.is_empty() {
        return Some(0);
    }
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    };
    ranges
        .iter()
        .filter(|r| r.contains(ip))
        .map(|r| 1 + r.prefix_len as u32)
        .max()
}

/// Exact name beats the longest wildcard suffix, which beats no server_names.
fn server_name_score(names: &[String], sni: Option<&str>) -> Option<u32> {
    if names.is_empty() {
        return Some(0);
    }
    let sni = sni?.to_ascii_lowercase();
    names
        .iter()
        .filter_map(|n| {
            let n = n.to_ascii_lowercase();
            if n == sni {
                Some(u32::MAX)
            } else if let Some(suffix) = n.strip_prefix('*') {
                // `*.example.com` matches `a.example.com` (and deeper), never the bare domain.
                (sni.ends_with(suffix) && sni.len() > suffix.len()).then_some(suffix.len() as u32)
            } else {
                None
            }
        })
        .max()
}

fn same_rules(a: &FilterChainMatch, b: &FilterChainMatch) -> bool {
    fn sorted<T: Clone + Ord>(v: &[T]) -> Vec<T> {
        let mut v = v.to_vec();
        v.sort();
        v
    }
    fn cidrs(v: &[CidrRange]) -> Vec<String> {
        sorted(&v.iter().map(|c| c.to_string()).collect::<Vec<_>>())
    }
    a.destination_port == b.destination_port
        && cidrs(&a.prefix_ranges) == cidrs(&b.prefix_ranges)
        && sorted(&a.server_names) == sorted(&b.server_names)
        && a.transport_protocol == b.transport_protocol
        && sorted(&a.application_protocols) == sorted(&b.application_protocols)
        && cidrs(&a.direct_source_prefix_ranges) == cidrs(&b.direct_source_prefix_ranges)
        && a.source_type == b.source_type
        && cidrs(&a.source_prefix_ranges) == cidrs(&b.source_prefix_ranges)
        && sorted(&a.source_ports) == sorted(&b.source_ports)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(m: FilterChainMatch) -> FilterChain {
        FilterChain {
            name: String::new(),
            filter_chain_match: m,
            filters: Vec::new(),
            line: 0,
        }
    }

    fn info(local: &str) -> ConnectionInfo<'static> {
        ConnectionInfo {
            local: local.parse().unwrap(),
            remote: "10.0.0.9:5555".parse().unwrap(),
            direct_remote: "10.0.0.9:5555".parse().unwrap(),
            server_name: None,
            transport_protocol: "raw_buffer",
            application_protocols: &[],
        }
    }

    #[test]
    fn port_then_prefix_specificity() {
        let chains = vec![
            chain(FilterChainMatch::default()),
            chain(FilterChainMatch {
                destination_port: Some(80),
                ..Default::default()
            }),
            chain(FilterChainMatch {
                destination_port: Some(80),
                prefix_ranges: vec!["10.1.0.0/16".parse().unwrap()],
                ..Default::default()
            }),
        ];
        let m = FilterChainManager::new(&chains, None).unwrap();
        assert_eq!(m.select(&info("10.1.2.3:80")), Some(Selected::Chain(2)));
        assert_eq!(m.select(&info("10.2.2.3:80")), Some(Selected::Chain(1)));
        assert_eq!(m.select(&info("10.1.2.3:81")), Some(Selected::Chain(0)));
    }

    #[test]
    fn no_match_uses_default_or_closes() {
        let chains = vec![chain(FilterChainMatch {
            destination_port: Some(80),
            ..Default::default()
        })];
        let m = FilterChainManager::new(&chains, None).unwrap();
        assert_eq!(m.select(&info("1.2.3.4:81")), None);
        let d = chain(FilterChainMatch::default());
        let m = FilterChainManager::new(&chains, Some(&d)).unwrap();
        assert_eq!(m.select(&info("1.2.3.4:81")), Some(Selected::Default));
    }

    #[test]
    fn duplicate_rules_are_an_error() {
        let chains = vec![
            chain(FilterChainMatch::default()),
            chain(FilterChainMatch::default()),
        ];
        assert!(FilterChainManager::new(&chains, None)
            .unwrap_err()
            .contains("same matching rules"));
    }
}
