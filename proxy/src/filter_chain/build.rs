//! Load time: insert every chain into a tree of ordered maps, one level per criterion,
//! the way Envoy's `addFilterChainFor*` functions fill theirs, detecting duplicates
//! and overlaps; then freeze the maps into the sorted arrays selection searches.
//!
//! A chain lands in one leaf per combination of its repeated criteria (each
//! destination range, each server name, ...). An empty criterion is the "any" key:
//! port 0, the catch-all prefixes `0.0.0.0/0` and `::/0`, the empty string. Two chains
//! reaching the same leaf overlap, which Envoy refuses.

use std::collections::BTreeMap;

use sluice_config::address::CidrRange;
use sluice_config::listener::{ConnectionSourceType, FilterChain, FilterChainMatch};

use super::prefix_table::{PrefixKey, PrefixTable};
use super::{
    ApplicationProtocols, DestinationIps, DirectSourceIps, FilterChainManager, ServerNames, SourceIps, SourcePorts,
    SourceTypes, TransportProtocols,
};

type Ips<T> = BTreeMap<PrefixKey, T>;
type Ports = BTreeMap<u16, usize>;
type SourceTypeMap = BTreeMap<u8, Ips<Ports>>;
type AppMap = BTreeMap<String, Ips<SourceTypeMap>>;
type TransportMap = BTreeMap<String, AppMap>;
type NameMap = BTreeMap<Vec<u8>, TransportMap>;
type Tree = BTreeMap<u16, Ips<NameMap>>;

const ANY: u8 = 0;
const LOCAL: u8 = 1;
const EXTERNAL: u8 = 2;

pub(super) fn compile(chains: &[FilterChain], has_default: bool) -> Result<FilterChainManager, String> {
    for (i, chain) in chains.iter().enumerate() {
        if let Some(j) = chains[..i].iter().position(|c| c.filter_chain_match == chain.filter_chain_match) {
            return Err(format!(
                "filter chain '{}' (filter_chains[{i}]) has the same matching rules defined as '{}' (filter_chains[{j}])",
                chain.name, chains[j].name
            ));
        }
    }
    let mut tree = Tree::new();
    for (i, chain) in chains.iter().enumerate() {
        insert(&mut tree, &chain.filter_chain_match, i).map_err(|e| match e {
            InsertError::PartialWildcard => {
                format!("filter_chains[{i}]: partial wildcards are not supported in \"server_names\"")
            }
            InsertError::Overlap(j) => format!(
                "multiple filter chains with overlapping matching rules are defined: \
                 '{}' (filter_chains[{i}]) and '{}' (filter_chains[{j}])",
                chain.name, chains[j].name
            ),
        })?;
    }
    Ok(freeze(tree, has_default))
}

enum InsertError {
    PartialWildcard,
    /// The leaf is taken by this chain.
    Overlap(usize),
}

fn prefix_keys(ranges: &[CidrRange]) -> Vec<PrefixKey> {
    if ranges.is_empty() {
        PrefixKey::CATCH_ALL.to_vec()
    } else {
        ranges.iter().map(PrefixKey::of).collect()
    }
}

fn or_any<T: Clone>(values: &[T], any: T) -> Vec<T> {
    if values.is_empty() {
        vec![any]
    } else {
        values.to_vec()
    }
}

/// Lower-cased, with `*.x` stored as `.x` (Envoy's wildcard map key).
fn server_name_keys(names: &[String]) -> Result<Vec<Vec<u8>>, InsertError> {
    if names.is_empty() {
        return Ok(vec![Vec::new()]);
    }
    names
        .iter()
        .map(|n| {
            let lower = n.to_ascii_lowercase();
            match lower.strip_prefix('*') {
                Some(rest) if rest.starts_with('.') => Ok(rest.as_bytes().to_vec()),
                _ if lower.contains('*') => Err(InsertError::PartialWildcard),
                _ => Ok(lower.into_bytes()),
            }
        })
        .collect()
}

fn insert(tree: &mut Tree, m: &FilterChainMatch, chain: usize) -> Result<(), InsertError> {
    let names = server_name_keys(&m.server_names)?;
    let apps = or_any(&m.application_protocols, String::new());
    let source_type = match m.source_type {
        ConnectionSourceType::Any => ANY,
        ConnectionSourceType::SameIpOrLoopback => LOCAL,
        ConnectionSourceType::External => EXTERNAL,
    };
    let source_ports = or_any(&m.source_ports, 0);
    let by_ip = tree.entry(m.destination_port.unwrap_or(0)).or_default();
    for dst in prefix_keys(&m.prefix_ranges) {
        let by_name = by_ip.entry(dst).or_default();
        for name in &names {
            let by_app = by_name.entry(name.clone()).or_default().entry(m.transport_protocol.clone()).or_default();
            for app in &apps {
                let by_direct = by_app.entry(app.clone()).or_default();
                for direct in prefix_keys(&m.direct_source_prefix_ranges) {
                    let by_source = by_direct.entry(direct).or_default().entry(source_type).or_default();
                    for source in prefix_keys(&m.source_prefix_ranges) {
                        let by_port = by_source.entry(source).or_default();
                        for port in &source_ports {
                            if let Some(other) = by_port.insert(*port, chain) {
                                return Err(InsertError::Overlap(other));
                            }
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

fn freeze(tree: Tree, has_default: bool) -> FilterChainManager {
    let mut ports = Vec::new();
    let mut any_port = None;
    for (port, ips) in tree {
        let ips: DestinationIps = PrefixTable::from_sorted(ips.into_iter().map(|(k, v)| (k, freeze_names(v))));
        if port == 0 {
            any_port = Some(ips);
        } else {
            ports.push((port, ips));
        }
    }
    FilterChainManager { ports, any_port, has_default }
}

/// Split the "any" key (the empty string) from the exact keys, keeping their order.
fn split_any<K: AsRef<[u8]>, V, W>(map: BTreeMap<K, V>, f: impl Fn(V) -> W) -> (Vec<(K, W)>, Option<W>) {
    let mut exact = Vec::new();
    let mut any = None;
    for (k, v) in map {
        if k.as_ref().is_empty() {
            any = Some(f(v));
        } else {
            exact.push((k, f(v)));
        }
    }
    (exact, any)
}

fn freeze_names(map: NameMap) -> ServerNames {
    let (names, any) = split_any(map, freeze_transports);
    ServerNames { names: names.into_iter().map(|(k, v)| (k.into_boxed_slice(), v)).collect(), any }
}

fn freeze_transports(map: TransportMap) -> TransportProtocols {
    let (exact, any) = split_any(map, freeze_apps);
    TransportProtocols { exact: exact.into_iter().map(|(k, v)| (k.into_boxed_str(), v)).collect(), any }
}

fn freeze_apps(map: AppMap) -> ApplicationProtocols {
    let direct = |ips: Ips<SourceTypeMap>| -> DirectSourceIps {
        PrefixTable::from_sorted(ips.into_iter().map(|(k, v)| (k, freeze_source_types(v))))
    };
    let (exact, any) = split_any(map, direct);
    ApplicationProtocols { exact: exact.into_iter().map(|(k, v)| (k.into_boxed_str(), v)).collect(), any }
}

fn freeze_source_types(mut map: SourceTypeMap) -> SourceTypes {
    let mut take = |t: u8| -> Option<SourceIps> {
        map.remove(&t).map(|ips| PrefixTable::from_sorted(ips.into_iter().map(|(k, v)| (k, freeze_ports(v)))))
    };
    SourceTypes { any: take(ANY), local: take(LOCAL), external: take(EXTERNAL) }
}

fn freeze_ports(mut map: Ports) -> SourcePorts {
    let any = map.remove(&0);
    SourcePorts { exact: map.into_iter().collect(), any }
}
