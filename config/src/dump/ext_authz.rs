//! ext_authz's config in `/config_dump`.

use super::{list, Dump, Json};
use crate::filters::ext_authz::{
    AuthzService, BufferSettings, ExtAuthz, ExtAuthzPerRoute, HeaderValue, ListStringMatcher, RuntimeFeatureFlag,
};

impl Dump for ListStringMatcher {
    fn dump(&self) -> Json {
        Json::obj().with("patterns", list(&self.patterns))
    }
}

impl Dump for HeaderValue {
    fn dump(&self) -> Json {
        Json::obj().with("key", &self.key).with("value", &self.value)
    }
}

impl Dump for RuntimeFeatureFlag {
    fn dump(&self) -> Json {
        Json::obj().with("default_value", self.default_value).with("runtime_key", &self.runtime_key)
    }
}

impl Dump for BufferSettings {
    fn dump(&self) -> Json {
        Json::obj()
            .with("max_request_bytes", u64::from(self.max_request_bytes))
            .with("allow_partial_message", self.allow_partial_message)
            .with("pack_as_bytes", self.pack_as_bytes)
    }
}

impl Dump for ExtAuthz {
    fn dump(&self) -> Json {
        let j = match &self.service {
            AuthzService::Http(h) => {
                let request = Json::obj()
                    .with_opt("allowed_headers", h.allowed_headers.as_ref().map(Dump::dump))
                    .with("headers_to_add", list(&h.headers_to_add));
                let response = Json::obj()
                    .with_opt("allowed_upstream_headers", h.allowed_upstream_headers.as_ref().map(Dump::dump))
                    .with_opt(
                        "allowed_upstream_headers_to_append",
                        h.allowed_upstream_headers_to_append.as_ref().map(Dump::dump),
                    )
                    .with_opt("allowed_client_headers", h.allowed_client_headers.as_ref().map(Dump::dump))
                    .with_opt(
                        "allowed_client_headers_on_success",
                        h.allowed_client_headers_on_success.as_ref().map(Dump::dump),
                    )
                    .with_opt(
                        "dynamic_metadata_from_headers",
                        h.dynamic_metadata_from_headers.as_ref().map(Dump::dump),
                    );
                let uri = Json::obj().with("uri", &h.uri).with("cluster", &h.cluster).with("timeout", h.timeout);
                Json::obj().with(
                    "http_service",
                    Json::obj()
                        .with("server_uri", uri)
                        .with("path_prefix", &h.path_prefix)
                        .with("authorization_request", request)
                        .with("authorization_response", response),
                )
            }
            AuthzService::Grpc(g) => Json::obj().with(
                "grpc_service",
                Json::obj()
                    .with("envoy_grpc", Json::obj().with("cluster_name", &g.cluster_name))
                    .with("timeout", g.timeout),
            ),
        };
        j.with("transport_api_version", "V3")
            .with("failure_mode_allow", self.failure_mode_allow)
            .with("failure_mode_allow_header_add", self.failure_mode_allow_header_add)
            .with("clear_route_cache", self.clear_route_cache)
            .with("status_on_error", Json::obj().with("code", self.status_on_error as u64))
            .with("stat_prefix", &self.stat_prefix)
            .with_opt("filter_enabled", self.filter_enabled.as_ref().map(Dump::dump))
            .with_opt("deny_at_disable", self.deny_at_disable.as_ref().map(Dump::dump))
            .with_opt("allowed_headers", self.allowed_headers.as_ref().map(Dump::dump))
            .with_opt("with_request_body", self.with_request_body.as_ref().map(Dump::dump))
    }
}

impl Dump for ExtAuthzPerRoute {
    fn dump(&self) -> Json {
        match self {
            ExtAuthzPerRoute::Disabled => Json::obj().with("disabled", true),
            ExtAuthzPerRoute::CheckSettings {
                context_extensions,
                disable_request_body_buffering,
                with_request_body,
            } => {
                let ext = Json::Obj(context_extensions.iter().map(|(k, v)| (k.clone(), Json::from(v))).collect());
                let settings = Json::obj()
                    .with("context_extensions", ext)
                    .with("disable_request_body_buffering", *disable_request_body_buffering)
                    .with_opt("with_request_body", with_request_body.as_ref().map(Dump::dump));
                Json::obj().with("check_settings", settings)
            }
        }
    }
}
