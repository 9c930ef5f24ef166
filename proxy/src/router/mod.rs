//! Routing: the route table compiled from an Envoy `RouteConfiguration`, and what a
//! matched route tells the connection manager and the router filter.
//!
//! Contract:
//! - [`RouteTable::new`] compiles a decoded config once (domain tables; regexes and
//!   header templates are already compiled by `sluice-config`). The table is
//!   immutable and shared by all workers (`Arc`).
//! - [`RouteTable::route`] selects the virtual host and the first matching route for a
//!   [`RequestHead`](crate::http::RequestHead), resolving the cluster — the weighted
//!   pick uses [`weighted::pick`], fed by the caller's random value, the same function
//!   route-check uses. It never panics on any request and allocates only to copy a
//!   `cluster_header` value or join a repeated header for a header matcher.
//! - A [`Matched`] route answers the rest as pure functions over the request and
//!   response heads: header mutations, host/path rewrites, the redirect URL and the
//!   whole local reply of a direct response, and the typed timeout / retry / mirror /
//!   hash policies for the router filter.
//!
//! Semantics follow Envoy's source/common/router/config_impl.cc; each file cites the
//! function it mirrors.

mod config;
pub mod formatter;
pub mod hash;
mod header_parser;
pub mod hedge;
pub mod internal_redirect;
mod matched;
pub mod retry;
pub mod rewrite;
pub mod route_match;
mod route_ref;
pub mod shadow;
pub mod timeout;
pub mod vhost;
pub mod weighted;

pub use config::{virtual_cluster_name, RouteTable};
pub use formatter::StreamInfo;
pub use matched::{ClusterChoice, Matched, RouteKind};
pub use route_ref::RouteRef;

#[cfg(test)]
mod tests;
