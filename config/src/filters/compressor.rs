//! `extensions.filters.http.compressor.v3.Compressor` and `CompressorPerRoute`, as
//! Envoy reads them: the per-direction configs, and for the response direction the
//! deprecated top-level fields (`content_length`, `content_type`,
//! `disable_on_etag_header`, `remove_accept_encoding_header`, `runtime_enabled`) when
//! `response_direction_config` is absent. Request compression is off unless
//! `request_direction_config` is given.

use crate::decode::{Decode, Decoder, Fields};
use crate::filters::compression::{CompressorLibrary, RuntimeFeatureFlag};
use crate::node::Node;

pub const COMPRESSOR_TYPE: &str = "envoy.extensions.filters.http.compressor.v3.Compressor";
pub const COMPRESSOR_PER_ROUTE_TYPE: &str = "envoy.extensions.filters.http.compressor.v3.CompressorPerRoute";

/// Envoy's `DefaultMinimumContentLength`.
pub const DEFAULT_MIN_CONTENT_LENGTH: u32 = 30;

/// Envoy's default `content_type` list (compressor.cc `defaultContentEncoding`).
pub const DEFAULT_CONTENT_TYPES: &[&str] = &[
    "text/html",
    "text/plain",
    "text/css",
    "application/javascript",
    "application/x-javascript",
    "text/javascript",
    "text/x-javascript",
    "text/ecmascript",
    "text/js",
    "text/jscript",
    "text/x-js",
    "application/ecmascript",
    "application/x-json",
    "application/xml",
    "application/json",
    "image/svg+xml",
    "text/xml",
    "application/xhtml+xml",
];

/// `Compressor.CommonDirectionConfig`, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectionConfig {
    pub enabled: RuntimeFeatureFlag,
    /// `min_content_length` (0 or absent: 30).
    pub min_content_length: u32,
    /// Lower-case media types; Envoy's defaults when none is given.
    pub content_type: Vec<String>,
}

impl DirectionConfig {
    fn new(enabled: Option<RuntimeFeatureFlag>, min: Option<u32>, types: Vec<String>) -> DirectionConfig {
        let content_type = if types.is_empty() {
            DEFAULT_CONTENT_TYPES.iter().map(|s| s.to_string()).collect()
        } else {
            types.into_iter().map(|t| t.to_ascii_lowercase()).collect()
        };
        DirectionConfig {
            enabled: enabled.unwrap_or_else(RuntimeFeatureFlag::on),
            min_content_length: min.filter(|&n| n > 0).unwrap_or(DEFAULT_MIN_CONTENT_LENGTH),
            content_type,
        }
    }

    fn decode_common(d: &mut Decoder, node: Option<&Node>, path: &str) -> Option<DirectionConfig> {
        let Some(node) = node else {
            return Some(DirectionConfig::new(None, None, Vec::new()));
        };
        let mut f = Fields::of(d, node, path)?;
        let enabled = f.opt(d, "enabled");
        let min = f.opt(d, "min_content_length");
        let types = f.list(d, "content_type");
        f.finish(d);
        Some(DirectionConfig::new(enabled, min, types))
    }
}

/// The response direction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseDirection {
    pub common: DirectionConfig,
    pub disable_on_etag_header: bool,
    pub remove_accept_encoding_header: bool,
    pub uncompressible_response_codes: Vec<u32>,
    pub status_header_enabled: bool,
}

/// `Compressor`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compressor {
    pub library: CompressorLibrary,
    /// `None`: requests are not compressed.
    pub request: Option<DirectionConfig>,
    pub response: ResponseDirection,
    /// Stats of the response direction have the `response.` segment (Envoy keeps the
    /// legacy tree without it when `response_direction_config` is absent).
    pub response_stats_segment: bool,
    pub choose_first: bool,
}

impl Compressor {
    pub(crate) fn decode_fields(d: &mut Decoder, mut f: Fields<'_>) -> Option<Compressor> {
        let library: Option<CompressorLibrary> = f.req(d, "compressor_library");
        f.default_only(d, "choose_first", false, "sluice picks among compressors by q-value and chain order only");
        let choose_first = false;
        // Deprecated response-direction fields.
        let content_length: Option<u32> = f.opt(d, "content_length");
        let content_type: Vec<String> = f.list(d, "content_type");
        let etag: bool = f.or(d, "disable_on_etag_header", false);
        let remove_ae: bool = f.or(d, "remove_accept_encoding_header", false);
        let runtime_enabled: Option<RuntimeFeatureFlag> = f.opt(d, "runtime_enabled");
        let rq_path = f.field_path("request_direction_config");
        let rq = f.take("request_direction_config");
        let rs_path = f.field_path("response_direction_config");
        let rs = f.take("response_direction_config");
        f.finish(d);
        let request = match rq {
            None => None,
            Some(node) => {
                let mut rf = Fields::of(d, node, &rq_path)?;
                let cp = rf.field_path("common_config");
                let common = rf.take("common_config");
                rf.finish(d);
                Some(DirectionConfig::decode_common(d, common, &cp)?)
            }
        };
        let response_stats_segment = rs.is_some();
        let response = match rs {
            None => ResponseDirection {
                common: DirectionConfig::new(runtime_enabled, content_length, content_type),
                disable_on_etag_header: etag,
                remove_accept_encoding_header: remove_ae,
                uncompressible_response_codes: Vec::new(),
                status_header_enabled: false,
            },
            Some(node) => {
                let mut rf = Fields::of(d, node, &rs_path)?;
                let cp = rf.field_path("common_config");
                let common = rf.take("common_config");
                let r = ResponseDirection {
                    common: DirectionConfig::decode_common(d, common, &cp)?,
                    disable_on_etag_header: rf.or(d, "disable_on_etag_header", false),
                    remove_accept_encoding_header: rf.or(d, "remove_accept_encoding_header", false),
                    uncompressible_response_codes: rf.list(d, "uncompressible_response_codes"),
                    status_header_enabled: false,
                };
                rf.default_only(d, "status_header_enabled", false, "sluice does not add x-envoy-compression-status");
                rf.finish(d);
                r
            }
        };
        Some(Compressor { library: library?, request, response, response_stats_segment, choose_first })
    }
}

/// `CompressorPerRoute`: `disabled`, or `overrides`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CompressorPerRoute {
    Disabled,
    Overrides {
        /// `response_direction_config.remove_accept_encoding_header`.
        remove_accept_encoding_header: Option<bool>,
        compressor_library: Option<CompressorLibrary>,
    },
}

impl CompressorPerRoute {
    pub(crate) fn decode_fields(d: &mut Decoder, mut f: Fields<'_>) -> Option<CompressorPerRoute> {
        let line = f.line();
        let path = f.path().to_string();
        let disabled: Option<bool> = f.opt(d, "disabled");
        let op = f.field_path("overrides");
        let overrides = f.take("overrides");
        f.finish(d);
        match (disabled, overrides) {
            (Some(true), None) => Some(CompressorPerRoute::Disabled),
            (None, Some(node)) => {
                let mut o = Fields::of(d, node, &op)?;
                let library = o.opt(d, "compressor_library");
                let rp = o.field_path("response_direction_config");
                let rdc = o.take("response_direction_config");
                o.finish(d);
                let mut remove = None;
                if let Some(n) = rdc {
                    let mut r = Fields::of(d, n, &rp)?;
                    remove = r.opt(d, "remove_accept_encoding_header");
                    r.finish(d);
                }
                Some(CompressorPerRoute::Overrides {
                    remove_accept_encoding_header: remove,
                    compressor_library: library,
                })
            }
            (Some(false), None) => {
                d.error(crate::error::ErrorKind::Invalid, &format!("{path}.disabled"), line, "value must equal true");
                None
            }
            _ => {
                d.error(
                    crate::error::ErrorKind::Invalid,
                    &path,
                    line,
                    "exactly one of `disabled` and `overrides` must be set",
                );
                None
            }
        }
    }
}

impl Decode for CompressorPerRoute {
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        let f = Fields::of(d, node, path)?;
        CompressorPerRoute::decode_fields(d, f)
    }
}
