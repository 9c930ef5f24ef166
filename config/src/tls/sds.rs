//! SDS (secret discovery) in TLS contexts: `tls_certificate_sds_secret_configs`,
//! `validation_context_sds_secret_config` and `combined_validation_context` of a
//! `CommonTlsContext`, and the `envoy.extensions.transport_sockets.tls.v3.Secret`
//! resources they name.
//!
//! An [`SdsSecretConfig`] names a secret and the config source it comes from (a file
//! holding a `DiscoveryResponse` of `Secret`s, or `ads: {}`). Decoding keeps the
//! references; [`crate::xds::compose`] puts the secrets in force into the context's
//! `sds_*` fields (never dumped, so a rotation does not change a listener's identity),
//! and [`CommonTlsContext::certificates`] / [`CommonTlsContext::validation`] are what a
//! TLS context is built from. A secret without `sds_config` names a static secret
//! (`static_resources.secrets`), which sluice does not have: refused with its path.
//!
//! As Envoy: SDS and inline certificates may not be mixed; a `combined_validation_context`
//! merges the secret's validation context into `default_validation_context` (protobuf
//! `MergeFrom`: a `trusted_ca` in the secret replaces the default one, SAN matchers are
//! appended).

use crate::decode::{join, Decode, Decoder, Fields};
use crate::error::ErrorKind;
use crate::node::Node;
use crate::xds::ConfigSource;

use super::{CertificateValidationContext, CommonTlsContext, DataSource, TlsCertificate};

/// Type URL of a `Secret` resource.
pub const SECRET_TYPE: &str = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret";

/// `SdsSecretConfig`: a secret by name, and where it comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdsSecretConfig {
    pub name: String,
    pub sds_config: ConfigSource,
}

impl Decode for SdsSecretConfig {
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::of(d, node, path)?;
        let line = f.line();
        let name: Option<String> = f.req(d, "name");
        let sds_path = f.field_path("sds_config");
        let sds_config: Option<ConfigSource> = f.opt(d, "sds_config");
        f.finish(d);
        let name = name?;
        if name.is_empty() {
            d.error(ErrorKind::Invalid, &join(path, "name"), line, "must not be empty");
            return None;
        }
        let Some(sds_config) = sds_config else {
            d.error(
                ErrorKind::Unsupported,
                &sds_path,
                line,
                format!("secret `{name}` has no `sds_config`: static secrets (`static_resources.secrets`) are not supported; give a file source (`path_config_source`) or `ads: {{}}`"),
            );
            return None;
        };
        if sds_config.initial_fetch_timeout.is_some() {
            d.error(
                ErrorKind::Unsupported,
                &join(&sds_path, "initial_fetch_timeout"),
                line,
                "`initial_fetch_timeout` is not supported for SDS: a listener or cluster waits for its secrets without a limit",
            );
        }
        if sds_config.watched_directory.is_some() {
            d.error(
                ErrorKind::Unsupported,
                &join(&sds_path, "path_config_source.watched_directory"),
                line,
                "`watched_directory` is not supported for SDS: the secrets file itself is watched",
            );
        }
        Some(SdsSecretConfig { name, sds_config })
    }
}

/// What a `Secret` holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretKind {
    TlsCertificate(TlsCertificate),
    ValidationContext(CertificateValidationContext),
}

/// `envoy.extensions.transport_sockets.tls.v3.Secret`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Secret {
    pub name: String,
    pub kind: SecretKind,
}

impl Secret {
    /// The files the secret's data sources name (Envoy watches them for rotation).
    pub fn files(&self) -> Vec<std::path::PathBuf> {
        let sources: Vec<&DataSource> = match &self.kind {
            SecretKind::TlsCertificate(c) => vec![&c.certificate_chain, &c.private_key],
            SecretKind::ValidationContext(v) => v.trusted_ca.iter().collect(),
        };
        sources
            .into_iter()
            .filter_map(|s| match s {
                DataSource::Filename(p) => Some(p.clone()),
                _ => None,
            })
            .collect()
    }

    /// The secret with its files read into inline bytes (Envoy's resolved secret), so
    /// that what is in force does not change until the next rotation is read.
    pub fn resolve(&self) -> Result<Secret, String> {
        let inline = |s: &DataSource| -> Result<DataSource, String> {
            match s {
                DataSource::Filename(_) => s.read().map(DataSource::InlineBytes),
                other => Ok(other.clone()),
            }
        };
        let kind = match &self.kind {
            SecretKind::TlsCertificate(c) => SecretKind::TlsCertificate(TlsCertificate {
                certificate_chain: inline(&c.certificate_chain)?,
                private_key: inline(&c.private_key)?,
                line: c.line,
            }),
            SecretKind::ValidationContext(v) => SecretKind::ValidationContext(CertificateValidationContext {
                trusted_ca: v.trusted_ca.as_ref().map(inline).transpose()?,
                match_typed_subject_alt_names: v.match_typed_subject_alt_names.clone(),
            }),
        };
        Ok(Secret { name: self.name.clone(), kind })
    }
}

impl Decode for Secret {
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::of(d, node, path)?;
        let line = f.line();
        let name: Option<String> = f.req(d, "name");
        let tls_certificate: Option<TlsCertificate> = f.opt(d, "tls_certificate");
        let vc_path = f.field_path("validation_context");
        let validation_context = f.take("validation_context").and_then(|n| super::validation_context(d, n, &vc_path));
        f.unsupported(d, &["session_ticket_keys", "generic_secret"]);
        f.finish(d);
        let kind = match (tls_certificate, validation_context) {
            (Some(c), None) => SecretKind::TlsCertificate(c),
            (None, Some(v)) => SecretKind::ValidationContext(v),
            (Some(_), Some(_)) => {
                d.error(ErrorKind::Invalid, path, line, "give one of `tls_certificate` and `validation_context`");
                return None;
            }
            (None, None) => {
                d.error(
                    ErrorKind::Missing,
                    &join(path, "tls_certificate"),
                    line,
                    "a secret needs a `tls_certificate` or a `validation_context`",
                );
                return None;
            }
        };
        Some(Secret { name: name?, kind })
    }
}

/// The secret (file or ADS, name) one subscription holds.
#[derive(Debug, Clone, PartialEq)]
pub struct SdsSecret {
    /// The source's file (empty for ADS).
    pub path: String,
    pub ads: bool,
    pub name: String,
    /// None: nothing arrived yet.
    pub secret: Option<Secret>,
}

impl SdsSecret {
    pub fn serves(&self, c: &SdsSecretConfig) -> bool {
        self.name == c.name && self.ads == c.sds_config.ads && self.path == c.sds_config.path
    }
}

/// Why a context's secrets could not be put in.
pub enum Unresolved {
    /// A secret has not arrived.
    Waiting(String),
    /// A secret is of the wrong kind.
    Wrong(String),
}

impl CommonTlsContext {
    /// Every SDS reference of this context.
    pub fn sds_configs(&self) -> impl Iterator<Item = &SdsSecretConfig> {
        self.tls_certificate_sds_secret_configs.iter().chain(self.validation_context_sds_secret_config.iter())
    }

    /// The certificates a TLS context is built from: the inline ones, or those of SDS.
    pub fn certificates(&self) -> &[TlsCertificate] {
        if self.tls_certificate_sds_secret_configs.is_empty() {
            &self.tls_certificates
        } else {
            &self.sds_certificates
        }
    }

    /// The validation context a TLS context is built from: inline, from SDS, or the
    /// combined default with the SDS one merged in.
    pub fn validation(&self) -> Option<&CertificateValidationContext> {
        if self.validation_context_sds_secret_config.is_some() {
            self.sds_validation_context.as_ref()
        } else {
            self.validation_context.as_ref()
        }
    }

    /// Put the secrets of `secrets` into the `sds_*` fields.
    pub fn resolve_sds(&mut self, secrets: &[SdsSecret]) -> Result<(), Unresolved> {
        let find = |c: &SdsSecretConfig| -> Result<Secret, Unresolved> {
            secrets
                .iter()
                .find(|s| s.serves(c))
                .and_then(|s| s.secret.clone())
                .ok_or_else(|| Unresolved::Waiting(c.name.clone()))
        };
        let mut certs = Vec::new();
        for c in &self.tls_certificate_sds_secret_configs {
            match find(c)?.kind {
                SecretKind::TlsCertificate(t) => certs.push(t),
                SecretKind::ValidationContext(_) => {
                    return Err(Unresolved::Wrong(format!(
                        "secret `{}` holds a validation context, not a `tls_certificate`",
                        c.name
                    )))
                }
            }
        }
        self.sds_certificates = certs;
        if let Some(c) = &self.validation_context_sds_secret_config {
            let SecretKind::ValidationContext(v) = find(c)?.kind else {
                return Err(Unresolved::Wrong(format!(
                    "secret `{}` holds a `tls_certificate`, not a validation context",
                    c.name
                )));
            };
            // combined_validation_context: the secret merged into the default.
            self.sds_validation_context = Some(match &self.validation_context {
                Some(default) => CertificateValidationContext {
                    trusted_ca: v.trusted_ca.or_else(|| default.trusted_ca.clone()),
                    match_typed_subject_alt_names: default
                        .match_typed_subject_alt_names
                        .iter()
                        .cloned()
                        .chain(v.match_typed_subject_alt_names)
                        .collect(),
                },
                None => v,
            });
            if let Some(Err(e)) = self.sds_validation_context.as_ref().map(CertificateValidationContext::check) {
                return Err(Unresolved::Wrong(format!("secret `{}`: {e}", c.name)));
            }
        }
        Ok(())
    }
}

/// Decode `combined_validation_context`: the default context and the secret reference.
pub(super) fn combined(
    d: &mut Decoder,
    node: &Node,
    path: &str,
) -> Option<(CertificateValidationContext, SdsSecretConfig)> {
    let mut f = Fields::of(d, node, path)?;
    let line = f.line();
    let default_path = f.field_path("default_validation_context");
    let default = f.take("default_validation_context");
    let sds = f.req(d, "validation_context_sds_secret_config");
    f.unsupported(d, &["validation_context_certificate_provider", "validation_context_certificate_provider_instance"]);
    f.finish(d);
    let Some(default) = default else {
        d.error(ErrorKind::Missing, &default_path, line, "required field is missing");
        return None;
    };
    Some((super::validation_context(d, default, &default_path)?, sds?))
}
