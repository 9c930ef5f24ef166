//! `extensions.filters.http.local_ratelimit.v3.LocalRateLimit`: the filter's config,
//! and the same message per route (which then needs its own `token_bucket`).
//!
//! Descriptors need the route's `rate_limits` actions, which sluice does not have yet:
//! `descriptors`, `rate_limits`, `stage`, `vh_rate_limits` and
//! `max_dynamic_descriptors` are rejected unless empty/default; so are the per-connection
//! bucket, the local-cluster share and the gRPC RESOURCE_EXHAUSTED mapping.

use std::time::Duration;

use crate::core::{HeaderValueOption, RuntimeFractionalPercent};
use crate::decode::{Decode, Decoder, Fields};
use crate::error::ErrorKind;
use crate::node::Node;
use crate::proto_enum;

pub const LOCAL_RATE_LIMIT_TYPE: &str = "envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit";

/// `type.v3.TokenBucket`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenBucket {
    pub max_tokens: u32,
    pub tokens_per_fill: u32,
    pub fill_interval: Duration,
}

impl Decode for TokenBucket {
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::of(d, node, path)?;
        let max_tokens: Option<u32> = f.req(d, "max_tokens");
        let tokens_per_fill: u32 = f.or(d, "tokens_per_fill", 1);
        let fill_interval: Option<Duration> = f.req(d, "fill_interval");
        f.finish(d);
        let (max_tokens, fill_interval) = (max_tokens?, fill_interval?);
        if max_tokens == 0 {
            d.invalid(node, &format!("{path}.max_tokens"), "must be greater than 0");
            return None;
        }
        if tokens_per_fill == 0 {
            d.invalid(node, &format!("{path}.tokens_per_fill"), "must be greater than 0");
            return None;
        }
        // Envoy: "local rate limit token bucket fill timer must be >= 50ms".
        if fill_interval < Duration::from_millis(50) {
            d.invalid(
                node,
                &format!("{path}.fill_interval"),
                "local rate limit token bucket fill timer must be >= 50ms",
            );
            return None;
        }
        Some(TokenBucket { max_tokens, tokens_per_fill, fill_interval })
    }
}

proto_enum! {
    /// `common.ratelimit.v3.XRateLimitHeadersRFCVersion`.
    pub enum XRateLimitHeaders {
        Off = ("OFF", 0),
        DraftVersion03 = ("DRAFT_VERSION_03", 1),
    }
}

/// `LocalRateLimit`.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalRateLimit {
    pub stat_prefix: String,
    /// The status of a limited request (429 unless set).
    pub status: u16,
    /// `None`: no limit here (a route may set one).
    pub token_bucket: Option<TokenBucket>,
    /// `None`: the filter is off (Envoy's default: 0 %).
    pub filter_enabled: Option<RuntimeFractionalPercent>,
    /// `None`: limited requests pass (counted only).
    pub filter_enforced: Option<RuntimeFractionalPercent>,
    pub request_headers_to_add_when_not_enforced: Vec<HeaderValueOption>,
    pub response_headers_to_add: Vec<HeaderValueOption>,
    pub enable_x_ratelimit_headers: XRateLimitHeaders,
}

impl LocalRateLimit {
    /// `per_route`: the message sits in `typed_per_filter_config` (a bucket is required).
    pub(crate) fn decode_fields(d: &mut Decoder, mut f: Fields<'_>, per_route: bool) -> Option<LocalRateLimit> {
        let line = f.line();
        let prefix_path = f.field_path("stat_prefix");
        let tb_path = f.field_path("token_bucket");
        let status_path = f.field_path("status");
        let stat_prefix: Option<String> = f.req(d, "stat_prefix");
        let status = match f.take("status") {
            Some(n) => {
                let mut s = Fields::of(d, n, &status_path)?;
                let code: Option<u32> = s.req(d, "code");
                s.finish(d);
                code?
            }
            None => 429,
        };
        let token_bucket: Option<TokenBucket> = f.opt(d, "token_bucket");
        let filter_enabled = f.opt(d, "filter_enabled");
        let filter_enforced = f.opt(d, "filter_enforced");
        let request_headers_to_add_when_not_enforced = f.list(d, "request_headers_to_add_when_not_enforced");
        let response_headers_to_add: Vec<HeaderValueOption> = f.list(d, "response_headers_to_add");
        let enable_x_ratelimit_headers = f.or(d, "enable_x_ratelimit_headers", XRateLimitHeaders::Off);
        let descriptors_why =
            "descriptors need the route's `rate_limits` actions, which sluice does not support yet; remove them";
        f.empty_only(d, "descriptors", descriptors_why);
        f.empty_only(d, "rate_limits", descriptors_why);
        f.default_only(d, "stage", 0u32, descriptors_why);
        f.default_only(d, "always_consume_default_token_bucket", true, descriptors_why);
        f.unsupported_because(d, "vh_rate_limits", descriptors_why);
        f.unsupported_because(d, "max_dynamic_descriptors", descriptors_why);
        f.default_only(
            d,
            "local_rate_limit_per_downstream_connection",
            false,
            "per-connection buckets are not supported yet; remove it (the bucket is shared by all connections)",
        );
        f.default_only(
            d,
            "rate_limited_as_resource_exhausted",
            false,
            "gRPC status mapping is not supported yet; remove it",
        );
        f.unsupported(d, &["local_cluster_rate_limit"]);
        f.finish(d);
        let stat_prefix = stat_prefix?;
        if stat_prefix.is_empty() {
            d.error(ErrorKind::Invalid, &prefix_path, line, "must not be empty");
            return None;
        }
        if !(100..600).contains(&status) {
            // Envoy's HttpStatus: a code below 400 falls back to 429.
            d.error(ErrorKind::Invalid, &status_path, line, format!("{status} is not an HTTP status"));
            return None;
        }
        let status = if status < 400 { 429 } else { status as u16 };
        if per_route && token_bucket.is_none() {
            d.error(
                ErrorKind::Missing,
                &tb_path,
                line,
                "local rate limit token bucket must be set for per filter configs",
            );
            return None;
        }
        if response_headers_to_add.len() > 10 {
            d.error(ErrorKind::Invalid, &f_path(&tb_path, "response_headers_to_add"), line, "at most 10 headers");
            return None;
        }
        Some(LocalRateLimit {
            stat_prefix,
            status,
            token_bucket,
            filter_enabled,
            filter_enforced,
            request_headers_to_add_when_not_enforced,
            response_headers_to_add,
            enable_x_ratelimit_headers,
        })
    }
}

/// The sibling field's path of `path` (`a.b.token_bucket` -> `a.b.<name>`).
fn f_path(path: &str, name: &str) -> String {
    match path.rsplit_once('.') {
        Some((p, _)) => format!("{p}.{name}"),
        None => name.to_string(),
    }
}
