//! `extensions.filters.http.decompressor.v3.Decompressor`: the library and, per
//! direction, `common_config` (`enabled`, `ignore_no_transform_header`); the request
//! direction also `advertise_accept_encoding` (default true). Both directions are on
//! by default.

use crate::decode::{Decoder, Fields};
use crate::filters::compression::{DecompressorLibrary, RuntimeFeatureFlag};
use crate::node::Node;

pub const DECOMPRESSOR_TYPE: &str = "envoy.extensions.filters.http.decompressor.v3.Decompressor";

/// `Decompressor.CommonDirectionConfig`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecompressDirection {
    pub enabled: RuntimeFeatureFlag,
    pub ignore_no_transform_header: bool,
}

impl DecompressDirection {
    fn decode(d: &mut Decoder, node: Option<&Node>, path: &str) -> Option<DecompressDirection> {
        let Some(node) = node else {
            return Some(DecompressDirection { enabled: RuntimeFeatureFlag::on(), ignore_no_transform_header: false });
        };
        let mut f = Fields::of(d, node, path)?;
        let enabled = f.opt(d, "enabled").unwrap_or_else(RuntimeFeatureFlag::on);
        let ignore_no_transform_header = f.or(d, "ignore_no_transform_header", false);
        f.finish(d);
        Some(DecompressDirection { enabled, ignore_no_transform_header })
    }
}

/// `Decompressor`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decompressor {
    pub library: DecompressorLibrary,
    pub request: DecompressDirection,
    /// `request_direction_config.advertise_accept_encoding`.
    pub advertise_accept_encoding: bool,
    pub response: DecompressDirection,
}

/// The `common_config` of a direction message (absent: defaults).
fn direction(
    d: &mut Decoder,
    node: Option<&Node>,
    path: &str,
    advertise: &mut Option<bool>,
) -> Option<DecompressDirection> {
    let Some(node) = node else {
        return DecompressDirection::decode(d, None, path);
    };
    let mut f = Fields::of(d, node, path)?;
    let cp = f.field_path("common_config");
    let common = f.take("common_config");
    if let Some(a) = advertise.as_mut() {
        *a = f.or(d, "advertise_accept_encoding", true);
    }
    f.finish(d);
    DecompressDirection::decode(d, common, &cp)
}

impl Decompressor {
    pub(crate) fn decode_fields(d: &mut Decoder, mut f: Fields<'_>) -> Option<Decompressor> {
        let library: Option<DecompressorLibrary> = f.req(d, "decompressor_library");
        let rq_path = f.field_path("request_direction_config");
        let rq = f.take("request_direction_config");
        let rs_path = f.field_path("response_direction_config");
        let rs = f.take("response_direction_config");
        f.finish(d);
        let mut advertise = Some(true);
        let request = direction(d, rq, &rq_path, &mut advertise)?;
        let response = direction(d, rs, &rs_path, &mut None)?;
        Some(Decompressor {
            library: library?,
            request,
            advertise_accept_encoding: advertise.unwrap_or(true),
            response,
        })
    }
}
