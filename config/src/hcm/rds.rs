//! The HCM's `rds` (`extensions.filters.network.http_connection_manager.v3.Rds`): the
//! route configuration named `route_config_name`, taken from `config_source` instead
//! of an inline `route_config`.
//!
//! `config_source` is a file or `ads: {}` (the ADS stream of `dynamic_resources`,
//! checked by [`crate::xds::ads::validate`]); its `initial_fetch_timeout` bounds
//! listener warming.
//!
//! The HCM decodes with an empty `route_config` of that name; the effective config
//! ([`crate::xds::compose`]) puts the file's route configuration in its place. Route
//! configurations from RDS check their clusters only with `validate_clusters: true`
//! (Envoy's default is false for RDS, true for an inline one).

use crate::decode::{Decode, Decoder, Fields};
use crate::error::ErrorKind;
use crate::node::Node;
use crate::xds::ConfigSource;

/// Where an HCM's routes come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rds {
    pub config_source: ConfigSource,
    pub route_config_name: String,
}

impl Decode for Rds {
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::of(d, node, path)?;
        let line = f.line();
        let config_source: Option<ConfigSource> = f.req(d, "config_source");
        let route_config_name: String = f.or(d, "route_config_name", String::new());
        f.finish(d);
        if route_config_name.is_empty() {
            d.error(
                ErrorKind::Missing,
                &format!("{path}.route_config_name"),
                line,
                "RDS needs the name of the route configuration to take from the file",
            );
            return None;
        }
        let config_source = config_source?;
        Some(Rds { config_source, route_config_name })
    }
}

impl crate::route::RouteConfiguration {
    /// A route configuration named `name` with no virtual hosts (every request: no
    /// route), as an RDS provider holds before its first update.
    pub fn empty(name: &str) -> Self {
        crate::route::RouteConfiguration {
            name: name.to_string(),
            virtual_hosts: Vec::new(),
            validate_clusters: None,
            request_headers: Default::default(),
            response_headers: Default::default(),
            internal_only_headers: Vec::new(),
            most_specific_header_mutations_wins: false,
            max_direct_response_body_size_bytes: crate::route::DEFAULT_MAX_DIRECT_RESPONSE_BODY_SIZE,
            ignore_port_in_host_matching: false,
            request_mirror_policies: Vec::new(),
            typed_per_filter_config: Default::default(),
            line: 0,
        }
    }
}
