//! Errors of the TLS layer: [`ContextError`] when a context cannot be built from
//! config (bad files, keys, CAs), and the small, `Copy` [`TlsError`] a session reports,
//! which maps rustls's many errors onto what the connection layer acts and counts on.

use std::fmt;

/// Why a TLS context could not be built. The message names the config source
/// (a file name, `inline_string`, ...) but never its contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContextError {
    pub kind: ContextErrorKind,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContextErrorKind {
    /// A certificate, key or CA source could not be read.
    Read,
    /// No PEM certificate where one is needed.
    NoCertificate,
    /// No (or an unusable) PEM private key.
    BadPrivateKey,
    /// The private key does not belong to the certificate.
    KeyMismatch,
    /// The trusted CA bundle holds no usable certificate.
    BadTrustedCa,
    /// A configured name (SNI, SAN) is not a valid DNS name or IP address.
    BadName,
    /// rustls refused the resulting configuration.
    Config,
}

impl ContextError {
    pub(crate) fn new(kind: ContextErrorKind, message: impl Into<String>) -> ContextError {
        ContextError { kind, message: message.into() }
    }
}

impl fmt::Display for ContextError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ContextError {}

/// Why a TLS session failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsError {
    /// The peer broke the protocol, or is not speaking TLS at all.
    Protocol,
    /// Nothing in common: protocol version, cipher suite, group or application protocol.
    Negotiation,
    /// The peer's certificate did not verify (unknown issuer, expired, bad signature...).
    CertificateInvalid,
    /// The peer's certificate verified but holds none of the required names.
    CertificateNameMismatch,
    /// A certificate was required and the peer presented none.
    CertificateRequired,
    /// The peer sent a fatal alert.
    PeerAlert,
    /// The SNI asked for a client session is not a DNS name or IP address.
    InvalidServerName,
    /// Anything else (including use after a failure).
    Internal,
}

impl TlsError {
    /// Envoy's `ssl.*` counter for this failure.
    pub fn stat_name(self) -> &'static str {
        match self {
            TlsError::CertificateInvalid => "fail_verify_error",
            TlsError::CertificateNameMismatch => "fail_verify_san",
            TlsError::CertificateRequired => "fail_verify_no_cert",
            TlsError::Protocol
            | TlsError::Negotiation
            | TlsError::PeerAlert
            | TlsError::InvalidServerName
            | TlsError::Internal => "connection_error",
        }
    }
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TlsError::Protocol => "TLS protocol error",
            TlsError::Negotiation => "no TLS parameters in common with the peer",
            TlsError::CertificateInvalid => "peer certificate verification failed",
            TlsError::CertificateNameMismatch => "peer certificate does not match the required names",
            TlsError::CertificateRequired => "peer did not present a certificate",
            TlsError::PeerAlert => "peer sent a fatal TLS alert",
            TlsError::InvalidServerName => "invalid server name for SNI",
            TlsError::Internal => "internal TLS error",
        })
    }
}

impl std::error::Error for TlsError {}

impl From<&rustls::Error> for TlsError {
    fn from(e: &rustls::Error) -> TlsError {
        use rustls::{CertificateError as C, Error as E};
        match e {
            E::NoCertificatesPresented => TlsError::CertificateRequired,
            E::InvalidCertificate(C::NotValidForName | C::NotValidForNameContext { .. }) => {
                TlsError::CertificateNameMismatch
            }
            E::InvalidCertificate(_) | E::InvalidCertRevocationList(_) => TlsError::CertificateInvalid,
            E::PeerIncompatible(_) | E::NoApplicationProtocol => TlsError::Negotiation,
            E::AlertReceived(_) => TlsError::PeerAlert,
            E::InappropriateMessage { .. }
            | E::InappropriateHandshakeMessage { .. }
            | E::InvalidMessage(_)
            | E::PeerMisbehaved(_)
            | E::DecryptError
            | E::PeerSentOversizedRecord
            | E::InvalidEncryptedClientHello(_)
            | E::UnsupportedNameType => TlsError::Protocol,
            _ => TlsError::Internal,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rustls_errors_map_to_envoy_counters() {
        let cases = [
            (rustls::Error::NoCertificatesPresented, TlsError::CertificateRequired, "fail_verify_no_cert"),
            (
                rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
                TlsError::CertificateInvalid,
                "fail_verify_error",
            ),
            (
                rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName),
                TlsError::CertificateNameMismatch,
                "fail_verify_san",
            ),
            (rustls::Error::NoApplicationProtocol, TlsError::Negotiation, "connection_error"),
            (rustls::Error::DecryptError, TlsError::Protocol, "connection_error"),
            (
                rustls::Error::AlertReceived(rustls::AlertDescription::HandshakeFailure),
                TlsError::PeerAlert,
                "connection_error",
            ),
            (rustls::Error::General("x".into()), TlsError::Internal, "connection_error"),
        ];
        for (e, want, stat) in cases {
            assert_eq!(TlsError::from(&e), want, "{e}");
            assert_eq!(want.stat_name(), stat);
        }
    }
}
