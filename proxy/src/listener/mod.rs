//! Listeners: the compiled listener table and the listener filters that inspect a new
//! connection before its filter chain is chosen.

pub mod active_socket;
pub mod filters;
pub mod manager;
