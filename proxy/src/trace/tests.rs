use super::*;
use crate::http::request_id::uuid4;
use crate::upstream::cluster_manager::static_hosts;

const ZIPKIN: &str = "{name: envoy.tracers.zipkin, typed_config: {'@type': type.googleapis.com/envoy.config.trace.v3.ZipkinConfig, collector_cluster: c, collector_endpoint: /api/v2/spans";
const OTEL: &str = "{name: envoy.tracers.opentelemetry, typed_config: {'@type': type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig, http_service: {http_uri: {uri: 'http://c/v1/traces', cluster: c, timeout: 1s}}}}";

/// A tracer from `tracing` YAML (flow style) and the route's extra fields.
fn tracer_and_route(tracing: &str, route_extra: &str) -> (Tracer, Route) {
    let text = format!(
        r#"static_resources:
  listeners:
  - address: {{socket_address: {{address: 127.0.0.1, port_value: 8080}}}}
    filter_chains:
    - filters:
      - name: hcm
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: s
          tracing: {tracing}
          route_config: {{virtual_hosts: [{{name: v, domains: ['*'], routes: [{{match: {{prefix: /}}, route: {{cluster: c}}{route_extra}}}]}}]}}
          http_filters: [{{name: r, typed_config: {{'@type': type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}}}]
  clusters:
  - name: c
    load_assignment: {{cluster_name: c, endpoints: [{{lb_endpoints: [{{endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: 9}}}}}}}}]}}]}}
"#
    );
    let loaded = sluice_config::load_str(&text).unwrap_or_else(|e| panic!("{e}"));
    let b = loaded.bootstrap;
    let sluice_config::listener::NetworkFilterKind::HttpConnectionManager(h) =
        &b.listeners[0].filter_chains[0].filters[0].kind
    else {
        panic!("hcm")
    };
    let cm = std::sync::Arc::new(ClusterManager::new(b.clusters.clone(), static_hosts));
    let t = Tracer::new(h.tracing.as_ref().expect("tracing"), h.request_id, &cm).expect("tracer");
    (t, h.route_config.virtual_hosts[0].routes[0].clone())
}

fn request(rng: &mut Rng, extra: &[(&str, &str)]) -> RequestHead {
    let mut head = RequestHead::default();
    head.method.push_str("GET");
    head.scheme.push_str("http");
    head.authority.push_str("example.com");
    head.path.push_str("/a?b");
    head.version = Some(Version::Http11);
    head.headers.set(request_id::REQUEST_ID, &uuid4(rng));
    for (n, v) in extra {
        head.headers.set(n.as_bytes(), v.as_bytes());
    }
    head
}

#[test]
fn sampling_follows_envoy_and_packs_the_reason() {
    let (t, _) = tracer_and_route("{random_sampling: {value: 0}}", "");
    let rt = Snapshot::empty();
    let mut rng = Rng::new(3);
    let stats = HttpStats::default();
    let mut head = request(&mut rng, &[]);
    assert_eq!(t.decide(&mut head.headers, None, &mut rng, &rt), TraceReason::NotTraceable);
    let mut head = request(&mut rng, &[("x-envoy-force-trace", "1")]);
    assert_eq!(t.decide(&mut head.headers, None, &mut rng, &rt), TraceReason::ServiceForced);
    assert_eq!(head.headers.get(request_id::REQUEST_ID).map(|v| v[14]), Some(b'a'));
    let mut head = request(&mut rng, &[("x-client-trace-id", "abc")]);
    t.start(&mut head, None, &mut rng, &rt, &stats);
    assert_eq!(request_id::trace_reason(&head.headers), TraceReason::ClientForced);
    assert_eq!(stats.tracing_client_enabled.get(), 1);
    // An id already marked keeps its decision.
    assert_eq!(t.decide(&mut head.headers, None, &mut rng, &rt), TraceReason::ClientForced);
    // overall_sampling 0 caps every reason.
    let (t, _) = tracer_and_route("{overall_sampling: {value: 0}}", "");
    let mut head = request(&mut rng, &[("x-envoy-force-trace", "1")]);
    assert_eq!(t.decide(&mut head.headers, None, &mut rng, &rt), TraceReason::NotTraceable);
    assert_eq!(head.headers.get(request_id::REQUEST_ID).map(|v| v[14]), Some(b'4'));
    // A route's percentages replace the connection manager's.
    let (t, route) =
        tracer_and_route("{random_sampling: {value: 0}}", ", tracing: {random_sampling: {numerator: 100}}");
    let mut head = request(&mut rng, &[]);
    assert_eq!(t.decide(&mut head.headers, route.tracing.as_ref(), &mut rng, &rt), TraceReason::Sampling);
    // use_request_id_for_trace_sampling: false counts every request as sampled.
    let (t, _) = tracer_and_route(
        "{random_sampling: {value: 0}}\n          request_id_extension: {typed_config: {'@type': type.googleapis.com/envoy.extensions.request_id.uuid.v3.UuidRequestIdConfig, use_request_id_for_trace_sampling: false}}",
        "",
    );
    let mut head = request(&mut rng, &[]);
    assert_eq!(t.decide(&mut head.headers, None, &mut rng, &rt), TraceReason::Sampling);
    assert_eq!(request_id::trace_reason(&head.headers), TraceReason::NotTraceable, "the id is left alone");
}

#[test]
fn zipkin_child_root_and_shared_spans() {
    let rt = Snapshot::empty();
    let stats = HttpStats::default();
    let mut rng = Rng::new(5);
    let (t, route) = tracer_and_route(
        &format!("{{provider: {ZIPKIN}, shared_span_context: false}}}}}}"),
        ", decorator: {operation: op}",
    );
    let mut head = request(
        &mut rng,
        &[("x-b3-traceid", "463ac35c9f6413ad"), ("x-b3-spanid", "a2fb4a1d1a96d312"), ("x-b3-sampled", "1")],
    );
    let trace = t.start(&mut head, Some(&route), &mut rng, &rt, &stats);
    let span = trace.span.as_ref().expect("span");
    assert_eq!(span.context.trace_id, 0x463ac35c9f6413ad);
    assert_eq!(span.context.parent_id, 0xa2fb4a1d1a96d312);
    assert_ne!(span.context.span_id, 0xa2fb4a1d1a96d312);
    assert_eq!(span.name, "op");
    assert_eq!(trace.propagate_operation.as_deref(), Some("op"));
    assert_eq!(head.headers.get_str(context::X_B3_TRACE_ID), Some("463ac35c9f6413ad"));
    assert_eq!(head.headers.get_str(context::X_B3_PARENT_SPAN_ID), Some("a2fb4a1d1a96d312"));
    assert_eq!(head.headers.get_str(context::X_B3_SPAN_ID), Some(format!("{:016x}", span.context.span_id).as_str()));

    // Not sampled upstream: propagated as such.
    let mut head = request(&mut rng, &[("x-b3-traceid", "1"), ("x-b3-spanid", "2"), ("x-b3-sampled", "0")]);
    let trace = t.start(&mut head, None, &mut rng, &rt, &stats);
    assert!(!trace.span.unwrap().context.sampled);
    assert_eq!(head.headers.get_str(context::X_B3_SAMPLED), Some("0"));

    // Envoy's default shared span context: the server span is the client's.
    let (t, _) = tracer_and_route(&format!("{{provider: {ZIPKIN}}}}}}}"), "");
    let mut head = request(&mut rng, &[("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90")]);
    let trace = t.start(&mut head, None, &mut rng, &rt, &stats);
    let span = trace.span.unwrap();
    assert!(span.shared);
    assert_eq!((span.context.span_id, span.context.parent_id), (0xe457b5a2e4d86bd1, 0x05e3ac9a4f6e3b90));
    assert_eq!(span.name, "example.com");

    // A root span when nothing came in; sampled by the decision.
    let mut head = request(&mut rng, &[]);
    let trace = t.start(&mut head, None, &mut rng, &rt, &stats);
    let span = trace.span.unwrap();
    assert!(span.context.sampled);
    assert_eq!(span.context.trace_id, span.context.span_id as u128);
    // Malformed context: no span, nothing injected.
    let mut head = request(&mut rng, &[("x-b3-traceid", "zz"), ("x-b3-spanid", "1")]);
    assert!(t.start(&mut head, None, &mut rng, &rt, &stats).span.is_none());
    assert_eq!(head.headers.get(context::X_B3_SAMPLED), None);
}

#[test]
fn opentelemetry_spans_and_tags() {
    let rt = Snapshot::empty();
    let stats = HttpStats::default();
    let mut rng = Rng::new(9);
    let (t, _) = tracer_and_route(&format!("{{provider: {OTEL}, custom_tags: [{{tag: lit, literal: {{value: v}}}}, {{tag: hdr, request_header: {{name: x-a, default_value: none}}}}], max_path_tag_length: 20}}"), "");
    let tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let mut head = request(&mut rng, &[("traceparent", tp), ("tracestate", "k=v")]);
    let trace = t.start(&mut head, None, &mut rng, &rt, &stats);
    let span = trace.span.clone().unwrap();
    assert_eq!(span.context.trace_id, 0x0af7651916cd43dd8448eb211c80319c);
    assert_eq!(span.context.parent_id, 0xb7ad6b7169203331);
    assert_eq!(span.trace_state.as_deref(), Some("k=v"));
    let sent = head.headers.get_str(context::TRACEPARENT).unwrap().to_string();
    assert!(sent.starts_with("00-0af7651916cd43dd8448eb211c80319c-") && sent.ends_with("-01"), "{sent}");
    assert_eq!(&sent[36..52], format!("{:016x}", span.context.span_id));
    let facts = SpanFacts {
        head: &head,
        route: None,
        status: Some(503),
        flags: ResponseFlags::UPSTREAM_CONNECTION_FAILURE,
        upstream_cluster: Some("c"),
        upstream_address: Some("127.0.0.1:9".parse().unwrap()),
        peer: "10.0.0.2:5555".parse().unwrap(),
        request_size: 3,
        response_size: 4,
        start_time: SystemTime::UNIX_EPOCH + Duration::from_secs(1),
        start: std::time::Instant::now(),
        duration: Duration::from_millis(2),
        end: std::time::Instant::now(),
        dynamic_metadata: None,
        cluster: None,
    };
    let f = t.finished_span(span.clone(), &facts);
    assert_eq!(f.tag("http.url"), Some("http://example.com/a"));
    assert_eq!(f.tag("http.method"), Some("GET"));
    assert_eq!(f.tag("http.protocol"), Some("HTTP/1.1"));
    assert_eq!(f.tag("http.status_code"), Some("503"));
    assert_eq!(f.tag("error"), Some("true"));
    assert_eq!(f.tag("response_flags"), Some("UF"));
    assert_eq!(f.tag("upstream_cluster"), Some("c"));
    assert_eq!(f.tag("upstream_address"), Some("127.0.0.1:9"));
    assert_eq!(f.tag("peer.address"), Some("10.0.0.2"));
    assert_eq!(f.tag("component"), Some("proxy"));
    assert_eq!(f.tag("request_size"), Some("3"));
    assert_eq!(f.tag("response_size"), Some("4"));
    assert_eq!(f.tag("lit"), Some("v"));
    assert_eq!(f.tag("hdr"), Some("none"));
    assert_eq!(f.tag("guid:x-request-id"), head.headers.get_str(request_id::REQUEST_ID));
    assert_eq!((f.start_us, f.duration_us), (1_000_000, 2_000));
    let ok = t.finished_span(span.clone(), &SpanFacts { status: Some(200), ..facts });
    assert_eq!(ok.tag("error"), None);
    let reset = t.finished_span(span.clone(), &SpanFacts { status: None, ..facts });
    assert_eq!((reset.tag("http.status_code"), reset.tag("error")), (Some("0"), Some("true")));
}

#[test]
fn response_headers() {
    let mut req = HeaderMap::new();
    req.set(request_id::REQUEST_ID, b"id");
    let trace = StreamTrace { propagate_operation: Some("op".into()), ..StreamTrace::default() };
    let mut resp = ResponseHead::default();
    mutate_response_headers(false, &req, Some(&trace), &mut resp);
    assert_eq!(resp.headers.get(request_id::REQUEST_ID), None);
    assert_eq!(resp.headers.get_str(b"x-envoy-decorator-operation"), Some("op"));
    mutate_response_headers(true, &req, None, &mut resp);
    assert_eq!(resp.headers.get_str(request_id::REQUEST_ID), Some("id"));
    let mut resp = ResponseHead::default();
    req.set(b"x-envoy-force-trace", b"true");
    mutate_response_headers(false, &req, None, &mut resp);
    assert_eq!(resp.headers.get_str(request_id::REQUEST_ID), Some("id"));
}

/// The size and address tags read as `Display` writes them (they skip its machinery).
#[test]
fn number_and_address_tags_read_as_display() {
    for v in [0u64, 1, 9, 10, 4096, 1_000_000, u64::MAX] {
        assert_eq!(decimal_text(v), v.to_string());
    }
    for a in ["0.0.0.0:0", "10.0.0.2:5555", "255.255.255.255:65535", "[::1]:80", "[fe80::1%2]:8"] {
        let addr: SocketAddr = a.parse().unwrap();
        assert_eq!(socket_text(addr), addr.to_string());
        assert_eq!(ip_text(addr.ip()), addr.ip().to_string());
    }
}
