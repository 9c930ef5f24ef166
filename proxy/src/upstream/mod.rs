//! Upstreams: clusters, hosts, load balancing, DNS.

pub mod cluster_manager;
pub mod conn_pool;
pub mod dns;
pub mod host;
pub mod load_balancer;
