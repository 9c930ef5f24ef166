//! The global rate limit filter's config and the routes' `rate_limits` in
//! `/config_dump`.

use super::{list, Dump, Json};
use crate::filters::ratelimit::{RateLimitFilter, RateLimitPerRoute, RequestType, VhRateLimits, XRateLimitHeaders};
use crate::route::rate_limit::{RateLimit, RateLimitAction};

impl Dump for RateLimitFilter {
    fn dump(&self) -> Json {
        let request_type = match self.request_type {
            RequestType::Internal => "internal",
            RequestType::External => "external",
            RequestType::Both => "both",
        };
        let headers = match self.x_ratelimit_headers {
            XRateLimitHeaders::Off => "OFF",
            XRateLimitHeaders::DraftVersion03 => "DRAFT_VERSION_03",
        };
        let grpc = Json::obj()
            .with("envoy_grpc", Json::obj().with("cluster_name", &self.service.cluster_name))
            .with("timeout", self.service.timeout);
        Json::obj()
            .with("domain", &self.domain)
            .with("stage", u64::from(self.stage))
            .with("request_type", request_type)
            .with("timeout", self.timeout)
            .with("failure_mode_deny", self.failure_mode_deny)
            .with("rate_limit_service", Json::obj().with("grpc_service", grpc).with("transport_api_version", "V3"))
            .with("enable_x_ratelimit_headers", headers)
            .with("disable_x_envoy_ratelimited_header", self.disable_x_envoy_ratelimited_header)
            .with("rate_limited_status", Json::obj().with("code", u64::from(self.rate_limited_status)))
            .with("status_on_error", Json::obj().with("code", u64::from(self.status_on_error)))
    }
}

impl Dump for RateLimitPerRoute {
    fn dump(&self) -> Json {
        let vh = match self.vh_rate_limits {
            VhRateLimits::Override => "OVERRIDE",
            VhRateLimits::Include => "INCLUDE",
            VhRateLimits::Ignore => "IGNORE",
        };
        Json::obj().with("vh_rate_limits", vh)
    }
}

impl Dump for RateLimitAction {
    fn dump(&self) -> Json {
        match self {
            RateLimitAction::SourceCluster => Json::obj().with("source_cluster", Json::obj()),
            RateLimitAction::DestinationCluster => Json::obj().with("destination_cluster", Json::obj()),
            RateLimitAction::RemoteAddress => Json::obj().with("remote_address", Json::obj()),
            RateLimitAction::RequestHeaders { header_name, descriptor_key, skip_if_absent } => Json::obj().with(
                "request_headers",
                Json::obj()
                    .with("header_name", header_name)
                    .with("descriptor_key", descriptor_key)
                    .with("skip_if_absent", *skip_if_absent),
            ),
            RateLimitAction::GenericKey { descriptor_key, descriptor_value } => Json::obj().with(
                "generic_key",
                Json::obj().with("descriptor_key", descriptor_key).with("descriptor_value", descriptor_value),
            ),
            RateLimitAction::HeaderValueMatch { descriptor_key, descriptor_value, expect_match, headers } => {
                Json::obj().with(
                    "header_value_match",
                    Json::obj()
                        .with("descriptor_key", descriptor_key)
                        .with("descriptor_value", descriptor_value)
                        .with("expect_match", *expect_match)
                        .with("headers", list(headers)),
                )
            }
        }
    }
}

impl Dump for RateLimit {
    fn dump(&self) -> Json {
        Json::obj()
            .with("stage", u64::from(self.stage))
            .with("disable_key", &self.disable_key)
            .with("actions", list(&self.actions))
    }
}
