//! Listeners: the listener filters that inspect a new connection before a filter chain
//! is chosen for it.

pub mod filters;
