//! CORS: `extensions.filters.http.cors.v3.Cors` (the filter, no fields) and
//! `CorsPolicy` — per route in `typed_per_filter_config`
//! (`extensions.filters.http.cors.v3.CorsPolicy`, Envoy >= 1.28) or in the older
//! route/virtual-host `cors` field (`config.route.v3.CorsPolicy`); both have the same
//! fields and meaning.

use crate::core::RuntimeFractionalPercent;
use crate::decode::{Decoder, Fields};
use crate::matcher::StringMatcher;

pub const CORS_TYPE: &str = "envoy.extensions.filters.http.cors.v3.Cors";
pub const CORS_POLICY_TYPE: &str = "envoy.extensions.filters.http.cors.v3.CorsPolicy";

/// `CorsPolicy`. Absent optional fields defer to the next less specific policy.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CorsPolicy {
    pub allow_origin_string_match: Vec<StringMatcher>,
    pub allow_methods: String,
    pub allow_headers: String,
    pub expose_headers: String,
    pub max_age: String,
    pub allow_credentials: Option<bool>,
    pub allow_private_network_access: Option<bool>,
    pub forward_not_matching_preflights: Option<bool>,
    /// `None`: enabled (100 %).
    pub filter_enabled: Option<RuntimeFractionalPercent>,
    /// `None`: no shadow (0 %).
    pub shadow_enabled: Option<RuntimeFractionalPercent>,
}

impl CorsPolicy {
    pub(crate) fn decode_fields(d: &mut Decoder, mut f: Fields<'_>) -> Option<CorsPolicy> {
        let p = CorsPolicy {
            allow_origin_string_match: f.list(d, "allow_origin_string_match"),
            allow_methods: f.or(d, "allow_methods", String::new()),
            allow_headers: f.or(d, "allow_headers", String::new()),
            expose_headers: f.or(d, "expose_headers", String::new()),
            max_age: f.or(d, "max_age", String::new()),
            allow_credentials: f.opt(d, "allow_credentials"),
            allow_private_network_access: f.opt(d, "allow_private_network_access"),
            forward_not_matching_preflights: f.opt(d, "forward_not_matching_preflights"),
            filter_enabled: f.opt(d, "filter_enabled"),
            shadow_enabled: f.opt(d, "shadow_enabled"),
        };
        f.finish(d);
        Some(p)
    }
}

impl crate::decode::Decode for CorsPolicy {
    fn decode(d: &mut Decoder, node: &crate::node::Node, path: &str) -> Option<Self> {
        let f = Fields::of(d, node, path)?;
        CorsPolicy::decode_fields(d, f)
    }
}
