//! Which of a server context's certificates answers a ClientHello (Envoy's default
//! certificate selector).
//!
//! One certificate: always that one. Several: the first, in config order, whose SANs
//! match the SNI and whose key can sign with a scheme the client offers; else the first
//! matching the SNI; without an SNI match, the first certificate, or with
//! `full_scan_certs_on_sni_mismatch` the first whose key suits the client. (Envoy also
//! ranks an exact SAN above a wildcard one; here the config order decides between them.)

use std::sync::Arc;

use rustls::client::verify_server_name;
use rustls::pki_types::ServerName;
use rustls::server::{ClientHello, ParsedCertificate, ResolvesServerCert};
use rustls::sign::CertifiedKey;

#[derive(Debug)]
pub(crate) struct CertResolver {
    /// Never empty (the config decoder refuses a server context without certificates).
    pub(crate) certs: Vec<Arc<CertifiedKey>>,
    pub(crate) full_scan_certs_on_sni_mismatch: bool,
}

fn matches_name(key: &CertifiedKey, name: &ServerName<'_>) -> bool {
    let Some(end_entity) = key.cert.first() else { return false };
    ParsedCertificate::try_from(end_entity).is_ok_and(|cert| verify_server_name(&cert, name).is_ok())
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        if self.certs.len() == 1 {
            return self.certs.first().cloned();
        }
        let suits_client = |key: &&Arc<CertifiedKey>| key.key.choose_scheme(hello.signature_schemes()).is_some();
        if let Some(name) = hello.server_name().and_then(|n| ServerName::try_from(n).ok()) {
            let mut matching = self.certs.iter().filter(|key| matches_name(key, &name)).peekable();
            let first_match = matching.peek().cloned();
            if let Some(key) = matching.find(suits_client).or(first_match) {
                return Some(key.clone());
            }
        }
        let fallback = if self.full_scan_certs_on_sni_mismatch { self.certs.iter().find(suits_client) } else { None };
        fallback.or(self.certs.first()).cloned()
    }
}
