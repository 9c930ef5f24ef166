//! `TlsParameters`: protocol versions, TLS 1.2 cipher suites and key-exchange groups,
//! resolved at load time for one side (Envoy's defaults: TLS 1.2 minimum; maximum TLS
//! 1.3 for servers and TLS 1.2 for clients; its default ciphers and curves). BoringSSL
//! names map to typed values; a name BoringSSL knows but sluice's TLS library lacks is
//! dropped with a warning, an unknown name is an error.

use crate::decode::{Decoder, Fields};
use crate::error::{ErrorKind, Warning};
use crate::node::Node;
use crate::proto_enum;

proto_enum! {
    /// `TlsParameters.TlsProtocol`.
    pub enum TlsProtocol {
        Auto = ("TLS_AUTO", 0),
        V1_0 = ("TLSv1_0", 1),
        V1_1 = ("TLSv1_1", 2),
        V1_2 = ("TLSv1_2", 3),
        V1_3 = ("TLSv1_3", 4),
    }
}

/// A TLS version sluice can negotiate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TlsVersion {
    Tls12,
    Tls13,
}

/// TLS 1.2 cipher suites (TLS 1.3 suites are always enabled, as in Envoy).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CipherSuite {
    EcdheEcdsaAes128GcmSha256,
    EcdheRsaAes128GcmSha256,
    EcdheEcdsaAes256GcmSha384,
    EcdheRsaAes256GcmSha384,
    EcdheEcdsaChacha20Poly1305,
    EcdheRsaChacha20Poly1305,
}

/// Key-exchange groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EcdhCurve {
    X25519,
    P256,
    P384,
}

/// BoringSSL names sluice implements.
const CIPHERS: [(&str, CipherSuite); 6] = [
    ("ECDHE-ECDSA-AES128-GCM-SHA256", CipherSuite::EcdheEcdsaAes128GcmSha256),
    ("ECDHE-RSA-AES128-GCM-SHA256", CipherSuite::EcdheRsaAes128GcmSha256),
    ("ECDHE-ECDSA-AES256-GCM-SHA384", CipherSuite::EcdheEcdsaAes256GcmSha384),
    ("ECDHE-RSA-AES256-GCM-SHA384", CipherSuite::EcdheRsaAes256GcmSha384),
    ("ECDHE-ECDSA-CHACHA20-POLY1305", CipherSuite::EcdheEcdsaChacha20Poly1305),
    ("ECDHE-RSA-CHACHA20-POLY1305", CipherSuite::EcdheRsaChacha20Poly1305),
];
/// BoringSSL names that exist but that sluice's TLS library does not offer.
const CIPHERS_UNAVAILABLE: [&str; 17] = [
    "ECDHE-ECDSA-AES128-SHA",
    "ECDHE-RSA-AES128-SHA",
    "ECDHE-PSK-AES128-CBC-SHA",
    "ECDHE-ECDSA-AES256-SHA",
    "ECDHE-RSA-AES256-SHA",
    "ECDHE-PSK-AES256-CBC-SHA",
    "ECDHE-PSK-CHACHA20-POLY1305",
    "AES128-GCM-SHA256",
    "AES256-GCM-SHA384",
    "AES128-SHA",
    "AES256-SHA",
    "PSK-AES128-CBC-SHA",
    "PSK-AES256-CBC-SHA",
    "DES-CBC3-SHA",
    "TLS_AES_128_GCM_SHA256",
    "TLS_AES_256_GCM_SHA384",
    "TLS_CHACHA20_POLY1305_SHA256",
];
const CURVES: [(&str, EcdhCurve); 5] = [
    ("X25519", EcdhCurve::X25519),
    ("P-256", EcdhCurve::P256),
    ("prime256v1", EcdhCurve::P256),
    ("P-384", EcdhCurve::P384),
    ("secp384r1", EcdhCurve::P384),
];
const CURVES_UNAVAILABLE: [&str; 6] =
    ["P-224", "P-521", "secp521r1", "X25519Kyber768Draft00", "X25519MLKEM768", "MLKEM1024"];
/// Envoy's default curves.
pub const DEFAULT_CURVES: [EcdhCurve; 2] = [EcdhCurve::X25519, EcdhCurve::P256];

/// `TlsParameters`, resolved for one side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsParameters {
    pub min_version: TlsVersion,
    pub max_version: TlsVersion,
    /// TLS 1.2 suites in preference order; `None` = the library's defaults (which are
    /// Envoy's default list).
    pub cipher_suites: Option<Vec<CipherSuite>>,
    pub ecdh_curves: Vec<EcdhCurve>,
}

/// Which context a `transport_socket` may hold.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Side {
    Downstream,
    Upstream,
}

fn tls_version(d: &mut Decoder, p: TlsProtocol, path: &str, line: u32, default: TlsVersion) -> Option<TlsVersion> {
    match p {
        TlsProtocol::Auto => Some(default),
        TlsProtocol::V1_2 => Some(TlsVersion::Tls12),
        TlsProtocol::V1_3 => Some(TlsVersion::Tls13),
        TlsProtocol::V1_0 | TlsProtocol::V1_1 => {
            d.error(ErrorKind::Unsupported, path, line, "TLS versions below TLSv1_2 are not supported");
            None
        }
    }
}

pub(super) fn tls_params(d: &mut Decoder, node: Option<&Node>, path: &str, side: Side) -> Option<TlsParameters> {
    let max_default = if side == Side::Downstream { TlsVersion::Tls13 } else { TlsVersion::Tls12 };
    let Some(node) = node else {
        return Some(TlsParameters {
            min_version: TlsVersion::Tls12,
            max_version: max_default,
            cipher_suites: None,
            ecdh_curves: DEFAULT_CURVES.to_vec(),
        });
    };
    let mut f = Fields::of(d, node, path)?;
    let line = f.line();
    let min = f.or(d, "tls_minimum_protocol_version", TlsProtocol::Auto);
    let max = f.or(d, "tls_maximum_protocol_version", TlsProtocol::Auto);
    let ciphers: Vec<String> = f.list(d, "cipher_suites");
    let curves: Vec<String> = f.list(d, "ecdh_curves");
    f.empty_only(d, "signature_algorithms", "sluice offers its TLS library's signature algorithms; remove the list");
    let (min_path, max_path) =
        (f.field_path("tls_minimum_protocol_version"), f.field_path("tls_maximum_protocol_version"));
    let (cipher_path, curve_path) = (f.field_path("cipher_suites"), f.field_path("ecdh_curves"));
    f.finish(d);
    let min_version = tls_version(d, min, &min_path, line, TlsVersion::Tls12);
    let max_version = tls_version(d, max, &max_path, line, max_default);
    let cipher_suites = if ciphers.is_empty() {
        Some(None)
    } else {
        names(d, &ciphers, &CIPHERS, &CIPHERS_UNAVAILABLE, &cipher_path, line, "cipher suite").map(Some)
    };
    let ecdh_curves = if curves.is_empty() {
        Some(DEFAULT_CURVES.to_vec())
    } else {
        names(d, &curves, &CURVES, &CURVES_UNAVAILABLE, &curve_path, line, "curve")
    };
    let (min_version, max_version) = (min_version?, max_version?);
    if min_version > max_version {
        d.error(ErrorKind::Invalid, path, line, "tls_minimum_protocol_version exceeds tls_maximum_protocol_version");
        return None;
    }
    let cipher_suites = cipher_suites?;
    if cipher_suites.as_ref().is_some_and(|c| c.is_empty()) && min_version == TlsVersion::Tls12 {
        d.error(ErrorKind::Invalid, &cipher_path, line, "none of these TLS 1.2 cipher suites is available in sluice");
        return None;
    }
    let ecdh_curves = ecdh_curves?;
    if ecdh_curves.is_empty() {
        d.error(ErrorKind::Invalid, &curve_path, line, "none of these curves is available in sluice");
        return None;
    }
    Some(TlsParameters { min_version, max_version, cipher_suites, ecdh_curves })
}

/// Map BoringSSL list entries (`A`, `[A|B]`, `A:B`) to typed values, in order.
/// Known-but-unavailable names are dropped with a warning; unknown names are errors.
fn names<T: Copy + PartialEq>(
    d: &mut Decoder,
    entries: &[String],
    known: &[(&str, T)],
    unavailable: &[&str],
    path: &str,
    line: u32,
    what: &str,
) -> Option<Vec<T>> {
    let mut out = Vec::new();
    let mut ok = true;
    for entry in entries {
        for name in entry.trim_matches(|c| c == '[' || c == ']').split(['|', ':']) {
            if let Some((_, value)) = known.iter().find(|(n, _)| *n == name) {
                if !out.contains(value) {
                    out.push(*value);
                }
            } else if unavailable.contains(&name) {
                d.warnings.push(Warning {
                    path: path.to_string(),
                    line,
                    message: format!("{what} `{name}` is not available in sluice and is skipped"),
                });
            } else {
                d.error(ErrorKind::Invalid, path, line, format!("unknown {what} `{name}`"));
                ok = false;
            }
        }
    }
    ok.then_some(out)
}
