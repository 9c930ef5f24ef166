//! HTTP connection manager fields whose features other issues will bring: accepted
//! only in the shape that changes nothing (absent, the default, or empty), otherwise
//! rejected with what to do.

use crate::decode::{Decoder, Fields};

/// Check the not-yet-implemented fields of an `HttpConnectionManager`.
pub(crate) fn check(d: &mut Decoder, f: &mut Fields<'_>) {
    f.default_only(
        d,
        "add_user_agent",
        false,
        "sluice does not add user-agent or x-envoy-downstream-service-cluster; remove it",
    );
}
