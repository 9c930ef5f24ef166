//! `HttpConnectionManager.http_filters`: filters selected by `typed_config."@type"`
//! (the name is a free label), their options, and Envoy's chain rule: the router is a
//! terminal filter and must be last, and the last filter must be terminal and enabled.

use crate::decode::{typed_config, Decode, Decoder, Fields};
use crate::error::ErrorKind;
use crate::fault::HttpFault;
use crate::filters::buffer::{Buffer, BUFFER_TYPE};
use crate::filters::compressor::{Compressor, COMPRESSOR_TYPE};
use crate::filters::cors::CORS_TYPE;
use crate::filters::csrf::{CsrfPolicy, CSRF_TYPE};
use crate::filters::decompressor::{Decompressor, DECOMPRESSOR_TYPE};
use crate::filters::ext_authz::{ExtAuthz, EXT_AUTHZ_TYPE};
use crate::filters::grpc::{GrpcHttp1Bridge, GRPC_HTTP1_BRIDGE_TYPE, GRPC_WEB_TYPE};
use crate::filters::header_to_metadata::{HeaderToMetadata, HEADER_TO_METADATA_TYPE};
use crate::filters::health_check::{HealthCheck, HEALTH_CHECK_TYPE};
use crate::filters::jwt_authn::{JwtAuthentication, JWT_AUTHN_TYPE};
use crate::filters::local_ratelimit::{LocalRateLimit, LOCAL_RATE_LIMIT_TYPE};
use crate::filters::lua::{Lua, LUA_TYPE};
use crate::filters::ratelimit::{RateLimitFilter, RATE_LIMIT_TYPE};
use crate::filters::rbac::{Rbac, RBAC_TYPE};
use crate::node::Node;

/// `extensions.filters.http.router.v3.Router`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouterFilter {
    pub suppress_envoy_headers: bool,
    pub respect_expected_rq_timeout: bool,
    /// Headers whose values are validated strictly (a bad value is a 400).
    pub strict_check_headers: Vec<String>,
}

/// `Router.strict_check_headers` accepts only these.
pub const STRICT_CHECK_HEADERS: &[&str] = &[
    "x-envoy-upstream-rq-timeout-ms",
    "x-envoy-upstream-rq-per-try-timeout-ms",
    "x-envoy-max-retries",
    "x-envoy-retry-grpc-on",
    "x-envoy-retry-on",
];

impl RouterFilter {
    fn decode_fields(d: &mut Decoder, mut f: Fields<'_>) -> Option<RouterFilter> {
        let suppress_envoy_headers = f.or(d, "suppress_envoy_headers", false);
        let respect_expected_rq_timeout = f.or(d, "respect_expected_rq_timeout", false);
        let strict: Vec<String> = f.list(d, "strict_check_headers");
        let strict_path = f.field_path("strict_check_headers");
        let line = f.line();
        f.ignored(d, &["dynamic_stats"]);
        f.default_only(
            d,
            "start_child_span",
            false,
            "sluice makes one span per request (the connection manager's) and no child span per upstream request",
        );
        f.empty_only(
            d,
            "upstream_log",
            "upstream access logs are not supported; use the connection manager's access_log",
        );
        f.empty_only(d, "upstream_log_options", "upstream access logs are not supported; remove them");
        f.unsupported(d, &["suppress_grpc_request_failure_code_stats", "upstream_http_filters"]);
        f.finish(d);
        let mut strict_check_headers = Vec::with_capacity(strict.len());
        for (i, h) in strict.into_iter().enumerate() {
            if STRICT_CHECK_HEADERS.contains(&h.as_str()) {
                strict_check_headers.push(h);
            } else {
                d.error(
                    ErrorKind::Invalid,
                    &format!("{strict_path}[{i}]"),
                    line,
                    format!("`{h}` is not one of {}", STRICT_CHECK_HEADERS.join(", ")),
                );
            }
        }
        Some(RouterFilter { suppress_envoy_headers, respect_expected_rq_timeout, strict_check_headers })
    }
}

/// An HTTP filter, selected by its type URL.
#[derive(Debug, Clone, PartialEq)]
pub enum HttpFilterKind {
    /// `envoy.extensions.filters.http.fault.v3.HTTPFault`
    Fault(HttpFault),
    /// `envoy.extensions.filters.http.buffer.v3.Buffer`
    Buffer(Buffer),
    /// `envoy.extensions.filters.http.compressor.v3.Compressor`
    Compressor(Box<Compressor>),
    /// `envoy.extensions.filters.http.decompressor.v3.Decompressor`
    Decompressor(Box<Decompressor>),
    /// `envoy.extensions.filters.http.cors.v3.Cors` (policies come from the routes)
    Cors,
    /// `envoy.extensions.filters.http.csrf.v3.CsrfPolicy`
    Csrf(CsrfPolicy),
    /// `envoy.extensions.filters.http.header_to_metadata.v3.Config`
    HeaderToMetadata(HeaderToMetadata),
    /// `envoy.extensions.filters.http.ext_authz.v3.ExtAuthz`
    ExtAuthz(Box<ExtAuthz>),
    /// `envoy.extensions.filters.http.health_check.v3.HealthCheck`
    HealthCheck(HealthCheck),
    /// `envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit`
    LocalRateLimit(LocalRateLimit),
    /// `envoy.extensions.filters.http.rbac.v3.RBAC`
    Rbac(Rbac),
    /// `envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication`
    JwtAuthn(Box<JwtAuthentication>),
    /// `envoy.extensions.filters.http.ratelimit.v3.RateLimit`
    RateLimit(Box<RateLimitFilter>),
    /// `envoy.extensions.filters.http.grpc_web.v3.GrpcWeb`
    GrpcWeb,
    /// `envoy.extensions.filters.http.grpc_http1_bridge.v3.Config`
    GrpcHttp1Bridge(GrpcHttp1Bridge),
    /// `envoy.extensions.filters.http.lua.v3.Lua`
    Lua(Box<Lua>),
    /// `envoy.extensions.filters.http.router.v3.Router` (terminal)
    Router(RouterFilter),
}

impl HttpFilterKind {
    pub fn is_terminal(&self) -> bool {
        matches!(self, HttpFilterKind::Router(_))
    }

    pub fn type_name(&self) -> &'static str {
        match self {
            HttpFilterKind::Fault(_) => FAULT_TYPE,
            HttpFilterKind::Buffer(_) => BUFFER_TYPE,
            HttpFilterKind::Compressor(_) => COMPRESSOR_TYPE,
            HttpFilterKind::Decompressor(_) => DECOMPRESSOR_TYPE,
            HttpFilterKind::Cors => CORS_TYPE,
            HttpFilterKind::Csrf(_) => CSRF_TYPE,
            HttpFilterKind::HeaderToMetadata(_) => HEADER_TO_METADATA_TYPE,
            HttpFilterKind::ExtAuthz(_) => EXT_AUTHZ_TYPE,
            HttpFilterKind::HealthCheck(_) => HEALTH_CHECK_TYPE,
            HttpFilterKind::LocalRateLimit(_) => LOCAL_RATE_LIMIT_TYPE,
            HttpFilterKind::Rbac(_) => RBAC_TYPE,
            HttpFilterKind::JwtAuthn(_) => JWT_AUTHN_TYPE,
            HttpFilterKind::RateLimit(_) => RATE_LIMIT_TYPE,
            HttpFilterKind::GrpcWeb => GRPC_WEB_TYPE,
            HttpFilterKind::GrpcHttp1Bridge(_) => GRPC_HTTP1_BRIDGE_TYPE,
            HttpFilterKind::Lua(_) => LUA_TYPE,
            HttpFilterKind::Router(_) => ROUTER_TYPE,
        }
    }
}

const FAULT_TYPE: &str = "envoy.extensions.filters.http.fault.v3.HTTPFault";
const ROUTER_TYPE: &str = "envoy.extensions.filters.http.router.v3.Router";

/// `HttpConnectionManager.HttpFilter`.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpFilter {
    pub name: String,
    pub kind: HttpFilterKind,
    /// `disabled`: the filter is off unless a route's `typed_per_filter_config`
    /// enables it.
    pub disabled: bool,
}

impl Decode for HttpFilter {
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::of(d, node, path)?;
        let line = f.line();
        let name: Option<String> = f.req(d, "name");
        let disabled = f.or(d, "disabled", false);
        let is_optional = f.or(d, "is_optional", false);
        f.unsupported(d, &["config_discovery"]);
        let tc_path = f.field_path("typed_config");
        let tc = f.take("typed_config");
        f.finish(d);
        let name = name?;
        if name.is_empty() {
            d.error(ErrorKind::Invalid, &format!("{path}.name"), line, "must not be empty");
        }
        let Some(tc) = tc else {
            d.error(ErrorKind::Missing, &tc_path, line, "an HTTP filter needs a typed_config with an `@type`");
            return None;
        };
        if matches!(&tc.value, crate::node::Value::Map(m) if m.is_empty()) {
            // Envoy: an Any without a type URL selects the extension by the filter's
            // name (Envoy's examples write the router as `typed_config: {}`).
            match name.as_str() {
                "envoy.filters.http.router" | "envoy.router" => {
                    let kind = HttpFilterKind::Router(RouterFilter {
                        suppress_envoy_headers: false,
                        respect_expected_rq_timeout: false,
                        strict_check_headers: Vec::new(),
                    });
                    return Some(HttpFilter { name, kind, disabled });
                }
                "envoy.filters.http.cors" => return Some(HttpFilter { name, kind: HttpFilterKind::Cors, disabled }),
                _ => {}
            }
        }
        let t = typed_config(d, tc, &tc_path)?;
        let kind = match t.type_name.as_str() {
            FAULT_TYPE => HttpFilterKind::Fault(HttpFault::decode_fields(d, t.fields)?),
            BUFFER_TYPE => HttpFilterKind::Buffer(Buffer::decode_fields(d, t.fields)?),
            COMPRESSOR_TYPE => HttpFilterKind::Compressor(Box::new(Compressor::decode_fields(d, t.fields)?)),
            DECOMPRESSOR_TYPE => HttpFilterKind::Decompressor(Box::new(Decompressor::decode_fields(d, t.fields)?)),
            CORS_TYPE => {
                t.fields.finish(d);
                HttpFilterKind::Cors
            }
            CSRF_TYPE => HttpFilterKind::Csrf(CsrfPolicy::decode_fields(d, t.fields)?),
            HEADER_TO_METADATA_TYPE => {
                HttpFilterKind::HeaderToMetadata(HeaderToMetadata::decode_fields(d, t.fields, false)?)
            }
            EXT_AUTHZ_TYPE => HttpFilterKind::ExtAuthz(Box::new(ExtAuthz::decode_fields(d, t.fields)?)),
            HEALTH_CHECK_TYPE => HttpFilterKind::HealthCheck(HealthCheck::decode_fields(d, t.fields)?),
            LOCAL_RATE_LIMIT_TYPE => HttpFilterKind::LocalRateLimit(LocalRateLimit::decode_fields(d, t.fields, false)?),
            RBAC_TYPE => HttpFilterKind::Rbac(Rbac::decode_fields(d, t.fields)?),
            JWT_AUTHN_TYPE => HttpFilterKind::JwtAuthn(Box::new(JwtAuthentication::decode_fields(d, t.fields, tc)?)),
            RATE_LIMIT_TYPE => HttpFilterKind::RateLimit(Box::new(RateLimitFilter::decode_fields(d, t.fields)?)),
            GRPC_WEB_TYPE => {
                t.fields.finish(d);
                HttpFilterKind::GrpcWeb
            }
            GRPC_HTTP1_BRIDGE_TYPE => HttpFilterKind::GrpcHttp1Bridge(GrpcHttp1Bridge::decode_fields(d, t.fields)?),
            LUA_TYPE => HttpFilterKind::Lua(Box::new(Lua::decode_fields(d, t.fields)?)),
            ROUTER_TYPE => HttpFilterKind::Router(RouterFilter::decode_fields(d, t.fields)?),
            // Envoy: a client that does not support an optional filter may skip it.
            other if is_optional => {
                d.warn(
                    &format!("{tc_path}.@type"),
                    tc.line,
                    format!("optional HTTP filter `{name}` of type `{other}` is not supported by sluice: skipped"),
                );
                return None;
            }
            other => {
                d.error(
                    ErrorKind::Unsupported,
                    &format!("{tc_path}.@type"),
                    tc.line,
                    format!(
                        "unsupported HTTP filter type `{other}` (filter `{name}`; set `is_optional: true` to skip it)"
                    ),
                );
                return None;
            }
        };
        Some(HttpFilter { name, kind, disabled })
    }
}

/// `http_filters` (absent = empty), and whether decoding them found an error (a filter
/// that did not decode is missing from the list, so the chain's order cannot be judged).
pub(crate) fn decode_list(d: &mut Decoder, node: Option<&Node>, path: &str) -> (Vec<HttpFilter>, bool) {
    let Some(node) = node else {
        return (Vec::new(), false);
    };
    let before = d.errors.len();
    let filters: Vec<HttpFilter> = d.decode(node, path).unwrap_or_default();
    (filters, d.errors.len() != before)
}

/// Envoy: "terminal filter named X of type Y must be the last filter in a http filter
/// chain" / "non-terminal filter named X of type Y is the last filter in a http filter
/// chain".
pub(crate) fn check_filter_order(d: &mut Decoder, filters: &[HttpFilter], path: &str, line: u32) {
    let Some(last) = filters.last() else {
        d.error(
            ErrorKind::Invalid,
            path,
            line,
            "http_filters is empty: the last filter must be the router (envoy.extensions.filters.http.router.v3.Router)",
        );
        return;
    };
    for (i, f) in filters.iter().enumerate() {
        if f.kind.is_terminal() && i + 1 != filters.len() {
            d.error(
                ErrorKind::Invalid,
                &format!("{path}[{i}]"),
                line,
                format!(
                    "Error: terminal filter named {} of type {} must be the last filter in a http filter chain.",
                    f.name,
                    f.kind.type_name()
                ),
            );
        }
    }
    if !last.kind.is_terminal() {
        d.error(
            ErrorKind::Invalid,
            &format!("{path}[{}]", filters.len() - 1),
            line,
            format!(
                "Error: non-terminal filter named {} of type {} is the last filter in a http filter chain.",
                last.name,
                last.kind.type_name()
            ),
        );
    }
    if last.disabled {
        d.error(
            ErrorKind::Invalid,
            &format!("{path}[{}].disabled", filters.len() - 1),
            line,
            "the last filter of a http filter chain may not be disabled",
        );
    }
}
