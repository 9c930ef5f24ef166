//! The connection manager an async client's requests run through (Envoy's
//! `AsyncClientImpl` with its null route): one virtual host, one route sending every
//! request to one cluster without a route timeout (the client keeps its own deadline)
//! or retries, and the router filter alone. Built from Envoy's own config text so that
//! it gets the same defaults as a user's route.

use super::HttpConnectionManager;
use crate::decode::{Decoder, Fields};

/// The connection manager for requests to `cluster`; an error only if the synthetic
/// config fails to decode (a bug, reported with its errors).
pub fn async_client_hcm(cluster: &str) -> Result<HttpConnectionManager, String> {
    async_client_hcm_with(cluster, "")
}

/// [`async_client_hcm`] whose route also has `route_extra`, fields of a
/// `RouteAction` in flow YAML (a `retry_policy`: Envoy's `RequestOptions::setRetryPolicy`).
pub fn async_client_hcm_with(cluster: &str, route_extra: &str) -> Result<HttpConnectionManager, String> {
    // A double-quoted YAML scalar, whatever the cluster's name holds.
    let mut name = String::from("\"");
    for c in cluster.chars() {
        match c {
            '"' | '\\' => {
                name.push('\\');
                name.push(c);
            }
            c if c.is_control() => name.push_str(&format!("\\u{:04x}", c as u32)),
            c => name.push(c),
        }
    }
    name.push('"');
    let extra = if route_extra.is_empty() { String::new() } else { format!(", {route_extra}") };
    let text = format!(
        "stat_prefix: async-client\n\
         route_config: {{name: async-client, virtual_hosts: [{{name: async-client, domains: ['*'], \
         routes: [{{match: {{prefix: ''}}, route: {{cluster: {name}, timeout: 0s{extra}}}}}]}}]}}\n\
         http_filters: [{{name: envoy.filters.http.router, typed_config: \
         {{'@type': type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}}}]\n"
    );
    let node = crate::node::parse(&text).map_err(|e| e.message)?;
    let mut d = Decoder::new();
    let hcm = Fields::of(&mut d, &node, "async_client").and_then(|f| HttpConnectionManager::decode_fields(&mut d, f));
    match hcm {
        Some(h) if d.errors.is_empty() => Ok(h),
        _ => Err(d.errors.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_route_to_the_cluster_without_a_timeout() {
        let h = async_client_hcm("auth \"svc\"").unwrap();
        let vh = &h.route_config.virtual_hosts[0];
        assert_eq!(vh.routes.len(), 1);
        assert!(h.router().is_some());
        let text = format!("{:?}", vh.routes[0]);
        assert!(text.contains("auth \\\"svc\\\""), "{text}");
    }

    #[test]
    fn a_route_retry_policy_rides_along() {
        let h = async_client_hcm_with("idp", "retry_policy: {retry_on: '5xx', num_retries: 2}").unwrap();
        let text = format!("{:?}", h.route_config.virtual_hosts[0].routes[0]);
        assert!(text.contains("num_retries: 2"), "{text}");
    }
}
