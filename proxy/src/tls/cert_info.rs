//! What Envoy reports of a certificate (its `Ssl::ConnectionInfo`), from DER: the
//! SHA-256 digest in lower-case hex, the PEM text (OpenSSL's `PEM_write_bio_X509`
//! layout) and its URL encoding, the subject as OpenSSL prints it with
//! `XN_FLAG_RFC2253` (last RDN first, short names, RFC 2253 escapes), and the URI and
//! DNS subject alternative names in certificate order. A certificate that does not
//! parse yields an empty subject and no SANs; nothing here panics on input.

use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

/// Lower-case hex SHA-256 of the DER (`sha256PeerCertificateDigest`).
pub fn sha256_hex(der: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, der);
    hex(digest.as_ref())
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

/// `-----BEGIN CERTIFICATE-----`, base64 in lines of 64, `-----END CERTIFICATE-----`,
/// each line ending in `\n`.
pub fn pem(der: &[u8]) -> String {
    let b64 = base64(der);
    let mut s = String::with_capacity(b64.len() + b64.len() / 64 + 60);
    s.push_str("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        s.push_str(std::str::from_utf8(line).unwrap_or_default());
        s.push('\n');
    }
    s.push_str("-----END CERTIFICATE-----\n");
    s
}

fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [chunk[0], chunk.get(1).copied().unwrap_or(0), chunk.get(2).copied().unwrap_or(0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Percent-encode everything but RFC 3986 unreserved characters
/// (`Http::Utility::PercentEncoding::urlEncode`).
pub fn url_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The parsed parts of a certificate that XFCC reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CertNames {
    /// RFC 2253 subject; empty when the certificate does not parse.
    pub subject: String,
    pub uri_sans: Vec<String>,
    pub dns_sans: Vec<String>,
}

impl CertNames {
    pub fn of(der: &[u8]) -> CertNames {
        let Ok((_, cert)) = X509Certificate::from_der(der) else {
            return CertNames::default();
        };
        let mut names = CertNames { subject: subject_rfc2253(&cert), ..CertNames::default() };
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for name in &san.value.general_names {
                match name {
                    GeneralName::URI(u) => names.uri_sans.push((*u).to_string()),
                    GeneralName::DNSName(d) => names.dns_sans.push((*d).to_string()),
                    _ => {}
                }
            }
        }
        names
    }
}

/// OpenSSL's short names (`XN_FLAG_FN_SN`) for the attributes a subject usually holds.
fn short_name(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "2.5.4.3" => "CN",
        "2.5.4.4" => "SN",
        "2.5.4.5" => "serialNumber",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.9" => "street",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "2.5.4.12" => "title",
        "2.5.4.15" => "businessCategory",
        "2.5.4.17" => "postalCode",
        "2.5.4.41" => "name",
        "2.5.4.42" => "GN",
        "2.5.4.43" => "initials",
        "2.5.4.44" => "generationQualifier",
        "2.5.4.46" => "dnQualifier",
        "2.5.4.65" => "pseudonym",
        "1.2.840.113549.1.9.1" => "emailAddress",
        "0.9.2342.19200300.100.1.1" => "UID",
        "0.9.2342.19200300.100.1.25" => "DC",
        _ => return None,
    })
}

/// `X509_NAME_print_ex(.., XN_FLAG_RFC2253)`: RDNs last first, joined by `,`; the
/// attributes of one RDN by `+`.
fn subject_rfc2253(cert: &X509Certificate<'_>) -> String {
    let rdns: Vec<String> = cert
        .subject()
        .iter_rdn()
        .map(|rdn| {
            rdn.iter()
                .map(|atv| {
                    let oid = atv.attr_type().to_id_string();
                    let key = short_name(&oid).map(str::to_string).unwrap_or(oid);
                    let value = match atv.as_str() {
                        Ok(s) => escape_2253(s),
                        // Strings of other types are dumped as their DER, in hex.
                        Err(_) => format!("#{}", hex(atv.attr_value().data)),
                    };
                    format!("{key}={value}")
                })
                .collect::<Vec<_>>()
                .join("+")
        })
        .collect();
    rdns.iter().rev().map(String::as_str).collect::<Vec<_>>().join(",")
}

/// `ASN1_STRFLGS_RFC2253`: `,+"\<>;` escaped with a backslash, as are a leading `#`
/// or space and a trailing space; control and non-ASCII bytes as `\XX`.
fn escape_2253(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    for (i, &b) in bytes.iter().enumerate() {
        let edge = (i == 0 && (b == b'#' || b == b' ')) || (i + 1 == bytes.len() && b == b' ');
        if b",+\"\\<>;".contains(&b) || edge {
            out.push('\\');
            out.push(b as char);
        } else if !(0x20..0x7f).contains(&b) {
            out.push_str(&format!("\\{b:02X}"));
        } else {
            out.push(b as char);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_and_pem_layout() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(&[0xfb, 0xff]), "+/8=");
        let p = pem(&[0u8; 100]);
        let lines: Vec<&str> = p.lines().collect();
        assert_eq!(lines[0], "-----BEGIN CERTIFICATE-----");
        assert_eq!(lines[1].len(), 64);
        assert_eq!(lines.last(), Some(&"-----END CERTIFICATE-----"));
        assert!(p.ends_with("-----\n"));
    }

    #[test]
    fn url_encoding_matches_envoys() {
        assert_eq!(
            url_encode("-----BEGIN CERTIFICATE-----\nab+/=\n"),
            "-----BEGIN%20CERTIFICATE-----%0Aab%2B%2F%3D%0A"
        );
    }

    #[test]
    fn sha256_is_lower_hex() {
        assert_eq!(sha256_hex(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    #[test]
    fn rfc2253_escapes() {
        assert_eq!(escape_2253("a,b"), "a\\,b");
        assert_eq!(escape_2253(" x "), "\\ x\\ ");
        assert_eq!(escape_2253("#1"), "\\#1");
        assert_eq!(escape_2253("é"), "\\C3\\A9");
    }

    #[test]
    fn names_of_a_generated_certificate() {
        let mut params = rcgen::CertificateParams::new(vec!["client.test".to_string()]).unwrap();
        params.subject_alt_names.push(rcgen::SanType::URI("spiffe://test/client".try_into().unwrap()));
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(rcgen::DnType::CountryName, "US");
        params.distinguished_name.push(rcgen::DnType::OrganizationName, "Lyft, Inc");
        params.distinguished_name.push(rcgen::DnType::CommonName, "Test Client");
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let names = CertNames::of(cert.der());
        assert_eq!(names.subject, "CN=Test Client,O=Lyft\\, Inc,C=US");
        assert_eq!(names.dns_sans, vec!["client.test"]);
        assert_eq!(names.uri_sans, vec!["spiffe://test/client"]);
        assert_eq!(CertNames::of(b"not a certificate"), CertNames::default());
    }
}
