//! HTTP filters: the decoder filters that run before the router (fault injection), and
//! the router, the terminal filter that sends the request upstream.

pub mod fault;
pub mod router;
