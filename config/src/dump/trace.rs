//! Dump of HTTP tracing: the connection manager's `tracing` (percentages as Envoy's
//! `type.v3.Percent`, the provider as its typed config), the request-id extension, and
//! the route's `decorator` and `tracing`.

use super::{any, list, Dump, Json};
use crate::trace::{
    CustomTag, CustomTagValue, Decorator, HcmTracing, MetadataKind, OtlpExporter, RouteTracing, TracingProvider,
    UuidRequestIdConfig, OPENTELEMETRY_NAME, UUID_REQUEST_ID_TYPE, ZIPKIN_NAME,
};

fn percent(value: f64) -> Json {
    Json::obj().with("value", value)
}

impl Dump for HcmTracing {
    fn dump(&self) -> Json {
        Json::obj()
            .with("client_sampling", percent(self.client_sampling.numerator as f64))
            .with("random_sampling", percent(self.random_sampling.numerator as f64 / 100.0))
            .with("overall_sampling", percent(self.overall_sampling.numerator as f64))
            .with("verbose", self.verbose)
            .with("max_path_tag_length", self.max_path_tag_length)
            .with("custom_tags", list(&self.custom_tags))
            .with("spawn_upstream_span", self.spawn_upstream_span)
            .with_opt("provider", self.provider.as_ref().map(Dump::dump))
    }
}

impl Dump for CustomTag {
    fn dump(&self) -> Json {
        let j = Json::obj().with("tag", &self.tag);
        match &self.value {
            CustomTagValue::Literal(v) => j.with("literal", Json::obj().with("value", v)),
            CustomTagValue::Environment { name, default_value } => {
                j.with("environment", Json::obj().with("name", name).with("default_value", default_value))
            }
            CustomTagValue::RequestHeader { name, default_value } => {
                j.with("request_header", Json::obj().with("name", name).with("default_value", default_value))
            }
            CustomTagValue::Metadata { kind, filter, path, default_value } => {
                let kind = match kind {
                    MetadataKind::Request => "request",
                    MetadataKind::Route => "route",
                    MetadataKind::Cluster => "cluster",
                    MetadataKind::Host => "host",
                };
                let segments = Json::Arr(path.iter().map(|k| Json::obj().with("key", k)).collect());
                j.with(
                    "metadata",
                    Json::obj()
                        .with("kind", Json::obj().with(kind, Json::obj()))
                        .with("metadata_key", Json::obj().with("key", filter).with("path", segments))
                        .with("default_value", default_value),
                )
            }
        }
    }
}

impl Dump for TracingProvider {
    fn dump(&self) -> Json {
        match self {
            TracingProvider::Zipkin(z) => Json::obj().with("name", ZIPKIN_NAME).with(
                "typed_config",
                any(
                    "envoy.config.trace.v3.ZipkinConfig",
                    Json::obj()
                        .with("collector_cluster", &z.collector_cluster)
                        .with("collector_endpoint", &z.collector_endpoint)
                        .with("trace_id_128bit", z.trace_id_128bit)
                        .with("shared_span_context", z.shared_span_context)
                        .with("collector_endpoint_version", if z.proto { "HTTP_PROTO" } else { "HTTP_JSON" })
                        .with("collector_hostname", &z.collector_hostname)
                        .with("split_spans_for_request", z.split_spans_for_request),
                ),
            ),
            TracingProvider::OpenTelemetry(o) => {
                let mut j = match &o.exporter {
                    OtlpExporter::Http(s) => {
                        let headers = s
                            .request_headers_to_append
                            .iter()
                            .map(|(k, v)| Json::obj().with("header", Json::obj().with("key", k).with("value", v)));
                        Json::obj().with(
                            "http_service",
                            Json::obj()
                                .with(
                                    "http_uri",
                                    Json::obj()
                                        .with("uri", format!("http://{}{}", s.host, s.path))
                                        .with("cluster", &s.cluster)
                                        .with("timeout", s.timeout),
                                )
                                .with("request_headers_to_append", Json::Arr(headers.collect())),
                        )
                    }
                    OtlpExporter::Grpc(g) => {
                        let mut svc = Json::obj().with("envoy_grpc", Json::obj().with("cluster_name", &g.cluster_name));
                        if let Some(t) = g.timeout {
                            svc = svc.with("timeout", t);
                        }
                        Json::obj().with("grpc_service", svc)
                    }
                };
                j = j.with("service_name", &o.service_name);
                if o.environment_resource_detector {
                    j = j.with(
                        "resource_detectors",
                        Json::Arr(vec![Json::obj().with("name", "envoy.tracers.opentelemetry.resource_detectors.environment").with(
                            "typed_config",
                            any(
                                "envoy.extensions.tracers.opentelemetry.resource_detectors.v3.EnvironmentResourceDetectorConfig",
                                Json::obj(),
                            ),
                        )]),
                    );
                }
                Json::obj()
                    .with("name", OPENTELEMETRY_NAME)
                    .with("typed_config", any("envoy.config.trace.v3.OpenTelemetryConfig", j))
            }
        }
    }
}

impl Dump for UuidRequestIdConfig {
    fn dump(&self) -> Json {
        Json::obj().with(
            "typed_config",
            any(
                UUID_REQUEST_ID_TYPE,
                Json::obj()
                    .with("pack_trace_reason", self.pack_trace_reason)
                    .with("use_request_id_for_trace_sampling", self.use_request_id_for_trace_sampling),
            ),
        )
    }
}

impl Dump for Decorator {
    fn dump(&self) -> Json {
        Json::obj().with("operation", &self.operation).with("propagate", self.propagate)
    }
}

impl Dump for RouteTracing {
    fn dump(&self) -> Json {
        Json::obj()
            .with("client_sampling", self.client_sampling.dump())
            .with("random_sampling", self.random_sampling.dump())
            .with("overall_sampling", self.overall_sampling.dump())
            .with("custom_tags", list(&self.custom_tags))
    }
}
