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

/// `boot` with a static HTTP listener whose HCM takes `local` from `config_source`.
fn with_rds_listener(config_source: &str) -> String {
    let listener = format!(
        r#"  listeners:
  - name: web
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: 8080 }} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: web
          rds: {{ route_config_name: local, config_source: {config_source} }}
          http_filters:
          - name: envoy.filters.http.router
            typed_config: {{ "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }}
"#
    );
    boot(GRPC, true).replace("static_resources:\n", &format!("static_resources:\n{listener}"))
}

#[test]
fn rds_over_ads_loads_and_warms_and_needs_ads_config() {
    let yaml = with_rds_listener("{ ads: {}, initial_fetch_timeout: 2s }");
    let b = crate::load_str(&yaml).unwrap().bootstrap;
    let rds = crate::xds::hcms(&b.listeners[0]).next().unwrap().rds.clone().unwrap();
    assert!(rds.config_source.ads);
    assert_eq!(rds.config_source.initial_fetch_timeout, Some(std::time::Duration::from_secs(2)));
    // Checked, then left out of the effective config until its routes arrive (warming).
    let effective = crate::xds::compose(&b, &crate::xds::Dynamic::default()).unwrap();
    assert!(effective.listeners.is_empty());
    // Without `ads_config`: refused.
    let no_ads = yaml.replace("  ads_config:\n", "").replace(&format!("{GRPC}\n"), "");
    let no_ads = no_ads.replace("  lds_config: { ads: {}, resource_api_version: V3 }\n  cds_config: { ads: {} }\n", "");
    // (With no `dynamic_resources` at all the whole config is checked at load.)
    let e = crate::load_str(&no_ads).unwrap_err().0;
    assert!(e.iter().any(|e| e.message.contains("`dynamic_resources.ads_config` is not set")), "{e:?}");
    // An RDS file next to `ads_config`: refused with the listener's path.
    let e = checked(&with_rds_listener("{ path_config_source: { path: /tmp/rds.yaml } }"));
    assert!(e.iter().any(|e| e.path == "static_resources.listeners[0]" && e.message.contains("ads: {}")), "{e:?}");
}

#[test]
fn initial_fetch_timeout_is_taken_for_eds_over_ads_only() {
    let cluster = |source: &str| {
        boot(GRPC, true).replace(
            "static_resources:\n  clusters:\n",
            &format!("static_resources:\n  clusters:\n  - name: e\n    type: EDS\n    eds_cluster_config: {{ eds_config: {source} }}\n"),
        )
    };
    let b = crate::load_str(&cluster("{ ads: {}, initial_fetch_timeout: 1s }")).unwrap().bootstrap;
    let e = b.clusters[0].eds_cluster_config.as_ref().unwrap();
    assert_eq!(e.eds_config.initial_fetch_timeout, Some(std::time::Duration::from_secs(1)));
    let file = crate::load_str(&cluster("{ path: /tmp/eds.yaml, initial_fetch_timeout: 1s }")).unwrap_err();
    assert!(file.to_string().contains("eds_config.initial_fetch_timeout"), "{file}");
}

#[test]
fn initial_fetch_timeout_is_taken_for_lds_and_cds_over_ads_only() {
    let timed = boot(GRPC, true).replace(
        "lds_config: { ads: {}, resource_api_version: V3 }",
        "lds_config: { ads: {}, resource_api_version: V3, initial_fetch_timeout: 2s }",
    );
    let b = crate::load_str(&timed).unwrap().bootstrap;
    let lds = b.dynamic_resources.as_ref().and_then(|d| d.lds_config.as_ref()).unwrap();
    assert_eq!(lds.initial_fetch_timeout, Some(std::time::Duration::from_secs(2)));
    let file = "dynamic_resources:\n  cds_config: { path: /tmp/cds.yaml, initial_fetch_timeout: 1s }\n";
    let e = crate::load_str(file).unwrap_err().to_string();
    assert!(e.contains("dynamic_resources.cds_config.initial_fetch_timeout"), "{e}");
}
