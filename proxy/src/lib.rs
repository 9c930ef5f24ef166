//! sluice's proxy core: workers, listeners, filters, HTTP, routing, upstreams.
//!
//! Everything here is written once against the readiness contract of `sluice-stack`
//! and does not know which datapath it runs on.

#![forbid(unsafe_code)]

pub mod filter_chain;
pub mod http;
pub mod listener;
pub mod tls;
