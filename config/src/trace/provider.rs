//! `HttpConnectionManager.Tracing.provider`: the tracer, selected by
//! `typed_config."@type"`. sluice has Envoy's Zipkin tracer (`ZipkinConfig`) and its
//! OpenTelemetry tracer (`OpenTelemetryConfig`, exporting over OTLP/HTTP or OTLP/gRPC); any other
//! provider is rejected naming it.

use std::time::Duration;

use crate::core::HeaderValueOption;
use crate::decode::{typed_config, Decode, Decoder, Fields};
use crate::error::ErrorKind;
use crate::node::Node;
use crate::proto_enum;

pub const ZIPKIN_NAME: &str = "envoy.tracers.zipkin";
pub const OPENTELEMETRY_NAME: &str = "envoy.tracers.opentelemetry";
const ZIPKIN_TYPE: &str = "envoy.config.trace.v3.ZipkinConfig";
const OPENTELEMETRY_TYPE: &str = "envoy.config.trace.v3.OpenTelemetryConfig";

/// `config.trace.v3.Tracing.Http`.
#[derive(Debug, Clone, PartialEq)]
pub enum TracingProvider {
    Zipkin(ZipkinConfig),
    OpenTelemetry(OpenTelemetryConfig),
}

impl TracingProvider {
    /// The collector's cluster (checked against the clusters at load).
    pub fn collector_cluster(&self) -> &str {
        match self {
            TracingProvider::Zipkin(z) => &z.collector_cluster,
            TracingProvider::OpenTelemetry(o) => match &o.exporter {
                OtlpExporter::Http(h) => &h.cluster,
                OtlpExporter::Grpc(g) => &g.cluster_name,
            },
        }
    }
}

impl Decode for TracingProvider {
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::of(d, node, path)?;
        let line = f.line();
        let name: Option<String> = f.req(d, "name");
        let tc_path = f.field_path("typed_config");
        let tc = f.take("typed_config");
        f.finish(d);
        let name = name?;
        let Some(tc) = tc else {
            d.error(ErrorKind::Missing, &tc_path, line, format!("tracing provider `{name}` needs a typed_config"));
            return None;
        };
        let t = typed_config(d, tc, &tc_path)?;
        match t.type_name.as_str() {
            ZIPKIN_TYPE => ZipkinConfig::decode_fields(d, t.fields, &tc_path).map(TracingProvider::Zipkin),
            OPENTELEMETRY_TYPE => {
                OpenTelemetryConfig::decode_fields(d, t.fields, &tc_path).map(TracingProvider::OpenTelemetry)
            }
            other => {
                d.error(
                    ErrorKind::Unsupported,
                    &format!("{tc_path}.@type"),
                    tc.line,
                    format!(
                        "tracing provider `{name}` (`{other}`) is not supported; sluice has {ZIPKIN_NAME} \
                         ({ZIPKIN_TYPE}) and {OPENTELEMETRY_NAME} ({OPENTELEMETRY_TYPE})"
                    ),
                );
                None
            }
        }
    }
}

proto_enum! {
    /// `ZipkinConfig.CollectorEndpointVersion`.
    pub enum CollectorEndpointVersion {
        /// The proto's zero value; Envoy sends JSON v2 for it.
        Deprecated = ("DEPRECATED_AND_UNAVAILABLE_DO_NOT_USE", 0),
        HttpJson = ("HTTP_JSON", 1),
        HttpProto = ("HTTP_PROTO", 2),
        Grpc = ("GRPC", 3),
    }
}

/// `config.trace.v3.ZipkinConfig`: B3 propagation, JSON v2 spans POSTed to
/// `collector_endpoint` on `collector_cluster`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZipkinConfig {
    pub collector_cluster: String,
    pub collector_endpoint: String,
    pub trace_id_128bit: bool,
    /// Ingress spans reuse the incoming span id (default true).
    pub shared_span_context: bool,
    /// The `Host` of the POST (default: the cluster's name).
    pub collector_hostname: String,
    /// `collector_endpoint_version: HTTP_PROTO` (else JSON v2).
    pub proto: bool,
    /// `split_spans_for_request` (deprecated by `spawn_upstream_span`).
    pub split_spans_for_request: bool,
}

impl ZipkinConfig {
    fn decode_fields(d: &mut Decoder, mut f: Fields<'_>, path: &str) -> Option<ZipkinConfig> {
        let line = f.line();
        let collector_cluster: Option<String> = f.req(d, "collector_cluster");
        let collector_endpoint: Option<String> = f.req(d, "collector_endpoint");
        let trace_id_128bit = f.or(d, "trace_id_128bit", false);
        let shared_span_context = f.or(d, "shared_span_context", true);
        let version = f.or(d, "collector_endpoint_version", CollectorEndpointVersion::HttpJson);
        let collector_hostname: String = f.or(d, "collector_hostname", String::new());
        // Envoy: the downstream span is SERVER and an upstream span CLIENT whatever the
        // traffic direction. sluice's spans already are: every listener is ingress (its
        // span SERVER), and upstream spans come only from `spawn_upstream_span`, which
        // makes them CLIENT (the router's `start_child_span`, the case this field
        // changes, is refused).
        let split_spans_for_request = f.or(d, "split_spans_for_request", false);
        f.empty_only(d, "trace_context_option", "sluice propagates B3 only (USE_B3); remove it");
        f.unsupported_because(
            d,
            "collector_service",
            "`collector_service` is not supported; use collector_cluster and collector_endpoint",
        );
        f.finish(d);
        if version == CollectorEndpointVersion::Grpc {
            d.error(
                ErrorKind::Unsupported,
                &format!("{path}.collector_endpoint_version"),
                line,
                "sluice sends Zipkin spans over HTTP (HTTP_JSON or HTTP_PROTO), not gRPC",
            );
        }
        let proto = version == CollectorEndpointVersion::HttpProto;
        let collector_cluster = collector_cluster?;
        let collector_endpoint = collector_endpoint?;
        if collector_cluster.is_empty() || collector_endpoint.is_empty() {
            d.error(ErrorKind::Invalid, path, line, "collector_cluster and collector_endpoint must not be empty");
        }
        let collector_hostname =
            if collector_hostname.is_empty() { collector_cluster.clone() } else { collector_hostname };
        Some(ZipkinConfig {
            collector_cluster,
            collector_endpoint,
            trace_id_128bit,
            shared_span_context,
            collector_hostname,
            proto,
            split_spans_for_request,
        })
    }
}

/// Where an OpenTelemetry tracer's spans go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OtlpExporter {
    /// `http_service`: OTLP/HTTP protobuf.
    Http(HttpService),
    /// `grpc_service`: OTLP/gRPC (`TraceService/Export`) on an HTTP/2 cluster.
    Grpc(OtlpGrpcService),
}

/// `config.core.v3.GrpcService` with `envoy_grpc`, for OTLP/gRPC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtlpGrpcService {
    pub cluster_name: String,
    /// `timeout` of each export call (None: sluice's bound, 5 s).
    pub timeout: Option<Duration>,
}

impl Decode for OtlpGrpcService {
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::of(d, node, path)?;
        let line = f.line();
        let envoy = f.take("envoy_grpc");
        let envoy_path = f.field_path("envoy_grpc");
        let timeout: Option<Duration> = f.opt(d, "timeout");
        f.unsupported(d, &["google_grpc", "initial_metadata", "retry_policy"]);
        f.finish(d);
        let Some(envoy) = envoy else {
            d.error(ErrorKind::Missing, &envoy_path, line, "sluice supports grpc_service.envoy_grpc only");
            return None;
        };
        let mut e = Fields::of(d, envoy, &envoy_path)?;
        let cluster_name: Option<String> = e.req(d, "cluster_name");
        e.unsupported(d, &["authority", "retry_policy", "max_receive_message_length", "skip_envoy_headers"]);
        e.finish(d);
        let cluster_name = cluster_name?;
        if cluster_name.is_empty() {
            d.error(ErrorKind::Invalid, &format!("{envoy_path}.cluster_name"), line, "must not be empty");
            return None;
        }
        Some(OtlpGrpcService { cluster_name, timeout })
    }
}

/// `config.core.v3.HttpService`: where OTLP/HTTP goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpService {
    /// `http_uri.uri`'s authority (the `Host`) and path (the POST's target).
    pub host: String,
    pub path: String,
    pub cluster: String,
    pub timeout: Duration,
    pub request_headers_to_append: Vec<(String, String)>,
}

impl Decode for HttpService {
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::of(d, node, path)?;
        let line = f.line();
        let uri_node = f.take("http_uri");
        let headers: Vec<HeaderValueOption> = f.list(d, "request_headers_to_append");
        f.finish(d);
        let Some(uri_node) = uri_node else {
            d.error(ErrorKind::Missing, &format!("{path}.http_uri"), line, "an http_service needs `http_uri`");
            return None;
        };
        let upath = format!("{path}.http_uri");
        let mut u = Fields::of(d, uri_node, &upath)?;
        let uri: Option<String> = u.req(d, "uri");
        let cluster: Option<String> = u.req(d, "cluster");
        let timeout: Option<Duration> = u.req(d, "timeout");
        u.finish(d);
        let uri = uri?;
        let rest = uri.strip_prefix("http://").or_else(|| uri.strip_prefix("https://")).unwrap_or(&uri);
        let (host, target) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if host.is_empty() {
            d.error(
                ErrorKind::Invalid,
                &format!("{upath}.uri"),
                line,
                "the uri needs a host, e.g. http://collector:4318/v1/traces",
            );
        }
        Some(HttpService {
            host: host.to_string(),
            path: target.to_string(),
            cluster: cluster?,
            timeout: timeout?,
            request_headers_to_append: headers.into_iter().map(|h| (h.key, h.value)).collect(),
        })
    }
}

/// `config.trace.v3.OpenTelemetryConfig`: W3C trace context, OTLP/HTTP protobuf export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenTelemetryConfig {
    pub exporter: OtlpExporter,
    /// `service.name` of the resource (default `unknown_service:envoy`).
    pub service_name: String,
    /// The environment resource detector (`OTEL_RESOURCE_ATTRIBUTES`) is configured.
    pub environment_resource_detector: bool,
}

const ENV_DETECTOR_TYPE: &str =
    "envoy.extensions.tracers.opentelemetry.resource_detectors.v3.EnvironmentResourceDetectorConfig";

impl OpenTelemetryConfig {
    fn decode_fields(d: &mut Decoder, mut f: Fields<'_>, path: &str) -> Option<OpenTelemetryConfig> {
        let line = f.line();
        let http_service: Option<HttpService> = f.opt(d, "http_service");
        let grpc_service: Option<OtlpGrpcService> = f.opt(d, "grpc_service");
        let service_name: String = f.or(d, "service_name", "unknown_service:envoy".to_string());
        let mut environment_resource_detector = false;
        if let Some(list) = f.take("resource_detectors") {
            let lpath = f.field_path("resource_detectors");
            let items: Vec<crate::node::Node> = match &list.value {
                crate::node::Value::Seq(items) => items.clone(),
                _ => Vec::new(),
            };
            for (i, item) in items.iter().enumerate() {
                let ipath = format!("{lpath}[{i}]");
                let Some(mut e) = Fields::of(d, item, &ipath) else { continue };
                let _name: Option<String> = e.opt(d, "name");
                let tc = e.take("typed_config");
                e.finish(d);
                let Some(tc) = tc else { continue };
                let Some(t) = typed_config(d, tc, &format!("{ipath}.typed_config")) else { continue };
                if t.type_name == ENV_DETECTOR_TYPE {
                    t.fields.finish(d);
                    environment_resource_detector = true;
                } else {
                    d.error(
                        ErrorKind::Unsupported,
                        &format!("{ipath}.typed_config.@type"),
                        tc.line,
                        format!(
                            "resource detector `{}` is not supported; sluice has `{ENV_DETECTOR_TYPE}`",
                            t.type_name
                        ),
                    );
                }
            }
        }
        f.unsupported_because(
            d,
            "sampler",
            "OpenTelemetry samplers are not supported; use the connection manager's sampling",
        );
        f.finish(d);
        let exporter = match (http_service, grpc_service) {
            (Some(h), None) => OtlpExporter::Http(h),
            (None, Some(g)) => OtlpExporter::Grpc(g),
            (Some(_), Some(_)) => {
                d.error(
                    ErrorKind::Invalid,
                    &format!("{path}.http_service"),
                    line,
                    "set one of `grpc_service` and `http_service`, not both",
                );
                return None;
            }
            (None, None) => {
                d.error(
                    ErrorKind::Missing,
                    &format!("{path}.grpc_service"),
                    line,
                    "an OpenTelemetry tracer exports over `grpc_service` (OTLP/gRPC) or `http_service` (OTLP/HTTP)",
                );
                return None;
            }
        };
        Some(OpenTelemetryConfig { exporter, service_name, environment_resource_detector })
    }
}
