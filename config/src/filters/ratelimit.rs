//! `extensions.filters.http.ratelimit.v3.RateLimit` and `RateLimitPerRoute`: the
//! global rate limit filter's config, read as Envoy documents it.
//!
//! Supported: `domain`, `stage`, `request_type`, `timeout` (20 ms by default; Envoy
//! sets it on each call, so `grpc_service.timeout` does not bound the call),
//! `failure_mode_deny`, `rate_limit_service` (`grpc_service.envoy_grpc`,
//! `transport_api_version: V3`), `enable_x_ratelimit_headers` (`OFF`,
//! `DRAFT_VERSION_03`), `disable_x_envoy_ratelimited_header`, `rate_limited_status`,
//! `status_on_error`; per route `vh_rate_limits` and `override_option: DEFAULT`. Every
//! other field is refused with its path.

use std::time::Duration;

use crate::decode::{Decoder, Fields};
use crate::error::ErrorKind;
use crate::filters::ext_authz::GrpcService;
use crate::node::Node;
use crate::proto_enum;

pub const RATE_LIMIT_TYPE: &str = "envoy.extensions.filters.http.ratelimit.v3.RateLimit";
pub const RATE_LIMIT_PER_ROUTE_TYPE: &str = "envoy.extensions.filters.http.ratelimit.v3.RateLimitPerRoute";

/// Envoy's default call timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(20);

/// `request_type`: which requests the filter applies to (`x-envoy-internal: true`
/// marks an internal one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestType {
    Internal,
    External,
    Both,
}

proto_enum! {
    /// `XRateLimitHeadersRFCVersion`.
    pub enum XRateLimitHeaders {
        Off = ("OFF", 0),
        DraftVersion03 = ("DRAFT_VERSION_03", 1),
    }
}

proto_enum! {
    /// `RateLimitPerRoute.VhRateLimitsOptions`.
    pub enum VhRateLimits {
        /// The virtual host's `rate_limits` apply when the route has none.
        Override = ("OVERRIDE", 0),
        /// The virtual host's `rate_limits` apply as well as the route's.
        Include = ("INCLUDE", 1),
        /// The virtual host's `rate_limits` never apply.
        Ignore = ("IGNORE", 2),
    }
}

proto_enum! {
    /// `RateLimitPerRoute.OverrideOptions`.
    pub enum OverrideOption {
        Default = ("DEFAULT", 0),
        OverridePolicy = ("OVERRIDE_POLICY", 1),
        IncludePolicy = ("INCLUDE_POLICY", 2),
        IgnorePolicy = ("IGNORE_POLICY", 3),
    }
}

/// `RateLimit` (the filter).
#[derive(Debug, Clone, PartialEq)]
pub struct RateLimitFilter {
    pub domain: String,
    pub stage: u32,
    pub request_type: RequestType,
    pub timeout: Duration,
    pub failure_mode_deny: bool,
    /// `rate_limit_service.grpc_service`.
    pub service: GrpcService,
    pub x_ratelimit_headers: XRateLimitHeaders,
    pub disable_x_envoy_ratelimited_header: bool,
    /// `rate_limited_status.code` (429; a code below 400 is 429, as in Envoy).
    pub rate_limited_status: u16,
    /// `status_on_error.code` (500).
    pub status_on_error: u16,
}

/// `type.v3.HttpStatus.code`, validated.
fn http_status(d: &mut Decoder, node: &Node, path: &str) -> Option<u16> {
    let mut s = Fields::of(d, node, path)?;
    let code: Option<u32> = s.req(d, "code");
    s.finish(d);
    let code = code?;
    if !(100..=599).contains(&code) {
        d.error(ErrorKind::Invalid, &format!("{path}.code"), node.line, "must be in 100..=599");
        return None;
    }
    Some(code as u16)
}

impl RateLimitFilter {
    pub fn decode_fields(d: &mut Decoder, mut f: Fields<'_>) -> Option<RateLimitFilter> {
        let path = f.path().to_string();
        let line = f.line();
        let domain: Option<String> = f.req(d, "domain");
        let stage: u32 = f.or(d, "stage", 0);
        let request_type: String = f.or(d, "request_type", String::new());
        let timeout: Duration = f.or(d, "timeout", DEFAULT_TIMEOUT);
        let failure_mode_deny = f.or(d, "failure_mode_deny", false);
        let service = f.take("rate_limit_service");
        let service_path = f.field_path("rate_limit_service");
        let x_ratelimit_headers = f.or(d, "enable_x_ratelimit_headers", XRateLimitHeaders::Off);
        let disable_x_envoy_ratelimited_header = f.or(d, "disable_x_envoy_ratelimited_header", false);
        let limited = f.take("rate_limited_status");
        let limited_path = f.field_path("rate_limited_status");
        let on_error = f.take("status_on_error");
        let on_error_path = f.field_path("status_on_error");
        f.default_only(
            d,
            "rate_limited_as_resource_exhausted",
            false,
            "sluice answers a rate-limited gRPC request with the HTTP status only; remove it",
        );
        f.empty_only(d, "response_headers_to_add", "the filter's own response headers are not supported; remove them");
        f.empty_only(
            d,
            "rate_limits",
            "the filter's own rate_limits are not supported; put them on the route or virtual host",
        );
        f.unsupported(
            d,
            &["stat_prefix", "filter_enabled", "filter_enforced", "failure_mode_deny_percent", "apply_on_stream_done"],
        );
        f.finish(d);
        let domain = domain?;
        if domain.is_empty() {
            d.error(ErrorKind::Invalid, &format!("{path}.domain"), line, "must not be empty");
            return None;
        }
        if stage > crate::route::rate_limit::MAX_STAGE {
            d.error(ErrorKind::Invalid, &format!("{path}.stage"), line, "must be at most 10");
            return None;
        }
        let request_type = match request_type.as_str() {
            "" | "both" => RequestType::Both,
            "internal" => RequestType::Internal,
            "external" => RequestType::External,
            other => {
                d.error(
                    ErrorKind::Invalid,
                    &format!("{path}.request_type"),
                    line,
                    format!("`{other}` is not one of internal, external, both"),
                );
                return None;
            }
        };
        let Some(service) = service else {
            d.error(ErrorKind::Missing, &service_path, line, "required field is missing");
            return None;
        };
        let mut s = Fields::of(d, service, &service_path)?;
        let grpc: Option<GrpcService> = s.req(d, "grpc_service");
        let api = s.take("transport_api_version");
        s.finish(d);
        let api_ok = api.and_then(|n| {
            crate::decode::scalar(d, n, &format!("{service_path}.transport_api_version"), "an API version")
        });
        if !matches!(api_ok, Some("V3") | Some("3")) {
            d.error(
                ErrorKind::Invalid,
                &format!("{service_path}.transport_api_version"),
                service.line,
                "must be V3 (Envoy refuses the V2 and AUTO transport versions)",
            );
            return None;
        }
        let rate_limited_status = match limited {
            // Envoy: a configured status below 400 answers 429.
            Some(n) => http_status(d, n, &limited_path).map(|c| if c < 400 { 429 } else { c })?,
            None => 429,
        };
        let status_on_error = match on_error {
            Some(n) => http_status(d, n, &on_error_path)?,
            None => 500,
        };
        Some(RateLimitFilter {
            domain,
            stage,
            request_type,
            timeout,
            failure_mode_deny,
            service: grpc?,
            x_ratelimit_headers,
            disable_x_envoy_ratelimited_header,
            rate_limited_status,
            status_on_error,
        })
    }
}

/// `RateLimitPerRoute`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitPerRoute {
    pub vh_rate_limits: VhRateLimits,
}

impl RateLimitPerRoute {
    pub fn decode_fields(d: &mut Decoder, mut f: Fields<'_>) -> Option<RateLimitPerRoute> {
        let vh_rate_limits = f.or(d, "vh_rate_limits", VhRateLimits::Override);
        f.default_only(
            d,
            "override_option",
            OverrideOption::Default,
            "override_option selects the per-route rate_limits, which sluice does not support; remove it",
        );
        f.empty_only(d, "rate_limits", "per-route rate_limits are not supported; put them on the route's action");
        f.unsupported(d, &["domain"]);
        f.finish(d);
        Some(RateLimitPerRoute { vh_rate_limits })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hcm::HttpFilterKind;
    use crate::listener::NetworkFilterKind;

    fn bootstrap(filter: &str) -> String {
        format!(
            r#"static_resources:
  clusters:
  - name: rls
    load_assignment: {{cluster_name: rls, endpoints: [{{lb_endpoints: [{{endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: 1}}}}}}}}]}}]}}
  listeners:
  - name: l
    address: {{socket_address: {{address: 127.0.0.1, port_value: 8080}}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {{prefix: /}}
                route: {{cluster: rls}}
          http_filters:
          - name: envoy.filters.http.ratelimit
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.ratelimit.v3.RateLimit
{filter}
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
"#
        )
    }

    fn filter(yaml: &str) -> RateLimitFilter {
        let loaded = crate::load_str(&bootstrap(yaml)).unwrap_or_else(|e| panic!("{e}"));
        let NetworkFilterKind::HttpConnectionManager(h) =
            &loaded.bootstrap.listeners[0].filter_chains[0].filters[0].kind
        else {
            panic!()
        };
        let HttpFilterKind::RateLimit(r) = &h.http_filters[0].kind else { panic!() };
        (**r).clone()
    }

    fn error(yaml: &str) -> String {
        crate::load_str(&bootstrap(yaml)).err().map(|e| e.to_string()).expect("should fail")
    }

    const SERVICE: &str = "              rate_limit_service: {grpc_service: {envoy_grpc: {cluster_name: rls}}, transport_api_version: V3}\n";

    #[test]
    fn defaults_and_options() {
        let f = filter(&format!("              domain: d\n{SERVICE}"));
        assert_eq!((f.domain.as_str(), f.stage, f.request_type), ("d", 0, RequestType::Both));
        assert_eq!((f.timeout, f.failure_mode_deny), (DEFAULT_TIMEOUT, false));
        assert_eq!((f.rate_limited_status, f.status_on_error), (429, 500));
        assert_eq!(f.service.cluster_name, "rls");
        let f = filter(&format!(
            "              domain: d\n              stage: 3\n              request_type: external\n              timeout: 0.1s\n              failure_mode_deny: true\n              enable_x_ratelimit_headers: DRAFT_VERSION_03\n              rate_limited_status: {{code: 503}}\n              status_on_error: {{code: 502}}\n{SERVICE}"
        ));
        assert_eq!((f.stage, f.request_type, f.timeout), (3, RequestType::External, Duration::from_millis(100)));
        assert_eq!((f.failure_mode_deny, f.x_ratelimit_headers), (true, XRateLimitHeaders::DraftVersion03));
        assert_eq!((f.rate_limited_status, f.status_on_error), (503, 502));
        let f =
            filter(&format!("              domain: d\n              rate_limited_status: {{code: 200}}\n{SERVICE}"));
        assert_eq!(f.rate_limited_status, 429, "below 400 is 429");
    }

    #[test]
    fn unsupported_and_invalid_fields_are_refused_with_their_path() {
        let err = error(&format!("              domain: d\n              stat_prefix: x\n{SERVICE}"));
        assert!(err.contains("typed_config.stat_prefix"), "{err}");
        let err = error(&format!("              domain: d\n              stage: 11\n{SERVICE}"));
        assert!(err.contains("typed_config.stage"), "{err}");
        let err = error(&format!("              domain: d\n              request_type: sometimes\n{SERVICE}"));
        assert!(err.contains("request_type"), "{err}");
        let err = error("              domain: d\n              rate_limit_service: {grpc_service: {envoy_grpc: {cluster_name: rls}}}\n");
        assert!(err.contains("rate_limit_service.transport_api_version"), "{err}");
        let err = error(SERVICE);
        assert!(err.contains("typed_config.domain"), "{err}");
        let err = error(&format!(
            "              domain: d\n              rate_limited_as_resource_exhausted: true\n{SERVICE}"
        ));
        assert!(err.contains("rate_limited_as_resource_exhausted"), "{err}");
    }
}
