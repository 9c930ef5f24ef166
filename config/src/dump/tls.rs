//! Dump of `transport_socket`: the TLS contexts of filter chains (`DownstreamTlsContext`)
//! and clusters (`UpstreamTlsContext`), wrapped in a `core.v3.TransportSocket`.
//!
//! Secrets: a private key given inline (`inline_string` / `inline_bytes`) is written as
//! `[redacted]` in the same field, as Envoy's `MessageUtil::redact` does for fields
//! marked `sensitive` (for `inline_bytes`, the base64 of `[redacted]`). A key given by
//! `filename` or `environment_variable` is written as that reference: it names where
//! the key lives, not the key, and keeps the dump loadable. (Envoy redacts every string
//! under `private_key`, file names included; sluice keeps the reference on purpose.)
//! Certificates and CAs are public and written as configured.
//!
//! `tls_params` is written resolved for its side: the versions in force, and the curves
//! in preference order. `cipher_suites` is written only when configured; otherwise
//! sluice's TLS library uses its default TLS 1.2 suites (Envoy's list, less the suites
//! it lacks), and writing a list would change that choice on reload.

use super::{any, base64, list, Dump, Json};
use crate::tls::{
    CertificateValidationContext, CipherSuite, CommonTlsContext, DataSource, DownstreamTlsContext, EcdhCurve,
    SdsSecretConfig, SubjectAltName, TlsCertificate, TlsParameters, TlsVersion, DOWNSTREAM_TLS_CONTEXT,
    UPSTREAM_TLS_CONTEXT,
};

/// What replaces a secret's value.
pub const REDACTED: &str = "[redacted]";

/// The `name` written on a TLS transport socket (a free label; Envoy selects by type).
const TLS_SOCKET_NAME: &str = "envoy.transport_sockets.tls";

/// A filter chain's `transport_socket`.
pub(super) fn downstream(ctx: &DownstreamTlsContext) -> Json {
    let tls = Json::obj()
        .with("common_tls_context", ctx.common_tls_context.dump())
        .with("require_client_certificate", ctx.require_client_certificate)
        .with("disable_stateless_session_resumption", ctx.disable_stateless_session_resumption)
        .with("disable_stateful_session_resumption", ctx.disable_stateful_session_resumption)
        .with("full_scan_certs_on_sni_mismatch", ctx.full_scan_certs_on_sni_mismatch)
        .with("prefer_client_ciphers", ctx.prefer_client_ciphers);
    Json::obj().with("name", TLS_SOCKET_NAME).with("typed_config", any(DOWNSTREAM_TLS_CONTEXT, tls))
}

/// A cluster's `transport_socket`.
pub(super) fn upstream(ctx: &crate::tls::UpstreamTlsContext) -> Json {
    let tls = Json::obj()
        .with("common_tls_context", ctx.common_tls_context.dump())
        .with("sni", &ctx.sni)
        .with("auto_sni_san_validation", ctx.auto_sni_san_validation)
        .with("max_session_keys", ctx.max_session_keys);
    Json::obj().with("name", TLS_SOCKET_NAME).with("typed_config", any(UPSTREAM_TLS_CONTEXT, tls))
}

/// The SDS references are written as configured, never the secrets they brought (a
/// listener's dump is its identity across updates: a rotation must not change it).
impl Dump for CommonTlsContext {
    fn dump(&self) -> Json {
        let mut j = Json::obj()
            .with("tls_params", self.tls_params.dump())
            .with("tls_certificates", list(&self.tls_certificates));
        if !self.tls_certificate_sds_secret_configs.is_empty() {
            j = j.with("tls_certificate_sds_secret_configs", list(&self.tls_certificate_sds_secret_configs));
        }
        j = match (&self.validation_context, &self.validation_context_sds_secret_config) {
            (Some(default), Some(sds)) => j.with(
                "combined_validation_context",
                Json::obj()
                    .with("default_validation_context", default.dump())
                    .with("validation_context_sds_secret_config", sds.dump()),
            ),
            (None, Some(sds)) => j.with("validation_context_sds_secret_config", sds.dump()),
            (v, None) => j.with_opt("validation_context", v.as_ref().map(Dump::dump)),
        };
        j.with("alpn_protocols", self.alpn_protocols.clone())
    }
}

impl Dump for SdsSecretConfig {
    fn dump(&self) -> Json {
        Json::obj().with("name", self.name.as_str()).with("sds_config", self.sds_config.dump())
    }
}

fn version(v: TlsVersion) -> &'static str {
    match v {
        TlsVersion::Tls12 => "TLSv1_2",
        TlsVersion::Tls13 => "TLSv1_3",
    }
}

/// BoringSSL's name for a suite (the name the decoder reads).
fn cipher_name(c: CipherSuite) -> &'static str {
    match c {
        CipherSuite::EcdheEcdsaAes128GcmSha256 => "ECDHE-ECDSA-AES128-GCM-SHA256",
        CipherSuite::EcdheRsaAes128GcmSha256 => "ECDHE-RSA-AES128-GCM-SHA256",
        CipherSuite::EcdheEcdsaAes256GcmSha384 => "ECDHE-ECDSA-AES256-GCM-SHA384",
        CipherSuite::EcdheRsaAes256GcmSha384 => "ECDHE-RSA-AES256-GCM-SHA384",
        CipherSuite::EcdheEcdsaChacha20Poly1305 => "ECDHE-ECDSA-CHACHA20-POLY1305",
        CipherSuite::EcdheRsaChacha20Poly1305 => "ECDHE-RSA-CHACHA20-POLY1305",
    }
}

fn curve_name(c: EcdhCurve) -> &'static str {
    match c {
        EcdhCurve::X25519 => "X25519",
        EcdhCurve::P256 => "P-256",
        EcdhCurve::P384 => "P-384",
    }
}

impl Dump for TlsParameters {
    fn dump(&self) -> Json {
        let ciphers = self.cipher_suites.as_ref().map(|c| c.iter().map(|s| cipher_name(*s)).collect::<Vec<_>>().into());
        Json::obj()
            .with("tls_minimum_protocol_version", version(self.min_version))
            .with("tls_maximum_protocol_version", version(self.max_version))
            .with_opt::<Json>("cipher_suites", ciphers)
            .with("ecdh_curves", self.ecdh_curves.iter().map(|c| curve_name(*c)).collect::<Vec<_>>())
    }
}

/// A public `DataSource` (certificate, CA), written as configured.
impl Dump for DataSource {
    fn dump(&self) -> Json {
        match self {
            DataSource::Filename(p) => Json::obj().with("filename", p.to_string_lossy().into_owned()),
            DataSource::InlineString(s) => Json::obj().with("inline_string", s),
            DataSource::InlineBytes(b) => Json::obj().with("inline_bytes", base64(b)),
            DataSource::EnvironmentVariable(v) => Json::obj().with("environment_variable", v),
        }
    }
}

/// A secret `DataSource`: inline values are redacted, references are kept.
fn secret(source: &DataSource) -> Json {
    match source {
        DataSource::InlineString(_) => Json::obj().with("inline_string", REDACTED),
        DataSource::InlineBytes(_) => Json::obj().with("inline_bytes", base64(REDACTED.as_bytes())),
        DataSource::Filename(_) | DataSource::EnvironmentVariable(_) => source.dump(),
    }
}

impl Dump for TlsCertificate {
    fn dump(&self) -> Json {
        Json::obj()
            .with("certificate_chain", self.certificate_chain.dump())
            .with("private_key", secret(&self.private_key))
    }
}

impl Dump for CertificateValidationContext {
    fn dump(&self) -> Json {
        Json::obj()
            .with_opt("trusted_ca", self.trusted_ca.as_ref().map(Dump::dump))
            .with("match_typed_subject_alt_names", list(&self.match_typed_subject_alt_names))
    }
}

/// `SubjectAltNameMatcher`, an exact match of one SAN type.
impl Dump for SubjectAltName {
    fn dump(&self) -> Json {
        let (san_type, value) = match self {
            SubjectAltName::Dns(name) => ("DNS", name.clone()),
            SubjectAltName::Ip(ip) => ("IP_ADDRESS", ip.to_string()),
        };
        Json::obj().with("san_type", san_type).with("matcher", Json::obj().with("exact", value))
    }
}
