//! Every TLS context of a bootstrap built once, to report the file and certificate
//! errors of a config whose schema errors stop it from being compiled: so that
//! `--mode validate` (and a start) reports schema, file and certificate errors in one
//! pass instead of one kind per run.

use sluice_config::Bootstrap;

use super::{ClientTlsContext, ServerTlsContext};

/// The errors of every filter chain's and cluster's `transport_socket`, each prefixed
/// with its path, in document order.
pub fn context_errors(bootstrap: &Bootstrap) -> Vec<String> {
    let mut errors = Vec::new();
    for (i, l) in bootstrap.listeners.iter().enumerate() {
        let path = format!("static_resources.listeners[{i}]");
        let chains = l.filter_chains.iter().enumerate().map(|(j, c)| (format!("{path}.filter_chains[{j}]"), c));
        let default = l.default_filter_chain.iter().map(|c| (format!("{path}.default_filter_chain"), c));
        for (cpath, chain) in chains.chain(default) {
            // A context with SDS references is built once its secrets are in.
            if let Some(t) =
                chain.transport_socket.as_ref().filter(|t| t.common_tls_context.sds_configs().next().is_none())
            {
                if let Err(e) = ServerTlsContext::new(t) {
                    errors.push(format!("{cpath}.transport_socket: {e}"));
                }
            }
        }
    }
    for (i, c) in bootstrap.clusters.iter().enumerate() {
        if let Some(t) = c.transport_socket.as_ref().filter(|t| t.common_tls_context.sds_configs().next().is_none()) {
            if let Err(e) = ClientTlsContext::new(t) {
                errors.push(format!("static_resources.clusters[{i}].transport_socket: {e}"));
            }
        }
    }
    errors
}
