//! TLS contexts built from config: rustls `ServerConfig`s for a filter chain's
//! `DownstreamTlsContext` and a `ClientConfig` for a cluster's `UpstreamTlsContext`.
//!
//! Building reads every certificate, key and CA source again, so calling `new` on a
//! config reload yields contexts with the rotated files; sessions already running keep
//! the context they started with. The crypto is rustls with *ring*, narrowed to the
//! configured versions, TLS 1.2 cipher suites and key-exchange groups (Envoy's
//! defaults when none are configured). Building is the only costly step; starting a
//! session from a context is cheap.

use std::sync::Arc;

use rustls::client::{ResolvesClientCert, Resumption};
use rustls::crypto::ring::{cipher_suite as suite, default_provider, kx_group, Ticketer};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::ServerName;
use rustls::server::danger::ClientCertVerifier;
use rustls::server::{NoClientAuth, NoServerSessionStorage, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, ServerConfig, SignatureScheme, SupportedCipherSuite, SupportedProtocolVersion};
use sluice_config::tls::{CipherSuite, DownstreamTlsContext, EcdhCurve, TlsParameters, TlsVersion, UpstreamTlsContext};

use super::error::{ContextError, ContextErrorKind as Kind};
use super::pem;
use super::resolver::CertResolver;
use super::verify::{san_names, ClientSanVerifier, UpstreamVerifier};

/// Envoy's default TLS 1.2 cipher list, in its order of preference.
const DEFAULT_TLS12: [CipherSuite; 6] = [
    CipherSuite::EcdheEcdsaAes128GcmSha256,
    CipherSuite::EcdheEcdsaChacha20Poly1305,
    CipherSuite::EcdheRsaAes128GcmSha256,
    CipherSuite::EcdheRsaChacha20Poly1305,
    CipherSuite::EcdheEcdsaAes256GcmSha384,
    CipherSuite::EcdheRsaAes256GcmSha384,
];

fn tls12_suite(c: CipherSuite) -> SupportedCipherSuite {
    match c {
        CipherSuite::EcdheEcdsaAes128GcmSha256 => suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        CipherSuite::EcdheRsaAes128GcmSha256 => suite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        CipherSuite::EcdheEcdsaAes256GcmSha384 => suite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        CipherSuite::EcdheRsaAes256GcmSha384 => suite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        CipherSuite::EcdheEcdsaChacha20Poly1305 => suite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        CipherSuite::EcdheRsaChacha20Poly1305 => suite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    }
}

/// The *ring* provider narrowed to the configured suites and groups.
fn provider(params: &TlsParameters) -> Arc<CryptoProvider> {
    let mut provider = default_provider();
    let tls12 = params.cipher_suites.as_deref().unwrap_or(&DEFAULT_TLS12);
    provider.cipher_suites =
        [suite::TLS13_AES_128_GCM_SHA256, suite::TLS13_AES_256_GCM_SHA384, suite::TLS13_CHACHA20_POLY1305_SHA256]
            .into_iter()
            .chain(tls12.iter().map(|c| tls12_suite(*c)))
            .collect();
    provider.kx_groups = params
        .ecdh_curves
        .iter()
        .map(|c| match c {
            EcdhCurve::X25519 => kx_group::X25519,
            EcdhCurve::P256 => kx_group::SECP256R1,
            EcdhCurve::P384 => kx_group::SECP384R1,
        })
        .collect();
    Arc::new(provider)
}

fn versions(params: &TlsParameters) -> Vec<&'static SupportedProtocolVersion> {
    [(TlsVersion::Tls12, &rustls::version::TLS12), (TlsVersion::Tls13, &rustls::version::TLS13)]
        .into_iter()
        .filter(|(v, _)| (params.min_version..=params.max_version).contains(v))
        .map(|(_, v)| v)
        .collect()
}

fn config_error(e: impl std::fmt::Display) -> ContextError {
    ContextError::new(Kind::Config, format!("TLS configuration refused: {e}"))
}

/// A filter chain's TLS termination: what a server session is started from.
#[derive(Debug)]
pub struct ServerTlsContext {
    /// With the configured ALPN protocols.
    with_alpn: Arc<ServerConfig>,
    /// The same without ALPN: for a client whose offer shares nothing with ours, which
    /// Envoy (BoringSSL) answers without ALPN instead of failing the handshake.
    without_alpn: Arc<ServerConfig>,
}

impl ServerTlsContext {
    /// Build from a `DownstreamTlsContext`, reading its certificates and CA now.
    pub fn new(ctx: &DownstreamTlsContext) -> Result<Arc<ServerTlsContext>, ContextError> {
        let common = &ctx.common_tls_context;
        let provider = provider(&common.tls_params);
        let certs = common
            .certificates()
            .iter()
            .map(|c| pem::certified_key(c, &provider).map(Arc::new))
            .collect::<Result<Vec<_>, _>>()?;
        if certs.is_empty() {
            return Err(ContextError::new(Kind::NoCertificate, "No TLS certificates found for server context"));
        }
        let with_ca = common.validation().and_then(|vc| Some((vc, vc.trusted_ca.as_ref()?)));
        if with_ca.is_none() && ctx.require_client_certificate {
            // Only an SDS validation context can lack it here (the decoder refuses an
            // inline one without it).
            return Err(ContextError::new(
                Kind::Config,
                "require_client_certificate needs a validation context with a trusted_ca",
            ));
        }
        let verifier: Arc<dyn ClientCertVerifier> = match with_ca {
            Some((vc, ca)) => {
                let roots = pem::trusted_ca(ca, ctx.line)?;
                let mut builder = WebPkiClientVerifier::builder_with_provider(roots, provider.clone());
                if !ctx.require_client_certificate {
                    builder = builder.allow_unauthenticated();
                }
                let inner = builder.build().map_err(config_error)?;
                let sans =
                    san_names(&vc.match_typed_subject_alt_names).map_err(|e| ContextError::new(Kind::BadName, e))?;
                if sans.is_empty() {
                    inner
                } else {
                    Arc::new(ClientSanVerifier { inner, sans })
                }
            }
            None => Arc::new(NoClientAuth),
        };
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&versions(&common.tls_params))
            .map_err(config_error)?
            .with_client_cert_verifier(verifier)
            .with_cert_resolver(Arc::new(CertResolver {
                certs,
                full_scan_certs_on_sni_mismatch: ctx.full_scan_certs_on_sni_mismatch,
            }));
        config.ignore_client_order = !ctx.prefer_client_ciphers;
        if ctx.disable_stateful_session_resumption {
            config.session_storage = Arc::new(NoServerSessionStorage {});
        }
        if !ctx.disable_stateless_session_resumption {
            config.ticketer = Ticketer::new().map_err(config_error)?;
        }
        if ctx.disable_stateful_session_resumption && ctx.disable_stateless_session_resumption {
            config.send_tls13_tickets = 0;
        }
        let without_alpn = Arc::new(config.clone());
        config.alpn_protocols = common.alpn_protocols.iter().map(|p| p.as_bytes().to_vec()).collect();
        Ok(Arc::new(ServerTlsContext { with_alpn: Arc::new(config), without_alpn }))
    }

    /// The configured ALPN protocols, in preference order.
    pub fn alpn_protocols(&self) -> &[Vec<u8>] {
        &self.with_alpn.alpn_protocols
    }

    /// The config for a client offering `offered` (its ALPN list, if it sent one).
    pub(crate) fn config_for<'a>(&self, offered: Option<impl Iterator<Item = &'a [u8]>>) -> Arc<ServerConfig> {
        let ours = &self.with_alpn.alpn_protocols;
        let disjoint = match offered {
            Some(mut theirs) => !ours.is_empty() && !theirs.any(|p| ours.iter().any(|o| o.as_slice() == p)),
            None => false,
        };
        if disjoint {
            self.without_alpn.clone()
        } else {
            self.with_alpn.clone()
        }
    }
}

/// The client certificate of an upstream context.
#[derive(Debug)]
struct ClientCert(Arc<CertifiedKey>);

impl ResolvesClientCert for ClientCert {
    fn resolve(&self, _root_hint_subjects: &[&[u8]], _schemes: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// A cluster's TLS origination: what a client session is started from.
#[derive(Debug)]
pub struct ClientTlsContext {
    pub(crate) config: Arc<ClientConfig>,
    /// The configured `sni`, if any.
    pub(crate) sni: Option<ServerName<'static>>,
}

impl ClientTlsContext {
    /// Build from an `UpstreamTlsContext`, reading its certificate and CA now.
    pub fn new(ctx: &UpstreamTlsContext) -> Result<Arc<ClientTlsContext>, ContextError> {
        let common = &ctx.common_tls_context;
        let provider = provider(&common.tls_params);
        let validation = common.validation();
        let roots =
            validation.and_then(|v| v.trusted_ca.as_ref()).map(|ca| pem::trusted_ca(ca, ctx.line)).transpose()?;
        let sans = san_names(validation.map_or(&[][..], |v| &v.match_typed_subject_alt_names))
            .map_err(|e| ContextError::new(Kind::BadName, e))?;
        let verifier = Arc::new(UpstreamVerifier {
            roots,
            sans,
            auto_sni_san_validation: ctx.auto_sni_san_validation,
            algorithms: provider.signature_verification_algorithms,
        });
        let client_cert = match common.certificates().first() {
            Some(cert) => Some(Arc::new(pem::certified_key(cert, &provider)?)),
            None => None,
        };
        let builder = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&versions(&common.tls_params))
            .map_err(config_error)?
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let mut config = match client_cert {
            Some(cert) => builder.with_client_cert_resolver(Arc::new(ClientCert(cert))),
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = common.alpn_protocols.iter().map(|p| p.as_bytes().to_vec()).collect();
        config.resumption = match ctx.max_session_keys {
            0 => Resumption::disabled(),
            n => Resumption::in_memory_sessions(n as usize),
        };
        let sni = match ctx.sni.as_str() {
            "" => None,
            name => Some(ServerName::try_from(name.to_string()).map_err(|_| {
                ContextError::new(Kind::BadName, format!("sni `{name}` is not a valid DNS name or IP address"))
            })?),
        };
        Ok(Arc::new(ClientTlsContext { config: Arc::new(config), sni }))
    }

    /// The configured ALPN protocols.
    pub fn alpn_protocols(&self) -> &[Vec<u8>] {
        &self.config.alpn_protocols
    }
}
