//! Listener filters: they run in order on an accepted socket, may peek at its first
//! bytes across several readiness events without consuming them, and record what they
//! learn (restored destination, SNI, ALPN, transport and application protocol) for
//! filter-chain selection.

pub mod http_inspector;
pub mod original_dst;
pub mod tls_inspector;
