//! TLS termination and origination with rustls, for any datapath.
//!
//! Config to runtime: [`ServerTlsContext::new`] builds a filter chain's
//! `DownstreamTlsContext` and [`ClientTlsContext::new`] a cluster's
//! `UpstreamTlsContext`, reading certificates, keys and CAs from their sources each
//! time (so a reload rebuilds them with rotated files) and failing with a
//! [`ContextError`] that names the source. At run time a [`TlsSession`] per connection
//! turns ciphertext into plaintext and back without ever touching a socket, so the same
//! code serves kernel sockets and the userspace stack. Semantics follow Envoy's TLS
//! transport socket: Envoy's default versions, ciphers and curves; client certificates
//! requested only with a `trusted_ca` and required only with
//! `require_client_certificate`; upstream certificates verified only against a
//! configured `trusted_ca` (Envoy's default), host names only when SAN matching or
//! `auto_sni_san_validation` asks; failures reported as a small [`TlsError`] with
//! Envoy's `ssl.*` counter name.

pub mod cert_info;
mod check;
mod context;
mod error;
mod pem;
mod resolver;
mod session;
#[cfg(test)]
mod tests;
mod verify;

pub use check::context_errors;
pub use context::{ClientTlsContext, ServerTlsContext};
pub use error::{ContextError, ContextErrorKind, TlsError};
pub use session::{ClientSessionOptions, ReadStatus, TlsSession};
