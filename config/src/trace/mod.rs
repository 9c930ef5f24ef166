//! HTTP tracing as the connection manager configures it: `HttpConnectionManager.Tracing`
//! (sampling, custom tags, path tag length, the provider), the route's `decorator` and
//! `tracing` overrides, and the request-id extension (`UuidRequestIdConfig`).
//!
//! Sampling percentages are stored as Envoy's connection manager compiles them
//! (http_connection_manager config.cc): `client_sampling` and `overall_sampling` as a
//! whole percent out of 100, `random_sampling` rounded to a fraction of 10,000 so that
//! it can be compared with the request id's value modulo 10,000.

mod custom_tag;
mod provider;

pub use custom_tag::{CustomTag, CustomTagValue, MetadataKind};

pub use provider::{
    CollectorEndpointVersion, HttpService, OpenTelemetryConfig, OtlpExporter, OtlpGrpcService, TracingProvider,
    ZipkinConfig, OPENTELEMETRY_NAME, ZIPKIN_NAME,
};

use crate::core::{Denominator, FractionalPercent, Percent};
use crate::decode::{typed_config, Decode, Decoder, Fields};
use crate::error::ErrorKind;
use crate::node::Node;

/// `HttpConnectionManager.Tracing`.
#[derive(Debug, Clone, PartialEq)]
pub struct HcmTracing {
    /// Out of 100 (default 100).
    pub client_sampling: FractionalPercent,
    /// Out of 10,000 (default 10,000).
    pub random_sampling: FractionalPercent,
    /// Out of 100 (default 100).
    pub overall_sampling: FractionalPercent,
    /// `max_path_tag_length`: the `http.url` tag is cut to this many bytes (256).
    pub max_path_tag_length: u32,
    pub custom_tags: Vec<CustomTag>,
    /// `spawn_upstream_span`: a CLIENT child span per upstream request (each try).
    pub spawn_upstream_span: bool,
    /// `verbose`: the request's span gets a log (OTLP event, Zipkin annotation) per
    /// stream timing event (Envoy's `annotateVerbose`).
    pub verbose: bool,
    /// None: sampling decisions are made (and packed into `x-request-id`), but no span
    /// is started.
    pub provider: Option<TracingProvider>,
}

impl Decode for HcmTracing {
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::of(d, node, path)?;
        let client: Option<Percent> = f.opt(d, "client_sampling");
        let random: Option<Percent> = f.opt(d, "random_sampling");
        let overall: Option<Percent> = f.opt(d, "overall_sampling");
        let max_path_tag_length = f.or(d, "max_path_tag_length", 256u32);
        let custom_tags: Vec<CustomTag> = f.list(d, "custom_tags");
        let provider: Option<TracingProvider> = f.opt(d, "provider");
        let verbose = f.or(d, "verbose", false);
        let spawn_upstream_span = f.or(d, "spawn_upstream_span", false);
        f.unsupported(d, &["operation_name", "request_headers_for_tags"]);
        f.finish(d);
        let hundred = |p: Option<Percent>| FractionalPercent {
            numerator: p.map_or(100, |p| p.0 as u32),
            denominator: Denominator::Hundred,
        };
        Some(HcmTracing {
            client_sampling: hundred(client),
            random_sampling: FractionalPercent {
                numerator: random.map_or(10_000, |p| (p.0 * 10_000.0 / 100.0).round() as u32),
                denominator: Denominator::TenThousand,
            },
            overall_sampling: hundred(overall),
            max_path_tag_length,
            custom_tags,
            spawn_upstream_span,
            verbose,
            provider,
        })
    }
}

/// `route.v3.Decorator`: the span's operation name for requests of this route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decorator {
    pub operation: String,
    /// Send `x-envoy-decorator-operation` downstream (default true).
    pub propagate: bool,
}

impl Decode for Decorator {
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::of(d, node, path)?;
        let line = f.line();
        let operation: Option<String> = f.req(d, "operation");
        let propagate = f.or(d, "propagate", true);
        f.finish(d);
        let operation = operation?;
        if operation.is_empty() {
            d.error(ErrorKind::Invalid, &format!("{path}.operation"), line, "must not be empty");
        }
        Some(Decorator { operation, propagate })
    }
}

/// `route.v3.Tracing`: a route's sampling and tags, replacing the connection
/// manager's (each percentage 100 % when unset).
#[derive(Debug, Clone, PartialEq)]
pub struct RouteTracing {
    pub client_sampling: FractionalPercent,
    pub random_sampling: FractionalPercent,
    pub overall_sampling: FractionalPercent,
    pub custom_tags: Vec<CustomTag>,
}

impl Decode for RouteTracing {
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::of(d, node, path)?;
        let client_sampling = f.or(d, "client_sampling", FractionalPercent::ALWAYS);
        let random_sampling = f.or(d, "random_sampling", FractionalPercent::ALWAYS);
        let overall_sampling = f.or(d, "overall_sampling", FractionalPercent::ALWAYS);
        let custom_tags = f.list(d, "custom_tags");
        f.finish(d);
        Some(RouteTracing { client_sampling, random_sampling, overall_sampling, custom_tags })
    }
}

/// `extensions.request_id.uuid.v3.UuidRequestIdConfig` (Envoy's only request-id
/// extension, and its default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UuidRequestIdConfig {
    /// Write the trace decision into the UUID's version nibble (default true).
    pub pack_trace_reason: bool,
    /// Sample on the request id's value (default true); false: the connection
    /// manager's sampling is skipped and every request counts as sampled (an incoming
    /// trace context still decides for its own requests).
    pub use_request_id_for_trace_sampling: bool,
}

impl Default for UuidRequestIdConfig {
    fn default() -> Self {
        UuidRequestIdConfig { pack_trace_reason: true, use_request_id_for_trace_sampling: true }
    }
}

pub const UUID_REQUEST_ID_TYPE: &str = "envoy.extensions.request_id.uuid.v3.UuidRequestIdConfig";

/// `HttpConnectionManager.request_id_extension` (`typed_config` of the UUID extension).
pub fn decode_request_id_extension(d: &mut Decoder, node: &Node, path: &str) -> Option<UuidRequestIdConfig> {
    let mut f = Fields::of(d, node, path)?;
    let line = f.line();
    let tc_path = f.field_path("typed_config");
    let tc = f.take("typed_config");
    f.finish(d);
    let Some(tc) = tc else {
        d.error(ErrorKind::Missing, &tc_path, line, "a request_id_extension needs a typed_config");
        return None;
    };
    let t = typed_config(d, tc, &tc_path)?;
    if t.type_name != UUID_REQUEST_ID_TYPE {
        d.error(
            ErrorKind::Unsupported,
            &format!("{tc_path}.@type"),
            tc.line,
            format!("request-id extension `{}` is not supported; sluice has `{UUID_REQUEST_ID_TYPE}`", t.type_name),
        );
        return None;
    }
    let mut f = t.fields;
    let pack_trace_reason = f.or(d, "pack_trace_reason", true);
    let use_request_id_for_trace_sampling = f.or(d, "use_request_id_for_trace_sampling", true);
    f.finish(d);
    Some(UuidRequestIdConfig { pack_trace_reason, use_request_id_for_trace_sampling })
}

#[cfg(test)]
mod tests;
