//! SDS in the effective config: each TLS context (filter chain or cluster) that names
//! secrets gets those in force (see [`crate::tls::CommonTlsContext::resolve_sds`]). A
//! listener or a cluster with a secret that has not arrived is warming: checked with
//! the rest, then left out of the effective config (Envoy's listener warming and
//! cluster init manager wait on their SDS init targets). A route to a warming cluster
//! answers as for an unknown cluster until its secrets arrive.

use crate::cluster::Cluster;
use crate::decode::Decoder;
use crate::error::ErrorKind;
use crate::listener::{FilterChain, Listener};
use crate::tls::{CommonTlsContext, SdsSecret, SdsSecretConfig, Unresolved};

fn chains_mut(l: &mut Listener) -> impl Iterator<Item = (String, &mut FilterChain)> {
    l.filter_chains
        .iter_mut()
        .enumerate()
        .map(|(j, c)| (format!("filter_chains[{j}]"), c))
        .chain(l.default_filter_chain.iter_mut().map(|c| ("default_filter_chain".to_string(), c)))
}

/// Every SDS reference of `l`'s filter chains.
pub fn listener_sds(l: &Listener) -> Vec<SdsSecretConfig> {
    l.filter_chains
        .iter()
        .chain(l.default_filter_chain.iter())
        .filter_map(|c| c.transport_socket.as_ref())
        .flat_map(|t| t.common_tls_context.sds_configs().cloned())
        .collect()
}

/// Every SDS reference of `c`.
pub fn cluster_sds(c: &Cluster) -> Vec<SdsSecretConfig> {
    c.transport_socket.iter().flat_map(|t| t.common_tls_context.sds_configs().cloned()).collect()
}

fn arrived(secrets: &[SdsSecret], c: &SdsSecretConfig) -> bool {
    secrets.iter().any(|s| s.serves(c) && s.secret.is_some())
}

/// Whether every secret `l` names has arrived (a listener without SDS always has).
pub fn sds_ready(l: &Listener, secrets: &[SdsSecret]) -> bool {
    listener_sds(l).iter().all(|c| arrived(secrets, c))
}

/// Whether every secret `c` names has arrived (a cluster without SDS always has).
pub fn cluster_sds_ready(c: &Cluster, secrets: &[SdsSecret]) -> bool {
    cluster_sds(c).iter().all(|s| arrived(secrets, s))
}

/// Put the secrets in force into `ctx`; one that has not arrived leaves it warming.
fn resolve(ctx: &mut CommonTlsContext, secrets: &[SdsSecret], path: &str, line: u32, d: &mut Decoder) {
    match ctx.resolve_sds(secrets) {
        Ok(()) | Err(Unresolved::Waiting(_)) => {}
        Err(Unresolved::Wrong(message)) => d.error(ErrorKind::Invalid, path, line, message),
    }
}

/// Put the secrets in force into `l`'s TLS contexts (`path`: the listener's).
pub fn assign_listener(l: &mut Listener, secrets: &[SdsSecret], path: &str, d: &mut Decoder) {
    for (chain, c) in chains_mut(l) {
        if let Some(t) = c.transport_socket.as_mut() {
            let line = t.line;
            resolve(&mut t.common_tls_context, secrets, &format!("{path}.{chain}.transport_socket"), line, d);
        }
    }
}

/// Put the secrets in force into `c`'s TLS context (`path`: the cluster's).
pub fn assign_cluster(c: &mut Cluster, secrets: &[SdsSecret], path: &str, d: &mut Decoder) {
    if let Some(t) = c.transport_socket.as_mut() {
        let line = t.line;
        resolve(&mut t.common_tls_context, secrets, &format!("{path}.transport_socket"), line, d);
    }
}
