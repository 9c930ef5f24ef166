//! sluice's proxy core: workers, listeners, filters, HTTP, routing, upstreams.
//!
//! Everything here is written once against the readiness contract of `sluice-stack`
//! and does not know which datapath it runs on.

#![forbid(unsafe_code)]

pub mod access_log;
pub mod admin;
pub mod buffer;
pub mod cli;
pub mod conn_table;
pub mod filter_chain;
#[doc(hidden)]
pub mod fuzzing;
pub mod histogram;
pub mod http;
pub mod listener;
pub mod overload;
pub mod reload;
pub mod rng;
pub mod route_check;
pub mod router;
pub mod runtime;
pub mod server;
pub mod stats;
pub mod tcp_proxy;
pub mod timer;
pub mod tls;
pub mod trace;
pub mod transport;
pub mod upstream;
pub mod worker;
pub mod worker_ctx;
mod xdp;
pub mod xds;
