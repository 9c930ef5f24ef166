//! `ads_config` and `ads: {}` sources: what loads, what is refused with its path.

use crate::error::ErrorKind;
use crate::xds::ads::ApiType;

fn boot(ads: &str, h2: bool) -> String {
    let proto = if h2 {
        r#"
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: { http2_protocol_options: {} }"#
    } else {
        ""
    };
    format!(
        r#"
dynamic_resources:
  ads_config:
{ads}
  lds_config: {{ ads: {{}}, resource_api_version: V3 }}
  cds_config: {{ ads: {{}} }}
static_resources:
  clusters:
  - name: xds{proto}
    load_assignment:
      cluster_name: xds
      endpoints: [{{ lb_endpoints: [{{ endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: 1 }} }} }} }}] }}]
"#
    )
}

const GRPC: &str =
    "    api_type: GRPC\n    transport_api_version: V3\n    grpc_services: [{ envoy_grpc: { cluster_name: xds } }]";

#[test]
fn ads_config_loads_with_ads_sources() {
    let b = crate::load_str(&boot(GRPC, true)).unwrap().bootstrap;
    let dr = b.dynamic_resources.unwrap();
    let ads = dr.ads_config.unwrap();
    assert_eq!((ads.api_type, ads.cluster_name.as_str()), (ApiType::Grpc, "xds"));
    assert!(dr.lds_config.unwrap().ads && dr.cds_config.unwrap().ads);
    let delta = crate::load_str(&boot(&GRPC.replace("GRPC", "DELTA_GRPC"), true)).unwrap().bootstrap;
    assert_eq!(delta.dynamic_resources.unwrap().ads_config.unwrap().api_type, ApiType::DeltaGrpc);
}

#[test]
fn google_grpc_rate_limits_and_rest_are_refused_with_their_path() {
    let cases = [
        (
            GRPC.replace("envoy_grpc: { cluster_name: xds }", "google_grpc: { target_uri: x, stat_prefix: y }"),
            "dynamic_resources.ads_config.grpc_services[0].google_grpc",
        ),
        (
            format!("{GRPC}\n    rate_limit_settings: {{ max_tokens: 10 }}"),
            "dynamic_resources.ads_config.rate_limit_settings",
        ),
        (GRPC.replace("api_type: GRPC", "api_type: REST"), "dynamic_resources.ads_config.api_type"),
        (format!("{GRPC}\n    refresh_delay: 1s"), "dynamic_resources.ads_config.refresh_delay"),
    ];
    for (ads, path) in cases {
        let e = crate::load_str(&boot(&ads, true)).unwrap_err();
        assert!(e.0.iter().any(|e| e.path == path && e.kind == ErrorKind::Unsupported), "{path}: {e:?}");
    }
    let google = crate::load_str(&boot(&cases_google(), true)).unwrap_err();
    assert!(google.to_string().contains("envoy_grpc"), "{google}");
}

fn cases_google() -> String {
    GRPC.replace("envoy_grpc: { cluster_name: xds }", "google_grpc: { target_uri: x, stat_prefix: y }")
}

/// Loaded and checked as a whole (what the server does at start).
fn checked(yaml: &str) -> Vec<crate::error::ConfigError> {
    let b = crate::load_str(yaml).unwrap().bootstrap;
    crate::xds::compose(&b, &crate::xds::Dynamic::default()).err().unwrap_or_default()
}

#[test]
fn the_control_plane_cluster_must_be_static_and_http2() {
    assert!(checked(&boot(GRPC, true)).is_empty());
    let e = checked(&boot(GRPC, false));
    assert!(e.iter().any(|e| e.path.ends_with("envoy_grpc.cluster_name") && e.message.contains("HTTP/2")), "{e:?}");
    let e = checked(&boot(&GRPC.replace("cluster_name: xds", "cluster_name: nope"), true));
    assert!(e.iter().any(|e| e.message.contains("unknown cluster `nope`")), "{e:?}");
    let file = boot(GRPC, true).replace("cds_config: { ads: {} }", "cds_config: { path: /tmp/cds.yaml }");
    let e = checked(&file);
    assert!(e.iter().any(|e| e.path == "dynamic_resources.cds_config"), "{e:?}");
}

#[test]
fn an_ads_source_needs_ads_config() {
    let yaml = boot(GRPC, true).replace("  ads_config:\n", "").replace(&format!("{GRPC}\n"), "");
    let e = checked(&yaml);
    assert!(e.iter().any(|e| e.message.contains("`dynamic_resources.ads_config` is not set")), "{e:?}");
}
