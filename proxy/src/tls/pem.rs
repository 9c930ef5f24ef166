//! Certificates, private keys and CA bundles from config [`DataSource`]s (PEM).
//!
//! Every call reads its sources again, so rebuilding a context on reload picks up
//! rotated files. Errors say which source failed (with its config line) and why, never
//! what it holds.

use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use rustls::RootCertStore;
use sluice_config::tls::{DataSource, TlsCertificate};

use super::error::{ContextError, ContextErrorKind as Kind};

/// `what (line N)`, or `what` when the line is unknown.
fn at(what: &str, line: u32) -> String {
    if line == 0 {
        what.to_string()
    } else {
        format!("{what} (line {line})")
    }
}

fn read(source: &DataSource, what: &str, line: u32) -> Result<Vec<u8>, ContextError> {
    source.read().map_err(|e| ContextError::new(Kind::Read, format!("{}: {e}", at(what, line))))
}

/// The PEM block labels (`CERTIFICATE`, `PRIVATE KEY`, ...) a source holds, to say what
/// it has when it lacks what was asked for.
fn labels(pem: &[u8]) -> String {
    let text = String::from_utf8_lossy(pem);
    let found: Vec<&str> =
        text.lines().filter_map(|l| l.trim().strip_prefix("-----BEGIN ")?.strip_suffix("-----")).collect();
    if found.is_empty() {
        "it holds no PEM block".to_string()
    } else {
        format!("it holds {}", found.join(", "))
    }
}

/// All PEM `CERTIFICATE` blocks of a source, in order; at least one.
pub(crate) fn certificates(
    source: &DataSource,
    what: &str,
    line: u32,
) -> Result<Vec<CertificateDer<'static>>, ContextError> {
    let pem = read(source, what, line)?;
    let certs = CertificateDer::pem_slice_iter(&pem).collect::<Result<Vec<_>, _>>().map_err(|e| {
        ContextError::new(Kind::NoCertificate, format!("{} ({source}): invalid PEM: {e}", at(what, line)))
    })?;
    if certs.is_empty() {
        return Err(ContextError::new(
            Kind::NoCertificate,
            format!("{} ({source}): no PEM CERTIFICATE found; {}", at(what, line), labels(&pem)),
        ));
    }
    Ok(certs)
}

/// The first PEM private key of a source (PKCS#8, PKCS#1 RSA or SEC1 EC).
pub(crate) fn private_key(source: &DataSource, what: &str, line: u32) -> Result<PrivateKeyDer<'static>, ContextError> {
    let pem = read(source, what, line)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| {
        let why = match e {
            rustls::pki_types::pem::Error::NoItemsFound => {
                format!("no PEM PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY found; {}", labels(&pem))
            }
            e => format!("no usable PEM private key: {e}"),
        };
        ContextError::new(Kind::BadPrivateKey, format!("{} ({source}): {why}", at(what, line)))
    })
}

/// The DER `SubjectPublicKeyInfo` of a certificate, whatever its X.509 version (v1
/// certificates have no extensions, and are as good as any for this).
fn subject_public_key_info<'a>(cert: &'a CertificateDer<'_>) -> Result<&'a [u8], String> {
    match x509_parser::parse_x509_certificate(cert.as_ref()) {
        Ok((_, parsed)) => Ok(parsed.tbs_certificate.subject_pki.raw),
        Err(e) => Err(format!("not a valid X.509 certificate: {e}")),
    }
}

/// A `TlsCertificate` as a signing identity: chain, key, and the check that they belong
/// together (the key's public half is the leaf certificate's public key).
pub(crate) fn certified_key(cert: &TlsCertificate, provider: &CryptoProvider) -> Result<CertifiedKey, ContextError> {
    let chain = certificates(&cert.certificate_chain, "certificate_chain", cert.line)?;
    let key_der = private_key(&cert.private_key, "private_key", cert.line)?;
    let key = provider.key_provider.load_private_key(key_der).map_err(|e| {
        ContextError::new(
            Kind::BadPrivateKey,
            format!("{} ({}): unsupported key: {e}", at("private_key", cert.line), cert.private_key),
        )
    })?;
    let leaf = subject_public_key_info(&chain[0]).map_err(|e| {
        ContextError::new(
            Kind::NoCertificate,
            format!(
                "{} ({}): the first certificate is {e}",
                at("certificate_chain", cert.line),
                cert.certificate_chain
            ),
        )
    })?;
    // A key type that cannot show its public half cannot be checked here; the
    // handshake's signatures still can.
    if let Some(public) = key.public_key() {
        if public.as_ref() != leaf {
            return Err(ContextError::new(
                Kind::KeyMismatch,
                format!(
                    "{} ({}) does not match certificate_chain ({}): the key's public key is not the \
                     first certificate's",
                    at("private_key", cert.line),
                    cert.private_key,
                    cert.certificate_chain
                ),
            ));
        }
    }
    Ok(CertifiedKey::new(chain, key))
}

/// A trust store from a PEM CA bundle; every certificate in it must be usable.
pub(crate) fn trusted_ca(source: &DataSource, line: u32) -> Result<Arc<RootCertStore>, ContextError> {
    let mut roots = RootCertStore::empty();
    for (i, cert) in certificates(source, "trusted_ca", line)?.into_iter().enumerate() {
        roots.add(cert).map_err(|e| {
            ContextError::new(
                Kind::BadTrustedCa,
                format!("{} ({source}): certificate {i} is not usable: {e}", at("trusted_ca", line)),
            )
        })?;
    }
    Ok(Arc::new(roots))
}
