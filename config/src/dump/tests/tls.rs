//! TLS contexts through a dump and back: resolved parameters, certificates by filename,
//! and inline private keys redacted.

use super::{at, has, round_trip, s};
use crate::dump::{Dump, Json};
use crate::tls::{CipherSuite, DataSource, EcdhCurve, SubjectAltName, TlsVersion};

const KEY_PEM: &str = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgSECRETSECRET\n-----END PRIVATE KEY-----\n";

/// A TLS-terminating listener (DownstreamTlsContext with `downstream_key`) and a TLS
/// origin cluster (UpstreamTlsContext with `upstream_key`).
fn tls_bootstrap(downstream_key: &str, upstream_key: &str) -> String {
    format!(
        r#"
static_resources:
  listeners:
  - name: https
    address: {{ socket_address: {{ address: 0.0.0.0, port_value: 8443 }} }}
    listener_filters:
    - name: tls_inspector
      typed_config: {{ "@type": type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector }}
    filter_chains:
    - filter_chain_match: {{ server_names: [example.com], transport_protocol: tls }}
      transport_socket:
        name: tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
          common_tls_context:
            alpn_protocols: [h2, http/1.1]
            tls_params: {{ tls_minimum_protocol_version: TLSv1_3 }}
            tls_certificates:
            - certificate_chain: {{ filename: /etc/sluice/server.pem }}
              private_key: {downstream_key}
            validation_context:
              trusted_ca: {{ filename: /etc/sluice/ca.pem }}
              match_typed_subject_alt_names:
              - {{ san_type: DNS, matcher: {{ exact: Client.Example.com }} }}
              - {{ san_type: IP_ADDRESS, matcher: {{ exact: "10.0.0.1" }} }}
          require_client_certificate: true
          disable_stateless_session_resumption: true
          disable_stateful_session_resumption: true
          full_scan_certs_on_sni_mismatch: true
          prefer_client_ciphers: true
      filters:
      - name: tcp
        typed_config: {{ "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: tls, cluster: secure }}
    - filter_chain_match: {{ transport_protocol: raw_buffer }}
      transport_socket:
        name: plain
        typed_config: {{ "@type": type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer }}
      filters:
      - name: tcp
        typed_config: {{ "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: plain, cluster: secure }}
  clusters:
  - name: secure
    transport_socket:
      name: envoy.transport_sockets.tls
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
        sni: api.example.com
        auto_sni_san_validation: true
        max_session_keys: 0
        common_tls_context:
          alpn_protocols: [http/1.1]
          tls_params:
            tls_maximum_protocol_version: TLSv1_3
            cipher_suites: ["[ECDHE-ECDSA-AES128-GCM-SHA256|ECDHE-ECDSA-CHACHA20-POLY1305]", ECDHE-RSA-AES256-GCM-SHA384]
            ecdh_curves: [P-384, X25519]
          tls_certificates:
          - certificate_chain: {{ inline_string: "-----BEGIN CERTIFICATE-----\nPUBLIC\n-----END CERTIFICATE-----\n" }}
            private_key: {upstream_key}
          validation_context:
            trusted_ca: {{ inline_bytes: "Q0EgUEVN" }}
    load_assignment: {{ cluster_name: secure, endpoints: [{{ lb_endpoints: [{{ endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: 9443 }} }} }} }}] }}] }}
"#
    )
}

#[test]
fn tls_contexts_round_trip_with_file_references() {
    let yaml = tls_bootstrap("{ filename: /etc/sluice/server.key }", "{ environment_variable: SLUICE_CLIENT_KEY }");
    let (first, again, dump) = round_trip(&yaml);
    assert!(again.warnings.is_empty(), "{:?}", again.warnings);
    let again = again.bootstrap;

    let (d1, d2) = (&first.listeners[0].filter_chains[0], &again.listeners[0].filter_chains[0]);
    let (t1, t2) = (d1.transport_socket.as_ref().unwrap(), d2.transport_socket.as_ref().unwrap());
    let (c1, c2) = (&t1.common_tls_context, &t2.common_tls_context);
    assert_eq!(c2.tls_params, c1.tls_params);
    assert_eq!((c2.tls_params.min_version, c2.tls_params.max_version), (TlsVersion::Tls13, TlsVersion::Tls13));
    assert_eq!(c2.validation_context, c1.validation_context);
    assert_eq!(
        c2.validation_context.as_ref().unwrap().match_typed_subject_alt_names,
        vec![SubjectAltName::Dns("client.example.com".into()), SubjectAltName::Ip("10.0.0.1".parse().unwrap())]
    );
    assert_eq!(c2.alpn_protocols, c1.alpn_protocols);
    assert_eq!(c2.tls_certificates[0].certificate_chain, DataSource::Filename("/etc/sluice/server.pem".into()));
    assert_eq!(c2.tls_certificates[0].private_key, DataSource::Filename("/etc/sluice/server.key".into()));
    assert!(t2.require_client_certificate && t2.prefer_client_ciphers && t2.full_scan_certs_on_sni_mismatch);
    assert!(t2.disable_stateless_session_resumption && t2.disable_stateful_session_resumption);
    assert!(again.listeners[0].filter_chains[1].transport_socket.is_none(), "raw_buffer is plaintext");

    let (u1, u2) =
        (first.clusters[0].transport_socket.as_ref().unwrap(), again.clusters[0].transport_socket.as_ref().unwrap());
    assert_eq!((&u2.sni, u2.auto_sni_san_validation, u2.max_session_keys), (&u1.sni, true, 0));
    let params = &u2.common_tls_context.tls_params;
    assert_eq!(params, &u1.common_tls_context.tls_params);
    assert_eq!(
        params.cipher_suites.as_deref(),
        Some(
            &[
                CipherSuite::EcdheEcdsaAes128GcmSha256,
                CipherSuite::EcdheEcdsaChacha20Poly1305,
                CipherSuite::EcdheRsaAes256GcmSha384
            ][..]
        )
    );
    assert_eq!(params.ecdh_curves, vec![EcdhCurve::P384, EcdhCurve::X25519]);
    assert_eq!((params.min_version, params.max_version), (TlsVersion::Tls12, TlsVersion::Tls13));
    let cert = &u2.common_tls_context.tls_certificates[0];
    assert_eq!(cert.certificate_chain, u1.common_tls_context.tls_certificates[0].certificate_chain, "public: kept");
    assert_eq!(cert.private_key, DataSource::EnvironmentVariable("SLUICE_CLIENT_KEY".into()));
    let ca = u2.common_tls_context.validation_context.as_ref().unwrap().trusted_ca.as_ref().unwrap();
    assert_eq!(ca, &DataSource::InlineBytes(b"CA PEM".to_vec()));
    assert!(!dump.contains("[redacted]"), "nothing inline to redact");
}

#[test]
fn tls_dump_fields() {
    let yaml = tls_bootstrap("{ filename: /etc/sluice/server.key }", "{ filename: /etc/sluice/client.key }");
    let (first, _, _) = round_trip(&yaml);
    let b = first.dump();
    let ts = at(&b, "static_resources.listeners[0].filter_chains[0].transport_socket");
    assert_eq!(at(ts, "name"), &s("envoy.transport_sockets.tls"));
    let tc = at(ts, "typed_config");
    assert_eq!(
        at(tc, "@type"),
        &s("type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext")
    );
    let params = at(tc, "common_tls_context.tls_params");
    assert_eq!(at(params, "tls_minimum_protocol_version"), &s("TLSv1_3"));
    assert_eq!(at(params, "tls_maximum_protocol_version"), &s("TLSv1_3"), "a server's default maximum");
    assert_eq!(at(params, "ecdh_curves"), &Json::Arr(vec![s("X25519"), s("P-256")]), "Envoy's default curves");
    assert!(!has(params, "cipher_suites"), "unset: the library's defaults stay in force");
    assert_eq!(at(tc, "common_tls_context.tls_certificates[0].private_key.filename"), &s("/etc/sluice/server.key"));
    assert_eq!(
        at(tc, "common_tls_context.validation_context.match_typed_subject_alt_names[1].san_type"),
        &s("IP_ADDRESS")
    );
    assert!(!has(at(&b, "static_resources.listeners[0].filter_chains[1]"), "transport_socket"), "plaintext");
    let up = at(&b, "static_resources.clusters[0].transport_socket.typed_config");
    assert_eq!(
        at(up, "common_tls_context.tls_params.cipher_suites"),
        &Json::Arr(vec![
            s("ECDHE-ECDSA-AES128-GCM-SHA256"),
            s("ECDHE-ECDSA-CHACHA20-POLY1305"),
            s("ECDHE-RSA-AES256-GCM-SHA384")
        ])
    );
    assert_eq!(at(up, "common_tls_context.validation_context.trusted_ca.inline_bytes"), &s("Q0EgUEVN"));
}

#[test]
fn inline_private_keys_are_redacted() {
    let inline = format!("{{ inline_string: {KEY_PEM:?} }}");
    // base64 of KEY_PEM, so that the inline_bytes key holds the same secret.
    let bytes = format!("{{ inline_bytes: \"{}\" }}", crate::dump::base64(KEY_PEM.as_bytes()));
    let yaml = tls_bootstrap(&inline, &bytes);
    let first = crate::load_str(&yaml).unwrap_or_else(|e| panic!("{e}")).bootstrap;
    let key = &first.listeners[0].filter_chains[0].transport_socket.as_ref().unwrap().common_tls_context;
    assert_eq!(key.tls_certificates[0].private_key, DataSource::InlineString(KEY_PEM.into()), "the test key loaded");

    let (_, again, dump) = round_trip(&yaml);
    for secret in ["SECRETSECRET", "BEGIN PRIVATE KEY", &crate::dump::base64(KEY_PEM.as_bytes())[..40]] {
        assert!(!dump.contains(secret), "the dump leaks `{secret}`:\n{dump}");
    }
    assert!(dump.contains("\"private_key\": {\n"), "{dump}");
    assert!(dump.contains("\"inline_string\": \"[redacted]\""), "{dump}");
    assert!(dump.contains(&format!("\"inline_bytes\": \"{}\"", crate::dump::base64(b"[redacted]"))), "{dump}");
    // Public material next to the key is still written as configured.
    assert!(dump.contains("\"filename\": \"/etc/sluice/server.pem\""));
    assert!(dump.contains("PUBLIC"));
    // What a reload of the dump holds: the redaction marker, not a key.
    let again = again.bootstrap;
    let down = &again.listeners[0].filter_chains[0].transport_socket.as_ref().unwrap().common_tls_context;
    assert_eq!(down.tls_certificates[0].private_key, DataSource::InlineString("[redacted]".into()));
    let up = &again.clusters[0].transport_socket.as_ref().unwrap().common_tls_context;
    assert_eq!(up.tls_certificates[0].private_key, DataSource::InlineBytes(b"[redacted]".to_vec()));
}
