//! Checks across the whole bootstrap: names that must be unique, references that must
//! resolve, addresses that must not collide.

use std::collections::{HashMap, HashSet};

use crate::bootstrap::Bootstrap;
use crate::decode::Decoder;
use crate::error::ErrorKind;
use crate::listener::NetworkFilterKind;

/// Check cross-references; errors go to `d`.
pub fn validate(b: &mut Bootstrap, d: &mut Decoder) {
    let mut cluster_names = HashSet::new();
    for (i, c) in b.clusters.iter().enumerate() {
        if !cluster_names.insert(c.name.as_str()) {
            d.error(
                ErrorKind::Reference,
                &format!("static_resources.clusters[{i}].name"),
                c.line,
                format!("duplicate cluster name `{}`", c.name),
            );
        }
    }

    let mut names: HashMap<String, usize> = HashMap::new();
    let mut addresses: HashMap<String, usize> = HashMap::new();
    for (i, l) in b.listeners.iter_mut().enumerate() {
        let path = format!("static_resources.listeners[{i}]");
        if l.name.is_empty() {
            // Envoy allocates a UUID; a stable name is more useful in logs and stats.
            l.name = l.address.to_string();
        }
        if let Some(prev) = names.insert(l.name.clone(), i) {
            d.error(
                ErrorKind::Reference,
                &format!("{path}.name"),
                l.line,
                format!(
                    "duplicate listener name `{}` (also static_resources.listeners[{prev}])",
                    l.name
                ),
            );
        }
        if l.address.ip().is_none() {
            d.error(
                ErrorKind::Invalid,
                &format!("{path}.address.socket_address.address"),
                l.address.line,
                format!("`{}` is not an IP address", l.address.address),
            );
        }
        if l.bind_to_port {
            if let Some(prev) = addresses.insert(l.address.to_string(), i) {
                d.error(
                    ErrorKind::Reference,
                    &format!("{path}.address"),
                    l.address.line,
                    format!(
                        "listener address {} is already used by static_resources.listeners[{prev}]",
                        l.address
                    ),
                );
            }
        }
        let chains = l
            .filter_chains
            .iter()
            .enumerate()
            .map(|(j, c)| (format!("{path}.filter_chains[{j}]"), c));
        let default = l
            .default_filter_chain
            .iter()
            .map(|c| (format!("{path}.default_filter_chain"), c));
        for (cpath, chain) in chains.chain(default) {
            for (k, filter) in chain.filters.iter().enumerate() {
                let fpath = format!("{cpath}.filters[{k}].typed_config");
                match &filter.kind {
                    NetworkFilterKind::TcpProxy(tp) => {
                        for name in tp.cluster.names() {
                            if !cluster_names.contains(name) {
                                d.error(
                                    ErrorKind::Reference,
                                    &format!("{fpath}.cluster"),
                                    tp.line,
                                    format!("unknown cluster `{name}`"),
                                );
                            }
                        }
                    }
                }
            }
        }
    }
}
