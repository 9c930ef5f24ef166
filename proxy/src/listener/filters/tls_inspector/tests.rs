use std::sync::Arc;

use super::client_hello::ext;
use super::*;

/// A ClientHello assembled field by field, so each rule can be broken on purpose.
#[derive(Clone)]
struct Hello {
    version: u16,
    session_id: Vec<u8>,
    suites: Vec<u16>,
    compression: Vec<u8>,
    extensions: Option<Vec<(u16, Vec<u8>)>>,
}

impl Hello {
    fn tls13(sni: Option<&str>, alpn: &[&str]) -> Hello {
        let mut exts = Vec::new();
        if let Some(name) = sni {
            exts.push(sni_ext(name.as_bytes()));
        }
        if !alpn.is_empty() {
            exts.push(alpn_ext(alpn));
        }
        exts.push(versions_ext(&[0x0304, 0x0303]));
        Hello {
            version: 0x0303,
            session_id: vec![7; 32],
            suites: vec![0x1301, 0x1302, 0xc02f],
            compression: vec![0],
            extensions: Some(exts),
        }
    }

    fn body(&self) -> Vec<u8> {
        let mut b = self.version.to_be_bytes().to_vec();
        b.extend_from_slice(&[0x42; 32]);
        b.push(self.session_id.len() as u8);
        b.extend_from_slice(&self.session_id);
        b.extend_from_slice(&((self.suites.len() * 2) as u16).to_be_bytes());
        for s in &self.suites {
            b.extend_from_slice(&s.to_be_bytes());
        }
        b.push(self.compression.len() as u8);
        b.extend_from_slice(&self.compression);
        if let Some(exts) = &self.extensions {
            let mut block = Vec::new();
            for (ty, body) in exts {
                block.extend_from_slice(&ty.to_be_bytes());
                block.extend_from_slice(&(body.len() as u16).to_be_bytes());
                block.extend_from_slice(body);
            }
            b.extend_from_slice(&(block.len() as u16).to_be_bytes());
            b.extend_from_slice(&block);
        }
        b
    }

    /// The handshake message: type, 24-bit length, body.
    fn handshake(&self) -> Vec<u8> {
        handshake(1, &self.body())
    }

    /// In one record.
    fn wire(&self) -> Vec<u8> {
        records(&self.handshake(), usize::MAX)
    }
}

fn handshake(ty: u8, body: &[u8]) -> Vec<u8> {
    let len = body.len() as u32;
    let mut m = vec![ty, (len >> 16) as u8, (len >> 8) as u8, len as u8];
    m.extend_from_slice(body);
    m
}

/// Handshake bytes cut into records of at most `size` bytes.
fn records(handshake: &[u8], size: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for chunk in handshake.chunks(size.min(16384)) {
        out.extend_from_slice(&[22, 3, 1]);
        out.extend_from_slice(&(chunk.len() as u16).to_be_bytes());
        out.extend_from_slice(chunk);
    }
    out
}

fn sni_ext(name: &[u8]) -> (u16, Vec<u8>) {
    let mut entry = vec![0];
    entry.extend_from_slice(&(name.len() as u16).to_be_bytes());
    entry.extend_from_slice(name);
    let mut body = (entry.len() as u16).to_be_bytes().to_vec();
    body.extend_from_slice(&entry);
    (ext::SERVER_NAME, body)
}

fn alpn_ext(protocols: &[&str]) -> (u16, Vec<u8>) {
    let mut list = Vec::new();
    for p in protocols {
        list.push(p.len() as u8);
        list.extend_from_slice(p.as_bytes());
    }
    let mut body = (list.len() as u16).to_be_bytes().to_vec();
    body.extend_from_slice(&list);
    (ext::ALPN, body)
}

fn versions_ext(versions: &[u16]) -> (u16, Vec<u8>) {
    let mut body = vec![(versions.len() * 2) as u8];
    for v in versions {
        body.extend_from_slice(&v.to_be_bytes());
    }
    (ext::SUPPORTED_VERSIONS, body)
}

/// The first flight of a real rustls client.
fn rustls_client_hello(sni: &str, alpn: &[&str]) -> Vec<u8> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    let name = rustls::pki_types::ServerName::try_from(sni.to_string()).unwrap();
    let mut conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let mut out = Vec::new();
    conn.write_tls(&mut out).unwrap();
    out
}

/// Feed `wire` once, whole.
fn verdict(wire: &[u8]) -> Inspect<'_> {
    // Leak a fresh inspector: the verdict borrows it, and tests are short-lived.
    let inspector = Box::leak(Box::new(TlsInspector::new(TlsInspectorConfig::default())));
    inspector.inspect(wire)
}

fn sni_alpn(v: Inspect<'_>) -> (Option<String>, Vec<String>) {
    match v {
        Inspect::Tls(h) => (
            h.server_name.map(str::to_string),
            h.alpn.map(|a| a.names().map(str::to_string).collect()).unwrap_or_default(),
        ),
        other => panic!("expected TLS, got {other:?}"),
    }
}

#[test]
fn rustls_client_hello_sni_and_alpn() {
    let wire = rustls_client_hello("www.example.com", &["h2", "http/1.1"]);
    let v = verdict(&wire);
    assert_eq!(v.transport_protocol(), Some("tls"));
    assert_eq!(sni_alpn(v), (Some("www.example.com".into()), vec!["h2".into(), "http/1.1".into()]));
    let Inspect::Tls(h) = verdict(&wire) else { unreachable!() };
    assert_eq!(h.version, 0x0304);
}

#[test]
fn one_byte_segments_need_more_until_complete() {
    let wire = rustls_client_hello("api.example.org", &["http/1.1"]);
    let mut inspector = TlsInspector::new(TlsInspectorConfig::default());
    for n in 0..wire.len() {
        assert_eq!(inspector.inspect(&wire[..n]), Inspect::NeedMore, "prefix of {n} bytes");
    }
    let (sni, alpn) = sni_alpn(inspector.inspect(&wire));
    assert_eq!(sni.as_deref(), Some("api.example.org"));
    assert_eq!(alpn, vec!["http/1.1".to_string()]);
    // The verdict repeats.
    assert!(matches!(inspector.inspect(&wire), Inspect::Tls(_)));
}

#[test]
fn client_hello_across_one_byte_records() {
    let hello = Hello::tls13(Some("split.example.com"), &["h2"]);
    let wire = records(&hello.handshake(), 1);
    let mut inspector = TlsInspector::new(TlsInspectorConfig::default());
    // Also arriving in 7-byte TCP segments.
    let mut verdict = Inspect::NeedMore;
    for end in (7..wire.len()).step_by(7).chain([wire.len()]) {
        verdict = inspector.inspect(&wire[..end]);
        if end < wire.len() {
            assert_eq!(verdict, Inspect::NeedMore);
        }
    }
    assert_eq!(sni_alpn(verdict), (Some("split.example.com".into()), vec!["h2".into()]));
}

#[test]
fn client_hello_in_two_records_with_trailing_bytes() {
    let hello = Hello::tls13(Some("a.example"), &[]);
    let hs = hello.handshake();
    let mut wire = records(&hs[..10], 16384);
    wire.extend_from_slice(&records(&hs[10..], 16384));
    wire.extend_from_slice(b"more data after the hello");
    assert_eq!(sni_alpn(verdict(&wire)).0.as_deref(), Some("a.example"));
}

#[test]
fn no_sni_no_alpn() {
    let v = verdict_owned(Hello::tls13(None, &[]).wire());
    let Inspect::Tls(h) = v else { panic!("{v:?}") };
    assert_eq!((h.server_name, h.alpn), (None, None));
}

fn verdict_owned(wire: Vec<u8>) -> Inspect<'static> {
    verdict(Box::leak(wire.into_boxed_slice()))
}

#[test]
fn plaintext_is_not_tls_after_five_bytes() {
    let mut inspector = TlsInspector::new(TlsInspectorConfig::default());
    assert_eq!(inspector.inspect(b"GET "), Inspect::NeedMore);
    assert_eq!(inspector.inspect(b"GET / HTTP/1.1\r\n"), Inspect::NotTls);
    assert_eq!(verdict(b"\x00\x01\x02\x03\x04\x05"), Inspect::NotTls);
    assert_eq!(verdict(b"SSH-2.0-OpenSSH_9.6\r\n"), Inspect::NotTls);
    assert_eq!(Inspect::NotTls.transport_protocol(), None);
}

#[test]
fn close_on_parse_errors_when_configured() {
    let config = TlsInspectorConfig::new(None, None, true).unwrap();
    let mut inspector = TlsInspector::new(config);
    assert_eq!(inspector.inspect(b"GET / HTTP/1.1\r\n"), Inspect::Close(CloseReason::ClientHelloParseError));
}

#[test]
fn client_hello_too_large() {
    // A small cap: the ClientHello never completes within it.
    let config = TlsInspectorConfig::new(Some(100), None, false).unwrap();
    let mut inspector = TlsInspector::new(config);
    let wire = rustls_client_hello("big.example.com", &[]);
    assert!(wire.len() > 100);
    assert_eq!(inspector.inspect(&wire[..50]), Inspect::NeedMore);
    assert_eq!(inspector.inspect(&wire), Inspect::Close(CloseReason::ClientHelloTooLarge));
    // With the default cap: a 16 KiB hello in one-byte records needs ~98 KiB.
    let mut big = Hello::tls13(Some("x.example"), &[]);
    big.extensions.as_mut().unwrap().push((21, vec![0; 16000])); // padding
    let wire = records(&big.handshake(), 1);
    let mut inspector = TlsInspector::new(TlsInspectorConfig::default());
    assert_eq!(inspector.inspect(&wire), Inspect::Close(CloseReason::ClientHelloTooLarge));
    // The same hello in one record is fine.
    assert!(matches!(verdict_owned(big.wire()), Inspect::Tls(_)));
}

#[test]
fn read_size_doubles_up_to_the_cap() {
    let config = TlsInspectorConfig::new(Some(16384), Some(256), false).unwrap();
    let mut inspector = TlsInspector::new(config);
    assert_eq!(inspector.max_read_bytes(), 256);
    let hello = Hello::tls13(Some("a.example"), &[]);
    let wire = records(&hello.handshake(), 1);
    assert_eq!(inspector.inspect(&wire[..100]), Inspect::NeedMore);
    assert_eq!(inspector.max_read_bytes(), 256);
    assert_eq!(inspector.inspect(&wire[..300]), Inspect::NeedMore);
    assert_eq!(inspector.max_read_bytes(), 600);
    assert!(TlsInspectorConfig::new(Some(65537), None, false)
        .unwrap_err()
        .contains("max_client_hello_size of 65537 is greater than maximum of 65536."));
    assert_eq!(TlsInspectorConfig::new(Some(100), Some(5000), false).unwrap().initial_read_buffer_size, 100);
}

#[test]
fn server_name_rules() {
    let with_sni = |body: Vec<u8>| {
        let mut h = Hello::tls13(None, &[]);
        h.extensions.as_mut().unwrap().push((ext::SERVER_NAME, body));
        verdict_owned(h.wire())
    };
    // Two names in the list.
    let mut two = sni_ext(b"a.example").1;
    let entry = sni_ext(b"b.example").1[2..].to_vec();
    two.extend_from_slice(&entry);
    let n = (two.len() - 2) as u16;
    two[..2].copy_from_slice(&n.to_be_bytes());
    assert_eq!(with_sni(two), Inspect::NotTls);
    assert_eq!(with_sni(sni_ext(b"").1), Inspect::NotTls, "empty host name");
    assert_eq!(with_sni(sni_ext(&[b'a'; 256]).1), Inspect::NotTls, "over 255 bytes");
    assert!(matches!(with_sni(sni_ext(&[b'a'; 255]).1), Inspect::Tls(_)));
    assert_eq!(with_sni(sni_ext(b"a\0b").1), Inspect::NotTls, "NUL");
    assert_eq!(with_sni(sni_ext(b"\xff.example").1), Inspect::NotTls, "not UTF-8");
    let mut other_type = sni_ext(b"a.example").1;
    other_type[2] = 1;
    assert_eq!(with_sni(other_type), Inspect::NotTls, "name type other than host_name");
    let mut trailing = sni_ext(b"a.example").1;
    trailing.push(0);
    assert_eq!(with_sni(trailing), Inspect::NotTls);
    // Case is kept as sent; matching lower-cases.
    assert_eq!(sni_alpn(with_sni(sni_ext(b"WWW.Example.COM").1)).0.as_deref(), Some("WWW.Example.COM"));
}

#[test]
fn malformed_alpn_is_ignored_not_fatal() {
    for body in [vec![0, 0], vec![0, 1, 0], vec![0, 3, 2, b'h', b'2', 9], vec![0, 2, 1, b'x', 0]] {
        let mut h = Hello::tls13(Some("a.example"), &[]);
        h.extensions.as_mut().unwrap().push((ext::ALPN, body.clone()));
        let v = verdict_owned(h.wire());
        let Inspect::Tls(h) = v else { panic!("{body:?}: {v:?}") };
        assert_eq!(h.alpn, None, "{body:?}");
    }
    // A non-UTF-8 protocol is kept in the list but cannot be named.
    let mut h = Hello::tls13(None, &[]);
    h.extensions.as_mut().unwrap().push((ext::ALPN, vec![0, 5, 1, 0xff, 2, b'h', b'2']));
    let Inspect::Tls(h) = verdict_owned(h.wire()) else { panic!() };
    let alpn = h.alpn.unwrap();
    assert_eq!(alpn.len(), 2);
    assert_eq!(alpn.names().collect::<Vec<_>>(), vec!["h2"]);
    let mut slots = [""; 4];
    assert_eq!(alpn.fill(&mut slots), &["h2"]);
    let three = AlpnList::parse(&[0, 9, 2, b'h', b'2', 2, b'h', b'3', 2, b'h', b'4']).unwrap();
    let mut two = [""; 2];
    assert_eq!(three.fill(&mut two), &["h2", "h3"], "truncated to the slots given");
}

#[test]
fn version_negotiation() {
    let with = |legacy: u16, versions: Option<&[u16]>| {
        let mut h = Hello::tls13(None, &[]);
        h.version = legacy;
        h.suites = vec![0x1301, 0xc02f];
        let exts = h.extensions.as_mut().unwrap();
        exts.retain(|(t, _)| *t != ext::SUPPORTED_VERSIONS);
        if let Some(v) = versions {
            exts.push(versions_ext(v));
        }
        match verdict_owned(h.wire()) {
            Inspect::Tls(h) => Some(h.version),
            Inspect::NotTls => None,
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(with(0x0303, None), Some(0x0303));
    assert_eq!(with(0x0301, None), Some(0x0301));
    assert_eq!(with(0x0300, None), None, "SSL 3.0");
    assert_eq!(with(0x0303, Some(&[0x0a0a, 0x0304])), Some(0x0304), "GREASE skipped");
    assert_eq!(with(0x0303, Some(&[0x7f1c])), None, "only a TLS 1.3 draft");
    assert_eq!(with(0x0303, Some(&[])), None, "empty list");
    // An odd byte is only an error if the scan reaches it.
    let mut h = Hello::tls13(None, &[]);
    h.extensions.as_mut().unwrap().retain(|(t, _)| *t != ext::SUPPORTED_VERSIONS);
    h.extensions.as_mut().unwrap().push((ext::SUPPORTED_VERSIONS, vec![3, 0x03, 0x04, 0x01]));
    assert!(matches!(verdict_owned(h.clone().wire()), Inspect::Tls(_)));
    h.extensions.as_mut().unwrap().pop();
    h.extensions.as_mut().unwrap().push((ext::SUPPORTED_VERSIONS, vec![3, 0x03, 0x01, 0x01]));
    assert_eq!(verdict_owned(h.wire()), Inspect::NotTls);
}

#[test]
fn fallback_scsv_and_compression() {
    let mut h = Hello::tls13(None, &[]);
    h.extensions.as_mut().unwrap().retain(|(t, _)| *t != ext::SUPPORTED_VERSIONS);
    h.suites.push(0x5600);
    assert_eq!(verdict_owned(h.wire()), Inspect::NotTls, "fallback below TLS 1.3");
    let mut h = Hello::tls13(None, &[]);
    h.suites.push(0x5600);
    assert!(matches!(verdict_owned(h.wire()), Inspect::Tls(_)), "fallback at our best version is fine");

    let mut h = Hello::tls13(None, &[]);
    h.compression = vec![1];
    assert_eq!(verdict_owned(h.wire()), Inspect::NotTls, "no null compression");
    h.compression = vec![1, 0];
    assert_eq!(verdict_owned(h.clone().wire()), Inspect::NotTls, "TLS 1.3 needs exactly null");
    h.extensions.as_mut().unwrap().retain(|(t, _)| *t != ext::SUPPORTED_VERSIONS);
    assert!(matches!(verdict_owned(h.wire()), Inspect::Tls(_)), "TLS 1.2 tolerates more methods");
}

#[test]
fn client_hello_structure() {
    let base = Hello::tls13(Some("a.example"), &[]);
    let mut h = base.clone();
    h.session_id = vec![0; 33];
    assert_eq!(verdict_owned(h.wire()), Inspect::NotTls, "session id over 32");
    let mut body = base.body();
    body[2 + 32 + 1 + 32 + 1] ^= 1; // cipher suite length made odd
    assert_eq!(verdict_owned(records(&handshake(1, &body), 16384)), Inspect::NotTls);
    let mut h = base.clone();
    h.suites.clear();
    assert_eq!(verdict_owned(h.wire()), Inspect::NotTls, "no cipher suites");
    let mut h = base.clone();
    h.compression.clear();
    assert_eq!(verdict_owned(h.wire()), Inspect::NotTls, "no compression methods");
    let mut body = base.body();
    body.push(0);
    assert_eq!(verdict_owned(records(&handshake(1, &body), 16384)), Inspect::NotTls, "trailing byte");
    let mut h = base.clone();
    h.extensions = None;
    assert!(matches!(verdict_owned(h.wire()), Inspect::Tls(_)), "no extensions block at all");
    let mut h = base.clone();
    h.extensions.as_mut().unwrap().push((ext::SERVER_NAME, sni_ext(b"b.example").1));
    assert_eq!(verdict_owned(h.wire()), Inspect::NotTls, "duplicate extension");
    // Past 32 extensions the duplicate check switches to a bitmap.
    let mut h = base.clone();
    for t in 1000..1040 {
        h.extensions.as_mut().unwrap().push((t, vec![]));
    }
    assert!(matches!(verdict_owned(h.clone().wire()), Inspect::Tls(_)));
    h.extensions.as_mut().unwrap().push((1020, vec![1]));
    assert_eq!(verdict_owned(h.wire()), Inspect::NotTls);
}

#[test]
fn record_and_handshake_layer_rules() {
    let hs = Hello::tls13(Some("a.example"), &[]).handshake();
    // Not a handshake record: decided on the header.
    assert_eq!(verdict(&[23, 3, 3, 0, 10]), Inspect::NotTls);
    assert_eq!(verdict(&[22, 3, 3, 0x40, 1]), Inspect::NotTls, "record over 2^14");
    assert_eq!(verdict(&[22, 4, 0, 0, 1, 1]), Inspect::NotTls, "major version 4");
    // Handshake type other than ClientHello.
    assert_eq!(verdict_owned(records(&handshake(2, &[0; 40]), 16384)), Inspect::NotTls);
    // A ClientHello announced over 16 KiB: refused as soon as the header is seen.
    assert_eq!(verdict(&[22, 3, 1, 0, 4, 1, 0, 0x40, 1]), Inspect::NotTls);
    // Up to 32 empty records are skipped, the 33rd is refused.
    let mut wire = [22u8, 3, 1, 0, 0].repeat(32);
    wire.extend_from_slice(&records(&hs, 16384));
    assert!(matches!(verdict_owned(wire), Inspect::Tls(_)));
    let mut wire = [22u8, 3, 1, 0, 0].repeat(33);
    wire.extend_from_slice(&records(&hs, 16384));
    assert_eq!(verdict_owned(wire), Inspect::NotTls);
    // A non-handshake record in the middle of a fragmented ClientHello.
    let mut wire = records(&hs[..20], 16384);
    wire.extend_from_slice(&[21, 3, 3, 0, 2, 1, 0]);
    assert_eq!(verdict_owned(wire), Inspect::NotTls);
}

#[test]
fn sslv2_compatible_client_hello() {
    let v2 = |version: u16, specs: &[[u8; 3]]| {
        let mut body = vec![1];
        body.extend_from_slice(&version.to_be_bytes());
        body.extend_from_slice(&((specs.len() * 3) as u16).to_be_bytes());
        body.extend_from_slice(&[0, 0, 0, 16]);
        for s in specs {
            body.extend_from_slice(s);
        }
        body.extend_from_slice(&[0x55; 16]);
        let mut wire = vec![0x80 | (body.len() >> 8) as u8, body.len() as u8];
        wire.extend_from_slice(&body);
        wire
    };
    let wire = v2(0x0301, &[[0x07, 0x00, 0xc0], [0x00, 0x00, 0x2f]]);
    let mut inspector = TlsInspector::new(TlsInspectorConfig::default());
    assert_eq!(inspector.inspect(&wire[..10]), Inspect::NeedMore);
    let v = inspector.inspect(&wire);
    assert_eq!(v, Inspect::Tls(ClientHelloRepr { server_name: None, alpn: None, version: 0x0301 }));
    assert_eq!(verdict_owned(v2(0x0301, &[[0x07, 0x00, 0xc0]])), Inspect::NotTls, "only SSLv2 ciphers");
    assert_eq!(verdict_owned(v2(0x0300, &[[0, 0, 0x2f]])), Inspect::NotTls, "SSL 3.0");
    assert_eq!(verdict_owned(v2(0x0302, &[[0, 0, 0x2f], [0, 0x56, 0]])), Inspect::NotTls, "fallback SCSV");
}

#[test]
fn stats_follow_envoy_counters() {
    let mut stats = TlsInspectorStats::default();
    let wire = rustls_client_hello("www.example.com", &["h2"]);
    stats.record(&verdict(&wire));
    stats.record(&verdict_owned(Hello::tls13(None, &[]).wire()));
    stats.record(&Inspect::NotTls);
    stats.record(&Inspect::Close(CloseReason::ClientHelloTooLarge));
    stats.record(&Inspect::NeedMore);
    assert_eq!(
        stats,
        TlsInspectorStats {
            client_hello_too_large: 1,
            tls_found: 2,
            tls_not_found: 1,
            alpn_found: 1,
            alpn_not_found: 1,
            sni_found: 1,
            sni_not_found: 1,
        }
    );
}

#[test]
fn shrinking_input_never_panics() {
    let wire = rustls_client_hello("www.example.com", &[]);
    let mut inspector = TlsInspector::new(TlsInspectorConfig::default());
    assert!(matches!(inspector.inspect(&wire), Inspect::Tls(_)));
    assert_eq!(inspector.inspect(&wire[..3]), Inspect::NeedMore);
    let mut inspector = TlsInspector::new(TlsInspectorConfig::default());
    let hs = Hello::tls13(Some("a.example"), &[]).handshake();
    let wire = records(&hs, 3);
    assert_eq!(inspector.inspect(&wire[..40]), Inspect::NeedMore);
    assert_eq!(inspector.inspect(&wire[..2]), Inspect::NeedMore);
    assert!(matches!(inspector.inspect(&wire), Inspect::Tls(_)));
}
