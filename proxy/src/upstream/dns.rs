//! DNS for STRICT_DNS and LOGICAL_DNS clusters, resolved off the workers.
//!
//! One thread re-resolves every DNS cluster at its `dns_refresh_rate` and publishes a
//! new host set when the answer changed. Hosts whose address did not change are kept
//! (same `Arc`), so their health and counters survive a refresh and connections to
//! them are never dropped by it.

use std::collections::HashMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_config::cluster::{Cluster, DiscoveryType, DnsLookupFamily};

use crate::upstream::cluster_manager::ClusterInfo;
use crate::upstream::host::{Host, HostSet};

/// Resolve `name:port` with the cluster's lookup family.
pub fn resolve(name: &str, port: u16, family: DnsLookupFamily) -> std::io::Result<Vec<SocketAddr>> {
    let all: Vec<SocketAddr> = (name, port).to_socket_addrs()?.collect();
    let v4: Vec<SocketAddr> = all.iter().copied().filter(SocketAddr::is_ipv4).collect();
    let v6: Vec<SocketAddr> = all.iter().copied().filter(SocketAddr::is_ipv6).collect();
    let mut out = match family {
        DnsLookupFamily::V4Only => v4,
        DnsLookupFamily::V6Only => v6,
        // AUTO prefers IPv6 and falls back to IPv4; V4_PREFERRED the other way round.
        DnsLookupFamily::Auto => {
            if v6.is_empty() {
                v4
            } else {
                v6
            }
        }
        DnsLookupFamily::V4Preferred => {
            if v4.is_empty() {
                v6
            } else {
                v4
            }
        }
        DnsLookupFamily::All => all,
    };
    out.dedup();
    Ok(out)
}

/// Resolve every endpoint of a DNS cluster into hosts, reusing `previous` hosts whose
/// address is unchanged. Endpoints that fail to resolve contribute no host.
pub fn resolve_cluster(c: &Cluster, previous: &HostSet) -> Vec<Arc<Host>> {
    let old: HashMap<SocketAddr, &Arc<Host>> = previous.hosts.iter().map(|h| (h.address, h)).collect();
    let mut hosts = Vec::new();
    for (e, prio) in c.load_assignment.hosts() {
        let addrs = match e.address.ip() {
            Some(ip) => vec![SocketAddr::new(ip, e.address.port_value)],
            None => match resolve(&e.address.address, e.address.port_value, c.dns_lookup_family) {
                Ok(a) => a,
                Err(err) => {
                    tracing::warn!(cluster = %c.name, host = %e.address.address, "DNS resolution failed: {err}");
                    Vec::new()
                }
            },
        };
        let addrs =
            if c.discovery_type == DiscoveryType::LogicalDns { addrs.into_iter().take(1).collect() } else { addrs };
        for addr in addrs {
            let host = match old.get(&addr) {
                Some(h) if h.weight == e.load_balancing_weight && h.priority == prio => Arc::clone(h),
                _ => {
                    let name = if e.hostname.is_empty() { e.address.address.clone() } else { e.hostname.clone() };
                    let host = Host::new(addr, name, e.load_balancing_weight, prio, e.health_check_port);
                    Arc::new(host.with_metadata(&e.metadata))
                }
            };
            hosts.push(host);
        }
    }
    hosts
}

/// Whether a cluster needs DNS resolution.
pub fn is_dns(c: &Cluster) -> bool {
    matches!(c.discovery_type, DiscoveryType::StrictDns | DiscoveryType::LogicalDns)
}

/// Start the refresher thread for the DNS clusters among `clusters`. It stops when
/// `stop` is set.
pub fn spawn_refresher(clusters: Vec<Arc<ClusterInfo>>, stop: Arc<AtomicBool>) -> Option<std::thread::JoinHandle<()>> {
    let dns: Vec<Arc<ClusterInfo>> = clusters.into_iter().filter(|c| is_dns(&c.config)).collect();
    if dns.is_empty() {
        return None;
    }
    let handle = std::thread::Builder::new()
        .name("sluice-dns".into())
        .spawn(move || {
            let mut next: Vec<Instant> = dns.iter().map(|c| Instant::now() + c.config.dns_refresh_rate).collect();
            while !stop.load(Ordering::Relaxed) {
                let now = Instant::now();
                for (i, c) in dns.iter().enumerate() {
                    if next[i] > now {
                        continue;
                    }
                    let current = c.hosts();
                    let fresh = resolve_cluster(&c.config, &current);
                    let same = fresh.len() == current.hosts.len()
                        && fresh.iter().zip(&current.hosts).all(|(a, b)| Arc::ptr_eq(a, b));
                    if !same {
                        tracing::info!(cluster = %c.name(), hosts = fresh.len(), "DNS refresh changed the host set");
                        c.publish(HostSet::new(fresh));
                    }
                    next[i] = Instant::now() + c.config.dns_refresh_rate;
                }
                let wait = next.iter().min().map(|t| t.saturating_duration_since(Instant::now()));
                std::thread::sleep(wait.unwrap_or(Duration::from_secs(1)).min(Duration::from_millis(200)));
            }
        })
        .ok()?;
    Some(handle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn localhost_resolves_by_family() {
        let v4 = resolve("localhost", 80, DnsLookupFamily::V4Only).unwrap();
        assert!(v4.iter().all(SocketAddr::is_ipv4));
        assert!(v4.contains(&"127.0.0.1:80".parse().unwrap()));
        let lit = resolve("127.0.0.1", 8080, DnsLookupFamily::Auto).unwrap();
        assert_eq!(lit, vec!["127.0.0.1:8080".parse().unwrap()]);
    }
}
