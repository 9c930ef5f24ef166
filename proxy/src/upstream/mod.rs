//! Upstreams: clusters, hosts, priorities, load balancing, health, DNS.
//!
//! Workers pick hosts from a cluster's published [`priority::PrioritySet`] with their
//! own [`load_balancer::LoadBalancer`] (`cluster_manager`); host health is owned by one
//! thread, the [`monitor`], which runs active health checks ([`health`]) and outlier
//! detection ([`outlier`]) and republishes the priority set when health changes; DNS
//! clusters are re-resolved by the [`dns`] refresher.

pub mod cluster_manager;
pub mod conn_pool;
pub mod dns;
pub mod h2_client;
pub mod health;
pub mod host;
pub mod load_balancer;
pub mod monitor;
pub mod outlier;
pub mod priority;
