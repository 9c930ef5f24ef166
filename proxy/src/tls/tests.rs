//! In-memory handshakes between our own server and client sessions, with certificates
//! made at test time.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use sluice_config::tls::{
    CertificateValidationContext, CommonTlsContext, DataSource, DownstreamTlsContext, SubjectAltName, TlsCertificate,
    TlsParameters, TlsVersion, UpstreamTlsContext, DEFAULT_CURVES,
};

use super::*;

const PEER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

struct Ca(CertifiedIssuer<'static, KeyPair>);

impl Ca {
    fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        Ca(CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap())
    }

    fn pem(&self) -> String {
        self.0.pem()
    }

    /// A leaf certificate for `names` (DNS names or IPs): (chain PEM, key PEM).
    fn leaf(&self, names: &[&str], purpose: ExtendedKeyUsagePurpose) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
        params.extended_key_usages = vec![purpose];
        let cert = params.signed_by(&key, &*self.0).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

fn self_signed(names: &[&str]) -> (String, String) {
    let key = KeyPair::generate().unwrap();
    let params = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    (params.self_signed(&key).unwrap().pem(), key.serialize_pem())
}

fn inline(pem: &str) -> DataSource {
    DataSource::InlineString(pem.to_string())
}

fn cert((chain, key): &(String, String)) -> TlsCertificate {
    TlsCertificate { certificate_chain: inline(chain), private_key: inline(key), line: 0 }
}

fn params(min: TlsVersion, max: TlsVersion) -> TlsParameters {
    TlsParameters { min_version: min, max_version: max, cipher_suites: None, ecdh_curves: DEFAULT_CURVES.to_vec() }
}

fn validation(ca: Option<&Ca>, sans: Vec<SubjectAltName>) -> Option<CertificateValidationContext> {
    Some(CertificateValidationContext {
        trusted_ca: ca.map(|ca| inline(&ca.pem())),
        match_typed_subject_alt_names: sans,
    })
}

/// A server context like Envoy's defaults, serving `certs`.
fn downstream(certs: Vec<TlsCertificate>, alpn: &[&str]) -> DownstreamTlsContext {
    DownstreamTlsContext {
        common_tls_context: CommonTlsContext {
            tls_params: params(TlsVersion::Tls12, TlsVersion::Tls13),
            tls_certificates: certs,
            validation_context: None,
            alpn_protocols: alpn.iter().map(|p| p.to_string()).collect(),
            tls_certificate_sds_secret_configs: Vec::new(),
            validation_context_sds_secret_config: None,
            sds_certificates: Vec::new(),
            sds_validation_context: None,
        },
        require_client_certificate: false,
        disable_stateless_session_resumption: false,
        disable_stateful_session_resumption: false,
        full_scan_certs_on_sni_mismatch: false,
        prefer_client_ciphers: false,
        line: 0,
    }
}

/// A client context like Envoy's defaults (TLS 1.2 at most), trusting `ca`.
fn upstream(ca: Option<&Ca>, sni: &str, alpn: &[&str]) -> UpstreamTlsContext {
    UpstreamTlsContext {
        common_tls_context: CommonTlsContext {
            tls_params: params(TlsVersion::Tls12, TlsVersion::Tls12),
            tls_certificates: Vec::new(),
            validation_context: ca.and_then(|ca| validation(Some(ca), Vec::new())),
            alpn_protocols: alpn.iter().map(|p| p.to_string()).collect(),
            tls_certificate_sds_secret_configs: Vec::new(),
            validation_context_sds_secret_config: None,
            sds_certificates: Vec::new(),
            sds_validation_context: None,
        },
        sni: sni.to_string(),
        auto_sni_san_validation: false,
        max_session_keys: 1,
        line: 0,
    }
}

fn sessions(server: &DownstreamTlsContext, client: &UpstreamTlsContext) -> (TlsSession, TlsSession) {
    let s = ServerTlsContext::new(server).unwrap();
    let c = ClientTlsContext::new(client).unwrap();
    (TlsSession::server(&s), TlsSession::client(&c, ClientSessionOptions::default(), PEER).unwrap())
}

/// Move ciphertext between the two until neither has anything to send, `chunk` bytes
/// at a time. Returns each side's error.
fn pump(a: &mut TlsSession, b: &mut TlsSession, chunk: usize) -> (Option<TlsError>, Option<TlsError>) {
    let mut buf = vec![0u8; chunk];
    for _ in 0..100_000 {
        let moved = transfer(a, b, &mut buf) | transfer(b, a, &mut buf);
        if !moved {
            break;
        }
    }
    (a.error(), b.error())
}

/// One take from `from`, fed to `to`. Whether anything moved.
fn transfer(from: &mut TlsSession, to: &mut TlsSession, buf: &mut [u8]) -> bool {
    if !from.wants_write() {
        return false;
    }
    let n = from.take_ciphertext(buf);
    let mut fed = 0;
    while fed < n {
        match to.feed_ciphertext(&buf[fed..n]) {
            Ok(k) if k > 0 => fed += k,
            _ => break,
        }
    }
    n > 0
}

fn read_all(s: &mut TlsSession) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(ReadStatus::Data(n)) = s.read_plaintext(&mut buf) {
        out.extend_from_slice(&buf[..n]);
    }
    out
}

#[test]
fn handshake_negotiates_http11_and_carries_data() {
    let ca = Ca::new("test CA");
    let server_cert = ca.leaf(&["localhost"], ExtendedKeyUsagePurpose::ServerAuth);
    let server = downstream(vec![cert(&server_cert)], &["h2", "http/1.1"]);
    let client = upstream(Some(&ca), "localhost", &["http/1.1"]);
    let (mut s, mut c) = sessions(&server, &client);
    assert!(s.is_handshaking() && c.is_handshaking());
    c.write_plaintext(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    assert_eq!(pump(&mut c, &mut s, 16 * 1024), (None, None));
    assert!(!s.is_handshaking() && !c.is_handshaking());
    assert_eq!(s.alpn_protocol(), Some(&b"http/1.1"[..]));
    assert_eq!(c.alpn_protocol(), Some(&b"http/1.1"[..]));
    assert_eq!(s.server_name(), Some("localhost"));
    assert_eq!(c.protocol_version(), Some(TlsVersion::Tls12), "Envoy's client default tops out at TLS 1.2");
    assert_eq!(read_all(&mut s), b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n");
    s.write_plaintext(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").unwrap();
    pump(&mut s, &mut c, 16 * 1024);
    assert_eq!(read_all(&mut c), b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
    // close_notify from the client ends the server's stream cleanly.
    c.close();
    pump(&mut c, &mut s, 16 * 1024);
    let mut buf = [0u8; 16];
    assert_eq!(s.read_plaintext(&mut buf), Ok(ReadStatus::Closed { close_notify: true }));
}

#[test]
fn one_byte_at_a_time_and_tls13() {
    let ca = Ca::new("test CA");
    let server = downstream(vec![cert(&ca.leaf(&["localhost"], ExtendedKeyUsagePurpose::ServerAuth))], &["http/1.1"]);
    let mut client = upstream(Some(&ca), "localhost", &["http/1.1"]);
    client.common_tls_context.tls_params = params(TlsVersion::Tls12, TlsVersion::Tls13);
    let (mut s, mut c) = sessions(&server, &client);
    c.write_plaintext(b"ping").unwrap();
    let r = pump(&mut c, &mut s, 1);
    assert_eq!(r, (None, None), "{:?} {:?}", c.error_detail(), s.error_detail());
    assert_eq!(s.protocol_version(), Some(TlsVersion::Tls13));
    assert_eq!(read_all(&mut s), b"ping");
    // The transport closing without close_notify is reported as such.
    s.feed_eof();
    assert_eq!(s.read_plaintext(&mut [0u8; 8]), Ok(ReadStatus::Closed { close_notify: false }));
}

#[test]
fn alpn_without_overlap_is_no_alpn_not_a_failure() {
    let ca = Ca::new("test CA");
    let server = downstream(vec![cert(&ca.leaf(&["localhost"], ExtendedKeyUsagePurpose::ServerAuth))], &["http/1.1"]);
    let (mut s, mut c) = sessions(&server, &upstream(Some(&ca), "localhost", &["h2"]));
    assert_eq!(pump(&mut c, &mut s, 4096), (None, None));
    assert!(!s.is_handshaking());
    assert_eq!(s.alpn_protocol(), None);
    // Per-connection ALPN override on the client.
    let ctx = ClientTlsContext::new(&upstream(Some(&ca), "localhost", &["h2"])).unwrap();
    let opts = ClientSessionOptions { server_name: None, alpn: Some(&[b"http/1.1"]) };
    let mut c = TlsSession::client(&ctx, opts, PEER).unwrap();
    let mut s = TlsSession::server(&ServerTlsContext::new(&server).unwrap());
    assert_eq!(pump(&mut c, &mut s, 4096), (None, None));
    assert_eq!(c.alpn_protocol(), Some(&b"http/1.1"[..]));
}

fn mtls_server(ca: &Ca, require: bool) -> DownstreamTlsContext {
    let mut server = downstream(vec![cert(&ca.leaf(&["localhost"], ExtendedKeyUsagePurpose::ServerAuth))], &[]);
    server.common_tls_context.validation_context = validation(Some(ca), Vec::new());
    server.require_client_certificate = require;
    server
}

#[test]
fn client_without_certificate_is_refused_when_required() {
    let ca = Ca::new("test CA");
    let (mut s, mut c) = sessions(&mtls_server(&ca, true), &upstream(Some(&ca), "localhost", &[]));
    c.write_plaintext(b"hello").unwrap();
    let (client_err, server_err) = pump(&mut c, &mut s, 4096);
    assert_eq!(server_err, Some(TlsError::CertificateRequired));
    assert_eq!(server_err.unwrap().stat_name(), "fail_verify_no_cert");
    assert!(client_err.is_some(), "the client learns of it from the alert");
    assert!(read_all(&mut s).is_empty(), "no plaintext got through");
}

#[test]
fn client_certificates_verified_against_the_ca() {
    let ca = Ca::new("test CA");
    let mut client = upstream(Some(&ca), "localhost", &[]);
    client.common_tls_context.tls_certificates =
        vec![cert(&ca.leaf(&["client.local"], ExtendedKeyUsagePurpose::ClientAuth))];
    let (mut s, mut c) = sessions(&mtls_server(&ca, true), &client);
    c.write_plaintext(b"hi").unwrap();
    assert_eq!(pump(&mut c, &mut s, 4096), (None, None));
    assert!(s.peer_has_certificate());
    assert_eq!(read_all(&mut s), b"hi");

    // A certificate from another CA is refused.
    let other = Ca::new("other CA");
    client.common_tls_context.tls_certificates =
        vec![cert(&other.leaf(&["client.local"], ExtendedKeyUsagePurpose::ClientAuth))];
    let (mut s, mut c) = sessions(&mtls_server(&ca, true), &client);
    let (_, server_err) = pump(&mut c, &mut s, 4096);
    assert_eq!(server_err, Some(TlsError::CertificateInvalid));

    // Required SANs.
    client.common_tls_context.tls_certificates =
        vec![cert(&ca.leaf(&["client.local"], ExtendedKeyUsagePurpose::ClientAuth))];
    let mut server = mtls_server(&ca, true);
    server.common_tls_context.validation_context =
        validation(Some(&ca), vec![SubjectAltName::Dns("other.local".into())]);
    let (mut s, mut c) = sessions(&server, &client);
    assert_eq!(pump(&mut c, &mut s, 4096).1, Some(TlsError::CertificateNameMismatch));
    server.common_tls_context.validation_context =
        validation(Some(&ca), vec![SubjectAltName::Dns("client.local".into())]);
    let (mut s, mut c) = sessions(&server, &client);
    assert_eq!(pump(&mut c, &mut s, 4096), (None, None));
}

#[test]
fn client_certificate_optional_without_require() {
    let ca = Ca::new("test CA");
    let (mut s, mut c) = sessions(&mtls_server(&ca, false), &upstream(Some(&ca), "localhost", &[]));
    assert_eq!(pump(&mut c, &mut s, 4096), (None, None));
    assert!(!s.is_handshaking());
    assert!(!s.peer_has_certificate());
}

#[test]
fn upstream_validation_fails_closed() {
    let ca = Ca::new("test CA");
    // A self-signed origin certificate, with the CA configured: refused.
    let server = downstream(vec![cert(&self_signed(&["localhost"]))], &[]);
    let (mut s, mut c) = sessions(&server, &upstream(Some(&ca), "localhost", &[]));
    c.write_plaintext(b"secret request").unwrap();
    let (client_err, _) = pump(&mut c, &mut s, 4096);
    assert_eq!(client_err, Some(TlsError::CertificateInvalid));
    assert_eq!(client_err.unwrap().stat_name(), "fail_verify_error");
    assert!(read_all(&mut s).is_empty(), "nothing reached the origin");
    assert!(c.write_plaintext(b"more").is_err());
    // A certificate from another CA: refused too.
    let other = Ca::new("other CA");
    let server = downstream(vec![cert(&other.leaf(&["localhost"], ExtendedKeyUsagePurpose::ServerAuth))], &[]);
    let (mut s, mut c) = sessions(&server, &upstream(Some(&ca), "localhost", &[]));
    assert_eq!(pump(&mut c, &mut s, 4096).0, Some(TlsError::CertificateInvalid));
}

#[test]
fn upstream_without_trusted_ca_does_not_verify() {
    // Envoy's documented default: no trusted_ca, no verification.
    let server = downstream(vec![cert(&self_signed(&["localhost"]))], &[]);
    let (mut s, mut c) = sessions(&server, &upstream(None, "", &[]));
    assert_eq!(pump(&mut c, &mut s, 4096), (None, None));
    assert_eq!(s.server_name(), None, "no sni configured: none sent");
}

#[test]
fn upstream_names_checked_only_when_asked() {
    let ca = Ca::new("test CA");
    let server =
        downstream(vec![cert(&ca.leaf(&["localhost", "*.example.com"], ExtendedKeyUsagePurpose::ServerAuth))], &[]);
    // trusted_ca alone checks the chain, not the name (Envoy).
    let (mut s, mut c) = sessions(&server, &upstream(Some(&ca), "wrong.test", &[]));
    assert_eq!(pump(&mut c, &mut s, 4096), (None, None));
    // auto_sni_san_validation checks the SNI sent.
    let mut client = upstream(Some(&ca), "wrong.test", &[]);
    client.auto_sni_san_validation = true;
    let (mut s, mut c) = sessions(&server, &client);
    assert_eq!(pump(&mut c, &mut s, 4096).0, Some(TlsError::CertificateNameMismatch));
    assert_eq!(TlsError::CertificateNameMismatch.stat_name(), "fail_verify_san");
    let ctx = ClientTlsContext::new(&client).unwrap();
    let opts = ClientSessionOptions { server_name: Some("api.example.com"), alpn: None };
    let mut c = TlsSession::client(&ctx, opts, PEER).unwrap();
    let mut s = TlsSession::server(&ServerTlsContext::new(&server).unwrap());
    assert_eq!(pump(&mut c, &mut s, 4096), (None, None), "wildcard SAN covers the SNI");
    assert_eq!(s.server_name(), Some("api.example.com"));
    // match_typed_subject_alt_names: any one must match.
    let mut client = upstream(Some(&ca), "", &[]);
    client.common_tls_context.validation_context = validation(
        Some(&ca),
        vec![SubjectAltName::Dns("nope.test".into()), SubjectAltName::Dns("a.example.com".into())],
    );
    let (mut s, mut c) = sessions(&server, &client);
    assert_eq!(pump(&mut c, &mut s, 4096), (None, None));
    client.common_tls_context.validation_context =
        validation(Some(&ca), vec![SubjectAltName::Ip("10.0.0.1".parse().unwrap())]);
    let (mut s, mut c) = sessions(&server, &client);
    assert_eq!(pump(&mut c, &mut s, 4096).0, Some(TlsError::CertificateNameMismatch));
    assert!(
        TlsSession::client(&ctx, ClientSessionOptions { server_name: Some("bad name!"), alpn: None }, PEER).is_err()
    );
}

#[test]
fn version_bounds() {
    let ca = Ca::new("test CA");
    let mut server = downstream(vec![cert(&ca.leaf(&["localhost"], ExtendedKeyUsagePurpose::ServerAuth))], &[]);
    server.common_tls_context.tls_params = params(TlsVersion::Tls13, TlsVersion::Tls13);
    // The client's default maximum is TLS 1.2: nothing in common.
    let (mut s, mut c) = sessions(&server, &upstream(Some(&ca), "localhost", &[]));
    let (client_err, server_err) = pump(&mut c, &mut s, 4096);
    assert_eq!(server_err, Some(TlsError::Negotiation));
    assert_eq!(client_err, Some(TlsError::PeerAlert));
    let mut client = upstream(Some(&ca), "localhost", &[]);
    client.common_tls_context.tls_params = params(TlsVersion::Tls13, TlsVersion::Tls13);
    let (mut s, mut c) = sessions(&server, &client);
    assert_eq!(pump(&mut c, &mut s, 4096), (None, None));
    assert_eq!(c.protocol_version(), Some(TlsVersion::Tls13));
}

#[test]
fn certificate_chosen_by_sni() {
    let ca = Ca::new("test CA");
    let a = cert(&ca.leaf(&["a.test"], ExtendedKeyUsagePurpose::ServerAuth));
    let b = cert(&ca.leaf(&["b.test"], ExtendedKeyUsagePurpose::ServerAuth));
    let server = downstream(vec![a, b], &[]);
    for sni in ["a.test", "b.test"] {
        let mut client = upstream(Some(&ca), sni, &[]);
        client.auto_sni_san_validation = true;
        let (mut s, mut c) = sessions(&server, &client);
        assert_eq!(pump(&mut c, &mut s, 4096), (None, None), "{sni}");
    }
    // Unknown SNI: the first certificate answers (and fails the client's name check).
    let mut client = upstream(Some(&ca), "c.test", &[]);
    client.auto_sni_san_validation = true;
    let (mut s, mut c) = sessions(&server, &client);
    assert_eq!(pump(&mut c, &mut s, 4096).0, Some(TlsError::CertificateNameMismatch));
}

#[test]
fn garbage_is_a_protocol_error_with_an_alert() {
    let ca = Ca::new("test CA");
    let ctx = ServerTlsContext::new(&downstream(
        vec![cert(&ca.leaf(&["localhost"], ExtendedKeyUsagePurpose::ServerAuth))],
        &[],
    ))
    .unwrap();
    let mut s = TlsSession::server(&ctx);
    assert_eq!(s.feed_ciphertext(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"), Err(TlsError::Protocol));
    assert_eq!(s.error(), Some(TlsError::Protocol));
    assert!(s.error_detail().is_some());
    assert!(!s.is_handshaking());
    assert!(s.wants_write(), "an alert to send");
    let mut out = [0u8; 64];
    let n = s.take_ciphertext(&mut out);
    assert!(n > 0 && out[0] == 21, "a TLS alert record");
    assert_eq!(s.feed_ciphertext(b"more"), Err(TlsError::Protocol));
}

#[test]
fn plaintext_backpressure() {
    let ca = Ca::new("test CA");
    let server = downstream(vec![cert(&ca.leaf(&["localhost"], ExtendedKeyUsagePurpose::ServerAuth))], &[]);
    let (mut s, mut c) = sessions(&server, &upstream(Some(&ca), "localhost", &[]));
    c.set_buffer_limit(None);
    assert_eq!(pump(&mut c, &mut s, 4096), (None, None));
    let payload: Vec<u8> = (0..400_000u32).map(|i| i as u8).collect();
    assert_eq!(c.write_plaintext(&payload), Ok(payload.len()));
    let mut wire = Vec::new();
    let mut buf = vec![0u8; 65536];
    while c.wants_write() {
        let n = c.take_ciphertext(&mut buf);
        wire.extend_from_slice(&buf[..n]);
    }
    // The server takes what it can hold, then waits for the plaintext to be read.
    let mut received = Vec::new();
    let mut offset = 0;
    let mut stalls = 0;
    while offset < wire.len() {
        let n = s.feed_ciphertext(&wire[offset..]).unwrap();
        if n < wire.len() - offset {
            stalls += 1;
            assert!(!s.wants_read() || n > 0);
        }
        offset += n;
        received.extend(read_all(&mut s));
    }
    assert!(stalls > 0, "the receive buffer filled up at least once");
    assert_eq!(received, payload);
}

/// Files under a fresh temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("sluice-tls-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
    fn write(&self, name: &str, text: &str) -> DataSource {
        let path = self.0.join(name);
        std::fs::write(&path, text).unwrap();
        DataSource::Filename(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn rebuilding_a_context_rereads_rotated_files() {
    let dir = TempDir::new("reload");
    let (ca1, ca2) = (Ca::new("CA one"), Ca::new("CA two"));
    let (chain, key) = ca1.leaf(&["localhost"], ExtendedKeyUsagePurpose::ServerAuth);
    let server_cert = TlsCertificate {
        certificate_chain: dir.write("cert.pem", &chain),
        private_key: dir.write("key.pem", &key),
        line: 0,
    };
    let server = downstream(vec![server_cert], &[]);
    let before = ServerTlsContext::new(&server).unwrap();
    // Rotate to a certificate from the second CA and rebuild.
    let (chain, key) = ca2.leaf(&["localhost"], ExtendedKeyUsagePurpose::ServerAuth);
    dir.write("cert.pem", &chain);
    dir.write("key.pem", &key);
    let after = ServerTlsContext::new(&server).unwrap();
    let trusting_ca2 = ClientTlsContext::new(&upstream(Some(&ca2), "localhost", &[])).unwrap();
    let handshake = |ctx: &Arc<ServerTlsContext>| {
        let mut c = TlsSession::client(&trusting_ca2, ClientSessionOptions::default(), PEER).unwrap();
        let mut s = TlsSession::server(ctx);
        pump(&mut c, &mut s, 4096).0
    };
    assert_eq!(handshake(&before), Some(TlsError::CertificateInvalid), "old context keeps the old certificate");
    assert_eq!(handshake(&after), None, "rebuilt context serves the rotated one");
}

#[test]
fn context_errors_name_the_source() {
    let dir = TempDir::new("errors");
    let ca = Ca::new("test CA");
    let (chain, key) = ca.leaf(&["localhost"], ExtendedKeyUsagePurpose::ServerAuth);
    let (_, other_key) = ca.leaf(&["localhost"], ExtendedKeyUsagePurpose::ServerAuth);
    let with = |chain: DataSource, key: DataSource| {
        ServerTlsContext::new(&downstream(
            vec![TlsCertificate { certificate_chain: chain, private_key: key, line: 0 }],
            &[],
        ))
        .unwrap_err()
    };
    let missing = DataSource::Filename(dir.0.join("missing.pem"));
    let e = with(missing, inline(&key));
    assert_eq!(e.kind, ContextErrorKind::Read);
    assert!(e.message.contains("certificate_chain") && e.message.contains("missing.pem"), "{e}");
    let e = with(dir.write("empty.pem", "not a certificate\n"), inline(&key));
    assert_eq!(e.kind, ContextErrorKind::NoCertificate, "{e}");
    let e = with(inline(&chain), inline("no key here"));
    assert_eq!(e.kind, ContextErrorKind::BadPrivateKey, "{e}");
    let e = with(inline(&chain), dir.write("other.key", &other_key));
    assert_eq!(e.kind, ContextErrorKind::KeyMismatch, "{e}");
    assert!(e.message.contains("other.key") && !e.message.contains("PRIVATE KEY"), "{e}");
    let mut client = upstream(None, "", &[]);
    client.common_tls_context.validation_context = Some(CertificateValidationContext {
        trusted_ca: Some(dir.write("ca.pem", "")),
        match_typed_subject_alt_names: vec![],
    });
    let e = ClientTlsContext::new(&client).unwrap_err();
    assert_eq!(e.kind, ContextErrorKind::NoCertificate);
    assert!(e.message.contains("trusted_ca"), "{e}");
}
