//! `extensions.filters.http.ext_authz.v3.ExtAuthz` and `ExtAuthzPerRoute`: the
//! external authorization filter's config, read as Envoy documents it.
//!
//! Supported: `http_service` (`server_uri`, `path_prefix`, `authorization_request`
//! `allowed_headers`/`headers_to_add`, `authorization_response`
//! `allowed_upstream_headers`/`allowed_upstream_headers_to_append`/
//! `allowed_client_headers`/`allowed_client_headers_on_success`/
//! `dynamic_metadata_from_headers`), `grpc_service` (`envoy_grpc.cluster_name`,
//! `timeout`), `transport_api_version` (V3), `failure_mode_allow`,
//! `failure_mode_allow_header_add`, `clear_route_cache`, `status_on_error`,
//! `stat_prefix`, `filter_enabled`, `deny_at_disable`, `allowed_headers`,
//! `with_request_body` (`max_request_bytes`, `allow_partial_message`, `pack_as_bytes`);
//! per route `disabled` and `check_settings` (`context_extensions`,
//! `disable_request_body_buffering`, `with_request_body`). Every other field is refused
//! with its path.

use std::time::Duration;

use crate::core::RuntimeFractionalPercent;
use crate::decode::{Decode, Decoder, Fields};
use crate::error::ErrorKind;
use crate::matcher::StringMatcher;
use crate::node::Node;

pub const EXT_AUTHZ_TYPE: &str = "envoy.extensions.filters.http.ext_authz.v3.ExtAuthz";
pub const EXT_AUTHZ_PER_ROUTE_TYPE: &str = "envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute";

/// Envoy's default for both services: 200 ms.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(200);

/// `type.matcher.v3.ListStringMatcher`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ListStringMatcher {
    pub patterns: Vec<StringMatcher>,
}

impl ListStringMatcher {
    pub fn matches(&self, value: &[u8]) -> bool {
        self.patterns.iter().any(|m| m.matches(value))
    }
}

impl Decode for ListStringMatcher {
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::of(d, node, path)?;
        let patterns: Vec<StringMatcher> = f.list(d, "patterns");
        let line = f.line();
        f.finish(d);
        if patterns.is_empty() {
            d.error(ErrorKind::Invalid, &format!("{path}.patterns"), line, "must have at least 1 item");
            return None;
        }
        Some(ListStringMatcher { patterns })
    }
}

/// `config.core.v3.HeaderValue` (`key`, `value`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderValue {
    /// Lower-cased.
    pub key: String,
    pub value: String,
}

impl Decode for HeaderValue {
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::of(d, node, path)?;
        let key: Option<String> = f.req(d, "key");
        let value: String = f.or(d, "value", String::new());
        f.unsupported(d, &["raw_value"]);
        let line = f.line();
        f.finish(d);
        let key = key?;
        if key.is_empty() || !crate::matcher::is_header_name(&key) {
            d.error(ErrorKind::Invalid, &format!("{path}.key"), line, format!("`{key}` is not a header name"));
            return None;
        }
        Some(HeaderValue { key: key.to_ascii_lowercase(), value })
    }
}

/// `HttpService`.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpService {
    /// `server_uri.cluster`.
    pub cluster: String,
    /// `server_uri.uri` (Envoy sends to the cluster; the URI names it for humans).
    pub uri: String,
    /// `server_uri.timeout`.
    pub timeout: Duration,
    pub path_prefix: String,
    /// `authorization_request.allowed_headers` (deprecated; `ExtAuthz.allowed_headers`
    /// wins).
    pub allowed_headers: Option<ListStringMatcher>,
    pub headers_to_add: Vec<HeaderValue>,
    pub allowed_upstream_headers: Option<ListStringMatcher>,
    pub allowed_upstream_headers_to_append: Option<ListStringMatcher>,
    pub allowed_client_headers: Option<ListStringMatcher>,
    pub allowed_client_headers_on_success: Option<ListStringMatcher>,
    pub dynamic_metadata_from_headers: Option<ListStringMatcher>,
}

impl Decode for HttpService {
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::of(d, node, path)?;
        let uri = f.take("server_uri");
        let uri_path = f.field_path("server_uri");
        let path_prefix: String = f.or(d, "path_prefix", String::new());
        let request = f.take("authorization_request");
        let request_path = f.field_path("authorization_request");
        let response = f.take("authorization_response");
        let response_path = f.field_path("authorization_response");
        f.unsupported(d, &["retry_policy"]);
        let line = f.line();
        f.finish(d);
        let Some(uri) = uri else {
            d.error(ErrorKind::Missing, &uri_path, line, "http_service needs a server_uri");
            return None;
        };
        let mut u = Fields::of(d, uri, &uri_path)?;
        let uri_text: Option<String> = u.req(d, "uri");
        let cluster: Option<String> = u.req(d, "cluster");
        let timeout: Option<Duration> = u.req(d, "timeout");
        u.finish(d);
        if !path_prefix.is_empty() && !path_prefix.starts_with('/') {
            d.error(ErrorKind::Invalid, &format!("{path}.path_prefix"), line, "must start with `/`");
        }
        let mut svc = HttpService {
            cluster: cluster?,
            uri: uri_text?,
            timeout: timeout?,
            path_prefix,
            allowed_headers: None,
            headers_to_add: Vec::new(),
            allowed_upstream_headers: None,
            allowed_upstream_headers_to_append: None,
            allowed_client_headers: None,
            allowed_client_headers_on_success: None,
            dynamic_metadata_from_headers: None,
        };
        if let Some(n) = request {
            let mut r = Fields::of(d, n, &request_path)?;
            svc.allowed_headers = r.opt(d, "allowed_headers");
            svc.headers_to_add = r.list(d, "headers_to_add");
            r.finish(d);
        }
        if let Some(n) = response {
            let mut r = Fields::of(d, n, &response_path)?;
            svc.allowed_upstream_headers = r.opt(d, "allowed_upstream_headers");
            svc.allowed_upstream_headers_to_append = r.opt(d, "allowed_upstream_headers_to_append");
            svc.allowed_client_headers = r.opt(d, "allowed_client_headers");
            svc.allowed_client_headers_on_success = r.opt(d, "allowed_client_headers_on_success");
            svc.dynamic_metadata_from_headers = r.opt(d, "dynamic_metadata_from_headers");
            r.finish(d);
        }
        Some(svc)
    }
}

/// `config.core.v3.GrpcService` with `envoy_grpc`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrpcService {
    pub cluster_name: String,
    /// `timeout` (default 200 ms for ext_authz).
    pub timeout: Duration,
}

impl Decode for GrpcService {
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::of(d, node, path)?;
        let envoy = f.take("envoy_grpc");
        let envoy_path = f.field_path("envoy_grpc");
        let timeout: Duration = f.or(d, "timeout", DEFAULT_TIMEOUT);
        f.unsupported(d, &["google_grpc", "initial_metadata", "retry_policy"]);
        let line = f.line();
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
        Some(GrpcService { cluster_name, timeout })
    }
}

/// `BufferSettings`: the request body goes to the service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BufferSettings {
    /// At most this many body bytes are held and sent (> 0).
    pub max_request_bytes: u32,
    /// Send the first `max_request_bytes` of a longer body instead of answering 413.
    pub allow_partial_message: bool,
    /// gRPC: the body goes in `raw_body` (bytes), not `body` (a UTF-8 string).
    pub pack_as_bytes: bool,
}

impl Decode for BufferSettings {
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::of(d, node, path)?;
        let max: Option<u32> = f.req(d, "max_request_bytes");
        let allow_partial_message = f.or(d, "allow_partial_message", false);
        let pack_as_bytes = f.or(d, "pack_as_bytes", false);
        let line = f.line();
        f.finish(d);
        let max_request_bytes = max?;
        if max_request_bytes == 0 {
            d.error(ErrorKind::Invalid, &format!("{path}.max_request_bytes"), line, "must be greater than 0");
            return None;
        }
        Some(BufferSettings { max_request_bytes, allow_partial_message, pack_as_bytes })
    }
}

/// Where the filter asks.
#[derive(Debug, Clone, PartialEq)]
pub enum AuthzService {
    Http(Box<HttpService>),
    Grpc(GrpcService),
}

/// `config.core.v3.RuntimeFeatureFlag`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeFeatureFlag {
    pub default_value: bool,
    pub runtime_key: String,
}

impl Decode for RuntimeFeatureFlag {
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::of(d, node, path)?;
        let default_value: Option<bool> = f.req(d, "default_value");
        let runtime_key: Option<String> = f.req(d, "runtime_key");
        f.finish(d);
        Some(RuntimeFeatureFlag { default_value: default_value?, runtime_key: runtime_key? })
    }
}

/// `ExtAuthz`.
#[derive(Debug, Clone, PartialEq)]
pub struct ExtAuthz {
    pub service: AuthzService,
    pub failure_mode_allow: bool,
    pub failure_mode_allow_header_add: bool,
    pub clear_route_cache: bool,
    /// `status_on_error.code` (403).
    pub status_on_error: u16,
    pub stat_prefix: String,
    pub filter_enabled: Option<RuntimeFractionalPercent>,
    pub deny_at_disable: Option<RuntimeFeatureFlag>,
    /// `allowed_headers` (or the HTTP service's deprecated one).
    pub allowed_headers: Option<ListStringMatcher>,
    /// `with_request_body`.
    pub with_request_body: Option<BufferSettings>,
}

impl ExtAuthz {
    pub fn decode_fields(d: &mut Decoder, mut f: Fields<'_>) -> Option<ExtAuthz> {
        let path = f.path().to_string();
        let line = f.line();
        let http: Option<HttpService> = f.opt(d, "http_service");
        let grpc: Option<GrpcService> = f.opt(d, "grpc_service");
        let has = (f.has("http_service"), f.has("grpc_service"));
        let api = f.take("transport_api_version");
        let failure_mode_allow = f.or(d, "failure_mode_allow", false);
        let failure_mode_allow_header_add = f.or(d, "failure_mode_allow_header_add", false);
        let clear_route_cache = f.or(d, "clear_route_cache", false);
        let status_on_error = f.take("status_on_error");
        let status_path = f.field_path("status_on_error");
        let stat_prefix: String = f.or(d, "stat_prefix", String::new());
        let filter_enabled: Option<RuntimeFractionalPercent> = f.opt(d, "filter_enabled");
        let deny_at_disable: Option<RuntimeFeatureFlag> = f.opt(d, "deny_at_disable");
        let allowed_headers: Option<ListStringMatcher> = f.opt(d, "allowed_headers");
        f.default_only(d, "include_peer_certificate", false, "the peer certificate is not sent to the service");
        f.default_only(d, "include_tls_session", false, "TLS session details are not sent to the service");
        f.empty_only(d, "metadata_context_namespaces", "metadata is not sent to the service");
        f.empty_only(d, "typed_metadata_context_namespaces", "metadata is not sent to the service");
        f.empty_only(d, "route_metadata_context_namespaces", "metadata is not sent to the service");
        f.empty_only(d, "route_typed_metadata_context_namespaces", "metadata is not sent to the service");
        let with_request_body: Option<BufferSettings> = f.opt(d, "with_request_body");
        f.unsupported(
            d,
            &[
                "filter_enabled_metadata",
                "bootstrap_metadata_labels_key",
                "disallowed_headers",
                "charge_cluster_response_stats",
                "encode_raw_headers",
                "validate_mutations",
                "emit_filter_state_stats",
                "decoder_header_mutation_rules",
                "enable_dynamic_metadata_ingestion",
                "filter_metadata",
                "max_denied_response_body_bytes",
            ],
        );
        f.finish(d);
        if let Some(n) = api {
            match crate::decode::scalar(d, n, &format!("{path}.transport_api_version"), "an API version") {
                Some("V3") | Some("3") => {}
                Some(other) => d.error(
                    ErrorKind::Unsupported,
                    &format!("{path}.transport_api_version"),
                    n.line,
                    format!("`{other}`: only V3 of the ext_authz transport API is supported"),
                ),
                None => {}
            }
        }
        let status_on_error = match status_on_error {
            None => 403,
            Some(n) => {
                let mut s = Fields::of(d, n, &status_path)?;
                let code: Option<u32> = s.req(d, "code");
                s.finish(d);
                let code = code?;
                if !(100..=599).contains(&code) {
                    d.error(ErrorKind::Invalid, &format!("{status_path}.code"), n.line, "must be in 100..=599");
                    return None;
                }
                code as u16
            }
        };
        let service = match (has, http, grpc) {
            ((true, true), _, _) => {
                d.error(ErrorKind::Invalid, &path, line, "set only one of `grpc_service`, `http_service`");
                return None;
            }
            (_, Some(h), None) => AuthzService::Http(Box::new(h)),
            (_, None, Some(g)) => AuthzService::Grpc(g),
            ((false, false), _, _) => {
                d.error(ErrorKind::Missing, &path, line, "ext_authz needs a `grpc_service` or an `http_service`");
                return None;
            }
            _ => return None,
        };
        let allowed_headers = allowed_headers.or_else(|| match &service {
            AuthzService::Http(h) => h.allowed_headers.clone(),
            AuthzService::Grpc(_) => None,
        });
        Some(ExtAuthz {
            service,
            failure_mode_allow,
            failure_mode_allow_header_add,
            clear_route_cache,
            status_on_error,
            stat_prefix,
            filter_enabled,
            deny_at_disable,
            allowed_headers,
            with_request_body,
        })
    }
}

/// `ExtAuthzPerRoute`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExtAuthzPerRoute {
    /// `disabled: true`.
    Disabled,
    /// `check_settings`: `context_extensions` (sorted by key), and the route's request
    /// body buffering: `disable_request_body_buffering`, or `with_request_body` (which
    /// replaces the filter's).
    CheckSettings {
        context_extensions: Vec<(String, String)>,
        disable_request_body_buffering: bool,
        with_request_body: Option<BufferSettings>,
    },
}

impl ExtAuthzPerRoute {
    pub fn decode_fields(d: &mut Decoder, mut f: Fields<'_>) -> Option<ExtAuthzPerRoute> {
        let path = f.path().to_string();
        let line = f.line();
        let disabled: Option<bool> = f.opt(d, "disabled");
        let settings = f.take("check_settings");
        let settings_path = f.field_path("check_settings");
        f.finish(d);
        match (disabled, settings) {
            (Some(_), Some(_)) => {
                d.error(ErrorKind::Invalid, &path, line, "set only one of `disabled`, `check_settings`");
                None
            }
            (Some(true), None) => Some(ExtAuthzPerRoute::Disabled),
            (Some(false), None) => {
                d.error(ErrorKind::Invalid, &format!("{path}.disabled"), line, "must be true");
                None
            }
            (None, Some(n)) => {
                let mut s = Fields::of(d, n, &settings_path)?;
                let ext = s.take("context_extensions");
                let ext_path = s.field_path("context_extensions");
                let disable_request_body_buffering = s.or(d, "disable_request_body_buffering", false);
                let with_request_body: Option<BufferSettings> = s.opt(d, "with_request_body");
                s.finish(d);
                if disable_request_body_buffering && with_request_body.is_some() {
                    d.error(
                        ErrorKind::Invalid,
                        &settings_path,
                        n.line,
                        "set only one of `disable_request_body_buffering`, `with_request_body`",
                    );
                    return None;
                }
                let mut context_extensions = Vec::new();
                match ext.map(|n| (n, &n.value)) {
                    Some((_, crate::node::Value::Map(entries))) => {
                        for (k, v) in entries {
                            let p = format!("{ext_path}.{}", k.name);
                            if let Some(s) = crate::decode::scalar(d, v, &p, "a string") {
                                context_extensions.push((k.name.clone(), s.to_string()));
                            }
                        }
                    }
                    Some((_, crate::node::Value::Null)) | None => {}
                    Some((n, _)) => d.invalid(n, &ext_path, "expected a map of string to string"),
                }
                context_extensions.sort();
                Some(ExtAuthzPerRoute::CheckSettings {
                    context_extensions,
                    disable_request_body_buffering,
                    with_request_body,
                })
            }
            (None, None) => {
                d.error(ErrorKind::Missing, &path, line, "set one of `disabled`, `check_settings`");
                None
            }
        }
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
  listeners:
  - name: l
    address: {{socket_address: {{address: 127.0.0.1, port_value: 8080}}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress
          route_config: {{virtual_hosts: [{{name: vh, domains: ['*'], routes: [{{match: {{prefix: /}}, route: {{cluster: authz}}}}]}}]}}
          http_filters:
          - name: envoy.filters.http.ext_authz
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz
{filter}
          - {{name: envoy.filters.http.router, typed_config: {{}}}}
  clusters:
  - name: authz
    load_assignment: {{cluster_name: authz, endpoints: [{{lb_endpoints: [{{endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: 9000}}}}}}}}]}}]}}
"#
        )
    }

    fn ext_authz(filter: &str) -> ExtAuthz {
        let loaded = crate::load_str(&bootstrap(filter)).unwrap_or_else(|e| panic!("{e}"));
        let NetworkFilterKind::HttpConnectionManager(h) =
            &loaded.bootstrap.listeners[0].filter_chains[0].filters[0].kind
        else {
            panic!()
        };
        match &h.http_filters[0].kind {
            HttpFilterKind::ExtAuthz(e) => (**e).clone(),
            other => panic!("{other:?}"),
        }
    }

    fn error(filter: &str) -> String {
        crate::load_str(&bootstrap(filter)).err().map(|e| e.to_string()).expect("should fail")
    }

    #[test]
    fn grpc_defaults_and_http_service() {
        let e = ext_authz("              grpc_service: {envoy_grpc: {cluster_name: authz}}");
        assert_eq!(
            e.service,
            AuthzService::Grpc(GrpcService { cluster_name: "authz".into(), timeout: DEFAULT_TIMEOUT })
        );
        assert_eq!((e.status_on_error, e.failure_mode_allow, e.stat_prefix.as_str()), (403, false, ""));
        let e = ext_authz(
            "              http_service: {server_uri: {uri: x, cluster: authz, timeout: 0.25s}, path_prefix: /auth}\n              status_on_error: {code: 503}",
        );
        let AuthzService::Http(h) = &e.service else { panic!() };
        assert_eq!(
            (h.cluster.as_str(), h.timeout, h.path_prefix.as_str()),
            ("authz", Duration::from_millis(250), "/auth")
        );
        assert_eq!(e.status_on_error, 503);
    }

    #[test]
    fn with_request_body_is_read() {
        let e = ext_authz(
            "              grpc_service: {envoy_grpc: {cluster_name: authz}}\n              with_request_body: {max_request_bytes: 10, pack_as_bytes: true}",
        );
        assert_eq!(
            e.with_request_body,
            Some(BufferSettings { max_request_bytes: 10, allow_partial_message: false, pack_as_bytes: true })
        );
    }

    #[test]
    fn unsupported_fields_are_refused_with_their_path() {
        let base = "              grpc_service: {envoy_grpc: {cluster_name: authz}}\n";
        let err = error(&format!("{base}              with_request_body: {{max_request_bytes: 0}}"));
        assert!(err.contains("typed_config.with_request_body.max_request_bytes"), "{err}");
        let err = error(&format!("{base}              with_request_body: {{allow_partial_message: true}}"));
        assert!(err.contains("with_request_body.max_request_bytes"), "{err}");
        let err = error(&format!("{base}              include_peer_certificate: true"));
        assert!(err.contains("include_peer_certificate"), "{err}");
        let err = error("              grpc_service: {google_grpc: {target_uri: x, stat_prefix: y}}");
        assert!(err.contains("grpc_service.google_grpc"), "{err}");
        let err = error(&format!("{base}              transport_api_version: V2"));
        assert!(err.contains("transport_api_version"), "{err}");
        let err = error("              failure_mode_allow: true");
        assert!(err.contains("grpc_service") && err.contains("http_service"), "{err}");
    }
}
