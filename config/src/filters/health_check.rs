//! `extensions.filters.http.health_check.v3.HealthCheck`: requests matching `headers`
//! are health checks, answered by the proxy (or, with `pass_through_mode`, forwarded
//! unless the server is failing). The response cache (`cache_time`) and
//! `cluster_min_healthy_percentages` are not supported yet and are rejected.

use crate::decode::{Decoder, Fields};
use crate::error::ErrorKind;
use crate::matcher::HeaderMatcher;

pub const HEALTH_CHECK_TYPE: &str = "envoy.extensions.filters.http.health_check.v3.HealthCheck";

#[derive(Debug, Clone, PartialEq)]
pub struct HealthCheck {
    pub pass_through_mode: bool,
    /// All must match for a request to be a health check.
    pub headers: Vec<HeaderMatcher>,
}

impl HealthCheck {
    pub(crate) fn decode_fields(d: &mut Decoder, mut f: Fields<'_>) -> Option<HealthCheck> {
        let line = f.line();
        let ptm_path = f.field_path("pass_through_mode");
        let pass_through_mode: Option<bool> = f.opt(d, "pass_through_mode");
        let headers = f.list(d, "headers");
        f.unsupported_because(d, "cache_time", "the health check response cache is not supported yet; remove it");
        f.empty_only(
            d,
            "cluster_min_healthy_percentages",
            "cluster_min_healthy_percentages is not supported yet; remove it",
        );
        f.finish(d);
        let Some(pass_through_mode) = pass_through_mode else {
            d.error(ErrorKind::Missing, &ptm_path, line, "required field is missing");
            return None;
        };
        Some(HealthCheck { pass_through_mode, headers })
    }
}
