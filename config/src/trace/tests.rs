use std::time::Duration;

use super::*;
use crate::core::Denominator;
use crate::listener::NetworkFilterKind;

const ROUTER: &str = "{name: envoy.filters.http.router, typed_config: {'@type': type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}";
const ZIPKIN: &str = "{name: envoy.tracers.zipkin, typed_config: {'@type': type.googleapis.com/envoy.config.trace.v3.ZipkinConfig, collector_cluster: zipkin, collector_endpoint: /api/v2/spans";
const OTEL: &str = "{name: envoy.tracers.opentelemetry, typed_config: {'@type': type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig";

fn config(hcm_extra: &str, route_extra: &str) -> String {
    format!(
        r#"static_resources:
  listeners:
  - name: l
    address: {{socket_address: {{address: 127.0.0.1, port_value: 8080}}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress
          route_config: {{virtual_hosts: [{{name: vh, domains: ['*'], routes: [{{match: {{prefix: /}}, route: {{cluster: web}}{route_extra}}}]}}]}}
          http_filters: [{ROUTER}]
{hcm_extra}
  clusters:
  - name: web
    load_assignment: {{cluster_name: web, endpoints: [{{lb_endpoints: [{{endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: 9000}}}}}}}}]}}]}}
  - name: zipkin
    load_assignment: {{cluster_name: zipkin, endpoints: [{{lb_endpoints: [{{endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: 9411}}}}}}}}]}}]}}
"#
    )
}

fn hcm(text: &str) -> crate::hcm::HttpConnectionManager {
    let loaded = crate::load_str(text).unwrap_or_else(|e| panic!("{e}"));
    match &loaded.bootstrap.listeners[0].filter_chains[0].filters[0].kind {
        NetworkFilterKind::HttpConnectionManager(h) => (**h).clone(),
        other => panic!("{other:?}"),
    }
}

fn err(text: &str) -> String {
    crate::load_str(text).err().map(|e| e.to_string()).unwrap_or_else(|| panic!("should fail:\n{text}"))
}

#[test]
fn sampling_is_compiled_as_envoy_does() {
    let h = hcm(&config("          tracing: {}\n", ""));
    let t = h.tracing.expect("tracing");
    assert_eq!(t.client_sampling, FractionalPercent { numerator: 100, denominator: Denominator::Hundred });
    assert_eq!(t.random_sampling, FractionalPercent { numerator: 10_000, denominator: Denominator::TenThousand });
    assert_eq!(t.overall_sampling, FractionalPercent { numerator: 100, denominator: Denominator::Hundred });
    assert_eq!(t.max_path_tag_length, 256);
    assert_eq!(t.provider, None);
    let h = hcm(&config(
        "          tracing: {random_sampling: {value: 1.0}, client_sampling: {value: 50}, overall_sampling: {value: 0.5}, max_path_tag_length: 10}\n",
        "",
    ));
    let t = h.tracing.expect("tracing");
    assert_eq!(t.random_sampling.numerator, 100);
    assert_eq!(t.client_sampling.numerator, 50);
    assert_eq!(t.overall_sampling.numerator, 0);
    assert_eq!(t.max_path_tag_length, 10);
    assert!(hcm(&config("", "")).tracing.is_none());
}

#[test]
fn providers_and_their_options() {
    let h = hcm(&config(
        &format!("          tracing: {{provider: {ZIPKIN}, shared_span_context: false, trace_id_128bit: true}}}}}}\n"),
        "",
    ));
    let Some(TracingProvider::Zipkin(z)) = h.tracing.and_then(|t| t.provider) else { panic!("zipkin") };
    assert_eq!(z.collector_cluster, "zipkin");
    assert_eq!(z.collector_endpoint, "/api/v2/spans");
    assert_eq!(z.collector_hostname, "zipkin");
    assert!(!z.shared_span_context && z.trace_id_128bit);
    let h = hcm(&config(&format!("          tracing: {{provider: {ZIPKIN}}}}}}}\n"), ""));
    let Some(TracingProvider::Zipkin(z)) = h.tracing.and_then(|t| t.provider) else { panic!("zipkin") };
    assert!(z.shared_span_context && !z.trace_id_128bit && !z.proto);
    let h = hcm(&config(
        &format!("          tracing: {{provider: {ZIPKIN}, collector_endpoint_version: HTTP_PROTO}}}}}}\n"),
        "",
    ));
    let Some(TracingProvider::Zipkin(z)) = h.tracing.and_then(|t| t.provider) else { panic!("zipkin") };
    assert!(z.proto);

    let otel = format!(
        "          tracing: {{provider: {OTEL}, service_name: front, http_service: {{http_uri: {{uri: 'http://collector:4318/v1/traces', cluster: zipkin, timeout: 2s}}, request_headers_to_append: [{{header: {{key: Authorization, value: k}}}}]}}}}}}}}\n"
    );
    let h = hcm(&config(&otel, ""));
    let Some(TracingProvider::OpenTelemetry(o)) = h.tracing.and_then(|t| t.provider) else { panic!("otel") };
    assert_eq!(o.service_name, "front");
    let OtlpExporter::Http(hs) = &o.exporter else { panic!("http_service") };
    assert_eq!(hs.host, "collector:4318");
    assert_eq!(hs.path, "/v1/traces");
    assert_eq!(hs.cluster, "zipkin");
    assert_eq!(hs.timeout, Duration::from_secs(2));
    assert_eq!(hs.request_headers_to_append, vec![("authorization".to_string(), "k".to_string())]);

    let grpc = format!(
        "          tracing: {{provider: {OTEL}, grpc_service: {{envoy_grpc: {{cluster_name: zipkin}}, timeout: 3s}}}}}}}}\n"
    );
    let h = hcm(&config(&grpc, ""));
    let Some(TracingProvider::OpenTelemetry(o)) = h.tracing.and_then(|t| t.provider) else { panic!("otel") };
    assert_eq!(
        o.exporter,
        OtlpExporter::Grpc(OtlpGrpcService { cluster_name: "zipkin".into(), timeout: Some(Duration::from_secs(3)) })
    );
}

#[test]
fn what_sluice_does_not_do_is_refused_with_its_path() {
    let e = err(&config(
        &format!("          tracing: {{provider: {OTEL}, grpc_service: {{google_grpc: {{target_uri: x}}}}}}}}}}\n"),
        "",
    ));
    assert!(e.contains("grpc_service.google_grpc"), "{e}");
    let e = err(&config(&format!("          tracing: {{provider: {OTEL}}}}}}}\n"), ""));
    assert!(e.contains("grpc_service") && e.contains("http_service"), "{e}");
    let e =
        err(&config(&format!("          tracing: {{provider: {ZIPKIN}, collector_endpoint_version: GRPC}}}}}}\n"), ""));
    assert!(e.contains("collector_endpoint_version"), "{e}");
    assert!(hcm(&config("          tracing: {verbose: true}\n", "")).tracing.as_ref().unwrap().verbose);
    let h = hcm(&config(
        &format!(
            "          tracing: {{spawn_upstream_span: true, provider: {ZIPKIN}, split_spans_for_request: true}}}}}}\n"
        ),
        "",
    ));
    let t = h.tracing.as_ref().unwrap();
    assert!(t.spawn_upstream_span);
    assert!(matches!(&t.provider, Some(TracingProvider::Zipkin(z)) if z.split_spans_for_request));
    let e = err(&config(
        "          tracing: {custom_tags: [{tag: a, metadata: {kind: {route: {}}, metadata_key: {key: k}}}]}\n",
        "",
    ));
    assert!(e.contains("custom_tags[0].metadata.metadata_key.path"), "{e}");
    let e = err(&config(
        "          tracing: {custom_tags: [{tag: a, metadata: {kind: {}, metadata_key: {key: k, path: [{key: x}]}}}]}\n",
        "",
    ));
    assert!(e.contains("custom_tags[0].metadata.kind"), "{e}");
    let e = err(&config("          tracing: {custom_tags: [{tag: a, metadata: {kind: {host: {}}}}]}\n", ""));
    assert!(e.contains("custom_tags[0].metadata.metadata_key"), "{e}");
    let e = err(&config(
        "          tracing: {provider: {name: envoy.tracers.zipkin, typed_config: {'@type': type.googleapis.com/envoy.config.trace.v3.ZipkinConfig, collector_cluster: nope, collector_endpoint: /x}}}\n",
        "",
    ));
    assert!(e.contains("unknown collector cluster `nope`"), "{e}");
    let e =
        err(&config("          request_id_extension: {typed_config: {'@type': type.googleapis.com/x.Other}}\n", ""));
    assert!(e.contains("request-id extension `x.Other`"), "{e}");
}

#[test]
fn custom_tags_request_id_and_route_overrides() {
    let h = hcm(&config(
        "          tracing: {custom_tags: [{tag: t1, literal: {value: v}}, {tag: t2, environment: {name: HOME, default_value: d}}, {tag: t3, request_header: {name: X-A}}]}\n          always_set_request_id_in_response: true\n          request_id_extension: {typed_config: {'@type': type.googleapis.com/envoy.extensions.request_id.uuid.v3.UuidRequestIdConfig, pack_trace_reason: false, use_request_id_for_trace_sampling: false}}\n",
        ", decorator: {operation: checkout, propagate: false}, tracing: {random_sampling: {numerator: 5}, custom_tags: [{tag: r, literal: {value: x}}]}",
    ));
    let t = h.tracing.as_ref().expect("tracing");
    assert_eq!(t.custom_tags[0].value, CustomTagValue::Literal("v".into()));
    assert_eq!(t.custom_tags[1].value, CustomTagValue::Environment { name: "HOME".into(), default_value: "d".into() });
    assert_eq!(
        t.custom_tags[2].value,
        CustomTagValue::RequestHeader { name: "x-a".into(), default_value: String::new() }
    );
    assert!(h.always_set_request_id_in_response);
    assert_eq!(
        h.request_id,
        UuidRequestIdConfig { pack_trace_reason: false, use_request_id_for_trace_sampling: false }
    );
    let route = &h.route_config.virtual_hosts[0].routes[0];
    assert_eq!(route.decorator, Some(Decorator { operation: "checkout".into(), propagate: false }));
    let rt = route.tracing.as_ref().expect("route tracing");
    assert_eq!(rt.random_sampling, FractionalPercent { numerator: 5, denominator: Denominator::Hundred });
    assert_eq!(rt.client_sampling, FractionalPercent::ALWAYS);
    assert_eq!(rt.custom_tags.len(), 1);
    let d = hcm(&config("", ""));
    assert!(!d.always_set_request_id_in_response);
    assert_eq!(d.request_id, UuidRequestIdConfig::default());
}

#[test]
fn metadata_custom_tags_and_the_metadata_they_read() {
    let h = hcm(&config(
        "          tracing: {custom_tags: [{tag: m, metadata: {kind: {cluster: {}}, metadata_key: {key: ns, path: [{key: a}, {key: b}]}, default_value: d}}]}\n",
        ", metadata: {filter_metadata: {ns: {team: payments, n: 3}}}",
    ));
    let t = h.tracing.as_ref().expect("tracing");
    assert_eq!(
        t.custom_tags[0].value,
        CustomTagValue::Metadata {
            kind: MetadataKind::Cluster,
            filter: "ns".into(),
            path: vec!["a".into(), "b".into()],
            default_value: "d".into()
        }
    );
    let route = &h.route_config.virtual_hosts[0].routes[0];
    assert_eq!(route.metadata.value("ns", &["team".into()]), Some(&crate::metadata::Value::String("payments".into())));
    let text =
        config("", "").replace("  - name: web\n", "  - name: web\n    metadata: {filter_metadata: {ns: {c: 1}}}\n");
    let text = text.replacen(
        "{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 9000}}}}",
        "{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 9000}}}, metadata: {filter_metadata: {ns: {h: x}}, typed_filter_metadata: {}}}",
        1,
    );
    let loaded = crate::load_str(&text).unwrap_or_else(|e| panic!("{e}"));
    let web = &loaded.bootstrap.clusters[0];
    assert_eq!(web.metadata.value("ns", &["c".into()]), Some(&crate::metadata::Value::Number(1.0)));
    let ep = &web.load_assignment.endpoints[0].lb_endpoints[0];
    assert_eq!(ep.metadata.value("ns", &["h".into()]), Some(&crate::metadata::Value::String("x".into())));
    assert!(loaded.warnings.iter().any(|w| w.path.ends_with("typed_filter_metadata")), "{:?}", loaded.warnings);
}

#[test]
fn an_outbound_listener_with_tracing_is_refused() {
    let outbound = |text: String| text.replace("  - name: l\n", "  - name: l\n    traffic_direction: OUTBOUND\n");
    let e = err(&outbound(config("          tracing: {}\n", "")));
    assert!(e.contains("traffic_direction") && e.contains("egress spans"), "{e}");
    // Without tracing it stays a label.
    let loaded = crate::load_str(&outbound(config("", ""))).unwrap_or_else(|e| panic!("{e}"));
    assert!(loaded.warnings.iter().any(|w| w.path.ends_with("traffic_direction")));
    let inbound =
        config("          tracing: {}\n", "").replace("  - name: l\n", "  - name: l\n    traffic_direction: INBOUND\n");
    assert!(crate::load_str(&inbound).is_ok());
}

#[test]
fn the_node_identity_is_read_for_spans() {
    let text =
        format!("node: {{id: n1, cluster: front, locality: {{zone: z1}}, metadata: {{a: b}}}}\n{}", config("", ""));
    let loaded = crate::load_str(&text).unwrap_or_else(|e| panic!("{e}"));
    let n = &loaded.bootstrap.node;
    assert_eq!((n.id.as_str(), n.cluster.as_str(), n.zone.as_str()), ("n1", "front", "z1"));
    assert_eq!(crate::load_str(&config("", "")).unwrap().bootstrap.node, crate::bootstrap::NodeIdentity::default());
}
