//! `extensions.filters.http.csrf.v3.CsrfPolicy`: the filter's config, and the same
//! message per route.

use crate::core::RuntimeFractionalPercent;
use crate::decode::{Decoder, Fields};
use crate::error::ErrorKind;
use crate::matcher::StringMatcher;

pub const CSRF_TYPE: &str = "envoy.extensions.filters.http.csrf.v3.CsrfPolicy";

#[derive(Debug, Clone, PartialEq)]
pub struct CsrfPolicy {
    /// Requests checked and invalid ones rejected (403).
    pub filter_enabled: RuntimeFractionalPercent,
    /// Requests checked and counted, never rejected.
    pub shadow_enabled: Option<RuntimeFractionalPercent>,
    /// Origins accepted besides the request's own host.
    pub additional_origins: Vec<StringMatcher>,
}

impl CsrfPolicy {
    pub(crate) fn decode_fields(d: &mut Decoder, mut f: Fields<'_>) -> Option<CsrfPolicy> {
        let line = f.line();
        let path = f.field_path("filter_enabled");
        let filter_enabled: Option<RuntimeFractionalPercent> = f.opt(d, "filter_enabled");
        let shadow_enabled = f.opt(d, "shadow_enabled");
        let additional_origins = f.list(d, "additional_origins");
        f.finish(d);
        let Some(filter_enabled) = filter_enabled else {
            // Envoy: `filter_enabled` is required ([(validate.rules).message = {required: true}]).
            d.error(ErrorKind::Missing, &path, line, "required field is missing");
            return None;
        };
        Some(CsrfPolicy { filter_enabled, shadow_enabled, additional_origins })
    }
}
