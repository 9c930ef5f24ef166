//! SDS references in TLS contexts, `Secret` resources, and their place in `compose`;
//! unknown fields in dynamic resources.

use super::*;
use crate::tls::{SdsSecret, Secret, SecretKind, SECRET_TYPE};

fn boot(common: &str) -> String {
    format!(
        r#"
static_resources:
  listeners:
  - name: tls
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: 10443 }} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: t
          cluster: s
      transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
          common_tls_context: {common}
  clusters:
  - name: s
    load_assignment: {{ cluster_name: s }}
"#
    )
}

const SDS_CERT: &str = "{ tls_certificate_sds_secret_configs: [{ name: cert, sds_config: { path: /tmp/sds.yaml } }] }";

fn secrets(text: &str) -> Vec<SdsSecret> {
    let (r, _) = decode_resources::<Secret>(text, SECRET_TYPE).unwrap();
    r.items
        .into_iter()
        .map(|s| SdsSecret { path: "/tmp/sds.yaml".into(), ads: false, name: s.name.clone(), secret: Some(s) })
        .collect()
}

const CERT: &str = r#"
version_info: "s1"
resources:
- "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret
  name: cert
  tls_certificate: { certificate_chain: { inline_string: "C" }, private_key: { inline_string: "K" } }
"#;

#[test]
fn a_listener_waits_for_its_secret_and_then_serves_it() {
    let b = crate::load_str(&boot(SDS_CERT)).unwrap().bootstrap;
    let tls = b.listeners[0].filter_chains[0].transport_socket.as_ref().unwrap();
    assert_eq!(tls.common_tls_context.tls_certificate_sds_secret_configs[0].name, "cert");
    // Nothing arrived: the listener is warming, left out.
    let none = compose(&b, &Dynamic::default()).unwrap();
    assert!(none.listeners.is_empty());
    let s = secrets(CERT);
    let ready = compose(&b, &Dynamic { secrets: &s, ..Dynamic::default() }).unwrap();
    let common = &ready.listeners[0].filter_chains[0].transport_socket.as_ref().unwrap().common_tls_context;
    assert_eq!(common.certificates()[0].certificate_chain, crate::tls::DataSource::InlineString("C".into()));
    // The dump names the secret, never what it holds: a rotation keeps the listener's identity.
    let dump = crate::dump::Dump::dump(&ready.listeners[0]).render();
    assert!(dump.contains("tls_certificate_sds_secret_configs"), "{dump}");
    assert!(!dump.contains("\"C\""), "{dump}");
    assert_eq!(dump, crate::dump::Dump::dump(&b.listeners[0]).render());
}

#[test]
fn sds_references_are_checked() {
    let mixed = "{ tls_certificates: [{ certificate_chain: { inline_string: C }, private_key: { inline_string: K } }], tls_certificate_sds_secret_configs: [{ name: cert, sds_config: { path: /tmp/sds.yaml } }] }";
    let e = crate::load_str(&boot(mixed)).unwrap_err().to_string();
    assert!(e.contains("may not be mixed"), "{e}");
    let static_secret = "{ tls_certificate_sds_secret_configs: [{ name: cert }] }";
    let e = crate::load_str(&boot(static_secret)).unwrap_err().to_string();
    assert!(e.contains("tls_certificate_sds_secret_configs[0].sds_config") && e.contains("static secrets"), "{e}");
    let timeout = "{ tls_certificate_sds_secret_configs: [{ name: cert, sds_config: { path: /tmp/x, initial_fetch_timeout: 1s } }] }";
    assert!(crate::load_str(&boot(timeout)).unwrap_err().to_string().contains("initial_fetch_timeout"));
    // A validation-context secret where a certificate is expected is refused at compose.
    let b = crate::load_str(&boot(SDS_CERT)).unwrap().bootstrap;
    let wrong = CERT.replace(
        "tls_certificate: { certificate_chain: { inline_string: \"C\" }, private_key: { inline_string: \"K\" } }",
        "validation_context: { trusted_ca: { inline_string: \"CA\" } }",
    );
    let s = secrets(&wrong);
    let e = compose(&b, &Dynamic { secrets: &s, ..Dynamic::default() }).unwrap_err();
    assert!(e[0].message.contains("not a `tls_certificate`"), "{e:?}");
    // A secret with both kinds, or neither, does not decode.
    let neither =
        "resources:\n- \"@type\": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret\n  name: x\n";
    assert!(decode_resources::<Secret>(neither, SECRET_TYPE).is_err());
}

#[test]
fn a_combined_validation_context_merges_the_secret_into_the_default() {
    let common = "{ tls_certificate_sds_secret_configs: [{ name: cert, sds_config: { path: /tmp/sds.yaml } }], combined_validation_context: { default_validation_context: { match_typed_subject_alt_names: [{ san_type: DNS, matcher: { exact: client.test } }] }, validation_context_sds_secret_config: { name: ca, sds_config: { path: /tmp/sds.yaml } } } }";
    let b = crate::load_str(&boot(common)).unwrap().bootstrap;
    let ca = "- \"@type\": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret\n  name: ca\n  validation_context: { trusted_ca: { inline_string: \"CA\" } }\n";
    let mut s = secrets(&format!("{CERT}{ca}"));
    let ready = compose(&b, &Dynamic { secrets: &s, ..Dynamic::default() }).unwrap();
    let common = &ready.listeners[0].filter_chains[0].transport_socket.as_ref().unwrap().common_tls_context;
    let v = common.validation().unwrap();
    assert_eq!(v.trusted_ca, Some(crate::tls::DataSource::InlineString("CA".into())));
    assert_eq!(v.match_typed_subject_alt_names.len(), 1);
    // Merged without a CA: SANs without a trusted CA are refused, as Envoy's.
    if let Some(SecretKind::ValidationContext(v)) = s[1].secret.as_mut().map(|s| &mut s.kind) {
        v.trusted_ca = None;
    }
    let e = compose(&b, &Dynamic { secrets: &s, ..Dynamic::default() }).unwrap_err();
    assert!(e[0].message.contains("without trusted CA"), "{e:?}");
}

#[test]
fn unknown_fields_of_dynamic_resources_are_warnings_unless_rejected() {
    let cds = "resources:\n- \"@type\": type.googleapis.com/envoy.config.cluster.v3.Cluster\n  name: c\n  bogus: 1\n  load_assignment: { cluster_name: c }\n";
    let d = decode_dynamic::<Cluster>(cds, CLUSTER_TYPE, false).unwrap();
    assert_eq!(d.resources.items[0].name, "c");
    assert_eq!(d.unknown_fields.len(), 1);
    assert_eq!(d.unknown_fields[0].path, "resources[0].bogus");
    let e = decode_dynamic::<Cluster>(cds, CLUSTER_TYPE, true).unwrap_err();
    assert_eq!(e[0].kind, ErrorKind::UnknownField);
}

/// `boot` with cluster `s`'s upstream validation context from secret `ca` in
/// `sds_config`, and the listener's certificate inline.
fn boot_cluster_sds(sds_config: &str) -> String {
    let inline =
        "{ tls_certificates: [{ certificate_chain: { inline_string: C }, private_key: { inline_string: K } }] }";
    boot(inline).replace(
        "    load_assignment: { cluster_name: s }\n",
        &format!("    load_assignment: {{ cluster_name: s }}\n    transport_socket:\n      name: envoy.transport_sockets.tls\n      typed_config:\n        \"@type\": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext\n        common_tls_context: {{ validation_context_sds_secret_config: {{ name: ca, sds_config: {sds_config} }} }}\n"),
    )
}

#[test]
fn a_cluster_warms_until_its_secret_arrives() {
    let b = crate::load_str(&boot_cluster_sds("{ path: /tmp/sds.yaml }")).unwrap().bootstrap;
    // Nothing arrived: checked, then left out (the listener routing to it stays).
    let none = compose(&b, &Dynamic::default()).unwrap();
    assert!(none.clusters.is_empty() && none.listeners.len() == 1);
    assert!(!cluster_sds_ready(&b.clusters[0], &[]));
    let ca = "resources:\n- \"@type\": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret\n  name: ca\n  validation_context: { trusted_ca: { inline_string: \"CA\" } }\n";
    let s = secrets(ca);
    let ready = compose(&b, &Dynamic { secrets: &s, ..Dynamic::default() }).unwrap();
    let common = &ready.clusters[0].transport_socket.as_ref().unwrap().common_tls_context;
    assert_eq!(common.validation().unwrap().trusted_ca, Some(crate::tls::DataSource::InlineString("CA".into())));
}

#[test]
fn sds_over_ads_needs_ads_config_and_a_file_source_is_refused_beside_it() {
    // `ads: {}` without `ads_config`.
    let e = crate::load_str(&boot_cluster_sds("{ ads: {} }")).unwrap_err().to_string();
    assert!(e.contains("`dynamic_resources.ads_config` is not set"), "{e}");
    let ads = "dynamic_resources:\n  ads_config:\n    api_type: GRPC\n    transport_api_version: V3\n    grpc_services: [{ envoy_grpc: { cluster_name: xds } }]\n";
    let xds = "  - name: xds\n    typed_extension_protocol_options:\n      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:\n        \"@type\": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions\n        explicit_http_config: { http2_protocol_options: {} }\n    load_assignment: { cluster_name: xds, endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: 1 } } } }] }] }\n";
    let with_ads = |sds: &str| format!("{ads}{}{xds}", boot_cluster_sds(sds));
    let b = crate::load_str(&with_ads("{ ads: {} }")).unwrap().bootstrap;
    let ok = compose(&b, &Dynamic::default()).unwrap();
    assert_eq!(ok.clusters.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), ["xds"], "`s` warms");
    let b = crate::load_str(&with_ads("{ path: /tmp/sds.yaml }")).unwrap().bootstrap;
    let e = compose(&b, &Dynamic::default()).unwrap_err();
    let want = "static_resources.clusters[0].transport_socket.sds_config";
    assert!(e.iter().any(|e| e.path == want && e.message.contains("next to `ads_config`")), "{e:?}");
}
