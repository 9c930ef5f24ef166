//! Peer certificate verification with Envoy's semantics, on top of webpki.
//!
//! Upstream (Envoy's `DefaultCertValidator`): without `trusted_ca` the server's
//! certificate is not verified at all (Envoy's documented default); with it, the chain
//! must reach one of those CAs. The host name is checked only when asked: against
//! `match_typed_subject_alt_names`, or against the SNI sent with
//! `auto_sni_san_validation`. Downstream, rustls's webpki client verifier checks the
//! chain and [`ClientSanVerifier`] adds the SAN match. Either way the handshake
//! signatures are always verified, so a peer must hold the key of what it presents.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{verify_server_cert_signed_by_trust_anchor, verify_server_name};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::ParsedCertificate;
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};
use sluice_config::tls::SubjectAltName;

/// The configured SANs as names webpki can match (DNS names with wildcard SANs in the
/// certificate honoured, as Envoy's DNS matcher does).
pub(crate) fn san_names(sans: &[SubjectAltName]) -> Result<Vec<ServerName<'static>>, String> {
    sans.iter()
        .map(|san| match san {
            SubjectAltName::Dns(name) => ServerName::try_from(name.clone())
                .map_err(|_| format!("match_typed_subject_alt_names: `{name}` is not a valid DNS name")),
            SubjectAltName::Ip(ip) => Ok(ServerName::IpAddress((*ip).into())),
        })
        .collect()
}

/// Any one of `names` must be in the certificate's SANs.
fn check_names(end_entity: &CertificateDer<'_>, names: &[ServerName<'static>]) -> Result<(), rustls::Error> {
    let cert = ParsedCertificate::try_from(end_entity)?;
    if names.iter().any(|name| verify_server_name(&cert, name).is_ok()) {
        Ok(())
    } else {
        Err(rustls::Error::InvalidCertificate(CertificateError::NotValidForName))
    }
}

/// Verifies an upstream server's certificate.
#[derive(Debug)]
pub(crate) struct UpstreamVerifier {
    pub(crate) roots: Option<Arc<RootCertStore>>,
    pub(crate) sans: Vec<ServerName<'static>>,
    pub(crate) auto_sni_san_validation: bool,
    pub(crate) algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for UpstreamVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let cert = ParsedCertificate::try_from(end_entity)?;
        if let Some(roots) = &self.roots {
            verify_server_cert_signed_by_trust_anchor(&cert, roots, intermediates, now, self.algorithms.all)?;
        }
        if self.auto_sni_san_validation && matches!(server_name, ServerName::DnsName(_)) {
            // The SNI actually sent replaces the configured SAN list.
            verify_server_name(&cert, server_name)?;
        } else if !self.sans.is_empty() {
            check_names(end_entity, &self.sans)?;
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// A client-certificate verifier that also requires one of the configured SANs.
#[derive(Debug)]
pub(crate) struct ClientSanVerifier {
    pub(crate) inner: Arc<dyn ClientCertVerifier>,
    pub(crate) sans: Vec<ServerName<'static>>,
}

impl ClientCertVerifier for ClientSanVerifier {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self.inner.verify_client_cert(end_entity, intermediates, now)?;
        check_names(end_entity, &self.sans)?;
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
