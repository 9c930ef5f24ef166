//! `transport_socket`: plaintext, or TLS from `envoy.extensions.transport_sockets.tls.v3`
//! (`DownstreamTlsContext` on a filter chain, `UpstreamTlsContext` on a cluster).
//!
//! Decoding resolves every choice that can be made at load time: Envoy's per-side
//! defaults (TLS 1.2 minimum; maximum 1.3 for servers, 1.2 for clients), BoringSSL
//! cipher and curve names to the typed suites and groups sluice's TLS library offers,
//! SAN matchers to typed names. Certificates and keys stay [`DataSource`]s: the proxy
//! reads them each time it builds a TLS context, so a reload picks up rotated files.
//! Fields sluice does not implement are rejected with their path; a BoringSSL cipher
//! or curve that exists but is not available here is dropped with a warning.

use std::net::IpAddr;

use crate::decode::{typed_config, Decode, Decoder, Fields};
use crate::error::ErrorKind;
use crate::node::Node;
use crate::proto_enum;

mod data_source;
mod params;
mod sds;
#[cfg(test)]
mod tests;

pub use data_source::DataSource;
use params::{tls_params, Side};
pub use params::{CipherSuite, EcdhCurve, TlsParameters, TlsProtocol, TlsVersion, DEFAULT_CURVES};
pub use sds::{SdsSecret, SdsSecretConfig, Secret, SecretKind, Unresolved, SECRET_TYPE};

/// Type name of the downstream TLS context.
pub const DOWNSTREAM_TLS_CONTEXT: &str = "envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext";
/// Type name of the upstream TLS context.
pub const UPSTREAM_TLS_CONTEXT: &str = "envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext";
/// Type name of the explicit plaintext transport socket.
pub const RAW_BUFFER: &str = "envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer";

/// `TlsCertificate`: a PEM certificate chain and its private key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsCertificate {
    pub certificate_chain: DataSource,
    pub private_key: DataSource,
    pub line: u32,
}

/// A SAN a peer certificate must hold (`match_typed_subject_alt_names`, exact match).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubjectAltName {
    Dns(String),
    Ip(IpAddr),
}

/// `CertificateValidationContext`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateValidationContext {
    /// CA certificates (PEM) a peer certificate must chain to. Without it, a peer
    /// certificate is not verified (Envoy's default).
    pub trusted_ca: Option<DataSource>,
    /// Any one of these must be among the peer certificate's SANs.
    pub match_typed_subject_alt_names: Vec<SubjectAltName>,
}

/// `CommonTlsContext`. Build TLS contexts from [`CommonTlsContext::certificates`] and
/// [`CommonTlsContext::validation`], which take SDS into account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommonTlsContext {
    pub tls_params: TlsParameters,
    pub tls_certificates: Vec<TlsCertificate>,
    /// `validation_context`, or `combined_validation_context.default_validation_context`
    /// when `validation_context_sds_secret_config` is set.
    pub validation_context: Option<CertificateValidationContext>,
    pub alpn_protocols: Vec<String>,
    pub tls_certificate_sds_secret_configs: Vec<SdsSecretConfig>,
    /// Alone (`validation_context_sds_secret_config`) or, with `validation_context`
    /// set, from `combined_validation_context`.
    pub validation_context_sds_secret_config: Option<SdsSecretConfig>,
    /// The SDS certificates in force (put in by `xds::compose`; never dumped).
    pub sds_certificates: Vec<TlsCertificate>,
    /// The SDS validation context in force, merged with the default one when combined.
    pub sds_validation_context: Option<CertificateValidationContext>,
}

/// `DownstreamTlsContext`: TLS termination on a filter chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DownstreamTlsContext {
    pub common_tls_context: CommonTlsContext,
    pub require_client_certificate: bool,
    /// No session tickets.
    pub disable_stateless_session_resumption: bool,
    /// No server-side session cache.
    pub disable_stateful_session_resumption: bool,
    /// Without an SNI match, pick the certificate by key type among all of them rather
    /// than taking the first.
    pub full_scan_certs_on_sni_mismatch: bool,
    pub prefer_client_ciphers: bool,
    pub line: u32,
}

/// `UpstreamTlsContext`: TLS origination to a cluster's hosts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamTlsContext {
    pub common_tls_context: CommonTlsContext,
    /// SNI to send; empty = none.
    pub sni: String,
    /// Check that the server certificate holds a DNS SAN matching the SNI sent.
    pub auto_sni_san_validation: bool,
    /// Sessions kept for resumption; 0 disables resumption.
    pub max_session_keys: u32,
    pub line: u32,
}

proto_enum! {
    /// `DownstreamTlsContext.OcspStaplePolicy`.
    pub enum OcspStaplePolicy {
        LenientStapling = ("LENIENT_STAPLING", 0),
        StrictStapling = ("STRICT_STAPLING", 1),
        MustStaple = ("MUST_STAPLE", 2),
    }
}

/// Decode a filter chain's `transport_socket`: `Some` for TLS, `None` for plaintext.
pub fn decode_downstream_transport_socket(
    d: &mut Decoder,
    node: &Node,
    path: &str,
) -> Option<Option<DownstreamTlsContext>> {
    let (mut f, tc_path, line) = transport_socket(d, node, path, DOWNSTREAM_TLS_CONTEXT)?;
    let Some(mut f) = f.take() else { return Some(None) };
    let common = common_tls_context(d, &mut f, &tc_path, Side::Downstream);
    let require_client_certificate = f.or(d, "require_client_certificate", false);
    let disable_stateless_session_resumption = f.or(d, "disable_stateless_session_resumption", false);
    let disable_stateful_session_resumption = f.or(d, "disable_stateful_session_resumption", false);
    let full_scan_certs_on_sni_mismatch = f.or(d, "full_scan_certs_on_sni_mismatch", false);
    let prefer_client_ciphers = f.or(d, "prefer_client_ciphers", false);
    let ocsp_path = f.field_path("ocsp_staple_policy");
    if f.or(d, "ocsp_staple_policy", OcspStaplePolicy::LenientStapling) != OcspStaplePolicy::LenientStapling {
        d.error(ErrorKind::Unsupported, &ocsp_path, line, "only LENIENT_STAPLING is supported (no OCSP stapling)");
    }
    f.unsupported_because(
        d,
        "session_timeout",
        "`session_timeout` is not supported: sluice keeps TLS sessions for its TLS library's default lifetime; remove it",
    );
    f.unsupported(d, &["require_sni", "session_ticket_keys", "session_ticket_keys_sds_secret_config"]);
    f.finish(d);
    let common = common?;
    if common.tls_certificates.is_empty() && common.tls_certificate_sds_secret_configs.is_empty() {
        d.error(
            ErrorKind::Missing,
            &format!("{tc_path}.common_tls_context.tls_certificates"),
            line,
            "No TLS certificates found for server context",
        );
        return None;
    }
    if require_client_certificate
        && common.validation_context_sds_secret_config.is_none()
        && common.validation_context.as_ref().is_none_or(|v| v.trusted_ca.is_none())
    {
        d.error(
            ErrorKind::Unsupported,
            &format!("{tc_path}.require_client_certificate"),
            line,
            "require_client_certificate needs common_tls_context.validation_context.trusted_ca in sluice",
        );
        return None;
    }
    Some(Some(DownstreamTlsContext {
        common_tls_context: common,
        require_client_certificate,
        disable_stateless_session_resumption,
        disable_stateful_session_resumption,
        full_scan_certs_on_sni_mismatch,
        prefer_client_ciphers,
        line,
    }))
}

/// Decode a cluster's `transport_socket`: `Some` for TLS, `None` for plaintext.
pub fn decode_upstream_transport_socket(
    d: &mut Decoder,
    node: &Node,
    path: &str,
) -> Option<Option<UpstreamTlsContext>> {
    let (mut f, tc_path, line) = transport_socket(d, node, path, UPSTREAM_TLS_CONTEXT)?;
    let Some(mut f) = f.take() else { return Some(None) };
    let common = common_tls_context(d, &mut f, &tc_path, Side::Upstream);
    let sni: String = f.or(d, "sni", String::new());
    let auto_sni_san_validation = f.or(d, "auto_sni_san_validation", false);
    let max_session_keys = f.or(d, "max_session_keys", 1u32);
    let reneg_path = f.field_path("allow_renegotiation");
    if f.or(d, "allow_renegotiation", false) {
        d.error(ErrorKind::Unsupported, &reneg_path, line, "TLS renegotiation is not supported");
    }
    f.unsupported_because(
        d,
        "enforce_rsa_key_usage",
        "`enforce_rsa_key_usage` is not supported: sluice does not check the key usage of an upstream RSA certificate; remove it",
    );
    f.unsupported(d, &["auto_host_sni"]);
    f.finish(d);
    let common = common?;
    if sni.len() > 255 {
        d.error(ErrorKind::Invalid, &format!("{tc_path}.sni"), line, "must be at most 255 bytes");
        return None;
    }
    if common.tls_certificates.len() + common.tls_certificate_sds_secret_configs.len() > 1 {
        d.error(
            ErrorKind::Invalid,
            &format!("{tc_path}.common_tls_context.tls_certificates"),
            line,
            "Multiple TLS certificates are not supported for client contexts",
        );
        return None;
    }
    Some(Some(UpstreamTlsContext { common_tls_context: common, sni, auto_sni_san_validation, max_session_keys, line }))
}

/// `core.v3.TransportSocket`: `{name, typed_config}` with the TLS context's type, or
/// the raw_buffer type. Returns the context's fields (or `None` for plaintext), the
/// typed_config path and its line.
fn transport_socket<'n>(
    d: &mut Decoder,
    node: &'n Node,
    path: &str,
    tls_type: &str,
) -> Option<(Option<Fields<'n>>, String, u32)> {
    let mut f = Fields::of(d, node, path)?;
    let name: Option<String> = f.req(d, "name");
    f.unsupported(d, &["config_discovery"]);
    let tc_path = f.field_path("typed_config");
    let tc = f.take("typed_config");
    let line = f.line();
    f.finish(d);
    if name.is_some_and(|n| n.is_empty()) {
        d.error(ErrorKind::Invalid, &format!("{path}.name"), line, "must not be empty");
    }
    let Some(tc) = tc else {
        d.error(ErrorKind::Missing, &tc_path, line, "a transport socket needs a typed_config with an `@type`");
        return None;
    };
    let t = typed_config(d, tc, &tc_path)?;
    if t.type_name == RAW_BUFFER {
        t.fields.finish(d);
        return Some((None, tc_path, tc.line));
    }
    if t.type_name != tls_type {
        d.error(
            ErrorKind::Unsupported,
            &format!("{tc_path}.@type"),
            tc.line,
            format!(
                "unsupported transport socket type `{}` here (expected `{tls_type}` or `{RAW_BUFFER}`)",
                t.type_name
            ),
        );
        return None;
    }
    Some((Some(t.fields), tc_path, tc.line))
}

fn common_tls_context(d: &mut Decoder, parent: &mut Fields<'_>, path: &str, side: Side) -> Option<CommonTlsContext> {
    let path = format!("{path}.common_tls_context");
    let Some(node) = parent.take("common_tls_context") else {
        return Some(CommonTlsContext {
            tls_params: tls_params(d, None, &format!("{path}.tls_params"), side)?,
            tls_certificates: Vec::new(),
            validation_context: None,
            alpn_protocols: Vec::new(),
            tls_certificate_sds_secret_configs: Vec::new(),
            validation_context_sds_secret_config: None,
            sds_certificates: Vec::new(),
            sds_validation_context: None,
        });
    };
    let mut f = Fields::of(d, node, &path)?;
    let line = f.line();
    let tls_params = tls_params(d, f.take("tls_params"), &f.field_path("tls_params"), side);
    let tls_certificates: Vec<TlsCertificate> = f.list(d, "tls_certificates");
    let tls_certificate_sds_secret_configs: Vec<SdsSecretConfig> = f.list(d, "tls_certificate_sds_secret_configs");
    let mut validation_context: Option<CertificateValidationContext> = f.opt(d, "validation_context");
    let mut validation_context_sds_secret_config: Option<SdsSecretConfig> =
        f.opt(d, "validation_context_sds_secret_config");
    let combined_path = f.field_path("combined_validation_context");
    let combined = f.take("combined_validation_context").map(|n| sds::combined(d, n, &combined_path));
    let set = [validation_context.is_some(), validation_context_sds_secret_config.is_some(), combined.is_some()];
    if set.iter().filter(|s| **s).count() > 1 {
        d.error(
            ErrorKind::Invalid,
            &path,
            line,
            "give one of `validation_context`, `validation_context_sds_secret_config` and `combined_validation_context`",
        );
        return None;
    }
    match combined {
        Some(Some((default, sds))) => {
            validation_context = Some(default);
            validation_context_sds_secret_config = Some(sds);
        }
        Some(None) => return None,
        None => {}
    }
    if !tls_certificates.is_empty() && !tls_certificate_sds_secret_configs.is_empty() {
        d.error(
            ErrorKind::Invalid,
            &path,
            line,
            "SDS and non-SDS TLS certificates may not be mixed: give `tls_certificates` or `tls_certificate_sds_secret_configs`",
        );
        return None;
    }
    let alpn_protocols: Vec<String> = f.list(d, "alpn_protocols");
    f.unsupported_because(
        d,
        "read_ahead_buffer_size",
        "`read_ahead_buffer_size` is not supported: sluice reads TLS records as they come; remove it",
    );
    f.unsupported(
        d,
        &[
            "tls_certificate_provider_instance",
            "custom_tls_certificate_selector",
            "tls_certificate_certificate_provider",
            "tls_certificate_certificate_provider_instance",
            "validation_context_certificate_provider",
            "validation_context_certificate_provider_instance",
            "custom_handshaker",
            "key_log",
        ],
    );
    let alpn_path = f.field_path("alpn_protocols");
    f.finish(d);
    if alpn_protocols.iter().any(|p| p.is_empty() || p.len() > 255) {
        d.invalid(node, &alpn_path, "ALPN protocol names must be 1 to 255 bytes long");
        return None;
    }
    Some(CommonTlsContext {
        tls_params: tls_params?,
        tls_certificates,
        validation_context,
        alpn_protocols,
        tls_certificate_sds_secret_configs,
        validation_context_sds_secret_config,
        sds_certificates: Vec::new(),
        sds_validation_context: None,
    })
}

impl Decode for TlsCertificate {
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::of(d, node, path)?;
        let certificate_chain = f.req(d, "certificate_chain");
        let private_key = f.req(d, "private_key");
        f.empty_only(
            d,
            "watched_directory",
            "sluice does not watch certificate directories; reload the config (SIGHUP) after rotating files",
        );
        f.unsupported(
            d,
            &["pkcs12", "private_key_provider", "password", "ocsp_staple", "signed_certificate_timestamp"],
        );
        let line = f.line();
        f.finish(d);
        Some(TlsCertificate { certificate_chain: certificate_chain?, private_key: private_key?, line })
    }
}

proto_enum! {
    /// `SubjectAltNameMatcher.SanType`.
    pub enum SanType {
        Unspecified = ("SAN_TYPE_UNSPECIFIED", 0),
        Email = ("EMAIL", 1),
        Dns = ("DNS", 2),
        Uri = ("URI", 3),
        IpAddress = ("IP_ADDRESS", 4),
    }
}

impl Decode for SubjectAltName {
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::of(d, node, path)?;
        let san_type: Option<SanType> = f.req(d, "san_type");
        let matcher_path = f.field_path("matcher");
        let matcher = f.take("matcher");
        f.unsupported(d, &["oid"]);
        let line = f.line();
        f.finish(d);
        let Some(matcher) = matcher else {
            d.error(ErrorKind::Missing, &matcher_path, line, "required field is missing");
            return None;
        };
        let mut m = Fields::of(d, matcher, &matcher_path)?;
        let exact: Option<String> = m.opt(d, "exact");
        let ignore_case_path = m.field_path("ignore_case");
        if m.or(d, "ignore_case", false) {
            d.error(ErrorKind::Unsupported, &ignore_case_path, matcher.line, "ignore_case is not supported for SANs");
        }
        m.unsupported(d, &["prefix", "suffix", "safe_regex", "contains", "custom"]);
        m.finish(d);
        let exact = exact.or_else(|| {
            d.error(ErrorKind::Unsupported, &matcher_path, matcher.line, "only `exact` SAN matchers are supported");
            None
        })?;
        match san_type? {
            SanType::Dns => Some(SubjectAltName::Dns(exact.to_ascii_lowercase())),
            SanType::IpAddress => match exact.parse() {
                Ok(ip) => Some(SubjectAltName::Ip(ip)),
                Err(_) => {
                    d.invalid(matcher, &format!("{matcher_path}.exact"), format!("`{exact}` is not an IP address"));
                    None
                }
            },
            SanType::Unspecified => {
                d.invalid(node, &format!("{path}.san_type"), "san_type must be set");
                None
            }
            other => {
                d.error(
                    ErrorKind::Unsupported,
                    &format!("{path}.san_type"),
                    line,
                    format!(
                        "SAN type {} is not supported (DNS and IP_ADDRESS are)",
                        crate::decode::ProtoEnum::name(other)
                    ),
                );
                None
            }
        }
    }
}

proto_enum! {
    /// `CertificateValidationContext.TrustChainVerification`.
    pub enum TrustChainVerification {
        VerifyTrustChain = ("VERIFY_TRUST_CHAIN", 0),
        AcceptUntrusted = ("ACCEPT_UNTRUSTED", 1),
    }
}

impl Decode for CertificateValidationContext {
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        let line = node.line;
        let v = validation_context(d, node, path)?;
        if let Err(e) = v.check() {
            d.error(ErrorKind::Invalid, path, line, e);
            return None;
        }
        Some(v)
    }
}

impl CertificateValidationContext {
    /// Envoy's check of a validation context in force.
    pub fn check(&self) -> Result<(), &'static str> {
        if self.trusted_ca.is_none() && !self.match_typed_subject_alt_names.is_empty() {
            return Err("SAN-based verification of peer certificates without trusted CA is insecure and not allowed");
        }
        Ok(())
    }
}

/// A `CertificateValidationContext` without the check of [`CertificateValidationContext::check`]:
/// a combined default or an SDS one is checked once merged.
pub(crate) fn validation_context(d: &mut Decoder, node: &Node, path: &str) -> Option<CertificateValidationContext> {
    let mut f = Fields::of(d, node, path)?;
    let trusted_ca: Option<DataSource> = f.opt(d, "trusted_ca");
    let sans: Vec<SubjectAltName> = f.list(d, "match_typed_subject_alt_names");
    let line = f.line();
    let expired_path = f.field_path("allow_expired_certificate");
    if f.or(d, "allow_expired_certificate", false) {
        d.error(ErrorKind::Unsupported, &expired_path, line, "allow_expired_certificate is not supported");
    }
    let trust_path = f.field_path("trust_chain_verification");
    if f.or(d, "trust_chain_verification", TrustChainVerification::VerifyTrustChain)
        != TrustChainVerification::VerifyTrustChain
    {
        d.error(ErrorKind::Unsupported, &trust_path, line, "ACCEPT_UNTRUSTED is not supported");
    }
    f.empty_only(
        d,
        "watched_directory",
        "sluice does not watch certificate directories; reload the config (SIGHUP) after rotating files",
    );
    f.default_only(d, "only_verify_leaf_cert_crl", false, "CRLs are not supported; remove it");
    f.unsupported(
        d,
        &[
            "ca_certificate_provider_instance",
            "verify_certificate_spki",
            "verify_certificate_hash",
            "match_subject_alt_names",
            "require_signed_certificate_timestamp",
            "crl",
            "custom_validator_config",
            "max_verify_depth",
            "system_root_certs",
        ],
    );
    f.finish(d);
    Some(CertificateValidationContext { trusted_ca, match_typed_subject_alt_names: sans })
}
