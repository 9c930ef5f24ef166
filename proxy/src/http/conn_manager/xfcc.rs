//! `x-forwarded-client-cert` (Envoy's `mutateXfccRequestHeader`), per
//! `forward_client_cert_details` and `set_current_client_cert_details`.
//!
//! ALWAYS_FORWARD_ONLY leaves the header alone. SANITIZE, and any mode on a connection
//! without a verified client certificate, remove it. FORWARD_ONLY forwards it as
//! received (mTLS only). APPEND_FORWARD appends an element for this hop after a comma;
//! SANITIZE_SET replaces the header with it. The element is `By=` (each URI SAN of our
//! certificate), `Hash=` (SHA-256 of the client certificate), then, as configured,
//! `Cert="…"`, `Chain="…"` (URL-encoded PEM), `Subject="…"`, `URI=` (each URI SAN,
//! or an empty `URI=`), `DNS=` (each DNS SAN), joined by `;`.

use sluice_config::hcm::{ForwardClientCertDetails, SetCurrentClientCertDetails};

use crate::http::HeaderMap;
use crate::tls::cert_info::{pem, sha256_hex, url_encode, CertNames};
use crate::transport::TransportSocket;

pub const XFCC: &[u8] = b"x-forwarded-client-cert";

/// The DER certificates of an mTLS connection, as the transport has them.
#[derive(Debug, Clone, Copy)]
pub struct ClientCerts<'a> {
    /// The peer's chain, leaf first (never empty).
    pub peer_chain: &'a [rustls::pki_types::CertificateDer<'static>],
    /// Our end-entity certificate.
    pub local: Option<&'a [u8]>,
}

/// Whether a mode needs this hop's element (and so the certificates parsed).
pub fn needs_element(mode: ForwardClientCertDetails) -> bool {
    matches!(mode, ForwardClientCertDetails::AppendForward | ForwardClientCertDetails::SanitizeSet)
}

/// This hop's XFCC element for a client that presented `certs`.
pub fn element(details: &SetCurrentClientCertDetails, certs: ClientCerts<'_>) -> String {
    let leaf: &[u8] = certs.peer_chain[0].as_ref();
    let mut parts: Vec<String> = Vec::new();
    if let Some(local) = certs.local {
        for uri in CertNames::of(local).uri_sans {
            parts.push(format!("By={uri}"));
        }
    }
    parts.push(format!("Hash={}", sha256_hex(leaf)));
    let names = if details.subject || details.uri || details.dns { CertNames::of(leaf) } else { CertNames::default() };
    // Envoy's order: the ClientCertDetailsType enum (Cert, Chain, Subject, URI, DNS).
    if details.cert {
        parts.push(format!("Cert=\"{}\"", url_encode(&pem(leaf))));
    }
    if details.chain {
        let chain: String = certs.peer_chain.iter().map(|c| pem(c.as_ref())).collect();
        parts.push(format!("Chain=\"{}\"", url_encode(&chain)));
    }
    if details.subject {
        parts.push(format!("Subject=\"{}\"", names.subject));
    }
    if details.uri {
        if names.uri_sans.is_empty() {
            parts.push("URI=".to_string());
        }
        for uri in &names.uri_sans {
            parts.push(format!("URI={uri}"));
        }
    }
    if details.dns {
        for dns in &names.dns_sans {
            parts.push(format!("DNS={dns}"));
        }
    }
    parts.join(";")
}

/// This hop's element for a connection, when it is mTLS and `mode` sets one.
pub fn element_for(
    mode: ForwardClientCertDetails,
    details: &SetCurrentClientCertDetails,
    transport: &TransportSocket,
) -> Option<String> {
    if !needs_element(mode) {
        return None;
    }
    let peer_chain = transport.peer_certificates()?;
    let local = transport.local_certificate().map(|c| c.as_ref());
    Some(element(details, ClientCerts { peer_chain, local }))
}

/// Apply `mode` to the request headers; `element` is this hop's element when the
/// connection is mTLS and the mode needs one (see [`needs_element`]).
pub fn mutate(headers: &mut HeaderMap, mode: ForwardClientCertDetails, mtls: bool, element: Option<&str>) {
    use ForwardClientCertDetails::*;
    if mode == AlwaysForwardOnly {
        return;
    }
    if mode == Sanitize || !mtls {
        headers.remove(XFCC);
        return;
    }
    let Some(element) = element else { return };
    match mode {
        AppendForward => {
            let joined = match headers.get(XFCC) {
                Some(v) if !v.is_empty() => {
                    let mut j = v.to_vec();
                    j.push(b',');
                    j.extend_from_slice(element.as_bytes());
                    j
                }
                _ => element.as_bytes().to_vec(),
            };
            headers.set(XFCC, &joined);
        }
        SanitizeSet => headers.set(XFCC, element.as_bytes()),
        ForwardOnly | AlwaysForwardOnly | Sanitize => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::CertificateDer;
    use ForwardClientCertDetails::*;

    fn headers(xfcc: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(v) = xfcc {
            h.append(XFCC, v.as_bytes());
        }
        h
    }

    fn get(h: &HeaderMap) -> Option<&str> {
        h.get_str(XFCC)
    }

    #[test]
    fn modes_on_mtls_and_plain_connections() {
        let e = Some("Hash=ab");
        for (mode, mtls, want) in [
            (Sanitize, true, None),
            (ForwardOnly, true, Some("By=x")),
            (ForwardOnly, false, None),
            (AppendForward, true, Some("By=x,Hash=ab")),
            (AppendForward, false, None),
            (SanitizeSet, true, Some("Hash=ab")),
            (SanitizeSet, false, None),
            (AlwaysForwardOnly, false, Some("By=x")),
            (AlwaysForwardOnly, true, Some("By=x")),
        ] {
            let mut h = headers(Some("By=x"));
            mutate(&mut h, mode, mtls, e);
            assert_eq!(get(&h), want, "{mode:?} mtls={mtls}");
        }
        let mut h = headers(None);
        mutate(&mut h, AppendForward, true, e);
        assert_eq!(get(&h), Some("Hash=ab"), "append to nothing");
    }

    #[test]
    fn element_fields_in_envoys_order() {
        let mut params = rcgen::CertificateParams::new(vec!["a.test".to_string(), "b.test".to_string()]).unwrap();
        params.subject_alt_names.push(rcgen::SanType::URI("spiffe://c/client".try_into().unwrap()));
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(rcgen::DnType::CommonName, "client");
        let key = rcgen::KeyPair::generate().unwrap();
        let leaf = params.self_signed(&key).unwrap();
        let mut server = rcgen::CertificateParams::new(vec!["proxy.test".to_string()]).unwrap();
        server.subject_alt_names.push(rcgen::SanType::URI("spiffe://c/proxy".try_into().unwrap()));
        let local = server.self_signed(&key).unwrap();
        let chain = [CertificateDer::from(leaf.der().to_vec())];
        let certs = ClientCerts { peer_chain: &chain, local: Some(local.der().as_ref()) };
        let all = SetCurrentClientCertDetails { subject: true, cert: true, chain: true, dns: true, uri: true };
        let e = element(&all, certs);
        let keys: Vec<&str> = e.split(';').map(|p| p.split('=').next().unwrap()).collect();
        assert_eq!(keys, ["By", "Hash", "Cert", "Chain", "Subject", "URI", "DNS", "DNS"]);
        assert!(e.starts_with("By=spiffe://c/proxy;Hash="));
        assert!(e.contains(";Subject=\"CN=client\";URI=spiffe://c/client;DNS=a.test;DNS=b.test"), "{e}");
        assert!(e.contains("Cert=\"-----BEGIN%20CERTIFICATE-----%0A"), "{e}");
        let none = element(&SetCurrentClientCertDetails::default(), ClientCerts { peer_chain: &chain, local: None });
        assert_eq!(none, format!("Hash={}", sha256_hex(leaf.der())));
        let uri_only = SetCurrentClientCertDetails { uri: true, ..Default::default() };
        let plain = rcgen::CertificateParams::new(vec!["x.test".to_string()]).unwrap().self_signed(&key).unwrap();
        let chain = [CertificateDer::from(plain.der().to_vec())];
        let e = element(&uri_only, ClientCerts { peer_chain: &chain, local: None });
        assert!(e.ends_with(";URI="), "an empty URI= when the certificate has none: {e}");
    }
}
