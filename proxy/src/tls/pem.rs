//! Certificates, private keys and CA bundles from config [`DataSource`]s (PEM).
//!
//! Every call reads its sources again, so rebuilding a context on reload picks up
//! rotated files. Errors say which source failed and why, never what it holds.

use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use rustls::RootCertStore;
use sluice_config::tls::{DataSource, TlsCertificate};

use super::error::{ContextError, ContextErrorKind as Kind};

fn read(source: &DataSource, what: &str) -> Result<Vec<u8>, ContextError> {
    source.read().map_err(|e| ContextError::new(Kind::Read, format!("{what}: {e}")))
}

/// All PEM `CERTIFICATE` blocks of a source, in order; at least one.
pub(crate) fn certificates(source: &DataSource, what: &str) -> Result<Vec<CertificateDer<'static>>, ContextError> {
    let pem = read(source, what)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ContextError::new(Kind::NoCertificate, format!("{what} ({source}): invalid PEM: {e}")))?;
    if certs.is_empty() {
        return Err(ContextError::new(Kind::NoCertificate, format!("{what} ({source}): no PEM certificate found")));
    }
    Ok(certs)
}

/// The first PEM private key of a source (PKCS#8, PKCS#1 RSA or SEC1 EC).
pub(crate) fn private_key(source: &DataSource, what: &str) -> Result<PrivateKeyDer<'static>, ContextError> {
    let pem = read(source, what)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| {
        ContextError::new(Kind::BadPrivateKey, format!("{what} ({source}): no usable PEM private key: {e}"))
    })
}

/// A `TlsCertificate` as a signing identity: chain, key, and the check that they belong
/// together.
pub(crate) fn certified_key(cert: &TlsCertificate, provider: &CryptoProvider) -> Result<CertifiedKey, ContextError> {
    let chain = certificates(&cert.certificate_chain, "certificate_chain")?;
    let key_der = private_key(&cert.private_key, "private_key")?;
    let key = provider.key_provider.load_private_key(key_der).map_err(|e| {
        ContextError::new(Kind::BadPrivateKey, format!("private_key ({}): unsupported key: {e}", cert.private_key))
    })?;
    let certified = CertifiedKey::new(chain, key);
    match certified.keys_match() {
        // A key type that cannot show its public half cannot be checked here; the
        // handshake's signatures still can.
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => Ok(certified),
        Err(e) => Err(ContextError::new(
            Kind::KeyMismatch,
            format!(
                "private_key ({}) does not match certificate_chain ({}): {e}",
                cert.private_key, cert.certificate_chain
            ),
        )),
    }
}

/// A trust store from a PEM CA bundle; every certificate in it must be usable.
pub(crate) fn trusted_ca(source: &DataSource) -> Result<Arc<RootCertStore>, ContextError> {
    let mut roots = RootCertStore::empty();
    for (i, cert) in certificates(source, "trusted_ca")?.into_iter().enumerate() {
        roots.add(cert).map_err(|e| {
            ContextError::new(Kind::BadTrustedCa, format!("trusted_ca ({source}): certificate {i} is not usable: {e}"))
        })?;
    }
    Ok(Arc::new(roots))
}
