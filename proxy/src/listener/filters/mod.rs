//! Listener filters: they look at a new connection (its addresses, its first bytes,
//! peeked and never consumed) and record what they learn for filter-chain selection.

pub mod http_inspector;
pub mod tls_inspector;
