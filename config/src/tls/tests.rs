use super::*;
use crate::{load_str, ConfigErrors, Loaded};

/// A bootstrap with one TLS listener (its `transport_socket` given) and one cluster
/// (its `transport_socket` given), both indented into place.
fn bootstrap(listener_ts: &str, cluster_ts: &str) -> Result<Loaded, ConfigErrors> {
    let indent = |s: &str, n: usize| s.lines().map(|l| format!("{}{l}\n", " ".repeat(n))).collect::<String>();
    let doc = format!(
        r#"
static_resources:
  listeners:
  - name: l
    address: {{socket_address: {{address: 0.0.0.0, port_value: 8443}}}}
    filter_chains:
    - filters:
      - name: tcp
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: tcp
          cluster: c
{}
  clusters:
  - name: c
    load_assignment:
      cluster_name: c
      endpoints: [{{lb_endpoints: [{{endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: 9000}}}}}}}}]}}]
{}
"#,
        indent(listener_ts, 6),
        indent(cluster_ts, 4)
    );
    load_str(&doc)
}

const DOWNSTREAM: &str = r#"transport_socket:
  name: envoy.transport_sockets.tls
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
"#;

const UPSTREAM: &str = r#"transport_socket:
  name: envoy.transport_sockets.tls
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
"#;

fn downstream(body: &str) -> String {
    let body: String = body.lines().map(|l| format!("    {l}\n")).collect();
    format!("{DOWNSTREAM}{body}")
}

fn upstream(body: &str) -> String {
    let body: String = body.lines().map(|l| format!("    {l}\n")).collect();
    format!("{UPSTREAM}{body}")
}

const CERT: &str = r#"common_tls_context:
  tls_certificates:
  - certificate_chain: {filename: /etc/certs/server.pem}
    private_key: {inline_string: "-----BEGIN PRIVATE KEY-----"}
"#;

fn errors(r: Result<Loaded, ConfigErrors>) -> Vec<String> {
    match r {
        Ok(_) => Vec::new(),
        Err(e) => e.0.iter().map(|e| e.to_string()).collect(),
    }
}

fn has(errors: &[String], needle: &str) -> bool {
    errors.iter().any(|e| e.contains(needle))
}

#[test]
fn downstream_context_with_defaults() {
    let loaded = bootstrap(&downstream(CERT), "").unwrap();
    let chain = &loaded.bootstrap.listeners[0].filter_chains[0];
    let tls = chain.transport_socket.as_ref().unwrap();
    let common = &tls.common_tls_context;
    assert_eq!(common.tls_certificates.len(), 1);
    assert_eq!(common.tls_certificates[0].certificate_chain, DataSource::Filename("/etc/certs/server.pem".into()));
    assert_eq!(common.tls_params.min_version, TlsVersion::Tls12);
    assert_eq!(common.tls_params.max_version, TlsVersion::Tls13, "servers default to TLS 1.3");
    assert_eq!(common.tls_params.cipher_suites, None);
    assert_eq!(common.tls_params.ecdh_curves, DEFAULT_CURVES.to_vec());
    assert!(!tls.require_client_certificate);
    assert!(loaded.bootstrap.clusters[0].transport_socket.is_none());
}

#[test]
fn downstream_full() {
    let body = r#"common_tls_context:
  alpn_protocols: [h2, http/1.1]
  tls_params:
    tls_minimum_protocol_version: TLSv1_3
    cipher_suites: ["[ECDHE-ECDSA-AES128-GCM-SHA256|ECDHE-ECDSA-CHACHA20-POLY1305]", "ECDHE-RSA-AES256-GCM-SHA384", AES128-SHA]
    ecdh_curves: [P-256, X25519, P-521]
  tls_certificates:
  - certificate_chain: {filename: /c.pem}
    private_key: {filename: /k.pem}
  validation_context:
    trusted_ca: {filename: /ca.pem}
    match_typed_subject_alt_names:
    - {san_type: DNS, matcher: {exact: Client.Example.com}}
    - {san_type: IP_ADDRESS, matcher: {exact: 10.0.0.1}}
requireClientCertificate: true
prefer_client_ciphers: true
disable_stateless_session_resumption: true
"#;
    let loaded = bootstrap(&downstream(body), "").unwrap();
    let tls = loaded.bootstrap.listeners[0].filter_chains[0].transport_socket.clone().unwrap();
    let c = &tls.common_tls_context;
    assert_eq!(c.alpn_protocols, vec!["h2".to_string(), "http/1.1".to_string()]);
    assert_eq!(c.tls_params.min_version, TlsVersion::Tls13);
    assert_eq!(
        c.tls_params.cipher_suites,
        Some(vec![
            CipherSuite::EcdheEcdsaAes128GcmSha256,
            CipherSuite::EcdheEcdsaChacha20Poly1305,
            CipherSuite::EcdheRsaAes256GcmSha384
        ])
    );
    assert_eq!(c.tls_params.ecdh_curves, vec![EcdhCurve::P256, EcdhCurve::X25519]);
    let v = c.validation_context.as_ref().unwrap();
    assert_eq!(v.trusted_ca, Some(DataSource::Filename("/ca.pem".into())));
    assert_eq!(
        v.match_typed_subject_alt_names,
        vec![SubjectAltName::Dns("client.example.com".into()), SubjectAltName::Ip("10.0.0.1".parse().unwrap())]
    );
    assert!(tls.require_client_certificate && tls.prefer_client_ciphers && tls.disable_stateless_session_resumption);
    // The unavailable BoringSSL names are dropped with warnings.
    let warned: Vec<&str> = loaded.warnings.iter().map(|w| w.message.as_str()).collect();
    assert!(warned.iter().any(|w| w.contains("`AES128-SHA` is not available")), "{warned:?}");
    assert!(warned.iter().any(|w| w.contains("`P-521` is not available")), "{warned:?}");
}

#[test]
fn upstream_context() {
    let body = r#"sni: api.example.com
auto_sni_san_validation: true
max_session_keys: 0
common_tls_context:
  validation_context: {trusted_ca: {inline_string: "PEM"}}
"#;
    let loaded = bootstrap("", &upstream(body)).unwrap();
    let tls = loaded.bootstrap.clusters[0].transport_socket.clone().unwrap();
    assert_eq!(tls.sni, "api.example.com");
    assert!(tls.auto_sni_san_validation);
    assert_eq!(tls.max_session_keys, 0);
    assert_eq!(tls.common_tls_context.tls_params.max_version, TlsVersion::Tls12, "clients default to TLS 1.2");
    assert!(tls.common_tls_context.tls_certificates.is_empty());
    // An empty UpstreamTlsContext is valid (no verification: Envoy's default).
    let loaded = bootstrap("", UPSTREAM).unwrap();
    let tls = loaded.bootstrap.clusters[0].transport_socket.clone().unwrap();
    assert_eq!((tls.sni.as_str(), tls.max_session_keys, tls.common_tls_context.validation_context), ("", 1, None));
}

#[test]
fn raw_buffer_is_plaintext() {
    let raw = "transport_socket:\n  name: raw\n  typed_config: {\"@type\": type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer}\n";
    let loaded = bootstrap(raw, raw).unwrap();
    assert!(loaded.bootstrap.listeners[0].filter_chains[0].transport_socket.is_none());
    assert!(loaded.bootstrap.clusters[0].transport_socket.is_none());
}

#[test]
fn wrong_side_and_unknown_types() {
    let e = errors(bootstrap(UPSTREAM, ""));
    assert!(has(&e, "filter_chains[0].transport_socket.typed_config.@type"), "{e:?}");
    assert!(has(
        &e,
        "unsupported transport socket type `envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext`"
    ));
    let e = errors(bootstrap("", DOWNSTREAM));
    assert!(has(&e, "clusters[0].transport_socket.typed_config.@type"), "{e:?}");
    let e = errors(bootstrap("transport_socket: {typed_config: {\"@type\": x/y.Z}}", ""));
    assert!(has(&e, "transport_socket.name"), "{e:?}");
}

#[test]
fn downstream_rules() {
    let e = errors(bootstrap(DOWNSTREAM, ""));
    assert!(has(&e, "common_tls_context.tls_certificates"), "{e:?}");
    assert!(has(&e, "No TLS certificates found for server context"));
    let e = errors(bootstrap(&downstream(&format!("{CERT}require_client_certificate: true\n")), ""));
    assert!(has(&e, "require_client_certificate needs common_tls_context.validation_context.trusted_ca"), "{e:?}");
    let e = errors(bootstrap(
        &downstream(&format!("{CERT}session_ticket_keys: {{keys: []}}\nocsp_staple_policy: MUST_STAPLE\n")),
        "",
    ));
    assert!(has(&e, "typed_config.session_ticket_keys"), "{e:?}");
    assert!(has(&e, "typed_config.ocsp_staple_policy"), "{e:?}");
}

#[test]
fn unsupported_fields_name_their_path() {
    let body = r#"common_tls_context:
  key_log: {path: /tmp/keys}
  tls_certificates:
  - certificate_chain: {filename: /c.pem}
    private_key: {filename: /k.pem}
    password: {inline_string: x}
  validation_context:
    trusted_ca: {filename: /ca.pem}
    crl: {filename: /crl.pem}
    allow_expired_certificate: true
    trust_chain_verification: ACCEPT_UNTRUSTED
    match_typed_subject_alt_names:
    - {san_type: URI, matcher: {exact: "spiffe://x"}}
    - {san_type: DNS, matcher: {prefix: "a"}}
"#;
    let e = errors(bootstrap(&downstream(body), ""));
    let base = "static_resources.listeners[0].filter_chains[0].transport_socket.typed_config.common_tls_context";
    for field in [
        "key_log",
        "tls_certificates[0].password",
        "validation_context.crl",
        "validation_context.allow_expired_certificate",
        "validation_context.trust_chain_verification",
        "validation_context.match_typed_subject_alt_names[0].san_type",
        "validation_context.match_typed_subject_alt_names[1].matcher.prefix",
    ] {
        assert!(has(&e, &format!("{base}.{field}")), "{field}: {e:#?}");
    }
    let e = errors(bootstrap("", &upstream("allow_renegotiation: true\nauto_host_sni: true\n")));
    assert!(has(&e, "typed_config.allow_renegotiation"), "{e:?}");
    assert!(has(&e, "typed_config.auto_host_sni"), "{e:?}");
}

#[test]
fn versions_ciphers_and_curves() {
    let params = |p: &str| downstream(&format!("{CERT}  tls_params: {p}\n"));
    let e = errors(bootstrap(&params("{tls_minimum_protocol_version: TLSv1_0}"), ""));
    assert!(has(&e, "tls_params.tls_minimum_protocol_version") && has(&e, "below TLSv1_2"), "{e:?}");
    let e = errors(bootstrap(
        &params("{tls_minimum_protocol_version: TLSv1_3, tls_maximum_protocol_version: TLSv1_2}"),
        "",
    ));
    assert!(has(&e, "exceeds"), "{e:?}");
    let e = errors(bootstrap(&params("{cipher_suites: [NOT-A-CIPHER]}"), ""));
    assert!(has(&e, "unknown cipher suite `NOT-A-CIPHER`"), "{e:?}");
    let e = errors(bootstrap(&params("{cipher_suites: [AES128-SHA]}"), ""));
    assert!(has(&e, "none of these TLS 1.2 cipher suites is available"), "{e:?}");
    // With TLS 1.3 only, the TLS 1.2 list does not matter.
    assert!(bootstrap(&params("{tls_minimum_protocol_version: TLSv1_3, cipher_suites: [AES128-SHA]}"), "").is_ok());
    let e = errors(bootstrap(&params("{ecdh_curves: [P-521]}"), ""));
    assert!(has(&e, "none of these curves is available"), "{e:?}");
    let e = errors(bootstrap(&params("{ecdh_curves: [brainpool]}"), ""));
    assert!(has(&e, "unknown curve `brainpool`"), "{e:?}");
}

#[test]
fn data_sources() {
    let src = |s: &str| {
        let body = format!(
            "common_tls_context:\n  tls_certificates:\n  - certificate_chain: {s}\n    private_key: {{filename: /k.pem}}\n"
        );
        bootstrap(&downstream(&body), "")
    };
    let chain = |r: Result<Loaded, ConfigErrors>| {
        r.unwrap().bootstrap.listeners[0].filter_chains[0]
            .transport_socket
            .clone()
            .unwrap()
            .common_tls_context
            .tls_certificates[0]
            .certificate_chain
            .clone()
    };
    assert_eq!(chain(src("{inline_bytes: aGVsbG8=}")), DataSource::InlineBytes(b"hello".to_vec()));
    assert_eq!(chain(src("{environment_variable: CERT}")), DataSource::EnvironmentVariable("CERT".into()));
    assert!(has(&errors(src("{}")), "one of filename, inline_string, inline_bytes or environment_variable"));
    assert!(has(&errors(src("{filename: /a, inline_string: b}")), "set only one"));
    assert!(has(&errors(src("{inline_bytes: \"!!\"}")), "not valid base64"));
    let e = errors(bootstrap(
        &downstream("common_tls_context:\n  tls_certificates:\n  - certificate_chain: {filename: /c}\n"),
        "",
    ));
    assert!(has(&e, "tls_certificates[0].private_key"), "{e:?}");
}

#[test]
fn san_without_trusted_ca_is_refused() {
    let body = format!(
        "{CERT}  validation_context:\n    match_typed_subject_alt_names: [{{san_type: DNS, matcher: {{exact: a}}}}]\n"
    );
    let e = errors(bootstrap(&downstream(&body), ""));
    assert!(has(&e, "SAN-based verification of peer certificates without trusted CA is insecure"), "{e:?}");
}

#[test]
fn upstream_limits() {
    let e = errors(bootstrap("", &upstream(&format!("sni: {}\n", "a".repeat(256)))));
    assert!(has(&e, "typed_config.sni"), "{e:?}");
    let two = "common_tls_context:\n  tls_certificates:\n  - {certificate_chain: {filename: /a}, private_key: {filename: /b}}\n  - {certificate_chain: {filename: /a}, private_key: {filename: /b}}\n";
    let e = errors(bootstrap("", &upstream(two)));
    assert!(has(&e, "Multiple TLS certificates are not supported for client contexts"), "{e:?}");
}
