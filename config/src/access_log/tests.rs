use super::*;
use crate::hcm::HttpConnectionManager;
use crate::listener::NetworkFilterKind;
use crate::route::formatter::{Command, FormatPiece};

fn bootstrap(access_log: &str) -> String {
    format!(
        r#"static_resources:
  listeners:
  - name: l
    address: {{socket_address: {{address: 127.0.0.1, port_value: 8080}}}}
    filter_chains:
    - filters:
      - name: hcm
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress
          route_config: {{virtual_hosts: [{{name: vh, domains: ['*'], routes: [{{match: {{prefix: /}}, route: {{cluster: web}}}}]}}]}}
          http_filters: [{{name: r, typed_config: {{'@type': type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}}}]
          access_log:
{access_log}
  clusters:
  - name: web
    load_assignment: {{cluster_name: web, endpoints: [{{lb_endpoints: [{{endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: 9000}}}}}}}}]}}]}}
"#
    )
}

fn logs(access_log: &str) -> Vec<AccessLog> {
    let loaded = crate::load_str(&bootstrap(access_log)).unwrap_or_else(|e| panic!("{e}"));
    match &loaded.bootstrap.listeners[0].filter_chains[0].filters[0].kind {
        NetworkFilterKind::HttpConnectionManager(h) => {
            let h: &HttpConnectionManager = h;
            h.access_log.clone()
        }
        other => panic!("{other:?}"),
    }
}

fn load_err(access_log: &str) -> String {
    crate::load_str(&bootstrap(access_log)).err().map(|e| e.to_string()).expect("should fail")
}

const FILE: &str = "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog";

#[test]
fn file_logger_with_the_default_format() {
    let l = logs(&format!("          - name: f\n            typed_config: {{'@type': {FILE}, path: /tmp/a.log}}\n"));
    assert_eq!(l.len(), 1);
    assert_eq!(l[0].sink, AccessLogSink::File("/tmp/a.log".into()));
    assert_eq!(l[0].format_source, None);
    let LogFormat::Text(f) = &l[0].format else { panic!() };
    assert_eq!(f.raw, DEFAULT_FORMAT);
    assert!(f.pieces.iter().any(|p| matches!(p, FormatPiece::Command { command: Command::ResponseFlags, .. })));
    assert!(l[0].filter.is_none());
}

#[test]
fn stdout_and_stderr_with_text_and_json_formats() {
    let l = logs(
        "          - typed_config:\n              '@type': type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog\n              log_format: {text_format_source: {inline_string: \"%RESPONSE_CODE% %UPSTREAM_HOST%\\n\"}}\n          - typed_config:\n              '@type': type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StderrAccessLog\n              log_format:\n                json_format: {status: '%RESPONSE_CODE%', nested: {flags: '%RESPONSE_FLAGS%'}}\n                omit_empty_values: true\n",
    );
    assert_eq!(l[0].sink, AccessLogSink::Stdout);
    assert_eq!(l[0].format_source, Some(FormatSource::Text("%RESPONSE_CODE% %UPSTREAM_HOST%\n".into())));
    assert_eq!(l[1].sink, AccessLogSink::Stderr);
    assert!(l[1].omit_empty_values);
    let LogFormat::Json(fields) = &l[1].format else { panic!() };
    assert_eq!(fields[0].0, "status");
    assert!(matches!(&fields[1].1, JsonValue::Object(o) if o[0].0 == "flags"));
}

#[test]
fn filters() {
    let l = logs(&format!(
        "          - filter:\n              or_filter:\n                filters:\n                - status_code_filter: {{comparison: {{op: GE, value: {{default_value: 500, runtime_key: k}}}}}}\n                - duration_filter: {{comparison: {{op: GE, value: {{default_value: 1000, runtime_key: k}}}}}}\n                - response_flag_filter: {{flags: [UF, URX]}}\n                - header_filter: {{header: {{name: x-debug, present_match: true}}}}\n                - not_health_check_filter: {{}}\n            typed_config: {{'@type': {FILE}, path: /dev/null}}\n"
    ));
    let Some(AccessLogFilter::Or(v)) = &l[0].filter else { panic!("{:?}", l[0].filter) };
    assert_eq!(v.len(), 5);
    let AccessLogFilter::StatusCode(c) = &v[0] else { panic!() };
    assert!(c.compare(503) && !c.compare(404));
    assert_eq!(c.runtime_key, "k");
    assert!(matches!(&v[2], AccessLogFilter::ResponseFlag(f) if f == &["UF", "URX"]));
    assert!(matches!(&v[4], AccessLogFilter::NotHealthCheck));
}

#[test]
fn errors_name_the_field() {
    let e = load_err(&format!(
        "          - typed_config: {{'@type': {FILE}, path: /dev/null, log_format: {{text_format: '%NOPE%'}}}}\n"
    ));
    assert!(e.contains("access_log[0].typed_config.log_format.text_format"), "{e}");
    assert!(e.contains("Not supported field in StreamInfo: NOPE"), "{e}");
    let e = load_err("          - typed_config: {'@type': type.googleapis.com/envoy.extensions.access_loggers.grpc.v3.HttpGrpcAccessLogConfig}\n");
    assert!(e.contains("unsupported access logger"), "{e}");
    let e = load_err(&format!("          - typed_config: {{'@type': {FILE}}}\n"));
    assert!(e.contains("access_log[0].typed_config.path"), "{e}");
    let e = load_err(&format!(
        "          - filter: {{response_flag_filter: {{flags: [XX]}}}}\n            typed_config: {{'@type': {FILE}, path: /dev/null}}\n"
    ));
    assert!(e.contains("unknown response flag `XX`"), "{e}");
    let e = load_err(&format!(
        "          - filter: {{runtime_filter: {{runtime_key: a}}}}\n            typed_config: {{'@type': {FILE}, path: /dev/null}}\n"
    ));
    assert!(e.contains("unsupported access log filter `runtime_filter`"), "{e}");
    let e = load_err(&format!(
        "          - typed_config: {{'@type': {FILE}, path: /dev/null, format: 'a', log_format: {{text_format: b}}}}\n"
    ));
    assert!(e.contains("set only one of"), "{e}");
}
